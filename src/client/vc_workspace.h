/* vc_workspace — a checked-out parcel that a VM runs from before its disk
 * has arrived (docs/FORMAT.md, "Workspaces").
 *
 * A workspace directory (mode 0700) holds the version it was checked out
 * from: the memory image as a plain file (DIR/memory), the disk's keyring
 * entries (DIR/disk.keyring, 0600: they are the keys of the chunks), an
 * overlay of the chunks written since (DIR/overlay) and the map of those
 * dirty chunks (DIR/dirty). The disk itself is read only through
 * vc_ws_pread: a dirty chunk from the overlay, an all-zero one as zeros,
 * any other from the store (through the host cache for a server).
 *
 * Crash safety: a chunk's first write writes the whole chunk (the base
 * merged with the new bytes) to the overlay before its dirty bit is set in
 * memory; vc_ws_flush takes a copy of the map, fdatasyncs the overlay,
 * then writes and fdatasyncs the copy. So a bit on disk always covers a
 * durable whole chunk, a chunk whose bit is not on disk reads as the base
 * version, and every flushed write is in a chunk whose bit is on disk: the
 * map is never missing a chunk that differs (it over-counts chunks
 * rewritten with their old bytes).
 *
 * Thread safety: vc_ws_pread/pwrite/flush/extents may run on several
 * threads at once (the disk plugin's parallel thread model). */
#ifndef VC_WORKSPACE_H
#define VC_WORKSPACE_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/vc_backend.h"
#include "client/vc_client.h"

typedef enum { VC_FETCH_DEMAND = 0, VC_FETCH_COMPLETE = 1, VC_FETCH_BACKGROUND = 2 } VcFetch;

typedef struct VcWsCheckoutOpts {
        uint32_t version;          /* 0: the latest */
        VcFetch fetch;
        bool quiet;
        bool no_lease;
        const char *locator;       /* the store as the user named it (-s) */
        const char *cache_dir;     /* --cache, or NULL */
} VcWsCheckoutOpts;

typedef struct VcWsCheckoutStats {
        VcCheckoutStats co;
        uint64_t disk_fetched;     /* disk chunks fetched before returning */
        uint64_t working_set;      /* chunks of the version's read order (DIR/workingset, fetched first) */
        uint64_t machine_bytes;    /* DIR/machine (0: the version has none) */
        bool devstate;             /* the machine holds a device state: resume, not boot */
} VcWsCheckoutStats;

/* Checks version o->version of name out to the new workspace dir (which
 * must not exist, or be empty): takes the lease (unless no_lease), writes
 * the memory image, the disk's entries, an empty overlay and dirty map,
 * and with VC_FETCH_COMPLETE brings every disk chunk into the host cache.
 * Otherwise the version's read order, if it has one, goes to
 * DIR/workingset: the disk server fetches it first, in the background
 * (unless VMCAS_NO_WORKING_SET is set at checkout). */
int vc_ws_checkout(VcBackend *b, const char *name, const char *dir, const VcWsCheckoutOpts *o,
                   VcWsCheckoutStats *st);

typedef struct VcWorkspace VcWorkspace;

typedef struct VcWsInfo {
        char locator[4096];
        char cache_dir[4096];      /* "" for the default */
        char parcel[VC_NAME_MAX + 1];
        uint32_t version;
        uint32_t chunk_size;
        uint64_t mem_size, disk_size;
        char data_dom[VC_DOMAIN_MAX];
        VcFetch fetch;             /* what the checkout asked for */
} VcWsInfo;

/* Opens workspace dir for serving its disk: its files, an exclusive lock
 * (-EBUSY if another process serves it or checks it in), and the store
 * through vc_backend_open(its locator, its cache). */
int vc_ws_open(const char *dir, VcWorkspace **ret);
void vc_ws_close(VcWorkspace *w);             /* NULL ok */
const VcWsInfo *vc_ws_info(const VcWorkspace *w);

int vc_ws_pread(VcWorkspace *w, void *buf, uint32_t count, uint64_t off);
int vc_ws_pwrite(VcWorkspace *w, const void *buf, uint32_t count, uint64_t off);
int vc_ws_flush(VcWorkspace *w);
/* Notes a read of the client (not one of the workspace's own): the chunks
 * read for the first time since the disk was opened go, in order, to
 * DIR/readorder (saved at each flush and at close). */
void vc_ws_note_read(VcWorkspace *w, uint32_t count, uint64_t off);
/* Calls fn for runs of [off, off+count) rounded out to whole chunks:
 * zero true for all-zero chunks of the base that were not written. */
typedef int (*vc_ws_extent_fn)(uint64_t off, uint64_t len, bool zero, void *ctx);
int vc_ws_extents(VcWorkspace *w, uint64_t off, uint64_t count, vc_ws_extent_fn fn, void *ctx);

/* Gets the disk server ready for its first miss, once it runs (after
 * nbdkit forked): a sealer made, the host cache's storing thread started
 * and a connection to the store opened (each cost the first miss a
 * millisecond). Failures are left for the first read to report. */
void vc_ws_ready(VcWorkspace *w);

/* Starts fetching, on a thread of its own, the working set (DIR/workingset)
 * in its order, then (--fetch background) every other disk chunk not yet
 * in the host cache, in disk order. Nothing to fetch: starts nothing. */
int vc_ws_start_background(VcWorkspace *w);

/* What a served disk fetched (chunks), and why. */
typedef struct VcWsServed {
        uint64_t reads;            /* reads of the client */
        uint64_t demand;           /* fetched because a read asked for them */
        uint64_t ahead;            /* read ahead of a sequential run */
        uint64_t working_set;      /* the working set, fetched first */
        uint64_t background;       /* the rest, --fetch background */
} VcWsServed;
void vc_ws_served(VcWorkspace *w, VcWsServed *out);

typedef struct VcWsStatus {
        VcWsInfo info;
        uint64_t chunks, zero, dirty, present, missing;
        uint64_t dirty_bytes;      /* what checkin hashes at most */
        bool served;               /* another process holds the lock */
        uint64_t read_order;       /* chunks in DIR/readorder (as last saved) */
        uint64_t working_set;      /* chunks in DIR/workingset */
} VcWsStatus;

/* What the workspace holds: dirty chunks, chunks present in the host
 * cache (or in a local store), missing ones. */
int vc_ws_status(const char *dir, VcWsStatus *st);

/* Checks the workspace in as the next version: the memory image hashed
 * whole, of the disk only the dirty chunks. The lease is kept unless
 * release. The workspace is then at the new version, with no dirty chunk. */
int vc_ws_checkin(const char *dir, bool release, bool quiet, VcCheckinStats *st);

#endif
