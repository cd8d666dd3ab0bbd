/* Helpers shared by the back-end tests: scratch directories, parcel and
 * version records made with the real packers, sealed-looking chunks whose
 * tags are their SHA-256. */
#ifndef BACKEND_TEST_H
#define BACKEND_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "backend/vc_backend.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"
#include "repo/vc_repo.h"

/* Asserts r == want; on a mismatch prints the back end's message. */
#define assert_rc(r, want)                                                                              \
        do {                                                                                            \
                int _r = (r), _w = (want);                                                              \
                if (_r != _w)                                                                           \
                        fail_msg("%s = %d (%s), expected %d", #r, _r, _r < 0 ? vc_errmsg(_r) : "", _w); \
        } while (0)

/* The message of the last failure contains s. */
#define assert_msg_has(r, s)                                                            \
        do {                                                                            \
                const char *_m = vc_errmsg(r);                                          \
                if (!strstr(_m, (s)))                                                   \
                        fail_msg("message '%s' does not name '%s'", _m, (s));           \
        } while (0)

/* A fresh directory under $TMPDIR (malloc'ed). */
static inline char *bt_tmpdir(const char *what)
{
        const char *base = getenv("TMPDIR");
        char tmpl[PATH_MAX];
        snprintf(tmpl, sizeof tmpl, "%s/vc%s.XXXXXX", base && *base ? base : "/tmp", what);
        assert_non_null(mkdtemp(tmpl));
        return strdup(tmpl);
}

static inline int bt_rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st; (void)flag; (void)f;
        return remove(p);
}

static inline void bt_rm_rf(const char *path)
{
        nftw(path, bt_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static inline uint64_t bt_mix(uint64_t *x)
{
        uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
}

/* A batch of chunks: bytes, lengths, tags (SHA-256), kinds. */
typedef struct BtChunks {
        size_t n;
        uint8_t **data;
        uint32_t *len;
        uint8_t *tags;          /* 32 n */
        VcPutItem *items;
} BtChunks;

/* n chunks of random bytes; lengths from len_of(i) (NULL: 1 byte to
 * 20 KiB); kinds alternate every third chunk. */
static inline void bt_chunks(BtChunks *c, size_t n, uint64_t seed, uint32_t (*len_of)(size_t i, uint64_t r))
{
        memset(c, 0, sizeof *c);
        c->n = n;
        c->data = calloc(n ? n : 1, sizeof *c->data);
        c->len = calloc(n ? n : 1, sizeof *c->len);
        c->tags = calloc(n ? n : 1, 32);
        c->items = calloc(n ? n : 1, sizeof *c->items);
        uint64_t x;
        assert_int_equal(vc_random(&x, sizeof x), 0);
        x ^= seed;
        for (size_t i = 0; i < n; i++) {
                uint64_t r = bt_mix(&x);
                uint32_t l = len_of ? len_of(i, r) : 1 + (uint32_t)(r % 20000);
                c->len[i] = l;
                c->data[i] = malloc(l);
                for (uint32_t j = 0; j < l; j += 8) {
                        uint64_t w = bt_mix(&x);
                        memcpy(c->data[i] + j, &w, l - j < 8 ? l - j : 8);
                }
                vc_sha256(c->data[i], l, c->tags + 32 * i);
                memcpy(c->items[i].tag, c->tags + 32 * i, 32);
                c->items[i].kind = i % 3 == 2 ? VC_KIND_META : VC_KIND_DATA;
                c->items[i].len = l;
                c->items[i].data = c->data[i];
        }
}

static inline void bt_chunks_free(BtChunks *c)
{
        for (size_t i = 0; i < c->n; i++)
                free(c->data[i]);
        free(c->data);
        free(c->len);
        free(c->tags);
        free(c->items);
        memset(c, 0, sizeof *c);
}

static inline uint64_t bt_chunks_bytes(const BtChunks *c)
{
        uint64_t s = 0;
        for (size_t i = 0; i < c->n; i++)
                s += c->len[i];
        return s;
}

/* What a get delivered: every idx at most once, bytes as expected. */
typedef struct BtGot {
        const uint8_t *tags;     /* the tags asked for */
        const BtChunks *src;     /* where to find their bytes */
        size_t n;
        unsigned *seen;
        size_t calls;
        int bad;                 /* first problem: 1 idx twice, 2 bytes differ, 3 idx out of range */
} BtGot;

static inline int bt_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        BtGot *g = ctx;
        g->calls++;
        if (idx >= g->n) {
                g->bad = g->bad ? g->bad : 3;
                return 0;
        }
        if (g->seen[idx]++)
                g->bad = g->bad ? g->bad : 1;
        for (size_t i = 0; i < g->src->n; i++)
                if (memcmp(g->src->tags + 32 * i, g->tags + 32 * idx, 32) == 0) {
                        if (len != g->src->len[i] || memcmp(data, g->src->data[i], len) != 0)
                                g->bad = g->bad ? g->bad : 2;
                        return 0;
                }
        g->bad = g->bad ? g->bad : 2;
        return 0;
}

/* Gets tags (n) of domain and checks every idx is delivered exactly once
 * with the bytes of src. Returns the get's result. */
static inline int bt_get_check(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                               const BtChunks *src)
{
        BtGot g = { .tags = tags, .src = src, .n = n, .seen = calloc(n ? n : 1, sizeof(unsigned)) };
        vc_errclear();
        int r = vc_chunks_get(b, parcel, domain, tags, n, bt_got, &g);
        if (r == 0) {
                assert_int_equal(g.bad, 0);
                assert_int_equal(g.calls, n);
                for (size_t i = 0; i < n; i++)
                        assert_int_equal(g.seen[i], 1);
        }
        free(g.seen);
        return r;
}

/* ---- records ------------------------------------------------------------- */

/* A parcel of policy pol (group: group name) with a fresh uuid; its record
 * packed into rec (VC_PARCEL_REC_MAX) with a random MAC field. */
static inline void bt_parcel(VcParcel *p, const char *name, VcPolicy pol, const char *group, uint8_t *rec,
                             size_t *len)
{
        memset(p, 0, sizeof *p);
        snprintf(p->name, sizeof p->name, "%s", name);
        assert_int_equal(vc_random(p->uuid, 16), 0);
        p->policy = pol;
        p->comp = VC_COMP_ZSTD;
        if (group)
                snprintf(p->group, sizeof p->group, "%s", group);
        p->chunk_size = 16384;
        p->mem_size = 1 << 20;
        p->disk_size = 4 << 20;
        p->created = vc_now();
        assert_int_equal(vc_random(p->check, 16), 0);
        assert_int_equal(vc_random(p->group_check, 16), 0);
        assert_int_equal(vc_random(p->mac, sizeof p->mac), 0);
        vc_parcel_domains(p);
        assert_int_equal(vc_parcel_pack(p, rec, VC_PARCEL_REC_MAX, len), 0);
}

/* The record of version `version` of p. */
static inline void bt_version(const VcParcel *p, uint32_t version, uint8_t rec[VC_VERSION_REC_LEN])
{
        VcVersion v = { 0 };
        v.version = version;
        v.timestamp = vc_now();
        memcpy(v.uuid, p->uuid, 16);
        v.mem_size = p->mem_size;
        v.disk_size = p->disk_size;
        /* no keyrings (zero roots), so that gc, which walks every
         * version's keyrings, can run over a store these records are in */
        v.new_chunks = version;
        assert_int_equal(vc_random(v.wrapped, sizeof v.wrapped), 0);
        vc_version_pack(&v, rec);
}

static inline void bt_hex(const uint8_t *tag, char hex[65])
{
        vc_hex(tag, 32, hex);
}

#endif
