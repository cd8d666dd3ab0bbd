/* Property test of vmcas analyze: on many small random traces (repeated,
 * zero and shared chunks, odd sizes, ties in time, negative timestamps,
 * shuffled manifests) every number of the JSON must equal a naive
 * recomputation written here straight from shared/spec/analysis.md:
 * chunks compared with memcmp, sets as plain arrays, costs compressed per
 * occurrence, storage recomputed from scratch for every day. It shares no
 * code with src/analyze beyond the public API it drives. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>

#include "analyze/vc_analyze.h"
#include "core/vc_util.h"

#define NTRACES_DEFAULT 150

/* ---- random traces ------------------------------------------------------- */

static uint64_t rs;
static uint64_t rnd(void)
{
        uint64_t z = (rs += 0x9e3779b97f4a7c15ull);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        return z ^ (z >> 31);
}
static uint64_t below(uint64_t n) { return rnd() % n; }

typedef struct Img {
        uint8_t *b;
        size_t n;
} Img;

typedef struct Ver {
        int parcel, version;
        int64_t ts;
        long day;
        Img img[2]; /* memory, disk */
} Ver;

typedef struct Trace {
        char names[6][16];
        int nparcels;
        Ver v[40];
        int nv;
        uint32_t sizes[4];
        int nsizes;
} Trace;

/* A palette of blocks shared by every parcel (zero block first). */
#define NPAL 6
static uint8_t pal[NPAL][16384];

static void fill_random(uint8_t *p, size_t n, bool compressible)
{
        for (size_t i = 0; i < n; i++)
                p[i] = compressible ? "abcab  \n"[rnd() & 7] : (uint8_t)rnd();
}

/* An image of the given size, made of blocks of u bytes: the previous
 * version's block at the same place, a palette block, another block of the
 * previous version, or fresh bytes. */
static void make_image(Img *im, size_t size, const Img *prev, uint32_t u)
{
        im->n = size;
        im->b = malloc(size + 1);
        for (size_t off = 0; off < size; off += u) {
                size_t len = size - off < u ? size - off : u;
                uint64_t x = below(100);
                if (prev && x < 45)
                        memcpy(im->b + off, prev->b + off, len);
                else if (x < 75)
                        memcpy(im->b + off, pal[below(NPAL)], len);
                else if (prev && x < 85) {
                        size_t src = below((prev->n + u - 1) / u) * u;
                        size_t l2 = prev->n - src < len ? prev->n - src : len;
                        memcpy(im->b + off, prev->b + src, l2);
                        memset(im->b + off + l2, 0, len - l2);
                } else
                        fill_random(im->b + off, len, x & 1);
        }
}

static void make_trace(Trace *t)
{
        static const char *const pool[] = { "a", "a-b", "a.b", "Zed", "zed", "p_1", "B9", "a0" };
        static const uint32_t size_sets[][4] = {
                { 4096, 8192, 16384, 0 }, { 1024, 4096, 0, 0 }, { 512, 2048, 8192, 0 }, { 4096, 0, 0, 0 },
                { 1024, 2048, 4096, 8192 },
        };
        memset(t, 0, sizeof *t);
        int set = (int)below(VC_ARRAY_SIZE(size_sets));
        for (int i = 0; i < 4 && size_sets[set][i]; i++)
                t->sizes[t->nsizes++] = size_sets[set][i];
        uint32_t u = t->sizes[0] * (below(2) ? 1 : 2);
        uint32_t maxs = t->sizes[t->nsizes - 1];
        for (int i = 0; i < NPAL; i++) {
                if (i == 0)
                        memset(pal[i], 0, sizeof pal[i]);
                else
                        fill_random(pal[i], sizeof pal[i], i & 1);
        }
        t->nparcels = 1 + (int)below(4);
        bool used[8] = { false };
        /* Coarse times (half days) so that events tie across parcels. */
        int64_t base = (int64_t)below(400000) - 200000;
        for (int p = 0; p < t->nparcels; p++) {
                int k;
                do
                        k = (int)below(8);
                while (used[k]);
                used[k] = true;
                strcpy(t->names[p], pool[k]);
                size_t msize = below(4) == 0 ? 0 : below(3 * maxs + 1) + (below(2) ? 0 : below(700));
                size_t dsize = below(5) == 0 ? 0 : below(4 * maxs + 1);
                int nver = 1 + (int)below(5);
                int64_t ts = base + (int64_t)below(6) * 43200 - (int64_t)below(2);
                for (int v = 1; v <= nver; v++) {
                        Ver *ver = &t->v[t->nv++];
                        ver->parcel = p;
                        ver->version = v;
                        if (v > 1)
                                ts += (int64_t)below(4) * 43200 + (below(3) == 0 ? (int64_t)below(86400) : 0);
                        ver->ts = ts;
                        const Ver *prev = v > 1 ? ver - 1 : NULL;
                        make_image(&ver->img[0], msize, prev ? &prev->img[0] : NULL, u);
                        make_image(&ver->img[1], dsize, prev ? &prev->img[1] : NULL, u);
                }
        }
        /* day: floor division, written the obvious way for non-negative
         * differences (timestamps never decrease within a parcel). */
        for (int i = 0; i < t->nv; i++) {
                const Ver *first = &t->v[i - (t->v[i].version - 1)];
                t->v[i].day = (long)((t->v[i].ts - first->ts) / 86400);
        }
}

static void free_trace(Trace *t)
{
        for (int i = 0; i < t->nv; i++)
                for (int m = 0; m < 2; m++)
                        free(t->v[i].img[m].b);
}

static void write_file(const char *path, const void *b, size_t n)
{
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        if (n)
                assert_int_equal(fwrite(b, 1, n, f), n);
        assert_int_equal(fclose(f), 0);
}

/* A manifest with columns in a random order, an extra column, comments,
 * blank lines, CRLF, rows shuffled. */
static void write_trace(const Trace *t, const char *dir)
{
        char path[512];
        mkdir(dir, 0755);
        int order[40];
        for (int i = 0; i < t->nv; i++)
                order[i] = i;
        for (int i = t->nv - 1; i > 0; i--) {
                int j = (int)below((uint64_t)i + 1), x = order[i];
                order[i] = order[j];
                order[j] = x;
        }
        static const char *const cols[] = { "parcel", "version", "timestamp", "memory", "disk", "note" };
        int perm[6] = { 0, 1, 2, 3, 4, 5 };
        for (int i = 5; i > 0; i--) {
                int j = (int)below((uint64_t)i + 1), x = perm[i];
                perm[i] = perm[j];
                perm[j] = x;
        }
        const char *eol = below(2) ? "\r\n" : "\n";
        snprintf(path, sizeof path, "%s/manifest.tsv", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fprintf(f, "# a random trace%s%s", eol, eol);
        for (int c = 0; c < 6; c++)
                fprintf(f, "%s%s", c ? "\t" : "", cols[perm[c]]);
        fprintf(f, "%s", eol);
        for (int i = 0; i < t->nv; i++) {
                const Ver *v = &t->v[order[i]];
                char mem[64], disk[64];
                snprintf(mem, sizeof mem, "%s.v%d.mem", t->names[v->parcel], v->version);
                snprintf(disk, sizeof disk, "d/%s.v%d.disk", t->names[v->parcel], v->version);
                for (int c = 0; c < 6; c++) {
                        if (c)
                                fputc('\t', f);
                        switch (perm[c]) {
                        case 0: fprintf(f, "%s", t->names[v->parcel]); break;
                        case 1: fprintf(f, "%d", v->version); break;
                        case 2: fprintf(f, "%" PRId64, v->ts); break;
                        case 3: fprintf(f, "%s", mem); break;
                        case 4: fprintf(f, "%s", disk); break;
                        default: fprintf(f, "x y"); break;
                        }
                }
                fprintf(f, "%s", eol);
                if (below(5) == 0)
                        fprintf(f, "#%s%s", eol, eol);
                snprintf(path, sizeof path, "%s/%s", dir, mem);
                write_file(path, v->img[0].b, v->img[0].n);
                snprintf(path, sizeof path, "%s/d", dir);
                mkdir(path, 0755);
                snprintf(path, sizeof path, "%s/%s", dir, disk);
                write_file(path, v->img[1].b, v->img[1].n);
        }
        assert_int_equal(fclose(f), 0);
}

/* ---- naive model ----------------------------------------------------------- */

typedef struct Chunk {
        const uint8_t *p;
        size_t n;
} Chunk;

static bool ch_eq(Chunk a, Chunk b)
{
        return a.n == b.n && memcmp(a.p, b.p, a.n) == 0;
}

/* Costs of chunk occurrences, remembered by address so that the naive
 * model stays fast enough to run on many traces (same bytes, same cost). */
#define MEMO_SLOTS (1u << 16)
static struct Memo {
        const uint8_t *p;
        size_t n;
        int comp;
        uint64_t cost;
} memo[MEMO_SLOTS];

static uint64_t cost_uncached(Chunk x, int comp);

static uint64_t cost(Chunk x, int comp)
{
        if (comp == 0)
                return x.n;
        size_t h = (((uintptr_t)x.p >> 4) * 31 + x.n * 7 + (size_t)comp) % MEMO_SLOTS;
        for (;; h = (h + 1) % MEMO_SLOTS) {
                struct Memo *m = &memo[h];
                if (!m->p) {
                        *m = (struct Memo){ x.p, x.n, comp, cost_uncached(x, comp) };
                        return m->cost;
                }
                if (m->p == x.p && m->n == x.n && m->comp == comp)
                        return m->cost;
        }
}

static uint64_t cost_uncached(Chunk x, int comp)
{
        size_t out;
        uint8_t *buf;
        if (comp == 1) {
                z_stream z;
                memset(&z, 0, sizeof z);
                assert_int_equal(deflateInit2(&z, 6, Z_DEFLATED, 31, 8, Z_DEFAULT_STRATEGY), Z_OK);
                size_t cap = deflateBound(&z, x.n);
                buf = malloc(cap);
                z.next_in = (Bytef *)x.p;
                z.avail_in = (uInt)x.n;
                z.next_out = buf;
                z.avail_out = (uInt)cap;
                assert_int_equal(deflate(&z, Z_FINISH), Z_STREAM_END);
                out = z.total_out;
                deflateEnd(&z);
        } else {
                size_t cap = ZSTD_compressBound(x.n);
                buf = malloc(cap);
                out = ZSTD_compress(buf, cap, x.p, x.n, 3);
                assert_false(ZSTD_isError(out));
        }
        free(buf);
        return out < x.n ? out : x.n;
}

static size_t nch(const Img *im, uint32_t s)
{
        return (im->n + s - 1) / s;
}

static Chunk ch(const Img *im, uint32_t s, size_t i)
{
        size_t off = i * s;
        return (Chunk){ im->b + off, im->n - off < s ? im->n - off : s };
}

/* A set of chunks as an array. */
typedef struct Set {
        Chunk *c;
        size_t n, cap;
} Set;

static bool set_has(const Set *s, Chunk x)
{
        for (size_t i = 0; i < s->n; i++)
                if (ch_eq(s->c[i], x))
                        return true;
        return false;
}

static void set_add(Set *s, Chunk x)
{
        if (set_has(s, x))
                return;
        if (s->n == s->cap) {
                s->cap = s->cap ? 2 * s->cap : 64;
                s->c = realloc(s->c, s->cap * sizeof *s->c);
        }
        s->c[s->n++] = x;
}

static void set_add_img(Set *s, const Img *im, uint32_t sz)
{
        for (size_t i = 0; i < nch(im, sz); i++)
                set_add(s, ch(im, sz, i));
}

static uint64_t set_cost(const Set *s, int comp)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < s->n; i++)
                sum += cost(s->c[i], comp);
        return sum;
}

/* Σ c over distinct chunks of a that are not in b. */
static uint64_t new_cost(const Set *a, const Set *b, int comp)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < a->n; i++)
                if (!set_has(b, a->c[i]))
                        sum += cost(a->c[i], comp);
        return sum;
}

/* Σ c(x[i]) over positions where x[i] != y[i]. */
static uint64_t diff_cost(const Img *x, const Img *y, uint32_t sz, int comp)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < nch(x, sz); i++)
                if (!ch_eq(ch(x, sz, i), ch(y, sz, i)))
                        sum += cost(ch(x, sz, i), comp);
        return sum;
}

static uint64_t full_cost(const Img *x, uint32_t sz, int comp)
{
        uint64_t sum = 0;
        for (size_t i = 0; i < nch(x, sz); i++)
                sum += cost(ch(x, sz, i), comp);
        return sum;
}

static const Ver *find_ver(const Trace *t, int parcel, int version)
{
        for (int i = 0; i < t->nv; i++)
                if (t->v[i].parcel == parcel && t->v[i].version == version)
                        return &t->v[i];
        return NULL;
}

static int parcel_idx(const Trace *t, const char *name)
{
        for (int p = 0; p < t->nparcels; p++)
                if (strcmp(t->names[p], name) == 0)
                        return p;
        fail_msg("unknown parcel %s in JSON", name);
        return -1;
}

static int comp_idx(const char *s)
{
        return strcmp(s, "none") == 0 ? 0 : strcmp(s, "gzip") == 0 ? 1 : strcmp(s, "zstd") == 0 ? 2 : -1;
}

/* Does event a come before event b in the global order? */
static bool before(const Trace *t, const Ver *a, const Ver *b)
{
        if (a->ts != b->ts)
                return a->ts < b->ts;
        int c = strcmp(t->names[a->parcel], t->names[b->parcel]);
        if (c)
                return c < 0;
        return a->version < b->version;
}

static uint64_t expect_storage(const Trace *t, const char *pol, uint32_t sz, int comp, long day, uint64_t *meta)
{
        uint64_t data = 0, entries = 0;
        Set all = { 0 };
        for (int p = 0; p < t->nparcels; p++) {
                int n = 0;
                for (int i = 0; i < t->nv; i++)
                        if (t->v[i].parcel == p && t->v[i].day <= day && t->v[i].version > n)
                                n = t->v[i].version;
                if (n == 0)
                        continue;
                Set ip = { 0 };
                for (int k = 1; k <= n; k++) {
                        const Ver *v = find_ver(t, p, k);
                        for (int m = 0; m < 2; m++) {
                                entries += nch(&v->img[m], sz);
                                set_add_img(&ip, &v->img[m], sz);
                                set_add_img(&all, &v->img[m], sz);
                        }
                }
                if (strcmp(pol, "delta") == 0) {
                        const Ver *vn = find_ver(t, p, n);
                        for (int m = 0; m < 2; m++)
                                data += full_cost(&vn->img[m], sz, comp);
                        for (int k = 1; k < n; k++) {
                                const Ver *vk = find_ver(t, p, k), *vk1 = find_ver(t, p, k + 1);
                                for (int m = 0; m < 2; m++)
                                        data += diff_cost(&vk->img[m], &vk1->img[m], sz, comp);
                        }
                } else if (strcmp(pol, "ip") == 0)
                        data += set_cost(&ip, comp);
                free(ip.c);
        }
        if (strcmp(pol, "all") == 0)
                data = set_cost(&all, comp);
        free(all.c);
        *meta = strcmp(pol, "delta") == 0 ? 0 : entries * (strcmp(pol, "ip") == 0 ? 20 : 40);
        return data;
}

static uint64_t expect_upload(const Trace *t, const Ver *v, const char *pol, uint32_t sz, int comp, uint64_t *meta)
{
        const Ver *prev = find_ver(t, v->parcel, v->version - 1);
        uint64_t entries = nch(&v->img[0], sz) + nch(&v->img[1], sz), r = 0;
        Set cur = { 0 }, old = { 0 };
        set_add_img(&cur, &v->img[0], sz);
        set_add_img(&cur, &v->img[1], sz);
        if (strcmp(pol, "delta") == 0) {
                r = diff_cost(&v->img[0], &prev->img[0], sz, comp) + diff_cost(&v->img[1], &prev->img[1], sz, comp);
                *meta = 0;
        } else if (strcmp(pol, "ip") == 0) {
                for (int k = 1; k < v->version; k++) {
                        const Ver *o = find_ver(t, v->parcel, k);
                        set_add_img(&old, &o->img[0], sz);
                        set_add_img(&old, &o->img[1], sz);
                }
                r = new_cost(&cur, &old, comp);
                *meta = entries * 20;
        } else {
                for (int i = 0; i < t->nv; i++)
                        if (before(t, &t->v[i], v)) {
                                set_add_img(&old, &t->v[i].img[0], sz);
                                set_add_img(&old, &t->v[i].img[1], sz);
                        }
                r = new_cost(&cur, &old, comp);
                *meta = entries * 40;
        }
        free(cur.c);
        free(old.c);
        return r;
}

static uint64_t expect_download(const Trace *t, const Ver *v, const char *mode, const char *method, uint32_t sz,
                                int comp)
{
        const Ver *prev = find_ver(t, v->parcel, v->version - 1);
        const Img *M = &v->img[0], *D = &v->img[1], *pM = &prev->img[0], *pD = &prev->img[1];
        bool demand = strcmp(mode, "demand") == 0;
        uint64_t r = 0;
        Set a = { 0 }, b = { 0 };
        if (strcmp(method, "nocache") == 0)
                r = full_cost(M, sz, comp) + (demand ? 0 : full_cost(D, sz, comp));
        else if (strcmp(method, "delta") == 0)
                r = diff_cost(M, pM, sz, comp) + (demand ? 0 : diff_cost(D, pD, sz, comp));
        else {
                set_add_img(&a, M, sz);
                if (!demand)
                        set_add_img(&a, D, sz);
                set_add_img(&b, pM, sz);
                if (strcmp(method, "cas_m") != 0)
                        set_add_img(&b, pD, sz);
                r = new_cost(&a, &b, comp);
        }
        free(a.c);
        free(b.c);
        return r;
}

/* ---- the comparison --------------------------------------------------------- */

static uint64_t jnum(json_t *row, const char *key)
{
        json_t *v = json_object_get(row, key);
        if (!json_is_integer(v))
                fail_msg("row has no integer '%s'", key);
        return (uint64_t)json_integer_value(v);
}

static const char *jstr(json_t *row, const char *key)
{
        json_t *v = json_object_get(row, key);
        if (!json_is_string(v))
                fail_msg("row has no string '%s'", key);
        return json_string_value(v);
}

#define CHECK_EQ(got, want, ...)                                                                             \
        do {                                                                                                 \
                uint64_t g_ = (uint64_t)(got), w_ = (uint64_t)(want);                                        \
                if (g_ != w_) {                                                                              \
                        char m_[512];                                                                        \
                        snprintf(m_, sizeof m_, __VA_ARGS__);                                                \
                        fail_msg("seed %" PRIu64 ": %s: got %" PRIu64 ", want %" PRIu64, seed, m_, g_, w_);  \
                }                                                                                            \
        } while (0)

static void check_json(const Trace *t, const char *path, uint64_t seed, int ncomp)
{
        json_error_t jerr;
        json_t *root = json_load_file(path, 0, &jerr);
        if (!root)
                fail_msg("seed %" PRIu64 ": bad JSON: %s line %d", seed, jerr.text, jerr.line);
        json_t *sizes = json_object_get(root, "chunk_sizes");
        CHECK_EQ(json_array_size(sizes), (size_t)t->nsizes, "chunk_sizes");
        for (int i = 0; i < t->nsizes; i++)
                CHECK_EQ(json_integer_value(json_array_get(sizes, (size_t)i)), t->sizes[i], "chunk size %d", i);
        CHECK_EQ(json_array_size(json_object_get(root, "compressions")), (size_t)ncomp, "compressions");

        long maxday = 0;
        int nup = 0;
        for (int i = 0; i < t->nv; i++) {
                maxday = t->v[i].day > maxday ? t->v[i].day : maxday;
                nup += t->v[i].version >= 2;
        }
        /* Each row must be present once: count rows and check each value. */
        json_t *st = json_object_get(root, "storage");
        CHECK_EQ(json_array_size(st), (size_t)(3 * t->nsizes * ncomp * (maxday + 1)), "storage rows");
        size_t i;
        json_t *row;
        char *seen = calloc(json_array_size(st) + 1, 1);
        json_array_foreach(st, i, row) {
                const char *pol = jstr(row, "policy");
                uint32_t sz = (uint32_t)jnum(row, "chunk_size");
                int comp = comp_idx(jstr(row, "compression"));
                long day = (long)jnum(row, "day");
                assert_true(comp >= 0 && comp < ncomp && day <= maxday);
                int pi = strcmp(pol, "delta") == 0 ? 0 : strcmp(pol, "ip") == 0 ? 1 : 2;
                int si = 0;
                while (si < t->nsizes && t->sizes[si] != sz)
                        si++;
                assert_true(si < t->nsizes);
                size_t key = (((size_t)pi * t->nsizes + si) * ncomp + comp) * (maxday + 1) + day;
                CHECK_EQ(seen[key]++, 0, "storage row repeated");
                uint64_t meta, data = expect_storage(t, pol, sz, comp, day, &meta);
                CHECK_EQ(jnum(row, "data_bytes"), data, "storage %s %u %d day %ld data", pol, sz, comp, day);
                CHECK_EQ(jnum(row, "meta_bytes"), meta, "storage %s %u %d day %ld meta", pol, sz, comp, day);
        }
        free(seen);

        json_t *up = json_object_get(root, "upload");
        CHECK_EQ(json_array_size(up), (size_t)(nup * 3 * t->nsizes * ncomp), "upload rows");
        json_array_foreach(up, i, row) {
                const Ver *v = find_ver(t, parcel_idx(t, jstr(row, "parcel")), (int)jnum(row, "version"));
                assert_non_null(v);
                assert_true(v->version >= 2);
                const char *pol = jstr(row, "policy");
                uint32_t sz = (uint32_t)jnum(row, "chunk_size");
                int comp = comp_idx(jstr(row, "compression"));
                uint64_t meta, data = expect_upload(t, v, pol, sz, comp, &meta);
                CHECK_EQ(jnum(row, "data_bytes"), data, "upload %s v%d %s %u %d", t->names[v->parcel], v->version,
                         pol, sz, comp);
                CHECK_EQ(jnum(row, "meta_bytes"), meta, "upload meta %s v%d %s %u", t->names[v->parcel],
                         v->version, pol, sz);
        }
        json_t *dl = json_object_get(root, "download");
        CHECK_EQ(json_array_size(dl), (size_t)(nup * 7 * t->nsizes * ncomp), "download rows");
        json_array_foreach(dl, i, row) {
                const Ver *v = find_ver(t, parcel_idx(t, jstr(row, "parcel")), (int)jnum(row, "version"));
                assert_non_null(v);
                const char *mode = jstr(row, "mode"), *method = jstr(row, "method");
                uint32_t sz = (uint32_t)jnum(row, "chunk_size");
                int comp = comp_idx(jstr(row, "compression"));
                CHECK_EQ(jnum(row, "bytes"), expect_download(t, v, mode, method, sz, comp),
                         "download %s v%d %s %s %u %d", t->names[v->parcel], v->version, mode, method, sz, comp);
        }
        json_decref(root);
}

static void run_one(uint64_t seed)
{
        rs = seed * 0x2545f4914f6cdd1dull + 7;
        Trace *t = calloc(1, sizeof *t);
        make_trace(t);
        char dir[256], json[300];
        snprintf(dir, sizeof dir, "%s/prop-%" PRIu64, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", seed);
        write_trace(t, dir);
        snprintf(json, sizeof json, "%s/out.json", dir);

        VcTrace *vt = NULL;
        int r = vc_trace_open(dir, &vt);
        if (r < 0)
                fail_msg("seed %" PRIu64 ": %s", seed, vc_errmsg(r));
        VcAnalyzeOpts o = { .quiet = true, .threads = 1 + (unsigned)(seed % 3) };
        o.n_chunk_sizes = (size_t)t->nsizes;
        memcpy(o.chunk_sizes, t->sizes, sizeof t->sizes);
        int ncomp = 3;
        o.comp[VC_COMP_NONE] = o.comp[VC_COMP_GZIP] = o.comp[VC_COMP_ZSTD] = true;
        VcAnalysis *a = NULL;
        r = vc_analyze(vt, &o, &a);
        if (r < 0)
                fail_msg("seed %" PRIu64 ": %s", seed, vc_errmsg(r));
        assert_int_equal(vc_analysis_write_json(a, json), 0);
        vc_analysis_free(a);
        vc_trace_free(vt);
        memset(memo, 0, sizeof memo);
        check_json(t, json, seed, ncomp);
        free_trace(t);
        free(t);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

/* Seeds first .. first + n - 1 of a group; VMCAS_PROP_TRACES (traces per
 * group) and VMCAS_PROP_SEED (shift of every seed) replay or widen a run. */
static void test_random_traces(void **state)
{
        const int *group = *state;
        const char *env = getenv("VMCAS_PROP_TRACES");
        int n = env ? atoi(env) : NTRACES_DEFAULT / 5;
        uint64_t shift = getenv("VMCAS_PROP_SEED") ? strtoull(getenv("VMCAS_PROP_SEED"), NULL, 10) : 0;
        for (int i = 0; i < n; i++)
                run_one(shift + 1 + (uint64_t)(*group * n + i));
}

int main(void)
{
        static int groups[5] = { 0, 1, 2, 3, 4 };
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_prestate(test_random_traces, &groups[0]),
                cmocka_unit_test_prestate(test_random_traces, &groups[1]),
                cmocka_unit_test_prestate(test_random_traces, &groups[2]),
                cmocka_unit_test_prestate(test_random_traces, &groups[3]),
                cmocka_unit_test_prestate(test_random_traces, &groups[4]),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
