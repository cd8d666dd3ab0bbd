#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char errbuf[VC_ERRMSG_MAX];
static _Thread_local bool errset;

static int verrf(bool replace, int err, const char *fmt, va_list ap)
{
        if (!errset || replace) {
                vsnprintf(errbuf, sizeof errbuf, fmt, ap);
                errset = true;
        }
        return err;
}

int vc_errf(int err, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        verrf(false, err, fmt, ap);
        va_end(ap);
        return err;
}

int vc_errf_replace(int err, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        verrf(true, err, fmt, ap);
        va_end(ap);
        return err;
}

int vc_errf_prefix(int err, const char *fmt, ...)
{
        char ctx[VC_ERRMSG_MAX], old[VC_ERRMSG_MAX];
        snprintf(old, sizeof old, "%s", vc_errmsg(err));
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(ctx, sizeof ctx, fmt, ap);
        va_end(ap);
        /* cut, like any message, at VC_ERRMSG_MAX - 1 bytes */
        if (snprintf(errbuf, sizeof errbuf, "%s: %s", ctx, old) < 0)
                snprintf(errbuf, sizeof errbuf, "%s", old);
        errset = true;
        return err;
}

const char *vc_errmsg(int err)
{
        if (errset)
                return errbuf;
        return strerror(err < 0 ? -err : err);
}

void vc_errclear(void)
{
        errset = false;
        errbuf[0] = 0;
}

int vc_err_save(VcErr *e, int r)
{
        if (r >= 0)
                return r;
        int empty = 0;
        if (!atomic_compare_exchange_strong_explicit(&e->state_, &empty, 1, memory_order_acquire,
                                                     memory_order_relaxed))
                return r;     /* an earlier error wins */
        e->code = r;
        if (errset)
                memcpy(e->msg, errbuf, strlen(errbuf) + 1);
        else
                e->msg[0] = 0;
        atomic_store_explicit(&e->state_, 2, memory_order_release);
        return r;
}

int vc_err_raise(const VcErr *e)
{
        int st;
        /* a save in progress is a copy of at most VC_ERRMSG_MAX bytes */
        while ((st = atomic_load_explicit(&e->state_, memory_order_acquire)) == 1)
                sched_yield();
        if (st == 0)
                return 0;
        if (e->msg[0]) {
                memcpy(errbuf, e->msg, strnlen(e->msg, sizeof e->msg - 1));
                errbuf[strnlen(e->msg, sizeof e->msg - 1)] = 0;
                errset = true;
        } else
                vc_errclear();
        return e->code;
}

bool vc_err_failed(const VcErr *e)
{
        return atomic_load_explicit(&e->state_, memory_order_acquire) != 0;
}

void vc_err_clear(VcErr *e)
{
        e->code = 0;
        e->msg[0] = 0;
        atomic_store_explicit(&e->state_, 0, memory_order_relaxed);
}

int vc_parse_u64(const char *s, const char *what, uint64_t *ret)
{
        if (!s || !*s || *s == '-' || *s == '+' || *s == ' ')
                return vc_errf(-EINVAL, "invalid %s: '%s' (expected a whole number)", what, s ? s : "");
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno || *end)
                return vc_errf(-EINVAL, "invalid %s: '%s' (expected a whole number)", what, s);
        *ret = v;
        return 0;
}

int vc_parse_size(const char *s, const char *what, uint64_t *ret)
{
        if (!s || !*s || !(*s >= '0' && *s <= '9'))
                goto bad;
        errno = 0;
        char *end;
        unsigned long long v = strtoull(s, &end, 10);
        if (errno)
                goto bad;
        unsigned shift = 0;
        switch (*end) {
        case 0: break;
        case 'k': case 'K': shift = 10; break;
        case 'm': case 'M': shift = 20; break;
        case 'g': case 'G': shift = 30; break;
        case 't': case 'T': shift = 40; break;
        case 'b': case 'B': if (end[1] == 0) { end++; break; } goto bad;
        default: goto bad;
        }
        if (shift) {
                end++;
                if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "ib") == 0)
                        end += strlen(end);
        }
        if (*end)
                goto bad;
        if (shift && v > (UINT64_MAX >> shift))
                goto bad;
        *ret = (uint64_t)v << shift;
        return 0;
bad:
        return vc_errf(-EINVAL, "invalid %s: '%s' (expected a size such as 4096, 4K, 64KiB, 1M or 2G)",
                       what, s ? s : "");
}

const char *vc_fmt_size(uint64_t n, char *buf, size_t len)
{
        static const char *units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
        double v = (double)n;
        unsigned u = 0;
        while (v >= 1024 && u + 1 < VC_ARRAY_SIZE(units)) {
                v /= 1024;
                u++;
        }
        if (u == 0)
                snprintf(buf, len, "%" PRIu64 " B", n);
        else
                snprintf(buf, len, v < 10 ? "%.2f %s" : v < 100 ? "%.1f %s" : "%.0f %s", v, units[u]);
        return buf;
}

void vc_hex(const uint8_t *in, size_t n, char *out)
{
        static const char d[] = "0123456789abcdef";
        for (size_t i = 0; i < n; i++) {
                out[2 * i] = d[in[i] >> 4];
                out[2 * i + 1] = d[in[i] & 15];
        }
        out[2 * n] = 0;
}

static int hexval(char c)
{
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
        return -1;
}

int vc_unhex(const char *in, uint8_t *out, size_t n)
{
        if (strlen(in) != 2 * n)
                return -EINVAL;
        for (size_t i = 0; i < n; i++) {
                int a = hexval(in[2 * i]), b = hexval(in[2 * i + 1]);
                if (a < 0 || b < 0)
                        return -EINVAL;
                out[i] = (uint8_t)(a << 4 | b);
        }
        return 0;
}

void vc_wipe(void *p, size_t n)
{
        /* a memset the compiler may not drop (a volatile byte loop was a
         * quarter of reading a keyring) */
        if (p)
                explicit_bzero(p, n);
}

int vc_write_full(int fd, const void *buf, size_t n)
{
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t)k;
        }
        return 0;
}

int vc_pwrite_full(int fd, const void *buf, size_t n, off_t off)
{
        const uint8_t *p = buf;
        while (n > 0) {
                ssize_t k = pwrite(fd, p, n, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                p += k;
                n -= (size_t)k;
                off += k;
        }
        return 0;
}

int vc_pread_full(int fd, void *buf, size_t n, off_t off)
{
        uint8_t *p = buf;
        while (n > 0) {
                ssize_t k = pread(fd, p, n, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                p += k;
                n -= (size_t)k;
                off += k;
        }
        return 0;
}

int vc_fsync_dir(const char *dir)
{
        int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        int r = fsync(fd) < 0 ? -errno : 0;
        close(fd);
        return r;
}

int vc_write_file_atomic(const char *path, const void *buf, size_t n, mode_t mode)
{
        char tmp[PATH_MAX], dir[PATH_MAX];
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
                return -ENAMETOOLONG;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
        if (fd < 0)
                return -errno;
        int r = vc_write_full(fd, buf, n);
        if (r == 0 && fsync(fd) < 0)
                r = -errno;
        close(fd);
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return r;
        }
        snprintf(dir, sizeof dir, "%s", path);
        char *slash = strrchr(dir, '/');
        if (slash) {
                if (slash == dir)
                        slash[1] = 0;
                else
                        *slash = 0;
        } else
                strcpy(dir, ".");
        return vc_fsync_dir(dir);
}

int vc_read_file(const char *path, uint8_t **ret, size_t *ret_len, size_t max)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;
        struct stat st;
        if (fstat(fd, &st) < 0) {
                int r = -errno;
                close(fd);
                return r;
        }
        if ((uint64_t)st.st_size > max) {
                close(fd);
                return -EFBIG;
        }
        size_t n = (size_t)st.st_size;
        uint8_t *buf = malloc(n + 1);
        if (!buf) {
                close(fd);
                return -ENOMEM;
        }
        int r = vc_pread_full(fd, buf, n, 0);
        close(fd);
        if (r < 0) {
                free(buf);
                return r;
        }
        buf[n] = 0;
        *ret = buf;
        *ret_len = n;
        return 0;
}

int vc_mkdir_p(const char *path, mode_t mode)
{
        char buf[PATH_MAX];
        if ((size_t)snprintf(buf, sizeof buf, "%s", path) >= sizeof buf)
                return -ENAMETOOLONG;
        for (char *p = buf + 1; *p; p++) {
                if (*p != '/')
                        continue;
                *p = 0;
                if (mkdir(buf, mode) < 0 && errno != EEXIST)
                        return -errno;
                *p = '/';
        }
        if (mkdir(buf, mode) < 0 && errno != EEXIST)
                return -errno;
        return 0;
}

int64_t vc_now(void)
{
        return (int64_t)time(NULL);
}

double vc_mono(void)
{
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

void vc_freep(void *p)
{
        free(*(void **)p);
}

void vc_closep(int *fd)
{
        if (*fd >= 0)
                close(*fd);
}

void vc_progress_init(VcProgress *p, const char *what, uint64_t total, bool quiet)
{
        const char *env = getenv("VMCAS_PROGRESS");
        p->what = what;
        p->total = total;
        p->start = p->last = vc_mono();
        p->done = 0;
        p->enabled = !quiet && (env ? strcmp(env, "0") != 0 : isatty(2));
}

static void progress_draw(VcProgress *p, uint64_t done, double now, bool final)
{
        char a[32], b[32], c[32];
        double el = now - p->start;
        double rate = el > 0 ? (double)done / el : 0;
        vc_fmt_size(done, a, sizeof a);
        vc_fmt_size((uint64_t)rate, c, sizeof c);
        if (p->total && !final) {
                double left = rate > 0 ? (double)(p->total - VC_MIN(done, p->total)) / rate : 0;
                fprintf(stderr, "\r%s: %s of %s (%.0f%%), %s/s, %.0fs left   ", p->what, a,
                        vc_fmt_size(p->total, b, sizeof b), 100.0 * (double)done / (double)p->total, c, left);
        } else
                fprintf(stderr, "\r%s: %s, %s/s, %.1fs%s", p->what, a, c, el, final ? "          \n" : "   ");
        fflush(stderr);
}

void vc_progress(VcProgress *p, uint64_t done)
{
        p->done = done;
        if (!p->enabled)
                return;
        double now = vc_mono();
        if (now - p->last < 0.2)
                return;
        p->last = now;
        progress_draw(p, done, now, false);
}

void vc_progress_end(VcProgress *p, uint64_t done)
{
        if (!p->enabled)
                return;
        progress_draw(p, done, vc_mono(), true);
}

void vc_test_hold(const char *env)
{
        const char *path = getenv(env);
        if (!path || !*path)
                return;
        int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
        if (fd >= 0)
                close(fd);
        for (int i = 0; i < 6000 && access(path, F_OK) == 0; i++)
                usleep(10000);
}
