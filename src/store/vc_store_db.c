/* vc_store_db — the store's LMDB environment: the only file that calls
 * LMDB, so LMDB's error codes are translated here and nowhere else.
 *
 * Every value of every table ends with a CRC-32 (zlib's, the IEEE
 * polynomial) of key || value. LMDB checks nothing of what it stores, and a
 * flipped bit in an index entry would send a reader to the wrong bytes; the
 * CRC turns that into -EBADMSG naming the record.
 */
#include "store/vc_store_int.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <lmdb.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

/* The map is a reservation of address space, not of disk: LMDB grows the
 * file only as pages are written. 1 TiB holds ~10^10 index entries. */
#define VC_DB_MAPSIZE (1ull << 40)
/* With MDB_NOTLS every live read transaction holds a slot; readers are
 * short, but a server may run many threads. */
#define VC_DB_MAXREADERS 1024

static const char *const table_names[VC_DB__MAX] = {
        [VC_DB_META] = "meta",
        [VC_DB_PARCELS] = "parcels",
        [VC_DB_VERSIONS] = "versions",
        [VC_DB_INDEX] = "index",
        [VC_DB_DOMAINS] = "domains",
        [VC_DB_PACKS] = "packs",
};

struct VcDb {
        MDB_env *env;
        MDB_dbi dbi[VC_DB__MAX];
        dev_t dev;
        ino_t ino;
        pid_t pid;              /* LMDB forbids using an env after fork() */
        unsigned refs;
        VcDb *next;
};

struct VcTxn {
        VcStore *s;
        MDB_txn *txn;
        bool write;
};

struct VcDbCursor {
        VcTxn *t;
        VcDbTable tb;
        MDB_cursor *cur;
        uint8_t *prefix;
        size_t plen;
        bool started, done;
};

/* LMDB allows one MDB_env per file per process: opening a second one and
 * closing it drops the first one's fcntl() locks. Handles of one store in
 * one process therefore share an environment through this registry. */
static pthread_mutex_t registry_lock = PTHREAD_MUTEX_INITIALIZER;
static VcDb *registry;

const char *vc_db_table_name(VcDbTable tb)
{
        return tb < VC_DB__MAX ? table_names[tb] : "?";
}

/* Translates an LMDB return code into -errno, recording a message for the
 * ones a user may meet. what names the operation. */
static int db_err(int rc, const char *what)
{
        switch (rc) {
        case MDB_SUCCESS:
                return 0;
        case MDB_NOTFOUND:
                return -ENOENT;
        case MDB_KEYEXIST:
                return -EEXIST;
        case MDB_MAP_FULL:
                return vc_errf(-ENOSPC, "%s: the store index is full (LMDB map size reached)", what);
        case MDB_TXN_FULL:
        case MDB_DBS_FULL:
                return vc_errf(-ENOSPC, "%s: %s", what, mdb_strerror(rc));
        case MDB_READERS_FULL:
                return vc_errf(-EAGAIN, "%s: too many readers of the store index at once", what);
        case MDB_MAP_RESIZED:
                return vc_errf(-EAGAIN, "%s: the store index was resized by another process", what);
        case MDB_CORRUPTED:
        case MDB_PAGE_NOTFOUND:
                return vc_errf(-EBADMSG, "%s: the store index is damaged (%s); run 'vmcas verify'",
                               what, mdb_strerror(rc));
        case MDB_INVALID:
        case MDB_VERSION_MISMATCH:
                return vc_errf(-EPROTO, "%s: the store index has an unknown format (%s)", what,
                               mdb_strerror(rc));
        case MDB_PANIC:
                return vc_errf(-EIO, "%s: the store index must be reopened (%s)", what, mdb_strerror(rc));
        case MDB_BAD_VALSIZE:
                return vc_errf(-EINVAL, "%s: key or value too large", what);
        case MDB_BAD_TXN:
        case MDB_BAD_RSLOT:
        case MDB_BAD_DBI:
        case MDB_INCOMPATIBLE:
                return vc_errf(-EINVAL, "%s: %s", what, mdb_strerror(rc));
        default:
                if (rc > 0)
                        return vc_errf(-rc, "%s: %s", what, strerror(rc));
                return vc_errf(-EIO, "%s: %s", what, mdb_strerror(rc));
        }
}

static uint32_t value_crc(const void *k, size_t kl, const void *v, size_t vl)
{
        uLong c = crc32(0L, Z_NULL, 0);
        c = crc32(c, k, (uInt)kl);
        c = crc32(c, v, (uInt)vl);
        return (uint32_t)c;
}

/* 0 if the stored value's CRC matches. */
static bool value_ok(const MDB_val *k, const MDB_val *v)
{
        if (v->mv_size < 4)
                return false;
        size_t n = v->mv_size - 4;
        return value_crc(k->mv_data, k->mv_size, v->mv_data, n) == vc_get32((const uint8_t *)v->mv_data + n);
}

/* "table parcels, key 'p1'", or for the index "chunk <hex> of domain 3". */
static void describe(VcDbTable tb, const void *k, size_t kl, char *buf, size_t len)
{
        const uint8_t *p = k;
        if (tb == VC_DB_INDEX && kl == VC_IDX_KEY_LEN) {
                char hex[2 * VC_TAG_LEN + 1];
                vc_hex(p + 8, VC_TAG_LEN, hex);
                snprintf(buf, len, "chunk %s of domain %" PRIu64, hex, vc_get64be(p));
                return;
        }
        bool text = kl > 0;
        for (size_t i = 0; i < kl; i++)
                if (p[i] < 0x20 || p[i] > 0x7e || p[i] == '\'')
                        text = false;
        size_t n = VC_MIN(kl, (size_t)32);
        char shown[2 * 32 + 1];
        if (text) {
                memcpy(shown, p, n);
                shown[n] = 0;
        } else
                vc_hex(p, n, shown);
        snprintf(buf, len, "table %s, key %s%s%s%s", table_names[tb], text ? "'" : "", shown,
                 text ? "'" : "", kl > n ? "..." : "");
}

static int damaged(VcDbTable tb, const void *k, size_t kl)
{
        char what[160];
        describe(tb, k, kl, what, sizeof what);
        if (tb == VC_DB_INDEX)
                return vc_errf(-EBADMSG, "index entry damaged: %s (checksum mismatch; run 'vmcas verify')", what);
        return vc_errf(-EBADMSG, "catalog record damaged: %s (checksum mismatch)", what);
}

/* ---- environment ------------------------------------------------------------ */

static void env_close(VcDb *db)
{
        /* In a forked child the parent's env must not even be closed. */
        if (db->env && db->pid == getpid())
                mdb_env_close(db->env);
        free(db);
}

static int env_open(const char *dir, VcDb *db)
{
        int rc = mdb_env_create(&db->env);
        if (rc)
                return db_err(rc, "creating the index environment");
        /* VMCAS_INDEX_MAPSIZE lowers the reservation where address space is
         * scarce: under valgrind, or with a small ulimit -v. */
        uint64_t mapsize = VC_DB_MAPSIZE;
        const char *env = getenv("VMCAS_INDEX_MAPSIZE");
        if (env && vc_parse_size(env, "VMCAS_INDEX_MAPSIZE", &mapsize) < 0)
                return -EINVAL;
        if ((rc = mdb_env_set_maxdbs(db->env, VC_DB__MAX)) ||
            (rc = mdb_env_set_mapsize(db->env, (size_t)mapsize)) ||
            (rc = mdb_env_set_maxreaders(db->env, VC_DB_MAXREADERS)))
                return db_err(rc, "configuring the index environment");
        /* NOTLS: read transactions are not tied to a thread (a reader slot
         * per transaction), so several threads can read one store.
         * NORDAHEAD: index lookups are random; readahead only pollutes. */
        rc = mdb_env_open(db->env, dir, MDB_NOTLS | MDB_NORDAHEAD, 0644);
        if (rc)
                return vc_errf(db_err(rc, "opening the store index"), "cannot open the store index in '%s': %s",
                               dir, mdb_strerror(rc));
        /* Slots of readers killed by a signal would pin old pages forever. */
        int dead;
        mdb_reader_check(db->env, &dead);

        /* Open the tables read-only first, so that opening a store does not
         * wait for another process's write transaction; create them only if
         * one is missing (a new store). */
        for (int pass = 0; pass < 2; pass++) {
                bool create = pass == 1;
                MDB_txn *txn;
                rc = mdb_txn_begin(db->env, NULL, create ? 0 : MDB_RDONLY, &txn);
                if (rc)
                        return db_err(rc, "opening the index tables");
                int missing = 0;
                for (int i = 0; i < VC_DB__MAX && rc == 0; i++) {
                        rc = mdb_dbi_open(txn, table_names[i], create ? MDB_CREATE : 0, &db->dbi[i]);
                        if (rc == MDB_NOTFOUND && !create) {
                                missing++;
                                rc = 0;
                        }
                }
                if (rc) {
                        mdb_txn_abort(txn);
                        return db_err(rc, "opening the index tables");
                }
                if (!create && missing) {
                        mdb_txn_abort(txn);
                        continue;
                }
                rc = mdb_txn_commit(txn);
                if (rc)
                        return db_err(rc, "opening the index tables");
                return 0;
        }
        return 0;
}

int vc_db_open(const char *dir, VcDb **ret)
{
        struct stat st;
        if (stat(dir, &st) < 0)
                return vc_errf(-errno, "cannot open the store index '%s': %s", dir, strerror(errno));
        pid_t pid = getpid();
        pthread_mutex_lock(&registry_lock);
        for (VcDb *d = registry; d; d = d->next)
                if (d->dev == st.st_dev && d->ino == st.st_ino && d->pid == pid) {
                        d->refs++;
                        pthread_mutex_unlock(&registry_lock);
                        *ret = d;
                        return 0;
                }
        VcDb *db = calloc(1, sizeof *db);
        if (!db) {
                pthread_mutex_unlock(&registry_lock);
                return -ENOMEM;
        }
        db->dev = st.st_dev;
        db->ino = st.st_ino;
        db->pid = pid;
        db->refs = 1;
        int r = env_open(dir, db);
        if (r < 0) {
                pthread_mutex_unlock(&registry_lock);
                env_close(db);
                return r;
        }
        db->next = registry;
        registry = db;
        pthread_mutex_unlock(&registry_lock);
        *ret = db;
        return 0;
}

void vc_db_unref(VcDb *db)
{
        if (!db)
                return;
        pthread_mutex_lock(&registry_lock);
        if (--db->refs > 0) {
                pthread_mutex_unlock(&registry_lock);
                return;
        }
        for (VcDb **p = &registry; *p; p = &(*p)->next)
                if (*p == db) {
                        *p = db->next;
                        break;
                }
        pthread_mutex_unlock(&registry_lock);
        env_close(db);
}

int vc_db_bytes(VcDb *db, uint64_t *ret)
{
        const char *dir;
        int rc = mdb_env_get_path(db->env, &dir);
        if (rc)
                return db_err(rc, "locating the store index");
        uint64_t total = 0;
        static const char *const files[] = { "data.mdb", "lock.mdb" };
        for (size_t i = 0; i < VC_ARRAY_SIZE(files); i++) {
                char p[PATH_MAX];
                struct stat st;
                snprintf(p, sizeof p, "%s/%s", dir, files[i]);
                if (stat(p, &st) == 0)
                        total += (uint64_t)st.st_size;
        }
        *ret = total;
        return 0;
}

/* ---- transactions -------------------------------------------------------------- */

int vc_txn_begin(VcStore *s, bool write, VcTxn **ret)
{
        VcTxn *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        int rc = mdb_txn_begin(s->db->env, NULL, write ? 0 : MDB_RDONLY, &t->txn);
        if (rc) {
                free(t);
                return db_err(rc, write ? "starting a write transaction" : "starting a read transaction");
        }
        t->s = s;
        t->write = write;
        *ret = t;
        return 0;
}

void vc_txn_reset(VcTxn *t)
{
        if (t && !t->write)
                mdb_txn_reset(t->txn);
}

int vc_txn_renew(VcTxn *t)
{
        int rc = mdb_txn_renew(t->txn);
        return db_err(rc, "renewing a read transaction");
}

int vc_txn_refresh(VcTxn *t)
{
        if (t->write)
                return -EINVAL;
        mdb_txn_reset(t->txn);
        return vc_txn_renew(t);
}

int vc_txn_commit(VcTxn *t)
{
        if (!t)
                return -EINVAL;
        int rc = mdb_txn_commit(t->txn);
        free(t);
        return db_err(rc, "committing to the store index");
}

void vc_txn_abort(VcTxn *t)
{
        if (!t)
                return;
        mdb_txn_abort(t->txn);
        free(t);
}

VcStore *vc_txn_store(VcTxn *t)
{
        return t->s;
}

bool vc_txn_is_write(VcTxn *t)
{
        return t->write;
}

static int check_key(VcTxn *t, VcDbTable tb, size_t kl)
{
        if (tb >= VC_DB__MAX)
                return vc_errf(-EINVAL, "no such table %d", (int)tb);
        if (kl == 0 || kl > (size_t)mdb_env_get_maxkeysize(t->s->db->env))
                return vc_errf(-EINVAL, "key of %zu bytes for table %s (1 to %d allowed)", kl,
                               table_names[tb], mdb_env_get_maxkeysize(t->s->db->env));
        return 0;
}

int vc_db_get(VcTxn *t, VcDbTable tb, const void *k, size_t kl, const void **v, size_t *vl)
{
        int r = check_key(t, tb, kl);
        if (r < 0)
                return r;
        MDB_val key = { kl, (void *)k }, val;
        int rc = mdb_get(t->txn, t->s->db->dbi[tb], &key, &val);
        if (rc)
                return db_err(rc, "reading the store index");
        if (!value_ok(&key, &val))
                return -EBADMSG;
        *v = val.mv_data;
        *vl = val.mv_size - 4;
        return 0;
}

int vc_db_damaged(VcDbTable tb, const void *k, size_t kl)
{
        return damaged(tb, k, kl);
}

int vc_db_put(VcTxn *t, VcDbTable tb, const void *k, size_t kl, const void *v, size_t vl)
{
        int r = check_key(t, tb, kl);
        if (r < 0)
                return r;
        if (!t->write)
                return vc_errf(-EINVAL, "write to table %s in a read transaction", table_names[tb]);
        if (vl > UINT32_MAX - 4)
                return vc_errf(-EINVAL, "value of %zu bytes too large for table %s", vl, table_names[tb]);
        /* MDB_RESERVE: LMDB hands out the space and we fill it, so the
         * value plus its CRC never needs a temporary copy. */
        MDB_val key = { kl, (void *)k }, val = { vl + 4, NULL };
        int rc = mdb_put(t->txn, t->s->db->dbi[tb], &key, &val, MDB_RESERVE);
        if (rc)
                return db_err(rc, "writing to the store index");
        uint8_t *p = val.mv_data;
        if (vl)
                memcpy(p, v, vl);
        vc_put32(p + vl, value_crc(k, kl, v, vl));
        return 0;
}

int vc_db_del(VcTxn *t, VcDbTable tb, const void *k, size_t kl)
{
        int r = check_key(t, tb, kl);
        if (r < 0)
                return r;
        if (!t->write)
                return vc_errf(-EINVAL, "delete from table %s in a read transaction", table_names[tb]);
        MDB_val key = { kl, (void *)k };
        return db_err(mdb_del(t->txn, t->s->db->dbi[tb], &key, NULL), "deleting from the store index");
}

int vc_db_drop(VcTxn *t, VcDbTable tb)
{
        if (!t->write)
                return vc_errf(-EINVAL, "emptying table %s in a read transaction", table_names[tb]);
        return db_err(mdb_drop(t->txn, t->s->db->dbi[tb], 0), "emptying a table of the store index");
}

/* ---- cursors ------------------------------------------------------------------- */

int vc_db_cursor_open(VcTxn *t, VcDbTable tb, const void *prefix, size_t plen, VcDbCursor **ret)
{
        if (tb >= VC_DB__MAX)
                return vc_errf(-EINVAL, "no such table %d", (int)tb);
        if (plen > (size_t)mdb_env_get_maxkeysize(t->s->db->env))
                return vc_errf(-EINVAL, "key prefix of %zu bytes too long", plen);
        VcDbCursor *c = calloc(1, sizeof *c);
        if (!c)
                return -ENOMEM;
        if (plen) {
                c->prefix = malloc(plen);
                if (!c->prefix) {
                        free(c);
                        return -ENOMEM;
                }
                memcpy(c->prefix, prefix, plen);
        }
        c->plen = plen;
        c->t = t;
        c->tb = tb;
        int rc = mdb_cursor_open(t->txn, t->s->db->dbi[tb], &c->cur);
        if (rc) {
                free(c->prefix);
                free(c);
                return db_err(rc, "walking the store index");
        }
        *ret = c;
        return 0;
}

int vc_db_cursor_next(VcDbCursor *c, const void **k, size_t *kl, const void **v, size_t *vl)
{
        if (c->done)
                return 0;
        MDB_val key = { c->plen, c->prefix }, val;
        int rc;
        if (!c->started)
                rc = mdb_cursor_get(c->cur, &key, &val, c->plen ? MDB_SET_RANGE : MDB_FIRST);
        else
                /* After mdb_cursor_del, LMDB's MDB_NEXT returns the record
                 * that followed the deleted one, not the one after that. */
                rc = mdb_cursor_get(c->cur, &key, &val, MDB_NEXT);
        c->started = true;
        if (rc == MDB_NOTFOUND) {
                c->done = true;
                return 0;
        }
        if (rc)
                return db_err(rc, "walking the store index");
        if (c->plen && (key.mv_size < c->plen || memcmp(key.mv_data, c->prefix, c->plen) != 0)) {
                c->done = true;
                return 0;
        }
        *k = key.mv_data;
        *kl = key.mv_size;
        if (!value_ok(&key, &val)) {
                *v = val.mv_data;
                *vl = val.mv_size;
                return -EBADMSG;
        }
        *v = val.mv_data;
        *vl = val.mv_size - 4;
        return 1;
}

int vc_db_cursor_del(VcDbCursor *c)
{
        if (!c->t->write)
                return vc_errf(-EINVAL, "delete from table %s in a read transaction", table_names[c->tb]);
        return db_err(mdb_cursor_del(c->cur, 0), "deleting from the store index");
}

void vc_db_cursor_close(VcDbCursor *c)
{
        if (!c)
                return;
        mdb_cursor_close(c->cur);
        free(c->prefix);
        free(c);
}

/* ---- the catalog: the public face of three of the tables ------------------------- */

static int catalog_table(VcTable tb)
{
        if ((int)tb < 0 || tb >= VC_TABLE__MAX)
                return vc_errf(-EINVAL, "no such catalog table %d", (int)tb);
        return 0;
}

int vc_txn_get(VcTxn *t, VcTable tb, const void *key, size_t klen, const void **val, size_t *vlen)
{
        int r = catalog_table(tb);
        if (r < 0)
                return r;
        r = vc_db_get(t, (VcDbTable)tb, key, klen, val, vlen);
        return r == -EBADMSG ? damaged((VcDbTable)tb, key, klen) : r;
}

int vc_txn_put(VcTxn *t, VcTable tb, const void *key, size_t klen, const void *val, size_t vlen)
{
        int r = catalog_table(tb);
        if (r < 0)
                return r;
        return vc_db_put(t, (VcDbTable)tb, key, klen, val, vlen);
}

int vc_txn_del(VcTxn *t, VcTable tb, const void *key, size_t klen)
{
        int r = catalog_table(tb);
        if (r < 0)
                return r;
        return vc_db_del(t, (VcDbTable)tb, key, klen);
}

int vc_txn_iter(VcTxn *t, VcTable tb, const void *prefix, size_t plen, vc_iter_fn fn, void *ctx)
{
        int r = catalog_table(tb);
        if (r < 0)
                return r;
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *c = NULL;
        r = vc_db_cursor_open(t, (VcDbTable)tb, prefix, plen, &c);
        if (r < 0)
                return r;
        for (;;) {
                const void *k = NULL, *v = NULL;
                size_t kl = 0, vl = 0;
                r = vc_db_cursor_next(c, &k, &kl, &v, &vl);
                if (r == -EBADMSG)
                        return damaged((VcDbTable)tb, k, kl);
                if (r <= 0)
                        return r;
                r = fn(k, kl, v, vl, ctx);
                if (r != 0)
                        return r;
        }
}

void vc_db_describe(VcDbTable tb, const void *k, size_t kl, char *buf, size_t len)
{
        describe(tb, k, kl, buf, len);
}
