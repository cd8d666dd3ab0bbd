/* gen_corpus — writes the seed corpora of the fuzz targets.
 *
 *   gen-fuzz-corpus DIR        (`make fuzz-corpus` runs it on fuzz/corpus)
 *
 * Every seed is made by the real code of libvmcas (vc_compress, vc_seal,
 * vc_tree_build, vc_parcel_pack, vc_version_pack, the pack and record
 * header encoders) from fixed data, so the output is the same on every
 * run; then a few malformed variants of each. Seeds are named seed-*, so
 * that regenerating never touches the inputs of crashes added by hand
 * (named crash-* as libFuzzer names them). The fixed secrets are those of
 * fuzz_seal.c and fuzz_node.c.
 */
#include "core/vc_compress.h"
#include "core/vc_hash.h"
#include "core/vc_keyring.h"
#include "core/vc_seal.h"
#include "core/vc_util.h"
#include "repo/vc_repo.h"
#include "store/vc_store_int.h"
#include "remote/vc_wire.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define PARCEL_SECRET 0x5a
#define GROUP_SECRET 0xa7
#define PLACEHOLDER_UUID "vmcas-fuzz-store"
#define PACK_DOMAIN 1

static const char *top;

static void die(const char *what)
{
        fprintf(stderr, "gen-fuzz-corpus: %s\n", what);
        exit(1);
}

static void put(const char *target, const char *name, const void *data, size_t n)
{
        char dir[PATH_MAX], path[PATH_MAX + 80];
        snprintf(dir, sizeof dir, "%s/%s", top, target);
        if (vc_mkdir_p(dir, 0755) < 0)
                die("cannot create a corpus directory");
        snprintf(path, sizeof path, "%s/seed-%s", dir, name);
        FILE *f = fopen(path, "wb");
        if (!f || fwrite(data, 1, n, f) != n || fclose(f) != 0)
                die("cannot write a seed");
}

static void puts_seed(const char *target, const char *name, const char *text)
{
        put(target, name, text, strlen(text));
}

/* xorshift64: fixed pseudo-random bytes. */
static uint64_t rng = 0x9e3779b97f4a7c15ull;
static uint8_t rnd8(void)
{
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        return (uint8_t)(rng >> 24);
}
static void rnd(void *p, size_t n)
{
        for (size_t i = 0; i < n; i++)
                ((uint8_t *)p)[i] = rnd8();
}

/* A chunk that compresses: lines of text with a counter. */
static void text_chunk(uint8_t *p, size_t n, unsigned seed)
{
        size_t o = 0;
        for (unsigned i = 0; o < n; i++) {
                char line[64];
                int k = snprintf(line, sizeof line, "block %u of image %u: all work and no play\n", i, seed);
                for (int j = 0; j < k && o < n; j++)
                        p[o++] = (uint8_t)line[j];
        }
}

/* ---- decompress: u8 alg ‖ u24 want ‖ stream ---------------------------- */

static void decomp_seed(const char *name, unsigned alg, size_t want, const void *s, size_t n)
{
        uint8_t *b = malloc(4 + n);
        b[0] = (uint8_t)alg;
        b[1] = (uint8_t)want;
        b[2] = (uint8_t)(want >> 8);
        b[3] = (uint8_t)(want >> 16);
        memcpy(b + 4, s, n);
        put("decompress", name, b, 4 + n);
        free(b);
}

static void gen_decompress(void)
{
        VcCompressor *c;
        if (vc_compressor_new(&c) < 0)
                die("compressor");
        static uint8_t chunk[16384], z[16384];
        text_chunk(chunk, sizeof chunk, 1);
        static const char *const names[] = { "none", "gzip", "zstd" };
        for (unsigned alg = 1; alg <= 2; alg++) {
                char name[64];
                for (size_t n = 4096; n <= sizeof chunk; n *= 4) {
                        ssize_t k = vc_compress(c, alg, z, sizeof z, chunk, n);
                        if (k <= 0)
                                die("compress");
                        snprintf(name, sizeof name, "%s-%zu", names[alg], n);
                        decomp_seed(name, alg, n, z, (size_t)k);
                        if (n == 4096) {
                                snprintf(name, sizeof name, "%s-truncated", names[alg]);
                                decomp_seed(name, alg, n, z, (size_t)k / 2);
                                snprintf(name, sizeof name, "%s-want-more", names[alg]);
                                decomp_seed(name, alg, n + 1, z, (size_t)k);
                                snprintf(name, sizeof name, "%s-want-less", names[alg]);
                                decomp_seed(name, alg, n - 1, z, (size_t)k);
                                uint8_t two[2 * sizeof z];
                                memcpy(two, z, (size_t)k);
                                memcpy(two + k, z, (size_t)k);
                                snprintf(name, sizeof name, "%s-two-streams", names[alg]);
                                decomp_seed(name, alg, 2 * n, two, 2 * (size_t)k);
                                z[k / 3] ^= 0x40;
                                snprintf(name, sizeof name, "%s-flipped", names[alg]);
                                decomp_seed(name, alg, n, z, (size_t)k);
                        }
                }
        }
        decomp_seed("none-4096", 0, 4096, chunk, 4096);
        decomp_seed("none-short", 0, 4096, chunk, 4000);
        decomp_seed("gzip-empty", 1, 0, "", 0);
        decomp_seed("zstd-garbage", 2, 4096, "\x28\xb5\x2f\xfd garbage", 12);
        vc_compressor_free(c);
}

/* ---- seal: u8 control ‖ key[32] ‖ sealed chunk --------------------------- */

static VcSealer *sealer(VcPolicy p, VcComp comp)
{
        uint8_t secret[VC_KEY_LEN];
        memset(secret, p == VC_POLICY_GROUP ? GROUP_SECRET : PARCEL_SECRET, sizeof secret);
        VcSealer *s;
        if (vc_sealer_new(p, comp, p == VC_POLICY_ALL ? NULL : secret, &s) < 0)
                die("sealer");
        static const uint8_t salt[8] = { 8, 7, 6, 5, 4, 3, 2, 1 };
        vc_sealer_set_salt(s, salt);
        return s;
}

static void seal_seed(const char *name, unsigned ctl, const uint8_t key[VC_KEY_LEN], const uint8_t *sealed,
                      size_t len)
{
        uint8_t *b = malloc(1 + VC_KEY_LEN + len);
        b[0] = (uint8_t)ctl;
        memcpy(b + 1, key, VC_KEY_LEN);
        memcpy(b + 1 + VC_KEY_LEN, sealed, len);
        put("seal", name, b, 1 + VC_KEY_LEN + len);
        free(b);
}

static void gen_seal(void)
{
        static const char *const pn[] = { "delta", "ip", "group", "all" };
        static const char *const cn[] = { "none", "gzip", "zstd" };
        static uint8_t chunk[4096], noise[4096], out[VC_SEAL_HDR + VC_SEAL_NONCE + 4096];
        text_chunk(chunk, sizeof chunk, 2);
        rnd(noise, sizeof noise);
        for (int p = 0; p < 4; p++)
                for (int c = 0; c < 3; c++) {
                        VcSealer *s = sealer((VcPolicy)p, (VcComp)c);
                        uint8_t key[VC_KEY_LEN], tag[VC_HASH_LEN];
                        size_t len;
                        const uint8_t *data = c == VC_COMP_NONE && p % 2 ? noise : chunk;
                        vc_chunk_key(s, data, sizeof chunk, key);
                        if (vc_seal(s, data, sizeof chunk, key, 3, out, sizeof out, &len, tag) < 0)
                                die("seal");
                        char name[64];
                        snprintf(name, sizeof name, "%s-%s", pn[p], cn[c]);
                        seal_seed(name, (unsigned)p | 4, key, out, len);
                        if (c == VC_COMP_ZSTD) {
                                /* the same, opened without check_key, with a wrong key */
                                uint8_t wrong[VC_KEY_LEN];
                                memcpy(wrong, key, sizeof wrong);
                                wrong[0] ^= 1;
                                snprintf(name, sizeof name, "%s-%s-wrong-key", pn[p], cn[c]);
                                seal_seed(name, (unsigned)p | 4, wrong, out, len);
                                snprintf(name, sizeof name, "%s-%s-no-check", pn[p], cn[c]);
                                seal_seed(name, (unsigned)p, wrong, out, len);
                                snprintf(name, sizeof name, "%s-%s-bad-tag", pn[p], cn[c]);
                                seal_seed(name, (unsigned)p | 4 | 8, key, out, len);
                                snprintf(name, sizeof name, "%s-%s-want-less", pn[p], cn[c]);
                                seal_seed(name, (unsigned)p | 4 | 16, key, out, len);
                                /* header faults */
                                uint8_t bad[sizeof out];
                                memcpy(bad, out, len);
                                bad[3] |= 3;
                                snprintf(name, sizeof name, "%s-bad-comp", pn[p]);
                                seal_seed(name, (unsigned)p | 4, key, bad, len);
                                memcpy(bad, out, len);
                                bad[3] ^= 4;
                                snprintf(name, sizeof name, "%s-nonce-flag", pn[p]);
                                seal_seed(name, (unsigned)p | 4, key, bad, len);
                                snprintf(name, sizeof name, "%s-truncated", pn[p]);
                                seal_seed(name, (unsigned)p | 4, key, out, len / 2);
                        }
                        vc_sealer_free(s);
                }
        uint8_t key[VC_KEY_LEN] = { 0 };
        seal_seed("empty", 3, key, (const uint8_t *)"", 0);
        seal_seed("header-only", 3 | 4, key, (const uint8_t *)"VC\x01\x00\x00\x00\x00\x00", 8);
}

/* ---- keyring nodes: u32 n ‖ u8 control ‖ root key[32] ‖ (u16 len ‖ node)... */

#define MAX_GEN_NODES 64

typedef struct {
        uint8_t tag[MAX_GEN_NODES][VC_HASH_LEN];
        uint8_t node[MAX_GEN_NODES][VC_NODE_MAX];
        size_t len[MAX_GEN_NODES];
        size_t n;
} NodeSet;

static int node_put(const uint8_t tag[VC_HASH_LEN], const uint8_t *sealed, size_t len, void *ctx)
{
        NodeSet *ns = ctx;
        for (size_t i = 0; i < ns->n; i++)
                if (memcmp(ns->tag[i], tag, VC_HASH_LEN) == 0)
                        return 0;
        if (ns->n == MAX_GEN_NODES)
                die("too many nodes");
        memcpy(ns->tag[ns->n], tag, VC_HASH_LEN);
        memcpy(ns->node[ns->n], sealed, len);
        ns->len[ns->n++] = len;
        return 0;
}

/* Writes n ‖ control ‖ root key ‖ nodes with the root first (or, with
 * skip, without node skip), n_said standing for n. */
static void node_seed(const char *name, const NodeSet *ns, const VcEntry *root, uint32_t n_said, size_t skip,
                      unsigned ctl)
{
        size_t cap = 5 + VC_KEY_LEN + ns->n * (2 + VC_NODE_MAX), o = 0;
        uint8_t *b = malloc(cap);
        vc_put32(b, n_said);
        b[4] = (uint8_t)ctl;
        memcpy(b + 5, root->key, VC_KEY_LEN);
        o = 5 + VC_KEY_LEN;
        size_t ri = ns->n;
        for (size_t i = 0; i < ns->n; i++)
                if (memcmp(ns->tag[i], root->tag, VC_HASH_LEN) == 0)
                        ri = i;
        for (size_t pass = 0; pass < 2; pass++)
                for (size_t i = 0; i < ns->n; i++) {
                        if ((pass == 0) != (i == ri) || i == skip)
                                continue;
                        vc_put16(b + o, (uint16_t)ns->len[i]);
                        memcpy(b + o + 2, ns->node[i], ns->len[i]);
                        o += 2 + ns->len[i];
                }
        put("node", name, b, o);
        free(b);
}

/* A tree of n entries, of which those in [a0, a1) and [b0, b1) are set
 * (the rest are zero chunks). */
static void tree_seed(const char *name, uint32_t n, uint32_t a0, uint32_t a1, uint32_t b0, uint32_t b1)
{
        uint8_t parcel[VC_KEY_LEN], secret[VC_KEY_LEN];
        memset(parcel, PARCEL_SECRET, sizeof parcel);
        vc_derive(parcel, "node", secret);
        VcEntry *e = calloc(n, sizeof *e);
        for (uint32_t i = 0; i < n; i++)
                if ((i >= a0 && i < a1) || (i >= b0 && i < b1))
                        rnd(&e[i], sizeof e[i]);
        static NodeSet ns;
        ns.n = 0;
        VcEntry root;
        if (vc_tree_build(secret, e, n, node_put, &ns, &root) < 0)
                die("tree");
        char nm[64];
        snprintf(nm, sizeof nm, "%s", name);
        node_seed(nm, &ns, &root, n, SIZE_MAX, 0);
        if (ns.n > 1) {
                snprintf(nm, sizeof nm, "%s-missing-node", name);
                node_seed(nm, &ns, &root, n, ns.n - 2, 0);
                /* batches delivered backwards, twice, or short of one node */
                static const char *const how[] = { "", "reversed", "twice", "reversed-twice", "one-skipped" };
                for (unsigned c = 1; c <= 4; c++) {
                        snprintf(nm, sizeof nm, "%s-%s", name, how[c]);
                        node_seed(nm, &ns, &root, n, SIZE_MAX, c);
                }
        }
        snprintf(nm, sizeof nm, "%s-n-plus-one", name);
        node_seed(nm, &ns, &root, n + 1, SIZE_MAX, 0);
        snprintf(nm, sizeof nm, "%s-n-times-32", name);
        node_seed(nm, &ns, &root, n * 32, SIZE_MAX, 0);
        VcEntry wrong = root;
        wrong.key[5] ^= 0x10;
        snprintf(nm, sizeof nm, "%s-wrong-key", name);
        node_seed(nm, &ns, &wrong, n, SIZE_MAX, 0);
        free(e);
}

static void gen_node(void)
{
        tree_seed("leaf-1", 1, 0, 1, 0, 0);
        tree_seed("leaf-32", 32, 0, 32, 0, 0);
        tree_seed("h2-40", 40, 0, 40, 0, 0);
        tree_seed("h3-sparse-1100", 1100, 0, 3, 1090, 1100);
        tree_seed("h4-sparse-33000", 33000, 5, 6, 32990, 33000);
        /* not a node; a node of another format version */
        uint8_t b[5 + VC_KEY_LEN + 2 + 16] = { 1 };
        vc_put16(b + 5 + VC_KEY_LEN, 16);
        memcpy(b + 5 + VC_KEY_LEN + 2, "VK\x02\x00\x01\x00\x00\x00 not a node", 16);
        put("node", "bad-version", b, sizeof b);
}

/* ---- parcel and version records ------------------------------------------- */

static void parcel_seed(const char *name, VcPolicy pol, VcComp comp, const char *group, uint32_t cs)
{
        VcParcel p = { .policy = pol, .comp = comp, .chunk_size = cs, .mem_size = 64u << 20,
                       .disk_size = 192u << 20, .created = 1764093545 };
        snprintf(p.name, sizeof p.name, "alice-xp");
        snprintf(p.group, sizeof p.group, "%s", group);
        rnd(p.uuid, sizeof p.uuid);
        rnd(p.check, sizeof p.check);
        if (*group)
                rnd(p.group_check, sizeof p.group_check);
        vc_parcel_domains(&p);
        /* Stands for the MAC under the parcel's key: opaque to unpack. */
        rnd(p.mac, sizeof p.mac);
        uint8_t b[VC_PARCEL_REC_MAX];
        size_t len;
        if (vc_parcel_pack(&p, b, sizeof b, &len) < 0)
                die("parcel pack");
        put("parcel", name, b, len);
}

static void gen_parcel(void)
{
        parcel_seed("delta", VC_POLICY_DELTA, VC_COMP_GZIP, "", 16384);
        parcel_seed("ip", VC_POLICY_IP, VC_COMP_NONE, "", 4096);
        parcel_seed("group", VC_POLICY_GROUP, VC_COMP_ZSTD, "staff", 128u << 10);
        parcel_seed("group-long-name", VC_POLICY_GROUP, VC_COMP_ZSTD,
                    "a-group-name-of-sixty-four-characters-0123456789-abcdefghijklmno", 512u << 10);
        parcel_seed("all", VC_POLICY_ALL, VC_COMP_ZSTD, "", 65536);
        /* malformed: what unpack must refuse */
        parcel_seed("chunk-size-3k", VC_POLICY_IP, VC_COMP_ZSTD, "", 3072);
        parcel_seed("chunk-size-1m", VC_POLICY_IP, VC_COMP_ZSTD, "", 1u << 20);
        parcel_seed("group-name-without-group", VC_POLICY_IP, VC_COMP_ZSTD, "staff", 4096);
        parcel_seed("group-without-name", VC_POLICY_GROUP, VC_COMP_ZSTD, "", 4096);
        parcel_seed("group-bad-name", VC_POLICY_GROUP, VC_COMP_ZSTD, "-x/y", 4096);
        uint8_t b[VC_PARCEL_REC_MAX];
        size_t len;
        VcParcel p = { .policy = VC_POLICY_GROUP, .chunk_size = 4096 };
        snprintf(p.group, sizeof p.group, "eng");
        vc_parcel_domains(&p);
        vc_parcel_pack(&p, b, sizeof b, &len);
        put("parcel", "short", b, len - 1);
        b[VC_PARCEL_REC_FIXED] = 200;           /* the group name runs past the end */
        put("parcel", "group-too-long", b, len);
        b[VC_PARCEL_REC_FIXED] = 3;
        b[VC_PARCEL_REC_FIXED + 5 + 7] = 'X';   /* node domain "parcel:" + not hex */
        put("parcel", "bad-node-domain", b, len);
        b[VC_PARCEL_REC_FIXED + 5 + 7] = '0';
        b[4] = 1;                               /* a format-1 record */
        put("parcel", "format-1", b, len);
        b[4] = 3;
        put("parcel", "format-3", b, len);
        puts_seed("parcel", "magic-only", "VPAR");
}

static void gen_version(void)
{
        VcVersion v = { .version = 3, .timestamp = 1764093546, .seq = 12, .mem_size = 64u << 20,
                        .disk_size = 192u << 20, .new_chunks = 3044, .new_bytes = 10630936,
                        .meta_bytes = 291164 };
        rnd(v.mem_root, sizeof v.mem_root);
        rnd(v.disk_root, sizeof v.disk_root);
        /* Stands for the GCM-sealed root keys: opaque to the parser. */
        rnd(v.wrapped, sizeof v.wrapped);
        uint8_t b[VC_VERSION_REC_LEN];
        /* format 2: what a development build wrote, still read */
        v.format = 2;
        put("version", "format-2", b, vc_version_pack(&v, b));
        v.format = VC_VERSION_FORMAT;
        v.machine_size = 365555;
        rnd(v.machine_root, sizeof v.machine_root);
        v.order_size = 8 * 1200;
        rnd(v.order_root, sizeof v.order_root);
        vc_version_pack(&v, b);
        put("version", "v3-machine", b, sizeof b);
        v.machine_size = v.order_size = 0;
        memset(v.machine_root, 0, 32);
        memset(v.order_root, 0, 32);
        vc_version_pack(&v, b);
        put("version", "v3", b, sizeof b);
        v.version = 1;
        v.timestamp = -1;
        memset(v.disk_root, 0, sizeof v.disk_root);
        vc_version_pack(&v, b);
        put("version", "v1-empty-disk", b, sizeof b);
        put("version", "short", b, sizeof b - 1);
        b[4] = 1;
        put("version", "format-1", b, sizeof b);
        b[4] = VC_VERSION_FORMAT;
        b[6] = 9;
        put("version", "reserved-set", b, sizeof b);
}

/* ---- catalog copies: what repair rebuilds the catalog from ------------------ */

static size_t catcopy(uint8_t *b, size_t cap, int type, const char *name, const char *owner, uint32_t version,
                      const uint8_t *rec, size_t rec_len)
{
        VcCatCopy c = { .type = type, .version = version, .rec = rec, .rec_len = rec_len };
        snprintf(c.name, sizeof c.name, "%s", name);
        snprintf(c.owner, sizeof c.owner, "%s", owner);
        size_t len;
        if (vc_catcopy_pack(&c, b, cap, &len) < 0)
                die("catcopy pack");
        return len;
}

/* The copies a parcel with three versions, the first pruned, leaves in
 * its packs: its record, its version records, the prune. */
typedef struct {
        uint8_t b[8][VC_CATCOPY_MAX];
        size_t len[8];
        size_t n;
} Copies;

static void catalog_copies(Copies *cs, const char *name)
{
        VcParcel p = { .policy = VC_POLICY_IP, .comp = VC_COMP_ZSTD, .chunk_size = 4096, .mem_size = 1u << 20,
                       .disk_size = 4u << 20, .created = 1764093545 };
        snprintf(p.name, sizeof p.name, "%s", name);
        rnd(p.uuid, sizeof p.uuid);
        rnd(p.check, sizeof p.check);
        vc_parcel_domains(&p);
        rnd(p.mac, sizeof p.mac);
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t rl;
        if (vc_parcel_pack(&p, rec, sizeof rec, &rl) < 0)
                die("parcel pack");
        cs->n = 0;
        cs->len[cs->n] = catcopy(cs->b[cs->n], sizeof cs->b[0], VC_CAT_PARCEL, name, "alice", 0, rec, rl);
        cs->n++;
        for (uint32_t k = 1; k <= 3; k++) {
                VcVersion v = { .version = k, .timestamp = 1764093545 + 3600 * k, .mem_size = p.mem_size,
                                .disk_size = p.disk_size, .new_chunks = k, .new_bytes = 4096 * k,
                                .meta_bytes = 136 };
                memcpy(v.uuid, p.uuid, 16);
                rnd(v.mem_root, sizeof v.mem_root);
                rnd(v.disk_root, sizeof v.disk_root);
                rnd(v.wrapped, sizeof v.wrapped);
                uint8_t vr[VC_VERSION_REC_LEN];
                vc_version_pack(&v, vr);
                cs->len[cs->n] = catcopy(cs->b[cs->n], sizeof cs->b[0], VC_CAT_VERSION, name, "", k, vr, sizeof vr);
                cs->n++;
        }
        cs->len[cs->n] = catcopy(cs->b[cs->n], sizeof cs->b[0], VC_CAT_PRUNE, name, "", 1, NULL, 0);
        cs->n++;
}

static void gen_catcopy(void)
{
        static Copies cs;
        catalog_copies(&cs, "alice-xp");
        static const char *const names[] = { "parcel", "version-1", "version-2", "version-3", "prune" };
        for (size_t i = 0; i < cs.n; i++)
                put("catcopy", names[i], cs.b[i], cs.len[i]);
        uint8_t b[VC_CATCOPY_MAX];
        memcpy(b, cs.b[1], cs.len[1]);
        put("catcopy", "version-short", b, cs.len[1] - 1);
        b[5] = 4;
        put("catcopy", "type-4", b, cs.len[1]);
        memcpy(b, cs.b[0], cs.len[0]);
        b[7] = '/';
        put("catcopy", "bad-name", b, cs.len[0]);
        b[7] = cs.b[0][7];
        b[6] = 0;
        put("catcopy", "empty-name", b, cs.len[0]);
        memcpy(b, cs.b[4], cs.len[4]);
        b[cs.len[4]] = 'x';
        put("catcopy", "prune-with-record", b, cs.len[4] + 1);
        puts_seed("catcopy", "magic-only", "VCAT");
}

/* ---- packs: header ‖ records ------------------------------------------------- */

typedef struct {
        uint8_t *b;
        size_t n, cap;
} Buf;

static void buf_add(Buf *x, const void *p, size_t n)
{
        if (x->n + n > x->cap) {
                x->cap = (x->n + n) * 2;
                x->b = realloc(x->b, x->cap);
        }
        memcpy(x->b + x->n, p, n);
        x->n += n;
}

static void pack_hdr(Buf *x, uint64_t domain, const char *uuid)
{
        VcPackHdr h = { .domain = domain, .pack = 1, .created = 1764093545 };
        memcpy(h.uuid, uuid, VC_UUID_LEN);
        uint8_t b[VC_PACK_HDR_LEN];
        vc_pack_hdr_encode(&h, b);
        buf_add(x, b, sizeof b);
}

static size_t pack_rec(Buf *x, uint64_t domain, int kind, const uint8_t *data, size_t len)
{
        VcRecHdr h = { .kind = kind, .domain = domain, .len = (uint32_t)len };
        vc_sha256(data, len, h.tag);
        uint8_t b[VC_REC_HDR_LEN];
        vc_rec_hdr_encode(&h, b);
        size_t at = x->n;
        buf_add(x, b, sizeof b);
        buf_add(x, data, len);
        return at;
}

/* A pack as a checkin of 6 chunks writes it: sealed chunks (data) and the
 * keyring node over them (meta); offsets of the records in off[]. */
static void real_pack(Buf *x, size_t off[8], size_t *nrec)
{
        VcSealer *s = sealer(VC_POLICY_IP, VC_COMP_ZSTD);
        VcEntry e[6];
        static uint8_t chunk[4096], out[VC_SEAL_HDR + VC_SEAL_NONCE + 4096];
        size_t k = 0;
        pack_hdr(x, PACK_DOMAIN, PLACEHOLDER_UUID);
        for (int i = 0; i < 6; i++) {
                size_t len;
                text_chunk(chunk, sizeof chunk, 10 + (unsigned)i);
                vc_chunk_key(s, chunk, sizeof chunk, e[i].key);
                if (vc_seal(s, chunk, sizeof chunk, e[i].key, (uint64_t)i, out, sizeof out, &len, e[i].tag) < 0)
                        die("seal");
                off[k++] = pack_rec(x, PACK_DOMAIN, VC_KIND_DATA, out, len);
        }
        uint8_t parcel[VC_KEY_LEN], secret[VC_KEY_LEN];
        memset(parcel, PARCEL_SECRET, sizeof parcel);
        vc_derive(parcel, "node", secret);
        static NodeSet ns;
        ns.n = 0;
        VcEntry root;
        if (vc_tree_build(secret, e, 6, node_put, &ns, &root) < 0)
                die("tree");
        for (size_t i = 0; i < ns.n; i++)
                off[k++] = pack_rec(x, PACK_DOMAIN, VC_KIND_META, ns.node[i], ns.len[i]);
        *nrec = k;
        vc_sealer_free(s);
}

static void pack_seed(const char *name, const Buf *x)
{
        put("pack", name, x->b, x->n);
        put("reindex", name, x->b, x->n);
}

static void gen_pack(void)
{
        Buf x = { 0 };
        size_t off[8], nrec;
        real_pack(&x, off, &nrec);
        pack_seed("clean", &x);

        Buf y = { 0 };
        buf_add(&y, x.b, x.n);
        y.b[off[2] + 20] ^= 1;                  /* a record header's CRC fails: resync */
        pack_seed("damaged-record-header", &y);
        memcpy(y.b, x.b, x.n);
        y.b[off[3] + VC_REC_HDR_LEN + 9] ^= 1;  /* a record's data no longer match its tag */
        pack_seed("damaged-record-data", &y);
        memcpy(y.b, x.b, x.n);
        y.b[13] ^= 1;                           /* the pack header's CRC fails */
        pack_seed("damaged-pack-header", &y);
        y.n = off[nrec - 1] + VC_REC_HDR_LEN + 10;  /* a torn tail */
        memcpy(y.b, x.b, x.n);
        pack_seed("torn-tail", &y);
        y.n = off[4] + 30;                      /* torn in a header */
        pack_seed("torn-header", &y);

        /* gc punched the dead records 2 and 3: a filler over them (kind
         * free, zero tag, their bytes as its "data", a hole under it) */
        memcpy(y.b, x.b, x.n);
        y.n = x.n;
        {
                VcRecHdr f = { .kind = VC_KIND_FREE, .domain = PACK_DOMAIN,
                               .len = (uint32_t)(off[4] - off[2] - VC_REC_HDR_LEN) };
                vc_rec_hdr_encode(&f, y.b + off[2]);
                memset(y.b + off[2] + VC_REC_HDR_LEN, 0, f.len);
                pack_seed("punched", &y);
                y.n = off[2] + VC_REC_HDR_LEN + 100;    /* a filler past the end */
                pack_seed("punched-torn", &y);
        }
        free(y.b);

        Buf z = { 0 };                          /* another store's pack */
        pack_hdr(&z, PACK_DOMAIN, "another-store-id");
        buf_add(&z, x.b + VC_PACK_HDR_LEN, x.n - VC_PACK_HDR_LEN);
        pack_seed("other-store", &z);
        z.n = 0;                                /* records of another domain among ours */
        pack_hdr(&z, PACK_DOMAIN, PLACEHOLDER_UUID);
        static uint8_t junk[300];
        rnd(junk, sizeof junk);
        pack_rec(&z, PACK_DOMAIN, VC_KIND_DATA, junk, 100);
        pack_rec(&z, PACK_DOMAIN + 1, VC_KIND_DATA, junk + 100, 100);
        buf_add(&z, junk, 37);                  /* garbage between records */
        pack_rec(&z, PACK_DOMAIN, VC_KIND_META, junk + 200, 100);
        pack_rec(&z, PACK_DOMAIN, VC_KIND_DATA, junk, 100);    /* a second copy */
        pack_seed("mixed", &z);
        z.n = 0;
        pack_hdr(&z, PACK_DOMAIN, PLACEHOLDER_UUID);
        pack_seed("header-only", &z);

        /* catalog copies, as checkins and a prune leave them */
        static Copies cs, other;
        catalog_copies(&cs, "alice-xp");
        catalog_copies(&other, "bob");
        z.n = 0;
        pack_hdr(&z, PACK_DOMAIN, PLACEHOLDER_UUID);
        for (size_t i = 0; i < cs.n; i++)
                pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, cs.b[i], cs.len[i]);
        buf_add(&z, x.b + VC_PACK_HDR_LEN, x.n - VC_PACK_HDR_LEN);     /* and the chunks */
        pack_seed("catalog", &z);
        z.n = 0;                                /* copies that do not fit together */
        pack_hdr(&z, PACK_DOMAIN, PLACEHOLDER_UUID);
        pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, cs.b[0], cs.len[0]);
        pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, other.b[0], other.len[0]);
        {
                /* bob's record under alice's name: the first record of a name wins */
                uint8_t b[VC_CATCOPY_MAX];
                memcpy(b, other.b[0], other.len[0]);
                size_t nl = other.b[0][6];
                uint8_t c2[VC_CATCOPY_MAX];
                size_t l2 = catcopy(c2, sizeof c2, VC_CAT_PARCEL, "alice-xp", "mallory", 0, b + 7 + nl + 1 + b[7 + nl],
                                    other.len[0] - (7 + nl + 1 + b[7 + nl]));
                pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, c2, l2);
        }
        pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, other.b[2], other.len[2]);   /* bob v2, no v1 */
        {
                /* a version of bob filed under alice */
                uint8_t c2[VC_CATCOPY_MAX];
                size_t nl = other.b[3][6];
                size_t l2 = catcopy(c2, sizeof c2, VC_CAT_VERSION, "alice-xp", "", 3, other.b[3] + 7 + nl + 4,
                                    VC_VERSION_REC_LEN);
                pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, c2, l2);
                /* a copy saying version 2 around the record of version 1 */
                nl = cs.b[1][6];
                l2 = catcopy(c2, sizeof c2, VC_CAT_VERSION, "alice-xp", "", 2, cs.b[1] + 7 + nl + 4,
                             VC_VERSION_REC_LEN);
                pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, c2, l2);
        }
        pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, cs.b[4], cs.len[4]);         /* a prune of nothing kept */
        pack_rec(&z, PACK_DOMAIN, VC_KIND_CATALOG, (const uint8_t *)"VCAT junk", 9);
        pack_seed("catalog-mixed", &z);
        free(z.b);
        free(x.b);
}

/* ---- key files ----------------------------------------------------------------- */

static void gen_keyfile(void)
{
        const char *hex = "6f1c0c5d3c1a9e0b8f5e2d7a4b6c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f8";
        char b[256];
        snprintf(b, sizeof b, "vmcas-key 1\n%s\n", hex);
        puts_seed("keyfile", "valid", b);
        snprintf(b, sizeof b, "vmcas-key 1\n%s", hex);
        puts_seed("keyfile", "no-newline", b);
        snprintf(b, sizeof b, "vmcas-key 1\n%s\ntrailing words\n", hex);
        puts_seed("keyfile", "trailing", b);
        snprintf(b, sizeof b, "vmcas-key 1\n6F1C0C5D3C1A9E0B8F5E2D7A4B6C8D9E0F1A2B3C4D5E6F708192A3B4C5D6E7F8\n");
        puts_seed("keyfile", "upper-case", b);
        snprintf(b, sizeof b, "vmcas-key 1\n%.63s\n", hex);
        puts_seed("keyfile", "short", b);
        snprintf(b, sizeof b, "vmcas-key 1\n%.40sxyz%s\n", hex, hex + 43);
        puts_seed("keyfile", "not-hex", b);
        snprintf(b, sizeof b, "vmcas-key 2\n%s\n", hex);
        puts_seed("keyfile", "version-2", b);
        snprintf(b, sizeof b, "vmcas-key 1\r\n%s\r\n", hex);
        puts_seed("keyfile", "crlf", b);
        puts_seed("keyfile", "empty", "");
}

/* ---- trace manifests (fuzz_trace.c provides m1 m2 m3 d1 d2 s e sub/x) ---------- */

static void gen_trace(void)
{
        puts_seed("trace", "one-parcel",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\n"
                  "alice\t1\t1700000000\tm1\td1\n"
                  "alice\t2\t1700086400\tm2\td2\n");
        puts_seed("trace", "two-parcels-reordered",
                  "# a comment\n"
                  "disk\tmemory\tparcel\ttimestamp\tversion\n"
                  "\n"
                  "d1\tm1\tbob\t-5\t1\n"
                  "d1\tsub/x\talice\t100\t1\n"
                  "d2\tm3\tbob\t-5\t2\n"
                  "d2\tm2\talice\t900000\t2\n"
                  "d1\tm1\talice\t900000\t3\n");
        puts_seed("trace", "crlf-extra-column",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\tnote\r\n"
                  "p.1_x-y\t1\t0\ts\te\tfirst\r\n"
                  "p.1_x-y\t2\t86399\ts\te\tsecond\r\n");
        puts_seed("trace", "gap",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t1\tm1\td1\nalice\t3\t2\tm1\td1\n");
        puts_seed("trace", "twice",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t1\tm1\td1\nalice\t1\t2\tm1\td1\n");
        puts_seed("trace", "size-change",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t1\tm1\td1\nalice\t2\t2\ts\td1\n");
        puts_seed("trace", "time-goes-back",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t10\tm1\td1\nalice\t2\t2\tm1\td1\n");
        puts_seed("trace", "too-many-days",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t0\tm1\td1\n"
                  "alice\t2\t9223372036854775807\tm1\td1\n");
        puts_seed("trace", "min-timestamp",
                  "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t-9223372036854775808\tm1\td1\n");
        puts_seed("trace", "no-header-column", "parcel\tversion\ttimestamp\tmemory\nalice\t1\t1\tm1\n");
        puts_seed("trace", "column-twice", "parcel\tversion\tparcel\ttimestamp\tmemory\tdisk\n");
        puts_seed("trace", "fields", "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t1\tm1\n");
        puts_seed("trace", "bad-name", "parcel\tversion\ttimestamp\tmemory\tdisk\nal ice\t1\t1\tm1\td1\n");
        puts_seed("trace", "bad-version", "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t0\t1\tm1\td1\n");
        puts_seed("trace", "missing-image", "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t1\tm9\td1\n");
        puts_seed("trace", "directory-image", "parcel\tversion\ttimestamp\tmemory\tdisk\nalice\t1\t1\tsub\td1\n");
        puts_seed("trace", "header-only", "parcel\tversion\ttimestamp\tmemory\tdisk\n");
        put("trace", "nul", "parcel\tversion\0", 15);
        puts_seed("trace", "empty", "");
}

/* ---- the server: request heads and the users file ---------------------------- */

static void gen_wire(void)
{
        uint8_t b[VC_WIRE_HEAD_MAX + 40];
        size_t n = vc_wire_head(b, "alice-xp", "parcel:000102030405060708090a0b0c0d0e0f", 3);
        memset(b + n, 0x42, 32);                /* the first tag after it */
        put("wire", "head-parcel", b, n + 32);
        put("wire", "head-cut", b, n - 2);
        n = vc_wire_head(b, "bob", "group:staff", 1000);
        put("wire", "head-group", b, n);
        n = vc_wire_head(b, "carol", "all", 0);
        put("wire", "head-all", b, n);
        b[1] = '/';
        put("wire", "bad-parcel", b, n);
        n = vc_wire_head(b, "carol", "nowhere", 1);
        put("wire", "bad-domain", b, n);
        put("wire", "empty-name", "\0\3all\1\0\0\0", 9);
}

static void gen_users(void)
{
        puts_seed("users", "two",
                  "vmcas-users 1\n"
                  "alice admin 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n"
                  "# a comment\n"
                  "bob user\t5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9\n");
        puts_seed("users", "zero-token",
                  "vmcas-users 1\n"
                  "z user 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n");
        puts_seed("users", "twice",
                  "vmcas-users 1\n"
                  "alice user 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n"
                  "alice admin 5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9\n");
        puts_seed("users", "bad-role",
                  "vmcas-users 1\nalice root 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925\n");
        puts_seed("users", "short-hash", "vmcas-users 1\nalice user 66687aadf862bd776c8fc1\n");
        puts_seed("users", "extra-field",
                  "vmcas-users 1\n"
                  "alice user 66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925 x\n");
        puts_seed("users", "version-2", "vmcas-users 2\n");
        puts_seed("users", "header-only", "vmcas-users 1\n");
        puts_seed("users", "empty", "");
}

int main(int argc, char **argv)
{
        if (argc != 2) {
                fprintf(stderr, "usage: %s CORPUS-DIR\n", argv[0]);
                return 2;
        }
        top = argv[1];
        gen_decompress();
        gen_seal();
        gen_node();
        gen_parcel();
        gen_version();
        gen_catcopy();
        gen_pack();
        gen_keyfile();
        gen_trace();
        gen_wire();
        gen_users();
        return 0;
}
