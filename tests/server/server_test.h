/* Helpers of the server tests: a scratch store with users, a real
 * `vmcas serve` on 127.0.0.1 (a free port), parcel and version records
 * as a client would make them (without keys: the server never checks
 * their MACs). $VMCAS is the binary under test (tests/run.sh). */
#ifndef SERVER_TEST_H
#define SERVER_TEST_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "backend/vc_backend.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"
#include "repo/vc_repo.h"

static inline const char *vmcas_bin(void)
{
        const char *v = getenv("VMCAS");
        return v && *v ? v : "build/asan/vmcas";
}

/* Runs a shell command; returns its stdout's last line in out (if given). */
static inline int run_last_line(const char *cmd, char *out, size_t len)
{
        FILE *f = popen(cmd, "r");
        if (!f)
                return -1;
        char line[512];
        if (out)
                out[0] = 0;
        while (fgets(line, sizeof line, f))
                if (out) {
                        line[strcspn(line, "\n")] = 0;
                        size_t n = VC_MIN(strlen(line), len - 1);
                        memcpy(out, line, n);
                        out[n] = 0;
                }
        return pclose(f);
}

typedef struct TestServer {
        pid_t pid;
        unsigned port;
        char url[64];
} TestServer;

/* Starts `vmcas -s store serve --listen 127.0.0.1:0 extra...` and waits
 * (at most 30 s) for its "listening" line. */
static inline void server_start_on(TestServer *ts, const char *store, unsigned port, const char *extra)
{
        int p[2];
        assert_int_equal(pipe(p), 0);
        ts->pid = fork();
        assert_true(ts->pid >= 0);
        if (ts->pid == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);   /* no server outlives a test killed by its timeout */
                dup2(p[1], 2);
                close(p[0]);
                char cmd[4096];
                snprintf(cmd, sizeof cmd, "exec '%s' -s '%s' serve --listen 127.0.0.1:%u %s", vmcas_bin(), store,
                         port, extra ? extra : "");
                execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
                _exit(127);
        }
        close(p[1]);
        char buf[4096];
        size_t n = 0;
        double t0 = vc_mono();
        ts->port = 0;
        while (!ts->port && vc_mono() - t0 < 30) {
                struct pollfd pf = { p[0], POLLIN, 0 };
                if (poll(&pf, 1, 1000) <= 0)
                        continue;
                ssize_t k = read(p[0], buf + n, sizeof buf - 1 - n);
                if (k <= 0)
                        break;
                n += (size_t)k;
                buf[n] = 0;
                const char *l = strstr(buf, "listening on http://127.0.0.1:");
                if (l)
                        ts->port = (unsigned)atoi(l + strlen("listening on http://127.0.0.1:"));
        }
        if (!ts->port)
                fprintf(stderr, "# server said: %s\n", buf);
        assert_true(ts->port > 0);
        /* the server's later messages go to our stderr */
        if (fork() == 0) {
                prctl(PR_SET_PDEATHSIG, SIGKILL);
                close(1);
                ssize_t k;
                while ((k = read(p[0], buf, sizeof buf)) > 0)
                        if (write(2, buf, (size_t)k) < 0)
                                break;
                _exit(0);
        }
        close(p[0]);
        snprintf(ts->url, sizeof ts->url, "http://127.0.0.1:%u", ts->port);
}

static inline void server_start(TestServer *ts, const char *store, const char *extra)
{
        server_start_on(ts, store, 0, extra);
}

/* SIGTERM, and the server's exit status (0 after a clean shutdown). */
static inline int server_stop(TestServer *ts)
{
        int st = -1;
        kill(ts->pid, SIGTERM);
        for (int i = 0; i < 300; i++) {
                if (waitpid(ts->pid, &st, WNOHANG) == ts->pid)
                        return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
                struct timespec t = { 0, 100 * 1000 * 1000 };
                nanosleep(&t, NULL);
        }
        kill(ts->pid, SIGKILL);
        waitpid(ts->pid, &st, 0);
        return -1;
}

static inline VcBackend *open_as(const char *url, const char *token)
{
        VcBackendOpts o = { .no_cache = true, .token = token };
        VcBackend *b = NULL;
        int r = vc_backend_open(url, &o, &b);
        if (r < 0)
                fprintf(stderr, "# open %s: %s\n", url, vc_errmsg(r));
        assert_int_equal(r, 0);
        return b;
}

/* A parcel record of policy pol ("group" uses group g), fresh uuid. */
static inline void make_parcel(const char *name, VcPolicy pol, const char *g, uint8_t *rec, size_t *len,
                               VcParcel *ret)
{
        VcParcel p;
        memset(&p, 0, sizeof p);
        snprintf(p.name, sizeof p.name, "%s", name);
        assert_int_equal(vc_random(p.uuid, 16), 0);
        p.policy = pol;
        p.comp = VC_COMP_NONE;
        if (g)
                snprintf(p.group, sizeof p.group, "%s", g);
        p.chunk_size = 4096;
        p.mem_size = 1 << 20;
        p.disk_size = 1 << 20;
        p.created = vc_now();
        vc_parcel_domains(&p);
        assert_int_equal(vc_parcel_pack(&p, rec, VC_PARCEL_REC_MAX, len), 0);
        if (ret)
                *ret = p;
}

static inline void make_version(const VcParcel *p, uint32_t version, const uint8_t *mem_root, uint8_t *rec)
{
        VcVersion v;
        memset(&v, 0, sizeof v);
        v.version = version;
        v.timestamp = vc_now();
        memcpy(v.uuid, p->uuid, 16);
        v.mem_size = p->mem_size;
        v.disk_size = p->disk_size;
        if (mem_root)
                memcpy(v.mem_root, mem_root, 32);
        vc_version_pack(&v, rec);
}

/* A sealed-looking chunk of len bytes from seed ("VC" first, as a sealed
 * chunk starts), its tag in tag. */
static inline uint8_t *make_chunk(uint64_t seed, size_t len, uint8_t tag[32])
{
        uint8_t *d = malloc(len);
        uint64_t x = seed * 0x9E3779B97F4A7C15ull + 1;
        for (size_t i = 0; i < len; i++) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                d[i] = (uint8_t)x;
        }
        d[0] = 'V';
        d[1] = 'C';
        vc_sha256(d, len, tag);
        return d;
}

#endif
