/* vc_store_gc — walking the index: chunk iteration, sweep, reclaiming
 * dead space (deleting, punching and compacting packs), check and
 * reindex; and what a full disk needs: the free space, the reserve. */
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
#include <sys/statvfs.h>
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

int vc_txn_sweep_list(VcTxn *t, int (*is_live)(const VcChunkInfo *ci, void *ctx), void *ctx, int64_t cutoff,
                      VcChunkRef **ret, size_t *ret_n, VcSweepStats *st)
{
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *c = NULL;
        int r = vc_db_cursor_open(t, VC_DB_INDEX, NULL, 0, &c);
        if (r < 0)
                return r;
        VcSweepStats z = { 0 };
        VcChunkRef *v = NULL;
        size_t n = 0, cap = 0;
        const void *k = NULL, *val = NULL;
        size_t kl = 0, vl = 0;
        while ((r = vc_db_cursor_next(c, &k, &kl, &val, &vl)) != 0) {
                VcChunkInfo ci = { 0 };
                if (r < 0 && r != -EBADMSG)
                        break;
                if (r < 0 || vc_idx_info(k, kl, val, vl, &ci) < 0) {
                        r = vc_db_damaged(VC_DB_INDEX, k, kl);
                        break;
                }
                int live = is_live(&ci, ctx);
                if (live < 0) {
                        r = live;
                        break;
                }
                if (!live && ci.stored_at < cutoff) {
                        if (n == cap) {
                                cap = cap ? 2 * cap : 4096;
                                VcChunkRef *nv = realloc(v, cap * sizeof *nv);
                                if (!nv) {
                                        r = -ENOMEM;
                                        break;
                                }
                                v = nv;
                        }
                        v[n].domain = ci.domain;
                        memcpy(v[n].tag, ci.tag, VC_TAG_LEN);
                        n++;
                        z.chunks_freed++;
                        z.bytes_freed += ci.len;
                        continue;
                }
                if (!live)
                        z.chunks_young++;
                z.chunks_kept++;
                z.bytes_kept += ci.len;
        }
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        if (st)
                *st = z;
        return 0;
}

int vc_txn_sweep_refs(VcTxn *t, int (*is_live)(const VcChunkInfo *ci, void *ctx), void *ctx, int64_t cutoff,
                      const VcChunkRef *refs, size_t n, uint64_t *ret_chunks, uint64_t *ret_bytes)
{
        if (!vc_txn_is_write(t))
                return vc_errf(-EINVAL, "sweep needs a write transaction");
        for (size_t i = 0; i < n; i++) {
                VcIdx x = { 0 };
                int r = vc_idx_get(t, refs[i].domain, refs[i].tag, &x);
                if (r == -ENOENT)
                        continue;       /* gone meanwhile */
                if (r < 0)
                        return r;
                VcChunkInfo ci = { .domain = refs[i].domain, .kind = x.kind, .pack = x.pack, .offset = x.off,
                                   .len = x.len, .stored_at = x.stored_at };
                memcpy(ci.tag, refs[i].tag, VC_TAG_LEN);
                int live = is_live(&ci, ctx);
                if (live < 0)
                        return live;
                if (live || ci.stored_at >= cutoff)
                        continue;
                uint8_t k[VC_IDX_KEY_LEN];
                vc_idx_key(k, ci.domain, ci.tag);
                r = vc_db_del(t, VC_DB_INDEX, k, sizeof k);
                if (r < 0)
                        return r;
                (*ret_chunks)++;
                *ret_bytes += ci.len;
        }
        return 0;
}

/* ---- a full disk --------------------------------------------------------------------- */

static int statvfs_free(const VcStore *s, uint64_t *ret)
{
        struct statvfs sv;
        if (statvfs(s->path, &sv) < 0)
                return -errno;
        *ret = (uint64_t)sv.f_bavail * (uint64_t)sv.f_frsize;
        return 0;
}

/* The free space gc plans with. Test hook: $VMCAS_TEST_FREE_SPACE (bytes)
 * makes gc believe it has that much, so that a test can drive it into
 * running out midway. */
static int free_bytes(const VcStore *s, uint64_t *ret)
{
        const char *e = getenv("VMCAS_TEST_FREE_SPACE");
        if (e && *e) {
                *ret = strtoull(e, NULL, 10);
                return 0;
        }
        return statvfs_free(s, ret);
}

int vc_store_free_space(VcStore *s, uint64_t *ret)
{
        int r = free_bytes(s, ret);
        if (r < 0)
                return vc_errf(r, "cannot tell the free space of %s: %s", s->path, strerror(-r));
        return 0;
}

bool vc_store_out_of_space(VcStore *s, int r)
{
        uint64_t avail = 0;
        if (r == -ENOSPC || r == -EDQUOT)
                return true;
        /* LMDB reports a write that a full disk cut short as EIO. */
        return r == -EIO && statvfs_free(s, &avail) == 0 && avail < VC_STORE_RESERVE;
}

static void reserve_path(const VcStore *s, char *buf, size_t len, bool tmp)
{
        snprintf(buf, len, "%s/%s%s", s->path, VC_RESERVE_NAME, tmp ? ".tmp" : "");
}

uint64_t vc_store_reserve_release(VcStore *s)
{
        char path[PATH_MAX];
        struct stat st;
        reserve_path(s, path, sizeof path, false);
        if (stat(path, &st) < 0 || unlink(path) < 0)
                return 0;
        /* ext4 hands freed blocks out again only once its journal has
         * committed the unlink; the directory sync commits it. */
        (void)vc_fsync_dir(s->path);
        return (uint64_t)st.st_blocks * 512;
}

int vc_store_reserve_restore(VcStore *s)
{
        char path[PATH_MAX], tmp[PATH_MAX];
        struct stat st;
        reserve_path(s, path, sizeof path, false);
        reserve_path(s, tmp, sizeof tmp, true);
        if (stat(path, &st) == 0 && (uint64_t)st.st_blocks * 512 >= VC_STORE_RESERVE)
                return 0;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        /* Allocated for real (a sparse file would hold nothing back). */
        int r = fallocate(fd, 0, 0, (off_t)VC_STORE_RESERVE) < 0 ? -errno : 0;
        if (r == -EOPNOTSUPP || r == -ENOSYS) {
                static const uint8_t zero[65536];
                r = 0;
                for (uint64_t off = 0; r == 0 && off < VC_STORE_RESERVE; off += sizeof zero)
                        r = vc_pwrite_full(fd, zero, sizeof zero, (off_t)off);
        }
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        (void)vc_fsync_dir(s->path);
        return 0;
}

void vc_store_reserve_ensure(VcStore *s)
{
        char path[PATH_MAX];
        uint64_t avail = 0;
        reserve_path(s, path, sizeof path, false);
        if (access(path, F_OK) == 0 || errno != ENOENT)
                return;
        if (free_bytes(s, &avail) == 0 && avail >= 4 * VC_STORE_RESERVE)
                (void)vc_store_reserve_restore(s);
}

/* ---- packs as the gc sees them ------------------------------------------------------ */

typedef struct CPack {
        uint64_t domain;
        uint32_t pack;
        VcPackEnt e;
        uint64_t live_n, live_bytes;    /* records the index points at */
        uint64_t size, disk;            /* reclaim: file size, bytes allocated to it */
        int fd;                         /* reclaim: locked fd (read-write), or -1 */
        bool cand;                      /* reclaim: locked, to work on */
        bool missing, keep;
        bool comp;                      /* worth compacting */
        bool grp;                       /* in the compaction group being rewritten */
        bool go;                        /* to retire and delete */
        bool moved;                     /* its live records were copied out */
        bool punched;                   /* its dead stretches were punched in this pass */
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

/* A live record of a pack being reclaimed: kept in place by punching,
 * moved out by compaction. */
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

static uint64_t record_bytes(const CPack *p)
{
        return p->e.committed > VC_PACK_HDR_LEN ? p->e.committed - VC_PACK_HDR_LEN : 0;
}

/* Live ratio = live record bytes / record bytes, so that a pack with no
 * dead record is at 1.0 and never rewritten, whatever the ratio asked. */
static bool worth_compacting(const CPack *p, double ratio)
{
        return p->live_n == 0 || (double)p->live_bytes < ratio * (double)record_bytes(p);
}

/* Anything to free: a dead record, no live one, or an unindexed tail. */
static bool has_dead(const CPack *p)
{
        return p->live_n == 0 || p->live_bytes < record_bytes(p) || p->size > p->e.committed;
}

static int move_cmp(const void *a, const void *b)
{
        const Move *x = a, *y = b;
        if (x->pack != y->pack)
                return x->pack < y->pack ? -1 : 1;
        return x->off < y->off ? -1 : x->off > y->off;
}

/* Bytes the pack files take on disk: allocated blocks, which punching
 * lowers and the file sizes do not show. */
static int pack_disk_bytes(const VcStore *s, uint64_t *ret)
{
        char top[PATH_MAX], dir[PATH_MAX + 256], path[PATH_MAX + 512];
        snprintf(top, sizeof top, "%s/packs", s->path);
        uint64_t bytes = 0;
        DIR *d = opendir(top);
        if (!d)
                return vc_errf(-errno, "cannot read %s: %s", top, strerror(errno));
        struct dirent *e;
        while ((e = readdir(d))) {
                if (e->d_name[0] < '1' || e->d_name[0] > '9')
                        continue;
                if ((size_t)snprintf(dir, sizeof dir, "%s/%s", top, e->d_name) >= sizeof dir)
                        continue;
                DIR *dd = opendir(dir);
                if (!dd)
                        continue;
                struct dirent *f;
                uint32_t p;
                struct stat st;
                while ((f = readdir(dd)))
                        if (vc_pack_name_parse(f->d_name, &p) &&
                            (size_t)snprintf(path, sizeof path, "%s/%s", dir, f->d_name) < sizeof path &&
                            stat(path, &st) == 0)
                                bytes += (uint64_t)st.st_blocks * 512;
                closedir(dd);
        }
        closedir(d);
        *ret = bytes;
        return 0;
}

/* ---- reclaiming dead space ---------------------------------------------------------------
 *
 * Per domain, in an order that frees space before anything allocates:
 *   1. packs with no live record are deleted (retire, unlink, forget);
 *   2. unindexed tails (past the committed length) are cut off;
 *   3. the dead stretches of every other pack are punched out in place:
 *      a filler record header is written over the first dead record and
 *      synced, then the whole blocks under the rest are punched;
 *   4. packs worth compacting are rewritten, in groups whose rewrite fits
 *      in the free space; a group that does not fit, or runs out of space
 *      midway (abandoned: its new pack is cut back or deleted by the
 *      writer, the index is untouched), is punched instead.
 * On a disk with room for every rewrite, step 3 leaves the packs step 4
 * will rewrite alone. Every pack worked on is locked (flock) first: a
 * pack a writer holds is skipped, and while we hold it nothing can make
 * a dead record live again (writers index only what they append; reindex
 * needs every lock), so the live records counted after locking are all
 * there is to keep. */

/* Free space kept beyond the bytes a rewrite needs. */
#define VC_GC_MARGIN (2 * VC_STORE_RESERVE)
/* A compaction group moves at most this much: one flush of its writer,
 * so a group is indexed all at once or not at all. */
#define VC_GC_GROUP (VC_FLUSH_BYTES / 2)

typedef struct Reclaim {
        VcStore *s;
        uint64_t domain;
        CPack *v;
        size_t n;
        Move *moves;            /* live records of the locked packs, by (pack, offset) */
        size_t nmoves;
        uint64_t db_pages;      /* pages of the index file: what moves can cost it at most */
        bool *no_punch;         /* the file system cannot punch holes */
        VcCompactStats *z;
} Reclaim;

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
                p->fd = open(path, O_RDWR | O_CLOEXEC);
                if (p->fd < 0) {
                        p->missing = errno == ENOENT;
                        p->cand = p->missing;
                        continue;
                }
                if (flock(p->fd, LOCK_EX | LOCK_NB) < 0 || fstat(p->fd, &st) < 0 || st.st_nlink == 0) {
                        close(p->fd);
                        p->fd = -1;
                        p->cand = false;
                        continue;
                }
                p->size = (uint64_t)st.st_size;
                p->disk = (uint64_t)st.st_blocks * 512;
        }
}

/* The first and one-past-last index in rc->moves of pack p's records. */
static void moves_of(const Reclaim *rc, uint32_t pack, size_t *lo, size_t *hi)
{
        size_t a = 0, b = rc->nmoves;
        while (a < b) {
                size_t mid = (a + b) / 2;
                if (rc->moves[mid].pack < pack)
                        a = mid + 1;
                else
                        b = mid;
        }
        *lo = a;
        while (a < rc->nmoves && rc->moves[a].pack == pack)
                a++;
        *hi = a;
}

/* What rewriting p costs in free space: its live records, and at worst a
 * fresh index page per record moved (bounded by the index's size). */
static uint64_t rewrite_cost(const Reclaim *rc, const CPack *p)
{
        return p->live_bytes + VC_MIN(p->live_n, rc->db_pages) * 4096 + 65536;
}

typedef struct Gap {
        uint64_t a, b;          /* dead records [a, b): a filler goes at a */
        uint64_t hs, he;        /* the whole blocks under it, punched */
        bool ok;
} Gap;

static int add_gap(Gap **g, size_t *n, size_t *cap, uint64_t a, uint64_t b, uint64_t bs)
{
        if (b <= a || b - a < VC_REC_HDR_LEN || b - a - VC_REC_HDR_LEN > UINT32_MAX)
                return 0;       /* (a stretch of over 4 GiB is left to compaction) */
        uint64_t hs = (a + VC_REC_HDR_LEN + bs - 1) / bs * bs, he = b / bs * bs;
        if (he <= hs)
                return 0;       /* no whole block to free: leave the records be */
        if (*n == *cap) {
                *cap = *cap ? 2 * *cap : 64;
                Gap *ng = realloc(*g, *cap * sizeof *ng);
                if (!ng)
                        return -ENOMEM;
                *g = ng;
        }
        (*g)[(*n)++] = (Gap){ .a = a, .b = b, .hs = hs, .he = he };
        return 0;
}

/* Frees the dead stretches of locked pack p in place. A stretch runs from
 * the end of a live record (or the pack header) to the start of the next
 * live record (or the committed length), so it is whole records, and the
 * filler written at its start says how far to skip: the walk lands on the
 * next live record exactly. The filler headers are synced before any hole
 * is punched, so a walk never meets a hole it cannot step over. */
static int punch_pack(Reclaim *rc, CPack *p)
{
        p->punched = true;
        if (*rc->no_punch || p->fd < 0)
                return 0;
        struct stat st;
        struct statvfs sv;
        if (fstat(p->fd, &st) < 0)
                return -errno;
        /* Holes are made of whole file system blocks. */
        uint64_t bs = st.st_blksize > 0 ? (uint64_t)st.st_blksize : 4096;
        if (fstatvfs(p->fd, &sv) == 0 && sv.f_frsize > bs)
                bs = sv.f_frsize;
        uint64_t disk0 = (uint64_t)st.st_blocks * 512, end = VC_MIN(p->e.committed, (uint64_t)st.st_size);
        size_t lo, hi, ng = 0, cap = 0;
        Gap *g = NULL;
        int r = 0;
        moves_of(rc, p->pack, &lo, &hi);
        uint64_t pos = VC_PACK_HDR_LEN;
        for (size_t i = lo; r == 0 && i < hi; i++) {
                const Move *m = &rc->moves[i];
                if (m->off > pos)
                        r = add_gap(&g, &ng, &cap, pos, VC_MIN(m->off, end), bs);
                pos = VC_MAX(pos, m->off + VC_REC_HDR_LEN + m->len);
        }
        if (r == 0 && end > pos)
                r = add_gap(&g, &ng, &cap, pos, end, bs);

        size_t wrote = 0;
        for (size_t i = 0; r == 0 && i < ng; i++) {
                uint8_t hb[VC_REC_HDR_LEN];
                VcRecHdr h = { 0 };
                uint64_t len = g[i].b - g[i].a - VC_REC_HDR_LEN;
                if (pread(p->fd, hb, sizeof hb, (off_t)g[i].a) == (ssize_t)sizeof hb && vc_rec_hdr_decode(hb, &h) == 0 &&
                    h.kind == VC_KIND_FREE && h.domain == p->domain && h.len == len) {
                        g[i].ok = true;         /* a filler from an earlier gc */
                        continue;
                }
                h = (VcRecHdr){ .kind = VC_KIND_FREE, .domain = p->domain, .len = (uint32_t)len };
                vc_rec_hdr_encode(&h, hb);
                /* An overwrite of a block that is there: needs no space. */
                if (vc_pwrite_full(p->fd, hb, sizeof hb, (off_t)g[i].a) < 0)
                        break;
                g[i].ok = true;
                wrote++;
        }
        if (r == 0 && wrote && fdatasync(p->fd) < 0)
                ng = 0;                         /* the fillers may not be on disk: punch nothing */
        if (r == 0 && wrote)
                vc_crash_point("punch-marked");
        for (size_t i = 0; r == 0 && i < ng; i++) {
                if (!g[i].ok)
                        continue;
                off_t d = lseek(p->fd, (off_t)g[i].hs, SEEK_DATA);
                if ((d < 0 && errno == ENXIO) || (d >= 0 && (uint64_t)d >= g[i].he))
                        continue;               /* a hole already */
                if (fallocate(p->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, (off_t)g[i].hs,
                              (off_t)(g[i].he - g[i].hs)) < 0) {
                        if (errno == EOPNOTSUPP || errno == ENOSYS)
                                *rc->no_punch = true;
                        break;                  /* what is punched is punched; the rest waits */
                }
        }
        free(g);
        vc_errclear();
        if (r < 0)
                return r;
        if (fstat(p->fd, &st) == 0 && (uint64_t)st.st_blocks * 512 < disk0) {
                rc->z->bytes_punched += disk0 - (uint64_t)st.st_blocks * 512;
                rc->z->packs_punched++;
                p->disk = (uint64_t)st.st_blocks * 512;
        }
        return 0;
}

/* Copies the live records of the locked packs of the current group
 * through w. A record whose header or data does not check out stays where
 * it is, and so does its pack. */
static int copy_live(Reclaim *rc, VcWriter *w)
{
        VcStore *s = rc->s;
        VcPackReader rd = { .fd = -1 };
        CPack *cur = NULL;
        int r = 0;
        for (size_t i = 0; i < rc->nmoves && r == 0; i++) {
                Move *m = &rc->moves[i];
                if (!cur || cur->pack != m->pack) {
                        vc_preader_done(&rd);
                        cur = find_pack(rc->v, rc->n, rc->domain, m->pack);
                        vc_preader_init(&rd, cur->fd, cur->e.committed);
                }
                if (!cur->grp)
                        continue;
                const uint8_t *p;
                VcRecHdr h = { 0 };
                uint8_t digest[VC_HASH_LEN];
                if (vc_preader_get(&rd, m->off, VC_REC_HDR_LEN + (size_t)m->len, &p) < 0 ||
                    vc_rec_hdr_decode(p, &h) < 0 || h.domain != rc->domain || h.len != m->len ||
                    h.kind != m->kind || memcmp(h.tag, m->tag, VC_TAG_LEN) != 0) {
                        cur->keep = true;
                        continue;
                }
                vc_sha256(p + VC_REC_HDR_LEN, m->len, digest);
                if (memcmp(digest, m->tag, VC_TAG_LEN) != 0) {
                        cur->keep = true;
                        continue;
                }
                r = vc_writer_move(w, rc->domain, m->kind, m->tag, p + VC_REC_HDR_LEN, m->len, m->pack, m->off);
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

/* Marks the packs to go (go) retired, after checking in the same
 * transaction that no index entry points into them; one that has a live
 * record loses go. Should the disk be too full for the commit, the count
 * stands all the same: we hold the packs' locks, so none can come to hold
 * a live record again, and deleting them without the mark is safe (a
 * packs entry whose file is gone and that nothing points into is
 * harmless, and forgotten later). */
static int retire(VcStore *s, uint64_t domain, CPack *v, size_t n)
{
        VcTxn *t;
        int r = vc_txn_begin(s, true, &t);
        if (r < 0)
                return r;
        r = count_live(t, domain, v, n, NULL, NULL);
        bool any = false;
        for (size_t i = 0; r == 0 && i < n; i++) {
                CPack *p = &v[i];
                if (!p->go)
                        continue;
                if (p->live_n) {
                        p->go = false;
                        continue;
                }
                if (!p->missing) {
                        p->e.flags |= VC_PACK_RETIRED | VC_PACK_SEALED;
                        r = vc_packs_put(t, domain, p->pack, &p->e);
                        any = true;
                }
        }
        if (r < 0 || !any) {
                vc_txn_abort(t);
                return r;
        }
        r = vc_txn_commit(t);
        if (r < 0 && vc_store_out_of_space(s, r)) {
                vc_errclear();
                r = 0;
        }
        return r;
}

/* Unlinks the packs to go, then forgets them (if the index can take the
 * change: on a full disk the entries stay, harmless, until a later gc). */
static int delete_retired(VcStore *s, uint64_t domain, CPack *v, size_t n, VcCompactStats *z)
{
        char dir[PATH_MAX], path[PATH_MAX];
        bool any = false;
        vc_domain_dir(s, domain, dir, sizeof dir);
        for (size_t i = 0; i < n; i++) {
                CPack *p = &v[i];
                if (!p->go)
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
                if (!p->go)
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
        r = vc_txn_commit(t);
        if (r < 0 && vc_store_out_of_space(s, r)) {
                vc_errclear();
                r = 0;
        }
        for (size_t i = 0; i < n; i++)
                if (v[i].go) {
                        v[i].go = v[i].cand = false;
                        if (v[i].fd >= 0)
                                close(v[i].fd);
                        v[i].fd = -1;
                }
        return r;
}

/* Rewrites the packs marked grp. 1 if done, 0 if it ran out of space and
 * was abandoned (nothing of it indexed), <0 on failure. */
static int compact_group(Reclaim *rc)
{
        VcStore *s = rc->s;
        VcWriter *w = NULL;
        int r = vc_writer_new(s, &w);
        if (r == 0)
                r = copy_live(rc, w);
        if (r == 0)
                rc->z->chunks_moved += vc_writer_moved(w);
        /* Cuts what this writer appended and did not commit; deletes a
         * pack it created and committed nothing to. */
        vc_writer_free(w);
        if (r < 0 && vc_store_out_of_space(s, r)) {
                vc_errclear();
                return 0;
        }
        if (r < 0)
                return r;
        vc_crash_point("compact-copied");
        for (size_t i = 0; i < rc->n; i++) {
                CPack *p = &rc->v[i];
                p->moved = p->grp && p->live_n > 0;
                p->go = p->grp && !p->keep;
        }
        r = retire(s, rc->domain, rc->v, rc->n);
        if (r < 0)
                return r;
        vc_crash_point("compact-retired");
        for (size_t i = 0; i < rc->n; i++)
                if (rc->v[i].go && rc->v[i].moved)
                        rc->z->packs_rewritten++;
        r = delete_retired(s, rc->domain, rc->v, rc->n, rc->z);
        return r < 0 ? r : 1;
}

static int reclaim_domain(VcStore *s, uint64_t domain, double ratio, bool *no_punch, VcCompactStats *z)
{
        Reclaim rc = { .s = s, .domain = domain, .no_punch = no_punch, .z = z };
        uint64_t dbb = 0;
        int r = vc_db_bytes(s->db, &dbb);
        if (r < 0)
                return r;
        rc.db_pages = dbb / 4096 + 16;
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(s, false, &t);
                if (r == 0)
                        r = load_packs(t, domain, &rc.v, &rc.n);
                if (r == 0)
                        r = count_live(t, domain, rc.v, rc.n, NULL, NULL);
        }
        if (r < 0)
                goto out;
        bool any = false;
        for (size_t i = 0; i < rc.n; i++) {
                CPack *p = &rc.v[i];
                char path[PATH_MAX];
                struct stat st;
                vc_pack_path(s, domain, p->pack, path, sizeof path);
                if (stat(path, &st) == 0)
                        p->size = (uint64_t)st.st_size;
                p->cand = has_dead(p);
                any |= p->cand;
        }
        if (!any)
                goto out;
        lock_candidates(s, rc.v, rc.n);
        /* Now that no writer can append to the candidates, count again
         * from a fresh snapshot: a writer may have flushed more into one
         * between the first count and our lock. */
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(s, false, &t);
                for (size_t i = 0; r == 0 && i < rc.n; i++) {
                        if (!rc.v[i].cand)
                                continue;
                        r = vc_packs_get(t, domain, rc.v[i].pack, &rc.v[i].e);
                        if (r == -ENOENT) {
                                rc.v[i].cand = false;   /* another compaction got it */
                                r = 0;
                        }
                }
                if (r == 0)
                        r = count_live(t, domain, rc.v, rc.n, &rc.moves, &rc.nmoves);
        }
        if (r < 0)
                goto out;
        if (rc.nmoves)
                qsort(rc.moves, rc.nmoves, sizeof *rc.moves, move_cmp);

        /* 1. Packs with no live record. A missing pack with live records
         * is damage: leave it for verify to report. */
        for (size_t i = 0; i < rc.n; i++) {
                CPack *p = &rc.v[i];
                if (p->cand && p->missing && p->live_n)
                        p->cand = false;
                p->go = p->cand && p->live_n == 0;
        }
        r = retire(s, domain, rc.v, rc.n);
        if (r == 0)
                r = delete_retired(s, domain, rc.v, rc.n, z);
        if (r < 0)
                goto out;

        /* 2. Unindexed tails: what a writer appended and never committed
         * (it died, or the disk filled up). The lock says no writer is at
         * it; the committed length was read after we took it. */
        for (size_t i = 0; i < rc.n; i++) {
                CPack *p = &rc.v[i];
                if (!p->cand || p->fd < 0 || p->size <= p->e.committed || p->e.committed < VC_PACK_HDR_LEN)
                        continue;
                if (ftruncate(p->fd, (off_t)p->e.committed) == 0) {
                        z->tail_bytes += p->size - p->e.committed;
                        p->size = p->e.committed;
                }
        }

        /* 3. Punch, unless the pack is about to be rewritten. */
        uint64_t need = 0, avail = 0;
        for (size_t i = 0; i < rc.n; i++) {
                CPack *p = &rc.v[i];
                p->comp = p->cand && !p->missing && worth_compacting(p, ratio);
                if (p->comp)
                        need += rewrite_cost(&rc, p);
        }
        bool roomy = free_bytes(s, &avail) == 0 && avail >= need + VC_GC_MARGIN;
        for (size_t i = 0; r == 0 && i < rc.n; i++) {
                CPack *p = &rc.v[i];
                if (p->cand && !p->missing && (!p->comp || !roomy))
                        r = punch_pack(&rc, p);
        }
        if (r < 0)
                goto out;

        /* 4. Compact, a group at a time, while there is room. */
        for (size_t i = 0; r == 0 && i < rc.n;) {
                if (!rc.v[i].comp) {
                        i++;
                        continue;
                }
                uint64_t bytes = 0, cost = 0;
                size_t j = i, k = 0;
                for (; j < rc.n; j++) {
                        CPack *p = &rc.v[j];
                        if (!p->comp)
                                continue;
                        if (k && bytes + p->live_bytes > VC_GC_GROUP)
                                break;
                        p->grp = true;
                        bytes += p->live_bytes;
                        cost += rewrite_cost(&rc, p);
                        k++;
                }
                int done = 0;
                if (free_bytes(s, &avail) == 0 && avail >= cost + VC_GC_MARGIN)
                        done = r = compact_group(&rc);
                for (size_t x = i; r >= 0 && x < j; x++) {
                        CPack *p = &rc.v[x];
                        if (!p->grp)
                                continue;
                        if (!done) {
                                z->packs_not_compacted++;
                                if (!p->punched)
                                        r = punch_pack(&rc, p);
                        }
                        p->grp = p->comp = false;
                }
                if (r > 0)
                        r = 0;
                i = j;
        }
out:
        free(rc.moves);
        cpacks_free(rc.v, rc.n);        /* closing the fds releases the locks */
        return r;
}

int vc_store_compact(VcStore *s, double max_live_ratio, VcCompactStats *st)
{
        VcCompactStats z = { 0 };
        int r = vc_store_pack_files(s, 0, &z.packs_before, &z.bytes_before);
        if (r == 0)
                r = pack_disk_bytes(s, &z.disk_before);
        if (r < 0)
                return r;
        /* Every pack worked on stays locked, by an open fd, until its domain is done. */
        struct rlimit rl;
        if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                setrlimit(RLIMIT_NOFILE, &rl);
        }
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
        bool no_punch = false;
        for (size_t i = 0; r == 0 && i < nd; i++)
                r = reclaim_domain(s, doms[i], max_live_ratio, &no_punch, &z);
        free(doms);
        if (r < 0)
                return r;
        r = vc_store_pack_files(s, 0, &z.packs_after, &z.bytes_after);
        if (r == 0)
                r = pack_disk_bytes(s, &z.disk_after);
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
        bool quiet;             /* count problems, do not report them (yet) */
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
                return "repair: 'vmcas repair' rebuilds the catalog from the copies of its records in the packs";
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
        if (c->fn && !c->quiet)
                c->fn(domain, tag, what, repair, c->ctx);
}

/* A fault inside LMDB ends the check: everything after it would fail. */
static int txn_gone(VcTxn *t, int r)
{
        return r < 0 && vc_txn_dead(t);
}

/* Whether the index entry that the check's snapshot showed is still there
 * in a fresh one: if a gc swept the chunk, or moved or punched its record,
 * meanwhile, what the snapshot led us to read is no damage. */
static bool entry_still(Check *c, uint64_t domain, const uint8_t tag[VC_TAG_LEN], const VcIdx *x)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        VcIdx now = { 0 };
        int r = vc_txn_begin(c->s, false, &t);
        if (r == 0)
                r = vc_idx_get(t, domain, tag, &now);
        vc_errclear();
        if (r == -ENOENT)
                return false;
        return r < 0 || (now.pack == x->pack && now.off == x->off);
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
        if (r == -ENOENT && !entry_still(c, d, tag, &x))
                return 0;
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
        if ((r == -EBADMSG || r == -EIO) && !entry_still(c, d, tag, &x))
                return 0;
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
                /* A gc may punch this pack while we walk it, so that we
                 * read a header before its filler was written and the
                 * data after the hole was punched. What looks damaged is
                 * looked at again, in a second walk, which reports. */
                int problems = c->problems;
                VcCheckStats st0 = c->st;
                c->quiet = true;
                int r = vc_pack_walk(fd, p->domain, VC_PACK_HDR_LEN, end, check_record, c);
                c->quiet = false;
                if (r == 0 && c->problems > problems) {
                        c->problems = problems;
                        c->st = st0;
                        r = vc_pack_walk(fd, p->domain, VC_PACK_HDR_LEN, end, check_record, c);
                }
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
                /* A file shorter than a pack header is a pack whose creation
                 * died before its header was written (pack_create): it holds
                 * no record and the packs table never named it. Leave it
                 * out, as writers do; indexing it with the committed length
                 * of an empty pack (the header's) would point past its end,
                 * and verify would report it as cut short. */
                if ((uint64_t)st.st_size < VC_PACK_HDR_LEN)
                        continue;
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
