#include "repo/vc_repo.h"
#include "core/vc_keyring.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

bool vc_name_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > VC_NAME_MAX || s[0] == '.' || s[0] == '-')
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

int vc_parcel_pack(const VcParcel *p, uint8_t *b, size_t cap, size_t *len)
{
        size_t gl = strlen(p->group);
        if (cap < 97 + gl)
                return -ENOBUFS;
        memset(b, 0, 97);
        memcpy(b, "VPAR", 4);
        b[4] = 1;
        b[5] = (uint8_t)p->policy;
        b[6] = (uint8_t)p->comp;
        vc_put64(b + 8, p->id);
        vc_put32(b + 16, p->chunk_size);
        vc_put32(b + 20, p->latest);
        vc_put64(b + 24, p->mem_size);
        vc_put64(b + 32, p->disk_size);
        vc_put64(b + 40, (uint64_t)p->created);
        vc_put64(b + 48, p->node_domain);
        vc_put64(b + 56, p->data_domain);
        memcpy(b + 64, p->check, 16);
        memcpy(b + 80, p->group_check, 16);
        b[96] = (uint8_t)gl;
        memcpy(b + 97, p->group, gl);
        *len = 97 + gl;
        return 0;
}

int vc_parcel_unpack(const uint8_t *b, size_t len, const char *name, VcParcel *p)
{
        memset(p, 0, sizeof *p);
        if (len < 97 || memcmp(b, "VPAR", 4) != 0 || b[4] != 1 || b[5] > VC_POLICY_ALL || b[6] > VC_COMP_ZSTD ||
            b[96] > VC_NAME_MAX || len != 97u + b[96])
                return vc_errf(-EBADMSG, "the catalog record of parcel '%s' is malformed", name);
        snprintf(p->name, sizeof p->name, "%s", name);
        p->policy = b[5];
        p->comp = b[6];
        p->id = vc_get64(b + 8);
        p->chunk_size = vc_get32(b + 16);
        p->latest = vc_get32(b + 20);
        p->mem_size = vc_get64(b + 24);
        p->disk_size = vc_get64(b + 32);
        p->created = (int64_t)vc_get64(b + 40);
        p->node_domain = vc_get64(b + 48);
        p->data_domain = vc_get64(b + 56);
        memcpy(p->check, b + 64, 16);
        memcpy(p->group_check, b + 80, 16);
        memcpy(p->group, b + 97, b[96]);
        p->group[b[96]] = 0;
        return 0;
}

void vc_version_pack(const VcVersion *v, uint8_t b[VC_VERSION_REC_LEN])
{
        memset(b, 0, VC_VERSION_REC_LEN);
        memcpy(b, "VVER", 4);
        b[4] = 1;
        vc_put32(b + 8, v->version);
        vc_put64(b + 16, (uint64_t)v->timestamp);
        vc_put64(b + 24, v->seq);
        vc_put64(b + 32, v->mem_size);
        vc_put64(b + 40, v->disk_size);
        memcpy(b + 48, v->mem_root, 32);
        memcpy(b + 80, v->disk_root, 32);
        vc_put64(b + 112, v->new_chunks);
        vc_put64(b + 120, v->new_bytes);
        vc_put64(b + 128, v->meta_bytes);
        memcpy(b + 136, v->wrapped, VC_WRAPPED_LEN);
}

int vc_version_unpack(const uint8_t *b, size_t len, VcVersion *v)
{
        if (len != VC_VERSION_REC_LEN || memcmp(b, "VVER", 4) != 0 || b[4] != 1)
                return vc_errf(-EBADMSG, "a version record is malformed");
        v->version = vc_get32(b + 8);
        v->timestamp = (int64_t)vc_get64(b + 16);
        v->seq = vc_get64(b + 24);
        v->mem_size = vc_get64(b + 32);
        v->disk_size = vc_get64(b + 40);
        memcpy(v->mem_root, b + 48, 32);
        memcpy(v->disk_root, b + 80, 32);
        v->new_chunks = vc_get64(b + 112);
        v->new_bytes = vc_get64(b + 120);
        v->meta_bytes = vc_get64(b + 128);
        memcpy(v->wrapped, b + 136, VC_WRAPPED_LEN);
        return 0;
}

void vc_version_key(uint64_t parcel_id, uint32_t version, uint8_t key[12])
{
        vc_put64be(key, parcel_id);
        vc_put32be(key + 8, version);
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
        return vc_parcel_unpack(val, vlen, name, p);
}

int vc_repo_parcel_put(VcTxn *t, const VcParcel *p)
{
        uint8_t buf[256];
        size_t len;
        int r = vc_parcel_pack(p, buf, sizeof buf, &len);
        if (r < 0)
                return r;
        return vc_txn_put(t, VC_TABLE_PARCELS, p->name, strlen(p->name), buf, len);
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

static int parcel_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        char name[VC_NAME_MAX + 1];
        if (klen > VC_NAME_MAX)
                return vc_errf(-EBADMSG, "a parcel name in the catalog is too long");
        memcpy(name, key, klen);
        name[klen] = 0;
        VcParcel *p = vec_push(ctx);
        if (!p)
                return -ENOMEM;
        return vc_parcel_unpack(val, vlen, name, p);
}

int vc_repo_parcels(VcTxn *t, VcParcel **ret, size_t *n)
{
        Vec v = { .size = sizeof(VcParcel) };
        int r = vc_txn_iter(t, VC_TABLE_PARCELS, NULL, 0, parcel_cb, &v);
        if (r < 0) {
                free(v.items);
                return r;
        }
        *ret = v.items;
        *n = v.n;
        return 0;
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
        return vc_version_unpack(val, vlen, v);
}

static int version_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        VcVersion *v = vec_push(ctx);
        if (!v)
                return -ENOMEM;
        return vc_version_unpack(val, vlen, v);
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

int vc_repo_gc(VcStore *s, int64_t grace, bool quiet, VcGcStats *st)
{
        memset(st, 0, sizeof *st);
        int lock = -1;
        int r = vc_store_lock(s, "gc", true, false, &lock);
        if (r < 0)
                return r;
        VcTagSet *mark = NULL, *seen = NULL;
        VcTxn *t = NULL;
        int64_t started = vc_now();
        if ((r = vc_tagset_new(&mark)) < 0 || (r = vc_tagset_new(&seen)) < 0)
                goto out;
        /* Mark from a snapshot, without blocking checkins... */
        if ((r = vc_txn_begin(s, false, &t)) < 0)
                goto out;
        uint64_t seq = current_seq(t);
        r = mark_versions(s, t, 0, mark, seen, &st->versions);
        vc_txn_abort(t);
        t = NULL;
        if (r < 0)
                goto out;
        /* ...then, holding the write lock so no version can be committed,
         * mark what was committed meanwhile and sweep. A checkin that
         * deduplicated against a chunk swept here finds it missing when it
         * commits, and fails without harm. */
        if ((r = vc_txn_begin(s, true, &t)) < 0)
                goto out;
        r = mark_versions(s, t, seq, mark, seen, &st->versions);
        if (r >= 0)
                /* free what is at least grace seconds old: stored_at <= started - grace */
                r = vc_txn_sweep(t, is_live, mark, started - grace + 1, &st->sweep);
        if (r >= 0) {
                r = vc_txn_commit(t);
                t = NULL;
        }
        if (r < 0)
                goto out;
        st->referenced = vc_tagset_count(mark);
        VcProgress prog;
        vc_progress_init(&prog, "gc: compacting", 0, quiet);
        vc_store_set_progress(s, &prog);
        r = vc_store_compact(s, 0.5, &st->compact);
        vc_store_set_progress(s, NULL);
        if (r >= 0 && prog.done)
                vc_progress_end(&prog, prog.done);
out:
        if (r < 0 && r != -EBUSY)
                vc_errf(r, "gc stopped, nothing was deleted that any version needs: %s", vc_errmsg(r));
        vc_txn_abort(t);
        vc_tagset_free(mark);
        vc_tagset_free(seen);
        vc_store_unlock(lock);
        return r < 0 ? r : 0;
}

int vc_repo_prune(VcStore *s, const char *name, uint32_t keep)
{
        if (keep < 1)
                return vc_errf(-EINVAL, "--keep must be at least 1 (the latest version is always kept)");
        if (!vc_name_valid(name))
                return vc_errf(-EINVAL, "invalid parcel name '%s'", name);
        char lockname[VC_NAME_MAX + 16];
        snprintf(lockname, sizeof lockname, "parcel-%s", name);
        int lock = -1;
        int r = vc_store_lock(s, lockname, true, false, &lock);
        if (r < 0)
                return r;
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
out:
        vc_txn_abort(t);
        free(vs);
        vc_store_unlock(lock);
        return r < 0 ? r : dropped;
}
