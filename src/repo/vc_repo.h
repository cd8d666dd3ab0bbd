/* vc_repo — parcels and versions in a local store's catalog, and
 * everything that can be done with them WITHOUT a key: the records' clear
 * fields, walking the keyrings of versions by their clear tags, garbage
 * collection, verification, stat and prune. This is what the local back
 * end (src/backend/vc_backend_local.c), and so a server, runs. Sealing,
 * opening and authenticating records need keys: src/client.
 *
 * Parcel record (made by the client when it creates the parcel, never
 * changed after; little-endian), format 2:
 *   0 "VPAR"  4 u8 format 2  5 u8 policy  6 u8 compression  7 u8 0
 *   8 u8[16] parcel uuid (random)  24 u32 chunk size  28 u32 0
 *   32 u64 memory size  40 u64 disk size  48 i64 created (unix seconds)
 *   56 u8[16] key check  72 u8[16] group key check
 *   88 u8 group name length, the name; u8 node domain length, the name;
 *      u8 data domain length, the name
 *   .. u8[32] MAC: HMAC-SHA-256 under a key derived from the parcel's
 *      secret, over "vmcas parcel record" ‖ u8 name length ‖ parcel name ‖
 *      every byte above (src/client/vc_client_int.h: record_mac)
 * The store reads the domains (to walk versions for gc and verify) but
 * cannot change any field without the client refusing the record.
 *
 * Version record (made by the client at checkin), format 3, 380 bytes:
 *   0 "VVER"  4 u8 format 3  5..7 0  8 u32 version  12 u32 0
 *   16 i64 timestamp  24 u8[16] parcel uuid
 *   40 u64 memory size  48 u64 disk size
 *   56 u8[32] memory root tag  88 u8[32] disk root tag
 *   120 u64 new chunks  128 u64 new bytes  136 u64 metadata bytes
 *   144 u64 machine size  152 u8[32] machine root tag
 *   184 u64 read-order size  192 u8[32] read-order root tag
 *   224 u8[156] the four root keys, AES-256-GCM under the parcel's wrap
 *       key with bytes 0..223 as associated data
 * Two more trees beside the images, of any size (0: none, an all-zero
 * root): the machine (src/client/vc_machine.h: how the VM boots and the
 * device state QEMU saved at suspend) and the read order (the disk chunks
 * the VM read first after its last resume, u64 indexes, for checkout to
 * fetch ahead). Their chunks are sealed like the images' in the data
 * domain and walked by gc and verify like them.
 * Format 2 (236 bytes, an earlier vmcas 0.2 development build) is read
 * still: bytes 0..143 as above with format 2, then the two image root keys
 * sealed (92 bytes) with bytes 0..143 as associated data; no machine, no
 * read order.
 * The root tags are in the clear so the store can walk the version's
 * trees; every field is authenticated by the GCM tag.
 *
 * In the local catalog (table PARCELS, key = name) a parcel's value is
 *   u64 local id ‖ u32 latest version ‖ u8 owner length ‖ owner ‖ record
 * and a version's (table VERSIONS, key = local id BE64 ‖ version BE32) is
 *   u64 commit sequence ‖ record.
 * Latest, owner and sequence are the store's: nothing the client acts on
 * without checking it against authenticated records.
 */
#ifndef VC_REPO_H
#define VC_REPO_H

#include <stdbool.h>
#include <stdint.h>

#include "core/vc_seal.h"
#include "core/vc_tagset.h"
#include "store/vc_store.h"

#define VC_NAME_MAX 64
#define VC_DOMAIN_MAX 80            /* domain names, NUL included */
#define VC_USER_MAX 64
#define VC_PARCEL_FORMAT 2
#define VC_VERSION_FORMAT 3
#define VC_PARCEL_REC_MAX 400
#define VC_PARCEL_REC_FIXED 88
#define VC_VERSION_REC_LEN 380          /* format 3, what this vmcas writes */
#define VC_VERSION_REC_LEN_V2 236       /* format 2, still read */
#define VC_VERSION_REC_MAX VC_VERSION_REC_LEN
#define VC_VERSION_AAD_LEN 224
#define VC_VERSION_AAD_LEN_V2 144
#define VC_WRAPPED_LEN (128 + VC_GCM_OVERHEAD)
#define VC_WRAPPED_LEN_V2 (64 + VC_GCM_OVERHEAD)
/* A version record of either format has one of these lengths. */
#define vc_version_rec_len_ok(n) ((n) == VC_VERSION_REC_LEN || (n) == VC_VERSION_REC_LEN_V2)
#define VC_RECORD_MAC_LEN 32

typedef struct VcParcel {
        /* from the record: authenticated by the client */
        char name[VC_NAME_MAX + 1];
        uint8_t uuid[16];
        VcPolicy policy;
        VcComp comp;
        char group[VC_NAME_MAX + 1];
        uint32_t chunk_size;
        uint64_t mem_size, disk_size;
        int64_t created;
        char node_dom[VC_DOMAIN_MAX], data_dom[VC_DOMAIN_MAX];
        uint8_t check[16], group_check[16];
        uint8_t mac[VC_RECORD_MAC_LEN];
        /* the store's word */
        uint32_t latest;
        char owner[VC_USER_MAX + 1];
        /* a local store's own ids (never outside src/repo, src/store and
         * the local back end) */
        uint64_t id;
        uint64_t node_domain, data_domain;
} VcParcel;

typedef struct VcVersion {
        uint8_t format;               /* 3 (2: an older record, no machine) */
        uint32_t version;
        int64_t timestamp;
        uint8_t uuid[16];
        uint64_t mem_size, disk_size;
        uint8_t mem_root[32], disk_root[32];
        uint64_t new_chunks, new_bytes, meta_bytes;
        uint64_t machine_size, order_size;    /* 0: none */
        uint8_t machine_root[32], order_root[32];
        uint8_t wrapped[VC_WRAPPED_LEN];      /* VC_WRAPPED_LEN_V2 used in format 2 */
        uint64_t seq;                 /* the store's commit order */
} VcVersion;

/* Names of parcels and groups: [A-Za-z0-9._-]{1,64}. */
bool vc_name_valid(const char *s);

/* Records (src/repo/vc_record.c). pack writes the record of p with its
 * MAC field as p->mac; *len is the whole record, the MAC its last
 * VC_RECORD_MAC_LEN bytes. unpack checks the layout only (-EBADMSG naming
 * the parcel), never the MAC: that needs the parcel's key. A format-1
 * record (an earlier vmcas) is refused with -EPROTO. */
int vc_parcel_pack(const VcParcel *p, uint8_t *buf, size_t cap, size_t *len);
int vc_parcel_unpack(const uint8_t *buf, size_t len, const char *name, VcParcel *p);
/* Packs v in its format (v->format: 3, or 2 to re-make an older record's
 * associated data); returns the record's length. */
size_t vc_version_pack(const VcVersion *v, uint8_t out[VC_VERSION_REC_MAX]);
int vc_version_unpack(const uint8_t *buf, size_t len, VcVersion *v);
/* The associated data of v's sealed root keys (bytes 0..223, or 0..143 of
 * format 2) and its length. */
size_t vc_version_aad(const VcVersion *v, uint8_t aad[VC_VERSION_AAD_LEN]);
void vc_version_key(uint64_t parcel_id, uint32_t version, uint8_t key[12]);
/* The domain names of a new parcel: "parcel:<uuid hex>" for its nodes; its
 * own, "group:NAME" or "all" for its data. */
void vc_parcel_domains(VcParcel *p);
/* Checks a domain name: "parcel:<32 hex>", "group:<name>", "all". */
bool vc_domain_name_valid(const char *s);

/* -ENOENT with "no parcel 'x' in this store" if absent. Resolves the
 * record's domain names to this store's ids (0 if never written). */
int vc_repo_parcel(VcTxn *t, const char *name, VcParcel *p);
/* The raw record and the store's fields of parcel name. */
int vc_repo_parcel_raw(VcTxn *t, const char *name, uint8_t *rec, size_t cap, size_t *len, uint32_t *latest,
                       char owner[VC_USER_MAX + 1], uint64_t *id);
/* Writes the catalog value of p: its id, latest, owner and record rec. */
int vc_repo_parcel_put(VcTxn *t, const VcParcel *p, const uint8_t *rec, size_t len);
/* The raw record of version v of parcel id (and its commit sequence). */
int vc_repo_version_raw(VcTxn *t, uint64_t id, uint32_t version, uint8_t rec[VC_VERSION_REC_MAX], size_t *len,
                        uint64_t *seq);
/* All parcels, sorted by name (malloc'ed). */
int vc_repo_parcels(VcTxn *t, VcParcel **ret, size_t *n);
/* -ENOENT with "parcel 'x' has no version N" if absent. */
int vc_repo_version(VcTxn *t, const VcParcel *p, uint32_t version, VcVersion *v);
/* All versions of p, oldest first (malloc'ed). */
int vc_repo_versions(VcTxn *t, const VcParcel *p, VcVersion **ret, size_t *n);
/* Allocates the next parcel id / commit sequence number (write txn). */
int vc_repo_next(VcTxn *t, const char *counter, uint64_t *ret);

/* Walks the keyring trees of version v of p without a key: calls visit for
 * every node (kind VC_KIND_META, in p's node domain) and every data chunk
 * (VC_KIND_DATA, in p's data domain) it references; nodes already in
 * `seen` (if given) are not descended into again, so shared subtrees cost
 * nothing the second time. -EBADMSG/-ENOENT if a node cannot be read. */
typedef int (*vc_visit_fn)(uint64_t domain, const uint8_t tag[32], int kind, void *ctx);
int vc_repo_walk(VcStore *s, const VcParcel *p, const VcVersion *v, VcTagSet *seen, vc_visit_fn visit, void *ctx);

typedef struct VcGcStats {
        uint64_t versions, referenced;
        VcSweepStats sweep;
        VcCompactStats compact;
} VcGcStats;
/* Mark and sweep with a grace period (unreferenced chunks younger than
 * grace seconds stay: they may belong to a checkin in progress), then
 * compaction of packs less than half live. Runs beside checkins. */
int vc_repo_gc(VcStore *s, int64_t grace, bool quiet, VcGcStats *st);

/* Drops every version of parcel name older than the newest keep ones.
 * Returns the number of versions dropped; *upto (if not NULL) is set to
 * the newest version number that is gone (0: none). */
int vc_repo_prune(VcStore *s, const char *name, uint32_t keep, uint32_t *upto);


/* ---- catalog copies in the packs (src/repo/vc_catalog.c) --------------------
 *
 * Every parcel record, version record and prune is also written to the
 * packs, as a record of kind VC_KIND_CATALOG in the parcel's node domain,
 * right after the catalog transaction that made it commits (a crash
 * between the two loses only that copy, which matters only if the index
 * is lost as well). From these, vc_repo_rebuild_catalog rebuilds the
 * catalog without the old LMDB. Layout (tag = SHA-256 of the bytes):
 *   0 "VCAT"  4 u8 format 1  5 u8 type (1 parcel, 2 version, 3 prune)
 *   6 u8 name length  7 the parcel's name, then
 *   parcel:  u8 owner length ‖ owner ‖ the parcel record
 *   version: u32 version ‖ the version record
 *   prune:   u32 n: every version up to n was dropped
 * Catalog copies are always live for gc (a few hundred bytes a version).
 */
enum { VC_CAT_PARCEL = 1, VC_CAT_VERSION = 2, VC_CAT_PRUNE = 3 };
#define VC_CATCOPY_MAX (8 + VC_NAME_MAX + 1 + VC_USER_MAX + VC_PARCEL_REC_MAX)

typedef struct VcCatCopy {
        int type;
        char name[VC_NAME_MAX + 1];
        char owner[VC_USER_MAX + 1];
        uint32_t version;
        const uint8_t *rec;
        size_t rec_len;
} VcCatCopy;

int vc_catcopy_pack(const VcCatCopy *c, uint8_t *buf, size_t cap, size_t *len);
/* c->rec points into buf. -EBADMSG if malformed. */
int vc_catcopy_unpack(const uint8_t *buf, size_t len, VcCatCopy *c);
/* Appends copy c to domain through writer w and flushes it. */
int vc_repo_catcopy_put(VcWriter *w, uint64_t domain, const VcCatCopy *c);

typedef struct VcRebuildStats {
        uint64_t parcels, versions, pruned, copies, damaged;
} VcRebuildStats;
/* Replaces the catalog (parcels, versions, leases, counters) with what the
 * catalog copies in the index say (run after the chunk index was rebuilt
 * from the packs). Versions a prune dropped stay dropped; a version whose
 * record does not belong to its parcel is skipped; leases are not kept.
 * Parcels get new local ids, versions new commit sequences in time order. */
int vc_repo_rebuild_catalog(VcStore *s, VcRebuildStats *st);

/* ---- stat and verify (src/repo/vc_inspect.c) ------------------------------- */

typedef struct VcParcelStat {
        VcParcel p;
        uint32_t versions;
        uint64_t logical_bytes;  /* image bytes of all its versions */
        uint64_t data_bytes;     /* sealed bytes of the distinct chunks its versions use */
        uint64_t meta_bytes;     /* its keyring nodes and version records */
        uint64_t disk_bytes;     /* the packs of its own domain (for all/group:
                                    its metadata; the pool is counted apart) */
} VcParcelStat;

typedef struct VcStoreStat {
        uint64_t data_bytes, meta_bytes, disk_bytes, index_bytes, logical_bytes;
        VcParcelStat *parcels;
        size_t nparcels;
        VcDomainStat *domains;
        size_t ndomains;
} VcStoreStat;

int vc_repo_stat(VcStore *s, VcStoreStat *st);
void vc_repo_stat_free(VcStoreStat *st);

typedef struct VcVerifyStats {
        uint64_t parcels, versions, chunks_checked, bytes_checked, problems;
        uint64_t by_repair[VC_REPAIR_HARMLESS + 1];     /* problems per VcRepair */
        bool versions_unchecked;        /* the chunk index was damaged: versions not walked */
} VcVerifyStats;
/* Checks the store (vc_store_check_ex) and that every version's keyrings
 * and chunks are present; with full, also re-hashes every chunk. Calls
 * report once per problem with a sentence naming the chunk and the parcels
 * and versions it breaks, and one saying which repair fixes it
 * (vc_repair_text). Returns the number of problems or -errno. */
int vc_repo_verify(VcStore *s, bool full, void (*report)(const char *msg, const char *repair, void *ctx),
                   void *ctx, VcVerifyStats *st);

#endif
