/* vc_backend — dispatch of the store interface, and picking a back end
 * from a locator. */
#include "backend/vc_backend.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static bool is_url(const char *s)
{
        return strncmp(s, "http://", 7) == 0 || strncmp(s, "https://", 8) == 0;
}

/* The host cache of a remote back end: --cache DIR, $VMCAS_CACHE, or
 * $XDG_CACHE_HOME/vmcas, ~/.cache/vmcas. */
static int cache_dir(const VcBackendOpts *o, char *buf, size_t len)
{
        const char *e;
        size_t n;
        if (o && o->cache_dir)
                n = (size_t)snprintf(buf, len, "%s", o->cache_dir);
        else if ((e = getenv("VMCAS_CACHE")) && *e)
                n = (size_t)snprintf(buf, len, "%s", e);
        else if ((e = getenv("XDG_CACHE_HOME")) && *e)
                n = (size_t)snprintf(buf, len, "%s/vmcas", e);
        else if ((e = getenv("HOME")) && *e)
                n = (size_t)snprintf(buf, len, "%s/.cache/vmcas", e);
        else
                return vc_errf(-EINVAL, "no host cache: give --cache DIR, or set VMCAS_CACHE or HOME");
        return n < len ? 0 : -ENAMETOOLONG;
}

int vc_backend_open(const char *locator, const VcBackendOpts *o, VcBackend **ret)
{
        if (!locator || !*locator)
                return vc_errf(-EINVAL, "no store given: use -s PATH or URL, or set VMCAS_STORE");
        if (strncmp(locator, "rados://", 8) == 0)
                return vc_backend_rados_open(locator, o, ret);
        if (!is_url(locator)) {
                if (strstr(locator, "://"))
                        return vc_errf(-EINVAL, "'%s': unknown kind of store (a path, http://, https:// or rados://)",
                                       locator);
                return vc_backend_local_open(locator, o, ret);
        }
        VcBackend *remote;
        int r = vc_backend_remote_open(locator, o, &remote);
        if (r < 0)
                return r;
        if (o && o->no_cache) {
                *ret = remote;
                return 0;
        }
        char dir[4096];
        if ((r = cache_dir(o, dir, sizeof dir)) < 0) {
                vc_backend_free(remote);
                return r;
        }
        return vc_backend_cache_open(dir, o ? o->cache_size : 0, remote, ret);
}

void vc_backend_free(VcBackend *b)
{
        if (b)
                b->ops->free(b);
}

const uint8_t *vc_backend_uuid(const VcBackend *b)
{
        return b->uuid;
}

const char *vc_backend_kind(const VcBackend *b)
{
        return b->ops->kind;
}

const char *vc_backend_where(const VcBackend *b)
{
        return b->where;
}

void vc_backend_traffic(const VcBackend *b, VcTraffic *ret)
{
        ret->sent_data = __atomic_load_n(&b->traffic.sent_data, __ATOMIC_RELAXED);
        ret->sent_meta = __atomic_load_n(&b->traffic.sent_meta, __ATOMIC_RELAXED);
        ret->recv_data = __atomic_load_n(&b->traffic.recv_data, __ATOMIC_RELAXED);
        ret->recv_meta = __atomic_load_n(&b->traffic.recv_meta, __ATOMIC_RELAXED);
        ret->wire_sent = __atomic_load_n(&b->traffic.wire_sent, __ATOMIC_RELAXED);
        ret->wire_recv = __atomic_load_n(&b->traffic.wire_recv, __ATOMIC_RELAXED);
        ret->cache_hits = __atomic_load_n(&b->traffic.cache_hits, __ATOMIC_RELAXED);
        ret->cache_hit_bytes = __atomic_load_n(&b->traffic.cache_hit_bytes, __ATOMIC_RELAXED);
}

void vc_traffic_since(const VcTraffic *a, const VcTraffic *b, VcTraffic *ret)
{
        const uint64_t *x = (const uint64_t *)a, *y = (const uint64_t *)b;
        uint64_t *z = (uint64_t *)ret;
        /* VcTraffic is a row of u64 counters */
        for (size_t i = 0; i < sizeof *ret / sizeof(uint64_t); i++)
                z[i] = y[i] - x[i];
}

static int check_parcel(const char *name)
{
        if (!name || !vc_name_valid(name))
                return vc_errf(-EINVAL, "invalid parcel name '%s' (use 1-64 letters, digits, '.', '_', '-')",
                               name ? name : "");
        return 0;
}

static int check_domain(const char *d)
{
        if (!d || !vc_domain_name_valid(d))
                return vc_errf(-EINVAL, "invalid domain name '%s'", d ? d : "");
        return 0;
}

#define CHECK(x)                        \
        do {                            \
                int _r = (x);           \
                if (_r < 0)             \
                        return _r;      \
        } while (0)

int vc_chunks_missing(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                      uint8_t *missing)
{
        CHECK(check_parcel(parcel));
        CHECK(check_domain(domain));
        return n ? b->ops->missing(b, parcel, domain, tags, n, missing) : 0;
}

int vc_chunks_put(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        CHECK(check_parcel(parcel));
        CHECK(check_domain(domain));
        for (size_t i = 0; i < n; i++)
                if (items[i].kind > VC_KIND_META || items[i].len == 0 || items[i].len > VC_SEALED_MAX)
                        return vc_errf(-EINVAL, "chunk %zu of a batch has kind %u and %u bytes", i, items[i].kind,
                                       items[i].len);
        return n ? b->ops->put(b, parcel, domain, items, n) : 0;
}

int vc_chunks_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                  vc_got_fn fn, void *ctx)
{
        CHECK(check_parcel(parcel));
        CHECK(check_domain(domain));
        return n ? b->ops->get(b, parcel, domain, tags, n, fn, ctx) : 0;
}

int vc_chunks_flush(VcBackend *b)
{
        return b->ops->flush(b);
}

int vc_cat_parcels(VcBackend *b, VcParcelInfo **ret, size_t *n)
{
        return b->ops->parcels(b, ret, n);
}

int vc_cat_parcel(VcBackend *b, const char *name, VcParcelInfo *ret)
{
        CHECK(check_parcel(name));
        return b->ops->parcel(b, name, ret);
}

int vc_cat_versions(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n)
{
        CHECK(check_parcel(name));
        return b->ops->versions(b, name, ret, n);
}

int vc_cat_version(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret)
{
        CHECK(check_parcel(name));
        if (version == 0)
                return vc_errf(-EINVAL, "versions are numbered from 1");
        return b->ops->version(b, name, version, ret);
}

int vc_cat_create(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len)
{
        CHECK(check_parcel(name));
        if (owner && *owner && !vc_name_valid(owner))
                return vc_errf(-EINVAL, "invalid user name '%s'", owner);
        if (len == 0 || len > VC_PARCEL_REC_MAX)
                return vc_errf(-EINVAL, "a parcel record of %zu bytes", len);
        return b->ops->create(b, name, owner, rec, len);
}

int vc_cat_commit(VcBackend *b, const VcCommit *c)
{
        CHECK(check_parcel(c->parcel));
        if (c->record_len != VC_VERSION_REC_LEN)   /* a client writes format 3 only */
                return vc_errf(-EINVAL, "a version record of %zu bytes", c->record_len);
        return b->ops->commit(b, c);
}

int vc_cat_prune(VcBackend *b, const char *name, uint32_t keep)
{
        CHECK(check_parcel(name));
        if (keep < 1)
                return vc_errf(-EINVAL, "--keep must be at least 1 (the latest version is always kept)");
        return b->ops->prune(b, name, keep);
}

bool vc_host_name_valid(const char *s)
{
        return s && vc_name_valid(s);
}

int vc_lease_acquire(VcBackend *b, const char *parcel, const char *host, VcLease *ret)
{
        CHECK(check_parcel(parcel));
        if (!vc_host_name_valid(host))
                return vc_errf(-EINVAL, "invalid host name '%s' (set VMCAS_HOST to 1-64 letters, digits, '.', '_', '-')",
                               host ? host : "");
        return b->ops->lease_acquire(b, parcel, host, ret);
}

int vc_lease_release(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN])
{
        CHECK(check_parcel(parcel));
        return b->ops->lease_release(b, parcel, token);
}

int vc_lease_break(VcBackend *b, const char *parcel)
{
        CHECK(check_parcel(parcel));
        return b->ops->lease_break(b, parcel);
}

int vc_lease_get(VcBackend *b, const char *parcel, VcLease *ret)
{
        CHECK(check_parcel(parcel));
        return b->ops->lease_get(b, parcel, ret);
}

int vc_backend_stat(VcBackend *b, VcStoreStat *st)
{
        return b->ops->stat(b, st);
}

int vc_backend_verify(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                      VcVerifyStats *st)
{
        return b->ops->verify(b, full, report, ctx, st);
}

int vc_backend_gc(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st)
{
        return b->ops->gc(b, grace, quiet, st);
}

int vc_bundle_get(VcBackend *b, uint8_t **ret, size_t *ret_len)
{
        return b->ops->bundle_get(b, ret, ret_len);
}

int vc_bundle_put(VcBackend *b, const uint8_t *blob, size_t len)
{
        return b->ops->bundle_put(b, blob, len);
}
