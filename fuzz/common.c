/* Helpers shared by the fuzz targets (fuzz.h). */
#include "fuzz.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

void fuzz_fail(const char *file, int line, const char *what)
{
        fprintf(stderr, "%s:%d: fuzz check failed: %s\n", file, line, what);
        abort();
}

void fuzz_note(const char *fmt, ...)
{
        static int verbose = -1;
        if (verbose < 0)
                verbose = getenv("FUZZ_VERBOSE") != NULL;
        if (!verbose)
                return;
        va_list ap;
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
}

uint8_t *fuzz_guarded(size_t n)
{
        uint8_t *b = malloc(n + FUZZ_GUARD);
        if (!b)
                abort();
        memset(b + n, 0xa5, FUZZ_GUARD);
        return b;
}

void fuzz_guard_check(const uint8_t *buf, size_t n)
{
        for (size_t i = 0; i < FUZZ_GUARD; i++)
                FUZZ_CHECK(buf[n + i] == 0xa5);
}

static char tmpdir[4096];
static pid_t tmpdir_pid;

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
        (void)st, (void)flag, (void)ftw;
        remove(path);
        return 0;
}

static void tmpdir_remove(void)
{
        /* Only the process that made it: a forked child must not. */
        if (tmpdir[0] && tmpdir_pid == getpid())
                nftw(tmpdir, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

const char *fuzz_tmpdir(void)
{
        if (tmpdir[0])
                return tmpdir;
        const char *base = getenv("TMPDIR");
        if (!base || !*base)
                base = "/tmp";
        snprintf(tmpdir, sizeof tmpdir, "%s/vmcas-fuzz.XXXXXX", base);
        if (!mkdtemp(tmpdir)) {
                fprintf(stderr, "fuzz: cannot make a directory in %s: %s\n", base, strerror(errno));
                abort();
        }
        tmpdir_pid = getpid();
        atexit(tmpdir_remove);
        return tmpdir;
}

void fuzz_write_file(const char *path, const void *data, size_t n, unsigned mode)
{
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, (mode_t)mode);
        if (fd < 0 || fchmod(fd, (mode_t)mode) < 0) {
                fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
                abort();
        }
        const uint8_t *p = data;
        while (n > 0) {
                ssize_t k = write(fd, p, n);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        fprintf(stderr, "fuzz: cannot write %s: %s\n", path, strerror(errno));
                        abort();
                }
                p += k;
                n -= (size_t)k;
        }
        close(fd);
}

int fuzz_memfd(const void *data, size_t n)
{
        int fd = memfd_create("fuzz", MFD_CLOEXEC);
        if (fd < 0) {
                fprintf(stderr, "fuzz: memfd_create: %s\n", strerror(errno));
                abort();
        }
        const uint8_t *p = data;
        size_t left = n;
        while (left > 0) {
                ssize_t k = write(fd, p, left);
                if (k < 0 && errno == EINTR)
                        continue;
                if (k <= 0) {
                        fprintf(stderr, "fuzz: writing a memfd: %s\n", strerror(errno));
                        abort();
                }
                p += k;
                left -= (size_t)k;
        }
        return fd;
}
