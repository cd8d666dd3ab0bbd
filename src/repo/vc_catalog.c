/* Catalog copies in the packs, and rebuilding the catalog from them. */
#include "repo/vc_repo.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int vc_catcopy_pack(const VcCatCopy *c, uint8_t *b, size_t cap, size_t *len)
{
        size_t nl = strlen(c->name), ol = strlen(c->owner);
        size_t need = 7 + nl + (c->type == VC_CAT_PARCEL ? 1 + ol : 0) + (c->type != VC_CAT_PARCEL ? 4 : 0) + c->rec_len;
        if (need > cap || nl > VC_NAME_MAX || ol > VC_USER_MAX)
                return -ENOBUFS;
        memcpy(b, "VCAT", 4);
        b[4] = 1;
        b[5] = (uint8_t)c->type;
        b[6] = (uint8_t)nl;
        memcpy(b + 7, c->name, nl);
        size_t o = 7 + nl;
        if (c->type == VC_CAT_PARCEL) {
                b[o] = (uint8_t)ol;
                memcpy(b + o + 1, c->owner, ol);
                o += 1 + ol;
        } else {
                vc_put32(b + o, c->version);
                o += 4;
        }
        if (c->rec_len)
                memcpy(b + o, c->rec, c->rec_len);
        *len = o + c->rec_len;
        return 0;
}

int vc_catcopy_unpack(const uint8_t *b, size_t len, VcCatCopy *c)
{
        memset(c, 0, sizeof *c);
        if (len < 7 || memcmp(b, "VCAT", 4) != 0 || b[4] != 1 || b[5] < VC_CAT_PARCEL || b[5] > VC_CAT_PRUNE ||
            b[6] == 0 || b[6] > VC_NAME_MAX || len < 7u + b[6])
                return -EBADMSG;
        c->type = b[5];
        memcpy(c->name, b + 7, b[6]);
        size_t o = 7 + b[6];
        if (!vc_name_valid(c->name))
                return -EBADMSG;
        if (c->type == VC_CAT_PARCEL) {
                if (o >= len || b[o] > VC_USER_MAX || o + 1 + b[o] > len)
                        return -EBADMSG;
                memcpy(c->owner, b + o + 1, b[o]);
                o += 1 + b[o];
        } else {
                if (o + 4 > len)
                        return -EBADMSG;
                c->version = vc_get32(b + o);
                o += 4;
        }
        c->rec = b + o;
        c->rec_len = len - o;
        if ((c->type == VC_CAT_VERSION && !vc_version_rec_len_ok(c->rec_len)) ||
            (c->type == VC_CAT_PRUNE && c->rec_len != 0) || (c->type == VC_CAT_PARCEL && c->rec_len > VC_PARCEL_REC_MAX))
                return -EBADMSG;
        return 0;
}

int vc_repo_catcopy_put(VcWriter *w, uint64_t domain, const VcCatCopy *c)
{
        uint8_t buf[VC_CATCOPY_MAX], tag[32];
        size_t len;
        int r = vc_catcopy_pack(c, buf, sizeof buf, &len);
        if (r < 0)
                return r;
        vc_sha256(buf, len, tag);
        if ((r = vc_writer_put(w, domain, VC_KIND_CATALOG, tag, buf, len)) < 0)
                return r;
        return vc_writer_flush(w);
}

/* ---- rebuilding --------------------------------------------------------------- */

typedef struct Copy {
        VcCatCopy c;
        uint8_t *bytes;          /* c.rec points in here */
        int64_t time;            /* versions: their timestamp */
} Copy;

typedef struct {
        VcStore *s;
        Copy *v;
        size_t n, cap;
        uint8_t *buf;
        size_t bufcap;
        VcRebuildStats *st;
} Collect;

static int collect_one(const VcChunkInfo *ci, void *ctx)
{
        Collect *cl = ctx;
        if (ci->kind != VC_KIND_CATALOG)
                return 0;
        size_t len;
        uint8_t h[32];
        int r = vc_store_get(cl->s, ci->domain, ci->tag, &cl->buf, &cl->bufcap, &len);
        if (r >= 0)
                vc_sha256(cl->buf, len, h);
        if (r == -EBADMSG || (r >= 0 && !vc_hash_eq(h, ci->tag, 32))) {
                vc_errclear();
                cl->st->damaged++;
                return 0;
        }
        if (r < 0)
                return r;
        if (cl->n == cl->cap) {
                size_t cap = cl->cap ? 2 * cl->cap : 64;
                Copy *x = realloc(cl->v, cap * sizeof *x);
                if (!x)
                        return -ENOMEM;
                cl->v = x;
                cl->cap = cap;
        }
        Copy *c = &cl->v[cl->n];
        if (!(c->bytes = malloc(len)))
                return -ENOMEM;
        memcpy(c->bytes, cl->buf, len);
        if (vc_catcopy_unpack(c->bytes, len, &c->c) < 0) {
                free(c->bytes);
                cl->st->damaged++;
                return 0;
        }
        c->time = 0;
        if (c->c.type == VC_CAT_VERSION) {
                VcVersion v = { 0 };
                if (vc_version_unpack(c->c.rec, c->c.rec_len, &v) < 0 || v.version != c->c.version) {
                        vc_errclear();
                        free(c->bytes);
                        cl->st->damaged++;
                        return 0;
                }
                c->time = v.timestamp;
        }
        cl->st->copies++;
        cl->n++;
        return 0;
}

/* Parcels by name, then versions in time order. */
static int copy_cmp(const void *a, const void *b)
{
        const Copy *x = a, *y = b;
        if (x->c.type != y->c.type)
                return x->c.type - y->c.type;
        if (x->c.type == VC_CAT_VERSION && x->time != y->time)
                return x->time < y->time ? -1 : 1;
        int r = strcmp(x->c.name, y->c.name);
        if (r)
                return r;
        return x->c.version < y->c.version ? -1 : x->c.version > y->c.version;
}

static int del_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        VcTxn *t = ctx;
        int r = vc_txn_del(t, VC_TABLE_PARCELS, key, klen);
        return r == -ENOENT ? 0 : r;
}

static int del_versions_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        int r = vc_txn_del(ctx, VC_TABLE_VERSIONS, key, klen);
        return r == -ENOENT ? 0 : r;
}

static int del_leases_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        int r = vc_txn_del(ctx, VC_TABLE_META, key, klen);
        return r == -ENOENT ? 0 : r;
}

/* The catalog's tables emptied (keys are collected first: LMDB cursors do
 * not survive deletes under them in every case, so delete by key). */
typedef struct { uint8_t (*k)[520]; size_t *kl; size_t n, cap; } Keys;

static int key_cb(const void *key, size_t klen, const void *val, size_t vlen, void *ctx)
{
        Keys *ks = ctx;
        if (ks->n == ks->cap) {
                size_t cap = ks->cap ? 2 * ks->cap : 64;
                void *a = realloc(ks->k, cap * sizeof *ks->k), *b = a ? realloc(ks->kl, cap * sizeof *ks->kl) : NULL;
                if (a)
                        ks->k = a;
                if (!a || !b)
                        return -ENOMEM;
                ks->kl = b;
                ks->cap = cap;
        }
        if (klen > sizeof ks->k[0])
                return -EINVAL;
        memcpy(ks->k[ks->n], key, klen);
        ks->kl[ks->n++] = klen;
        return 0;
}

static int empty_table(VcTxn *t, VcTable tb, const char *prefix, int (*del)(const void *, size_t, const void *, size_t, void *))
{
        Keys ks = { 0 };
        int r = vc_txn_iter(t, tb, prefix, prefix ? strlen(prefix) : 0, key_cb, &ks);
        for (size_t i = 0; r >= 0 && i < ks.n; i++)
                r = del(ks.k[i], ks.kl[i], NULL, 0, t);
        free(ks.k);
        free(ks.kl);
        return r;
}

static int put_counter(VcTxn *t, const char *name, uint64_t v)
{
        uint8_t b[8];
        vc_put64(b, v);
        return vc_txn_put(t, VC_TABLE_META, name, strlen(name), b, 8);
}

int vc_repo_rebuild_catalog(VcStore *s, VcRebuildStats *st)
{
        memset(st, 0, sizeof *st);
        Collect cl = { .s = s, .st = st };
        VcTxn *t = NULL;
        int r = vc_txn_begin(s, false, &t);
        if (r >= 0)
                r = vc_txn_iter_chunks(t, collect_one, &cl);
        vc_txn_abort(t);
        t = NULL;
        free(cl.buf);
        if (r < 0)
                goto out;
        /* No copies leaves cl.v NULL, and qsort(NULL, 0, ...) is undefined
         * behaviour (UBSan stops there: found by fuzz_reindex). */
        if (cl.n)
                qsort(cl.v, cl.n, sizeof *cl.v, copy_cmp);
        if ((r = vc_txn_begin(s, true, &t)) < 0)
                goto out;
        if ((r = empty_table(t, VC_TABLE_PARCELS, NULL, del_cb)) < 0 ||
            (r = empty_table(t, VC_TABLE_VERSIONS, NULL, del_versions_cb)) < 0 ||
            (r = empty_table(t, VC_TABLE_META, "lease:", del_leases_cb)) < 0)
                goto out;
        /* parcels first (sorted by type), then prunes are looked up per
         * version, then versions in time order */
        uint64_t id = 0, seq = 0;
        for (size_t i = 0; i < cl.n; i++) {
                Copy *c = &cl.v[i];
                if (c->c.type != VC_CAT_PARCEL)
                        continue;
                VcParcel p;
                if (vc_parcel_unpack(c->c.rec, c->c.rec_len, c->c.name, &p) < 0) {
                        vc_errclear();
                        st->damaged++;
                        continue;
                }
                const void *val;
                size_t vl;
                if (vc_txn_get(t, VC_TABLE_PARCELS, c->c.name, strlen(c->c.name), &val, &vl) == 0)
                        continue;   /* one record a name: the first */
                vc_errclear();
                p.id = ++id;
                p.latest = 0;
                snprintf(p.owner, sizeof p.owner, "%s", c->c.owner);
                if ((r = vc_repo_parcel_put(t, &p, c->c.rec, c->c.rec_len)) < 0)
                        goto out;
                st->parcels++;
        }
        for (size_t i = 0; i < cl.n; i++) {
                Copy *c = &cl.v[i];
                if (c->c.type != VC_CAT_VERSION)
                        continue;
                VcParcel p;
                VcVersion v = { 0 };
                if (vc_repo_parcel(t, c->c.name, &p) < 0) {
                        vc_errclear();
                        continue;       /* a version of no parcel */
                }
                uint32_t dropped = 0;
                for (size_t j = 0; j < cl.n; j++)
                        if (cl.v[j].c.type == VC_CAT_PRUNE && strcmp(cl.v[j].c.name, c->c.name) == 0)
                                dropped = VC_MAX(dropped, cl.v[j].c.version);
                if (vc_version_unpack(c->c.rec, c->c.rec_len, &v) < 0 || memcmp(v.uuid, p.uuid, 16) != 0) {
                        vc_errclear();
                        st->damaged++;
                        continue;
                }
                if (v.version <= dropped) {
                        st->pruned++;
                        continue;
                }
                uint8_t key[12], val[8 + VC_VERSION_REC_MAX];
                vc_version_key(p.id, v.version, key);
                vc_put64(val, ++seq);
                memcpy(val + 8, c->c.rec, c->c.rec_len);
                if ((r = vc_txn_put(t, VC_TABLE_VERSIONS, key, sizeof key, val, 8 + c->c.rec_len)) < 0)
                        goto out;
                if (v.version > p.latest) {
                        uint8_t rec[VC_PARCEL_REC_MAX];
                        size_t rl;
                        uint32_t latest;
                        char owner[VC_USER_MAX + 1];
                        uint64_t pid;
                        if ((r = vc_repo_parcel_raw(t, p.name, rec, sizeof rec, &rl, &latest, owner, &pid)) < 0)
                                goto out;
                        p.latest = v.version;
                        snprintf(p.owner, sizeof p.owner, "%s", owner);
                        if ((r = vc_repo_parcel_put(t, &p, rec, rl)) < 0)
                                goto out;
                }
                st->versions++;
        }
        if ((r = put_counter(t, "parcel_id", id)) < 0 || (r = put_counter(t, "commit_seq", seq)) < 0)
                goto out;
        r = vc_txn_commit(t);
        t = NULL;
out:
        vc_txn_abort(t);
        for (size_t i = 0; i < cl.n; i++)
                free(cl.v[i].bytes);
        free(cl.v);
        return r < 0 ? r : 0;
}
