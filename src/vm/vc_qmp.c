/* A QMP client (vc_qmp.h): newline-delimited JSON over a Unix socket. */
#include "vm/vc_qmp.h"
#include "core/vc_util.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#define LINE_MAX_QMP (1u << 20)

struct VcQmp {
        int fd;
        char *buf;
        size_t len, cap;
};

static double now(void)
{
        return vc_mono();
}

/* The next line from QEMU (NUL-terminated, in q->buf up to *n), waiting at
 * most until deadline. */
static int read_line(VcQmp *q, double deadline, char **line)
{
        for (;;) {
                char *nl = q->len ? memchr(q->buf, '\n', q->len) : NULL;
                if (nl) {
                        *nl = 0;
                        *line = strdup(q->buf);
                        size_t used = (size_t)(nl - q->buf) + 1;
                        memmove(q->buf, q->buf + used, q->len - used);
                        q->len -= used;
                        return *line ? 0 : -ENOMEM;
                }
                if (q->len == q->cap) {
                        if (q->cap >= LINE_MAX_QMP)
                                return vc_errf(-EPROTO, "QEMU sent a QMP line of more than %u bytes", LINE_MAX_QMP);
                        size_t cap = q->cap ? 2 * q->cap : 8192;
                        char *x = realloc(q->buf, cap);
                        if (!x)
                                return -ENOMEM;
                        q->buf = x;
                        q->cap = cap;
                }
                double left = deadline - now();
                if (left <= 0)
                        return vc_errf(-ETIMEDOUT, "QEMU did not answer on its QMP socket in time");
                struct pollfd p = { .fd = q->fd, .events = POLLIN };
                int pr = poll(&p, 1, (int)(left * 1000) + 1);
                if (pr < 0 && errno == EINTR)
                        continue;
                if (pr < 0)
                        return vc_errf(-errno, "waiting for QEMU: %s", strerror(errno));
                if (pr == 0)
                        continue;
                ssize_t n = read(q->fd, q->buf + q->len, q->cap - q->len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n <= 0)
                        return vc_errf(-ECONNRESET, "QEMU closed its QMP socket%s", n < 0 ? " with an error" : "");
                q->len += (size_t)n;
        }
}

static int send_json(VcQmp *q, json_t *msg)
{
        char *s = json_dumps(msg, JSON_COMPACT);
        if (!s)
                return -ENOMEM;
        size_t n = strlen(s);
        s[n] = '\n';
        /* MSG_NOSIGNAL: a QEMU that has gone is an error, not SIGPIPE */
        size_t off = 0;
        int r = 0;
        while (off < n + 1) {
                ssize_t w = send(q->fd, s + off, n + 1 - off, MSG_NOSIGNAL);
                if (w < 0 && errno == EINTR)
                        continue;
                if (w < 0) {
                        r = -errno;
                        break;
                }
                off += (size_t)w;
        }
        free(s);
        return r < 0 ? vc_errf(r, "cannot talk to QEMU: %s", strerror(-r)) : 0;
}

int vc_qmp_cmd(VcQmp *q, const char *cmd, json_t *args, double timeout, json_t **ret)
{
        json_t *msg = json_pack("{s:s}", "execute", cmd);
        if (!msg) {
                json_decref(args);
                return -ENOMEM;
        }
        if (args)
                json_object_set_new(msg, "arguments", args);
        int r = send_json(q, msg);
        json_decref(msg);
        if (r < 0)
                return r;
        double deadline = now() + timeout;
        for (;;) {
                char *line = NULL;
                if ((r = read_line(q, deadline, &line)) < 0)
                        return vc_errf_prefix(r, "QMP %s", cmd);
                json_t *j = json_loads(line, 0, NULL);
                free(line);
                if (!j || !json_is_object(j)) {
                        json_decref(j);
                        return vc_errf(-EPROTO, "QEMU answered QMP %s with something that is not JSON", cmd);
                }
                json_t *rv = json_object_get(j, "return"), *err = json_object_get(j, "error");
                if (rv) {
                        if (ret)
                                *ret = json_incref(rv);
                        json_decref(j);
                        return 0;
                }
                if (err) {
                        const char *desc = json_string_value(json_object_get(err, "desc"));
                        r = vc_errf(-EIO, "QEMU refused %s: %s", cmd, desc ? desc : "(no reason given)");
                        json_decref(j);
                        return r;
                }
                json_decref(j);        /* an event */
        }
}

int vc_qmp_connect(const char *path, double timeout, VcQmp **ret)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof a.sun_path)
                return vc_errf(-ENAMETOOLONG, "the QMP socket path '%s' is too long for a Unix socket", path);
        strcpy(a.sun_path, path);
        double deadline = now() + timeout;
        int fd = -1;
        for (;;) {
                fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
                if (fd < 0)
                        return vc_errf(-errno, "socket: %s", strerror(errno));
                if (connect(fd, (struct sockaddr *)&a, sizeof a) == 0)
                        break;
                int e = errno;
                close(fd);
                if (now() >= deadline)
                        return vc_errf(-e, "cannot reach QEMU's QMP socket %s: %s", path, strerror(e));
                struct timespec ts = { 0, 50 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        VcQmp *q = calloc(1, sizeof *q);
        if (!q) {
                close(fd);
                return -ENOMEM;
        }
        q->fd = fd;
        char *greeting = NULL;
        int r = read_line(q, deadline + 5, &greeting);
        if (r >= 0 && !strstr(greeting, "\"QMP\""))
                r = vc_errf(-EPROTO, "%s does not speak QMP", path);
        free(greeting);
        if (r >= 0)
                r = vc_qmp_cmd(q, "qmp_capabilities", NULL, 10, NULL);
        if (r < 0) {
                vc_qmp_close(q);
                return r;
        }
        *ret = q;
        return 0;
}

void vc_qmp_close(VcQmp *q)
{
        if (!q)
                return;
        close(q->fd);
        free(q->buf);
        free(q);
}

int vc_qmp_status(VcQmp *q, char *buf, size_t len)
{
        json_t *rv = NULL;
        int r = vc_qmp_cmd(q, "query-status", NULL, 10, &rv);
        if (r < 0)
                return r;
        const char *s = json_string_value(json_object_get(rv, "status"));
        snprintf(buf, len, "%s", s ? s : "unknown");
        json_decref(rv);
        return 0;
}

int vc_qmp_wait_migration(VcQmp *q, double timeout)
{
        double deadline = now() + timeout;
        for (;;) {
                json_t *rv = NULL;
                int r = vc_qmp_cmd(q, "query-migrate", NULL, 10, &rv);
                if (r < 0)
                        return r;
                const char *s = json_string_value(json_object_get(rv, "status"));
                if (s && strcmp(s, "completed") == 0) {
                        json_decref(rv);
                        return 0;
                }
                if (s && (strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0)) {
                        const char *why = json_string_value(json_object_get(rv, "error-desc"));
                        r = vc_errf(-EIO, "the migration of the device state %s%s%s", s, why ? ": " : "",
                                    why ? why : "");
                        json_decref(rv);
                        return r;
                }
                json_decref(rv);
                if (now() >= deadline)
                        return vc_errf(-ETIMEDOUT, "the migration of the device state did not finish in %.0f s "
                                       "(status %s)", timeout, s ? s : "none");
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
}
