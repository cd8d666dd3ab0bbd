/* vc_store_db — the store's LMDB environment: the only file that calls
 * LMDB or reads its files, so LMDB's error codes and its file format are
 * handled here and nowhere else.
 *
 * Every value of every table ends with a CRC-32 (zlib's, the IEEE
 * polynomial) of key || value. LMDB checks nothing of what it stores, and a
 * flipped bit in an index entry would send a reader to the wrong bytes; the
 * CRC turns that into -EBADMSG naming the record.
 *
 * A damaged index never crashes vmcas
 * -----------------------------------
 * LMDB trusts its file. It maps data.mdb and follows the page numbers,
 * offsets and sizes it finds there without checking them: a file cut short
 * makes it touch pages past the end (SIGBUS), a scribbled page sends it to
 * wild addresses (SIGSEGV) or into an assertion (abort), and a write
 * transaction that copies a scribbled page can overrun a heap buffer or put
 * a page in use on the free list. And a missing or empty data.mdb is, to
 * LMDB, a new and empty index. What this file does about it:
 *
 *  1. Before mdb_env_open (precheck): data.mdb must be a regular, non-empty
 *     file. Both meta pages are read with pread and checked (magic, LMDB
 *     format version, page size, the roots' and the last page's numbers in
 *     range), and of the two, as LMDB does, the one with the higher txnid is
 *     taken. The file must hold every page that snapshot may use: (last page
 *     + 1) * page size bytes, or, where it is shorter, every page past its
 *     end must be on the free list (LMDB does not write a page freed in the
 *     transaction that allocated it). Otherwise the store is refused:
 *     "the store's index is damaged (.../data.mdb is N bytes, but its pages
 *     in use need M): run 'vmcas verify --reindex' ...". LMDB thus never
 *     maps a page that is not in the file, nor "repairs" a cut file by
 *     writing past its end, which would lose what was there in silence.
 *  2. At open, in a read transaction (so that no writer reuses its pages
 *     meanwhile), the page walker (5) reads every page of LMDB's main table
 *     and of the meta, parcels, versions, domains and packs tables: all but
 *     the chunk index, which is most of the file. Damage to the main table
 *     refuses the store; a damaged table of ours is marked, and every access
 *     to it fails with the message, without LMDB reading it. So a command
 *     never lists half of a catalog, and what does not need the table works.
 *  3. Before the first write transaction of the process, holding LMDB's
 *     write lock: the walker reads every page of every table and of the free
 *     list, and checks that no page is used twice. LMDB therefore never
 *     modifies, copies or reuses a page that is not well formed; if one is
 *     damaged, no write is made in this process.
 *  4. Every call into LMDB runs under a guard (guarded()): a SIGBUS, SIGSEGV
 *     or SIGFPE raised while this thread is inside LMDB, or an LMDB
 *     assertion, jumps back (siglongjmp to a thread-local buffer) and
 *     becomes -EBADMSG, "the store's index is damaged (SIGBUS while ..., at
 *     page N of .../data.mdb): run 'vmcas verify --reindex' ...". The
 *     environment is then poisoned: nothing calls LMDB on it again but to
 *     end the transactions that are open and, with its last handle, to
 *     close it (unless ending a transaction faulted too). Values and keys
 *     are checked (the CRC) inside the guard, so the bytes a caller is
 *     handed have been read once already. A fault outside a guard goes to
 *     the handler that was there before ours (by default: a core dump). The
 *     handler is installed, chained, at every open if it is not in place.
 *  5. The page walker (pread only, every number bounds-checked, so no page
 *     can crash it) checks every page of a snapshot: its header names it,
 *     its type fits its depth, its nodes lie inside it and fill exactly the
 *     space its header says, keys are in order and within the range the
 *     parent gives, overflow runs are where and as long as their node says,
 *     every table record's counts match its pages, and every free-list entry
 *     is a page number in range. stat and verify run it in full (verify
 *     then reads no damaged table through LMDB), so does a chunk look-up
 *     that finds nothing (once per process, to say whether a damaged page
 *     hid the chunk), and reindex reads the catalog out of a damaged file
 *     with it.
 *
 * What this does not cover:
 *  - A damaged page of the chunk index can make a look-up miss until
 *    something walks it (3, 5): a miss, never wrong bytes (every value has
 *    its CRC, every record its tag); vc_store_get then says why.
 *  - The file damaged while a process runs: a fault inside LMDB is
 *    contained, but not a caller reading a value after the guard if the
 *    file was cut in between, nor damage to a page the write walk passed.
 *  - Page content that is well formed but wrong (a flipped bit in a key) is
 *    the CRC's business; a flipped bit in a free page harms nothing.
 *  - A lock.mdb deleted while another process has the index open makes the
 *    two processes' locks disagree; LMDB cannot tell.
 *  - A poisoned environment stays open while any handle of the store is: a
 *    server that meets one must drop its handles (or restart) after the
 *    repair. The signal handler is process-wide: a program that installs
 *    its own after opening a store, without chaining, loses the guard until
 *    the next open.
 *  - The walks cost a read of the file: the first write of a process, stat
 *    and verify read every page once (with pread), the open reads the
 *    catalog's pages.
 *
 * Not used: MDB_WRITEMAP. With it LMDB grows data.mdb to the map size when
 * it opens it (a cut file would be "repaired" with zeros) and writes through
 * the map, where a full disk is a SIGBUS. Without it the map is read-only,
 * so no wild pointer can write into the file, and writes go through pwrite
 * from malloc'ed pages (MDB_NOMEMINIT would only skip zeroing those).
 */
#include "store/vc_store_int.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <lmdb.h>
#include <limits.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

/* The map is a reservation of address space, not of disk: LMDB grows the
 * file only as pages are written. 1 TiB holds ~10^10 index entries. */
#define VC_DB_MAPSIZE (1ull << 40)
/* With MDB_NOTLS every live read transaction holds a slot; readers are
 * short, but a server may run many threads. */
#define VC_DB_MAXREADERS 1024
/* What a damaged index tells the user to do. */
#define VC_DB_FIX "run 'vmcas repair' to rebuild index and catalog from the packs (or 'vmcas verify --reindex' to " \
                  "rebuild the chunk index and keep what the old file still holds of the catalog)"
/* Room for a message that names a file. */
#define VC_DB_MSG (2 * PATH_MAX + 1024)

/* snprintf, for messages that may be cut short. */
static void _vc_printf_(3, 4) strf(char *buf, size_t len, const char *fmt, ...)
{
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(buf, len, fmt, ap);
        va_end(ap);
}

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
        char file[PATH_MAX];    /* .../index/data.mdb, for messages */
        char *map;              /* LMDB's map, to name the page of a fault */
        size_t mapsize;
        unsigned psize;
        /* Set once: a fault inside LMDB (broken), or damage found by the
         * full walk before the first write (write_bad). */
        atomic_int broken, write_bad, leaked;
        atomic_int walked;      /* vc_db_explain_missing: 0 not yet, 1 sound, 2 damaged (in write_msg) */
        /* Catalog tables the walk at open found damaged: never read through
         * LMDB; every access fails with table_why. */
        atomic_int table_bad[VC_DB__MAX];
        char table_why[VC_DB__MAX][512];
        bool write_checked;     /* under LMDB's write lock */
        bool lmdb_bad;          /* the walk at open found LMDB's main table damaged */
        char broken_msg[VC_DB_MSG], write_msg[VC_DB_MSG];
};

struct VcTxn {
        VcStore *s;
        MDB_txn *txn;
        bool write;
        bool dead;              /* a fault happened in it: only abort it */
        int lmdb_bad;           /* LMDB found a damaged page in it (and refuses all but its end) */
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

/* "the store's index is damaged (<why>): run 'vmcas verify --reindex' ..." */
static int _vc_printf_(2, 3) index_damaged(int err, const char *fmt, ...)
{
        char why[VC_DB_MSG];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, sizeof why, fmt, ap);
        va_end(ap);
        return vc_errf(err, "the store's index is damaged (%s): " VC_DB_FIX, why);
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
                return index_damaged(-EBADMSG, "LMDB says, %s: %s", what, mdb_strerror(rc));
        case MDB_INVALID:
                return index_damaged(-EBADMSG, "LMDB says, %s: %s", what, mdb_strerror(rc));
        case MDB_VERSION_MISMATCH:
                return vc_errf(-EPROTO, "%s: the store index has an unknown format (%s)", what, mdb_strerror(rc));
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

/* true if the stored value's CRC matches. Reads every byte of the key even
 * when the value is too short, so that a caller that names the key in a
 * message reads bytes already read under the guard. */
static bool value_ok(const MDB_val *k, const MDB_val *v)
{
        uLong c = crc32(crc32(0L, Z_NULL, 0), k->mv_data, (uInt)k->mv_size);
        if (v->mv_size < 4)
                return false;
        size_t n = v->mv_size - 4;
        c = crc32(c, v->mv_data, (uInt)n);
        return (uint32_t)c == vc_get32((const uint8_t *)v->mv_data + n);
}

/* "table parcels, key 'p1'", or for the index "chunk <hex> of domain 3". */
static void describe(VcDbTable tb, const void *k, size_t kl, char *buf, size_t len)
{
        const uint8_t *p = k;
        if (tb == VC_DB_INDEX && kl == VC_IDX_KEY_LEN) {
                char hex[2 * VC_TAG_LEN + 1];
                vc_hex(p + 8, VC_TAG_LEN, hex);
                strf(buf, len, "chunk %s of domain %" PRIu64, hex, vc_get64be(p));
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
        strf(buf, len, "table %s, key %s%s%s%s", vc_db_table_name(tb), text ? "'" : "", shown,
                 text ? "'" : "", kl > n ? "..." : "");
}

static int damaged(VcDbTable tb, const void *k, size_t kl)
{
        char what[160];
        describe(tb, k, kl, what, sizeof what);
        if (tb == VC_DB_INDEX)
                return vc_errf(-EBADMSG, "the store's index is damaged: entry %s fails its checksum; 'vmcas verify' "
                               "says what it breaks, 'vmcas verify --reindex' rebuilds the index from the packs", what);
        return vc_errf(-EBADMSG, "the store's index is damaged: catalog record %s fails its checksum; 'vmcas "
                       "repair' rebuilds the catalog from the packs (or 'vmcas verify --reindex' keeps what the "
                       "old file still holds)", what);
}

/* ---- the guard ------------------------------------------------------------------
 * guarded() runs one LMDB call with a jump buffer set for this thread. The
 * handler jumps back to it for a fault in the thread while the buffer is
 * set, and otherwise hands the signal on to the handler that was there
 * before ours (or the default action). SA_NODEFER: the signal is not
 * blocked while the handler runs, so jumping out of it needs no sigmask
 * restore (sigsetjmp(.., 0) costs no system call). */

static _Thread_local sigjmp_buf *guard_jb;
static _Thread_local int guard_sig;
static _Thread_local void *guard_addr;
static _Thread_local char guard_msg[256];

static const int guard_sigs[] = { SIGBUS, SIGSEGV, SIGFPE };
static struct sigaction guard_old[VC_ARRAY_SIZE(guard_sigs)];
static pthread_mutex_t guard_lock = PTHREAD_MUTEX_INITIALIZER;

static void on_fault(int sig, siginfo_t *si, void *uc)
{
        sigjmp_buf *jb = guard_jb;
        if (jb) {
                guard_jb = NULL;
                guard_sig = sig;
                guard_addr = si ? si->si_addr : NULL;
                siglongjmp(*jb, 1);
        }
        for (size_t i = 0; i < VC_ARRAY_SIZE(guard_sigs); i++) {
                if (guard_sigs[i] != sig)
                        continue;
                const struct sigaction *o = &guard_old[i];
                if ((o->sa_flags & SA_SIGINFO) && o->sa_sigaction) {
                        o->sa_sigaction(sig, si, uc);
                        return;
                }
                if (o->sa_handler != SIG_DFL && o->sa_handler != SIG_IGN) {
                        o->sa_handler(sig);
                        return;
                }
        }
        /* The default action: die of it, with a core dump if enabled. */
        signal(sig, SIG_DFL);
        raise(sig);
}

/* Installs the handler, chaining to the one in place. Called at every
 * vc_db_open: whoever set a handler of their own since (a test harness
 * does, around each test) is chained to in turn. */
static void guard_install(void)
{
        struct sigaction sa;
        memset(&sa, 0, sizeof sa);
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO | SA_NODEFER;
        sigemptyset(&sa.sa_mask);
        pthread_mutex_lock(&guard_lock);
        for (size_t i = 0; i < VC_ARRAY_SIZE(guard_sigs); i++) {
                struct sigaction cur;
                if (sigaction(guard_sigs[i], NULL, &cur) == 0 && (cur.sa_flags & SA_SIGINFO) &&
                    cur.sa_sigaction == on_fault)
                        continue;
                sigaction(guard_sigs[i], &sa, &guard_old[i]);
        }
        pthread_mutex_unlock(&guard_lock);
}

/* LMDB's assertions call this before abort(): inside a guard, jump back. */
static void on_assert(MDB_env *env, const char *msg)
{
        (void)env;
        sigjmp_buf *jb = guard_jb;
        if (!jb)
                return;
        strf(guard_msg, sizeof guard_msg, "%s", msg);
        guard_jb = NULL;
        guard_sig = 0;
        siglongjmp(*jb, 1);
}

/* One call into LMDB, as data for guarded(). */
typedef enum {
        OP_ENV_OPEN, OP_ENV_CLOSE, OP_TXN_BEGIN, OP_TXN_COMMIT, OP_TXN_ABORT, OP_TXN_RESET, OP_TXN_RENEW, OP_DBI_OPEN,
        OP_GET, OP_PUT, OP_DEL, OP_DROP, OP_CURSOR_OPEN, OP_CURSOR_GET, OP_CURSOR_DEL,
        OP_CALL,                /* call(arg): a reader of the map that is not LMDB */
} OpKind;

typedef struct Op {
        OpKind kind;
        MDB_env *env;
        MDB_txn *txn;
        MDB_txn **ret_txn;
        MDB_dbi dbi, *ret_dbi;
        MDB_cursor *cur, **ret_cur;
        MDB_cursor_op cop;
        const char *name;
        unsigned flags;
        MDB_val *k, *v;
        int (*call)(void *);
        void *arg;
        int rc;                 /* LMDB's result */
        bool ok;                /* OP_GET, OP_CURSOR_GET: the value's CRC matched */
} Op;

static void op_run(Op *o)
{
        switch (o->kind) {
        case OP_ENV_OPEN:
                o->rc = mdb_env_open(o->env, o->name, o->flags, 0644);
                break;
        case OP_ENV_CLOSE:
                mdb_env_close(o->env);
                break;
        case OP_TXN_BEGIN:
                o->rc = mdb_txn_begin(o->env, NULL, o->flags, o->ret_txn);
                break;
        case OP_TXN_COMMIT:
                o->rc = mdb_txn_commit(o->txn);
                break;
        case OP_TXN_ABORT:
                mdb_txn_abort(o->txn);
                break;
        case OP_TXN_RESET:
                mdb_txn_reset(o->txn);
                break;
        case OP_TXN_RENEW:
                o->rc = mdb_txn_renew(o->txn);
                break;
        case OP_DBI_OPEN:
                o->rc = mdb_dbi_open(o->txn, o->name, o->flags, o->ret_dbi);
                break;
        case OP_GET:
                o->rc = mdb_get(o->txn, o->dbi, o->k, o->v);
                o->ok = o->rc == 0 && value_ok(o->k, o->v);
                break;
        case OP_PUT:
                o->rc = mdb_put(o->txn, o->dbi, o->k, o->v, o->flags);
                break;
        case OP_DEL:
                o->rc = mdb_del(o->txn, o->dbi, o->k, NULL);
                break;
        case OP_DROP:
                o->rc = mdb_drop(o->txn, o->dbi, 0);
                break;
        case OP_CURSOR_OPEN:
                o->rc = mdb_cursor_open(o->txn, o->dbi, o->ret_cur);
                break;
        case OP_CURSOR_GET:
                o->rc = mdb_cursor_get(o->cur, o->k, o->v, o->cop);
                o->ok = o->rc == 0 && value_ok(o->k, o->v);
                break;
        case OP_CURSOR_DEL:
                o->rc = mdb_cursor_del(o->cur, 0);
                break;
        case OP_CALL:
                o->rc = o->call(o->arg);
                break;
        }
}

static bool db_broken(VcDb *db)
{
        return atomic_load(&db->broken) != 0;
}

static int broken_err(VcDb *db)
{
        return vc_errf(-EBADMSG, "%s", db->broken_msg);
}

static int table_err(VcDb *db, VcDbTable tb)
{
        return vc_errf(-EBADMSG, "the store's index is damaged (%s, table %s: %s): " VC_DB_FIX, db->file,
                       table_names[tb], db->table_why[tb]);
}

/* After a fault: the message, and the environment poisoned. */
static int fault(VcDb *db, const char *what)
{
        char why[PATH_MAX + 512];
        int sig = guard_sig;
        if (sig == 0) {
                strf(why, sizeof why, "LMDB gave up while %s: %s", what, guard_msg);
        } else {
                const char *name = sig == SIGBUS ? "SIGBUS" : sig == SIGSEGV ? "SIGSEGV" : "SIGFPE";
                uintptr_t a = (uintptr_t)guard_addr, base = (uintptr_t)db->map;
                if (db->map && db->psize && a >= base && a - base < db->mapsize)
                        strf(why, sizeof why, "%s while %s, at page %" PRIuPTR " of %s", name, what,
                                 (a - base) / db->psize, db->file);
                else
                        strf(why, sizeof why, "%s while %s in %s", name, what, db->file);
        }
        pthread_mutex_lock(&registry_lock);
        if (!atomic_load(&db->broken)) {
                strf(db->broken_msg, sizeof db->broken_msg, "the store's index is damaged (%s): " VC_DB_FIX, why);
                atomic_store(&db->broken, 1);
        }
        pthread_mutex_unlock(&registry_lock);
        return vc_errf(-EBADMSG, "the store's index is damaged (%s): " VC_DB_FIX, why);
}

/* Runs o under the guard. 0 (LMDB's result in o->rc), or -EBADMSG with a
 * message if LMDB faulted. */
static int guarded(VcDb *db, const char *what, Op *o)
{
        sigjmp_buf jb;
        sigjmp_buf *volatile prev = guard_jb;
        if (sigsetjmp(jb, 0)) {
                guard_jb = prev;
                return fault(db, what);
        }
        guard_jb = &jb;
        op_run(o);
        guard_jb = prev;
        return 0;
}

/* ---- the page walker ---------------------------------------------------------------
 * Reads data.mdb with pread, never through a map, and bounds-checks every
 * number it finds, so no page can crash it. The layouts are LMDB 0.9's
 * (liblmdb's mdb.c; LMDB writes native-endian, so they are read with memcpy
 * into native integers):
 *
 *   page header (16 bytes): pgno u64, pad u16, flags u16, then lower u16 and
 *     upper u16 (branch and leaf pages) or the page count u32 (the first page
 *     of an overflow run). lower is 16 + 2 * (number of nodes), the node
 *     offsets (u16 each) follow the header in key order, and the nodes lie
 *     in [upper, page size), filling it exactly (each rounded up to even).
 *   node (8 bytes + key + data): lo u16, hi u16, flags u16, key size u16.
 *     In a branch the child's page number is lo | hi << 16 | flags << 32 and
 *     there is no data (the first node's key is not used); in a leaf the
 *     data size is lo | hi << 16 and the data follows the key, or, with
 *     F_BIGDATA, the page number (u64) of the overflow run that holds it.
 *   meta page (0 and 1): the header, then magic u32 0xBEEFC0DE, version u32
 *     (1), address u64, map size u64, the free list's and the main table's
 *     records (48 bytes each: pad u32 (page size, in the first), flags u16,
 *     depth u16, branch pages, leaf pages, overflow pages, entries, root
 *     page, each u64), the last page number u64 and the txnid u64.
 *   the main table maps table names to such 48-byte records (F_SUBDATA);
 *   the free list maps txnids (u64 keys) to page lists: a count, then the
 *   page numbers, u64 each. */

#define LF_HDR 16
#define LF_P_BRANCH 0x01
#define LF_P_LEAF 0x02
#define LF_P_OVERFLOW 0x04
#define LF_P_META 0x08
#define LF_F_BIGDATA 0x01
#define LF_F_SUBDATA 0x02
#define LF_F_DUPDATA 0x04
#define LF_INVALID UINT64_MAX
#define LF_MAGIC 0xBEEFC0DEu
#define LF_META_END 152
#define LF_DB_LEN 48
#define LF_MAXDEPTH 32
#define LF_MAXKEY 511
#define LF_MAXTABLES 64

/* Who uses a page, in Lf.owner. Tables are LF_O_TABLE + their index. */
enum { LF_O_NONE = 0, LF_O_META, LF_O_FREE, LF_O_MAIN, LF_O_TABLE };

typedef struct LfDb {
        uint32_t pad;
        uint16_t flags, depth;
        uint64_t branch, leaf, overflow, entries, root;
} LfDb;

typedef struct LfMeta {
        bool ok;
        int err;                /* when not ok: -EBADMSG, or -EPROTO for a version we do not read */
        char why[160];
        uint32_t psize;
        uint64_t mapsize, last_pg, txnid;
        LfDb db[2];             /* the free list, the main table */
} LfMeta;

typedef struct LfTable {
        char name[LF_MAXKEY + 1];
        LfDb db;
} LfTable;

typedef struct Lf Lf;
/* A leaf record of the tree being walked. Returns 0 to go on, or an error
 * (lf_bad() for damage). */
typedef int (*lf_rec_fn)(Lf *f, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *ctx);

struct Lf {
        int fd;
        const char *file;       /* for messages */
        uint64_t size;          /* of the file */
        uint32_t psize;
        uint64_t npages;        /* last page + 1 of the snapshot walked */
        uint8_t *owner;         /* npages entries (LF_O_*), or NULL: not tracked */
        /* LMDB's map of the file, when it is open: pages are read there (under
         * the guard) rather than copied with pread. */
        const uint8_t *map;
        size_t mapsize;
        uint8_t *buf;           /* one page per depth */
        uint8_t *ov;            /* an overflow value */
        size_t ovcap;
        /* the tree being walked */
        const char *table;
        uint8_t towner;
        bool intkey, main, values;
        lf_rec_fn rec;
        void *ctx;
        uint64_t nbranch, nleaf, nover, nentries;
        char why[400];          /* its first problem */
        /* Recovery of what can be read: a damaged subtree is skipped (and
         * counted), not the end of the walk. */
        bool partial;
        uint64_t lost_pages, lost_records;
        /* the main table's records */
        LfTable tables[LF_MAXTABLES];
        size_t ntables;
        /* the free list's pages past the end of the file (precheck) */
        uint64_t *tail;
        size_t ntail, captail;
};

static void lf_db_decode(const uint8_t *p, LfDb *d)
{
        memcpy(&d->pad, p, 4);
        memcpy(&d->flags, p + 4, 2);
        memcpy(&d->depth, p + 6, 2);
        memcpy(&d->branch, p + 8, 8);
        memcpy(&d->leaf, p + 16, 8);
        memcpy(&d->overflow, p + 24, 8);
        memcpy(&d->entries, p + 32, 8);
        memcpy(&d->root, p + 40, 8);
}

static int _vc_printf_(2, 3) lf_bad(Lf *f, const char *fmt, ...)
{
        if (!f->why[0]) {
                va_list ap;
                va_start(ap, fmt);
                vsnprintf(f->why, sizeof f->why, fmt, ap);
                va_end(ap);
        }
        return -EBADMSG;
}

static const char *lf_owner_name(const Lf *f, uint8_t o)
{
        switch (o) {
        case LF_O_META: return "the meta pages";
        case LF_O_FREE: return "the free list";
        case LF_O_MAIN: return "LMDB's main table";
        default:
                if (o >= LF_O_TABLE && (size_t)(o - LF_O_TABLE) < f->ntables)
                        return f->tables[o - LF_O_TABLE].name;
                return "?";
        }
}

/* Decodes meta page pgno (its first LF_META_END bytes at p). */
static void lf_meta_decode(const uint8_t *p, uint64_t pgno, LfMeta *m)
{
        uint64_t pg;
        uint16_t flags;
        uint32_t magic, version;
        memset(m, 0, sizeof *m);
        memcpy(&pg, p, 8);
        memcpy(&flags, p + 10, 2);
        memcpy(&magic, p + 16, 4);
        memcpy(&version, p + 20, 4);
        memcpy(&m->mapsize, p + 32, 8);
        lf_db_decode(p + 40, &m->db[0]);
        lf_db_decode(p + 88, &m->db[1]);
        memcpy(&m->last_pg, p + 136, 8);
        memcpy(&m->txnid, p + 144, 8);
        m->psize = m->db[0].pad;
        m->err = -EBADMSG;
        if (magic != LF_MAGIC) {
                strf(m->why, sizeof m->why, "it holds no LMDB meta page (magic %#" PRIx32 ")", magic);
                return;
        }
        if (!(flags & LF_P_META) || pg != pgno) {
                strf(m->why, sizeof m->why, "its page header is wrong");
                return;
        }
        if (version != 1) {
                m->err = -EPROTO;
                strf(m->why, sizeof m->why, "it has LMDB data format version %" PRIu32 "; this vmcas reads 1",
                         version);
                return;
        }
        if (m->psize < 512 || m->psize > 32768 || (m->psize & (m->psize - 1))) {
                strf(m->why, sizeof m->why, "its page size %" PRIu32 " is impossible", m->psize);
                return;
        }
        if (m->last_pg < 1 || m->last_pg > (1ull << 46) / m->psize) {
                strf(m->why, sizeof m->why, "its last page number %" PRIu64 " is impossible", m->last_pg);
                return;
        }
        for (int i = 0; i < 2; i++) {
                const LfDb *d = &m->db[i];
                bool empty = d->root == LF_INVALID;
                if ((!empty && (d->root < 2 || d->root > m->last_pg)) || d->depth > LF_MAXDEPTH ||
                    (empty != (d->depth == 0))) {
                        strf(m->why, sizeof m->why, "the root of %s (page %" PRIu64 ", depth %u) is impossible",
                                 i == 0 ? "the free list" : "the main table", d->root, d->depth);
                        return;
                }
        }
        m->ok = true;
}

/* Reads both meta pages of the file open on fd. Meta page 1 is one page
 * into the file; if page 0 is damaged, the page size is found by probing. */
static int lf_read_metas(int fd, uint64_t size, LfMeta m[2])
{
        uint8_t b[LF_META_END];
        for (int i = 0; i < 2; i++) {
                memset(&m[i], 0, sizeof m[i]);
                m[i].err = -EBADMSG;
                strf(m[i].why, sizeof m[i].why, "the file is too short to hold it");
        }
        if (size < LF_META_END)
                return 0;
        int r = vc_pread_full(fd, b, sizeof b, 0);
        if (r < 0)
                return r;
        lf_meta_decode(b, 0, &m[0]);
        static const uint32_t probe[] = { 4096, 512, 1024, 2048, 8192, 16384, 32768 };
        size_t ntry = m[0].ok ? 1 : VC_ARRAY_SIZE(probe);
        for (size_t i = 0; i < ntry; i++) {
                uint32_t ps = m[0].ok ? m[0].psize : probe[i];
                if ((uint64_t)ps + LF_META_END > size)
                        continue;
                if ((r = vc_pread_full(fd, b, sizeof b, ps)) < 0)
                        return r;
                LfMeta x;
                lf_meta_decode(b, 1, &x);
                if (x.ok && x.psize != ps) {
                        x.ok = false;
                        strf(x.why, sizeof x.why, "its page size %" PRIu32 " is not where it lies", x.psize);
                }
                if (x.ok || i == 0)
                        m[1] = x;
                if (x.ok)
                        break;
        }
        return 0;
}

/* The meta LMDB uses: the higher txnid (page 0 if equal). */
static int lf_pick(const LfMeta m[2])
{
        return m[1].txnid > m[0].txnid ? 1 : 0;
}

static int lf_init(Lf *f, int fd, const char *file, uint64_t size, const LfMeta *m, bool track)
{
        memset(f, 0, sizeof *f);
        f->fd = fd;
        f->file = file;
        f->size = size;
        f->psize = m->psize;
        f->npages = m->last_pg + 1;
        f->buf = malloc((size_t)f->psize * (LF_MAXDEPTH + 2));
        if (!f->buf)
                return -ENOMEM;
        if (track) {
                /* A snapshot never uses more pages than the file holds, plus
                 * free pages past its end (checked at open). */
                uint64_t fpages = size / f->psize;
                if (f->npages > fpages + (1u << 24))
                        return lf_bad(f, "its last page %" PRIu64 " lies far past the end of the file (%" PRIu64
                                      " bytes)", m->last_pg, size);
                f->owner = calloc((size_t)f->npages, 1);
                if (!f->owner)
                        return -ENOMEM;
                f->owner[0] = f->owner[1] = LF_O_META;
        }
        return 0;
}

static void lf_done(Lf *f)
{
        free(f->buf);
        free(f->owner);
        free(f->ov);
        free(f->tail);
        f->buf = f->owner = f->ov = NULL;
        f->tail = NULL;
}

static int lf_pread(Lf *f, void *buf, size_t n, uint64_t off)
{
        int r = vc_pread_full(f->fd, buf, n, (off_t)off);
        if (r < 0)
                return vc_errf(r, "cannot read %s: %s", f->file, strerror(-r));
        return 0;
}

/* Claims pages [pgno, pgno + n) for the tree being walked. */
static int lf_claim(Lf *f, uint64_t pgno, uint64_t n)
{
        if (pgno < 2 || pgno >= f->npages || n > f->npages - pgno)
                return lf_bad(f, "it refers to page %" PRIu64 ", past its last page %" PRIu64, pgno + n - 1,
                              f->npages - 1);
        if ((pgno + n) * f->psize > f->size)
                return lf_bad(f, "page %" PRIu64 " lies past the end of the file (%" PRIu64 " bytes)", pgno + n - 1,
                              f->size);
        if (!f->owner)
                return 0;
        for (uint64_t i = pgno; i < pgno + n; i++) {
                if (f->owner[i])
                        return lf_bad(f, "page %" PRIu64 " is used twice, by %s and by %s", i,
                                      lf_owner_name(f, f->owner[i]), f->table);
                f->owner[i] = f->towner;
        }
        return 0;
}

/* Reads page pgno into the buffer of depth slot. */
static int lf_page(Lf *f, uint64_t pgno, unsigned slot, uint8_t **ret)
{
        int r = lf_claim(f, pgno, 1);
        if (r < 0)
                return r;
        uint8_t *p = f->buf + (size_t)slot * f->psize;
        if (f->map && (pgno + 1) * f->psize <= f->mapsize)
                p = (uint8_t *)f->map + pgno * f->psize;       /* only read */
        else if ((r = lf_pread(f, p, f->psize, pgno * f->psize)) < 0)
                return r;
        uint64_t hp;
        memcpy(&hp, p, 8);
        if (hp != pgno)
                return lf_bad(f, "page %" PRIu64 " is damaged: its header names page %" PRIu64, pgno, hp);
        *ret = p;
        return 0;
}

static int lf_cmp(const Lf *f, const uint8_t *a, size_t al, const uint8_t *b, size_t bl)
{
        if (f->intkey && al == 8 && bl == 8) {
                uint64_t x, y;
                memcpy(&x, a, 8);
                memcpy(&y, b, 8);
                return x < y ? -1 : x > y;
        }
        int d = memcmp(a, b, VC_MIN(al, bl));
        if (d)
                return d;
        return al < bl ? -1 : al > bl;
}

/* The data of a leaf node: in the page, or read from its overflow run (which
 * is checked and claimed). *v is NULL if values are not wanted. */
static int lf_value(Lf *f, uint64_t pgno, const uint8_t *nd, unsigned ks, uint16_t nfl, uint32_t dsz,
                    const uint8_t **v)
{
        *v = NULL;
        if (!(nfl & LF_F_BIGDATA)) {
                *v = nd + 8 + ks;
                return 0;
        }
        uint64_t op;
        memcpy(&op, nd + 8 + ks, 8);
        /* The run may be longer than the value needs: LMDB rewrites a
         * smaller value in place in the run it had. */
        uint64_t n = (LF_HDR - 1 + (uint64_t)dsz) / f->psize + 1;
        int r = lf_claim(f, op, 1);
        if (r < 0)
                return r;
        uint8_t h[LF_HDR];
        if (f->map && (op + 1) * f->psize <= f->mapsize)
                memcpy(h, f->map + op * f->psize, sizeof h);
        else if ((r = lf_pread(f, h, sizeof h, op * f->psize)) < 0)
                return r;
        uint64_t hp;
        uint16_t fl;
        uint32_t cnt;
        memcpy(&hp, h, 8);
        memcpy(&fl, h + 10, 2);
        memcpy(&cnt, h + 12, 4);
        if (hp != op || fl != LF_P_OVERFLOW || cnt < n)
                return lf_bad(f, "the overflow pages at page %" PRIu64 " of a record in page %" PRIu64
                              " are damaged", op, pgno);
        if (cnt > 1 && (r = lf_claim(f, op + 1, cnt - 1)) < 0)
                return r;
        f->nover += cnt;
        if (!f->values && !f->rec)
                return 0;
        if (f->map && (op + cnt) * f->psize <= f->mapsize) {
                *v = f->map + op * f->psize + LF_HDR;
                return 0;
        }
        if (f->ovcap < dsz) {
                uint8_t *b = realloc(f->ov, VC_MAX((size_t)dsz, (size_t)1));
                if (!b)
                        return -ENOMEM;
                f->ov = b;
                f->ovcap = dsz;
        }
        if ((r = lf_pread(f, f->ov, dsz, op * f->psize + LF_HDR)) < 0)
                return r;
        *v = f->ov;
        return 0;
}

/* One page of the tree and, for a branch, everything under it. Its keys
 * must lie in [lo, hi) (NULL: no bound). */
static int lf_node(Lf *f, uint64_t pgno, unsigned depth, unsigned leafdepth, const uint8_t *lo, size_t lol,
                   const uint8_t *hi, size_t hil)
{
        uint8_t *p = NULL;
        int r = lf_page(f, pgno, depth, &p);
        if (r < 0)
                return r;
        uint16_t flags, lower, upper;
        memcpy(&flags, p + 10, 2);
        memcpy(&lower, p + 12, 2);
        memcpy(&upper, p + 14, 2);
        bool leaf = depth == leafdepth;
        if (flags != (leaf ? LF_P_LEAF : LF_P_BRANCH))
                return lf_bad(f, "page %" PRIu64 " is damaged: it should be a %s page (flags %#x)", pgno,
                              leaf ? "leaf" : "branch", flags);
        if (lower < LF_HDR || (lower - LF_HDR) % 2 || upper < lower || upper > f->psize || lower == LF_HDR)
                return lf_bad(f, "page %" PRIu64 " is damaged: its bounds %u..%u are impossible", pgno, lower, upper);
        unsigned n = (lower - LF_HDR) / 2;
        size_t used = 0;
        const uint8_t *prev = NULL;
        size_t prevl = 0;
        for (unsigned i = 0; i < n; i++) {
                uint16_t ptr, nfl, ks;
                memcpy(&ptr, p + LF_HDR + 2 * i, 2);
                if (ptr < upper || ptr % 2 || (size_t)ptr + 8 > f->psize)
                        return lf_bad(f, "page %" PRIu64 " is damaged: node %u lies outside its node area", pgno, i);
                const uint8_t *nd = p + ptr;
                uint16_t dlo, dhi;
                memcpy(&dlo, nd, 2);
                memcpy(&dhi, nd + 2, 2);
                memcpy(&nfl, nd + 4, 2);
                memcpy(&ks, nd + 6, 2);
                uint32_t dsz = dlo | (uint32_t)dhi << 16;
                size_t sz = 8 + (size_t)ks;
                if (leaf)
                        sz += (nfl & LF_F_BIGDATA) ? 8 : dsz;
                if (ks > LF_MAXKEY || ptr + sz > f->psize)
                        return lf_bad(f, "page %" PRIu64 " is damaged: node %u runs past the end of the page", pgno, i);
                used += (sz + 1) & ~(size_t)1;
                if (!leaf && i == 0)
                        continue;       /* the leftmost child's key is not used */
                const uint8_t *k = nd + 8;
                if ((prev && lf_cmp(f, prev, prevl, k, ks) >= 0) || (lo && lf_cmp(f, k, ks, lo, lol) < 0) ||
                    (hi && lf_cmp(f, k, ks, hi, hil) >= 0))
                        return lf_bad(f, "page %" PRIu64 " is damaged: its keys are out of order at node %u", pgno, i);
                prev = k;
                prevl = ks;
        }
        if (used != (size_t)(f->psize - upper))
                return lf_bad(f, "page %" PRIu64 " is damaged: its nodes fill %zu bytes, its header says %u", pgno,
                              used, f->psize - upper);
        if (!leaf) {
                f->nbranch++;
                for (unsigned i = 0; i < n; i++) {
                        uint16_t ptr, dlo, dhi, nfl, ks;
                        memcpy(&ptr, p + LF_HDR + 2 * i, 2);
                        const uint8_t *nd = p + ptr;
                        memcpy(&dlo, nd, 2);
                        memcpy(&dhi, nd + 2, 2);
                        memcpy(&nfl, nd + 4, 2);
                        memcpy(&ks, nd + 6, 2);
                        uint64_t child = dlo | (uint64_t)dhi << 16 | (uint64_t)nfl << 32;
                        const uint8_t *clo = lo, *chi = hi;
                        size_t clol = lol, chil = hil;
                        if (i > 0) {
                                clo = nd + 8;
                                clol = ks;
                        }
                        if (i + 1 < n) {
                                uint16_t np, nks;
                                memcpy(&np, p + LF_HDR + 2 * (i + 1), 2);
                                memcpy(&nks, p + np + 6, 2);
                                chi = p + np + 8;
                                chil = nks;
                        }
                        if ((r = lf_node(f, child, depth + 1, leafdepth, clo, clol, chi, chil)) < 0) {
                                if (r != -EBADMSG || !f->partial)
                                        return r;
                                f->lost_pages++;        /* f->why keeps the first */
                        }
                }
                return 0;
        }
        f->nleaf++;
        for (unsigned i = 0; i < n; i++) {
                uint16_t ptr, dlo, dhi, nfl, ks;
                memcpy(&ptr, p + LF_HDR + 2 * i, 2);
                const uint8_t *nd = p + ptr;
                memcpy(&dlo, nd, 2);
                memcpy(&dhi, nd + 2, 2);
                memcpy(&nfl, nd + 4, 2);
                memcpy(&ks, nd + 6, 2);
                uint32_t dsz = dlo | (uint32_t)dhi << 16;
                f->nentries++;
                if (nfl & ~(LF_F_BIGDATA | LF_F_SUBDATA | LF_F_DUPDATA))
                        return lf_bad(f, "page %" PRIu64 " is damaged: node %u has flags %#x", pgno, i, nfl);
                if ((nfl & LF_F_DUPDATA) || ((nfl & LF_F_SUBDATA) && (!f->main || dsz != LF_DB_LEN ||
                                                                      (nfl & LF_F_BIGDATA))))
                        return lf_bad(f, "page %" PRIu64 " is damaged: node %u is of a kind this store never "
                                      "writes (flags %#x)", pgno, i, nfl);
                if (f->main && !(nfl & LF_F_SUBDATA))
                        continue;       /* a plain record in the main table: not ours, harmless */
                const uint8_t *v;
                if ((r = lf_value(f, pgno, nd, ks, nfl, dsz, &v)) < 0)
                        return r;
                if (f->rec && v && (r = f->rec(f, nd + 8, ks, v, dsz, f->ctx)) < 0)
                        return r;
        }
        return 0;
}

/* Walks one tree. table names it in messages; owner marks its pages. */
static int lf_tree(Lf *f, const LfDb *db, const char *table, uint8_t owner, bool intkey, bool main, lf_rec_fn rec,
                   void *ctx)
{
        f->table = table;
        f->towner = owner;
        f->intkey = intkey;
        f->main = main;
        f->rec = rec;
        f->ctx = ctx;
        f->why[0] = 0;
        f->nbranch = f->nleaf = f->nover = f->nentries = 0;
        if (db->root == LF_INVALID) {
                if (db->depth || db->entries || db->branch || db->leaf || db->overflow)
                        return lf_bad(f, "its record says it is empty and holds %" PRIu64 " entries", db->entries);
                return 0;
        }
        if (db->depth == 0 || db->depth > LF_MAXDEPTH)
                return lf_bad(f, "its record gives an impossible depth %u", db->depth);
        int r = lf_node(f, db->root, 1, db->depth, NULL, 0, NULL, 0);
        if (r < 0)
                return r;
        if (f->partial && (f->lost_pages || f->lost_records))
                return 0;       /* the counts cannot match */
        if (f->nbranch != db->branch || f->nleaf != db->leaf || f->nover != db->overflow || f->nentries != db->entries)
                return lf_bad(f, "its record counts %" PRIu64 " entries in %" PRIu64 "+%" PRIu64 "+%" PRIu64
                              " pages, its pages hold %" PRIu64 " in %" PRIu64 "+%" PRIu64 "+%" PRIu64,
                              db->entries, db->branch, db->leaf, db->overflow, f->nentries, f->nbranch, f->nleaf,
                              f->nover);
        return 0;
}

static int lf_main_rec(Lf *f, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *ctx)
{
        (void)ctx;
        if (f->ntables == LF_MAXTABLES)
                return lf_bad(f, "it names more than %d tables", LF_MAXTABLES);
        LfTable *t = &f->tables[f->ntables];
        memcpy(t->name, k, kl);
        t->name[kl] = 0;
        lf_db_decode(v, &t->db);
        (void)vl;
        if (strlen(t->name) != kl)
                return lf_bad(f, "it names a table with a NUL in its name");
        f->ntables++;
        return 0;
}

/* The free list's records: page lists. Marks each page free (owner) or,
 * for the precheck, collects those past the end of the file. */
static int lf_free_rec(Lf *f, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *ctx)
{
        (void)ctx;
        (void)k;
        uint64_t n;
        if (kl != 8 || vl < 8 || vl % 8 || (memcpy(&n, v, 8), n != vl / 8 - 1))
                return lf_bad(f, "a free-list record is malformed");
        uint64_t fpages = f->size / f->psize;
        for (uint64_t i = 1; i <= n; i++) {
                uint64_t pg;
                memcpy(&pg, v + 8 * i, 8);
                if (pg < 2 || pg >= f->npages)
                        return lf_bad(f, "it lists page %" PRIu64 " as free, past its last page %" PRIu64, pg,
                                      f->npages - 1);
                if (f->owner) {
                        if (f->owner[pg])
                                return lf_bad(f, "page %" PRIu64 " is listed as free, but is used by %s", pg,
                                              lf_owner_name(f, f->owner[pg]));
                        f->owner[pg] = LF_O_FREE;
                } else if (pg >= fpages) {
                        if (f->ntail == f->captail) {
                                size_t c = f->captail ? 2 * f->captail : 64;
                                uint64_t *nt = realloc(f->tail, c * sizeof *nt);
                                if (!nt)
                                        return -ENOMEM;
                                f->tail = nt;
                                f->captail = c;
                        }
                        f->tail[f->ntail++] = pg;
                }
        }
        return 0;
}

static int u64_cmp(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* Checks that the file holds every page snapshot m may use: the bytes up
 * to its last page, or the pages past the end of the file are all free.
 * Sets *need to the bytes the pages in use need. 0 or -EBADMSG. */
static int lf_size_check(int fd, const char *file, uint64_t size, const LfMeta *m, uint64_t *need)
{
        *need = (m->last_pg + 1) * (uint64_t)m->psize;
        if (size >= *need)
                return 0;
        Lf f;
        int r = lf_init(&f, fd, file, size, m, false);
        if (r == 0)
                r = lf_tree(&f, &m->db[0], "the free list", LF_O_FREE, true, false, lf_free_rec, NULL);
        if (r == 0) {
                /* The pages at or past the end of the file that are not free. */
                uint64_t fpages = size / m->psize, hi = 0;
                qsort(f.tail, f.ntail, sizeof *f.tail, u64_cmp);
                size_t j = 0;
                for (uint64_t pg = m->last_pg; pg >= fpages && pg >= 2; pg--) {
                        while (j < f.ntail && f.tail[f.ntail - 1 - j] > pg)
                                j++;
                        if (j < f.ntail && f.tail[f.ntail - 1 - j] == pg)
                                continue;
                        hi = pg + 1;
                        break;
                }
                *need = hi * (uint64_t)m->psize;
                r = hi ? -EBADMSG : 0;
        }
        lf_done(&f);
        return r == -ENOMEM ? r : r < 0 ? -EBADMSG : 0;
}

/* One look at the file open on fd: 0, or an error with its reason in why. */
static int precheck_once(int fd, const char *file, char *why, size_t len)
{
        struct stat st;
        LfMeta m[2];
        int r;
        if (fstat(fd, &st) < 0)
                r = -errno;
        else
                r = lf_read_metas(fd, (uint64_t)st.st_size, m);
        if (r < 0) {
                strf(why, len, "cannot read %s: %s", file, strerror(-r));
                return r;
        }
        for (int i = 0; i < 2; i++)
                if (!m[i].ok) {
                        if (m[i].err == -EPROTO)
                                strf(why, len, "%s: meta page %d: %s", file, i, m[i].why);
                        else
                                strf(why, len, "meta page %d of %s is damaged: %s", i, file, m[i].why);
                        return m[i].err;
                }
        uint64_t need;
        r = lf_size_check(fd, file, (uint64_t)st.st_size, &m[lf_pick(m)], &need);
        if (r == -EBADMSG)
                strf(why, len, "%s is %" PRIu64 " bytes, but its pages in use need %" PRIu64, file,
                         (uint64_t)st.st_size, need);
        else if (r < 0)
                strf(why, len, "cannot check %s: %s", file, strerror(-r));
        return r;
}

/* Checks a data.mdb before LMDB maps it (step 1 above). -ENODATA if it is
 * missing or empty, -EBADMSG if damaged, -EPROTO for a format we do not
 * read; each with a message naming the file. */
static int precheck(const char *dir)
{
        char file[PATH_MAX], lock[PATH_MAX], why[PATH_MAX + 256];
        struct stat st;
        strf(file, sizeof file, "%s/data.mdb", dir);
        strf(lock, sizeof lock, "%s/lock.mdb", dir);
        if (lstat(lock, &st) == 0 && !S_ISREG(st.st_mode))
                return index_damaged(-EBADMSG, "%s is not a regular file", lock);
        if (lstat(file, &st) < 0) {
                if (errno == ENOENT)
                        return vc_errf(-ENODATA, "the store's index is missing (there is no %s): " VC_DB_FIX, file);
                return vc_errf(-errno, "cannot open the store index '%s': %s", file, strerror(errno));
        }
        if (!S_ISREG(st.st_mode))
                return index_damaged(-EBADMSG, "%s is not a regular file", file);
        if (st.st_size == 0)
                return vc_errf(-ENODATA, "the store's index is empty (%s is 0 bytes): " VC_DB_FIX, file);
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return vc_errf(-errno, "cannot open the store index '%s': %s", file, strerror(errno));
        /* A writer in another process may be rewriting a meta page right
         * now: what looks damaged is looked at again. */
        int r = precheck_once(fd, file, why, sizeof why);
        for (int i = 0; i < 2 && r == -EBADMSG; i++) {
                nanosleep(&(struct timespec){ 0, 20 * 1000 * 1000 }, NULL);
                r = precheck_once(fd, file, why, sizeof why);
        }
        close(fd);
        if (r == -EBADMSG)
                return index_damaged(r, "%s", why);
        if (r == -EPROTO)
                return vc_errf(r, "the store's index has a format this vmcas does not read (%s)", why);
        if (r < 0)
                return vc_errf(r, "%s", why);
        return 0;
}

/* ---- walking a snapshot of an open environment ------------------------------- */

/* Which trees walk_file reads. */
enum { WALK_CATALOG = 1, WALK_ALL = 2 };

typedef struct Problems {
        int n;
        vc_db_page_fn fn;
        void *ctx;
        char *first;
        size_t firstlen;
} Problems;

static void problem(Problems *p, const char *table, const char *why)
{
        p->n++;
        if (p->fn)
                p->fn(table, why, p->ctx);
        if (p->first && p->n == 1) {
                if (table && *table)
                        strf(p->first, p->firstlen, "table %s: %s", table, why);
                else
                        strf(p->first, p->firstlen, "%s", why);
        }
}

/* Walks snapshot m of the file on fd: the main table, then its tables (with
 * WALK_CATALOG all but the chunk index), then with WALK_ALL the free list.
 * Calls fn (if given) for every tree with a problem (table NULL: LMDB's
 * own structures); returns the number of problems, or -errno. */
static int walk_file(int fd, const char *file, const LfMeta *m, int what, vc_db_page_fn fn, void *ctx,
                     char *first, size_t firstlen, const uint8_t *map, size_t mapsize)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return vc_errf(-errno, "cannot read %s: %s", file, strerror(errno));
        Problems p = { .fn = fn, .ctx = ctx, .first = first, .firstlen = firstlen };
        Lf f;
        int r = lf_init(&f, fd, file, (uint64_t)st.st_size, m, true);
        f.map = map;
        f.mapsize = map ? VC_MIN(mapsize, (size_t)st.st_size) : 0;
        if (r == 0) {
                r = lf_tree(&f, &m->db[1], "LMDB's main table", LF_O_MAIN, false, true, lf_main_rec, NULL);
                if (r == -EBADMSG) {
                        char why[sizeof f.why + 32];
                        strf(why, sizeof why, "LMDB's main table: %s", f.why);
                        problem(&p, NULL, why);
                        r = 1;  /* its tables cannot be found: stop */
                }
        }
        for (size_t i = 0; r == 0 && i < f.ntables; i++) {
                LfTable *t = &f.tables[i];
                if (what == WALK_CATALOG && strcmp(t->name, table_names[VC_DB_INDEX]) == 0)
                        continue;
                r = lf_tree(&f, &t->db, t->name, (uint8_t)(LF_O_TABLE + i), false, false, NULL, NULL);
                if (r == -EBADMSG) {
                        problem(&p, t->name, f.why);
                        r = 0;
                }
        }
        if (r == 0 && what == WALK_ALL) {
                r = lf_tree(&f, &m->db[0], "the free list", LF_O_FREE, true, false, lf_free_rec, NULL);
                if (r == -EBADMSG) {
                        char why[sizeof f.why + 32];
                        strf(why, sizeof why, "the free list: %s", f.why);
                        problem(&p, "", why);
                        r = 0;
                }
        }
        if (r == -EBADMSG) {    /* from lf_init */
                problem(&p, NULL, f.why);
                r = 0;
        }
        lf_done(&f);
        return r < 0 ? r : p.n;
}

typedef struct WalkArgs {
        int fd;
        const char *file;
        const LfMeta *m;
        int what;
        vc_db_page_fn fn;
        void *ctx;
        char *first;
        size_t firstlen;
        const uint8_t *map;
        size_t mapsize;
} WalkArgs;

static int walk_call(void *arg)
{
        WalkArgs *a = arg;
        return walk_file(a->fd, a->file, a->m, a->what, a->fn, a->ctx, a->first, a->firstlen, a->map, a->mapsize);
}

/* The meta of the snapshot txnid, read from the file (LMDB does not say
 * where its roots are). 0, 1 if neither meta page is that snapshot any
 * more (a writer committed twice since), or -errno. */
static int snapshot_meta(int fd, uint64_t txnid, LfMeta *ret)
{
        struct stat st;
        if (fstat(fd, &st) < 0)
                return -errno;
        LfMeta m[2];
        int r = lf_read_metas(fd, (uint64_t)st.st_size, m);
        if (r < 0)
                return r;
        for (int i = 0; i < 2; i++)
                if (m[i].ok && m[i].txnid == txnid) {
                        *ret = m[i];
                        return 0;
                }
        return 1;
}

/* Walks the snapshot of transaction txn. Returns the number of problems
 * (the first in first), 0, or -errno; -EAGAIN if the snapshot's meta page
 * was overwritten meanwhile (only possible for a read transaction). */
static int walk_txn(VcDb *db, MDB_txn *txn, bool write, int what, vc_db_page_fn fn, void *ctx, char *first,
                    size_t firstlen)
{
        int fd;
        if (mdb_env_get_fd(db->env, &fd) != 0)
                return -EIO;
        uint64_t id = (uint64_t)mdb_txn_id(txn) - (write ? 1 : 0);
        LfMeta m;
        int r = snapshot_meta(fd, id, &m);
        if (r < 0)
                return vc_errf(r, "cannot read %s: %s", db->file, strerror(-r));
        if (r == 1) {
                if (!write)
                        return -EAGAIN;
                if (first)
                        strf(first, firstlen, "neither meta page is the snapshot LMDB uses (txn %" PRIu64 ")", id);
                if (fn)
                        fn(NULL, "neither meta page is the snapshot LMDB uses", ctx);
                return 1;
        }
        /* Through LMDB's map, so under the guard: a file cut meanwhile
         * would be a SIGBUS. */
        WalkArgs a = { fd, db->file, &m, what, fn, ctx, first, firstlen, (const uint8_t *)db->map, db->mapsize };
        Op o = { .kind = OP_CALL, .call = walk_call, .arg = &a };
        if ((r = guarded(db, "checking the pages of the store index", &o)) < 0)
                return r;
        return o.rc;
}

/* ---- environment ------------------------------------------------------------ */

static void env_close(VcDb *db)
{
        /* In a forked child the parent's env must not even be closed. After
         * a fault it is closed only if every transaction could be ended
         * (the last handle is gone, so none is open); if ending one faulted
         * too, LMDB's state is unknown: leave it to the exit. */
        if (db->env && db->pid == getpid() && !atomic_load(&db->leaked)) {
                Op o = { .kind = OP_ENV_CLOSE, .env = db->env };
                if (guarded(db, "closing the store index", &o) < 0) {
                        vc_errclear();
                        return;         /* and db leaks with it */
                }
        }
        free(db);
}

/* Starts a transaction; a write transaction walks every page first, once
 * per process (step 3 above). */
static int txn_begin(VcDb *db, bool write, MDB_txn **ret)
{
        if (db_broken(db))
                return broken_err(db);
        if (write && atomic_load(&db->write_bad))
                return vc_errf(-EBADMSG, "%s", db->write_msg);
        Op o = { .kind = OP_TXN_BEGIN, .env = db->env, .flags = write ? 0 : MDB_RDONLY, .ret_txn = ret };
        int r = guarded(db, write ? "starting a write transaction" : "starting a read transaction", &o);
        if (r < 0)
                return r;
        if (o.rc)
                return db_err(o.rc, write ? "starting a write transaction" : "starting a read transaction");
        if (!write || db->write_checked)
                return 0;
        char first[512] = "";
        r = walk_txn(db, *ret, true, WALK_ALL, NULL, NULL, first, sizeof first);
        if (r == 0) {
                db->write_checked = true;
                return 0;
        }
        Op a = { .kind = OP_TXN_ABORT, .txn = *ret };
        if (guarded(db, "ending a transaction", &a) < 0)
                atomic_store(&db->leaked, 1);
        *ret = NULL;
        if (r < 0)
                return r;
        strf(db->write_msg, sizeof db->write_msg, "the store's index is damaged (%s, %s): " VC_DB_FIX, db->file,
                 first);
        atomic_store(&db->write_bad, 1);
        return vc_errf(-EBADMSG, "%s", db->write_msg);
}

static void txn_abort_raw(VcDb *db, MDB_txn *txn)
{
        Op a = { .kind = OP_TXN_ABORT, .txn = txn };
        if (guarded(db, "ending a transaction", &a) < 0)
                atomic_store(&db->leaked, 1);
}

/* The walk at open: which tables are damaged. */
static void mark_bad(const char *table, const char *why, void *ctx)
{
        VcDb *db = ctx;
        if (!table || !*table) {
                db->lmdb_bad = true;
                return;
        }
        for (int i = 0; i < VC_DB__MAX; i++)
                if (strcmp(table, table_names[i]) == 0) {
                        strf(db->table_why[i], sizeof db->table_why[i], "%s", why);
                        atomic_store(&db->table_bad[i], 1);
                }
}

static int env_open(const char *dir, VcDbMode mode, VcDb *db)
{
        int rc = mdb_env_create(&db->env);
        if (rc)
                return db_err(rc, "creating the index environment");
        mdb_env_set_assert(db->env, on_assert);
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
         * NORDAHEAD: index lookups are random; readahead only pollutes.
         * Not WRITEMAP: see the top of this file. */
        Op o = { .kind = OP_ENV_OPEN, .env = db->env, .name = dir, .flags = MDB_NOTLS | MDB_NORDAHEAD };
        int r = guarded(db, "opening the store index", &o);
        if (r < 0)
                return r;
        if (o.rc)
                return vc_errf(db_err(o.rc, "opening the store index"), "cannot open the store index in '%s': %s",
                               dir, mdb_strerror(o.rc));
        MDB_envinfo info;
        MDB_stat est;
        if (mdb_env_info(db->env, &info) == 0 && mdb_env_stat(db->env, &est) == 0) {
                db->map = info.me_mapaddr;
                db->mapsize = info.me_mapsize;
                db->psize = est.ms_psize;
        }
        /* Slots of readers killed by a signal would pin old pages forever. */
        int dead;
        mdb_reader_check(db->env, &dead);

        /* Open the tables read-only first, so that opening a store does not
         * wait for another process's write transaction; create them only for
         * a new store. Before LMDB reads any of them, the walker reads the
         * catalog's pages (step 2 above). */
        for (int pass = 0; pass < 2; pass++) {
                bool create = pass == 1;
                MDB_txn *txn;
                r = txn_begin(db, create, &txn);
                if (r < 0)
                        return r;
                if (!create && mode == VC_DB_EXISTING) {
                        char first[512] = "";
                        int w = -EAGAIN;
                        for (int i = 0; i < 5 && w == -EAGAIN; i++) {
                                for (int t = 0; t < VC_DB__MAX; t++)
                                        atomic_store(&db->table_bad[t], 0);
                                db->lmdb_bad = false;
                                w = walk_txn(db, txn, false, WALK_CATALOG, mark_bad, db, first, sizeof first);
                                if (w == -EAGAIN) {
                                        Op x = { .kind = OP_TXN_RESET, .txn = txn };
                                        Op y = { .kind = OP_TXN_RENEW, .txn = txn };
                                        if ((r = guarded(db, "renewing a read transaction", &x)) < 0 ||
                                            (r = guarded(db, "renewing a read transaction", &y)) < 0)
                                                return r;
                                        if (y.rc) {
                                                txn_abort_raw(db, txn);
                                                return db_err(y.rc, "renewing a read transaction");
                                        }
                                }
                        }
                        /* -EAGAIN still: a busy writer; step 3 guards writes. */
                        if (w < 0 && w != -EAGAIN) {
                                txn_abort_raw(db, txn);
                                return w;
                        }
                        /* LMDB's own tables damaged: nothing can be read.
                         * A damaged table of ours: that one cannot. */
                        if (w > 0 && db->lmdb_bad) {
                                txn_abort_raw(db, txn);
                                return index_damaged(-EBADMSG, "%s, %s", db->file, first);
                        }
                }
                int missing = 0;
                const char *which = NULL;
                for (int i = 0; i < VC_DB__MAX && r == 0; i++) {
                        Op d = { .kind = OP_DBI_OPEN, .txn = txn, .name = table_names[i],
                                 .flags = create ? MDB_CREATE : 0, .ret_dbi = &db->dbi[i] };
                        if ((r = guarded(db, "opening the index tables", &d)) < 0)
                                return r;
                        rc = d.rc;
                        if (rc == MDB_NOTFOUND && !create) {
                                missing++;
                                which = table_names[i];
                                rc = 0;
                        }
                        if (rc)
                                break;
                }
                if (rc) {
                        txn_abort_raw(db, txn);
                        return db_err(rc, "opening the index tables");
                }
                if (!create && missing) {
                        txn_abort_raw(db, txn);
                        if (mode == VC_DB_EXISTING)
                                return index_damaged(-EBADMSG, "%s has no table '%s'", db->file, which);
                        continue;
                }
                Op c = { .kind = OP_TXN_COMMIT, .txn = txn };
                if ((r = guarded(db, "opening the index tables", &c)) < 0)
                        return r;
                if (c.rc)
                        return db_err(c.rc, "opening the index tables");
                return 0;
        }
        return 0;
}

int vc_db_open(const char *dir, VcDbMode mode, VcDb **ret)
{
        guard_install();
        struct stat st;
        if (stat(dir, &st) < 0)
                return vc_errf(-errno, "cannot open the store index '%s': %s", dir, strerror(errno));
        pid_t pid = getpid();
        pthread_mutex_lock(&registry_lock);
        for (VcDb *d = registry; d; d = d->next)
                if (d->dev == st.st_dev && d->ino == st.st_ino && d->pid == pid) {
                        if (db_broken(d)) {
                                pthread_mutex_unlock(&registry_lock);
                                return broken_err(d);
                        }
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
        strf(db->file, sizeof db->file, "%s/data.mdb", dir);
        /* A new environment may be made only where there is nothing. */
        int r = 0;
        struct stat fst;
        if (mode == VC_DB_EXISTING || (stat(db->file, &fst) == 0 && fst.st_size > 0))
                r = precheck(dir);
        if (r == 0)
                r = env_open(dir, mode, db);
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

int vc_db_set_nosync(VcDb *db)
{
        int rc = mdb_env_set_flags(db->env, MDB_NOSYNC, 1);
        return rc ? db_err(rc, "setting the index's sync mode") : 0;
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
        if (!db)
                return -EINVAL;
        char dir[PATH_MAX];
        strf(dir, sizeof dir, "%s", db->file);
        char *slash = strrchr(dir, '/');
        if (slash)
                *slash = 0;
        uint64_t total = 0;
        static const char *const files[] = { "data.mdb", "lock.mdb" };
        for (size_t i = 0; i < VC_ARRAY_SIZE(files); i++) {
                char p[PATH_MAX + 16];
                struct stat st;
                strf(p, sizeof p, "%s/%s", dir, files[i]);
                if (stat(p, &st) == 0)
                        total += (uint64_t)st.st_size;
        }
        *ret = total;
        return 0;
}

bool vc_db_in_use(VcDb *db)
{
        return db && db->refs > 1;
}

/* ---- checking, replacing and reading a damaged index --------------------------- */

int vc_db_check_pages(VcTxn *t, vc_db_page_fn fn, void *ctx)
{
        VcDb *db = t->s->db;
        if (db_broken(db))
                return broken_err(db);
        if (t->dead)
                return broken_err(db);
        char first[512] = "";
        int r = walk_txn(db, t->txn, t->write, WALK_ALL, fn, ctx, first, sizeof first);
        if (r == -EAGAIN)
                return vc_errf(-EAGAIN, "the store index changed too fast to be checked; try again");
        if (r > 0 && !fn)
                return index_damaged(-EBADMSG, "%s, %s", db->file, first);
        return r;
}

int vc_db_explain_missing(VcDb *db)
{
        int state = atomic_load(&db->walked);
        if (state == 0) {
                MDB_txn *txn;
                int r = txn_begin(db, false, &txn);
                if (r < 0)
                        return r;
                char first[VC_DB_MSG] = "";
                int w = -EAGAIN;
                for (int i = 0; i < 5 && w == -EAGAIN; i++) {
                        if (i > 0) {
                                Op x = { .kind = OP_TXN_RESET, .txn = txn };
                                Op y = { .kind = OP_TXN_RENEW, .txn = txn };
                                if ((r = guarded(db, "renewing a read transaction", &x)) < 0 ||
                                    (r = guarded(db, "renewing a read transaction", &y)) < 0)
                                        return r;
                                if (y.rc)
                                        break;
                        }
                        w = walk_txn(db, txn, false, WALK_ALL, NULL, NULL, first, sizeof first);
                }
                txn_abort_raw(db, txn);
                vc_errclear();
                if (w < 0)
                        return -ENOENT; /* cannot tell */
                pthread_mutex_lock(&registry_lock);
                if (w > 0 && !atomic_load(&db->write_bad)) {
                        strf(db->write_msg, sizeof db->write_msg,
                             "the store's index is damaged (%s, %s): " VC_DB_FIX, db->file, first);
                        atomic_store(&db->write_bad, 1);
                }
                atomic_store(&db->walked, w > 0 ? 2 : 1);
                pthread_mutex_unlock(&registry_lock);
                state = w > 0 ? 2 : 1;
        }
        if (state == 2)
                return vc_errf(-EBADMSG, "%s", db->write_msg);
        return -ENOENT;
}

int vc_db_move_aside(const char *dir, char *moved, size_t len)
{
        /* No process may have it open: LMDB holds a shared fcntl() lock on
         * the first byte of lock.mdb for as long as an environment is open.
         * (Call this only when this process has not opened it, or the probe
         * would both succeed and drop this process's own locks.) */
        char lock[PATH_MAX];
        strf(lock, sizeof lock, "%s/lock.mdb", dir);
        int fd = open(lock, O_RDWR | O_CLOEXEC);
        if (fd >= 0) {
                struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET, .l_start = 0, .l_len = 1 };
                int busy = fcntl(fd, F_SETLK, &fl) < 0 && (errno == EACCES || errno == EAGAIN);
                close(fd);
                if (busy)
                        return vc_errf(-EBUSY, "another process has the store's index open (%s is locked); stop it "
                                       "before reindexing", lock);
        }
        time_t now = time(NULL);
        struct tm tm;
        char stamp[32];
        gmtime_r(&now, &tm);
        strftime(stamp, sizeof stamp, "%Y%m%dT%H%M%SZ", &tm);
        for (int i = 0; i < 100; i++) {
                if (i == 0)
                        strf(moved, len, "%s.damaged-%s", dir, stamp);
                else
                        strf(moved, len, "%s.damaged-%s-%d", dir, stamp, i);
                struct stat st;
                if (lstat(moved, &st) == 0)
                        continue;
                if (rename(dir, moved) < 0)
                        return vc_errf(-errno, "cannot move the damaged index %s aside to %s: %s", dir, moved,
                                       strerror(errno));
                if (mkdir(dir, 0755) < 0)
                        return vc_errf(-errno, "cannot create %s: %s", dir, strerror(errno));
                char parent[PATH_MAX];
                strf(parent, sizeof parent, "%s", dir);
                char *slash = strrchr(parent, '/');
                if (slash)
                        *slash = 0;
                return vc_fsync_dir(slash ? parent : ".");
        }
        return vc_errf(-EEXIST, "cannot find a name to move the damaged index %s aside to", dir);
}

typedef struct Recover {
        VcTxn *t;               /* NULL: only check */
        VcDbTable tb;
        uint64_t records;
} Recover;

static int recover_rec(Lf *f, const uint8_t *k, size_t kl, const uint8_t *v, size_t vl, void *ctx)
{
        Recover *x = ctx;
        if (vl < 4 || value_crc(k, kl, v, vl - 4) != vc_get32(v + vl - 4)) {
                char what[160];
                describe(x->tb, k, kl, what, sizeof what);
                int r = lf_bad(f, "record %s is damaged (checksum mismatch)", what);
                if (!f->partial)
                        return r;
                f->lost_records++;
                return 0;
        }
        x->records++;
        if (!x->t)
                return 0;
        return vc_db_put(x->t, x->tb, k, kl, v, vl - 4);
}

/* Walks tables tbs of snapshot m; with t, copies their records into it.
 * With partial, a damaged page loses what is under it (counted in *lost)
 * rather than failing the walk; the root of a table must read back. */
static int recover_snapshot(int fd, const char *file, uint64_t size, const LfMeta *m, const VcDbTable *tbs,
                            size_t n, VcTxn *t, bool partial, uint64_t *records, uint64_t *lost, char *why,
                            size_t whylen)
{
        Lf f;
        int r = lf_init(&f, fd, file, size, m, true);
        if (r == 0)
                r = lf_tree(&f, &m->db[1], "LMDB's main table", LF_O_MAIN, false, true, lf_main_rec, NULL);
        f.values = true;
        f.partial = partial;
        char first[sizeof f.why] = "";
        for (size_t i = 0; r == 0 && i < n; i++) {
                const char *name = table_names[tbs[i]];
                const LfTable *lt = NULL;
                for (size_t j = 0; j < f.ntables; j++)
                        if (strcmp(f.tables[j].name, name) == 0)
                                lt = &f.tables[j];
                if (!lt) {
                        r = lf_bad(&f, "it has no table '%s'", name);
                        break;
                }
                Recover x = { .t = t, .tb = tbs[i] };
                f.lost_pages = f.lost_records = 0;
                r = lf_tree(&f, &lt->db, name, (uint8_t)(LF_O_TABLE + (lt - f.tables)), false, false, recover_rec,
                            &x);
                *records += x.records;
                *lost += f.lost_pages + f.lost_records;
                if ((r == -EBADMSG || f.lost_pages || f.lost_records) && f.why[0] && !first[0])
                        strf(first, sizeof first, "table %s: %s", name, f.why);
        }
        if (r == -EBADMSG && !first[0])
                strf(first, sizeof first, "%s", f.why);
        if (first[0])
                strf(why, whylen, "%s", first);
        lf_done(&f);
        return r;
}

int vc_db_recover(const char *dir, VcTxn *t, const VcDbTable *whole, size_t nwhole, const VcDbTable *part,
                  size_t npart, VcDbRecovered *ret)
{
        memset(ret, 0, sizeof *ret);
        char file[PATH_MAX];
        struct stat st;
        strf(file, sizeof file, "%s/data.mdb", dir);
        if (lstat(file, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
                strf(ret->why, sizeof ret->why, "%s is %s", file,
                     lstat(file, &st) < 0 ? "missing" : !S_ISREG(st.st_mode) ? "not a regular file" : "empty");
                return 0;
        }
        int fd = open(file, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
                strf(ret->why, sizeof ret->why, "cannot open %s: %s", file, strerror(errno));
                return 0;
        }
        LfMeta m[2];
        int r = lf_read_metas(fd, (uint64_t)st.st_size, m);
        if (r < 0) {
                strf(ret->why, sizeof ret->why, "cannot read %s: %s", file, strerror(-r));
                close(fd);
                return 0;
        }
        VcDbTable all[2 * VC_DB__MAX];
        size_t nall = 0;
        for (size_t i = 0; i < nwhole; i++)
                all[nall++] = whole[i];
        for (size_t i = 0; i < npart; i++)
                all[nall++] = part[i];
        /* The newest snapshot first, then the one before it (LMDB keeps
         * the pages of both until the next commit). */
        int order[2] = { lf_pick(m), 1 - lf_pick(m) };
        if (!m[order[0]].ok) {
                order[0] = 1 - order[0];
                order[1] = 1 - order[1];
        }
        uint64_t size = (uint64_t)st.st_size;
        char why[400];
        /* 1. A snapshot in which every table reads back whole. */
        for (int k = 0; k < 2 && ret->from == 0; k++) {
                const LfMeta *mm = &m[order[k]];
                uint64_t records = 0, lost = 0;
                why[0] = 0;
                if (!mm->ok) {
                        if (!ret->why[0])
                                strf(ret->why, sizeof ret->why, "meta page %d is damaged: %s", order[k], mm->why);
                        continue;
                }
                r = recover_snapshot(fd, file, size, mm, all, nall, NULL, false, &records, &lost, why, sizeof why);
                if (r == -EBADMSG) {
                        if (!ret->why[0])
                                strf(ret->why, sizeof ret->why, "%s", why);
                        continue;
                }
                if (r < 0)
                        goto out;
                records = 0;
                if ((r = recover_snapshot(fd, file, size, mm, all, nall, t, false, &records, &lost, why,
                                          sizeof why)) < 0)
                        goto out;
                /* The newest only if the other meta page is readable and
                 * older: a damaged one may have held a newer snapshot. */
                ret->from = k == 0 && m[order[1]].ok ? 1 : 2;
                if (ret->from == 2 && !ret->why[0])
                        strf(ret->why, sizeof ret->why, "meta page %d is damaged: the snapshot it held may have "
                             "been newer", order[1]);
                ret->txnid = mm->txnid;
                ret->records = records;
        }
        /* 2. The newest in which the tables in whole do: those, and what
         * can be read of the others. */
        for (int k = 0; k < 2 && ret->from == 0 && npart; k++) {
                const LfMeta *mm = &m[order[k]];
                uint64_t records = 0, lost = 0;
                if (!mm->ok)
                        continue;
                r = recover_snapshot(fd, file, size, mm, whole, nwhole, NULL, false, &records, &lost, why,
                                     sizeof why);
                if (r == -EBADMSG)
                        continue;
                if (r < 0)
                        goto out;
                /* which of the others keep their root */
                VcDbTable ok[VC_DB__MAX];
                size_t nok = 0;
                for (size_t i = 0; i < npart; i++) {
                        uint64_t rr = 0, ll = 0;
                        int q = recover_snapshot(fd, file, size, mm, &part[i], 1, NULL, true, &rr, &ll, why,
                                                 sizeof why);
                        if (q == 0)
                                ok[nok++] = part[i];
                        else if (q != -EBADMSG) {
                                r = q;
                                goto out;
                        }
                }
                if (nok == 0)
                        continue;
                records = lost = 0;
                why[0] = 0;
                if ((r = recover_snapshot(fd, file, size, mm, whole, nwhole, t, false, &records, &lost, why,
                                          sizeof why)) < 0 ||
                    (r = recover_snapshot(fd, file, size, mm, ok, nok, t, true, &records, &lost, why,
                                          sizeof why)) < 0)
                        goto out;
                ret->from = 3;
                ret->txnid = mm->txnid;
                ret->records = records;
                ret->lost = lost + (npart - nok);
                if (why[0])
                        strf(ret->why, sizeof ret->why, "%s", why);
        }
        r = 0;
out:
        close(fd);
        return r < 0 && r != -EBADMSG ? r : 0;
}

/* ---- transactions -------------------------------------------------------------- */

int vc_txn_begin(VcStore *s, bool write, VcTxn **ret)
{
        if (!s->db)
                return vc_errf(s->index_err ? s->index_err : -EBADMSG, "%s",
                               s->index_msg ? s->index_msg : "the store's index is not open");
        VcTxn *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        int r = txn_begin(s->db, write, &t->txn);
        if (r < 0) {
                free(t);
                return r;
        }
        t->s = s;
        t->write = write;
        *ret = t;
        return 0;
}

/* Before every operation on t: is the environment still sound? */
static int txn_live(VcTxn *t)
{
        VcDb *db = t->s->db;
        if (t->dead || db_broken(db))
                return broken_err(db);
        return 0;
}

/* Runs o in t; a fault kills t. Once LMDB has found a damaged page in t,
 * it fails every later call with MDB_BAD_TXN: t says what it found. */
static int txn_op(VcTxn *t, const char *what, Op *o)
{
        int r = txn_live(t);
        if (r < 0)
                return r;
        bool renew = o->kind == OP_TXN_RESET || o->kind == OP_TXN_RENEW;
        if (t->lmdb_bad && !renew)
                return index_damaged(-EBADMSG, "LMDB found a damaged page of %s: %s", t->s->db->file,
                                     mdb_strerror(t->lmdb_bad));
        o->txn = t->txn;
        r = guarded(t->s->db, what, o);
        if (r < 0)
                t->dead = true;
        else if (o->rc == MDB_CORRUPTED || o->rc == MDB_PAGE_NOTFOUND)
                t->lmdb_bad = o->rc;
        else if (o->kind == OP_TXN_RENEW && o->rc == 0)
                t->lmdb_bad = 0;        /* a new snapshot */
        return r;
}

void vc_txn_reset(VcTxn *t)
{
        if (t && !t->write && !t->dead) {
                Op o = { .kind = OP_TXN_RESET };
                txn_op(t, "ending a read transaction", &o);
        }
}

int vc_txn_renew(VcTxn *t)
{
        Op o = { .kind = OP_TXN_RENEW };
        int r = txn_op(t, "renewing a read transaction", &o);
        if (r < 0)
                return r;
        return db_err(o.rc, "renewing a read transaction");
}

int vc_txn_refresh(VcTxn *t)
{
        if (t->write)
                return -EINVAL;
        vc_txn_reset(t);
        return vc_txn_renew(t);
}

int vc_txn_commit(VcTxn *t)
{
        if (!t)
                return -EINVAL;
        int r = txn_live(t);
        if (r < 0) {
                vc_txn_abort(t);
                return r;
        }
        Op o = { .kind = OP_TXN_COMMIT, .txn = t->txn };
        r = guarded(t->s->db, "committing to the store index", &o);
        if (r < 0) {
                /* LMDB did not get to free it: end it as its own error
                 * paths do. */
                t->dead = true;
                vc_txn_abort(t);
                return r;
        }
        free(t);
        return db_err(o.rc, "committing to the store index");
}

void vc_txn_abort(VcTxn *t)
{
        if (!t)
                return;
        if (t->txn)
                txn_abort_raw(t->s->db, t->txn);
        free(t);
}

bool vc_txn_dead(VcTxn *t)
{
        return t->dead || db_broken(t->s->db);
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
        if (atomic_load(&t->s->db->table_bad[tb]))
                return table_err(t->s->db, tb);
        MDB_val key = { kl, (void *)k }, val;
        Op o = { .kind = OP_GET, .dbi = t->s->db->dbi[tb], .k = &key, .v = &val };
        if ((r = txn_op(t, "reading the store index", &o)) < 0)
                return r;
        if (o.rc)
                return db_err(o.rc, "reading the store index");
        if (!o.ok)
                return -EBADMSG;
        *v = val.mv_data;
        *vl = val.mv_size - 4;
        return 0;
}

int vc_db_damaged(VcDbTable tb, const void *k, size_t kl)
{
        return damaged(tb, k, kl);
}

/* ---- many chunk look-ups at once -------------------------------------------------- */

typedef struct HasMany {
        MDB_txn *txn;
        MDB_dbi dbi;
        uint64_t domain;
        const uint8_t *tags;
        size_t stride;
        const uint32_t *order;
        size_t n;
        uint8_t *has;
        size_t bad;             /* the first damaged entry met, or n */
} HasMany;

static int has_many_run(void *arg)
{
        HasMany *h = arg;
        MDB_cursor *cur;
        int rc = mdb_cursor_open(h->txn, h->dbi, &cur);
        if (rc)
                return rc;
        uint8_t k[VC_IDX_KEY_LEN];
        vc_put64be(k, h->domain);
        for (size_t j = 0; j < h->n; j++) {
                size_t i = h->order ? h->order[j] : j;
                memcpy(k + 8, h->tags + h->stride * i, 32);
                MDB_val key = { sizeof k, k }, val;
                rc = mdb_cursor_get(cur, &key, &val, MDB_SET);
                if (rc == MDB_NOTFOUND) {
                        h->has[i] = 0;
                        rc = 0;
                        continue;
                }
                if (rc)
                        break;
                VcIdx x;
                if (!value_ok(&key, &val) || vc_idx_decode(val.mv_data, val.mv_size - 4, &x) < 0) {
                        h->bad = i;
                        break;
                }
                h->has[i] = 1;
        }
        mdb_cursor_close(cur);
        return rc;
}

/* The order to look n uniform tags up in: by their first bits (a counting
 * sort, O(n)), so that neighbouring look-ups share the index's pages.
 * NULL if n is small or memory is short (then in the given order). */
static uint32_t *tag_order(const uint8_t *tags, size_t stride, size_t n)
{
        if (n < 64 || n > UINT32_MAX)
                return NULL;
        unsigned bits = 6;
        while (bits < 16 && ((size_t)1 << bits) < n / 4)
                bits++;
        size_t nb = (size_t)1 << bits;
        uint32_t *order = malloc(n * sizeof *order), *start = calloc(nb + 1, sizeof *start);
        if (!order || !start) {
                free(order);
                free(start);
                return NULL;
        }
        for (size_t i = 0; i < n; i++)
                start[(vc_get64be(tags + stride * i) >> (64 - bits)) + 1]++;
        for (size_t b = 0; b < nb; b++)
                start[b + 1] += start[b];
        for (size_t i = 0; i < n; i++)
                order[start[vc_get64be(tags + stride * i) >> (64 - bits)]++] = (uint32_t)i;
        free(start);
        return order;
}

int vc_txn_has_chunks(VcTxn *t, uint64_t domain, const uint8_t *tags, size_t stride, size_t n, uint8_t *has)
{
        if (n == 0)
                return 0;
        if (atomic_load(&t->s->db->table_bad[VC_DB_INDEX]))
                return table_err(t->s->db, VC_DB_INDEX);
        HasMany h = { .txn = t->txn, .dbi = t->s->db->dbi[VC_DB_INDEX], .domain = domain, .tags = tags,
                      .stride = stride, .order = tag_order(tags, stride, n), .n = n, .has = has, .bad = n };
        Op o = { .kind = OP_CALL, .call = has_many_run, .arg = &h };
        int r = txn_op(t, "reading the store index", &o);
        free((void *)h.order);
        if (r < 0)
                return r;
        if (o.rc)
                return db_err(o.rc, "reading the store index");
        if (h.bad < n) {
                uint8_t k[VC_IDX_KEY_LEN];
                vc_idx_key(k, domain, tags + stride * h.bad);
                return damaged(VC_DB_INDEX, k, sizeof k);
        }
        return 0;
}

/* ---- a writer's entries at once ------------------------------------------------------ */

typedef struct IdxMerge {
        MDB_txn *txn;
        MDB_dbi dbi;
        size_t n;
        vc_idx_entry_fn entry;
        void *ctx;
        uint64_t moved;
} IdxMerge;

/* The new value into the place a put with MDB_RESERVE handed out. */
static void idx_fill(const uint8_t *k, const VcIdx *x, MDB_val *val)
{
        uint8_t *p = val->mv_data;
        vc_idx_encode(x, p);
        vc_put32(p + VC_IDX_VAL_LEN, value_crc(k, VC_IDX_KEY_LEN, p, VC_IDX_VAL_LEN));
}

static int idx_merge_run(void *arg)
{
        IdxMerge *m = arg;
        MDB_cursor *cur;
        int rc = mdb_cursor_open(m->txn, m->dbi, &cur);
        if (rc)
                return rc;
        uint8_t k[VC_IDX_KEY_LEN];
        for (size_t i = 0; i < m->n && rc == 0; i++) {
                uint64_t domain, from_off = 0;
                uint32_t from_pack = 0;
                const uint8_t *tag;
                bool move = false;
                VcIdx x, old;
                m->entry(m->ctx, i, &domain, &tag, &x, &move, &from_pack, &from_off);
                vc_idx_key(k, domain, tag);
                MDB_val key = { sizeof k, k }, val = { VC_IDX_VAL_LEN + 4, NULL };
                if (!move) {
                        /* one descent: inserted, or the entry found */
                        rc = mdb_cursor_put(cur, &key, &val, MDB_NOOVERWRITE | MDB_RESERVE);
                        if (rc == 0) {
                                idx_fill(k, &x, &val);
                                continue;
                        }
                        if (rc != MDB_KEYEXIST)
                                break;
                        rc = 0;
                        if (value_ok(&key, &val) && vc_idx_decode(val.mv_data, val.mv_size - 4, &old) == 0)
                                continue;       /* indexed meanwhile */
                } else {
                        rc = mdb_cursor_get(cur, &key, &val, MDB_SET_KEY);
                        if (rc == MDB_NOTFOUND) {
                                rc = 0;
                                continue;       /* swept meanwhile */
                        }
                        if (rc)
                                break;
                        if (!value_ok(&key, &val) || vc_idx_decode(val.mv_data, val.mv_size - 4, &old) < 0 ||
                            old.pack != from_pack || old.off != from_off)
                                continue;       /* moved by someone else, or damaged: left be */
                        x.stored_at = old.stored_at;
                        m->moved++;
                }
                /* replaced where the cursor stands */
                val = (MDB_val){ VC_IDX_VAL_LEN + 4, NULL };
                if ((rc = mdb_cursor_put(cur, &key, &val, MDB_CURRENT | MDB_RESERVE)) == 0)
                        idx_fill(k, &x, &val);
        }
        mdb_cursor_close(cur);
        return rc;
}

int vc_idx_merge(VcTxn *t, size_t n, vc_idx_entry_fn entry, void *ctx, uint64_t *moved)
{
        if (n == 0)
                return 0;
        if (!t->write)
                return vc_errf(-EINVAL, "write to table %s in a read transaction", table_names[VC_DB_INDEX]);
        if (atomic_load(&t->s->db->table_bad[VC_DB_INDEX]))
                return table_err(t->s->db, VC_DB_INDEX);
        IdxMerge m = { .txn = t->txn, .dbi = t->s->db->dbi[VC_DB_INDEX], .n = n, .entry = entry, .ctx = ctx };
        Op o = { .kind = OP_CALL, .call = idx_merge_run, .arg = &m };
        int r = txn_op(t, "writing to the store index", &o);
        if (r < 0)
                return r;
        if (o.rc)
                return db_err(o.rc, "writing to the store index");
        *moved += m.moved;
        return 0;
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
        if (atomic_load(&t->s->db->table_bad[tb]))
                return table_err(t->s->db, tb);
        /* MDB_RESERVE: LMDB hands out the space and we fill it, so the
         * value plus its CRC never needs a temporary copy. The space is in a
         * page of this transaction (malloc'ed), not in the map. */
        MDB_val key = { kl, (void *)k }, val = { vl + 4, NULL };
        Op o = { .kind = OP_PUT, .dbi = t->s->db->dbi[tb], .k = &key, .v = &val, .flags = MDB_RESERVE };
        if ((r = txn_op(t, "writing to the store index", &o)) < 0)
                return r;
        if (o.rc)
                return db_err(o.rc, "writing to the store index");
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
        if (atomic_load(&t->s->db->table_bad[tb]))
                return table_err(t->s->db, tb);
        MDB_val key = { kl, (void *)k };
        Op o = { .kind = OP_DEL, .dbi = t->s->db->dbi[tb], .k = &key };
        if ((r = txn_op(t, "deleting from the store index", &o)) < 0)
                return r;
        return db_err(o.rc, "deleting from the store index");
}

int vc_db_drop(VcTxn *t, VcDbTable tb)
{
        if (!t->write)
                return vc_errf(-EINVAL, "emptying table %s in a read transaction", table_names[tb]);
        if (atomic_load(&t->s->db->table_bad[tb]))
                return table_err(t->s->db, tb);
        Op o = { .kind = OP_DROP, .dbi = t->s->db->dbi[tb] };
        int r = txn_op(t, "emptying a table of the store index", &o);
        if (r < 0)
                return r;
        return db_err(o.rc, "emptying a table of the store index");
}

/* ---- cursors ------------------------------------------------------------------- */

int vc_db_cursor_open(VcTxn *t, VcDbTable tb, const void *prefix, size_t plen, VcDbCursor **ret)
{
        if (tb >= VC_DB__MAX)
                return vc_errf(-EINVAL, "no such table %d", (int)tb);
        if (plen > (size_t)mdb_env_get_maxkeysize(t->s->db->env))
                return vc_errf(-EINVAL, "key prefix of %zu bytes too long", plen);
        if (atomic_load(&t->s->db->table_bad[tb]))
                return table_err(t->s->db, tb);
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
        Op o = { .kind = OP_CURSOR_OPEN, .dbi = t->s->db->dbi[tb], .ret_cur = &c->cur };
        int r = txn_op(t, "walking the store index", &o);
        if (r == 0 && o.rc)
                r = db_err(o.rc, "walking the store index");
        if (r < 0) {
                free(c->prefix);
                free(c);
                return r;
        }
        *ret = c;
        return 0;
}

int vc_db_cursor_next(VcDbCursor *c, const void **k, size_t *kl, const void **v, size_t *vl)
{
        if (c->done)
                return 0;
        MDB_val key = { c->plen, c->prefix }, val;
        Op o = { .kind = OP_CURSOR_GET, .cur = c->cur, .k = &key, .v = &val };
        if (!c->started)
                o.cop = c->plen ? MDB_SET_RANGE : MDB_FIRST;
        else
                /* After mdb_cursor_del, LMDB's MDB_NEXT returns the record
                 * that followed the deleted one, not the one after that. */
                o.cop = MDB_NEXT;
        c->started = true;
        int r = txn_op(c->t, "walking the store index", &o);
        if (r < 0) {
                c->done = true;
                return r;
        }
        if (o.rc == MDB_NOTFOUND) {
                c->done = true;
                return 0;
        }
        if (o.rc)
                return db_err(o.rc, "walking the store index");
        if (c->plen && (key.mv_size < c->plen || memcmp(key.mv_data, c->prefix, c->plen) != 0)) {
                c->done = true;
                return 0;
        }
        *k = key.mv_data;
        *kl = key.mv_size;
        if (!o.ok) {
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
        Op o = { .kind = OP_CURSOR_DEL, .cur = c->cur };
        int r = txn_op(c->t, "deleting from the store index", &o);
        if (r < 0)
                return r;
        return db_err(o.rc, "deleting from the store index");
}

void vc_db_cursor_close(VcDbCursor *c)
{
        if (!c)
                return;
        /* A read transaction's cursor is freed by its owner; a write
         * transaction's too, unless the transaction died. */
        if (!c->t->dead || !c->t->write)
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
        return r == -EBADMSG && !t->dead ? damaged((VcDbTable)tb, key, klen) : r;
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
                if (r == -EBADMSG && !t->dead)
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
