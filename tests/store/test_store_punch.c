/* Freeing dead records in place: vc_store_compact punches holes under
 * the dead stretches of a pack behind a filler record; verify --full, the
 * pack walk, reindex, later writers and later compactions must all step
 * over them. Also: unindexed tails are cut, a crash between the filler
 * and the hole is harmless, the filler's format. */
#include "store_test.h"
#include "store/vc_store_int.h"   /* VC_KIND_FREE, vc_rec_hdr_*, vc_writer_move */

#include <inttypes.h>
#include <signal.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#define N 600

typedef struct Store {
        char *path;
        VcStore *s;
        uint64_t d;
} Store;

static void store_new(Store *st)
{
        st->path = tmp_store();
        assert_int_equal(vc_store_create(st->path), 0);
        assert_int_equal(vc_store_open(st->path, &st->s), 0);
        assert_int_equal(vc_store_domain(st->s, "parcel:1", true, &st->d), 0);
}

static void store_done(Store *st)
{
        vc_store_free(st->s);
        vc_errclear();
        tmp_store_free(st->path);
}

static void put_range(Store *st, uint64_t lo, uint64_t hi)
{
        VcWriter *w;
        assert_int_equal(vc_writer_new(st->s, &w), 0);
        for (uint64_t i = lo; i < hi; i++)
                assert_int_equal(put_chunk(w, st->d, i), 1);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
}

static void sweep(Store *st, Live *l)
{
        VcTxn *t;
        VcSweepStats sw;
        assert_int_equal(vc_txn_begin(st->s, true, &t), 0);
        assert_int_equal(vc_txn_sweep(t, is_live, l, INT64_MAX, &sw), 0);
        assert_int_equal(vc_txn_commit(t), 0);
}

/* Where every chunk seed is, from the index. */
typedef struct Place {
        uint32_t pack;
        uint64_t off;
        uint32_t len;
} Place;

typedef struct Places {
        Place *p;               /* by seed */
        uint8_t (*tags)[VC_TAG_LEN];
        uint64_t n;
} Places;

static int place_cb(const VcChunkInfo *ci, void *ctx)
{
        Places *pl = ctx;
        for (uint64_t i = 0; i < pl->n; i++)
                if (memcmp(pl->tags[i], ci->tag, VC_TAG_LEN) == 0)
                        pl->p[i] = (Place){ ci->pack, ci->offset, ci->len };
        return 0;
}

static void places(Store *st, Places *pl, uint64_t n)
{
        pl->n = n;
        pl->p = calloc(n, sizeof *pl->p);
        pl->tags = calloc(n, VC_TAG_LEN);
        for (uint64_t i = 0; i < n; i++)
                chunk_tag(i, pl->tags[i]);
        VcTxn *t;
        assert_int_equal(vc_txn_begin(st->s, false, &t), 0);
        assert_int_equal(vc_txn_iter_chunks(t, place_cb, pl), 0);
        vc_txn_abort(t);
}

static int cmp_u64(const void *a, const void *b)
{
        uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
        return x < y ? -1 : x > y;
}

/* The dead seeds (not live(seed)) that gc's rule puts behind a filler:
 * those in a stretch of dead records, between two live ones (or the pack
 * header and the committed length), that spans a whole block. */
static uint64_t covered(const Places *pl, bool (*live)(uint64_t), uint64_t committed, uint64_t bs,
                        bool *cov)
{
        uint64_t *offs = malloc(pl->n * sizeof *offs), n = 0, total = 0;
        for (uint64_t i = 0; i < pl->n; i++)
                if (live(i))
                        offs[n++] = pl->p[i].off << 20 | i;     /* offsets < 2^40 here */
        qsort(offs, n, sizeof *offs, cmp_u64);
        for (uint64_t i = 0; i < pl->n; i++) {
                cov[i] = false;
                if (live(i))
                        continue;
                uint64_t a = VC_PACK_HDR_LEN, b = committed, off = pl->p[i].off;
                for (uint64_t j = 0; j < n; j++) {
                        uint64_t s = offs[j] & ((1u << 20) - 1);
                        uint64_t lo = pl->p[s].off, hi = lo + VC_REC_HDR_LEN + pl->p[s].len;
                        if (hi <= off)
                                a = VC_MAX(a, hi);
                        else if (lo > off) {
                                b = lo;
                                break;
                        }
                }
                uint64_t hs = (a + VC_REC_HDR_LEN + bs - 1) / bs * bs, he = b / bs * bs;
                cov[i] = he > hs;
                total += cov[i];
        }
        free(offs);
        return total;
}

static void pack_file(Store *st, uint32_t p, char *buf, size_t len)
{
        pack_path(st->path, st->d, p, buf, len);
}

static bool live7(uint64_t i)
{
        return i % 7 == 0 || i % 23 == 0;
}

static void live_set_fn(Live *l, uint64_t n, bool (*live)(uint64_t))
{
        free(l->tags);
        *l = (Live){ 0 };
        l->tags = calloc(n + 1, VC_TAG_LEN);
        for (uint64_t i = 0; i < n; i++)
                if (live(i))
                        chunk_tag(i, l->tags[l->n++]);
        qsort(l->tags, l->n, VC_TAG_LEN, tag_cmp);
}

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

/* ---- punching, then verify and reindex ------------------------------------------------- */

static void test_punch_verify_reindex(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        VcCompactStats cs;
        char pp[PATH_MAX];
        struct stat sb0, sb1;
        store_new(&st);
        put_range(&st, 0, N);           /* one pack (N chunks, ~12 MiB) */
        Places pl;
        places(&st, &pl, N);
        pack_file(&st, 1, pp, sizeof pp);
        assert_int_equal(stat(pp, &sb0), 0);

        live_set_fn(&l, N, live7);
        sweep(&st, &l);
        uint64_t live_bytes = 0;
        for (uint64_t i = 0; i < N; i++)
                if (live7(i))
                        live_bytes += chunk_len(i);
        /* ratio 0: free in place, rewrite nothing */
        assert_int_equal(vc_store_compact(st.s, 0, &cs), 0);
        assert_int_equal(cs.chunks_moved, 0);
        assert_int_equal(cs.packs_rewritten, 0);
        assert_int_equal(cs.packs_deleted, 0);
        assert_int_equal(cs.packs_punched, 1);
        assert_int_equal(stat(pp, &sb1), 0);
        assert_int_equal(sb1.st_size, sb0.st_size);             /* holes keep the size */
        assert_true(cs.bytes_punched > (uint64_t)sb0.st_size / 2);
        assert_int_equal(cs.disk_before - cs.disk_after, cs.bytes_punched);
        assert_int_equal((uint64_t)sb1.st_blocks * 512, cs.disk_after);
        assert_true(cs.disk_after < live_bytes + live_bytes / 4 + (64 << 10));
        /* the file really has holes */
        int fd = open(pp, O_RDONLY);
        assert_true(fd >= 0);
        off_t h = lseek(fd, VC_PACK_HDR_LEN, SEEK_HOLE);
        assert_true(h > 0 && h < sb1.st_size);
        close(fd);

        for (uint64_t i = 0; i < N; i++)
                assert_int_equal(verify_chunk(st.s, st.d, i), live7(i) ? 0 : -ENOENT);
        /* verify --full walks over the fillers: clean, and it re-hashes
         * only what is still there (live, and dead records no filler
         * covers). */
        bool *cov = calloc(N, sizeof *cov);
        struct statvfs sv;
        uint64_t bs = (uint64_t)sb1.st_blksize;
        if (statvfs(pp, &sv) == 0 && sv.f_frsize > bs)
                bs = sv.f_frsize;
        uint64_t ncov = covered(&pl, live7, (uint64_t)sb0.st_size, bs, cov);
        uint64_t uncovered_bytes = 0;
        for (uint64_t i = 0; i < N; i++)
                if (!live7(i) && !cov[i])
                        uncovered_bytes += chunk_len(i);
        printf("# %" PRIu64 " of %d dead records behind fillers; %" PRIu64 " bytes punched\n", ncov,
               N - (int)l.n, cs.bytes_punched);
        assert_true(ncov > (N - l.n) / 2);
        VcCheckStats cks;
        Damage dm = { 0 };
        assert_int_equal(vc_store_check(st.s, true, damage_cb, &dm, &cks), 0);
        assert_int_equal(cks.bytes_checked, live_bytes + uncovered_bytes);

        /* Punching again finds nothing more to do. */
        assert_int_equal(vc_store_compact(st.s, 0, &cs), 0);
        assert_int_equal(cs.packs_punched, 0);
        assert_int_equal(cs.bytes_punched, 0);

        /* Reindex from the packs alone: every live chunk comes back; a
         * dead record behind a filler never does (its bytes are gone);
         * one no filler covers is a good record and is indexed again, as
         * any dead record is after a reindex. */
        lose_index(&st);
        int got = vc_store_reindex(st.s);
        assert_int_equal(got, (int)(N - ncov));
        assert_int_equal(vc_store_domain(st.s, "parcel:1", false, &st.d), 0);
        for (uint64_t i = 0; i < N; i++)
                assert_int_equal(verify_chunk(st.s, st.d, i), live7(i) || !cov[i] ? 0 : -ENOENT);
        assert_int_equal(check_store(st.s, true, NULL), 0);

        /* A writer appends after the fillers; a later sweep makes stretches
         * grow into each other; punching and compacting still line up. */
        put_range(&st, 5000, 5040);
        free(l.tags);
        l = (Live){ .tags = calloc(N + 40, VC_TAG_LEN) };
        for (uint64_t i = 5000; i < 5040; i += 2)
                chunk_tag(i, l.tags[l.n++]);
        for (uint64_t i = 0; i < N; i += 14)    /* half of the %7 ones die, and all %23 */
                chunk_tag(i, l.tags[l.n++]);
        qsort(l.tags, l.n, VC_TAG_LEN, tag_cmp);
        sweep(&st, &l);
        assert_int_equal(vc_store_compact(st.s, 0, &cs), 0);
        assert_true(cs.bytes_punched > 0);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        for (uint64_t i = 5000; i < 5040; i++)
                assert_int_equal(verify_chunk(st.s, st.d, i), i % 2 ? -ENOENT : 0);
        for (uint64_t i = 0; i < N; i++)
                if (i % 14 == 0)
                        assert_int_equal(verify_chunk(st.s, st.d, i), 0);
        /* And a rewrite of the punched pack moves what is live, nothing else. */
        assert_int_equal(vc_store_compact(st.s, 0.9, &cs), 0);
        assert_true(cs.packs_rewritten >= 1);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        for (uint64_t i = 0; i < N; i++)
                if (i % 14 == 0)
                        assert_int_equal(verify_chunk(st.s, st.d, i), 0);
        free(cov);
        free(pl.p);
        free(pl.tags);
        free(l.tags);
        store_done(&st);
}

/* ---- a damaged filler ------------------------------------------------------------------ */

static void test_damaged_filler(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        char pp[PATH_MAX];
        store_new(&st);
        put_range(&st, 0, 200);
        live_set_fn(&l, 200, live7);
        sweep(&st, &l);
        assert_int_equal(vc_store_compact(st.s, 0, NULL), 0);
        /* Find the first filler and flip a bit of its header. */
        pack_file(&st, 1, pp, sizeof pp);
        size_t len;
        uint8_t *b = slurp(pp, &len);
        long at = -1;
        for (size_t off = VC_PACK_HDR_LEN; off + VC_REC_HDR_LEN <= len; off++) {
                VcRecHdr h;
                if (vc_rec_hdr_decode(b + off, &h) == 0 && h.kind == VC_KIND_FREE) {
                        at = (long)off;
                        break;
                }
        }
        free(b);
        assert_true(at > 0);
        flip_byte(pp, at + 20);
        /* The dead space is reported; every live chunk still reads and
         * checks (the walk finds the next live record again). */
        Damage dm = { 0 };
        assert_true(check_store(st.s, true, &dm) >= 1);
        for (int i = 0; i < dm.with_tag; i++)   /* at most dead records under it */
                assert_null(bsearch(dm.tags[i], l.tags, l.n, VC_TAG_LEN, tag_cmp));
        assert_int_equal(check_store(st.s, false, NULL), 0);
        for (uint64_t i = 0; i < 200; i++)
                assert_int_equal(verify_chunk(st.s, st.d, i), live7(i) ? 0 : -ENOENT);
        lose_index(&st);
        assert_true(vc_store_reindex(st.s) >= (int)l.n);
        assert_int_equal(vc_store_domain(st.s, "parcel:1", false, &st.d), 0);
        for (uint64_t i = 0; i < 200; i++)
                if (live7(i))
                        assert_int_equal(verify_chunk(st.s, st.d, i), 0);
        free(l.tags);
        store_done(&st);
}

/* ---- unindexed tails ------------------------------------------------------------------- */

static void test_tails(void **state)
{
        (void)state;
        Store st;
        VcCompactStats cs;
        char pp[PATH_MAX];
        struct stat sb;
        store_new(&st);
        put_range(&st, 0, 30);
        pack_file(&st, 1, pp, sizeof pp);
        assert_int_equal(stat(pp, &sb), 0);
        off_t committed = sb.st_size;
        /* What a writer killed before its flush leaves. */
        int fd = open(pp, O_WRONLY | O_APPEND);
        uint8_t junk[10000];
        memset(junk, 0x5a, sizeof junk);
        assert_int_equal(write(fd, junk, sizeof junk), (ssize_t)sizeof junk);
        close(fd);
        assert_int_equal(vc_store_compact(st.s, 0.5, &cs), 0);
        assert_int_equal(cs.tail_bytes, sizeof junk);
        assert_int_equal(stat(pp, &sb), 0);
        assert_int_equal(sb.st_size, committed);

        /* A pack a live writer holds keeps its tail: the writer's chunk,
         * written but not flushed yet (1.5 MiB: past the buffer, on disk). */
        VcWriter *w;
        uint64_t big = 1000;
        while (chunk_len(big) < (1u << 20))
                big++;
        assert_int_equal(vc_writer_new(st.s, &w), 0);
        assert_int_equal(put_chunk(w, st.d, big), 1);
        assert_int_equal(stat(pp, &sb), 0);
        assert_true(sb.st_size > committed);
        assert_int_equal(vc_store_compact(st.s, 0.5, &cs), 0);
        assert_int_equal(cs.tail_bytes, 0);
        assert_int_equal(vc_writer_flush(w), 0);
        vc_writer_free(w);
        assert_int_equal(verify_chunk(st.s, st.d, big), 0);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        store_done(&st);
}

/* ---- a crash between the filler and the hole --------------------------------------------- */

static void test_punch_crash(void **state)
{
        (void)state;
        Store st;
        Live l = { 0 };
        VcCompactStats cs;
        store_new(&st);
        put_range(&st, 0, 300);
        live_set_fn(&l, 300, live7);
        sweep(&st, &l);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                VcStore *s;
                setenv("VMCAS_CRASH_AT", "punch-marked", 1);
                if (vc_store_open(st.path, &s) < 0)
                        _exit(1);
                vc_store_compact(s, 0, NULL);
                _exit(0);
        }
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL);
        /* Fillers on disk, nothing punched: a clean store. */
        assert_int_equal(check_store(st.s, true, NULL), 0);
        for (uint64_t i = 0; i < 300; i++)
                assert_int_equal(verify_chunk(st.s, st.d, i), live7(i) ? 0 : -ENOENT);
        /* The next pass punches, writing no filler again. */
        assert_int_equal(vc_store_compact(st.s, 0, &cs), 0);
        assert_int_equal(cs.packs_punched, 1);
        assert_true(cs.bytes_punched > 0);
        assert_int_equal(check_store(st.s, true, NULL), 0);
        for (uint64_t i = 0; i < 300; i++)
                assert_int_equal(verify_chunk(st.s, st.d, i), live7(i) ? 0 : -ENOENT);
        free(l.tags);
        store_done(&st);
}

/* ---- the filler record ---------------------------------------------------------------------- */

static void test_filler_format(void **state)
{
        (void)state;
        uint8_t b[VC_REC_HDR_LEN];
        VcRecHdr h = { .kind = VC_KIND_FREE, .domain = 7, .len = 3u << 30 }, g;
        vc_rec_hdr_encode(&h, b);
        assert_int_equal(vc_rec_hdr_decode(b, &g), 0);          /* a filler may pass 2^30 */
        assert_int_equal(g.kind, VC_KIND_FREE);
        assert_int_equal(g.len, 3u << 30);
        h.kind = VC_KIND_DATA;
        vc_rec_hdr_encode(&h, b);
        assert_int_equal(vc_rec_hdr_decode(b, &g), -EBADMSG);    /* a chunk may not */
        h = (VcRecHdr){ .kind = VC_KIND_FREE + 1, .domain = 7, .len = 10 };
        vc_rec_hdr_encode(&h, b);
        assert_int_equal(vc_rec_hdr_decode(b, &g), -EBADMSG);    /* no such kind */
}

/* ---- the reserve ------------------------------------------------------------------------------ */

static void test_reserve(void **state)
{
        (void)state;
        Store st;
        char rp[PATH_MAX];
        struct stat sb;
        store_new(&st);
        snprintf(rp, sizeof rp, "%s/reserve", st.path);
        assert_int_equal(stat(rp, &sb), -1);
        put_range(&st, 0, 3);           /* the first pack brings it, room permitting */
        uint64_t avail = 0;
        assert_int_equal(vc_store_free_space(st.s, &avail), 0);
        if (avail > 8 * VC_STORE_RESERVE) {
                assert_int_equal(stat(rp, &sb), 0);
                assert_true((uint64_t)sb.st_blocks * 512 >= VC_STORE_RESERVE);
        }
        vc_store_reserve_release(st.s);
        assert_int_equal(stat(rp, &sb), -1);
        assert_int_equal(vc_store_reserve_release(st.s), 0);
        assert_int_equal(vc_store_reserve_restore(st.s), 0);
        assert_int_equal(stat(rp, &sb), 0);
        assert_true((uint64_t)sb.st_blocks * 512 >= VC_STORE_RESERVE);
        assert_int_equal(vc_store_reserve_restore(st.s), 0);    /* there already */
        assert_true(vc_store_reserve_release(st.s) >= VC_STORE_RESERVE);
        assert_true(vc_store_out_of_space(st.s, -ENOSPC));
        assert_false(vc_store_out_of_space(st.s, -EBADMSG));
        store_done(&st);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_punch_verify_reindex),
                cmocka_unit_test(test_damaged_filler),
                cmocka_unit_test(test_tails),
                cmocka_unit_test(test_punch_crash),
                cmocka_unit_test(test_filler_format),
                cmocka_unit_test(test_reserve),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
