/* The host cache: a local store in front of another back end (usually a
 * remote one), shared by every parcel of the host and by every server the
 * host talks to.
 *
 * What goes where:
 *   get       hits are served from the cache store; the misses are fetched
 *             from upstream in one batch call, re-hashed (a tag is the
 *             SHA-256 of the sealed bytes, so a lying or broken server cannot
 *             poison the cache: a mismatch is -EBADMSG naming the chunk, and
 *             it is not cached), stored and delivered.
 *   put       upstream first, then into the cache (a host that checked a
 *             chunk in does not fetch it again).
 *   missing, flush, the catalog, leases, maintenance, bundles: upstream
 *             (a commit needs the chunks on the server, not here).
 * The cache is only ever a copy: failing to store into it (disk full, a
 * damaged cache) never fails an operation, and a chunk it cannot read back
 * is fetched again.
 *
 * Domains. Chunks of upstream U's domain D live in the cache's domain
 *   <first 16 hex digits of U's uuid>:<D>
 * e.g. "af4218d8df05b221:all". Store domain names have at most 79
 * characters, interface domain names up to 70 ("group:" and 64), so a name
 * that would not fit is hashed:
 *   <16 hex>:~<first 40 hex digits of SHA-256(D)>
 * ('~' is in no interface domain name, so the two forms never meet; 64 bits
 * of uuid tell apart the few servers one host talks to).
 *
 * Size. The bound is on the pack files (vc_store_pack_bytes), i.e. what
 * the cache occupies on disk, not counting its LMDB index. Default: 10 GiB
 * or a tenth of the file system holding the cache, whichever is smaller.
 * When the packs pass the bound, the least recently used chunks are
 * dropped from the index until the live bytes are LOW_WATER of the bound,
 * then packs less than COMPACT_RATIO live are rewritten; every pack left is
 * then at least that full, so the packs end up below the bound again.
 * Caches' packs are kept small (bound / 16, 64 KiB to 256 MiB) so that
 * compaction has something to choose from.
 *
 * Last access. The cache's catalog (table META, keys "ca:" ‖ domain id
 * BE64 ‖ tag, value i64 unix milliseconds) holds when a chunk was last
 * stored or served from the cache; a chunk without an entry counts from its
 * stored_at (whole seconds). What a bulk fetch stores (see "Lanes") gets
 * no entry: its chunks arrived together, and per-chunk records of one time
 * told eviction nothing stored_at does not, at a tenth of a checkout's
 * CPU (compaction keeps stored_at). Accesses are gathered in memory and written in
 * one transaction at most once per call: when ATIME_BATCH have gathered or
 * ATIME_SECONDS have passed since the last write, before an eviction and at
 * close. An access another process has not written yet is not seen by an
 * eviction here: LRU across processes is as fine as ATIME_SECONDS.
 *
 * Who may evict. A get holds a shared flock on DIR/locks/cache-use from
 * looking its chunks up in the cache to having delivered the hits (one per
 * handle: the first reader in flight takes it, the last releases it), not
 * while it fetches misses. At the end of every operation (get, put; and at
 * open and close), if the packs passed the bound and no reader of this
 * handle is in flight, eviction takes the lock exclusively without waiting,
 * and if it cannot (a reader is in the cache somewhere), it is left to the
 * end of a later operation. So no chunk leaves the index between a get
 * finding it and reading it, in any process. The exclusive lock covers
 * only the index sweep; compaction runs after, under the store's "gc"
 * lock, beside readers (the store moves records so that readers never miss
 * them; and a get that cannot read a chunk fetches it again anyway).
 *   Why not a shared lock for as long as a back end is open: a host runs
 *   long-lived users (a VM's disk served for hours), and a lock held per
 *   open handle, or per operation including its network fetch, would keep
 *   the cache from shrinking while any of them runs (the churn test sees
 *   the bound kept only with the short hold). Nothing of the cache must
 *   outlive a read: what a put or fetch stored may be evicted at once
 *   (its bytes are delivered from the upstream's buffer), and a chunk
 *   evicted between two gets is fetched again.
 *
 * Stores. What a get fetched or a put sent is appended to one writer of
 * the handle and indexed at its next flush. A get whose chunks were all
 * staged at once (a disk server's miss) hands them to the settler thread,
 * which appends them and flushes SETTLE_COALESCE later, after the get
 * returned; the settler is woken for the first miss of a burst only and
 * takes the others when its wait ends. A get that asks for a chunk staged
 * so or in a writer being flushed wakes it and waits (in_flight). A flush runs without wlock, one at a
 * time. Flushes come at the end of a call that
 * stored less than SMALL_CALL, when SETTLE_SECONDS have passed or
 * min(CACHE_FLUSH, bound / 16) bytes have gathered since its first put
 * (checked at the end of every call), when a get of this handle
 * asks for a chunk the writer holds (read your writes), before an
 * eviction, at a flush of the back end and at close. Each flush commits
 * random tags into the index and rewrites most of its leaf pages, so a
 * flush per call (a run of 8 MiB) cost a checkout or checkin through the
 * cache as much as writing the data; other processes see what was stored
 * at most SETTLE_SECONDS (plus a call) late, and until then fetch it
 * upstream. A crash loses what was not flushed: a cache may.
 *
 * Lanes. A fetch of BULK_MISSES chunks or more (a checkout's run) appends
 * to one of LANES writers of its own instead, the first it finds free:
 * eight fetching threads appending through one writer waited for each
 * other more than they worked, and the copy into the page cache of one
 * pack file is serial in the kernel too. A checkin's copy of a batch it
 * sends goes to a lane too. A lane is flushed under its own lock, by the
 * same rules as the writer (wflush bytes or SETTLE_SECONDS, read your
 * writes, eviction, flush, close), so a get that asks for a chunk a lane
 * holds takes the lane's lock and finds it indexed. Each lane flushes at
 * wflush, not a third of it: every commit of random tags rewrites most of
 * the domain's leaf pages, and six commits for 512 MiB cost a checkout a
 * tenth of its time. Lanes write their packs with direct I/O: on this kind
 * of machine a buffered write into fresh page-cache pages ran at 270 MB/s
 * where a direct one ran at 1.3 GB/s, and the copy was a third of a cold
 * checkout's CPU. The handle's writer (a disk server's misses, a few
 * chunks a call) stays buffered: its flush every few ms would write the
 * pack's last block again each time.
 */
#include "backend/vc_backend.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/statvfs.h>
#include <time.h>
#include <unistd.h>

#define CACHE_MAX_DEFAULT (10ull << 30)
#define CACHE_FS_SHARE 10               /* percent of the file system, if smaller */
#define LOW_WATER 0.70                  /* evict down to this share of the bound */
#define COMPACT_RATIO 0.75              /* rewrite packs less live than this */
#define ATIME_BATCH 4096
#define ATIME_SECONDS 5
#define EVICT_SECONDS 2                 /* between evictions, unless much was stored */
#define DOMAIN_CACHE 16
#define ATIME_PREFIX "ca:"
#define ATIME_KEY_LEN (3 + 8 + 32)
#define CACHE_FLUSH (256ull << 20)      /* stored bytes that make a flush, at most */
#define SETTLE_SECONDS 5.0
#define SETTLE_COALESCE 0.005           /* a small call's flush waits this long for more */

typedef struct Touch {
        uint64_t domain;
        uint8_t tag[32];
        int64_t at;                     /* unix milliseconds */
} Touch;

/* A writer of its own for large fetches (see "Lanes" above). */
#define LANES 3
#define BULK_MISSES 256                 /* a fetch of this many chunks is a bulk one */

typedef struct Lane {
        pthread_mutex_t mu;             /* the fields below, and the flush */
        VcWriter *w;
        uint64_t bytes;                 /* stored since the writer's first put */
        double since;                   /* vc_mono() of that put */
} Lane;

static int64_t now_ms(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

typedef struct Cache {
        VcBackend base;
        VcBackend *up;
        VcStore *s;
        uint64_t bound, pack_max;
        char prefix[18];                /* 16 hex of the upstream's uuid and ':' */
        int lockfd;                     /* DIR/locks/cache-use */

        pthread_mutex_t use;            /* users, the flock, eviction */
        unsigned users;                 /* operations in flight in this handle */
        uint64_t disk;                  /* pack bytes at the last look */
        uint64_t written;               /* bytes stored since (atomic) */
        double evicted_at;              /* vc_mono() of the last eviction */

        pthread_mutex_t lock;           /* the domain cache and the touches */
        struct { char name[VC_DOMAIN_MAX]; uint64_t id; } dom[DOMAIN_CACHE];
        unsigned ndom;
        Touch *touch;
        size_t ntouch, cap_touch;
        int64_t touched_at;             /* when touches were last written */

        /* What this handle stores goes through one writer, flushed when
         * SETTLE_SECONDS passed or wflush bytes gathered since its first
         * put, when a get asks for a chunk it holds, before an eviction,
         * at a flush and at close (see "Stores" above). */
        pthread_mutex_t wlock;          /* the fields below; taken before lock */
        VcWriter *w;
        Touch *wtouch;                  /* the stored chunks' access times, kept at the flush */
        size_t nwtouch, cap_wtouch;
        uint64_t wbytes;                /* stored since the writer's first put */
        double wsince;                  /* vc_mono() of that put */
        uint64_t wflush;
        bool wbusy;                     /* a writer given up is being flushed, without wlock */
        const Touch *ftouch;            /* ... the chunks it holds (read-only meanwhile) */
        size_t nftouch;
        pthread_cond_t wdone;           /* ... and is done */
        /* the settler: flushes what a small call stored, off the caller's
         * thread (a disk server's read returns before its chunk is indexed) */
        pthread_t settler;
        bool settler_on, settle_req, settler_stop;
        double settle_at;               /* vc_mono() when a requested flush is due */
        pthread_cond_t settle_cv;
        struct Queued *sq, **sq_tail;   /* small calls' chunks, for the settler to store */
        unsigned squeued;
        Lane lane[LANES];               /* bulk fetches' writers */
        double lanes_due;               /* when the settler flushes lanes no call did (wlock) */
} Cache;

static Cache *C(VcBackend *b)
{
        return (Cache *)b;
}

static void add(uint64_t *c, uint64_t n)
{
        __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void store_max(uint64_t *p, uint64_t v)
{
        uint64_t cur = __atomic_load_n(p, __ATOMIC_RELAXED);
        while (cur < v && !__atomic_compare_exchange_n(p, &cur, v, true, __ATOMIC_RELAXED, __ATOMIC_RELAXED))
                ;
}

/* The cache's traffic is its upstream's, plus its own hits. Counters only
 * grow, so the largest value seen wins whatever order threads store in. */
static void sync_traffic(Cache *c)
{
        VcTraffic t;
        vc_backend_traffic(c->up, &t);
        store_max(&c->base.traffic.sent_data, t.sent_data);
        store_max(&c->base.traffic.sent_meta, t.sent_meta);
        store_max(&c->base.traffic.recv_data, t.recv_data);
        store_max(&c->base.traffic.recv_meta, t.recv_meta);
        store_max(&c->base.traffic.wire_sent, t.wire_sent);
        store_max(&c->base.traffic.wire_recv, t.wire_recv);
}

/* ---- domains ------------------------------------------------------------- */

static void cache_domain_name(const Cache *c, const char *domain, char out[VC_DOMAIN_MAX])
{
        size_t p = strlen(c->prefix), n = strlen(domain);
        memcpy(out, c->prefix, p);
        if (p + n < VC_DOMAIN_MAX) {
                memcpy(out + p, domain, n + 1);
                return;
        }
        uint8_t h[32];
        vc_sha256(domain, n, h);
        out[p] = '~';
        vc_hex(h, 20, out + p + 1);
}

/* The cache store's id of upstream domain `domain`; -ENOENT if it has
 * none and create is false. Cached (ids never change). */
static int domain_id(Cache *c, const char *domain, bool create, uint64_t *id)
{
        pthread_mutex_lock(&c->lock);
        for (unsigned i = 0; i < c->ndom; i++)
                if (strcmp(c->dom[i].name, domain) == 0) {
                        *id = c->dom[i].id;
                        pthread_mutex_unlock(&c->lock);
                        return 0;
                }
        pthread_mutex_unlock(&c->lock);
        char name[VC_DOMAIN_MAX];
        cache_domain_name(c, domain, name);
        int r = vc_store_domain(c->s, name, create, id);
        if (r < 0)
                return r;
        pthread_mutex_lock(&c->lock);
        unsigned i = c->ndom < DOMAIN_CACHE ? c->ndom++ : (unsigned)(*id % DOMAIN_CACHE);
        snprintf(c->dom[i].name, sizeof c->dom[i].name, "%s", domain);
        c->dom[i].id = *id;
        pthread_mutex_unlock(&c->lock);
        return 0;
}

/* ---- last access ----------------------------------------------------------- */

static void atime_key(uint8_t k[ATIME_KEY_LEN], uint64_t domain, const uint8_t tag[32])
{
        memcpy(k, ATIME_PREFIX, 3);
        vc_put64be(k + 3, domain);
        memcpy(k + 11, tag, 32);
}

static void touches_add(Cache *c, const Touch *t, size_t n)
{
        if (!n)
                return;
        pthread_mutex_lock(&c->lock);
        if (c->ntouch + n > c->cap_touch) {
                size_t cap = VC_MAX(c->ntouch + n, 2 * c->cap_touch);
                Touch *x = realloc(c->touch, cap * sizeof *x);
                if (!x) {               /* an access time is a hint: drop it */
                        pthread_mutex_unlock(&c->lock);
                        return;
                }
                c->touch = x;
                c->cap_touch = cap;
        }
        memcpy(c->touch + c->ntouch, t, n * sizeof *t);
        c->ntouch += n;
        pthread_mutex_unlock(&c->lock);
}

/* Writes the gathered access times in one transaction: always with force,
 * else only once enough have gathered or enough time has passed. */
static void touches_write(Cache *c, bool force)
{
        int64_t now = vc_now();
        pthread_mutex_lock(&c->lock);
        if (c->ntouch == 0 || (!force && c->ntouch < ATIME_BATCH && now - c->touched_at < ATIME_SECONDS)) {
                pthread_mutex_unlock(&c->lock);
                return;
        }
        Touch *t = c->touch;
        size_t n = c->ntouch;
        c->touch = NULL;
        c->ntouch = c->cap_touch = 0;
        c->touched_at = now;
        pthread_mutex_unlock(&c->lock);
        VcTxn *x;
        uint8_t k[ATIME_KEY_LEN], v[8];
        int r = vc_txn_begin(c->s, true, &x);
        for (size_t i = 0; r >= 0 && i < n; i++) {
                atime_key(k, t[i].domain, t[i].tag);
                vc_put64(v, (uint64_t)t[i].at);
                r = vc_txn_put(x, VC_TABLE_META, k, sizeof k, v, sizeof v);
        }
        if (r >= 0)
                r = vc_txn_commit(x);
        else
                vc_txn_abort(x);
        if (r < 0)
                vc_errclear();
        free(t);
}

static void settle(Cache *c, bool force);
static void lanes_settle(Cache *c, bool force);

/* ---- eviction ------------------------------------------------------------------ */

typedef struct Victim {
        int64_t at;
        uint32_t len;
        uint32_t ord;                   /* place in index order */
} Victim;

typedef struct Evict {
        VcTxn *t;
        Victim *v;
        size_t n, cap;
        uint64_t live;
        uint8_t *doomed;                /* bit per ord */
        size_t pos;                     /* the sweep's place in index order */
        uint8_t (*orphans)[ATIME_KEY_LEN];
        size_t norphans, cap_orphans;
} Evict;

static int ev_collect(const VcChunkInfo *ci, void *ctx)
{
        Evict *e = ctx;
        if (e->n == e->cap) {
                size_t cap = e->cap ? 2 * e->cap : 4096;
                Victim *x = realloc(e->v, cap * sizeof *x);
                if (!x)
                        return -ENOMEM;
                e->v = x;
                e->cap = cap;
        }
        uint8_t k[ATIME_KEY_LEN];
        const void *val;
        size_t vl;
        atime_key(k, ci->domain, ci->tag);
        int64_t at = ci->stored_at * 1000;
        int r = vc_txn_get(e->t, VC_TABLE_META, k, sizeof k, &val, &vl);
        if (r == 0 && vl == 8)
                at = VC_MAX(at, (int64_t)vc_get64(val));
        else if (r < 0)
                vc_errclear();
        e->v[e->n] = (Victim){ .at = at, .len = ci->len, .ord = (uint32_t)e->n };
        e->n++;
        e->live += ci->len;
        return 0;
}

static int victim_cmp(const void *a, const void *b)
{
        const Victim *x = a, *y = b;
        if (x->at != y->at)
                return x->at < y->at ? -1 : 1;
        return x->ord < y->ord ? -1 : x->ord > y->ord;
}

static int ev_is_live(const VcChunkInfo *ci, void *ctx)
{
        Evict *e = ctx;
        size_t ord = e->pos++;
        /* the sweep walks the index in the same order, in the same
         * transaction, as the collection did */
        return ord < e->n && (e->doomed[ord / 8] >> (ord % 8) & 1) ? 0 : 1;
}

static int ev_orphan(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        Evict *e = ctx;
        if (klen != ATIME_KEY_LEN)
                return 0;
        const uint8_t *k = key;
        int r = vc_txn_has_chunk(e->t, vc_get64be(k + 3), k + 11);
        if (r < 0)
                return r;
        if (r == 1)
                return 0;
        if (e->norphans == e->cap_orphans) {
                size_t cap = e->cap_orphans ? 2 * e->cap_orphans : 1024;
                void *x = realloc(e->orphans, cap * ATIME_KEY_LEN);
                if (!x)
                        return -ENOMEM;
                e->orphans = x;
                e->cap_orphans = cap;
        }
        memcpy(e->orphans[e->norphans++], k, ATIME_KEY_LEN);
        return 0;
}

/* Drops the least recently used chunks from the index until the live bytes
 * are at most target, and the access times of chunks no longer indexed.
 * One write transaction. */
static int sweep_lru(Cache *c, uint64_t target)
{
        Evict e = { 0 };
        int r = vc_txn_begin(c->s, true, &e.t);
        if (r < 0)
                return r;
        if ((r = vc_txn_iter_chunks(e.t, ev_collect, &e)) < 0)
                goto out;
        if (e.live > target) {
                Victim *sorted = malloc((e.n ? e.n : 1) * sizeof *sorted);
                e.doomed = calloc(e.n / 8 + 1, 1);
                if (!sorted || !e.doomed) {
                        free(sorted);
                        r = -ENOMEM;
                        goto out;
                }
                memcpy(sorted, e.v, e.n * sizeof *sorted);
                qsort(sorted, e.n, sizeof *sorted, victim_cmp);
                uint64_t live = e.live;
                for (size_t i = 0; i < e.n && live > target; i++) {
                        e.doomed[sorted[i].ord / 8] |= (uint8_t)(1u << (sorted[i].ord % 8));
                        live -= sorted[i].len;
                }
                free(sorted);
                if ((r = vc_txn_sweep(e.t, ev_is_live, &e, INT64_MAX, NULL)) < 0)
                        goto out;
        }
        if ((r = vc_txn_iter(e.t, VC_TABLE_META, ATIME_PREFIX, 3, ev_orphan, &e)) < 0)
                goto out;
        for (size_t i = 0; i < e.norphans && r >= 0; i++)
                if ((r = vc_txn_del(e.t, VC_TABLE_META, e.orphans[i], ATIME_KEY_LEN)) == -ENOENT)
                        r = 0;
out:
        if (r >= 0)
                r = vc_txn_commit(e.t);
        else
                vc_txn_abort(e.t);
        free(e.v);
        free(e.doomed);
        free(e.orphans);
        return r;
}

static void measure(Cache *c)
{
        uint64_t packs, bytes;
        if (vc_store_pack_bytes(c->s, &packs, &bytes) < 0) {
                vc_errclear();
                return;
        }
        c->disk = bytes;
        __atomic_store_n(&c->written, 0, __ATOMIC_RELAXED);
}

/* Whether the packs may be past the bound: what was last measured plus
 * what this handle stored since (others' writes are theirs to count). */
static bool maybe_over(Cache *c)
{
        uint64_t w = __atomic_load_n(&c->written, __ATOMIC_RELAXED);
        if (c->disk + w <= c->bound && w < c->bound / 16)
                return false;
        /* an eviction that could not get below the bound (packs claimed by
         * writers, compaction busy elsewhere) is not retried at once: each
         * costs a walk of the index */
        if (w < c->bound / 16 && vc_mono() - c->evicted_at < EVICT_SECONDS)
                return false;
        measure(c);
        return c->disk > c->bound;
}

/* Called with c->use held and no operation of this handle in flight, after
 * its shared flock (if any) is given up. Returns true if the index was
 * swept and the packs should be compacted. */
static bool evict_locked(Cache *c)
{
        if (!maybe_over(c))
                return false;
        /* what this handle holds unindexed can be neither evicted nor compacted */
        settle(c, true);
        measure(c);
        if (c->disk <= c->bound)
                return false;
        /* converting a shared flock drops it first: fine, we were about to */
        if (flock(c->lockfd, LOCK_EX | LOCK_NB) < 0)
                return false;           /* another user is in the cache: later */
        touches_write(c, true);
        measure(c);
        bool swept = false;
        if (c->disk > c->bound) {
                c->evicted_at = vc_mono();
                int r = sweep_lru(c, (uint64_t)(LOW_WATER * (double)c->bound));
                if (r < 0)
                        vc_errclear();
                swept = r >= 0;
        }
        flock(c->lockfd, LOCK_UN);
        return swept;
}

static void compact(Cache *c)
{
        int fd;
        if (vc_store_lock(c->s, "gc", true, false, &fd) < 0) {
                vc_errclear();          /* someone else compacts */
                return;
        }
        if (vc_store_compact(c->s, COMPACT_RATIO, NULL) < 0)
                vc_errclear();
        vc_store_unlock(fd);
        pthread_mutex_lock(&c->use);
        measure(c);
        pthread_mutex_unlock(&c->use);
}

/* Drops the index entries of damaged chunks (their data does not hash to
 * their tags) so that they can be fetched and cached again. A walk of the
 * whole index: rare. Needs no exclusive lock: a reader that finds one
 * gone fetches it upstream. */
typedef struct Damaged {
        uint64_t domain;
        const uint8_t *tags;
        size_t n;
} Damaged;

static int damaged_is_live(const VcChunkInfo *ci, void *ctx)
{
        const Damaged *d = ctx;
        if (ci->domain != d->domain)
                return 1;
        for (size_t i = 0; i < d->n; i++)
                if (memcmp(ci->tag, d->tags + 32 * i, 32) == 0)
                        return 0;
        return 1;
}

static void drop_damaged(Cache *c, uint64_t domain, const uint8_t *tags, size_t n)
{
        Damaged d = { domain, tags, n };
        VcTxn *t;
        int r = vc_txn_begin(c->s, true, &t);
        if (r >= 0) {
                if ((r = vc_txn_sweep(t, damaged_is_live, &d, INT64_MAX, NULL)) >= 0)
                        r = vc_txn_commit(t);
                else
                        vc_txn_abort(t);
        }
        if (r < 0)
                vc_errclear();
}

/* ---- operations in flight ------------------------------------------------------- */

/* A reader of cached chunks holds the shared lock from looking them up
 * to having read them. */
static void use_begin(Cache *c)
{
        pthread_mutex_lock(&c->use);
        if (c->users++ == 0)
                while (flock(c->lockfd, LOCK_SH) < 0 && errno == EINTR)
                        ;
        pthread_mutex_unlock(&c->use);
}

static void use_end(Cache *c)
{
        pthread_mutex_lock(&c->use);
        if (--c->users == 0)
                flock(c->lockfd, LOCK_UN);
        pthread_mutex_unlock(&c->use);
}

/* At the end of every operation (force: at open and close): writes the
 * access times if due, and evicts if the packs passed the bound and no
 * reader anywhere is in the cache. */
static void after_op(Cache *c, bool force)
{
        bool swept = false;
        pthread_mutex_lock(&c->use);
        touches_write(c, force);
        if (c->users == 0)
                swept = evict_locked(c);
        pthread_mutex_unlock(&c->use);
        if (swept)
                compact(c);
}

/* ---- chunks --------------------------------------------------------------------- */

static int cache_missing(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                         uint8_t *missing)
{
        Cache *c = C(b);
        int r = vc_chunks_missing(c->up, parcel, domain, tags, n, missing);
        sync_traffic(c);
        return r;
}

/* One call's stores into the cache (through the handle's writer). */
typedef struct Staged {
        uint8_t tag[32];
        uint8_t kind;
        uint32_t len;
        size_t off;                     /* into Store.sbuf */
} Staged;

typedef struct Store {
        Cache *c;
        const char *domain;
        uint64_t id;
        uint64_t bytes;                 /* stored by this call */
        bool failed, have_id;
        bool async;                     /* a get's: may be left to the settler */
        bool bulk;                      /* a large fetch's: goes to a lane */
        uint8_t *sbuf;                  /* chunks staged, not yet appended */
        size_t sused, scap;
        Staged *stage;
        size_t nstage, cstage;
} Store;

/* Gives the handle's writer up, and what it held unflushed (wlock held). */
static void drop_writer_locked(Cache *c)
{
        vc_writer_free(c->w);
        c->w = NULL;
        c->nwtouch = 0;
        c->wbytes = 0;
}

/* Flushes the handle's writer and gives its packs up (wlock held, and
 * released during the flush: stores meanwhile go to the next writer, and
 * a read of chunks that are not in the writer being flushed does not wait
 * for it; one flush at a time). keep: a flush in the stream of stores, whose
 * next writer's packs are claimed before (creating a pack during the
 * flush would wait for its index commit); else (an eviction, a flush of
 * the back end, the close) nothing of the cache stays claimed. */
static void settle_locked(Cache *c, bool keep)
{
        while (c->wbusy)
                pthread_cond_wait(&c->wdone, &c->wlock);
        if (!c->w || (keep && !c->wbytes))
                return;
        VcWriter *old = c->w;
        Touch *t = c->wtouch;
        size_t nt = c->nwtouch;
        uint64_t bytes = c->wbytes;
        c->w = NULL;
        c->wtouch = NULL;
        c->nwtouch = c->cap_wtouch = 0;
        c->wbytes = 0;
        c->wbusy = true;
        c->ftouch = t;
        c->nftouch = nt;
        if (keep) {
                if (vc_writer_new(c->s, &c->w) >= 0) {
                        vc_writer_set_pack_max(c->w, c->pack_max);
                        vc_writer_set_flush_bytes(c->w, UINT64_MAX);
                        c->wsince = vc_mono();
                        if (vc_writer_claim_like(c->w, old) < 0)
                                vc_errclear();  /* the first put claims them */
                } else
                        vc_errclear();          /* the next store makes one */
        }
        pthread_mutex_unlock(&c->wlock);
        if (vc_writer_flush(old) < 0)
                vc_errclear();          /* not indexed: the records are cut off by the next writer */
        else {
                add(&c->written, bytes);
                touches_add(c, t, nt);
        }
        vc_writer_free(old);
        pthread_mutex_lock(&c->wlock);
        c->wbusy = false;
        c->ftouch = NULL;
        c->nftouch = 0;
        free(t);
        pthread_cond_broadcast(&c->wdone);
}

static void store_drain(Store *st);
static void store_free(Store *st);

/* A small call's staged chunks, handed to the settler. */
typedef struct Queued {
        struct Queued *next;
        Store st;
        char domain[VC_DOMAIN_MAX];
} Queued;

/* Stores what small calls staged, then flushes, off their threads. */
static double lanes_settle_due(Cache *c);

/* Waits on settle_cv until vc_mono() reaches when (wlock held). */
static void settler_wait_until(Cache *c, double when)
{
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        double left = VC_MAX(when - vc_mono(), 0.0);
        ts.tv_sec += (time_t)left;
        ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&c->settle_cv, &c->wlock, &ts);
}

static void *settler_main(void *arg)
{
        Cache *c = arg;
        pthread_mutex_lock(&c->wlock);
        for (;;) {
                if (c->sq) {
                        Queued *q = c->sq;
                        if (!(c->sq = q->next))
                                c->sq_tail = &c->sq;
                        pthread_mutex_unlock(&c->wlock);
                        store_drain(&q->st);
                        store_free(&q->st);
                        free(q);
                        pthread_mutex_lock(&c->wlock);
                        if (--c->squeued == 0)
                                pthread_cond_broadcast(&c->wdone);
                        if (!c->settle_req)
                                c->settle_at = vc_mono() + SETTLE_COALESCE;
                        c->settle_req = true;
                } else if (c->settle_req && !c->settler_stop && vc_mono() < c->settle_at) {
                        /* a few ms more: the misses of a burst (a VM's
                         * boot) share one index commit, which ran beside
                         * each next miss and slowed it */
                        settler_wait_until(c, c->settle_at);
                } else if (c->settle_req) {
                        c->settle_req = false;
                        settle_locked(c, true);
                } else if (c->settler_stop)
                        break;
                else if (c->lanes_due && vc_mono() >= c->lanes_due) {
                        /* a lane no call flushed: what a background fetch
                         * stored is seen by others SETTLE_SECONDS late */
                        c->lanes_due = 0;
                        pthread_mutex_unlock(&c->wlock);
                        double next = lanes_settle_due(c);
                        pthread_mutex_lock(&c->wlock);
                        if (next && (!c->lanes_due || next < c->lanes_due))
                                c->lanes_due = next;
                } else if (c->lanes_due)
                        settler_wait_until(c, c->lanes_due);
                else
                        pthread_cond_wait(&c->settle_cv, &c->wlock);
        }
        pthread_mutex_unlock(&c->wlock);
        return NULL;
}

/* Has the settler take what is queued now, not at the end of its wait
 * (wlock held): somebody waits for it. */
static void hurry_locked(Cache *c)
{
        if (c->squeued)
                pthread_cond_signal(&c->settle_cv);
}

/* Starts the settler if it is not running (wlock held). */
static bool settler_locked(Cache *c)
{
        if (!c->settler_on && !c->settler_stop && pthread_create(&c->settler, NULL, settler_main, c) == 0)
                c->settler_on = true;
        return c->settler_on;
}

/* Has the settler flush the writer now; without one, flushes here. */
static void settle_soon(Cache *c)
{
        pthread_mutex_lock(&c->wlock);
        if (settler_locked(c)) {
                if (!c->settle_req)
                        c->settle_at = vc_mono() + SETTLE_COALESCE;
                c->settle_req = true;
                pthread_cond_signal(&c->settle_cv);
        } else
                settle_locked(c, false);
        pthread_mutex_unlock(&c->wlock);
}

/* Hands what st staged to the settler (which then owns it); false if
 * there is none. */
static bool store_queue(Store *st)
{
        Cache *c = st->c;
        Queued *q = malloc(sizeof *q);
        if (!q)
                return false;
        q->next = NULL;
        q->st = *st;
        snprintf(q->domain, sizeof q->domain, "%s", st->domain);
        q->st.domain = q->domain;
        pthread_mutex_lock(&c->wlock);
        bool ok = settler_locked(c);
        if (ok) {
                *c->sq_tail = q;
                c->sq_tail = &q->next;
                c->squeued++;
                /* a settler waiting out SETTLE_COALESCE takes this with the
                 * rest when it wakes (or when a get waits for it: hurry);
                 * waking it per miss cost the miss a context switch on the
                 * other core, beside the server's work */
                if (!c->settle_req)
                        pthread_cond_signal(&c->settle_cv);
        }
        pthread_mutex_unlock(&c->wlock);
        if (!ok)
                free(q);
        return ok;
}

/* At the end of a call (force: now): flushes when due. */
static void settle(Cache *c, bool force)
{
        pthread_mutex_lock(&c->wlock);
        while (force && c->squeued) {
                hurry_locked(c);
                pthread_cond_wait(&c->wdone, &c->wlock);
        }
        if (force)
                settle_locked(c, false);
        else if (c->w && c->wbytes && (c->wbytes >= c->wflush || vc_mono() - c->wsince >= SETTLE_SECONDS))
                settle_locked(c, true);
        pthread_mutex_unlock(&c->wlock);
        if (force)
                lanes_settle(c, true);
}

/* Flushes a lane's writer and gives its packs up (l->mu held). */
static void lane_flush_locked(Cache *c, Lane *l)
{
        if (!l->w)
                return;
        if (vc_writer_flush(l->w) < 0)
                vc_errclear();          /* not indexed: the records are cut off by the next writer */
        else
                add(&c->written, l->bytes);
        vc_writer_free(l->w);
        l->w = NULL;
        l->bytes = 0;
}

/* Flushes the lanes: all (force), or those due; those due at once in one
 * index commit (a checkout's end flushed its three lanes one by one, each
 * commit rewriting most of the leaves the one before had written). The
 * lanes are locked in order; nobody holding a lane takes another. */
static void lanes_settle(Cache *c, bool force)
{
        VcWriter *ws[LANES];
        Lane *due[LANES];
        int rets[LANES];
        size_t n = 0;
        for (int i = 0; i < LANES; i++) {
                Lane *l = &c->lane[i];
                pthread_mutex_lock(&l->mu);
                if (l->w && (force || l->bytes >= c->wflush || vc_mono() - l->since >= SETTLE_SECONDS)) {
                        due[n] = l;
                        ws[n++] = l->w;
                } else
                        pthread_mutex_unlock(&l->mu);
        }
        if (n && vc_writer_flush_many(ws, n, rets) < 0)
                vc_errclear();          /* not indexed: the records are cut off by the next writer */
        for (size_t k = 0; k < n; k++) {
                Lane *l = due[k];
                if (rets[k] >= 0)
                        add(&c->written, l->bytes);
                vc_writer_free(l->w);
                l->w = NULL;
                l->bytes = 0;
                pthread_mutex_unlock(&l->mu);
        }
}

/* The settler's: flushes the lanes due; returns when the next one is (0: none). */
static double lanes_settle_due(Cache *c)
{
        double next = 0;
        lanes_settle(c, false);
        for (int i = 0; i < LANES; i++) {
                Lane *l = &c->lane[i];
                pthread_mutex_lock(&l->mu);
                if (l->w && l->bytes && (!next || l->since + SETTLE_SECONDS < next))
                        next = l->since + SETTLE_SECONDS;
                pthread_mutex_unlock(&l->mu);
        }
        return next;
}

/* Read your writes: flushes each lane that holds one of tags. */
static void lanes_settle_for(Cache *c, uint64_t id, const uint8_t *tags, size_t n)
{
        for (int i = 0; i < LANES; i++) {
                Lane *l = &c->lane[i];
                pthread_mutex_lock(&l->mu);
                for (size_t k = 0; l->w && k < n; k++)
                        if (vc_writer_has_pending(l->w, id, tags + 32 * k))
                                lane_flush_locked(c, l);
                pthread_mutex_unlock(&l->mu);
        }
}

/* Appends n chunks to the first free lane (or, if all are busy, the one
 * its thread's turn names): chunk i's kind, tag and bytes come from at(). */
typedef void (*chunk_at_fn)(const void *arr, size_t i, int *kind, const uint8_t **tag, const uint8_t **data,
                            size_t *len);

static void lane_append(Store *st, const void *arr, size_t n, chunk_at_fn at)
{
        Cache *c = st->c;
        static _Atomic unsigned turn;
        unsigned first = turn++ % LANES;
        Lane *l = NULL;
        for (unsigned k = 0; k < LANES && !l; k++)
                if (pthread_mutex_trylock(&c->lane[(first + k) % LANES].mu) == 0)
                        l = &c->lane[(first + k) % LANES];
        if (!l) {
                l = &c->lane[first];
                pthread_mutex_lock(&l->mu);
        }
        int r = 0;
        if (!l->w) {
                if ((r = vc_writer_new(c->s, &l->w)) >= 0) {
                        vc_writer_set_pack_max(l->w, c->pack_max);
                        vc_writer_set_flush_bytes(l->w, UINT64_MAX);    /* flushed here */
                        vc_writer_set_direct(l->w, true);
                }
        }
        for (size_t i = 0; r >= 0 && i < n; i++) {
                int kind;
                const uint8_t *tag, *data;
                size_t len;
                at(arr, i, &kind, &tag, &data, &len);
                if ((r = vc_writer_put_fresh(l->w, st->id, kind, tag, data, len)) <= 0)
                        continue;
                r = 0;
                if (!l->bytes) {
                        l->since = vc_mono();
                        /* (lane, then wlock: nobody takes a lane holding wlock) */
                        pthread_mutex_lock(&c->wlock);
                        if (settler_locked(c) && (!c->lanes_due || l->since + SETTLE_SECONDS < c->lanes_due)) {
                                c->lanes_due = l->since + SETTLE_SECONDS;
                                pthread_cond_signal(&c->settle_cv);
                        }
                        pthread_mutex_unlock(&c->wlock);
                }
                l->bytes += len;
                st->bytes += len;
        }
        if (r < 0) {
                /* a poisoned writer: what it held is lost, a later call starts another */
                vc_writer_free(l->w);
                l->w = NULL;
                l->bytes = 0;
                st->failed = true;
                vc_errclear();
        } else if (l->bytes >= c->wflush)
                lane_flush_locked(c, l);
        pthread_mutex_unlock(&l->mu);
}

static void staged_at(const void *arr, size_t i, int *kind, const uint8_t **tag, const uint8_t **data, size_t *len)
{
        const Store *st = arr;
        const Staged *x = &st->stage[i];
        *kind = x->kind;
        *tag = x->tag;
        *data = st->sbuf + x->off;
        *len = x->len;
}

/* Appends what a bulk fetch staged to a lane. */
static void lane_drain(Store *st)
{
        lane_append(st, st, st->nstage, staged_at);
        st->nstage = st->sused = 0;
}

/* Appends what st staged to the handle's writer, under wlock once (four
 * fetching threads taking it per 4 KiB chunk spent most of a checkout
 * waiting for each other), or a bulk fetch's to a lane. */
static void store_drain(Store *st)
{
        Cache *c = st->c;
        if (!st->nstage)
                return;
        int r = 0;
        if (!st->failed && !st->have_id && (r = domain_id(c, st->domain, true, &st->id)) >= 0)
                st->have_id = true;
        if (st->failed || r < 0) {
                st->failed = true;
                st->nstage = st->sused = 0;
                vc_errclear();
                return;
        }
        if (st->bulk) {
                lane_drain(st);
                return;
        }
        pthread_mutex_lock(&c->wlock);
        int64_t now = now_ms();
        for (size_t i = 0; r >= 0 && i < st->nstage; i++) {
                const Staged *x = &st->stage[i];
                /* (settle_locked below gives the writer up) */
                if (!c->w) {
                        if ((r = vc_writer_new(c->s, &c->w)) < 0)
                                break;
                        vc_writer_set_pack_max(c->w, c->pack_max);
                        vc_writer_set_flush_bytes(c->w, UINT64_MAX);    /* settle() flushes */
                        c->wsince = vc_mono();
                }
                if ((r = vc_writer_put_fresh(c->w, st->id, x->kind, x->tag, st->sbuf + x->off, x->len)) <= 0)
                        continue;
                r = 0;
                if (!c->wbytes)
                        c->wsince = vc_mono();
                c->wbytes += x->len;
                st->bytes += x->len;
                if (c->nwtouch == c->cap_wtouch) {
                        size_t cap = c->cap_wtouch ? 2 * c->cap_wtouch : 256;
                        Touch *t = realloc(c->wtouch, cap * sizeof *t);
                        if (t) {
                                c->wtouch = t;
                                c->cap_wtouch = cap;
                        }
                }
                if (c->nwtouch < c->cap_wtouch) {  /* else the hint is lost */
                        Touch *t = &c->wtouch[c->nwtouch++];
                        t->domain = st->id;
                        memcpy(t->tag, x->tag, 32);
                        t->at = now;
                }
                if (c->wbytes >= c->wflush)
                        settle_locked(c, true);
        }
        if (r < 0) {
                /* a poisoned writer: what it held is lost, a later call starts another */
                drop_writer_locked(c);
                st->failed = true;
                vc_errclear();
        }
        pthread_mutex_unlock(&c->wlock);
        st->nstage = st->sused = 0;
}

#define STAGE_BYTES (1u << 20)
#define STAGE_MIN (64u << 10)

/* Stages one chunk of the call for the cache; appended a MiB at a time. */
static void store_put(Store *st, int kind, const uint8_t tag[32], const uint8_t *data, size_t len)
{
        if (st->failed)
                return;
        if (st->nstage && (st->sused + len > STAGE_BYTES || st->nstage == st->cstage))
                store_drain(st);
        if (st->sused + len > st->scap) {
                /* grown as needed: a disk server's miss stages one chunk,
                 * and a MiB allocated per miss cost its mapping and faults */
                size_t cap = VC_MIN(VC_MAX(VC_MAX(st->sused + len, 2 * st->scap), STAGE_MIN),
                                    (size_t)STAGE_BYTES + VC_SEALED_MAX);
                uint8_t *nb = realloc(st->sbuf, cap);
                if (!nb)
                        goto oom;
                st->sbuf = nb;
                st->scap = cap;
        }
        if (st->nstage == st->cstage) {
                size_t cap = st->cstage ? 2 * st->cstage : 64;
                Staged *x = realloc(st->stage, cap * sizeof *x);
                if (!x)
                        goto oom;
                st->stage = x;
                st->cstage = cap;
        }
        Staged *x = &st->stage[st->nstage++];
        memcpy(x->tag, tag, 32);
        x->kind = (uint8_t)kind;
        x->len = (uint32_t)len;
        x->off = st->sused;
        memcpy(st->sbuf + st->sused, data, len);
        st->sused += len;
        return;
oom:
        st->failed = true;              /* a cache may skip a copy */
}

/* A small call (a disk server's read and its read-ahead) is flushed at
 * once, as every call was: another process (`workspace status`, a second
 * disk server) sees what it fetched, and a long-lived process does not
 * sit on an unflushed last read. Only bulk calls wait for SETTLE_SECONDS
 * or wflush. */
#define SMALL_CALL (2ull << 20)

static void store_free(Store *st)
{
        free(st->sbuf);
        free(st->stage);
        st->sbuf = NULL;
        st->stage = NULL;
        st->scap = st->cstage = 0;
}

static void store_done(Store *st)
{
        /* a get's, all of it staged at once: the settler appends and
         * flushes it, and a disk server's read returns before that is
         * done (a put's copy is stored when the put returns) */
        if (st->async && !st->bulk && !st->bytes && st->nstage && !st->failed && store_queue(st))
                return;
        store_drain(st);
        store_free(st);
        if (st->bulk)
                lanes_settle(st->c, false);
        else if (st->bytes && st->bytes < SMALL_CALL)
                settle_soon(st->c);
        else
                settle(st->c, false);
}

typedef struct PutCopy {
        Store st;
        const VcPutItem *items;
        size_t n;
} PutCopy;

static void item_at(const void *arr, size_t i, int *kind, const uint8_t **tag, const uint8_t **data, size_t *len)
{
        const VcPutItem *it = (const VcPutItem *)arr + i;
        *kind = it->kind;
        *tag = it->tag;
        *data = it->data;
        *len = it->len;
}

/* A bulk put's copy goes to a lane straight from the caller's items,
 * which live until the put returns: staging them first copied every byte
 * of a checkin once more. */
static void put_copy(PutCopy *pc)
{
        Store *st = &pc->st;
        if (st->bulk) {
                int r = 0;
                if (!st->have_id && (r = domain_id(st->c, st->domain, true, &st->id)) >= 0)
                        st->have_id = true;
                if (r < 0) {
                        st->failed = true;
                        vc_errclear();
                        return;
                }
                lane_append(st, pc->items, pc->n, item_at);
                return;
        }
        for (size_t i = 0; i < pc->n; i++)
                store_put(st, pc->items[i].kind, pc->items[i].tag, pc->items[i].data, pc->items[i].len);
}

static void *put_copy_main(void *arg)
{
        put_copy(arg);
        return NULL;
}

/* Sends the chunks up and, meanwhile on a thread of its own, keeps a copy
 * in the cache (the next checkout on this host finds them here): a checkin
 * of 512 MiB of new data took the sum of the two. A copy of chunks whose
 * upload failed is kept too: they are right (a hit re-hashes), just not
 * yet on the server. */
static int cache_put(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        Cache *c = C(b);
        PutCopy pc = { .st = { .c = c, .domain = domain, .bulk = n >= BULK_MISSES }, .items = items, .n = n };
        pthread_t th;
        bool threaded = n > 1 && pthread_create(&th, NULL, put_copy_main, &pc) == 0;
        int r = vc_chunks_put(c->up, parcel, domain, items, n);
        sync_traffic(c);
        if (threaded)
                pthread_join(th, NULL);

        else if (r >= 0)
                put_copy(&pc);
        store_done(&pc.st);
        after_op(c, false);
        return r < 0 ? r : 0;
}

typedef struct Fetch {
        Store st;
        const uint8_t *tags;            /* the misses, each once */
        const size_t *idx;              /* their first places in the caller's tags */
        const size_t *next;             /* the next place of the same tag, or SIZE_MAX */
        vc_got_fn fn;
        void *ctx;
} Fetch;

/* What is fetched is not hashed here: every caller opens what it gets
 * (the tag check of vc_unseal), so a second pass would buy nothing but
 * keeping wrong bytes out of the cache, and the hit path hashes what it
 * serves: a chunk a lying server sent is refused by the caller, found
 * damaged on its next hit, dropped and fetched again. */
static int fetched(size_t j, const uint8_t *data, size_t len, void *ctx)
{
        Fetch *f = ctx;
        store_put(&f->st, VC_KIND_DATA, f->tags + 32 * j, data, len);
        int r = 0;
        for (size_t i = f->idx[j]; r >= 0 && i != SIZE_MAX; i = f->next[i])
                r = f->fn(i, data, len, f->ctx);
        return r;
}

typedef struct {
        Cache *c;
        uint64_t id;
        const uint8_t *tags;
        uint8_t *hit;
        Touch *touch;
        size_t nt;
        uint8_t *damaged;
        size_t ndamaged;
        vc_got_fn fn;
        void *ctx;
} Hits;

static int hit_got(size_t i, const uint8_t *data, size_t len, int kind, void *ctx)
{
        Hits *h = ctx;
        /* the store checks record headers, not data: a cache on a disk
         * that rots would serve bad bytes for good */
        uint8_t md[32];
        vc_sha256(data, len, md);
        if (!vc_hash_eq(md, h->tags + 32 * i, 32)) {
                memcpy(h->damaged + 32 * h->ndamaged++, h->tags + 32 * i, 32);
                return 0;
        }
        h->hit[i] = 1;
        add(&h->c->base.traffic.cache_hits, 1);
        add(&h->c->base.traffic.cache_hit_bytes, len);
        h->touch[h->nt].domain = h->id;
        h->touch[h->nt].at = now_ms();
        memcpy(h->touch[h->nt++].tag, h->tags + 32 * i, 32);
        return h->fn(i, data, len, h->ctx);
}

/* Delivers what the cache holds of tags (of cache domain id) and marks it
 * in hit[]. Damaged chunks are dropped, to be fetched again. */
static int read_hits(Cache *c, uint64_t id, const uint8_t *tags, size_t n, uint8_t *hit, vc_got_fn fn, void *ctx)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        _vc_cleanup_(vc_freep) VcChunkLoc *locs = calloc(n, sizeof *locs);
        _vc_cleanup_(vc_freep) bool *done = calloc(n, sizeof *done);
        _vc_cleanup_(vc_freep) Touch *touch = calloc(n, sizeof *touch);
        _vc_cleanup_(vc_freep) uint8_t *buf = NULL;
        _vc_cleanup_(vc_freep) uint8_t *damaged = malloc(32 * n);
        size_t cap = 0, len;
        int r = 0;
        if (!locs || !done || !touch || !damaged)
                return -ENOMEM;
        /* read your writes: a chunk stored and not yet indexed is flushed
         * (one staged for the settler or in a writer being flushed was
         * waited for: see in_flight) */
        pthread_mutex_lock(&c->wlock);
        for (size_t i = 0; c->w && i < n; i++)
                if (vc_writer_has_pending(c->w, id, tags + 32 * i))
                        settle_locked(c, true);
        pthread_mutex_unlock(&c->wlock);
        lanes_settle_for(c, id, tags, n);
        if (vc_txn_begin(c->s, false, &t) < 0) {
                vc_errclear();
                return 0;
        }
        Hits h = { c, id, tags, hit, touch, 0, damaged, 0, fn, ctx };
        /* one look-up per chunk, then the records in large reads; what
         * those did not read, one by one */
        if (n == 1)
                vc_store_prefetch(c->s, t, id, tags, 32, n, locs);
        else if (vc_store_locate(c->s, t, id, tags, 32, n, locs) == 0)
                r = vc_store_read_located(c->s, id, tags, 32, n, locs, done, hit_got, &h);
        for (size_t i = 0; i < n && r >= 0; i++) {
                if (!locs[i].found || done[i])
                        continue;
                if (vc_store_get_at(c->s, t, id, tags + 32 * i, &locs[i], &buf, &cap, &len) < 0) {
                        vc_errclear();  /* gone or damaged: fetch it again */
                        continue;
                }
                r = hit_got(i, buf, len, locs[i].kind, &h);
        }
        touches_add(c, touch, h.nt);
        vc_txn_abort(t);
        t = NULL;
        if (h.ndamaged)
                drop_damaged(c, id, damaged, h.ndamaged);
        return r;
}

#define IN_FLIGHT_SCAN 64              /* tags of a get looked for among chunks not yet indexed */
#define IN_FLIGHT_BUDGET (1u << 17)     /* comparisons of tags such a look may make */

/* Whether one of tags may be among what small calls staged for the
 * settler or in a writer being flushed (wlock held): neither is in the
 * index yet. A large get, or one that would compare too many tags, does
 * not look: it is told yes, and waits. */
static bool in_flight(Cache *c, const char *domain, const uint8_t *tags, size_t n)
{
        if (!c->squeued && !c->wbusy)
                return false;
        size_t held = c->nftouch;
        for (const Queued *q = c->sq; q; q = q->next)
                held += q->st.nstage;
        /* (a scan of a bulk flush's 65536 chunks is as long as a small wait) */
        if (n > IN_FLIGHT_SCAN || (uint64_t)held * n > IN_FLIGHT_BUDGET)
                return true;
        for (const Queued *q = c->sq; q; q = q->next)
                if (strcmp(q->domain, domain) == 0)
                        for (size_t k = 0; k < q->st.nstage; k++)
                                for (size_t i = 0; i < n; i++)
                                        if (memcmp(q->st.stage[k].tag, tags + 32 * i, 32) == 0)
                                                return true;
        /* (by tag alone: a tag of another domain only makes this wait) */
        for (size_t k = 0; k < c->nftouch; k++)
                for (size_t i = 0; i < n; i++)
                        if (memcmp(c->ftouch[k].tag, tags + 32 * i, 32) == 0)
                                return true;
        return false;
}

static int get_chunks(Cache *c, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                      vc_got_fn fn, void *ctx)
{
        _vc_cleanup_(vc_freep) uint8_t *hit = calloc(n, 1);
        if (!hit)
                return -ENOMEM;
        /* read your writes: what this handle stored and has not indexed
         * yet is waited for (the domain itself may be the settler's to
         * create); a disk server's random miss is never among it */
        pthread_mutex_lock(&c->wlock);
        while (in_flight(c, domain, tags, n)) {
                hurry_locked(c);
                pthread_cond_wait(&c->wdone, &c->wlock);
        }
        pthread_mutex_unlock(&c->wlock);
        uint64_t id;
        int r = domain_id(c, domain, false, &id);
        if (r < 0)
                vc_errclear();          /* nothing of this domain cached (or unreadable): all misses */
        else {
                /* the shared lock only while reading the cache: the fetch of
                 * misses, which may take long, does not hold off evictions */
                use_begin(c);
                r = read_hits(c, id, tags, n, hit, fn, ctx);
                use_end(c);
                if (r < 0)
                        return r;
        }
        size_t m = 0;
        for (size_t i = 0; i < n; i++)
                m += !hit[i];
        if (m == 0)
                return 0;
        /* a tag missed twice in one call is fetched once */
        _vc_cleanup_(vc_freep) uint8_t *mtags = malloc(32 * m);
        _vc_cleanup_(vc_freep) size_t *midx = malloc(m * sizeof *midx);
        _vc_cleanup_(vc_freep) size_t *next = malloc(n * sizeof *next);
        _vc_cleanup_(vc_freep) size_t *last = malloc(m * sizeof *last);
        VcTagSet *seen = NULL;
        /* (one miss cannot repeat: no set for it, a disk server's usual case) */
        if (!mtags || !midx || !next || !last || (m > 1 && vc_tagset_new(&seen) < 0))
                return -ENOMEM;
        size_t j = 0;
        for (size_t i = 0; i < n; i++) {
                next[i] = SIZE_MAX;
                if (hit[i])
                        continue;
                uint64_t at;
                if (seen && vc_tagset_get(seen, 0, tags + 32 * i, &at)) {
                        next[last[at]] = i;
                        last[at] = i;
                        continue;
                }
                if (seen && (r = vc_tagset_add(seen, 0, tags + 32 * i, j)) < 0) {
                        vc_tagset_free(seen);
                        return r;
                }
                memcpy(mtags + 32 * j, tags + 32 * i, 32);
                midx[j] = last[j] = i;
                j++;
        }
        vc_tagset_free(seen);
        Fetch f = { .st = { .c = c, .domain = domain, .async = true, .bulk = j >= BULK_MISSES }, .tags = mtags, .idx = midx, .next = next,
                    .fn = fn, .ctx = ctx };
        r = vc_chunks_get(c->up, parcel, domain, mtags, j, fetched, &f);
        /* what was fetched and checked before a failure is still good */
        store_done(&f.st);
        return r;
}

static int cache_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                     vc_got_fn fn, void *ctx)
{
        Cache *c = C(b);
        int r = get_chunks(c, parcel, domain, tags, n, fn, ctx);
        after_op(c, false);
        sync_traffic(c);
        return r;
}

static void *settle_main(void *arg)
{
        settle(arg, true);
        return NULL;
}

/* Upstream's flush (a server's index commit) and the cache's own (the
 * lanes' commits, a tenth of a checkin's time when they came after it)
 * run side by side. */
static int cache_flush(VcBackend *b)
{
        Cache *c = C(b);
        pthread_t th;
        bool threaded = pthread_create(&th, NULL, settle_main, c) == 0;
        if (!threaded)
                settle(c, true);
        int r = vc_chunks_flush(c->up);
        if (threaded)
                pthread_join(th, NULL);
        sync_traffic(c);
        return r;
}

/* ---- everything else goes upstream ------------------------------------------------------ */

#define UP(call)                                \
        do {                                    \
                Cache *_c = C(b);               \
                int _r = (call);                \
                sync_traffic(_c);               \
                return _r;                      \
        } while (0)

static int cache_parcels(VcBackend *b, VcParcelInfo **ret, size_t *n)
{
        UP(vc_cat_parcels(_c->up, ret, n));
}

static int cache_parcel(VcBackend *b, const char *name, VcParcelInfo *ret)
{
        UP(vc_cat_parcel(_c->up, name, ret));
}

static int cache_versions(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n)
{
        UP(vc_cat_versions(_c->up, name, ret, n));
}

static int cache_version(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret)
{
        UP(vc_cat_version(_c->up, name, version, ret));
}

static int cache_create(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len)
{
        UP(vc_cat_create(_c->up, name, owner, rec, len));
}

static int cache_commit(VcBackend *b, const VcCommit *cm)
{
        UP(vc_cat_commit(_c->up, cm));
}

static int cache_prune(VcBackend *b, const char *name, uint32_t keep)
{
        UP(vc_cat_prune(_c->up, name, keep));
}

static int cache_lease_acquire(VcBackend *b, const char *parcel, const char *host, VcLease *ret)
{
        UP(vc_lease_acquire(_c->up, parcel, host, ret));
}

static int cache_lease_release(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN])
{
        UP(vc_lease_release(_c->up, parcel, token));
}

static int cache_lease_break(VcBackend *b, const char *parcel)
{
        UP(vc_lease_break(_c->up, parcel));
}

static int cache_lease_get(VcBackend *b, const char *parcel, VcLease *ret)
{
        UP(vc_lease_get(_c->up, parcel, ret));
}

static int cache_stat(VcBackend *b, VcStoreStat *st)
{
        UP(vc_backend_stat(_c->up, st));
}

static int cache_verify(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                        VcVerifyStats *st)
{
        UP(vc_backend_verify(_c->up, full, report, ctx, st));
}

static int cache_gc(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st)
{
        UP(vc_backend_gc(_c->up, grace, quiet, st));
}

static int cache_bundle_get(VcBackend *b, uint8_t **ret, size_t *len)
{
        UP(vc_bundle_get(_c->up, ret, len));
}

static int cache_bundle_put(VcBackend *b, const uint8_t *blob, size_t len)
{
        UP(vc_bundle_put(_c->up, blob, len));
}

static void cache_free(VcBackend *b)
{
        Cache *c = C(b);
        if (c->settler_on) {
                pthread_mutex_lock(&c->wlock);
                c->settler_stop = true;
                pthread_cond_signal(&c->settle_cv);
                pthread_mutex_unlock(&c->wlock);
                pthread_join(c->settler, NULL);
        }
        settle(c, true);
        after_op(c, true);
        if (c->lockfd >= 0)
                close(c->lockfd);
        vc_store_free(c->s);
        vc_backend_free(c->up);
        pthread_mutex_destroy(&c->use);
        pthread_mutex_destroy(&c->lock);
        pthread_mutex_destroy(&c->wlock);
        pthread_cond_destroy(&c->wdone);
        pthread_cond_destroy(&c->settle_cv);
        free(c->touch);
        free(c->wtouch);
        for (int i = 0; i < LANES; i++)
                pthread_mutex_destroy(&c->lane[i].mu);
        free(c);
}

static const VcBackendOps cache_ops = {
        .kind = "cache",
        .free = cache_free,
        .missing = cache_missing,
        .put = cache_put,
        .get = cache_get,
        .flush = cache_flush,
        .parcels = cache_parcels,
        .parcel = cache_parcel,
        .versions = cache_versions,
        .version = cache_version,
        .create = cache_create,
        .commit = cache_commit,
        .prune = cache_prune,
        .lease_acquire = cache_lease_acquire,
        .lease_release = cache_lease_release,
        .lease_break = cache_lease_break,
        .lease_get = cache_lease_get,
        .stat = cache_stat,
        .verify = cache_verify,
        .gc = cache_gc,
        .bundle_get = cache_bundle_get,
        .bundle_put = cache_bundle_put,
};

/* Opens the store at dir, creating it if it does not exist (or is an
 * empty directory). Several processes may start at once: one creates, the
 * others wait for its marker. */
/* A cache whose index is damaged or lost is rebuilt from its packs: what
 * it holds can always be fetched again, but need not be. */
static int reindex_cache(const char *dir, VcStore **ret)
{
        VcStore *s;
        VcReindexInfo ri;
        int r = vc_store_open_repair(dir, &s);
        if (r < 0)
                return r;
        r = vc_store_reindex_ex(s, &ri);
        vc_store_free(s);
        if (r < 0)
                return vc_errf_prefix(r, "the host cache %s has a damaged index and could not be rebuilt (remove "
                                      "the directory to start it afresh)", dir);
        return vc_store_open(dir, ret);
}

static int open_or_create(const char *dir, VcStore **ret)
{
        int r = vc_store_open(dir, ret);
        if (r >= 0)
                return r;
        if (r == -EBADMSG || r == -ENODATA) {
                vc_errclear();
                return reindex_cache(dir, ret);
        }
        vc_errclear();
        r = vc_store_create(dir);
        if (r < 0 && r != -EEXIST)
                return r;
        vc_errclear();
        for (int i = 0;; i++) {
                r = vc_store_open(dir, ret);
                if (r >= 0 || i == 50)
                        return r;
                vc_errclear();
                nanosleep(&(struct timespec){ .tv_nsec = 20 * 1000 * 1000 }, NULL);
        }
}

static uint64_t default_bound(const char *dir)
{
        struct statvfs fs;
        uint64_t b = CACHE_MAX_DEFAULT;
        if (statvfs(dir, &fs) == 0) {
                uint64_t share = (uint64_t)fs.f_blocks * fs.f_frsize / 100 * CACHE_FS_SHARE;
                if (share > 0 && share < b)
                        b = share;
        }
        return b;
}

int vc_backend_cache_open(const char *dir, uint64_t bound, VcBackend *upstream, VcBackend **ret)
{
        if (!upstream)
                return vc_errf(-EINVAL, "a cache needs a back end to stand in front of");
        VcStore *s;
        int r = open_or_create(dir, &s);
        if (r < 0) {
                vc_backend_free(upstream);
                return r;
        }
        /* what a crash of the machine may take is fetched again */
        if ((r = vc_store_set_volatile(s)) < 0) {
                vc_store_free(s);
                vc_backend_free(upstream);
                return r;
        }
        Cache *c = calloc(1, sizeof *c);
        if (!c) {
                vc_store_free(s);
                vc_backend_free(upstream);
                return -ENOMEM;
        }
        c->base.ops = &cache_ops;
        memcpy(c->base.uuid, upstream->uuid, 16);
        snprintf(c->base.where, sizeof c->base.where, "%s", upstream->where);
        c->up = upstream;
        c->s = s;
        c->bound = bound ? bound : default_bound(dir);
        c->pack_max = VC_MIN(VC_MAX(c->bound / 16, 64ull << 10), 256ull << 20);
        vc_hex(upstream->uuid, 8, c->prefix);
        c->prefix[16] = ':';
        c->prefix[17] = 0;
        pthread_mutex_init(&c->use, NULL);
        pthread_mutex_init(&c->lock, NULL);
        pthread_mutex_init(&c->wlock, NULL);
        for (int i = 0; i < LANES; i++)
                pthread_mutex_init(&c->lane[i].mu, NULL);
        pthread_cond_init(&c->wdone, NULL);
        pthread_cond_init(&c->settle_cv, NULL);
        c->sq_tail = &c->sq;
        c->wflush = VC_MIN(CACHE_FLUSH, VC_MAX(c->bound / 16, 64ull << 10));
        c->touched_at = vc_now();
        char path[4096];
        snprintf(path, sizeof path, "%s/locks/cache-use", vc_store_path(s));
        c->lockfd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (c->lockfd < 0) {
                r = vc_errf(-errno, "cannot open the host cache's lock '%s': %s", path, strerror(errno));
                c->up = NULL;
                cache_free(&c->base);
                vc_backend_free(upstream);
                return r;
        }
        sync_traffic(c);
        measure(c);
        after_op(c, true);
        *ret = &c->base;
        return 0;
}

void vc_backend_cache_warm(VcBackend *b)
{
        if (strcmp(vc_backend_kind(b), "cache") != 0)
                return;
        Cache *c = C(b);
        pthread_mutex_lock(&c->wlock);
        settler_locked(c);
        pthread_mutex_unlock(&c->wlock);
}

void vc_backend_cache_settle(VcBackend *b)
{
        if (strcmp(vc_backend_kind(b), "cache") == 0)
                settle(C(b), true);
}

int vc_backend_cache_has(VcBackend *b, const char *domain, const uint8_t *tags, size_t n, uint8_t *has)
{
        memset(has, 0, n);
        if (strcmp(vc_backend_kind(b), "cache") != 0)
                return -ENOTSUP;
        Cache *c = C(b);
        uint64_t id;
        if (domain_id(c, domain, false, &id) < 0) {
                vc_errclear();          /* nothing of this domain cached */
                return 0;
        }
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        _vc_cleanup_(vc_freep) VcChunkLoc *locs = calloc(n + 1, sizeof *locs);
        if (!locs)
                return -ENOMEM;
        int r = vc_txn_begin(c->s, false, &t);
        if (r < 0)
                return r;
        if ((r = vc_store_locate(c->s, t, id, tags, 32, n, locs)) < 0)
                return r;
        for (size_t i = 0; i < n; i++)
                has[i] = locs[i].found;
        return 0;
}
