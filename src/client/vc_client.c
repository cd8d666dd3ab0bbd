#include "client/vc_client.h"
#include "client/vc_keystore.h"
#include "core/vc_keyring.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH (8u << 20)        /* bytes read and sealed per round */
#define MAX_THREADS 16

int vc_threads(void)
{
        const char *e = getenv("VMCAS_THREADS");
        long n = e ? strtol(e, NULL, 10) : sysconf(_SC_NPROCESSORS_ONLN);
        return (int)VC_MAX(1, VC_MIN(n, MAX_THREADS));
}

/* ---- keys --------------------------------------------------------------- */

typedef struct Keys {
        uint8_t parcel[VC_KEY_LEN];   /* the parcel secret */
        uint8_t group[VC_KEY_LEN];    /* the group secret (group policy) */
        uint8_t node[VC_KEY_LEN];     /* keyring nodes */
        uint8_t wrap[VC_KEY_LEN];     /* version roots */
} Keys;


/* Stopgap so that this file builds against vc_repo_parcel_put's record
 * argument until the client moves onto the store interface. */
static int stopgap_parcel_put(VcTxn *t, const VcParcel *p)
{
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t len;
        int r = vc_parcel_pack(p, rec, sizeof rec, &len);
        return r < 0 ? r : vc_repo_parcel_put(t, p, rec, len);
}

static void keys_wipe(Keys *k)
{
        vc_wipe(k, sizeof *k);
}

static void key_check(const uint8_t secret[VC_KEY_LEN], uint8_t out[16])
{
        uint8_t h[VC_KEY_LEN];
        vc_derive(secret, "check", h);
        memcpy(out, h, 16);
}

static void keys_derive(Keys *k)
{
        vc_derive(k->parcel, "node", k->node);
        vc_derive(k->parcel, "version-wrap", k->wrap);
}

static int keys_load(VcStore *s, const VcParcel *p, Keys *k)
{
        uint8_t chk[16];
        int r = vc_key_load(vc_store_uuid(s), "parcel", p->name, k->parcel);
        if (r < 0)
                return r;
        key_check(k->parcel, chk);
        if (!vc_hash_eq(chk, p->check, 16))
                return vc_errf(-EKEYREJECTED, "the key file of parcel '%s' holds the wrong key", p->name);
        if (p->policy == VC_POLICY_GROUP) {
                if ((r = vc_key_load(vc_store_uuid(s), "group", p->group, k->group)) < 0)
                        return r;
                key_check(k->group, chk);
                if (!vc_hash_eq(chk, p->group_check, 16))
                        return vc_errf(-EKEYREJECTED, "the key file of group '%s' holds the wrong key", p->group);
        }
        keys_derive(k);
        return 0;
}

static int sealer_for(const VcParcel *p, const Keys *k, VcSealer **ret)
{
        const uint8_t *secret = p->policy == VC_POLICY_GROUP ? k->group
                              : p->policy == VC_POLICY_ALL ? NULL : k->parcel;
        return vc_sealer_new(p->policy, p->comp, secret, ret);
}

/* ---- reading a version's keyrings -------------------------------------------- */

typedef struct { VcStore *s; uint64_t domain; } NodeGet;

static int node_get(const uint8_t tag[32], uint8_t **buf, size_t *cap, size_t *len, void *ctx)
{
        NodeGet *g = ctx;
        int r = vc_store_get(g->s, g->domain, tag, buf, cap, len);
        if (r < 0) {
                char hex[65];
                vc_hex(tag, 32, hex);
                return vc_errf(r, "keyring node %s: %s", hex, vc_errmsg(r));
        }
        return 0;
}

static void version_aad(const VcVersion *v, uint8_t aad[VC_VERSION_AAD_LEN])
{
        uint8_t rec[VC_VERSION_REC_LEN];
        vc_version_pack(v, rec);
        memcpy(aad, rec, VC_VERSION_AAD_LEN);
}

/* Reads the entries of both images of version v. */
static int read_entries(VcStore *s, const VcParcel *p, const Keys *k, const VcVersion *v, VcEntry **mem,
                        uint64_t *nmem, VcEntry **disk, uint64_t *ndisk)
{
        uint8_t aad[VC_VERSION_AAD_LEN], roots[64];
        version_aad(v, aad);
        int r = vc_gcm_open(k->wrap, aad, sizeof aad, v->wrapped, VC_WRAPPED_LEN, roots);
        if (r == -EKEYREJECTED)
                return vc_errf(r, "version %u of parcel '%s' does not open with this key (wrong key, or a "
                               "damaged version record)", v->version, p->name);
        if (r < 0)
                return r;
        VcEntry rm, rd;
        memcpy(rm.tag, v->mem_root, 32);
        memcpy(rm.key, roots, 32);
        memcpy(rd.tag, v->disk_root, 32);
        memcpy(rd.key, roots + 32, 32);
        vc_wipe(roots, sizeof roots);
        uint64_t cs = p->chunk_size;
        *nmem = (v->mem_size + cs - 1) / cs;
        *ndisk = (v->disk_size + cs - 1) / cs;
        *mem = calloc(*nmem + 1, sizeof(VcEntry));
        *disk = calloc(*ndisk + 1, sizeof(VcEntry));
        NodeGet g = { s, p->node_domain };
        if (!*mem || !*disk)
                r = -ENOMEM;
        else if ((r = vc_tree_read(k->node, &rm, *nmem, node_get, &g, *mem)) >= 0)
                r = vc_tree_read(k->node, &rd, *ndisk, node_get, &g, *disk);
        vc_wipe(&rm, sizeof rm);
        vc_wipe(&rd, sizeof rd);
        if (r < 0) {
                free(*mem);
                free(*disk);
                *mem = *disk = NULL;
        }
        return r;
}

/* ---- image sources: a file, or a version of a parcel (for --from) -------------- */

typedef struct Source {
        uint64_t size;
        const char *what;
        int fd;                       /* a file ... */
        VcStore *s;                   /* ... or a version */
        const VcParcel *p;
        VcEntry *e;
        VcSealer *sealer;
        uint8_t *sealed;
        size_t cap;
} Source;

static int source_read(Source *src, uint64_t off, uint8_t *buf, size_t len)
{
        if (src->fd >= 0) {
                int r = vc_pread_full(src->fd, buf, len, (off_t)off);
                if (r < 0)
                        return vc_errf(r, "reading the %s image: %s", src->what,
                                       r == -EIO ? "the file is shorter than it was" : strerror(-r));
                return 0;
        }
        /* Both chunk sizes are powers of two dividing BATCH, so a batch
         * covers whole chunks of the source. */
        uint64_t cs = src->p->chunk_size;
        for (uint64_t o = off; o < off + len; o += cs) {
                uint64_t j = o / cs;
                size_t n = (size_t)VC_MIN(cs, src->size - o);
                if (vc_entry_is_zero(&src->e[j])) {
                        memset(buf + (o - off), 0, n);
                        continue;
                }
                size_t slen;
                int r = vc_store_get(src->s, src->p->data_domain, src->e[j].tag, &src->sealed, &src->cap, &slen);
                if (r >= 0)
                        r = vc_unseal(src->sealer, src->sealed, slen, src->e[j].tag, src->e[j].key, buf + (o - off), n,
                                      false);
                if (r < 0) {
                        char hex[65];
                        vc_hex(src->e[j].tag, 32, hex);
                        return vc_errf(r, "chunk %s (%s image of '%s', chunk %" PRIu64 "): %s", hex, src->what,
                                       src->p->name, j, vc_errmsg(r));
                }
        }
        return 0;
}

/* ---- checkin ------------------------------------------------------------------ */

enum { SLOT_ZERO, SLOT_REUSED, SLOT_NEW, SLOT_STORED };

/* One round of BATCH bytes: the data, each chunk's fate and sealed bytes. */
typedef struct Batch {
        uint8_t *buf, *slots, *kind;
        size_t *slen;
        VcEntry *out;              /* entries of this batch, in place */
        uint64_t first, len;       /* first chunk index, bytes */
} Batch;

typedef struct Checkin {
        VcStore *s;
        VcParcel *p;
        const Keys *k;
        VcWriter *w;
        int nthreads;
        VcSealer *sealers[MAX_THREADS];
        VcTxn *rtx[MAX_THREADS];   /* each worker's look-ups in the index */
        VcTagSet *prevmap;         /* key -> index into prev (ip/group/all) */
        VcEntry *prev_all;         /* previous memory entries, then disk */
        uint64_t prev_nmem;
        VcTagSet *check;           /* (domain, tag) to re-check at commit */
        VcCheckinStats *st;
        VcProgress prog;
        uint64_t done;
        /* Two batches: while the workers seal one, the put thread appends
         * the other to the store. */
        Batch b[2], *cur;
        size_t slot_size;
        const VcEntry *prev;       /* previous entries of this image, or NULL */
        uint64_t prev_n;
        uint64_t seal_base;        /* nonce index of position 0 of this image */
        Source *src;               /* the image the workers read, at src_off */
        uint64_t src_off;
        int err;
        pthread_mutex_t lock;
        /* the put thread */
        pthread_t putter;
        bool putter_started, quit;
        Batch *todo;               /* handed to the put thread, NULL when idle */
        int put_err;
        pthread_cond_t cv;
} Checkin;

typedef struct { Checkin *c; int tid; } Worker;

static void *work(void *arg)
{
        Worker *wk = arg;
        Checkin *c = wk->c;
        Batch *b = c->cur;
        VcSealer *sl = c->sealers[wk->tid];
        uint64_t cs = c->p->chunk_size, n = (b->len + cs - 1) / cs;
        /* Each worker takes a contiguous slice of the batch and, from a
         * file, reads it itself: reading is then as parallel as sealing. */
        uint64_t lo = n * (uint64_t)wk->tid / (uint64_t)c->nthreads;
        uint64_t hi = n * (uint64_t)(wk->tid + 1) / (uint64_t)c->nthreads;
        if (c->src && c->src->fd >= 0 && hi > lo) {
                uint64_t from = lo * cs, to = VC_MIN(hi * cs, b->len);
                int r = source_read(c->src, c->src_off + from, b->buf + from, (size_t)(to - from));
                if (r < 0) {
                        pthread_mutex_lock(&c->lock);
                        if (!c->err)
                                c->err = r;
                        pthread_mutex_unlock(&c->lock);
                        return NULL;
                }
        }
        for (uint64_t i = lo; i < hi; i++) {
                const uint8_t *d = b->buf + i * cs;
                size_t len = (size_t)VC_MIN(cs, b->len - i * cs);
                uint64_t idx = b->first + i;
                VcEntry *e = &b->out[i];
                if (vc_is_zero(d, len)) {
                        memset(e, 0, sizeof *e);
                        b->kind[i] = SLOT_ZERO;
                        continue;
                }
                vc_chunk_key(sl, d, len, e->key);
                uint64_t at;
                if (c->prev && idx < c->prev_n && !vc_entry_is_zero(&c->prev[idx]) &&
                    memcmp(c->prev[idx].key, e->key, VC_KEY_LEN) == 0) {
                        memcpy(e->tag, c->prev[idx].tag, 32);
                        b->kind[i] = SLOT_REUSED;
                        continue;
                }
                if (c->prevmap && vc_tagset_get(c->prevmap, 0, e->key, &at)) {
                        memcpy(e->tag, c->prev_all[at].tag, 32);
                        b->kind[i] = SLOT_REUSED;
                        continue;
                }
                int r = vc_seal(sl, d, len, e->key, c->seal_base + idx, b->slots + i * c->slot_size, c->slot_size,
                                &b->slen[i], e->tag);
                /* whether the store has it already is asked here, on every
                 * core, rather than on the put thread */
                if (r >= 0)
                        r = vc_txn_has_chunk(c->rtx[wk->tid], c->p->data_domain, e->tag);
                if (r == 1) {
                        b->kind[i] = SLOT_STORED;
                        continue;
                }
                if (r < 0) {
                        pthread_mutex_lock(&c->lock);
                        if (!c->err)
                                c->err = r;
                        pthread_mutex_unlock(&c->lock);
                        break;
                }
                b->kind[i] = SLOT_NEW;
        }
        return NULL;
}

static int run_workers(Checkin *c)
{
        pthread_t th[MAX_THREADS];
        Worker wk[MAX_THREADS];
        int started = 0;
        c->err = 0;
        /* see what the last flush committed, and release old pages */
        for (int t = 0; t < c->nthreads; t++) {
                int r = vc_txn_refresh(c->rtx[t]);
                if (r < 0)
                        return r;
        }
        for (int t = 1; t < c->nthreads; t++) {
                wk[t] = (Worker){ c, t };
                if (pthread_create(&th[t], NULL, work, &wk[t]) != 0)
                        break;
                started = t;
        }
        wk[0] = (Worker){ c, 0 };
        if (started + 1 < c->nthreads) {
                /* could not start every thread: do the rest here */
                for (int t = started + 1; t < c->nthreads; t++) {
                        wk[t] = (Worker){ c, t };
                        work(&wk[t]);
                }
        }
        work(&wk[0]);
        for (int t = 1; t <= started; t++)
                pthread_join(th[t], NULL);
        return c->err;
}

/* Appends the new chunks of batch b to the store (the put thread). */
static int put_batch(Checkin *c, Batch *b)
{
        uint64_t cs = c->p->chunk_size, n = (b->len + cs - 1) / cs;
        for (uint64_t i = 0; i < n; i++) {
                c->st->chunks++;
                if (b->kind[i] == SLOT_ZERO) {
                        c->st->zero_chunks++;
                        continue;
                }
                if (b->kind[i] == SLOT_REUSED) {
                        c->st->reused_chunks++;
                        continue;
                }
                int r = 0;
                if (b->kind[i] == SLOT_NEW)
                        r = vc_writer_put_fresh(c->w, c->p->data_domain, VC_KIND_DATA, b->out[i].tag,
                                                b->slots + i * c->slot_size, b->slen[i]);
                if (r < 0)
                        return r;
                if (r == 1) {
                        c->st->new_chunks++;
                        c->st->new_bytes += b->slen[i];
                }
                if ((r = vc_tagset_add(c->check, c->p->data_domain, b->out[i].tag, 0)) < 0)
                        return r;
        }
        c->done += b->len;
        c->st->bytes_in += b->len;
        vc_progress(&c->prog, c->done);
        return 0;
}

static void *put_main(void *arg)
{
        Checkin *c = arg;
        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->todo && !c->quit)
                        pthread_cond_wait(&c->cv, &c->lock);
                if (!c->todo)
                        break;
                Batch *b = c->todo;
                pthread_mutex_unlock(&c->lock);
                int r = c->put_err ? 0 : put_batch(c, b);
                pthread_mutex_lock(&c->lock);
                if (r < 0 && !c->put_err)
                        c->put_err = r;
                c->todo = NULL;
                pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/* Waits until the put thread is idle; hands it b if not NULL. Returns the
 * put thread's first error. */
static int hand_over(Checkin *c, Batch *b)
{
        pthread_mutex_lock(&c->lock);
        while (c->todo)
                pthread_cond_wait(&c->cv, &c->lock);
        int r = c->put_err;
        if (b && !r) {
                c->todo = b;
                pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&c->lock);
        return r;
}

static int checkin_image(Checkin *c, Source *src, const VcEntry *prev, uint64_t prev_n, VcEntry *out,
                         uint64_t seal_base)
{
        uint64_t cs = c->p->chunk_size;
        int k = 0;
        /* the workers read prev and seal_base: the put thread never does */
        c->seal_base = seal_base;
        c->prev = prev;
        c->prev_n = prev_n;
        for (uint64_t off = 0; off < src->size; off += BATCH, k ^= 1) {
                /* b's previous contents were handed over two rounds ago and
                 * the last hand_over waited for them to be put */
                Batch *b = &c->b[k];
                b->len = VC_MIN((uint64_t)BATCH, src->size - off);
                b->first = off / cs;
                b->out = out + b->first;
                int r = 0;
                c->src = src;
                c->src_off = off;
                /* a version (--from) is read here: its reader is not
                 * thread-safe; the workers read a file themselves */
                if (src->fd < 0 && (r = source_read(src, off, b->buf, (size_t)b->len)) < 0)
                        return r;
                c->cur = b;
                if ((r = run_workers(c)) < 0 || (r = hand_over(c, b)) < 0)
                        return r;
        }
        return hand_over(c, NULL);
}


static int node_put(const uint8_t tag[32], const uint8_t *sealed, size_t len, void *ctx)
{
        Checkin *c = ctx;
        int r = vc_writer_put(c->w, c->p->node_domain, VC_KIND_META, tag, sealed, len);
        if (r == 1)
                c->st->meta_bytes += len;
        if (r >= 0) {
                int r2 = vc_tagset_add(c->check, c->p->node_domain, tag, 0);
                if (r2 < 0)
                        return r2;
        }
        return r;
}

typedef struct { VcTxn *t; int missing; uint64_t domain; uint8_t tag[32]; } CheckCtx;

static int check_one(uint64_t domain, const uint8_t tag[32], uint64_t val, void *ctx)
{
        CheckCtx *cc = ctx;
        int r = vc_txn_has_chunk(cc->t, domain, tag);
        if (r < 0)
                return r;
        if (r == 0) {
                cc->missing++;
                cc->domain = domain;
                memcpy(cc->tag, tag, 32);
                return 1;
        }
        return 0;
}

/* Test hook: with $env naming a file, creates it and waits (at most a
 * minute) until the test removes it, so that a test can run something
 * else at exactly this point (e.g. a gc between upload and commit). */
static void test_hold(const char *env)
{
        const char *path = getenv(env);
        if (!path || !*path)
                return;
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        for (int i = 0; i < 6000 && access(path, F_OK) == 0; i++)
                usleep(10000);
}

static int lock_parcel(VcStore *s, const char *name, int *fd)
{
        char lockname[VC_NAME_MAX + 16];
        snprintf(lockname, sizeof lockname, "parcel-%s", name);
        int r = vc_store_lock(s, lockname, true, false, fd);
        if (r == -EBUSY)
                return vc_errf_replace(r, "parcel '%s' is busy: another checkin or prune of it is running (%s)",
                                       name, vc_errmsg(r));
        return r;
}

/* Checks in (mem, disk) as the next version of *p, which with create is
 * not in the catalog yet and is inserted in the same transaction. The
 * caller holds the parcel's lock. */
static int do_checkin(VcStore *s, VcParcel *p, bool create, const Keys *k, Source *mem, Source *disk, bool quiet,
                      VcCheckinStats *st)
{
        memset(st, 0, sizeof *st);
        double t0 = vc_mono();
        Checkin c = { .s = s, .p = p, .k = k, .st = st, .nthreads = vc_threads() };
        pthread_mutex_init(&c.lock, NULL);
        pthread_cond_init(&c.cv, NULL);
        VcEntry *emem = NULL, *edisk = NULL, *pmem = NULL, *pdisk = NULL;
        uint64_t nmem = 0, ndisk = 0, npm = 0, npd = 0;
        VcTxn *t = NULL;
        int r;
        uint64_t cs = p->chunk_size;
        uint32_t base = p->latest;

        /* the previous version, whose chunks need no sealing */
        if (p->latest > 0) {
                VcVersion pv;
                if ((r = vc_txn_begin(s, false, &t)) < 0)
                        goto out;
                r = vc_repo_version(t, p, p->latest, &pv);
                vc_txn_abort(t);
                t = NULL;
                if (r < 0 || (r = read_entries(s, p, k, &pv, &pmem, &npm, &pdisk, &npd)) < 0)
                        goto out;
                if (p->policy != VC_POLICY_DELTA) {
                        /* one table over both images: memory pages often
                         * reappear on disk and back (page cache, swap) */
                        c.prev_all = malloc((npm + npd + 1) * sizeof(VcEntry));
                        if (!c.prev_all || (r = vc_tagset_new(&c.prevmap)) < 0) {
                                r = -ENOMEM;
                                goto out;
                        }
                        memcpy(c.prev_all, pmem, npm * sizeof(VcEntry));
                        memcpy(c.prev_all + npm, pdisk, npd * sizeof(VcEntry));
                        for (uint64_t i = 0; i < npm + npd; i++)
                                if (!vc_entry_is_zero(&c.prev_all[i]) &&
                                    (r = vc_tagset_add(c.prevmap, 0, c.prev_all[i].key, i)) < 0)
                                        goto out;
                }
        }
        nmem = (p->mem_size + cs - 1) / cs;
        ndisk = (p->disk_size + cs - 1) / cs;
        emem = calloc(nmem + 1, sizeof(VcEntry));
        edisk = calloc(ndisk + 1, sizeof(VcEntry));
        c.slot_size = vc_seal_bound(cs);
        uint64_t per = BATCH / cs;
        for (int i = 0; i < 2; i++) {
                c.b[i].buf = malloc(BATCH);
                c.b[i].slots = malloc(per * c.slot_size);
                c.b[i].kind = malloc(per);
                c.b[i].slen = malloc(per * sizeof(size_t));
                if (!c.b[i].buf || !c.b[i].slots || !c.b[i].kind || !c.b[i].slen) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        if (!emem || !edisk) {
                r = -ENOMEM;
                goto out;
        }
        uint8_t salt[8];
        if ((r = vc_random(salt, sizeof salt)) < 0)
                goto out;
        for (int i = 0; i < c.nthreads; i++) {
                if ((r = sealer_for(p, k, &c.sealers[i])) < 0 || (r = vc_txn_begin(s, false, &c.rtx[i])) < 0)
                        goto out;
                vc_sealer_set_salt(c.sealers[i], salt);
        }
        if ((r = vc_tagset_new(&c.check)) < 0 || (r = vc_writer_new(s, &c.w)) < 0)
                goto out;
        vc_progress_init(&c.prog, "checkin", p->mem_size + p->disk_size, quiet);
        if (pthread_create(&c.putter, NULL, put_main, &c) != 0) {
                r = vc_errf(-EAGAIN, "cannot start a thread");
                goto out;
        }
        c.putter_started = true;
        /* memory and disk positions get distinct delta nonces */
        if ((r = checkin_image(&c, mem, pmem, npm, emem, 0)) < 0 ||
            (r = checkin_image(&c, disk, pdisk, npd, edisk, 1ULL << 43)) < 0)
                goto out;
        vc_progress_end(&c.prog, c.done);

        /* keyrings */
        VcEntry rm, rd;
        if ((r = vc_tree_build(k->node, emem, nmem, node_put, &c, &rm)) < 0 ||
            (r = vc_tree_build(k->node, edisk, ndisk, node_put, &c, &rd)) < 0)
                goto out;
        /* packs ▸ index: everything durable before the version names it */
        if ((r = vc_writer_flush(c.w)) < 0)
                goto out;

        VcVersion v = { .version = base + 1, .timestamp = vc_now(), .mem_size = p->mem_size,
                        .disk_size = p->disk_size };
        memcpy(v.mem_root, rm.tag, 32);
        memcpy(v.disk_root, rd.tag, 32);
        st->meta_bytes += VC_VERSION_REC_LEN;
        v.new_chunks = st->new_chunks;
        v.new_bytes = st->new_bytes;
        v.meta_bytes = st->meta_bytes;

        test_hold("VMCAS_TEST_HOLD_COMMIT");
        /* ▸ version: one transaction */
        if ((r = vc_txn_begin(s, true, &t)) < 0)
                goto out;
        VcParcel cur;
        r = vc_repo_parcel(t, p->name, &cur);
        if (create && r == 0) {
                r = vc_errf(-EEXIST, "parcel '%s' already exists", p->name);
                goto out;
        }
        if (create) {
                vc_errclear();
                r = 0;
        } else if (r < 0)
                goto out;
        else if (cur.latest != base) {
                r = vc_errf(-EAGAIN, "parcel '%s' changed during the checkin (now at version %u)", p->name, cur.latest);
                goto out;
        }
        CheckCtx cc = { .t = t };
        if ((r = vc_tagset_each(c.check, check_one, &cc)) < 0)
                goto out;
        if (cc.missing) {
                char hex[65];
                vc_hex(cc.tag, 32, hex);
                r = vc_errf(-EAGAIN, "chunk %s vanished from the store during the checkin (a gc ran?); "
                            "nothing was committed, run the checkin again", hex);
                goto out;
        }
        if ((r = vc_repo_next(t, "commit_seq", &v.seq)) < 0)
                goto out;
        uint8_t aad[VC_VERSION_AAD_LEN], roots[64];
        version_aad(&v, aad);
        memcpy(roots, rm.key, 32);
        memcpy(roots + 32, rd.key, 32);
        r = vc_gcm_seal(k->wrap, aad, sizeof aad, roots, sizeof roots, v.wrapped);
        vc_wipe(roots, sizeof roots);
        if (r < 0)
                goto out;
        uint8_t rec[VC_VERSION_REC_LEN], key[12];
        vc_version_pack(&v, rec);
        vc_version_key(p->id, v.version, key);
        p->latest = v.version;
        if ((r = vc_txn_put(t, VC_TABLE_VERSIONS, key, sizeof key, rec, sizeof rec)) < 0 ||
            (r = stopgap_parcel_put(t, p)) < 0)
                goto out;
        r = vc_txn_commit(t);
        t = NULL;
        if (r < 0)
                goto out;
        st->version = v.version;
        st->seconds = vc_mono() - t0;
out:
        if (r < 0)
                p->latest = base;
        vc_txn_abort(t);
        vc_writer_free(c.w);
        for (int i = 0; i < MAX_THREADS; i++) {
                vc_sealer_free(c.sealers[i]);
                vc_txn_abort(c.rtx[i]);
        }
        vc_tagset_free(c.prevmap);
        vc_tagset_free(c.check);
        free(c.prev_all);
        if (c.putter_started) {
                pthread_mutex_lock(&c.lock);
                c.quit = true;
                pthread_cond_broadcast(&c.cv);
                pthread_mutex_unlock(&c.lock);
                pthread_join(c.putter, NULL);
        }
        for (int i = 0; i < 2; i++) {
                free(c.b[i].buf);
                free(c.b[i].slots);
                free(c.b[i].kind);
                free(c.b[i].slen);
        }
        pthread_cond_destroy(&c.cv);
        free(emem);
        free(edisk);
        free(pmem);
        free(pdisk);
        pthread_mutex_destroy(&c.lock);
        return r < 0 ? r : 0;
}

static int open_image(const char *path, const char *what, uint64_t want, Source *src)
{
        memset(src, 0, sizeof *src);
        src->fd = -1;
        src->what = what;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return vc_errf(-errno, "cannot open the %s image '%s': %s", what, path, strerror(errno));
        struct stat st;
        if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
                close(fd);
                return vc_errf(-EINVAL, "the %s image '%s' is not a regular file", what, path);
        }
        if ((uint64_t)st.st_size != want) {
                close(fd);
                return vc_errf(-EINVAL, "the %s image '%s' is %llu bytes, but the parcel's %s image is %llu bytes",
                               what, path, (unsigned long long)st.st_size, what, (unsigned long long)want);
        }
        src->fd = fd;
        src->size = want;
        return 0;
}

int vc_checkin(VcStore *s, const char *name, const char *mem_path, const char *disk_path, bool quiet,
               VcCheckinStats *st)
{
        VcParcel p;
        VcTxn *t = NULL;
        Keys k;
        Source mem = { .fd = -1 }, disk = { .fd = -1 };
        int lock = -1;
        int r = vc_txn_begin(s, false, &t);
        if (r >= 0)
                r = vc_repo_parcel(t, name, &p);
        vc_txn_abort(t);
        if (r < 0)
                return r;
        if ((r = keys_load(s, &p, &k)) < 0)
                goto out;
        if ((r = open_image(mem_path, "memory", p.mem_size, &mem)) < 0 ||
            (r = open_image(disk_path, "disk", p.disk_size, &disk)) < 0)
                goto out;
        if ((r = lock_parcel(s, name, &lock)) < 0)
                goto out;
        /* re-read under the lock: another checkin may have just finished */
        t = NULL;
        if ((r = vc_txn_begin(s, false, &t)) >= 0)
                r = vc_repo_parcel(t, name, &p);
        vc_txn_abort(t);
        if (r >= 0)
                r = do_checkin(s, &p, false, &k, &mem, &disk, quiet, st);
out:
        keys_wipe(&k);
        if (mem.fd >= 0)
                close(mem.fd);
        if (disk.fd >= 0)
                close(disk.fd);
        vc_store_unlock(lock);
        return r;
}

/* ---- create ---------------------------------------------------------------------- */

int vc_parcel_create(VcStore *s, const VcCreateOpts *o, bool quiet, VcCheckinStats *st)
{
        memset(st, 0, sizeof *st);
        if (!vc_name_valid(o->name))
                return vc_errf(-EINVAL, "invalid parcel name '%s' (use 1-64 letters, digits, '.', '_', '-')", o->name);
        VcParcel p = { 0 }, src = { 0 };
        Keys k = { 0 }, sk = { 0 };
        VcTxn *t = NULL;
        VcVersion sv;
        Source mem = { .fd = -1 }, disk = { .fd = -1 };
        VcEntry *smem = NULL, *sdisk = NULL;
        uint64_t nsm = 0, nsd = 0;
        VcSealer *ssealer = NULL;
        int lock = -1, created;
        char dom[VC_NAME_MAX + 16];
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        r = vc_repo_parcel(t, o->name, &p);
        if (r == 0) {
                r = vc_errf(-EEXIST, "parcel '%s' already exists", o->name);
                goto out;
        }
        vc_errclear();
        r = 0;
        if (o->from) {
                if ((r = vc_repo_parcel(t, o->from, &src)) < 0)
                        goto out;
                if (src.latest == 0) {
                        r = vc_errf(-ENOENT, "parcel '%s' has no version to copy yet", o->from);
                        goto out;
                }
                if ((r = vc_repo_version(t, &src, o->from_version ? o->from_version : src.latest, &sv)) < 0)
                        goto out;
        }
        vc_txn_abort(t);
        t = NULL;

        memset(&p, 0, sizeof p);
        snprintf(p.name, sizeof p.name, "%s", o->name);
        p.policy = o->policy;
        p.comp = o->comp;
        snprintf(p.group, sizeof p.group, "%s", o->group);
        p.chunk_size = o->chunk_size ? o->chunk_size : o->from ? src.chunk_size : 128u << 10;
        p.mem_size = o->from ? sv.mem_size : o->mem_size;
        p.disk_size = o->from ? sv.disk_size : o->disk_size;
        p.created = vc_now();
        if (p.chunk_size < VC_CHUNK_MIN || p.chunk_size > VC_CHUNK_MAX || (p.chunk_size & (p.chunk_size - 1))) {
                r = vc_errf(-EINVAL, "chunk size %u is not a power of two from 4K to 512K", p.chunk_size);
                goto out;
        }
        if ((r = lock_parcel(s, o->name, &lock)) < 0)
                goto out;
        if (o->from && (r = keys_load(s, &src, &sk)) < 0)
                goto out;

        /* keys first: a parcel in the catalog without its key would be lost */
        if ((r = vc_key_load_or_create(vc_store_uuid(s), "parcel", p.name, k.parcel, &created)) < 0)
                goto out;
        key_check(k.parcel, p.check);
        if (p.policy == VC_POLICY_GROUP) {
                if ((r = vc_key_load_or_create(vc_store_uuid(s), "group", p.group, k.group, &created)) < 0)
                        goto out;
                key_check(k.group, p.group_check);
        }
        keys_derive(&k);

        /* an id and domains; ids are never reused */
        if ((r = vc_txn_begin(s, true, &t)) < 0 || (r = vc_repo_next(t, "parcel_id", &p.id)) < 0 ||
            (r = vc_txn_commit(t)) < 0) {
                t = NULL;
                goto out;
        }
        t = NULL;
        snprintf(dom, sizeof dom, "parcel:%" PRIu64, p.id);
        if ((r = vc_store_domain(s, dom, true, &p.node_domain)) < 0)
                goto out;
        p.data_domain = p.node_domain;
        if (p.policy == VC_POLICY_GROUP) {
                snprintf(dom, sizeof dom, "group:%s", p.group);
                r = vc_store_domain(s, dom, true, &p.data_domain);
        } else if (p.policy == VC_POLICY_ALL)
                r = vc_store_domain(s, "all", true, &p.data_domain);
        if (r < 0)
                goto out;

        if (!o->from) {
                /* no version yet: its first checkin is version 1 */
                if ((r = vc_txn_begin(s, true, &t)) < 0)
                        goto out;
                VcParcel cur;
                if (vc_repo_parcel(t, p.name, &cur) == 0) {
                        r = vc_errf(-EEXIST, "parcel '%s' already exists", p.name);
                        goto out;
                }
                vc_errclear();
                if ((r = stopgap_parcel_put(t, &p)) < 0)
                        goto out;
                r = vc_txn_commit(t);
                t = NULL;
                goto out;
        }

        /* version 1 is a copy of the gold image */
        if ((r = read_entries(s, &src, &sk, &sv, &smem, &nsm, &sdisk, &nsd)) < 0 || (r = sealer_for(&src, &sk, &ssealer)) < 0)
                goto out;
        mem = (Source){ .size = sv.mem_size, .what = "memory", .fd = -1, .s = s, .p = &src, .e = smem, .sealer = ssealer };
        disk = (Source){ .size = sv.disk_size, .what = "disk", .fd = -1, .s = s, .p = &src, .e = sdisk, .sealer = ssealer };
        r = do_checkin(s, &p, true, &k, &mem, &disk, quiet, st);
out:
        vc_txn_abort(t);
        keys_wipe(&k);
        keys_wipe(&sk);
        vc_sealer_free(ssealer);
        free(mem.sealed);
        free(disk.sealed);
        free(smem);
        free(sdisk);
        vc_store_unlock(lock);
        return r < 0 ? r : 0;
}

/* ---- checkout -------------------------------------------------------------------- */

typedef struct Out {
        VcStore *s;
        const VcParcel *p;
        const VcEntry *e;
        uint64_t n, size;
        int fd;
        int dfd;                   /* the same file with O_DIRECT, or -1 */
        const char *what;
        int nthreads;
        VcSealer *sealers[MAX_THREADS];
        int err;
        uint64_t done;
        VcProgress *prog;
        pthread_mutex_t lock;
} Out;

typedef struct { Out *o; int tid; } OutWorker;

/* Writes buf, holding chunks [from, to) of the image, in one call. */
static int out_flush(Out *o, const uint8_t *buf, uint64_t from, uint64_t to)
{
        uint64_t cs = o->p->chunk_size;
        if (to <= from)
                return 0;
        size_t len = (size_t)(VC_MIN(to * cs, o->size) - from * cs);
        off_t off = (off_t)(from * cs);
        int r = 0;
        /* Direct I/O skips the copy into the page cache, which on this
         * kind of machine costs more CPU than decrypting, and the inode
         * lock buffered writers contend on. Offsets are chunk-aligned and
         * chunks are multiples of 4 KiB; only the image's short tail goes
         * through the page cache. */
        size_t direct = o->dfd >= 0 ? len & ~(size_t)4095 : 0;
        if (direct) {
                r = vc_pwrite_full(o->dfd, buf, direct, off);
                if (r == -EINVAL) {       /* the file system refused: buffered from now on */
                        direct = 0;
                        r = 0;
                }
        }
        if (r == 0 && len > direct)
                r = vc_pwrite_full(o->fd, buf + direct, len - direct, off + (off_t)direct);
        if (r < 0)
                return vc_errf(r, "writing the %s image: %s", o->what, strerror(-r));
        pthread_mutex_lock(&o->lock);
        o->done += len;
        vc_progress(o->prog, o->done);
        pthread_mutex_unlock(&o->lock);
        return 0;
}

static void *out_work(void *arg)
{
        OutWorker *w = arg;
        Out *o = w->o;
        uint64_t cs = o->p->chunk_size;
        /* Threads take runs of ~1 MiB in turn, opening chunks into one
         * buffer and writing each stretch of non-zero chunks with one call:
         * per-chunk writes cost more in syscalls and inode lock contention
         * than the hashing. All-zero chunks are left as holes. */
        const uint64_t run = VC_MAX(1, (1u << 20) / cs);
        uint8_t *sealed = NULL, *buf = NULL;
        if (posix_memalign((void **)&buf, 4096, run * cs) != 0)
                buf = NULL;
        size_t cap = 0;
        VcTxn *t = NULL;
        int r = buf ? vc_txn_begin(o->s, false, &t) : -ENOMEM;
        const uint64_t step = run * (uint64_t)o->nthreads, first = (uint64_t)w->tid * run;
        /* The places of this thread's next AHEAD runs are looked up, and
         * the kernel asked to read them, while we open this one: on cold
         * packs the reads then overlap the hashing. */
        enum { AHEAD = 4 };
        VcChunkLoc *locs = calloc((AHEAD + 1) * run, sizeof *locs);
        if (!locs)
                r = -ENOMEM;
        for (uint64_t b = first, k = 0; r == 0 && k < AHEAD && b < o->n; b += step, k++)
                vc_store_prefetch(o->s, t, o->p->data_domain, o->e[b].tag, sizeof(VcEntry),
                                  (size_t)(VC_MIN(b + run, o->n) - b), locs + (k % (AHEAD + 1)) * run);
        for (uint64_t b = first, k = 0; r == 0 && b < o->n; b += step, k++) {
                uint64_t end = VC_MIN(b + run, o->n), from = b;
                const VcChunkLoc *loc = locs + (k % (AHEAD + 1)) * run;
                if (b != first && (r = vc_txn_refresh(t)) < 0)
                        break;
                uint64_t ahead = b + AHEAD * step;
                if (ahead < o->n)
                        vc_store_prefetch(o->s, t, o->p->data_domain, o->e[ahead].tag, sizeof(VcEntry),
                                          (size_t)(VC_MIN(ahead + run, o->n) - ahead),
                                          locs + ((k + AHEAD) % (AHEAD + 1)) * run);
                for (uint64_t i = b; r == 0 && i < end; i++) {
                        if (o->err)
                                break;
                        if (vc_entry_is_zero(&o->e[i])) {
                                r = out_flush(o, buf + (from - b) * cs, from, i);
                                from = i + 1;
                                continue;
                        }
                        size_t len = (size_t)VC_MIN(cs, o->size - i * cs), slen;
                        r = vc_store_get_at(o->s, t, o->p->data_domain, o->e[i].tag, &loc[i - b], &sealed, &cap,
                                            &slen);
                        if (r >= 0)
                                r = vc_unseal(o->sealers[w->tid], sealed, slen, o->e[i].tag, o->e[i].key,
                                              buf + (i - b) * cs, len, false);
                        if (r < 0) {
                                char hex[65];
                                vc_hex(o->e[i].tag, 32, hex);
                                r = vc_errf(r, "chunk %s (%s image, chunk %" PRIu64 ", offset %" PRIu64 ") is unusable: %s",
                                            hex, o->what, i, i * cs, vc_errmsg(r));
                        }
                }
                if (r == 0 && !o->err)
                        r = out_flush(o, buf + (from - b) * cs, from, end);
        }
        if (r < 0) {
                pthread_mutex_lock(&o->lock);
                if (!o->err)
                        o->err = r;
                pthread_mutex_unlock(&o->lock);
        }
        vc_txn_abort(t);
        free(locs);
        free(sealed);
        free(buf);
        return NULL;
}

/* A second descriptor of a file for direct I/O; -1 where the file system
 * has none (tmpfs) or VMCAS_DIRECT_IO=0. */
static int open_direct(const char *path)
{
        const char *e = getenv("VMCAS_DIRECT_IO");
        if (e && strcmp(e, "0") == 0)
                return -1;
        return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

static int tmp_beside(const char *path, char *tmp, size_t len, int *fd)
{
        struct stat st;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
                return vc_errf(-EINVAL, "'%s' exists and is not a regular file", path);
        if ((size_t)snprintf(tmp, len, "%s.vmcas-XXXXXX", path) >= len)
                return -ENAMETOOLONG;
        *fd = mkostemp(tmp, O_CLOEXEC);
        if (*fd < 0)
                return vc_errf(-errno, "cannot create a file beside '%s': %s", path, strerror(errno));
        fchmod(*fd, 0600);
        return 0;
}

static int write_image(Out *o, const VcParcel *p, const Keys *k)
{
        pthread_t th[MAX_THREADS];
        OutWorker w[MAX_THREADS];
        int r = 0, started = 0;
        if (ftruncate(o->fd, (off_t)o->size) < 0)
                return vc_errf(-errno, "cannot size the %s image: %s", o->what, strerror(errno));
        for (int i = 0; i < o->nthreads; i++)
                if ((r = sealer_for(p, k, &o->sealers[i])) < 0)
                        return r;
        for (int i = 1; i < o->nthreads; i++) {
                w[i] = (OutWorker){ o, i };
                if (pthread_create(&th[i], NULL, out_work, &w[i]) != 0)
                        break;
                started = i;
        }
        for (int i = started + 1; i < o->nthreads; i++) {
                w[i] = (OutWorker){ o, i };
                out_work(&w[i]);
        }
        w[0] = (OutWorker){ o, 0 };
        out_work(&w[0]);
        for (int i = 1; i <= started; i++)
                pthread_join(th[i], NULL);
        if (o->err)
                return o->err;
        if ((o->dfd >= 0 && fsync(o->dfd) < 0) || fsync(o->fd) < 0)
                return vc_errf(-errno, "fsync of the %s image: %s", o->what, strerror(errno));
        return 0;
}

int vc_checkout(VcStore *s, const char *name, uint32_t version, const char *mem_path, const char *disk_path,
                bool quiet)
{
        VcParcel p;
        VcVersion v;
        VcTxn *t = NULL;
        Keys k = { 0 };
        VcEntry *em = NULL, *ed = NULL;
        uint64_t nm = 0, nd = 0;
        char tm[PATH_MAX] = "", td[PATH_MAX] = "";
        int fm = -1, fdd = -1;
        VcProgress prog;
        Out om = { .dfd = -1 }, od = { .dfd = -1 };
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        if ((r = vc_repo_parcel(t, name, &p)) < 0)
                goto out;
        if (p.latest == 0) {
                r = vc_errf(-ENOENT, "parcel '%s' has no version yet", name);
                goto out;
        }
        if ((r = vc_repo_version(t, &p, version ? version : p.latest, &v)) < 0)
                goto out;
        vc_txn_abort(t);
        t = NULL;
        if ((r = keys_load(s, &p, &k)) < 0 || (r = read_entries(s, &p, &k, &v, &em, &nm, &ed, &nd)) < 0)
                goto out;
        if ((r = tmp_beside(mem_path, tm, sizeof tm, &fm)) < 0 || (r = tmp_beside(disk_path, td, sizeof td, &fdd)) < 0)
                goto out;
        vc_progress_init(&prog, "checkout", v.mem_size + v.disk_size, quiet);
        om = (Out){ .s = s, .p = &p, .e = em, .n = nm, .size = v.mem_size, .fd = fm, .what = "memory",
                    .nthreads = vc_threads(), .prog = &prog, .dfd = open_direct(tm) };
        od = (Out){ .s = s, .p = &p, .e = ed, .n = nd, .size = v.disk_size, .fd = fdd, .what = "disk",
                    .nthreads = vc_threads(), .prog = &prog, .dfd = open_direct(td) };
        pthread_mutex_init(&om.lock, NULL);
        pthread_mutex_init(&od.lock, NULL);
        r = write_image(&om, &p, &k);
        if (r >= 0) {
                od.done = om.done;
                r = write_image(&od, &p, &k);
        }
        pthread_mutex_destroy(&om.lock);
        pthread_mutex_destroy(&od.lock);
        if (r < 0)
                goto out;
        vc_progress_end(&prog, od.done);
        /* both images complete: only now replace the targets */
        if (rename(tm, mem_path) < 0 || rename(td, disk_path) < 0) {
                r = vc_errf(-errno, "cannot move the images into place: %s", strerror(errno));
                goto out;
        }
        tm[0] = td[0] = 0;
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", mem_path);
        char *sl = strrchr(dir, '/');
        vc_fsync_dir(sl ? (sl == dir ? "/" : (*sl = 0, dir)) : ".");
        snprintf(dir, sizeof dir, "%s", disk_path);
        sl = strrchr(dir, '/');
        vc_fsync_dir(sl ? (sl == dir ? "/" : (*sl = 0, dir)) : ".");
out:
        vc_txn_abort(t);
        for (int i = 0; i < MAX_THREADS; i++) {
                vc_sealer_free(om.sealers[i]);
                vc_sealer_free(od.sealers[i]);
        }
        if (fm >= 0)
                close(fm);
        if (fdd >= 0)
                close(fdd);
        if (om.dfd >= 0)
                close(om.dfd);
        if (od.dfd >= 0)
                close(od.dfd);
        if (tm[0])
                unlink(tm);
        if (td[0])
                unlink(td);
        keys_wipe(&k);
        free(em);
        free(ed);
        return r < 0 ? r : 0;
}
