/* vc_backend — the one interface between the client and whatever stores
 * its chunks, catalog and leases (architecture.md, part 2).
 *
 * Implementations:
 *   local   a store directory (src/store + src/repo)       vc_backend_local.c
 *   remote  a `vmcas serve` over HTTP(S)                   src/remote/
 *   cache   a host chunk cache in front of another backend vc_backend_cache.c
 *   rados   a Ceph RADOS pool (librados)                   vc_backend_rados.c
 * vc_backend_open() picks one from a locator: a path, an http:// or
 * https:// URL, or rados://POOL[/PREFIX][?conf=...].
 *
 * What crosses this interface: parcel names, domain NAMES ("parcel:<uuid>",
 * "group:<name>", "all"), 32-byte tags, sealed chunk bytes, and opaque
 * parcel and version records that the client made and authenticates
 * itself (src/repo/vc_record.h: the store can read their clear fields —
 * domains, root tags — but cannot change one without the client noticing).
 * What never crosses it: LMDB transactions, pack offsets, lock files,
 * store-local domain ids.
 *
 * Errors: -errno with a message (vc_errf), fixed meanings as in vc_util.h,
 * plus:
 *   -ENOENT   no such parcel / version / chunk (named in the message)
 *   -EEXIST   vc_cat_create of a parcel that exists
 *   -EAGAIN   vc_cat_commit: the parcel moved past base, or a chunk the
 *             version names is not (any longer) in the store: nothing was
 *             committed; running the checkin again finishes the work
 *   -EBUSY    the parcel is leased to another host (message names it)
 *   -ESTALE   the caller's lease was broken (or released) meanwhile
 *   -EACCES   not allowed (a remote back end: token, ownership, admin)
 *   -ENOTSUP  the operation makes no sense on this back end
 *   -EIO / -ECONNREFUSED / -ETIMEDOUT  the back end cannot be reached
 *
 * Thread safety: every call may be made from several threads at once on
 * one VcBackend (the client's workers do), except vc_backend_free.
 * Conformance: tests/backend/test_backend_conformance.c runs one suite of
 * this contract on every implementation.
 */
#ifndef VC_BACKEND_H
#define VC_BACKEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/vc_repo.h"

#define VC_HOST_MAX 64              /* host names of leases */
#define VC_LEASE_TOKEN_LEN 16
/* No sealed chunk or keyring node is larger. */
#define VC_SEALED_MAX (VC_SEAL_HDR + VC_SEAL_NONCE + VC_CHUNK_MAX)

typedef struct VcBackend VcBackend;

/* ---- opening ------------------------------------------------------------ */

typedef struct VcBackendOpts {
        const char *cache_dir;      /* remote: the host cache (NULL: the default) */
        uint64_t cache_size;        /* its bound in bytes (0: the default) */
        bool no_cache;              /* remote: talk to the server directly */
        bool verify_puts;           /* local: re-hash every chunk put (a server) */
        bool create;                /* local: create the store if absent (a cache) */
        const char *token;          /* remote: bearer token (NULL: $VMCAS_TOKEN) */
} VcBackendOpts;

/* Opens the back end named by locator: "http://HOST:PORT", "https://...",
 * or a path to a store directory. o may be NULL (defaults). A remote back
 * end is reached once here (GET /v1/store) so that a wrong URL, a server
 * that is down or a bad token is reported now, clearly. */
int vc_backend_open(const char *locator, const VcBackendOpts *o, VcBackend **ret);
void vc_backend_free(VcBackend *b);                  /* NULL ok */
/* The store's UUID: keys are kept per store (src/client/vc_keystore.h). */
const uint8_t *vc_backend_uuid(const VcBackend *b);
/* "local", "remote", "cache", "rados". */
const char *vc_backend_kind(const VcBackend *b);
/* A short human name of where it is (the path or URL). */
const char *vc_backend_where(const VcBackend *b);

/* Bytes a back end moved, for checkin/checkout --json. Data are sealed
 * chunk payloads of kind VC_KIND_DATA, meta those of VC_KIND_META plus
 * catalog records; wire is everything on the network (HTTP included).
 * A local back end counts data/meta as written/read and wire as 0.
 * A cache counts its upstream's traffic (what went over the wire, or in
 * and out of the store behind it) as its own, and the chunks it served
 * itself apart: cache_hits chunks of cache_hit_bytes sealed bytes. */
typedef struct VcTraffic {
        uint64_t sent_data, sent_meta, recv_data, recv_meta, wire_sent, wire_recv;
        uint64_t cache_hits, cache_hit_bytes;
} VcTraffic;
void vc_backend_traffic(const VcBackend *b, VcTraffic *ret);
/* What was moved between two readings: *ret = *after - *before. */
void vc_traffic_since(const VcTraffic *before, const VcTraffic *after, VcTraffic *ret);

/* ---- chunks ------------------------------------------------------------- */

/* Chunks live in domains named by the parcel's record: its own domain for
 * keyring nodes (and data under delta/ip), "group:NAME" or "all" for the
 * data of group/all parcels. Every call names the parcel it works for, so
 * that a server can check ownership and answer `missing` from the parcel's
 * own history where the store is configured to (--no-existence-oracle). */

/* Sets missing[i] = 1 if tags[i] (tags + 32 i) is not stored in domain,
 * else 0. One round trip for any n. */
int vc_chunks_missing(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                      uint8_t *missing);

typedef struct VcPutItem {
        uint8_t tag[32];
        uint8_t kind;               /* VC_KIND_DATA or VC_KIND_META */
        uint32_t len;
        const uint8_t *data;
} VcPutItem;

/* Stores n sealed chunks of domain. A chunk already stored is not stored
 * twice (it may cost dead space in a local store if another writer raced
 * it); ask vc_chunks_missing first to send only what is needed. With
 * verify (a server, vc_backend_opts.verify_puts) a chunk whose SHA-256 is
 * not its tag is refused (-EBADMSG naming it) and nothing of the batch is
 * stored. Stored chunks are durable after vc_chunks_flush, on every back
 * end (a server's too: it flushes at a flush request or a commit). */
int vc_chunks_put(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n);

/* Fetches n chunks of domain. fn is called once per tag, in any order,
 * from the calling thread, with idx into tags and the sealed bytes (valid
 * only during the call). Bytes are not re-hashed here: the caller's open
 * does that. Returns 0 once fn has seen every chunk; the first error of fn
 * (returned); -ENOENT naming the first tag that is not stored (fn may
 * have been called for others). */
typedef int (*vc_got_fn)(size_t idx, const uint8_t *data, size_t len, void *ctx);
int vc_chunks_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                  vc_got_fn fn, void *ctx);

/* Makes every chunk put so far durable, and visible to other processes on
 * the same store. Until then `missing` may not count them (the local back
 * end and a server do, in the process that took the put; RADOS counts
 * them once their pack is written), a crash forgets them, and
 * vc_backend_free drops what was not flushed. A commit needs its chunks
 * flushed: the client flushes first (a server also flushes at a commit). */
int vc_chunks_flush(VcBackend *b);

/* ---- catalog ------------------------------------------------------------ */

/* A parcel as the back end keeps it: its record (made and authenticated by
 * the client, src/repo/vc_record.h), the latest version, its owner. */
typedef struct VcParcelInfo {
        char name[VC_NAME_MAX + 1];
        char owner[VC_USER_MAX + 1];     /* "" on a local store */
        uint32_t latest;                 /* 0: no version yet */
        size_t record_len;
        uint8_t record[VC_PARCEL_REC_MAX];
} VcParcelInfo;

typedef struct VcVersionInfo {
        uint32_t version;
        uint64_t seq;                    /* the store's commit order (gc) */
        size_t record_len;
        uint8_t record[VC_VERSION_REC_MAX];
} VcVersionInfo;

/* Every parcel the caller may see, sorted by name (malloc'ed). */
int vc_cat_parcels(VcBackend *b, VcParcelInfo **ret, size_t *n);
/* -ENOENT "no parcel 'x'" (also for another user's parcel on a server). */
int vc_cat_parcel(VcBackend *b, const char *name, VcParcelInfo *ret);
/* All versions, oldest first (malloc'ed). */
int vc_cat_versions(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n);
int vc_cat_version(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret);

/* Creates parcel name with record rec (no version yet). owner: the user
 * who will own it (an administrator creating a parcel for a user), or NULL
 * for the caller. -EEXIST if it exists. */
int vc_cat_create(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len);

/* One atomic commit: version base+1 of parcel with record rec, if the
 * latest version is still base, the caller holds the parcel's lease (token,
 * or the lease is free and token is NULL), and every chunk in need_nodes
 * (node domain) and need_data (data domain) is stored. Otherwise nothing
 * changes: -EAGAIN (moved on, or a chunk vanished: message says which),
 * -EBUSY / -ESTALE (lease). */
typedef struct VcCommit {
        const char *parcel;
        uint32_t base;
        const uint8_t *record;
        size_t record_len;
        const uint8_t *lease;            /* VC_LEASE_TOKEN_LEN bytes, or NULL */
        const uint8_t *need_nodes;       /* 32 n_nodes bytes */
        size_t n_nodes;
        const uint8_t *need_data;        /* 32 n_data bytes */
        size_t n_data;
} VcCommit;
int vc_cat_commit(VcBackend *b, const VcCommit *c);

/* Drops every version older than the newest keep. Returns the number
 * dropped. */
int vc_cat_prune(VcBackend *b, const char *name, uint32_t keep);

/* ---- leases ------------------------------------------------------------- */

/* A parcel is leased to the host that checked it out until that host
 * checks in with --release, or an administrator breaks the lease. The
 * token proves holdership: it is returned by acquire only. */
typedef struct VcLease {
        bool held;
        char host[VC_HOST_MAX + 1];
        int64_t since;                   /* unix seconds */
        uint8_t token[VC_LEASE_TOKEN_LEN];   /* zero unless from acquire */
} VcLease;

/* Takes the lease for host. If host already holds it, returns its lease
 * (same token). -EBUSY naming the holder if another host does. */
int vc_lease_acquire(VcBackend *b, const char *parcel, const char *host, VcLease *ret);
/* Gives the lease up. -ESTALE if token is not the current lease's. */
int vc_lease_release(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN]);
/* An administrator takes the lease away from whoever holds it. 0 if it was
 * free. */
int vc_lease_break(VcBackend *b, const char *parcel);
/* Who holds it (ret->held false if nobody). */
int vc_lease_get(VcBackend *b, const char *parcel, VcLease *ret);
/* The -EBUSY "parcel X is leased to host H since T ..." error, for every
 * back end to word it alike. */
int vc_lease_busy(const char *parcel, const VcLease *ls);

/* ---- maintenance (what an administrator runs on the store) ---------------- */

int vc_backend_stat(VcBackend *b, VcStoreStat *st);
int vc_backend_verify(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                      VcVerifyStats *st);
int vc_backend_gc(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st);

/* The caller's key bundle, sealed by the client under its passphrase
 * (src/client/vc_bundle.h); a server keeps it and can never read it.
 * -ENOENT if none; -ENOTSUP on a local store (the keys are on this host). */
int vc_bundle_get(VcBackend *b, uint8_t **ret, size_t *ret_len);
int vc_bundle_put(VcBackend *b, const uint8_t *blob, size_t len);

/* ---- implementing a back end -------------------------------------------- */

typedef struct VcBackendOps {
        const char *kind;
        void (*free)(VcBackend *b);
        int (*missing)(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                       uint8_t *missing);
        int (*put)(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n);
        int (*get)(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                   vc_got_fn fn, void *ctx);
        int (*flush)(VcBackend *b);
        int (*parcels)(VcBackend *b, VcParcelInfo **ret, size_t *n);
        int (*parcel)(VcBackend *b, const char *name, VcParcelInfo *ret);
        int (*versions)(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n);
        int (*version)(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret);
        int (*create)(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len);
        int (*commit)(VcBackend *b, const VcCommit *c);
        int (*prune)(VcBackend *b, const char *name, uint32_t keep);
        int (*lease_acquire)(VcBackend *b, const char *parcel, const char *host, VcLease *ret);
        int (*lease_release)(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN]);
        int (*lease_break)(VcBackend *b, const char *parcel);
        int (*lease_get)(VcBackend *b, const char *parcel, VcLease *ret);
        int (*stat)(VcBackend *b, VcStoreStat *st);
        int (*verify)(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                      VcVerifyStats *st);
        int (*gc)(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st);
        int (*bundle_get)(VcBackend *b, uint8_t **ret, size_t *ret_len);
        int (*bundle_put)(VcBackend *b, const uint8_t *blob, size_t len);
} VcBackendOps;

/* The common head of every back end's handle; implementations embed it
 * first and fill it in. Traffic counters are updated atomically. */
struct VcBackend {
        const VcBackendOps *ops;
        uint8_t uuid[16];
        char where[512];
        VcTraffic traffic;
};

/* Constructors of the implementations (vc_backend_open picks one). */
int vc_backend_local_open(const char *path, const VcBackendOpts *o, VcBackend **ret);
int vc_backend_remote_open(const char *url, const VcBackendOpts *o, VcBackend **ret);
/* A cache store at dir (created if absent) in front of upstream, which it
 * then owns. */
int vc_backend_cache_open(const char *dir, uint64_t bound, VcBackend *upstream, VcBackend **ret);

/* A cache only: has[i] = 1 if the cache itself holds tags[i] of upstream
 * domain (nothing is asked upstream). -ENOTSUP on another back end. */
int vc_backend_cache_has(VcBackend *b, const char *domain, const uint8_t *tags, size_t n, uint8_t *has);

/* A cache only (nothing elsewhere): starts the thread that stores and
 * indexes what gets fetched, now rather than at the first small get (a
 * disk server calls it once it runs, after nbdkit forked). */
void vc_backend_cache_warm(VcBackend *b);

/* A cache only: indexes now what it stored and has not yet (others see
 * it at once instead of up to a few seconds late). */
void vc_backend_cache_settle(VcBackend *b);

/* Local only: the VcStore behind a local back end (the server's and the
 * maintenance commands' way in), or NULL. */
struct VcStore *vc_backend_local_store(VcBackend *b);

/* RADOS (vc_backend_rados.c): locator
 * rados://POOL[/PREFIX][?conf=FILE&id=NAME&cluster=NAME&timeout=SECONDS].
 * init makes an empty store there (-EEXIST if there is one). */
int vc_backend_rados_open(const char *locator, const VcBackendOpts *o, VcBackend **ret);
int vc_backend_rados_init(const char *locator, uint8_t uuid[16], char *where, size_t wlen);
bool vc_backend_is_rados(VcBackend *b);
/* Small named objects of the store beside chunks and catalog (a server's
 * key bundles): -ENOENT if absent, -ENOTSUP on another back end. */
int vc_backend_rados_blob_get(VcBackend *b, const char *name, size_t max, uint8_t **ret, size_t *ret_len);
int vc_backend_rados_blob_put(VcBackend *b, const char *name, const uint8_t *data, size_t len);
/* Drops every index entry whose bytes are not in the pool (full: or do
 * not hash to their tag), so the next checkin stores them again. */
int vc_backend_rados_repair(VcBackend *b, bool full, uint64_t *dropped);

/* Checks a host name of a lease: [A-Za-z0-9._-]{1,64}. */
bool vc_host_name_valid(const char *s);

#endif
