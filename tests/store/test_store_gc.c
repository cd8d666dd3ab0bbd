/* Index walks, sweep with a grace cutoff, compaction, a crash at each step
 * of flush and compaction, reindex from the packs alone. */
#include "store_test.h"
#include "store/vc_store_int.h"   /* vc_writer_move */

#include <signal.h>
#include <sys/wait.h>

typedef struct Store {
        char *path;
        VcStore *s;
        uint64_t d[2];
} Store;

/* Seeds lo..hi-1, odd ones in d[1]; pack_max 0 for the default. */
static void put_range(Store *st, uint64_t lo, uint64_t hi, uint64_t pack_max)
{
        VcWriter *w;
        assert_int_equal(vc_writer_new(st->s, &w), 0);
        if (pack_max)
                vc_writer_set_pack_max(w, pack_max);
        for (uint64_t i = lo; i < hi; i++)
                assert_int_equal(put_chunk(w, st->d[i % 2], i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
}

static void store_new(Store *st)
{
        st->path = tmp_store();
        assert_int_equal(vc_store_create(st->path), 0);
        assert_int_equal(vc_store_open(st->path, &st->s), 0);
        assert_int_equal(vc_store_domain(st->s, "parcel:1", true, &st->d[0]), 0);
        assert_int_equal(vc_store_domain(st->s, "group:eng", true, &st->d[1]), 0);
}

static void store_done(Store *st)
{
        vc_store_free(st->s);
        vc_errclear();
        tmp_store_free(st->path);
}

static int verify(Store *st, uint64_t seed)
{
        return verify_chunk(st->s, st->d[seed % 2], seed);
}

static int sweep(Store *st, Live *l, int64_t cutoff, VcSweepStats *sw)
{
        VcTxn *t;
        assert_int_equal(vc_txn_begin(st->s, true, &t), 0);
        int r = vc_txn_sweep(t, is_live, l, cutoff, sw);
        if (r < 0) {
                vc_txn_abort(t);
                return r;
        }
        assert_int_equal(vc_txn_commit(t), 0);
        return 0;
}

/* ---- iter_chunks ------------------------------------------------------------- */

typedef struct Walk {
        int n, stop_at;
        uint64_t last_domain;
        uint8_t last_tag[VC_TAG_LEN];
        uint64_t bytes;
} Walk;

static int walk_cb(const VcChunkInfo *ci, void *ctx)
{
        Walk *w = ctx;
        if (w->n == w->stop_at)
                return 3;
        /* (domain, tag) order */
        if (w->n > 0)
                assert_true(ci->domain > w->last_domain ||
                            (ci->domain == w->last_domain && memcmp(ci->tag, w->last_tag, VC_TAG_LEN) > 0));
        w->last_domain = ci->domain;
        memcpy(w->last_tag, ci->tag, VC_TAG_LEN);
        assert_true(ci->offset >= 64);
        assert_true(ci->stored_at > 0);
        assert_true(ci->kind == VC_KIND_DATA || ci->kind == VC_KIND_META);
        w->bytes += ci->len;
        w->n++;
        return 0;
}

static void test_iter_chunks(void **state)
{
        (void)state;
        Store st;
        store_new(&st);
        put_range(&st, 0, 150, 0);
        VcTxn *t;
        Walk w = { .stop_at = -1 };
        assert_int_equal(vc_txn_begin(st.s, false, &t), 0);
        assert_int_equal(vc_txn_iter_chunks(t, walk_cb, &w), 0);
        assert_int_equal(w.n, 150);
        uint64_t bytes = 0;
        for (uint64_t i = 0; i < 150; i++)
                bytes += chunk_len(i);
        assert_int_equal(w.bytes, bytes);
        w = (Walk){ .stop_at = 10 };
        assert_int_equal(vc_txn_iter_chunks(t, walk_cb, &w), 3);
        uint8_t tag[VC_TAG_LEN];
        chunk_tag(3, tag);
        assert_int_equal(vc_txn_has_chunk(t, st.d[1], tag), 1);
        assert_int_equal(vc_txn_has_chunk(t, st.d[0], tag), 0);
        vc_txn_abort(t);
        /* No dead record: even ratio 1.0 rewrites nothing. */
        VcCompactStats cs;
        assert_int_equal(vc_store_compact(st.s, 1.0, &cs), 0);
        assert_int_equal(cs.chunks_moved, 0);
        assert_int_equal(cs.packs_deleted, 0);
        assert_int_equal(cs.packs_before, 2);
        store_done(&st);
}

/* ---- sweep ------------------------------------------------------------------------ */

static void test_sweep(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        VcSweepStats sw;
        store_new(&st);
        put_range(&st, 0, 200, 0);
        live_set(&l, 0, 200, 4);
        uint64_t dead_bytes = 0, live_bytes = 0;
        for (uint64_t i = 0; i < 200; i++)
                *(i % 4 ? &dead_bytes : &live_bytes) += chunk_len(i);

        /* Everything is within the grace period. */
        assert_int_equal(sweep(&st, &l, vc_now() - 1000, &sw), 0);
        assert_int_equal(sw.chunks_freed, 0);
        assert_int_equal(sw.chunks_young, 150);
        assert_int_equal(sw.chunks_kept, 200);

        /* A failing predicate fails the sweep. */
        l.fail_after = 7;
        assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), -EIO);
        l.fail_after = 0;
        VcTxn *t;
        assert_int_equal(vc_txn_begin(st.s, false, &t), 0);
        assert_int_equal(vc_txn_sweep(t, is_live, &l, INT64_MAX, &sw), -EINVAL);   /* read txn */
        vc_txn_abort(t);
        vc_errclear();

        assert_int_equal(sweep(&st, &l, vc_now() + 10, &sw), 0);
        assert_int_equal(sw.chunks_freed, 150);
        assert_int_equal(sw.bytes_freed, dead_bytes);
        assert_int_equal(sw.chunks_kept, 50);
        assert_int_equal(sw.bytes_kept, live_bytes);
        assert_int_equal(sw.chunks_young, 0);
        for (uint64_t i = 0; i < 200; i++)
                assert_int_equal(verify(&st, i), i % 4 ? -ENOENT : 0);

        /* The grace cutoff: chunks stored at or after it are spared. */
        put_range(&st, 1000, 1040, 0);
        usleep(1100 * 1000);
        int64_t cutoff = vc_now();
        put_range(&st, 2000, 2040, 0);
        assert_int_equal(sweep(&st, &l, cutoff, &sw), 0);
        assert_int_equal(sw.chunks_freed, 40);
        assert_int_equal(sw.chunks_young, 40);
        assert_int_equal(sw.chunks_kept, 90);
        assert_int_equal(verify(&st, 1001), -ENOENT);
        assert_int_equal(verify(&st, 2001), 0);
        /* A swept chunk can be put again. */
        VcWriter *w;
        assert_int_equal(vc_writer_new(st.s, &w), 0);
        assert_int_equal(put_chunk(w, st.d[1], 1001), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        assert_int_equal(verify(&st, 1001), 0);
        free(l.tags);
        store_done(&st);
}

/* ---- compaction ------------------------------------------------------------------- */

static uint64_t pack_bytes(Store *st)
{
        VcDomainStat *ds;
        size_t n;
        uint64_t b = 0;
        assert_int_equal(vc_store_stat(st->s, &ds, &n, NULL), 0);
        for (size_t i = 0; i < n; i++)
                b += ds[i].pack_bytes;
        free(ds);
        return b;
}

static void test_compact(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        VcSweepStats sw;
        VcCompactStats cs;
        store_new(&st);
        put_range(&st, 0, 400, 48 << 10);
        /* Seeds 300..399 all dead: whole packs go without copying. */
        live_set(&l, 0, 300, 4);
        assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), 0);
        assert_int_equal(sw.chunks_kept, 75);
        uint64_t before = pack_bytes(&st);

        assert_int_equal(vc_store_compact(st.s, 0.5, &cs), 0);
        assert_int_equal(cs.bytes_before, before);
        assert_int_equal(cs.bytes_after, pack_bytes(&st));
        assert_true(cs.bytes_after < before / 2);
        assert_true(cs.packs_deleted > 0);
        assert_true(cs.packs_rewritten > 0 && cs.packs_rewritten < cs.packs_deleted);
        assert_true(cs.chunks_moved > 0 && cs.chunks_moved <= 75);
        assert_true(cs.packs_after < cs.packs_before);
        for (uint64_t i = 0; i < 400; i++)
                assert_int_equal(verify(&st, i), (i < 300 && i % 4 == 0) ? 0 : -ENOENT);
        assert_int_equal(check_store(st.s, true, NULL), 0);

        /* Nothing left worth doing. */
        assert_int_equal(vc_store_compact(st.s, 0.5, &cs), 0);
        assert_int_equal(cs.chunks_moved, 0);
        assert_int_equal(cs.packs_deleted, 0);
        assert_int_equal(cs.bytes_after, cs.bytes_before);

        /* Sweep everything: every pack goes. */
        live_set(&l, 0, 0, 1);
        assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), 0);
        assert_int_equal(vc_store_compact(st.s, 0.5, &cs), 0);
        assert_int_equal(cs.packs_after, 0);
        assert_int_equal(cs.bytes_after, 0);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        /* And the store keeps working, with fresh pack numbers. */
        put_range(&st, 5000, 5010, 0);
        assert_int_equal(verify(&st, 5003), 0);
        free(l.tags);
        store_done(&st);
}

/* A pack a live writer holds is not compacted. */
static void test_compact_skips_claimed(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        VcSweepStats sw;
        VcCompactStats cs;
        VcWriter *w;
        char pp[PATH_MAX];
        struct stat sb;
        store_new(&st);
        assert_int_equal(vc_writer_new(st.s, &w), 0);
        for (uint64_t i = 0; i < 20; i += 2)
                assert_int_equal(put_chunk(w, st.d[0], i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        live_set(&l, 0, 0, 1);
        assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), 0);
        assert_int_equal(sw.chunks_freed, 10);
        assert_int_equal(vc_store_compact(st.s, 1.0, &cs), 0);
        assert_int_equal(cs.packs_deleted, 0);
        pack_path(st.path, st.d[0], 1, pp, sizeof pp);
        assert_int_equal(stat(pp, &sb), 0);
        /* The writer goes on appending to it. */
        assert_int_equal(put_chunk(w, st.d[0], 100), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        assert_int_equal(verify(&st, 100), 0);
        vc_writer_free(w);
        assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), 0);
        assert_int_equal(vc_store_compact(st.s, 1.0, &cs), 0);
        assert_int_equal(cs.packs_deleted, 1);
        assert_int_equal(stat(pp, &sb), -1);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        free(l.tags);
        store_done(&st);
}

/* Compaction repoints an entry only if it still points where the record
 * was copied from: a chunk swept (or moved) meanwhile stays as it is. */
typedef struct Where {
        VcChunkInfo ci;
        const uint8_t *tag;
} Where;

static int where_cb(const VcChunkInfo *ci, void *ctx)
{
        Where *w = ctx;
        if (memcmp(ci->tag, w->tag, VC_TAG_LEN) == 0)
                w->ci = *ci;
        return 0;
}

static VcChunkInfo where(Store *st, uint64_t seed)
{
        uint8_t tag[VC_TAG_LEN];
        chunk_tag(seed, tag);
        Where w = { .tag = tag };
        VcTxn *t;
        assert_int_equal(vc_txn_begin(st->s, false, &t), 0);
        assert_int_equal(vc_txn_iter_chunks(t, where_cb, &w), 0);
        vc_txn_abort(t);
        return w.ci;
}

static void test_move_guard(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        VcSweepStats sw;
        VcWriter *w;
        store_new(&st);
        put_range(&st, 0, 4, 0);
        VcChunkInfo a = where(&st, 0), b = where(&st, 2);
        assert_true(a.pack == 1 && b.pack == 1);
        live_set(&l, 0, 1, 1);          /* only seed 0 */
        assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), 0);
        assert_int_equal(sw.chunks_freed, 3);

        assert_int_equal(vc_writer_new(st.s, &w), 0);
        vc_writer_set_pack_max(w, 64);  /* every record seals its pack: moves land in new packs */
        for (uint64_t seed = 0; seed <= 2; seed += 2) {
                size_t n;
                uint8_t tag[VC_TAG_LEN], *data = make_chunk(seed, &n, tag);
                const VcChunkInfo *ci = seed ? &b : &a;
                /* From the wrong place: ignored. */
                assert_int_equal(vc_writer_move(w, st.d[0], ci->kind, tag, data, n, ci->pack, ci->offset + 1), 0);
                /* From the right place: repointed, unless swept (seed 2). */
                assert_int_equal(vc_writer_move(w, st.d[0], ci->kind, tag, data, n, ci->pack, ci->offset), 0);
                free(data);
        }
        assert_int_equal(vc_writer_flush(w), 0);
        assert_int_equal(vc_writer_moved(w), 1);
        vc_writer_free(w);
        VcChunkInfo a2 = where(&st, 0);
        assert_true(a2.pack != a.pack);
        assert_true(a2.stored_at == a.stored_at);      /* a move keeps the age */
        assert_int_equal(verify(&st, 0), 0);
        assert_int_equal(verify(&st, 2), -ENOENT);      /* not resurrected */
        assert_int_equal(check_store(st.s, true, NULL), 0);
        free(l.tags);
        store_done(&st);
}

/* ---- a crash at each step -------------------------------------------------------------- */

/* Runs fn in a child with VMCAS_CRASH_AT=point; the child must die there. */
static void crash_at(Store *st, const char *point, void (*fn)(Store *))
{
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                Store c = *st;
                setenv("VMCAS_CRASH_AT", point, 1);
                if (vc_store_open(st->path, &c.s) < 0)
                        _exit(1);
                fn(&c);
                _exit(0);       /* the point was never reached */
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
                fprintf(stderr, "# %s: child did not die there (status %d)\n", point, status);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
}

static void child_put(Store *st)
{
        VcWriter *w;
        if (vc_writer_new(st->s, &w) < 0)
                _exit(1);
        for (uint64_t i = 7000; i < 7030; i++)
                if (put_chunk(w, st->d[i % 2], i) < 0)
                        _exit(1);
        vc_writer_flush(w);
        _exit(0);
}

static void child_compact(Store *st)
{
        if (vc_store_compact(st->s, 0.9, NULL) < 0)
                _exit(1);
}

static void test_crash_points(void **state)
{
        (void)state;
        static const char *const points[] = { "compact-copied", "compact-retired", "compact-unlinked" };
        Store st;
        Live l = { 0 };
        VcSweepStats sw;
        store_new(&st);

        /* Writer: dies after creating a pack file, or after syncing its data,
         * before the index knows either. */
        crash_at(&st, "pack-created", child_put);
        crash_at(&st, "flush-synced", child_put);
        for (uint64_t i = 7000; i < 7030; i++)
                assert_int_equal(verify(&st, i), -ENOENT);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        put_range(&st, 7000, 7030, 0);
        for (uint64_t i = 7000; i < 7030; i++)
                assert_int_equal(verify(&st, i), 0);

        uint64_t base = 0;
        for (size_t p = 0; p < VC_ARRAY_SIZE(points); p++, base += 1000) {
                VcCompactStats cs;
                put_range(&st, base, base + 200, 32 << 10);
                live_set(&l, base, base + 200, 3);
                /* Keep 7000.. live too. */
                uint8_t (*t)[VC_TAG_LEN] = realloc(l.tags, (l.n + 30) * VC_TAG_LEN);
                l.tags = t;
                for (uint64_t i = 7000; i < 7030; i++)
                        chunk_tag(i, l.tags[l.n++]);
                qsort(l.tags, l.n, VC_TAG_LEN, tag_cmp);
                assert_int_equal(sweep(&st, &l, INT64_MAX, &sw), 0);

                crash_at(&st, points[p], child_compact);
                for (uint64_t i = base; i < base + 200; i++)
                        assert_int_equal(verify(&st, i), i % 3 ? -ENOENT : 0);
                assert_int_equal(check_store(st.s, true, NULL), 0);

                /* A later compaction finishes the job. */
                uint64_t before = pack_bytes(&st);
                assert_int_equal(vc_store_compact(st.s, 0.9, &cs), 0);
                assert_true(pack_bytes(&st) < before || p > 0);
                for (uint64_t i = base; i < base + 200; i++)
                        assert_int_equal(verify(&st, i), i % 3 ? -ENOENT : 0);
                for (uint64_t i = 7000; i < 7030; i++)
                        assert_int_equal(verify(&st, i), 0);
                assert_int_equal(check_store(st.s, true, NULL), 0);
                /* No pack is left that compaction should have removed. */
                assert_int_equal(vc_store_compact(st.s, 0.9, &cs), 0);
                assert_int_equal(cs.packs_deleted, 0);
        }
        free(l.tags);
        store_done(&st);
}

/* ---- reindex ------------------------------------------------------------------------------ */

static void lose_index(Store *st)
{
        char p[PATH_MAX];
        vc_store_free(st->s);
        snprintf(p, sizeof p, "%s/index/data.mdb", st->path);
        assert_int_equal(unlink(p), 0);
        snprintf(p, sizeof p, "%s/index/lock.mdb", st->path);
        unlink(p);
        assert_int_equal(vc_store_open_repair(st->path, &st->s), 0);
}

static void test_reindex(void **state)
{
        (void)state;
        Store st;
        uint64_t id;
        store_new(&st);
        put_range(&st, 0, 300, 64 << 10);
        /* A torn tail on one pack: half a record past the end. */
        char pp[PATH_MAX];
        pack_path(st.path, st.d[0], 1, pp, sizeof pp);
        {
                size_t n;
                uint8_t tag[VC_TAG_LEN], *b = make_chunk(0, &n, tag);
                FILE *f = fopen(pp, "a");
                assert_non_null(f);
                fwrite(b, 1, n / 2, f);
                fclose(f);
                free(b);
        }

        /* Without rebuilding, the catalog is empty. */
        lose_index(&st);
        assert_int_equal(verify(&st, 5), -ENOENT);
        assert_int_equal(vc_store_domain(st.s, "parcel:1", false, &id), -ENOENT);
        vc_errclear();

        assert_int_equal(vc_store_reindex(st.s), 300);
        for (uint64_t i = 0; i < 300; i++)
                assert_int_equal(verify(&st, i), 0);
        /* Names recovered from the domain files, ids unchanged. */
        assert_int_equal(vc_store_domain(st.s, "parcel:1", false, &id), 0);
        assert_true(id == st.d[0]);
        assert_int_equal(vc_store_domain(st.s, "group:eng", false, &id), 0);
        assert_true(id == st.d[1]);
        assert_int_equal(vc_store_domain(st.s, "parcel:9", true, &id), 0);
        assert_true(id > st.d[0] && id > st.d[1]);
        assert_int_equal(check_store(st.s, true, NULL), 0);

        /* New writes take new pack numbers and clobber nothing; the torn
         * tail is cut by whoever claims that pack. */
        put_range(&st, 300, 400, 64 << 10);
        for (uint64_t i = 0; i < 400; i++)
                assert_int_equal(verify(&st, i), 0);
        assert_int_equal(check_store(st.s, true, NULL), 0);

        /* Reindex keeps the catalog, and refuses while a writer holds a pack. */
        VcTxn *t;
        const void *v;
        size_t vl;
        assert_int_equal(vc_txn_begin(st.s, true, &t), 0);
        assert_int_equal(vc_txn_put(t, VC_TABLE_VERSIONS, "v1", 2, "root", 4), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        VcWriter *w;
        assert_int_equal(vc_writer_new(st.s, &w), 0);
        assert_int_equal(put_chunk(w, st.d[0], 500), 1);
        vc_errclear();
        assert_int_equal(vc_store_reindex(st.s), -EBUSY);
        assert_non_null(strstr(vc_errmsg(-EBUSY), "in use"));
        vc_errclear();
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        assert_int_equal(vc_store_reindex(st.s), 401);
        assert_int_equal(vc_txn_begin(st.s, false, &t), 0);
        assert_int_equal(vc_txn_get(t, VC_TABLE_VERSIONS, "v1", 2, &v, &vl), 0);
        assert_memory_equal(v, "root", 4);
        vc_txn_abort(t);
        assert_int_equal(verify(&st, 500), 0);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        store_done(&st);
}

/* After a lost index, and before any reindex, a new domain must not be
 * handed the id of a directory full of another domain's packs. */
static void test_domain_ids_after_index_loss(void **state)
{
        (void)state;
        Store st;
        uint64_t id, again;
        store_new(&st);
        put_range(&st, 0, 20, 0);
        /* Damage one record's data: reindex must not index it. */
        char pp[PATH_MAX];
        size_t n;
        uint8_t tag[VC_TAG_LEN], *data = make_chunk(6, &n, tag);
        pack_path(st.path, st.d[0], 1, pp, sizeof pp);
        assert_int_equal(flip_after(pp, data, 32, 3), 1);
        free(data);
        lose_index(&st);
        assert_int_equal(vc_store_domain(st.s, "parcel:2", true, &id), 0);
        assert_true(id != st.d[0] && id != st.d[1]);
        assert_int_equal(vc_store_domain(st.s, "parcel:3", true, &again), 0);
        assert_true(again != st.d[0] && again != st.d[1] && again != id);
        assert_int_equal(vc_store_reindex(st.s), 19);
        for (uint64_t i = 0; i < 20; i++)
                assert_int_equal(verify(&st, i), i == 6 ? -ENOENT : 0);
        /* The old names come back; the new domains keep theirs. */
        char name[64];
        assert_int_equal(vc_store_domain_name(st.s, st.d[0], name, sizeof name), 0);
        assert_string_equal(name, "parcel:1");
        assert_int_equal(vc_store_domain(st.s, "group:eng", false, &again), 0);
        assert_true(again == st.d[1]);
        assert_int_equal(vc_store_domain(st.s, "parcel:2", false, &again), 0);
        assert_true(again == id);
        /* The damaged record is dead space now, still reported. */
        Damage dm = { 0 };
        assert_int_equal(check_store(st.s, true, &dm), 1);
        assert_true(damage_has(&dm, tag));
        store_done(&st);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_iter_chunks),
                cmocka_unit_test(test_sweep),
                cmocka_unit_test(test_compact),
                cmocka_unit_test(test_compact_skips_claimed),
                cmocka_unit_test(test_move_guard),
                cmocka_unit_test(test_crash_points),
                cmocka_unit_test(test_reindex),
                cmocka_unit_test(test_domain_ids_after_index_loss),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
