/* The remote back end against a real `vmcas serve` on 127.0.0.1: every op
 * of the store interface, who may do what, leases, the existence oracle,
 * key bundles, several threads at once. */
#include "server_test.h"

#include <inttypes.h>

#include <pthread.h>

#include "client/vc_bundle.h"
#include "client/vc_keystore.h"
#include "core/vc_keyring.h"

static char dir[PATH_MAX], store[PATH_MAX + 8];
static char tok_alice[80], tok_bob[80], tok_root[80];
static TestServer srv;
static VcBackend *alice, *bob, *root;

static int setup(void **state)
{
        const char *base = getenv("TMPDIR");
        snprintf(dir, sizeof dir, "%s/vcsrv.XXXXXX", base && *base ? base : "/tmp");
        assert_non_null(mkdtemp(dir));
        snprintf(store, sizeof store, "%s/st", dir);
        char cmd[PATH_MAX * 2];
        snprintf(cmd, sizeof cmd, "'%s' -s '%s' init >/dev/null", vmcas_bin(), store);
        assert_int_equal(run_last_line(cmd, NULL, 0), 0);
        const char *who[] = { "alice", "bob", "root --admin" };
        char *tok[] = { tok_alice, tok_bob, tok_root };
        for (int i = 0; i < 3; i++) {
                snprintf(cmd, sizeof cmd, "'%s' -s '%s' user add %s", vmcas_bin(), store, who[i]);
                assert_int_equal(run_last_line(cmd, tok[i], 80), 0);
                assert_int_equal(strlen(tok[i]), 64);
        }
        server_start(&srv, store, "--threads 2");
        alice = open_as(srv.url, tok_alice);
        bob = open_as(srv.url, tok_bob);
        root = open_as(srv.url, tok_root);
        return 0;
}

static int teardown(void **state)
{
        vc_backend_free(alice);
        vc_backend_free(bob);
        vc_backend_free(root);
        assert_int_equal(server_stop(&srv), 0);
        char cmd[PATH_MAX * 2];
        snprintf(cmd, sizeof cmd, "'%s' -s '%s' verify --full >&2", vmcas_bin(), store);
        assert_int_equal(run_last_line(cmd, NULL, 0), 0);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return run_last_line(cmd, NULL, 0);
}

static void test_open(void **state)
{
        VcBackendOpts o = { .no_cache = true, .token = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff" };
        VcBackend *b = NULL;
        vc_errclear();
        assert_int_equal(vc_backend_open(srv.url, &o, &b), -EACCES);
        assert_non_null(strstr(vc_errmsg(-EACCES), "refused the token"));
        vc_errclear();
        assert_string_equal(vc_backend_kind(alice), "remote");
        uint8_t zero[16] = { 0 };
        assert_memory_not_equal(vc_backend_uuid(alice), zero, 16);
        /* nobody listening */
        o.token = tok_alice;
        assert_int_equal(vc_backend_open("http://127.0.0.1:1", &o, &b), -ECONNREFUSED);
        vc_errclear();
}

static VcParcel pa;                      /* alice's ip parcel "a1" */

static void test_catalog(void **state)
{
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t len;
        make_parcel("a1", VC_POLICY_IP, NULL, rec, &len, &pa);
        assert_int_equal(vc_cat_create(alice, "a1", NULL, rec, len), 0);
        assert_int_equal(vc_cat_create(alice, "a1", NULL, rec, len), -EEXIST);
        vc_errclear();
        VcParcelInfo pi;
        assert_int_equal(vc_cat_parcel(alice, "a1", &pi), 0);
        assert_string_equal(pi.owner, "alice");
        assert_int_equal(pi.latest, 0);
        assert_int_equal(pi.record_len, len);
        assert_memory_equal(pi.record, rec, len);
        /* another user: no such parcel, in the same words */
        assert_int_equal(vc_cat_parcel(bob, "a1", &pi), -ENOENT);
        assert_non_null(strstr(vc_errmsg(-ENOENT), "no parcel 'a1'"));
        vc_errclear();
        assert_int_equal(vc_cat_parcel(bob, "nosuch", &pi), -ENOENT);
        vc_errclear();
        VcParcelInfo *v;
        size_t n;
        assert_int_equal(vc_cat_parcels(bob, &v, &n), 0);
        assert_int_equal(n, 0);
        free(v);
        assert_int_equal(vc_cat_parcels(root, &v, &n), 0);
        assert_int_equal(n, 1);
        free(v);
        /* a user may not create for another; an administrator may */
        make_parcel("b1", VC_POLICY_ALL, NULL, rec, &len, NULL);
        assert_int_equal(vc_cat_create(alice, "b1", "bob", rec, len), -EACCES);
        vc_errclear();
        assert_int_equal(vc_cat_create(root, "b1", "nobody", rec, len), -EINVAL);
        vc_errclear();
        assert_int_equal(vc_cat_create(root, "b1", "bob", rec, len), 0);
        assert_int_equal(vc_cat_parcel(bob, "b1", &pi), 0);
        assert_string_equal(pi.owner, "bob");
        /* a record that reuses another parcel's uuid is refused */
        VcParcel copy = pa;
        snprintf(copy.name, sizeof copy.name, "evil");
        assert_int_equal(vc_parcel_pack(&copy, rec, sizeof rec, &len), 0);
        assert_int_equal(vc_cat_create(bob, "evil", NULL, rec, len), -EINVAL);
        vc_errclear();
}

typedef struct GotCtx {
        uint8_t **data;
        VcPutItem *items;
        size_t n, seen;
} GotCtx;

static int got(size_t idx, const uint8_t *d, size_t len, void *ctx)
{
        GotCtx *g = ctx;
        assert_int_equal(idx, g->seen);
        assert_int_equal(len, g->items[idx].len);
        assert_memory_equal(d, g->data[idx], len);
        g->seen++;
        return 0;
}

static int got_any(size_t idx, const uint8_t *d, size_t len, void *ctx)
{
        ((GotCtx *)ctx)->seen++;
        return 0;
}

static void test_chunks(void **state)
{
        enum { N = 40 };
        uint8_t tags[N * 32], miss[N];
        uint8_t *data[N];
        VcPutItem items[N];
        for (int i = 0; i < N; i++) {
                size_t len = i == 0 ? VC_SEALED_MAX : 100 + 997 * (size_t)i;
                data[i] = make_chunk((uint64_t)i + 1, len, tags + 32 * i);
                if (i % 5 == 0) {       /* a keyring node starts "VK" */
                        data[i][1] = 'K';
                        vc_sha256(data[i], len, tags + 32 * i);
                }
                items[i] = (VcPutItem){ .kind = i % 5 == 0 ? VC_KIND_META : VC_KIND_DATA, .len = (uint32_t)len,
                                        .data = data[i] };
                memcpy(items[i].tag, tags + 32 * i, 32);
        }
        assert_int_equal(vc_chunks_missing(alice, "a1", pa.node_dom, tags, N, miss), 0);
        for (int i = 0; i < N; i++)
                assert_int_equal(miss[i], 1);
        VcTraffic t0, t1;
        vc_backend_traffic(alice, &t0);
        assert_int_equal(vc_chunks_put(alice, "a1", pa.node_dom, items, N / 2), 0);
        vc_backend_traffic(alice, &t1);
        assert_true(t1.sent_data > t0.sent_data && t1.sent_meta > t0.sent_meta);
        assert_true(t1.wire_sent > t1.sent_data + t1.sent_meta - t0.sent_data - t0.sent_meta);
        assert_int_equal(vc_chunks_missing(alice, "a1", pa.node_dom, tags, N, miss), 0);
        for (int i = 0; i < N; i++)
                assert_int_equal(miss[i], i >= N / 2);
        /* another user's parcel, or a domain that is not the parcel's */
        assert_int_equal(vc_chunks_missing(bob, "a1", pa.node_dom, tags, N, miss), -ENOENT);
        vc_errclear();
        assert_int_equal(vc_chunks_put(alice, "a1", "all", items, 1), -EACCES);
        vc_errclear();
        assert_int_equal(vc_chunks_get(bob, "a1", pa.node_dom, tags, 1, NULL, NULL), -ENOENT);
        vc_errclear();
        /* a chunk whose bytes are not its tag: refused, not stored */
        VcPutItem bad = items[N - 1];
        bad.data = data[N - 2];
        bad.len = items[N - 2].len;
        assert_int_equal(vc_chunks_put(alice, "a1", pa.node_dom, &bad, 1), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "do not hash to its tag"));
        vc_errclear();
        assert_int_equal(vc_chunks_missing(alice, "a1", pa.node_dom, tags + 32 * (N - 1), 1, miss), 0);
        assert_int_equal(miss[0], 1);
        assert_int_equal(vc_chunks_put(alice, "a1", pa.node_dom, items + N / 2, N - N / 2), 0);
        /* and back, in order, byte for byte */
        GotCtx g = { .data = data, .items = items, .n = N };
        vc_backend_traffic(alice, &t0);
        assert_int_equal(vc_chunks_get(alice, "a1", pa.node_dom, tags, N, got, &g), 0);
        assert_int_equal(g.seen, N);
        vc_backend_traffic(alice, &t1);
        assert_true(t1.recv_meta > t0.recv_meta && t1.recv_data > t0.recv_data);
        /* gets of a few tags (a disk server's miss) are answered whole, in
         * one reply with a length: the same records, the same bytes */
        for (size_t k = 1; k <= 17; k += 8) {
                GotCtx gk = { .data = data + N - k, .items = items + N - k, .n = k };
                assert_int_equal(vc_chunks_get(alice, "a1", pa.node_dom, tags + 32 * (N - k), k, got, &gk), 0);
                assert_int_equal(gk.seen, k);
        }
        /* a chunk that is not there: -ENOENT naming it */
        uint8_t nothere[32];
        free(make_chunk(999, 64, nothere));
        memcpy(tags + 32 * 3, nothere, 32);
        g.seen = 0;
        assert_int_equal(vc_chunks_get(alice, "a1", pa.node_dom, tags, N, got_any, &g), -ENOENT);
        assert_non_null(strstr(vc_errmsg(-ENOENT), "is not in the store"));
        vc_errclear();
        g.seen = 0;
        assert_int_equal(vc_chunks_get(alice, "a1", pa.node_dom, tags + 32 * 2, 2, got_any, &g), -ENOENT);
        assert_non_null(strstr(vc_errmsg(-ENOENT), "is not in the store"));
        assert_int_equal(g.seen, 0);
        vc_errclear();
        for (int i = 0; i < N; i++)
                free(data[i]);
}

/* Puts one data chunk (seed) into parcel's domain; its tag in tag. */
static void put_one(VcBackend *b, const char *parcel, const char *domain, uint64_t seed, uint8_t tag[32])
{
        uint8_t *d = make_chunk(seed, 3000, tag);
        VcPutItem it = { .kind = VC_KIND_DATA, .len = 3000, .data = d };
        memcpy(it.tag, tag, 32);
        assert_int_equal(vc_chunks_put(b, parcel, domain, &it, 1), 0);
        free(d);
}

static void test_commit_and_leases(void **state)
{
        uint8_t rec[VC_VERSION_REC_LEN], have[32], gone[32];
        put_one(alice, "a1", pa.data_dom, 77, have);
        free(make_chunk(78, 3000, gone));
        make_version(&pa, 1, NULL, rec);
        VcCommit c = { .parcel = "a1", .base = 0, .record = rec, .record_len = sizeof rec, .need_data = have,
                       .n_data = 1 };
        /* a chunk that is not stored: nothing committed */
        VcCommit c2 = c;
        c2.need_data = gone;
        assert_int_equal(vc_cat_commit(alice, &c2), -EAGAIN);
        assert_non_null(strstr(vc_errmsg(-EAGAIN), "nothing was committed"));
        vc_errclear();
        assert_int_equal(vc_cat_commit(bob, &c), -ENOENT);
        vc_errclear();
        /* a lease: others (hosts) are refused, also for a commit without it */
        VcLease ls, ls2;
        assert_int_equal(vc_lease_acquire(alice, "a1", "hostA", &ls), 0);
        assert_true(ls.held);
        assert_int_equal(vc_lease_acquire(alice, "a1", "hostA", &ls2), 0);
        assert_memory_equal(ls.token, ls2.token, VC_LEASE_TOKEN_LEN);
        assert_int_equal(vc_lease_acquire(alice, "a1", "hostB", &ls2), -EBUSY);
        assert_non_null(strstr(vc_errmsg(-EBUSY), "hostA"));
        vc_errclear();
        assert_int_equal(vc_cat_commit(alice, &c), -EBUSY);
        vc_errclear();
        c.lease = ls.token;
        assert_int_equal(vc_cat_commit(alice, &c), 0);
        /* the same base again: moved on */
        assert_int_equal(vc_cat_commit(alice, &c), -EAGAIN);
        vc_errclear();
        assert_int_equal(vc_lease_get(alice, "a1", &ls2), 0);
        assert_true(ls2.held);
        assert_string_equal(ls2.host, "hostA");
        assert_int_equal(vc_lease_get(bob, "a1", &ls2), -ENOENT);
        vc_errclear();
        /* only an administrator breaks a lease; the old holder is then stale */
        assert_int_equal(vc_lease_break(alice, "a1"), -EACCES);
        vc_errclear();
        assert_int_equal(vc_lease_break(root, "a1"), 1);
        make_version(&pa, 2, NULL, rec);
        c.base = 1;
        assert_int_equal(vc_cat_commit(alice, &c), -ESTALE);
        vc_errclear();
        assert_int_equal(vc_lease_release(alice, "a1", ls.token), -ESTALE);
        vc_errclear();
        c.lease = NULL;
        assert_int_equal(vc_cat_commit(alice, &c), 0);
        assert_int_equal(vc_lease_acquire(alice, "a1", "hostB", &ls2), 0);
        assert_int_equal(vc_lease_release(alice, "a1", ls2.token), 0);
        /* versions */
        VcVersionInfo *v;
        size_t n;
        assert_int_equal(vc_cat_versions(alice, "a1", &v, &n), 0);
        assert_int_equal(n, 2);
        assert_int_equal(v[1].version, 2);
        assert_memory_equal(v[1].record, rec, sizeof rec);
        free(v);
        VcVersionInfo one;
        assert_int_equal(vc_cat_version(alice, "a1", 1, &one), 0);
        assert_int_equal(one.version, 1);
        assert_int_equal(vc_cat_version(alice, "a1", 9, &one), -ENOENT);
        vc_errclear();
        assert_int_equal(vc_cat_version(bob, "a1", 1, &one), -ENOENT);
        vc_errclear();
        assert_int_equal(vc_cat_prune(bob, "a1", 1), -ENOENT);
        vc_errclear();
        assert_int_equal(vc_cat_prune(alice, "a1", 1), 1);
}

static void test_maintenance(void **state)
{
        VcStoreStat st;
        assert_int_equal(vc_backend_stat(alice, &st), 0);
        assert_int_equal(st.nparcels, 1);
        assert_string_equal(st.parcels[0].p.name, "a1");
        assert_int_equal(st.parcels[0].p.policy, VC_POLICY_IP);
        assert_int_equal(st.ndomains, 0);
        vc_repo_stat_free(&st);
        assert_int_equal(vc_backend_stat(root, &st), 0);
        assert_int_equal(st.nparcels, 2);
        assert_true(st.ndomains >= 2);
        vc_repo_stat_free(&st);
        VcVerifyStats vs;
        assert_int_equal(vc_backend_verify(alice, false, NULL, NULL, &vs), -EACCES);
        assert_non_null(strstr(vc_errmsg(-EACCES), "administrator"));
        vc_errclear();
        assert_int_equal(vc_backend_verify(root, true, NULL, NULL, &vs), 0);
        assert_int_equal(vs.parcels, 2);
        VcGcStats gs;
        assert_int_equal(vc_backend_gc(bob, 0, true, &gs), -EACCES);
        vc_errclear();
        assert_int_equal(vc_backend_gc(root, 3600, true, &gs), 0);
        assert_int_equal(vc_backend_verify(root, true, NULL, NULL, &vs), 0);
}

typedef struct { VcBackend *b; const char *dom; } NodeCtx;

static int put_node(const uint8_t t[32], const uint8_t *sealed, size_t l, void *ctx)
{
        NodeCtx *nc = ctx;
        VcPutItem it = { .kind = VC_KIND_META, .len = (uint32_t)l, .data = sealed };
        memcpy(it.tag, t, 32);
        return vc_chunks_put(nc->b, "a-all", nc->dom, &it, 1);
}

/* The existence oracle: a second server on the same store, without it. */
static void test_no_oracle(void **state)
{
        TestServer s2;
        server_start(&s2, store, "--no-existence-oracle");
        VcBackend *a2 = open_as(s2.url, tok_alice), *b2 = open_as(s2.url, tok_bob);
        uint8_t rec[VC_PARCEL_REC_MAX], vrec[VC_VERSION_REC_LEN], tag[32], miss[1];
        size_t len;
        VcParcel pall;
        make_parcel("a-all", VC_POLICY_ALL, NULL, rec, &len, &pall);
        assert_int_equal(vc_cat_create(a2, "a-all", NULL, rec, len), 0);
        /* alice stores a chunk in the pool; bob's parcel (b1, all) may not learn of it */
        put_one(a2, "a-all", "all", 500, tag);
        assert_int_equal(vc_chunks_missing(b2, "b1", "all", tag, 1, miss), 0);
        assert_int_equal(miss[0], 1);
        assert_int_equal(vc_chunks_get(b2, "b1", "all", tag, 1, got_any, &(GotCtx){ 0 }), -ENOENT);
        vc_errclear();
        /* nor in a get too large for the look-up before a plain reply:
         * without the oracle every get is checked first, nothing sent */
        enum { BIG = 300 };
        uint8_t *many = malloc(32 * BIG);
        for (int i = 0; i < BIG; i++)
                memcpy(many + 32 * i, tag, 32);
        GotCtx gb = { 0 };
        assert_int_equal(vc_chunks_get(b2, "b1", "all", many, BIG, got_any, &gb), -ENOENT);
        assert_int_equal(gb.seen, 0);
        vc_errclear();
        free(many);
        VcParcel pb;
        VcParcelInfo pi;
        assert_int_equal(vc_cat_parcel(b2, "b1", &pi), 0);
        assert_int_equal(vc_parcel_unpack(pi.record, pi.record_len, "b1", &pb), 0);
        make_version(&pb, 1, NULL, vrec);
        VcCommit c = { .parcel = "b1", .record = vrec, .record_len = sizeof vrec, .need_data = tag, .n_data = 1 };
        assert_int_equal(vc_cat_commit(b2, &c), -EAGAIN);
        vc_errclear();
        /* with the oracle on, the same question tells (the other server
         * sees the chunk once it is flushed: a put alone is this server's) */
        assert_int_equal(vc_chunks_flush(a2), 0);
        assert_int_equal(vc_chunks_missing(bob, "b1", "all", tag, 1, miss), 0);
        assert_int_equal(miss[0], 0);
        /* once bob uploads it himself, he knows it (and it is stored once) */
        put_one(b2, "b1", "all", 500, tag);
        assert_int_equal(vc_chunks_missing(b2, "b1", "all", tag, 1, miss), 0);
        assert_int_equal(miss[0], 0);
        assert_int_equal(vc_cat_commit(b2, &c), 0);
        /* alice commits a version whose keyring names her chunk ... */
        VcEntry e = { 0 }, rootent;
        memcpy(e.tag, tag, 32);
        uint8_t secret[32] = { 1 };
        NodeCtx nc = { a2, pall.node_dom };
        assert_int_equal(vc_tree_build(secret, &e, 1, put_node, &nc, &rootent), 0);
        make_version(&pall, 1, rootent.tag, vrec);
        VcCommit ca = { .parcel = "a-all", .record = vrec, .record_len = sizeof vrec, .need_nodes = rootent.tag,
                        .n_nodes = 1, .need_data = tag, .n_data = 1 };
        assert_int_equal(vc_cat_commit(a2, &ca), 0);
        vc_backend_free(a2);
        vc_backend_free(b2);
        assert_int_equal(server_stop(&s2), 0);
        /* ... so a fresh server knows it from her history alone */
        server_start(&s2, store, "--no-existence-oracle");
        a2 = open_as(s2.url, tok_alice);
        assert_int_equal(vc_chunks_missing(a2, "a-all", "all", tag, 1, miss), 0);
        assert_int_equal(miss[0], 0);
        vc_backend_free(a2);
        assert_int_equal(server_stop(&s2), 0);
}

static void test_bundle(void **state)
{
        char k1[PATH_MAX + 8], k2[PATH_MAX + 8];
        snprintf(k1, sizeof k1, "%s/keys1", dir);
        snprintf(k2, sizeof k2, "%s/keys2", dir);
        setenv("VMCAS_KEYS", k1, 1);
        const uint8_t *uuid = vc_backend_uuid(alice);
        uint8_t key[32], key2[32];
        int created;
        assert_int_equal(vc_key_load_or_create(uuid, "parcel", "a1", key, &created), 0);
        assert_int_equal(vc_key_load_or_create(uuid, "group", "eng", key2, &created), 0);
        uint8_t *blob;
        size_t len;
        assert_int_equal(vc_bundle_get(alice, &blob, &len), -ENOENT);
        vc_errclear();
        setenv("VMCAS_PASSPHRASE", "correct horse", 1);
        assert_int_equal(vc_bundle_sync(alice, uuid), 0);
        assert_int_equal(vc_bundle_get(bob, &blob, &len), -ENOENT);   /* one bundle per user */
        vc_errclear();
        assert_int_equal(vc_bundle_get(alice, &blob, &len), 0);
        /* another host: the keys come back; a wrong passphrase gets nothing */
        setenv("VMCAS_KEYS", k2, 1);
        VcBundleStats st;
        assert_int_equal(vc_bundle_open(uuid, "wrong", blob, len, &st), -EKEYREJECTED);
        vc_errclear();
        assert_int_equal(vc_bundle_open(uuid, "correct horse", blob, len, &st), 0);
        assert_int_equal(st.keys, 2);
        assert_int_equal(st.imported, 2);
        uint8_t back[32];
        assert_int_equal(vc_key_load(uuid, "parcel", "a1", back), 0);
        assert_memory_equal(back, key, 32);
        assert_int_equal(vc_key_load(uuid, "group", "eng", back), 0);
        assert_memory_equal(back, key2, 32);
        assert_int_equal(vc_bundle_open(uuid, "correct horse", blob, len, &st), 0);
        assert_int_equal(st.present, 2);
        /* a bundle of another store is refused */
        uint8_t other[16] = { 9 };
        assert_int_equal(vc_bundle_open(other, "correct horse", blob, len, &st), -EINVAL);
        vc_errclear();
        /* a damaged bundle */
        blob[len - 3] ^= 1;
        assert_int_equal(vc_bundle_open(uuid, "correct horse", blob, len, &st), -EKEYREJECTED);
        vc_errclear();
        free(blob);
        unsetenv("VMCAS_PASSPHRASE");
}

/* Several threads on one back end at once, as the client's workers are. */
static void *worker(void *arg)
{
        uint64_t id = (uint64_t)(uintptr_t)arg;
        for (int round = 0; round < 5; round++) {
                enum { N = 16 };
                uint8_t tags[N * 32], miss[N], *data[N];
                VcPutItem items[N];
                for (int i = 0; i < N; i++) {
                        data[i] = make_chunk(1000 * id + 100 * (uint64_t)round + (uint64_t)i, 2000 + 10 * (size_t)i,
                                             tags + 32 * i);
                        items[i] = (VcPutItem){ .kind = VC_KIND_DATA, .len = 2000 + 10 * (uint32_t)i, .data = data[i] };
                        memcpy(items[i].tag, tags + 32 * i, 32);
                }
                int r;
                if ((r = vc_chunks_put(alice, "a1", pa.node_dom, items, N)) < 0 ||
                    (r = vc_chunks_missing(alice, "a1", pa.node_dom, tags, N, miss)) < 0) {
                        print_error("worker %" PRIu64 " round %d: put or missing: %s\n", id, round, vc_errmsg(r));
                        return (void *)1;
                }
                for (int i = 0; i < N; i++)
                        if (miss[i]) {
                                print_error("worker %" PRIu64 " round %d: chunk %d missing after its put\n", id,
                                            round, i);
                                return (void *)2;
                        }
                GotCtx g = { .data = data, .items = items, .n = N };
                if ((r = vc_chunks_get(alice, "a1", pa.node_dom, tags, N, got, &g)) < 0 || g.seen != N) {
                        print_error("worker %" PRIu64 " round %d: get: %s (%zu of %d)\n", id, round,
                                    r < 0 ? vc_errmsg(r) : "ok", (size_t)g.seen, N);
                        return (void *)3;
                }
                for (int i = 0; i < N; i++)
                        free(data[i]);
        }
        return NULL;
}

static void test_threads(void **state)
{
        pthread_t t[4];
        for (uintptr_t i = 0; i < 4; i++)
                assert_int_equal(pthread_create(&t[i], NULL, worker, (void *)(i + 1)), 0);
        for (int i = 0; i < 4; i++) {
                void *r;
                pthread_join(t[i], &r);
                assert_null(r);
        }
}

/* A server that restarts: the back end's kept connections are dead, the
 * next call reconnects; while it is down, calls fail clearly. */
static void test_reconnect(void **state)
{
        uint8_t tag[32], miss[1];
        free(make_chunk(4242, 100, tag));
        assert_int_equal(vc_chunks_missing(alice, "a1", pa.node_dom, tag, 1, miss), 0);
        unsigned port = srv.port;
        assert_int_equal(server_stop(&srv), 0);
        vc_errclear();
        int r = vc_chunks_missing(alice, "a1", pa.node_dom, tag, 1, miss);
        assert_true(r == -ECONNREFUSED || r == -EIO);
        assert_non_null(strstr(vc_errmsg(r), srv.url));
        vc_errclear();
        server_start_on(&srv, store, port, "--threads 2");
        assert_int_equal(vc_chunks_missing(alice, "a1", pa.node_dom, tag, 1, miss), 0);
        assert_int_equal(miss[0], 1);
        VcParcelInfo pi;
        assert_int_equal(vc_cat_parcel(alice, "a1", &pi), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_open),
                cmocka_unit_test(test_catalog),
                cmocka_unit_test(test_chunks),
                cmocka_unit_test(test_commit_and_leases),
                cmocka_unit_test(test_maintenance),
                cmocka_unit_test(test_no_oracle),
                cmocka_unit_test(test_bundle),
                cmocka_unit_test(test_threads),
                cmocka_unit_test(test_reconnect),
        };
        return cmocka_run_group_tests(tests, setup, teardown);
}
