/* Helpers shared by the store tests: scratch stores, deterministic chunks,
 * poking at bytes on disk. */
#ifndef STORE_TEST_H
#define STORE_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/vc_hash.h"
#include "core/vc_util.h"
#include "store/vc_store.h"

/* A fresh directory under $TMPDIR; the store path is <dir>/store. */
static inline char *tmp_store(void)
{
        const char *base = getenv("TMPDIR");
        char tmpl[PATH_MAX];
        snprintf(tmpl, sizeof tmpl, "%s/vcstore.XXXXXX", base && *base ? base : "/tmp");
        assert_non_null(mkdtemp(tmpl));
        char *p = malloc(strlen(tmpl) + 8);
        sprintf(p, "%s/store", tmpl);
        return p;
}

static inline int rm_one(const char *p, const struct stat *st, int flag, struct FTW *f)
{
        (void)st; (void)flag; (void)f;
        return remove(p);
}

static inline void rm_rf(const char *path)
{
        nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

/* Removes the store and its temporary parent directory. */
static inline void tmp_store_free(char *path)
{
        char *slash = strrchr(path, '/');
        *slash = 0;
        rm_rf(path);
        free(path);
}

static inline uint64_t splitmix(uint64_t *x)
{
        uint64_t z = (*x += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
}

/* The length of chunk seed: 1 byte to ~20 KiB, a few of 1.5 MiB (larger
 * than the writer's buffer). */
static inline size_t chunk_len(uint64_t seed)
{
        uint64_t x = seed * 7919 + 13;
        uint64_t r = splitmix(&x);
        if (r % 97 == 0)
                return (3u << 19) + (size_t)(r % 1000);
        return 1 + (size_t)(r % 20000);
}

/* Deterministic bytes of chunk seed (malloc'ed) and its tag. */
static inline uint8_t *make_chunk(uint64_t seed, size_t *len, uint8_t tag[VC_TAG_LEN])
{
        size_t n = chunk_len(seed);
        uint8_t *b = malloc(n);
        uint64_t x = seed;
        for (size_t i = 0; i < n; i += 8) {
                uint64_t v = splitmix(&x);
                memcpy(b + i, &v, VC_MIN((size_t)8, n - i));
        }
        vc_sha256(b, n, tag);
        *len = n;
        return b;
}

static inline void chunk_tag(uint64_t seed, uint8_t tag[VC_TAG_LEN])
{
        size_t n;
        free(make_chunk(seed, &n, tag));
}

/* Puts chunk seed through w; returns what put returned. */
static inline int put_chunk(VcWriter *w, uint64_t domain, uint64_t seed)
{
        size_t n;
        uint8_t tag[VC_TAG_LEN];
        uint8_t *b = make_chunk(seed, &n, tag);
        int r = vc_writer_put(w, domain, (seed % 5 == 0) ? VC_KIND_META : VC_KIND_DATA, tag, b, n);
        free(b);
        return r;
}

/* 0 if chunk seed reads back byte for byte, else the error (or -EILSEQ for
 * wrong bytes). */
static inline int verify_chunk(VcStore *s, uint64_t domain, uint64_t seed)
{
        size_t n, got, cap = 0;
        uint8_t tag[VC_TAG_LEN], *buf = NULL;
        uint8_t *b = make_chunk(seed, &n, tag);
        int r = vc_store_get(s, domain, tag, &buf, &cap, &got);
        if (r == 0 && (got != n || memcmp(buf, b, n) != 0))
                r = -EILSEQ;
        free(b);
        free(buf);
        return r;
}

static inline uint8_t *slurp(const char *path, size_t *len)
{
        uint8_t *b;
        assert_int_equal(vc_read_file(path, &b, len, 1ull << 32), 0);
        return b;
}

/* Flips one bit of byte off of path. */
static inline void flip_byte(const char *path, long off)
{
        int fd = open(path, O_RDWR);
        assert_true(fd >= 0);
        uint8_t c;
        assert_int_equal(pread(fd, &c, 1, off), 1);
        c ^= 0x20;
        assert_int_equal(pwrite(fd, &c, 1, off), 1);
        close(fd);
}

/* Flips byte delta after every occurrence of pat in path; returns how many.
 * (LMDB keeps old copies of pages; damaging all of them is the honest
 * test.) */
static inline int flip_after(const char *path, const void *pat, size_t n, long delta)
{
        size_t len;
        uint8_t *b = slurp(path, &len);
        int hits = 0;
        for (size_t i = 0; i + n <= len; i++)
                if (memcmp(b + i, pat, n) == 0) {
                        flip_byte(path, (long)i + delta);
                        hits++;
                }
        free(b);
        return hits;
}

/* Path of pack p of domain d. */
static inline void pack_path(const char *store, uint64_t d, uint32_t p, char *buf, size_t len)
{
        snprintf(buf, len, "%s/packs/%llu/%08u.pack", store, (unsigned long long)d, p);
}

/* Collects damage reports. */
typedef struct Damage {
        int n;
        int with_tag;
        uint8_t tags[64][VC_TAG_LEN];
        char last[512];
} Damage;

static inline void damage_cb(uint64_t domain, const uint8_t *tag, const char *what, void *ctx)
{
        (void)domain;
        Damage *d = ctx;
        if (tag && d->with_tag < 64)
                memcpy(d->tags[d->with_tag++], tag, VC_TAG_LEN);
        d->n++;
        snprintf(d->last, sizeof d->last, "%s", what);
        if (getenv("VC_TEST_VERBOSE"))
                fprintf(stderr, "# damage: %s\n", what);
}

static inline bool damage_has(const Damage *d, const uint8_t tag[VC_TAG_LEN])
{
        for (int i = 0; i < d->with_tag; i++)
                if (memcmp(d->tags[i], tag, VC_TAG_LEN) == 0)
                        return true;
        return false;
}

/* Runs check and returns the number of problems (asserting it did not fail). */
static inline int check_store(VcStore *s, bool full, Damage *d)
{
        Damage local;
        memset(&local, 0, sizeof local);
        if (!d)
                d = &local;
        int r = vc_store_check(s, full, damage_cb, d, NULL);
        if (r < 0)
                fprintf(stderr, "# check failed: %s\n", vc_errmsg(r));
        assert_true(r >= 0);
        if (r > 0 && d == &local && getenv("VC_TEST_VERBOSE"))
                fprintf(stderr, "# check: %d problems, last: %s\n", r, local.last);
        return r;
}

/* Live: the seed's tag is in a sorted array. */
typedef struct Live {
        uint8_t (*tags)[VC_TAG_LEN];
        size_t n;
        int fail_after;         /* >0: return -EIO on that call */
        int calls;
} Live;

static inline int tag_cmp(const void *a, const void *b)
{
        return memcmp(a, b, VC_TAG_LEN);
}

static inline int is_live(const VcChunkInfo *ci, void *ctx)
{
        Live *l = ctx;
        if (l->fail_after && ++l->calls == l->fail_after)
                return -EIO;
        return bsearch(ci->tag, l->tags, l->n, VC_TAG_LEN, tag_cmp) != NULL;
}

/* Live = seeds in [lo, hi) with seed % mod == 0. */
static inline void live_set(Live *l, uint64_t lo, uint64_t hi, uint64_t mod)
{
        free(l->tags);
        *l = (Live){ 0 };
        l->tags = calloc(hi - lo + 1, VC_TAG_LEN);
        for (uint64_t i = lo; i < hi; i++)
                if (i % mod == 0)
                        chunk_tag(i, l->tags[l->n++]);
        qsort(l->tags, l->n, VC_TAG_LEN, tag_cmp);
}

#endif
