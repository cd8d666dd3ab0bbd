/* Damage on disk is found: a flipped byte in a catalog value, an index
 * value, a pack record header, record data, a pack header; a missing pack.
 * Each time the damaged item is named and everything else still reads. */
#include "store_test.h"

#define N 120

/* A store with chunks 0..N-1 in one domain (one pack). */
static char *make_store(uint64_t *d)
{
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "parcel:1", true, d), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        for (int i = 0; i < N; i++)
                assert_int_equal(put_chunk(w, *d, (uint64_t)i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        vc_store_free(s);
        return path;
}

static void verify_all_but(VcStore *s, uint64_t d, int skip)
{
        for (int i = 0; i < N; i++)
                if (i != skip)
                        assert_int_equal(verify_chunk(s, d, (uint64_t)i), 0);
}

static void data_mdb(const char *store, char *buf, size_t len)
{
        snprintf(buf, len, "%s/index/data.mdb", store);
}

static void test_catalog_value(void **state)
{
        (void)state;
        uint64_t d;
        char *path = make_store(&d);
        char db[PATH_MAX];
        VcStore *s;
        VcTxn *t;
        const void *v;
        size_t vl;
        const char *pat = "VICTIM-VALUE-PATTERN-0123456789";
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, "victim", 6, pat, strlen(pat)), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, "bystander", 9, "BYSTANDER", 9), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);

        data_mdb(path, db, sizeof db);
        assert_true(flip_after(db, pat, strlen(pat), 7) >= 1);

        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        vc_errclear();
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "victim", 6, &v, &vl), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "catalog record table parcels, key 'victim' fails its checksum"));
        vc_errclear();
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "bystander", 9, &v, &vl), 0);
        assert_memory_equal(v, "BYSTANDER", 9);
        vc_txn_abort(t);
        Damage dm = { 0 };
        assert_int_equal(check_store(s, false, &dm), 1);
        assert_int_equal(dm.with_tag, 0);
        assert_non_null(strstr(dm.last, "victim"));
        verify_all_but(s, d, -1);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

typedef struct Find {
        const uint8_t *tag;
        VcChunkInfo ci;
        int found;
} Find;

static int find_cb(const VcChunkInfo *ci, void *ctx)
{
        Find *c = ctx;
        if (memcmp(ci->tag, c->tag, VC_TAG_LEN) == 0) {
                c->ci = *ci;
                c->found++;
        }
        return 0;
}

/* The 65 bytes an index entry of chunk seed has in data.mdb: key, value. */
static void index_pattern(VcStore *s, uint64_t d, uint64_t seed, uint8_t pat[65])
{
        uint8_t tag[VC_TAG_LEN];
        chunk_tag(seed, tag);
        vc_put64be(pat, d);
        memcpy(pat + 8, tag, VC_TAG_LEN);
        VcTxn *t;
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        /* Where the chunk is, from the index walk. */
        Find c = { .tag = tag };
        assert_int_equal(vc_txn_iter_chunks(t, find_cb, &c), 0);
        assert_int_equal(c.found, 1);
        vc_txn_abort(t);
        uint8_t *v = pat + 40;
        vc_put32(v, c.ci.pack);
        vc_put64(v + 4, c.ci.offset);
        vc_put32(v + 12, c.ci.len);
        v[16] = (uint8_t)c.ci.kind;
        vc_put64(v + 17, (uint64_t)c.ci.stored_at);
}

static void test_index_value(void **state)
{
        (void)state;
        uint64_t d;
        char *path = make_store(&d);
        char db[PATH_MAX], hex[65];
        VcStore *s;
        uint8_t pat[65], tag[VC_TAG_LEN];
        const uint64_t victim = 17;
        assert_int_equal(vc_store_open(path, &s), 0);
        index_pattern(s, d, victim, pat);
        vc_store_free(s);

        data_mdb(path, db, sizeof db);
        /* Byte 5 of the value: the record offset. Without the CRC the
         * reader would go to the wrong bytes. */
        assert_true(flip_after(db, pat, sizeof pat, 40 + 5) >= 1);

        chunk_tag(victim, tag);
        vc_hex(tag, VC_TAG_LEN, hex);
        assert_int_equal(vc_store_open(path, &s), 0);
        vc_errclear();
        assert_int_equal(verify_chunk(s, d, victim), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "index is damaged: entry"));
        assert_non_null(strstr(vc_errmsg(-EBADMSG), hex));
        vc_errclear();
        assert_int_equal(vc_store_has(s, d, tag), -EBADMSG);
        vc_errclear();
        verify_all_but(s, d, (int)victim);
        Damage dm = { 0 };
        assert_int_equal(check_store(s, false, &dm), 1);
        assert_int_equal(dm.with_tag, 1);
        assert_true(damage_has(&dm, tag));
        /* Compaction will not guess where a damaged entry points. */
        assert_int_equal(vc_store_compact(s, 1.0, NULL), -EBADMSG);
        vc_errclear();

        /* Putting the chunk again repairs it: the damaged entry counts as
         * absent, and the flush replaces it. */
        VcWriter *w;
        assert_int_equal(vc_writer_new(s, &w), 0);
        assert_int_equal(put_chunk(w, d, victim), 1);
        assert_int_equal(put_chunk(w, d, victim + 1), 0);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        verify_all_but(s, d, -1);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

static void test_record_header(void **state)
{
        (void)state;
        uint64_t d;
        char *path = make_store(&d);
        char pp[PATH_MAX], hex[65];
        VcStore *s;
        uint8_t tag[VC_TAG_LEN];
        const uint64_t victim = 42;
        chunk_tag(victim, tag);
        vc_hex(tag, VC_TAG_LEN, hex);
        pack_path(path, d, 1, pp, sizeof pp);
        /* The tag sits at byte 16 of its record header; byte 5 is reserved
         * and covered by the header CRC. */
        assert_int_equal(flip_after(pp, tag, VC_TAG_LEN, -16 + 5), 1);

        assert_int_equal(vc_store_open(path, &s), 0);
        vc_errclear();
        assert_int_equal(verify_chunk(s, d, victim), -EBADMSG);
        const char *msg = vc_errmsg(-EBADMSG);
        assert_non_null(strstr(msg, hex));
        assert_non_null(strstr(msg, "damaged record in pack 1 at offset"));
        vc_errclear();
        verify_all_but(s, d, (int)victim);
        Damage dm = { 0 };
        assert_int_equal(check_store(s, false, &dm), 1);
        assert_true(damage_has(&dm, tag));
        /* The full walk finds the header too, then finds its feet again:
         * no record after it is reported. */
        dm = (Damage){ 0 };
        VcCheckStats st;
        assert_int_equal(vc_store_check(s, true, damage_cb, &dm, &st), 2);
        assert_int_equal(dm.with_tag, 1);
        assert_true(damage_has(&dm, tag));
        assert_int_equal(st.chunks_checked, N);
        assert_int_equal(st.packs_checked, 1);
        uint64_t expect = 0;
        for (int i = 0; i < N; i++)
                if (i != (int)victim)
                        expect += chunk_len((uint64_t)i);
        assert_int_equal(st.bytes_checked, expect);

        /* A damaged pack header is found by the full check; the records
         * still read (each carries its own header). */
        flip_byte(pp, 17);
        dm = (Damage){ 0 };
        assert_int_equal(check_store(s, true, &dm), 3);
        verify_all_but(s, d, (int)victim);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

static int dead_but_victim(const VcChunkInfo *ci, void *ctx)
{
        return memcmp(ci->tag, ctx, VC_TAG_LEN) == 0;
}

static void test_record_data(void **state)
{
        (void)state;
        uint64_t d;
        char *path = make_store(&d);
        char pp[PATH_MAX];
        VcStore *s;
        uint8_t tag[VC_TAG_LEN];
        const uint64_t victim = 77;
        size_t len;
        uint8_t *data = make_chunk(victim, &len, tag);
        assert_true(len > 40);
        pack_path(path, d, 1, pp, sizeof pp);
        assert_int_equal(flip_after(pp, data, 32, 10), 1);
        free(data);

        assert_int_equal(vc_store_open(path, &s), 0);
        /* get does not hash (the caller's open does): the bytes are wrong
         * but the record header is fine. */
        assert_int_equal(verify_chunk(s, d, victim), -EILSEQ);
        verify_all_but(s, d, (int)victim);
        assert_int_equal(check_store(s, false, NULL), 0);
        Damage dm = { 0 };
        assert_int_equal(check_store(s, true, &dm), 1);
        assert_int_equal(dm.with_tag, 1);
        assert_true(damage_has(&dm, tag));
        assert_non_null(strstr(dm.last, "does not match its tag"));

        /* Compaction does not copy a damaged record, nor delete its pack. */
        VcTxn *t;
        VcSweepStats sw;
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_sweep(t, dead_but_victim, tag, INT64_MAX, &sw), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        assert_int_equal(sw.chunks_kept, 1);
        VcCompactStats cs;
        assert_int_equal(vc_store_compact(s, 0.5, &cs), 0);
        assert_int_equal(cs.packs_deleted, 0);
        assert_int_equal(cs.chunks_moved, 0);
        struct stat st;
        assert_int_equal(stat(pp, &st), 0);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

static void test_missing_pack(void **state)
{
        (void)state;
        uint64_t d;
        char *path = make_store(&d);
        char pp[PATH_MAX];
        VcStore *s;
        pack_path(path, d, 1, pp, sizeof pp);
        assert_int_equal(unlink(pp), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        vc_errclear();
        assert_int_equal(verify_chunk(s, d, 3), -EIO);
        assert_non_null(strstr(vc_errmsg(-EIO), "missing"));
        vc_errclear();
        Damage dm = { 0 };
        assert_int_equal(check_store(s, true, &dm), N);
        assert_int_equal(dm.with_tag, VC_MIN(N, 64));
        /* Compaction leaves a missing pack with live records alone. */
        assert_int_equal(vc_store_compact(s, 1.0, NULL), 0);
        assert_int_equal(check_store(s, false, NULL), N);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_catalog_value),
                cmocka_unit_test(test_index_value),
                cmocka_unit_test(test_record_header),
                cmocka_unit_test(test_record_data),
                cmocka_unit_test(test_missing_pack),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
