/* The host cache (src/backend/vc_backend_cache.c) beyond the conformance
 * suite: what it saves, what it shares, its bound, and that it trusts no
 * upstream. Upstreams are local stores, some seen through a spy that
 * counts what is asked of it and can lie about bytes. */
#include "backend_test.h"

#include <inttypes.h>
#include <pthread.h>
#include <time.h>

#include "store/vc_store.h"

/* ---- a spy in front of a back end --------------------------------------- */

typedef struct Spy {
        VcBackend base;
        VcBackend *in;
        unsigned gets;           /* get calls */
        size_t asked;            /* tags asked by gets */
        int flip;                /* flip a byte of every flip-th chunk delivered (0: none) */
        size_t delivered;
} Spy;

static Spy *S(VcBackend *b) { return (Spy *)b; }

static void spy_free(VcBackend *b)
{
        vc_backend_free(S(b)->in);
        free(b);
}

typedef struct SpyGet { Spy *s; vc_got_fn fn; void *ctx; } SpyGet;

static int spy_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        SpyGet *g = ctx;
        size_t k = ++g->s->delivered;
        if (g->s->flip && k % (size_t)g->s->flip == 0) {
                uint8_t *x = malloc(len);
                memcpy(x, data, len);
                x[len / 2] ^= 0x20;
                int r = g->fn(idx, x, len, g->ctx);
                free(x);
                return r;
        }
        return g->fn(idx, data, len, g->ctx);
}

static int spy_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n, vc_got_fn fn,
                   void *ctx)
{
        Spy *s = S(b);
        s->gets++;
        s->asked += n;
        SpyGet g = { s, fn, ctx };
        int r = vc_chunks_get(s->in, parcel, domain, tags, n, spy_got, &g);
        vc_backend_traffic(s->in, &b->traffic);
        return r;
}

#define FWD(call)                                               \
        do {                                                    \
                int _r = (call);                                \
                vc_backend_traffic(S(b)->in, &b->traffic);      \
                return _r;                                      \
        } while (0)

static int spy_missing(VcBackend *b, const char *p, const char *d, const uint8_t *t, size_t n, uint8_t *m)
{ FWD(vc_chunks_missing(S(b)->in, p, d, t, n, m)); }
static int spy_put(VcBackend *b, const char *p, const char *d, const VcPutItem *it, size_t n)
{ FWD(vc_chunks_put(S(b)->in, p, d, it, n)); }
static int spy_flush(VcBackend *b) { FWD(vc_chunks_flush(S(b)->in)); }
static int spy_parcels(VcBackend *b, VcParcelInfo **r, size_t *n) { FWD(vc_cat_parcels(S(b)->in, r, n)); }
static int spy_parcel(VcBackend *b, const char *n, VcParcelInfo *r) { FWD(vc_cat_parcel(S(b)->in, n, r)); }
static int spy_versions(VcBackend *b, const char *n, VcVersionInfo **r, size_t *k)
{ FWD(vc_cat_versions(S(b)->in, n, r, k)); }
static int spy_version(VcBackend *b, const char *n, uint32_t v, VcVersionInfo *r)
{ FWD(vc_cat_version(S(b)->in, n, v, r)); }
static int spy_create(VcBackend *b, const char *n, const char *o, const uint8_t *rec, size_t l)
{ FWD(vc_cat_create(S(b)->in, n, o, rec, l)); }
static int spy_commit(VcBackend *b, const VcCommit *c) { FWD(vc_cat_commit(S(b)->in, c)); }
static int spy_prune(VcBackend *b, const char *n, uint32_t k) { FWD(vc_cat_prune(S(b)->in, n, k)); }
static int spy_acquire(VcBackend *b, const char *p, const char *h, VcLease *r) { FWD(vc_lease_acquire(S(b)->in, p, h, r)); }
static int spy_release(VcBackend *b, const char *p, const uint8_t *t) { FWD(vc_lease_release(S(b)->in, p, t)); }
static int spy_break(VcBackend *b, const char *p) { FWD(vc_lease_break(S(b)->in, p)); }
static int spy_lease_get(VcBackend *b, const char *p, VcLease *r) { FWD(vc_lease_get(S(b)->in, p, r)); }
static int spy_stat(VcBackend *b, VcStoreStat *st) { FWD(vc_backend_stat(S(b)->in, st)); }
static int spy_verify(VcBackend *b, bool f, void (*rep)(const char *, void *), void *c, VcVerifyStats *st)
{ FWD(vc_backend_verify(S(b)->in, f, rep, c, st)); }
static int spy_gc(VcBackend *b, int64_t g, bool q, VcGcStats *st) { FWD(vc_backend_gc(S(b)->in, g, q, st)); }
static int spy_bget(VcBackend *b, uint8_t **r, size_t *l) { FWD(vc_bundle_get(S(b)->in, r, l)); }
static int spy_bput(VcBackend *b, const uint8_t *x, size_t l) { FWD(vc_bundle_put(S(b)->in, x, l)); }

static const VcBackendOps spy_ops = {
        .kind = "spy", .free = spy_free, .missing = spy_missing, .put = spy_put, .get = spy_get,
        .flush = spy_flush, .parcels = spy_parcels, .parcel = spy_parcel, .versions = spy_versions,
        .version = spy_version, .create = spy_create, .commit = spy_commit, .prune = spy_prune,
        .lease_acquire = spy_acquire, .lease_release = spy_release, .lease_break = spy_break,
        .lease_get = spy_lease_get, .stat = spy_stat, .verify = spy_verify, .gc = spy_gc,
        .bundle_get = spy_bget, .bundle_put = spy_bput,
};

static Spy *spy_open(const char *store)
{
        Spy *s = calloc(1, sizeof *s);
        VcBackendOpts o = { .create = true };
        int r = vc_backend_local_open(store, &o, &s->in);
        if (r < 0)
                fail_msg("cannot open %s: %s", store, vc_errmsg(r));
        s->base.ops = &spy_ops;
        memcpy(s->base.uuid, s->in->uuid, 16);
        snprintf(s->base.where, sizeof s->base.where, "spy on %s", store);
        return s;
}

/* ---- the scene: an upstream store, a cache directory ----------------------- */

typedef struct Scene {
        char *root;
        char up[PATH_MAX], up2[PATH_MAX], cache[PATH_MAX];
        VcBackend *direct;      /* the upstream, not through any cache */
} Scene;

static int scene_setup(void **state)
{
        Scene *sc = calloc(1, sizeof *sc);
        sc->root = bt_tmpdir("cache");
        snprintf(sc->up, sizeof sc->up, "%s/up", sc->root);
        snprintf(sc->up2, sizeof sc->up2, "%s/up2", sc->root);
        snprintf(sc->cache, sizeof sc->cache, "%s/cache", sc->root);
        VcBackendOpts o = { .create = true };
        int r = vc_backend_local_open(sc->up, &o, &sc->direct);
        if (r < 0) {
                print_error("cannot create the upstream: %s\n", vc_errmsg(r));
                return -1;
        }
        *state = sc;
        return 0;
}

static int scene_teardown(void **state)
{
        Scene *sc = *state;
        vc_backend_free(sc->direct);
        bt_rm_rf(sc->root);
        free(sc->root);
        free(sc);
        return 0;
}

/* A cache on sc->cache in front of a spy on store. */
static VcBackend *cache_on(Scene *sc, const char *store, uint64_t bound, Spy **spy)
{
        Spy *s = spy_open(store);
        VcBackend *c;
        int r = vc_backend_cache_open(sc->cache, bound, &s->base, &c);
        if (r < 0)
                fail_msg("cannot open the cache: %s", vc_errmsg(r));
        assert_string_equal(vc_backend_kind(c), "cache");
        assert_memory_equal(vc_backend_uuid(c), vc_backend_uuid(&s->base), 16);
        if (spy)
                *spy = s;
        return c;
}

static void mkparcel(VcBackend *b, const char *name, VcPolicy pol, const char *group, VcParcel *p)
{
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t len;
        bt_parcel(p, name, pol, group, rec, &len);
        vc_errclear();
        assert_rc(vc_cat_create(b, name, NULL, rec, len), 0);
}

static uint64_t upstream_recv(VcBackend *b)
{
        VcTraffic t;
        vc_backend_traffic(b, &t);
        return t.recv_data + t.recv_meta;
}

static VcTraffic traffic(VcBackend *b)
{
        VcTraffic t;
        vc_backend_traffic(b, &t);
        return t;
}

static uint32_t len_16k(size_t i, uint64_t r) { return 16384 - (uint32_t)(r % 512); }

static uint64_t cache_disk(Scene *sc)
{
        VcStore *s;
        uint64_t packs, bytes;
        assert_rc(vc_store_open(sc->cache, &s), 0);
        assert_rc(vc_store_pack_bytes(s, &packs, &bytes), 0);
        vc_store_free(s);
        return bytes;
}

/* How many of c's chunks a get through b serves from the cache. */
static size_t hits_of(VcBackend *b, const char *parcel, const char *dom, const BtChunks *c)
{
        uint64_t before = traffic(b).cache_hits;
        assert_rc(bt_get_check(b, parcel, dom, c->tags, c->n, c), 0);
        return (size_t)(traffic(b).cache_hits - before);
}

/* A parcel made straight in the upstream store, and n chunks (bt_chunks
 * of seed and len_of) put into its domain dom (NULL: its data domain) and
 * flushed there, before any cache sees them. */
static void stored_upstream(Scene *sc, const char *name, VcPolicy pol, const char *dom, size_t n, uint64_t seed,
                            uint32_t (*len_of)(size_t i, uint64_t r), VcParcel *p, BtChunks *c)
{
        mkparcel(sc->direct, name, pol, NULL, p);
        bt_chunks(c, n, seed, len_of);
        assert_rc(vc_chunks_put(sc->direct, p->name, dom ? dom : p->data_dom, c->items, c->n), 0);
        assert_rc(vc_chunks_flush(sc->direct), 0);
}

/* ---- tests ------------------------------------------------------------------ */

/* A chunk fetched once is not fetched again, in this handle or the next. */
static void test_fetched_once(void **state)
{
        Scene *sc = *state;
        VcParcel p;
        BtChunks c;
        stored_upstream(sc, "once", VC_POLICY_IP, NULL, 40, 1, NULL, &p, &c);
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        uint64_t bytes = bt_chunks_bytes(&c);

        assert_rc(bt_get_check(b, p.name, p.data_dom, c.tags, c.n, &c), 0);
        VcTraffic t = traffic(b);
        assert_int_equal(t.recv_data + t.recv_meta, bytes);
        assert_int_equal(t.cache_hits, 0);
        assert_int_equal(spy->gets, 1);
        assert_int_equal(spy->asked, c.n);

        /* again: all from the cache, nothing upstream */
        assert_rc(bt_get_check(b, p.name, p.data_dom, c.tags, c.n, &c), 0);
        t = traffic(b);
        assert_int_equal(t.recv_data + t.recv_meta, bytes);
        assert_int_equal(t.cache_hits, c.n);
        assert_int_equal(t.cache_hit_bytes, bytes);
        assert_int_equal(spy->gets, 1);

        /* a batch of 10 cached and 5 new: one upstream call for the 5 */
        BtChunks d;
        bt_chunks(&d, 5, 2, NULL);
        assert_rc(vc_chunks_put(sc->direct, p.name, p.data_dom, d.items, d.n), 0);
        assert_rc(vc_chunks_flush(sc->direct), 0);
        BtChunks mix = { .n = 15 };
        mix.data = calloc(15, sizeof *mix.data);
        mix.len = calloc(15, sizeof *mix.len);
        mix.tags = calloc(15, 32);
        mix.items = calloc(15, sizeof *mix.items);
        for (size_t i = 0; i < 15; i++) {
                const BtChunks *src = i % 3 == 1 ? &d : &c;
                size_t k = i % 3 == 1 ? i / 3 : i;
                mix.len[i] = src->len[k];
                mix.data[i] = malloc(mix.len[i]);
                memcpy(mix.data[i], src->data[k], mix.len[i]);
                memcpy(mix.tags + 32 * i, src->tags + 32 * k, 32);
        }
        assert_rc(bt_get_check(b, p.name, p.data_dom, mix.tags, mix.n, &mix), 0);
        assert_int_equal(spy->gets, 2);
        assert_int_equal(spy->asked, c.n + d.n);
        assert_int_equal(upstream_recv(b), bytes + bt_chunks_bytes(&d));
        vc_backend_free(b);

        /* a new handle (another process) finds them too */
        b = cache_on(sc, sc->up, 0, &spy);
        assert_int_equal(hits_of(b, p.name, p.data_dom, &c), c.n);
        assert_int_equal(hits_of(b, p.name, p.data_dom, &d), d.n);
        assert_int_equal(spy->gets, 0);
        assert_int_equal(upstream_recv(b), 0);
        vc_backend_free(b);
        bt_chunks_free(&c);
        bt_chunks_free(&d);
        bt_chunks_free(&mix);
}

/* What a host checked in through the cache it does not fetch again. */
static void test_put_caches(void **state)
{
        Scene *sc = *state;
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        VcParcel p;
        mkparcel(b, "put", VC_POLICY_GROUP, "eng", &p);
        BtChunks c;
        bt_chunks(&c, 30, 3, NULL);
        assert_rc(vc_chunks_put(b, p.name, p.data_dom, c.items, c.n), 0);
        assert_rc(vc_chunks_flush(b), 0);
        /* upstream has them */
        uint8_t m[30];
        assert_rc(vc_chunks_missing(sc->direct, p.name, p.data_dom, c.tags, c.n, m), 0);
        for (size_t i = 0; i < c.n; i++)
                assert_int_equal(m[i], 0);
        VcTraffic t = traffic(b);
        assert_int_equal(t.sent_data + t.sent_meta, bt_chunks_bytes(&c));
        /* and the cache serves them */
        assert_int_equal(hits_of(b, p.name, p.data_dom, &c), c.n);
        assert_int_equal(spy->gets, 0);
        /* missing asks upstream, never the cache */
        BtChunks x;
        bt_chunks(&x, 3, 4, NULL);
        assert_rc(vc_chunks_missing(b, p.name, p.data_dom, x.tags, x.n, m), 0);
        for (size_t i = 0; i < x.n; i++)
                assert_int_equal(m[i], 1);
        vc_backend_free(b);
        bt_chunks_free(&c);
        bt_chunks_free(&x);
}

/* Parcels of policy all share the cached chunks of the pool; a parcel of
 * its own domain does not. */
static void test_all_shared(void **state)
{
        Scene *sc = *state;
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        VcParcel a, a2, own;
        mkparcel(b, "all-a", VC_POLICY_ALL, NULL, &a);
        mkparcel(b, "all-b", VC_POLICY_ALL, NULL, &a2);
        mkparcel(b, "own", VC_POLICY_IP, NULL, &own);
        BtChunks c;
        bt_chunks(&c, 25, 5, NULL);
        assert_rc(vc_chunks_put(sc->direct, a.name, "all", c.items, c.n), 0);
        assert_rc(vc_chunks_put(sc->direct, own.name, own.data_dom, c.items, c.n), 0);
        assert_rc(vc_chunks_flush(sc->direct), 0);
        assert_int_equal(hits_of(b, a.name, "all", &c), 0);
        assert_int_equal(spy->gets, 1);
        uint64_t recv = upstream_recv(b);
        assert_int_equal(hits_of(b, a2.name, "all", &c), c.n);
        assert_int_equal(spy->gets, 1);
        assert_int_equal(upstream_recv(b), recv);
        /* the same bytes in another domain are that domain's */
        assert_int_equal(hits_of(b, own.name, own.data_dom, &c), 0);
        assert_int_equal(spy->gets, 2);
        vc_backend_free(b);
        bt_chunks_free(&c);
}

/* Two servers (stores of other uuids) share the cache directory but not
 * each other's chunks. */
static void test_per_upstream(void **state)
{
        Scene *sc = *state;
        VcBackend *b1 = cache_on(sc, sc->up, 0, NULL);
        Spy *spy2;
        VcBackend *b2 = cache_on(sc, sc->up2, 0, &spy2);
        VcParcel p1, p2;
        mkparcel(b1, "srv1", VC_POLICY_ALL, NULL, &p1);
        mkparcel(b2, "srv2", VC_POLICY_ALL, NULL, &p2);
        BtChunks c;
        bt_chunks(&c, 10, 6, NULL);
        assert_rc(vc_chunks_put(b1, p1.name, "all", c.items, c.n), 0);
        assert_rc(vc_chunks_flush(b1), 0);
        assert_int_equal(hits_of(b1, p1.name, "all", &c), c.n);
        /* server 2 has none of them: the cache must not pretend it does */
        assert_rc(bt_get_check(b2, p2.name, "all", c.tags, c.n, &c), -ENOENT);
        assert_int_equal(traffic(b2).cache_hits, 0);
        /* once server 2 has them, they are fetched from it */
        VcBackend *d2;
        assert_rc(vc_backend_local_open(sc->up2, NULL, &d2), 0);
        assert_rc(vc_chunks_put(d2, p2.name, "all", c.items, c.n), 0);
        assert_rc(vc_chunks_flush(d2), 0);
        vc_backend_free(d2);
        assert_int_equal(hits_of(b2, p2.name, "all", &c), 0);
        assert_int_equal(upstream_recv(b2), bt_chunks_bytes(&c));
        assert_int_equal(hits_of(b2, p2.name, "all", &c), c.n);
        vc_backend_free(b1);
        vc_backend_free(b2);
        bt_chunks_free(&c);
}

/* What the client's open does with what a get delivers: the tag must be
 * the SHA-256 of the bytes. */
static int open_check(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        const uint8_t *tags = ctx;
        uint8_t h[32];
        vc_sha256(data, len, h);
        if (memcmp(h, tags + 32 * idx, 32) != 0) {
                char hex[65];
                vc_hex(tags + 32 * idx, 32, hex);
                return vc_errf(-EBADMSG, "chunk %s: its bytes do not match its tag", hex);
        }
        return 0;
}

/* An upstream that sends wrong bytes: the caller's open refuses them,
 * naming the chunk (the cache does not hash what it fetches: every caller
 * opens what it gets, and one hash pass is enough), and the cache does not
 * keep them for good: its hits are hashed, a damaged one is dropped and
 * fetched again, right once the upstream behaves. */
static void test_poisoned(void **state)
{
        Scene *sc = *state;
        VcParcel p;
        BtChunks c;
        stored_upstream(sc, "poison", VC_POLICY_ALL, "all", 12, 7, NULL, &p, &c);
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        /* every chunk flipped */
        spy->flip = 1;
        BtChunks one = c;
        one.n = 1;
        char hex[65];
        bt_hex(c.tags, hex);
        (void)one;
        vc_errclear();
        int r = vc_chunks_get(b, p.name, "all", c.tags, 1, open_check, c.tags);
        assert_rc(r, -EBADMSG);
        assert_msg_has(r, hex);
        /* every 4th of a batch: the batch fails on the first bad one */
        spy->flip = 4;
        spy->delivered = 0;
        vc_errclear();
        r = vc_chunks_get(b, p.name, "all", c.tags, c.n, open_check, c.tags);
        assert_rc(r, -EBADMSG);
        /* an honest upstream again: the flipped chunks the cache kept are
         * found damaged on the hit path and fetched again */
        spy->flip = 0;
        unsigned gets = spy->gets;
        assert_rc(bt_get_check(b, p.name, "all", c.tags, c.n, &c), 0);
        assert_true(spy->gets > gets);
        /* now all cached, and right */
        assert_int_equal(hits_of(b, p.name, "all", &c), c.n);
        vc_backend_free(b);
        bt_chunks_free(&c);
}

/* A chunk damaged in the cache's packs is fetched again, not served. */
static void test_damaged_cache(void **state)
{
        Scene *sc = *state;
        VcParcel p;
        BtChunks c;
        stored_upstream(sc, "rot", VC_POLICY_ALL, "all", 1, 8, len_16k, &p, &c);
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        assert_int_equal(hits_of(b, p.name, "all", &c), 0);
        vc_backend_free(b);
        /* flip a byte of the chunk in the cache's pack, wherever it is */
        char cmd[PATH_MAX + 128];
        snprintf(cmd, sizeof cmd, "find %s/packs -name '*.pack' -size +8k", sc->cache);
        FILE *fp = popen(cmd, "r");
        char path[PATH_MAX];
        assert_non_null(fgets(path, sizeof path, fp));
        pclose(fp);
        path[strcspn(path, "\n")] = 0;
        FILE *pk = fopen(path, "r+b");
        assert_non_null(pk);
        uint8_t *buf = malloc(1 << 20);
        size_t n = fread(buf, 1, 1 << 20, pk);
        uint8_t *at = memmem(buf, n, c.data[0] + 100, 64);
        assert_non_null(at);
        fseek(pk, (long)(at - buf), SEEK_SET);
        fputc(*at ^ 1, pk);
        fclose(pk);
        free(buf);
        b = cache_on(sc, sc->up, 0, &spy);
        assert_int_equal(hits_of(b, p.name, "all", &c), 0);
        assert_int_equal(spy->gets, 1);
        /* and cached again, right this time */
        assert_int_equal(hits_of(b, p.name, "all", &c), 1);
        vc_backend_free(b);
        bt_chunks_free(&c);
}

static void nap(double s)
{
        struct timespec ts = { (time_t)s, (long)((s - (double)(time_t)s) * 1e9) };
        nanosleep(&ts, NULL);
}

/* How many of c another handle finds indexed in the cache, polled up to
 * rounds times, pause seconds apart, until all are. */
static size_t indexed_within(Scene *sc, const char *domain, const BtChunks *c, int rounds, double pause)
{
        uint8_t *has = malloc(c->n + 1);
        assert_non_null(has);
        char dom[VC_DOMAIN_MAX];
        snprintf(dom, sizeof dom, "%s", domain);
        size_t seen = 0;
        for (int k = 0; k < rounds && seen < c->n; k++) {
                nap(pause);
                VcBackend *b = cache_on(sc, sc->up, 0, NULL);
                assert_rc(vc_backend_cache_has(b, dom, c->tags, c->n, has), 0);
                seen = 0;
                for (size_t i = 0; i < c->n; i++)
                        seen += has[i];
                vc_backend_free(b);
        }
        free(has);
        return seen;
}

/* The bound holds, and the least recently used go first. */
static void test_eviction_lru(void **state)
{
        Scene *sc = *state;
        const uint64_t bound = 4ull << 20;
        VcBackend *b = cache_on(sc, sc->up, bound, NULL);
        VcParcel p;
        mkparcel(b, "lru", VC_POLICY_ALL, NULL, &p);
        BtChunks a, bb, cc;
        bt_chunks(&a, 64, 9, len_16k);          /* 1 MiB */
        bt_chunks(&bb, 128, 10, len_16k);       /* 2 MiB */
        bt_chunks(&cc, 80, 11, len_16k);        /* 1.25 MiB */
        assert_rc(vc_chunks_put(b, p.name, "all", a.items, a.n), 0);
        assert_rc(vc_chunks_put(b, p.name, "all", bb.items, bb.n), 0);
        assert_true(cache_disk(sc) <= bound);
        /* a is read again after b was stored, c stored after that */
        nap(0.05);
        assert_int_equal(hits_of(b, p.name, "all", &a), a.n);
        nap(0.05);
        assert_rc(vc_chunks_put(b, p.name, "all", cc.items, cc.n), 0);
        assert_rc(vc_chunks_flush(b), 0);
        uint64_t disk = cache_disk(sc);
        print_message("# cache packs after eviction: %" PRIu64 " bytes (bound %" PRIu64 ")\n", disk, bound);
        assert_true(disk <= bound);
        /* the last used are there, b went (most of it: 1.4 MiB had to go) */
        assert_int_equal(hits_of(b, p.name, "all", &a), a.n);
        assert_int_equal(hits_of(b, p.name, "all", &cc), cc.n);
        vc_backend_free(b);
        b = cache_on(sc, sc->up, bound, NULL);
        size_t hb = hits_of(b, p.name, "all", &bb);
        print_message("# %zu of %zu least recently used chunks left\n", hb, bb.n);
        assert_true(hb <= bb.n - 80);
        assert_true(cache_disk(sc) <= bound);

        /* much more than the bound, in many batches: it holds throughout */
        BtChunks big;
        bt_chunks(&big, 800, 12, len_16k);      /* 12.5 MiB */
        for (size_t i = 0; i < big.n; i += 50) {
                assert_rc(vc_chunks_put(b, p.name, "all", big.items + i, 50), 0);
                disk = cache_disk(sc);
                if (disk > bound)
                        fail_msg("after batch %zu: %" PRIu64 " bytes of packs, bound %" PRIu64, i / 50, disk, bound);
        }
        /* the newest are cached */
        BtChunks last = big;
        last.n = 50;
        last.data += 750; last.len += 750; last.tags += 32 * 750; last.items += 750;
        assert_int_equal(hits_of(b, p.name, "all", &last), 50);
        vc_backend_free(b);
        bt_chunks_free(&a);
        bt_chunks_free(&bb);
        bt_chunks_free(&cc);
        bt_chunks_free(&big);
}

/* Bulk fetches (a checkout's runs) from several threads at once go to the
 * cache's lanes: each chunk is fetched once, a get of this handle finds
 * them at once (read your writes), and another handle finds them once
 * they are indexed: after a settle, or by the settler a few seconds on. */
typedef struct BulkGet { VcBackend *b; const VcParcel *p; BtChunks *c; int r; } BulkGet;

static void *bulk_get(void *arg)
{
        BulkGet *g = arg;
        g->r = bt_get_check(g->b, g->p->name, g->p->data_dom, g->c->tags, g->c->n, g->c);
        return NULL;
}

static void test_bulk_lanes(void **state)
{
        Scene *sc = *state;
        VcParcel p;
        mkparcel(sc->direct, "bulk", VC_POLICY_IP, NULL, &p);
        enum { SETS = 4 };
        BtChunks c[SETS + 1];
        uint64_t bytes = 0;
        for (int i = 0; i <= SETS; i++) {
                bt_chunks(&c[i], 300, 40 + i, len_16k);
                assert_rc(vc_chunks_put(sc->direct, p.name, p.data_dom, c[i].items, c[i].n), 0);
                if (i < SETS)
                        bytes += bt_chunks_bytes(&c[i]);
        }
        assert_rc(vc_chunks_flush(sc->direct), 0);
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        pthread_t th[SETS];
        BulkGet g[SETS];
        for (int i = 0; i < SETS; i++) {
                g[i] = (BulkGet){ b, &p, &c[i], 0 };
                assert_int_equal(pthread_create(&th[i], NULL, bulk_get, &g[i]), 0);
        }
        for (int i = 0; i < SETS; i++) {
                pthread_join(th[i], NULL);
                assert_rc(g[i].r, 0);
        }
        assert_int_equal(upstream_recv(b), bytes);
        /* this handle: all hits, nothing more upstream */
        for (int i = 0; i < SETS; i++)
                assert_int_equal(hits_of(b, p.name, p.data_dom, &c[i]), c[i].n);
        assert_int_equal(upstream_recv(b), bytes);
        /* another handle, once settled */
        vc_backend_cache_settle(b);
        Spy *spy2;
        VcBackend *b2 = cache_on(sc, sc->up, 0, &spy2);
        for (int i = 0; i < SETS; i++)
                assert_int_equal(hits_of(b2, p.name, p.data_dom, &c[i]), c[i].n);
        assert_int_equal(upstream_recv(b2), 0);
        /* a bulk fetch no call settles is indexed by the settler in time */
        assert_rc(bt_get_check(b, p.name, p.data_dom, c[SETS].tags, c[SETS].n, &c[SETS]), 0);
        size_t seen = indexed_within(sc, p.data_dom, &c[SETS], 100, 0.1);
        print_message("# a bulk fetch left to the settler: %zu of %zu chunks indexed\n", seen, c[SETS].n);
        assert_int_equal(seen, c[SETS].n);
        vc_backend_free(b2);
        vc_backend_free(b);
        for (int i = 0; i <= SETS; i++)
                bt_chunks_free(&c[i]);
}

/* A disk server's misses: one chunk per get, each handed to the settler,
 * which is woken for the first of a burst only and takes the rest when its
 * wait ends. A get of a chunk still queued hurries it: a hit, nothing
 * fetched again; and every chunk of the burst is indexed for another
 * handle without a settle. */
static void test_small_misses(void **state)
{
        Scene *sc = *state;
        VcParcel p;
        BtChunks c;
        stored_upstream(sc, "small", VC_POLICY_IP, NULL, 60, 7, NULL, &p, &c);
        Spy *spy;
        VcBackend *b = cache_on(sc, sc->up, 0, &spy);
        BtChunks one = { .n = 1 };
        for (size_t i = 0; i < c.n; i++) {
                one.tags = c.tags + 32 * i;
                one.data = &c.data[i];
                one.len = &c.len[i];
                one.items = &c.items[i];
                assert_rc(bt_get_check(b, p.name, p.data_dom, one.tags, 1, &one), 0);
                assert_int_equal(spy->gets, i + 1);
                /* again at once, and the one before: both hits */
                assert_int_equal(hits_of(b, p.name, p.data_dom, &one), 1);
                if (i) {
                        one.tags -= 32;
                        one.data--;
                        one.len--;
                        one.items--;
                        assert_int_equal(hits_of(b, p.name, p.data_dom, &one), 1);
                }
                assert_int_equal(spy->gets, i + 1);
        }
        assert_int_equal(upstream_recv(b), bt_chunks_bytes(&c));
        /* a burst no call settles: the settler indexes all of it */
        assert_int_equal(indexed_within(sc, p.data_dom, &c, 100, 0.05), c.n);
        vc_backend_free(b);
        bt_chunks_free(&c);
}

/* While another user of the cache has an operation in flight (holds the
 * shared lock), nothing is evicted; after, the bound is restored. */
typedef struct Nested {
        Scene *sc;
        VcBackend *small;       /* a second user with a small bound */
        const VcParcel *p;
        BtChunks *mine, *flood;
        uint64_t bound;
        int done;
} Nested;

static int nested_cb(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        Nested *x = ctx;
        if (x->done++)
                return 0;
        /* we are inside a get of the big user: flood through the small one */
        for (size_t i = 0; i < x->flood->n; i += 40)
                assert_rc(vc_chunks_put(x->small, x->p->name, "all", x->flood->items + i,
                                        VC_MIN(40, x->flood->n - i)), 0);
        uint64_t disk = cache_disk(x->sc);
        print_message("# with a get in flight elsewhere: %" PRIu64 " bytes of packs (bound %" PRIu64 ")\n", disk,
                      x->bound);
        assert_true(disk > x->bound);
        /* nothing went: all of both sets are still served by the cache */
        assert_int_equal(hits_of(x->small, x->p->name, "all", x->mine), x->mine->n);
        assert_int_equal(hits_of(x->small, x->p->name, "all", x->flood), x->flood->n);
        return 0;
}

static void test_eviction_waits_for_users(void **state)
{
        Scene *sc = *state;
        const uint64_t bound = 4ull << 20;
        VcBackend *big = cache_on(sc, sc->up, 1ull << 30, NULL);
        VcBackend *small = cache_on(sc, sc->up, bound, NULL);
        VcParcel p;
        mkparcel(big, "users", VC_POLICY_ALL, NULL, &p);
        BtChunks mine, flood;
        bt_chunks(&mine, 32, 13, len_16k);
        bt_chunks(&flood, 400, 14, len_16k);    /* 6 MiB */
        assert_rc(vc_chunks_put(big, p.name, "all", mine.items, mine.n), 0);
        Nested x = { sc, small, &p, &mine, &flood, bound, 0 };
        assert_rc(vc_chunks_get(big, p.name, "all", mine.tags, 1, nested_cb, &x), 0);
        assert_int_equal(x.done, 1);
        /* the get is over: the small user's next operation evicts */
        assert_true(cache_disk(sc) > bound);
        assert_int_equal(hits_of(small, p.name, "all", &mine), mine.n);
        uint64_t disk = cache_disk(sc);
        print_message("# after: %" PRIu64 " bytes of packs\n", disk);
        assert_true(disk <= bound);
        vc_backend_free(big);
        vc_backend_free(small);
        bt_chunks_free(&mine);
        bt_chunks_free(&flood);
}

/* Several users, several threads each, a working set larger than the
 * bound: evictions and compactions run beside gets, and every get still
 * delivers every chunk, right. */
typedef struct Churn {
        VcBackend *b;
        const VcParcel *p;
        const BtChunks *set;
        uint64_t seed;
        int rounds, r;
        int *running;
} Churn;

static void *churn(void *arg)
{
        Churn *x = arg;
        uint8_t tags[32 * 24];
        for (int k = 0; k < x->rounds && x->r == 0; k++) {
                for (size_t i = 0; i < 24; i++)
                        memcpy(tags + 32 * i, x->set->tags + 32 * (bt_mix(&x->seed) % x->set->n), 32);
                x->r = bt_get_check(x->b, x->p->name, "all", tags, 24, x->set);
        }
        __atomic_fetch_sub(x->running, 1, __ATOMIC_RELAXED);
        return NULL;
}

static void test_churn(void **state)
{
        Scene *sc = *state;
        const uint64_t bound = 2ull << 20;
        VcParcel p;
        BtChunks set;
        stored_upstream(sc, "churn", VC_POLICY_ALL, "all", 400, 17, len_16k, &p, &set);   /* 6 MiB */
        enum { USERS = 2, THREADS = 2 };
        VcBackend *b[USERS];
        Churn x[USERS * THREADS];
        pthread_t th[USERS * THREADS];
        for (int u = 0; u < USERS; u++)
                b[u] = cache_on(sc, sc->up, bound, NULL);
        int running = USERS * THREADS;
        for (int i = 0; i < USERS * THREADS; i++) {
                x[i] = (Churn){ .b = b[i % USERS], .p = &p, .set = &set, .seed = (uint64_t)i * 7919, .rounds = 40,
                                .running = &running };
                assert_int_equal(pthread_create(&th[i], NULL, churn, &x[i]), 0);
        }
        /* how far past the bound the packs go meanwhile */
        uint64_t peak = 0;
        while (__atomic_load_n(&running, __ATOMIC_RELAXED) > 0) {
                peak = VC_MAX(peak, cache_disk(sc));
                nap(0.01);
        }
        for (int i = 0; i < USERS * THREADS; i++)
                pthread_join(th[i], NULL);
        uint64_t hits = 0;
        for (int i = 0; i < USERS * THREADS; i++)
                assert_rc(x[i].r, 0);
        for (int u = 0; u < USERS; u++) {
                hits += traffic(b[u]).cache_hits;
                vc_backend_free(b[u]);
        }
        uint64_t left = cache_disk(sc);
        /* the bound is kept between operations by whichever user gets the
         * cache's lock: one that found it taken leaves the eviction to a
         * later operation. One more (a get of the whole set, more than the
         * bound) is that later one */
        VcBackend *last = cache_on(sc, sc->up, bound, NULL);
        assert_rc(bt_get_check(last, p.name, "all", set.tags, set.n, &set), 0);
        vc_backend_free(last);
        uint64_t disk = cache_disk(sc);
        print_message("# churn: %" PRIu64 " of %d chunks from the cache; packs at most %" PRIu64 " bytes, %" PRIu64
                      " when the churn ended, %" PRIu64 " after one more operation (bound %" PRIu64 ")\n", hits,
                      USERS * THREADS * 40 * 24, peak, left, disk, bound);
        assert_true(disk <= bound);
        /* the bound is kept between operations, not within them: each
         * thread may add a batch (384 KiB here) before an eviction gets the
         * lock, dead records wait for compaction, and compaction writes its
         * copies before it deletes a pack. With a bound this small against
         * batches that large, that is up to about 2.5 bounds. */
        assert_true(peak <= 4 * bound);
        bt_chunks_free(&set);
}

/* Domain names too long for the cache's "<uuid>:" prefix are hashed: the
 * longest group name works, and two long names do not meet. */
static void test_long_domains(void **state)
{
        Scene *sc = *state;
        VcBackend *b = cache_on(sc, sc->up, 0, NULL);
        char g1[VC_NAME_MAX + 1], g2[VC_NAME_MAX + 1];
        memset(g1, 'x', VC_NAME_MAX);
        g1[VC_NAME_MAX] = 0;
        memcpy(g2, g1, sizeof g2);
        g2[VC_NAME_MAX - 1] = 'y';
        VcParcel p1, p2;
        mkparcel(b, "long1", VC_POLICY_GROUP, g1, &p1);
        mkparcel(b, "long2", VC_POLICY_GROUP, g2, &p2);
        BtChunks c;
        bt_chunks(&c, 5, 15, NULL);
        assert_rc(vc_chunks_put(b, p1.name, p1.data_dom, c.items, c.n), 0);
        assert_rc(vc_chunks_flush(b), 0);
        assert_int_equal(hits_of(b, p1.name, p1.data_dom, &c), c.n);
        assert_rc(bt_get_check(b, p2.name, p2.data_dom, c.tags, c.n, &c), -ENOENT);
        vc_backend_free(b);
        bt_chunks_free(&c);
}

/* What tracking access costs a get of hits: a cache get against a get
 * of the same chunks from a local store (printed, not judged: sanitizers
 * and a shared machine make times noisy). */
static void test_hit_cost(void **state)
{
        Scene *sc = *state;
        VcBackend *b = cache_on(sc, sc->up, 0, NULL);
        VcParcel p;
        mkparcel(b, "cost", VC_POLICY_ALL, NULL, &p);
        BtChunks c;
        bt_chunks(&c, 256, 16, len_16k);
        assert_rc(vc_chunks_put(b, p.name, "all", c.items, c.n), 0);
        assert_rc(vc_chunks_flush(b), 0);
        enum { ROUNDS = 20 };
        double t0 = vc_mono();
        for (int i = 0; i < ROUNDS; i++)
                assert_rc(bt_get_check(sc->direct, p.name, "all", c.tags, c.n, &c), 0);
        double t1 = vc_mono();
        for (int i = 0; i < ROUNDS; i++)
                assert_rc(bt_get_check(b, p.name, "all", c.tags, c.n, &c), 0);
        double t2 = vc_mono();
        assert_int_equal(traffic(b).cache_hits, ROUNDS * c.n);
        print_message("# get of 256 x 16 KiB: local %.2f ms, cache hits %.2f ms\n", (t1 - t0) * 1e3 / ROUNDS,
                      (t2 - t1) * 1e3 / ROUNDS);
        vc_backend_free(b);
        bt_chunks_free(&c);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_fetched_once, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_put_caches, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_all_shared, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_per_upstream, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_poisoned, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_damaged_cache, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_eviction_lru, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_bulk_lanes, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_small_misses, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_eviction_waits_for_users, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_churn, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_long_domains, scene_setup, scene_teardown),
                cmocka_unit_test_setup_teardown(test_hit_cost, scene_setup, scene_teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
