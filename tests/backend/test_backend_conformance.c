/* The conformance suite of the store interface (src/backend/vc_backend.h):
 * one set of tests of its contract, run on every back end.
 *
 * Which back ends: by default a fresh local store in $TMPDIR, run as
 *   local   the local back end
 *   cache   a host cache (vc_backend_cache_open) in front of a local one
 * With $VMCAS_CONFORMANCE_URL set (a `vmcas serve` started by the caller;
 * $VMCAS_TOKEN its token), instead
 *   remote        the remote back end, no cache
 *   cache+remote  the host cache in front of it
 * With $VMCAS_CONFORMANCE_RADOS set (rados://POOL/PREFIX?conf=..., a
 * cluster started by the caller: tests/rados/ceph_lib.sh), instead
 *   rados         the RADOS back end
 * $VMCAS_CONFORMANCE_BACKENDS=local,cache,... picks some of the five.
 *
 * Every test makes its own parcels (names start with a random prefix, so a
 * server that outlives the run never sees a name twice) and its own
 * domains, so tests do not depend on each other or on order.
 *
 * What the contract leaves open is not tested: whether a chunk is visible
 * to missing/get before vc_chunks_flush (local: no; remote: yes), and the
 * wording of messages beyond naming the chunk, parcel or host. */
#include "backend_test.h"
#include "core/vc_keyring.h"

#include <pthread.h>

typedef enum { T_LOCAL, T_CACHE, T_REMOTE, T_CACHE_REMOTE, T_RADOS } TargetKind;
static const char *const kind_names[] = { "local", "cache", "remote", "cache+remote", "rados" };

typedef struct Target {
        TargetKind kind;
        char *root;              /* scratch directory */
        char store[PATH_MAX];    /* local store (local, cache) */
        char cache[PATH_MAX];    /* cache directory (cache, cache+remote) */
        const char *url;
} Target;

/* The state of one test. */
typedef struct Fx {
        Target *t;
        VcBackend *b;
} Fx;

static char g_prefix[16];       /* random per run: parcel names never repeat on a server */
static unsigned g_seq;

/* A parcel name unique in this run: <prefix>-<what>-<n>. */
static void pname(char *buf, size_t len, const char *what)
{
        snprintf(buf, len, "%s-%s-%u", g_prefix, what, ++g_seq);
}

static int target_open(Target *t, VcBackend **ret)
{
        VcBackendOpts o = { .create = true, .token = getenv("VMCAS_TOKEN") };
        VcBackend *up;
        int r;
        switch (t->kind) {
        case T_LOCAL:
                return vc_backend_local_open(t->store, &o, ret);
        case T_CACHE:
                if ((r = vc_backend_local_open(t->store, &o, &up)) < 0)
                        return r;
                return vc_backend_cache_open(t->cache, 64ull << 20, up, ret);
        case T_REMOTE:
                o.no_cache = true;
                return vc_backend_open(t->url, &o, ret);
        case T_CACHE_REMOTE:
                o.cache_dir = t->cache;
                o.cache_size = 64ull << 20;
                return vc_backend_open(t->url, &o, ret);
        case T_RADOS:
                return vc_backend_open(t->url, &o, ret);
        }
        return -EINVAL;
}

static int fx_setup(void **state)
{
        Fx *f = calloc(1, sizeof *f);
        f->t = *state;
        int r = target_open(f->t, &f->b);
        if (r < 0) {
                print_error("cannot open the %s back end: %s\n", kind_names[f->t->kind], vc_errmsg(r));
                free(f);
                return -1;
        }
        *state = f;
        return 0;
}

static int fx_teardown(void **state)
{
        Fx *f = *state;
        vc_backend_free(f->b);
        *state = f->t;
        free(f);
        return 0;
}

/* Reopens the back end (a new process would see what this one sees). */
static void fx_reopen(Fx *f)
{
        vc_backend_free(f->b);
        f->b = NULL;
        int r = target_open(f->t, &f->b);
        if (r < 0)
                fail_msg("cannot reopen: %s", vc_errmsg(r));
}

/* Creates a parcel of policy pol on the back end. */
static void mkparcel(Fx *f, const char *what, VcPolicy pol, const char *group, VcParcel *p)
{
        char name[VC_NAME_MAX + 1];
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t len;
        pname(name, sizeof name, what);
        bt_parcel(p, name, pol, group, rec, &len);
        vc_errclear();
        assert_rc(vc_cat_create(f->b, name, NULL, rec, len), 0);
}

static int put_flush(Fx *f, const VcParcel *p, const char *dom, const BtChunks *c)
{
        vc_errclear();
        int r = vc_chunks_put(f->b, p->name, dom, c->items, c->n);
        return r < 0 ? r : vc_chunks_flush(f->b);
}

static void assert_missing(Fx *f, const VcParcel *p, const char *dom, const uint8_t *tags, size_t n, int want)
{
        uint8_t *m = malloc(n);
        memset(m, 7, n);
        vc_errclear();
        assert_rc(vc_chunks_missing(f->b, p->name, dom, tags, n, m), 0);
        for (size_t i = 0; i < n; i++)
                if (m[i] != want)
                        fail_msg("missing[%zu] = %u in %s, expected %d", i, m[i], dom, want);
        free(m);
}

/* ---- chunks --------------------------------------------------------------- */

static uint32_t len_small(size_t i, uint64_t r) { return 1 + (uint32_t)(r % 64); }
static uint32_t len_mixed(size_t i, uint64_t r) { return 1 + (uint32_t)(r % 40000); }
static uint32_t len_big(size_t i, uint64_t r)
{
        /* around the largest chunk there is, and the largest allowed */
        static const uint32_t l[] = { VC_CHUNK_MAX, VC_SEALED_MAX, VC_CHUNK_MAX / 2 + 1, 4096, 1 };
        return l[i % 5];
}

/* Batches of many sizes and kinds; get in another order, with repeats;
 * every idx is delivered exactly once with the right bytes. */
static void test_chunk_roundtrip(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "rt", VC_POLICY_ALL, NULL, &p);
        static const struct { size_t n; uint32_t (*len)(size_t, uint64_t); } batches[] = {
                { 1, len_small }, { 2, NULL }, { 7, len_mixed }, { 64, len_small }, { 300, NULL },
                { 5, len_big }, { 1000, len_small },
        };
        /* the tags put so far, per domain: chunks of a byte or two are
         * random, and may equal one of an earlier batch (then present) */
        uint8_t *put_tags[2] = { NULL, NULL };
        size_t nput[2] = { 0, 0 };
        for (size_t bi = 0; bi < VC_ARRAY_SIZE(batches); bi++) {
                BtChunks c;
                bt_chunks(&c, batches[bi].n, bi, batches[bi].len);
                const char *dom = bi % 2 ? p.data_dom : p.node_dom;
                uint8_t *miss = malloc(c.n);
                memset(miss, 7, c.n);
                vc_errclear();
                assert_rc(vc_chunks_missing(f->b, p.name, dom, c.tags, c.n, miss), 0);
                for (size_t i = 0; i < c.n; i++) {
                        int want = 1;
                        for (size_t k = 0; k < nput[bi % 2]; k++)
                                if (memcmp(put_tags[bi % 2] + 32 * k, c.tags + 32 * i, 32) == 0)
                                        want = 0;
                        /* policy all shares its data domain among
                         * parcels (and among the runs on one server): a
                         * chunk of a byte or two may be there already */
                        if (miss[i] == 0 && want == 1 && dom == p.data_dom && c.len[i] <= 2)
                                want = 0;
                        if (miss[i] != want)
                                fail_msg("batch %zu: missing[%zu] = %u, expected %d (%u bytes)", bi, i, miss[i],
                                         want, c.len[i]);
                }
                free(miss);
                put_tags[bi % 2] = realloc(put_tags[bi % 2], 32 * (nput[bi % 2] + c.n));
                memcpy(put_tags[bi % 2] + 32 * nput[bi % 2], c.tags, 32 * c.n);
                nput[bi % 2] += c.n;
                assert_rc(put_flush(f, &p, dom, &c), 0);
                assert_missing(f, &p, dom, c.tags, c.n, 0);
                /* in order */
                assert_rc(bt_get_check(f->b, p.name, dom, c.tags, c.n, &c), 0);
                /* reversed, then shuffled with repeats */
                size_t m = c.n + c.n / 3 + 1;
                uint8_t *t = malloc(32 * m);
                for (size_t i = 0; i < c.n; i++)
                        memcpy(t + 32 * i, c.tags + 32 * (c.n - 1 - i), 32);
                assert_rc(bt_get_check(f->b, p.name, dom, t, c.n, &c), 0);
                uint64_t x = bi;
                for (size_t i = 0; i < m; i++)
                        memcpy(t + 32 * i, c.tags + 32 * (bt_mix(&x) % c.n), 32);
                assert_rc(bt_get_check(f->b, p.name, dom, t, m, &c), 0);
                free(t);
                /* a second put of the same batch changes nothing */
                assert_rc(put_flush(f, &p, dom, &c), 0);
                assert_rc(bt_get_check(f->b, p.name, dom, c.tags, c.n, &c), 0);
                bt_chunks_free(&c);
        }
        free(put_tags[0]);
        free(put_tags[1]);
}

/* Told missing, then stored by another client before this one sends: the
 * put still succeeds, and every read returns the right bytes (a back end
 * may skip its own look-up of what it just answered absent). */
static void test_missing_then_stored(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "race", VC_POLICY_ALL, NULL, &p);
        BtChunks c;
        bt_chunks(&c, 200, 77, len_mixed);
        assert_missing(f, &p, p.data_dom, c.tags, c.n, 1);
        VcBackend *other;
        assert_rc(target_open(f->t, &other), 0);
        vc_errclear();
        assert_rc(vc_chunks_put(other, p.name, p.data_dom, c.items, c.n), 0);
        assert_rc(vc_chunks_flush(other), 0);
        vc_backend_free(other);
        assert_rc(put_flush(f, &p, p.data_dom, &c), 0);
        assert_missing(f, &p, p.data_dom, c.tags, c.n, 0);
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, c.tags, c.n, &c), 0);
        fx_reopen(f);
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, c.tags, c.n, &c), 0);
        bt_chunks_free(&c);
}

/* A chunk of a batch is delivered only by the domain it was put in. */
static void test_missing_per_domain(void **state)
{
        Fx *f = *state;
        VcParcel a, g, d;
        /* ip: data in its own domain; group with the longest group name
         * there is (a cache must fit its domain name); delta */
        char longg[VC_NAME_MAX + 1];
        memset(longg, 'g', VC_NAME_MAX);
        longg[VC_NAME_MAX] = 0;
        memcpy(longg, g_prefix, strlen(g_prefix));
        mkparcel(f, "dom-ip", VC_POLICY_IP, NULL, &a);
        mkparcel(f, "dom-grp", VC_POLICY_GROUP, longg, &g);
        mkparcel(f, "dom-delta", VC_POLICY_DELTA, NULL, &d);
        BtChunks c;
        bt_chunks(&c, 20, 1, NULL);
        assert_missing(f, &a, a.data_dom, c.tags, c.n, 1);
        assert_rc(put_flush(f, &a, a.data_dom, &c), 0);
        assert_missing(f, &a, a.data_dom, c.tags, c.n, 0);
        /* not in another parcel's domain, nor the group's, nor g's nodes */
        assert_missing(f, &d, d.data_dom, c.tags, c.n, 1);
        assert_missing(f, &g, g.data_dom, c.tags, c.n, 1);
        assert_missing(f, &g, g.node_dom, c.tags, c.n, 1);
        int r = bt_get_check(f->b, d.name, d.data_dom, c.tags, c.n, &c);
        assert_rc(r, -ENOENT);
        r = bt_get_check(f->b, g.name, g.data_dom, c.tags, 1, &c);
        assert_rc(r, -ENOENT);

        /* the group's data domain, then its node domain, separately */
        BtChunks c2;
        bt_chunks(&c2, 10, 2, NULL);
        assert_rc(put_flush(f, &g, g.data_dom, &c2), 0);
        assert_missing(f, &g, g.data_dom, c2.tags, c2.n, 0);
        assert_missing(f, &g, g.node_dom, c2.tags, c2.n, 1);
        assert_rc(bt_get_check(f->b, g.name, g.data_dom, c2.tags, c2.n, &c2), 0);
        assert_rc(bt_get_check(f->b, g.name, g.node_dom, c2.tags, c2.n, &c2), -ENOENT);

        /* a mixed batch: missing says which */
        uint8_t tags[32 * 4], m[4];
        memcpy(tags, c2.tags, 32);
        memcpy(tags + 32, c.tags, 32);
        memcpy(tags + 64, c2.tags + 32, 32);
        memcpy(tags + 96, c.tags + 32, 32);
        assert_rc(vc_chunks_missing(f->b, g.name, g.data_dom, tags, 4, m), 0);
        assert_int_equal(m[0], 0);
        assert_int_equal(m[1], 1);
        assert_int_equal(m[2], 0);
        assert_int_equal(m[3], 1);
        bt_chunks_free(&c);
        bt_chunks_free(&c2);
}

/* Flushed chunks are there after a reopen. */
static void test_flush_durable(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "dur", VC_POLICY_IP, NULL, &p);
        BtChunks c;
        bt_chunks(&c, 50, 3, len_mixed);
        assert_rc(put_flush(f, &p, p.data_dom, &c), 0);
        fx_reopen(f);
        assert_missing(f, &p, p.data_dom, c.tags, c.n, 0);
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, c.tags, c.n, &c), 0);
        /* and a flush with nothing put is fine */
        assert_rc(vc_chunks_flush(f->b), 0);
        bt_chunks_free(&c);
}

/* A get of an absent tag fails with -ENOENT naming it. */
static void test_get_absent(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "absent", VC_POLICY_IP, NULL, &p);
        BtChunks c, x;
        bt_chunks(&c, 5, 4, NULL);
        bt_chunks(&x, 1, 5, NULL);
        char hex[65];
        bt_hex(x.tags, hex);
        /* in a domain that was never written to */
        int r = bt_get_check(f->b, p.name, p.data_dom, x.tags, 1, &x);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, hex);
        assert_rc(put_flush(f, &p, p.data_dom, &c), 0);
        /* alone, and between present ones */
        r = bt_get_check(f->b, p.name, p.data_dom, x.tags, 1, &x);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, hex);
        uint8_t tags[32 * 6];
        memcpy(tags, c.tags, 32 * 3);
        memcpy(tags + 96, x.tags, 32);
        memcpy(tags + 128, c.tags + 96, 64);
        r = bt_get_check(f->b, p.name, p.data_dom, tags, 6, &c);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, hex);
        /* in a get of hundreds (a server answers one that large without
         * looking every tag up first: the absent one ends its reply),
         * early, midway and last */
        BtChunks many;
        bt_chunks(&many, 600, 6, len_small);
        assert_rc(put_flush(f, &p, p.data_dom, &many), 0);
        uint8_t *big = malloc(32 * 601);
        for (int at = 0; at < 3; at++) {
                size_t k = at == 0 ? 3 : at == 1 ? 300 : 600;
                memcpy(big, many.tags, 32 * k);
                memcpy(big + 32 * k, x.tags, 32);
                memcpy(big + 32 * (k + 1), many.tags + 32 * k, 32 * (600 - k));
                r = bt_get_check(f->b, p.name, p.data_dom, big, 601, &many);
                assert_rc(r, -ENOENT);
                assert_msg_has(r, hex);
        }
        /* and without it, the same get delivers every chunk */
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, many.tags, 600, &many), 0);
        free(big);
        bt_chunks_free(&many);
        bt_chunks_free(&c);
        bt_chunks_free(&x);
}

/* Invalid parcel names, domain names, host names and items: -EINVAL. */
static void test_invalid_names(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "inval", VC_POLICY_ALL, NULL, &p);
        BtChunks c;
        bt_chunks(&c, 1, 6, NULL);
        uint8_t m[1];
        static const char *const bad_parcels[] = {
                "", "a b", "../x", "-x", ".x", "x/y", "x:y",
                "12345678901234567890123456789012345678901234567890123456789012345",
        };
        static const char *const bad_domains[] = {
                "", "foo", "All", "all ", "group:", "group:a b", "group:../x", "parcel:", "parcel:xyz",
                "parcel:0123456789abcdef0123456789ABCDEF", "parcel:0123456789abcdef0123456789abcdef0",
                "group:12345678901234567890123456789012345678901234567890123456789012345",
        };
        for (size_t i = 0; i < VC_ARRAY_SIZE(bad_parcels); i++) {
                const char *n = bad_parcels[i];
                VcParcelInfo pi;
                VcLease ls;
                assert_rc(vc_chunks_missing(f->b, n, "all", c.tags, 1, m), -EINVAL);
                assert_rc(vc_chunks_put(f->b, n, "all", c.items, 1), -EINVAL);
                assert_rc(bt_get_check(f->b, n, "all", c.tags, 1, &c), -EINVAL);
                assert_rc(vc_cat_parcel(f->b, n, &pi), -EINVAL);
                assert_rc(vc_lease_get(f->b, n, &ls), -EINVAL);
                assert_rc(vc_lease_acquire(f->b, n, "hostA", &ls), -EINVAL);
                assert_rc(vc_cat_prune(f->b, n, 1), -EINVAL);
                uint8_t rec[VC_PARCEL_REC_MAX];
                size_t len;
                VcParcel q;
                bt_parcel(&q, "x", VC_POLICY_ALL, NULL, rec, &len);
                assert_rc(vc_cat_create(f->b, n, NULL, rec, len), -EINVAL);
        }
        for (size_t i = 0; i < VC_ARRAY_SIZE(bad_domains); i++) {
                const char *d = bad_domains[i];
                vc_errclear();
                assert_rc(vc_chunks_missing(f->b, p.name, d, c.tags, 1, m), -EINVAL);
                assert_rc(vc_chunks_put(f->b, p.name, d, c.items, 1), -EINVAL);
                assert_rc(bt_get_check(f->b, p.name, d, c.tags, 1, &c), -EINVAL);
        }
        /* items: unknown kind, empty, too large */
        VcPutItem it = c.items[0];
        it.kind = 2;
        assert_rc(vc_chunks_put(f->b, p.name, "all", &it, 1), -EINVAL);
        it = c.items[0];
        it.len = 0;
        assert_rc(vc_chunks_put(f->b, p.name, "all", &it, 1), -EINVAL);
        it = c.items[0];
        it.len = VC_SEALED_MAX + 1;
        assert_rc(vc_chunks_put(f->b, p.name, "all", &it, 1), -EINVAL);
        /* host names of leases */
        VcLease ls;
        assert_rc(vc_lease_acquire(f->b, p.name, "", &ls), -EINVAL);
        assert_rc(vc_lease_acquire(f->b, p.name, "a host", &ls), -EINVAL);
        assert_rc(vc_lease_acquire(f->b, p.name, NULL, &ls), -EINVAL);
        /* version 0, keep 0 */
        VcVersionInfo vi;
        assert_rc(vc_cat_version(f->b, p.name, 0, &vi), -EINVAL);
        assert_rc(vc_cat_prune(f->b, p.name, 0), -EINVAL);
        /* nothing of the above was stored */
        assert_missing(f, &p, "all", c.tags, 1, 1);
        bt_chunks_free(&c);
}

/* ---- catalog ------------------------------------------------------------------ */

static void test_create_and_read(void **state)
{
        Fx *f = *state;
        char name[VC_NAME_MAX + 1];
        uint8_t rec[VC_PARCEL_REC_MAX], rec2[VC_PARCEL_REC_MAX];
        size_t len, len2;
        VcParcel p, q;
        pname(name, sizeof name, "cat");
        bt_parcel(&p, name, VC_POLICY_GROUP, "eng", rec, &len);
        VcParcelInfo pi;
        int r = vc_cat_parcel(f->b, name, &pi);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, name);
        assert_rc(vc_cat_create(f->b, name, NULL, rec, len), 0);
        /* a second create, even with another record: -EEXIST, first kept */
        bt_parcel(&q, name, VC_POLICY_ALL, NULL, rec2, &len2);
        vc_errclear();
        r = vc_cat_create(f->b, name, NULL, rec2, len2);
        assert_rc(r, -EEXIST);
        assert_msg_has(r, name);
        assert_rc(vc_cat_parcel(f->b, name, &pi), 0);
        assert_string_equal(pi.name, name);
        assert_int_equal(pi.latest, 0);
        assert_int_equal(pi.record_len, len);
        assert_memory_equal(pi.record, rec, len);
        /* the record reads back as it was packed */
        VcParcel back;
        assert_rc(vc_parcel_unpack(pi.record, pi.record_len, name, &back), 0);
        assert_memory_equal(back.uuid, p.uuid, 16);
        assert_string_equal(back.data_dom, "group:eng");
        /* no versions yet */
        VcVersionInfo *vs = NULL;
        size_t nv = 99;
        assert_rc(vc_cat_versions(f->b, name, &vs, &nv), 0);
        assert_int_equal(nv, 0);
        free(vs);
        VcVersionInfo vi;
        vc_errclear();
        r = vc_cat_version(f->b, name, 1, &vi);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, name);
        /* of an absent parcel */
        char other[VC_NAME_MAX + 1];
        pname(other, sizeof other, "nope");
        vc_errclear();
        r = vc_cat_versions(f->b, other, &vs, &nv);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, other);
        vc_errclear();
        r = vc_cat_version(f->b, other, 1, &vi);
        assert_rc(r, -ENOENT);

        /* the list: sorted by name, has ours (and a second one) */
        char name2[VC_NAME_MAX + 1];
        size_t nl = strlen(name);                       /* name2 sorts right after name */
        assert_true(nl + 2 <= VC_NAME_MAX);
        memcpy(name2, name, nl);
        memcpy(name2 + nl, "-a", 3);
        bt_parcel(&q, name2, VC_POLICY_ALL, NULL, rec2, &len2);
        assert_rc(vc_cat_create(f->b, name2, NULL, rec2, len2), 0);
        VcParcelInfo *ps = NULL;
        size_t np = 0;
        assert_rc(vc_cat_parcels(f->b, &ps, &np), 0);
        size_t at = np, at2 = np;
        for (size_t i = 0; i < np; i++) {
                if (i > 0)
                        assert_true(strcmp(ps[i - 1].name, ps[i].name) < 0);
                if (strcmp(ps[i].name, name) == 0)
                        at = i;
                if (strcmp(ps[i].name, name2) == 0)
                        at2 = i;
        }
        assert_true(at < np && at2 < np && at < at2);
        assert_int_equal(ps[at].record_len, len);
        assert_memory_equal(ps[at].record, rec, len);
        assert_int_equal(ps[at2].record_len, len2);
        assert_memory_equal(ps[at2].record, rec2, len2);
        free(ps);
}

/* Malformed parcel records are refused, and nothing is created. */
static void test_create_malformed(void **state)
{
        Fx *f = *state;
        char name[VC_NAME_MAX + 1];
        uint8_t rec[VC_PARCEL_REC_MAX + 8], bad[VC_PARCEL_REC_MAX + 8];
        size_t len;
        VcParcel p;
        pname(name, sizeof name, "malf");
        bt_parcel(&p, name, VC_POLICY_IP, NULL, rec, &len);
        struct { const char *what; size_t at; int val; size_t len; } cases[] = {
                { "magic", 0, 'X', 0 },
                { "format 1", 4, 1, 0 },
                { "format 3", 4, 3, 0 },
                { "policy", 5, 9, 0 },
                { "compression", 6, 7, 0 },
                { "reserved byte", 7, 1, 0 },
                { "group length", VC_PARCEL_REC_FIXED, 200, 0 },
                { "node domain length", VC_PARCEL_REC_FIXED + 1, 5, 0 },
                { "truncated", 0, -1, 40 },
                { "one byte short", 0, -1, len - 1 },
                { "one byte long", 0, -1, len + 1 },
                { "node domain", VC_PARCEL_REC_FIXED + 2 + 7, 'Z', 0 },
        };
        for (size_t i = 0; i < VC_ARRAY_SIZE(cases); i++) {
                memcpy(bad, rec, len);
                bad[len] = 0;
                size_t bl = cases[i].len ? cases[i].len : len;
                if (cases[i].val >= 0)
                        bad[cases[i].at] = (uint8_t)cases[i].val;
                vc_errclear();
                int r = vc_cat_create(f->b, name, NULL, bad, bl);
                if (r != -EBADMSG && r != -EINVAL && r != -EPROTO)
                        fail_msg("create with a bad %s: %d (%s)", cases[i].what, r, vc_errmsg(r));
        }
        /* a record whose domains do not follow from its uuid and policy:
         * else anyone could name another parcel's or group's domain */
        static const struct { VcPolicy pol; const char *group, *node, *data; } lies[] = {
                { VC_POLICY_IP, NULL, NULL, "all" },
                { VC_POLICY_IP, NULL, NULL, "group:eng" },
                { VC_POLICY_DELTA, NULL, NULL, "parcel:00000000000000000000000000000000" },
                { VC_POLICY_ALL, NULL, NULL, "group:eng" },
                { VC_POLICY_GROUP, "eng", NULL, "group:ops" },
                { VC_POLICY_GROUP, "eng", NULL, "all" },
                { VC_POLICY_ALL, NULL, "parcel:00000000000000000000000000000000", NULL },
                { VC_POLICY_IP, NULL, "parcel:00000000000000000000000000000000",
                  "parcel:00000000000000000000000000000000" },
        };
        for (size_t i = 0; i < VC_ARRAY_SIZE(lies); i++) {
                VcParcel q;
                bt_parcel(&q, name, lies[i].pol, lies[i].group, bad, &len);
                if (lies[i].node)
                        snprintf(q.node_dom, sizeof q.node_dom, "%s", lies[i].node);
                if (lies[i].data)
                        snprintf(q.data_dom, sizeof q.data_dom, "%s", lies[i].data);
                assert_int_equal(vc_parcel_pack(&q, bad, VC_PARCEL_REC_MAX, &len), 0);
                vc_errclear();
                int r = vc_cat_create(f->b, name, NULL, bad, len);
                if (r != -EBADMSG && r != -EINVAL)
                        fail_msg("create with domains %s / %s for policy %d: %d (%s)", q.node_dom, q.data_dom,
                                 lies[i].pol, r, vc_errmsg(r));
        }
        /* empty and oversized records */
        assert_rc(vc_cat_create(f->b, name, NULL, rec, 0), -EINVAL);
        assert_rc(vc_cat_create(f->b, name, NULL, rec, VC_PARCEL_REC_MAX + 1), -EINVAL);
        VcParcelInfo pi;
        assert_rc(vc_cat_parcel(f->b, name, &pi), -ENOENT);
        /* the good one still goes in */
        assert_rc(vc_cat_create(f->b, name, NULL, rec, len), 0);
}

static int commit(Fx *f, const VcParcel *p, uint32_t base, const uint8_t *rec, const uint8_t *token,
                  const uint8_t *nodes, size_t nn, const uint8_t *data, size_t nd)
{
        VcCommit c = { .parcel = p->name, .base = base, .record = rec, .record_len = VC_VERSION_REC_LEN,
                       .lease = token, .need_nodes = nodes, .n_nodes = nn, .need_data = data, .n_data = nd };
        vc_errclear();
        return vc_cat_commit(f->b, &c);
}

/* The parcel is at version latest with these records (rec[v-1]). */
static void assert_versions(Fx *f, const VcParcel *p, uint32_t latest, uint8_t (*recs)[VC_VERSION_REC_LEN],
                            uint32_t first)
{
        VcParcelInfo pi;
        assert_rc(vc_cat_parcel(f->b, p->name, &pi), 0);
        assert_int_equal(pi.latest, latest);
        VcVersionInfo *vs = NULL;
        size_t n = 0;
        assert_rc(vc_cat_versions(f->b, p->name, &vs, &n), 0);
        assert_int_equal(n, latest ? latest - first + 1 : 0);
        for (size_t i = 0; i < n; i++) {
                assert_int_equal(vs[i].version, first + i);
                assert_int_equal(vs[i].record_len, VC_VERSION_REC_LEN);
                assert_memory_equal(vs[i].record, recs[first + i - 1], VC_VERSION_REC_LEN);
                if (i > 0)
                        assert_true(vs[i].seq > vs[i - 1].seq);
                VcVersionInfo vi;
                assert_rc(vc_cat_version(f->b, p->name, vs[i].version, &vi), 0);
                assert_int_equal(vi.version, vs[i].version);
                assert_int_equal(vi.seq, vs[i].seq);
                assert_memory_equal(vi.record, vs[i].record, VC_VERSION_REC_LEN);
        }
        free(vs);
        VcVersionInfo vi;
        vc_errclear();
        assert_rc(vc_cat_version(f->b, p->name, latest + 1, &vi), -ENOENT);
}

static void test_commit(void **state)
{
        Fx *f = *state;
        VcParcel p, o;
        mkparcel(f, "commit", VC_POLICY_GROUP, "eng", &p);
        mkparcel(f, "other", VC_POLICY_IP, NULL, &o);
        uint8_t recs[4][VC_VERSION_REC_LEN];
        for (uint32_t v = 1; v <= 4; v++)
                bt_version(&p, v, recs[v - 1]);
        BtChunks nodes, data;
        bt_chunks(&nodes, 6, 7, NULL);
        bt_chunks(&data, 9, 8, NULL);
        assert_rc(put_flush(f, &p, p.node_dom, &nodes), 0);
        assert_rc(put_flush(f, &p, p.data_dom, &data), 0);

        /* base 0 -> 1, with the chunks it needs */
        assert_rc(commit(f, &p, 0, recs[0], NULL, nodes.tags, nodes.n, data.tags, data.n), 0);
        assert_versions(f, &p, 1, recs, 1);
        /* a stale base: -EAGAIN, nothing changed */
        uint8_t stale[VC_VERSION_REC_LEN];
        bt_version(&p, 1, stale);
        assert_rc(commit(f, &p, 0, stale, NULL, NULL, 0, NULL, 0), -EAGAIN);
        assert_versions(f, &p, 1, recs, 1);
        /* 1 -> 2 with no chunks named */
        assert_rc(commit(f, &p, 1, recs[1], NULL, NULL, 0, NULL, 0), 0);
        assert_versions(f, &p, 2, recs, 1);
        /* a base ahead of the parcel: -EAGAIN too */
        uint8_t ahead[VC_VERSION_REC_LEN];
        bt_version(&p, 6, ahead);
        assert_rc(commit(f, &p, 5, ahead, NULL, NULL, 0, NULL, 0), -EAGAIN);

        /* a chunk that is not stored, in either list: -EAGAIN naming it */
        BtChunks absent;
        bt_chunks(&absent, 1, 9, NULL);
        char hex[65];
        bt_hex(absent.tags, hex);
        uint8_t *nl = malloc(32 * (nodes.n + 1)), *dl = malloc(32 * (data.n + 1));
        memcpy(nl, nodes.tags, 32 * nodes.n);
        memcpy(nl + 32 * nodes.n, absent.tags, 32);
        memcpy(dl, data.tags, 32 * data.n);
        memcpy(dl + 32 * data.n, absent.tags, 32);
        int r = commit(f, &p, 2, recs[2], NULL, nl, nodes.n + 1, data.tags, data.n);
        assert_rc(r, -EAGAIN);
        assert_msg_has(r, hex);
        r = commit(f, &p, 2, recs[2], NULL, nodes.tags, nodes.n, dl, data.n + 1);
        assert_rc(r, -EAGAIN);
        assert_msg_has(r, hex);
        /* a chunk stored, but in the other domain of the parcel */
        r = commit(f, &p, 2, recs[2], NULL, data.tags, 1, NULL, 0);
        assert_rc(r, -EAGAIN);
        r = commit(f, &p, 2, recs[2], NULL, NULL, 0, nodes.tags, 1);
        assert_rc(r, -EAGAIN);
        /* a chunk of another parcel's domain */
        assert_rc(put_flush(f, &o, o.data_dom, &absent), 0);
        r = commit(f, &p, 2, recs[2], NULL, NULL, 0, absent.tags, 1);
        assert_rc(r, -EAGAIN);
        assert_versions(f, &p, 2, recs, 1);
        /* once stored, the same commit goes in */
        assert_rc(put_flush(f, &p, p.data_dom, &absent), 0);
        assert_rc(commit(f, &p, 2, recs[2], NULL, nodes.tags, nodes.n, dl, data.n + 1), 0);
        assert_versions(f, &p, 3, recs, 1);

        /* malformed version records: nothing changes */
        uint8_t bad[VC_VERSION_REC_LEN + 1];
        memcpy(bad, recs[3], VC_VERSION_REC_LEN);
        bad[0] = 'X';
        r = commit(f, &p, 3, bad, NULL, NULL, 0, NULL, 0);
        assert_true(r == -EBADMSG || r == -EINVAL);
        memcpy(bad, recs[3], VC_VERSION_REC_LEN);
        bad[4] = 1;                     /* format */
        r = commit(f, &p, 3, bad, NULL, NULL, 0, NULL, 0);
        assert_true(r == -EBADMSG || r == -EINVAL || r == -EPROTO);
        memcpy(bad, recs[3], VC_VERSION_REC_LEN);
        bad[13] = 1;                    /* reserved */
        r = commit(f, &p, 3, bad, NULL, NULL, 0, NULL, 0);
        assert_true(r == -EBADMSG || r == -EINVAL);
        VcCommit c = { .parcel = p.name, .base = 3, .record = recs[3], .record_len = VC_VERSION_REC_LEN - 1 };
        assert_rc(vc_cat_commit(f->b, &c), -EINVAL);
        c.record_len = VC_VERSION_REC_LEN + 1;
        memcpy(bad, recs[3], VC_VERSION_REC_LEN);
        c.record = bad;
        assert_rc(vc_cat_commit(f->b, &c), -EINVAL);
        /* a record of version 5 on base 3, a record of another parcel */
        uint8_t v5[VC_VERSION_REC_LEN], ov[VC_VERSION_REC_LEN];
        bt_version(&p, 5, v5);
        r = commit(f, &p, 3, v5, NULL, NULL, 0, NULL, 0);
        assert_true(r == -EINVAL || r == -EAGAIN);
        bt_version(&o, 4, ov);
        r = commit(f, &p, 3, ov, NULL, NULL, 0, NULL, 0);
        assert_true(r == -EINVAL || r == -EBADMSG);
        /* a commit to a parcel that does not exist */
        VcParcel ghost = p;
        pname(ghost.name, sizeof ghost.name, "ghost");
        r = commit(f, &ghost, 0, recs[0], NULL, NULL, 0, NULL, 0);
        assert_rc(r, -ENOENT);
        assert_versions(f, &p, 3, recs, 1);
        assert_rc(commit(f, &p, 3, recs[3], NULL, NULL, 0, NULL, 0), 0);
        assert_versions(f, &p, 4, recs, 1);
        free(nl);
        free(dl);
        bt_chunks_free(&nodes);
        bt_chunks_free(&data);
        bt_chunks_free(&absent);
}

/* Two threads commit on the same base at once: exactly one wins. */
typedef struct Racer {
        Fx *f;
        const VcParcel *p;
        uint32_t base;
        const uint8_t *rec;
        pthread_barrier_t *go;
        int r;
        char msg[256];
} Racer;

static void *race_one(void *arg)
{
        Racer *x = arg;
        pthread_barrier_wait(x->go);
        x->r = commit(x->f, x->p, x->base, x->rec, NULL, NULL, 0, NULL, 0);
        snprintf(x->msg, sizeof x->msg, "%s", x->r < 0 ? vc_errmsg(x->r) : "");
        return NULL;
}

static void test_commit_race(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "race", VC_POLICY_ALL, NULL, &p);
        enum { ROUNDS = 40 };
        unsigned wins[2] = { 0, 0 };
        for (uint32_t base = 0; base < ROUNDS; base++) {
                uint8_t rec[2][VC_VERSION_REC_LEN];
                bt_version(&p, base + 1, rec[0]);
                bt_version(&p, base + 1, rec[1]);
                pthread_barrier_t go;
                pthread_barrier_init(&go, NULL, 2);
                Racer x[2] = { { f, &p, base, rec[0], &go, 0, "" }, { f, &p, base, rec[1], &go, 0, "" } };
                pthread_t th[2];
                for (int i = 0; i < 2; i++)
                        assert_int_equal(pthread_create(&th[i], NULL, race_one, &x[i]), 0);
                for (int i = 0; i < 2; i++)
                        pthread_join(th[i], NULL);
                pthread_barrier_destroy(&go);
                int winner = x[0].r == 0 ? 0 : 1;
                if (!((x[0].r == 0 && x[1].r == -EAGAIN) || (x[1].r == 0 && x[0].r == -EAGAIN)))
                        fail_msg("round %u: results %d (%s) and %d (%s)", base, x[0].r, x[0].msg, x[1].r, x[1].msg);
                wins[winner]++;
                VcVersionInfo vi;
                assert_rc(vc_cat_version(f->b, p.name, base + 1, &vi), 0);
                assert_memory_equal(vi.record, rec[winner], VC_VERSION_REC_LEN);
                VcParcelInfo pi;
                assert_rc(vc_cat_parcel(f->b, p.name, &pi), 0);
                assert_int_equal(pi.latest, base + 1);
        }
        print_message("# commit race: thread 0 won %u, thread 1 won %u of %u rounds\n", wins[0], wins[1], ROUNDS);
}

/* ---- leases ----------------------------------------------------------------------- */

static void test_leases(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "lease", VC_POLICY_IP, NULL, &p);
        static const uint8_t zero[VC_LEASE_TOKEN_LEN];
        VcLease a, a2, b, g;
        assert_rc(vc_lease_get(f->b, p.name, &g), 0);
        assert_false(g.held);
        /* nothing to break */
        assert_rc(vc_lease_break(f->b, p.name), 0);

        assert_rc(vc_lease_acquire(f->b, p.name, "hostA", &a), 0);
        assert_true(a.held);
        assert_string_equal(a.host, "hostA");
        assert_memory_not_equal(a.token, zero, VC_LEASE_TOKEN_LEN);
        int64_t now = vc_now();
        assert_true(a.since > now - 600 && a.since <= now + 600);
        /* another host: -EBUSY naming the holder */
        vc_errclear();
        int r = vc_lease_acquire(f->b, p.name, "hostB", &b);
        assert_rc(r, -EBUSY);
        assert_msg_has(r, "hostA");
        /* the holder again: the same lease */
        assert_rc(vc_lease_acquire(f->b, p.name, "hostA", &a2), 0);
        assert_memory_equal(a2.token, a.token, VC_LEASE_TOKEN_LEN);
        assert_string_equal(a2.host, "hostA");
        /* get shows the holder, never the token */
        assert_rc(vc_lease_get(f->b, p.name, &g), 0);
        assert_true(g.held);
        assert_string_equal(g.host, "hostA");
        assert_memory_equal(g.token, zero, VC_LEASE_TOKEN_LEN);
        /* release with a wrong token: -ESTALE, still held */
        uint8_t wrong[VC_LEASE_TOKEN_LEN];
        memcpy(wrong, a.token, sizeof wrong);
        wrong[0] ^= 1;
        vc_errclear();
        assert_rc(vc_lease_release(f->b, p.name, wrong), -ESTALE);
        assert_rc(vc_lease_get(f->b, p.name, &g), 0);
        assert_true(g.held);

        /* commits: NULL token while A holds: -EBUSY; a wrong token: -ESTALE;
         * A's token: fine */
        uint8_t rec[4][VC_VERSION_REC_LEN];
        for (uint32_t v = 1; v <= 4; v++)
                bt_version(&p, v, rec[v - 1]);
        r = commit(f, &p, 0, rec[0], NULL, NULL, 0, NULL, 0);
        assert_rc(r, -EBUSY);
        assert_msg_has(r, "hostA");
        assert_rc(commit(f, &p, 0, rec[0], wrong, NULL, 0, NULL, 0), -ESTALE);
        assert_versions(f, &p, 0, rec, 1);
        assert_rc(commit(f, &p, 0, rec[0], a.token, NULL, 0, NULL, 0), 0);
        assert_versions(f, &p, 1, rec, 1);

        /* break: A's old token no longer commits, nothing committed */
        assert_rc(vc_lease_break(f->b, p.name), 1);
        assert_rc(vc_lease_get(f->b, p.name, &g), 0);
        assert_false(g.held);
        r = commit(f, &p, 1, rec[1], a.token, NULL, 0, NULL, 0);
        assert_rc(r, -ESTALE);
        assert_versions(f, &p, 1, rec, 1);
        /* nor after B took it */
        assert_rc(vc_lease_acquire(f->b, p.name, "hostB", &b), 0);
        assert_memory_not_equal(b.token, a.token, VC_LEASE_TOKEN_LEN);
        assert_rc(commit(f, &p, 1, rec[1], a.token, NULL, 0, NULL, 0), -ESTALE);
        assert_rc(vc_lease_release(f->b, p.name, a.token), -ESTALE);
        vc_errclear();
        r = vc_lease_acquire(f->b, p.name, "hostA", &a2);
        assert_rc(r, -EBUSY);
        assert_msg_has(r, "hostB");
        assert_versions(f, &p, 1, rec, 1);
        /* B commits and releases; then a free lease commits with NULL */
        assert_rc(commit(f, &p, 1, rec[1], b.token, NULL, 0, NULL, 0), 0);
        assert_rc(vc_lease_release(f->b, p.name, b.token), 0);
        assert_rc(vc_lease_get(f->b, p.name, &g), 0);
        assert_false(g.held);
        /* a released token is stale too */
        assert_rc(commit(f, &p, 2, rec[2], b.token, NULL, 0, NULL, 0), -ESTALE);
        assert_rc(vc_lease_release(f->b, p.name, b.token), -ESTALE);
        assert_rc(commit(f, &p, 2, rec[2], NULL, NULL, 0, NULL, 0), 0);
        assert_versions(f, &p, 3, rec, 1);
        /* a new lease of A has a new token */
        assert_rc(vc_lease_acquire(f->b, p.name, "hostA", &a2), 0);
        assert_memory_not_equal(a2.token, a.token, VC_LEASE_TOKEN_LEN);
        assert_rc(vc_lease_release(f->b, p.name, a2.token), 0);

        /* leases of a parcel that does not exist */
        char ghost[VC_NAME_MAX + 1];
        pname(ghost, sizeof ghost, "ghost");
        vc_errclear();
        r = vc_lease_acquire(f->b, ghost, "hostA", &g);
        assert_rc(r, -ENOENT);
        assert_msg_has(r, ghost);
        assert_rc(vc_lease_get(f->b, ghost, &g), -ENOENT);
        assert_rc(vc_lease_break(f->b, ghost), -ENOENT);
        assert_rc(vc_lease_release(f->b, ghost, a.token), -ENOENT);
}

/* The lease and base checks of a commit are one step with it: a stale
 * base and a broken lease both leave everything as it was. */
static void test_lease_and_base(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "leasebase", VC_POLICY_ALL, NULL, &p);
        uint8_t rec[2][VC_VERSION_REC_LEN];
        bt_version(&p, 1, rec[0]);
        bt_version(&p, 2, rec[1]);
        VcLease a;
        assert_rc(vc_lease_acquire(f->b, p.name, "hostA", &a), 0);
        assert_rc(commit(f, &p, 0, rec[0], a.token, NULL, 0, NULL, 0), 0);
        /* holder with a stale base */
        assert_rc(commit(f, &p, 0, rec[0], a.token, NULL, 0, NULL, 0), -EAGAIN);
        /* holder naming an absent chunk */
        BtChunks x;
        bt_chunks(&x, 1, 10, NULL);
        assert_rc(commit(f, &p, 1, rec[1], a.token, NULL, 0, x.tags, 1), -EAGAIN);
        assert_versions(f, &p, 1, rec, 1);
        /* the lease is still A's and still commits */
        assert_rc(commit(f, &p, 1, rec[1], a.token, NULL, 0, NULL, 0), 0);
        assert_versions(f, &p, 2, rec, 1);
        assert_rc(vc_lease_release(f->b, p.name, a.token), 0);
        bt_chunks_free(&x);
}

/* ---- prune --------------------------------------------------------------------------- */

static void test_prune(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "prune", VC_POLICY_IP, NULL, &p);
        uint8_t rec[6][VC_VERSION_REC_LEN];
        /* nothing to prune yet */
        assert_rc(vc_cat_prune(f->b, p.name, 1), 0);
        for (uint32_t v = 1; v <= 6; v++) {
                bt_version(&p, v, rec[v - 1]);
                assert_rc(commit(f, &p, v - 1, rec[v - 1], NULL, NULL, 0, NULL, 0), 0);
        }
        assert_rc(vc_cat_prune(f->b, p.name, 10), 0);
        assert_rc(vc_cat_prune(f->b, p.name, 6), 0);
        assert_versions(f, &p, 6, rec, 1);
        assert_rc(vc_cat_prune(f->b, p.name, 4), 2);
        assert_versions(f, &p, 6, rec, 3);
        VcVersionInfo vi;
        assert_rc(vc_cat_version(f->b, p.name, 2, &vi), -ENOENT);
        assert_rc(vc_cat_prune(f->b, p.name, 4), 0);
        assert_rc(vc_cat_prune(f->b, p.name, 1), 3);
        assert_versions(f, &p, 6, rec, 6);
        /* the parcel goes on from its latest version */
        uint8_t v7[VC_VERSION_REC_LEN];
        bt_version(&p, 7, v7);
        assert_rc(commit(f, &p, 6, v7, NULL, NULL, 0, NULL, 0), 0);
        char ghost[VC_NAME_MAX + 1];
        pname(ghost, sizeof ghost, "ghost");
        assert_rc(vc_cat_prune(f->b, ghost, 1), -ENOENT);
}

/* A commit naming as many chunks as a 280 MiB image of 4 KiB chunks
 * holds (the local back end looks a list this long up on two threads): a
 * chunk not stored at either end of it refuses the commit by name. */
static uint32_t len_tiny(size_t i, uint64_t r) { return 33 + (uint32_t)(r % 32); }

static void test_commit_many(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "many", VC_POLICY_IP, NULL, &p);
        /* more than the 65,536 past which the local back end splits the
         * list; fewer on a cluster, where 70,000 puts take a minute */
        const size_t N = f->t->kind == T_RADOS ? 16384 : 70000;
        BtChunks c, absent;
        bt_chunks(&c, N, 41, len_tiny);
        bt_chunks(&absent, 2, 42, len_tiny);
        for (size_t i = 0; i < N; i += 8192) {
                vc_errclear();
                assert_rc(vc_chunks_put(f->b, p.name, p.data_dom, c.items + i, VC_MIN(8192, N - i)), 0);
        }
        assert_rc(vc_chunks_flush(f->b), 0);
        uint8_t rec[1][VC_VERSION_REC_LEN];
        bt_version(&p, 1, rec[0]);
        uint8_t *need = malloc(32 * (N + 1));
        char hex[65];
        for (int at = 0; at < 3; at++) {
                /* absent first, in the middle, last */
                size_t k = at == 0 ? 0 : at == 1 ? N / 2 + 7 : N;
                memcpy(need, c.tags, 32 * k);
                memcpy(need + 32 * k, absent.tags + 32 * (at & 1), 32);
                memcpy(need + 32 * (k + 1), c.tags + 32 * k, 32 * (N - k));
                int r = commit(f, &p, 0, rec[0], NULL, NULL, 0, need, N + 1);
                assert_rc(r, -EAGAIN);
                bt_hex(absent.tags + 32 * (at & 1), hex);
                assert_msg_has(r, hex);
        }
        assert_versions(f, &p, 0, rec, 1);
        assert_rc(commit(f, &p, 0, rec[0], NULL, NULL, 0, c.tags, N), 0);
        assert_versions(f, &p, 1, rec, 1);
        free(need);
        bt_chunks_free(&c);
        bt_chunks_free(&absent);
}

/* ---- gc between a checkin's missing and its commit ------------------------------------------ */

/* The keyring nodes of a tree over some chunks, as a batch to put. */
typedef struct Nodes {
        VcPutItem *items;
        uint8_t *tags;
        size_t n;
} Nodes;

static int node_put(const uint8_t tag[32], const uint8_t *sealed, size_t len, void *ctx)
{
        Nodes *t = ctx;
        t->items = realloc(t->items, (t->n + 1) * sizeof *t->items);
        t->tags = realloc(t->tags, 32 * (t->n + 1));
        uint8_t *d = malloc(len);
        memcpy(d, sealed, len);
        memcpy(t->tags + 32 * t->n, tag, 32);
        t->items[t->n] = (VcPutItem){ .kind = VC_KIND_META, .len = (uint32_t)len, .data = d };
        memcpy(t->items[t->n].tag, tag, 32);
        t->n++;
        return 0;
}

static void nodes_free(Nodes *t)
{
        for (size_t i = 0; i < t->n; i++)
                free((void *)t->items[i].data);
        free(t->items);
        free(t->tags);
        memset(t, 0, sizeof *t);
}

/* A keyring over chunks a (and b, if not NULL) as the memory image of
 * version v of p: its nodes in *t, the version's record in rec. */
static void keyring_version(const VcParcel *p, uint32_t v, const BtChunks *a, const BtChunks *b, Nodes *t,
                            uint8_t rec[VC_VERSION_REC_LEN])
{
        size_t n = a->n + (b ? b->n : 0);
        VcEntry *e = calloc(n, sizeof *e);
        for (size_t i = 0; i < n; i++) {
                const uint8_t *tag = i < a->n ? a->tags + 32 * i : b->tags + 32 * (i - a->n);
                memcpy(e[i].tag, tag, 32);
                assert_int_equal(vc_random(e[i].key, sizeof e[i].key), 0);
        }
        uint8_t secret[VC_KEY_LEN];
        assert_int_equal(vc_random(secret, sizeof secret), 0);
        VcEntry root;
        memset(t, 0, sizeof *t);
        assert_rc(vc_tree_build(secret, e, n, node_put, t, &root), 0);
        free(e);
        VcVersion ver;
        bt_version(p, v, rec);
        assert_rc(vc_version_unpack(rec, VC_VERSION_REC_LEN, &ver), 0);
        memcpy(ver.mem_root, root.tag, 32);
        vc_version_pack(&ver, rec);
}

static int put_nodes(Fx *f, const VcParcel *p, const Nodes *t)
{
        vc_errclear();
        int r = vc_chunks_put(f->b, p->name, p->node_dom, t->items, t->n);
        return r < 0 ? r : vc_chunks_flush(f->b);
}

/* A checkin asks which chunks are missing, is told some are stored (by a
 * version that is then pruned), and before it commits an administrator
 * runs gc: the chunks are swept. The commit must fail naming one (never
 * make a version whose chunks are gone); missing then says so, and the
 * retry that sends them goes in. gc keeps what a live version names. */
static void test_gc_before_commit(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "gc", VC_POLICY_IP, NULL, &p);
        BtChunks old, live;
        bt_chunks(&old, 5, 31, NULL);
        bt_chunks(&live, 7, 32, NULL);
        for (size_t i = 0; i < old.n; i++)
                old.items[i].kind = VC_KIND_DATA;
        for (size_t i = 0; i < live.n; i++)
                live.items[i].kind = VC_KIND_DATA;
        uint8_t rec[3][VC_VERSION_REC_LEN];
        Nodes n1, n2, n3;
        keyring_version(&p, 1, &old, NULL, &n1, rec[0]);
        keyring_version(&p, 2, &live, NULL, &n2, rec[1]);
        keyring_version(&p, 3, &old, &live, &n3, rec[2]);

        /* version 1 names old, version 2 names live */
        assert_rc(put_flush(f, &p, p.data_dom, &old), 0);
        assert_rc(put_flush(f, &p, p.data_dom, &live), 0);
        assert_rc(put_nodes(f, &p, &n1), 0);
        assert_rc(commit(f, &p, 0, rec[0], NULL, n1.tags, n1.n, old.tags, old.n), 0);
        assert_rc(put_nodes(f, &p, &n2), 0);
        assert_rc(commit(f, &p, 1, rec[1], NULL, n2.tags, n2.n, live.tags, live.n), 0);

        /* the checkin of version 3 asks: everything is stored */
        assert_missing(f, &p, p.data_dom, old.tags, old.n, 0);
        assert_missing(f, &p, p.data_dom, live.tags, live.n, 0);
        /* version 1 goes, and gc (no grace) sweeps what only it named */
        assert_rc(vc_cat_prune(f->b, p.name, 1), 1);
        VcGcStats gs;
        vc_errclear();
        assert_rc(vc_backend_gc(f->b, 0, true, &gs), 0);
        assert_true(gs.sweep.chunks_freed >= old.n + n1.n);
        assert_missing(f, &p, p.data_dom, old.tags, old.n, 1);
        assert_missing(f, &p, p.node_dom, n1.tags, n1.n, 1);
        assert_missing(f, &p, p.data_dom, live.tags, live.n, 0);
        assert_missing(f, &p, p.node_dom, n2.tags, n2.n, 0);
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, live.tags, live.n, &live), 0);

        /* the commit names a swept chunk: refused, nothing changed */
        assert_rc(put_nodes(f, &p, &n3), 0);
        uint8_t *all = malloc(32 * (old.n + live.n));
        memcpy(all, old.tags, 32 * old.n);
        memcpy(all + 32 * old.n, live.tags, 32 * live.n);
        int r = commit(f, &p, 2, rec[2], NULL, n3.tags, n3.n, all, old.n + live.n);
        assert_rc(r, -EAGAIN);
        bool named = false;
        for (size_t i = 0; i < old.n; i++) {
                char hex[65];
                bt_hex(old.tags + 32 * i, hex);
                named = named || strstr(vc_errmsg(r), hex);
        }
        if (!named)
                fail_msg("the refusal '%s' names no swept chunk", vc_errmsg(r));
        assert_versions(f, &p, 2, rec, 2);
        /* the retry sends what missing now names, and goes in */
        assert_rc(put_flush(f, &p, p.data_dom, &old), 0);
        assert_rc(commit(f, &p, 2, rec[2], NULL, n3.tags, n3.n, all, old.n + live.n), 0);
        assert_versions(f, &p, 3, rec, 2);
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, live.tags, live.n, &live), 0);
        assert_rc(bt_get_check(f->b, p.name, p.data_dom, old.tags, old.n, &old), 0);
        /* and gc now keeps both */
        assert_rc(vc_backend_gc(f->b, 0, true, &gs), 0);
        assert_missing(f, &p, p.data_dom, all, old.n + live.n, 0);
        assert_missing(f, &p, p.node_dom, n3.tags, n3.n, 0);
        free(all);
        nodes_free(&n1);
        nodes_free(&n2);
        nodes_free(&n3);
        bt_chunks_free(&old);
        bt_chunks_free(&live);
}

/* ---- many threads on one handle -------------------------------------------------------- */

typedef struct Worker {
        Fx *f;
        const VcParcel *p;
        BtChunks c;
        int r;
} Worker;

static void *work(void *arg)
{
        Worker *w = arg;
        const char *dom = w->p->data_dom;
        uint8_t *m = malloc(w->c.n);
        w->r = vc_chunks_missing(w->f->b, w->p->name, dom, w->c.tags, w->c.n, m);
        for (size_t i = 0; w->r == 0 && i < w->c.n; i += 10)
                w->r = vc_chunks_put(w->f->b, w->p->name, dom, w->c.items + i, VC_MIN(10, w->c.n - i));
        if (w->r == 0)
                w->r = vc_chunks_flush(w->f->b);
        for (int k = 0; w->r == 0 && k < 3; k++)
                w->r = bt_get_check(w->f->b, w->p->name, dom, w->c.tags, w->c.n, &w->c);
        free(m);
        return NULL;
}

static void test_threads(void **state)
{
        Fx *f = *state;
        VcParcel p;
        mkparcel(f, "threads", VC_POLICY_ALL, NULL, &p);
        enum { N = 4 };
        Worker w[N];
        pthread_t th[N];
        for (int i = 0; i < N; i++) {
                w[i] = (Worker){ .f = f, .p = &p };
                bt_chunks(&w[i].c, 60, 100 + i, NULL);
                /* overlapping batches: a third of each is its neighbour's */
                if (i > 0)
                        for (size_t j = 0; j < 20; j++) {
                                free(w[i].c.data[j]);
                                w[i].c.data[j] = malloc(w[i - 1].c.len[j]);
                                memcpy(w[i].c.data[j], w[i - 1].c.data[j], w[i - 1].c.len[j]);
                                w[i].c.len[j] = w[i - 1].c.len[j];
                                memcpy(w[i].c.tags + 32 * j, w[i - 1].c.tags + 32 * j, 32);
                                w[i].c.items[j] = w[i - 1].c.items[j];
                                w[i].c.items[j].data = w[i].c.data[j];
                        }
        }
        for (int i = 0; i < N; i++)
                assert_int_equal(pthread_create(&th[i], NULL, work, &w[i]), 0);
        for (int i = 0; i < N; i++)
                pthread_join(th[i], NULL);
        for (int i = 0; i < N; i++) {
                assert_rc(w[i].r, 0);
                assert_missing(f, &p, p.data_dom, w[i].c.tags, w[i].c.n, 0);
                bt_chunks_free(&w[i].c);
        }
}

/* ---- running it on every back end ----------------------------------------------------------- */

#define T(fn) { #fn, fn }
static const struct { const char *name; CMUnitTestFunction fn; } cases[] = {
        T(test_chunk_roundtrip), T(test_missing_per_domain), T(test_missing_then_stored), T(test_flush_durable), T(test_get_absent),
        T(test_invalid_names), T(test_create_and_read), T(test_create_malformed), T(test_commit),
        T(test_commit_race), T(test_leases), T(test_lease_and_base), T(test_prune), T(test_commit_many), T(test_gc_before_commit), T(test_threads),
};

static bool wanted(const char *kind, bool remote, bool rados)
{
        const char *e = getenv("VMCAS_CONFORMANCE_BACKENDS");
        if (!e || !*e) {
                if (rados)
                        return strcmp(kind, "rados") == 0;
                if (strcmp(kind, "rados") == 0)
                        return false;
                return remote ? strstr(kind, "remote") != NULL : strstr(kind, "remote") == NULL;
        }
        char buf[256];
        snprintf(buf, sizeof buf, ",%s,", e);
        char k[32];
        snprintf(k, sizeof k, ",%s,", kind);
        return strstr(buf, k) != NULL;
}

static int run_on(TargetKind kind, const char *url)
{
        Target t = { .kind = kind, .url = url };
        t.root = bt_tmpdir("conf");
        snprintf(t.store, sizeof t.store, "%s/store", t.root);
        snprintf(t.cache, sizeof t.cache, "%s/cache", t.root);
        if (kind == T_LOCAL || kind == T_CACHE) {
                int r = vc_store_create(t.store);
                if (r < 0) {
                        fprintf(stderr, "cannot create a store: %s\n", vc_errmsg(r));
                        return 1;
                }
        }
        size_t n = VC_ARRAY_SIZE(cases);
        struct CMUnitTest *tests = calloc(n, sizeof *tests);
        char (*names)[96] = calloc(n, sizeof *names);
        for (size_t i = 0; i < n; i++) {
                snprintf(names[i], sizeof names[i], "%s: %s", kind_names[kind], cases[i].name + 5);
                tests[i] = (struct CMUnitTest){ .name = names[i], .test_func = cases[i].fn,
                                                .setup_func = fx_setup, .teardown_func = fx_teardown,
                                                .initial_state = &t };
        }
        int failed = _cmocka_run_group_tests(kind_names[kind], tests, n, NULL, NULL);
        free(tests);
        free(names);
        bt_rm_rf(t.root);
        free(t.root);
        return failed;
}

int main(void)
{
        uint8_t r[4];
        vc_random(r, sizeof r);
        snprintf(g_prefix, sizeof g_prefix, "cf%02x%02x%02x%02x", r[0], r[1], r[2], r[3]);
        const char *url = getenv("VMCAS_CONFORMANCE_URL");
        if (url && !*url)
                url = NULL;
        const char *rados = getenv("VMCAS_CONFORMANCE_RADOS");
        if (rados && !*rados)
                rados = NULL;
        int failed = 0, ran = 0;
        for (TargetKind k = T_LOCAL; k <= T_RADOS; k++) {
                bool remote = k == T_REMOTE || k == T_CACHE_REMOTE;
                if (!wanted(kind_names[k], url != NULL, rados != NULL))
                        continue;
                if (remote && !url) {
                        fprintf(stderr, "%s: set VMCAS_CONFORMANCE_URL\n", kind_names[k]);
                        failed++;
                        continue;
                }
                if (k == T_RADOS && !rados) {
                        fprintf(stderr, "%s: set VMCAS_CONFORMANCE_RADOS\n", kind_names[k]);
                        failed++;
                        continue;
                }
                failed += run_on(k, k == T_RADOS ? rados : url);
                ran++;
        }
        if (!ran)
                fprintf(stderr, "no back end chosen (VMCAS_CONFORMANCE_BACKENDS)\n");
        return failed || !ran ? 1 : 0;
}
