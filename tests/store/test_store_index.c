/* A damaged index file (STORE/index/data.mdb) never crashes the store:
 * it is refused at open with a message naming the file, a damaged table
 * is refused by itself, a fault inside LMDB becomes -EBADMSG, reindex
 * builds a new index and copies the catalog out of the old file when it
 * can. And the page walker that decides all this never calls a sound file
 * damaged, whatever LMDB did to it. */
#include "store_test.h"

#include <inttypes.h>
#include <sys/types.h>

static void data_mdb(const char *store, char *buf, size_t len)
{
        size_t n = strlen(store);
        assert_true(n + 16 <= len);
        memcpy(buf, store, n);
        memcpy(buf + n, "/index/data.mdb", 16);
}

typedef struct Probs {
        int n, pages, reindex;
        char last[1024];
} Probs;

static void probs_cb(uint64_t domain, const uint8_t *tag, const char *what, VcRepair repair, void *ctx)
{
        (void)domain;
        (void)tag;
        Probs *p = ctx;
        p->n++;
        if (strstr(what, "index file is damaged"))
                p->pages++;
        if (repair == VC_REPAIR_REINDEX)
                p->reindex++;
        snprintf(p->last, sizeof p->last, "%s", what);
        if (getenv("VC_TEST_VERBOSE"))
                fprintf(stderr, "# problem: %s [%s]\n", what, vc_repair_text(repair));
}

static int check_ex(VcStore *s, Probs *p)
{
        memset(p, 0, sizeof *p);
        int r = vc_store_check_ex(s, false, probs_cb, p, NULL);
        if (r < 0)
                fprintf(stderr, "# check failed: %s\n", vc_errmsg(r));
        return r;
}

/* A store with chunks 0..n-1 in domain parcel:1, and a catalog record per
 * parcel "p<i>" (i < nparcels) with a value of 40 bytes. */
static char *make_store(uint64_t *d, int n, int nparcels)
{
        char *path = tmp_store();
        VcStore *s;
        VcWriter *w;
        VcTxn *t;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "parcel:1", true, d), 0);
        assert_int_equal(vc_writer_new(s, &w), 0);
        for (int i = 0; i < n; i++)
                assert_int_equal(put_chunk(w, *d, (uint64_t)i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        for (int i = 0; i < nparcels; i++) {
                char k[16], v[40];
                snprintf(k, sizeof k, "p%d", i);
                memset(v, 'a' + i % 26, sizeof v);
                assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, k, strlen(k), v, sizeof v), 0);
        }
        assert_int_equal(vc_txn_commit(t), 0);
        /* One more commit, so that both snapshots LMDB keeps (one per meta
         * page) hold the parcels. */
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE_META, "made", 4, "yes", 3), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);
        return path;
}

static void zero_range(const char *file, off_t off, size_t n)
{
        int fd = open(file, O_RDWR);
        assert_true(fd >= 0);
        uint8_t *z = calloc(1, n);
        assert_int_equal(pwrite(fd, z, n, off), (ssize_t)n);
        free(z);
        close(fd);
}

static off_t file_size(const char *file)
{
        struct stat st;
        assert_int_equal(stat(file, &st), 0);
        return st.st_size;
}

/* ---- the walker on sound files --------------------------------------------------- */

static uint64_t rnd(uint64_t *x)
{
        return splitmix(x);
}

static int live_random(const VcChunkInfo *ci, void *ctx)
{
        uint64_t *x = ctx;
        (void)ci;
        return rnd(x) % 3 != 0;
}

/* Inserts and deletes at random, in tables small and large, with values
 * that fit a page and values that need overflow pages: after every round
 * the check finds nothing and the store opens. */
static void test_no_false_damage(void **state)
{
        (void)state;
        uint64_t d, x = 99;
        char *path = make_store(&d, 50, 3);
        uint64_t next = 50;
        for (int round = 0; round < 24; round++) {
                VcStore *s;
                VcWriter *w;
                VcTxn *t;
                assert_int_equal(vc_store_open(path, &s), 0);
                /* chunks: a batch in, some swept out */
                assert_int_equal(vc_writer_new(s, &w), 0);
                int nb = 20 + (int)(rnd(&x) % 200);
                for (int i = 0; i < nb; i++)
                        put_chunk(w, d, next++);
                assert_int_equal(vc_writer_flush(w), 0);
                vc_writer_free(w);
                if (round % 3 == 2) {
                        assert_int_equal(vc_txn_begin(s, true, &t), 0);
                        assert_int_equal(vc_txn_sweep(t, live_random, &x, INT64_MAX, NULL), 0);
                        assert_int_equal(vc_txn_commit(t), 0);
                }
                /* catalog: records of 1 byte to 12 KiB, put and deleted */
                assert_int_equal(vc_txn_begin(s, true, &t), 0);
                for (int i = 0; i < 60; i++) {
                        char k[32];
                        snprintf(k, sizeof k, "v%05" PRIu64, rnd(&x) % 400);
                        if (rnd(&x) % 4 == 0) {
                                int r = vc_txn_del(t, VC_TABLE_VERSIONS, k, strlen(k));
                                assert_true(r == 0 || r == -ENOENT);
                                continue;
                        }
                        size_t n = rnd(&x) % 7 == 0 ? 2000 + rnd(&x) % 10000 : 1 + rnd(&x) % 300;
                        uint8_t *v = malloc(n);
                        for (size_t j = 0; j < n; j++)
                                v[j] = (uint8_t)rnd(&x);
                        assert_int_equal(vc_txn_put(t, VC_TABLE_VERSIONS, k, strlen(k), v, n), 0);
                        free(v);
                }
                assert_int_equal(vc_txn_commit(t), 0);
                Probs p;
                assert_int_equal(check_ex(s, &p), 0);
                vc_store_free(s);
        }
        /* And a stat, which walks every page too. */
        VcStore *s;
        VcDomainStat *ds;
        size_t nd;
        uint64_t ib;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_stat(s, &ds, &nd, &ib), 0);
        free(ds);
        vc_store_free(s);
        tmp_store_free(path);
}

/* ---- refused at open ------------------------------------------------------------------ */

static void expect_open(const char *path, int err, const char *msg)
{
        VcStore *s = NULL;
        vc_errclear();
        int r = vc_store_open(path, &s);
        if (r != err || !strstr(vc_errmsg(r), msg))
                fprintf(stderr, "# open: %d %s (wanted %d, /%s/)\n", r, vc_errmsg(r), err, msg);
        assert_int_equal(r, err);
        assert_non_null(strstr(vc_errmsg(r), msg));
        assert_non_null(strstr(vc_errmsg(r), "vmcas verify --reindex"));
        vc_errclear();
}

/* Repairs the store and checks chunks 0..n-1 read back. */
static void repair(const char *path, uint64_t d, int n, VcReindexInfo *ri)
{
        VcStore *s;
        assert_int_equal(vc_store_open_repair(path, &s), 0);
        vc_errclear();
        int r = vc_store_reindex_ex(s, ri);
        if (r < 0)
                fprintf(stderr, "# reindex: %s\n", vc_errmsg(r));
        assert_int_equal(r, n);
        vc_store_free(s);
        assert_int_equal(vc_store_open(path, &s), 0);
        for (int i = 0; i < n; i++)
                assert_int_equal(verify_chunk(s, d, (uint64_t)i), 0);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
}

static void parcels_are(const char *path, int n)
{
        VcStore *s;
        VcTxn *t;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        for (int i = 0; i < n; i++) {
                char k[16], want[40];
                const void *v;
                size_t vl;
                snprintf(k, sizeof k, "p%d", i);
                memset(want, 'a' + i % 26, sizeof want);
                assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, k, strlen(k), &v, &vl), 0);
                assert_int_equal(vl, sizeof want);
                assert_memory_equal(v, want, sizeof want);
        }
        vc_txn_abort(t);
        vc_store_free(s);
}

static void test_refused(void **state)
{
        (void)state;
        uint64_t d;
        char db[PATH_MAX], lock[PATH_MAX];
        VcReindexInfo ri;
        char *path = make_store(&d, 200, 5);
        data_mdb(path, db, sizeof db);
        snprintf(lock, sizeof lock, "%s/index/lock.mdb", path);
        char clean[PATH_MAX];
        snprintf(clean, sizeof clean, "%s.clean", path);
        char cmd[3 * PATH_MAX];
        snprintf(cmd, sizeof cmd, "cp -a '%s' '%s'", path, clean);
        assert_int_equal(system(cmd), 0);
        off_t size = file_size(db);
#define RESTORE()                                                                              \
        do {                                                                                   \
                snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", path, clean, path);  \
                assert_int_equal(system(cmd), 0);                                              \
        } while (0)

        /* cut in half: refused, the numbers said; reindex gives the chunks back */
        assert_int_equal(truncate(db, size / 2), 0);
        expect_open(path, -EBADMSG, "but its pages in use need");
        expect_open(path, -EBADMSG, "data.mdb");
        repair(path, d, 200, &ri);
        assert_true(ri.replaced);
        assert_non_null(strstr(ri.moved_to, "index.damaged-"));
        RESTORE();

        /* one page, zero bytes, missing */
        assert_int_equal(truncate(db, 4096), 0);
        expect_open(path, -EBADMSG, "meta page 1");
        RESTORE();
        assert_int_equal(truncate(db, 0), 0);
        expect_open(path, -ENODATA, "is 0 bytes");
        repair(path, d, 200, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_LOST);
        RESTORE();
        assert_int_equal(unlink(db), 0);
        expect_open(path, -ENODATA, "missing");
        RESTORE();

        /* a meta page zeroed: the catalog comes back from the other one */
        zero_range(db, 0, 4096);
        expect_open(path, -EBADMSG, "meta page 0");
        repair(path, d, 200, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_RECOVERED_OLDER);
        assert_true(ri.catalog_records >= 5);
        parcels_are(path, 5);
        RESTORE();
        zero_range(db, 4096, 4096);
        expect_open(path, -EBADMSG, "meta page 1");
        repair(path, d, 200, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_RECOVERED_OLDER);
        parcels_are(path, 5);
        RESTORE();

        /* both: the catalog is lost, and reindex says so */
        zero_range(db, 0, 8192);
        expect_open(path, -EBADMSG, "meta page 0");
        repair(path, d, 200, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_LOST);
        assert_true(ri.catalog_why[0] != 0);
        RESTORE();

        /* a newer LMDB format: not damage, and not touched */
        {
                int fd = open(db, O_RDWR);
                uint32_t v = 999;
                assert_int_equal(pwrite(fd, &v, 4, 20), 4);
                close(fd);
                VcStore *s;
                vc_errclear();
                assert_int_equal(vc_store_open(path, &s), -EPROTO);
                assert_non_null(strstr(vc_errmsg(-EPROTO), "version 999"));
                vc_errclear();
        }
        RESTORE();

        /* not a file */
        assert_int_equal(unlink(db), 0);
        assert_int_equal(mkdir(db, 0755), 0);
        expect_open(path, -EBADMSG, "not a regular file");
        repair(path, d, 200, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_LOST);
        RESTORE();

        /* no lock file: LMDB makes a new one; nothing is wrong */
        assert_int_equal(unlink(lock), 0);
        {
                VcStore *s;
                assert_int_equal(vc_store_open(path, &s), 0);
                assert_int_equal(verify_chunk(s, d, 7), 0);
                vc_store_free(s);
        }
        parcels_are(path, 5);
#undef RESTORE
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", clean);
        assert_int_equal(system(cmd), 0);
        tmp_store_free(path);
}

/* ---- a damaged table ------------------------------------------------------------- */

/* The offset of the only copy of pat in file, or -1. */
static long find_once(const char *file, const void *pat, size_t n)
{
        size_t len;
        uint8_t *b = slurp(file, &len);
        long at = -1;
        int hits = 0;
        for (size_t i = 0; i + n <= len; i++)
                if (memcmp(b + i, pat, n) == 0) {
                        at = (long)i;
                        hits++;
                }
        free(b);
        return hits == 1 ? at : -1;
}

static void test_damaged_table(void **state)
{
        (void)state;
        uint64_t d;
        char db[PATH_MAX];
        char *path = make_store(&d, 100, 3);
        data_mdb(path, db, sizeof db);
        /* A last commit that rewrites the parcels page with a value found
         * nowhere else: damaging that page leaves the older snapshot's copy. */
        const char *fresh = "FRESH-VALUE-OF-THE-LAST-COMMIT-0123456789";
        VcStore *s;
        VcTxn *t;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, "zz", 2, fresh, strlen(fresh)), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);
        long at = find_once(db, fresh, strlen(fresh));
        assert_true(at > 0);
        long page = at / 4096;
        zero_range(db, page * 4096, 16);        /* its header */

        /* The store opens; the parcels table alone is refused. */
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        const void *v;
        size_t vl;
        vc_errclear();
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "p1", 2, &v, &vl), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "table parcels"));
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "vmcas verify --reindex"));
        vc_errclear();
        vc_txn_abort(t);
        assert_int_equal(verify_chunk(s, d, 3), 0);
        /* No write: LMDB would write into the damaged tree. */
        vc_errclear();
        assert_int_equal(vc_txn_begin(s, true, &t), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "parcels"));
        vc_errclear();
        /* verify names it, with its repair */
        Probs p;
        VcCheckStats cs;
        memset(&p, 0, sizeof p);
        assert_true(vc_store_check_ex(s, false, probs_cb, &p, &cs) >= 1);
        assert_true(p.pages >= 1);
        assert_true(cs.catalog_unchecked);
        assert_true(p.reindex >= 1);
        vc_store_free(s);

        /* reindex: the catalog from the older snapshot, without the last commit */
        VcReindexInfo ri;
        repair(path, d, 100, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_RECOVERED_OLDER);
        parcels_are(path, 3);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, "zz", 2, &v, &vl), -ENOENT);
        vc_txn_abort(t);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

/* A damaged page that both snapshots share: no snapshot reads back whole,
 * so the catalog comes back in part, all but the records on that page. */
static void test_catalog_in_part(void **state)
{
        (void)state;
        uint64_t d;
        char db[PATH_MAX];
        char *path = make_store(&d, 40, 2);
        data_mdb(path, db, sizeof db);
        VcStore *s;
        VcTxn *t;
        enum { NV = 600 };
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        for (int i = 0; i < NV; i++) {
                char k[16], v[64];
                snprintf(k, sizeof k, "v%04d", i);
                snprintf(v, sizeof v, "VERSION-RECORD-%04d-................................", i);
                assert_int_equal(vc_txn_put(t, VC_TABLE_VERSIONS, k, strlen(k), v, strlen(v)), 0);
        }
        assert_int_equal(vc_txn_commit(t), 0);
        /* two commits that do not touch the versions table */
        for (int i = 0; i < 2; i++) {
                assert_int_equal(vc_txn_begin(s, true, &t), 0);
                assert_int_equal(vc_txn_put(t, VC_TABLE_META, "later", 5, "x", 1), 0);
                assert_int_equal(vc_txn_commit(t), 0);
        }
        vc_store_free(s);
        long at = find_once(db, "VERSION-RECORD-0300-", 20);
        assert_true(at > 0);
        zero_range(db, (at / 4096) * 4096, 16);

        VcReindexInfo ri;
        assert_int_equal(vc_store_open_repair(path, &s), 0);
        assert_int_equal(vc_store_reindex_ex(s, &ri), 40);
        vc_store_free(s);
        assert_int_equal(ri.catalog, VC_CATALOG_RECOVERED_PART);
        assert_true(ri.catalog_lost >= 1);
        assert_non_null(strstr(ri.catalog_why, "versions"));
        parcels_are(path, 2);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        int have = 0;
        for (int i = 0; i < NV; i++) {
                char k[16], want[64];
                const void *v;
                size_t vl;
                snprintf(k, sizeof k, "v%04d", i);
                snprintf(want, sizeof want, "VERSION-RECORD-%04d-................................", i);
                int r = vc_txn_get(t, VC_TABLE_VERSIONS, k, strlen(k), &v, &vl);
                if (i == 300)
                        assert_int_equal(r, -ENOENT);
                if (r == 0) {
                        assert_int_equal(vl, strlen(want));
                        assert_memory_equal(v, want, vl);
                        have++;
                }
        }
        assert_true(have < NV && have > NV / 2);
        const void *v;
        size_t vl;
        assert_int_equal(vc_txn_get(t, VC_TABLE_META, "later", 5, &v, &vl), 0);
        vc_txn_abort(t);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

/* ---- a fault inside LMDB ----------------------------------------------------------- */

/* The file cut short under an open store: LMDB takes a SIGBUS, which the
 * guard turns into -EBADMSG; the store is refused after that. */
static void test_fault_contained(void **state)
{
        (void)state;
        uint64_t d;
        char db[PATH_MAX];
        char *path = make_store(&d, 300, 3);
        data_mdb(path, db, sizeof db);
        VcStore *s;
        VcTxn *t;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(verify_chunk(s, d, 1), 0);
        assert_int_equal(truncate(db, 8192), 0);
        vc_errclear();
        int r = verify_chunk(s, d, 2);
        assert_int_equal(r, -EBADMSG);
        assert_non_null(strstr(vc_errmsg(r), "SIGBUS"));
        assert_non_null(strstr(vc_errmsg(r), "vmcas verify --reindex"));
        vc_errclear();
        /* Poisoned: nothing calls LMDB on it again. */
        assert_int_equal(vc_txn_begin(s, false, &t), -EBADMSG);
        assert_non_null(strstr(vc_errmsg(-EBADMSG), "SIGBUS"));
        vc_errclear();
        assert_int_equal(vc_store_has(s, d, (const uint8_t *)"0123456789abcdef0123456789abcdef"), -EBADMSG);
        vc_errclear();
        vc_store_free(s);
        expect_open(path, -EBADMSG, "pages in use need");
        VcReindexInfo ri;
        repair(path, d, 300, &ri);
        assert_int_equal(ri.catalog, VC_CATALOG_LOST);
        tmp_store_free(path);
}

/* ---- the free tail ------------------------------------------------------------------- */

/* LMDB may leave the last pages of the file unwritten when they are free:
 * a file shorter than its last page is sound if every page past its end is
 * on the free list. Cut the file by more and more pages: it is accepted
 * only while what is cut is free, and then everything still works. */
static void test_free_tail(void **state)
{
        (void)state;
        uint64_t d;
        char db[PATH_MAX];
        char *path = make_store(&d, 20, 1);
        data_mdb(path, db, sizeof db);
        VcStore *s;
        VcTxn *t;
        /* Many pages at the end of the file, then freed. */
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        for (int i = 0; i < 3000; i++) {
                char k[16];
                snprintf(k, sizeof k, "x%05d", i);
                assert_int_equal(vc_txn_put(t, VC_TABLE_META, k, strlen(k), "0123456789012345678901234567890123456789",
                                            40), 0);
        }
        assert_int_equal(vc_txn_commit(t), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        for (int i = 0; i < 3000; i++) {
                char k[16];
                snprintf(k, sizeof k, "x%05d", i);
                assert_int_equal(vc_txn_del(t, VC_TABLE_META, k, strlen(k)), 0);
        }
        assert_int_equal(vc_txn_commit(t), 0);
        /* Small commits: LMDB takes their pages from the low end of the free
         * list, so the pages at the end of the file end up all free. */
        for (int i = 0; i < 12; i++) {
                char k[16];
                snprintf(k, sizeof k, "y%02d", i);
                assert_int_equal(vc_txn_begin(s, true, &t), 0);
                assert_int_equal(vc_txn_put(t, VC_TABLE_META, k, strlen(k), "small", 5), 0);
                assert_int_equal(vc_txn_commit(t), 0);
        }
        vc_store_free(s);
        char copy[PATH_MAX];
        snprintf(copy, sizeof copy, "%s.copy", path);
        char cmd[3 * PATH_MAX];
        off_t size = file_size(db);
        int accepted = 0, refused = 0;
        for (off_t cut = 4096; cut < size - 4 * 4096; cut += 4096) {
                snprintf(cmd, sizeof cmd, "rm -rf '%s' && cp -a '%s' '%s'", copy, path, copy);
                assert_int_equal(system(cmd), 0);
                char cdb[PATH_MAX];
                data_mdb(copy, cdb, sizeof cdb);
                assert_int_equal(truncate(cdb, size - cut), 0);
                vc_errclear();
                int r = vc_store_open(copy, &s);
                if (r < 0) {
                        assert_int_equal(r, -EBADMSG);
                        assert_non_null(strstr(vc_errmsg(r), "pages in use need"));
                        refused++;
                        break;  /* cutting more cuts what is in use too */
                }
                accepted++;
                for (int i = 0; i < 20; i++)
                        assert_int_equal(verify_chunk(s, d, (uint64_t)i), 0);
                assert_int_equal(check_store(s, true, NULL), 0);
                /* and it can be written to: LMDB writes past the end */
                VcWriter *w;
                assert_int_equal(vc_writer_new(s, &w), 0);
                for (int i = 20; i < 120; i++)
                        assert_int_equal(put_chunk(w, d, (uint64_t)i), 1);
                assert_int_equal(vc_writer_flush(w), 0);
                vc_writer_free(w);
                vc_store_free(s);
                assert_int_equal(vc_store_open(copy, &s), 0);
                for (int i = 0; i < 120; i++)
                        assert_int_equal(verify_chunk(s, d, (uint64_t)i), 0);
                assert_int_equal(check_store(s, true, NULL), 0);
                vc_store_free(s);
        }
        vc_errclear();
        if (getenv("VC_TEST_VERBOSE"))
                fprintf(stderr, "# free tail: %d cuts accepted before one was refused\n", accepted);
        assert_int_equal(refused, 1);
        assert_true(accepted > 0);
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", copy);
        assert_int_equal(system(cmd), 0);
        tmp_store_free(path);
}

/* ---- domain files ----------------------------------------------------------------------- */

static void test_domain_files(void **state)
{
        (void)state;
        uint64_t d, g;
        char *path = make_store(&d, 30, 1);
        VcStore *s;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "group:eng", true, &g), 0);
        Probs p;
        assert_int_equal(check_ex(s, &p), 0);
        char f1[PATH_MAX], f2[PATH_MAX];
        snprintf(f1, sizeof f1, "%s/packs/%" PRIu64 "/domain", path, d);
        snprintf(f2, sizeof f2, "%s/packs/%" PRIu64 "/domain", path, g);
        assert_int_equal(unlink(f1), 0);
        flip_byte(f2, 20);
        assert_int_equal(check_ex(s, &p), 2);
        assert_int_equal(p.reindex, 2);
        assert_non_null(strstr(p.last, "domain"));
        VcReindexInfo ri;
        assert_int_equal(vc_store_reindex_ex(s, &ri), 30);
        assert_false(ri.replaced);
        assert_int_equal(ri.catalog, VC_CATALOG_KEPT);
        assert_int_equal(ri.domain_files_written, 2);
        assert_int_equal(check_ex(s, &p), 0);
        char name[64];
        assert_int_equal(vc_store_domain_name(s, g, name, sizeof name), 0);
        assert_string_equal(name, "group:eng");
        vc_store_free(s);
        tmp_store_free(path);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_no_false_damage),
                cmocka_unit_test(test_refused),
                cmocka_unit_test(test_damaged_table),
                cmocka_unit_test(test_catalog_in_part),
                cmocka_unit_test(test_fault_contained),
                cmocka_unit_test(test_free_tail),
                cmocka_unit_test(test_domain_files),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
