/* The local back end: the store interface over a store directory
 * (src/store for chunks, src/repo for the catalog). The only file outside
 * src/store and src/repo that holds LMDB transactions, local domain ids
 * and writers — and none of them leaves it.
 *
 * Leases are catalog entries (table META, key "lease:" ‖ parcel name):
 *   u8 host length ‖ host ‖ i64 since ‖ u8[16] token
 * A commit checks the lease in the same write transaction that checks the
 * base version and the chunks, so "if nobody broke my lease, the latest
 * is still N and every chunk is there, make N+1" is one atomic step. */
#include "backend/vc_backend.h"
#include "core/vc_hash.h"
#include "core/vc_pool.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DOMAIN_CACHE 16

typedef struct Local {
        VcBackend base;
        VcStore *s;
        bool verify;
        pthread_mutex_t lock;       /* the writers and the domain cache */
        VcWriter *w;
        /* A writer past VC_WRITER_FLUSH_BULK is flushed by the put that
         * took it there, outside the lock, while later puts go to a new
         * writer: a flush of 256 MiB (the index's rewrite and the syncs)
         * took a second, and every put waited for it (a server's every
         * connection). What it holds still counts as present. */
        VcWriter *flushing;
        int flush_err;              /* its failure, for the next flush to report */
        /* Writer flushes finished (changed with the lock held, read
         * without): a look-up whose snapshot is older than one may have
         * missed what it indexed, after the writer gave it up. */
        uint64_t flushes;
        char flush_msg[512];
        pthread_cond_t flushed;
        struct { char name[VC_DOMAIN_MAX]; uint64_t id; } dom[DOMAIN_CACHE];
        unsigned ndom;
        /* What `missing` answered absent and no put has sent yet (see
         * asked_add): a put of such a chunk skips its look-up in the index. */
        uint64_t *asked;
        size_t nasked;
} Local;

static Local *L(VcBackend *b)
{
        return (Local *)b;
}

static void add(uint64_t *c, uint64_t n)
{
        __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void flushes_add(Local *l)
{
        __atomic_fetch_add(&l->flushes, 1, __ATOMIC_RELEASE);
}

static uint64_t flushes_now(Local *l)
{
        return __atomic_load_n(&l->flushes, __ATOMIC_ACQUIRE);
}

/* The id of domain name, creating it if asked; cached (ids never change). */
static int domain_id(Local *l, const char *name, bool create, uint64_t *id)
{
        pthread_mutex_lock(&l->lock);
        for (unsigned i = 0; i < l->ndom; i++)
                if (strcmp(l->dom[i].name, name) == 0) {
                        *id = l->dom[i].id;
                        pthread_mutex_unlock(&l->lock);
                        return 0;
                }
        pthread_mutex_unlock(&l->lock);
        int r = vc_store_domain(l->s, name, create, id);
        if (r < 0)
                return r;
        pthread_mutex_lock(&l->lock);
        unsigned i = l->ndom < DOMAIN_CACHE ? l->ndom++ : (unsigned)(*id % DOMAIN_CACHE);
        snprintf(l->dom[i].name, sizeof l->dom[i].name, "%s", name);
        l->dom[i].id = *id;
        pthread_mutex_unlock(&l->lock);
        return 0;
}

/* ---- chunks --------------------------------------------------------------- */

/* The chunks `missing` just answered absent are, nearly always, the ones
 * the next puts send: the put's own look-up of each in the index (so that
 * what is stored is stored once) found nothing again, and cost a server a
 * seventh of its CPU in a checkin. So `missing` remembers what it answered
 * absent, and a put looks up only what it was not told: a chunk another
 * process stored in between is written again, as dead space that the
 * flush does not index (it keeps the entry there) and compaction reclaims.
 * A set of (domain, first 8 bytes of the tag) keys, linear probing, lock
 * held; a false match only costs such a copy. Emptied when half full (a
 * client that asks and never sends), so it stays at 8 MiB. */
#define ASKED_BITS 20
#define ASKED_CAP ((size_t)1 << ASKED_BITS)

static uint64_t asked_key(uint64_t id, const uint8_t tag[32])
{
        uint64_t k = vc_get64be(tag) ^ (id * 0x9E3779B97F4A7C15ull);
        return k ? k : 1;
}

static size_t asked_slot(uint64_t k)
{
        return (size_t)((k * 0xBF58476D1CE4E5B9ull) >> (64 - ASKED_BITS));
}

static void asked_add(Local *l, uint64_t k)
{
        if (!l->asked && !(l->asked = calloc(ASKED_CAP, sizeof *l->asked)))
                return;                 /* then every put looks up */
        if (l->nasked >= ASKED_CAP / 2) {
                memset(l->asked, 0, ASKED_CAP * sizeof *l->asked);
                l->nasked = 0;
        }
        size_t i = asked_slot(k);
        while (l->asked[i] && l->asked[i] != k)
                i = (i + 1) & (ASKED_CAP - 1);
        if (!l->asked[i]) {
                l->asked[i] = k;
                l->nasked++;
        }
}

/* Whether k was asked, removing it (deletion by backward shift). */
static bool asked_take(Local *l, uint64_t k)
{
        if (!l->asked)
                return false;
        size_t i = asked_slot(k);
        while (l->asked[i] != k) {
                if (!l->asked[i])
                        return false;
                i = (i + 1) & (ASKED_CAP - 1);
        }
        for (size_t j = i;;) {
                j = (j + 1) & (ASKED_CAP - 1);
                if (!l->asked[j])
                        break;
                size_t h = asked_slot(l->asked[j]);
                /* an entry may move back to i if its home is not in (i, j] */
                if (i <= j ? (h <= i || h > j) : (h <= i && h > j)) {
                        l->asked[i] = l->asked[j];
                        i = j;
                }
        }
        l->asked[i] = 0;
        l->nasked--;
        return true;
}

static int local_missing(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                         uint8_t *missing)
{
        Local *l = L(b);
        uint64_t id;
        int r = domain_id(l, domain, false, &id);
        if (r == -ENOENT) {
                vc_errclear();
                memset(missing, 1, n);
                return 0;
        }
        if (r < 0)
                return r;
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        uint64_t gen = flushes_now(l);
        if ((r = vc_txn_begin(l->s, false, &t)) < 0)
                return r;
        if ((r = vc_txn_has_chunks(t, id, tags, 32, n, missing)) < 0)
                return r;
        size_t nmiss = 0;
        for (size_t i = 0; i < n; i++) {
                missing[i] = !missing[i];
                nmiss += missing[i];
        }
        /* test hook: a flush by another thread lands here
         * (tests/backend/test_backend_local.c) */
        vc_test_hold("VMCAS_TEST_HOLD_MISSING");
        for (int round = 0;; round++) {
                /* what a put of this process sent and the next flush
                 * stores (a server flushes at a commit, not after every
                 * put): not missing */
                pthread_mutex_lock(&l->lock);
                if (nmiss && l->w && vc_writer_pending(l->w))
                        for (size_t i = 0; i < n; i++)
                                if (missing[i] && vc_writer_has_pending(l->w, id, tags + 32 * i)) {
                                        missing[i] = 0;
                                        nmiss--;
                                }
                /* A flush that ended after the snapshot was taken indexed
                 * what the writer no longer holds: neither place had it
                 * (a get's presence check on a server said 404 for a chunk
                 * another request had just flushed). Looked up again. */
                bool again = nmiss && round < 3 && flushes_now(l) != gen;
                if (!again) {
                        /* (a writer being flushed is not asked: its thread
                         * owns it; what it holds may be sent and written
                         * again, indexed once) */
                        for (size_t i = 0; i < n; i++)
                                if (missing[i])
                                        asked_add(l, asked_key(id, tags + 32 * i));
                        pthread_mutex_unlock(&l->lock);
                        return 0;
                }
                pthread_mutex_unlock(&l->lock);
                gen = flushes_now(l);
                vc_txn_abort(t);
                t = NULL;
                if ((r = vc_txn_begin(l->s, false, &t)) < 0)
                        return r;
                for (size_t i = 0; i < n && r >= 0; i++)
                        if (missing[i] && (r = vc_txn_has_chunk(t, id, tags + 32 * i)) > 0) {
                                missing[i] = 0;
                                nmiss--;
                        }
                if (r < 0)
                        return r;
        }
}

/* The writer puts go to (lock held). Flushes are the back end's to make
 * (see flushing), or a catalog copy's: its own threshold is out of reach. */
static int writer_locked(Local *l)
{
        if (l->w)
                return 0;
        int r = vc_writer_new(l->s, &l->w);
        if (r >= 0)
                vc_writer_set_flush_bytes(l->w, UINT64_MAX);
        return r;
}

/* Gives up a writer a failed write poisoned (lock held): what it held is
 * lost (the put or flush that failed said so, and a checkin's retry sends
 * it again), its packs are cut back and released, and the next put starts
 * a new one. Kept, it refused every later put and held its packs away
 * from gc: a server whose disk filled up stayed full until restarted. */
static void drop_poisoned_locked(Local *l)
{
        if (l->w && vc_writer_poisoned(l->w)) {
                vc_writer_free(l->w);
                l->w = NULL;
        }
}

/* Flushes old, which was l->flushing, without the lock. A failure is kept
 * for the next flush of the back end (a commit's), which reports it: the
 * chunks old held are not stored, and the checkin's retry sends them. */
static void flush_aside(Local *l, VcWriter *old)
{
        vc_errclear();
        int r = vc_writer_flush(old);
        pthread_mutex_lock(&l->lock);
        if (r < 0 && !l->flush_err) {
                l->flush_err = r;
                snprintf(l->flush_msg, sizeof l->flush_msg, "%s", vc_errmsg(r));
        }
        l->flushing = NULL;
        flushes_add(l);
        pthread_cond_broadcast(&l->flushed);
        pthread_mutex_unlock(&l->lock);
        vc_writer_free(old);
        vc_errclear();
}

static int local_put(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        Local *l = L(b);
        int r;
        if (l->verify)
                for (size_t i = 0; i < n; i++) {
                        uint8_t h[32];
                        vc_sha256(items[i].data, items[i].len, h);
                        if (!vc_hash_eq(h, items[i].tag, 32)) {
                                char hex[65];
                                vc_hex(items[i].tag, 32, hex);
                                return vc_errf(-EBADMSG, "chunk %s: its bytes do not hash to its tag", hex);
                        }
                }
        uint64_t id;
        if ((r = domain_id(l, domain, true, &id)) < 0)
                return r;
        /* what is already stored is dropped here, in one transaction, so
         * the writer can append without a look-up per chunk */
        uint8_t *have = calloc(n, 1);
        if (!have)
                return -ENOMEM;
        /* those `missing` was not asked about, looked up (see asked_add) */
        size_t nlook = 0;
        uint32_t *look = n ? malloc(n * sizeof *look) : NULL;
        if (n && !look) {
                free(have);
                return -ENOMEM;
        }
        pthread_mutex_lock(&l->lock);
        for (size_t i = 0; i < n; i++)
                if (!asked_take(l, asked_key(id, items[i].tag)))
                        look[nlook++] = (uint32_t)i;
        pthread_mutex_unlock(&l->lock);
        if (nlook) {
                uint8_t *tags = malloc(32 * nlook), *h = calloc(nlook, 1);
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                if (!tags || !h)
                        r = -ENOMEM;
                else {
                        for (size_t j = 0; j < nlook; j++)
                                memcpy(tags + 32 * j, items[look[j]].tag, 32);
                        if ((r = vc_txn_begin(l->s, false, &t)) >= 0)
                                r = vc_txn_has_chunks(t, id, tags, 32, nlook, h);
                        for (size_t j = 0; r >= 0 && j < nlook; j++)
                                have[look[j]] = h[j];
                }
                free(tags);
                free(h);
        }
        free(look);
        pthread_mutex_lock(&l->lock);
        if (r >= 0 && (r = writer_locked(l)) >= 0)
                for (size_t i = 0; i < n && r >= 0; i++) {
                        if (have[i])
                                continue;
                        r = vc_writer_put_fresh(l->w, id, items[i].kind, items[i].tag, items[i].data, items[i].len);
                        if (r == 1)
                                add(items[i].kind == VC_KIND_DATA ? &b->traffic.sent_data : &b->traffic.sent_meta,
                                    items[i].len);
                }
        /* past the bulk size, and no flush of an earlier writer running:
         * this call flushes it, outside the lock */
        VcWriter *old = NULL;
        if (r >= 0 && l->w && vc_writer_pending(l->w) >= VC_WRITER_FLUSH_BULK && !l->flushing) {
                old = l->flushing = l->w;
                l->w = NULL;
                /* the next writer's packs are claimed now: creating one
                 * during the flush would wait for its index commit */
                if (writer_locked(l) >= 0 && vc_writer_claim_like(l->w, old) < 0)
                        vc_errclear();
                vc_errclear();
        }
        if (r < 0)
                drop_poisoned_locked(l);
        pthread_mutex_unlock(&l->lock);
        free(have);
        if (old)
                flush_aside(l, old);
        return r < 0 ? r : 0;
}

static int local_flush(VcBackend *b);

/* Whether a writer of this back end may hold (domain id, tag) unflushed. */
static bool is_pending(Local *l, uint64_t id, const uint8_t tag[32])
{
        pthread_mutex_lock(&l->lock);
        bool p = l->flushing || (l->w && vc_writer_has_pending(l->w, id, tag));
        pthread_mutex_unlock(&l->lock);
        return p;
}

typedef struct {
        VcBackend *b;
        vc_got_fn fn;
        void *ctx;
} LocalGot;

static int local_got(size_t idx, const uint8_t *data, size_t len, int kind, void *ctx)
{
        LocalGot *g = ctx;
        add(kind == VC_KIND_META ? &g->b->traffic.recv_meta : &g->b->traffic.recv_data, len);
        return g->fn(idx, data, len, g->ctx);
}

static int local_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                     vc_got_fn fn, void *ctx)
{
        Local *l = L(b);
        uint64_t id;
        char hex[65];
        int r = domain_id(l, domain, false, &id);
        if (r == -ENOENT) {
                vc_errclear();
                vc_hex(tags, 32, hex);
                return vc_errf(-ENOENT, "chunk %s is not in the store", hex);
        }
        if (r < 0)
                return r;
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        _vc_cleanup_(vc_freep) VcChunkLoc *locs = calloc(n, sizeof *locs);
        _vc_cleanup_(vc_freep) bool *done = calloc(n, sizeof *done);
        _vc_cleanup_(vc_freep) uint8_t *buf = NULL;
        size_t cap = 0, len;
        if (!locs || !done)
                return -ENOMEM;
        uint64_t gen = flushes_now(l);
        if ((r = vc_txn_begin(l->s, false, &t)) < 0)
                return r;
        /* one look-up per chunk, then the records in large reads */
        LocalGot g = { b, fn, ctx };
        if (n == 1)
                vc_store_prefetch(l->s, t, id, tags, 32, n, locs);
        else if ((r = vc_store_locate(l->s, t, id, tags, 32, n, locs)) < 0 ||
                 (r = vc_store_read_located(l->s, id, tags, 32, n, locs, done, local_got, &g)) < 0)
                return r;
        /* what that did not read: one by one, which retries and says why */
        bool flushed = false;
        /* test hook: a flush by another thread lands here */
        vc_test_hold("VMCAS_TEST_HOLD_GET");
        for (size_t i = 0; i < n; i++) {
                if (done[i])
                        continue;
                r = locs[i].found ? vc_store_get_at(l->s, t, id, tags + 32 * i, &locs[i], &buf, &cap, &len)
                                  : vc_store_get_txn(l->s, t, id, tags + 32 * i, &buf, &cap, &len);
                if (r == -ENOENT && !flushed && (is_pending(l, id, tags + 32 * i) || flushes_now(l) != gen)) {
                        /* put and not yet flushed (`missing` says present),
                         * or flushed by another thread after the snapshot
                         * was taken: flushed now, and looked up again */
                        flushed = true;
                        vc_errclear();
                        vc_txn_abort(t);
                        t = NULL;
                        if ((r = local_flush(b)) < 0 || (r = vc_txn_begin(l->s, false, &t)) < 0 ||
                            (r = vc_store_locate(l->s, t, id, tags + 32 * i, 32, n - i, locs + i)) < 0 ||
                            (r = vc_store_read_located(l->s, id, tags + 32 * i, 32, n - i, locs + i, done + i,
                                                       local_got, &g)) < 0)
                                return r;
                        i--;
                        continue;
                }
                if (r == -ENOENT) {
                        vc_errclear();
                        vc_hex(tags + 32 * i, 32, hex);
                        return vc_errf(-ENOENT, "chunk %s is not in the store", hex);
                }
                if (r < 0)
                        return r;
                done[i] = true;
                if ((r = local_got(i, buf, len, locs[i].kind, &g)) < 0)
                        return r;
        }
        return 0;
}

static int local_flush(VcBackend *b)
{
        Local *l = L(b);
        pthread_mutex_lock(&l->lock);
        while (l->flushing)
                pthread_cond_wait(&l->flushed, &l->lock);
        int r = l->w ? vc_writer_flush(l->w) : 0;
        flushes_add(l);
        if (r < 0)
                drop_poisoned_locked(l);
        if (r >= 0 && l->flush_err) {
                r = vc_errf(l->flush_err, "%s", l->flush_msg);
                l->flush_err = 0;
        }
        pthread_mutex_unlock(&l->lock);
        return r;
}

/* ---- catalog ---------------------------------------------------------------- */

/* Writes a copy of a catalog change to the packs of the parcel's node
 * domain, after the transaction that made it (vc_repo.h: catalog copies).
 * The change is committed by then: a failure here loses only the copy. */
static void catcopy(Local *l, const char *node_dom, const VcCatCopy *c)
{
        uint64_t id;
        int r = domain_id(l, node_dom, true, &id);
        pthread_mutex_lock(&l->lock);
        if (r >= 0)
                r = writer_locked(l);
        if (r >= 0)
                r = vc_repo_catcopy_put(l->w, id, c);
        if (r < 0)
                drop_poisoned_locked(l);
        pthread_mutex_unlock(&l->lock);
        if (r < 0)
                vc_errclear();
}

static int info_of(VcTxn *t, const char *name, VcParcelInfo *ret, uint64_t *id)
{
        memset(ret, 0, sizeof *ret);
        snprintf(ret->name, sizeof ret->name, "%s", name);
        uint64_t lid;
        int r = vc_repo_parcel_raw(t, name, ret->record, sizeof ret->record, &ret->record_len, &ret->latest,
                                   ret->owner, &lid);
        if (id)
                *id = lid;
        return r;
}

typedef struct { VcTxn *t; VcParcelInfo *v; size_t n, cap; } ListCtx;

static int list_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        ListCtx *c = ctx;
        char name[VC_NAME_MAX + 1];
        if (klen > VC_NAME_MAX)
                return vc_errf(-EBADMSG, "a parcel name in the catalog is too long");
        memcpy(name, key, klen);
        name[klen] = 0;
        if (c->n == c->cap) {
                size_t nc = c->cap ? 2 * c->cap : 16;
                VcParcelInfo *x = realloc(c->v, nc * sizeof *x);
                if (!x)
                        return -ENOMEM;
                c->v = x;
                c->cap = nc;
        }
        int r = info_of(c->t, name, &c->v[c->n], NULL);
        if (r < 0)
                return r;
        c->n++;
        return 0;
}

static int local_parcels(VcBackend *b, VcParcelInfo **ret, size_t *n)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        int r = vc_txn_begin(L(b)->s, false, &t);
        if (r < 0)
                return r;
        ListCtx c = { .t = t };
        if ((r = vc_txn_iter(t, VC_TABLE_PARCELS, NULL, 0, list_cb, &c)) < 0) {
                free(c.v);
                return r;
        }
        *ret = c.v;
        *n = c.n;
        return 0;
}

static int local_parcel(VcBackend *b, const char *name, VcParcelInfo *ret)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        int r = vc_txn_begin(L(b)->s, false, &t);
        return r < 0 ? r : info_of(t, name, ret, NULL);
}

typedef struct { VcVersionInfo *v; size_t n, cap; } VerCtx;

static int ver_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        VerCtx *c = ctx;
        if (klen != 12 || vlen < 8 || !vc_version_rec_len_ok(vlen - 8))
                return vc_errf(-EBADMSG, "a version record is malformed (changed outside vmcas?)");
        if (c->n == c->cap) {
                size_t nc = c->cap ? 2 * c->cap : 16;
                VcVersionInfo *x = realloc(c->v, nc * sizeof *x);
                if (!x)
                        return -ENOMEM;
                c->v = x;
                c->cap = nc;
        }
        VcVersionInfo *v = &c->v[c->n++];
        v->version = vc_get32be((const uint8_t *)key + 8);
        v->seq = vc_get64(val);
        v->record_len = vlen - 8;
        memcpy(v->record, (const uint8_t *)val + 8, vlen - 8);
        return 0;
}

static int local_versions(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        VcParcelInfo pi;
        uint64_t id;
        int r = vc_txn_begin(L(b)->s, false, &t);
        if (r < 0 || (r = info_of(t, name, &pi, &id)) < 0)
                return r;
        uint8_t prefix[8];
        vc_put64be(prefix, id);
        VerCtx c = { 0 };
        if ((r = vc_txn_iter(t, VC_TABLE_VERSIONS, prefix, sizeof prefix, ver_cb, &c)) < 0) {
                free(c.v);
                return r;
        }
        *ret = c.v;
        *n = c.n;
        return 0;
}

static int local_version(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        VcParcelInfo pi;
        uint64_t id;
        int r = vc_txn_begin(L(b)->s, false, &t);
        if (r < 0 || (r = info_of(t, name, &pi, &id)) < 0)
                return r;
        memset(ret, 0, sizeof *ret);
        r = vc_repo_version_raw(t, id, version, ret->record, &ret->record_len, &ret->seq);
        if (r == -ENOENT)
                return vc_errf(-ENOENT, "parcel '%s' has no version %u%s", name, version,
                               pi.latest == 0 ? " (it has no version yet)" : "");
        if (r < 0)
                return r;
        ret->version = version;
        return 0;
}

static int local_create(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len)
{
        Local *l = L(b);
        VcParcel p;
        uint64_t d;
        int r = vc_parcel_unpack(rec, len, name, &p);
        if (r < 0)
                return r;
        /* The record's domains must be the ones its uuid and policy give:
         * a server decides by them which domains a parcel may read and
         * write, and the MAC over them is checked only by the client, so a
         * record naming another parcel's (or another group's) domain would
         * otherwise open that domain to its creator. */
        VcParcel want = p;
        vc_parcel_domains(&want);
        if (strcmp(want.node_dom, p.node_dom) != 0 || strcmp(want.data_dom, p.data_dom) != 0)
                return vc_errf(-EBADMSG, "the record of parcel '%s' names domains %s and %s, not those of its "
                               "uuid and policy (%s and %s)", name, p.node_dom, p.data_dom, want.node_dom,
                               want.data_dom);
        /* the domains first (they take a write transaction of their own);
         * one left behind by a failed create is harmless */
        if (r < 0 || (r = domain_id(l, p.node_dom, true, &d)) < 0 || (r = domain_id(l, p.data_dom, true, &d)) < 0)
                return r;
        VcTxn *t;
        if ((r = vc_txn_begin(l->s, true, &t)) < 0)
                return r;
        VcParcelInfo cur;
        r = info_of(t, name, &cur, NULL);
        if (r == 0) {
                vc_txn_abort(t);
                return vc_errf(-EEXIST, "parcel '%s' already exists", name);
        }
        if (r != -ENOENT) {
                vc_txn_abort(t);
                return r;
        }
        vc_errclear();
        snprintf(p.owner, sizeof p.owner, "%s", owner ? owner : "");
        p.latest = 0;
        if ((r = vc_repo_next(t, "parcel_id", &p.id)) < 0 || (r = vc_repo_parcel_put(t, &p, rec, len)) < 0) {
                vc_txn_abort(t);
                return r;
        }
        if ((r = vc_txn_commit(t)) < 0)
                return r;
        VcCatCopy c = { .type = VC_CAT_PARCEL, .rec = rec, .rec_len = len };
        snprintf(c.name, sizeof c.name, "%s", name);
        snprintf(c.owner, sizeof c.owner, "%s", p.owner);
        catcopy(l, p.node_dom, &c);
        return 0;
}

/* ---- leases ------------------------------------------------------------------ */

static size_t lease_key(const char *parcel, uint8_t *k)
{
        size_t n = strlen(parcel);
        memcpy(k, "lease:", 6);
        memcpy(k + 6, parcel, n);
        return 6 + n;
}

static int lease_read(VcTxn *t, const char *parcel, VcLease *ls)
{
        uint8_t k[6 + VC_NAME_MAX];
        size_t kl = lease_key(parcel, k);
        const void *val;
        size_t vl;
        memset(ls, 0, sizeof *ls);
        int r = vc_txn_get(t, VC_TABLE_META, k, kl, &val, &vl);
        if (r == -ENOENT)
                return 0;
        if (r < 0)
                return r;
        const uint8_t *v = val;
        if (vl < 1 || v[0] > VC_HOST_MAX || vl != 1u + v[0] + 8 + VC_LEASE_TOKEN_LEN)
                return vc_errf(-EBADMSG, "the lease of parcel '%s' is malformed", parcel);
        ls->held = true;
        memcpy(ls->host, v + 1, v[0]);
        ls->host[v[0]] = 0;
        ls->since = (int64_t)vc_get64(v + 1 + v[0]);
        memcpy(ls->token, v + 1 + v[0] + 8, VC_LEASE_TOKEN_LEN);
        return 1;
}

static int lease_write(VcTxn *t, const char *parcel, const VcLease *ls)
{
        uint8_t k[6 + VC_NAME_MAX], v[1 + VC_HOST_MAX + 8 + VC_LEASE_TOKEN_LEN];
        size_t kl = lease_key(parcel, k), hl = strlen(ls->host);
        v[0] = (uint8_t)hl;
        memcpy(v + 1, ls->host, hl);
        vc_put64(v + 1 + hl, (uint64_t)ls->since);
        memcpy(v + 1 + hl + 8, ls->token, VC_LEASE_TOKEN_LEN);
        return vc_txn_put(t, VC_TABLE_META, k, kl, v, 1 + hl + 8 + VC_LEASE_TOKEN_LEN);
}

static int lease_del(VcTxn *t, const char *parcel)
{
        uint8_t k[6 + VC_NAME_MAX];
        size_t kl = lease_key(parcel, k);
        int r = vc_txn_del(t, VC_TABLE_META, k, kl);
        return r == -ENOENT ? 0 : r;
}

static const char *when(int64_t t, char *buf, size_t len)
{
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
        return buf;
}

int vc_lease_busy(const char *parcel, const VcLease *ls)
{
        char w[40];
        return vc_errf(-EBUSY, "parcel '%s' is leased to host '%s' since %s: check it in there (with --release), "
                       "or have an administrator break the lease (vmcas lease break %s)", parcel, ls->host,
                       when(ls->since, w, sizeof w), parcel);
}

/* Checks that token (or NULL: none held) may commit to parcel now. */
static int lease_check(VcTxn *t, const char *parcel, const uint8_t *token)
{
        VcLease ls;
        int r = lease_read(t, parcel, &ls);
        if (r < 0)
                return r;
        if (token) {
                if (!ls.held || !vc_hash_eq(ls.token, token, VC_LEASE_TOKEN_LEN))
                        return vc_errf(-ESTALE, "this host's lease on parcel '%s' was broken%s: nothing was "
                                       "committed (check the parcel out again; changes made here since are not "
                                       "merged)", parcel, ls.held ? " and the parcel is leased to another host" : "");
                return 0;
        }
        return ls.held ? vc_lease_busy(parcel, &ls) : 0;
}

static int with_parcel(VcTxn *t, const char *parcel)
{
        VcParcelInfo pi;
        return info_of(t, parcel, &pi, NULL);
}

static int local_lease_acquire(VcBackend *b, const char *parcel, const char *host, VcLease *ret)
{
        VcTxn *t;
        int r = vc_txn_begin(L(b)->s, true, &t);
        if (r < 0)
                return r;
        if ((r = with_parcel(t, parcel)) < 0 || (r = lease_read(t, parcel, ret)) < 0)
                goto fail;
        if (ret->held) {
                vc_txn_abort(t);
                return strcmp(ret->host, host) == 0 ? 0 : vc_lease_busy(parcel, ret);
        }
        ret->held = true;
        snprintf(ret->host, sizeof ret->host, "%s", host);
        ret->since = vc_now();
        if ((r = vc_random(ret->token, VC_LEASE_TOKEN_LEN)) < 0 || (r = lease_write(t, parcel, ret)) < 0)
                goto fail;
        return vc_txn_commit(t);
fail:
        vc_txn_abort(t);
        return r;
}

static int local_lease_release(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN])
{
        VcTxn *t;
        int r = vc_txn_begin(L(b)->s, true, &t);
        if (r < 0)
                return r;
        if ((r = with_parcel(t, parcel)) < 0 || (r = lease_check(t, parcel, token)) < 0 ||
            (r = lease_del(t, parcel)) < 0) {
                vc_txn_abort(t);
                return r;
        }
        return vc_txn_commit(t);
}

static int local_lease_break(VcBackend *b, const char *parcel)
{
        VcTxn *t;
        VcLease ls;
        int r = vc_txn_begin(L(b)->s, true, &t);
        if (r < 0)
                return r;
        if ((r = with_parcel(t, parcel)) < 0 || (r = lease_read(t, parcel, &ls)) < 0 ||
            (r = lease_del(t, parcel)) < 0) {
                vc_txn_abort(t);
                return r;
        }
        r = vc_txn_commit(t);
        return r < 0 ? r : ls.held;
}

static int local_lease_get(VcBackend *b, const char *parcel, VcLease *ret)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        int r = vc_txn_begin(L(b)->s, false, &t);
        if (r < 0 || (r = with_parcel(t, parcel)) < 0 || (r = lease_read(t, parcel, ret)) < 0)
                return r;
        memset(ret->token, 0, sizeof ret->token);
        return 0;
}

/* ---- commit --------------------------------------------------------------------- */

/* Half of a commit's look-ups, on a thread of its own. */
typedef struct HalfHas {
        VcStore *s;
        uint64_t id;
        const uint8_t *tags;
        size_t n;
        uint8_t *has;
        int r;
        VcErr err;
} HalfHas;

static void *half_has_main(void *arg)
{
        HalfHas *h = arg;
        VcTxn *t = NULL;
        vc_errclear();
        h->r = vc_txn_begin(h->s, false, &t);
        if (h->r >= 0)
                h->r = vc_txn_has_chunks(t, h->id, h->tags, 32, h->n, h->has);
        vc_txn_abort(t);
        vc_err_save(&h->err, h->r);
        return NULL;
}

/* Looks tags up in the commit's write transaction t; a long list half
 * there and half in a read transaction on a second thread. That one sees
 * what t sees: t has written nothing yet and holds the store's write lock,
 * so nothing can be committed before the read transaction starts. (The
 * check of a 1 GiB checkin's 262,144 chunks was a twentieth of its time,
 * on one core.) */
static int has_all(Local *l, VcTxn *t, uint64_t id, const uint8_t *need, size_t n, uint8_t *has)
{
        HalfHas h = { .s = l->s, .id = id, .n = n / 2 };
        pthread_t th;
        bool two = n >= 65536 && !vc_pool_in_worker() && vc_pool_threads() > 1;
        if (two) {
                h.tags = need + 32 * (n - h.n);
                h.has = has + (n - h.n);
                two = pthread_create(&th, NULL, half_has_main, &h) == 0;
        }
        size_t mine = two ? n - h.n : n;
        int r = vc_txn_has_chunks(t, id, need, 32, mine, has);
        if (!two)
                return r;
        pthread_join(th, NULL);
        if (r < 0)
                return r;
        return h.r < 0 ? vc_err_raise(&h.err) : 0;
}

/* Every tag of need (n of them) is indexed in domain name. */
static int need_present(Local *l, VcTxn *t, const char *dname, const uint8_t *need, size_t n)
{
        if (n == 0)
                return 0;
        uint64_t id;
        int r = vc_txn_domain(t, dname, &id);
        if (r < 0 && r != -ENOENT)
                return r;
        uint8_t *has = calloc(n, 1);
        if (!has)
                return -ENOMEM;
        if (r == 0 && (r = has_all(l, t, id, need, n, has)) < 0) {
                free(has);
                return r;
        }
        size_t i = 0;
        while (i < n && has[i])
                i++;
        free(has);
        if (i < n) {
                char hex[65];
                vc_hex(need + 32 * i, 32, hex);
                vc_errclear();
                return vc_errf(-EAGAIN, "chunk %s is not in the store (it vanished during the checkin: a gc ran?); "
                               "nothing was committed, run the checkin again", hex);
        }
        return 0;
}

static int local_commit(VcBackend *b, const VcCommit *c)
{
        Local *l = L(b);
        VcVersion v;
        VcParcel p;
        VcParcelInfo pi;
        int r = vc_version_unpack(c->record, c->record_len, &v);
        if (r < 0)
                return r;
        if (v.version != c->base + 1)
                return vc_errf(-EINVAL, "a commit of version %u on top of version %u", v.version, c->base);
        VcTxn *t;
        if ((r = vc_txn_begin(l->s, true, &t)) < 0)
                return r;
        if ((r = vc_repo_parcel(t, c->parcel, &p)) < 0 || (r = info_of(t, c->parcel, &pi, NULL)) < 0)
                goto fail;
        if (memcmp(v.uuid, p.uuid, 16) != 0) {
                r = vc_errf(-EINVAL, "the version record is not one of parcel '%s'", c->parcel);
                goto fail;
        }
        if (p.latest != c->base) {
                r = vc_errf(-EAGAIN, "parcel '%s' changed during the checkin (now at version %u); nothing was "
                            "committed", c->parcel, p.latest);
                goto fail;
        }
        if ((r = lease_check(t, c->parcel, c->lease)) < 0 ||
            (r = need_present(l, t, p.node_dom, c->need_nodes, c->n_nodes)) < 0 ||
            (r = need_present(l, t, p.data_dom, c->need_data, c->n_data)) < 0)
                goto fail;
        uint64_t seq;
        if ((r = vc_repo_next(t, "commit_seq", &seq)) < 0)
                goto fail;
        uint8_t key[12], val[8 + VC_VERSION_REC_LEN];
        vc_version_key(p.id, v.version, key);
        vc_put64(val, seq);
        memcpy(val + 8, c->record, VC_VERSION_REC_LEN);
        p.latest = v.version;
        if ((r = vc_txn_put(t, VC_TABLE_VERSIONS, key, sizeof key, val, sizeof val)) < 0 ||
            (r = vc_repo_parcel_put(t, &p, pi.record, pi.record_len)) < 0)
                goto fail;
        add(&b->traffic.sent_meta, VC_VERSION_REC_LEN);
        if ((r = vc_txn_commit(t)) < 0)
                return r;
        VcCatCopy cc = { .type = VC_CAT_VERSION, .version = v.version, .rec = c->record, .rec_len = c->record_len };
        snprintf(cc.name, sizeof cc.name, "%s", c->parcel);
        catcopy(l, p.node_dom, &cc);
        return 0;
fail:
        vc_txn_abort(t);
        return r;
}

static int local_prune(VcBackend *b, const char *name, uint32_t keep)
{
        Local *l = L(b);
        VcParcel p;
        int r;
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                if ((r = vc_txn_begin(l->s, false, &t)) < 0 || (r = vc_repo_parcel(t, name, &p)) < 0)
                        return r;
        }
        uint32_t upto = 0;
        int dropped = vc_repo_prune(l->s, name, keep, &upto);
        if (dropped > 0 && upto > 0) {
                VcCatCopy c = { .type = VC_CAT_PRUNE, .version = upto };
                snprintf(c.name, sizeof c.name, "%s", name);
                catcopy(l, p.node_dom, &c);
        }
        return dropped;
}

/* ---- maintenance ------------------------------------------------------------------ */

static int local_stat(VcBackend *b, VcStoreStat *st)
{
        return vc_repo_stat(L(b)->s, st);
}

typedef struct { void (*report)(const char *msg, void *ctx); void *ctx; } Report;

/* The repair that fixes a problem goes on a line of its own. */
static void report_repair(const char *msg, const char *repair, void *ctx)
{
        Report *rp = ctx;
        char line[2048];
        snprintf(line, sizeof line, "%s\n        %s", msg, repair);
        if (rp->report)
                rp->report(line, rp->ctx);
}

static int local_verify(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                        VcVerifyStats *st)
{
        Report rp = { report, ctx };
        return vc_repo_verify(L(b)->s, full, report_repair, &rp, st);
}

/* The back end's own writer claims the packs it appends to, and gc's
 * compaction passes over a claimed pack: a server's gc could never free
 * the space of the pack its writer was in (with a full disk, the one
 * holding all that was pruned). It is flushed and given up first; the
 * next put starts another. A flush that fails loses what it held, as a
 * failed flush beside a put does (flush_aside): the next commit reports
 * it, and that checkin's retry sends the chunks again. */
static int local_gc(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st)
{
        Local *l = L(b);
        pthread_mutex_lock(&l->lock);
        while (l->flushing)
                pthread_cond_wait(&l->flushed, &l->lock);
        if (l->w) {
                vc_errclear();
                int r = vc_writer_flush(l->w);
                flushes_add(l);
                if (r < 0 && !l->flush_err) {
                        l->flush_err = r;
                        snprintf(l->flush_msg, sizeof l->flush_msg, "%s", vc_errmsg(r));
                }
                vc_errclear();
                vc_writer_free(l->w);
                l->w = NULL;
        }
        pthread_mutex_unlock(&l->lock);
        return vc_repo_gc(l->s, grace, quiet, st);
}

static int local_bundle_get(VcBackend *b, uint8_t **ret, size_t *len)
{
        return vc_errf(-ENOTSUP, "a local store keeps no key bundle: the keys are on this host");
}

static int local_bundle_put(VcBackend *b, const uint8_t *blob, size_t len)
{
        return vc_errf(-ENOTSUP, "a local store keeps no key bundle: the keys are on this host");
}

static void local_free(VcBackend *b)
{
        Local *l = L(b);
        vc_writer_free(l->w);
        vc_store_free(l->s);
        free(l->asked);
        pthread_mutex_destroy(&l->lock);
        pthread_cond_destroy(&l->flushed);
        free(l);
}

static const VcBackendOps local_ops = {
        .kind = "local",
        .free = local_free,
        .missing = local_missing,
        .put = local_put,
        .get = local_get,
        .flush = local_flush,
        .parcels = local_parcels,
        .parcel = local_parcel,
        .versions = local_versions,
        .version = local_version,
        .create = local_create,
        .commit = local_commit,
        .prune = local_prune,
        .lease_acquire = local_lease_acquire,
        .lease_release = local_lease_release,
        .lease_break = local_lease_break,
        .lease_get = local_lease_get,
        .stat = local_stat,
        .verify = local_verify,
        .gc = local_gc,
        .bundle_get = local_bundle_get,
        .bundle_put = local_bundle_put,
};

int vc_backend_local_open(const char *path, const VcBackendOpts *o, VcBackend **ret)
{
        VcStore *s;
        int r = vc_store_open(path, &s);
        if (r == -ENOENT && o && o->create) {
                vc_errclear();
                if ((r = vc_mkdir_p(path, 0700)) < 0 || (r = vc_store_create(path)) < 0 ||
                    (r = vc_store_open(path, &s)) < 0)
                        return r;
        }
        if (r < 0)
                return r;
        Local *l = calloc(1, sizeof *l);
        if (!l) {
                vc_store_free(s);
                return -ENOMEM;
        }
        l->base.ops = &local_ops;
        memcpy(l->base.uuid, vc_store_uuid(s), 16);
        snprintf(l->base.where, sizeof l->base.where, "%s", path);
        l->s = s;
        l->verify = o && o->verify_puts;
        pthread_mutex_init(&l->lock, NULL);
        pthread_cond_init(&l->flushed, NULL);
        *ret = &l->base;
        return 0;
}

VcStore *vc_backend_local_store(VcBackend *b)
{
        return b && b->ops == &local_ops ? L(b)->s : NULL;
}
