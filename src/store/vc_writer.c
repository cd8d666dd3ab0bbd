/* vc_writer — appending chunks to packs and committing them to the index.
 *
 * A writer claims a pack of a domain with flock(LOCK_EX|LOCK_NB) on the
 * pack file itself; while it holds the lock no other writer appends to the
 * pack and no compaction rewrites it. On claiming, it cuts the pack back to
 * the committed length in the packs table: bytes past it were appended by
 * a writer that died before its flush, and no index entry points at them.
 *
 * Appends go through a 1 MiB buffer per pack (a 4 KiB chunk would otherwise
 * cost two system calls). In direct mode each pack has two: a full one is
 * written by the writer's I/O thread while appends fill the other, so the
 * caller (a checkin's put thread, a server's request under its back end's
 * lock) does not wait for the disk block by block (VMCAS_NO_IO_THREAD set:
 * written in the caller's thread, to measure it). A flush writes the buffers, fdatasync()s every
 * pack written since the last flush, and only then commits the index
 * entries and the packs' new committed lengths in one LMDB transaction, so
 * the index never points at bytes that are not on disk.
 *
 * A write that fails poisons the writer. When the disk is full the
 * message says so and what to do, and nothing is left behind that gc
 * cannot free: a claimed pack is cut back to its committed length and a
 * pack this writer created and never committed anything to is deleted
 * when the writer is freed.
 */
#include "store/vc_store_int.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>

#define VC_WBUF (1u << 20)

/* Writers append through direct I/O where the file system has it: the
 * copy into the page cache costs more CPU than sealing a chunk, and a
 * checkin's packs are not read back soon. Direct writes must be 4 KiB
 * aligned, so the buffer always starts on a block boundary: after a write
 * it keeps the last, partial block (already on disk) and writes it again,
 * completed, the next time. What lies past the logical end on disk (the
 * zero padding of the last block) is beyond the committed length, like a
 * torn tail: cut off by the next claimer, never read. */
#define VC_DIO_ALIGN 4096u

typedef struct WPack {
        uint64_t domain;
        uint32_t pack;
        int fd;                 /* O_RDWR, holds the flock */
        int dfd;                /* the same file, O_DIRECT; -1 without */
        uint64_t size;          /* bytes appended, including those still in buf */
        uint64_t committed;     /* as in the packs table */
        uint8_t *buf;           /* appended bytes at file offset size - blen */
        size_t blen;
        /* direct mode, with the writer's I/O thread (under io_mu): */
        uint8_t *spare;         /* the other buffer; the I/O thread's while inflight */
        size_t job_n, job_blen; /* its write: job_n bytes (padded) at job_at */
        uint64_t job_at;
        bool inflight;
        bool dio_off;           /* the file system refused a direct write: buffered from now on */
        int io_err;             /* the I/O thread's error, for the next append or flush */
        bool dirty;             /* appended to since the last flush */
        bool full;              /* passed pack_max: sealed at the next flush */
        bool created;           /* by this writer (deleted at free if still empty) */
} WPack;

typedef struct Pending {
        uint64_t domain;
        uint8_t tag[VC_TAG_LEN];
        uint32_t pack;
        uint64_t off;
        uint32_t len;
        int kind;
        bool move;              /* compaction: repoint only from (from_pack, from_off) */
        uint32_t from_pack;
        uint64_t from_off;
} Pending;

struct VcWriter {
        VcStore *s;
        WPack **packs;
        size_t npacks;
        Pending *pend;
        size_t npend, cpend;
        uint32_t *set;          /* open addressing over pend: index + 1, 0 = empty */
        size_t setcap;          /* power of two */
        uint64_t pending_bytes;
        uint64_t flush_bytes;    /* flush when pending_bytes pass it */
        uint64_t pack_max;
        bool direct;            /* packs written with direct I/O (where the file system has it) */
        uint64_t moved;
        int err;                /* a failed write poisons the writer */
        char msg[PATH_MAX + 640]; /* and its message, for every later call */
        /* A read transaction reused by every put's index look-up (one
         * begin/abort per 4 KiB chunk cost more than the look-up); reset at
         * each flush so it sees what was committed and pins no old pages. */
        VcTxn *rt;
        bool rt_live;
        /* the I/O thread: writes full buffers of packs in direct mode, in
         * the order they were handed over (a pack's next buffer rewrites
         * the last, partial block of its previous one) */
        pthread_t io;
        bool io_started, io_failed, io_quit;
        pthread_mutex_t io_mu;
        pthread_cond_t io_cv;
        WPack *ioq[16];
        unsigned ioq_head, ioq_n;
};

int vc_writer_new(VcStore *s, VcWriter **ret)
{
        VcWriter *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->s = s;
        w->pack_max = VC_PACK_MAX_DEFAULT;
        w->flush_bytes = VC_FLUSH_BYTES;
        w->direct = !s->no_sync;
        pthread_mutex_init(&w->io_mu, NULL);
        pthread_cond_init(&w->io_cv, NULL);
        *ret = w;
        return 0;
}

void vc_writer_set_flush_bytes(VcWriter *w, uint64_t bytes)
{
        w->flush_bytes = VC_MAX(bytes, 1u);
}

void vc_writer_set_direct(VcWriter *w, bool on)
{
        w->direct = on;
}

void vc_writer_set_pack_max(VcWriter *w, uint64_t bytes)
{
        w->pack_max = VC_MAX(bytes, (uint64_t)VC_PACK_HDR_LEN + 1);
}

uint64_t vc_writer_pending(const VcWriter *w)
{
        return w->pending_bytes;
}

bool vc_writer_poisoned(const VcWriter *w)
{
        return w->err != 0;
}

uint64_t vc_writer_moved(const VcWriter *w)
{
        return w->moved;
}

static int io_wait(VcWriter *w, WPack *p);

static void wpack_free(VcWriter *w, WPack *p)
{
        if (!p)
                return;
        (void)io_wait(w, p);
        if (p->dfd >= 0)
                close(p->dfd);
        if (p->fd >= 0) {
                /* Tidy: drop what was appended but never committed, and the
                 * padding of direct writes. The next claimer would cut it
                 * anyway; we still hold the lock. A pack we created and
                 * never committed a record to goes altogether (nothing can
                 * point into it; its packs entry, with no file, is
                 * forgotten by the next gc). Both matter on a full disk. */
                struct stat st;
                char path[PATH_MAX];
                if (p->created && p->committed <= VC_PACK_HDR_LEN &&
                    vc_pack_path(w->s, p->domain, p->pack, path, sizeof path) == 0)
                        (void)unlink(path);
                else if (fstat(p->fd, &st) == 0 && (uint64_t)st.st_size > p->committed)
                        (void)!ftruncate(p->fd, (off_t)p->committed);
                close(p->fd);
        }
        free(p->buf);
        free(p->spare);
        free(p);
}

void vc_writer_free(VcWriter *w)
{
        if (!w)
                return;
        for (size_t i = 0; i < w->npacks; i++)
                wpack_free(w, w->packs[i]);
        if (w->io_started) {
                pthread_mutex_lock(&w->io_mu);
                w->io_quit = true;
                pthread_cond_broadcast(&w->io_cv);
                pthread_mutex_unlock(&w->io_mu);
                pthread_join(w->io, NULL);
        }
        pthread_mutex_destroy(&w->io_mu);
        pthread_cond_destroy(&w->io_cv);
        free(w->packs);
        free(w->pend);
        free(w->set);
        vc_txn_abort(w->rt);
        free(w);
}

/* ---- the set of pending chunks ------------------------------------------------ */

static size_t slot_of(const VcWriter *w, uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        /* Tags are SHA-256 outputs: their first bytes are already uniform. */
        return (size_t)((vc_get64(tag) ^ (domain * 0x9E3779B97F4A7C15ull)) & (w->setcap - 1));
}

static bool set_has(const VcWriter *w, uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        if (!w->setcap)
                return false;
        for (size_t i = slot_of(w, domain, tag);; i = (i + 1) & (w->setcap - 1)) {
                uint32_t v = w->set[i];
                if (!v)
                        return false;
                const Pending *p = &w->pend[v - 1];
                if (p->domain == domain && memcmp(p->tag, tag, VC_TAG_LEN) == 0)
                        return true;
        }
}

static void set_insert(VcWriter *w, uint32_t idx)
{
        const Pending *p = &w->pend[idx];
        size_t i = slot_of(w, p->domain, p->tag);
        while (w->set[i])
                i = (i + 1) & (w->setcap - 1);
        w->set[i] = idx + 1;
}

/* Makes room for one more pending entry (and keeps the set under half full). */
static int pend_reserve(VcWriter *w)
{
        if (w->npend == w->cpend) {
                size_t c = w->cpend ? 2 * w->cpend : 1024;
                Pending *p = realloc(w->pend, c * sizeof *p);
                if (!p)
                        return -ENOMEM;
                w->pend = p;
                w->cpend = c;
        }
        if (2 * (w->npend + 1) > w->setcap) {
                size_t c = w->setcap ? 2 * w->setcap : 2048;
                uint32_t *set = calloc(c, sizeof *set);
                if (!set)
                        return -ENOMEM;
                free(w->set);
                w->set = set;
                w->setcap = c;
                for (size_t i = 0; i < w->npend; i++)
                        if (!w->pend[i].move)
                                set_insert(w, (uint32_t)i);
        }
        return 0;
}

/* The disk is full: poisons the writer with a message that says what to
 * do (replacing a lower layer's "No space left on device"). */
static int nospace(VcWriter *w, int r, const char *what)
{
        w->err = r = -ENOSPC;
        snprintf(w->msg, sizeof w->msg,
                 "no space left on the store's disk (writing %s); nothing put since the last flush is kept. "
                 "Run 'vmcas prune' to drop old versions and 'vmcas gc' to free their space, then try again",
                 what);
        return vc_errf_replace(r, "%s", w->msg);
}

/* ---- packs: claim an existing one or create a new one --------------------------- */

/* Opens fd's file again for direct I/O; -1 where there is none (tmpfs) or
 * VMCAS_DIRECT_IO=0. */
static int open_direct(int fd)
{
        const char *e = getenv("VMCAS_DIRECT_IO");
        if (e && strcmp(e, "0") == 0)
                return -1;
        char path[64];
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
        return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

/* Direct mode: makes the buffer hold the file's bytes from the last block
 * boundary up to p->size (already on disk). */
static int reload_tail(WPack *p)
{
        size_t tail = (size_t)(p->size % VC_DIO_ALIGN);
        int r = vc_pread_full(p->fd, p->buf, tail, (off_t)(p->size - tail));
        if (r < 0)
                return r;
        p->blen = tail;
        return 0;
}

static int wpack_add(VcWriter *w, uint64_t domain, uint32_t pack, int fd, uint64_t committed, WPack **ret)
{
        WPack **v = realloc(w->packs, (w->npacks + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        w->packs = v;
        WPack *p = calloc(1, sizeof *p);
        uint8_t *buf = NULL;
        /* room for a partial block, a whole buffer and the padding */
        if (posix_memalign((void **)&buf, VC_DIO_ALIGN, VC_WBUF + 2 * VC_DIO_ALIGN) != 0)
                buf = NULL;
        if (!p || !buf) {
                free(p);
                free(buf);
                return -ENOMEM;
        }
        *p = (WPack){ .domain = domain, .pack = pack, .fd = fd, .dfd = w->direct ? open_direct(fd) : -1, .size = committed,
                      .committed = committed, .buf = buf };
        int r = p->dfd >= 0 ? reload_tail(p) : 0;
        if (r < 0) {
                close(p->dfd);
                free(buf);
                free(p);
                return r;
        }
        w->packs[w->npacks++] = p;
        *ret = p;
        return 0;
}

typedef struct Cands {
        uint32_t *v;
        size_t n;
        uint64_t pack_max;
} Cands;

static int add_candidate(uint64_t domain, uint32_t pack, const VcPackEnt *e, void *ctx)
{
        Cands *c = ctx;
        if (e->flags & (VC_PACK_SEALED | VC_PACK_RETIRED) || e->committed >= c->pack_max)
                return 0;
        uint32_t *nv = realloc(c->v, (c->n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        c->v = nv;
        c->v[c->n++] = pack;
        return 0;
}

/* Packs of domain that a writer might append to, in pack order. */
static int claim_candidates(VcWriter *w, uint64_t domain, uint32_t **ret, size_t *ret_n)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        Cands c = { .pack_max = w->pack_max };
        int r = vc_txn_begin(w->s, false, &t);
        if (r == 0)
                r = vc_packs_each(t, domain, add_candidate, &c);
        if (r < 0) {
                free(c.v);
                return r;
        }
        *ret = c.v;
        *ret_n = c.n;
        return 0;
}

/* Tries to take pack over: 1 if claimed, 0 if not available. */
static int try_claim(VcWriter *w, uint64_t domain, uint32_t pack, WPack **ret)
{
        char path[PATH_MAX];
        int r = vc_pack_path(w->s, domain, pack, path, sizeof path);
        if (r < 0)
                return r;
        int fd = open(path, O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return 0;
        struct stat st;
        if (flock(fd, LOCK_EX | LOCK_NB) < 0 || fstat(fd, &st) < 0 || st.st_nlink == 0) {
                close(fd);
                return 0;
        }
        /* Read the committed length only now that we hold the lock: the
         * last holder may have flushed more after our candidate scan, and
         * cutting to a stale length would destroy committed chunks. */
        VcPackEnt e = { 0 };
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(w->s, false, &t);
                if (r == 0)
                        r = vc_packs_get(t, domain, pack, &e);
        }
        if (r < 0 || e.flags & (VC_PACK_SEALED | VC_PACK_RETIRED) || e.committed >= w->pack_max ||
            e.committed < VC_PACK_HDR_LEN || (uint64_t)st.st_size < e.committed ||
            vc_pack_check_hdr(w->s, fd, domain, pack) < 0) {
                close(fd);
                vc_errclear();  /* a pack we pass over is not the caller's error */
                return 0;
        }
        if ((uint64_t)st.st_size > e.committed && ftruncate(fd, (off_t)e.committed) < 0) {
                r = -errno;
                close(fd);
                return vc_errf(r, "cannot cut the torn tail of %s: %s", path, strerror(-r));
        }
        r = wpack_add(w, domain, pack, fd, e.committed, ret);
        if (r < 0) {
                close(fd);
                return r;
        }
        return 1;
}

/* Creates the next pack of domain. The number comes from the domain's
 * counter in a write transaction, and the file is created with O_EXCL
 * inside it, so two processes never share a number even if the counter
 * was lost with the index. */
static int pack_create(VcWriter *w, uint64_t domain, WPack **ret)
{
        VcStore *s = w->s;
        VcTxn *t;
        int r = vc_txn_begin(s, true, &t);
        if (r < 0)
                return r;
        uint32_t n = 0;
        int fd = -1;
        char dir[PATH_MAX] = "", path[PATH_MAX] = "";
        r = vc_domain_exists(t, domain);
        if (r == 0)
                r = vc_domain_next_pack(t, domain, &n);
        if (r == 0)
                r = vc_domain_dir(s, domain, dir, sizeof dir);
        if (r == 0)
                r = vc_mkdir_p(dir, 0755);
        while (r == 0) {
                r = vc_pack_path(s, domain, n, path, sizeof path);
                if (r < 0)
                        break;
                fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
                if (fd >= 0)
                        break;
                if (errno != EEXIST || n == UINT32_MAX) {
                        r = vc_errf(-errno, "cannot create pack %s: %s", path, strerror(errno));
                        break;
                }
                n++;
        }
        if (r < 0) {
                vc_txn_abort(t);
                if (vc_store_out_of_space(s, r))
                        return nospace(w, r, path[0] ? path : dir);
                return r;
        }
        uint8_t hdr[VC_PACK_HDR_LEN];
        VcPackHdr h = { .domain = domain, .pack = n, .created = vc_now() };
        memcpy(h.uuid, s->uuid, VC_UUID_LEN);
        vc_pack_hdr_encode(&h, hdr);
        /* The file and its directory entry are durable before the packs
         * table names it; a crash in between leaves a stray header-only
         * file, which the O_EXCL loop above steps over. */
        r = flock(fd, LOCK_EX | LOCK_NB) < 0 ? -errno : 0;
        if (r == 0)
                r = vc_pwrite_full(fd, hdr, sizeof hdr, 0);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        if (r == 0)
                r = vc_fsync_dir(dir);
        if (r < 0)
                r = vc_errf(r, "cannot create pack %s: %s", path, strerror(-r));
        if (r == 0)
                vc_crash_point("pack-created");
        if (r == 0)
                r = vc_packs_put(t, domain, n, &(VcPackEnt){ .committed = VC_PACK_HDR_LEN });
        if (r == 0)
                r = vc_domain_set_next_pack(t, domain, n + 1);
        if (r == 0) {
                r = vc_txn_commit(t);
                t = NULL;
        }
        if (r == 0)
                r = wpack_add(w, domain, n, fd, VC_PACK_HDR_LEN, ret);
        if (r < 0) {
                vc_txn_abort(t);
                unlink(path);
                close(fd);
                if (vc_store_out_of_space(s, r))
                        return nospace(w, r, path);
                return r;
        }
        (*ret)->created = true;
        /* Hold back the reserve that lets gc work on a full disk, if the
         * store has none yet (a store made before it existed, or after a
         * gc that could not restore it) and there is plenty of room. */
        vc_store_reserve_ensure(s);
        return 0;
}

/* The pack this writer appends domain's next record to. */
static int current_pack(VcWriter *w, uint64_t domain, WPack **ret)
{
        for (size_t i = 0; i < w->npacks; i++) {
                WPack *p = w->packs[i];
                if (p->domain != domain || p->full)
                        continue;
                if (p->size < w->pack_max) {
                        *ret = p;
                        return 0;
                }
                p->full = true;
        }
        uint32_t *cand = NULL;
        size_t n = 0;
        int r = claim_candidates(w, domain, &cand, &n);
        if (r < 0)
                return r;
        for (size_t i = n; i-- > 0;) {
                r = try_claim(w, domain, cand[i], ret);
                if (r != 0)
                        break;
        }
        free(cand);
        if (r > 0)
                return 0;
        if (r < 0)
                return r;
        return pack_create(w, domain, ret);
}

static void *io_main(void *arg)
{
        VcWriter *w = arg;
        pthread_mutex_lock(&w->io_mu);
        for (;;) {
                while (!w->ioq_n && !w->io_quit)
                        pthread_cond_wait(&w->io_cv, &w->io_mu);
                if (!w->ioq_n)
                        break;
                WPack *p = w->ioq[w->ioq_head];
                w->ioq_head = (w->ioq_head + 1) % VC_ARRAY_SIZE(w->ioq);
                w->ioq_n--;
                pthread_mutex_unlock(&w->io_mu);
                /* the job's fields and p->dfd do not change while inflight */
                int r = vc_pwrite_full(p->dfd, p->spare, p->job_n, (off_t)p->job_at);
                bool off = false;
                if (r == -EINVAL) {
                        /* the file system refused after all: these bytes buffered,
                         * and the appender goes buffered too */
                        r = vc_pwrite_full(p->fd, p->spare, p->job_blen, (off_t)p->job_at);
                        off = true;
                }
                pthread_mutex_lock(&w->io_mu);
                if (r < 0 && !p->io_err)
                        p->io_err = r;
                p->dio_off |= off;
                p->inflight = false;
                pthread_cond_broadcast(&w->io_cv);
        }
        pthread_mutex_unlock(&w->io_mu);
        return NULL;
}

/* Waits until p's buffer in flight is written; its error if it failed.
 * After a refused direct write the pack is written buffered. */
static int io_wait(VcWriter *w, WPack *p)
{
        if (!w->io_started)
                return 0;
        pthread_mutex_lock(&w->io_mu);
        while (p->inflight)
                pthread_cond_wait(&w->io_cv, &w->io_mu);
        int r = p->io_err;
        bool off = p->dio_off;
        p->io_err = 0;
        p->dio_off = false;
        pthread_mutex_unlock(&w->io_mu);
        if (off && p->dfd >= 0) {
                close(p->dfd);
                p->dfd = -1;
        }
        return r;
}

/* Hands p's full buffer to the I/O thread and carries its last partial
 * block over into the other; false if there is no I/O thread. */
static bool io_hand(VcWriter *w, WPack *p, size_t n)
{
        if (!w->io_started && !w->io_failed && getenv("VMCAS_NO_IO_THREAD"))
                w->io_failed = true;
        if (!w->io_started && !w->io_failed) {
                if (pthread_create(&w->io, NULL, io_main, w) == 0)
                        w->io_started = true;
                else
                        w->io_failed = true;  /* written in the caller's thread */
        }
        if (!w->io_started)
                return false;
        if (!p->spare && posix_memalign((void **)&p->spare, VC_DIO_ALIGN, VC_WBUF + 2 * VC_DIO_ALIGN) != 0) {
                p->spare = NULL;
                return false;
        }
        size_t tail = p->blen % VC_DIO_ALIGN;
        memcpy(p->spare, p->buf + p->blen - tail, tail);
        uint8_t *full = p->buf;
        p->buf = p->spare;
        pthread_mutex_lock(&w->io_mu);
        while (w->ioq_n == VC_ARRAY_SIZE(w->ioq))
                pthread_cond_wait(&w->io_cv, &w->io_mu);
        p->spare = full;
        p->job_n = n;
        p->job_blen = p->blen;
        p->job_at = p->size - p->blen;
        p->inflight = true;
        w->ioq[(w->ioq_head + w->ioq_n++) % VC_ARRAY_SIZE(w->ioq)] = p;
        pthread_cond_broadcast(&w->io_cv);
        pthread_mutex_unlock(&w->io_mu);
        p->blen = tail;
        return true;
}

int vc_writer_claim_like(VcWriter *w, const VcWriter *like)
{
        for (size_t i = 0; i < like->npacks; i++) {
                WPack *p;
                if (like->packs[i]->full)
                        continue;
                int r = current_pack(w, like->packs[i]->domain, &p);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int wbuf_out(VcWriter *w, WPack *p)
{
        int r = io_wait(w, p);
        if (r < 0)
                return r;
        if (!p->blen)
                return 0;
        off_t at = (off_t)(p->size - p->blen);
        if (p->dfd >= 0) {
                size_t n = (p->blen + VC_DIO_ALIGN - 1) & ~(size_t)(VC_DIO_ALIGN - 1);
                memset(p->buf + p->blen, 0, n - p->blen);
                if (io_hand(w, p, n))
                        return 0;
                r = vc_pwrite_full(p->dfd, p->buf, n, at);
                if (r == -EINVAL) {
                        /* the file system refused after all: buffered from now on */
                        close(p->dfd);
                        p->dfd = -1;
                } else if (r < 0) {
                        return r;
                } else {
                        size_t tail = p->blen % VC_DIO_ALIGN;
                        memmove(p->buf, p->buf + p->blen - tail, tail);
                        p->blen = tail;
                        return 0;
                }
        }
        r = vc_pwrite_full(p->fd, p->buf, p->blen, at);
        if (r < 0)
                return r;
        /* Start writing back now, without waiting: by the time flush calls
         * fdatasync most of the data is on disk already, so the writer does
         * not stall for a whole batch, and dirty pages do not pile up. */
        if (!w->s->no_sync)     /* a host cache never syncs: the kernel writes back when it likes */
                (void)sync_file_range(p->fd, at, (off_t)p->blen, SYNC_FILE_RANGE_WRITE);
        p->blen = 0;
        return 0;
}

static int poison(VcWriter *w, int r, const WPack *p, const char *what)
{
        char path[PATH_MAX];
        vc_pack_path(w->s, p->domain, p->pack, path, sizeof path);
        if (vc_store_out_of_space(w->s, r))
                return nospace(w, r, path);
        w->err = r;
        snprintf(w->msg, sizeof w->msg, "cannot %s %s: %s (the chunks put since the last flush are lost)", what,
                 path, strerror(-r));
        return vc_errf(r, "%s", w->msg);
}

/* Appends one record, returning where it went. */
static int append(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN], const void *data,
                  size_t len, Pending *pe)
{
        WPack *p;
        int r = current_pack(w, domain, &p);
        if (r < 0)
                return r;
        uint8_t hdr[VC_REC_HDR_LEN];
        VcRecHdr h = { .kind = kind, .domain = domain, .len = (uint32_t)len };
        memcpy(h.tag, tag, VC_TAG_LEN);
        vc_rec_hdr_encode(&h, hdr);
        size_t rec = VC_REC_HDR_LEN + len;
        if (p->blen + rec > VC_WBUF) {
                r = wbuf_out(w, p);
                if (r < 0)
                        return poison(w, r, p, "write to");
        }
        if (rec > VC_WBUF) {
                /* written here, past the block the I/O thread may be writing */
                if ((r = io_wait(w, p)) < 0)
                        return poison(w, r, p, "write to");
                r = vc_pwrite_full(p->fd, hdr, sizeof hdr, (off_t)p->size);
                if (r == 0)
                        r = vc_pwrite_full(p->fd, data, len, (off_t)(p->size + sizeof hdr));
                if (r == 0 && p->dfd >= 0) {
                        p->size += rec;   /* the buffer must start on a block again */
                        r = reload_tail(p);
                        p->size -= rec;
                }
                if (r < 0)
                        return poison(w, r, p, "write to");
        } else {
                memcpy(p->buf + p->blen, hdr, sizeof hdr);
                if (len)
                        memcpy(p->buf + p->blen + sizeof hdr, data, len);
                p->blen += rec;
        }
        *pe = (Pending){ .domain = domain, .pack = p->pack, .off = p->size, .len = (uint32_t)len, .kind = kind };
        memcpy(pe->tag, tag, VC_TAG_LEN);
        p->size += rec;
        p->dirty = true;
        if (p->size >= w->pack_max)
                p->full = true;
        return 0;
}

static int check_args(uint64_t domain, int kind, size_t len)
{
        if (kind != VC_KIND_DATA && kind != VC_KIND_META && kind != VC_KIND_CATALOG)
                return vc_errf(-EINVAL, "invalid chunk kind %d", kind);
        if (len > VC_REC_DATA_MAX)
                return vc_errf(-EINVAL, "chunk of %zu bytes is too large", len);
        if (domain == 0)
                return vc_errf(-EINVAL, "invalid domain 0");
        return 0;
}

/* Is (domain, tag) indexed? A damaged entry counts as absent: the chunk is
 * written again and the flush replaces the entry. */
static int indexed(VcWriter *w, uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        int r = 0;
        if (!w->rt)
                r = vc_txn_begin(w->s, false, &w->rt);
        else if (!w->rt_live)
                r = vc_txn_renew(w->rt);
        if (r < 0)
                return r;
        w->rt_live = true;
        uint8_t k[VC_IDX_KEY_LEN];
        const void *v;
        size_t vl;
        vc_idx_key(k, domain, tag);
        r = vc_db_get(w->rt, VC_DB_INDEX, k, sizeof k, &v, &vl);
        return r == 0 ? 1 : (r == -ENOENT || r == -EBADMSG) ? 0 : r;
}

/* Appends a record and remembers it for the next flush; from is the old
 * place of a record compaction moves, NULL for a put. */
static int put_record(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN], const void *data,
                      size_t len, const Pending *from)
{
        int r = pend_reserve(w);
        if (r < 0)
                return r;
        Pending pe;
        r = append(w, domain, kind, tag, data, len, &pe);
        if (r < 0)
                return r;
        if (from) {
                pe.move = true;
                pe.from_pack = from->from_pack;
                pe.from_off = from->from_off;
        }
        w->pend[w->npend] = pe;
        if (!pe.move)
                set_insert(w, (uint32_t)w->npend);
        w->npend++;
        w->pending_bytes += pe.len;
        if (w->pending_bytes >= w->flush_bytes)
                return vc_writer_flush(w);
        return 0;
}

/* put and put_fresh: look says whether to ask the index first. */
static int put(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN], const void *data, size_t len,
               bool look)
{
        if (w->err)
                return vc_errf(w->err, "%s", w->msg);
        int r = check_args(domain, kind, len);
        if (r < 0)
                return r;
        if (set_has(w, domain, tag))
                return 0;
        if (look && (r = indexed(w, domain, tag)) != 0)
                return r < 0 ? r : 0;
        r = put_record(w, domain, kind, tag, data, len, NULL);
        return r < 0 ? r : 1;
}

int vc_writer_put(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN], const void *data,
                  size_t len)
{
        return put(w, domain, kind, tag, data, len, true);
}

bool vc_writer_has_pending(const VcWriter *w, uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        return set_has(w, domain, tag);
}

int vc_writer_put_fresh(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN], const void *data,
                        size_t len)
{
        return put(w, domain, kind, tag, data, len, false);
}

int vc_writer_move(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN], const void *data,
                   size_t len, uint32_t from_pack, uint64_t from_off)
{
        if (w->err)
                return vc_errf(w->err, "%s", w->msg);
        int r = check_args(domain, kind, len);
        if (r < 0)
                return r;
        return put_record(w, domain, kind, tag, data, len,
                          &(Pending){ .from_pack = from_pack, .from_off = from_off });
}

/* The pending entries of a flush in index order: key (domain, then tag),
 * equal keys in the order they were put (a move after a put of the same
 * tag stays after it: the entries of one writer lie in one array, in put
 * order). The first 8 bytes of the tag are compared as a number. */
typedef struct SortEnt {
        uint64_t domain, prefix;
        const Pending *pe;
} SortEnt;

static int sort_cmp(const void *a, const void *b)
{
        const SortEnt *x = a, *y = b;
        if (x->domain != y->domain)
                return x->domain < y->domain ? -1 : 1;
        if (x->prefix != y->prefix)
                return x->prefix < y->prefix ? -1 : 1;
        int c = memcmp(x->pe->tag + 8, y->pe->tag + 8, VC_TAG_LEN - 8);
        if (c)
                return c;
        return x->pe < y->pe ? -1 : x->pe > y->pe;
}

/* Sorts n entries of one domain by sort_cmp, into out. Tags are uniform:
 * the entries go to buckets by their first bits (a counting sort, O(n)),
 * and each bucket, a few entries, is sorted by insertion. */
static int bucket_sort(const SortEnt *e, size_t n, SortEnt *out)
{
        unsigned bits = 4;
        while (bits < 20 && ((size_t)1 << bits) < n / 2)
                bits++;
        size_t nb = (size_t)1 << bits;
        size_t *start = calloc(nb + 1, sizeof *start);
        if (!start)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++)
                start[(e[i].prefix >> (64 - bits)) + 1]++;
        for (size_t b = 0; b < nb; b++)
                start[b + 1] += start[b];
        /* stable: equal keys keep their order */
        for (size_t i = 0; i < n; i++)
                out[start[e[i].prefix >> (64 - bits)]++] = e[i];
        free(start);
        for (size_t i = 1; i < n; i++) {
                SortEnt x = out[i];
                size_t j = i;
                while (j > 0 && sort_cmp(&out[j - 1], &x) > 0) {
                        out[j] = out[j - 1];
                        j--;
                }
                out[j] = x;
        }
        return 0;
}

/* Sorts n entries by sort_cmp: by domain (a flush holds a few: a parcel's
 * data and its keyring nodes), each domain's run by bucket_sort; qsort if
 * there are many domains or memory is short. */
static void sort_ents(SortEnt *e, size_t n)
{
        enum { DOMS = 8 };
        if (n < 64) {
                qsort(e, n, sizeof *e, sort_cmp);
                return;
        }
        uint64_t dom[DOMS];
        size_t nd = 0, cnt[DOMS + 1] = { 0 };
        for (size_t i = 0; i < n && nd <= DOMS; i++) {
                size_t d = 0;
                while (d < nd && dom[d] != e[i].domain)
                        d++;
                if (d == nd && nd++ < DOMS)
                        dom[d] = e[i].domain;
        }
        SortEnt *tmp = nd <= DOMS ? malloc(n * sizeof *tmp) : NULL;
        if (!tmp) {
                qsort(e, n, sizeof *e, sort_cmp);
                return;
        }
        /* the domains in order, then each entry to its domain's run */
        for (size_t a = 1; a < nd; a++)
                for (size_t b = a; b > 0 && dom[b - 1] > dom[b]; b--) {
                        uint64_t x = dom[b];
                        dom[b] = dom[b - 1];
                        dom[b - 1] = x;
                }
        size_t at[DOMS];
        for (size_t i = 0; i < n; i++) {
                size_t d = 0;
                while (dom[d] != e[i].domain)
                        d++;
                cnt[d + 1]++;
        }
        for (size_t d = 0; d < nd; d++) {
                cnt[d + 1] += cnt[d];
                at[d] = cnt[d];
        }
        for (size_t i = 0; i < n; i++) {
                size_t d = 0;
                while (dom[d] != e[i].domain)
                        d++;
                tmp[at[d]++] = e[i];
        }
        for (size_t d = 0; d < nd; d++)
                if (bucket_sort(tmp + cnt[d], cnt[d + 1] - cnt[d], e + cnt[d]) < 0) {
                        memcpy(e, tmp, n * sizeof *e);
                        qsort(e, n, sizeof *e, sort_cmp);
                        break;
                }
        free(tmp);
}

typedef struct Merge {
        const SortEnt *ents;
        size_t n;
        int64_t now;
} Merge;

static void merge_entry(void *ctx, size_t i, uint64_t *domain, const uint8_t **tag, VcIdx *x, bool *move,
                        uint32_t *from_pack, uint64_t *from_off)
{
        const Merge *m = ctx;
        const Pending *pe = m->ents[i].pe;
        /* the entries are in key order, their records in put order: ask
         * for one a few places ahead while this one is inserted */
        if (i + 8 < m->n)
                __builtin_prefetch(m->ents[i + 8].pe);
        *domain = pe->domain;
        *tag = pe->tag;
        *x = (VcIdx){ .pack = pe->pack, .off = pe->off, .len = pe->len, .kind = pe->kind, .stored_at = m->now };
        *move = pe->move;
        *from_pack = pe->from_pack;
        *from_off = pe->from_off;
}

/* Every dirty pack's buffer of w out (on the I/O thread, all at once), then
 * each written and synced. *any: w has something to commit. */
static int flush_data(VcWriter *w, bool *any)
{
        if (w->err)
                return vc_errf(w->err, "%s", w->msg);
        *any = w->npend > 0;
        for (size_t i = 0; i < w->npacks; i++) {
                WPack *p = w->packs[i];
                if (!p->dirty)
                        continue;
                *any = true;
                int r = wbuf_out(w, p);
                if (r < 0)
                        return poison(w, r, p, "write to");
        }
        for (size_t i = 0; i < w->npacks; i++) {
                WPack *p = w->packs[i];
                if (!p->dirty)
                        continue;
                int r = io_wait(w, p);
                if (r < 0)
                        return poison(w, r, p, "write to");
                if (!w->s->no_sync && fdatasync(p->fd) < 0)
                        return poison(w, -errno, p, "sync");
        }
        if (*any && w->rt_live) {
                vc_txn_reset(w->rt);
                w->rt_live = false;
        }
        return 0;
}

/* After the commit: w's entries are indexed, its full packs given up. */
static void flush_done(VcWriter *w, uint64_t moved)
{
        w->moved += moved;
        w->npend = 0;
        w->pending_bytes = 0;
        if (w->setcap)
                memset(w->set, 0, w->setcap * sizeof *w->set);
        size_t keep = 0;
        for (size_t i = 0; i < w->npacks; i++) {
                WPack *p = w->packs[i];
                if (p->dirty) {
                        p->committed = p->size;
                        p->dirty = false;
                }
                if (p->full)
                        wpack_free(w, p);  /* sealed: release it */
                else
                        w->packs[keep++] = p;
        }
        w->npacks = keep;
}

/* The index commit of a flush of ws (n writers of one store, their data
 * written and synced): one transaction for all. */
static int flush_index(VcWriter **ws, size_t n)
{
        VcStore *s = ws[0]->s;
        size_t total = 0;
        for (size_t k = 0; k < n; k++)
                total += ws[k]->npend;
        /* The entries go in in key order: random tags inserted as they
         * came touch a random leaf page of the index each; in order, one
         * leaf takes its run of entries while it is in the CPU's cache,
         * and the cursor finds it without a descent from the root. */
        SortEnt *ents = total ? malloc(total * sizeof *ents) : NULL;
        if (total && !ents)
                return -ENOMEM;
        size_t m = 0;
        for (size_t k = 0; k < n; k++)
                for (size_t i = 0; i < ws[k]->npend; i++) {
                        const Pending *pe = &ws[k]->pend[i];
                        ents[m++] = (SortEnt){ .domain = pe->domain, .prefix = vc_get64be(pe->tag), .pe = pe };
                }
        sort_ents(ents, total);
        VcTxn *t;
        int r = vc_txn_begin(s, true, &t);
        if (r < 0) {
                free(ents);
                return r;
        }
        uint64_t moved = 0;
        Merge mg = { .ents = ents, .n = total, .now = vc_now() };
        r = vc_idx_merge(t, total, merge_entry, &mg, &moved);
        free(ents);
        for (size_t k = 0; k < n; k++)
                for (size_t i = 0; r == 0 && i < ws[k]->npacks; i++) {
                        WPack *p = ws[k]->packs[i];
                        if (p->dirty)
                                r = vc_packs_put(t, p->domain, p->pack,
                                                 &(VcPackEnt){ .flags = p->full ? VC_PACK_SEALED : 0,
                                                               .committed = p->size });
                }
        if (r < 0) {
                vc_txn_abort(t);
                return r;       /* everything stays pending: a retry commits it */
        }
        r = vc_txn_commit(t);
        /* The index could not grow: on a full disk retrying is pointless,
         * and the caller should hear why. */
        if (r < 0 && vc_store_out_of_space(s, r)) {
                for (size_t k = 1; k < n; k++)
                        nospace(ws[k], r, "the store index");
                return nospace(ws[0], r, "the store index");
        }
        if (r < 0)
                return r;
        /* (moves come from compaction's single writer) */
        for (size_t k = 0; k < n; k++)
                flush_done(ws[k], k == 0 ? moved : 0);
        return 0;
}

int vc_writer_flush(VcWriter *w)
{
        int r;
        vc_writer_flush_many(&w, 1, &r);
        return r;
}

int vc_writer_flush_many(VcWriter **ws, size_t n, int *rets)
{
        VcWriter *live[n ? n : 1];
        int *ret[n ? n : 1];
        size_t nl = 0;
        int first = 0, dummy;
        for (size_t k = 0; k < n; k++) {
                bool any = false;
                int *rk = rets ? &rets[k] : &dummy;
                *rk = flush_data(ws[k], &any);
                if (*rk < 0 && first == 0)
                        first = *rk;
                if (*rk >= 0 && any) {
                        ret[nl] = rk;
                        live[nl++] = ws[k];
                }
        }
        if (nl == 0)
                return first;
        vc_crash_point("flush-synced");
        int ri = flush_index(live, nl);
        for (size_t k = 0; k < nl; k++)
                *ret[k] = ri;
        return first < 0 ? first : ri;
}
