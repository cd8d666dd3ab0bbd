/* The analysis engine: reads every image of a trace once, in the global
 * order of events, and computes every metric of shared/spec/analysis.md for
 * all chunk sizes and compressions in that one pass.
 *
 * How the work is split:
 * - Worker threads read segments of images (8 MiB, or the largest chunk
 *   size) ahead of the main thread and hash them: SHA-256 of every piece of
 *   the smallest chunk size, then each larger power-of-two size from the
 *   hashes of its two halves, so the bytes are hashed once whatever the
 *   number of sizes (a chunk's hash depends only on its bytes and length:
 *   equal chunks give equal hashes at every size, tails included).
 * - The main thread looks each chunk up in the distinct-chunk table of its
 *   size, in the global order; the chunks seen for the first time are
 *   compressed once (gzip, zstd) by the workers while the main thread adds
 *   the costs of the segment before to the sums they belong to (it
 *   compresses too whenever it would otherwise wait).
 * Memory is the distinct-chunk tables (global and per parcel) plus the
 * chunk ids of each parcel's latest version; see docs/analyze.md.
 *
 * Why the sums come out of one pass in the global order:
 * - ALL upload: a chunk is charged at the event that inserts it in the
 *   global table (its first occurrence in the global order); ids are dense in
 *   order of insertion, so "id == number of ids seen so far" tells it.
 * - IP upload and IP storage: a chunk is charged when it enters the parcel's
 *   set; a parcel's days do not decrease with its versions, so that is also
 *   the first day the parcel holds it.
 * - ALL storage counts a chunk from the first (normalised) day any parcel
 *   holds it: the minimum of those first days, kept in the entry and summed
 *   at the end (normalised days do not follow the global order).
 * - Delta storage on day t is version n whole plus, for k < n, version k's
 *   chunks that differ from version k+1: adding version k+1 adds
 *   full(k+1) - full(k) + diff(k), which is the cost of the chunks of
 *   version k+1 that differ from version k at the same position, that is its
 *   Delta upload.
 * - Downloads: each parcel-set entry keeps the last version whose memory
 *   and whose disk held the chunk; the memory image of a version is
 *   processed before its disk, so while version k is processed these tell
 *   membership in M(k-1), D(k-1) and first occurrence in version k. */
#include "analyze/analyze_internal.h"
#include "analyze/chunktab.h"
#include "analyze/coster.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define SEG_MIN     (8u << 20)
#define MAX_LEVELS  18           /* 512 B .. 64 MiB */
#define CT_BATCH    (256u << 10) /* bytes of chunks a thread compresses per grab */

const char *const vc_pol_name[VC_POL_MAX] = { "delta", "ip", "all" };
const char *const vc_dl_mode[VC_DL_MAX] = { "demand", "demand", "demand", "demand",
                                            "complete", "complete", "complete" };
const char *const vc_dl_method[VC_DL_MAX] = { "nocache", "delta", "cas_m", "cas_md", "nocache", "delta", "cas" };
const unsigned vc_pol_entry[VC_POL_MAX] = { 0, 20, 40 };

typedef struct Seg {
        size_t ev;          /* index into trace->order */
        int img;
        uint64_t off;
        uint32_t len;
} Seg;

typedef struct Slot {
        uint8_t *buf;
        uint8_t (*h[MAX_LEVELS])[VC_CT_KEY_LEN];
        uint32_t *ids[VC_AN_CHUNK_SIZES_MAX];
        Seg seg;
        bool ready;
        int err;
        char errmsg[512];   /* vc_errf is per thread: workers leave it here */
} Slot;

typedef struct CTask {
        uint32_t si, id, len;
        const uint8_t *p;
} CTask;

typedef struct ParcelState {
        VcIpSet ip[VC_AN_CHUNK_SIZES_MAX];
        uint32_t *prev[VC_AN_CHUNK_SIZES_MAX][VC_IMG_MAX]; /* ids of the latest version */
} ParcelState;

typedef struct Engine Engine;

typedef struct Worker {
        Engine *e;
        pthread_t thr;
        bool started;
        EVP_MD_CTX *md;
        VcCoster *coster;
} Worker;

struct Engine {
        const VcTrace *t;
        VcAnalysis *a;
        uint32_t base;                         /* smallest chunk size */
        unsigned nlevels;                      /* sizes base << 0 .. base << (nlevels-1) */
        unsigned level[VC_AN_CHUNK_SIZES_MAX];    /* level of each reported size */
        unsigned sel[VC_COMP_MAX];             /* per comp: 0 = len, 1 = gzip, 2 = zstd */
        uint32_t seg;
        bool gzip, zstd;
        EVP_MD *sha;
        VcChunkTab tab[VC_AN_CHUNK_SIZES_MAX];
        uint32_t seen[VC_AN_CHUNK_SIZES_MAX];     /* ids whose first occurrence was summed */
        ParcelState *ps;
        int64_t *inc;                          /* storage added per day, vc_st_idx layout */
        uint64_t *inc_chunks;                  /* [size][day] keyring entries added */
        size_t *evmap;                         /* order index -> event index */
        uint64_t ps_bytes, ps_before;          /* parcel state held, for the peak */
        size_t open_ev;                        /* the event being summed */

        pthread_mutex_t mu;
        pthread_cond_t cv_work, cv_main;
        Slot *slots;
        unsigned nslots;
        size_t hashed;                         /* segments handed to workers */
        size_t consumed;                       /* segments the main thread finished */
        Seg wcur;
        bool plan_done, stop;
        CTask *ct;
        size_t nct, ctcap, ct_next, ct_done;
        int ct_err;
        Worker *w;
        unsigned nw;
        VcCoster *coster;                      /* the main thread's */
};

static inline uint64_t nchunks(uint64_t size, uint32_t s)
{
        return (size + s - 1) / s;
}

/* --- options ------------------------------------------------------------- */

static int check_size(uint64_t v, const char *s)
{
        if (v < VC_AN_CHUNK_MIN || v > VC_AN_CHUNK_MAX || (v & (v - 1)))
                return vc_errf(-EINVAL,
                               "invalid chunk size '%s': chunk sizes must be powers of two from 512 B to 64 MiB "
                               "(e.g. 4K,8K,16K)",
                               s);
        return 0;
}

static int cmp_u32(const void *x, const void *y)
{
        uint32_t a = *(const uint32_t *)x, b = *(const uint32_t *)y;
        return a < b ? -1 : a > b;
}

int vc_analyze_parse_chunk_sizes(const char *s, VcAnalyzeOpts *o)
{
        char *copy = strdup(s), *save = NULL;
        if (!copy)
                return -ENOMEM;
        size_t n = 0;
        int r = 0;
        uint32_t sizes[VC_AN_CHUNK_SIZES_MAX];
        for (char *tok = strtok_r(copy, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
                uint64_t v;
                r = vc_parse_size(tok, "chunk size", &v);
                if (r == 0)
                        r = check_size(v, tok);
                if (r < 0)
                        break;
                bool dup = false;
                for (size_t i = 0; i < n; i++)
                        dup |= sizes[i] == v;
                if (dup)
                        continue;
                if (n == VC_AN_CHUNK_SIZES_MAX) {
                        r = vc_errf(-EINVAL, "too many chunk sizes (at most %d)", VC_AN_CHUNK_SIZES_MAX);
                        break;
                }
                sizes[n++] = (uint32_t)v;
        }
        free(copy);
        if (r == 0 && n == 0)
                r = vc_errf(-EINVAL, "no chunk size given (e.g. --chunk-sizes 4K,128K)");
        if (r < 0)
                return r;
        qsort(sizes, n, sizeof *sizes, cmp_u32);
        memcpy(o->chunk_sizes, sizes, n * sizeof *sizes);
        o->n_chunk_sizes = n;
        return 0;
}

int vc_analyze_parse_comps(const char *s, VcAnalyzeOpts *o)
{
        bool comp[VC_COMP_MAX] = { false };
        bool any = false;
        const char *p = s;
        for (;;) {
                size_t len = strcspn(p, ",");
                int found = -1;
                for (int c = 0; c < VC_COMP_MAX; c++)
                        if (strlen(vc_comp_name(c)) == len && strncmp(p, vc_comp_name(c), len) == 0)
                                found = c;
                if (found < 0)
                        return vc_errf(-EINVAL, "invalid compression '%.*s' (expected none, gzip or zstd, "
                                                "separated by commas)", (int)len, p);
                comp[found] = any = true;
                if (!p[len])
                        break;
                p += len + 1;
        }
        memcpy(o->comp, comp, sizeof comp);
        return any ? 0 : -EINVAL;
}

/* --- results ------------------------------------------------------------- */

void vc_analysis_free(VcAnalysis *a)
{
        if (!a)
                return;
        free(a->storage);
        free(a->storage_meta);
        free(a->events);
        free(a->up);
        free(a->up_chunks);
        free(a->dl);
        free(a->distinct);
        free(a);
}

static int analysis_new(const VcTrace *t, const VcAnalyzeOpts *o, VcAnalysis **ret)
{
        VcAnalysis *a = calloc(1, sizeof *a);
        if (!a)
                return -ENOMEM;
        a->trace = t;
        if (o->n_chunk_sizes) {
                a->nsizes = o->n_chunk_sizes;
                memcpy(a->sizes, o->chunk_sizes, a->nsizes * sizeof *a->sizes);
        } else
                for (uint32_t s = 4096; s <= 512 * 1024; s *= 2)
                        a->sizes[a->nsizes++] = s;
        bool anycomp = false;
        for (int c = 0; c < VC_COMP_MAX; c++)
                anycomp |= o->comp[c];
        for (int c = 0; c < VC_COMP_MAX; c++)
                if (anycomp ? o->comp[c] : c != VC_COMP_ZSTD)
                        a->comps[a->ncomps++] = (VcComp)c;
        a->ndays = t->max_day + 1;
        for (size_t i = 0; i < t->nversions; i++)
                a->nevents += t->versions[i].version >= 2;
        size_t per = a->nsizes * a->ncomps;
        a->storage = calloc((size_t)VC_POL_MAX * per * a->ndays, sizeof *a->storage);
        a->storage_meta = calloc((size_t)VC_POL_MAX * a->nsizes * a->ndays, sizeof *a->storage_meta);
        a->events = calloc(a->nevents + 1, sizeof *a->events);
        a->up = calloc(a->nevents * VC_POL_MAX * per + 1, sizeof *a->up);
        a->up_chunks = calloc(a->nevents * a->nsizes + 1, sizeof *a->up_chunks);
        a->dl = calloc(a->nevents * VC_DL_MAX * per + 1, sizeof *a->dl);
        a->distinct = calloc(a->nsizes, sizeof *a->distinct);
        if (!a->storage || !a->storage_meta || !a->events || !a->up || !a->up_chunks || !a->dl || !a->distinct) {
                vc_analysis_free(a);
                return -ENOMEM;
        }
        *ret = a;
        return 0;
}

/* --- reading and hashing (worker threads) -------------------------------- */

/* Advances the reading plan: every non-empty image of every version in the
 * global order, memory before disk, in segments. */
static bool plan_next(const Engine *e, Seg *cur, Seg *out)
{
        const VcTrace *t = e->t;
        while (cur->ev < t->nversions) {
                const VcTraceVersion *v = &t->versions[t->order[cur->ev]];
                uint64_t size = t->parcels[v->parcel].size[cur->img];
                if (cur->off < size) {
                        *out = *cur;
                        out->len = (uint32_t)VC_MIN((uint64_t)e->seg, size - cur->off);
                        cur->off += e->seg;
                        return true;
                }
                cur->off = 0;
                if (++cur->img == VC_IMG_MAX) {
                        cur->img = 0;
                        cur->ev++;
                }
        }
        return false;
}

static bool sha16(Worker *w, const void *p, size_t n, uint8_t out[VC_CT_KEY_LEN])
{
        unsigned char d[EVP_MAX_MD_SIZE];
        unsigned int dl;
        if (!EVP_DigestInit_ex(w->md, w->e->sha, NULL) || !EVP_DigestUpdate(w->md, p, n) ||
            !EVP_DigestFinal_ex(w->md, d, &dl))
                return false;
        memcpy(out, d, VC_CT_KEY_LEN);
        return true;
}

static int read_and_hash(Worker *w, Slot *s)
{
        Engine *e = w->e;
        const VcTraceVersion *v = &e->t->versions[e->t->order[s->seg.ev]];
        const char *path = v->path[s->seg.img];
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                int r = -errno;
                snprintf(s->errmsg, sizeof s->errmsg, "cannot open %s (%s line %u): %s", path, e->t->manifest,
                         v->line, strerror(-r));
                return r;
        }
        int r = vc_pread_full(fd, s->buf, s->seg.len, (off_t)s->seg.off);
        close(fd);
        if (r < 0) {
                snprintf(s->errmsg, sizeof s->errmsg, "cannot read %s (%s line %u): %s", path, e->t->manifest,
                         v->line,
                         r == -EIO ? "the file is shorter than when the analysis started" : strerror(-r));
                return r;
        }
        uint64_t n = nchunks(s->seg.len, e->base);
        for (uint64_t j = 0; j < n; j++) {
                uint64_t off = j * e->base;
                if (!sha16(w, s->buf + off, VC_MIN((uint64_t)e->base, s->seg.len - off), s->h[0][j]))
                        goto fail;
        }
        /* A chunk of twice the size hashes its halves' hashes (just one for
         * a short tail), so its hash still depends on its bytes alone. */
        for (unsigned l = 1; l < e->nlevels; l++) {
                uint64_t nprev = n;
                n = (nprev + 1) / 2;
                for (uint64_t j = 0; j < n; j++)
                        if (!sha16(w, s->h[l - 1][2 * j], (2 * j + 1 < nprev ? 2 : 1) * VC_CT_KEY_LEN, s->h[l][j]))
                                goto fail;
        }
        return 0;
fail:
        snprintf(s->errmsg, sizeof s->errmsg, "SHA-256 failed (OpenSSL)");
        return -EIO;
}

/* Compresses a batch of new chunks; called and returns with e->mu held. */
static bool ct_run_some(Engine *e, VcCoster *c)
{
        if (e->ct_next >= e->nct)
                return false;
        size_t i = e->ct_next, j = i;
        uint64_t bytes = 0;
        while (j < e->nct && bytes < CT_BATCH)
                bytes += e->ct[j++].len;
        e->ct_next = j;
        pthread_mutex_unlock(&e->mu);
        struct timespec t0, t1;
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t0);
        int r = 0;
        for (size_t k = i; k < j && r == 0; k++) {
                const CTask *t = &e->ct[k];
                uint32_t out[2];
                r = vc_coster_cost(c, t->p, t->len, out);
                VcChunkEnt *en = &e->tab[t->si].ents[t->id];
                en->cost[0] = out[0];
                en->cost[1] = out[1];
        }
        clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t1);
        pthread_mutex_lock(&e->mu);
        e->a->compress_seconds += (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
        if (r < 0)
                e->ct_err = r;
        e->ct_done += j - i;
        if (e->ct_done == e->nct)
                pthread_cond_broadcast(&e->cv_main);
        return true;
}

static void *worker_main(void *arg)
{
        Worker *w = arg;
        Engine *e = w->e;
        pthread_mutex_lock(&e->mu);
        while (!e->stop) {
                /* New chunks first: the main thread is waiting for them. */
                if (ct_run_some(e, w->coster))
                        continue;
                if (!e->plan_done && e->hashed < e->consumed + e->nslots) {
                        Seg g;
                        if (!plan_next(e, &e->wcur, &g)) {
                                e->plan_done = true;
                                continue;
                        }
                        Slot *s = &e->slots[e->hashed++ % e->nslots];
                        s->seg = g;
                        pthread_mutex_unlock(&e->mu);
                        int r = read_and_hash(w, s);
                        pthread_mutex_lock(&e->mu);
                        s->err = r;
                        s->ready = true;
                        pthread_cond_broadcast(&e->cv_main);
                        continue;
                }
                pthread_cond_wait(&e->cv_work, &e->mu);
        }
        pthread_mutex_unlock(&e->mu);
        return NULL;
}

/* --- the sums (main thread) ---------------------------------------------- */

/* Looks every chunk of the segment up, in order, lists the new ones and
 * hands them to the threads to compress. Only called when every earlier
 * compression is done, so nothing else touches e->ct or the tables. */
static int step_ids(Engine *e, Slot *s)
{
        VcAnalysis *a = e->a;
        size_t nct = 0;
        for (size_t si = 0; si < a->nsizes; si++) {
                uint32_t S = a->sizes[si];
                uint64_t n = nchunks(s->seg.len, S);
                for (uint64_t j = 0; j < n; j++) {
                        uint32_t len = (uint32_t)VC_MIN((uint64_t)S, s->seg.len - j * S), id;
                        bool isnew;
                        int r = vc_chunktab_get(&e->tab[si], s->h[e->level[si]][j], len, &id, &isnew);
                        if (r < 0)
                                return r == -E2BIG ? vc_errf(r, "more than 2^32 distinct chunks of %u bytes", S)
                                                   : r;
                        s->ids[si][j] = id;
                        if (!isnew || !(e->gzip || e->zstd))
                                continue;
                        CTask *ct = vc_grow(e->ct, &e->ctcap, nct, sizeof *ct, 1024);
                        if (!ct)
                                return -ENOMEM;
                        e->ct = ct;
                        e->ct[nct++] = (CTask){ .si = (uint32_t)si, .id = id, .len = len, .p = s->buf + j * S };
                }
        }
        if (nct) {
                pthread_mutex_lock(&e->mu);
                e->nct = nct;
                e->ct_next = e->ct_done = 0;
                pthread_cond_broadcast(&e->cv_work);
                pthread_mutex_unlock(&e->mu);
        }
        return 0;
}

/* Waits for the compressions handed out, compressing too meanwhile. */
static int wait_costs(Engine *e)
{
        pthread_mutex_lock(&e->mu);
        while (e->ct_done < e->nct)
                if (!ct_run_some(e, e->coster))
                        pthread_cond_wait(&e->cv_main, &e->mu);
        int r = e->ct_err;
        e->ct_err = 0;
        pthread_mutex_unlock(&e->mu);
        return r < 0 ? vc_errf(r, "compressing a chunk failed") : 0;
}

/* Waits until a worker has read and hashed the slot, compressing
 * meanwhile if there is anything to compress. */
static int wait_hashed(Engine *e, Slot *s)
{
        pthread_mutex_lock(&e->mu);
        while (!s->ready)
                if (!ct_run_some(e, e->coster))
                        pthread_cond_wait(&e->cv_main, &e->mu);
        pthread_mutex_unlock(&e->mu);
        return s->err < 0 ? vc_errf(s->err, "%s", s->errmsg) : 0;
}

static inline void add(uint64_t *dst, const uint64_t *c, size_t n)
{
        for (size_t i = 0; i < n; i++)
                dst[i] += c[i];
}

/* dst is laid out [comp][day]: stride ndays. */
static inline void add_days(int64_t *dst, const uint64_t *c, size_t n, size_t stride)
{
        for (size_t i = 0; i < n; i++)
                dst[i * stride] += (int64_t)c[i];
}

static int step_sums(Engine *e, const Slot *s)
{
        VcAnalysis *a = e->a;
        const VcTraceVersion *v = &e->t->versions[e->t->order[s->seg.ev]];
        ParcelState *ps = &e->ps[v->parcel];
        const int img = s->seg.img;
        const bool mem = img == VC_IMG_MEM;
        const uint32_t k = v->version, day = v->day;
        const size_t nc = a->ncomps, ev = e->evmap[s->seg.ev];
        for (size_t si = 0; si < a->nsizes; si++) {
                uint32_t S = a->sizes[si];
                uint64_t n = nchunks(s->seg.len, S);
                uint32_t *prev = ps->prev[si][img] + s->seg.off / S;
                const uint32_t *ids = s->ids[si];
                VcChunkTab *tab = &e->tab[si];
                VcIpSet *ip = &ps->ip[si];
                int64_t *inc_delta = &e->inc[vc_st_idx(a, VC_POL_DELTA, si, 0, day)];
                int64_t *inc_ip = &e->inc[vc_st_idx(a, VC_POL_IP, si, 0, day)];
                uint64_t *up[VC_POL_MAX] = { NULL }, *dl[VC_DL_MAX] = { NULL };
                if (k >= 2) {
                        for (int p = 0; p < VC_POL_MAX; p++)
                                up[p] = &a->up[vc_up_idx(a, ev, p, si, 0)];
                        for (int m = 0; m < VC_DL_MAX; m++)
                                dl[m] = &a->dl[vc_dl_idx(a, ev, m, si, 0)];
                }
                for (uint64_t j = 0; j < n; j++) {
                        uint32_t id = ids[j];
                        VcChunkEnt *en = &tab->ents[id];
                        const uint32_t vals[3] = { en->len, en->cost[0], en->cost[1] };
                        uint64_t c[VC_COMP_MAX];
                        for (size_t ci = 0; ci < nc; ci++)
                                c[ci] = vals[e->sel[ci]];
                        bool first_ever = id == e->seen[si];
                        e->seen[si] += first_ever;
                        bool ins;
                        VcIpEnt *ie = vc_ipset_get(ip, id, &ins);
                        if (!ie)
                                return -ENOMEM;
                        if (ins) {
                                en->minday = VC_MIN(en->minday, day);
                                add_days(inc_ip, c, nc, a->ndays);
                                if (k >= 2)
                                        add(up[VC_POL_IP], c, nc);
                        }
                        if (k == 1) {
                                add_days(inc_delta, c, nc, a->ndays);
                        } else {
                                if (first_ever)
                                        add(up[VC_POL_ALL], c, nc);
                                if (prev[j] != id) {
                                        add(up[VC_POL_DELTA], c, nc);
                                        add_days(inc_delta, c, nc, a->ndays);
                                        add(dl[VC_DL_COMPLETE_DELTA], c, nc);
                                        if (mem)
                                                add(dl[VC_DL_DEMAND_DELTA], c, nc);
                                }
                                add(dl[VC_DL_COMPLETE_NOCACHE], c, nc);
                                bool in_prev = ie->last[VC_IMG_MEM] == k - 1 || ie->last[VC_IMG_DISK] == k - 1;
                                if (mem) {
                                        add(dl[VC_DL_DEMAND_NOCACHE], c, nc);
                                        if (ie->last[VC_IMG_MEM] != k) { /* first in M(k), so in version k */
                                                if (ie->last[VC_IMG_MEM] != k - 1)
                                                        add(dl[VC_DL_DEMAND_CAS_M], c, nc);
                                                if (!in_prev) {
                                                        add(dl[VC_DL_DEMAND_CAS_MD], c, nc);
                                                        add(dl[VC_DL_COMPLETE_CAS], c, nc);
                                                }
                                        }
                                } else if (ie->last[VC_IMG_MEM] != k && ie->last[VC_IMG_DISK] != k && !in_prev)
                                        add(dl[VC_DL_COMPLETE_CAS], c, nc);
                        }
                        ie->last[img] = k;
                        prev[j] = id;
                }
        }
        return 0;
}

static int parcel_alloc(Engine *e, const VcTraceVersion *v)
{
        const VcTraceParcel *p = &e->t->parcels[v->parcel];
        ParcelState *ps = &e->ps[v->parcel];
        for (size_t si = 0; si < e->a->nsizes; si++)
                for (int m = 0; m < VC_IMG_MAX; m++) {
                        uint64_t n = nchunks(p->size[m], e->a->sizes[si]);
                        if (n == 0)
                                continue;
                        ps->prev[si][m] = malloc(n * sizeof(uint32_t));
                        if (!ps->prev[si][m])
                                return -ENOMEM;
                }
        return 0;
}

static uint64_t parcel_bytes(const Engine *e, const VcTraceVersion *v)
{
        const VcTraceParcel *p = &e->t->parcels[v->parcel];
        const ParcelState *ps = &e->ps[v->parcel];
        uint64_t n = 0;
        for (size_t si = 0; si < e->a->nsizes; si++) {
                n += vc_ipset_bytes(&ps->ip[si]);
                for (int m = 0; m < VC_IMG_MAX; m++)
                        if (ps->prev[si][m])
                                n += nchunks(p->size[m], e->a->sizes[si]) * sizeof(uint32_t);
        }
        return n;
}

static int event_begin(Engine *e, const VcTraceVersion *v)
{
        e->ps_before = parcel_bytes(e, v);
        return v->version == 1 ? parcel_alloc(e, v) : 0;
}

static void parcel_state_done(ParcelState *ps)
{
        for (size_t si = 0; si < VC_AN_CHUNK_SIZES_MAX; si++) {
                vc_ipset_done(&ps->ip[si]);
                for (int m = 0; m < VC_IMG_MAX; m++) {
                        free(ps->prev[si][m]);
                        ps->prev[si][m] = NULL;
                }
        }
}

static void event_end(Engine *e, size_t oi, const VcTraceVersion *v)
{
        VcAnalysis *a = e->a;
        const VcTraceParcel *p = &e->t->parcels[v->parcel];
        for (size_t si = 0; si < a->nsizes; si++) {
                uint64_t n = nchunks(p->size[VC_IMG_MEM], a->sizes[si]) + nchunks(p->size[VC_IMG_DISK], a->sizes[si]);
                e->inc_chunks[si * a->ndays + v->day] += n;
                if (v->version >= 2)
                        a->up_chunks[e->evmap[oi] * a->nsizes + si] = n;
        }
        uint64_t after = parcel_bytes(e, v), tabs = 0;
        e->ps_bytes += after - e->ps_before;
        for (size_t si = 0; si < a->nsizes; si++)
                tabs += vc_chunktab_bytes(&e->tab[si]);
        a->peak_state_bytes = VC_MAX(a->peak_state_bytes, tabs + e->ps_bytes);
        /* Nothing later reads a parcel's state after its last version. */
        if (v->version == p->nversions) {
                parcel_state_done(&e->ps[v->parcel]);
                e->ps_bytes -= after;
        }
}

/* Turns per-day increments into the cumulative storage of every day. */
static void finish(Engine *e)
{
        VcAnalysis *a = e->a;
        for (size_t si = 0; si < a->nsizes; si++) {
                const VcChunkTab *tab = &e->tab[si];
                for (uint32_t id = 0; id < tab->n; id++) {
                        const VcChunkEnt *en = &tab->ents[id];
                        const uint32_t vals[3] = { en->len, en->cost[0], en->cost[1] };
                        for (size_t ci = 0; ci < a->ncomps; ci++)
                                e->inc[vc_st_idx(a, VC_POL_ALL, si, ci, en->minday)] += vals[e->sel[ci]];
                }
                a->distinct[si] = tab->n;
                for (int p = 0; p < VC_POL_MAX; p++) {
                        for (size_t ci = 0; ci < a->ncomps; ci++) {
                                int64_t run = 0;
                                for (uint32_t d = 0; d < a->ndays; d++) {
                                        run += e->inc[vc_st_idx(a, p, si, ci, d)];
                                        a->storage[vc_st_idx(a, p, si, ci, d)] = (uint64_t)run;
                                }
                        }
                        uint64_t run = 0;
                        for (uint32_t d = 0; d < a->ndays; d++) {
                                run += e->inc_chunks[si * a->ndays + d];
                                a->storage_meta[vc_stm_idx(a, p, si, d)] = run * vc_pol_entry[p];
                        }
                }
        }
}

/* --- setup and the main loop --------------------------------------------- */

static void engine_free(Engine *e)
{
        if (e->w) {
                pthread_mutex_lock(&e->mu);
                e->stop = true;
                pthread_cond_broadcast(&e->cv_work);
                pthread_mutex_unlock(&e->mu);
                for (unsigned i = 0; i < e->nw; i++) {
                        if (e->w[i].started)
                                pthread_join(e->w[i].thr, NULL);
                        EVP_MD_CTX_free(e->w[i].md);
                        vc_coster_free(e->w[i].coster);
                }
                free(e->w);
        }
        pthread_mutex_destroy(&e->mu);
        pthread_cond_destroy(&e->cv_work);
        pthread_cond_destroy(&e->cv_main);
        if (e->slots)
                for (unsigned i = 0; i < e->nslots; i++) {
                        free(e->slots[i].buf);
                        free(e->slots[i].h[0]);
                        free(e->slots[i].ids[0]);
                }
        free(e->slots);
        for (size_t si = 0; si < VC_AN_CHUNK_SIZES_MAX; si++)
                vc_chunktab_done(&e->tab[si]);
        if (e->ps)
                for (size_t i = 0; i < e->t->nparcels; i++)
                        parcel_state_done(&e->ps[i]);
        free(e->ps);
        free(e->inc);
        free(e->inc_chunks);
        free(e->evmap);
        free(e->ct);
        vc_coster_free(e->coster);
        EVP_MD_free(e->sha);
}

static int engine_init(Engine *e, const VcTrace *t, VcAnalysis *a, unsigned threads)
{
        e->t = t;
        e->a = a;
        pthread_mutex_init(&e->mu, NULL);
        pthread_cond_init(&e->cv_work, NULL);
        pthread_cond_init(&e->cv_main, NULL);
        e->base = a->sizes[0];
        uint32_t maxs = a->sizes[a->nsizes - 1];
        for (size_t si = 0; si < a->nsizes; si++)
                e->level[si] = (unsigned)__builtin_ctz(a->sizes[si] / e->base);
        e->nlevels = e->level[a->nsizes - 1] + 1;
        e->seg = VC_MAX(SEG_MIN, maxs);
        for (size_t ci = 0; ci < a->ncomps; ci++) {
                e->sel[ci] = (unsigned)a->comps[ci];
                e->gzip |= a->comps[ci] == VC_COMP_GZIP;
                e->zstd |= a->comps[ci] == VC_COMP_ZSTD;
        }
        e->sha = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!e->sha)
                return vc_errf(-EIO, "OpenSSL has no SHA-256");
        e->ps = calloc(t->nparcels, sizeof *e->ps);
        e->inc = calloc((size_t)VC_POL_MAX * a->nsizes * a->ncomps * a->ndays, sizeof *e->inc);
        e->inc_chunks = calloc(a->nsizes * a->ndays, sizeof *e->inc_chunks);
        e->evmap = calloc(t->nversions, sizeof *e->evmap);
        if (!e->ps || !e->inc || !e->inc_chunks || !e->evmap)
                return -ENOMEM;
        for (size_t i = 0, ev = 0; i < t->nversions; i++)
                if (t->versions[t->order[i]].version >= 2) {
                        a->events[ev] = t->order[i];
                        e->evmap[i] = ev++;
                }
        int r = vc_coster_new(e->gzip, e->zstd, maxs, &e->coster);
        if (r < 0)
                return r;

        /* Enough slots that every worker can hash ahead while the main thread
         * sums the oldest segment. */
        e->nw = threads;
        e->nslots = threads + 2;
        e->slots = calloc(e->nslots, sizeof *e->slots);
        if (!e->slots)
                return -ENOMEM;
        uint64_t nh = 0, nid = 0;
        for (unsigned l = 0; l < e->nlevels; l++)
                nh += nchunks(e->seg, e->base << l);
        for (size_t si = 0; si < a->nsizes; si++)
                nid += nchunks(e->seg, a->sizes[si]);
        for (unsigned i = 0; i < e->nslots; i++) {
                Slot *s = &e->slots[i];
                s->buf = malloc(e->seg);
                s->h[0] = malloc(nh * VC_CT_KEY_LEN);
                s->ids[0] = malloc(nid * sizeof(uint32_t));
                if (!s->buf || !s->h[0] || !s->ids[0])
                        return -ENOMEM;
                for (unsigned l = 1; l < e->nlevels; l++)
                        s->h[l] = s->h[l - 1] + nchunks(e->seg, e->base << (l - 1));
                for (size_t si = 1; si < a->nsizes; si++)
                        s->ids[si] = s->ids[si - 1] + nchunks(e->seg, a->sizes[si - 1]);
        }
        e->w = calloc(e->nw, sizeof *e->w);
        if (!e->w)
                return -ENOMEM;
        for (unsigned i = 0; i < e->nw; i++) {
                Worker *w = &e->w[i];
                w->e = e;
                w->md = EVP_MD_CTX_new();
                if (!w->md)
                        return -ENOMEM;
                r = vc_coster_new(e->gzip, e->zstd, maxs, &w->coster);
                if (r < 0)
                        return r;
        }
        for (unsigned i = 0; i < e->nw; i++) {
                r = -pthread_create(&e->w[i].thr, NULL, worker_main, &e->w[i]);
                if (r < 0)
                        return vc_errf(r, "cannot start a thread: %s", strerror(-r));
                e->w[i].started = true;
        }
        return 0;
}

/* Closes events up to (not including) target and opens the ones between:
 * events whose images are all empty have no segment of their own. */
static int events_advance(Engine *e, size_t target)
{
        const VcTrace *t = e->t;
        for (; e->open_ev < target; e->open_ev++) {
                event_end(e, e->open_ev, &t->versions[t->order[e->open_ev]]);
                int r = event_begin(e, &t->versions[t->order[e->open_ev + 1]]);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* The main thread: segments in order, each looked up (step_ids) one step
 * ahead of its sums (step_sums), so the chunks new in segment i+1 are
 * compressed by the workers while this thread sums segment i. */
static int run(Engine *e, bool quiet)
{
        const VcTrace *t = e->t;
        VcProgress prog;
        uint64_t done = 0;
        Seg cur = { 0 }, g;
        Slot *prev = NULL;
        size_t taken = 0;
        vc_progress_init(&prog, "analyze", t->bytes, quiet);
        int r = event_begin(e, &t->versions[t->order[0]]);
        for (bool more = true; r == 0 && (more || prev);) {
                more = plan_next(e, &cur, &g);
                Slot *s = more ? &e->slots[taken++ % e->nslots] : NULL;
                if (s && (r = wait_hashed(e, s)) < 0)
                        break;
                if ((r = wait_costs(e)) < 0)
                        break;
                if (s && (r = step_ids(e, s)) < 0)
                        break;
                if (prev) {
                        if ((r = events_advance(e, prev->seg.ev)) < 0 || (r = step_sums(e, prev)) < 0)
                                break;
                        done += prev->seg.len;
                        pthread_mutex_lock(&e->mu);
                        prev->ready = false;
                        e->consumed++;
                        pthread_cond_broadcast(&e->cv_work);
                        pthread_mutex_unlock(&e->mu);
                        vc_progress(&prog, done);
                }
                prev = s;
        }
        if (r == 0)
                r = events_advance(e, t->nversions - 1);
        if (r < 0)
                return r;
        event_end(e, t->nversions - 1, &t->versions[t->order[t->nversions - 1]]);
        vc_progress_end(&prog, done);
        finish(e);
        return 0;
}

int vc_analyze(const VcTrace *t, const VcAnalyzeOpts *o, VcAnalysis **ret)
{
        for (size_t i = 0; i < o->n_chunk_sizes; i++) {
                char buf[32];
                snprintf(buf, sizeof buf, "%u", o->chunk_sizes[i]);
                int r = check_size(o->chunk_sizes[i], buf);
                if (r < 0)
                        return r;
                if (i && o->chunk_sizes[i] <= o->chunk_sizes[i - 1])
                        return vc_errf(-EINVAL, "chunk sizes must be given in ascending order");
        }
        VcAnalysis *a = NULL;
        int r = analysis_new(t, o, &a);
        if (r < 0)
                return r;
        unsigned threads = o->threads;
        if (threads == 0) {
                long n = sysconf(_SC_NPROCESSORS_ONLN);
                threads = n > 0 ? (unsigned)VC_MIN(n, 64) : 1;
        }
        a->threads = threads;
        double start = vc_mono();
        Engine e = { 0 };
        r = engine_init(&e, t, a, threads);
        if (r == 0)
                r = run(&e, o->quiet);
        engine_free(&e);
        if (r < 0) {
                vc_analysis_free(a);
                return r;
        }
        a->seconds = vc_mono() - start;
        *ret = a;
        return 0;
}
