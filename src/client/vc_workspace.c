/* Workspaces: checkout to one, its disk read and written chunk by chunk
 * (the disk plugin's back end), status and checkin. See vc_workspace.h
 * and docs/FORMAT.md. */
#include "client/vc_workspace.h"
#include "client/vc_client_int.h"
#include "client/vc_machine.h"
#include "core/vc_chunk.h"
#include "core/vc_hash.h"
#include "core/vc_limits.h"
#include "core/vc_pool.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define META_MAGIC "vmcas-workspace 1"
#define KEYRING_MAGIC "VCWSKEY1"
#define DIRTY_MAGIC "VCWSDRT1"
#define DIRTY_HDR 16
#define READAHEAD_BYTES (1u << 20)     /* sequential neighbours fetched with a miss */
#define READAHEAD_MAX 64
#define STRIPES 64
#define STREAMS 16                     /* sequential runs of reads told apart */
#define FETCHERS 4                     /* threads fetching misses (and their read-ahead) */
#define BG_BATCH_BYTES (4u << 20)
#define READ_ORDER_MAX (1u << 20)      /* chunks of the read order kept */
#define WSET_MAX READ_ORDER_MAX          /* chunks of DIR/workingset */
#define WSET_FIRST 16                    /* the working set's first batch (chunks); then doubling */

enum { ST_UNKNOWN = 0, ST_INFLIGHT = 1, ST_KNOWN = 2 };

static const char *fetch_name(VcFetch f)
{
        return f == VC_FETCH_COMPLETE ? "complete" : f == VC_FETCH_BACKGROUND ? "background" : "demand";
}

static int path_in(const char *dir, const char *name, char *buf, size_t len)
{
        return (size_t)snprintf(buf, len, "%s/%s", dir, name) < len ? 0 : -ENAMETOOLONG;
}

static inline bool bit_get(const uint8_t *map, uint64_t i)
{
        return __atomic_load_n(&map[i >> 3], __ATOMIC_ACQUIRE) & (1u << (i & 7));
}

static inline void bit_set(uint8_t *map, uint64_t i)
{
        __atomic_fetch_or(&map[i >> 3], (uint8_t)(1u << (i & 7)), __ATOMIC_RELEASE);
}

/* ---- the files ------------------------------------------------------------------ */

static int meta_write(const char *dir, const VcWsInfo *in)
{
        char path[PATH_MAX], buf[10240];
        int r = path_in(dir, "workspace", path, sizeof path);
        if (r < 0)
                return r;
        int n = snprintf(buf, sizeof buf,
                         META_MAGIC "\nstore %s\ncache %s\nparcel %s\nversion %u\nchunk-size %u\n"
                         "memory-size %" PRIu64 "\ndisk-size %" PRIu64 "\ndata-domain %s\nfetch %s\n",
                         in->locator, in->cache_dir[0] ? in->cache_dir : "-", in->parcel, in->version,
                         in->chunk_size, in->mem_size, in->disk_size, in->data_dom, fetch_name(in->fetch));
        if (n < 0 || (size_t)n >= sizeof buf)
                return -ENAMETOOLONG;
        return vc_write_file_atomic(path, buf, (size_t)n, 0600);
}

static int meta_read(const char *dir, VcWsInfo *in)
{
        char path[PATH_MAX];
        uint8_t *buf = NULL;
        size_t len;
        memset(in, 0, sizeof *in);
        int r = path_in(dir, "workspace", path, sizeof path);
        if (r < 0)
                return r;
        if ((r = vc_read_file(path, &buf, &len, 65536)) < 0)
                return vc_errf_replace(r, "'%s' is not a workspace (no readable %s: %s)", dir, path, strerror(-r));
        _vc_cleanup_(vc_freep) char *s = malloc(len + 1);
        if (!s) {
                free(buf);
                return -ENOMEM;
        }
        memcpy(s, buf, len);
        s[len] = 0;
        free(buf);
        char *save = NULL, *line = strtok_r(s, "\n", &save);
        if (!line || strcmp(line, META_MAGIC) != 0)
                return vc_errf(-EINVAL, "'%s' is not a workspace of this vmcas (%s)", dir, path);
        int seen = 0;
        while ((line = strtok_r(NULL, "\n", &save))) {
                char *v = strchr(line, ' ');
                if (!v)
                        continue;
                *v++ = 0;
                if (strcmp(line, "store") == 0) {
                        snprintf(in->locator, sizeof in->locator, "%s", v);
                        seen |= 1;
                } else if (strcmp(line, "cache") == 0)
                        snprintf(in->cache_dir, sizeof in->cache_dir, "%s", strcmp(v, "-") ? v : "");
                else if (strcmp(line, "parcel") == 0) {
                        snprintf(in->parcel, sizeof in->parcel, "%s", v);
                        seen |= 2;
                } else if (strcmp(line, "version") == 0)
                        in->version = (uint32_t)strtoul(v, NULL, 10);
                else if (strcmp(line, "chunk-size") == 0)
                        in->chunk_size = (uint32_t)strtoul(v, NULL, 10);
                else if (strcmp(line, "memory-size") == 0)
                        in->mem_size = strtoull(v, NULL, 10);
                else if (strcmp(line, "disk-size") == 0)
                        in->disk_size = strtoull(v, NULL, 10);
                else if (strcmp(line, "data-domain") == 0)
                        snprintf(in->data_dom, sizeof in->data_dom, "%s", v);
                else if (strcmp(line, "fetch") == 0)
                        in->fetch = strcmp(v, "complete") == 0     ? VC_FETCH_COMPLETE
                                    : strcmp(v, "background") == 0 ? VC_FETCH_BACKGROUND
                                                                   : VC_FETCH_DEMAND;
        }
        if (seen != 3 || !vc_chunk_size_valid(in->chunk_size) || !in->version ||
            vc_image_size_check("the disk image", in->disk_size, in->chunk_size) < 0) {
                vc_errclear();
                return vc_errf(-EINVAL, "the workspace file %s is damaged", path);
        }
        return 0;
}

/* DIR/disk.keyring: magic, u64 n, n entries (tag, key), SHA-256 of all that. */
static int keyring_write(const char *dir, const VcEntry *e, uint64_t n)
{
        char path[PATH_MAX];
        int r = path_in(dir, "disk.keyring", path, sizeof path);
        if (r < 0)
                return r;
        size_t len = 16 + n * sizeof(VcEntry) + 32;
        _vc_cleanup_(vc_freep) uint8_t *buf = malloc(len);
        if (!buf)
                return -ENOMEM;
        memcpy(buf, KEYRING_MAGIC, 8);
        vc_put64(buf + 8, n);
        memcpy(buf + 16, e, n * sizeof(VcEntry));
        vc_sha256(buf, len - 32, buf + len - 32);
        r = vc_write_file_atomic(path, buf, len, 0600);
        vc_wipe(buf, len);
        return r;
}

static int keyring_read(const char *dir, uint64_t want, VcEntry **ret)
{
        char path[PATH_MAX];
        uint8_t *buf = NULL;
        size_t len;
        int r = path_in(dir, "disk.keyring", path, sizeof path);
        if (r < 0 || (r = vc_read_file(path, &buf, &len, 16 + want * sizeof(VcEntry) + 32)) < 0)
                return r;
        uint8_t h[32];
        if (len != 16 + want * sizeof(VcEntry) + 32 || memcmp(buf, KEYRING_MAGIC, 8) != 0 ||
            vc_get64(buf + 8) != want || (vc_sha256(buf, len - 32, h), !vc_hash_eq(h, buf + len - 32, 32))) {
                vc_wipe(buf, len);
                free(buf);
                return vc_errf(-EBADMSG, "the workspace's keyring %s is damaged", path);
        }
        VcEntry *e = malloc(want * sizeof(VcEntry) + 1);
        if (e)
                memcpy(e, buf + 16, want * sizeof(VcEntry));
        vc_wipe(buf, len);
        free(buf);
        if (!e)
                return -ENOMEM;
        *ret = e;
        return 0;
}

static size_t map_bytes(uint64_t n)
{
        return (size_t)((n + 7) / 8);
}

/* Writes map (n chunks) to the open dirty file and makes it durable. */
static int dirty_store(int fd, const uint8_t *map, uint64_t n)
{
        uint8_t hdr[DIRTY_HDR];
        memcpy(hdr, DIRTY_MAGIC, 8);
        vc_put64(hdr + 8, n);
        int r = vc_pwrite_full(fd, hdr, sizeof hdr, 0);
        if (r == 0)
                r = vc_pwrite_full(fd, map, map_bytes(n), DIRTY_HDR);
        if (r == 0 && fdatasync(fd) < 0)
                r = -errno;
        if (r < 0)
                return vc_errf(r, "writing the workspace's dirty map: %s", strerror(-r));
        return 0;
}

static int dirty_open(const char *dir, uint64_t n, bool create, int *fd, uint8_t **map)
{
        char path[PATH_MAX];
        int r = path_in(dir, "dirty", path, sizeof path);
        if (r < 0)
                return r;
        *fd = open(path, O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_TRUNC : 0), 0600);
        if (*fd < 0)
                return vc_errf(-errno, "cannot open %s: %s", path, strerror(errno));
        *map = calloc(map_bytes(n) + 1, 1);
        if (!*map)
                return -ENOMEM;
        if (create)
                return dirty_store(*fd, *map, n);
        uint8_t hdr[DIRTY_HDR];
        if (vc_pread_full(*fd, hdr, sizeof hdr, 0) < 0 || memcmp(hdr, DIRTY_MAGIC, 8) != 0 ||
            vc_get64(hdr + 8) != n || vc_pread_full(*fd, *map, map_bytes(n), DIRTY_HDR) < 0) {
                vc_errclear();
                return vc_errf(-EBADMSG, "the workspace's dirty map %s is damaged", path);
        }
        return 0;
}

static int lock_dir(const char *dir, int *fd)
{
        char path[PATH_MAX];
        int r = path_in(dir, "lock", path, sizeof path);
        if (r < 0)
                return r;
        *fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (*fd < 0)
                return vc_errf(-errno, "cannot open %s: %s", path, strerror(errno));
        if (flock(*fd, LOCK_EX | LOCK_NB) < 0) {
                r = errno == EWOULDBLOCK ? -EBUSY : -errno;
                close(*fd);
                *fd = -1;
                return vc_errf(r, "workspace '%s' is in use (served, or being checked in)", dir);
        }
        return 0;
}

/* ---- checkout ------------------------------------------------------------------- */

typedef struct {
        VcBackend *b;
        const VcParcel *p;
        const VcEntry *e;
        uint64_t n, run;
        int nthreads;
        uint64_t fetched;
        VcProgress *prog;
        pthread_mutex_t lock;
} Fill;

static int fill_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        return 0;
}

static int fill_work(void *arg, int tid)
{
        Fill *f = arg;
        _vc_cleanup_(vc_freep) uint8_t *tags = malloc(32 * f->run);
        if (!tags)
                return -ENOMEM;
        for (uint64_t b = (uint64_t)tid * f->run; b < f->n && !vc_pool_stopping(); b += f->run * (uint64_t)f->nthreads) {
                size_t m = 0;
                for (uint64_t i = b; i < VC_MIN(b + f->run, f->n); i++)
                        if (!vc_entry_is_zero(&f->e[i]))
                                memcpy(tags + 32 * m++, f->e[i].tag, 32);
                int r = m ? vc_chunks_get(f->b, f->p->name, f->p->data_dom, tags, m, fill_got, NULL) : 0;
                if (r < 0)
                        return vc_errf_prefix(r, "fetching the disk of parcel '%s'", f->p->name);
                pthread_mutex_lock(&f->lock);
                f->fetched += m;
                vc_progress(f->prog, f->fetched * f->p->chunk_size);
                pthread_mutex_unlock(&f->lock);
        }
        return 0;
}

/* Brings every disk chunk into the host cache. */
static int fill_cache(VcBackend *b, const VcParcel *p, const VcEntry *e, uint64_t n, bool quiet, uint64_t *fetched)
{
        if (strcmp(vc_backend_kind(b), "cache") != 0)
                return 0;           /* a local store: the disk is here */
        VcProgress prog;
        vc_progress_init(&prog, "fetch", n * p->chunk_size, quiet);
        Fill f = { .b = b, .p = p, .e = e, .n = n, .run = VC_MAX(1, (8u << 20) / p->chunk_size), .nthreads = 4,
                   .prog = &prog };
        pthread_mutex_init(&f.lock, NULL);
        int r = vc_pool_run(f.nthreads, fill_work, &f);
        /* what the cache holds is indexed now, for every process (the
         * disk server, `workspace status`) */
        if (r >= 0)
                r = vc_chunks_flush(b);
        pthread_mutex_destroy(&f.lock);
        vc_progress_end(&prog, f.fetched * p->chunk_size);
        *fetched = f.fetched;
        return r;
}

static int prepare_dir(const char *dir)
{
        struct stat st;
        if (stat(dir, &st) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return vc_errf(-ENOTDIR, "'%s' exists and is not a directory", dir);
                DIR *d = opendir(dir);
                if (!d)
                        return vc_errf(-errno, "cannot read '%s': %s", dir, strerror(errno));
                struct dirent *de;
                bool empty = true;
                while ((de = readdir(d)))
                        if (strcmp(de->d_name, ".") && strcmp(de->d_name, ".."))
                                empty = false;
                closedir(d);
                if (!empty)
                        return vc_errf(-EEXIST, "'%s' is not empty: a workspace goes into a new directory", dir);
                if (chmod(dir, 0700) < 0)
                        return vc_errf(-errno, "cannot make '%s' private: %s", dir, strerror(errno));
                return 0;
        }
        if (mkdir(dir, 0700) < 0)
                return vc_errf(-errno, "cannot create '%s': %s", dir, strerror(errno));
        return 0;
}

static int make_overlay(const char *dir, uint64_t size)
{
        char path[PATH_MAX];
        int r = path_in(dir, "overlay", path, sizeof path);
        if (r < 0)
                return r;
        int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (fd < 0)
                return vc_errf(-errno, "cannot create %s: %s", path, strerror(errno));
        r = ftruncate(fd, (off_t)size) < 0 || fsync(fd) < 0 ? -errno : 0;
        close(fd);
        return r < 0 ? vc_errf(r, "cannot size %s: %s", path, strerror(-r)) : 0;
}

static void abs_locator(const char *loc, char *out, size_t len)
{
        char buf[PATH_MAX];
        if (!strstr(loc, "://") && realpath(loc, buf))
                snprintf(out, len, "%s", buf);
        else
                snprintf(out, len, "%s", loc);
}

/* DIR/workingset: u32 (little-endian) chunk numbers, each once, in the
 * order to fetch them (at most WSET_MAX). */
static int wset_write(const char *dir, const uint32_t *v, uint64_t n)
{
        char path[PATH_MAX];
        int r = path_in(dir, "workingset", path, sizeof path);
        uint8_t *buf = r < 0 ? NULL : malloc(4 * n + 1);
        if (r >= 0 && !buf)
                r = -ENOMEM;
        if (r < 0)
                return r;
        for (uint64_t i = 0; i < n; i++)
                vc_put32(buf + 4 * i, v[i]);
        r = vc_write_file_atomic(path, buf, 4 * n, 0600);
        free(buf);
        return r < 0 ? vc_errf_prefix(r, "writing %s", path) : 0;
}

/* Reads DIR/workingset (none: n 0). A file that is not one (a size not
 * of whole entries, a chunk past the disk) is refused: it was written by
 * the checkout, and a damaged one is a damaged workspace. */
static int wset_read(const char *dir, uint64_t chunks, uint32_t **ret, size_t *n)
{
        char path[PATH_MAX];
        *ret = NULL;
        *n = 0;
        int r = path_in(dir, "workingset", path, sizeof path);
        if (r < 0)
                return r;
        uint8_t *buf = NULL;
        size_t len = 0;
        if ((r = vc_read_file(path, &buf, &len, 4ull * WSET_MAX)) == -ENOENT) {
                vc_errclear();
                return 0;
        }
        if (r < 0)
                return vc_errf_prefix(r, "reading %s", path);
        uint32_t *v = malloc(len + 1);
        if (!v) {
                free(buf);
                return -ENOMEM;
        }
        for (size_t i = 0; i < len / 4; i++)
                if ((v[i] = vc_get32(buf + 4 * i)) >= chunks)
                        r = -EBADMSG;
        free(buf);
        if (r < 0 || len % 4) {
                free(v);
                return vc_errf(-EBADMSG, "%s is damaged (not a list of the disk's chunks): remove it to serve the "
                               "disk without its working set", path);
        }
        *ret = v;
        *n = len / 4;
        return 0;
}

int vc_ws_checkout(VcBackend *b, const char *name, const char *dir, const VcWsCheckoutOpts *o,
                   VcWsCheckoutStats *st)
{
        VcParcel p;
        VcVersion v;
        Keys k = { 0 };
        VcEntry *em = NULL, *ed = NULL, rm, rd, aux[2];
        uint32_t *wsi = NULL;
        uint64_t nm = 0, nd = 0, nws = 0;
        uint8_t *mach = NULL, *ord = NULL;
        size_t mlen = 0, olen = 0;
        char path_m[PATH_MAX];
        VcTraffic tr0, tr1;
        double t0 = vc_mono();
        memset(st, 0, sizeof *st);
        memset(aux, 0, sizeof aux);
        vc_backend_traffic(b, &tr0);
        int r = parcel_open(b, name, &p, &k);
        if (r < 0)
                return r;
        if (p.latest == 0 && o->version == 0) {
                r = vc_errf(-ENOENT, "parcel '%s' has no version yet", name);
                goto out;
        }
        if ((r = version_open_aux(b, &p, &k, o->version ? o->version : p.latest, &v, &rm, &rd, aux)) < 0 ||
            (r = read_entries(b, &p, &k, &v, &rm, &rd, &em, &nm, &ed, &nd)) < 0 ||
            (r = read_aux(b, &p, &k, &v, 0, &aux[0], &mach, &mlen)) < 0 ||
            (r = read_aux(b, &p, &k, &v, 1, &aux[1], &ord, &olen)) < 0)
                goto out;
        if (mach) {
                VcMachine m;
                if ((r = vc_machine_parse(mach, mlen, &m)) < 0) {
                        vc_errf_prefix(r, "version %u of parcel '%s'", v.version, name);
                        goto out;
                }
                st->machine_bytes = mlen;
                st->devstate = m.sec[VC_MS_DEVSTATE] != NULL;
        }
        /* the working set: the disk chunks the VM read first after its
         * last resume, in that order, each once */
        if (olen) {
                wsi = calloc(VC_MIN(olen / 8, WSET_MAX) + 1, sizeof *wsi);
                uint8_t *once = calloc(nd / 8 + 1, 1);
                if (!wsi || !once) {
                        free(once);
                        r = -ENOMEM;
                        goto out;
                }
                for (size_t i = 0; i < olen / 8 && nws < WSET_MAX; i++) {
                        uint64_t j = vc_get64(ord + 8 * i);
                        if (j < nd && !(once[j >> 3] & (1u << (j & 7))) && !vc_entry_is_zero(&ed[j])) {
                                once[j >> 3] |= (uint8_t)(1u << (j & 7));
                                wsi[nws++] = (uint32_t)j;
                        }
                }
                free(once);
                st->working_set = nws;
        }
        if (!o->no_lease && (r = take_lease(b, name)) < 0)
                goto out;
        if ((r = prepare_dir(dir)) < 0)
                goto out;
        if (mach && ((r = path_in(dir, "machine", path_m, sizeof path_m)) < 0 ||
                     (r = vc_write_file_atomic(path_m, mach, mlen, 0600)) < 0)) {
                vc_errf_prefix(r, "writing %s", path_m);
                goto out;
        }
        char path[PATH_MAX];
        if ((r = path_in(dir, "memory", path, sizeof path)) < 0 ||
            (r = checkout_file(b, &p, &k, v.version, em, nm, v.mem_size, path, "memory", o->quiet)) < 0)
                goto out;
        int dfd = -1;
        uint8_t *map = NULL;
        r = dirty_open(dir, nd, true, &dfd, &map);
        if (dfd >= 0)
                close(dfd);
        free(map);
        if (r < 0 || (r = make_overlay(dir, v.disk_size)) < 0 || (r = keyring_write(dir, ed, nd)) < 0)
                goto out;
        if (o->fetch == VC_FETCH_COMPLETE && (r = fill_cache(b, &p, ed, nd, o->quiet, &st->disk_fetched)) < 0)
                goto out;
        /* demand and background: the working set comes first, before the
         * VM asks for it, fetched by the disk server while it already
         * serves (a checkout that fetched it took that much longer) */
        if (o->fetch != VC_FETCH_COMPLETE && nws && !getenv("VMCAS_NO_WORKING_SET") &&
            (r = wset_write(dir, wsi, nws)) < 0)
                goto out;
        /* the workspace file last: it makes the directory a workspace */
        VcWsInfo in = { .version = v.version, .chunk_size = p.chunk_size, .mem_size = v.mem_size,
                        .disk_size = v.disk_size, .fetch = o->fetch };
        abs_locator(o->locator ? o->locator : vc_backend_where(b), in.locator, sizeof in.locator);
        if (o->cache_dir)
                abs_locator(o->cache_dir, in.cache_dir, sizeof in.cache_dir);
        snprintf(in.parcel, sizeof in.parcel, "%s", p.name);
        snprintf(in.data_dom, sizeof in.data_dom, "%s", p.data_dom);
        if ((r = meta_write(dir, &in)) < 0)
                goto out;
        vc_fsync_dir(dir);
        st->co.version = v.version;
        st->co.chunks = nm + nd;
        for (uint64_t i = 0; i < nm; i++)
                st->co.zero_chunks += vc_entry_is_zero(&em[i]);
        for (uint64_t i = 0; i < nd; i++)
                st->co.zero_chunks += vc_entry_is_zero(&ed[i]);
        st->co.bytes_out = v.mem_size;
out:
        vc_wipe(&rm, sizeof rm);
        vc_wipe(&rd, sizeof rd);
        vc_wipe(aux, sizeof aux);
        keys_wipe(&k);
        if (ed)
                vc_wipe(ed, nd * sizeof *ed);
        free(em);
        free(ed);
        free(wsi);
        free(mach);
        free(ord);
        st->co.seconds = vc_mono() - t0;
        vc_backend_traffic(b, &tr1);
        vc_traffic_since(&tr0, &tr1, &st->co.traffic);
        return r < 0 ? r : 0;
}

/* ---- serving the disk ------------------------------------------------------------ */

struct VcWorkspace {
        char dir[PATH_MAX];
        VcWsInfo info;
        VcBackend *b;
        VcParcel p;
        Keys k;
        VcEntry *e;
        uint64_t n;
        uint32_t cs;
        bool local;                /* the store is local: nothing to fetch ahead */
        uint64_t readahead;        /* bytes fetched along with a miss */
        int lock_fd, ov_fd, dirty_fd;
        uint8_t *map;              /* dirty bits (atomic) */
        uint8_t *state;            /* ST_*: is a chunk in the host cache? */
        bool map_changed;
        pthread_mutex_t lock;      /* state, map_changed, sealers */
        pthread_cond_t cv;         /* a chunk left ST_INFLIGHT */
        pthread_mutex_t flush_lock;
        pthread_mutex_t stripes[STRIPES];
        VcSealer *sealers[VC_MAX_THREADS * 4];
        int nsealers;
        int jobs;                  /* read-ahead jobs queued or running (fetch_ahead) */
        uint64_t stream_end[STREAMS]; /* where recent reads ended (chunks), or UINT64_MAX */
        int stream_next;
        struct Job *fq, **fq_tail; /* jobs waiting for a fetcher */
        pthread_cond_t fcv;        /* a job was queued, or fstop */
        pthread_t fetchers[FETCHERS];
        int nfetchers, fidle;
        bool fstop;
        /* the read order: disk chunks in the order the client first read
         * them since the disk was opened (DIR/readorder, the working set's
         * raw material) */
        uint8_t *seen;             /* a bit per chunk */
        uint32_t *order;
        size_t norder, nsaved;
        int order_fd;
        /* the background fetch: the working set first, in its order */
        pthread_t bg;
        bool bg_started, bg_stop;
        uint32_t *wset;
        size_t nwset;
        VcWsServed served;         /* (lock) */
};

const VcWsInfo *vc_ws_info(const VcWorkspace *w)
{
        return &w->info;
}

static int sealer_get(VcWorkspace *w, VcSealer **ret)
{
        pthread_mutex_lock(&w->lock);
        if (w->nsealers) {
                *ret = w->sealers[--w->nsealers];
                pthread_mutex_unlock(&w->lock);
                return 0;
        }
        pthread_mutex_unlock(&w->lock);
        return sealer_for(&w->p, &w->k, ret);
}

static void sealer_put(VcWorkspace *w, VcSealer *s)
{
        pthread_mutex_lock(&w->lock);
        if (w->nsealers < (int)VC_ARRAY_SIZE(w->sealers)) {
                w->sealers[w->nsealers++] = s;
                s = NULL;
        }
        pthread_mutex_unlock(&w->lock);
        vc_sealer_free(s);
}

/* Marks what the host cache holds already. */
static int scan_cache(VcWorkspace *w)
{
        if (w->local) {
                memset(w->state, ST_KNOWN, w->n);
                return 0;
        }
        const uint64_t step = 65536;
        _vc_cleanup_(vc_freep) uint8_t *tags = malloc(32 * step);
        _vc_cleanup_(vc_freep) uint8_t *has = malloc(step);
        _vc_cleanup_(vc_freep) uint64_t *pos = malloc(step * sizeof *pos);
        if (!tags || !has || !pos)
                return -ENOMEM;
        for (uint64_t b = 0; b < w->n; b += step) {
                size_t m = 0;
                for (uint64_t i = b; i < VC_MIN(b + step, w->n); i++)
                        if (!vc_entry_is_zero(&w->e[i])) {
                                memcpy(tags + 32 * m, w->e[i].tag, 32);
                                pos[m++] = i;
                        }
                if (vc_backend_cache_has(w->b, w->info.data_dom, tags, m, has) < 0) {
                        vc_errclear();
                        return 0;   /* unknown: a get will tell */
                }
                for (size_t j = 0; j < m; j++)
                        if (has[j])
                                w->state[pos[j]] = ST_KNOWN;
        }
        return 0;
}

int vc_ws_open(const char *dir, VcWorkspace **ret)
{
        VcWorkspace *w = calloc(1, sizeof *w);
        if (!w)
                return -ENOMEM;
        w->lock_fd = w->ov_fd = w->dirty_fd = w->order_fd = -1;
        pthread_mutex_init(&w->lock, NULL);
        pthread_cond_init(&w->cv, NULL);
        pthread_cond_init(&w->fcv, NULL);
        w->fq_tail = &w->fq;
        for (int i = 0; i < STREAMS; i++)
                w->stream_end[i] = UINT64_MAX;
        pthread_mutex_init(&w->flush_lock, NULL);
        for (int i = 0; i < STRIPES; i++)
                pthread_mutex_init(&w->stripes[i], NULL);
        snprintf(w->dir, sizeof w->dir, "%s", dir);
        char path[PATH_MAX];
        int r;
        if ((r = meta_read(dir, &w->info)) < 0 || (r = lock_dir(dir, &w->lock_fd)) < 0)
                goto fail;
        w->cs = w->info.chunk_size;
        w->n = vc_chunk_count(w->info.disk_size, w->cs);
        if ((r = keyring_read(dir, w->n, &w->e)) < 0 || (r = dirty_open(dir, w->n, false, &w->dirty_fd, &w->map)) < 0)
                goto fail;
        if ((r = path_in(dir, "overlay", path, sizeof path)) < 0)
                goto fail;
        w->ov_fd = open(path, O_RDWR | O_CLOEXEC);
        if (w->ov_fd < 0) {
                r = vc_errf(-errno, "cannot open %s: %s", path, strerror(errno));
                goto fail;
        }
        VcBackendOpts bo = { .cache_dir = w->info.cache_dir[0] ? w->info.cache_dir : NULL };
        if ((r = vc_backend_open(w->info.locator, &bo, &w->b)) < 0)
                goto fail;
        if ((r = parcel_open(w->b, w->info.parcel, &w->p, &w->k)) < 0)
                goto fail;
        if (w->p.chunk_size != w->cs || w->p.disk_size != w->info.disk_size ||
            strcmp(w->p.data_dom, w->info.data_dom) != 0) {
                r = vc_errf(-EBADMSG, "workspace '%s' does not match parcel '%s' of the store", dir, w->p.name);
                goto fail;
        }
        w->local = strcmp(vc_backend_kind(w->b), "cache") != 0;
        const char *ra = getenv("VMCAS_READAHEAD");
        w->readahead = READAHEAD_BYTES;
        if (ra && *ra && vc_parse_size(ra, "VMCAS_READAHEAD", &w->readahead) < 0)
                vc_errclear();
        w->state = calloc(w->n + 1, 1);
        if (!w->state) {
                r = -ENOMEM;
                goto fail;
        }
        if ((r = scan_cache(w)) < 0)
                goto fail;
        w->seen = calloc(map_bytes(w->n) + 1, 1);
        w->order = malloc(VC_MIN(w->n, READ_ORDER_MAX) * sizeof *w->order + 1);
        if (!w->seen || !w->order || (r = path_in(dir, "readorder", path, sizeof path)) < 0) {
                r = r < 0 ? r : -ENOMEM;
                goto fail;
        }
        if ((r = wset_read(dir, w->n, &w->wset, &w->nwset)) < 0)
                goto fail;
        w->order_fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (w->order_fd < 0) {
                r = vc_errf(-errno, "cannot create %s: %s", path, strerror(errno));
                goto fail;
        }
        *ret = w;
        return 0;
fail:
        vc_ws_close(w);
        return r;
}

void vc_ws_close(VcWorkspace *w)
{
        if (!w)
                return;
        if (w->bg_started) {
                pthread_mutex_lock(&w->lock);
                w->bg_stop = true;
                pthread_cond_broadcast(&w->cv);
                pthread_mutex_unlock(&w->lock);
                pthread_join(w->bg, NULL);
        }
        pthread_mutex_lock(&w->lock);
        while (w->jobs > 0)
                pthread_cond_wait(&w->cv, &w->lock);
        w->fstop = true;
        pthread_cond_broadcast(&w->fcv);
        pthread_mutex_unlock(&w->lock);
        for (int i = 0; i < w->nfetchers; i++)
                pthread_join(w->fetchers[i], NULL);
        if (w->ov_fd >= 0 && w->dirty_fd >= 0 && w->map)
                vc_ws_flush(w);
        if (w->order_fd >= 0)
                close(w->order_fd);
        free(w->seen);
        free(w->order);
        free(w->wset);
        for (int i = 0; i < w->nsealers; i++)
                vc_sealer_free(w->sealers[i]);
        vc_backend_free(w->b);
        if (w->e)
                vc_wipe(w->e, w->n * sizeof *w->e);
        free(w->e);
        free(w->map);
        free(w->state);
        keys_wipe(&w->k);
        if (w->ov_fd >= 0)
                close(w->ov_fd);
        if (w->dirty_fd >= 0)
                close(w->dirty_fd);
        if (w->lock_fd >= 0)
                close(w->lock_fd);
        pthread_mutex_destroy(&w->lock);
        pthread_cond_destroy(&w->cv);
        pthread_cond_destroy(&w->fcv);
        pthread_mutex_destroy(&w->flush_lock);
        for (int i = 0; i < STRIPES; i++)
                pthread_mutex_destroy(&w->stripes[i]);
        free(w);
}

/* One chunk wanted from the store: [a, a+len) of it into dst, or (dst
 * NULL) only brought into the host cache. */
typedef struct Want {
        uint64_t chunk;
        uint8_t *dst;
        uint32_t a, len;
        bool claimed, deferred;
} Want;

typedef struct {
        VcWorkspace *w;
        Want *want;
        VcSealer *sl;
        uint8_t *tmp;
} GotCtx;

static int ws_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        GotCtx *g = ctx;
        VcWorkspace *w = g->w;
        Want *x = &g->want[idx];
        if (!x->dst)
                return 0;
        uint64_t i = x->chunk;
        size_t clen = vc_chunk_len(w->info.disk_size, w->cs, i);
        int r = vc_unseal(g->sl, data, len, w->e[i].tag, w->e[i].key, g->tmp, clen, false);
        if (r < 0) {
                char hex[65];
                vc_hex(w->e[i].tag, 32, hex);
                return vc_errf_prefix(r, "chunk %s (chunk %" PRIu64 ", offset %" PRIu64 " of the disk)", hex, i,
                                      i * (uint64_t)w->cs);
        }
        memcpy(x->dst, g->tmp + x->a, x->len);
        return 0;
}

/* Fetches want[i] for i with sel(want[i]) in one batch call. */
static int fetch_wants(VcWorkspace *w, Want *want, size_t n, bool deferred)
{
        _vc_cleanup_(vc_freep) uint8_t *tags = malloc(32 * n + 1);
        _vc_cleanup_(vc_freep) Want *sub = malloc(n * sizeof *sub + 1);
        _vc_cleanup_(vc_freep) uint8_t *tmp = malloc(w->cs);
        if (!tags || !sub || !tmp)
                return -ENOMEM;
        size_t m = 0;
        for (size_t j = 0; j < n; j++)
                if (want[j].deferred == deferred) {
                        memcpy(tags + 32 * m, w->e[want[j].chunk].tag, 32);
                        sub[m++] = want[j];
                }
        if (!m)
                return 0;
        GotCtx g = { w, sub, NULL, tmp };
        int r = sealer_get(w, &g.sl);
        if (r < 0)
                return r;
        r = vc_chunks_get(w->b, w->p.name, w->p.data_dom, tags, m, ws_got, &g);
        sealer_put(w, g.sl);
        if (r < 0)
                return vc_errf_prefix(r, "reading the disk of parcel '%s' version %u", w->p.name, w->info.version);
        return 0;
}

/* The read-ahead of a miss, on a fetcher thread: the reader fetched the
 * chunks it asked for itself, in a call of their own (the server looks
 * up a tag or two and answers at once), and does not wait for their
 * neighbours. Fetchers are few and live as long as the workspace: a
 * thread started per miss cost its start and, at its end, the pages of
 * its malloc arena, which the next one faulted in again. */
typedef struct Job {
        struct Job *next;           /* in the queue */
        VcWorkspace *w;
        Want *want;                 /* claimed, no destination */
        size_t n;
        uint8_t *tags;
} Job;

static void job_free(Job *j)
{
        if (!j)
                return;
        free(j->want);
        free(j->tags);
        free(j);
}

static int ahead_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        return 0;                   /* the host cache keeps it; nobody waits for it here */
}

/* Marks want[0, n) fetched (or not): lock held. */
static void claims_settle(VcWorkspace *w, const Want *want, size_t n, bool ok)
{
        for (size_t i = 0; i < n; i++)
                if (want[i].claimed)
                        w->state[want[i].chunk] = ok ? ST_KNOWN : ST_UNKNOWN;
        pthread_cond_broadcast(&w->cv);
}

static void job_run(Job *j)
{
        VcWorkspace *w = j->w;
        int r = vc_chunks_get(w->b, w->p.name, w->p.data_dom, j->tags, j->n, ahead_got, NULL);
        vc_errclear();              /* a read-ahead's failure is no reader's: they fetch it again */
        pthread_mutex_lock(&w->lock);
        claims_settle(w, j->want, j->n, r >= 0);
        if (r >= 0)
                w->served.ahead += j->n;
        w->jobs--;
        pthread_cond_broadcast(&w->cv);
        pthread_mutex_unlock(&w->lock);
        job_free(j);
}

static void *fetcher_main(void *arg)
{
        VcWorkspace *w = arg;
        pthread_mutex_lock(&w->lock);
        for (;;) {
                while (!w->fq && !w->fstop)
                        pthread_cond_wait(&w->fcv, &w->lock);
                if (!w->fq)
                        break;
                Job *j = w->fq;
                if (!(w->fq = j->next))
                        w->fq_tail = &w->fq;
                w->fidle--;
                pthread_mutex_unlock(&w->lock);
                job_run(j);
                pthread_mutex_lock(&w->lock);
                w->fidle++;
        }
        pthread_mutex_unlock(&w->lock);
        return NULL;
}

/* Hands the claimed read-ahead want[0, n) to a fetcher, starting one if
 * none is idle; without one, the claims are given back. */
static void fetch_ahead(VcWorkspace *w, const Want *want, size_t n)
{
        Job *j = calloc(1, sizeof *j);
        if (j && (!(j->want = malloc(n * sizeof *want)) || !(j->tags = malloc(32 * n)))) {
                job_free(j);
                j = NULL;
        }
        if (j) {
                j->w = w;
                j->n = n;
                memcpy(j->want, want, n * sizeof *want);
                for (size_t i = 0; i < n; i++)
                        memcpy(j->tags + 32 * i, w->e[want[i].chunk].tag, 32);
        }
        pthread_mutex_lock(&w->lock);
        if (j && w->fidle == 0 && w->nfetchers < FETCHERS &&
            pthread_create(&w->fetchers[w->nfetchers], NULL, fetcher_main, w) == 0) {
                w->nfetchers++;
                w->fidle++;
        }
        if (j && w->nfetchers > 0) {
                w->jobs++;
                *w->fq_tail = j;
                w->fq_tail = &j->next;
                pthread_cond_signal(&w->fcv);
        } else {
                claims_settle(w, want, n, false);
                job_free(j);
        }
        pthread_mutex_unlock(&w->lock);
}

/* Notes a read of chunks [first, last] (lock held); returns whether it
 * continues a recent one: starts at most ra chunks past where one of the
 * last STREAMS reads ended. Only such a read's miss brings neighbours
 * along (as the kernel's read-ahead does): a random read's neighbours
 * were fetched in vain, and their fetch ran beside the next random miss
 * and made it three times slower. */
static bool stream_note(VcWorkspace *w, uint64_t first, uint64_t last, uint64_t ra)
{
        for (int k = 0; k < STREAMS; k++) {
                uint64_t e = w->stream_end[k];
                if (e != UINT64_MAX && e <= first + 1 && first <= e + ra) {
                        w->stream_end[k] = VC_MAX(e, last + 1);
                        return true;
                }
        }
        w->stream_end[w->stream_next] = last + 1;
        w->stream_next = (w->stream_next + 1) % STREAMS;
        return false;
}

/* Reads [off, off+count) of the base version and the overlay. */
int vc_ws_pread(VcWorkspace *w, void *buf, uint32_t count, uint64_t off)
{
        if (count == 0)
                return 0;
        if (off > w->info.disk_size || count > w->info.disk_size - off)
                return vc_errf(-EINVAL, "read beyond the end of the disk");
        uint64_t cs = w->cs, first = off / cs, last = (off + count - 1) / cs;
        size_t nw = 0, cap = (size_t)(last - first + 1) + READAHEAD_MAX;
        _vc_cleanup_(vc_freep) Want *want = malloc(cap * sizeof *want);
        if (!want)
                return -ENOMEM;
        for (uint64_t i = first; i <= last; i++) {
                uint64_t cstart = i * cs, cend = VC_MIN(cstart + cs, w->info.disk_size);
                uint64_t a = VC_MAX(off, cstart), z = VC_MIN(off + count, cend);
                uint8_t *dst = (uint8_t *)buf + (a - off);
                if (bit_get(w->map, i)) {
                        int r = vc_pread_full(w->ov_fd, dst, (size_t)(z - a), (off_t)a);
                        if (r < 0)
                                return vc_errf(r, "reading the workspace's overlay: %s", strerror(-r));
                } else if (vc_entry_is_zero(&w->e[i]))
                        memset(dst, 0, (size_t)(z - a));
                else
                        want[nw++] = (Want){ .chunk = i, .dst = dst, .a = (uint32_t)(a - cstart),
                                             .len = (uint32_t)(z - a) };
        }
        if (!nw)
                return 0;
        /* claim the chunks nobody is fetching; never wait while holding a
         * claim (two readers would wait for each other) */
        bool miss = false, defer = false;
        pthread_mutex_lock(&w->lock);
        for (size_t j = 0; j < nw; j++) {
                uint8_t *s = &w->state[want[j].chunk];
                if (*s == ST_UNKNOWN) {
                        *s = ST_INFLIGHT;
                        want[j].claimed = miss = true;
                } else if (*s == ST_INFLIGHT)
                        want[j].deferred = defer = true;
        }
        size_t nask = nw;
        uint64_t ra = VC_MIN(READAHEAD_MAX, w->readahead / cs);
        bool seq = stream_note(w, first, last, ra);
        if (miss && !w->local && seq) {
                /* a miss in a sequential run brings its neighbours along */
                for (uint64_t i = last + 1; i < VC_MIN(w->n, last + 1 + ra); i++)
                        if (w->state[i] == ST_UNKNOWN && !vc_entry_is_zero(&w->e[i]) && !bit_get(w->map, i)) {
                                w->state[i] = ST_INFLIGHT;
                                want[nw++] = (Want){ .chunk = i, .claimed = true };
                        }
        }
        pthread_mutex_unlock(&w->lock);
        /* what the reader asked for, then the read-ahead (want[nask..nw)) */
        int r = fetch_wants(w, want, nask, false);
        pthread_mutex_lock(&w->lock);
        if (r >= 0 && !w->local)
                for (size_t j = 0; j < nask; j++)
                        w->served.demand += want[j].claimed;
        claims_settle(w, want, nask, r >= 0);
        if (r < 0)
                claims_settle(w, want + nask, nw - nask, false);
        pthread_mutex_unlock(&w->lock);
        if (nw > nask && r >= 0)
                fetch_ahead(w, want + nask, nw - nask);
        pthread_mutex_lock(&w->lock);
        if (defer && r >= 0)
                for (size_t j = 0; j < nw; j++)
                        while (want[j].deferred && w->state[want[j].chunk] == ST_INFLIGHT)
                                pthread_cond_wait(&w->cv, &w->lock);
        pthread_mutex_unlock(&w->lock);
        if (r >= 0 && defer)
                r = fetch_wants(w, want, nw, true);
        return r;
}

int vc_ws_pwrite(VcWorkspace *w, const void *buf, uint32_t count, uint64_t off)
{
        if (count == 0)
                return 0;
        if (off > w->info.disk_size || count > w->info.disk_size - off)
                return vc_errf(-ENOSPC, "write beyond the end of the disk");
        uint64_t cs = w->cs, first = off / cs, last = (off + count - 1) / cs;
        _vc_cleanup_(vc_freep) uint8_t *tmp = NULL;
        int r = 0;
        for (uint64_t i = first; i <= last && r == 0; i++) {
                uint64_t cstart = i * cs, cend = VC_MIN(cstart + cs, w->info.disk_size);
                uint64_t a = VC_MAX(off, cstart), z = VC_MIN(off + count, cend);
                const uint8_t *src = (const uint8_t *)buf + (a - off);
                pthread_mutex_t *m = &w->stripes[i % STRIPES];
                pthread_mutex_lock(m);
                if (bit_get(w->map, i)) {
                        r = vc_pwrite_full(w->ov_fd, src, (size_t)(z - a), (off_t)a);
                } else {
                        /* the first write of a chunk puts all of it in the
                         * overlay, and only then marks it dirty */
                        size_t clen = (size_t)(cend - cstart);
                        if (!tmp && !(tmp = malloc(cs)))
                                r = -ENOMEM;
                        if (r == 0 && (a != cstart || z != cend))
                                r = vc_ws_pread(w, tmp, (uint32_t)clen, cstart);
                        if (r == 0) {
                                memcpy(tmp + (a - cstart), src, (size_t)(z - a));
                                r = vc_pwrite_full(w->ov_fd, tmp, clen, (off_t)cstart);
                        }
                        if (r == 0) {
                                bit_set(w->map, i);
                                pthread_mutex_lock(&w->lock);
                                w->map_changed = true;
                                pthread_mutex_unlock(&w->lock);
                        }
                }
                pthread_mutex_unlock(m);
        }
        if (r < 0)
                return vc_errf_prefix(r, "writing the workspace's overlay");
        return 0;
}

/* Appends the chunks first read since the last save to DIR/readorder (u32
 * each, little-endian). Best effort: the order is a hint. */
static void order_save(VcWorkspace *w)
{
        if (w->order_fd < 0)
                return;
        pthread_mutex_lock(&w->lock);
        size_t from = w->nsaved, to = w->norder;
        pthread_mutex_unlock(&w->lock);
        if (to <= from)
                return;
        uint8_t *buf = malloc(4 * (to - from));
        if (!buf)
                return;
        for (size_t i = from; i < to; i++)
                vc_put32(buf + 4 * (i - from), w->order[i]);
        if (vc_pwrite_full(w->order_fd, buf, 4 * (to - from), (off_t)(4 * from)) == 0)
                w->nsaved = to;
        else
                vc_errclear();
        free(buf);
}

void vc_ws_note_read(VcWorkspace *w, uint32_t count, uint64_t off)
{
        if (count == 0 || off >= w->info.disk_size || !w->seen)
                return;
        uint64_t first = off / w->cs, last = (VC_MIN(off + count, w->info.disk_size) - 1) / w->cs;
        pthread_mutex_lock(&w->lock);
        w->served.reads++;
        for (uint64_t i = first; i <= last && w->norder < READ_ORDER_MAX; i++)
                if (!(w->seen[i >> 3] & (1u << (i & 7)))) {
                        w->seen[i >> 3] |= (uint8_t)(1u << (i & 7));
                        w->order[w->norder++] = (uint32_t)i;
                }
        pthread_mutex_unlock(&w->lock);
}

int vc_ws_flush(VcWorkspace *w)
{
        pthread_mutex_lock(&w->flush_lock);
        order_save(w);
        size_t mb = map_bytes(w->n);
        uint8_t *snap = NULL;
        pthread_mutex_lock(&w->lock);
        bool changed = w->map_changed;
        w->map_changed = false;
        pthread_mutex_unlock(&w->lock);
        /* every bit of the copy covers an overlay write that is complete,
         * so the fdatasync below makes it durable before the bit is */
        if (changed && (snap = malloc(mb + 1)))
                for (size_t i = 0; i < mb; i++)
                        snap[i] = __atomic_load_n(&w->map[i], __ATOMIC_ACQUIRE);
        int r = 0;
        if (changed && !snap)
                r = -ENOMEM;
        if (r == 0 && fdatasync(w->ov_fd) < 0)
                r = vc_errf(-errno, "fdatasync of the workspace's overlay: %s", strerror(errno));
        if (r == 0 && snap)
                r = dirty_store(w->dirty_fd, snap, w->n);
        if (r < 0 && changed) {
                pthread_mutex_lock(&w->lock);
                w->map_changed = true;
                pthread_mutex_unlock(&w->lock);
        }
        free(snap);
        pthread_mutex_unlock(&w->flush_lock);
        return r;
}

int vc_ws_extents(VcWorkspace *w, uint64_t off, uint64_t count, vc_ws_extent_fn fn, void *ctx)
{
        if (count == 0 || off >= w->info.disk_size)
                return 0;
        uint64_t cs = w->cs, first = off / cs, last = (VC_MIN(off + count, w->info.disk_size) - 1) / cs;
        uint64_t run = first;
        bool zero = false;
        for (uint64_t i = first; i <= last + 1; i++) {
                bool z = i <= last && !bit_get(w->map, i) && vc_entry_is_zero(&w->e[i]);
                if (i == first) {
                        zero = z;
                        continue;
                }
                if (i <= last && z == zero)
                        continue;
                uint64_t end = VC_MIN(i * cs, w->info.disk_size);
                int r = fn(run * cs, end - run * cs, zero, ctx);
                if (r < 0)
                        return r;
                run = i;
                zero = z;
        }
        return 0;
}

/* ---- the background fetch ------------------------------------------------------- */

/* Claims up to step chunks of the run [*at, end) not yet known to be in the
 * host cache (lock held): of the working set (wset) or of the disk. */
static size_t bg_claim(VcWorkspace *w, const uint32_t *wset, size_t *at, size_t end, size_t step, Want *want)
{
        size_t nw = 0;
        for (; *at < end && nw < step; (*at)++) {
                uint64_t c = wset ? wset[*at] : *at;
                if (w->state[c] == ST_UNKNOWN && !vc_entry_is_zero(&w->e[c]) && !bit_get(w->map, c)) {
                        w->state[c] = ST_INFLIGHT;
                        want[nw++] = (Want){ .chunk = c, .claimed = true };
                }
        }
        return nw;
}

/* Fetches the working set in its order (first batches small: the VM's
 * first reads wait for them), then with --fetch background the rest of
 * the disk in order. A failure (the store away) is retried a second
 * later; close stops it. */
static void *bg_main(void *arg)
{
        VcWorkspace *w = arg;
        uint64_t big = VC_MAX(1, BG_BATCH_BYTES / w->cs);
        Want *want = malloc(big * sizeof *want);
        if (!want)
                return NULL;
        for (int phase = 0; phase < 2; phase++) {
                const uint32_t *wset = phase == 0 ? w->wset : NULL;
                size_t end = phase == 0 ? w->nwset : w->info.fetch == VC_FETCH_BACKGROUND ? w->n : 0;
                size_t i = 0, step = phase == 0 ? VC_MIN(WSET_FIRST, big) : big;
                while (i < end) {
                        pthread_mutex_lock(&w->lock);
                        if (w->bg_stop) {
                                pthread_mutex_unlock(&w->lock);
                                goto out;
                        }
                        size_t next = i;
                        size_t nw = bg_claim(w, wset, &next, end, step, want);
                        pthread_mutex_unlock(&w->lock);
                        int r = nw ? fetch_wants(w, want, nw, false) : 0;
                        pthread_mutex_lock(&w->lock);
                        claims_settle(w, want, nw, r >= 0);
                        if (r < 0) {
                                /* the store is away: try again in a while */
                                vc_errclear();
                                struct timespec ts;
                                clock_gettime(CLOCK_REALTIME, &ts);
                                ts.tv_sec += 1;
                                if (!w->bg_stop)
                                        pthread_cond_timedwait(&w->cv, &w->lock, &ts);
                        } else {
                                *(phase == 0 ? &w->served.working_set : &w->served.background) += nw;
                                i = next;
                                step = VC_MIN(2 * step, big);
                        }
                        pthread_mutex_unlock(&w->lock);
                }
        }
        /* all fetched: indexed now, so that `workspace status` and a
         * second disk server see it without waiting for the cache */
        vc_backend_cache_settle(w->b);
out:
        free(want);
        return NULL;
}

void vc_ws_served(VcWorkspace *w, VcWsServed *out)
{
        pthread_mutex_lock(&w->lock);
        *out = w->served;
        pthread_mutex_unlock(&w->lock);
}

void vc_ws_ready(VcWorkspace *w)
{
        if (w->local)
                return;
        VcSealer *s;
        if (sealer_get(w, &s) >= 0)
                sealer_put(w, s);
        vc_backend_cache_warm(w->b);
        VcParcelInfo pi;
        (void)vc_cat_parcel(w->b, w->p.name, &pi);
        vc_errclear();
}

int vc_ws_start_background(VcWorkspace *w)
{
        if (w->local || w->bg_started || (w->info.fetch != VC_FETCH_BACKGROUND && !w->nwset))
                return 0;
        if (pthread_create(&w->bg, NULL, bg_main, w) != 0)
                return vc_errf(-EAGAIN, "cannot start the background fetch");
        w->bg_started = true;
        return 0;
}

/* ---- status --------------------------------------------------------------------- */

int vc_ws_status(const char *dir, VcWsStatus *st)
{
        memset(st, 0, sizeof *st);
        int r = meta_read(dir, &st->info);
        if (r < 0)
                return r;
        uint64_t n = vc_chunk_count(st->info.disk_size, st->info.chunk_size);
        _vc_cleanup_(vc_freep) VcEntry *e = NULL;
        _vc_cleanup_(vc_freep) uint8_t *map = NULL;
        int fd = -1;
        if ((r = keyring_read(dir, n, &e)) < 0)
                return r;
        r = dirty_open(dir, n, false, &fd, &map);
        if (fd >= 0)
                close(fd);
        if (r < 0)
                return r;
        int lfd;
        if (lock_dir(dir, &lfd) < 0) {
                vc_errclear();
                st->served = true;
        } else
                close(lfd);
        st->chunks = n;
        struct stat ost;
        char opath[PATH_MAX];
        if (path_in(dir, "readorder", opath, sizeof opath) == 0 && stat(opath, &ost) == 0)
                st->read_order = (uint64_t)ost.st_size / 4;
        uint32_t *wset;
        size_t nwset;
        if ((r = wset_read(dir, n, &wset, &nwset)) < 0)
                return r;
        free(wset);
        st->working_set = nwset;
        VcBackend *b = NULL;
        VcBackendOpts bo = { .cache_dir = st->info.cache_dir[0] ? st->info.cache_dir : NULL };
        if ((r = vc_backend_open(st->info.locator, &bo, &b)) < 0)
                return r;
        bool cache = strcmp(vc_backend_kind(b), "cache") == 0;
        const uint64_t step = 65536;
        _vc_cleanup_(vc_freep) uint8_t *tags = malloc(32 * step);
        _vc_cleanup_(vc_freep) uint8_t *has = malloc(step);
        if (!tags || !has) {
                vc_backend_free(b);
                return -ENOMEM;
        }
        for (uint64_t i0 = 0; i0 < n && r >= 0; i0 += step) {
                size_t m = 0;
                for (uint64_t i = i0; i < VC_MIN(i0 + step, n); i++) {
                        if (bit_get(map, i)) {
                                st->dirty++;
                                st->dirty_bytes += vc_chunk_len(st->info.disk_size, st->info.chunk_size, i);
                        } else if (vc_entry_is_zero(&e[i]))
                                st->zero++;
                        else
                                memcpy(tags + 32 * m++, e[i].tag, 32);
                }
                if (!cache) {
                        st->present += m;
                        continue;
                }
                if ((r = vc_backend_cache_has(b, st->info.data_dom, tags, m, has)) < 0)
                        break;
                for (size_t j = 0; j < m; j++)
                        has[j] ? st->present++ : st->missing++;
        }
        vc_backend_free(b);
        vc_wipe(e, n * sizeof *e);
        return r < 0 ? r : 0;
}

/* ---- checkin -------------------------------------------------------------------- */

int vc_ws_checkin(const char *dir, bool release, bool quiet, VcCheckinStats *st)
{
        VcWsInfo in;
        uint8_t *mach = NULL, *ord = NULL;
        VcParcel p;
        Keys k = { 0 };
        Source mem = { .fd = -1 }, disk = { .fd = -1 };
        uint8_t token[VC_LEASE_TOKEN_LEN] = { 0 };
        VcEntry *e = NULL, *out = NULL;
        uint8_t *map = NULL;
        int lfd = -1, dfd = -1;
        VcBackend *b = NULL;
        char path[PATH_MAX];
        memset(st, 0, sizeof *st);
        int r = vc_threads();
        if (r < 0 || (r = meta_read(dir, &in)) < 0 || (r = lock_dir(dir, &lfd)) < 0)
                return r;
        uint64_t n = vc_chunk_count(in.disk_size, in.chunk_size);
        if ((r = keyring_read(dir, n, &e)) < 0 || (r = dirty_open(dir, n, false, &dfd, &map)) < 0)
                goto out;
        VcBackendOpts bo = { .cache_dir = in.cache_dir[0] ? in.cache_dir : NULL };
        if ((r = vc_backend_open(in.locator, &bo, &b)) < 0 || (r = parcel_open(b, in.parcel, &p, &k)) < 0)
                goto out;
        if (p.latest != in.version) {
                r = vc_errf(-EAGAIN, "parcel '%s' is at version %u, but this workspace holds version %u: its "
                            "checkin would undo the versions between", in.parcel, p.latest, in.version);
                goto out;
        }
        if ((r = path_in(dir, "memory", path, sizeof path)) < 0 ||
            (r = source_open_file(path, "memory", p.mem_size, &mem)) < 0 ||
            (r = path_in(dir, "overlay", path, sizeof path)) < 0)
                goto out;
        disk.fd = open(path, O_RDONLY | O_CLOEXEC);
        if (disk.fd < 0) {
                r = vc_errf(-errno, "cannot open %s: %s", path, strerror(errno));
                goto out;
        }
        disk.size = p.disk_size;
        disk.what = "disk";
        disk.dirty = map;
        disk.base = e;
        out = calloc(n + 1, sizeof *out);
        disk.out = out;
        if (!out) {
                r = -ENOMEM;
                goto out;
        }
        int taken = lease_for_checkin(b, in.parcel, token);
        if ((r = taken) < 0)
                goto out;
        /* beside the images: the machine (as suspend left it) and the
         * order in which the VM read its disk since it was last served */
        VcAuxIn ai = { 0 };
        if ((r = path_in(dir, "machine", path, sizeof path)) < 0)
                goto out;
        r = vc_read_file(path, &mach, &ai.machine_len, VC_MACHINE_MAX);
        if (r < 0 && r != -ENOENT) {
                r = vc_errf(r, "cannot read %s: %s", path, strerror(-r));
                goto out;
        }
        ai.machine = mach;
        if ((r = path_in(dir, "readorder", path, sizeof path)) < 0)
                goto out;
        uint8_t *o32 = NULL;
        size_t o32n = 0;
        if (vc_read_file(path, &o32, &o32n, 4 * (size_t)VC_IMAGE_CHUNKS_MAX) == 0) {
                size_t cnt = o32n / 4;
                if (cnt && (ord = malloc(8 * cnt))) {
                        for (size_t i = 0; i < cnt; i++)
                                vc_put64(ord + 8 * i, vc_get32(o32 + 4 * i));
                        ai.order = ord;
                        ai.order_len = 8 * cnt;
                }
                free(o32);
        }
        vc_errclear();
        r = do_checkin(b, &p, &k, &mem, &disk, &ai, token, quiet, st);
        if (r == -ESTALE)
                lease_token_forget(vc_backend_uuid(b), in.parcel);
        if (r < 0)
                goto out;
        /* the workspace moves to the new version: its keyring and record
         * first, then the map is cleared (a crash between over-counts),
         * then the overlay is emptied */
        in.version = st->version;
        if ((r = keyring_write(dir, out, n)) < 0 || (r = meta_write(dir, &in)) < 0)
                goto out;
        memset(map, 0, map_bytes(n));
        if ((r = dirty_store(dfd, map, n)) < 0)
                goto out;
        if ((r = path_in(dir, "overlay", path, sizeof path)) == 0) {
                int ofd = open(path, O_RDWR | O_CLOEXEC);
                if (ofd >= 0) {
                        if (ftruncate(ofd, 0) < 0 || ftruncate(ofd, (off_t)in.disk_size) < 0)
                                r = vc_errf(-errno, "cannot empty %s: %s", path, strerror(errno));
                        close(ofd);
                }
        }
        if (release) {
                if (vc_lease_release(b, in.parcel, token) < 0)
                        vc_errclear();
                lease_token_forget(vc_backend_uuid(b), in.parcel);
        } else if (taken && r >= 0) {
                /* a lease this checkin took, and keeps: its token is this
                 * host's from now on (as vc_checkin --keep-lease does) */
                r = lease_token_save(vc_backend_uuid(b), in.parcel, token);
        }
out:
        vc_wipe(token, sizeof token);
        keys_wipe(&k);
        if (e)
                vc_wipe(e, n * sizeof *e);
        if (out)
                vc_wipe(out, n * sizeof *out);
        free(e);
        free(out);
        free(map);
        free(mach);
        free(ord);
        if (mem.fd >= 0)
                close(mem.fd);
        if (disk.fd >= 0)
                close(disk.fd);
        if (dfd >= 0)
                close(dfd);
        if (lfd >= 0)
                close(lfd);
        vc_backend_free(b);
        return r;
}
