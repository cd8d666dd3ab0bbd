/* Checkin: read, hash, seal on every core; ask the back end which sealed
 * chunks it lacks and send those, a batch at a time, on a put thread;
 * build the keyrings; commit the version in one atomic call.
 *
 * The stages overlap: a read-ahead thread asks the kernel for the next
 * RA_AHEAD batches of the image file (posix_fadvise WILLNEED) while the
 * workers read and seal the current one, so the disk never waits for the
 * cores; the workers take pieces of a batch in turn (a worker slowed by
 * other work on its core does not hold the batch up); the put thread
 * sends the previous batch meanwhile; the previous version's key table is
 * built on a thread of its own while the first batches are hashed, and a
 * worker waits for it only when a chunk is not where it was. With
 * VMCAS_TIMING set, checkin prints where its time went, per stage;
 * VMCAS_NO_MMAP (pread instead of mappings) and VMCAS_NO_RA (no read-ahead
 * thread) exist to measure what each brings (bench/checkin.sh). */
#include "client/vc_client_int.h"
#include "client/vc_keystore.h"
#include "client/vc_machine.h"
#include "core/vc_limits.h"
#include "core/vc_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define BATCH (8u << 20)        /* bytes read and sealed per round */
#define NODE_BATCH 2048         /* keyring nodes sent per call */
#define PIECE (2u << 20)        /* bytes a worker takes of a batch at a time */
#define RA_AHEAD 4              /* batches read ahead of the workers */
#define RA_STEP (2u << 20)      /* bytes per read-ahead request */
#define NBATCH 4                /* batches: one the workers fill, the rest queued or being put */
#define NPUT 2                  /* put threads */

enum { SLOT_ZERO, SLOT_REUSED, SLOT_NEW };

/* One round of BATCH bytes: the data, each chunk's fate and sealed bytes. */
typedef struct Batch {
        uint8_t *buf, *slots, *kind;
        size_t *slen;
        VcEntry *out;              /* entries of this batch, in place */
        uint64_t first, len;       /* first chunk index, bytes */
        uint64_t off;              /* where in the source */
        atomic_uint_fast64_t pieces_done;   /* of the workers' pieces; the last hands it over */
        VcPutItem *items;          /* the put thread's scratch */
        uint8_t *tags, *missing;
        uint64_t *at;
        uint64_t seq;              /* order handed over */
        bool working;              /* the workers have pieces of it to do (under Checkin.lock) */
        bool queued, putting;      /* under Checkin.lock */
} Batch;

/* A growing list of tags: what the commit must find stored. */
typedef struct Need {
        uint8_t *tags;
        size_t n, cap;
        VcTagSet *seen;
} Need;

typedef struct Checkin {
        VcBackend *b;
        VcParcel *p;
        const Keys *k;
        int nthreads;
        VcSealer *sealers[VC_MAX_THREADS];
        uint32_t *prevmap;         /* key -> 1 + index into prev_seg (ip/group/all), open addressing */
        uint64_t prevmap_mask;
        /* the previous memory, disk and machine entries, one index over
         * the three (not copied into one array: 35 MB of fresh pages for a
         * 2 GiB image); prev_total 0 if no table is built (delta) */
        const VcEntry *prev_seg[3];
        uint64_t prev_end[3];      /* index one past each segment */
        uint64_t prev_total;
        Need need_data, need_nodes;
        VcCheckinStats *st;
        VcProgress prog;
        uint64_t done;
        /* A ring of batches: while the workers seal one, the put threads
         * send earlier ones to the back end, two at a time (over a network
         * the `missing` round trip of one overlaps the upload of another,
         * and the server stores one while the next arrives). */
        Batch bt[NBATCH];          /* batch j of an image is bt[j % NBATCH] */
        uint64_t handed;           /* batches handed over */
        size_t slot_size;
        const VcEntry *prev;       /* previous entries of this image, or NULL */
        uint64_t prev_n;
        uint64_t seal_base;        /* nonce index of position 0 of this image */
        Source *src;               /* the image the workers read */
        VcEntry *out;              /* its entries */
        uint64_t nbatches;         /* its batches */
        bool preparing;            /* a worker is getting the next batch ready (lock) */
        uint64_t prepared;         /* batches made ready (lock) */
        bool work_failed;          /* a worker failed: stop waiting (under lock) */
        pthread_mutex_t lock;
        /* the put threads; what they count is under book */
        pthread_t putter[NPUT];
        bool putter_started[NPUT], quit;
        VcErr put_err;             /* the put threads' first error, with its message */
        pthread_cond_t cv;
        pthread_mutex_t book;
        /* keyring nodes waiting to be sent */
        uint8_t *nodes;
        VcPutItem nitems[NODE_BATCH];
        uint8_t ntags[NODE_BATCH * 32], nmissing[NODE_BATCH];
        size_t nnodes, nodes_used;
        /* the pieces of the image's batches, taken by the workers in turn
         * (ppb per batch): a worker done with its last piece of a batch
         * goes on with the next batch while the others finish theirs */
        atomic_uint_fast64_t next_piece;
        uint64_t piece_chunks, ppb;
        bool map;                  /* workers map the file (else pread) */
        uint8_t *whole;            /* the image file mapped whole, or NULL: pieces are read with pread */
        /* the read-ahead thread (under lock): advises [ra_next, ra_goal) of ra_fd */
        pthread_t reader;
        bool reader_started;
        int ra_fd;
        uint64_t ra_next, ra_goal;
        pthread_cond_t ra_cv;
        /* the thread that builds prevmap; workers wait for pm_ready */
        pthread_t pm_thread;
        bool pm_started;
        atomic_bool pm_ready;
        int pm_err;
        pthread_cond_t pm_cv;
        /* the previous version's keyring nodes: a node of the new trees
         * whose children did not change is taken from them */
        VcTreeNodes prev_nodes[2];
        /* nanoseconds per stage, summed over the threads (VMCAS_TIMING) */
        atomic_uint_fast64_t t_read, t_hash, t_seal, t_put, t_pmwait;
        uint64_t t_prev, t_pmbuild, t_pool, t_putwait, t_tree, t_drain, t_flush, t_commit;
} Checkin;

static uint64_t now_ns(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- read-ahead ---------------------------------------------------------------- */

static void *ra_main(void *arg)
{
        Checkin *c = arg;
        pthread_mutex_lock(&c->lock);
        for (;;) {
                while (!c->quit && (c->ra_fd < 0 || c->ra_next >= c->ra_goal))
                        pthread_cond_wait(&c->ra_cv, &c->lock);
                if (c->quit)
                        break;
                int fd = c->ra_fd;
                uint64_t from = c->ra_next, len = VC_MIN((uint64_t)RA_STEP, c->ra_goal - from);
                c->ra_next = from + len;
                pthread_mutex_unlock(&c->lock);
                /* starts the reads and returns; a failure only costs speed */
                (void)posix_fadvise(fd, (off_t)from, (off_t)len, POSIX_FADV_WILLNEED);
                pthread_mutex_lock(&c->lock);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/* The workers are about to read [off, ...) of src: keep RA_AHEAD batches
 * beyond it on their way into the page cache. */
static void ra_request(Checkin *c, const Source *src, uint64_t off)
{
        if (!c->reader_started || src->fd < 0 || src->dirty)
                return;
        pthread_mutex_lock(&c->lock);
        if (c->ra_fd != src->fd) {
                c->ra_fd = src->fd;
                c->ra_next = off;
        }
        c->ra_next = VC_MAX(c->ra_next, off);
        c->ra_goal = VC_MIN(src->size, off + (uint64_t)BATCH * (RA_AHEAD + 1));
        pthread_cond_signal(&c->ra_cv);
        pthread_mutex_unlock(&c->lock);
}

/* ---- the previous version's key table ------------------------------------------ */

/* Entry i of the index over the previous version's three trees. */
static inline const VcEntry *prev_at(const Checkin *c, uint64_t i)
{
        int g = i < c->prev_end[0] ? 0 : i < c->prev_end[1] ? 1 : 2;
        return &c->prev_seg[g][i - (g ? c->prev_end[g - 1] : 0)];
}

_Static_assert(2 * VC_IMAGE_CHUNKS_MAX < UINT32_MAX, "prevmap slots hold 1 + an index into both images");

static uint64_t prevmap_hash(const uint8_t key[VC_KEY_LEN])
{
        uint64_t h;
        memcpy(&h, key, 8);
        return h ^ (h >> 29);
}

static void *pm_main(void *arg)
{
        Checkin *c = arg;
        uint64_t t0 = now_ns();
        /* slots of 4 bytes (the keys are in the entries): the table of a
         * million chunks fits a core's cache, where the 48-byte slots of
         * a VcTagSet took a second to fill */
        uint64_t cap = 1024;
        while (cap / 2 < c->prev_total)
                cap *= 2;
        int r = 0;
        if (!(c->prevmap = calloc(cap, sizeof(uint32_t)))) {
                r = -ENOMEM;
                cap = 0;
        }
        c->prevmap_mask = cap - 1;
        for (uint64_t i = 0; i < c->prev_total && r >= 0; i++) {
                const VcEntry *e = prev_at(c, i);
                if (vc_entry_is_zero(e))
                        continue;
                uint64_t h = prevmap_hash(e->key) & c->prevmap_mask;
                for (;; h = (h + 1) & c->prevmap_mask) {
                        uint32_t v = c->prevmap[h];
                        if (!v) {
                                c->prevmap[h] = (uint32_t)(i + 1);
                                break;
                        }
                        /* the same key twice: the first position wins */
                        if (memcmp(prev_at(c, v - 1)->key, e->key, VC_KEY_LEN) == 0)
                                break;
                }
        }
        pthread_mutex_lock(&c->lock);
        c->pm_err = r < 0 ? r : 0;
        c->t_pmbuild = now_ns() - t0;
        atomic_store_explicit(&c->pm_ready, true, memory_order_release);
        pthread_cond_broadcast(&c->pm_cv);
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

/* Looks key up in the previous version (any position): 1 found (*at),
 * 0 not, or the error of building the table. */
static int prevmap_get(Checkin *c, const uint8_t key[VC_KEY_LEN], uint64_t *at)
{
        if (!c->prev_total)
                return 0;
        if (!atomic_load_explicit(&c->pm_ready, memory_order_acquire)) {
                uint64_t t0 = now_ns();
                pthread_mutex_lock(&c->lock);
                while (!atomic_load_explicit(&c->pm_ready, memory_order_acquire))
                        pthread_cond_wait(&c->pm_cv, &c->lock);
                pthread_mutex_unlock(&c->lock);
                atomic_fetch_add(&c->t_pmwait, now_ns() - t0);
        }
        if (c->pm_err < 0)
                return vc_errf(c->pm_err, "building the previous version's key table: %s", strerror(-c->pm_err));
        for (uint64_t h = prevmap_hash(key) & c->prevmap_mask;; h = (h + 1) & c->prevmap_mask) {
                uint32_t v = c->prevmap[h];
                if (!v)
                        return 0;
                if (memcmp(prev_at(c, v - 1)->key, key, VC_KEY_LEN) == 0) {
                        *at = v - 1;
                        return 1;
                }
        }
}


/* Adds tag to what the commit must find stored, once; *val is its entry's
 * mark (NEED_SENT once a put carries it), valid until the next need_add.
 * One entry per tag: a second set of the tags sent doubled the table,
 * whose fresh pages cost a new-data checkin more than its probes. */
#define NEED_SENT 1

static int need_add(Need *nd, const uint8_t tag[32], uint64_t **val)
{
        bool added;
        uint64_t *v = vc_tagset_ref(nd->seen, 0, tag, &added);
        if (!v)
                return -ENOMEM;
        if (val)
                *val = v;
        if (!added)
                return 0;
        if (nd->n == nd->cap) {
                size_t cap = nd->cap ? 2 * nd->cap : 1024;
                uint8_t *x = realloc(nd->tags, cap * 32);
                if (!x)
                        return -ENOMEM;
                nd->tags = x;
                nd->cap = cap;
        }
        memcpy(nd->tags + 32 * nd->n++, tag, 32);
        return 1;
}

/* Chunk i of batch b: zero, reused (its entry from the previous version)
 * or sealed. Adds the time spent sealing to *t_seal. */
static int one_chunk(Checkin *c, Batch *b, VcSealer *sl, uint64_t i, const uint8_t *d, const uint8_t *dirty,
                     uint64_t *t_seal)
{
        uint64_t cs = c->p->chunk_size;
        size_t len = (size_t)VC_MIN(cs, b->len - i * cs);
        uint64_t idx = b->first + i;
        VcEntry *e = &b->out[i];
        int r;
        if (dirty) {
                /* a workspace: a clean chunk is the base's, unread */
                if (!(dirty[idx >> 3] & (1u << (idx & 7)))) {
                        *e = c->src->base[idx];
                        b->kind[i] = vc_entry_is_zero(e) ? SLOT_ZERO : SLOT_REUSED;
                        return 0;
                }
                if ((r = source_read(c->src, b->off + i * cs, b->buf + i * cs, len)) < 0)
                        return r;
        }
        if (vc_is_zero(d, len)) {
                memset(e, 0, sizeof *e);
                b->kind[i] = SLOT_ZERO;
                return 0;
        }
        vc_chunk_key(sl, d, len, e->key);
        uint64_t at = 0;
        if (c->prev && idx < c->prev_n && !vc_entry_is_zero(&c->prev[idx]) &&
            memcmp(c->prev[idx].key, e->key, VC_KEY_LEN) == 0) {
                memcpy(e->tag, c->prev[idx].tag, 32);
                b->kind[i] = SLOT_REUSED;
                return 0;
        }
        if ((r = prevmap_get(c, e->key, &at)) < 0)
                return r;
        if (r) {
                memcpy(e->tag, prev_at(c, at)->tag, 32);
                b->kind[i] = SLOT_REUSED;
                return 0;
        }
        uint64_t t0 = now_ns();
        r = vc_seal(sl, d, len, e->key, c->seal_base + idx, b->slots + i * c->slot_size, c->slot_size, &b->slen[i],
                    e->tag);
        *t_seal += now_ns() - t0;
        if (r < 0)
                return vc_errf_prefix(r, "sealing chunk %" PRIu64 " of the %s image", idx, c->src->what);
        b->kind[i] = SLOT_NEW;
        return 0;
}

/* Chunks lo..hi-1 of batch b, whose data starts at base. */
static int some_chunks(Checkin *c, Batch *b, VcSealer *sl, uint64_t lo, uint64_t hi, const uint8_t *base,
                       const uint8_t *dirty, uint64_t *t_seal)
{
        uint64_t cs = c->p->chunk_size;
        int r = 0;
        for (uint64_t i = lo; i < hi && r >= 0; i++)
                r = one_chunk(c, b, sl, i, base + (i - lo) * cs, dirty, t_seal);
        return r;
}

/* A file that shrinks while it is mapped raises SIGBUS where its pages
 * are gone: a worker reading a mapping sets bus_jmp, and the handler
 * jumps back there, where the read fails as a short pread would. */
static _Thread_local sigjmp_buf *bus_jmp;
static struct sigaction bus_old;
static pthread_once_t bus_once = PTHREAD_ONCE_INIT;

static void on_sigbus(int sig, siginfo_t *si, void *uc)
{
        if (bus_jmp)
                siglongjmp(*bus_jmp, 1);
        if ((bus_old.sa_flags & SA_SIGINFO) && bus_old.sa_sigaction) {
                bus_old.sa_sigaction(sig, si, uc);
                return;
        }
        if (!(bus_old.sa_flags & SA_SIGINFO) && bus_old.sa_handler != SIG_DFL && bus_old.sa_handler != SIG_IGN) {
                bus_old.sa_handler(sig);
                return;
        }
        signal(SIGBUS, SIG_DFL);
        raise(SIGBUS);
}

static void bus_install(void)
{
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_sigbus;
        sa.sa_flags = SA_SIGINFO;
        sigemptyset(&sa.sa_mask);
        sigaction(SIGBUS, &sa, &bus_old);
}

static int mapped_chunks(Checkin *c, Batch *b, VcSealer *sl, uint64_t lo, uint64_t hi, const uint8_t *base,
                         uint64_t *t_seal)
{
        sigjmp_buf jb;
        if (sigsetjmp(jb, 1)) {
                bus_jmp = NULL;
                /* the pages are gone: the file shrank, or the disk failed to read them */
                struct stat st;
                uint64_t end = b->off + VC_MIN(hi * c->p->chunk_size, b->len);
                if (fstat(c->src->fd, &st) == 0 && (uint64_t)st.st_size < end)
                        return vc_errf(-EIO, "reading the %s image: the file is shorter than it was (%" PRIu64
                                       " bytes, was %" PRIu64 ")", c->src->what, (uint64_t)st.st_size, c->src->size);
                return vc_errf(-EIO, "reading the %s image: an I/O error in its pages (offset %" PRIu64 ")",
                               c->src->what, b->off + lo * c->p->chunk_size);
        }
        bus_jmp = &jb;
        int r = some_chunks(c, b, sl, lo, hi, base, NULL, t_seal);
        bus_jmp = NULL;
        return r;
}

/* Waits until b is neither worked on, queued nor being put (every
 * batch, if b is NULL). Returns the put threads' first error, with its
 * message; 1 if a worker failed meanwhile (its error is the one to
 * report). */
static int wait_free(Checkin *c, Batch *b)
{
        uint64_t t0 = now_ns();
        pthread_mutex_lock(&c->lock);
        for (;;) {
                bool busy = false;
                for (int i = 0; i < NBATCH; i++)
                        if ((!b || b == &c->bt[i]) && (c->bt[i].working || c->bt[i].queued || c->bt[i].putting))
                                busy = true;
                if (!busy || vc_err_failed(&c->put_err) || c->work_failed)
                        break;
                pthread_cond_wait(&c->cv, &c->lock);
        }
        c->t_putwait += now_ns() - t0;
        int r = vc_err_failed(&c->put_err) ? vc_err_raise(&c->put_err) : c->work_failed ? 1 : 0;
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* The put threads' first error, with its message, without waiting. */
static int put_errors(Checkin *c)
{
        pthread_mutex_lock(&c->lock);
        int r = vc_err_failed(&c->put_err) ? vc_err_raise(&c->put_err) : 0;
        pthread_mutex_unlock(&c->lock);
        return r;
}

/* Makes batch j of the image ready, in its slot of the ring, once the
 * batch that used the slot NBATCH batches ago is put (the one preparer:
 * see batch_of). */
static int prepare(Checkin *c, uint64_t j)
{
        Source *src = c->src;
        Batch *b = &c->bt[j % NBATCH];
        int r = wait_free(c, b);
        if (r != 0)
                return r;
        /* test hook: the second batch of an image waits here (a test
         * shortens the file meanwhile, and sees the workers fail) */
        if (j == 1)
                vc_test_hold("VMCAS_TEST_HOLD_BATCH");
        b->off = j * (uint64_t)BATCH;
        b->len = VC_MIN((uint64_t)BATCH, src->size - b->off);
        b->first = b->off / c->p->chunk_size;
        b->out = c->out + b->first;
        atomic_store(&b->pieces_done, 0);
        /* a version (--from) is read here, in one batch call; the
         * workers read a file themselves */
        if (src->fd < 0 && (r = source_read(src, b->off, b->buf, (size_t)b->len)) < 0)
                return r;
        pthread_mutex_lock(&c->lock);
        b->working = true;
        pthread_mutex_unlock(&c->lock);
        ra_request(c, src, b->off + BATCH);
        return 0;
}

/* The batch of piece g, made ready if no worker did yet: 0, *ret set; 1
 * if there is none (past the end, or a worker failed); or an error. */
static int batch_of(Checkin *c, uint64_t g, Batch **ret)
{
        uint64_t j = g / c->ppb;
        if (j >= c->nbatches)
                return 1;
        /* One worker at a time gets the next batch ready, and the others
         * wait on the condition, not on a lock its preparer holds: the
         * preparer of batch j waits for batch j - NBATCH to be put, which
         * needs the last pieces of that batch, and a worker holding one
         * of those may be asking for its batch right now (one that ran
         * ahead through pieces with nothing to hash, a workspace's clean
         * chunks, made this happen: both waited for ever). */
        int r = 0;
        pthread_mutex_lock(&c->lock);
        while (r == 0 && c->prepared <= j) {
                if (c->preparing) {
                        pthread_cond_wait(&c->cv, &c->lock);
                        continue;
                }
                c->preparing = true;
                uint64_t k = c->prepared;
                pthread_mutex_unlock(&c->lock);
                r = prepare(c, k);
                pthread_mutex_lock(&c->lock);
                c->preparing = false;
                if (r == 0)
                        c->prepared++;
                pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&c->lock);
        *ret = &c->bt[j % NBATCH];
        return r;
}

/* A piece of b is done: the last one hands b over to the put threads. */
static void piece_done(Checkin *c, Batch *b)
{
        if (atomic_fetch_add(&b->pieces_done, 1) + 1 < c->ppb)
                return;
        /* done with its pages: unmapped, so that the mapping of a large
         * image never holds more than the batches in flight */
        if (c->whole)
                (void)madvise(c->whole + b->off, (size_t)b->len, MADV_DONTNEED);
        pthread_mutex_lock(&c->lock);
        b->working = false;
        b->seq = c->handed++;
        b->queued = true;
        pthread_cond_broadcast(&c->cv);
        pthread_mutex_unlock(&c->lock);
}

/* A worker of vc_pool_run: its error, with its message, reaches the
 * caller's thread. */
static int work(void *arg, int tid)
{
        Checkin *c = arg;
        VcSealer *sl = c->sealers[tid];
        uint64_t cs = c->p->chunk_size;
        const uint8_t *dirty = c->src->dirty;
        bool file = c->src->fd >= 0 && !dirty;
        uint64_t t_read = 0, t_seal = 0, t_all = 0;
        int r = 0;
        /* Each worker takes the next piece. From a file, it hashes the
         * page cache in place, through the file's mapping (its page faults
         * count as hashing): copying it out with pread cost a third of the
         * time of an unchanged image (and pread is the fallback if the
         * file cannot be mapped). */
        while (r >= 0 && !vc_pool_stopping()) {
                uint64_t g = atomic_fetch_add(&c->next_piece, 1);
                Batch *b;
                if ((r = batch_of(c, g, &b)) != 0)
                        break;
                uint64_t n = (b->len + cs - 1) / cs, lo = (g % c->ppb) * c->piece_chunks;
                if (lo < n) {
                        uint64_t hi = VC_MIN(lo + c->piece_chunks, n), t0 = now_ns();
                        uint64_t from = lo * cs, len = VC_MIN(hi * cs, b->len) - from;
                        const uint8_t *base = b->buf + from;
                        if (file && c->whole) {
                                t_read += now_ns() - t0;
                                r = mapped_chunks(c, b, sl, lo, hi, c->whole + b->off + from, &t_seal);
                        } else {
                                if (file) {
                                        r = source_read(c->src, b->off + from, b->buf + from, (size_t)len);
                                        t_read += now_ns() - t0;
                                }
                                if (r >= 0)
                                        r = some_chunks(c, b, sl, lo, hi, base, dirty, &t_seal);
                        }
                        t_all += now_ns() - t0;
                }
                if (r >= 0)
                        piece_done(c, b);
        }
        if (r < 0) {
                /* a worker waiting for a batch this one held stops too */
                pthread_mutex_lock(&c->lock);
                c->work_failed = true;
                pthread_cond_broadcast(&c->cv);
                pthread_mutex_unlock(&c->lock);
        }
        atomic_fetch_add(&c->t_read, t_read);
        atomic_fetch_add(&c->t_seal, t_seal);
        atomic_fetch_add(&c->t_hash, t_all - t_read - t_seal);
        return r < 0 ? r : 0;
}

static int run_workers(Checkin *c)
{
        return vc_pool_run(c->nthreads, work, c);
}

/* Sends the new chunks of batch b that the back end lacks (a put
 * thread): one `missing` and one `put` call per batch. What is counted,
 * and which thread sends a chunk two batches share, is decided under
 * c->book, so the figures are the same however the threads interleave. */
static int put_batch(Checkin *c, Batch *b)
{
        uint64_t cs = c->p->chunk_size, n = (b->len + cs - 1) / cs;
        uint64_t zero = 0, reused = 0;
        size_t m = 0;
        int r = 0;
        for (uint64_t i = 0; i < n; i++) {
                if (b->kind[i] == SLOT_ZERO) {
                        zero++;
                } else if (b->kind[i] == SLOT_REUSED) {
                        reused++;
                } else {
                        memcpy(b->tags + 32 * m, b->out[i].tag, 32);
                        b->at[m++] = i;
                }
        }
        if (m && (r = vc_chunks_missing(c->b, c->p->name, c->p->data_dom, b->tags, m, b->missing)) < 0)
                return r;
        size_t k = 0;
        pthread_mutex_lock(&c->book);
        c->st->chunks += n;
        c->st->zero_chunks += zero;
        c->st->reused_chunks += reused;
        for (size_t j = 0; j < m && r >= 0; j++) {
                uint64_t i = b->at[j], *mark;
                if ((r = need_add(&c->need_data, b->out[i].tag, &mark)) < 0)
                        break;
                r = 0;
                /* the same content twice (in a batch or in two) is sent once */
                if (!b->missing[j] || (*mark & NEED_SENT))
                        continue;
                *mark |= NEED_SENT;
                VcPutItem *it = &b->items[k++];
                memcpy(it->tag, b->out[i].tag, 32);
                it->kind = VC_KIND_DATA;
                it->len = (uint32_t)b->slen[i];
                it->data = b->slots + i * c->slot_size;
                c->st->new_chunks++;
                c->st->new_bytes += b->slen[i];
        }
        pthread_mutex_unlock(&c->book);
        if (r < 0)
                return r;
        if (k && (r = vc_chunks_put(c->b, c->p->name, c->p->data_dom, b->items, k)) < 0)
                return r;
        pthread_mutex_lock(&c->book);
        c->done += b->len;
        c->st->bytes_in += b->len;
        vc_progress(&c->prog, c->done);
        pthread_mutex_unlock(&c->book);
        return 0;
}

/* The queued batch handed over first, or NULL (lock held). */
static Batch *next_queued(Checkin *c)
{
        Batch *best = NULL;
        for (int i = 0; i < NBATCH; i++)
                if (c->bt[i].queued && (!best || c->bt[i].seq < best->seq))
                        best = &c->bt[i];
        return best;
}

static void *put_main(void *arg)
{
        Checkin *c = arg;
        pthread_mutex_lock(&c->lock);
        for (;;) {
                Batch *b;
                while (!(b = next_queued(c)) && !c->quit)
                        pthread_cond_wait(&c->cv, &c->lock);
                if (!b)
                        break;
                b->queued = false;
                b->putting = true;
                bool failed = vc_err_failed(&c->put_err);
                pthread_mutex_unlock(&c->lock);
                vc_errclear();
                uint64_t t0 = now_ns();
                int r = failed ? 0 : put_batch(c, b);
                atomic_fetch_add(&c->t_put, now_ns() - t0);
                pthread_mutex_lock(&c->lock);
                if (r < 0 && !vc_err_failed(&c->put_err))
                        vc_err_save(&c->put_err, r);
                b->putting = false;
                pthread_cond_broadcast(&c->cv);
        }
        pthread_mutex_unlock(&c->lock);
        return NULL;
}

static int checkin_image(Checkin *c, Source *src, const VcEntry *prev, uint64_t prev_n, VcEntry *out,
                         uint64_t seal_base)
{
        uint64_t cs = c->p->chunk_size;
        /* the workers read prev and seal_base: the put threads never do */
        c->seal_base = seal_base;
        c->prev = prev;
        c->prev_n = prev_n;
        c->src = src;
        c->out = out;
        c->nbatches = (src->size + BATCH - 1) / BATCH;
        c->ppb = (BATCH / cs + c->piece_chunks - 1) / c->piece_chunks;
        c->prepared = 0;
        c->preparing = false;
        c->work_failed = false;
        atomic_store(&c->next_piece, 0);
        /* one run of the workers for the whole image: a run per batch
         * cost its threads' start and the wait for the slowest piece, a
         * tenth of an unchanged image's time */
        uint64_t t0 = now_ns();
        /* One mapping of the whole file, its pages faulted in as the
         * workers touch them and dropped batch by batch (piece_done): a
         * mapping per piece cost a map, an unmap and a TLB flush on every
         * core each 2 MiB, a tenth of an unchanged image's system time.
         * If the file cannot be mapped, the workers pread it (as with
         * VMCAS_NO_MMAP, which the tests run). */
        c->whole = NULL;
        if (c->map && src->fd >= 0 && !src->dirty && src->size && src->size <= SIZE_MAX) {
                void *w = mmap(NULL, (size_t)src->size, PROT_READ, MAP_SHARED, src->fd, 0);
                if (w != MAP_FAILED)
                        c->whole = w;
        }
        int r = c->nbatches ? run_workers(c) : 0;
        if (c->whole)
                munmap(c->whole, (size_t)src->size);
        c->whole = NULL;
        c->t_pool += now_ns() - t0;
        if (r < 0) {
                pthread_mutex_lock(&c->lock);
                for (int i = 0; i < NBATCH; i++)
                        c->bt[i].working = false;
                pthread_mutex_unlock(&c->lock);
                return r;
        }
        /* The puts of its last batches go on while the next image is
         * read and the keyrings are built (they read the entries, which
         * are final now; no put writes them): waiting here left a core
         * idle at the end of every image. The checkin waits for them
         * before it commits (put_errors, wait_free). */
        return put_errors(c);
}

/* ---- keyring nodes ------------------------------------------------------------- */

static int flush_nodes(Checkin *c)
{
        size_t n = c->nnodes, k = 0;
        int r;
        if (!n)
                return 0;
        for (size_t i = 0; i < n; i++)
                memcpy(c->ntags + 32 * i, c->nitems[i].tag, 32);
        if ((r = vc_chunks_missing(c->b, c->p->name, c->p->node_dom, c->ntags, n, c->nmissing)) < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                if (c->nmissing[i]) {
                        c->st->meta_bytes += c->nitems[i].len;
                        c->nitems[k++] = c->nitems[i];
                }
        }
        if (k && (r = vc_chunks_put(c->b, c->p->name, c->p->node_dom, c->nitems, k)) < 0)
                return r;
        c->nnodes = c->nodes_used = 0;
        return 0;
}

static int node_put(const uint8_t tag[32], const uint8_t *sealed, size_t len, void *ctx)
{
        Checkin *c = ctx;
        int r;
        /* a node already queued (the same subtree twice) is sent once;
         * every node queued is one the commit must find */
        if ((r = need_add(&c->need_nodes, tag, NULL)) <= 0)
                return r;
        if (c->nnodes == NODE_BATCH && (r = flush_nodes(c)) < 0)
                return r;
        VcPutItem *it = &c->nitems[c->nnodes++];
        memcpy(c->nodes + c->nodes_used, sealed, len);
        memcpy(it->tag, tag, 32);
        it->kind = VC_KIND_META;
        it->len = (uint32_t)len;
        it->data = c->nodes + c->nodes_used;
        c->nodes_used += len;
        return 0;
}

/* ---- the whole checkin ------------------------------------------------------------- */

/* The previous version's entries: memory, disk and machine (whose
 * kernel and initrd come back unchanged at every suspend). */
static int load_prev(Checkin *c, VcEntry **pmem, uint64_t *npm, VcEntry **pdisk, uint64_t *npd, VcEntry **pmach,
                     uint64_t *npx)
{
        VcVersion pv;
        VcEntry rm, rd, aux[2];
        NodesCtxPub nc = { c->b, c->p };
        int r = version_open_aux(c->b, c->p, c->k, c->p->latest, &pv, &rm, &rd, aux);
        if (r >= 0)
                r = read_entries_nodes(c->b, c->p, c->k, &pv, &rm, &rd, pmem, npm, pdisk, npd, &c->prev_nodes[0],
                                       &c->prev_nodes[1]);
        if (r >= 0 && pv.machine_size && pv.machine_size <= VC_MACHINE_MAX) {
                *npx = vc_chunk_count(pv.machine_size, c->p->chunk_size);
                if (!(*pmach = calloc(*npx + 1, sizeof(VcEntry))))
                        r = -ENOMEM;
                else
                        r = vc_tree_read_levels(c->k->node, &aux[0], *npx, nodes_get_pub, &nc, *pmach);
        }
        vc_wipe(&rm, sizeof rm);
        vc_wipe(&rd, sizeof rd);
        vc_wipe(aux, sizeof aux);
        if (r < 0 || c->p->policy == VC_POLICY_DELTA)
                return r;
        /* one table over every tree: memory pages often reappear on disk
         * and back (page cache, swap) */
        c->prev_seg[0] = *pmem;
        c->prev_seg[1] = *pdisk;
        c->prev_seg[2] = *pmach;
        c->prev_end[0] = *npm;
        c->prev_end[1] = *npm + *npd;
        c->prev_end[2] = c->prev_total = *npm + *npd + *npx;
        /* built on its own thread while the first batches are hashed (in
         * this one if no thread can be started) */
        if (pthread_create(&c->pm_thread, NULL, pm_main, c) == 0)
                c->pm_started = true;
        else
                pm_main(c);
        return 0;
}

static int alloc_batches(Checkin *c)
{
        uint64_t cs = c->p->chunk_size, per = BATCH / cs;
        c->slot_size = vc_seal_bound(cs);
        for (int i = 0; i < NBATCH; i++) {
                Batch *b = &c->bt[i];
                b->buf = malloc(BATCH);
                b->slots = malloc(per * c->slot_size);
                b->kind = malloc(per);
                b->slen = malloc(per * sizeof(size_t));
                b->items = malloc(per * sizeof(VcPutItem));
                b->tags = malloc(per * 32);
                b->missing = malloc(per);
                b->at = malloc(per * sizeof(uint64_t));
                if (!b->buf || !b->slots || !b->kind || !b->slen || !b->items || !b->tags || !b->missing || !b->at)
                        return -ENOMEM;
        }
        c->nodes = malloc((size_t)NODE_BATCH * VC_NODE_MAX);
        if (!c->nodes || vc_tagset_new(&c->need_data.seen) < 0 || vc_tagset_new(&c->need_nodes.seen) < 0)
                return -ENOMEM;
        return 0;
}

static void free_checkin(Checkin *c)
{
        for (int i = 0; i < VC_MAX_THREADS; i++)
                vc_sealer_free(c->sealers[i]);
        if (c->pm_started)
                pthread_join(c->pm_thread, NULL);
        free(c->prevmap);
        vc_tree_nodes_free(&c->prev_nodes[0]);
        vc_tree_nodes_free(&c->prev_nodes[1]);
        pthread_mutex_lock(&c->lock);
        c->quit = true;
        pthread_cond_broadcast(&c->cv);
        pthread_cond_broadcast(&c->ra_cv);
        pthread_mutex_unlock(&c->lock);
        for (int i = 0; i < NPUT; i++)
                if (c->putter_started[i])
                        pthread_join(c->putter[i], NULL);
        if (c->reader_started)
                pthread_join(c->reader, NULL);
        for (int i = 0; i < NBATCH; i++) {
                Batch *b = &c->bt[i];
                free(b->buf);
                free(b->slots);
                free(b->kind);
                free(b->slen);
                free(b->items);
                free(b->tags);
                free(b->missing);
                free(b->at);
        }
        free(c->nodes);
        free(c->need_data.tags);
        free(c->need_nodes.tags);
        vc_tagset_free(c->need_data.seen);
        vc_tagset_free(c->need_nodes.seen);
        pthread_cond_destroy(&c->cv);
        pthread_cond_destroy(&c->ra_cv);
        pthread_cond_destroy(&c->pm_cv);
        pthread_mutex_destroy(&c->lock);
        pthread_mutex_destroy(&c->book);
}

/* The version record of the new version, its roots' keys sealed. */
static int make_record(Checkin *c, const VcEntry *rm, const VcEntry *rd, const VcEntry aux[2], const VcAuxIn *ai,
                       uint8_t rec[VC_VERSION_REC_LEN])
{
        VcCheckinStats *st = c->st;
        VcVersion v = { .format = VC_VERSION_FORMAT, .version = c->p->latest + 1, .timestamp = vc_now(),
                        .mem_size = c->p->mem_size, .disk_size = c->p->disk_size,
                        .machine_size = ai ? ai->machine_len : 0, .order_size = ai ? ai->order_len : 0 };
        memcpy(v.uuid, c->p->uuid, 16);
        memcpy(v.mem_root, rm->tag, 32);
        memcpy(v.disk_root, rd->tag, 32);
        memcpy(v.machine_root, aux[0].tag, 32);
        memcpy(v.order_root, aux[1].tag, 32);
        st->meta_bytes += VC_VERSION_REC_LEN;
        v.new_chunks = st->new_chunks;
        v.new_bytes = st->new_bytes;
        v.meta_bytes = st->meta_bytes;
        uint8_t aad[VC_VERSION_AAD_LEN], roots[128];
        size_t alen = vc_version_aad(&v, aad);
        memcpy(roots, rm->key, 32);
        memcpy(roots + 32, rd->key, 32);
        memcpy(roots + 64, aux[0].key, 32);
        memcpy(roots + 96, aux[1].key, 32);
        int r = vc_gcm_seal(c->k->wrap, aad, alen, roots, sizeof roots, v.wrapped);
        vc_wipe(roots, sizeof roots);
        if (r < 0)
                return r;
        vc_version_pack(&v, rec);
        return 0;
}

/* Where the time went (VMCAS_TIMING): thread stages as seconds summed
 * over the threads that ran them, then the serial stages. */
static void print_timing(Checkin *c, double total)
{
        double s = 1e-9;
        fprintf(stderr,
                "checkin timing (%d workers): total %.3f s\n"
                "  workers (summed): read %.3f s, hash+compare %.3f s, seal %.3f s, waiting for the key table %.3f s\n"
                "  batches: workers busy %.3f s of wall time; waiting for the put thread %.3f s\n"
                "  put thread (missing + put): %.3f s\n"
                "  previous version: keyrings read %.3f s, key table (its own thread) %.3f s; keyring build %.3f s (while the last puts ran); "
                "the last puts after it %.3f s; flush %.3f s; commit %.3f s\n",
                c->nthreads, total, s * (double)c->t_read, s * (double)c->t_hash, s * (double)c->t_seal,
                s * (double)c->t_pmwait, s * (double)c->t_pool, s * (double)c->t_putwait, s * (double)c->t_put,
                s * (double)c->t_prev, s * (double)c->t_pmbuild, s * (double)c->t_tree, s * (double)c->t_drain, s * (double)c->t_flush, s * (double)c->t_commit);
}

int do_checkin(VcBackend *b, VcParcel *p, const Keys *k, Source *mem, Source *disk, const VcAuxIn *aux,
               const uint8_t *lease, bool quiet, VcCheckinStats *st)
{
        return do_checkin_level(b, p, k, mem, disk, aux, lease, quiet, 0, st);
}

int do_checkin_level(VcBackend *b, VcParcel *p, const Keys *k, Source *mem, Source *disk, const VcAuxIn *aux,
                     const uint8_t *lease, bool quiet, int level, VcCheckinStats *st)
{
        memset(st, 0, sizeof *st);
        double t0 = vc_mono();
        VcTraffic tr0;
        vc_backend_traffic(b, &tr0);
        Checkin *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        *c = (Checkin){ .b = b, .p = p, .k = k, .st = st, .nthreads = vc_threads(), .ra_fd = -1 };
        if (c->nthreads < 0) {
                int e = c->nthreads;
                free(c);
                return e;
        }
        pthread_mutex_init(&c->lock, NULL);
        pthread_mutex_init(&c->book, NULL);
        pthread_cond_init(&c->cv, NULL);
        pthread_cond_init(&c->ra_cv, NULL);
        pthread_cond_init(&c->pm_cv, NULL);
        c->piece_chunks = VC_MAX(1u, PIECE / p->chunk_size);
        c->map = !getenv("VMCAS_NO_MMAP") && pthread_once(&bus_once, bus_install) == 0;
        /* read-ahead only speeds things up: without its thread, none */
        if (!getenv("VMCAS_NO_RA") && pthread_create(&c->reader, NULL, ra_main, c) == 0)
                c->reader_started = true;
        VcEntry *emem = NULL, *edisk = NULL, *pmem = NULL, *pdisk = NULL, *pmach = NULL, *eaux[2] = { NULL, NULL };
        uint64_t npm = 0, npd = 0, npx = 0;
        uint64_t nmem = 0, ndisk = 0, naux[2] = { 0, 0 };
        VcEntry rm, rd, raux[2];
        memset(raux, 0, sizeof raux);
        const uint8_t *auxb[2] = { aux ? aux->machine : NULL, aux ? aux->order : NULL };
        size_t auxn[2] = { aux && aux->machine ? aux->machine_len : 0, aux && aux->order ? aux->order_len : 0 };
        uint8_t salt[8], rec[VC_VERSION_REC_LEN];
        int r;
        if ((r = vc_image_size_check("the memory image", p->mem_size, p->chunk_size)) < 0 ||
            (r = vc_image_size_check("the disk image", p->disk_size, p->chunk_size)) < 0) {
                r = vc_errf_prefix(r, "parcel '%s'", p->name);
                goto out;
        }
        nmem = vc_chunk_count(p->mem_size, p->chunk_size);
        ndisk = vc_chunk_count(p->disk_size, p->chunk_size);
        /* the previous version, whose chunks need no sealing */
        if (auxn[0] > VC_MACHINE_MAX || auxn[1] > VC_ORDER_MAX || auxn[1] % 8) {
                r = vc_errf(-EINVAL, "a machine of %zu bytes or a read order of %zu bytes is more than a version "
                            "holds", auxn[0], auxn[1]);
                goto out;
        }
        for (int i = 0; i < 2; i++)
                naux[i] = vc_chunk_count(auxn[i], p->chunk_size);
        ra_request(c, mem, 0);
        uint64_t tp = now_ns();
        if (p->latest > 0 && (r = load_prev(c, &pmem, &npm, &pdisk, &npd, &pmach, &npx)) < 0)
                goto out;
        c->t_prev += now_ns() - tp;
        emem = calloc(nmem + 1, sizeof(VcEntry));
        edisk = calloc(ndisk + 1, sizeof(VcEntry));
        eaux[0] = calloc(naux[0] + 1, sizeof(VcEntry));
        eaux[1] = calloc(naux[1] + 1, sizeof(VcEntry));
        if (!emem || !edisk || !eaux[0] || !eaux[1] || (r = alloc_batches(c)) < 0) {
                r = -ENOMEM;
                goto out;
        }
        if ((r = vc_random(salt, sizeof salt)) < 0)
                goto out;
        for (int i = 0; i < c->nthreads; i++) {
                if ((r = sealer_for(p, k, &c->sealers[i])) < 0)
                        goto out;
                vc_sealer_set_salt(c->sealers[i], salt);
                vc_sealer_set_level(c->sealers[i], level);
        }
        vc_progress_init(&c->prog, "checkin", p->mem_size + p->disk_size + auxn[0] + auxn[1], quiet);
        for (int i = 0; i < NPUT; i++) {
                if (pthread_create(&c->putter[i], NULL, put_main, c) != 0) {
                        if (i)
                                break;  /* one is enough */
                        r = vc_errf(-EAGAIN, "cannot start a thread");
                        goto out;
                }
                c->putter_started[i] = true;
        }
        /* memory and disk positions get distinct delta nonces */
        if ((r = checkin_image(c, mem, pmem, npm, emem, 0)) < 0 ||
            (r = checkin_image(c, disk, pdisk, npd, edisk, VC_DELTA_DISK_BASE)) < 0)
                goto out;
        for (int i = 0; i < 2; i++) {
                if (!auxn[i])
                        continue;
                Source s = { .size = auxn[i], .what = i ? "read order" : "machine", .fd = -1, .mem = auxb[i] };
                if ((r = checkin_image(c, &s, i ? NULL : pmach, i ? 0 : npx, eaux[i],
                                       i ? VC_DELTA_ORDER_BASE : VC_DELTA_MACHINE_BASE)) < 0)
                        goto out;
        }
        /* keyrings (while the last batches are put) */
        uint64_t t1 = now_ns();
        /* the previous version's nodes are stored: the commit builds on it */
        if ((r = vc_tree_build_from(k->node, emem, nmem, pmem, npm, &c->prev_nodes[0], node_put, c, &rm)) < 0 ||
            (r = vc_tree_build_from(k->node, edisk, ndisk, pdisk, npd, &c->prev_nodes[1], node_put, c, &rd)) < 0 ||
            (r = vc_tree_build(k->node, eaux[0], naux[0], node_put, c, &raux[0])) < 0 ||
            (r = vc_tree_build(k->node, eaux[1], naux[1], node_put, c, &raux[1])) < 0 || (r = flush_nodes(c)) < 0)
                goto out;
        uint64_t t2 = now_ns();
        c->t_tree = t2 - t1;
        /* every batch put: the need-set is whole */
        if ((r = wait_free(c, NULL)) < 0)
                goto out;
        c->t_drain = now_ns() - t2;
        t2 = now_ns();
        vc_progress_end(&c->prog, c->done);
        /* chunks ▸ version: everything durable before the version names it */
        VcAuxIn ai = { .machine_len = auxn[0], .order_len = auxn[1] };
        if ((r = vc_chunks_flush(b)) < 0 || (r = make_record(c, &rm, &rd, raux, &ai, rec)) < 0)
                goto out;
        c->t_flush = now_ns() - t2;
        vc_test_hold("VMCAS_TEST_HOLD_COMMIT");
        VcCommit cm = { .parcel = p->name, .base = p->latest, .record = rec, .record_len = sizeof rec,
                        .lease = lease, .need_nodes = c->need_nodes.tags, .n_nodes = c->need_nodes.n,
                        .need_data = c->need_data.tags, .n_data = c->need_data.n };
        uint64_t t3 = now_ns();
        if ((r = vc_cat_commit(b, &cm)) < 0)
                goto out;
        c->t_commit = now_ns() - t3;
        p->latest++;
        st->version = p->latest;
        if (disk->out)
                memcpy(disk->out, edisk, ndisk * sizeof(VcEntry));
        st->seconds = vc_mono() - t0;
        if (getenv("VMCAS_TIMING"))
                print_timing(c, st->seconds);
out:
        vc_wipe(&rm, sizeof rm);
        vc_wipe(&rd, sizeof rd);
        vc_wipe(raux, sizeof raux);
        free_checkin(c);
        free(c);
        free(emem);
        free(edisk);
        free(eaux[0]);
        free(eaux[1]);
        free(pmem);
        free(pdisk);
        free(pmach);
        VcTraffic tr1;
        vc_backend_traffic(b, &tr1);
        vc_traffic_since(&tr0, &tr1, &st->traffic);
        return r < 0 ? r : 0;
}

/* The machine a plain checkin gives the new version: the previous one's,
 * but without its device state, which belonged to the previous memory
 * image (the new version boots). NULL if the previous has none. */
static int carried_machine(VcBackend *b, const VcParcel *p, const Keys *k, uint8_t **out, size_t *out_len)
{
        VcVersion v;
        VcEntry rm, rd, aux[2];
        uint8_t *buf = NULL;
        size_t len = 0;
        *out = NULL;
        *out_len = 0;
        if (p->latest == 0)
                return 0;
        int r = version_open_aux(b, p, k, p->latest, &v, &rm, &rd, aux);
        if (r >= 0)
                r = read_aux(b, p, k, &v, 0, &aux[0], &buf, &len);
        vc_wipe(&rm, sizeof rm);
        vc_wipe(&rd, sizeof rd);
        vc_wipe(aux, sizeof aux);
        if (r < 0 || !buf)
                return r;
        VcMachine m;
        if ((r = vc_machine_parse(buf, len, &m)) >= 0) {
                if (!m.sec[VC_MS_DEVSTATE]) {
                        *out = buf;
                        *out_len = len;
                        return 0;
                }
                m.sec[VC_MS_DEVSTATE] = NULL;
                r = vc_machine_build(&m, out, out_len);
        }
        free(buf);
        return r;
}

int vc_checkin(VcBackend *b, const char *name, const char *mem_path, const char *disk_path, const VcCheckinOpts *o,
               VcCheckinStats *st)
{
        uint8_t *mach = NULL;
        size_t mlen = 0;
        VcParcel p;
        Keys k = { 0 };
        Source mem = { .fd = -1 }, disk = { .fd = -1 };
        uint8_t token[VC_LEASE_TOKEN_LEN];
        memset(st, 0, sizeof *st);
        /* a bad VMCAS_THREADS is refused before the lease is taken */
        int r = vc_threads();
        if (r < 0 || (r = parcel_open(b, name, &p, &k)) < 0)
                return r;
        if (o->zstd_level && p.comp != VC_COMP_ZSTD) {
                keys_wipe(&k);
                return vc_errf(-EINVAL, "parcel '%s' is compressed with %s: a zstd level applies to zstd parcels only",
                               name, vc_comp_name(p.comp));
        }
        int taken = 0;
        if ((r = source_open_file(mem_path, "memory", p.mem_size, &mem)) < 0 ||
            (r = source_open_file(disk_path, "disk", p.disk_size, &disk)) < 0 ||
            (r = carried_machine(b, &p, &k, &mach, &mlen)) < 0 || (r = taken = lease_for_checkin(b, name, token)) < 0)
                goto out;
        VcAuxIn ai = { .machine = mach, .machine_len = mlen };
        r = do_checkin_level(b, &p, &k, &mem, &disk, &ai, token, o->quiet, o->zstd_level, st);
        if (r == -ESTALE)
                lease_token_forget(vc_backend_uuid(b), name);
        if ((r >= 0 && !o->keep_lease) || (r < 0 && taken && r != -ESTALE)) {
                /* the version is in, or a checkin that took the lease for
                 * itself failed: the lease goes back (giving it up can only
                 * fail if it was broken meanwhile) */
                VcErr e = VC_ERR_INIT;
                vc_err_save(&e, r);
                if (vc_lease_release(b, name, token) < 0)
                        vc_errclear();
                lease_token_forget(vc_backend_uuid(b), name);
                if (r < 0)
                        vc_err_raise(&e);
        } else if (r >= 0 && taken) {
                /* --keep-lease of a lease taken here: keep its token */
                if ((r = lease_token_save(vc_backend_uuid(b), name, token)) < 0)
                        goto out;
        }
out:
        free(mach);
        vc_wipe(token, sizeof token);
        keys_wipe(&k);
        if (mem.fd >= 0)
                close(mem.fd);
        if (disk.fd >= 0)
                close(disk.fd);
        return r;
}
