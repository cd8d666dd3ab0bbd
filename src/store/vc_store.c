/* vc_store — opening a store, its domains, reading chunks, stat, locks. */
#include "store/vc_store_int.h"
#include "core/vc_util.h"
#include "core/vc_hash.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* ---- small text records: the marker and the domain files --------------------
 * Lines of "key value" text (a person can read them with cat), the last
 * line "crc32 <8 hex digits>" over every byte before it, so a damaged or
 * half-written file is told apart from a valid one. */

#define VC_TEXTREC_MAX 4096

static int textrec_write(const char *path, const char *body)
{
        char buf[VC_TEXTREC_MAX];
        size_t n = strlen(body);
        uint32_t c = (uint32_t)crc32(crc32(0L, Z_NULL, 0), (const Bytef *)body, (uInt)n);
        if ((size_t)snprintf(buf, sizeof buf, "%scrc32 %08" PRIx32 "\n", body, c) >= sizeof buf)
                return -ENAMETOOLONG;
        return vc_write_file_atomic(path, buf, strlen(buf), 0644);
}

/* Reads path and checks its crc32 line; *ret gets the text before it,
 * NUL-terminated (caller frees). -ENOENT, -EBADMSG. */
static int textrec_read(const char *path, char **ret)
{
        uint8_t *buf;
        size_t n;
        int r = vc_read_file(path, &buf, &n, VC_TEXTREC_MAX);
        if (r < 0)
                return r;
        char *text = (char *)buf;
        if (n < 16 || text[n - 1] != '\n' || strlen(text) != n) {
                free(buf);
                return -EBADMSG;
        }
        text[n - 1] = 0;
        char *last = strrchr(text, '\n');
        size_t body = last ? (size_t)(last - text) + 1 : 0;
        unsigned c;
        char tail;
        if (!last || sscanf(last + 1, "crc32 %8x%c", &c, &tail) != 1 || strlen(last + 1) != 14 ||
            (uint32_t)crc32(crc32(0L, Z_NULL, 0), buf, (uInt)body) != c) {
                free(buf);
                return -EBADMSG;
        }
        text[body] = 0;
        *ret = text;
        return 0;
}

/* Splits off the next line of *p (without its newline). */
static char *next_line(char **p)
{
        char *l = *p;
        if (!l || !*l)
                return NULL;
        char *nl = strchr(l, '\n');
        if (nl) {
                *nl = 0;
                *p = nl + 1;
        } else
                *p = l + strlen(l);
        return l;
}

/* Reads the "format N" line after the magic line. -EPROTO if N is not ours. */
static int textrec_header(char **p, const char *magic, const char *path)
{
        char *l = next_line(p);
        if (!l || strcmp(l, magic) != 0)
                return -EBADMSG;
        l = next_line(p);
        unsigned fmt;
        char tail;
        if (!l || sscanf(l, "format %u%c", &fmt, &tail) != 1)
                return -EBADMSG;
        if (fmt == 1)
                return vc_errf(-EPROTO, "'%s' has format 1, written by vmcas 0.1, whose parcel records are not "
                               "authenticated; this vmcas reads format %d only: check the versions out with "
                               "vmcas 0.1 and in to a new store", path, VC_STORE_FORMAT);
        if (fmt != VC_STORE_FORMAT)
                return vc_errf(-EPROTO, "'%s' has format %u; this vmcas reads format %d", path, fmt,
                               VC_STORE_FORMAT);
        return 0;
}

/* ---- create / open ----------------------------------------------------------- */

static int marker_path(const char *store, char *buf, size_t len)
{
        if ((size_t)snprintf(buf, len, "%s/" VC_MARKER_NAME, store) >= len)
                return vc_errf(-ENAMETOOLONG, "store path '%s' is too long", store);
        return 0;
}

static int dir_is_empty(const char *path)
{
        DIR *d = opendir(path);
        if (!d)
                return -errno;
        struct dirent *e;
        int r = 1;
        while ((e = readdir(d)))
                if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0) {
                        r = 0;
                        break;
                }
        closedir(d);
        return r;
}

static int make_subdirs(const char *path)
{
        static const char *const sub[] = { "index", "packs", "locks" };
        char p[PATH_MAX];
        for (size_t i = 0; i < VC_ARRAY_SIZE(sub); i++) {
                if ((size_t)snprintf(p, sizeof p, "%s/%s", path, sub[i]) >= sizeof p)
                        return vc_errf(-ENAMETOOLONG, "store path '%s' is too long", path);
                int r = vc_mkdir_p(p, 0755);
                if (r < 0)
                        return vc_errf(r, "cannot create '%s': %s", p, strerror(-r));
        }
        return 0;
}

int vc_store_create(const char *path)
{
        char marker[PATH_MAX], idx[PATH_MAX];
        struct stat st;
        int r = marker_path(path, marker, sizeof marker);
        if (r < 0)
                return r;
        if (stat(path, &st) == 0) {
                if (!S_ISDIR(st.st_mode))
                        return vc_errf(-EEXIST, "'%s' exists and is not a directory", path);
                if (access(marker, F_OK) == 0)
                        return vc_errf(-EEXIST, "'%s' already holds a vmcas store", path);
                r = dir_is_empty(path);
                if (r < 0)
                        return vc_errf(r, "cannot read '%s': %s", path, strerror(-r));
                if (r == 0)
                        return vc_errf(-EEXIST, "'%s' is not empty; a new store needs an empty or new directory",
                                       path);
        } else if (errno != ENOENT)
                return vc_errf(-errno, "cannot create a store at '%s': %s", path, strerror(errno));

        r = vc_mkdir_p(path, 0755);
        if (r < 0)
                return vc_errf(r, "cannot create '%s': %s", path, strerror(-r));
        r = make_subdirs(path);
        if (r < 0)
                return r;

        VcDb *db;
        snprintf(idx, sizeof idx, "%s/index", path);
        r = vc_db_open(idx, VC_DB_CREATE, &db);
        if (r < 0)
                return r;
        vc_db_unref(db);

        uint8_t uuid[VC_UUID_LEN];
        char hex[2 * VC_UUID_LEN + 1], body[256];
        r = vc_random(uuid, sizeof uuid);
        if (r < 0)
                return vc_errf(r, "cannot get random bytes for the store id");
        vc_hex(uuid, sizeof uuid, hex);
        snprintf(body, sizeof body, VC_MARKER_MAGIC "\nformat %d\nuuid %s\n", VC_STORE_FORMAT, hex);
        /* The marker comes last: a directory is a store once it is whole. */
        r = textrec_write(marker, body);
        if (r < 0)
                return vc_errf(r, "cannot write '%s': %s", marker, strerror(-r));
        return 0;
}

static int read_marker(const char *path, uint8_t uuid[VC_UUID_LEN])
{
        char marker[PATH_MAX];
        int r = marker_path(path, marker, sizeof marker);
        if (r < 0)
                return r;
        char *text, *p;
        r = textrec_read(marker, &text);
        if (r == -ENOENT)
                return vc_errf(-EINVAL, "'%s' is not a vmcas store (no " VC_MARKER_NAME " file; run 'vmcas init')",
                               path);
        if (r == -EBADMSG)
                return vc_errf(-EBADMSG, "'%s' is damaged (checksum mismatch)", marker);
        if (r < 0)
                return vc_errf(r, "cannot read '%s': %s", marker, strerror(-r));
        p = text;
        r = textrec_header(&p, VC_MARKER_MAGIC, path);
        char *l = next_line(&p);
        if (r == 0 && (!l || strncmp(l, "uuid ", 5) != 0 || vc_unhex(l + 5, uuid, VC_UUID_LEN) < 0))
                r = -EBADMSG;
        free(text);
        if (r == -EBADMSG)
                return vc_errf(-EBADMSG, "'%s' is malformed", marker);
        return r;
}

static int store_open(const char *path, bool repair, VcStore **ret)
{
        struct stat st;
        if (stat(path, &st) < 0) {
                if (errno == ENOENT)
                        return vc_errf(-ENOENT, "'%s' does not exist (run 'vmcas init' to create a store)", path);
                return vc_errf(-errno, "cannot open the store '%s': %s", path, strerror(errno));
        }
        if (!S_ISDIR(st.st_mode))
                return vc_errf(-EINVAL, "'%s' is not a vmcas store (not a directory)", path);
        uint8_t uuid[VC_UUID_LEN];
        int r = read_marker(path, uuid);
        if (r < 0)
                return r;
        /* A lost directory is made again; an index lost with it is refused
         * below, and made anew only for a repair. */
        r = make_subdirs(path);
        if (r < 0)
                return r;

        VcStore *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        s->path = strdup(path);
        if (!s->path) {
                free(s);
                return -ENOMEM;
        }
        memcpy(s->uuid, uuid, sizeof uuid);
        for (size_t i = 0; i < VC_FD_CACHE; i++)
                s->fds[i].fd = -1;
        pthread_mutex_init(&s->fd_lock, NULL);
        char idx[PATH_MAX];
        snprintf(idx, sizeof idx, "%s/index", path);
        r = vc_db_open(idx, VC_DB_EXISTING, &s->db);
        if (r < 0 && repair) {
                if (r == -ENODATA) {
                        /* Nothing to keep: an empty index to rebuild into. */
                        vc_errclear();
                        r = vc_db_open(idx, VC_DB_CREATE, &s->db);
                        s->index_new = r == 0;
                } else if (r == -EBADMSG || r == -EPROTO) {
                        /* Left alone: reindex moves it aside. */
                        s->index_err = r;
                        s->index_msg = strdup(vc_errmsg(r));
                        vc_errclear();
                        r = s->index_msg ? 0 : -ENOMEM;
                }
        }
        if (r < 0) {
                vc_store_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

int vc_store_open(const char *path, VcStore **ret)
{
        return store_open(path, false, ret);
}

int vc_store_open_repair(const char *path, VcStore **ret)
{
        return store_open(path, true, ret);
}

void vc_store_free(VcStore *s)
{
        if (!s)
                return;
        for (size_t i = 0; i < VC_FD_CACHE; i++)
                if (s->fds[i].fd >= 0)
                        close(s->fds[i].fd);
        pthread_mutex_destroy(&s->fd_lock);
        vc_db_unref(s->db);
        free(s->index_msg);
        free(s->path);
        free(s);
}

int vc_store_set_volatile(VcStore *s)
{
        s->no_sync = true;
        return s->db ? vc_db_set_nosync(s->db) : 0;
}

const char *vc_store_path(const VcStore *s)
{
        return s->path;
}

const uint8_t *vc_store_uuid(const VcStore *s)
{
        return s->uuid;
}

/* ---- domains ---------------------------------------------------------------------
 * Table keys: 'n' name -> id u64; 'i' id BE64 -> name; 'c' -> next id u64.
 * Each domain also has STORE/packs/<id>/domain naming it, so that reindex
 * can recover the names if the index is lost. */

#define VC_DOMAIN_NAME_MAX 79   /* VcDomainStat.name holds 80 */

static int domain_name_check(const char *name)
{
        size_t n = strlen(name);
        if (n == 0 || n > VC_DOMAIN_NAME_MAX)
                return vc_errf(-EINVAL, "invalid domain name '%s' (1 to %d characters)", name, VC_DOMAIN_NAME_MAX);
        for (size_t i = 0; i < n; i++)
                if ((unsigned char)name[i] < 0x21 || (unsigned char)name[i] > 0x7e)
                        return vc_errf(-EINVAL, "invalid domain name '%s' (printable characters, no spaces)", name);
        return 0;
}

static int domain_file_path(const VcStore *s, uint64_t id, char *buf, size_t len)
{
        if ((size_t)snprintf(buf, len, "%s/packs/%" PRIu64 "/domain", s->path, id) >= len)
                return -ENAMETOOLONG;
        return 0;
}

int vc_domain_file_read(const VcStore *s, uint64_t domain, char *name, size_t len)
{
        char path[PATH_MAX], *text, *p;
        int r = domain_file_path(s, domain, path, sizeof path);
        if (r < 0)
                return r;
        r = textrec_read(path, &text);
        if (r < 0)
                return r;
        p = text;
        r = textrec_header(&p, VC_DOMAIN_MAGIC, path);
        char *lid = next_line(&p), *lname = next_line(&p);
        uint64_t id;
        if (r == 0 && (!lid || strncmp(lid, "id ", 3) != 0 || vc_parse_u64(lid + 3, "id", &id) < 0 || id != domain ||
                       !lname || strncmp(lname, "name ", 5) != 0 || strlen(lname + 5) >= len))
                r = -EBADMSG;
        if (r == 0)
                strcpy(name, lname + 5);
        free(text);
        return r;
}

int vc_domain_file_write(const VcStore *s, uint64_t id, const char *name)
{
        char dir[PATH_MAX], path[PATH_MAX], body[256], packs[PATH_MAX];
        int r = vc_domain_dir(s, id, dir, sizeof dir);
        if (r < 0)
                return r;
        r = vc_mkdir_p(dir, 0755);
        if (r < 0)
                return vc_errf(r, "cannot create '%s': %s", dir, strerror(-r));
        domain_file_path(s, id, path, sizeof path);
        snprintf(body, sizeof body, VC_DOMAIN_MAGIC "\nformat %d\nid %" PRIu64 "\nname %s\n", VC_STORE_FORMAT, id,
                 name);
        r = textrec_write(path, body);
        if (r < 0)
                return vc_errf(r, "cannot write '%s': %s", path, strerror(-r));
        snprintf(packs, sizeof packs, "%s/packs", s->path);
        return vc_fsync_dir(packs);
}

int vc_domain_lookup(VcTxn *t, const char *name, uint64_t *ret)
{
        size_t n = strlen(name);
        uint8_t k[1 + VC_DOMAIN_NAME_MAX] = { 'n' };
        memcpy(k + 1, name, n);
        const void *v;
        size_t vl;
        int r = vc_db_get(t, VC_DB_DOMAINS, k, 1 + n, &v, &vl);
        if (r == -EBADMSG)
                return vc_db_damaged(VC_DB_DOMAINS, k, 1 + n);
        if (r < 0)
                return r;
        if (vl != 8)
                return vc_errf(-EBADMSG, "domain record of '%s' is malformed", name);
        *ret = vc_get64(v);
        return 0;
}

int vc_txn_domain(VcTxn *t, const char *name, uint64_t *ret)
{
        if (domain_name_check(name) < 0)
                return -EINVAL;
        return vc_domain_lookup(t, name, ret);
}

int vc_domain_register(VcTxn *t, uint64_t id, const char *name, bool by_name)
{
        size_t n = strlen(name);
        uint8_t kn[1 + VC_DOMAIN_NAME_MAX] = { 'n' }, ki[9] = { 'i' }, v[8];
        memcpy(kn + 1, name, n);
        vc_put64be(ki + 1, id);
        vc_put64(v, id);
        int r = by_name ? vc_db_put(t, VC_DB_DOMAINS, kn, 1 + n, v, 8) : 0;
        if (r < 0)
                return r;
        return vc_db_put(t, VC_DB_DOMAINS, ki, sizeof ki, name, n);
}

int vc_domain_next_id(VcTxn *t, uint64_t *ret)
{
        const void *v;
        size_t vl;
        int r = vc_db_get(t, VC_DB_DOMAINS, "c", 1, &v, &vl);
        if (r == -ENOENT) {
                *ret = 1;
                return 0;
        }
        if (r == -EBADMSG)
                return vc_db_damaged(VC_DB_DOMAINS, "c", 1);
        if (r < 0)
                return r;
        if (vl != 8)
                return vc_errf(-EBADMSG, "domain counter is malformed");
        *ret = vc_get64(v);
        return 0;
}

int vc_domain_set_next_id(VcTxn *t, uint64_t next)
{
        uint8_t v[8];
        vc_put64(v, next);
        return vc_db_put(t, VC_DB_DOMAINS, "c", 1, v, 8);
}

int vc_store_domain(VcStore *s, const char *name, bool create, uint64_t *ret_id)
{
        int r = domain_name_check(name);
        if (r < 0)
                return r;
        uint64_t id;
        {
                _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
                r = vc_txn_begin(s, false, &t);
                if (r < 0)
                        return r;
                r = vc_domain_lookup(t, name, &id);
        }
        if (r == 0) {
                *ret_id = id;
                return 0;
        }
        if (r != -ENOENT)
                return r;
        if (!create)
                return vc_errf(-ENOENT, "no domain '%s' in the store", name);

        VcTxn *t;
        r = vc_txn_begin(s, true, &t);
        if (r < 0)
                return r;
        r = vc_domain_lookup(t, name, &id);        /* created meanwhile? */
        if (r == 0) {
                vc_txn_abort(t);
                *ret_id = id;
                return 0;
        }
        if (r == -ENOENT)
                r = vc_domain_next_id(t, &id);
        /* After a lost index the counter restarts; never hand out the id of
         * a directory that holds another domain's packs (privacy domains
         * must stay apart). A directory naming this domain is taken back. */
        for (; r == 0; id++) {
                char other[VC_DOMAIN_NAME_MAX + 1];
                int q = vc_domain_file_read(s, id, other, sizeof other);
                if (q == -ENOENT || (q == 0 && strcmp(other, name) == 0))
                        break;
        }
        if (r == 0)
                r = vc_domain_file_write(s, id, name);
        if (r == 0)
                r = vc_domain_register(t, id, name, true);
        if (r == 0)
                r = vc_domain_set_next_id(t, id + 1);
        if (r < 0) {
                vc_txn_abort(t);
                return r;
        }
        r = vc_txn_commit(t);
        if (r < 0)
                return r;
        *ret_id = id;
        return 0;
}

static int domain_name_get(VcTxn *t, uint64_t id, const void **v, size_t *vl)
{
        uint8_t k[9] = { 'i' };
        vc_put64be(k + 1, id);
        int r = vc_db_get(t, VC_DB_DOMAINS, k, sizeof k, v, vl);
        if (r == -ENOENT)
                return vc_errf(-ENOENT, "no domain with id %" PRIu64 " in the store", id);
        if (r == -EBADMSG)
                return vc_db_damaged(VC_DB_DOMAINS, k, sizeof k);
        return r;
}

int vc_domain_exists(VcTxn *t, uint64_t id)
{
        const void *v;
        size_t vl;
        return domain_name_get(t, id, &v, &vl);
}

int vc_store_domain_name(VcStore *s, uint64_t id, char *buf, size_t len)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        const void *v;
        size_t vl;
        r = domain_name_get(t, id, &v, &vl);
        if (r < 0)
                return r;
        if (vl >= len)
                return -ERANGE;
        memcpy(buf, v, vl);
        buf[vl] = 0;
        return 0;
}

void vc_crash_point(const char *name)
{
        const char *at = getenv("VMCAS_CRASH_AT");
        if (at && strcmp(at, name) == 0)
                raise(SIGKILL);
}

/* ---- the pack fd cache ------------------------------------------------------------- */

static void slot_close(VcPackFd *e)
{
        close(e->fd);
        e->fd = -1;
        e->refs = 0;
        e->dead = false;
}

int vc_store_pack_open(VcStore *s, uint64_t domain, uint32_t pack, VcPackRef *ref)
{
        double now = vc_mono();
        pthread_mutex_lock(&s->fd_lock);
        for (int i = 0; i < VC_FD_CACHE; i++) {
                VcPackFd *e = &s->fds[i];
                if (e->fd < 0 || e->dead || e->domain != domain || e->pack != pack)
                        continue;
                /* Compaction unlinks packs; an fd held here would keep the
                 * disk space forever, so look at the link count now and then. */
                if (now - e->checked > 1.0) {
                        struct stat st;
                        if (fstat(e->fd, &st) < 0 || st.st_nlink == 0) {
                                e->dead = true;
                                if (e->refs == 0)
                                        slot_close(e);
                                break;
                        }
                        e->checked = now;
                }
                e->refs++;
                e->tick = ++s->tick;
                ref->fd = e->fd;
                ref->slot = i;
                pthread_mutex_unlock(&s->fd_lock);
                return 0;
        }
        pthread_mutex_unlock(&s->fd_lock);

        char path[PATH_MAX];
        int r = vc_pack_path(s, domain, pack, path, sizeof path);
        if (r < 0)
                return r;
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return -errno;

        pthread_mutex_lock(&s->fd_lock);
        int best = -1;
        for (int i = 0; i < VC_FD_CACHE; i++) {
                VcPackFd *e = &s->fds[i];
                if (e->fd < 0) {
                        best = i;
                        break;
                }
                if (e->refs == 0 && (best < 0 || e->tick < s->fds[best].tick))
                        best = i;
        }
        ref->fd = fd;
        ref->slot = best;
        if (best >= 0) {
                VcPackFd *e = &s->fds[best];
                if (e->fd >= 0)
                        slot_close(e);
                *e = (VcPackFd){ .domain = domain, .pack = pack, .fd = fd, .refs = 1, .checked = now,
                                 .tick = ++s->tick };
        }
        pthread_mutex_unlock(&s->fd_lock);
        return 0;
}

void vc_store_pack_release(VcStore *s, VcPackRef *ref, bool drop)
{
        if (ref->fd < 0)
                return;
        if (ref->slot < 0) {
                close(ref->fd);
        } else {
                pthread_mutex_lock(&s->fd_lock);
                VcPackFd *e = &s->fds[ref->slot];
                e->refs--;
                if (drop)
                        e->dead = true;
                if (e->dead && e->refs == 0)
                        slot_close(e);
                pthread_mutex_unlock(&s->fd_lock);
        }
        ref->fd = -1;
        ref->slot = -1;
}

void vc_store_pack_cache_flush(VcStore *s)
{
        pthread_mutex_lock(&s->fd_lock);
        for (int i = 0; i < VC_FD_CACHE; i++) {
                VcPackFd *e = &s->fds[i];
                if (e->fd < 0)
                        continue;
                e->dead = true;
                if (e->refs == 0)
                        slot_close(e);
        }
        pthread_mutex_unlock(&s->fd_lock);
}

/* ---- reading chunks ------------------------------------------------------------------- */

static int lookup(VcStore *s, uint64_t domain, const uint8_t tag[VC_TAG_LEN], VcIdx *x)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        return vc_idx_get(t, domain, tag, x);
}

int vc_store_has(VcStore *s, uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *t = NULL;
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        return vc_txn_has_chunk(t, domain, tag);
}

int vc_store_get(VcStore *s, uint64_t domain, const uint8_t tag[VC_TAG_LEN], uint8_t **buf, size_t *cap,
                 size_t *ret_len)
{
        return vc_store_get_txn(s, NULL, domain, tag, buf, cap, ret_len);
}

/* get, with the chunk's place already looked up (hint) or not (NULL) */
static int get_impl(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], const VcIdx *hint,
                    uint8_t **buf, size_t *cap, size_t *ret_len)
{
        char hex[2 * VC_TAG_LEN + 1];
        VcIdx x = { 0 };
        int r = 0;
        /* Two tries: a cached fd may be stale, or compaction may have moved
         * the chunk and deleted its pack between our lookup and our read
         * (then a caller's transaction is renewed to see where it went). */
        for (int attempt = 0; attempt < 2; attempt++) {
                if (t && attempt > 0) {
                        vc_txn_reset(t);
                        if ((r = vc_txn_renew(t)) < 0)
                                return r;
                }
                if (hint && attempt == 0)
                        x = *hint;
                else
                        r = t ? vc_idx_get(t, domain, tag, &x) : lookup(s, domain, tag, &x);
                /* A chunk someone asks for by its tag is not there: if a
                 * damaged page of the index hid it, say so. */
                if (r == -ENOENT)
                        return vc_db_explain_missing(s->db);
                if (r < 0)
                        return r;
                if (*cap < x.len || !*buf) {
                        size_t n = VC_MAX((size_t)x.len, (size_t)1);
                        uint8_t *b = realloc(*buf, n);
                        if (!b)
                                return -ENOMEM;
                        *buf = b;
                        *cap = n;
                }
                VcPackRef ref;
                r = vc_store_pack_open(s, domain, x.pack, &ref);
                if (r == -ENOENT)
                        continue;
                if (r < 0)
                        break;
                r = vc_pack_read_record(ref.fd, x.off, domain, tag, &x, *buf);
                vc_store_pack_release(s, &ref, r < 0);
                if (r == 0) {
                        *ret_len = x.len;
                        return 0;
                }
                if (r != -EBADMSG && r != -EIO)
                        break;
        }
        vc_hex(tag, VC_TAG_LEN, hex);
        if (r == -ENOENT)
                return vc_errf(-EIO, "chunk %s of domain %" PRIu64 " is indexed in pack %" PRIu32
                               ", but that pack file is missing", hex, domain, x.pack);
        if (r == -EBADMSG || r == -EIO)
                return vc_errf(-EBADMSG, "chunk %s of domain %" PRIu64 ": damaged record in pack %" PRIu32
                               " at offset %" PRIu64, hex, domain, x.pack, x.off);
        return vc_errf(r, "cannot read chunk %s from pack %" PRIu32 " of domain %" PRIu64 ": %s", hex, x.pack,
                       domain, strerror(-r));
}

int vc_store_get_txn(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], uint8_t **buf,
                     size_t *cap, size_t *ret_len)
{
        return get_impl(s, t, domain, tag, NULL, buf, cap, ret_len);
}

int vc_store_get_at(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], const VcChunkLoc *loc,
                    uint8_t **buf, size_t *cap, size_t *ret_len)
{
        VcIdx x = { .pack = loc->pack, .off = loc->off, .len = loc->len, .kind = loc->kind };
        return get_impl(s, t, domain, tag, loc->found ? &x : NULL, buf, cap, ret_len);
}

typedef struct Span {
        uint32_t pack;
        uint64_t off, end;
} Span;

static int span_cmp(const void *a, const void *b)
{
        const Span *x = a, *y = b;
        if (x->pack != y->pack)
                return x->pack < y->pack ? -1 : 1;
        return x->off < y->off ? -1 : x->off > y->off;
}

int vc_store_locate(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t *tags, size_t stride, size_t n,
                    VcChunkLoc *locs)
{
        _vc_cleanup_(vc_txn_abortp) VcTxn *own = NULL;
        if (!t) {
                int r = vc_txn_begin(s, false, &own);
                if (r < 0)
                        return r;
                t = own;
        }
        for (size_t i = 0; i < n; i++) {
                VcIdx x = { 0 };
                bool found = vc_idx_get(t, domain, tags + i * stride, &x) == 0;
                locs[i] = (VcChunkLoc){ .found = found, .pack = x.pack, .off = x.off, .len = x.len, .kind = x.kind };
        }
        vc_errclear();  /* misses are not the caller's errors */
        return 0;
}

int vc_store_prefetch(VcStore *s, VcTxn *t, uint64_t domain, const uint8_t *tags, size_t stride, size_t n,
                      VcChunkLoc *locs)
{
        if (n == 0)
                return 0;
        _vc_cleanup_(vc_freep) VcChunkLoc *own = locs ? NULL : malloc(n * sizeof *own);
        if (!locs && !(locs = own))
                return -ENOMEM;
        int r = vc_store_locate(s, t, domain, tags, stride, n, locs);
        if (r < 0)
                return r;
        Span *sp = malloc(n * sizeof *sp);
        if (!sp)
                return -ENOMEM;
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                if (locs[i].found)
                        sp[k++] = (Span){ locs[i].pack, locs[i].off, locs[i].off + VC_REC_HDR_LEN + locs[i].len };
        qsort(sp, k, sizeof *sp, span_cmp);
        /* merge records of one pack less than 64 KiB apart: one read
         * request instead of many */
        for (size_t i = 0; i < k;) {
                size_t j = i + 1;
                uint64_t end = sp[i].end;
                while (j < k && sp[j].pack == sp[i].pack && sp[j].off <= end + (64u << 10)) {
                        end = VC_MAX(end, sp[j].end);
                        j++;
                }
                VcPackRef ref;
                /* one record is read next anyway: nothing to read ahead */
                if (k > 1 && vc_store_pack_open(s, domain, sp[i].pack, &ref) == 0) {
                        (void)posix_fadvise(ref.fd, (off_t)sp[i].off, (off_t)(end - sp[i].off), POSIX_FADV_WILLNEED);
                        vc_store_pack_release(s, &ref, false);
                }
                i = j;
        }
        vc_errclear();
        free(sp);
        return 0;
}

/* ---- reading many chunks in large reads ---------------------------------------------- */

/* Records of one pack this close are read in one request, the gap with
 * them; a request is at most READ_SPAN bytes. */
#define READ_GAP (64u << 10)
#define READ_SPAN (4u << 20)
/* A run this long that is not all in the page cache is read with direct
 * I/O; shorter ones through the page cache. */
#define READ_DIRECT_MIN (128u << 10)
#define READ_ALIGN 4096u

typedef struct ReadRec {
        uint32_t pack;
        uint64_t off, end;
        size_t idx;
} ReadRec;

static int readrec_cmp(const void *a, const void *b)
{
        const ReadRec *x = a, *y = b;
        if (x->pack != y->pack)
                return x->pack < y->pack ? -1 : 1;
        return x->off < y->off ? -1 : x->off > y->off;
}

#ifndef __NR_cachestat
#define __NR_cachestat 451
#endif
struct vc_cachestat_range {
        uint64_t off, len;
};
struct vc_cachestat {
        uint64_t nr_cache, nr_dirty, nr_writeback, nr_evicted, nr_recently_evicted;
};

/* Whether every page of [off, off + len) of fd is in the page cache:
 * cachestat(2) (Linux 6.5), else mincore(2) of a mapping. Where neither
 * answers, "yes": the read then goes through the page cache as before. */
static bool span_cached(int fd, uint64_t off, uint64_t len)
{
        static atomic_bool no_cachestat;
        uint64_t first = off / READ_ALIGN, pages = (off + len + READ_ALIGN - 1) / READ_ALIGN - first;
        if (!atomic_load_explicit(&no_cachestat, memory_order_relaxed)) {
                struct vc_cachestat_range rg = { first * READ_ALIGN, pages * READ_ALIGN };
                struct vc_cachestat cs;
                if (syscall(__NR_cachestat, fd, &rg, &cs, 0) == 0)
                        return cs.nr_cache >= pages;
                if (errno != ENOSYS && errno != EPERM)
                        return true;
                atomic_store_explicit(&no_cachestat, true, memory_order_relaxed);
        }
        long ps = sysconf(_SC_PAGESIZE);
        uint64_t a = off & ~(uint64_t)(ps - 1), n = off + len - a;
        void *m = mmap(NULL, n, PROT_READ, MAP_SHARED, fd, (off_t)a);
        if (m == MAP_FAILED)
                return true;
        size_t np = (size_t)((n + (uint64_t)ps - 1) / (uint64_t)ps);
        unsigned char vec[READ_SPAN / 4096 + 2];
        bool all = np <= sizeof vec && mincore(m, n, vec) == 0;
        for (size_t i = 0; all && i < np; i++)
                all = vec[i] & 1;
        munmap(m, n);
        return all;
}

/* Whether reads may bypass the page cache (VMCAS_DIRECT_IO=0: never). */
static bool direct_reads(void)
{
        const char *e = getenv("VMCAS_DIRECT_IO");
        return !(e && strcmp(e, "0") == 0);
}

/* Reads [a, b) of a pack. *buf (READ_ALIGN-aligned, *cap bytes) is grown
 * as needed; *p is where byte a landed. A run not in the page cache is read
 * with direct I/O, through a second descriptor of the same file: no copy
 * out of the page cache and no page cache filled, which on a VM costs
 * about as much CPU as opening the chunks. */
static int read_span(VcStore *s, uint64_t domain, uint32_t pack, uint64_t a, uint64_t b, bool direct,
                     uint8_t **buf, size_t *cap, const uint8_t **p)
{
        uint64_t al = a & ~(uint64_t)(READ_ALIGN - 1), bl = (b + READ_ALIGN - 1) & ~(uint64_t)(READ_ALIGN - 1);
        size_t need = (size_t)(bl - al);
        if (*cap < need) {
                void *nb = NULL;
                if (posix_memalign(&nb, READ_ALIGN, need) != 0)
                        return -ENOMEM;
                free(*buf);
                *buf = nb;
                *cap = need;
        }
        VcPackRef ref;
        int r = vc_store_pack_open(s, domain, pack, &ref);
        if (r < 0)
                return r;
        if (direct && b - a >= READ_DIRECT_MIN && !span_cached(ref.fd, a, b - a)) {
                char path[40];
                snprintf(path, sizeof path, "/proc/self/fd/%d", ref.fd);
                int dfd = open(path, O_RDONLY | O_DIRECT | O_CLOEXEC);
                uint64_t got = 0;
                while (dfd >= 0 && al + got < b) {
                        ssize_t k = pread(dfd, *buf + got, need - got, (off_t)(al + got));
                        if (k < 0 && errno == EINTR)
                                continue;
                        if (k <= 0)
                                break;
                        got += (uint64_t)k;
                        if (got % READ_ALIGN)
                                break;  /* short: the end of the file */
                }
                if (dfd >= 0)
                        close(dfd);
                if (al + got >= b) {
                        vc_store_pack_release(s, &ref, false);
                        *p = *buf + (a - al);
                        return 0;
                }
                /* no direct I/O here (tmpfs), or it failed: the page cache */
        }
        r = vc_pread_full(ref.fd, *buf + (a - al), (size_t)(b - a), (off_t)a);
        vc_store_pack_release(s, &ref, r < 0);
        *p = *buf + (a - al);
        return r;
}

int vc_store_read_located(VcStore *s, uint64_t domain, const uint8_t *tags, size_t stride, size_t n,
                          const VcChunkLoc *locs, bool *done, vc_store_got_fn fn, void *ctx)
{
        size_t k = 0;
        for (size_t i = 0; i < n; i++)
                k += locs[i].found && !done[i];
        if (k == 0)
                return 0;
        _vc_cleanup_(vc_freep) ReadRec *rr = malloc(k * sizeof *rr);
        if (!rr)
                return -ENOMEM;
        k = 0;
        for (size_t i = 0; i < n; i++)
                if (locs[i].found && !done[i])
                        rr[k++] = (ReadRec){ locs[i].pack, locs[i].off, locs[i].off + VC_REC_HDR_LEN + locs[i].len, i };
        qsort(rr, k, sizeof *rr, readrec_cmp);
        _vc_cleanup_(vc_freep) uint8_t *buf = NULL;
        size_t cap = 0;
        bool direct = direct_reads();
        for (size_t i = 0; i < k;) {
                size_t j = i + 1;
                uint64_t a = rr[i].off, b = rr[i].end;
                while (j < k && rr[j].pack == rr[i].pack && rr[j].off <= b + READ_GAP &&
                       VC_MAX(b, rr[j].end) - a <= READ_SPAN) {
                        b = VC_MAX(b, rr[j].end);
                        j++;
                }
                const uint8_t *p;
                if (read_span(s, domain, rr[i].pack, a, b, direct, &buf, &cap, &p) < 0) {
                        vc_errclear();  /* those are read one by one, which says why */
                        i = j;
                        continue;
                }
                for (; i < j; i++) {
                        const ReadRec *e = &rr[i];
                        const VcChunkLoc *l = &locs[e->idx];
                        const uint8_t *rec = p + (e->off - a);
                        VcRecHdr h = { 0 };
                        if (vc_rec_hdr_decode(rec, &h) < 0 || h.domain != domain || h.len != l->len ||
                            h.kind != l->kind || memcmp(h.tag, tags + e->idx * stride, VC_TAG_LEN) != 0)
                                continue;
                        done[e->idx] = true;
                        int r = fn(e->idx, rec + VC_REC_HDR_LEN, l->len, l->kind, ctx);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

/* ---- stat -------------------------------------------------------------------------------- */

static int pack_dir_sum(const char *dir, uint64_t *packs, uint64_t *bytes)
{
        DIR *d = opendir(dir);
        if (!d)
                return errno == ENOENT ? 0 : -errno;
        struct dirent *e;
        while ((e = readdir(d))) {
                uint32_t n;
                struct stat st;
                if (!vc_pack_name_parse(e->d_name, &n) || fstatat(dirfd(d), e->d_name, &st, 0) < 0)
                        continue;
                (*packs)++;
                /* what the file takes: holes that gc punched are free */
                *bytes += VC_MIN((uint64_t)st.st_size, (uint64_t)st.st_blocks * 512);
        }
        closedir(d);
        return 0;
}

int vc_store_pack_files(const VcStore *s, uint64_t domain, uint64_t *ret_packs, uint64_t *ret_bytes)
{
        char dir[PATH_MAX];
        uint64_t packs = 0, bytes = 0;
        int r = 0;
        if (domain) {
                vc_domain_dir(s, domain, dir, sizeof dir);
                r = pack_dir_sum(dir, &packs, &bytes);
        } else {
                char top[PATH_MAX];
                snprintf(top, sizeof top, "%s/packs", s->path);
                DIR *d = opendir(top);
                if (!d)
                        return -errno;
                struct dirent *e;
                while (r == 0 && (e = readdir(d))) {
                        uint64_t id;
                        if (e->d_name[0] < '0' || e->d_name[0] > '9' || vc_parse_u64(e->d_name, "domain", &id) < 0)
                                continue;
                        vc_domain_dir(s, id, dir, sizeof dir);
                        r = pack_dir_sum(dir, &packs, &bytes);
                }
                closedir(d);
        }
        if (r < 0)
                return r;
        *ret_packs = packs;
        *ret_bytes = bytes;
        return 0;
}

static VcDomainStat *stat_find(VcDomainStat **v, size_t *n, uint64_t domain)
{
        size_t lo = 0, hi = *n;
        while (lo < hi) {
                size_t mid = (lo + hi) / 2;
                if ((*v)[mid].domain < domain)
                        lo = mid + 1;
                else
                        hi = mid;
        }
        if (lo < *n && (*v)[lo].domain == domain)
                return &(*v)[lo];
        /* An indexed domain without a name (the domains table was lost). */
        VcDomainStat *nv = realloc(*v, (*n + 1) * sizeof *nv);
        if (!nv)
                return NULL;
        *v = nv;
        memmove(nv + lo + 1, nv + lo, (*n - lo) * sizeof *nv);
        (*n)++;
        nv[lo] = (VcDomainStat){ .domain = domain };
        return &nv[lo];
}

typedef struct StatCtx {
        VcDomainStat **v;
        size_t *n;
        VcDomainStat *d;        /* the domain of the last entry */
} StatCtx;

static int stat_one(const VcChunkInfo *ci, void *ctx)
{
        StatCtx *c = ctx;
        if (!c->d || c->d->domain != ci->domain)
                c->d = stat_find(c->v, c->n, ci->domain);
        if (!c->d)
                return -ENOMEM;
        if (ci->kind != VC_KIND_DATA) {
                c->d->meta_chunks++;
                c->d->meta_bytes += ci->len;
        } else {
                c->d->data_chunks++;
                c->d->data_bytes += ci->len;
        }
        return 0;
}

static int stat_collect(VcTxn *t, VcDomainStat **v, size_t *n)
{
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *c = NULL;
        int r = vc_db_cursor_open(t, VC_DB_DOMAINS, "i", 1, &c);
        if (r < 0)
                return r;
        const void *k = NULL, *val = NULL;
        size_t kl = 0, vl = 0;
        /* 'i' keys are id BE64, so the names come sorted by id. */
        while ((r = vc_db_cursor_next(c, &k, &kl, &val, &vl)) != 0) {
                if (r < 0 || kl != 9)
                        return r < 0 ? vc_errf(r, "domains table damaged; run 'vmcas verify'") : -EBADMSG;
                VcDomainStat *d = stat_find(v, n, vc_get64be((const uint8_t *)k + 1));
                if (!d)
                        return -ENOMEM;
                size_t m = VC_MIN(vl, sizeof d->name - 1);
                memcpy(d->name, val, m);
                d->name[m] = 0;
        }
        vc_db_cursor_close(c);
        c = NULL;
        StatCtx sc = { v, n, NULL };
        return vc_idx_each(t, 0, stat_one, &sc);
}

uint64_t vc_store_framing_bytes(uint64_t records, uint64_t packs)
{
        return records * VC_REC_HDR_LEN + packs * VC_PACK_HDR_LEN;
}

int vc_store_stat(VcStore *s, VcDomainStat **ret, size_t *ret_n, uint64_t *ret_index_bytes)
{
        VcDomainStat *v = NULL;
        size_t n = 0;
        VcTxn *t;
        int r = vc_txn_begin(s, false, &t);
        if (r < 0)
                return r;
        /* stat reads the whole index: it first checks every page of it, so
         * that a damaged page cannot silently hide some of it. */
        r = vc_db_check_pages(t, NULL, NULL);
        /* Busy writers elsewhere overwrote the snapshot's meta page: take a
         * newer snapshot. */
        for (int i = 0; i < 8 && r == -EAGAIN; i++) {
                vc_errclear();
                if ((r = vc_txn_refresh(t)) == 0)
                        r = vc_db_check_pages(t, NULL, NULL);
        }
        if (r == 0)
                r = stat_collect(t, &v, &n);
        vc_txn_abort(t);
        for (size_t i = 0; r == 0 && i < n; i++)
                r = vc_store_pack_files(s, v[i].domain, &v[i].packs, &v[i].pack_bytes);
        uint64_t ib = 0;
        if (r == 0)
                r = vc_db_bytes(s->db, &ib);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *ret_n = n;
        if (ret_index_bytes)
                *ret_index_bytes = ib;
        return 0;
}

/* ---- locks ------------------------------------------------------------------------------- */

static int lock_name_check(const char *name)
{
        size_t n = strlen(name);
        if (n == 0 || n > 128 || name[0] == '.')
                return vc_errf(-EINVAL, "invalid lock name '%s'", name);
        for (size_t i = 0; i < n; i++) {
                char c = name[i];
                if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                      c == '_' || c == '-' || c == ':' || c == '@' || c == '+'))
                        return vc_errf(-EINVAL, "invalid lock name '%s'", name);
        }
        return 0;
}

int vc_store_lock(VcStore *s, const char *name, bool exclusive, bool wait, int *ret_fd)
{
        int r = lock_name_check(name);
        if (r < 0)
                return r;
        char path[PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/locks/%s", s->path, name) >= sizeof path)
                return vc_errf(-ENAMETOOLONG, "lock path too long");
        int fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
        if (fd < 0)
                return vc_errf(-errno, "cannot open lock '%s': %s", path, strerror(errno));
        while (flock(fd, (exclusive ? LOCK_EX : LOCK_SH) | (wait ? 0 : LOCK_NB)) < 0) {
                if (errno == EINTR)
                        continue;
                r = -errno;
                if (r == -EWOULDBLOCK) {
                        char b[32] = { 0 };
                        long pid = 0;
                        ssize_t k = pread(fd, b, sizeof b - 1, 0);
                        close(fd);
                        if (k > 0 && sscanf(b, "%ld", &pid) == 1 && pid > 0)
                                return vc_errf(-EBUSY, "%s is locked by process %ld", name, pid);
                        return vc_errf(-EBUSY, "%s is locked by another process", name);
                }
                close(fd);
                return vc_errf(r, "cannot lock '%s': %s", path, strerror(-r));
        }
        /* Who holds it, for the message above. With shared holders this
         * names the latest one, which is enough to find them. */
        char b[32];
        int n = snprintf(b, sizeof b, "%ld\n", (long)getpid());
        if (exclusive)
                (void)!ftruncate(fd, 0);
        (void)!vc_pwrite_full(fd, b, (size_t)n, 0);     /* a courtesy; the flock is the lock */
        *ret_fd = fd;
        return 0;
}

void vc_store_unlock(int fd)
{
        if (fd >= 0)
                close(fd);
}

int vc_store_pack_bytes(VcStore *s, uint64_t *ret_packs, uint64_t *ret_bytes)
{
        return vc_store_pack_files(s, 0, ret_packs, ret_bytes);
}
