/* vc_store_int.h — what the files of the local store share. Not a public
 * interface: everything outside src/store/ goes through vc_store.h.
 *
 *   vc_store_db.c    the only file that calls LMDB: environments, tables,
 *                    transactions, the CRC on every value, error codes
 *   vc_pack.c        pack and record formats, pack paths, a buffered pack
 *                    reader, walking a pack record by record
 *   vc_store.c       create/open, marker, domains, get/has, stat, locks
 *   vc_writer.c      claiming and creating packs, put, flush
 *   vc_store_gc.c    chunk walks, sweep, compaction, check, reindex
 *
 * Every on-disk layout is described in docs/format-store.md.
 */
#ifndef VC_STORE_INT_H
#define VC_STORE_INT_H

#include "store/vc_store.h"
#include "core/vc_util.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- on-disk constants (docs/format-store.md) ---------------------------- */

#define VC_MARKER_NAME "vmcas-store"
#define VC_MARKER_MAGIC "vmcas-store"
#define VC_DOMAIN_MAGIC "vmcas-domain"
#define VC_STORE_FORMAT 2          /* 1: vmcas 0.1, unauthenticated parcel records */

/* The 8-byte pack magic ends in CR LF like PNG's, so a pack mangled by a
 * text-mode copy is recognised as such rather than as a damaged record. */
#define VC_PACK_MAGIC "VCPACK\r\n"
#define VC_PACK_VERSION 1
#define VC_PACK_HDR_LEN 64
/* "VCR1" on disk: version 1 of the record layout. */
#define VC_REC_MAGIC 0x31524356u
#define VC_REC_HDR_LEN 56
#define VC_REC_DATA_MAX (1u << 30)        /* no sealed chunk comes near this */
/* The kind of a filler record: gc writes one over a stretch of dead
 * records and punches a hole under it (docs/format-store.md). Never in
 * the index; walks step over it. (The kinds of vc_store.h come first.) */
#define VC_KIND_FREE 3

#define VC_IDX_KEY_LEN (8 + VC_TAG_LEN)
#define VC_IDX_VAL_LEN 25              /* without the CRC the db layer adds */
#define VC_PACKS_KEY_LEN 12
#define VC_PACKS_VAL_LEN 12
#define VC_PACKS_VERSION 1

/* Flags of a packs-table entry. */
enum {
        VC_PACK_SEALED = 1,            /* full: no writer appends to it again */
        VC_PACK_RETIRED = 2,           /* compaction moved every live record out */
};

#define VC_PACK_MAX_DEFAULT (256ull << 20)
#define VC_FLUSH_BYTES (64ull << 20)
#define VC_FD_CACHE 64

/* ---- the store handle ---------------------------------------------------- */

typedef struct VcDb VcDb;

/* An open pack file in the read cache. refs counts the callers reading
 * through fd right now, so eviction never closes an fd under a pread. */
typedef struct VcPackFd {
        uint64_t domain;
        uint32_t pack;
        int fd;                 /* -1: slot free */
        unsigned refs;
        bool dead;              /* close when the last reader is done */
        double checked;         /* vc_mono() when st_nlink was last looked at */
        uint64_t tick;          /* for LRU eviction */
} VcPackFd;

struct VcStore {
        char *path;
        uint8_t uuid[VC_UUID_LEN];
        VcDb *db;
        pthread_mutex_t fd_lock;
        VcPackFd fds[VC_FD_CACHE];
        uint64_t tick;
        VcProgress *progress;   /* for long walks (check --full, compaction), or NULL */
        uint64_t progress_done;
        /* Opened for repair (vc_store_open_repair): db is NULL when the
         * index could not be used, and index_err, index_msg say why; or
         * index_new says the index was missing and was made empty. */
        int index_err;
        char *index_msg;
        bool index_new;
        bool no_sync;           /* vc_store_set_volatile: a host cache */
};

/* A pack fd borrowed from the cache (slot >= 0) or opened for one call. */
typedef struct VcPackRef {
        int fd;
        int slot;
} VcPackRef;

/* ---- the database layer (vc_store_db.c) ---------------------------------- */

/* All tables of the LMDB environment. The three catalog tables come first
 * so that a VcTable is a VcDbTable. Every value of every table carries a
 * CRC-32 (zlib) of key || value as its last 4 bytes, added by vc_db_put and
 * checked by every read; callers see only the value before it. */
typedef enum {
        VC_DB_META = VC_TABLE_META,
        VC_DB_PARCELS = VC_TABLE_PARCELS,
        VC_DB_VERSIONS = VC_TABLE_VERSIONS,
        VC_DB_INDEX = VC_TABLE__MAX,   /* (domain BE64, tag) -> location */
        VC_DB_DOMAINS,                 /* names, ids and counters of domains */
        VC_DB_PACKS,                   /* (domain BE64, pack BE32) -> committed length */
        VC_DB__MAX
} VcDbTable;

typedef struct VcDbCursor VcDbCursor;

/* How vc_db_open treats what it finds in dir. */
typedef enum {
        /* data.mdb must be there and sound (vc_store_db.c, steps 1 and 2):
         * -ENODATA if it is missing or empty, -EBADMSG if damaged, -EPROTO
         * for an LMDB format we do not read, each with a message that says
         * to run 'vmcas verify --reindex'. */
        VC_DB_EXISTING,
        /* A missing or empty data.mdb becomes a new environment (a new
         * store, or a repair); one with content is checked as above. */
        VC_DB_CREATE,
} VcDbMode;

/* Opens the environment in dir. One process holds one MDB_env per
 * environment (LMDB's rule): handles of the same store share it,
 * refcounted; a forked child never reuses its parent's. */
int vc_db_open(const char *dir, VcDbMode mode, VcDb **ret);
void vc_db_unref(VcDb *db);
/* Commits stop syncing (LMDB's MDB_NOSYNC): for a store that may lose its
 * newest writes in a system crash. */
int vc_db_set_nosync(VcDb *db);
/* true if another handle of this process shares db. */
bool vc_db_in_use(VcDb *db);
/* Bytes of the LMDB files on disk. */
int vc_db_bytes(VcDb *db, uint64_t *ret);

/* Walks every page of the snapshot t reads (vc_store_db.c, step 5) and calls
 * fn once per damaged tree: table is a table's name, "" for LMDB's free list
 * (which only writes read), or NULL for LMDB's main table or its meta pages;
 * what says what is wrong. Returns
 * the number of damaged trees, or -errno. With fn NULL, the first problem
 * is returned as -EBADMSG with "the store's index is damaged (...)". */
typedef void (*vc_db_page_fn)(const char *table, const char *what, void *ctx);
int vc_db_check_pages(VcTxn *t, vc_db_page_fn fn, void *ctx);

/* For a look-up that found nothing where something should be (a chunk a
 * version names): walks every page once per process, and returns -EBADMSG
 * with "the store's index is damaged (...)" if a page is, else -ENOENT. */
int vc_db_explain_missing(VcDb *db);

/* Renames the environment directory dir to dir.damaged-<UTC time> and
 * makes dir again, empty; the new name goes to moved. -EBUSY (with a
 * message) if another process has it open. This process must not have it
 * open either. */
int vc_db_move_aside(const char *dir, char *moved, size_t len);

/* Copies tables out of a damaged environment in dir (read with the page
 * walker, never mapped) into t. From the newest snapshot in which tables
 * whole and part all read back whole (every page sound, every CRC
 * matching), else from the one before; failing both, from the newest in
 * which the tables in whole do, with what can be read of those in part
 * (records on damaged pages or with a bad CRC are lost, and counted).
 * Nothing is copied if no snapshot will do. Returns 0 (what happened in
 * *ret) or -errno for an error of t. */
typedef struct VcDbRecovered {
        int from;               /* 0: nothing recovered, 1: the newest snapshot, 2: another (older, or
                                   the only one readable), 3: in part, from the one in ret->txnid */
        uint64_t txnid;         /* of that snapshot */
        uint64_t records;
        uint64_t lost;          /* from 3: damaged pages and records skipped */
        char why[512];          /* what was wrong with the snapshots not used, or with the pages skipped */
} VcDbRecovered;
int vc_db_recover(const char *dir, VcTxn *t, const VcDbTable *whole, size_t nwhole, const VcDbTable *part,
                  size_t npart, VcDbRecovered *ret);
const char *vc_db_table_name(VcDbTable tb);
/* "table parcels, key 'p1'" or "chunk <hex> of domain 3", for messages. */
void vc_db_describe(VcDbTable tb, const void *k, size_t kl, char *buf, size_t len);

VcStore *vc_txn_store(VcTxn *t);
bool vc_txn_is_write(VcTxn *t);

/* -ENOENT if absent, -EBADMSG if the CRC does not match (no message: a
 * writer treats a damaged entry as absent and rewrites it; others call
 * vc_db_damaged for the message). *v points into the map. */
int vc_db_get(VcTxn *t, VcDbTable tb, const void *k, size_t kl, const void **v, size_t *vl);
int vc_db_put(VcTxn *t, VcDbTable tb, const void *k, size_t kl, const void *v, size_t vl);
int vc_db_del(VcTxn *t, VcDbTable tb, const void *k, size_t kl);  /* -ENOENT if absent */
int vc_db_drop(VcTxn *t, VcDbTable tb);                           /* empties the table */
/* Records "index entry damaged: ..." / "catalog record damaged: ...";
 * returns -EBADMSG. */
int vc_db_damaged(VcDbTable tb, const void *k, size_t kl);

/* Walks the records whose key starts with prefix, in key order. next
 * returns 1 with the record, 0 at the end, or -EBADMSG for a record whose
 * CRC does not match (k and v are still set, v is the raw stored value), so
 * a checker can report it and go on. del removes the current record; the
 * following next returns the record after it. */
int vc_db_cursor_open(VcTxn *t, VcDbTable tb, const void *prefix, size_t plen, VcDbCursor **ret);
int vc_db_cursor_next(VcDbCursor *c, const void **k, size_t *kl, const void **v, size_t *vl);
int vc_db_cursor_del(VcDbCursor *c);
void vc_db_cursor_close(VcDbCursor *c);

/* ---- formats (vc_pack.c) -------------------------------------------------- */

typedef struct VcPackHdr {
        uint64_t domain;
        uint32_t pack;
        int64_t created;
        uint8_t uuid[VC_UUID_LEN];
} VcPackHdr;
void vc_pack_hdr_encode(const VcPackHdr *h, uint8_t out[VC_PACK_HDR_LEN]);
/* -EBADMSG if damaged, -EPROTO for an unknown version. */
int vc_pack_hdr_decode(const uint8_t in[VC_PACK_HDR_LEN], VcPackHdr *h);

typedef struct VcRecHdr {
        int kind;
        uint64_t domain;
        uint8_t tag[VC_TAG_LEN];
        uint32_t len;
} VcRecHdr;
void vc_rec_hdr_encode(const VcRecHdr *h, uint8_t out[VC_REC_HDR_LEN]);
int vc_rec_hdr_decode(const uint8_t in[VC_REC_HDR_LEN], VcRecHdr *h);   /* -EBADMSG */

/* Where a chunk is: the index value. */
typedef struct VcIdx {
        uint32_t pack;
        uint64_t off;
        uint32_t len;
        int kind;
        int64_t stored_at;
} VcIdx;
void vc_idx_key(uint8_t out[VC_IDX_KEY_LEN], uint64_t domain, const uint8_t tag[VC_TAG_LEN]);
void vc_idx_encode(const VcIdx *x, uint8_t out[VC_IDX_VAL_LEN]);
int vc_idx_decode(const void *v, size_t vl, VcIdx *x);                   /* -EBADMSG */

/* A packs-table entry. */
typedef struct VcPackEnt {
        uint32_t flags;         /* VC_PACK_* */
        uint64_t committed;     /* bytes of the pack that the index may point into */
} VcPackEnt;
void vc_packs_key(uint8_t out[VC_PACKS_KEY_LEN], uint64_t domain, uint32_t pack);
void vc_packs_encode(const VcPackEnt *e, uint8_t out[VC_PACKS_VAL_LEN]);
int vc_packs_decode(const void *v, size_t vl, VcPackEnt *e);            /* -EBADMSG */

/* Table helpers on top of the db layer. */
int vc_idx_get(VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], VcIdx *ret);
int vc_idx_put(VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], const VcIdx *x);
int vc_packs_get(VcTxn *t, uint64_t domain, uint32_t pack, VcPackEnt *ret);
/* A writer's flush: n entries into the index in one pass of a cursor (the
 * caller orders them by key, so neighbours share a leaf and LMDB skips the
 * descent from the root). entry(ctx, i, ...) gives the i-th: its domain,
 * tag and new value, and for a move (move true) where the record was. A put
 * leaves a sound entry there alone (the chunk was indexed meanwhile: ours
 * is dead space) and replaces a damaged one; a move repoints the entry only
 * if it still points at (from_pack, from_off), keeping its stored_at, and
 * counts it in *moved. */
typedef void (*vc_idx_entry_fn)(void *ctx, size_t i, uint64_t *domain, const uint8_t **tag, VcIdx *x,
                                bool *move, uint32_t *from_pack, uint64_t *from_off);
int vc_idx_merge(VcTxn *t, size_t n, vc_idx_entry_fn entry, void *ctx, uint64_t *moved);
int vc_packs_put(VcTxn *t, uint64_t domain, uint32_t pack, const VcPackEnt *e);

/* Decodes an index record into *ci; -EBADMSG (no message) if malformed. */
int vc_idx_info(const void *k, size_t kl, const void *v, size_t vl, VcChunkInfo *ci);
/* Calls fn for every index entry of domain (all domains with 0), in
 * (domain, tag) order. A damaged entry fails the walk with -EBADMSG and a
 * message naming it. fn returns 0 to go on, anything else to stop. */
int vc_idx_each(VcTxn *t, uint64_t domain, vc_chunk_fn fn, void *ctx);
/* Calls fn for every valid packs-table entry of domain (all with 0), in
 * (domain, pack) order. Damaged entries are skipped: check reports them. */
typedef int (*vc_packs_fn)(uint64_t domain, uint32_t pack, const VcPackEnt *e, void *ctx);
int vc_packs_each(VcTxn *t, uint64_t domain, vc_packs_fn fn, void *ctx);

/* Domains table keys: 'n' name -> id, 'i' id -> name, 'c' -> next domain
 * id, 'p' id -> next pack number of that domain. */
int vc_domain_next_pack(VcTxn *t, uint64_t domain, uint32_t *ret);
int vc_domain_set_next_pack(VcTxn *t, uint64_t domain, uint32_t next);
int vc_domain_next_id(VcTxn *t, uint64_t *ret);
int vc_domain_set_next_id(VcTxn *t, uint64_t next);
/* Adds the 'i' record of a domain and, with by_name, its 'n' record
 * (vc_store.c). */
int vc_domain_register(VcTxn *t, uint64_t id, const char *name, bool by_name);
/* The id of the domain called name; -ENOENT. */
int vc_domain_lookup(VcTxn *t, const char *name, uint64_t *ret);
/* -ENOENT (with message) if no domain has this id. */
int vc_domain_exists(VcTxn *t, uint64_t id);

/* STORE/packs/<domain>, STORE/packs/<domain>/<pack>.pack. -ENAMETOOLONG. */
int vc_domain_dir(const VcStore *s, uint64_t domain, char *buf, size_t len);
int vc_pack_path(const VcStore *s, uint64_t domain, uint32_t pack, char *buf, size_t len);
/* Parses "<n>.pack"; false for any other name. */
bool vc_pack_name_parse(const char *name, uint32_t *ret);

/* Reads a pack's header and checks it belongs to (domain, pack) of this
 * store. -EBADMSG with a message otherwise. */
int vc_pack_check_hdr(const VcStore *s, int fd, uint64_t domain, uint32_t pack);

/* Reads a record's header at off and checks it against what the index says
 * (domain, tag, len, kind); with data != NULL also reads len bytes of data
 * into it in the same system call. -EBADMSG (no message) on mismatch, -EIO
 * if the file is too short. */
int vc_pack_read_record(int fd, uint64_t off, uint64_t domain, const uint8_t tag[VC_TAG_LEN],
                        const VcIdx *x, void *data);

/* A buffered reader for walking a pack front to back. */
typedef struct VcPackReader {
        int fd;
        uint8_t *buf;
        size_t cap;
        uint64_t boff;          /* file offset of buf[0] */
        size_t blen;
        uint64_t end;           /* read nothing at or past this offset */
} VcPackReader;
void vc_preader_init(VcPackReader *r, int fd, uint64_t end);
void vc_preader_done(VcPackReader *r);
/* Points *p at n bytes at off. -EIO past end. */
int vc_preader_get(VcPackReader *r, uint64_t off, size_t n, const uint8_t **p);

/* Walks the records of a pack from start to end. For each calls fn with
 * the record's offset and header, and its data when the whole record lies
 * before end (data NULL: the record runs past end). Fillers (VC_KIND_FREE:
 * dead space gc punched) are stepped over without calling fn. A damaged
 * header is reported with h NULL; the walk then looks for the next valid
 * header of this domain further on (a record's header checksum makes a
 * false match a 1-in-2^32 event), so one damaged record costs only itself.
 * fn returns 0 to go on, <0 to stop with that error. */
typedef int (*vc_rec_fn)(uint64_t off, const VcRecHdr *h, const uint8_t *data, void *ctx);
int vc_pack_walk(int fd, uint64_t domain, uint64_t start, uint64_t end, vc_rec_fn fn, void *ctx);

/* ---- store internals (vc_store.c) ----------------------------------------- */

/* Borrows a read-only fd on a pack, from the cache when possible. -ENOENT
 * if the file does not exist. */
int vc_store_pack_open(VcStore *s, uint64_t domain, uint32_t pack, VcPackRef *ref);
/* Returns it; with drop, the cached fd is closed (stale or suspect). */
void vc_store_pack_release(VcStore *s, VcPackRef *ref, bool drop);
/* Closes every cached fd (after reindex or compaction in this process). */
void vc_store_pack_cache_flush(VcStore *s);

/* Reads the name file of a domain directory (written when the domain is
 * created, so reindex can recover names). */
int vc_domain_file_read(const VcStore *s, uint64_t domain, char *name, size_t len);
/* Writes it (atomically), making the domain directory if need be. */
int vc_domain_file_write(const VcStore *s, uint64_t domain, const char *name);

/* Sums the sizes of the .pack files of one domain (domain != 0) or all. */
int vc_store_pack_files(const VcStore *s, uint64_t domain, uint64_t *ret_packs, uint64_t *ret_bytes);

/* Test hook: kills the process with SIGKILL here when $VMCAS_CRASH_AT
 * names this point, so tests can stop a process between any two steps of
 * a durability protocol. Points: pack-created, flush-synced,
 * compact-copied, compact-retired, compact-unlinked, punch-marked. */
void vc_crash_point(const char *name);

/* STORE/reserve (vc_store_reserve_restore): created by the writer with a
 * new pack if the store has none and at least four times its size is
 * free, so that a checkin never fails for its sake. */
#define VC_RESERVE_NAME "reserve"
void vc_store_reserve_ensure(VcStore *s);

/* ---- writer internals (vc_writer.c) ----------------------------------------- */

/* Appends a copy of a live record for compaction: no dedup; at flush the
 * index entry is repointed only if it still points at (from_pack,
 * from_off), keeping its stored_at. */
int vc_writer_move(VcWriter *w, uint64_t domain, int kind, const uint8_t tag[VC_TAG_LEN],
                   const void *data, size_t len, uint32_t from_pack, uint64_t from_off);
/* Number of moves the last flushes applied (entries repointed). */
uint64_t vc_writer_moved(const VcWriter *w);

static inline void vc_db_cursor_closep(VcDbCursor **c) { vc_db_cursor_close(*c); }

/* A read transaction kept for many look-ups: reset releases its snapshot
 * (and its hold on old pages), renew takes a fresh one. */
void vc_txn_reset(VcTxn *t);
int vc_txn_renew(VcTxn *t);

#endif
