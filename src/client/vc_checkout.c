/* Checkout: authenticate the version, read its keyrings, then on every
 * core fetch runs of chunks in one batch call each, open them into a
 * buffer and write each stretch of non-zero chunks with one call. */
#include "client/vc_client_int.h"
#include "core/vc_limits.h"
#include "core/vc_pool.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

typedef struct Out {
        VcBackend *b;
        const VcParcel *p;
        const VcEntry *e;
        uint64_t n, size;
        int fd;
        int dfd;                   /* the same file with O_DIRECT, or -1 */
        const char *what;
        uint32_t version;
        int nthreads;
        uint64_t run;              /* chunks per batch call */
        VcSealer *sealers[VC_MAX_THREADS];
        uint64_t done, zero;
        VcProgress *prog;
        pthread_mutex_t lock;
        uint64_t next;             /* the next run to take (atomic) */
        uint64_t ns_get, ns_open, ns_write;     /* summed over workers (atomic; VMCAS_TIMING) */
} Out;

static uint64_t ns_since(double t)
{
        return (uint64_t)((vc_mono() - t) * 1e9);
}

typedef struct { Out *o; int tid; } OutWorker;


/* Writes buf, holding chunks [from, to) of the image, in one call. */
static int out_flush(Out *o, const uint8_t *buf, uint64_t from, uint64_t to)
{
        uint64_t cs = o->p->chunk_size;
        if (to <= from)
                return 0;
        size_t len = (size_t)(VC_MIN(to * cs, o->size) - from * cs);
        off_t off = (off_t)(from * cs);
        int r = 0;
        /* Direct I/O skips the copy into the page cache, which on this
         * kind of machine costs more CPU than decrypting, and the inode
         * lock buffered writers contend on. Offsets are chunk-aligned and
         * chunks are multiples of 4 KiB; only the image's short tail goes
         * through the page cache. */
        double t0 = vc_mono();
        size_t direct = o->dfd >= 0 ? len & ~(size_t)4095 : 0;
        if (direct) {
                r = vc_pwrite_full(o->dfd, buf, direct, off);
                if (r == -EINVAL) {       /* the file system refused: buffered from now on */
                        direct = 0;
                        r = 0;
                }
        }
        if (r == 0 && len > direct)
                r = vc_pwrite_full(o->fd, buf + direct, len - direct, off + (off_t)direct);
        if (r < 0)
                return vc_errf(r, "writing the %s image: %s", o->what, strerror(-r));
        __atomic_fetch_add(&o->ns_write, ns_since(t0), __ATOMIC_RELAXED);
        pthread_mutex_lock(&o->lock);
        o->done += len;
        vc_progress(o->prog, o->done);
        pthread_mutex_unlock(&o->lock);
        return 0;
}

typedef struct {
        Out *o;
        VcSealer *sl;
        uint8_t *buf;
        uint64_t base;             /* first chunk of the run */
        const uint64_t *pos;       /* chunk of each requested tag */
} Got;

static int got_chunk(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        Got *g = ctx;
        Out *o = g->o;
        uint64_t cs = o->p->chunk_size, i = g->pos[idx];
        size_t want = vc_chunk_len(o->size, o->p->chunk_size, i);
        double t0 = vc_mono();
        int r = vc_unseal(g->sl, data, len, o->e[i].tag, o->e[i].key, g->buf + (i - g->base) * cs, want, false);
        __atomic_fetch_add(&o->ns_open, ns_since(t0), __ATOMIC_RELAXED);
        if (r < 0) {
                char hex[65];
                vc_hex(o->e[i].tag, 32, hex);
                return vc_errf_prefix(r, "chunk %s (chunk %" PRIu64 ", offset %" PRIu64 " of the image)", hex, i,
                                      i * cs);
        }
        return 0;
}

/* Fetches and opens the chunks [b, end) into buf, then writes them. */
static int out_run(Out *o, VcSealer *sl, uint8_t *buf, uint8_t *tags, uint64_t *pos, uint64_t b, uint64_t end)
{
        uint64_t cs = o->p->chunk_size;
        size_t n = 0;
        for (uint64_t i = b; i < end; i++)
                if (!vc_entry_is_zero(&o->e[i])) {
                        memcpy(tags + 32 * n, o->e[i].tag, 32);
                        pos[n++] = i;
                }
        Got g = { o, sl, buf, b, pos };
        double t0 = vc_mono();
        int r = vc_chunks_get(o->b, o->p->name, o->p->data_dom, tags, n, got_chunk, &g);
        __atomic_fetch_add(&o->ns_get, ns_since(t0), __ATOMIC_RELAXED);
        if (r < 0)
                return vc_errf_prefix(r, "the %s image of parcel '%s' version %u", o->what, o->p->name, o->version);
        /* all-zero chunks are left as holes */
        uint64_t from = b;
        for (uint64_t i = b; i < end && r == 0; i++)
                if (vc_entry_is_zero(&o->e[i])) {
                        r = out_flush(o, buf + (from - b) * cs, from, i);
                        from = i + 1;
                }
        if (r == 0)
                r = out_flush(o, buf + (from - b) * cs, from, end);
        return r;
}

/* A worker of vc_pool_run: its error, with its message, reaches the
 * caller's thread. */
static int out_work(void *arg, int tid)
{
        OutWorker w0 = { arg, tid }, *w = &w0;
        Out *o = w->o;
        uint64_t cs = o->p->chunk_size, run = o->run;
        /* one batch call per run */
        _vc_cleanup_(vc_freep) uint8_t *buf = NULL;
        _vc_cleanup_(vc_freep) uint8_t *tags = malloc(run * 32);
        _vc_cleanup_(vc_freep) uint64_t *pos = malloc(run * sizeof *pos);
        if (posix_memalign((void **)&buf, 4096, run * cs) != 0)
                buf = NULL;
        int r = buf && tags && pos ? 0 : -ENOMEM;
        /* each takes the next run when done with its last: a worker the
         * scheduler or the link held back takes fewer (runs dealt out in
         * turn left the last worker alone for a third of a checkout) */
        for (;;) {
                uint64_t b = __atomic_fetch_add(&o->next, 1, __ATOMIC_RELAXED) * run;
                if (r != 0 || b >= o->n || vc_pool_stopping())
                        break;
                r = out_run(o, o->sealers[w->tid], buf, tags, pos, b, VC_MIN(b + run, o->n));
        }
        return r;
}

/* A second descriptor of a file for direct I/O; -1 where the file system
 * has none (tmpfs) or VMCAS_DIRECT_IO=0. */
static int open_direct(const char *path)
{
        const char *e = getenv("VMCAS_DIRECT_IO");
        if (e && strcmp(e, "0") == 0)
                return -1;
        return open(path, O_WRONLY | O_DIRECT | O_CLOEXEC);
}

static int tmp_beside(const char *path, char *tmp, size_t len, int *fd)
{
        struct stat st;
        if (stat(path, &st) == 0 && !S_ISREG(st.st_mode))
                return vc_errf(-EINVAL, "'%s' exists and is not a regular file", path);
        if ((size_t)snprintf(tmp, len, "%s.vmcas-XXXXXX", path) >= len)
                return -ENAMETOOLONG;
        *fd = mkostemp(tmp, O_CLOEXEC);
        if (*fd < 0)
                return vc_errf(-errno, "cannot create a file beside '%s': %s", path, strerror(errno));
        fchmod(*fd, 0600);
        return 0;
}

static int write_image(Out *o, const VcParcel *p, const Keys *k)
{
        int r;
        if (ftruncate(o->fd, (off_t)o->size) < 0)
                return vc_errf(-errno, "cannot size the %s image: %s", o->what, strerror(errno));
        for (int i = 0; i < o->nthreads; i++) {
                if ((r = sealer_for(p, k, &o->sealers[i])) < 0)
                        return r;
        }
        if ((r = vc_pool_run(o->nthreads, out_work, o)) < 0)
                return r;
        if ((o->dfd >= 0 && fsync(o->dfd) < 0) || fsync(o->fd) < 0)
                return vc_errf(-errno, "fsync of the %s image: %s", o->what, strerror(errno));
        return 0;
}

static void fsync_parent(const char *path)
{
        char dir[PATH_MAX];
        snprintf(dir, sizeof dir, "%s", path);
        char *sl = strrchr(dir, '/');
        vc_fsync_dir(sl ? (sl == dir ? "/" : (*sl = 0, dir)) : ".");
}

/* Workers of a checkout: each waits for its reads and writes, so at least
 * four keep the cores busy (packs not in the page cache are read with
 * direct I/O, which takes no CPU while it waits); over a network eight,
 * each waiting for its run of chunks while the others open theirs. */
static int out_threads(int nth, bool local)
{
        return VC_MIN(VC_THREADS_MAX, VC_MAX(local ? 4 : 8, nth));
}

/* Takes the lease for this host and remembers its token. */
int checkout_file(VcBackend *b, const VcParcel *p, const Keys *k, uint32_t version, const VcEntry *e, uint64_t n,
                  uint64_t size, const char *path, const char *what, bool quiet)
{
        char tmp[PATH_MAX];
        int fd = -1, nth = vc_threads();
        if (nth < 0)
                return nth;
        int r = tmp_beside(path, tmp, sizeof tmp, &fd);
        if (r < 0)
                return r;
        VcProgress prog;
        vc_progress_init(&prog, "checkout", size, quiet);
        bool local = strcmp(vc_backend_kind(b), "local") == 0;
        uint64_t run = VC_MAX(1, (local ? 1u << 20 : 8u << 20) / p->chunk_size);
        nth = out_threads(nth, local);
        Out o = { .b = b, .p = p, .e = e, .n = n, .size = size, .fd = fd, .what = what, .version = version,
                  .nthreads = nth, .run = run, .prog = &prog, .dfd = open_direct(tmp) };
        pthread_mutex_init(&o.lock, NULL);
        r = write_image(&o, p, k);
        pthread_mutex_destroy(&o.lock);
        for (int i = 0; i < VC_MAX_THREADS; i++)
                vc_sealer_free(o.sealers[i]);
        if (o.dfd >= 0)
                close(o.dfd);
        close(fd);
        if (r >= 0) {
                vc_progress_end(&prog, o.done);
                if (rename(tmp, path) < 0)
                        r = vc_errf(-errno, "cannot move the %s image into place: %s", what, strerror(errno));
                else
                        fsync_parent(path);
        }
        if (r < 0)
                unlink(tmp);
        return r;
}

int take_lease(VcBackend *b, const char *name)
{
        VcLease ls;
        int r = vc_lease_acquire(b, name, vc_host_name(), &ls);
        if (r < 0)
                return r;
        r = lease_token_save(vc_backend_uuid(b), name, ls.token);
        vc_wipe(&ls, sizeof ls);
        return r;
}

int vc_checkout(VcBackend *b, const char *name, uint32_t version, const char *mem_path, const char *disk_path,
                const VcCheckoutOpts *opt, VcCheckoutStats *st)
{
        VcParcel p;
        VcVersion v;
        Keys k = { 0 };
        VcEntry *em = NULL, *ed = NULL, rm, rd;
        uint64_t nm = 0, nd = 0;
        char tm[PATH_MAX] = "", td[PATH_MAX] = "";
        int fm = -1, fdd = -1;
        VcProgress prog;
        VcTraffic tr0, tr1;
        double t0 = vc_mono();
        Out om = { .dfd = -1 }, od = { .dfd = -1 };
        memset(st, 0, sizeof *st);
        /* a bad VMCAS_THREADS is refused before anything is read or written */
        int nth = vc_threads();
        if (nth < 0)
                return nth;
        vc_backend_traffic(b, &tr0);
        int r = parcel_open(b, name, &p, &k);
        if (r < 0)
                return r;
        if (p.latest == 0 && version == 0) {
                r = vc_errf(-ENOENT, "parcel '%s' has no version yet", name);
                goto out;
        }
        if ((r = version_open(b, &p, &k, version ? version : p.latest, &v, &rm, &rd)) < 0 ||
            (r = read_entries(b, &p, &k, &v, &rm, &rd, &em, &nm, &ed, &nd)) < 0)
                goto out;
        double t_keys = vc_mono();
        if (!opt->no_lease && (r = take_lease(b, name)) < 0)
                goto out;
        if ((r = tmp_beside(mem_path, tm, sizeof tm, &fm)) < 0 || (r = tmp_beside(disk_path, td, sizeof td, &fdd)) < 0)
                goto out;
        vc_progress_init(&prog, "checkout", v.mem_size + v.disk_size, opt->quiet);
        /* a remote back end: larger runs and more threads, to keep the
         * link busy while chunks are opened */
        bool local = strcmp(vc_backend_kind(b), "local") == 0;
        uint64_t run = VC_MAX(1, (local ? 1u << 20 : 8u << 20) / p.chunk_size);
        nth = out_threads(nth, local);
        om = (Out){ .b = b, .p = &p, .e = em, .n = nm, .size = v.mem_size, .fd = fm, .what = "memory",
                    .version = v.version, .nthreads = nth, .run = run, .prog = &prog, .dfd = open_direct(tm) };
        od = (Out){ .b = b, .p = &p, .e = ed, .n = nd, .size = v.disk_size, .fd = fdd, .what = "disk",
                    .version = v.version, .nthreads = nth, .run = run, .prog = &prog, .dfd = open_direct(td) };
        pthread_mutex_init(&om.lock, NULL);
        pthread_mutex_init(&od.lock, NULL);
        r = write_image(&om, &p, &k);
        if (r >= 0) {
                od.done = om.done;
                r = write_image(&od, &p, &k);
        }
        pthread_mutex_destroy(&om.lock);
        pthread_mutex_destroy(&od.lock);
        if (r < 0)
                goto out;
        vc_progress_end(&prog, od.done);
        if (getenv("VMCAS_TIMING")) {
                fprintf(stderr, "checkout timing (%d workers): record and keyrings %.3f s, images %.3f s\n", nth,
                        t_keys - t0, vc_mono() - t_keys);
                fprintf(stderr, "  workers (summed): batch gets %.3f s (of which opening chunks %.3f s), "
                        "writing the images %.3f s\n", (om.ns_get + od.ns_get) / 1e9,
                        (om.ns_open + od.ns_open) / 1e9, (om.ns_write + od.ns_write) / 1e9);
        }
        /* both images complete: only now replace the targets */
        if (rename(tm, mem_path) < 0 || rename(td, disk_path) < 0) {
                r = vc_errf(-errno, "cannot move the images into place: %s", strerror(errno));
                goto out;
        }
        tm[0] = td[0] = 0;
        fsync_parent(mem_path);
        fsync_parent(disk_path);
        st->version = v.version;
        st->chunks = nm + nd;
        for (uint64_t i = 0; i < nm; i++)
                st->zero_chunks += vc_entry_is_zero(&em[i]);
        for (uint64_t i = 0; i < nd; i++)
                st->zero_chunks += vc_entry_is_zero(&ed[i]);
        st->bytes_out = v.mem_size + v.disk_size;
out:
        for (int i = 0; i < VC_MAX_THREADS; i++) {
                vc_sealer_free(om.sealers[i]);
                vc_sealer_free(od.sealers[i]);
        }
        if (fm >= 0)
                close(fm);
        if (fdd >= 0)
                close(fdd);
        if (om.dfd >= 0)
                close(om.dfd);
        if (od.dfd >= 0)
                close(od.dfd);
        if (tm[0])
                unlink(tm);
        if (td[0])
                unlink(td);
        vc_wipe(&rm, sizeof rm);
        vc_wipe(&rd, sizeof rd);
        keys_wipe(&k);
        free(em);
        free(ed);
        st->seconds = vc_mono() - t0;
        vc_backend_traffic(b, &tr1);
        vc_traffic_since(&tr0, &tr1, &st->traffic);
        return r < 0 ? r : 0;
}
