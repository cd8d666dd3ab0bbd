/* The users file of a server (format in vc_users.h). */
#include "server/vc_users.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define USERS_MAGIC "vmcas-users 1"
#define USERS_MAX_BYTES (4u << 20)

int vc_users_default_path(const char *store, char *buf, size_t len)
{
        if (!store || !*store)
                return vc_errf(-EINVAL, "no store given: use -s PATH or set VMCAS_STORE");
        if (strstr(store, "://"))
                return vc_errf(-EINVAL, "%s keeps no users file: give --users FILE (the same file on every host "
                               "that serves the store)", store);
        return (size_t)snprintf(buf, len, "%s/users", store) < len ? 0 : -ENAMETOOLONG;
}

void vc_users_clear(VcUsers *u)
{
        if (!u)
                return;
        if (u->v)
                vc_wipe(u->v, u->n * sizeof *u->v);
        free(u->v);
        u->v = NULL;
        u->n = 0;
}

static int push(VcUsers *u, const VcUser *x)
{
        VcUser *v = realloc(u->v, (u->n + 1) * sizeof *v);
        if (!v)
                return -ENOMEM;
        u->v = v;
        u->v[u->n++] = *x;
        return 0;
}

/* One line "NAME ROLE HASH" (NUL-terminated, no newline). */
static int parse_line(const char *path, unsigned lineno, char *line, VcUser *x)
{
        char *save = NULL, *name = strtok_r(line, " \t", &save), *role = strtok_r(NULL, " \t", &save),
             *hash = strtok_r(NULL, " \t", &save);
        memset(x, 0, sizeof *x);
        if (!name || !role || !hash || strtok_r(NULL, " \t", &save) || !vc_name_valid(name) ||
            (strcmp(role, "user") != 0 && strcmp(role, "admin") != 0) || strlen(hash) != 64 ||
            vc_unhex(hash, x->hash, 32) < 0)
                return vc_errf(-EBADMSG, "users file %s, line %u: expected 'NAME user|admin SHA256HEX'", path,
                               lineno);
        snprintf(x->name, sizeof x->name, "%s", name);
        x->admin = strcmp(role, "admin") == 0;
        return 0;
}

int vc_users_load(const char *path, VcUsers *ret)
{
        struct stat st;
        memset(ret, 0, sizeof *ret);
        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return vc_errf(-ENOENT, "no users file %s: add a user first (vmcas -s STORE user add NAME)",
                                       path);
                return vc_errf(-errno, "cannot read users file %s: %s", path, strerror(errno));
        }
        if (st.st_mode & 077)
                return vc_errf(-EPERM, "users file %s may be read by others (mode %03o); run: chmod 600 %s", path,
                               (unsigned)(st.st_mode & 0777), path);
        _vc_cleanup_(vc_freep) uint8_t *buf = NULL;
        size_t n;
        int r = vc_read_file(path, &buf, &n, USERS_MAX_BYTES);
        if (r < 0)
                return vc_errf(r, "cannot read users file %s: %s", path, strerror(-r));
        char *text = malloc(n + 1);
        if (!text)
                return -ENOMEM;
        memcpy(text, buf, n);
        text[n] = 0;
        char *save = NULL, *line = strtok_r(text, "\n", &save);
        unsigned lineno = 1;
        if (!line || strcmp(line, USERS_MAGIC) != 0) {
                free(text);
                return vc_errf(-EBADMSG, "%s is not a vmcas users file (its first line is not '%s')", path,
                               USERS_MAGIC);
        }
        while (r >= 0 && (line = strtok_r(NULL, "\n", &save))) {
                lineno++;
                VcUser x;
                if (*line == '#' || *line == 0)
                        continue;
                if ((r = parse_line(path, lineno, line, &x)) < 0)
                        break;
                if (vc_users_find(ret, x.name))
                        r = vc_errf(-EBADMSG, "users file %s, line %u: user '%s' is listed twice", path, lineno,
                                    x.name);
                else
                        r = push(ret, &x);
        }
        free(text);
        if (r < 0)
                vc_users_clear(ret);
        return r;
}

const VcUser *vc_users_find(const VcUsers *u, const char *name)
{
        for (size_t i = 0; i < u->n; i++)
                if (strcmp(u->v[i].name, name) == 0)
                        return &u->v[i];
        return NULL;
}

const VcUser *vc_users_check(const VcUsers *u, const char *token_hex)
{
        uint8_t tok[VC_TOKEN_LEN], h[32];
        if (!token_hex || strlen(token_hex) != VC_TOKEN_HEX || vc_unhex(token_hex, tok, sizeof tok) < 0)
                return NULL;
        vc_sha256(tok, sizeof tok, h);
        vc_wipe(tok, sizeof tok);
        const VcUser *found = NULL;
        for (size_t i = 0; i < u->n; i++)       /* no early exit */
                if (vc_hash_eq(u->v[i].hash, h, 32))
                        found = &u->v[i];
        return found;
}

static int write_users(const char *path, const VcUsers *u)
{
        size_t cap = 32 + u->n * (VC_USER_MAX + 80), len = 0;
        _vc_cleanup_(vc_freep) char *buf = malloc(cap);
        if (!buf)
                return -ENOMEM;
        len += (size_t)snprintf(buf + len, cap - len, "%s\n", USERS_MAGIC);
        for (size_t i = 0; i < u->n; i++) {
                char hex[65];
                vc_hex(u->v[i].hash, 32, hex);
                len += (size_t)snprintf(buf + len, cap - len, "%s %s %s\n", u->v[i].name,
                                        u->v[i].admin ? "admin" : "user", hex);
        }
        int r = vc_write_file_atomic(path, buf, len, 0600);
        return r < 0 ? vc_errf(r, "cannot write users file %s: %s", path, strerror(-r)) : 0;
}

/* flock() on PATH.lock for a read-modify-write of the users file. */
static int lock_users(const char *path)
{
        char lp[4096];
        if ((size_t)snprintf(lp, sizeof lp, "%s.lock", path) >= sizeof lp)
                return -ENAMETOOLONG;
        int fd = open(lp, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
        if (fd < 0)
                return vc_errf(-errno, "cannot open %s: %s", lp, strerror(errno));
        if (flock(fd, LOCK_EX) < 0) {
                int e = errno;
                close(fd);
                return vc_errf(-e, "cannot lock %s: %s", lp, strerror(e));
        }
        return fd;
}

/* Loads the file for a change; an absent file is an empty list. */
static int load_for_change(const char *path, VcUsers *u)
{
        int r = vc_users_load(path, u);
        if (r == -ENOENT) {
                vc_errclear();
                return 0;
        }
        return r;
}

int vc_users_add(const char *path, const char *name, bool admin, char token_hex[VC_TOKEN_HEX + 1])
{
        if (!vc_name_valid(name))
                return vc_errf(-EINVAL, "invalid user name '%s' (use 1-64 letters, digits, '.', '_', '-')", name);
        int fd = lock_users(path);
        if (fd < 0)
                return fd;
        VcUsers u;
        int r = load_for_change(path, &u);
        if (r >= 0 && vc_users_find(&u, name))
                r = vc_errf(-EEXIST, "user '%s' exists (remove it first to give it a new token)", name);
        VcUser x = { .admin = admin };
        uint8_t tok[VC_TOKEN_LEN];
        snprintf(x.name, sizeof x.name, "%s", name);
        if (r >= 0 && (r = vc_random(tok, sizeof tok)) >= 0) {
                vc_sha256(tok, sizeof tok, x.hash);
                vc_hex(tok, sizeof tok, token_hex);
                vc_wipe(tok, sizeof tok);
                if ((r = push(&u, &x)) >= 0)
                        r = write_users(path, &u);
        }
        vc_users_clear(&u);
        close(fd);
        if (r < 0)
                vc_wipe(token_hex, VC_TOKEN_HEX + 1);
        return r;
}

int vc_users_remove(const char *path, const char *name)
{
        int fd = lock_users(path);
        if (fd < 0)
                return fd;
        VcUsers u;
        int r = vc_users_load(path, &u);
        if (r >= 0) {
                const VcUser *x = vc_users_find(&u, name);
                if (!x)
                        r = vc_errf(-ENOENT, "no user '%s' in %s", name, path);
                else {
                        size_t i = (size_t)(x - u.v);
                        memmove(&u.v[i], &u.v[i + 1], (u.n - i - 1) * sizeof *u.v);
                        u.n--;
                        r = write_users(path, &u);
                }
        }
        vc_users_clear(&u);
        close(fd);
        return r;
}
