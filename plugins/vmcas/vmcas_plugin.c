/* nbdkit-vmcas-plugin — serves the disk of a vmcas workspace over NBD.
 *
 *   nbdkit -f -U SOCKET build/nbdkit-vmcas-plugin.so dir=WORKSPACE
 *
 * (`vmcas workspace serve DIR` runs exactly that.) This is the one file
 * that knows nbdkit (plugin API v2, the parallel thread model); the disk
 * itself is src/client/vc_workspace.c: reads of chunks that are not local
 * fetch them through the host cache (concurrent misses on one chunk
 * coalesce into one fetch, sequential neighbours come along), writes go to
 * the workspace's overlay and mark their chunk dirty, flush makes overlay
 * and dirty map durable, and all-zero chunks are reported as holes. */
#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "client/vc_workspace.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static char *ws_dir;
static VcWorkspace *ws;

/* An error of the workspace as nbdkit reports it: the message in the log,
 * an errno the client sees (EIO for a store that cannot be reached). */
static int fail(int r)
{
        nbdkit_error("%s", vc_errmsg(r));
        vc_errclear();
        int e = -r;
        if (e != EINVAL && e != ENOSPC && e != ENOMEM)
                e = EIO;
        nbdkit_set_error(e);
        return -1;
}

static void vm_unload(void)
{
        if (ws) {
                /* what the disk cost, for the log of `workspace serve` */
                VcWsServed sv;
                vc_ws_served(ws, &sv);
                fprintf(stderr,
                        "vmcas: disk served: %" PRIu64 " reads; chunks fetched: %" PRIu64 " on demand, %" PRIu64
                        " read ahead, %" PRIu64 " of the working set, %" PRIu64 " in the background\n",
                        sv.reads, sv.demand, sv.ahead, sv.working_set, sv.background);
        }
        vc_ws_close(ws);
        ws = NULL;
        free(ws_dir);
}

static int vm_config(const char *key, const char *value)
{
        if (strcmp(key, "dir") == 0) {
                free(ws_dir);
                ws_dir = nbdkit_absolute_path(value);
                return ws_dir ? 0 : -1;
        }
        nbdkit_error("unknown parameter '%s' (dir=WORKSPACE)", key);
        return -1;
}

static int vm_config_complete(void)
{
        if (!ws_dir) {
                nbdkit_error("dir=WORKSPACE is required");
                return -1;
        }
        return 0;
}

static int vm_get_ready(void)
{
        int r = vc_ws_open(ws_dir, &ws);
        if (r < 0) {
                nbdkit_error("%s", vc_errmsg(r));
                return -1;
        }
        return 0;
}

static int vm_after_fork(void)
{
        vc_ws_ready(ws);
        /* the working set, then with --fetch background the rest */
        int r = vc_ws_start_background(ws);
        if (r < 0) {
                nbdkit_error("%s", vc_errmsg(r));
                return -1;
        }
        return 0;
}

static void *vm_open(int readonly)
{
        return ws;
}

static int64_t vm_get_size(void *h)
{
        return (int64_t)vc_ws_info(ws)->disk_size;
}

static int vm_can_multi_conn(void *h)
{
        return 1;                   /* one overlay: a flush covers every connection */
}

static int vm_can_flush(void *h)
{
        return 1;
}

static int vm_can_fua(void *h)
{
        return NBDKIT_FUA_NATIVE;
}

static int vm_can_extents(void *h)
{
        return 1;
}

static int vm_pread(void *h, void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
        vc_ws_note_read(ws, count, offset);
        int r = vc_ws_pread(ws, buf, count, offset);
        return r < 0 ? fail(r) : 0;
}

static int vm_pwrite(void *h, const void *buf, uint32_t count, uint64_t offset, uint32_t flags)
{
        int r = vc_ws_pwrite(ws, buf, count, offset);
        if (r >= 0 && (flags & NBDKIT_FLAG_FUA))
                r = vc_ws_flush(ws);
        return r < 0 ? fail(r) : 0;
}

static int vm_flush(void *h, uint32_t flags)
{
        int r = vc_ws_flush(ws);
        return r < 0 ? fail(r) : 0;
}

static int add_extent(uint64_t off, uint64_t len, bool zero, void *ctx)
{
        return nbdkit_add_extent(ctx, off, len, zero ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO : 0) < 0 ? -EIO : 0;
}

static int vm_extents(void *h, uint32_t count, uint64_t offset, uint32_t flags, struct nbdkit_extents *ext)
{
        int r = vc_ws_extents(ws, offset, count, add_extent, ext);
        return r < 0 ? fail(r) : 0;
}

static struct nbdkit_plugin plugin = {
        .name = "vmcas",
        .longname = "vmcas workspace disk",
        .version = "0.2",
        .description = "the disk of a vmcas workspace: chunks fetched on demand, writes to an overlay",
        .config_help = "dir=WORKSPACE   the workspace directory (vmcas checkout --workspace)",
        .unload = vm_unload,
        .config = vm_config,
        .config_complete = vm_config_complete,
        .get_ready = vm_get_ready,
        .after_fork = vm_after_fork,
        .open = vm_open,
        .get_size = vm_get_size,
        .can_multi_conn = vm_can_multi_conn,
        .can_flush = vm_can_flush,
        .can_fua = vm_can_fua,
        .can_extents = vm_can_extents,
        .pread = vm_pread,
        .pwrite = vm_pwrite,
        .flush = vm_flush,
        .extents = vm_extents,
        .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN(plugin)
