#include "repo/vc_repo.h"
#include "core/vc_keyring.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The catalog value of a parcel: u64 id ‖ u32 latest ‖ u8 owner length ‖
 * owner ‖ record. */
static int parcel_value(const char *name, const uint8_t *val, size_t vlen, const uint8_t **rec, size_t *rlen,
                        uint32_t *latest, char owner[VC_USER_MAX + 1], uint64_t *id)
{
        if (vlen < 13 || val[12] > VC_USER_MAX || vlen < 13u + val[12])
                return vc_errf(-EBADMSG, "the catalog entry of parcel '%s' is malformed", name);
        *id = vc_get64(val);
        *latest = vc_get32(val + 8);
        memcpy(owner, val + 13, val[12]);
        owner[val[12]] = 0;
        *rec = val + 13 + val[12];
        *rlen = vlen - 13 - val[12];
        return 0;
}

/* Resolves p's domain names to this store's ids (0: no chunk written yet). */
static int resolve_domains(VcTxn *t, VcParcel *p)
{
        int r = vc_txn_domain(t, p->node_dom, &p->node_domain);
        if (r == -ENOENT)
                p->node_domain = 0, r = 0;
        if (r < 0)
                return r;
        r = vc_txn_domain(t, p->data_dom, &p->data_domain);
        if (r == -ENOENT)
                p->data_domain = 0, r = 0;
        return r;
}

static int parcel_decode(VcTxn *t, const char *name, const uint8_t *val, size_t vlen, VcParcel *p)
{
        const uint8_t *rec = NULL;
        size_t rlen = 0;
        uint32_t latest = 0;
        char owner[VC_USER_MAX + 1] = "";
        uint64_t id = 0;
        int r = parcel_value(name, val, vlen, &rec, &rlen, &latest, owner, &id);
        if (r < 0 || (r = vc_parcel_unpack(rec, rlen, name, p)) < 0)
                return r;
        p->latest = latest;
        p->id = id;
        snprintf(p->owner, sizeof p->owner, "%s", owner);
        return resolve_domains(t, p);
}

int vc_repo_parcel(VcTxn *t, const char *name, VcParcel *p)
{
        const void *val;
        size_t vlen;
        if (!vc_name_valid(name))
                return vc_errf(-EINVAL, "invalid parcel name '%s' (use 1-64 letters, digits, '.', '_', '-')", name);
        int r = vc_txn_get(t, VC_TABLE_PARCELS, name, strlen(name), &val, &vlen);
        if (r == -ENOENT)
                return vc_errf(-ENOENT, "no parcel '%s' in this store", name);
        if (r < 0)
                return r;
        return parcel_decode(t, name, val, vlen, p);
}

int vc_repo_parcel_raw(VcTxn *t, const char *name, uint8_t *out, size_t cap, size_t *len, uint32_t *latest,
                       char owner[VC_USER_MAX + 1], uint64_t *id)
{
        const void *val;
        size_t vlen, rlen = 0;
        const uint8_t *rec = NULL;
        if (!vc_name_valid(name))
                return vc_errf(-EINVAL, "invalid parcel name '%s' (use 1-64 letters, digits, '.', '_', '-')", name);
        int r = vc_txn_get(t, VC_TABLE_PARCELS, name, strlen(name), &val, &vlen);
        if (r == -ENOENT)
                return vc_errf(-ENOENT, "no parcel '%s' in this store", name);
        if (r < 0 || (r = parcel_value(name, val, vlen, &rec, &rlen, latest, owner, id)) < 0)
                return r;
        if (rlen > cap)
                return vc_errf(-EBADMSG, "the record of parcel '%s' is too long", name);
        memcpy(out, rec, rlen);
        *len = rlen;
        return 0;
}

int vc_repo_parcel_put(VcTxn *t, const VcParcel *p, const uint8_t *rec, size_t len)
{
        uint8_t buf[13 + VC_USER_MAX + VC_PARCEL_REC_MAX];
        size_t ol = strlen(p->owner);
        if (ol > VC_USER_MAX || len > VC_PARCEL_REC_MAX)
                return -EINVAL;
        vc_put64(buf, p->id);
        vc_put32(buf + 8, p->latest);
        buf[12] = (uint8_t)ol;
        memcpy(buf + 13, p->owner, ol);
        memcpy(buf + 13 + ol, rec, len);
        return vc_txn_put(t, VC_TABLE_PARCELS, p->name, strlen(p->name), buf, 13 + ol + len);
}

int vc_repo_version_raw(VcTxn *t, uint64_t id, uint32_t version, uint8_t rec[VC_VERSION_REC_MAX], size_t *len,
                        uint64_t *seq)
{
        uint8_t key[12];
        const void *val;
        size_t vlen;
        vc_version_key(id, version, key);
        int r = vc_txn_get(t, VC_TABLE_VERSIONS, key, sizeof key, &val, &vlen);
        if (r < 0)
                return r;
        if (vlen < 8 || !vc_version_rec_len_ok(vlen - 8))
                return vc_errf(-EBADMSG, "a version record is malformed (changed outside vmcas?)");
        *seq = vc_get64(val);
        *len = vlen - 8;
        memcpy(rec, (const uint8_t *)val + 8, vlen - 8);
        return 0;
}

typedef struct {
        void *items;
        size_t n, cap, size;
} Vec;

static void *vec_push(Vec *v)
{
        if (v->n == v->cap) {
                size_t c = v->cap ? 2 * v->cap : 16;
                void *x = realloc(v->items, c * v->size);
                if (!x)
                        return NULL;
                v->items = x;
                v->cap = c;
        }
        return (uint8_t *)v->items + v->size * v->n++;
}

typedef struct { Vec v; VcTxn *t; } ParcelsCtx;

static int parcel_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        char name[VC_NAME_MAX + 1];
        if (klen > VC_NAME_MAX)
                return vc_errf(-EBADMSG, "a parcel name in the catalog is too long");
        memcpy(name, key, klen);
        name[klen] = 0;
        ParcelsCtx *pc = ctx;
        VcParcel *p = vec_push(&pc->v);
        if (!p)
                return -ENOMEM;
        return parcel_decode(pc->t, name, val, vlen, p);
}

int vc_repo_parcels(VcTxn *t, VcParcel **ret, size_t *n)
{
        ParcelsCtx pc = { .v = { .size = sizeof(VcParcel) }, .t = t };
        int r = vc_txn_iter(t, VC_TABLE_PARCELS, NULL, 0, parcel_cb, &pc);
        if (r < 0) {
                free(pc.v.items);
                return r;
        }
        *ret = pc.v.items;
        *n = pc.v.n;
        return 0;
}

static int version_decode(const uint8_t *val, size_t vlen, VcVersion *v)
{
        if (vlen < 8 || !vc_version_rec_len_ok(vlen - 8))
                return vc_errf(-EBADMSG, "a version record is malformed (changed outside vmcas?)");
        v->seq = vc_get64(val);
        return vc_version_unpack(val + 8, vlen - 8, v);
}

int vc_repo_version(VcTxn *t, const VcParcel *p, uint32_t version, VcVersion *v)
{
        uint8_t key[12];
        const void *val;
        size_t vlen;
        vc_version_key(p->id, version, key);
        int r = vc_txn_get(t, VC_TABLE_VERSIONS, key, sizeof key, &val, &vlen);
        if (r == -ENOENT)
                return vc_errf(-ENOENT, "parcel '%s' has no version %u%s", p->name, version,
                               p->latest == 0 ? " (it has no version yet)" : "");
        if (r < 0)
                return r;
        return version_decode(val, vlen, v);
}

static int version_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        VcVersion *v = vec_push(ctx);
        if (!v)
                return -ENOMEM;
        return version_decode(val, vlen, v);
}

int vc_repo_versions(VcTxn *t, const VcParcel *p, VcVersion **ret, size_t *n)
{
        Vec v = { .size = sizeof(VcVersion) };
        uint8_t prefix[8];
        vc_put64be(prefix, p->id);
        int r = vc_txn_iter(t, VC_TABLE_VERSIONS, prefix, sizeof prefix, version_cb, &v);
        if (r < 0) {
                free(v.items);
                return r;
        }
        *ret = v.items;
        *n = v.n;
        return 0;
}

int vc_repo_next(VcTxn *t, const char *counter, uint64_t *ret)
{
        const void *val;
        size_t vlen;
        uint64_t n = 0;
        int r = vc_txn_get(t, VC_TABLE_META, counter, strlen(counter), &val, &vlen);
        if (r == 0 && vlen == 8)
                n = vc_get64(val);
        else if (r != -ENOENT)
                return r < 0 ? r : vc_errf(-EBADMSG, "catalog counter '%s' is malformed", counter);
        n++;
        uint8_t b[8];
        vc_put64(b, n);
        r = vc_txn_put(t, VC_TABLE_META, counter, strlen(counter), b, 8);
        if (r < 0)
                return r;
        *ret = n;
        return 0;
}

/* ---- keyless walks ------------------------------------------------------- */

typedef struct {
        VcStore *s;
        const VcParcel *p;
        VcTagSet *seen;
        vc_visit_fn visit;
        void *ctx;
        uint8_t *buf;
        size_t cap;
        const char *which;
        uint32_t version;
} Walk;

static int walk_node(Walk *w, const uint8_t tag[32], int depth)
{
        static const uint8_t zero[32];
        if (memcmp(tag, zero, 32) == 0)
                return 0;
        if (w->seen) {
                int r = vc_tagset_add(w->seen, w->p->node_domain, tag, 0);
                if (r <= 0)
                        return r;
        }
        int r = w->visit(w->p->node_domain, tag, VC_KIND_META, w->ctx);
        if (r < 0)
                return r;
        char hex[65];
        vc_hex(tag, 32, hex);
        size_t len;
        r = vc_store_get(w->s, w->p->node_domain, tag, &w->buf, &w->cap, &len);
        if (r < 0)
                return vc_errf(r, "keyring node %s of parcel '%s' version %u (%s) cannot be read: %s", hex,
                               w->p->name, w->version, w->which, vc_errmsg(r));
        uint8_t h[32];
        vc_sha256(w->buf, len, h);
        unsigned level;
        uint32_t count;
        const uint8_t *tags;
        if (!vc_hash_eq(h, tag, 32) || vc_node_parse(w->buf, len, &level, &count, &tags) < 0 || depth > 16)
                return vc_errf_replace(-EBADMSG, "keyring node %s of parcel '%s' version %u (%s) is damaged", hex,
                                       w->p->name, w->version, w->which);
        uint8_t copy[VC_FANOUT * 32];
        memcpy(copy, tags, 32 * (size_t)count);
        for (uint32_t i = 0; i < count; i++) {
                const uint8_t *t = copy + 32 * i;
                if (memcmp(t, zero, 32) == 0)
                        continue;
                r = level ? walk_node(w, t, depth + 1) : w->visit(w->p->data_domain, t, VC_KIND_DATA, w->ctx);
                if (r < 0)
                        return r;
        }
        return 0;
}

int vc_repo_walk(VcStore *s, const VcParcel *p, const VcVersion *v, VcTagSet *seen, vc_visit_fn visit, void *ctx)
{
        Walk w = { .s = s, .p = p, .seen = seen, .visit = visit, .ctx = ctx, .version = v->version };
        w.which = "memory";
        int r = walk_node(&w, v->mem_root, 0);
        if (r >= 0) {
                w.which = "disk";
                r = walk_node(&w, v->disk_root, 0);
        }
        if (r >= 0) {
                w.which = "machine";
                r = walk_node(&w, v->machine_root, 0);
        }
        if (r >= 0) {
                w.which = "read order";
                r = walk_node(&w, v->order_root, 0);
        }
        free(w.buf);
        return r < 0 ? r : 0;
}

/* ---- gc -------------------------------------------------------------------- */

static int mark_cb(uint64_t domain, const uint8_t tag[32], int kind, void *ctx)
{
        int r = vc_tagset_add(ctx, domain, tag, 0);
        return r < 0 ? r : 0;
}

/* Marks every version of every parcel whose commit sequence is > min_seq. */
static int mark_versions(VcStore *s, VcTxn *t, uint64_t min_seq, VcTagSet *mark, VcTagSet *seen, uint64_t *nver)
{
        VcParcel *ps = NULL;
        size_t np = 0;
        int r = vc_repo_parcels(t, &ps, &np);
        for (size_t i = 0; r >= 0 && i < np; i++) {
                VcVersion *vs = NULL;
                size_t nv = 0;
                r = vc_repo_versions(t, &ps[i], &vs, &nv);
                for (size_t j = 0; r >= 0 && j < nv; j++) {
                        if (vs[j].seq <= min_seq)
                                continue;
                        r = vc_repo_walk(s, &ps[i], &vs[j], seen, mark_cb, mark);
                        (*nver)++;
                }
                free(vs);
        }
        free(ps);
        return r;
}

static int is_live(const VcChunkInfo *ci, void *ctx)
{
        if (ci->kind == VC_KIND_CATALOG)
                return 1;
        return vc_tagset_get(ctx, ci->domain, ci->tag, NULL) ? 1 : 0;
}

static uint64_t current_seq(VcTxn *t)
{
        const void *val;
        size_t vlen;
        if (vc_txn_get(t, VC_TABLE_META, "commit_seq", 10, &val, &vlen) == 0 && vlen == 8)
                return vc_get64(val);
        return 0;
}

/* Adds the stats of a reclaim pass run midway through the sweep. */
static void compact_add(VcCompactStats *a, const VcCompactStats *b, bool first)
{
        if (first) {
                *a = *b;
                return;
        }
        a->packs_after = b->packs_after;
        a->bytes_after = b->bytes_after;
        a->disk_after = b->disk_after;
        a->packs_rewritten += b->packs_rewritten;
        a->packs_deleted += b->packs_deleted;
        a->chunks_moved += b->chunks_moved;
        a->packs_punched += b->packs_punched;
        a->bytes_punched += b->bytes_punched;
        a->tail_bytes += b->tail_bytes;
        a->packs_not_compacted = b->packs_not_compacted;
}

/* Index entries one sweep transaction removes, given the free space:
 * each may cost a fresh 4 KiB page of the index (and LMDB reuses the
 * pages a commit frees only two commits later). All of them when there
 * is room; a commit that still runs out is cut to a quarter, down to one
 * entry. */
static size_t sweep_batch(VcStore *s, size_t n)
{
        uint64_t avail = 0;
        if (vc_store_free_space(s, &avail) < 0) {
                vc_errclear();
                return 256;
        }
        uint64_t k = avail / 4 / 5120;
        return k >= n ? n : k < 64 ? 64 : (size_t)k;
}

int vc_repo_gc(VcStore *s, int64_t grace, bool quiet, VcGcStats *st)
{
        memset(st, 0, sizeof *st);
        int lock = -1;
        int r = vc_store_lock(s, "gc", true, false, &lock);
        if (r < 0)
                return r;
        VcTagSet *mark = NULL, *seen = NULL;
        VcTxn *t = NULL;
        VcChunkRef *refs = NULL;
        size_t nrefs = 0;
        bool reclaimed = false;
        int64_t started = vc_now();
        /* free what is at least grace seconds old: stored_at <= started - grace */
        int64_t cutoff = started - grace + 1;
        /* On a (nearly) full disk, the reserve makes room for the index
         * commits below; it is made again at the end. */
        uint64_t avail = 0;
        if (vc_store_free_space(s, &avail) == 0 && avail < 16 * VC_STORE_RESERVE)
                vc_store_reserve_release(s);
        vc_errclear();
        if ((r = vc_tagset_new(&mark)) < 0 || (r = vc_tagset_new(&seen)) < 0)
                goto out;
        /* Mark from a snapshot, without blocking checkins, and list what
         * it shows unreferenced... */
        if ((r = vc_txn_begin(s, false, &t)) < 0)
                goto out;
        uint64_t seq = current_seq(t);
        r = mark_versions(s, t, 0, mark, seen, &st->versions);
        if (r >= 0)
                r = vc_txn_sweep_list(t, is_live, mark, cutoff, &refs, &nrefs, &st->sweep);
        vc_txn_abort(t);
        t = NULL;
        if (r < 0)
                goto out;
        st->sweep.chunks_freed = st->sweep.bytes_freed = 0;
        /* ...then sweep it, holding the write lock so no version can be
         * committed: each transaction first marks what was committed
         * since. A checkin that deduplicated against a chunk swept here
         * finds it missing when it commits, and fails without harm. When
         * the disk has little room the sweep is cut into transactions it
         * can afford; one that still runs out of space is cut smaller,
         * and then space is made by reclaiming what is swept so far. */
        size_t limit = SIZE_MAX;        /* below the last batch that ran out of space */
        for (size_t i = 0; i < nrefs;) {
                size_t k = VC_MIN(VC_MIN(sweep_batch(s, nrefs), limit), nrefs - i);
                uint64_t chunks = 0, bytes = 0;
                if ((r = vc_txn_begin(s, true, &t)) < 0)
                        goto out;
                r = mark_versions(s, t, seq, mark, seen, &st->versions);
                if (r >= 0) {
                        seq = current_seq(t);
                        r = vc_txn_sweep_refs(t, is_live, mark, cutoff, refs + i, k, &chunks, &bytes);
                }
                if (r >= 0) {
                        r = vc_txn_commit(t);
                        t = NULL;
                }
                if (r >= 0) {
                        st->sweep.chunks_freed += chunks;
                        st->sweep.bytes_freed += bytes;
                        i += k;
                        continue;
                }
                vc_txn_abort(t);
                t = NULL;
                if (!vc_store_out_of_space(s, r))
                        goto out;
                vc_errclear();
                if (k > 1) {
                        limit = k / 4 ? k / 4 : 1;
                        continue;
                }
                /* Not even one entry: free what the commits so far made
                 * dead (no rewriting), and go on if that made room. */
                VcCompactStats cs;
                if ((r = vc_store_compact(s, 0, &cs)) < 0)
                        goto out;
                compact_add(&st->compact, &cs, !reclaimed);
                reclaimed = true;
                if (cs.disk_after >= cs.disk_before) {
                        r = vc_errf(-ENOSPC, "the store's disk is too full for gc to commit its work, and "
                                    "nothing could be freed without it: free a few MiB on it and run gc again");
                        goto out;
                }
                limit = SIZE_MAX;
        }
        /* those a version committed meanwhile spared are kept */
        st->sweep.chunks_kept += nrefs - st->sweep.chunks_freed;
        st->referenced = vc_tagset_count(mark);
        VcProgress prog;
        vc_progress_init(&prog, "gc: compacting", 0, quiet);
        vc_store_set_progress(s, &prog);
        VcCompactStats cs;
        r = vc_store_compact(s, 0.5, &cs);
        vc_store_set_progress(s, NULL);
        if (r >= 0) {
                compact_add(&st->compact, &cs, !reclaimed);
                if (prog.done)
                        vc_progress_end(&prog, prog.done);
        }
out:
        if (r < 0 && r != -EBUSY)
                vc_errf(r, "gc stopped, nothing was deleted that any version needs: %s", vc_errmsg(r));
        vc_txn_abort(t);
        /* Hold the reserve back again, if there is room for it now. */
        (void)vc_store_reserve_restore(s);
        free(refs);
        vc_tagset_free(mark);
        vc_tagset_free(seen);
        vc_store_unlock(lock);
        return r < 0 ? r : 0;
}

int vc_repo_prune(VcStore *s, const char *name, uint32_t keep, uint32_t *upto)
{
        if (keep < 1)
                return vc_errf(-EINVAL, "--keep must be at least 1 (the latest version is always kept)");
        if (!vc_name_valid(name))
                return vc_errf(-EINVAL, "invalid parcel name '%s'", name);
        /* one write transaction: a commit beside it is before or after */
        int r;
        VcTxn *t = NULL;
        VcParcel p;
        VcVersion *vs = NULL;
        size_t nv = 0;
        int dropped = 0;
        if ((r = vc_txn_begin(s, true, &t)) < 0 || (r = vc_repo_parcel(t, name, &p)) < 0 ||
            (r = vc_repo_versions(t, &p, &vs, &nv)) < 0)
                goto out;
        for (size_t i = 0; i < nv && r >= 0; i++) {
                if (p.latest >= keep && vs[i].version <= p.latest - keep) {
                        uint8_t key[12];
                        vc_version_key(p.id, vs[i].version, key);
                        r = vc_txn_del(t, VC_TABLE_VERSIONS, key, sizeof key);
                        dropped++;
                }
        }
        if (r >= 0) {
                r = vc_txn_commit(t);
                t = NULL;
        }
        if (upto)
                *upto = p.latest > keep ? p.latest - keep : 0;
out:
        vc_txn_abort(t);
        free(vs);
        return r < 0 ? r : dropped;
}
