/* vc_store_gc — walking the index: chunk iteration, sweep, compaction,
 * check and reindex. */
#include "store/vc_store_int.h"
#include "core/vc_util.h"
#include "core/vc_hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

int vc_txn_has_chunk(VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        VcIdx x = { 0 };
        int r = vc_idx_get(t, domain, tag, &x);
        return r == 0 ? 1 : r == -ENOENT ? 0 : r;
}

int vc_txn_iter_chunks(VcTxn *t, vc_chunk_fn fn, void *ctx)
{
        return vc_idx_each(t, 0, fn, ctx);
}

int vc_txn_sweep(VcTxn *t, int (*is_live)(const VcChunkInfo *ci, void *ctx), void *ctx, int64_t cutoff,
                 VcSweepStats *st)
{
        if (!vc_txn_is_write(t))
                return vc_errf(-EINVAL, "sweep needs a write transaction");
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *c = NULL;
        int r = vc_db_cursor_open(t, VC_DB_INDEX, NULL, 0, &c);
        if (r < 0)
                return r;
        VcSweepStats z = { 0 };
        const void *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        while ((r = vc_db_cursor_next(c, &k, &kl, &v, &vl)) != 0) {
                VcChunkInfo ci = { 0 };
                if (r < 0 && r != -EBADMSG)
                        return r;
                if (r < 0 || vc_idx_info(k, kl, v, vl, &ci) < 0)
                        return vc_db_damaged(VC_DB_INDEX, k, kl);
                int live = is_live(&ci, ctx);
                if (live < 0)
                        return live;
                if (!live && ci.stored_at < cutoff) {
                        r = vc_db_cursor_del(c);
                        if (r < 0)
                                return r;
                        z.chunks_freed++;
                        z.bytes_freed += ci.len;
                        continue;
                }
                if (!live)
                        z.chunks_young++;
                z.chunks_kept++;
                z.bytes_kept += ci.len;
        }
        if (st)
                *st = z;
        return 0;
}

/* ---- packs as the gc sees them ------------------------------------------------------ */

typedef struct CPack {
        uint64_t domain;
        uint32_t pack;
        VcPackEnt e;
        uint64_t live_n, live_bytes;    /* records the index points at */
        int fd;                         /* compaction: locked fd, or -1 */
        bool cand, missing, keep;
} CPack;

static void cpacks_free(CPack *v, size_t n)
{
        for (size_t i = 0; i < n; i++)
                if (v[i].fd >= 0)
                        close(v[i].fd);
        free(v);
}

typedef struct CPacks {
        CPack *v;
        size_t n;
} CPacks;

static int load_pack(uint64_t domain, uint32_t pack, const VcPackEnt *e, void *ctx)
{
        CPacks *l = ctx;
        CPack *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
        if (!nv)
                return -ENOMEM;
        l->v = nv;
        l->v[l->n++] = (CPack){ .domain = domain, .pack = pack, .e = *e, .fd = -1 };
        return 0;
}

/* The valid entries of the packs table (of one domain if domain != 0), in
 * (domain, pack) order. */
static int load_packs(VcTxn *t, uint64_t domain, CPack **ret, size_t *ret_n)
{
        CPacks l = { 0 };
        int r = vc_packs_each(t, domain, load_pack, &l);
        if (r < 0) {
                free(l.v);
                return r;
        }
        *ret = l.v;
        *ret_n = l.n;
        return 0;
}

static CPack *find_pack(CPack *v, size_t n, uint64_t domain, uint32_t pack)
{
        size_t lo = 0, hi = n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if (v[mid].domain < domain || (v[mid].domain == domain && v[mid].pack < pack))
                        lo = mid + 1;
                else
                        hi = mid;
        }
        return lo < n && v[lo].domain == domain && v[lo].pack == pack ? &v[lo] : NULL;
}

/* A live record to move out of a pack being compacted. */
typedef struct Move {
        uint8_t tag[VC_TAG_LEN];
        uint32_t pack;
        uint64_t off;
        uint32_t len;
        int kind;
} Move;

typedef struct Count {
        CPack *v;
        size_t n;
        Move **moves;
        size_t *nmoves, cap;
} Count;

static int count_one(const VcChunkInfo *ci, void *ctx)
{
        Count *c = ctx;
        CPack *p = find_pack(c->v, c->n, ci->domain, ci->pack);
        if (!p)
                return 0;
        p->live_n++;
        p->live_bytes += VC_REC_HDR_LEN + (uint64_t)ci->len;
        if (!c->moves || !p->cand)
                return 0;
        if (*c->nmoves == c->cap) {
                c->cap = c->cap ? 2 * c->cap : 1024;
                Move *nm = realloc(*c->moves, c->cap * sizeof *nm);
                if (!nm)
                        return -ENOMEM;
                *c->moves = nm;
        }
        Move *m = &(*c->moves)[(*c->nmoves)++];
        memcpy(m->tag, ci->tag, VC_TAG_LEN);
        m->pack = ci->pack;
        m->off = ci->offset;
        m->len = ci->len;
        m->kind = ci->kind;
        return 0;
}

/* Counts the live records per pack (of domain, or all with 0). With
 * moves, also lists those that lie in candidate packs. A damaged index
 * entry fails the count: it might point into any pack. */
static int count_live(VcTxn *t, uint64_t domain, CPack *v, size_t n, Move **moves, size_t *nmoves)
{
        for (size_t i = 0; i < n; i++)
                v[i].live_n = v[i].live_bytes = 0;
        Count c = { .v = v, .n = n, .moves = moves, .nmoves = nmoves };
        int r = vc_idx_each(t, domain, count_one, &c);
        if (r == -EBADMSG)
                return vc_errf(r, "the index has a damaged entry; run 'vmcas verify' (and reindex) "
                                  "before compacting");
        return r;
}

/* Live ratio = live record bytes / record bytes, so that a pack with no
 * dead record is at 1.0 and never rewritten, whatever the ratio asked. */
static bool worth_compacting(const CPack *p, double ratio)
{
        uint64_t records = p->e.committed > VC_PACK_HDR_LEN ? p->e.committed - VC_PACK_HDR_LEN : 0;
        return p->live_n == 0 || (double)p->live_bytes < ratio * (double)records;
}

static int move_cmp(const void *a, const void *b)
{
        const Move *x = a, *y = b;
        if (x->pack != y->pack)
                return x->pack < y->pack ? -1 : 1;
        return x->off < y->off ? -1 : x->off > y->off;
}

/* ---- compaction -------------------------------------------------------------------- */

/* Takes the flock of every candidate; a pack we cannot lock is claimed by
 * a writer (or another compaction) and is left alone. */
static void lock_candidates(VcStore *s, CPack *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                CPack *p = &v[i];
                if (!p->cand)
                        continue;
                char path[PATH_MAX];
                struct stat st;
                vc_pack_path(s, p->domain, p->pack, path, sizeof path);
                p->fd = open(path, O_RDONLY | O_CLOEXEC);
                if (p->fd < 0) {
                        p->missing = errno == ENOENT;
                        p->cand = p->missing;
                        continue;
                }
                if (flock(p->fd, LOCK_EX | LOCK_NB) < 0 || fstat(p->fd, &st) < 0 || st.st_nlink == 0) {
                        close(p->fd);
                        p->fd = -1;
                        p->cand = false;
                }
        }
}

/* Copies the live records of the locked candidates through w. A record
 * whose header or data does not check out stays where it is, and so does
 * its pack. */
static int copy_live(VcStore *s, VcWriter *w, uint64_t domain, CPack *v, size_t n, Move *moves, size_t nmoves)
{
        VcPackReader rd = { .fd = -1 };
        CPack *cur = NULL;
        int r = 0;
        for (size_t i = 0; i < nmoves && r == 0; i++) {
                Move *m = &moves[i];
                if (!cur || cur->pack != m->pack) {
                        vc_preader_done(&rd);
                        cur = find_pack(v, n, domain, m->pack);
                        vc_preader_init(&rd, cur->fd, cur->e.committed);
                }
                const uint8_t *p;
                VcRecHdr h = { 0 };
                uint8_t digest[VC_HASH_LEN];
                if (vc_preader_get(&rd, m->off, VC_REC_HDR_LEN + (size_t)m->len, &p) < 0 ||
                    vc_rec_hdr_decode(p, &h) < 0 || h.domain != domain || h.len != m->len || h.kind != m->kind ||
                    memcmp(h.tag, m->tag, VC_TAG_LEN) != 0) {
                        cur->keep = true;
                        continue;
                }
                vc_sha256(p + VC_REC_HDR_LEN, m->len, digest);
                if (memcmp(digest, m->tag, VC_TAG_LEN) != 0) {
                        cur->keep = true;
                        continue;
                }
                r = vc_writer_move(w, domain, m->kind, m->tag, p + VC_REC_HDR_LEN, m->len, m->pack, m->off);
                if (s->progress) {
                        s->progress_done += m->len;
                        vc_progress(s->progress, s->progress_done);
                }
        }
        vc_preader_done(&rd);
        if (r == 0)
                r = vc_writer_flush(w);
        return r;
}

/* Marks the emptied candidates retired, after checking in the same
 * transaction that no index entry points into them any more. */
static int retire(VcStore *s, uint64_t domain, CPack *v, size_t n)
{
        VcTxn *t;
        int r = vc_txn_begin(s, true, &t);
        if (r < 0)
                return r;
        r = count_live(t, domain, v, n, NULL, NULL);
        for (size_t i = 0; r == 0 && i < n; i++) {
                CPack *p = &v[i];
                if (!p->cand || p->keep)
                        continue;
                if (p->live_n) {
                        p->keep = true;
                        continue;
                }
                if (!p->missing) {
                        p->e.flags |= VC_PACK_RETIRED | VC_PACK_SEALED;
                        r = vc_packs_put(t, domain, p->pack, &p->e);
                }
        }
        if (r < 0) {
                vc_txn_abort(t);
                return r;
        }
        return vc_txn_commit(t);
}

/* Unlinks the retired packs, then forgets them. */
static int delete_retired(VcStore *s, uint64_t domain, CPack *v, size_t n, VcCompactStats *z)
{
        char dir[PATH_MAX], path[PATH_MAX];
        bool any = false;
        vc_domain_dir(s, domain, dir, sizeof dir);
        for (size_t i = 0; i < n; i++) {
                CPack *p = &v[i];
                if (!p->cand || p->keep)
                        continue;
                any = true;
                if (p->missing)
                        continue;
                vc_pack_path(s, domain, p->pack, path, sizeof path);
                if (unlink(path) < 0 && errno != ENOENT)
                        return vc_errf(-errno, "cannot delete %s: %s", path, strerror(errno));
                z->packs_deleted++;
        }
        if (!any)
                return 0;
        int r = vc_fsync_dir(dir);
        if (r < 0)
                return vc_errf(r, "cannot sync %s: %s", dir, strerror(-r));
        vc_crash_point("compact-unlinked");
        VcTxn *t;
        r = vc_txn_begin(s, true, &t);
        if (r < 0)
                return r;
        for (size_t i = 0; r == 0 && i < n; i++) {
                CPack *p = &v[i];
                if (!p->cand || p->keep)
                        continue;
                uint8_t k[VC_PACKS_KEY_LEN];
                vc_packs_key(k, domain, p->pack);
                r = vc_db_del(t, VC_DB_PACKS, k, sizeof k);
                if (r == -ENOENT)
                        r = 0;
        }
        if (r < 0) {
                vc_txn_abort(t);
                return r;
        }
        return vc_txn_commit(t);
}

static int compact_domain(VcStore *s, uint64_t domain, double ratio, VcCompactStats *z)
{
        CPack *v = NULL;
        size_t n = 0, nmoves = 0;
        Move *moves = NULL;
        VcWriter *w = NULL;
        int r;
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(s, false, &t);
                if (r == 0)
                        r = load_packs(t, domain, &v, &n);
                if (r == 0)
                        r = count_live(t, domain, v, n, NULL, NULL);
        }
        if (r < 0)
                goto out;
        bool any = false;
        for (size_t i = 0; i < n; i++) {
                v[i].cand = worth_compacting(&v[i], ratio);
                any |= v[i].cand;
        }
        if (!any)
                goto out;
        lock_candidates(s, v, n);
        /* Now that no writer can append to the candidates, count again
         * from a fresh snapshot: a writer may have flushed more into one
         * between the first count and our lock. */
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(s, false, &t);
                for (size_t i = 0; r == 0 && i < n; i++) {
                        if (!v[i].cand)
                                continue;
                        r = vc_packs_get(t, domain, v[i].pack, &v[i].e);
                        if (r == -ENOENT) {
                                v[i].cand = false;      /* another compaction got it */
                                r = 0;
                        }
                }
                if (r == 0)
                        r = count_live(t, domain, v, n, NULL, NULL);
                for (size_t i = 0; r == 0 && i < n; i++) {
                        /* A missing pack with live records is damage: leave
                         * it for verify to report. */
                        if (v[i].cand && (!worth_compacting(&v[i], ratio) || (v[i].missing && v[i].live_n)))
                                v[i].cand = false;
                }
                if (r == 0)
                        r = count_live(t, domain, v, n, &moves, &nmoves);
        }
        if (r < 0)
                goto out;
        if (nmoves)
                qsort(moves, nmoves, sizeof *moves, move_cmp);
        r = vc_writer_new(s, &w);
        if (r == 0)
                r = copy_live(s, w, domain, v, n, moves, nmoves);
        if (r == 0)
                z->chunks_moved += vc_writer_moved(w);
        vc_writer_free(w);
        if (r == 0) {
                vc_crash_point("compact-copied");
                r = retire(s, domain, v, n);
        }
        if (r == 0) {
                vc_crash_point("compact-retired");
                for (size_t i = 0; i < n; i++)
                        if (v[i].cand && !v[i].keep && nmoves && !v[i].missing)
                                for (size_t j = 0; j < nmoves; j++)
                                        if (moves[j].pack == v[i].pack) {
                                                z->packs_rewritten++;
                                                break;
                                        }
                r = delete_retired(s, domain, v, n, z);
        }
out:
        free(moves);
        cpacks_free(v, n);      /* closing the fds releases the locks */
        return r;
}

int vc_store_compact(VcStore *s, double max_live_ratio, VcCompactStats *st)
{
        VcCompactStats z = { 0 };
        int r = vc_store_pack_files(s, 0, &z.packs_before, &z.bytes_before);
        if (r < 0)
                return r;
        /* The domains that have packs, from the packs table. */
        uint64_t *doms = NULL;
        size_t nd = 0;
        {
                CPack *v = NULL;
                size_t n = 0;
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(s, false, &t);
                if (r == 0)
                        r = load_packs(t, 0, &v, &n);
                if (r == 0 && n) {
                        doms = malloc(n * sizeof *doms);
                        if (!doms)
                                r = -ENOMEM;
                }
                for (size_t i = 0; r == 0 && i < n; i++)
                        if (nd == 0 || doms[nd - 1] != v[i].domain)
                                doms[nd++] = v[i].domain;
                free(v);
        }
        for (size_t i = 0; r == 0 && i < nd; i++)
                r = compact_domain(s, doms[i], max_live_ratio, &z);
        free(doms);
        if (r < 0)
                return r;
        r = vc_store_pack_files(s, 0, &z.packs_after, &z.bytes_after);
        if (r < 0)
                return r;
        if (st)
                *st = z;
        return 0;
}

/* ---- check ----------------------------------------------------------------------------- */

typedef struct Check {
        VcStore *s;
        vc_damage_ex_fn fn;
        void *ctx;
        int problems;
        VcCheckStats st;
        uint64_t domain;        /* of the pack being walked */
        uint32_t pack;
        bool unchecked[VC_DB__MAX];     /* tables with a damaged page: not read through LMDB */
        bool lmdb_damaged;              /* LMDB's own structures: read nothing through it */
} Check;

const char *vc_repair_text(VcRepair r)
{
        switch (r) {
        case VC_REPAIR_REINDEX:
                return "repair: 'vmcas verify --reindex' fixes this";
        case VC_REPAIR_REINDEX_IF:
                return "repair: 'vmcas verify --reindex' fixes this if the pack record is intact ('vmcas verify "
                       "--full' re-hashes it); otherwise the chunk is lost";
        case VC_REPAIR_NONE:
                return "no repair in this store: these bytes are lost; restore the pack from a replica, or check "
                       "in again the versions that need them";
        case VC_REPAIR_BACKUP:
                return "no repair yet: the catalog is not rebuilt from the packs; restore STORE/index from a backup";
        case VC_REPAIR_HARMLESS:
                return "harmless: nothing reads it";
        }
        return "?";
}

static void _vc_printf_(5, 6) report(Check *c, uint64_t domain, const uint8_t *tag, VcRepair repair,
                                     const char *fmt, ...)
{
        char what[768];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(what, sizeof what, fmt, ap);
        va_end(ap);
        c->problems++;
        if (c->fn)
                c->fn(domain, tag, what, repair, c->ctx);
}

/* A fault inside LMDB ends the check: everything after it would fail. */
static int txn_gone(VcTxn *t, int r)
{
        return r < 0 && vc_txn_dead(t);
}

static int check_tables(Check *c, VcTxn *t)
{
        static const VcDbTable tables[] = { VC_DB_META, VC_DB_PARCELS, VC_DB_VERSIONS, VC_DB_DOMAINS, VC_DB_PACKS };
        for (size_t i = 0; i < VC_ARRAY_SIZE(tables); i++) {
                if (c->unchecked[tables[i]])
                        continue;
                _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *cur = NULL;
                int r = vc_db_cursor_open(t, tables[i], NULL, 0, &cur);
                if (r < 0)
                        return r;
                const void *k = NULL, *v = NULL;
                size_t kl = 0, vl = 0;
                while ((r = vc_db_cursor_next(cur, &k, &kl, &v, &vl)) != 0) {
                        char what[160];
                        VcPackEnt e = { 0 };
                        if (txn_gone(t, r))
                                return r;
                        c->st.catalog_records++;
                        if (r == -EBADMSG) {
                                vc_db_describe(tables[i], k, kl, what, sizeof what);
                                uint64_t d = tables[i] == VC_DB_PACKS && kl >= 8 ? vc_get64be(k) : 0;
                                bool catalog = tables[i] == VC_DB_META || tables[i] == VC_DB_PARCELS ||
                                               tables[i] == VC_DB_VERSIONS;
                                report(c, d, NULL, catalog ? VC_REPAIR_BACKUP : VC_REPAIR_REINDEX,
                                       "catalog record damaged: %s (checksum mismatch)", what);
                        } else if (r < 0) {
                                return r;
                        } else if (tables[i] == VC_DB_PACKS &&
                                   (kl != VC_PACKS_KEY_LEN || vc_packs_decode(v, vl, &e) < 0)) {
                                vc_db_describe(tables[i], k, kl, what, sizeof what);
                                report(c, 0, NULL, VC_REPAIR_REINDEX, "packs table entry malformed: %s", what);
                        }
                }
        }
        return 0;
}

/* A tree of the LMDB file with a damaged page (vc_db_check_pages). */
static void on_page_damage(const char *table, const char *what, void *ctx)
{
        Check *c = ctx;
        c->st.pages_damaged++;
        if (table && !*table) {
                /* The free list: only writes read it. */
                report(c, 0, NULL, VC_REPAIR_REINDEX, "the index file is damaged: %s", what);
                return;
        }
        if (!table) {
                c->lmdb_damaged = true;
                report(c, 0, NULL, VC_REPAIR_REINDEX, "the index file is damaged: %s", what);
                return;
        }
        for (int i = 0; i < VC_DB__MAX; i++)
                if (strcmp(table, vc_db_table_name((VcDbTable)i)) == 0)
                        c->unchecked[i] = true;
        report(c, 0, NULL, VC_REPAIR_REINDEX, "the index file is damaged in table %s: %s", table, what);
}

/* Every page of the snapshot; then which tables can be read through LMDB. */
static int check_pages(Check *c, VcTxn *t)
{
        int r = -EAGAIN;
        /* A read transaction's meta page can be rewritten by two commits of
         * other processes before we get to read it: take a newer snapshot. */
        for (int i = 0; i < 8 && r == -EAGAIN; i++) {
                if (i > 0 && (r = vc_txn_refresh(t)) < 0)
                        return r;
                vc_errclear();
                r = vc_db_check_pages(t, on_page_damage, c);
        }
        if (r < 0)
                return r;
        if (c->lmdb_damaged)
                for (int i = 0; i < VC_DB__MAX; i++)
                        c->unchecked[i] = true;
        c->st.index_unchecked = c->unchecked[VC_DB_INDEX] || c->unchecked[VC_DB_PACKS];
        c->st.catalog_unchecked = c->unchecked[VC_DB_META] || c->unchecked[VC_DB_PARCELS] ||
                                  c->unchecked[VC_DB_VERSIONS];
        return 0;
}

/* One index entry, its place already decoded: is the record there? */
typedef struct CEnt {
        uint64_t domain;
        uint8_t tag[VC_TAG_LEN];
        VcIdx x;
} CEnt;

static int check_entry(Check *c, CPack *v, size_t n, const CEnt *e)
{
        uint64_t d = e->domain;
        const uint8_t *tag = e->tag;
        VcIdx x = e->x;
        char hex[2 * VC_TAG_LEN + 1];
        vc_hex(tag, VC_TAG_LEN, hex);
        CPack *p = find_pack(v, n, d, x.pack);
        if (!p) {
                report(c, d, tag, VC_REPAIR_REINDEX, "chunk %s is indexed in pack %" PRIu32 " of domain %" PRIu64
                       ", which the packs table does not list", hex, x.pack, d);
                return 0;
        }
        p->live_n++;
        if (x.off < VC_PACK_HDR_LEN || x.off + VC_REC_HDR_LEN + x.len > p->e.committed) {
                report(c, d, tag, VC_REPAIR_REINDEX_IF, "chunk %s is indexed at offset %" PRIu64 " of pack %" PRIu32
                       ", past its committed length %" PRIu64, hex, x.off, x.pack, p->e.committed);
                return 0;
        }
        VcPackRef ref;
        int r = vc_store_pack_open(c->s, d, x.pack, &ref);
        if (r == -ENOENT) {
                p->missing = true;
                report(c, d, tag, VC_REPAIR_NONE, "chunk %s is in pack %" PRIu32 " of domain %" PRIu64
                       ", and that pack file is missing", hex, x.pack, d);
                return 0;
        }
        if (r < 0)
                return r;
        r = vc_pack_read_record(ref.fd, x.off, d, tag, &x, NULL);
        vc_store_pack_release(c->s, &ref, false);
        if (r == -EBADMSG || r == -EIO)
                report(c, d, tag, VC_REPAIR_REINDEX_IF, "chunk %s: the record at offset %" PRIu64 " of pack %" PRIu32
                       " of domain %" PRIu64 " is damaged or does not match the index", hex, x.off, x.pack, d);
        else if (r < 0)
                return r;
        return 0;
}

static int cent_cmp(const void *a, const void *b)
{
        const CEnt *x = a, *y = b;
        if (x->domain != y->domain)
                return x->domain < y->domain ? -1 : 1;
        if (x->x.pack != y->x.pack)
                return x->x.pack < y->x.pack ? -1 : 1;
        return x->x.off < y->x.off ? -1 : x->x.off > y->x.off;
}

/* Checks a batch in pack order, after asking the kernel to read ahead the
 * stretches of each pack it will touch: the index is in tag order, which
 * is random in the packs, and cold packs read one header at a time cost a
 * disk seek each. */
static int check_batch(Check *c, CPack *v, size_t n, CEnt *b, size_t nb)
{
        qsort(b, nb, sizeof *b, cent_cmp);
        for (size_t i = 0; i < nb;) {
                size_t j = i + 1;
                uint64_t end = b[i].x.off + VC_REC_HDR_LEN + b[i].x.len;
                while (j < nb && b[j].domain == b[i].domain && b[j].x.pack == b[i].x.pack &&
                       b[j].x.off <= end + (64u << 10)) {
                        end = VC_MAX(end, b[j].x.off + VC_REC_HDR_LEN + b[j].x.len);
                        j++;
                }
                VcPackRef ref;
                if (vc_store_pack_open(c->s, b[i].domain, b[i].x.pack, &ref) == 0) {
                        (void)posix_fadvise(ref.fd, (off_t)b[i].x.off, (off_t)(end - b[i].x.off), POSIX_FADV_WILLNEED);
                        vc_store_pack_release(c->s, &ref, false);
                }
                i = j;
        }
        vc_errclear();
        for (size_t i = 0; i < nb; i++) {
                int r = check_entry(c, v, n, &b[i]);
                if (r < 0)
                        return r;
        }
        return 0;
}

static int check_index(Check *c, VcTxn *t, CPack *v, size_t n)
{
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *cur = NULL;
        int r = vc_db_cursor_open(t, VC_DB_INDEX, NULL, 0, &cur);
        if (r < 0)
                return r;
        enum { BATCH = 1 << 16 };
        CEnt *b = malloc(BATCH * sizeof *b);
        if (!b)
                return -ENOMEM;
        size_t nb = 0;
        const void *k = NULL, *val = NULL;
        size_t kl = 0, vl = 0;
        while ((r = vc_db_cursor_next(cur, &k, &kl, &val, &vl)) != 0) {
                VcIdx x = { 0 };
                uint64_t d = kl >= 8 ? vc_get64be(k) : 0;
                const uint8_t *tag = kl == VC_IDX_KEY_LEN ? (const uint8_t *)k + 8 : NULL;
                c->st.chunks_checked++;
                if ((r < 0 && r != -EBADMSG) || txn_gone(t, r))
                        break;
                if (r < 0 || !tag || vc_idx_decode(val, vl, &x) < 0) {
                        char hex[2 * VC_TAG_LEN + 1] = "?";
                        if (tag)
                                vc_hex(tag, VC_TAG_LEN, hex);
                        report(c, d, tag, VC_REPAIR_REINDEX_IF, "index entry of chunk %s in domain %" PRIu64
                               " is damaged", hex, d);
                        r = 0;
                        continue;
                }
                b[nb].domain = d;
                memcpy(b[nb].tag, tag, VC_TAG_LEN);
                b[nb].x = x;
                if (++nb == BATCH) {
                        if ((r = check_batch(c, v, n, b, nb)) < 0)
                                break;
                        nb = 0;
                }
        }
        if (r == 0 && nb)
                r = check_batch(c, v, n, b, nb);
        free(b);
        return r < 0 ? r : 0;
}

static int check_record(uint64_t off, const VcRecHdr *h, const uint8_t *data, void *ctx)
{
        Check *c = ctx;
        if (!h) {
                report(c, c->domain, NULL, VC_REPAIR_NONE, "damaged record header at offset %" PRIu64 " of pack %" PRIu32
                       " of domain %" PRIu64, off, c->pack, c->domain);
                return 0;
        }
        char hex[2 * VC_TAG_LEN + 1];
        vc_hex(h->tag, VC_TAG_LEN, hex);
        if (!data) {
                report(c, c->domain, h->tag, VC_REPAIR_NONE, "record of chunk %s at offset %" PRIu64 " of pack %" PRIu32
                       " runs past the committed length", hex, off, c->pack);
                return 0;
        }
        uint8_t digest[VC_HASH_LEN];
        vc_sha256(data, h->len, digest);
        c->st.bytes_checked += h->len;
        if (c->s->progress)
                vc_progress(c->s->progress, c->st.bytes_checked);
        if (memcmp(digest, h->tag, VC_TAG_LEN) != 0)
                report(c, c->domain, h->tag, VC_REPAIR_NONE, "data of chunk %s at offset %" PRIu64 " of pack %" PRIu32
                       " of domain %" PRIu64 " does not match its tag", hex, off, c->pack, c->domain);
        return 0;
}

static int check_packs(Check *c, CPack *v, size_t n)
{
        for (size_t i = 0; i < n; i++) {
                CPack *p = &v[i];
                char path[PATH_MAX];
                vc_pack_path(c->s, p->domain, p->pack, path, sizeof path);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        /* Missing with live records was reported per chunk;
                         * missing without is a compaction that died before
                         * forgetting the pack: harmless. */
                        if (errno == ENOENT)
                                continue;
                        return vc_errf(-errno, "cannot open %s: %s", path, strerror(errno));
                }
                struct stat st;
                uint64_t end = p->e.committed;
                if (fstat(fd, &st) == 0 && (uint64_t)st.st_size < end) {
                        report(c, p->domain, NULL, VC_REPAIR_NONE, "pack %s is %" PRIu64 " bytes, shorter than its committed "
                               "length %" PRIu64, path, (uint64_t)st.st_size, end);
                        end = (uint64_t)st.st_size;
                }
                if (vc_pack_check_hdr(c->s, fd, p->domain, p->pack) < 0) {
                        report(c, p->domain, NULL, VC_REPAIR_NONE, "%s", vc_errmsg(-EBADMSG));
                        vc_errclear();
                }
                c->domain = p->domain;
                c->pack = p->pack;
                int r = vc_pack_walk(fd, p->domain, VC_PACK_HDR_LEN, end, check_record, c);
                close(fd);
                if (r < 0)
                        return vc_errf(r, "cannot read %s: %s", path, strerror(-r));
                c->st.packs_checked++;
        }
        return 0;
}

/* The packs/<id>/domain files: each domain of the index has one that reads
 * back and names it as the index does, and no directory holds packs of a
 * domain the index has forgotten. */
static int check_domain_files(Check *c, VcTxn *t)
{
        if (c->unchecked[VC_DB_DOMAINS])
                return 0;
        uint64_t next = 1;
        int r = vc_domain_next_id(t, &next);
        if (r == -EBADMSG) {
                if (txn_gone(t, r))
                        return r;
                vc_errclear();  /* reported by check_tables */
                next = 0;
        } else if (r < 0)
                return r;
        uint64_t *known = NULL;
        size_t nknown = 0;
        {
                _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *cur = NULL;
                if ((r = vc_db_cursor_open(t, VC_DB_DOMAINS, "i", 1, &cur)) < 0)
                        return r;
                const void *k = NULL, *v = NULL;
                size_t kl = 0, vl = 0;
                while ((r = vc_db_cursor_next(cur, &k, &kl, &v, &vl)) != 0) {
                        if (txn_gone(t, r) || (r < 0 && r != -EBADMSG))
                                break;
                        if (r < 0 || kl != 9)
                                continue;       /* reported by check_tables */
                        uint64_t id = vc_get64be((const uint8_t *)k + 1);
                        char want[64], got[64], rel[64];
                        snprintf(want, sizeof want, "%.*s", (int)VC_MIN(vl, sizeof want - 1), (const char *)v);
                        snprintf(rel, sizeof rel, "packs/%" PRIu64 "/domain", id);
                        uint64_t *nk = realloc(known, (nknown + 1) * sizeof *nk);
                        if (!nk) {
                                r = -ENOMEM;
                                break;
                        }
                        known = nk;
                        known[nknown++] = id;
                        c->st.domains_checked++;
                        int q = vc_domain_file_read(c->s, id, got, sizeof got);
                        vc_errclear();
                        if (q == -ENOENT)
                                report(c, id, NULL, VC_REPAIR_REINDEX,
                                       "%s is missing (the index names domain %" PRIu64 " '%s'; reindex writes the "
                                       "file again)", rel, id, want);
                        else if (q < 0)
                                report(c, id, NULL, VC_REPAIR_REINDEX,
                                       "%s is damaged (the index names domain %" PRIu64 " '%s'; reindex writes the "
                                       "file again)", rel, id, want);
                        else if (strcmp(got, want) != 0)
                                report(c, id, NULL, VC_REPAIR_REINDEX,
                                       "%s names '%s', but the index names domain %" PRIu64 " '%s' (reindex writes "
                                       "the file again from the index)", rel, got, id, want);
                }
        }
        if (r < 0) {
                free(known);
                return r;
        }
        /* Directories of domains the index does not know. A domain is
         * registered before any pack of it is made, so only ids below the
         * snapshot's counter are looked at (others may be newer than it). */
        char top[PATH_MAX];
        snprintf(top, sizeof top, "%s/packs", c->s->path);
        DIR *d = opendir(top);
        struct dirent *e;
        while (d && (e = readdir(d))) {
                uint64_t id;
                if (e->d_name[0] < '1' || e->d_name[0] > '9' || vc_parse_u64(e->d_name, "domain", &id) < 0) {
                        vc_errclear();
                        continue;
                }
                bool found = false;
                for (size_t i = 0; i < nknown && !found; i++)
                        found = known[i] == id;
                if (found || id >= next)
                        continue;
                uint64_t packs = 0, bytes = 0;
                vc_store_pack_files(c->s, id, &packs, &bytes);
                if (packs == 0)
                        continue;
                char name[64];
                bool named = vc_domain_file_read(c->s, id, name, sizeof name) == 0;
                vc_errclear();
                report(c, id, NULL, VC_REPAIR_REINDEX,
                       "packs/%" PRIu64 " holds %" PRIu64 " pack%s of a domain the index does not know (%s%s%s; "
                       "reindex indexes them)", id, packs, packs == 1 ? "" : "s",
                       named ? "its domain file names it '" : "and its domain file is unreadable",
                       named ? name : "", named ? "'" : "");
        }
        if (d)
                closedir(d);
        free(known);
        return 0;
}

int vc_store_check_ex(VcStore *s, bool full, vc_damage_ex_fn fn, void *ctx, VcCheckStats *st)
{
        Check c = { .s = s, .fn = fn, .ctx = ctx };
        CPack *v = NULL;
        size_t n = 0;
        VcTxn *t;
        /* One snapshot for the whole check, so that a concurrent flush or
         * compaction cannot show us half of a change. */
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        /* First the pages of the LMDB file: a table with a damaged page is
         * not read through LMDB at all. */
        r = check_pages(&c, t);
        if (r == 0)
                r = check_tables(&c, t);
        if (r == 0 && !c.unchecked[VC_DB_PACKS])
                r = load_packs(t, 0, &v, &n);
        if (r == 0 && !c.st.index_unchecked)
                r = check_index(&c, t, v, n);
        if (r == 0)
                r = check_domain_files(&c, t);
        if (r == 0 && full && !c.unchecked[VC_DB_PACKS]) {
                if (s->progress) {
                        s->progress->total = 0;
                        for (size_t i = 0; i < n; i++)
                                s->progress->total += v[i].e.committed;
                }
                r = check_packs(&c, v, n);
                if (s->progress)
                        vc_progress_end(s->progress, c.st.bytes_checked);
        }
        vc_txn_abort(t);
        free(v);
        if (r < 0)
                return r;
        if (st)
                *st = c.st;
        return c.problems;
}

typedef struct CheckAdapter {
        vc_damage_fn fn;
        void *ctx;
} CheckAdapter;

static void check_adapt(uint64_t domain, const uint8_t *tag, const char *what, VcRepair repair, void *ctx)
{
        (void)repair;
        CheckAdapter *a = ctx;
        if (a->fn)
                a->fn(domain, tag, what, a->ctx);
}

int vc_store_check(VcStore *s, bool full, vc_damage_fn fn, void *ctx, VcCheckStats *st)
{
        CheckAdapter a = { fn, ctx };
        return vc_store_check_ex(s, full, check_adapt, &a, st);
}

void vc_store_set_progress(VcStore *s, struct VcProgress *p)
{
        s->progress = p;
}

/* ---- reindex ----------------------------------------------------------------------------- */

typedef struct Reindex {
        VcTxn *t;
        uint64_t domain;
        uint64_t good_end;      /* end of the last record that checked out */
        int indexed;
        int64_t now;
        uint32_t pack;
} Reindex;

static int reindex_record(uint64_t off, const VcRecHdr *h, const uint8_t *data, void *ctx)
{
        Reindex *x = ctx;
        uint8_t digest[VC_HASH_LEN], k[VC_IDX_KEY_LEN];
        if (!h || !data)
                return 0;       /* damaged, or a torn tail */
        vc_sha256(data, h->len, digest);
        if (memcmp(digest, h->tag, VC_TAG_LEN) != 0)
                return 0;
        x->good_end = off + VC_REC_HDR_LEN + h->len;
        const void *v;
        size_t vl;
        vc_idx_key(k, x->domain, h->tag);
        int r = vc_db_get(x->t, VC_DB_INDEX, k, sizeof k, &v, &vl);
        if (r == 0)
                return 0;       /* a second copy (a lost race, a compaction): dead space */
        VcIdx e = { .pack = x->pack, .off = off, .len = h->len, .kind = h->kind, .stored_at = x->now };
        r = vc_idx_put(x->t, x->domain, h->tag, &e);
        if (r < 0)
                return r;
        x->indexed++;
        return 0;
}

typedef struct LockedFds {
        int *fd;
        size_t n;
} LockedFds;

static void locked_fds_free(LockedFds *l)
{
        for (size_t i = 0; i < l->n; i++)
                close(l->fd[i]);
        free(l->fd);
}

/* Reads the packs of one domain directory into the index. The pack locks
 * are kept (in l) until the transaction commits: a writer claiming a pack
 * before that would cut it to the old committed length. */
static int reindex_domain(VcStore *s, Reindex *x, uint64_t domain, LockedFds *l)
{
        char dir[PATH_MAX], path[PATH_MAX], name[64];
        vc_domain_dir(s, domain, dir, sizeof dir);
        x->domain = domain;

        /* The domain's name, if the table lost it. If the name was given
         * to a new domain meanwhile (created before this reindex), that
         * one keeps the name; this id still gets it for stat. */
        int q;
        if (vc_domain_file_read(s, domain, name, sizeof name) == 0 &&
            ((q = vc_domain_exists(x->t, domain)) == -ENOENT || (q == -EBADMSG && !vc_txn_dead(x->t)))) {
                uint64_t other;
                int r = vc_domain_lookup(x->t, name, &other);
                if (r == -EBADMSG && !vc_txn_dead(x->t))
                        r = -ENOENT;    /* a damaged 'n' record is written again */
                if (r == 0 || r == -ENOENT)
                        r = vc_domain_register(x->t, domain, name, r == -ENOENT);
                if (r < 0)
                        return r;
        }
        if (vc_txn_dead(x->t))
                return -EBADMSG;
        vc_errclear();

        DIR *d = opendir(dir);
        if (!d)
                return vc_errf(-errno, "cannot read %s: %s", dir, strerror(errno));
        uint32_t *packs = NULL, maxp = 0;
        size_t np = 0;
        struct dirent *e;
        int r = 0;
        while ((e = readdir(d))) {
                uint32_t p;
                if (!vc_pack_name_parse(e->d_name, &p))
                        continue;
                uint32_t *nv = realloc(packs, (np + 1) * sizeof *nv);
                if (!nv) {
                        r = -ENOMEM;
                        break;
                }
                packs = nv;
                packs[np++] = p;
        }
        closedir(d);
        for (size_t i = 0; r == 0 && i < np; i++) {
                uint32_t p = packs[i];
                maxp = VC_MAX(maxp, p);
                vc_pack_path(s, domain, p, path, sizeof path);
                int fd = open(path, O_RDONLY | O_CLOEXEC);
                if (fd < 0) {
                        r = vc_errf(-errno, "cannot open %s: %s", path, strerror(errno));
                        break;
                }
                int *nf = realloc(l->fd, (l->n + 1) * sizeof *nf);
                if (!nf) {
                        close(fd);
                        r = -ENOMEM;
                        break;
                }
                l->fd = nf;
                l->fd[l->n++] = fd;
                struct stat st;
                if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
                        r = vc_errf(-EBUSY, "%s is in use by a writer or a compaction; stop them before reindexing",
                                    path);
                        break;
                }
                if (fstat(fd, &st) < 0) {
                        r = -errno;
                        break;
                }
                /* A pack of another store or domain (copied in by hand) is
                 * not ours to index; a damaged header alone does not stop
                 * the records from being read, each names its domain. */
                int h = vc_pack_check_hdr(s, fd, domain, p);
                vc_errclear();
                uint8_t hb[VC_PACK_HDR_LEN];
                VcPackHdr ph = { 0 };
                if (h < 0 && vc_pread_full(fd, hb, sizeof hb, 0) == 0 && vc_pack_hdr_decode(hb, &ph) == 0)
                        continue;
                x->pack = p;
                x->good_end = VC_PACK_HDR_LEN;
                r = vc_pack_walk(fd, domain, VC_PACK_HDR_LEN, (uint64_t)st.st_size, reindex_record, x);
                if (r < 0)
                        break;
                VcPackEnt pe = { .committed = x->good_end,
                                 .flags = x->good_end >= VC_PACK_MAX_DEFAULT ? VC_PACK_SEALED : 0 };
                r = vc_packs_put(x->t, domain, p, &pe);
        }
        free(packs);
        if (r < 0)
                return r;
        uint32_t next = 0;
        r = vc_domain_next_pack(x->t, domain, &next);
        if (r == -EBADMSG && !vc_txn_dead(x->t)) {
                vc_errclear();  /* a damaged counter is written again */
                next = 0;
                r = 0;
        }
        if (r == 0 && next <= maxp)
                r = vc_domain_set_next_pack(x->t, domain, maxp + 1);
        return r;
}

/* Writes again the packs/<id>/domain files that are missing, damaged or
 * name another domain than the index does. */
static int rewrite_domain_files(VcStore *s, VcTxn *t, uint64_t *written)
{
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *cur = NULL;
        int r = vc_db_cursor_open(t, VC_DB_DOMAINS, "i", 1, &cur);
        if (r < 0)
                return r;
        const void *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        while ((r = vc_db_cursor_next(cur, &k, &kl, &v, &vl)) != 0) {
                if (r == -EBADMSG && !vc_txn_dead(t)) {
                        vc_errclear();  /* a record we could not repair: no name to write */
                        continue;
                }
                if (r < 0)
                        return r;
                char want[64], got[64];
                if (kl != 9 || vl == 0 || vl >= sizeof want)
                        continue;
                memcpy(want, v, vl);
                want[vl] = 0;
                uint64_t id = vc_get64be((const uint8_t *)k + 1);
                int q = vc_domain_file_read(s, id, got, sizeof got);
                vc_errclear();
                if (q == 0 && strcmp(got, want) == 0)
                        continue;
                if ((r = vc_domain_file_write(s, id, want)) < 0)
                        return r;
                (*written)++;
        }
        return 0;
}

/* The index cannot be used: moves it aside and opens a new, empty one. */
static int replace_index(VcStore *s, const char *why, VcReindexInfo *info)
{
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/index", s->path);
        snprintf(info->why, sizeof info->why, "%s", why);
        if (s->db) {
                if (vc_db_in_use(s->db))
                        return vc_errf(-EBUSY, "the store's index is damaged, and another handle of this process "
                                       "has it open: close it before reindexing");
                vc_db_unref(s->db);
                s->db = NULL;
                if (!s->index_msg) {
                        s->index_err = -EBADMSG;
                        s->index_msg = strdup(why);
                }
        }
        int r = vc_db_move_aside(dir, info->moved_to, sizeof info->moved_to);
        if (r < 0)
                return r;
        r = vc_db_open(dir, VC_DB_CREATE, &s->db);
        if (r < 0)
                return r;
        s->index_err = 0;
        free(s->index_msg);
        s->index_msg = NULL;
        info->replaced = true;
        return 0;
}

/* A new index: the catalog and the domains table from the damaged one, if
 * they read back whole. */
static int recover_catalog(VcTxn *t, VcReindexInfo *info)
{
        /* The meta table hands out parcel ids and commit numbers: it must
         * come back whole, or a new parcel could get the id (and with it
         * the privacy domain) of an old one. Parcels and versions may come
         * back in part: a lost record is a lost parcel or version, which
         * verify then reports. */
        static const VcDbTable whole[] = { VC_DB_META };
        static const VcDbTable part[] = { VC_DB_PARCELS, VC_DB_VERSIONS };
        static const VcDbTable domains[] = { VC_DB_DOMAINS };
        VcDbRecovered rc;
        int r = vc_db_recover(info->moved_to, t, whole, VC_ARRAY_SIZE(whole), part, VC_ARRAY_SIZE(part), &rc);
        if (r < 0)
                return r;
        info->catalog_records = rc.records;
        info->catalog_lost = rc.lost;
        info->catalog = rc.from == 1 ? VC_CATALOG_RECOVERED
                        : rc.from == 2 ? VC_CATALOG_RECOVERED_OLDER
                        : rc.from == 3 ? VC_CATALOG_RECOVERED_PART
                                       : VC_CATALOG_LOST;
        if (rc.from != 1)
                snprintf(info->catalog_why, sizeof info->catalog_why, "%s", rc.why);
        /* When info->catalog is VC_CATALOG_LOST, this is where the catalog
         * is to be rebuilt from the catalog records in the packs (a later
         * step): the index and packs tables are not built yet, the domains
         * table is (below, then from the domain files). */
        r = vc_db_recover(info->moved_to, t, NULL, 0, domains, VC_ARRAY_SIZE(domains), &rc);
        if (r < 0)
                return r;
        info->domains_recovered = rc.from != 0;
        return 0;
}

int vc_store_reindex(VcStore *s)
{
        return vc_store_reindex_ex(s, NULL);
}

int vc_store_reindex_ex(VcStore *s, VcReindexInfo *info)
{
        VcReindexInfo local;
        if (!info)
                info = &local;
        memset(info, 0, sizeof *info);
        /* Reindex holds a lock on every pack until it commits; make room. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
        char top[PATH_MAX];
        snprintf(top, sizeof top, "%s/packs", s->path);
        LockedFds l = { 0 };
        Reindex x = { .now = vc_now() };
        int r;
        /* A sound index is rebuilt in place. Whether it is sound is known
         * once the write transaction has begun: before the first write, every
         * page of it is read (vc_store_db.c). */
        if (s->db) {
                r = vc_txn_begin(s, true, &x.t);
                if (r < 0 && r != -EBADMSG)
                        return r;
                if (r == -EBADMSG) {
                        char why[1024];
                        snprintf(why, sizeof why, "%s", vc_errmsg(r));
                        vc_errclear();
                        r = replace_index(s, why, info);
                        if (r == 0)
                                r = vc_txn_begin(s, true, &x.t);
                        if (r == 0)
                                r = recover_catalog(x.t, info);
                } else if (s->index_new) {
                        info->replaced = true;
                        info->catalog = VC_CATALOG_LOST;
                        snprintf(info->why, sizeof info->why, "index/data.mdb was missing or empty");
                        snprintf(info->catalog_why, sizeof info->catalog_why,
                                 "there was no index to recover it from");
                }
        } else {
                r = replace_index(s, s->index_msg ? s->index_msg : "the index could not be opened", info);
                if (r == 0)
                        r = vc_txn_begin(s, true, &x.t);
                if (r == 0)
                        r = recover_catalog(x.t, info);
        }
        if (r < 0) {
                vc_txn_abort(x.t);
                return r;
        }
        r = vc_db_drop(x.t, VC_DB_INDEX);
        if (r == 0)
                r = vc_db_drop(x.t, VC_DB_PACKS);
        uint64_t maxd = 0;
        DIR *d = r == 0 ? opendir(top) : NULL;
        if (r == 0 && !d)
                r = vc_errf(-errno, "cannot read %s: %s", top, strerror(errno));
        struct dirent *e;
        while (r == 0 && (e = readdir(d))) {
                uint64_t id;
                if (e->d_name[0] < '1' || e->d_name[0] > '9' || vc_parse_u64(e->d_name, "domain", &id) < 0) {
                        vc_errclear();
                        continue;
                }
                maxd = VC_MAX(maxd, id);
                r = reindex_domain(s, &x, id, &l);
        }
        if (d)
                closedir(d);
        uint64_t next = 0;
        if (r == 0) {
                r = vc_domain_next_id(x.t, &next);
                if (r == -EBADMSG && !vc_txn_dead(x.t)) {
                        vc_errclear();  /* a damaged counter is written again */
                        next = 0;
                        r = 0;
                }
        }
        if (r == 0 && next <= maxd)
                r = vc_domain_set_next_id(x.t, maxd + 1);
        if (r == 0)
                r = rewrite_domain_files(s, x.t, &info->domain_files_written);
        if (r < 0) {
                vc_txn_abort(x.t);
                locked_fds_free(&l);
                return r;
        }
        r = vc_txn_commit(x.t);
        locked_fds_free(&l);
        vc_store_pack_cache_flush(s);
        if (r == 0)
                s->index_new = false;
        return r < 0 ? r : x.indexed;
}
