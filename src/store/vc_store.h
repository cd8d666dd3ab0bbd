/* vc_store — the chunk repository on one machine.
 *
 * A store is a directory:
 *   STORE/vmcas-store          marker: magic, format version, store UUID
 *   STORE/index/               LMDB environment: chunk index and catalog
 *   STORE/packs/<domain>/<n>.pack   append-only pack files, one set per domain
 *   STORE/locks/<name>         flock() files (parcel locks, gc)
 *
 * Chunks live in *domains* (privacy scopes): a parcel's own domain, a
 * group's pool, or the global pool. The index maps (domain, tag) to a
 * record in a pack of that domain. Pack records carry their domain, tag,
 * kind, length and a header checksum, so the index can be rebuilt from the
 * packs alone. The store never sees a key: tags are SHA-256 of sealed bytes.
 *
 * Durability order: pack data is fsync'ed before the index entries that
 * point at it are committed (vc_writer_flush), and callers commit a version
 * only after flushing the chunks it references. A crash therefore leaves at
 * most unindexed bytes at a pack's tail (cut off by the next writer) or
 * indexed chunks no version references yet (garbage after the grace
 * period).
 *
 * Thread safety: a VcStore may be used from several threads for reading
 * (vc_store_get/has); a VcWriter and a VcTxn belong to one thread.
 * Several processes may open one store at once.
 */
#ifndef VC_STORE_H
#define VC_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VC_TAG_LEN 32
#define VC_UUID_LEN 16

typedef struct VcStore VcStore;
typedef struct VcWriter VcWriter;
typedef struct VcTxn VcTxn;

/* What a chunk is, kept in the pack record and the index, so that stat can
 * tell data from metadata without any key. */
enum {
        VC_KIND_DATA = 0,       /* a sealed chunk of an image */
        VC_KIND_META = 1,       /* a keyring node */
        /* a copy of a catalog record (parcel, version, prune), in the
         * parcel's own domain, so that repair can rebuild the catalog from
         * the packs alone (src/repo/vc_repo.h: catalog copies). Always live
         * for gc. */
        VC_KIND_CATALOG = 2,
};

/* ---- store ------------------------------------------------------------- */

/* Creates an empty store at path (the directory may exist if empty).
 * -EEXIST (with message) if path already holds a store or other files. */
int vc_store_create(const char *path);

/* Opens a store. -ENOENT / -EINVAL with a clear message when path does not
 * exist or is not a vmcas store; -EPROTO for an unknown format version.
 * The index is checked before LMDB may touch it (src/store/vc_store_db.c):
 * -EBADMSG if it is damaged, -ENODATA if index/data.mdb is missing or
 * empty, each with a message naming the file and saying to run 'vmcas
 * verify --reindex'. A fault inside LMDB later on is -EBADMSG too. */
int vc_store_open(const char *path, VcStore **ret);
/* Opens a store to repair its index. As vc_store_open, but a damaged index
 * does not stop it: then vc_store_reindex (which replaces the index) and
 * vc_store_free are all that work, anything else fails with the message
 * vc_store_open gives. A missing or empty index is made anew, empty (so
 * reindex finds no catalog to keep). */
int vc_store_open_repair(const char *path, VcStore **ret);
void vc_store_free(VcStore *s);              /* NULL ok */
const char *vc_store_path(const VcStore *s);
const uint8_t *vc_store_uuid(const VcStore *s); /* VC_UUID_LEN bytes */

/* Makes s a store that may lose its newest writes in a crash of the
 * machine (not of the process): its writers append through the page cache
 * and do not fdatasync, and index commits do not sync. For a host cache,
 * whose every chunk can be fetched again and which rebuilds a damaged
 * index from its packs: it then costs the disk no more than the page
 * cache does. */
int vc_store_set_volatile(VcStore *s);

/* Looks up (or with create, creates) the domain called name, e.g.
 * "parcel:7", "group:eng", "all". Ids are small integers, never reused. */
int vc_store_domain(VcStore *s, const char *name, bool create, uint64_t *ret_id);
/* The id of domain name as seen by transaction t; -ENOENT if it has none. */
int vc_txn_domain(VcTxn *t, const char *name, uint64_t *ret_id);
/* The name of domain id into buf. -ENOENT if unknown. */
int vc_store_domain_name(VcStore *s, uint64_t id, char *buf, size_t len);

/* ---- reading chunks -------------------------------------------------------- */

/* 1 if (domain, tag) is in the index, 0 if not, -errno on failure. */
int vc_store_has(VcStore *s, uint64_t domain, const uint8_t tag[VC_TAG_LEN]);

/* Reads the sealed bytes of (domain, tag) into *buf (grown with realloc as
 * needed; *cap is its size). Checks the record header (magic, domain, tag,
 * length, header checksum) but not the data hash: the caller's open() does
 * that. -ENOENT if the chunk is not indexed; -EBADMSG with a message naming
 * the tag, pack and offset if the record there (or its index entry) is
 * damaged; -EIO if the pack file it is indexed in is missing. Retries the
 * lookup once if the pack vanished (compaction moved the chunk).
 * Cost: one LMDB read transaction and one preadv (pack fds are cached). */
int vc_store_get(VcStore *s, uint64_t domain, const uint8_t tag[VC_TAG_LEN],
                 uint8_t **buf, size_t *cap, size_t *ret_len);

/* The same, looking the chunk up in the caller's read transaction t (NULL:
 * a transaction of its own). A reader of many chunks saves a transaction
 * per chunk, which with several threads also saves contention on LMDB's
 * reader table; it should renew t now and then (vc_txn_refresh) so as not
 * to pin old pages. */
int vc_store_get_txn(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN],
                     uint8_t **buf, size_t *cap, size_t *ret_len);

/* Asks the kernel to read ahead the records of n chunks (tags[i] at
 * tags + i * stride) of domain: their places are looked up in t (or a
 * transaction of its own), stored in locs[i] if locs is not NULL, and
 * adjacent records are merged into large reads. Advisory: chunks not found are skipped, and nothing fails but a
 * transaction. For a reader about to get many chunks, e.g. a checkout: cold
 * packs are otherwise read 4 KiB at a time. */
typedef struct VcChunkLoc {
        bool found;
        int kind;
        uint32_t pack, len;
        uint64_t off;
} VcChunkLoc;
int vc_store_prefetch(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t *tags, size_t stride, size_t n,
                      VcChunkLoc *locs);

/* The look-ups of vc_store_prefetch without its read-ahead, for a reader
 * that reads the records itself (vc_store_read_located). */
int vc_store_locate(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t *tags, size_t stride, size_t n,
                    VcChunkLoc *locs);

/* Reads the records of the chunks that vc_store_locate found (locs[i].found
 * and not done[i]) in the order of their packs, records of a pack less than
 * 64 KiB apart in one read of at most 4 MiB, and calls fn(i, data, len,
 * kind, ctx) for each whose record header checks (magic, checksum, domain,
 * tag, length, kind), setting done[i]. A run of 128 KiB or more that is not
 * all in the page cache is read with direct I/O (no copy, no page cache
 * filled; VMCAS_DIRECT_IO=0 turns that off). A read that fails or a record
 * that does not check is left undone, without an error: the caller reads
 * those with vc_store_get_at, which retries and names what is wrong.
 * Returns fn's first error, else 0. data is valid only during the call. */
typedef int (*vc_store_got_fn)(size_t idx, const uint8_t *data, size_t len, int kind, void *ctx);
int vc_store_read_located(VcStore *s, uint64_t domain, const uint8_t *tags, size_t stride, size_t n,
                          const VcChunkLoc *locs, bool *done, vc_store_got_fn fn, void *ctx);

/* vc_store_get_txn with the place that vc_store_prefetch found (locs[i]),
 * which saves the look-up; if the chunk is no longer there (compaction
 * moved it) it is looked up again. */
int vc_store_get_at(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], const VcChunkLoc *loc,
                    uint8_t **buf, size_t *cap, size_t *ret_len);

/* ---- writing chunks ---------------------------------------------------------- */

/* A writer appends records to packs it has claimed (flock), one open pack
 * per domain it writes to; a pack is sealed when it passes ~256 MiB. */
int vc_writer_new(VcStore *s, VcWriter **ret);

/* Appends a sealed chunk unless (domain, tag) is already indexed or already
 * put through this writer. Returns 1 if written, 0 if already present.
 * The chunk becomes durable and visible to others at the next flush. */
int vc_writer_put(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN],
                  const void *data, size_t len);

/* Seals packs when they pass bytes instead of ~256 MiB (tests, tuning). */
void vc_writer_set_pack_max(VcWriter *w, uint64_t bytes);
/* Flushes by itself when puts pass bytes instead of 64 MiB. Each flush of
 * random tags rewrites most leaf pages of the index, so a writer of much
 * new data (a checkin) wants few flushes: VC_WRITER_FLUSH_BULK. */
void vc_writer_set_flush_bytes(VcWriter *w, uint64_t bytes);
/* Whether packs claimed from now on are written with direct I/O (the
 * default, except in a volatile store: a host cache). A volatile store's
 * bulk writers turn it on: the copy into fresh page-cache pages cost more
 * CPU than the rest of a cache fill. VMCAS_DIRECT_IO=0 still turns it off. */
void vc_writer_set_direct(VcWriter *w, bool on);
#define VC_WRITER_FLUSH_BULK (256ull << 20)

/* The same, for a caller that has just looked (domain, tag) up itself and
 * not found it (say in a transaction of each of its threads): skips the
 * writer's own index look-up, which would otherwise be done one chunk at a
 * time on the writer's thread. Should the chunk have been indexed since,
 * the record is dead space and the flush keeps the older entry. */
int vc_writer_put_fresh(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN],
                        const void *data, size_t len);

/* Bytes put through this writer and not yet flushed. */
uint64_t vc_writer_pending(const VcWriter *w);

/* Whether a failed write poisoned w: every put and flush fails from then
 * on; what it held unflushed is lost, and freeing it gives its packs up
 * (cut back to what was committed). */
bool vc_writer_poisoned(const VcWriter *w);

/* Claims a pack for each domain `like` has a pack open in (creating them
 * takes the index's write lock: done now, not while `like` flushes). */
int vc_writer_claim_like(VcWriter *w, const VcWriter *like);

/* Whether (domain, tag) was put through this writer since its last
 * flush: stored once the next flush succeeds, not yet in the index. */
bool vc_writer_has_pending(const VcWriter *w, uint64_t domain, const uint8_t tag[VC_TAG_LEN]);

/* fdatasync()s the packs, then commits the index entries of every chunk put
 * since the last flush (with each pack's new committed length) in one
 * LMDB transaction. put flushes by itself past ~64 MiB pending. If writing
 * or syncing a pack fails, the writer is poisoned: every later call returns
 * that error and the chunks since the last flush are not stored. If only
 * the commit fails, the chunks stay pending and a later flush retries.
 * Takes LMDB's write lock: do not call it while this thread holds a write
 * VcTxn. */
int vc_writer_flush(VcWriter *w);
/* Flushes n writers of one store with one index commit for all (each
 * flush of random tags rewrites most leaf pages of the index: one commit
 * for three writers costs about what one writer's does). rets (or NULL)
 * takes each writer's result; returns the first error, or 0. */
int vc_writer_flush_many(VcWriter **ws, size_t n, int *rets);

/* Releases the packs. Chunks put since the last flush are not indexed:
 * their bytes are cut off by the next writer of that pack. NULL ok. */
void vc_writer_free(VcWriter *w);

/* ---- catalog transactions ------------------------------------------------------ */

/* Tables of the catalog. Keys and values are opaque bytes to the store; the
 * store appends a CRC-32 (zlib's) of key || value to every value it writes
 * and checks it on every read (-EBADMSG, "catalog record damaged" naming
 * table and key). Keys are 1 to 511 bytes. */
typedef enum {
        VC_TABLE_META = 0,     /* store-wide settings and counters */
        VC_TABLE_PARCELS,      /* parcel name -> parcel record */
        VC_TABLE_VERSIONS,     /* (parcel id BE64, version BE32) -> version record */
        VC_TABLE__MAX
} VcTable;

/* Begins a read or write transaction (a write transaction waits for other
 * writers, as LMDB does). A write transaction holds the store's one write
 * lock until it ends: while it is open, the same thread must not call
 * vc_store_domain(create), vc_writer_flush or a vc_writer_put that may
 * flush, vc_store_compact or vc_store_reindex (each would wait for itself).
 * Reading chunks (vc_store_get/has) is fine. */
int vc_txn_begin(VcStore *s, bool write, VcTxn **ret);
int vc_txn_commit(VcTxn *t);                 /* always frees t */
/* A read transaction moves to the newest snapshot. */
int vc_txn_refresh(VcTxn *t);
void vc_txn_abort(VcTxn *t);                 /* frees t; NULL ok */
/* For _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL. */
static inline void vc_txn_abortp(VcTxn **t) { vc_txn_abort(*t); }
/* true once a fault inside LMDB (a damaged index) ended t, or another
 * transaction of the store: every call on it fails with that message, and
 * it can only be aborted. */
bool vc_txn_dead(VcTxn *t);

/* *val points into the map, valid until the transaction ends or the next
 * write in it. -ENOENT if absent. */
int vc_txn_get(VcTxn *t, VcTable tb, const void *key, size_t klen, const void **val, size_t *vlen);
int vc_txn_put(VcTxn *t, VcTable tb, const void *key, size_t klen, const void *val, size_t vlen);
int vc_txn_del(VcTxn *t, VcTable tb, const void *key, size_t klen); /* -ENOENT if absent */

/* Calls fn for every record whose key starts with prefix, in key order.
 * fn returns 0 to go on, >0 to stop (returned), <0 to fail (returned). */
typedef int (*vc_iter_fn)(const void *key, size_t klen, const void *val, size_t vlen, void *ctx);
int vc_txn_iter(VcTxn *t, VcTable tb, const void *prefix, size_t plen, vc_iter_fn fn, void *ctx);

/* 1 if (domain, tag) is indexed as seen by this transaction, else 0. */
int vc_txn_has_chunk(VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN]);
/* The same for n tags at once, the i-th at tags + i * stride (32 for a
 * packed array): has[i] = 1 if it is indexed, else 0. One cursor, the tags
 * taken in index order, so a batch costs far less than n look-ups. A
 * damaged entry fails the call. */
int vc_txn_has_chunks(VcTxn *t, uint64_t domain, const uint8_t *tags, size_t stride, size_t n, uint8_t *has);

/* ---- index walks: gc, verify, stat ---------------------------------------------- */

typedef struct VcChunkInfo {
        uint64_t domain;
        uint8_t tag[VC_TAG_LEN];
        int kind;               /* VC_KIND_* */
        uint32_t pack;          /* pack number within the domain */
        uint64_t offset;        /* of the record header in the pack */
        uint32_t len;           /* sealed bytes */
        int64_t stored_at;      /* seconds since the epoch, when indexed */
} VcChunkInfo;

typedef int (*vc_chunk_fn)(const VcChunkInfo *ci, void *ctx);
/* Calls fn for every index entry (in (domain, tag) order) as seen by t. */
int vc_txn_iter_chunks(VcTxn *t, vc_chunk_fn fn, void *ctx);

typedef struct VcSweepStats {
        uint64_t chunks_freed, bytes_freed;     /* index entries removed */
        uint64_t chunks_kept, bytes_kept;
        uint64_t chunks_young;                  /* unreferenced but within grace */
} VcSweepStats;

/* In write transaction t, removes every index entry for which is_live()
 * returns 0 and whose stored_at is before cutoff. The bytes stay in their
 * packs (dead space) until vc_store_compact. is_live returns 1, 0 or -errno.
 * chunks_kept/bytes_kept count every entry left, chunks_young among them
 * the unreferenced ones spared by the cutoff. st may be NULL. */
int vc_txn_sweep(VcTxn *t, int (*is_live)(const VcChunkInfo *ci, void *ctx), void *ctx,
                 int64_t cutoff, VcSweepStats *st);

/* The same sweep cut into transactions as small as the caller likes, for
 * a disk with little room (each LMDB commit needs fresh pages for what it
 * changes). vc_txn_sweep_list lists, in any transaction t, the entries
 * vc_txn_sweep would remove (malloc'ed, in index order; st as
 * vc_txn_sweep's, chunks_freed/bytes_freed counting the list).
 * vc_txn_sweep_refs then removes, in write transaction t, those of
 * refs[0..n) that are still indexed, still unreferenced (is_live is asked
 * again: mark in t what was committed since the list was made) and older
 * than cutoff, adding their number and bytes to *ret_chunks and *ret_bytes. */
typedef struct VcChunkRef {
        uint64_t domain;
        uint8_t tag[VC_TAG_LEN];
} VcChunkRef;
int vc_txn_sweep_list(VcTxn *t, int (*is_live)(const VcChunkInfo *ci, void *ctx), void *ctx, int64_t cutoff,
                      VcChunkRef **ret, size_t *ret_n, VcSweepStats *st);
int vc_txn_sweep_refs(VcTxn *t, int (*is_live)(const VcChunkInfo *ci, void *ctx), void *ctx, int64_t cutoff,
                      const VcChunkRef *refs, size_t n, uint64_t *ret_chunks, uint64_t *ret_bytes);

typedef struct VcCompactStats {
        uint64_t packs_before, packs_after, packs_rewritten, packs_deleted;
        uint64_t bytes_before, bytes_after;     /* sizes of the pack files */
        uint64_t disk_before, disk_after;       /* bytes they take on disk (allocated blocks) */
        uint64_t chunks_moved;
        uint64_t packs_punched, bytes_punched;  /* dead records freed in place */
        uint64_t tail_bytes;                    /* unindexed tails cut off */
        uint64_t packs_not_compacted;           /* worth it, but no room to rewrite them */
} VcCompactStats;

/* Frees the dead space of every pack not claimed by a writer, in an order
 * that works on a full disk (docs/format-store.md, "Reclaiming space"):
 *  1. deletes the packs with no live record (before anything allocates);
 *  2. cuts off unindexed tails (bytes past the committed length that a
 *     writer appended and never committed: it died, or the disk filled);
 *  3. punches holes (FALLOC_FL_PUNCH_HOLE) under the dead records of the
 *     other packs, behind a filler record that walks step over; not on a
 *     file system that cannot, and not in packs step 4 will rewrite;
 *  4. rewrites, in groups whose rewrite fits in the free space with a
 *     margin, the packs whose live bytes are below max_live_ratio of their
 *     record bytes (1.0 = no dead record; 0.5 is a sensible setting; 0
 *     rewrites nothing): copies their live records into other packs,
 *     repoints the index entries (only those still pointing at the old
 *     place), fsyncs, then deletes the old packs. A group that does not
 *     fit, or whose rewrite runs out of space (abandoned: nothing of it is
 *     indexed, its new pack is cut back or deleted), is punched instead
 *     and counted in packs_not_compacted.
 * Crash safe at every step: a pack is removed only after the index no
 * longer points into it, and a hole is punched only under a synced filler.
 * Every moved record's data is hashed first; a pack with a damaged live
 * record is left in place. Refuses (-EBADMSG) to touch a domain whose
 * index has a damaged entry (it might point anywhere). Pack files not
 * listed in the packs table are never deleted. st may be NULL. */
int vc_store_compact(VcStore *s, double max_live_ratio, VcCompactStats *st);

/* ---- a full disk ---------------------------------------------------------------- */

/* Bytes this process may still allocate on the store's file system
 * (statvfs: f_bavail * f_frsize). */
int vc_store_free_space(VcStore *s, uint64_t *ret);
/* Whether error r, from a write, a sync or an index commit, means that
 * the store's disk is full: -ENOSPC, -EDQUOT, or -EIO while less than the
 * reserve is free (LMDB reports a write that a full disk cut short as
 * EIO). A writer that meets it is poisoned with a message telling the
 * user to run prune and gc. */
bool vc_store_out_of_space(VcStore *s, int r);

/* STORE/reserve: VC_STORE_RESERVE bytes really allocated and held back,
 * so that on a completely full disk gc still has room to commit its index
 * transactions (LMDB writes the pages a commit changes to fresh pages, and
 * its file grows when it has no free page to reuse). release deletes it
 * and returns the bytes it freed (0 if there was none); restore makes it
 * again (atomically: a temp file, fallocate, fsync, rename), 0 or -errno
 * (-ENOSPC: no room; nothing is left behind). Neither records a message.
 * A writer creating a pack also makes it if it is missing and the disk
 * has plenty of room. */
#define VC_STORE_RESERVE (4ull << 20)
uint64_t vc_store_reserve_release(VcStore *s);
int vc_store_reserve_restore(VcStore *s);

/* What the store occupies. */
typedef struct VcDomainStat {
        uint64_t domain;
        char name[80];
        uint64_t data_chunks, data_bytes;       /* indexed VC_KIND_DATA */
        uint64_t meta_chunks, meta_bytes;       /* indexed VC_KIND_META */
        uint64_t pack_bytes;                    /* size of its pack files */
        uint64_t packs;
} VcDomainStat;
/* Fills *ret with one entry per domain (malloc'ed, caller frees) and
 * *ret_index_bytes with the size of the LMDB files. */
int vc_store_stat(VcStore *s, VcDomainStat **ret, size_t *ret_n, uint64_t *ret_index_bytes);

/* The number and total size of the pack files of every domain: one
 * readdir and stat per pack, no index walk (vc_store_stat walks it). What a
 * bounded store, such as a host cache, weighs itself with. */
int vc_store_pack_bytes(VcStore *s, uint64_t *ret_packs, uint64_t *ret_bytes);
/* The bytes that packs spend on framing: the header of each of `records`
 * records and of each of `packs` packs (docs/format-store.md), for the
 * breakdown of `vmcas stat`. */
uint64_t vc_store_framing_bytes(uint64_t records, uint64_t packs);
/* Which repair fixes a problem that vc_store_check reports. */
typedef enum VcRepair {
        VC_REPAIR_REINDEX = 0,  /* vc_store_reindex ('vmcas verify --reindex') */
        VC_REPAIR_REINDEX_IF,   /* reindex, if the pack record is intact (a full check re-hashes it); else lost */
        VC_REPAIR_NONE,         /* bytes are lost: only a replica, or checking the versions in again */
        VC_REPAIR_BACKUP,       /* a catalog record: 'vmcas repair' rebuilds the catalog from its copies in the packs */
        VC_REPAIR_HARMLESS,     /* nothing reads it: nothing to repair */
} VcRepair;
/* A sentence saying what the repair is, for the user. */
const char *vc_repair_text(VcRepair r);

/* Structural and full checks. For each problem calls fn with the domain and
 * tag of the damaged chunk (tag NULL for damage not tied to one chunk, such
 * as a torn record in dead space or a missing pack) and a sentence.
 *  - structure: every index entry points inside its pack's committed length
 *    at a record whose header matches it; every catalog value's checksum.
 *  - full: also reads every record of every pack front to back up to its
 *    committed length and checks SHA-256(data) == tag, for live and dead
 *    records alike, but for the dead records gc punched out (behind a
 *    filler: they are gone). Bytes past the committed length (a torn tail
 *    left by a crash) are not damage and are not read.
 * A mismatch is looked at again in a fresh snapshot before it is reported,
 * so that a gc running meanwhile (an entry swept, a record moved or
 * punched) is not taken for damage.
 * One damaged record may be reported by both passes. Stats: chunks_checked
 * counts index entries, bytes_checked the record data hashed (full),
 * packs_checked the packs walked (full), catalog_records the values of the
 * other tables. fn and st may be NULL.
 * Returns the number of problems found (0 = clean) or -errno. */
typedef void (*vc_damage_fn)(uint64_t domain, const uint8_t *tag, const char *what, void *ctx);
typedef struct VcCheckStats {
        uint64_t chunks_checked, bytes_checked, packs_checked, catalog_records;
        uint64_t domains_checked;       /* packs/<id>/domain files */
        /* Trees of the LMDB file with a damaged page (each is one problem).
         * If the chunk index or the packs table is one of them, index_unchecked
         * is set and the index entries are not read: they cannot be trusted. */
        uint64_t pages_damaged;
        bool index_unchecked;
        bool catalog_unchecked;         /* the same for the meta, parcels or versions table */
} VcCheckStats;
int vc_store_check(VcStore *s, bool full, vc_damage_fn fn, void *ctx, VcCheckStats *st);
/* The same, telling for each problem which repair fixes it. Also checks the
 * structure of the LMDB file (every page of every table) and that every
 * domain has a sound packs/<id>/domain file naming it as the index does. */
typedef void (*vc_damage_ex_fn)(uint64_t domain, const uint8_t *tag, const char *what, VcRepair repair,
                                void *ctx);
int vc_store_check_ex(VcStore *s, bool full, vc_damage_ex_fn fn, void *ctx, VcCheckStats *st);

/* Progress of long walks: vc_store_check(full), bytes re-hashed out of
 * the packs' committed bytes (it sets p->total); vc_store_compact, bytes
 * copied. NULL: none. */
struct VcProgress;
void vc_store_set_progress(VcStore *s, struct VcProgress *p);

/* Rebuilds the chunk index from the packs alone (repair after the index
 * was lost or damaged). Recovers domain names from the packs/<id>/domain
 * files, and rewrites those files that are missing or damaged from the
 * names in the index. Only records whose SHA-256 matches their tag are
 * indexed; each pack's committed length becomes the end of its last good
 * record. -EBUSY if a writer or compaction holds a pack. Holds LMDB's write
 * lock throughout. Returns chunks indexed.
 *
 * If the index is sound, it is rebuilt in place and the catalog kept. If
 * it is damaged (any page, see vc_store_db.c), it is moved aside to
 * index.damaged-<UTC time>/ (-EBUSY if another process has it open) and a
 * new one is built: the catalog and the domains table are copied out of the
 * damaged file (from its newest snapshot that reads back whole, else the one
 * before, else what can be read of the parcels and versions if the meta
 * table reads back whole), and what happened is told in *info. */
typedef enum VcCatalogFate {
        VC_CATALOG_KEPT = 0,            /* the index was sound: rebuilt in place */
        VC_CATALOG_RECOVERED,           /* copied from the damaged index's newest snapshot */
        VC_CATALOG_RECOVERED_OLDER,     /* from an older one (or the only readable one): the last
                                           commit may be lost */
        VC_CATALOG_RECOVERED_PART,      /* no snapshot read back whole: the meta table did, and the
                                           parcels and versions that could be read (catalog_lost pages
                                           and records were not) */
        VC_CATALOG_LOST,                /* could not be read: the new index has no parcels */
} VcCatalogFate;
typedef struct VcReindexInfo {
        bool replaced;                  /* a new index was built */
        char moved_to[4096];            /* where the damaged one went ("" if there was none) */
        char why[1024];                 /* why the old index could not be used */
        VcCatalogFate catalog;
        char catalog_why[512];          /* RECOVERED_OLDER, LOST: what was wrong */
        uint64_t catalog_records;
        uint64_t catalog_lost;          /* RECOVERED_PART: damaged pages and records skipped */
        bool domains_recovered;         /* names and counters came from the damaged index */
        uint64_t domain_files_written;
} VcReindexInfo;
int vc_store_reindex(VcStore *s);
int vc_store_reindex_ex(VcStore *s, VcReindexInfo *info);

/* ---- locks ------------------------------------------------------------------------ */

/* Takes flock() on STORE/locks/<name>. Without wait, -EBUSY (with a message
 * naming the holder's pid, written into the lock file) if held. Locks die
 * with their process, so a killed checkin never leaves a parcel locked. */
int vc_store_lock(VcStore *s, const char *name, bool exclusive, bool wait, int *ret_fd);
void vc_store_unlock(int fd);                 /* -1 ok */

#endif
