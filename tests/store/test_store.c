/* Store basics: create/open errors, domains, put/get round trips, dedup,
 * visibility, the catalog, stat, pack sealing, threads, torn tails. */
#include "store_test.h"

#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <sys/wait.h>
#include <zlib.h>

static void write_text(const char *path, const char *text)
{
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
}

static void test_create_open_errors(void **state)
{
        (void)state;
        char *path = tmp_store();
        char p[PATH_MAX];
        VcStore *s = (VcStore *)0x1;

        vc_errclear();
        assert_int_equal(vc_store_open(path, &s), -ENOENT);
        assert_non_null(strstr(vc_errmsg(-ENOENT), "does not exist"));
        assert_ptr_equal(s, (VcStore *)0x1);            /* *ret untouched on failure */

        assert_int_equal(mkdir(path, 0755), 0);
        vc_errclear();
        assert_int_equal(vc_store_open(path, &s), -EINVAL);
        assert_non_null(strstr(vc_errmsg(-EINVAL), "is not a vmcas store (no vmcas-store file; run 'vmcas init')"));

        /* An empty directory may become a store, a non-empty one may not. */
        snprintf(p, sizeof p, "%s/junk", path);
        write_text(p, "x");
        vc_errclear();
        assert_int_equal(vc_store_create(path), -EEXIST);
        assert_non_null(strstr(vc_errmsg(-EEXIST), "not empty"));
        unlink(p);
        assert_int_equal(vc_store_create(path), 0);
        vc_errclear();
        assert_int_equal(vc_store_create(path), -EEXIST);
        assert_non_null(strstr(vc_errmsg(-EEXIST), "already holds a vmcas store"));
        vc_errclear();

        assert_int_equal(vc_store_open(path, &s), 0);
        uint8_t uuid[VC_UUID_LEN];
        memcpy(uuid, vc_store_uuid(s), VC_UUID_LEN);
        assert_false(vc_is_zero(uuid, VC_UUID_LEN));
        assert_string_equal(vc_store_path(s), path);
        vc_store_free(s);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_memory_equal(uuid, vc_store_uuid(s), VC_UUID_LEN);
        vc_store_free(s);
        vc_store_free(NULL);

        /* A damaged marker is damage, a newer format is -EPROTO. */
        snprintf(p, sizeof p, "%s/vmcas-store", path);
        size_t len;
        uint8_t *orig = slurp(p, &len);
        flip_byte(p, 20);
        vc_errclear();
        assert_int_equal(vc_store_open(path, &s), -EBADMSG);
        const char *body = "vmcas-store\nformat 3\nuuid 00112233445566778899aabbccddeeff\n";
        char text[256];
        snprintf(text, sizeof text, "%scrc32 %08lx\n", body, crc32(0, (const Bytef *)body, (uInt)strlen(body)));
        write_text(p, text);
        vc_errclear();
        assert_int_equal(vc_store_open(path, &s), -EPROTO);
        assert_non_null(strstr(vc_errmsg(-EPROTO), "format 3"));
        /* a store of vmcas 0.1 (format 1) is refused with the way out */
        body = "vmcas-store\nformat 1\nuuid 00112233445566778899aabbccddeeff\n";
        snprintf(text, sizeof text, "%scrc32 %08lx\n", body, crc32(0, (const Bytef *)body, (uInt)strlen(body)));
        write_text(p, text);
        vc_errclear();
        assert_int_equal(vc_store_open(path, &s), -EPROTO);
        assert_non_null(strstr(vc_errmsg(-EPROTO), "not authenticated"));
        assert_int_equal(vc_write_file_atomic(p, orig, len, 0644), 0);
        free(orig);
        assert_int_equal(vc_store_open(path, &s), 0);
        vc_store_free(s);

        /* A regular file is not a store either. */
        snprintf(p, sizeof p, "%s/vmcas-store", path);
        vc_errclear();
        assert_int_equal(vc_store_open(p, &s), -EINVAL);
        assert_int_equal(vc_store_create(p), -EEXIST);
        vc_errclear();
        tmp_store_free(path);
}

static void test_domains(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s, *s2;
        uint64_t a, b, c;
        char name[64];
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "parcel:7", false, &a), -ENOENT);
        assert_int_equal(vc_store_domain(s, "parcel:7", true, &a), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &b), 0);
        assert_true(a != b && a > 0 && b > 0);
        assert_int_equal(vc_store_domain(s, "parcel:7", true, &c), 0);
        assert_true(c == a);
        assert_int_equal(vc_store_domain(s, "parcel:7", false, &c), 0);
        assert_true(c == a);
        assert_int_equal(vc_store_domain_name(s, b, name, sizeof name), 0);
        assert_string_equal(name, "all");
        assert_int_equal(vc_store_domain_name(s, 999, name, sizeof name), -ENOENT);
        assert_int_equal(vc_store_domain_name(s, b, name, 3), -ERANGE);
        assert_int_equal(vc_store_domain(s, "", true, &c), -EINVAL);
        assert_int_equal(vc_store_domain(s, "has space", true, &c), -EINVAL);
        assert_int_equal(vc_store_domain(s, "01234567890123456789012345678901234567890123456789012345678901234567890123456789",
                                         true, &c), -EINVAL);
        /* A second handle in the same process shares the environment. */
        assert_int_equal(vc_store_open(path, &s2), 0);
        assert_int_equal(vc_store_domain(s2, "all", false, &c), 0);
        assert_true(c == b);
        vc_store_free(s2);
        assert_int_equal(vc_store_domain(s, "group:eng", true, &c), 0);
        assert_true(c != a && c != b);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

static void test_roundtrip(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t dom[3];
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "parcel:1", true, &dom[0]), 0);
        assert_int_equal(vc_store_domain(s, "group:eng", true, &dom[1]), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &dom[2]), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        const int N = 1200;
        for (int i = 0; i < N; i++)
                assert_int_equal(put_chunk(w, dom[i % 3], (uint64_t)i), 1);
        assert_true(vc_writer_pending(w) > 0);
        /* Not visible before the flush. */
        assert_int_equal(verify_chunk(s, dom[0], 0), -ENOENT);
        assert_int_equal(vc_writer_flush(w), 0);
        assert_int_equal(vc_writer_pending(w), 0);
        assert_int_equal(vc_writer_flush(w), 0);        /* nothing to do */
        for (int i = 0; i < N; i++) {
                uint8_t tag[VC_TAG_LEN];
                assert_int_equal(verify_chunk(s, dom[i % 3], (uint64_t)i), 0);
                chunk_tag((uint64_t)i, tag);
                assert_int_equal(vc_store_has(s, dom[i % 3], tag), 1);
                /* Domains are separate: the chunk is not in the others. */
                assert_int_equal(vc_store_has(s, dom[(i + 1) % 3], tag), 0);
        }
        uint8_t tag[VC_TAG_LEN];
        chunk_tag(999999, tag);
        uint8_t *buf = NULL;
        size_t cap = 0, len;
        assert_int_equal(vc_store_get(s, dom[0], tag, &buf, &cap, &len), -ENOENT);
        assert_int_equal(vc_store_has(s, dom[0], tag), 0);
        free(buf);
        /* Bad arguments. */
        assert_int_equal(vc_writer_put(w, dom[0], 7, tag, "x", 1), -EINVAL);
        assert_int_equal(vc_writer_put(w, 0, VC_KIND_DATA, tag, "x", 1), -EINVAL);
        /* A domain that does not exist. */
        assert_int_equal(vc_writer_put(w, 4242, VC_KIND_DATA, tag, "x", 1), -ENOENT);
        vc_writer_free(w);
        vc_writer_free(NULL);
        vc_store_free(s);

        /* Everything survives a reopen, and the store checks clean. */
        assert_int_equal(vc_store_open(path, &s), 0);
        for (int i = 0; i < N; i += 7)
                assert_int_equal(verify_chunk(s, dom[i % 3], (uint64_t)i), 0);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

static void test_dedup(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t d, d2;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &d), 0);
        assert_int_equal(vc_store_domain(s, "parcel:2", true, &d2), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        assert_int_equal(put_chunk(w, d, 5), 1);
        assert_int_equal(put_chunk(w, d, 5), 0);        /* pending in this writer */
        assert_int_equal(put_chunk(w, d2, 5), 1);       /* another domain is another scope */
        assert_int_equal(vc_writer_flush(w), 0);
        assert_int_equal(put_chunk(w, d, 5), 0);        /* indexed */
        vc_writer_free(w);
        assert_int_equal(vc_writer_new(s, &w), 0);
        assert_int_equal(put_chunk(w, d, 5), 0);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);

        /* One record each: the pack holds exactly header + one record. */
        VcDomainStat *st;
        size_t n;
        uint64_t ib;
        assert_int_equal(vc_store_stat(s, &st, &n, &ib), 0);
        assert_int_equal(n, 2);
        size_t len = chunk_len(5);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(st[i].meta_chunks, 1);         /* seed 5 is META */
                assert_int_equal(st[i].meta_bytes, len);
                assert_int_equal(st[i].data_chunks, 0);
                assert_int_equal(st[i].packs, 1);
                assert_int_equal(st[i].pack_bytes, 64 + 56 + len);
        }
        assert_true(ib > 0);
        free(st);
        vc_store_free(s);
        tmp_store_free(path);
}

/* Several writers flushed at once (a host cache's lanes): one index
 * commit, every chunk readable, a chunk two writers hold indexed once, and
 * a writer with nothing to flush is no error. Enough entries in two
 * domains for the flush's bucket sort. */
static void test_flush_many(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w[3];
        uint64_t d, d2;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &d), 0);
        assert_int_equal(vc_store_domain(s, "parcel:2", true, &d2), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(vc_writer_new(s, &w[i]), 0);
        for (uint64_t k = 0; k < 300; k++)
                assert_int_equal(put_chunk(w[0], d, k), 1);
        for (uint64_t k = 200; k < 500; k++)
                assert_int_equal(put_chunk(w[1], d, k), 1);     /* 200..299: both hold them */
        for (uint64_t k = 1000; k < 1100; k++)
                assert_int_equal(put_chunk(w[1], d2, k), 1);
        int rets[3] = { -1, -1, -1 };
        assert_int_equal(vc_writer_flush_many(w, 3, rets), 0);
        for (int i = 0; i < 3; i++)
                assert_int_equal(rets[i], 0);
        for (uint64_t k = 0; k < 500; k++)
                assert_int_equal(verify_chunk(s, d, k), 0);
        for (uint64_t k = 1000; k < 1100; k++)
                assert_int_equal(verify_chunk(s, d2, k), 0);
        /* indexed now: no writer stores them again */
        assert_int_equal(put_chunk(w[2], d, 250), 0);
        assert_int_equal(put_chunk(w[0], d2, 1050), 0);
        assert_int_equal(vc_writer_flush_many(w, 3, NULL), 0);
        VcDomainStat *st;
        size_t n;
        uint64_t ib;
        assert_int_equal(vc_store_stat(s, &st, &n, &ib), 0);
        assert_int_equal(n, 2);
        for (size_t i = 0; i < n; i++)
                assert_int_equal(st[i].data_chunks + st[i].meta_chunks, st[i].domain == d ? 500 : 100);
        free(st);
        for (int i = 0; i < 3; i++)
                vc_writer_free(w[i]);
        /* what they wrote survives a reopen */
        vc_store_free(s);
        assert_int_equal(vc_store_open(path, &s), 0);
        for (uint64_t k = 0; k < 500; k += 7)
                assert_int_equal(verify_chunk(s, d, k), 0);
        vc_store_free(s);
        tmp_store_free(path);
}

static void test_visibility(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *a, *b;
        VcWriter *w;
        uint64_t d;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &a), 0);
        assert_int_equal(vc_store_open(path, &b), 0);
        assert_int_equal(vc_store_domain(a, "all", true, &d), 0);
        assert_int_equal(vc_writer_new(a, &w), 0);
        for (int i = 0; i < 50; i++)
                assert_int_equal(put_chunk(w, d, (uint64_t)i), 1);
        assert_int_equal(verify_chunk(b, d, 3), -ENOENT);
        assert_int_equal(vc_writer_flush(w), 0);
        for (int i = 0; i < 50; i++)
                assert_int_equal(verify_chunk(b, d, (uint64_t)i), 0);
        /* The writer keeps appending to the pack it holds after a flush. */
        for (int i = 50; i < 60; i++)
                assert_int_equal(put_chunk(w, d, (uint64_t)i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        for (int i = 50; i < 60; i++)
                assert_int_equal(verify_chunk(b, d, (uint64_t)i), 0);
        vc_writer_free(w);
        VcDomainStat *st;
        size_t n;
        assert_int_equal(vc_store_stat(b, &st, &n, NULL), 0);
        assert_int_equal(st[0].packs, 1);
        free(st);
        vc_store_free(a);
        vc_store_free(b);
        tmp_store_free(path);
}

typedef struct IterCtx {
        int n;
        char keys[16][16];
        int stop_at;
} IterCtx;

static int iter_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        IterCtx *c = ctx;
        if (c->n == c->stop_at)
                return c->stop_at > 0 ? 7 : -EINTR;
        snprintf(c->keys[c->n], 16, "%.*s", (int)klen, (const char *)key);
        assert_int_equal(vlen, klen + 2);               /* values are "v:" + key */
        assert_memory_equal((const char *)val + 2, key, klen);
        c->n++;
        return 0;
}

static void test_catalog(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcTxn *t;
        const void *v;
        size_t vl;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);

        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        static const char *const keys[] = { "p/b", "p/a", "q/x", "p/c", "pz" };
        for (size_t i = 0; i < VC_ARRAY_SIZE(keys); i++) {
                char val[16];
                snprintf(val, sizeof val, "v:%s", keys[i]);
                assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, keys[i], strlen(keys[i]), val, strlen(val)), 0);
        }
        assert_int_equal(vc_txn_put(t, VC_TABLE_META, "empty", 5, "", 0), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE__MAX, "k", 1, "v", 1), -EINVAL);
        assert_int_equal(vc_txn_put(t, VC_TABLE_META, "", 0, "v", 1), -EINVAL);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "p/a", 3, &v, &vl), 0);       /* own writes */
        assert_int_equal(vc_txn_commit(t), 0);

        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "p/b", 3, &v, &vl), 0);
        assert_int_equal(vl, 5);
        assert_memory_equal(v, "v:p/b", 5);
        assert_int_equal(vc_txn_get(t, VC_TABLE_META, "empty", 5, &v, &vl), 0);
        assert_int_equal(vl, 0);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "nope", 4, &v, &vl), -ENOENT);
        assert_int_equal(vc_txn_get(t, VC_TABLE_VERSIONS, "p/b", 3, &v, &vl), -ENOENT);   /* tables are apart */
        IterCtx c = { .stop_at = -1 };
        assert_int_equal(vc_txn_iter(t, VC_TABLE_PARCELS, "p/", 2, iter_cb, &c), 0);
        assert_int_equal(c.n, 3);
        assert_string_equal(c.keys[0], "p/a");
        assert_string_equal(c.keys[1], "p/b");
        assert_string_equal(c.keys[2], "p/c");
        c = (IterCtx){ .stop_at = -1 };
        assert_int_equal(vc_txn_iter(t, VC_TABLE_PARCELS, NULL, 0, iter_cb, &c), 0);
        assert_int_equal(c.n, 5);
        assert_string_equal(c.keys[4], "q/x");
        c = (IterCtx){ .stop_at = 2 };
        assert_int_equal(vc_txn_iter(t, VC_TABLE_PARCELS, NULL, 0, iter_cb, &c), 7);
        c = (IterCtx){ .stop_at = 0 };
        assert_int_equal(vc_txn_iter(t, VC_TABLE_PARCELS, NULL, 0, iter_cb, &c), -EINTR);
        c = (IterCtx){ .stop_at = -1 };
        assert_int_equal(vc_txn_iter(t, VC_TABLE_PARCELS, "r", 1, iter_cb, &c), 0);
        assert_int_equal(c.n, 0);
        /* No writes in a read transaction. */
        assert_int_equal(vc_txn_put(t, VC_TABLE_META, "k", 1, "v", 1), -EINVAL);
        assert_int_equal(vc_txn_del(t, VC_TABLE_META, "k", 1), -EINVAL);
        vc_txn_abort(t);

        /* Abort discards, delete deletes. */
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_del(t, VC_TABLE_PARCELS, "p/a", 3), 0);
        assert_int_equal(vc_txn_del(t, VC_TABLE_PARCELS, "p/a", 3), -ENOENT);
        assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, "p/new", 5, "v:p/new", 7), 0);
        vc_txn_abort(t);
        vc_txn_abort(NULL);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "p/new", 5, &v, &vl), -ENOENT);
        assert_int_equal(vc_txn_del(t, VC_TABLE_PARCELS, "p/a", 3), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);

        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "p/a", 3, &v, &vl), -ENOENT);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "p/c", 3, &v, &vl), 0);
        uint8_t tag[VC_TAG_LEN] = { 1 };
        assert_int_equal(vc_txn_has_chunk(t, 1, tag), 0);
        vc_txn_abort(t);
        /* Reads of chunks work while this thread holds a write transaction
         * (MDB_NOTLS: a read transaction is not tied to the thread). */
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_store_has(s, 1, tag), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE_META, "k", 1, "v", 1), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

static void test_seal_and_stat(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t d1, d2;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "parcel:1", true, &d1), 0);
        assert_int_equal(vc_store_domain(s, "parcel:2", true, &d2), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        vc_writer_set_pack_max(w, 100 << 10);
        uint64_t bytes[2] = { 0 }, meta[2] = { 0 }, nmeta[2] = { 0 }, ndata[2] = { 0 };
        for (uint64_t i = 0; i < 300; i++) {
                int k = i % 2;
                assert_int_equal(put_chunk(w, k ? d2 : d1, i), 1);
                if (i % 5 == 0) {
                        meta[k] += chunk_len(i);
                        nmeta[k]++;
                } else {
                        bytes[k] += chunk_len(i);
                        ndata[k]++;
                }
                if (i % 40 == 0)
                        assert_int_equal(vc_writer_flush(w), 0);
        }
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        for (uint64_t i = 0; i < 300; i++)
                assert_int_equal(verify_chunk(s, i % 2 ? d2 : d1, i), 0);
        VcDomainStat *st;
        size_t n;
        uint64_t ib;
        assert_int_equal(vc_store_stat(s, &st, &n, &ib), 0);
        assert_int_equal(n, 2);
        for (int k = 0; k < 2; k++) {
                assert_true(st[k].domain == (k ? d2 : d1));
                assert_string_equal(st[k].name, k ? "parcel:2" : "parcel:1");
                assert_int_equal(st[k].data_chunks, ndata[k]);
                assert_int_equal(st[k].data_bytes, bytes[k]);
                assert_int_equal(st[k].meta_chunks, nmeta[k]);
                assert_int_equal(st[k].meta_bytes, meta[k]);
                /* Sealed at ~100 KiB: many packs; no byte unaccounted for. */
                assert_true(st[k].packs > 5);
                assert_int_equal(st[k].pack_bytes,
                                 st[k].packs * 64 + (ndata[k] + nmeta[k]) * 56 + bytes[k] + meta[k]);
        }
        free(st);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        tmp_store_free(path);
}

/* 64 MiB pending flushes by itself. */
static void test_autoflush(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s, *s2;
        VcWriter *w;
        uint64_t d;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_open(path, &s2), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &d), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        size_t len = 1 << 20;
        uint8_t *b = calloc(1, len), tag[VC_TAG_LEN];
        for (int i = 0; i < 70; i++) {
                memcpy(b, &i, sizeof i);
                vc_sha256(b, len, tag);
                assert_int_equal(vc_writer_put(w, d, VC_KIND_DATA, tag, b, len), 1);
        }
        assert_true(vc_writer_pending(w) < (64u << 20));
        int i = 0;
        memcpy(b, &i, sizeof i);
        vc_sha256(b, len, tag);
        assert_int_equal(vc_store_has(s2, d, tag), 1);
        vc_writer_free(w);
        free(b);
        vc_store_free(s2);
        vc_store_free(s);
        tmp_store_free(path);
}

typedef struct ThreadCtx {
        VcStore *s;
        uint64_t d;
        int n, fails;
        uint64_t seed;
} ThreadCtx;

static void *reader(void *arg)
{
        ThreadCtx *c = arg;
        for (int i = 0; i < 400; i++) {
                uint64_t k = splitmix(&c->seed) % (uint64_t)c->n;
                if (verify_chunk(c->s, c->d, k) != 0)
                        c->fails++;
        }
        return NULL;
}

static void test_threads(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t d;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &d), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        vc_writer_set_pack_max(w, 64 << 10);    /* many packs: the fd cache churns */
        const int N = 600;
        for (int i = 0; i < N; i++)
                assert_int_equal(put_chunk(w, d, (uint64_t)i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        pthread_t th[4];
        ThreadCtx c[4];
        for (int i = 0; i < 4; i++) {
                c[i] = (ThreadCtx){ .s = s, .d = d, .n = N, .seed = (uint64_t)i };
                assert_int_equal(pthread_create(&th[i], NULL, reader, &c[i]), 0);
        }
        for (int i = 0; i < 4; i++) {
                pthread_join(th[i], NULL);
                assert_int_equal(c[i].fails, 0);
        }
        vc_store_free(s);
        tmp_store_free(path);
}

/* A writer dies after appending past its last flush; the next writer of
 * the pack cuts the tail and appends after the committed records. */
static void test_torn_tail(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t d;
        char pp[PATH_MAX];
        struct stat st;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &d), 0);
        vc_store_free(s);
        pid_t pid = fork();
        if (pid == 0) {
                if (vc_store_open(path, &s) < 0 || vc_writer_new(s, &w) < 0)
                        _exit(1);
                for (int i = 0; i < 20; i++)
                        if (put_chunk(w, d, (uint64_t)i) != 1)
                                _exit(2);
                if (vc_writer_flush(w) < 0)
                        _exit(3);
                for (int i = 20; i < 30; i++)
                        if (put_chunk(w, d, (uint64_t)i) != 1)
                                _exit(4);
                /* Push the buffered tail into the file, then die unflushed. */
                for (int i = 1000; i < 1300; i++)
                        put_chunk(w, d, (uint64_t)i);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
        pack_path(path, d, 1, pp, sizeof pp);
        assert_int_equal(stat(pp, &st), 0);
        off_t torn = st.st_size;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(check_store(s, true, NULL), 0);        /* the torn tail is not damage */
        for (int i = 0; i < 20; i++)
                assert_int_equal(verify_chunk(s, d, (uint64_t)i), 0);
        assert_int_equal(verify_chunk(s, d, 25), -ENOENT);
        assert_int_equal(vc_writer_new(s, &w), 0);
        assert_int_equal(put_chunk(w, d, 25), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        assert_int_equal(stat(pp, &st), 0);
        assert_true(st.st_size < torn);                         /* same pack, cut and reused */
        assert_int_equal(verify_chunk(s, d, 25), 0);
        for (int i = 0; i < 20; i++)
                assert_int_equal(verify_chunk(s, d, (uint64_t)i), 0);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        tmp_store_free(path);
}

/* vc_store_read_located: the records of many chunks in large reads, with
 * and without direct I/O, a missing tag, a repeated one, a damaged header
 * and a callback that fails. */
typedef struct {
        const uint64_t *seeds;
        int calls, bad;
        int fail_at;
} Located;

static int located_got(size_t idx, const uint8_t *data, size_t len, int kind, void *ctx)
{
        Located *l = ctx;
        size_t n;
        uint8_t tag[VC_TAG_LEN];
        uint8_t *b = make_chunk(l->seeds[idx], &n, tag);
        if (n != len || memcmp(b, data, n) != 0 || kind != ((l->seeds[idx] % 5 == 0) ? VC_KIND_META : VC_KIND_DATA))
                l->bad++;
        free(b);
        if (++l->calls == l->fail_at)
                return vc_errf(-ECANCELED, "stop here");
        return 0;
}

static void evict_packs(const char *path, uint64_t dom)
{
        for (uint32_t k = 1; k < 64; k++) {
                char f[PATH_MAX];
                snprintf(f, sizeof f, "%s/packs/%" PRIu64 "/%08" PRIu32 ".pack", path, dom, k);
                int fd = open(f, O_RDONLY);
                if (fd < 0)
                        continue;
                fdatasync(fd);
                posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
                close(fd);
        }
}

/* Flips a byte 8 bytes into the value of every copy of (domain, tag)'s
 * index entry in data.mdb (LMDB copies pages on write). Returns copies. */
static int damage_index_entry(const char *store, uint64_t dom, const uint8_t tag[VC_TAG_LEN])
{
        char file[PATH_MAX];
        snprintf(file, sizeof file, "%s/index/data.mdb", store);
        uint8_t k[8 + VC_TAG_LEN];
        vc_put64be(k, dom);
        memcpy(k + 8, tag, VC_TAG_LEN);
        FILE *f = fopen(file, "rb");
        assert_non_null(f);
        fseek(f, 0, SEEK_END);
        long n = ftell(f);
        uint8_t *b = malloc((size_t)n);
        fseek(f, 0, SEEK_SET);
        assert_int_equal(fread(b, 1, (size_t)n, f), (size_t)n);
        fclose(f);
        int copies = 0;
        for (long i = 0; i + (long)sizeof k + 8 < n; i++)
                if (memcmp(b + i, k, sizeof k) == 0) {
                        flip_byte(file, i + (long)sizeof k + 8);
                        copies++;
                }
        free(b);
        return copies;
}

/* vc_txn_has_chunks answers as vc_txn_has_chunk does for each tag, in
 * batches small (asked in order) and large (in index order), with tags
 * asked twice and tags of another domain; a damaged entry fails it. */
static void test_has_chunks(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t dom, other;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &dom), 0);
        assert_int_equal(vc_store_domain(s, "ip:x", true, &other), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        enum { N = 3000, M = 4000 };
        for (int i = 0; i < N; i++)
                assert_int_equal(put_chunk(w, i % 7 ? dom : other, (uint64_t)i * 2), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        /* seeds 0, 1, 2, ...: even ones stored (6 in 7 in dom), odd ones not;
         * the last hundred repeat earlier ones */
        uint8_t *tags = malloc((size_t)M * VC_TAG_LEN), *has = malloc(M);
        for (int i = 0; i < M; i++)
                chunk_tag(i < M - 100 ? (uint64_t)i : (uint64_t)(i - (M - 100)) * 2, tags + VC_TAG_LEN * i);
        VcTxn *t;
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        size_t sizes[] = { 1, 10, 63, 64, 500, M };
        for (size_t z = 0; z < sizeof sizes / sizeof *sizes; z++) {
                memset(has, 7, M);
                assert_int_equal(vc_txn_has_chunks(t, dom, tags, VC_TAG_LEN, sizes[z], has), 0);
                int npresent = 0;
                for (size_t i = 0; i < sizes[z]; i++) {
                        assert_int_equal(has[i], vc_txn_has_chunk(t, dom, tags + VC_TAG_LEN * i));
                        npresent += has[i];
                }
                if (sizes[z] == M)
                        assert_true(npresent > 1000 && npresent < 2000);
        }
        /* tags inside larger records (a put's items) */
        struct { uint64_t before; uint8_t tag[VC_TAG_LEN]; uint32_t after; } *rec = calloc(M, sizeof *rec);
        uint8_t *has2 = malloc(M);
        for (int i = 0; i < M; i++)
                memcpy(rec[i].tag, tags + VC_TAG_LEN * i, VC_TAG_LEN);
        assert_int_equal(vc_txn_has_chunks(t, dom, tags, VC_TAG_LEN, M, has), 0);
        assert_int_equal(vc_txn_has_chunks(t, dom, rec[0].tag, sizeof *rec, M, has2), 0);
        assert_memory_equal(has, has2, M);
        free(rec);
        free(has2);
        assert_int_equal(vc_txn_has_chunks(t, 999, tags, VC_TAG_LEN, 100, has), 0);
        for (int i = 0; i < 100; i++)
                assert_int_equal(has[i], 0);
        vc_txn_abort(t);
        /* in a write transaction too */
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_has_chunks(t, dom, tags, VC_TAG_LEN, M, has), 0);
        assert_int_equal(has[2], 1);
        assert_int_equal(has[3], 0);
        vc_txn_abort(t);
        vc_store_free(s);
        /* a damaged entry: the batch that asks for it fails and says so */
        assert_true(damage_index_entry(path, dom, tags + VC_TAG_LEN * 2) > 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        assert_int_equal(vc_txn_has_chunks(t, dom, tags + VC_TAG_LEN * 4, VC_TAG_LEN, 200, has), 0);
        assert_int_equal(vc_txn_has_chunks(t, dom, tags, VC_TAG_LEN, M, has), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "damaged"));
        vc_errclear();
        assert_int_equal(vc_txn_has_chunk(t, dom, tags + VC_TAG_LEN * 2), -EBADMSG);
        vc_errclear();
        vc_txn_abort(t);
        vc_store_free(s);
        free(tags);
        free(has);
        tmp_store_free(path);
}

static void test_read_located(void **state)
{
        (void)state;
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        uint64_t dom;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "all", true, &dom), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        enum { N = 700, M = N + 2 };
        uint64_t seeds[M];
        uint8_t *tags = malloc(M * VC_TAG_LEN);
        for (int i = 0; i < N; i++) {
                seeds[i] = (uint64_t)i;
                assert_int_equal(put_chunk(w, dom, seeds[i]), 1);
                chunk_tag(seeds[i], tags + VC_TAG_LEN * i);
        }
        assert_int_equal(vc_writer_flush(w), 0);
        seeds[N] = 5;           /* asked twice */
        chunk_tag(5, tags + VC_TAG_LEN * N);
        seeds[N + 1] = 999999;  /* not stored */
        chunk_tag(999999, tags + VC_TAG_LEN * (N + 1));
        VcChunkLoc *locs = calloc(M, sizeof *locs);
        bool *done = calloc(M, sizeof *done);
        assert_int_equal(vc_store_locate(s, NULL, dom, tags, VC_TAG_LEN, M, locs), 0);
        assert_true(locs[0].found && locs[N].found && !locs[N + 1].found);
        /* from the page cache, from the disk (direct I/O), and with direct
         * I/O turned off */
        for (int pass = 0; pass < 3; pass++) {
                if (pass == 1)
                        evict_packs(path, dom);
                if (pass == 2)
                        setenv("VMCAS_DIRECT_IO", "0", 1);
                memset(done, 0, M * sizeof *done);
                Located l = { seeds, 0, 0, 0 };
                assert_int_equal(vc_store_read_located(s, dom, tags, VC_TAG_LEN, M, locs, done, located_got, &l), 0);
                assert_int_equal(l.calls, N + 1);
                assert_int_equal(l.bad, 0);
                for (int i = 0; i < M; i++)
                        assert_int_equal(done[i], i != N + 1);
                /* done ones are not read again */
                l.calls = 0;
                assert_int_equal(vc_store_read_located(s, dom, tags, VC_TAG_LEN, M, locs, done, located_got, &l), 0);
                assert_int_equal(l.calls, 0);
        }
        unsetenv("VMCAS_DIRECT_IO");
        /* the callback's error stops the reads and comes back */
        memset(done, 0, M * sizeof *done);
        Located stop = { seeds, 0, 0, 10 };
        assert_int_equal(vc_store_read_located(s, dom, tags, VC_TAG_LEN, M, locs, done, located_got, &stop),
                         -ECANCELED);
        assert_int_equal(stop.calls, 10);
        vc_errclear();
        /* a damaged record header: that chunk is left undone, without an
         * error, and reading it alone says what is wrong */
        char pack[PATH_MAX];
        snprintf(pack, sizeof pack, "%s/packs/%" PRIu64 "/%08" PRIu32 ".pack", path, dom, locs[3].pack);
        flip_byte(pack, (long)locs[3].off + 20);
        evict_packs(path, dom);
        memset(done, 0, M * sizeof *done);
        Located l = { seeds, 0, 0, 0 };
        assert_int_equal(vc_store_read_located(s, dom, tags, VC_TAG_LEN, M, locs, done, located_got, &l), 0);
        assert_false(done[3]);
        assert_int_equal(l.calls, N);
        assert_int_equal(l.bad, 0);
        uint8_t *buf = NULL;
        size_t cap = 0, len;
        assert_int_equal(vc_store_get_at(s, NULL, dom, tags + 3 * VC_TAG_LEN, &locs[3], &buf, &cap, &len), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "damaged record"));
        vc_errclear();
        free(buf);
        free(done);
        free(locs);
        free(tags);
        vc_writer_free(w);
        vc_store_free(s);
        tmp_store_free(path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_create_open_errors),
                cmocka_unit_test(test_domains),
                cmocka_unit_test(test_roundtrip),
                cmocka_unit_test(test_dedup),
                cmocka_unit_test(test_flush_many),
                cmocka_unit_test(test_visibility),
                cmocka_unit_test(test_catalog),
                cmocka_unit_test(test_seal_and_stat),
                cmocka_unit_test(test_autoflush),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_torn_tail),
                cmocka_unit_test(test_read_located),
                cmocka_unit_test(test_has_chunks),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
