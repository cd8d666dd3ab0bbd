/* Unit tests of core: compression, seal/open under every policy, keyring
 * trees (round trip, zero regions, sharing, tampering, wrong key). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_keyring.h"
#include "core/vc_seal.h"
#include "core/vc_util.h"

static uint64_t rng = 88172645463325252ULL;
static uint64_t rnd(void) { rng ^= rng << 13; rng ^= rng >> 7; rng ^= rng << 17; return rng; }
static void fill(uint8_t *p, size_t n, int kind)
{
        for (size_t i = 0; i < n; i++)
                p[i] = kind == 0 ? (uint8_t)rnd() : kind == 1 ? (uint8_t)(i % 7 == 0 ? rnd() : 'a') : 0;
}

static const uint8_t secret1[32] = { 1, 2, 3 }, secret2[32] = { 9, 9, 9 };

static void roundtrip(VcPolicy p, VcComp c, size_t n, int kind)
{
        VcSealer *s;
        assert_int_equal(vc_sealer_new(p, c, p == VC_POLICY_ALL ? NULL : secret1, &s), 0);
        uint8_t salt[8] = { 7 };
        vc_sealer_set_salt(s, salt);
        uint8_t *in = malloc(n), *out = malloc(n + 1), *sealed = malloc(vc_seal_bound(n));
        fill(in, n, kind);
        uint8_t key[32], tag[32];
        size_t len;
        vc_chunk_key(s, in, n, key);
        assert_int_equal(vc_seal(s, in, n, key, 5, sealed, vc_seal_bound(n), &len, tag), 0);
        assert_true(len <= vc_seal_bound(n));
        if (kind == 1 && c != VC_COMP_NONE && n >= 4096)
                assert_true(len < n / 2);   /* compressible data got compressed */
        assert_int_equal(vc_unseal(s, sealed, len, tag, key, out, n, true), 0);
        assert_memory_equal(in, out, n);
        /* a flipped byte anywhere is caught by the tag */
        size_t at = rnd() % len;
        sealed[at] ^= 0x40;
        vc_errclear();
        assert_int_equal(vc_unseal(s, sealed, len, tag, key, out, n, true), -EBADMSG);
        sealed[at] ^= 0x40;
        /* the wrong length is refused, never an overflow */
        assert_int_equal(vc_unseal(s, sealed, len, tag, key, out, n - 1, true), -EBADMSG);
        /* a wrong key is refused */
        uint8_t bad[32];
        memcpy(bad, key, 32);
        bad[0] ^= 1;
        assert_int_equal(vc_unseal(s, sealed, len, tag, bad, out, n, true), -EBADMSG);
        vc_errclear();
        free(in); free(out); free(sealed);
        vc_sealer_free(s);
}

static void test_roundtrip_all(void **st)
{
        (void)st;
        size_t sizes[] = { 4096, 65536, 524288, 1, 5000 };
        for (int p = 0; p < 4; p++)
                for (int c = 0; c < 3; c++)
                        for (size_t i = 0; i < VC_ARRAY_SIZE(sizes); i++)
                                for (int kind = 0; kind < 2; kind++)
                                        roundtrip((VcPolicy)p, (VcComp)c, sizes[i], kind);
}

static void seal_tag(VcPolicy p, const uint8_t *secret, const uint8_t *in, size_t n, uint64_t idx, uint8_t tag[32])
{
        VcSealer *s;
        assert_int_equal(vc_sealer_new(p, VC_COMP_ZSTD, secret, &s), 0);
        uint8_t salt[8];
        vc_random(salt, 8);
        vc_sealer_set_salt(s, salt);
        uint8_t *out = malloc(vc_seal_bound(n)), key[32];
        size_t len;
        vc_chunk_key(s, in, n, key);
        assert_int_equal(vc_seal(s, in, n, key, idx, out, vc_seal_bound(n), &len, tag), 0);
        free(out);
        vc_sealer_free(s);
}

static void test_convergence(void **st)
{
        (void)st;
        uint8_t in[4096], a[32], b[32];
        fill(in, sizeof in, 0);
        /* all: same content, same tag, whoever seals it */
        seal_tag(VC_POLICY_ALL, NULL, in, sizeof in, 1, a);
        seal_tag(VC_POLICY_ALL, NULL, in, sizeof in, 9, b);
        assert_memory_equal(a, b, 32);
        /* ip: same secret same tag; another parcel's secret, another tag */
        seal_tag(VC_POLICY_IP, secret1, in, sizeof in, 1, a);
        seal_tag(VC_POLICY_IP, secret1, in, sizeof in, 2, b);
        assert_memory_equal(a, b, 32);
        seal_tag(VC_POLICY_IP, secret2, in, sizeof in, 1, b);
        assert_memory_not_equal(a, b, 32);
        /* delta: a fresh nonce every time, never the same sealed bytes */
        seal_tag(VC_POLICY_DELTA, secret1, in, sizeof in, 1, a);
        seal_tag(VC_POLICY_DELTA, secret1, in, sizeof in, 1, b);
        assert_memory_not_equal(a, b, 32);
}

/* One sealer, chunk after chunk, each under its own key: every sealed
 * payload is AES-256-CTR of its chunk under that chunk's key, as a
 * context of its own computes it. (A sealer that kept its first key
 * would still round-trip: only a check like this one sees it.) */
static void test_rekey(void **st)
{
        (void)st;
        VcSealer *s;
        assert_int_equal(vc_sealer_new(VC_POLICY_ALL, VC_COMP_NONE, NULL, &s), 0);
        static const uint8_t zero_iv[16];
        for (int i = 0; i < 4; i++) {
                uint8_t in[4096 + 100], key[VC_KEY_LEN], tag[32], want[sizeof in];
                size_t n = 4096 + 33 * (size_t)i, len;
                fill(in, n, 0);
                uint8_t *out = malloc(vc_seal_bound(n));
                vc_chunk_key(s, in, n, key);
                assert_int_equal(vc_seal(s, in, n, key, (uint64_t)i, out, vc_seal_bound(n), &len, tag), 0);
                assert_int_equal(len, VC_SEAL_HDR + n);
                assert_int_equal(vc_ctr(key, zero_iv, in, want, n), 0);
                assert_memory_equal(out + VC_SEAL_HDR, want, n);
                free(out);
        }
        vc_sealer_free(s);
}

static void test_parse(void **st)
{
        (void)st;
        VcPolicy p;
        char g[65];
        assert_int_equal(vc_policy_parse("group:eng", &p, g, sizeof g), 0);
        assert_int_equal(p, VC_POLICY_GROUP);
        assert_string_equal(g, "eng");
        assert_int_equal(vc_policy_parse("group:", &p, g, sizeof g), -EINVAL);
        assert_int_equal(vc_policy_parse("group:a/b", &p, g, sizeof g), -EINVAL);
        assert_int_equal(vc_policy_parse("everything", &p, g, sizeof g), -EINVAL);
        VcComp c;
        assert_int_equal(vc_comp_parse("zstd", &c), 0);
        assert_int_equal(vc_comp_parse("lz4", &c), -EINVAL);
        vc_errclear();
}

/* An in-memory node store for the tree tests. */
typedef struct { uint8_t tag[32]; uint8_t *data; size_t len; } Node;
typedef struct { Node *n; size_t cnt, cap; uint64_t new_bytes; } Mem;

static int mem_put(const uint8_t tag[32], const uint8_t *d, size_t len, void *ctx)
{
        Mem *m = ctx;
        for (size_t i = 0; i < m->cnt; i++)
                if (memcmp(m->n[i].tag, tag, 32) == 0)
                        return 0;
        if (m->cnt == m->cap) {
                m->cap = m->cap ? 2 * m->cap : 64;
                m->n = realloc(m->n, m->cap * sizeof *m->n);
        }
        Node *x = &m->n[m->cnt++];
        memcpy(x->tag, tag, 32);
        x->data = malloc(len);
        memcpy(x->data, d, len);
        x->len = len;
        m->new_bytes += len;
        return 1;
}

static int mem_get(const uint8_t tag[32], uint8_t **buf, size_t *cap, size_t *len, void *ctx)
{
        Mem *m = ctx;
        for (size_t i = 0; i < m->cnt; i++)
                if (memcmp(m->n[i].tag, tag, 32) == 0) {
                        if (*cap < m->n[i].len) {
                                *buf = realloc(*buf, m->n[i].len);
                                *cap = m->n[i].len;
                        }
                        memcpy(*buf, m->n[i].data, m->n[i].len);
                        *len = m->n[i].len;
                        return 0;
                }
        return -ENOENT;
}

static void mem_free(Mem *m)
{
        for (size_t i = 0; i < m->cnt; i++)
                free(m->n[i].data);
        free(m->n);
}

static void test_tree(void **st)
{
        (void)st;
        uint8_t ns[32];
        vc_derive(secret1, "node", ns);
        uint64_t sizes[] = { 0, 1, 31, 32, 33, 1024, 1025, 40000 };
        for (size_t k = 0; k < VC_ARRAY_SIZE(sizes); k++) {
                uint64_t n = sizes[k];
                VcEntry *e = calloc(n + 1, sizeof *e), *back = calloc(n + 1, sizeof *back), root;
                for (uint64_t i = 0; i < n; i++)
                        if (!(i >= 100 && i < 3000)) /* a zero region */
                                for (int j = 0; j < 32; j++) {
                                        e[i].tag[j] = (uint8_t)rnd();
                                        e[i].key[j] = (uint8_t)rnd();
                                }
                Mem m = { 0 };
                assert_int_equal(vc_tree_build(ns, e, n, mem_put, &m, &root), 0);
                assert_int_equal(vc_tree_read(ns, &root, n, mem_get, &m, back), 0);
                assert_memory_equal(e, back, n * sizeof *e + 1);
                if (n >= 1024) {
                        /* change 1 % of the entries in a run: few new nodes */
                        uint64_t before = m.new_bytes;
                        for (uint64_t i = n / 2; i < n / 2 + n / 100; i++)
                                e[i].tag[0] ^= 1;
                        VcEntry root2;
                        assert_int_equal(vc_tree_build(ns, e, n, mem_put, &m, &root2), 0);
                        uint64_t added = m.new_bytes - before;
                        if (n >= 40000) /* < 3 % of a flat keyring */
                                assert_true(added * 100 <= n * 64 * 3);
                        assert_int_equal(vc_tree_read(ns, &root2, n, mem_get, &m, back), 0);
                        assert_memory_equal(e, back, n * sizeof *e);
                        /* the old version still reads */
                        assert_int_equal(vc_tree_read(ns, &root, n, mem_get, &m, back), 0);
                        /* another parcel's key is refused */
                        uint8_t ns2[32];
                        vc_derive(secret2, "node", ns2);
                        vc_errclear();
                        assert_int_equal(vc_tree_read(ns2, &root, n, mem_get, &m, back), -EKEYREJECTED);
                        /* a damaged node is named */
                        m.n[0].data[VC_NODE_HDR + 3] ^= 1;
                        vc_errclear();
                        int r = vc_tree_read(ns, &root, n, mem_get, &m, back);
                        int r2 = vc_tree_read(ns, &root2, n, mem_get, &m, back);
                        assert_true(r == -EBADMSG || r2 == -EBADMSG);
                        assert_non_null(strstr(vc_errmsg(-EBADMSG), "damaged"));
                        vc_errclear();
                }
                mem_free(&m);
                free(e);
                free(back);
        }
        assert_int_equal(vc_tree_height(0), 0);
        assert_int_equal(vc_tree_height(1), 1);
        assert_int_equal(vc_tree_height(32), 1);
        assert_int_equal(vc_tree_height(33), 2);
        assert_int_equal(vc_tree_height(1024), 2);
        assert_int_equal(vc_tree_height(1025), 3);
}

/* vc_nodes_get_fn over Mem: each tag's node, in the order asked. */
static int mem_nodes_get(const uint8_t *tags, size_t n, vc_node_got_fn got, void *gctx, void *ctx)
{
        Mem *m = ctx;
        for (size_t i = 0; i < n; i++) {
                size_t j = 0;
                while (j < m->cnt && memcmp(m->n[j].tag, tags + 32 * i, 32) != 0)
                        j++;
                if (j == m->cnt)
                        return -ENOENT;
                int r = got(i, m->n[j].data, m->n[j].len, gctx);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int count_put(const uint8_t tag[32], const uint8_t *d, size_t len, void *ctx)
{
        (void)tag; (void)d; (void)len;
        (*(uint64_t *)ctx)++;
        return 0;
}

/* A tree built from the previous one's nodes is the tree a full build
 * makes, and seals only the nodes whose children changed. */
static void test_tree_from(void **st)
{
        (void)st;
        uint8_t ns[32];
        vc_derive(secret1, "node", ns);
        struct { uint64_t prev, n; int change; } cases[] = {
                { 40000, 40000, 0 }, { 40000, 40000, 1 }, { 40000, 40000, 2 }, { 40000, 39990, 1 },
                { 40000, 41000, 1 }, { 1025, 1024, 0 }, { 1024, 1025, 0 }, { 33, 31, 0 }, { 1, 40000, 0 },
                { 40000, 1, 0 }, { 32, 32, 1 },
        };
        for (size_t k = 0; k < VC_ARRAY_SIZE(cases); k++) {
                uint64_t pn = cases[k].prev, n = cases[k].n, big = VC_MAX(pn, n);
                VcEntry *prev = calloc(big + 1, sizeof *prev), *e = calloc(big + 1, sizeof *e);
                VcEntry *back = calloc(pn + 1, sizeof *back);
                for (uint64_t i = 0; i < big; i++)
                        if (!(i >= 100 && i < 3000))
                                for (int j = 0; j < 32; j++) {
                                        prev[i].tag[j] = (uint8_t)rnd();
                                        prev[i].key[j] = (uint8_t)rnd();
                                }
                Mem m = { 0 };
                VcEntry proot, root, want;
                assert_int_equal(vc_tree_build(ns, prev, pn, mem_put, &m, &proot), 0);
                VcTreeNodes nodes;
                assert_int_equal(vc_tree_read_nodes(ns, &proot, pn, mem_nodes_get, &m, back, &nodes), 0);
                assert_memory_equal(prev, back, pn * sizeof *prev);
                if (k == 0) {
                        /* its 1250 leaves are read on two threads: a damaged
                         * node fails the read, whichever thread meets it,
                         * and its message reaches this thread */
                        const char *was = getenv("VMCAS_THREADS");
                        char keep[16] = "";
                        if (was)
                                snprintf(keep, sizeof keep, "%s", was);
                        setenv("VMCAS_THREADS", "2", 1);
                        assert_int_equal(vc_tree_read_nodes(ns, &proot, pn, mem_nodes_get, &m, back, NULL), 0);
                        assert_memory_equal(prev, back, pn * sizeof *prev);
                        m.n[m.cnt / 3].data[VC_NODE_HDR + 3] ^= 1;
                        vc_errclear();
                        assert_int_equal(vc_tree_read_nodes(ns, &proot, pn, mem_nodes_get, &m, back, NULL), -EBADMSG);
                        assert_non_null(strstr(vc_errmsg(-EBADMSG), "damaged"));
                        vc_errclear();
                        m.n[m.cnt / 3].data[VC_NODE_HDR + 3] ^= 1;
                        if (was)
                                setenv("VMCAS_THREADS", keep, 1);
                        else
                                unsetenv("VMCAS_THREADS");
                }
                memcpy(e, prev, big * sizeof *e);
                if (cases[k].change == 1)       /* a run of 1 % */
                        for (uint64_t i = n / 2; i < n / 2 + n / 100 + 1 && i < n; i++)
                                e[i].tag[0] ^= 1;
                if (cases[k].change == 2) {     /* the zero region written, a run zeroed */
                        for (uint64_t i = 200; i < 260; i++)
                                e[i].tag[5] = 7;
                        memset(e + 5000, 0, 500 * sizeof *e);
                }
                uint64_t puts_from = 0, puts_full = 0;
                assert_int_equal(vc_tree_build_from(ns, e, n, prev, pn, &nodes, count_put, &puts_from, &root), 0);
                assert_int_equal(vc_tree_build(ns, e, n, count_put, &puts_full, &want), 0);
                assert_memory_equal(&root, &want, sizeof root);
                if (n == pn && cases[k].change == 0)
                        assert_int_equal(puts_from, 0);
                if (n >= 1024 && n == pn)
                        assert_true(puts_from * 10 < puts_full);
                /* without the previous nodes, the same */
                uint64_t puts_none = 0;
                assert_int_equal(vc_tree_build_from(ns, e, n, prev, pn, NULL, count_put, &puts_none, &root), 0);
                assert_memory_equal(&root, &want, sizeof root);
                assert_int_equal(puts_none, puts_full);
                vc_tree_nodes_free(&nodes);
                vc_tree_nodes_free(&nodes);     /* twice is harmless */
                mem_free(&m);
                free(prev);
                free(e);
                free(back);
        }
}

static void test_gcm(void **st)
{
        (void)st;
        uint8_t k[32] = { 5 }, k2[32] = { 6 }, in[64], out[64 + VC_GCM_OVERHEAD], back[64];
        fill(in, 64, 0);
        assert_int_equal(vc_gcm_seal(k, "aad", 3, in, 64, out), 0);
        assert_int_equal(vc_gcm_open(k, "aad", 3, out, sizeof out, back), 0);
        assert_memory_equal(in, back, 64);
        assert_int_equal(vc_gcm_open(k2, "aad", 3, out, sizeof out, back), -EKEYREJECTED);
        assert_int_equal(vc_gcm_open(k, "aaX", 3, out, sizeof out, back), -EKEYREJECTED);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_roundtrip_all),
                cmocka_unit_test(test_convergence),
                cmocka_unit_test(test_rekey),
                cmocka_unit_test(test_parse),
                cmocka_unit_test(test_tree),
                cmocka_unit_test(test_tree_from),
                cmocka_unit_test(test_gcm),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
