/* The RADOS back end: the store interface over a Ceph pool (librados).
 * Any number of processes (vmcas serve on many hosts, CLIs) may open one
 * store at once: nothing is kept between calls but chunks a writer has
 * not flushed yet.
 *
 * Locator: rados://POOL[/PREFIX][?conf=FILE&id=NAME&cluster=NAME&timeout=S]
 * PREFIX is a RADOS namespace of the pool, so one pool can hold several
 * stores. Objects of a store (all in that namespace):
 *
 *   vmcas.store         the store: omap "format" ("1"), "uuid" (16 bytes),
 *                       "commit_seq" (u64, the commit order, by CAS)
 *   vmcas.gc            locks only (cls_lock): "commit" (shared by commits,
 *                       exclusive while gc sweeps), "run" (one gc at a time)
 *   pack/<W>.<N>        sealed chunks back to back, written whole once (about
 *                       4 MiB) by writer W (16 random hex digits), pack N
 *   idx/<DOMAIN>/<SS>   the chunk index of DOMAIN, shard SS (00..3f, the top
 *                       six bits of the tag): omap key = tag in hex, value =
 *                       u8 1 ‖ u8 kind ‖ u16 0 ‖ u32 pack N ‖ u8[8] W ‖
 *                       u32 offset ‖ u32 length ‖ i64 stored_at
 *   parcels             omap: one key per parcel name (the listing)
 *   cat/<NAME>          a parcel: omap "rec" (its record), "owner", "latest"
 *                       (10 decimal digits), "lease" ("-" if free, else
 *                       u8 host length ‖ host ‖ i64 since ‖ u8[16] token),
 *                       "v/<10 digits>" = u64 seq ‖ version record
 *   uuid/<HEX>          the name of the parcel with that uuid (one per uuid)
 *   blob/bundle.<USER>  a user's sealed key bundle (vmcas serve)
 *
 * An index entry is written only after its pack, so it never names bytes
 * that are not there. A commit is one write op on cat/NAME that compares
 * "latest" and "lease" with what the commit checked (omap cmp): of two
 * servers committing on one base, one wins and the other gets -EAGAIN.
 * Commits hold the shared "commit" lock while they check their chunks and
 * commit; gc sweeps under the exclusive one after marking again what was
 * committed meanwhile, so a chunk a commit found present stays (the same
 * rule as the local store's write transaction). Unreferenced chunks
 * younger than the grace period are kept; packs with no live chunk are
 * deleted once older than it. */
#include "backend/vc_backend.h"
#include "core/vc_hash.h"
#include "core/vc_keyring.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <rados/librados.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#define PACK_TARGET (4u << 20)
#define SHARDS 64
#define IDX_VAL_LEN 32
#define AIO_WINDOW 32
#define READ_MERGE (4u << 20)
#define LOCK_OBJ "vmcas.gc"
#define STORE_OBJ "vmcas.store"
#define DIR_OBJ "parcels"

typedef struct Ent {
        char dom[VC_DOMAIN_MAX];
        uint8_t tag[32];
        uint8_t kind;
        uint32_t off, len;
} Ent;

/* A pack on its way out: its bytes and the index entries that follow it. */
typedef struct Job {
        uint32_t packno;
        uint8_t *buf;
        size_t len;
        Ent *ents;
        size_t n;
} Job;

typedef struct Rados {
        VcBackend base;
        rados_t cl;
        rados_ioctx_t io;
        char pool[128], ns[128];
        bool verify;
        pthread_mutex_t lock;
        pthread_cond_t idle;
        unsigned inflight;
        int err;                    /* of a pack written by another thread, for flush */
        uint8_t writer[8];
        uint32_t packno;
        Job cur;
        size_t ent_cap;
        VcTagSet *pending;          /* (domain hash, tag) in cur */
} Rados;

static Rados *R(VcBackend *b)
{
        return (Rados *)b;
}

static void add(uint64_t *c, uint64_t n)
{
        __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static uint64_t dom_hash(const char *d)
{
        uint8_t h[32];
        vc_sha256(d, strlen(d), h);
        return vc_get64(h);
}

/* A librados error, said so. */
static int rerr(int r, const char *what, const char *oid)
{
        if (r == -ETIMEDOUT)
                return vc_errf(r, "the Ceph cluster did not answer in time (%s %s): is it up, are its OSDs?", what,
                               oid);
        if (r == -ENOSPC || r == -EDQUOT)
                return vc_errf(r, "the Ceph pool is full (%s %s)", what, oid);
        return vc_errf(r, "RADOS: %s %s: %s", what, oid, strerror(-r));
}

static void pack_oid(char *buf, size_t len, const uint8_t w[8], uint32_t n)
{
        char hex[17];
        vc_hex(w, 8, hex);
        snprintf(buf, len, "pack/%s.%08" PRIx32, hex, n);
}

static unsigned shard_of(const uint8_t *tag)
{
        return tag[0] >> 2;
}

static void idx_oid(char *buf, size_t len, const char *dom, unsigned shard)
{
        snprintf(buf, len, "idx/%s/%02x", dom, shard);
}

/* ---- completions ------------------------------------------------------------- */

static int aio_new(rados_completion_t *c)
{
        int r = rados_aio_create_completion2(NULL, NULL, c);
        return r < 0 ? vc_errf(r, "RADOS: no completion: %s", strerror(-r)) : 0;
}

static int aio_done(rados_completion_t c)
{
        rados_aio_wait_for_complete(c);
        int r = rados_aio_get_return_value(c);
        rados_aio_release(c);
        return r;
}

/* ---- index look-ups ------------------------------------------------------------ */

typedef struct Loc {
        bool found;
        uint8_t kind;
        uint32_t packno, off, len;
        uint8_t writer[8];
        int64_t stored_at;
} Loc;

static void idx_val(uint8_t v[IDX_VAL_LEN], uint8_t kind, const uint8_t w[8], uint32_t packno, uint32_t off,
                    uint32_t len, int64_t at)
{
        memset(v, 0, IDX_VAL_LEN);
        v[0] = 1;
        v[1] = kind;
        vc_put32(v + 4, packno);
        memcpy(v + 8, w, 8);
        vc_put32(v + 16, off);
        vc_put32(v + 20, len);
        vc_put64(v + 24, (uint64_t)at);
}

static bool idx_parse(const char *v, size_t vl, Loc *l)
{
        const uint8_t *u = (const uint8_t *)v;
        if (vl != IDX_VAL_LEN || u[0] != 1 || u[1] > VC_KIND_META)
                return false;
        l->found = true;
        l->kind = u[1];
        l->packno = vc_get32(u + 4);
        memcpy(l->writer, u + 8, 8);
        l->off = vc_get32(u + 16);
        l->len = vc_get32(u + 20);
        l->stored_at = (int64_t)vc_get64(u + 24);
        return l->len > 0 && l->len <= VC_SEALED_MAX;
}

typedef struct ShardQ {
        unsigned shard;
        size_t *idx, n;
        char **keys;
        size_t *klen;
        rados_read_op_t op;
        rados_completion_t c;
        rados_omap_iter_t it;
        int prval;
} ShardQ;

/* Looks up n tags of dom: one read op per index shard touched, all in
 * flight at once. locs[i].found = false if absent. */
static int idx_lookup(Rados *x, const char *dom, const uint8_t *tags, size_t n, Loc *locs)
{
        memset(locs, 0, n * sizeof *locs);
        if (n == 0)
                return 0;
        ShardQ q[SHARDS];
        memset(q, 0, sizeof q);
        size_t cnt[SHARDS] = { 0 };
        for (size_t i = 0; i < n; i++)
                cnt[shard_of(tags + 32 * i)]++;
        char *hex = malloc(n * 65);
        if (!hex)
                return -ENOMEM;
        int r = 0;
        for (unsigned s = 0; s < SHARDS; s++) {
                q[s].shard = s;
                if (!cnt[s])
                        continue;
                q[s].idx = malloc(cnt[s] * sizeof *q[s].idx);
                q[s].keys = malloc(cnt[s] * sizeof *q[s].keys);
                q[s].klen = malloc(cnt[s] * sizeof *q[s].klen);
                if (!q[s].idx || !q[s].keys || !q[s].klen)
                        r = -ENOMEM;
        }
        for (size_t i = 0; r == 0 && i < n; i++) {
                ShardQ *sq = &q[shard_of(tags + 32 * i)];
                vc_hex(tags + 32 * i, 32, hex + 65 * i);
                sq->idx[sq->n] = i;
                sq->keys[sq->n] = hex + 65 * i;
                sq->klen[sq->n] = 64;
                sq->n++;
        }
        unsigned issued = 0;
        for (unsigned s = 0; r == 0 && s < SHARDS; s++) {
                if (!q[s].n)
                        continue;
                char oid[160];
                idx_oid(oid, sizeof oid, dom, s);
                if ((r = aio_new(&q[s].c)) < 0)
                        break;
                q[s].op = rados_create_read_op();
                rados_read_op_omap_get_vals_by_keys2(q[s].op, (const char *const *)q[s].keys, q[s].n, q[s].klen,
                                                     &q[s].it, &q[s].prval);
                int e = rados_aio_read_op_operate(q[s].op, x->io, q[s].c, oid, 0);
                if (e < 0) {
                        rados_aio_release(q[s].c);
                        rados_omap_get_end(q[s].it);
                        rados_release_read_op(q[s].op);
                        q[s].op = NULL;
                        r = rerr(e, "looking up chunks in", oid);
                        break;
                }
                issued++;
        }
        for (unsigned s = 0; s < SHARDS; s++) {
                if (!q[s].op)
                        continue;
                int e = aio_done(q[s].c);
                char oid[160];
                idx_oid(oid, sizeof oid, dom, s);
                if (e == 0 && q[s].prval < 0)
                        e = q[s].prval;
                if (e == 0) {
                        char *k, *v;
                        size_t kl, vl;
                        while (rados_omap_get_next2(q[s].it, &k, &v, &kl, &vl) == 0 && k) {
                                uint8_t tag[32];
                                char kk[65];
                                if (kl != 64)
                                        continue;
                                memcpy(kk, k, 64);
                                kk[64] = 0;
                                if (vc_unhex(kk, tag, 32) < 0)
                                        continue;
                                for (size_t j = 0; j < q[s].n; j++) {
                                        size_t i = q[s].idx[j];
                                        if (memcmp(hex + 65 * i, kk, 64) != 0)
                                                continue;
                                        if (!idx_parse(v, vl, &locs[i]) && r == 0)
                                                r = vc_errf(-EBADMSG, "the index entry of chunk %s in %s is "
                                                            "malformed (changed outside vmcas?)", kk, oid);
                                }
                        }
                        rados_omap_get_end(q[s].it);
                } else {
                        rados_omap_get_end(q[s].it);
                        if (e != -ENOENT && r == 0)
                                r = rerr(e, "looking up chunks in", oid);
                }
                rados_release_read_op(q[s].op);
        }
        (void)issued;
        for (unsigned s = 0; s < SHARDS; s++) {
                free(q[s].idx);
                free(q[s].keys);
                free(q[s].klen);
        }
        free(hex);
        return r;
}

/* ---- writing packs ------------------------------------------------------------- */

/* Index entries of ents (n), grouped per shard object, all in flight. */
static int idx_write(Rados *x, const uint8_t w[8], uint32_t packno, const Ent *ents, size_t n)
{
        int r = 0;
        int64_t now = vc_now();
        size_t *order = malloc(n * sizeof *order);
        char *hex = malloc(n * 65);
        uint8_t *vals = malloc(n * IDX_VAL_LEN);
        char **keys = malloc(n * sizeof *keys), **vp = malloc(n * sizeof *vp);
        size_t *kl = malloc(n * sizeof *kl), *vl = malloc(n * sizeof *vl);
        bool *done = calloc(n, 1);
        if (!order || !hex || !vals || !keys || !vp || !kl || !vl || !done) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < n; i++) {
                vc_hex(ents[i].tag, 32, hex + 65 * i);
                idx_val(vals + IDX_VAL_LEN * i, ents[i].kind, w, packno, ents[i].off, ents[i].len, now);
        }
        /* one write op per (domain, shard) */
        typedef struct { rados_write_op_t op; rados_completion_t c; char oid[160]; } Wq;
        Wq q[AIO_WINDOW];
        size_t nq = 0, pos = 0;
        for (size_t i = 0; i < n || nq;) {
                /* gather the next group */
                while (i < n && nq < AIO_WINDOW) {
                        if (done[i]) {
                                i++;
                                continue;
                        }
                        size_t m = 0;
                        unsigned s = shard_of(ents[i].tag);
                        for (size_t j = i; j < n; j++)
                                if (!done[j] && shard_of(ents[j].tag) == s && strcmp(ents[j].dom, ents[i].dom) == 0) {
                                        done[j] = true;
                                        keys[pos + m] = hex + 65 * j;
                                        kl[pos + m] = 64;
                                        vp[pos + m] = (char *)vals + IDX_VAL_LEN * j;
                                        vl[pos + m] = IDX_VAL_LEN;
                                        m++;
                                }
                        Wq *wq = &q[nq];
                        idx_oid(wq->oid, sizeof wq->oid, ents[i].dom, s);
                        if ((r = aio_new(&wq->c)) < 0)
                                break;
                        wq->op = rados_create_write_op();
                        rados_write_op_omap_set2(wq->op, (const char *const *)keys + pos, (const char *const *)vp + pos,
                                                 kl + pos, vl + pos, m);
                        int e = rados_aio_write_op_operate(wq->op, x->io, wq->c, wq->oid, NULL, 0);
                        if (e < 0) {
                                rados_aio_release(wq->c);
                                rados_release_write_op(wq->op);
                                r = rerr(e, "indexing chunks in", wq->oid);
                                break;
                        }
                        pos += m;
                        nq++;
                        i++;
                }
                for (size_t k = 0; k < nq; k++) {
                        int e = aio_done(q[k].c);
                        rados_release_write_op(q[k].op);
                        if (e < 0 && r == 0)
                                r = rerr(e, "indexing chunks in", q[k].oid);
                }
                nq = 0;
                if (r < 0)
                        break;
        }
out:
        free(order);
        free(hex);
        free(vals);
        free(keys);
        free(vp);
        free(kl);
        free(vl);
        free(done);
        return r;
}

static int job_write(Rados *x, Job *j)
{
        if (!j->n)
                return 0;
        char oid[64];
        pack_oid(oid, sizeof oid, x->writer, j->packno);
        int r = rados_write_full(x->io, oid, (const char *)j->buf, j->len);
        if (r < 0)
                return rerr(r, "writing", oid);
        return idx_write(x, x->writer, j->packno, j->ents, j->n);
}

static void job_free(Job *j)
{
        free(j->buf);
        free(j->ents);
        memset(j, 0, sizeof *j);
}

/* Takes the current pack out (lock held); the caller writes it. */
static void take_cur(Rados *x, Job *out)
{
        *out = x->cur;
        memset(&x->cur, 0, sizeof x->cur);
        x->ent_cap = 0;
        vc_tagset_free(x->pending);
        x->pending = NULL;
        if (out->n)
                x->inflight++;
}

static int write_taken(Rados *x, Job *j)
{
        if (!j->n) {
                job_free(j);
                return 0;
        }
        int r = job_write(x, j);
        job_free(j);
        pthread_mutex_lock(&x->lock);
        if (r < 0 && x->err == 0)
                x->err = r;
        if (--x->inflight == 0)
                pthread_cond_broadcast(&x->idle);
        pthread_mutex_unlock(&x->lock);
        return r;
}

/* ---- chunks ------------------------------------------------------------------- */

static int rb_missing(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                         uint8_t *missing)
{
        Loc *locs = malloc(n * sizeof *locs);
        if (!locs)
                return -ENOMEM;
        int r = idx_lookup(R(b), domain, tags, n, locs);
        for (size_t i = 0; r >= 0 && i < n; i++)
                missing[i] = !locs[i].found;
        free(locs);
        return r < 0 ? r : 0;
}

static int rb_put(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        Rados *x = R(b);
        int r = 0;
        if (x->verify)
                for (size_t i = 0; i < n; i++) {
                        uint8_t h[32];
                        vc_sha256(items[i].data, items[i].len, h);
                        if (!vc_hash_eq(h, items[i].tag, 32)) {
                                char hex[65];
                                vc_hex(items[i].tag, 32, hex);
                                return vc_errf(-EBADMSG, "chunk %s: its bytes do not hash to its tag", hex);
                        }
                }
        uint8_t *tags = malloc(n * 32), *miss = malloc(n);
        if (!tags || !miss) {
                free(tags);
                free(miss);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n; i++)
                memcpy(tags + 32 * i, items[i].tag, 32);
        r = rb_missing(b, parcel, domain, tags, n, miss);
        free(tags);
        uint64_t dh = dom_hash(domain);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                if (!miss[i])
                        continue;
                Job full = { 0 };
                pthread_mutex_lock(&x->lock);
                if (!x->pending && (r = vc_tagset_new(&x->pending)) < 0) {
                        pthread_mutex_unlock(&x->lock);
                        break;
                }
                if ((r = vc_tagset_add(x->pending, dh, items[i].tag, 0)) <= 0) {
                        /* 0: already in this pack */
                        pthread_mutex_unlock(&x->lock);
                        if (r < 0)
                                break;
                        continue;
                }
                r = 0;
                Job *j = &x->cur;
                if (j->len + items[i].len > PACK_TARGET + VC_SEALED_MAX || !j->buf) {
                        size_t cap = PACK_TARGET + VC_SEALED_MAX;
                        if (!j->buf && !(j->buf = malloc(cap)))
                                r = -ENOMEM;
                        j->packno = x->packno++;
                }
                if (r == 0 && j->n == x->ent_cap) {
                        size_t nc = x->ent_cap ? 2 * x->ent_cap : 256;
                        Ent *e = realloc(j->ents, nc * sizeof *e);
                        if (!e)
                                r = -ENOMEM;
                        else {
                                j->ents = e;
                                x->ent_cap = nc;
                        }
                }
                if (r == 0) {
                        Ent *e = &j->ents[j->n++];
                        snprintf(e->dom, sizeof e->dom, "%s", domain);
                        memcpy(e->tag, items[i].tag, 32);
                        e->kind = items[i].kind;
                        e->off = (uint32_t)j->len;
                        e->len = items[i].len;
                        memcpy(j->buf + j->len, items[i].data, items[i].len);
                        j->len += items[i].len;
                        add(items[i].kind == VC_KIND_DATA ? &b->traffic.sent_data : &b->traffic.sent_meta,
                            items[i].len);
                        if (j->len >= PACK_TARGET)
                                take_cur(x, &full);
                }
                pthread_mutex_unlock(&x->lock);
                if (r == 0 && full.n)
                        r = write_taken(x, &full);
        }
        free(miss);
        return r < 0 ? r : 0;
}

static int rb_flush(VcBackend *b)
{
        Rados *x = R(b);
        Job j;
        pthread_mutex_lock(&x->lock);
        take_cur(x, &j);
        pthread_mutex_unlock(&x->lock);
        int r = write_taken(x, &j);
        pthread_mutex_lock(&x->lock);
        while (x->inflight)
                pthread_cond_wait(&x->idle, &x->lock);
        if (r == 0)
                r = x->err;
        x->err = 0;
        pthread_mutex_unlock(&x->lock);
        return r;
}

typedef struct Range {
        size_t first, n;            /* into order */
        uint32_t off, len;
        char oid[64];
        char *buf;
        rados_completion_t c;
} Range;

typedef struct GetCtx {
        const Loc *locs;
        const uint8_t *tags;
} GetCtx;

static GetCtx *g_sort_ctx;      /* qsort has no context argument; guarded by order_lock */
static pthread_mutex_t order_lock = PTHREAD_MUTEX_INITIALIZER;

static int loc_cmp(const void *a, const void *b)
{
        const Loc *x = &g_sort_ctx->locs[*(const size_t *)a], *y = &g_sort_ctx->locs[*(const size_t *)b];
        int c = memcmp(x->writer, y->writer, 8);
        if (c)
                return c;
        if (x->packno != y->packno)
                return x->packno < y->packno ? -1 : 1;
        return x->off < y->off ? -1 : x->off > y->off;
}

/* Reads the chunks at locs (all found) and hands them to fn: reads of
 * adjacent chunks of one pack merged, AIO_WINDOW reads in flight. */
static int read_locs(Rados *x, const uint8_t *tags, const Loc *locs, size_t n, vc_got_fn fn, void *ctx)
{
        if (n == 0)
                return 0;
        size_t *order = malloc(n * sizeof *order);
        if (!order)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                order[i] = i;
        GetCtx gc = { locs, tags };
        pthread_mutex_lock(&order_lock);
        g_sort_ctx = &gc;
        qsort(order, n, sizeof *order, loc_cmp);
        pthread_mutex_unlock(&order_lock);
        int r = 0;
        Range q[AIO_WINDOW];
        size_t i = 0;
        while (i < n && r == 0) {
                size_t nq = 0;
                while (i < n && nq < AIO_WINDOW) {
                        Range *g = &q[nq];
                        const Loc *l = &locs[order[i]];
                        g->first = i;
                        g->n = 1;
                        g->off = l->off;
                        g->len = l->len;
                        pack_oid(g->oid, sizeof g->oid, l->writer, l->packno);
                        i++;
                        while (i < n) {
                                const Loc *m = &locs[order[i]];
                                const Loc *p = &locs[order[i - 1]];
                                if (memcmp(m->writer, l->writer, 8) || m->packno != l->packno)
                                        break;
                                if (m->off == p->off && m->len == p->len) {     /* a repeat */
                                        g->n++;
                                        i++;
                                        continue;
                                }
                                if (m->off != p->off + p->len || (uint64_t)g->len + m->len > READ_MERGE)
                                        break;
                                g->len += m->len;
                                g->n++;
                                i++;
                        }
                        if (!(g->buf = malloc(g->len))) {
                                r = -ENOMEM;
                                break;
                        }
                        if ((r = aio_new(&g->c)) < 0) {
                                free(g->buf);
                                break;
                        }
                        int e = rados_aio_read(x->io, g->oid, g->c, g->buf, g->len, g->off);
                        if (e < 0) {
                                rados_aio_release(g->c);
                                free(g->buf);
                                r = rerr(e, "reading", g->oid);
                                break;
                        }
                        nq++;
                }
                for (size_t k = 0; k < nq; k++) {
                        Range *g = &q[k];
                        int e = aio_done(g->c);
                        if (r == 0 && e >= 0 && (uint32_t)e != g->len)
                                r = vc_errf(-EIO, "pack %s is shorter than its index says (%d bytes at %u, not %u): "
                                            "run vmcas verify", g->oid, e, g->off, g->len);
                        else if (r == 0 && e < 0)
                                r = e == -ENOENT ? vc_errf(-EIO, "pack %s is gone, though the index names it: run "
                                                           "vmcas verify", g->oid)
                                                 : rerr(e, "reading", g->oid);
                        for (size_t t = 0; r == 0 && t < g->n; t++) {
                                size_t idx = order[g->first + t];
                                const Loc *l = &locs[idx];
                                add(l->kind == VC_KIND_META ? &x->base.traffic.recv_meta
                                                            : &x->base.traffic.recv_data, l->len);
                                r = fn(idx, (const uint8_t *)g->buf + (l->off - g->off), l->len, ctx);
                        }
                        free(g->buf);
                }
        }
        free(order);
        return r;
}

static int rb_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                     vc_got_fn fn, void *ctx)
{
        Rados *x = R(b);
        Loc *locs = malloc(n * sizeof *locs);
        if (!locs)
                return -ENOMEM;
        int r = idx_lookup(x, domain, tags, n, locs);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (!locs[i].found) {
                        char hex[65];
                        vc_hex(tags + 32 * i, 32, hex);
                        r = vc_errf(-ENOENT, "chunk %s is not in the store", hex);
                }
        if (r >= 0)
                r = read_locs(x, tags, locs, n, fn, ctx);
        free(locs);
        return r < 0 ? r : 0;
}

/* ---- omap helpers ----------------------------------------------------------------- */

typedef struct Kv {
        char *key;
        uint8_t *val;
        size_t klen, vlen;
} Kv;

static void kv_free(Kv *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                free(v[i].key);
                free(v[i].val);
        }
        free(v);
}

static int kv_push(Kv **v, size_t *n, size_t *cap, const char *k, size_t kl, const char *val, size_t vl)
{
        if (*n == *cap) {
                size_t nc = *cap ? 2 * *cap : 64;
                Kv *w = realloc(*v, nc * sizeof *w);
                if (!w)
                        return -ENOMEM;
                *v = w;
                *cap = nc;
        }
        Kv *e = &(*v)[*n];
        e->key = malloc(kl + 1);
        e->val = malloc(vl ? vl : 1);
        if (!e->key || !e->val) {
                free(e->key);
                free(e->val);
                return -ENOMEM;
        }
        if (kl)
                memcpy(e->key, k, kl);
        e->key[kl] = 0;
        if (vl)
                memcpy(e->val, val, vl);
        e->klen = kl;
        e->vlen = vl;
        (*n)++;
        return 0;
}

/* Every omap entry of oid whose key starts with prefix, sorted by key. */
static int omap_list(Rados *x, const char *oid, const char *prefix, Kv **ret, size_t *ret_n)
{
        Kv *v = NULL;
        size_t n = 0, cap = 0;
        char after[512] = "";
        for (;;) {
                rados_read_op_t op = rados_create_read_op();
                rados_omap_iter_t it;
                unsigned char more = 0;
                int prval = 0;
                rados_read_op_omap_get_vals2(op, after, prefix, 4096, &it, &more, &prval);
                int r = rados_read_op_operate(op, x->io, oid, 0);
                if (r == 0)
                        r = prval;
                if (r < 0) {
                        rados_omap_get_end(it);
                        rados_release_read_op(op);
                        if (r == -ENOENT) {
                                *ret = v;
                                *ret_n = n;
                                return -ENOENT;
                        }
                        kv_free(v, n);
                        return rerr(r, "listing", oid);
                }
                char *k, *val;
                size_t kl, vl, got = 0;
                while (r == 0 && rados_omap_get_next2(it, &k, &val, &kl, &vl) == 0 && k) {
                        r = kv_push(&v, &n, &cap, k, kl, val, vl);
                        if (kl < sizeof after) {
                                memcpy(after, k, kl);
                                after[kl] = 0;
                        }
                        got++;
                }
                rados_omap_get_end(it);
                rados_release_read_op(op);
                if (r < 0) {
                        kv_free(v, n);
                        return r;
                }
                if (!more || !got)
                        break;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- catalog ----------------------------------------------------------------------- */

typedef struct Cat {
        VcParcelInfo pi;
        uint8_t lease_raw[1 + VC_HOST_MAX + 8 + VC_LEASE_TOKEN_LEN];
        size_t lease_len;
        char latest_s[16];
} Cat;

static void cat_oid(char *buf, size_t len, const char *name)
{
        snprintf(buf, len, "cat/%s", name);
}

static int lease_parse(const char *parcel, const uint8_t *v, size_t vl, VcLease *ls)
{
        memset(ls, 0, sizeof *ls);
        if (vl == 1 && v[0] == '-')
                return 0;
        if (vl < 1 || v[0] > VC_HOST_MAX || vl != 1u + v[0] + 8 + VC_LEASE_TOKEN_LEN)
                return vc_errf(-EBADMSG, "the lease of parcel '%s' is malformed", parcel);
        ls->held = true;
        memcpy(ls->host, v + 1, v[0]);
        ls->host[v[0]] = 0;
        ls->since = (int64_t)vc_get64(v + 1 + v[0]);
        memcpy(ls->token, v + 1 + v[0] + 8, VC_LEASE_TOKEN_LEN);
        return 0;
}

static size_t lease_pack(const VcLease *ls, uint8_t *v)
{
        if (!ls->held) {
                v[0] = '-';
                return 1;
        }
        size_t hl = strlen(ls->host);
        v[0] = (uint8_t)hl;
        memcpy(v + 1, ls->host, hl);
        vc_put64(v + 1 + hl, (uint64_t)ls->since);
        memcpy(v + 1 + hl + 8, ls->token, VC_LEASE_TOKEN_LEN);
        return 1 + hl + 8 + VC_LEASE_TOKEN_LEN;
}

/* Reads parcel name's head: record, owner, latest, lease. */
static int cat_read(Rados *x, const char *name, Cat *c)
{
        memset(c, 0, sizeof *c);
        char oid[96];
        cat_oid(oid, sizeof oid, name);
        static const char *const keys[] = { "rec", "owner", "latest", "lease" };
        static const size_t kl[] = { 3, 5, 6, 5 };
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it;
        int prval = 0;
        rados_read_op_omap_get_vals_by_keys2(op, keys, 4, kl, &it, &prval);
        int r = rados_read_op_operate(op, x->io, oid, 0);
        if (r == 0)
                r = prval;
        if (r < 0) {
                rados_omap_get_end(it);
                rados_release_read_op(op);
                if (r == -ENOENT)
                        return vc_errf(-ENOENT, "no parcel '%s' in this store", name);
                return rerr(r, "reading", oid);
        }
        snprintf(c->pi.name, sizeof c->pi.name, "%s", name);
        char *k, *v;
        size_t klen, vl;
        int seen = 0;
        while (rados_omap_get_next2(it, &k, &v, &klen, &vl) == 0 && k) {
                if (klen == 3 && memcmp(k, "rec", 3) == 0 && vl <= sizeof c->pi.record) {
                        if (vl)
                                memcpy(c->pi.record, v, vl);
                        c->pi.record_len = vl;
                        seen |= 1;
                } else if (klen == 5 && memcmp(k, "owner", 5) == 0 && vl <= VC_USER_MAX) {
                        if (vl)
                                memcpy(c->pi.owner, v, vl);
                        c->pi.owner[vl] = 0;
                        seen |= 2;
                } else if (klen == 6 && memcmp(k, "latest", 6) == 0 && vl == 10) {
                        memcpy(c->latest_s, v, 10);
                        c->latest_s[10] = 0;
                        c->pi.latest = (uint32_t)strtoul(c->latest_s, NULL, 10);
                        seen |= 4;
                } else if (klen == 5 && memcmp(k, "lease", 5) == 0 && vl <= sizeof c->lease_raw) {
                        if (vl)
                                memcpy(c->lease_raw, v, vl);
                        c->lease_len = vl;
                        seen |= 8;
                }
        }
        rados_omap_get_end(it);
        rados_release_read_op(op);
        if (seen != 15)
                return vc_errf(-EBADMSG, "the catalog object of parcel '%s' is incomplete (changed outside vmcas?)",
                               name);
        return 0;
}

static int rb_parcel(VcBackend *b, const char *name, VcParcelInfo *ret)
{
        Cat c;
        int r = cat_read(R(b), name, &c);
        if (r < 0)
                return r;
        *ret = c.pi;
        return 0;
}

static int rb_parcels(VcBackend *b, VcParcelInfo **ret, size_t *n)
{
        Kv *v = NULL;
        size_t nv = 0;
        int r = omap_list(R(b), DIR_OBJ, "", &v, &nv);
        if (r == -ENOENT) {
                vc_errclear();
                r = 0;
        }
        if (r < 0)
                return r;
        VcParcelInfo *ps = calloc(nv ? nv : 1, sizeof *ps);
        size_t np = 0;
        if (!ps)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < nv; i++) {
                if (!vc_name_valid(v[i].key))
                        continue;
                Cat c;
                r = cat_read(R(b), v[i].key, &c);
                if (r == -ENOENT) {     /* a create that did not finish */
                        vc_errclear();
                        r = 0;
                        continue;
                }
                if (r >= 0)
                        ps[np++] = c.pi;
        }
        kv_free(v, nv);
        if (r < 0) {
                free(ps);
                return r;
        }
        *ret = ps;
        *n = np;
        return 0;
}

static int versions_of(Rados *x, const char *name, VcVersionInfo **ret, size_t *n)
{
        char oid[96];
        cat_oid(oid, sizeof oid, name);
        Kv *v = NULL;
        size_t nv = 0;
        int r = omap_list(x, oid, "v/", &v, &nv);
        if (r == -ENOENT) {
                kv_free(v, nv);
                vc_errclear();
                return vc_errf(-ENOENT, "no parcel '%s' in this store", name);
        }
        if (r < 0)
                return r;
        VcVersionInfo *vs = calloc(nv ? nv : 1, sizeof *vs);
        if (!vs) {
                kv_free(v, nv);
                return -ENOMEM;
        }
        for (size_t i = 0; i < nv; i++) {
                if (v[i].klen != 12 || v[i].vlen < 8 || !vc_version_rec_len_ok(v[i].vlen - 8)) {
                        kv_free(v, nv);
                        free(vs);
                        return vc_errf(-EBADMSG, "a version record of parcel '%s' is malformed", name);
                }
                vs[i].version = (uint32_t)strtoul(v[i].key + 2, NULL, 10);
                vs[i].seq = vc_get64(v[i].val);
                vs[i].record_len = v[i].vlen - 8;
                memcpy(vs[i].record, v[i].val + 8, v[i].vlen - 8);
        }
        kv_free(v, nv);
        *ret = vs;
        *n = nv;
        return 0;
}

static int rb_versions(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n)
{
        Cat c;
        int r = cat_read(R(b), name, &c);
        return r < 0 ? r : versions_of(R(b), name, ret, n);
}

static int rb_version(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret)
{
        Rados *x = R(b);
        Cat c;
        int r = cat_read(x, name, &c);
        if (r < 0)
                return r;
        char oid[96], key[16];
        cat_oid(oid, sizeof oid, name);
        snprintf(key, sizeof key, "v/%010u", version);
        const char *keys[] = { key };
        size_t kl[] = { 12 };
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it;
        int prval = 0;
        rados_read_op_omap_get_vals_by_keys2(op, keys, 1, kl, &it, &prval);
        r = rados_read_op_operate(op, x->io, oid, 0);
        if (r == 0)
                r = prval;
        if (r < 0) {
                rados_omap_get_end(it);
                rados_release_read_op(op);
                return r == -ENOENT ? vc_errf(-ENOENT, "no parcel '%s' in this store", name) : rerr(r, "reading", oid);
        }
        char *k, *v;
        size_t klen, vl;
        bool found = false;
        memset(ret, 0, sizeof *ret);
        if (rados_omap_get_next2(it, &k, &v, &klen, &vl) == 0 && k && vl >= 8 && vc_version_rec_len_ok(vl - 8)) {
                ret->version = version;
                ret->seq = vc_get64((const uint8_t *)v);
                ret->record_len = vl - 8;
                memcpy(ret->record, v + 8, vl - 8);
                found = true;
        }
        rados_omap_get_end(it);
        rados_release_read_op(op);
        if (!found)
                return vc_errf(-ENOENT, "parcel '%s' has no version %u%s", name, version,
                               c.pi.latest == 0 ? " (it has no version yet)" : "");
        return 0;
}

static int rb_create(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len)
{
        Rados *x = R(b);
        VcParcel p;
        int r = vc_parcel_unpack(rec, len, name, &p);
        if (r < 0)
                return r;
        VcParcel want = p;
        vc_parcel_domains(&want);
        if (strcmp(want.node_dom, p.node_dom) != 0 || strcmp(want.data_dom, p.data_dom) != 0)
                return vc_errf(-EBADMSG, "the record of parcel '%s' names domains %s and %s, not those of its "
                               "uuid and policy (%s and %s)", name, p.node_dom, p.data_dom, want.node_dom,
                               want.data_dom);
        /* one parcel per uuid, across every server: object uuid/<hex>
         * holds the name of the parcel that has it (a create that failed
         * after it may be run again) */
        char uoid[64], uhex[33], have[VC_NAME_MAX + 1];
        vc_hex(p.uuid, 16, uhex);
        snprintf(uoid, sizeof uoid, "uuid/%s", uhex);
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
        rados_write_op_write_full(op, name, strlen(name));
        r = rados_write_op_operate2(op, x->io, uoid, NULL, 0);
        rados_release_write_op(op);
        if (r == -EEXIST) {
                int n = rados_read(x->io, uoid, have, VC_NAME_MAX, 0);
                if (n < 0)
                        return rerr(n, "reading", uoid);
                have[n] = 0;
                if (strcmp(have, name) != 0)
                        return vc_errf(-EINVAL, "the record of parcel '%s' has the uuid of another parcel", name);
                r = 0;
        }
        if (r < 0)
                return rerr(r, "creating", uoid);
        /* the listing first: an entry whose parcel was never made is skipped */
        const char *dk[] = { name };
        const char *dv[] = { "" };
        size_t dkl[] = { strlen(name) }, dvl[] = { 0 };
        op = rados_create_write_op();
        rados_write_op_omap_set2(op, dk, dv, dkl, dvl, 1);
        r = rados_write_op_operate2(op, x->io, DIR_OBJ, NULL, 0);
        rados_release_write_op(op);
        if (r < 0)
                return rerr(r, "writing", DIR_OBJ);
        char oid[96];
        cat_oid(oid, sizeof oid, name);
        const char *own = owner ? owner : "";
        const char *keys[] = { "rec", "owner", "latest", "lease" };
        const char *vals[] = { (const char *)rec, own, "0000000000", "-" };
        size_t kl[] = { 3, 5, 6, 5 }, vl[] = { len, strlen(own), 10, 1 };
        op = rados_create_write_op();
        rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
        rados_write_op_omap_set2(op, keys, vals, kl, vl, 4);
        r = rados_write_op_operate2(op, x->io, oid, NULL, 0);
        rados_release_write_op(op);
        if (r == -EEXIST)
                return vc_errf(-EEXIST, "parcel '%s' already exists", name);
        if (r < 0)
                return rerr(r, "creating", oid);
        add(&b->traffic.sent_meta, len);
        return 0;
}

/* ---- leases ----------------------------------------------------------------------- */

/* Replaces the lease of parcel if it is still what c read. -ECANCELED if
 * it changed meanwhile. */
static int lease_swap(Rados *x, const char *parcel, const Cat *c, const VcLease *nl)
{
        char oid[96];
        cat_oid(oid, sizeof oid, parcel);
        uint8_t v[1 + VC_HOST_MAX + 8 + VC_LEASE_TOKEN_LEN];
        size_t vl = lease_pack(nl, v);
        int cmp = 0;
        const char *keys[] = { "lease" };
        const char *vals[] = { (const char *)v };
        size_t kl[] = { 5 }, vls[] = { vl };
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_omap_cmp2(op, "lease", LIBRADOS_CMPXATTR_OP_EQ, (const char *)c->lease_raw, 5, c->lease_len,
                                 &cmp);
        rados_write_op_omap_set2(op, keys, vals, kl, vls, 1);
        int r = rados_write_op_operate2(op, x->io, oid, NULL, 0);
        rados_release_write_op(op);
        if (r == -ECANCELED || cmp == -ECANCELED)
                return -ECANCELED;
        if (r == -ENOENT)
                return vc_errf(-ENOENT, "no parcel '%s' in this store", parcel);
        return r < 0 ? rerr(r, "writing the lease of", oid) : 0;
}

static int rb_lease_acquire(VcBackend *b, const char *parcel, const char *host, VcLease *ret)
{
        for (int tries = 0; tries < 100; tries++) {
                Cat c;
                int r = cat_read(R(b), parcel, &c);
                if (r < 0 || (r = lease_parse(parcel, c.lease_raw, c.lease_len, ret)) < 0)
                        return r;
                if (ret->held)
                        return strcmp(ret->host, host) == 0 ? 0 : vc_lease_busy(parcel, ret);
                ret->held = true;
                snprintf(ret->host, sizeof ret->host, "%s", host);
                ret->since = vc_now();
                if ((r = vc_random(ret->token, VC_LEASE_TOKEN_LEN)) < 0)
                        return r;
                r = lease_swap(R(b), parcel, &c, ret);
                if (r != -ECANCELED)
                        return r;
        }
        return vc_errf(-EAGAIN, "the lease of parcel '%s' keeps changing: try again", parcel);
}

static int lease_token_check(const char *parcel, const VcLease *ls, const uint8_t *token)
{
        if (token) {
                if (!ls->held || !vc_hash_eq(ls->token, token, VC_LEASE_TOKEN_LEN))
                        return vc_errf(-ESTALE, "this host's lease on parcel '%s' was broken%s: nothing was "
                                       "committed (check the parcel out again; changes made here since are not "
                                       "merged)", parcel, ls->held ? " and the parcel is leased to another host" : "");
                return 0;
        }
        return ls->held ? vc_lease_busy(parcel, ls) : 0;
}

static int rb_lease_release(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN])
{
        for (int tries = 0; tries < 100; tries++) {
                Cat c;
                VcLease ls, none = { 0 };
                int r = cat_read(R(b), parcel, &c);
                if (r < 0 || (r = lease_parse(parcel, c.lease_raw, c.lease_len, &ls)) < 0 ||
                    (r = lease_token_check(parcel, &ls, token)) < 0)
                        return r;
                if (!ls.held)
                        return 0;
                r = lease_swap(R(b), parcel, &c, &none);
                if (r != -ECANCELED)
                        return r;
        }
        return vc_errf(-EAGAIN, "the lease of parcel '%s' keeps changing: try again", parcel);
}

static int rb_lease_break(VcBackend *b, const char *parcel)
{
        for (int tries = 0; tries < 100; tries++) {
                Cat c;
                VcLease ls, none = { 0 };
                int r = cat_read(R(b), parcel, &c);
                if (r < 0 || (r = lease_parse(parcel, c.lease_raw, c.lease_len, &ls)) < 0)
                        return r;
                if (!ls.held)
                        return 0;
                r = lease_swap(R(b), parcel, &c, &none);
                if (r != -ECANCELED)
                        return r < 0 ? r : 1;
        }
        return vc_errf(-EAGAIN, "the lease of parcel '%s' keeps changing: try again", parcel);
}

static int rb_lease_get(VcBackend *b, const char *parcel, VcLease *ret)
{
        Cat c;
        int r = cat_read(R(b), parcel, &c);
        if (r < 0 || (r = lease_parse(parcel, c.lease_raw, c.lease_len, ret)) < 0)
                return r;
        memset(ret->token, 0, sizeof ret->token);
        return 0;
}

/* ---- the commit lock and the commit order ------------------------------------------ */

static void cookie(char buf[33])
{
        uint8_t r[16];
        vc_random(r, sizeof r);
        vc_hex(r, 16, buf);
}

/* The shared "commit" lock (exclusive: gc's sweep). Held for at most
 * secs (a process killed holding it loses it then). */
static int commit_lock(Rados *x, bool exclusive, int secs, char ck[33])
{
        cookie(ck);
        struct timeval d = { .tv_sec = secs };
        for (int i = 0;; i++) {
                int r = exclusive ? rados_lock_exclusive(x->io, LOCK_OBJ, "commit", ck, "vmcas gc sweep", &d, 0)
                                  : rados_lock_shared(x->io, LOCK_OBJ, "commit", ck, "commit", "vmcas commit", &d, 0);
                if (r == 0)
                        return 0;
                if (r != -EBUSY)
                        return rerr(r, "locking", LOCK_OBJ);
                if (i >= 600)
                        return vc_errf(-EAGAIN, exclusive ? "commits kept the store busy for a minute: gc gave up, "
                                                            "run it again"
                                                          : "a gc sweep kept the store locked for a minute: nothing "
                                                            "was committed, run the checkin again");
                usleep(100000);
        }
}

static void commit_unlock(Rados *x, const char ck[33])
{
        (void)rados_unlock(x->io, LOCK_OBJ, "commit", ck);
}

/* The next commit sequence number (compare-and-swap on vmcas.store). */
static int next_seq(Rados *x, uint64_t *ret)
{
        for (int tries = 0; tries < 1000; tries++) {
                const char *keys[] = { "commit_seq" };
                size_t kl[] = { 10 };
                rados_read_op_t rop = rados_create_read_op();
                rados_omap_iter_t it;
                int prval = 0;
                rados_read_op_omap_get_vals_by_keys2(rop, keys, 1, kl, &it, &prval);
                int r = rados_read_op_operate(rop, x->io, STORE_OBJ, 0);
                if (r == 0)
                        r = prval;
                uint8_t cur[8] = { 0 };
                bool have = false;
                if (r == 0) {
                        char *k, *v;
                        size_t klen, vl;
                        if (rados_omap_get_next2(it, &k, &v, &klen, &vl) == 0 && k && vl == 8) {
                                memcpy(cur, v, 8);
                                have = true;
                        }
                }
                rados_omap_get_end(it);
                rados_release_read_op(rop);
                if (r < 0)
                        return rerr(r, "reading", STORE_OBJ);
                if (!have)
                        return vc_errf(-EBADMSG, "the store object has no commit counter (changed outside vmcas?)");
                uint64_t n = vc_get64(cur) + 1;
                uint8_t nv[8];
                vc_put64(nv, n);
                const char *vals[] = { (const char *)nv };
                size_t vl[] = { 8 };
                int cmp = 0;
                rados_write_op_t op = rados_create_write_op();
                rados_write_op_omap_cmp2(op, "commit_seq", LIBRADOS_CMPXATTR_OP_EQ, (const char *)cur, 10, 8, &cmp);
                rados_write_op_omap_set2(op, keys, vals, kl, vl, 1);
                r = rados_write_op_operate2(op, x->io, STORE_OBJ, NULL, 0);
                rados_release_write_op(op);
                if (r == 0) {
                        *ret = n;
                        return 0;
                }
                if (r != -ECANCELED)
                        return rerr(r, "writing", STORE_OBJ);
        }
        return vc_errf(-EAGAIN, "the commit counter keeps changing: try again");
}

/* ---- commit ------------------------------------------------------------------------- */

static int need_present(Rados *x, const char *dom, const uint8_t *need, size_t n)
{
        if (n == 0)
                return 0;
        Loc *locs = malloc(n * sizeof *locs);
        if (!locs)
                return -ENOMEM;
        int r = idx_lookup(x, dom, need, n, locs);
        for (size_t i = 0; r >= 0 && i < n; i++)
                if (!locs[i].found) {
                        char hex[65];
                        vc_hex(need + 32 * i, 32, hex);
                        r = vc_errf(-EAGAIN, "chunk %s is not in the store (it vanished during the checkin: a gc "
                                    "ran?); nothing was committed, run the checkin again", hex);
                }
        free(locs);
        return r < 0 ? r : 0;
}

static int rb_commit(VcBackend *b, const VcCommit *c)
{
        Rados *x = R(b);
        VcVersion v;
        VcParcel p;
        Cat cat;
        VcLease ls;
        int r = vc_version_unpack(c->record, c->record_len, &v);
        if (r < 0)
                return r;
        if (v.version != c->base + 1)
                return vc_errf(-EINVAL, "a commit of version %u on top of version %u", v.version, c->base);
        if ((r = cat_read(x, c->parcel, &cat)) < 0 ||
            (r = vc_parcel_unpack(cat.pi.record, cat.pi.record_len, c->parcel, &p)) < 0)
                return r;
        if (memcmp(v.uuid, p.uuid, 16) != 0)
                return vc_errf(-EINVAL, "the version record is not one of parcel '%s'", c->parcel);
        if (cat.pi.latest != c->base)
                return vc_errf(-EAGAIN, "parcel '%s' changed during the checkin (now at version %u); nothing was "
                               "committed", c->parcel, cat.pi.latest);
        if ((r = lease_parse(c->parcel, cat.lease_raw, cat.lease_len, &ls)) < 0 ||
            (r = lease_token_check(c->parcel, &ls, c->lease)) < 0)
                return r;
        char ck[33];
        if ((r = commit_lock(x, false, 120, ck)) < 0)
                return r;
        uint64_t seq = 0;
        if ((r = need_present(x, p.node_dom, c->need_nodes, c->n_nodes)) < 0 ||
            (r = need_present(x, p.data_dom, c->need_data, c->n_data)) < 0 || (r = next_seq(x, &seq)) < 0) {
                commit_unlock(x, ck);
                return r;
        }
        char oid[96], latest[16], vkey[16];
        cat_oid(oid, sizeof oid, c->parcel);
        snprintf(latest, sizeof latest, "%010u", v.version);
        snprintf(vkey, sizeof vkey, "v/%010u", v.version);
        uint8_t val[8 + VC_VERSION_REC_LEN];
        vc_put64(val, seq);
        memcpy(val + 8, c->record, VC_VERSION_REC_LEN);
        const char *keys[] = { "latest", vkey };
        const char *vals[] = { latest, (const char *)val };
        size_t kl[] = { 6, 12 }, vl[] = { 10, sizeof val };
        char base_s[16];
        snprintf(base_s, sizeof base_s, "%010u", c->base);
        int c1 = 0, c2 = 0;
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_omap_cmp2(op, "latest", LIBRADOS_CMPXATTR_OP_EQ, base_s, 6, 10, &c1);
        rados_write_op_omap_cmp2(op, "lease", LIBRADOS_CMPXATTR_OP_EQ, (const char *)cat.lease_raw, 5, cat.lease_len,
                                 &c2);
        rados_write_op_omap_set2(op, keys, vals, kl, vl, 2);
        r = rados_write_op_operate2(op, x->io, oid, NULL, 0);
        rados_release_write_op(op);
        commit_unlock(x, ck);
        if (r == -ECANCELED) {
                /* someone moved first: say who */
                Cat now;
                VcLease nl;
                int e = cat_read(x, c->parcel, &now);
                if (e < 0)
                        return e;
                if (now.pi.latest != c->base)
                        return vc_errf(-EAGAIN, "parcel '%s' changed during the checkin (now at version %u); "
                                       "nothing was committed", c->parcel, now.pi.latest);
                if ((e = lease_parse(c->parcel, now.lease_raw, now.lease_len, &nl)) < 0 ||
                    (e = lease_token_check(c->parcel, &nl, c->lease)) < 0)
                        return e;
                return vc_errf(-EAGAIN, "parcel '%s' changed during the checkin; nothing was committed",
                               c->parcel);
        }
        if (r < 0)
                return rerr(r, "committing to", oid);
        add(&b->traffic.sent_meta, VC_VERSION_REC_LEN);
        return 0;
}

static int rb_prune(VcBackend *b, const char *name, uint32_t keep)
{
        Rados *x = R(b);
        for (int tries = 0; tries < 100; tries++) {
                Cat c;
                VcVersionInfo *vs = NULL;
                size_t nv = 0;
                int r = cat_read(x, name, &c);
                if (r < 0 || (r = versions_of(x, name, &vs, &nv)) < 0)
                        return r;
                if (nv <= keep) {
                        free(vs);
                        return 0;
                }
                size_t drop = nv - keep;
                char (*keys)[16] = malloc(drop * sizeof *keys);
                const char **kp = malloc(drop * sizeof *kp);
                size_t *kl = malloc(drop * sizeof *kl);
                if (!keys || !kp || !kl) {
                        free(vs);
                        free(keys);
                        free(kp);
                        free(kl);
                        return -ENOMEM;
                }
                for (size_t i = 0; i < drop; i++) {
                        snprintf(keys[i], sizeof keys[i], "v/%010u", vs[i].version);
                        kp[i] = keys[i];
                        kl[i] = 12;
                }
                char oid[96];
                cat_oid(oid, sizeof oid, name);
                int cmp = 0;
                rados_write_op_t op = rados_create_write_op();
                rados_write_op_omap_cmp2(op, "latest", LIBRADOS_CMPXATTR_OP_EQ, c.latest_s, 6, 10, &cmp);
                rados_write_op_omap_rm_keys2(op, kp, kl, drop);
                r = rados_write_op_operate2(op, x->io, oid, NULL, 0);
                rados_release_write_op(op);
                free(vs);
                free(keys);
                free(kp);
                free(kl);
                if (r == 0)
                        return (int)drop;
                if (r != -ECANCELED)
                        return rerr(r, "pruning", oid);
        }
        return vc_errf(-EAGAIN, "parcel '%s' keeps changing: prune again", name);
}

/* ---- keyless walks (gc, verify, stat) ------------------------------------------------ */

typedef struct WalkVisit {
        /* called for every chunk a version names: node (META, node domain)
         * or data (DATA, data domain); loc is its index entry (found false
         * if absent) */
        int (*fn)(const VcParcel *p, uint32_t version, const char *dom, const uint8_t tag[32], int kind,
                  const Loc *loc, void *ctx);
        void *ctx;
        VcTagSet *seen;             /* nodes walked already (domain hash, tag) */
} WalkVisit;

typedef struct NodeGot {
        const VcParcel *p;
        uint32_t version;
        uint8_t *next;              /* child node tags */
        size_t nnext, capnext;
        uint8_t *data;              /* data tags */
        size_t ndata, capdata;
        const uint8_t *tags;
        int level_err;
} NodeGot;

static int push_tag(uint8_t **v, size_t *n, size_t *cap, const uint8_t *t)
{
        if (*n == *cap) {
                size_t nc = *cap ? 2 * *cap : 256;
                uint8_t *w = realloc(*v, nc * 32);
                if (!w)
                        return -ENOMEM;
                *v = w;
                *cap = nc;
        }
        memcpy(*v + 32 * (*n)++, t, 32);
        return 0;
}

static int node_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        NodeGot *g = ctx;
        static const uint8_t zero[32];
        uint8_t h[32];
        unsigned level;
        uint32_t count;
        const uint8_t *tags;
        char hex[65];
        vc_sha256(data, len, h);
        vc_hex(g->tags + 32 * idx, 32, hex);
        if (!vc_hash_eq(h, g->tags + 32 * idx, 32) || vc_node_parse(data, len, &level, &count, &tags) < 0)
                return vc_errf(-EBADMSG, "keyring node %s of parcel '%s' version %u is damaged", hex, g->p->name,
                               g->version);
        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *t = tags + 32 * i;
                if (memcmp(t, zero, 32) == 0)
                        continue;
                int r = level ? push_tag(&g->next, &g->nnext, &g->capnext, t)
                              : push_tag(&g->data, &g->ndata, &g->capdata, t);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Walks version v of p level by level: each level's nodes in one batched
 * get, each level's data tags in one batched look-up. */
static int walk_version(Rados *x, const VcParcel *p, const VcVersion *v, WalkVisit *wv)
{
        static const uint8_t zero[32];
        uint8_t *cur = NULL;
        size_t ncur = 0, capcur = 0;
        int r = 0;
        uint64_t nh = dom_hash(p->node_dom);
        /* the images, the machine and the read order (vc_repo.h) */
        const uint8_t *roots[4] = { v->mem_root, v->disk_root, v->machine_root, v->order_root };
        for (int i = 0; i < 4 && r >= 0; i++)
                if (memcmp(roots[i], zero, 32) != 0)
                        r = push_tag(&cur, &ncur, &capcur, roots[i]);
        for (int depth = 0; r >= 0 && ncur && depth < 18; depth++) {
                /* drop nodes seen already */
                size_t k = 0;
                for (size_t i = 0; i < ncur && r >= 0; i++) {
                        int a = wv->seen ? vc_tagset_add(wv->seen, nh, cur + 32 * i, 0) : 1;
                        if (a < 0)
                                r = a;
                        else if (a > 0)
                                memmove(cur + 32 * k++, cur + 32 * i, 32);
                }
                ncur = k;
                if (r < 0 || !ncur)
                        break;
                Loc *locs = malloc(ncur * sizeof *locs);
                if (!locs) {
                        r = -ENOMEM;
                        break;
                }
                r = idx_lookup(x, p->node_dom, cur, ncur, locs);
                size_t nfound = 0;
                for (size_t i = 0; r >= 0 && i < ncur; i++) {
                        r = wv->fn(p, v->version, p->node_dom, cur + 32 * i, VC_KIND_META, &locs[i], wv->ctx);
                        if (locs[i].found) {
                                memmove(cur + 32 * nfound, cur + 32 * i, 32);
                                locs[nfound++] = locs[i];
                        }
                }
                NodeGot g = { .p = p, .version = v->version, .tags = cur };
                if (r >= 0)
                        r = read_locs(x, cur, locs, nfound, node_got, &g);
                free(locs);
                if (r >= 0 && g.ndata) {
                        Loc *dl = malloc(g.ndata * sizeof *dl);
                        r = dl ? idx_lookup(x, p->data_dom, g.data, g.ndata, dl) : -ENOMEM;
                        for (size_t i = 0; r >= 0 && i < g.ndata; i++)
                                r = wv->fn(p, v->version, p->data_dom, g.data + 32 * i, VC_KIND_DATA, &dl[i],
                                           wv->ctx);
                        free(dl);
                }
                free(g.data);
                free(cur);
                cur = g.next;
                ncur = g.nnext;
                capcur = g.capnext;
        }
        free(cur);
        return r;
}

/* Every version of every parcel, or those not in done (a set of
 * (parcel hash, version)); each walked is added to done. */
static int walk_all(Rados *x, WalkVisit *wv, VcTagSet *done, uint64_t *nver)
{
        VcParcelInfo *ps = NULL;
        size_t np = 0;
        int r = rb_parcels(&x->base, &ps, &np);
        for (size_t i = 0; r >= 0 && i < np; i++) {
                VcParcel p;
                VcVersionInfo *vs = NULL;
                size_t nv = 0;
                if ((r = vc_parcel_unpack(ps[i].record, ps[i].record_len, ps[i].name, &p)) < 0)
                        break;
                r = versions_of(x, ps[i].name, &vs, &nv);
                if (r == -ENOENT) {
                        vc_errclear();
                        r = 0;
                }
                for (size_t j = 0; r >= 0 && j < nv; j++) {
                        uint8_t key[32];
                        char kb[VC_NAME_MAX + 16];
                        snprintf(kb, sizeof kb, "%s/%u", p.name, vs[j].version);
                        vc_sha256(kb, strlen(kb), key);
                        if (done && vc_tagset_get(done, 0, key, NULL))
                                continue;
                        VcVersion v;
                        if ((r = vc_version_unpack(vs[j].record, vs[j].record_len, &v)) < 0)
                                break;
                        v.seq = vs[j].seq;
                        if ((r = walk_version(x, &p, &v, wv)) < 0)
                                break;
                        if (done && (r = vc_tagset_add(done, 0, key, 0)) < 0)
                                break;
                        r = 0;
                        if (nver)
                                (*nver)++;
                }
                free(vs);
        }
        free(ps);
        return r < 0 ? r : 0;
}

/* ---- listing the store's objects --------------------------------------------------- */

static int list_objects(Rados *x, const char *prefix, char ***ret, size_t *ret_n)
{
        rados_list_ctx_t lc;
        int r = rados_nobjects_list_open(x->io, &lc);
        if (r < 0)
                return rerr(r, "listing the objects of pool", x->pool);
        char **v = NULL;
        size_t n = 0, cap = 0, pl = strlen(prefix);
        const char *e;
        size_t el;
        while ((r = rados_nobjects_list_next2(lc, &e, NULL, NULL, &el, NULL, NULL)) == 0) {
                if (el < pl || memcmp(e, prefix, pl) != 0)
                        continue;
                if (n == cap) {
                        size_t nc = cap ? 2 * cap : 256;
                        char **w = realloc(v, nc * sizeof *w);
                        if (!w) {
                                r = -ENOMEM;
                                break;
                        }
                        v = w;
                        cap = nc;
                }
                if (!(v[n] = strndup(e, el))) {
                        r = -ENOMEM;
                        break;
                }
                n++;
        }
        rados_nobjects_list_close(lc);
        if (r != -ENOENT) {
                for (size_t i = 0; i < n; i++)
                        free(v[i]);
                free(v);
                return r < 0 && r != -ENOMEM ? rerr(r, "listing the objects of pool", x->pool) : r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

static void strv_free(char **v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                free(v[i]);
        free(v);
}

/* A pack as a key of a VcTagSet (domain 0): writer ‖ pack number. */
static void pack_key(const uint8_t w[8], uint32_t packno, uint8_t key[32])
{
        memset(key, 0, 32);
        memcpy(key, w, 8);
        vc_put32(key + 8, packno);
}

/* The size of a pack, asked of the cluster once per pack (sizes holds
 * size + 1, 0 meaning absent). -ENOENT if it is not there. */
static int pack_size(Rados *x, VcTagSet *sizes, const uint8_t w[8], uint32_t packno, uint64_t *ret)
{
        uint8_t key[32];
        uint64_t v;
        pack_key(w, packno, key);
        if (!vc_tagset_get(sizes, 0, key, &v)) {
                char oid[64];
                uint64_t size = 0;
                time_t mt;
                pack_oid(oid, sizeof oid, w, packno);
                int r = rados_stat(x->io, oid, &size, &mt);
                if (r < 0 && r != -ENOENT)
                        return rerr(r, "looking at", oid);
                v = r < 0 ? 0 : size + 1;
                if ((r = vc_tagset_set(sizes, 0, key, v)) < 0)
                        return r;
        }
        if (!v)
                return -ENOENT;
        *ret = v - 1;
        return 0;
}

/* An index entry as gc and stat see it. */
typedef struct IdxEnt {
        char shard_oid[VC_DOMAIN_MAX + 16];
        char key[65];
        uint8_t tag[32];
        uint64_t dh;
        Loc loc;
} IdxEnt;

/* Every index entry of the store (malloc'ed). */
static int index_all(Rados *x, IdxEnt **ret, size_t *ret_n)
{
        char **objs = NULL;
        size_t no = 0;
        int r = list_objects(x, "idx/", &objs, &no);
        if (r < 0)
                return r;
        IdxEnt *v = NULL;
        size_t n = 0, cap = 0;
        for (size_t i = 0; r >= 0 && i < no; i++) {
                char dom[VC_DOMAIN_MAX];
                const char *d = objs[i] + 4, *slash = strrchr(d, '/');
                if (!slash || (size_t)(slash - d) >= sizeof dom)
                        continue;
                memcpy(dom, d, (size_t)(slash - d));
                dom[slash - d] = 0;
                if (!vc_domain_name_valid(dom) || strlen(objs[i]) >= sizeof v->shard_oid)
                        continue;
                uint64_t dh = dom_hash(dom);
                Kv *kv = NULL;
                size_t nkv = 0;
                r = omap_list(x, objs[i], "", &kv, &nkv);
                if (r == -ENOENT) {
                        vc_errclear();
                        r = 0;
                }
                for (size_t j = 0; r >= 0 && j < nkv; j++) {
                        if (n == cap) {
                                size_t nc = cap ? 2 * cap : 4096;
                                IdxEnt *w = realloc(v, nc * sizeof *w);
                                if (!w) {
                                        r = -ENOMEM;
                                        break;
                                }
                                v = w;
                                cap = nc;
                        }
                        IdxEnt *e = &v[n];
                        memset(e, 0, sizeof *e);
                        snprintf(e->shard_oid, sizeof e->shard_oid, "%s", objs[i]);
                        if (kv[j].klen != 64 || vc_unhex(kv[j].key, e->tag, 32) < 0 ||
                            !idx_parse((const char *)kv[j].val, kv[j].vlen, &e->loc)) {
                                r = vc_errf(-EBADMSG, "index object %s has a malformed entry (changed outside "
                                            "vmcas?)", objs[i]);
                                break;
                        }
                        memcpy(e->key, kv[j].key, 64);
                        e->dh = dh;
                        n++;
                }
                kv_free(kv, nkv);
        }
        strv_free(objs, no);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        return 0;
}

/* ---- gc ------------------------------------------------------------------------------ */

static int mark_fn(const VcParcel *p, uint32_t version, const char *dom, const uint8_t tag[32], int kind,
                   const Loc *loc, void *ctx)
{
        int r = vc_tagset_add(ctx, dom_hash(dom), tag, 0);
        return r < 0 ? r : 0;
}

typedef struct PackUse {
        uint8_t writer[8];
        uint32_t packno;
        uint64_t live;
} PackUse;

static int rm_keys(Rados *x, const char *oid, const char **keys, size_t n)
{
        size_t *kl = malloc(n * sizeof *kl);
        if (!kl)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                kl[i] = 64;
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_omap_rm_keys2(op, keys, kl, n);
        int r = rados_write_op_operate2(op, x->io, oid, NULL, 0);
        rados_release_write_op(op);
        free(kl);
        return r < 0 && r != -ENOENT ? rerr(r, "sweeping", oid) : 0;
}

static int ent_cmp(const void *a, const void *b)
{
        return strcmp(((const IdxEnt *)a)->shard_oid, ((const IdxEnt *)b)->shard_oid);
}

static int rb_gc(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st)
{
        Rados *x = R(b);
        memset(st, 0, sizeof *st);
        char run[33];
        cookie(run);
        struct timeval d = { .tv_sec = 6 * 3600 };
        int r = rados_lock_exclusive(x->io, LOCK_OBJ, "run", run, "vmcas gc", &d, 0);
        if (r == -EBUSY)
                return vc_errf(-EBUSY, "another gc is running on this store (a gc that was killed holds its lock "
                               "for up to 6 hours: 'rados -p %s lock break' frees it)", x->pool);
        if (r < 0)
                return rerr(r, "locking", LOCK_OBJ);
        int64_t started = vc_now();
        int64_t cutoff = started - grace + 1;
        VcTagSet *mark = NULL, *seen = NULL, *done = NULL, *livepacks = NULL;
        IdxEnt *ents = NULL;
        size_t ne = 0;
        char **packs = NULL;
        size_t npacks = 0;
        PackUse *use = NULL;
        char ck[33];
        bool locked = false;
        if ((r = vc_tagset_new(&mark)) < 0 || (r = vc_tagset_new(&seen)) < 0 || (r = vc_tagset_new(&done)) < 0)
                goto out;
        WalkVisit wv = { .fn = mark_fn, .ctx = mark, .seen = seen };
        /* mark without holding anything up, list the index... */
        if ((r = walk_all(x, &wv, done, &st->versions)) < 0 || (r = index_all(x, &ents, &ne)) < 0)
                goto out;
        /* ...then, with commits held off, mark what was committed since and
         * sweep */
        if ((r = commit_lock(x, true, 300, ck)) < 0)
                goto out;
        locked = true;
        if ((r = walk_all(x, &wv, done, &st->versions)) < 0)
                goto out;
        if (ne)
                qsort(ents, ne, sizeof *ents, ent_cmp);
        const char **keys = malloc((ne ? ne : 1) * sizeof *keys);
        if (!keys) {
                r = -ENOMEM;
                goto out;
        }
        for (size_t i = 0; i < ne && r >= 0;) {
                size_t j = i, nk = 0;
                for (; j < ne && strcmp(ents[j].shard_oid, ents[i].shard_oid) == 0; j++) {
                        IdxEnt *e = &ents[j];
                        bool live = vc_tagset_get(mark, e->dh, e->tag, NULL);
                        if (!live && e->loc.stored_at < cutoff) {
                                keys[nk++] = e->key;
                                st->sweep.chunks_freed++;
                                st->sweep.bytes_freed += e->loc.len;
                                e->loc.found = false;   /* dead now */
                                continue;
                        }
                        if (!live)
                                st->sweep.chunks_young++;
                        st->sweep.chunks_kept++;
                        st->sweep.bytes_kept += e->loc.len;
                }
                if (nk)
                        r = rm_keys(x, ents[i].shard_oid, keys, nk);
                i = j;
        }
        free(keys);
        commit_unlock(x, ck);
        locked = false;
        if (r < 0)
                goto out;
        st->referenced = vc_tagset_count(mark);
        /* packs with nothing live that are older than the grace period go */
        if ((r = list_objects(x, "pack/", &packs, &npacks)) < 0)
                goto out;
        if ((r = vc_tagset_new(&livepacks)) < 0)
                goto out;
        for (size_t j = 0; j < ne && r >= 0; j++)
                if (ents[j].loc.found) {
                        uint8_t pk[32];
                        pack_key(ents[j].loc.writer, ents[j].loc.packno, pk);
                        r = vc_tagset_set(livepacks, 0, pk, 1);
                }
        if (r < 0)
                goto out;
        st->compact.packs_before = npacks;
        st->compact.packs_after = npacks;
        for (size_t i = 0; i < npacks && r >= 0; i++) {
                uint8_t w[8];
                uint32_t pn;
                char hex[17];
                if (strlen(packs[i]) != 5 + 16 + 1 + 8 || packs[i][21] != '.')
                        continue;
                memcpy(hex, packs[i] + 5, 16);
                hex[16] = 0;
                if (vc_unhex(hex, w, 8) < 0)
                        continue;
                pn = (uint32_t)strtoul(packs[i] + 22, NULL, 16);
                uint8_t pk[32];
                pack_key(w, pn, pk);
                bool live = vc_tagset_get(livepacks, 0, pk, NULL);
                uint64_t size = 0;
                time_t mt = 0;
                int e = rados_stat(x->io, packs[i], &size, &mt);
                if (e < 0)
                        continue;
                st->compact.bytes_before += size;
                st->compact.disk_before += size;
                if (live || (int64_t)mt >= cutoff) {
                        st->compact.bytes_after += size;
                        st->compact.disk_after += size;
                        continue;
                }
                e = rados_remove(x->io, packs[i]);
                if (e < 0 && e != -ENOENT) {
                        r = rerr(e, "removing", packs[i]);
                        break;
                }
                st->compact.packs_deleted++;
                st->compact.packs_after--;
        }
out:
        if (locked)
                commit_unlock(x, ck);
        if (r < 0 && r != -EBUSY)
                vc_errf(r, "gc stopped, nothing was deleted that any version needs: %s", vc_errmsg(r));
        (void)rados_unlock(x->io, LOCK_OBJ, "run", run);
        strv_free(packs, npacks);
        free(use);
        free(ents);
        vc_tagset_free(mark);
        vc_tagset_free(seen);
        vc_tagset_free(done);
        vc_tagset_free(livepacks);
        return r < 0 ? r : 0;
}

/* ---- verify --------------------------------------------------------------------------- */

typedef struct VerCtx {
        Rados *x;
        void (*report)(const char *msg, void *ctx);
        void *rctx;
        VcVerifyStats *st;
        VcTagSet *reported;
} VerCtx;

static void say(VerCtx *v, const char *msg, const char *repair)
{
        char line[2048];
        snprintf(line, sizeof line, "%s\n        %s", msg, repair);
        if (v->report)
                v->report(line, v->rctx);
}

static int verify_fn(const VcParcel *p, uint32_t version, const char *dom, const uint8_t tag[32], int kind,
                     const Loc *loc, void *ctx)
{
        VerCtx *v = ctx;
        if (loc->found)
                return 0;
        v->st->problems++;
        v->st->by_repair[VC_REPAIR_NONE]++;
        char hex[65], msg[512];
        vc_hex(tag, 32, hex);
        snprintf(msg, sizeof msg, "%s %s of parcel '%s' version %u is not in the store (domain %s)",
                 kind == VC_KIND_META ? "keyring node" : "chunk", hex, p->name, version, dom);
        say(v, msg, "repair: its bytes are lost here; checking the version in again from a host that has it "
                    "stores it again");
        return 0;
}

typedef struct HashCtx {
        VerCtx *v;
        const IdxEnt *ents;
        const size_t *which;
        uint8_t *bad;
} HashCtx;

static int hash_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        HashCtx *h = ctx;
        uint8_t d[32];
        vc_sha256(data, len, d);
        h->v->st->chunks_checked++;
        h->v->st->bytes_checked += len;
        if (!vc_hash_eq(d, h->ents[h->which[idx]].tag, 32))
                h->bad[idx] = 1;
        return 0;
}

static int rb_verify(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                        VcVerifyStats *st)
{
        Rados *x = R(b);
        memset(st, 0, sizeof *st);
        VerCtx v = { .x = x, .report = report, .rctx = ctx, .st = st };
        VcTagSet *seen = NULL, *sizes = NULL;
        IdxEnt *ents = NULL;
        size_t ne = 0;
        int r = vc_tagset_new(&seen);
        if (r < 0 || (r = vc_tagset_new(&sizes)) < 0) {
                vc_tagset_free(seen);
                return r;
        }
        /* every index entry points at bytes that are there (and, full: that
         * hash to their tag) */
        if ((r = index_all(x, &ents, &ne)) < 0)
                goto out;
        for (size_t i = 0; i < ne && r >= 0; i += 4096) {
                size_t m = VC_MIN((size_t)4096, ne - i);
                uint8_t *tags = malloc(m * 32), *bad = calloc(m, 1);
                Loc *locs = malloc(m * sizeof *locs);
                size_t *which = malloc(m * sizeof *which);
                if (!tags || !bad || !locs || !which)
                        r = -ENOMEM;
                for (size_t k = 0; r >= 0 && k < m; k++) {
                        memcpy(tags + 32 * k, ents[i + k].tag, 32);
                        locs[k] = ents[i + k].loc;
                        which[k] = i + k;
                }
                HashCtx h = { &v, ents, which, bad };
                if (r >= 0 && full) {
                        r = read_locs(x, tags, locs, m, hash_got, &h);
                        if (r == -EIO) {
                                /* a pack is gone or short: find which, one by one */
                                vc_errclear();
                                r = 0;
                                for (size_t k = 0; k < m; k++)
                                        if (read_locs(x, tags + 32 * k, locs + k, 1, hash_got, &h) < 0) {
                                                vc_errclear();
                                                bad[k] = 2;
                                        }
                        }
                } else if (r >= 0) {
                        /* the packs exist and are long enough */
                        for (size_t k = 0; k < m && r >= 0; k++) {
                                uint64_t size = 0;
                                int e = pack_size(x, sizes, locs[k].writer, locs[k].packno, &size);
                                if (e == -ENOENT || (e == 0 && size < (uint64_t)locs[k].off + locs[k].len))
                                        bad[k] = 2;
                                else if (e < 0)
                                        r = e;
                        }
                }
                for (size_t k = 0; r >= 0 && k < m; k++) {
                        if (!bad[k])
                                continue;
                        char msg[512];
                        st->problems++;
                        st->by_repair[VC_REPAIR_NONE]++;
                        snprintf(msg, sizeof msg, "chunk %s (index %s) %s", ents[i + k].key, ents[i + k].shard_oid,
                                 bad[k] == 1 ? "does not hash to its tag: its bytes in the pool are damaged"
                                             : "names bytes of a pack that are not there");
                        say(&v, msg, "repair: 'vmcas verify --repair' drops its index entry, so that the next "
                                     "checkin of a host that has it stores it again");
                }
                free(tags);
                free(bad);
                free(locs);
                free(which);
        }
        /* every version's keyrings and chunks are there */
        {
                WalkVisit wv = { .fn = verify_fn, .ctx = &v, .seen = seen };
                VcParcelInfo *ps = NULL;
                size_t np = 0;
                if (r >= 0 && (r = rb_parcels(b, &ps, &np)) >= 0) {
                        st->parcels = np;
                        free(ps);
                        r = walk_all(x, &wv, NULL, &st->versions);
                        if (r == -EBADMSG) {
                                st->problems++;
                                st->by_repair[VC_REPAIR_NONE]++;
                                say(&v, vc_errmsg(r), "repair: the version cannot be read; check it in again");
                                vc_errclear();
                                r = 0;
                        }
                }
        }
out:
        free(ents);
        vc_tagset_free(seen);
        vc_tagset_free(sizes);
        return r < 0 ? r : (int)VC_MIN(st->problems, (uint64_t)INT32_MAX);
}

/* ---- stat ------------------------------------------------------------------------------ */

static int rb_stat_(VcBackend *b, VcStoreStat *st)
{
        Rados *x = R(b);
        memset(st, 0, sizeof *st);
        IdxEnt *ents = NULL;
        size_t ne = 0;
        int r = index_all(x, &ents, &ne);
        if (r < 0)
                return r;
        for (size_t i = 0; i < ne; i++) {
                if (ents[i].loc.kind == VC_KIND_META)
                        st->meta_bytes += ents[i].loc.len;
                else
                        st->data_bytes += ents[i].loc.len;
                st->index_bytes += 64 + IDX_VAL_LEN;
        }
        free(ents);
        char **packs = NULL;
        size_t np = 0;
        if ((r = list_objects(x, "pack/", &packs, &np)) < 0)
                return r;
        for (size_t i = 0; i < np; i++) {
                uint64_t size = 0;
                time_t mt;
                if (rados_stat(x->io, packs[i], &size, &mt) == 0)
                        st->disk_bytes += size;
        }
        strv_free(packs, np);
        VcParcelInfo *ps = NULL;
        size_t n = 0;
        if ((r = rb_parcels(b, &ps, &n)) < 0)
                return r;
        st->parcels = calloc(n ? n : 1, sizeof *st->parcels);
        if (!st->parcels) {
                free(ps);
                return -ENOMEM;
        }
        for (size_t i = 0; i < n && r >= 0; i++) {
                VcParcelStat *s = &st->parcels[st->nparcels];
                if ((r = vc_parcel_unpack(ps[i].record, ps[i].record_len, ps[i].name, &s->p)) < 0)
                        break;
                s->p.latest = ps[i].latest;
                snprintf(s->p.owner, sizeof s->p.owner, "%s", ps[i].owner);
                VcVersionInfo *vs = NULL;
                size_t nv = 0;
                if ((r = versions_of(x, ps[i].name, &vs, &nv)) < 0) {
                        if (r == -ENOENT) {
                                vc_errclear();
                                r = 0;
                                continue;
                        }
                        break;
                }
                s->versions = (uint32_t)nv;
                for (size_t j = 0; j < nv; j++) {
                        VcVersion v;
                        if (vc_version_unpack(vs[j].record, vs[j].record_len, &v) == 0)
                                s->logical_bytes += v.mem_size + v.disk_size;
                        s->meta_bytes += VC_VERSION_REC_LEN;
                }
                st->logical_bytes += s->logical_bytes;
                free(vs);
                st->nparcels++;
        }
        free(ps);
        if (r < 0) {
                free(st->parcels);
                st->parcels = NULL;
                st->nparcels = 0;
        }
        return r < 0 ? r : 0;
}

/* ---- bundles and blobs ------------------------------------------------------------------ */

static int rb_bundle_get(VcBackend *b, uint8_t **ret, size_t *len)
{
        return vc_errf(-ENOTSUP, "a RADOS store used directly keeps no key bundle: the keys are on this host");
}

static int rb_bundle_put(VcBackend *b, const uint8_t *blob, size_t len)
{
        return vc_errf(-ENOTSUP, "a RADOS store used directly keeps no key bundle: the keys are on this host");
}

static const VcBackendOps rb_ops;

static Rados *as_rados(VcBackend *b)
{
        return b && b->ops == &rb_ops ? R(b) : NULL;
}

bool vc_backend_is_rados(VcBackend *b)
{
        return as_rados(b) != NULL;
}

int vc_backend_rados_blob_get(VcBackend *b, const char *name, size_t max, uint8_t **ret, size_t *ret_len)
{
        Rados *x = as_rados(b);
        if (!x)
                return -ENOTSUP;
        char oid[160];
        snprintf(oid, sizeof oid, "blob/%s", name);
        uint64_t size = 0;
        time_t mt;
        int r = rados_stat(x->io, oid, &size, &mt);
        if (r == -ENOENT)
                return -ENOENT;
        if (r < 0)
                return rerr(r, "reading", oid);
        if (size > max)
                return vc_errf(-EFBIG, "object %s is larger than %zu bytes", oid, max);
        uint8_t *buf = malloc(size ? size : 1);
        if (!buf)
                return -ENOMEM;
        r = size ? rados_read(x->io, oid, (char *)buf, size, 0) : 0;
        if (r < 0) {
                free(buf);
                return r == -ENOENT ? -ENOENT : rerr(r, "reading", oid);
        }
        *ret = buf;
        *ret_len = (size_t)r;
        return 0;
}

int vc_backend_rados_blob_put(VcBackend *b, const char *name, const uint8_t *data, size_t len)
{
        Rados *x = as_rados(b);
        if (!x)
                return -ENOTSUP;
        char oid[160];
        snprintf(oid, sizeof oid, "blob/%s", name);
        int r = rados_write_full(x->io, oid, (const char *)data, len);
        return r < 0 ? rerr(r, "writing", oid) : 0;
}

int vc_backend_rados_repair(VcBackend *b, bool full, uint64_t *dropped)
{
        Rados *x = as_rados(b);
        *dropped = 0;
        if (!x)
                return -ENOTSUP;
        IdxEnt *ents = NULL;
        size_t ne = 0;
        VcTagSet *sizes = NULL;
        int r = vc_tagset_new(&sizes);
        if (r < 0)
                return r;
        if ((r = index_all(x, &ents, &ne)) < 0) {
                vc_tagset_free(sizes);
                return r;
        }
        VcVerifyStats st = { 0 };
        VerCtx v = { .x = x, .st = &st };
        for (size_t i = 0; i < ne && r >= 0; i++) {
                uint8_t bad = 0;
                size_t which = 0;
                HashCtx h = { &v, ents + i, &which, &bad };
                if (full) {
                        if (read_locs(x, ents[i].tag, &ents[i].loc, 1, hash_got, &h) < 0) {
                                vc_errclear();
                                bad = 2;
                        }
                } else {
                        uint64_t size = 0;
                        int e = pack_size(x, sizes, ents[i].loc.writer, ents[i].loc.packno, &size);
                        if (e == -ENOENT || (e == 0 && size < (uint64_t)ents[i].loc.off + ents[i].loc.len))
                                bad = 2;
                        else if (e < 0) {
                                r = e;
                                break;
                        }
                }
                if (!bad)
                        continue;
                const char *k[] = { ents[i].key };
                if ((r = rm_keys(x, ents[i].shard_oid, k, 1)) < 0)
                        break;
                (*dropped)++;
        }
        free(ents);
        vc_tagset_free(sizes);
        return r;
}

/* ---- opening ---------------------------------------------------------------------------- */

static void rb_free(VcBackend *b)
{
        Rados *x = R(b);
        job_free(&x->cur);
        vc_tagset_free(x->pending);
        if (x->io)
                rados_ioctx_destroy(x->io);
        if (x->cl)
                rados_shutdown(x->cl);
        pthread_mutex_destroy(&x->lock);
        pthread_cond_destroy(&x->idle);
        free(x);
}

static const VcBackendOps rb_ops = {
        .kind = "rados",
        .free = rb_free,
        .missing = rb_missing,
        .put = rb_put,
        .get = rb_get,
        .flush = rb_flush,
        .parcels = rb_parcels,
        .parcel = rb_parcel,
        .versions = rb_versions,
        .version = rb_version,
        .create = rb_create,
        .commit = rb_commit,
        .prune = rb_prune,
        .lease_acquire = rb_lease_acquire,
        .lease_release = rb_lease_release,
        .lease_break = rb_lease_break,
        .lease_get = rb_lease_get,
        .stat = rb_stat_,
        .verify = rb_verify,
        .gc = rb_gc,
        .bundle_get = rb_bundle_get,
        .bundle_put = rb_bundle_put,
};

typedef struct Url {
        char pool[128], ns[128], conf[1024], id[64], cluster[64];
        int timeout;
} Url;

static int valid_obj_name(const char *s)
{
        if (!*s)
                return 0;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return 0;
        return 1;
}

static int url_parse(const char *loc, Url *u)
{
        memset(u, 0, sizeof *u);
        u->timeout = 30;
        snprintf(u->id, sizeof u->id, "admin");
        snprintf(u->cluster, sizeof u->cluster, "ceph");
        const char *usage = "(rados://POOL[/PREFIX][?conf=FILE&id=NAME&cluster=NAME&timeout=SECONDS])";
        if (strncmp(loc, "rados://", 8) != 0)
                return vc_errf(-EINVAL, "'%s' is not a RADOS locator %s", loc, usage);
        const char *p = loc + 8, *q = strchr(p, '?');
        size_t pl = q ? (size_t)(q - p) : strlen(p);
        char path[300];
        if (pl >= sizeof path)
                return vc_errf(-EINVAL, "'%s': the pool and prefix are too long", loc);
        memcpy(path, p, pl);
        path[pl] = 0;
        char *slash = strchr(path, '/');
        if (slash) {
                *slash = 0;
                if (strlen(slash + 1) >= sizeof u->ns || !valid_obj_name(slash + 1))
                        return vc_errf(-EINVAL, "'%s': the prefix '%s' is not 1-127 letters, digits, '.', '_', '-' %s",
                                       loc, slash + 1, usage);
                memcpy(u->ns, slash + 1, strlen(slash + 1) + 1);
        }
        if (strlen(path) >= sizeof u->pool || !valid_obj_name(path))
                return vc_errf(-EINVAL, "'%s': no pool name, or not one of letters, digits, '.', '_', '-' %s", loc,
                               usage);
        memcpy(u->pool, path, strlen(path) + 1);
        if (!q)
                return 0;
        char args[2048];
        if (strlen(q + 1) >= sizeof args)
                return vc_errf(-EINVAL, "'%s': the options are too long", loc);
        snprintf(args, sizeof args, "%s", q + 1);
        char *save = NULL;
        for (char *kv = strtok_r(args, "&", &save); kv; kv = strtok_r(NULL, "&", &save)) {
                char *eq = strchr(kv, '=');
                if (!eq || eq == kv || !eq[1])
                        return vc_errf(-EINVAL, "'%s': option '%s' is not NAME=VALUE %s", loc, kv, usage);
                *eq = 0;
                const char *v = eq + 1;
                if (strcmp(kv, "conf") == 0 && strlen(v) < sizeof u->conf)
                        snprintf(u->conf, sizeof u->conf, "%s", v);
                else if (strcmp(kv, "id") == 0 && strlen(v) < sizeof u->id && valid_obj_name(v))
                        snprintf(u->id, sizeof u->id, "%s", v);
                else if (strcmp(kv, "cluster") == 0 && strlen(v) < sizeof u->cluster && valid_obj_name(v))
                        snprintf(u->cluster, sizeof u->cluster, "%s", v);
                else if (strcmp(kv, "timeout") == 0) {
                        char *end;
                        long t = strtol(v, &end, 10);
                        if (*end || t < 1 || t > 3600)
                                return vc_errf(-EINVAL, "'%s': timeout must be 1-3600 seconds", loc);
                        u->timeout = (int)t;
                } else
                        return vc_errf(-EINVAL, "'%s': unknown or bad option '%s' %s", loc, kv, usage);
        }
        return 0;
}

static int store_init_obj(Rados *x)
{
        uint8_t uuid[16], zero[8] = { 0 };
        int r = vc_random(uuid, sizeof uuid);
        if (r < 0)
                return r;
        const char *keys[] = { "format", "uuid", "commit_seq" };
        const char *vals[] = { "1", (const char *)uuid, (const char *)zero };
        size_t kl[] = { 6, 4, 10 }, vl[] = { 1, 16, 8 };
        rados_write_op_t op = rados_create_write_op();
        rados_write_op_create(op, LIBRADOS_CREATE_EXCLUSIVE, NULL);
        rados_write_op_omap_set2(op, keys, vals, kl, vl, 3);
        r = rados_write_op_operate2(op, x->io, STORE_OBJ, NULL, 0);
        rados_release_write_op(op);
        if (r == -EEXIST)
                return -EEXIST;
        return r < 0 ? rerr(r, "creating", STORE_OBJ) : 0;
}

static int store_read_obj(Rados *x)
{
        const char *keys[] = { "format", "uuid" };
        size_t kl[] = { 6, 4 };
        rados_read_op_t op = rados_create_read_op();
        rados_omap_iter_t it;
        int prval = 0;
        rados_read_op_omap_get_vals_by_keys2(op, keys, 2, kl, &it, &prval);
        int r = rados_read_op_operate(op, x->io, STORE_OBJ, 0);
        if (r == 0)
                r = prval;
        if (r < 0) {
                rados_omap_get_end(it);
                rados_release_read_op(op);
                return r == -ENOENT ? -ENOENT : rerr(r, "reading", STORE_OBJ);
        }
        int seen = 0;
        char *k, *v;
        size_t klen, vl;
        while (rados_omap_get_next2(it, &k, &v, &klen, &vl) == 0 && k) {
                if (klen == 6 && memcmp(k, "format", 6) == 0 && vl == 1 && v[0] == '1')
                        seen |= 1;
                else if (klen == 4 && memcmp(k, "uuid", 4) == 0 && vl == 16) {
                        memcpy(x->base.uuid, v, 16);
                        seen |= 2;
                }
        }
        rados_omap_get_end(it);
        rados_release_read_op(op);
        if (seen != 3)
                return vc_errf(-EPROTO, "%s: the store object is not one this vmcas knows (another format?)",
                               x->base.where);
        return 0;
}

static int connect_to(const char *locator, const VcBackendOpts *o, Rados **ret)
{
        Url u;
        int r = url_parse(locator, &u);
        if (r < 0)
                return r;
        Rados *x = calloc(1, sizeof *x);
        if (!x)
                return -ENOMEM;
        x->base.ops = &rb_ops;
        snprintf(x->base.where, sizeof x->base.where, "rados://%s%s%s", u.pool, u.ns[0] ? "/" : "", u.ns);
        snprintf(x->pool, sizeof x->pool, "%s", u.pool);
        snprintf(x->ns, sizeof x->ns, "%s", u.ns);
        x->verify = o && o->verify_puts;
        pthread_mutex_init(&x->lock, NULL);
        pthread_cond_init(&x->idle, NULL);
        char name[96], t[16];
        snprintf(name, sizeof name, "client.%s", u.id);
        snprintf(t, sizeof t, "%d", u.timeout);
        if ((r = rados_create2(&x->cl, u.cluster, name, 0)) < 0) {
                x->cl = NULL;
                r = vc_errf(r, "cannot set up a Ceph client: %s", strerror(-r));
                goto fail;
        }
        if (u.conf[0] && access(u.conf, R_OK) < 0) {
                r = vc_errf(-ENOENT, "%s: no Ceph configuration file %s: %s", locator, u.conf, strerror(errno));
                goto fail;
        }
        r = rados_conf_read_file(x->cl, u.conf[0] ? u.conf : NULL);
        if (r < 0) {
                r = vc_errf(r == -ENOENT ? -ENOENT : -EINVAL, "%s: cannot read the Ceph configuration %s: %s",
                            locator, u.conf[0] ? u.conf : "(/etc/ceph/ceph.conf, ~/.ceph/config, ./ceph.conf)",
                            strerror(-r));
                goto fail;
        }
        (void)rados_conf_parse_env(x->cl, NULL);
        rados_conf_set(x->cl, "client_mount_timeout", t);
        rados_conf_set(x->cl, "rados_mon_op_timeout", t);
        rados_conf_set(x->cl, "rados_osd_op_timeout", t);
        rados_conf_set(x->cl, "log_to_stderr", "false");
        rados_conf_set(x->cl, "err_to_stderr", "false");
        if ((r = rados_connect(x->cl)) < 0) {
                r = vc_errf(r == -ETIMEDOUT ? -ETIMEDOUT : -ECONNREFUSED,
                            "%s: cannot reach the Ceph cluster (its monitors, after %s s): %s", locator, t,
                            strerror(-r));
                goto fail;
        }
        if ((r = rados_ioctx_create(x->cl, u.pool, &x->io)) < 0) {
                x->io = NULL;
                r = r == -ENOENT ? vc_errf(-ENOENT, "%s: the Ceph cluster has no pool '%s' (make it with "
                                           "'ceph osd pool create %s')", locator, u.pool, u.pool)
                                 : vc_errf(r, "%s: cannot open pool '%s': %s", locator, u.pool, strerror(-r));
                goto fail;
        }
        rados_ioctx_set_namespace(x->io, u.ns);
        if ((r = vc_random(x->writer, sizeof x->writer)) < 0)
                goto fail;
        *ret = x;
        return 0;
fail:
        rb_free(&x->base);
        return r;
}

int vc_backend_rados_open(const char *locator, const VcBackendOpts *o, VcBackend **ret)
{
        Rados *x;
        int r = connect_to(locator, o, &x);
        if (r < 0)
                return r;
        r = store_read_obj(x);
        if (r == -ENOENT && o && o->create) {
                r = store_init_obj(x);
                if (r == -EEXIST)
                        r = 0;
                if (r >= 0)
                        r = store_read_obj(x);
        }
        if (r == -ENOENT)
                r = vc_errf(-ENOENT, "%s: no vmcas store there (make one with 'vmcas -s %s init')", x->base.where,
                            x->base.where);
        if (r < 0) {
                rb_free(&x->base);
                return r;
        }
        *ret = &x->base;
        return 0;
}

int vc_backend_rados_init(const char *locator, uint8_t uuid[16], char *where, size_t wlen)
{
        Rados *x;
        int r = connect_to(locator, NULL, &x);
        if (r < 0)
                return r;
        r = store_init_obj(x);
        if (r == -EEXIST)
                r = vc_errf(-EEXIST, "%s: there is a vmcas store there already", x->base.where);
        if (r >= 0)
                r = store_read_obj(x);
        if (r >= 0) {
                memcpy(uuid, x->base.uuid, 16);
                snprintf(where, wlen, "%s", x->base.where);
        }
        rb_free(&x->base);
        return r;
}
