/* --no-existence-oracle: what a parcel may learn of a shared pool.
 *
 * Under "all" (and group pools) a chunk is stored once for everyone, so
 * "is this chunk missing?" would tell a user whether anybody else has
 * stored that content. With the oracle off the server answers from the
 * parcel's own history instead: the data chunks its versions reference
 * (walked without a key, vc_repo_walk, once per version; keyring nodes
 * already seen are not descended into again) and the chunks it uploaded
 * since the server started. Storage still keeps each chunk once; a user
 * who uploads a chunk that existed cannot tell.
 *
 * One set per parcel: data tags under the pool's domain id, keyring nodes
 * under the parcel's node domain id (the walk's `seen`). About 100 bytes
 * per distinct chunk of the parcel. One lock for all: a walk holds it. */
#include "server/vc_server_int.h"
#include "core/vc_tagset.h"
#include "core/vc_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

typedef struct Entry {
        char name[VC_NAME_MAX + 1];
        VcTagSet *set;
        uint64_t data_domain;
        uint32_t walked;                 /* versions up to this one are in set */
        uint64_t used;                   /* for least-recently-used eviction */
} Entry;

struct VcOracle {
        VcBackend *b;
        pthread_mutex_t lock;
        Entry e[VC_ORACLE_PARCELS];
        size_t n;
        uint64_t clock;
};

int vc_oracle_new(VcBackend *local, VcOracle **ret)
{
        if (!vc_backend_local_store(local))
                return vc_errf(-EINVAL, "the existence oracle needs a local store");
        VcOracle *o = calloc(1, sizeof *o);
        if (!o)
                return -ENOMEM;
        o->b = local;
        pthread_mutex_init(&o->lock, NULL);
        *ret = o;
        return 0;
}

static void drop(Entry *e)
{
        vc_tagset_free(e->set);
        memset(e, 0, sizeof *e);
}

void vc_oracle_free(VcOracle *o)
{
        if (!o)
                return;
        for (size_t i = 0; i < o->n; i++)
                drop(&o->e[i]);
        pthread_mutex_destroy(&o->lock);
        free(o);
}

static int visit(uint64_t domain, const uint8_t tag[32], int kind, void *ctx)
{
        /* nodes are added by the walk itself (seen); data here */
        if (kind != VC_KIND_DATA)
                return 0;
        int r = vc_tagset_add(ctx, domain, tag, 0);
        return r < 0 ? r : 0;
}

/* Walks the versions of e's parcel newer than e->walked. */
static int catch_up(VcOracle *o, Entry *e)
{
        VcStore *s = vc_backend_local_store(o->b);
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        VcParcel p;
        int r = vc_txn_begin(s, false, &t);
        if (r < 0 || (r = vc_repo_parcel(t, e->name, &p)) < 0)
                return r;
        e->data_domain = p.data_domain;
        if (p.latest == e->walked)
                return 0;
        VcVersion *vs = NULL;
        size_t nv = 0;
        if ((r = vc_repo_versions(t, &p, &vs, &nv)) < 0)
                return r;
        for (size_t i = 0; i < nv && r >= 0; i++)
                if (vs[i].version > e->walked)
                        r = vc_repo_walk(s, &p, &vs[i], e->set, visit, e->set);
        free(vs);
        if (r >= 0)
                e->walked = p.latest;
        return r;
}

/* The entry of parcel, made (evicting the least recently used) if absent. */
static int entry(VcOracle *o, const char *parcel, Entry **ret)
{
        Entry *e = NULL;
        for (size_t i = 0; i < o->n && !e; i++)
                if (strcmp(o->e[i].name, parcel) == 0)
                        e = &o->e[i];
        if (!e) {
                if (o->n < VC_ORACLE_PARCELS)
                        e = &o->e[o->n++];
                else {
                        e = &o->e[0];
                        for (size_t i = 1; i < o->n; i++)
                                if (o->e[i].used < e->used)
                                        e = &o->e[i];
                        drop(e);
                }
                snprintf(e->name, sizeof e->name, "%s", parcel);
                int r = vc_tagset_new(&e->set);
                if (r < 0) {
                        memset(e, 0, sizeof *e);
                        snprintf(e->name, sizeof e->name, "%s", "");
                        return r;
                }
        }
        e->used = ++o->clock;
        *ret = e;
        return 0;
}

int vc_oracle_known(VcOracle *o, const char *parcel, const uint8_t *tags, size_t n, uint8_t *known)
{
        pthread_mutex_lock(&o->lock);
        Entry *e;
        int r = entry(o, parcel, &e);
        if (r >= 0)
                r = catch_up(o, e);
        for (size_t i = 0; r >= 0 && i < n; i++)
                known[i] = vc_tagset_get(e->set, e->data_domain, tags + 32 * i, NULL);
        pthread_mutex_unlock(&o->lock);
        return r < 0 ? r : 0;
}

int vc_oracle_uploaded(VcOracle *o, const char *parcel, const uint8_t *tags, size_t stride, size_t n)
{
        pthread_mutex_lock(&o->lock);
        Entry *e;
        int r = entry(o, parcel, &e);
        if (r >= 0 && e->walked == 0 && !e->data_domain)
                r = catch_up(o, e);
        for (size_t i = 0; r >= 0 && i < n; i++)
                r = vc_tagset_add(e->set, e->data_domain, tags + stride * i, 1);
        pthread_mutex_unlock(&o->lock);
        return r < 0 ? r : 0;
}

void vc_oracle_forget(VcOracle *o, const char *parcel)
{
        pthread_mutex_lock(&o->lock);
        for (size_t i = 0; i < o->n; i++)
                if (!parcel || strcmp(o->e[i].name, parcel) == 0) {
                        drop(&o->e[i]);
                        o->e[i] = o->e[--o->n];
                        i--;
                }
        pthread_mutex_unlock(&o->lock);
}
