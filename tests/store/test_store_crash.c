/* Several processes and kill -9: every chunk a writer saw flushed survives,
 * two writers of one domain never share a pack, compaction can die at any
 * point, locks die with their holder.
 *
 * Seeded: set VC_TEST_SEED to replay a run (the seed is printed). */
#include "store_test.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <time.h>

static uint64_t rng;

static void seed_rng(void)
{
        const char *e = getenv("VC_TEST_SEED");
        rng = e ? strtoull(e, NULL, 10) : (uint64_t)time(NULL);
        printf("# VC_TEST_SEED=%llu\n", (unsigned long long)rng);
}

static uint64_t rnd(uint64_t n)
{
        return splitmix(&rng) % n;
}

static void kill_and_reap(pid_t pid)
{
        kill(pid, SIGKILL);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        /* Killed, or done on its own, but never failed. */
        assert_true(WIFSIGNALED(status) || (WIFEXITED(status) && WEXITSTATUS(status) == 0));
}

static char *new_store(uint64_t *d1, uint64_t *d2)
{
        char *path = tmp_store();
        VcStore *s;
        assert_int_equal(vc_store_create(path), 0);
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_domain(s, "parcel:1", true, d1), 0);
        assert_int_equal(vc_store_domain(s, "all", true, d2), 0);
        vc_store_free(s);
        return path;
}

/* ---- kill -9 during put/flush ------------------------------------------------ */

/* Puts batches forever; after each flush, reports the batch's seeds. Seeds
 * below base repeat chunks of earlier rounds (dedup, or a rewrite if they
 * were never flushed). */
_Noreturn static void crash_writer(const char *path, uint64_t d1, uint64_t d2, uint64_t base, int out)
{
        VcStore *s;
        VcWriter *w;
        if (vc_store_open(path, &s) < 0 || vc_writer_new(s, &w) < 0)
                _exit(1);
        vc_writer_set_pack_max(w, 256 << 10);
        uint64_t x = base ^ 0x5eed, seq = base;
        for (;;) {
                char line[8 * 24];
                size_t n = 0;
                int k = 1 + (int)(splitmix(&x) % 8);
                for (int i = 0; i < k; i++) {
                        uint64_t seed = base && splitmix(&x) % 4 == 0 ? splitmix(&x) % base : seq++;
                        if (put_chunk(w, seed % 2 ? d2 : d1, seed) < 0)
                                _exit(2);
                        n += (size_t)snprintf(line + n, sizeof line - n, "%llu\n", (unsigned long long)seed);
                }
                if (vc_writer_flush(w) < 0)
                        _exit(3);
                /* One write below PIPE_BUF: the parent sees whole lines. */
                if (write(out, line, n) != (ssize_t)n)
                        _exit(4);
        }
}

static void test_crash_writes(void **state)
{
        (void)state;
        uint64_t d1, d2;
        char *path = new_store(&d1, &d2);
        uint64_t *flushed = NULL;
        size_t nflushed = 0, cap = 0;
        const int ROUNDS = 30;
        for (int round = 0; round < ROUNDS; round++) {
                int p[2];
                assert_int_equal(pipe(p), 0);
                uint64_t base = (uint64_t)round * 100000;
                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        close(p[0]);
                        crash_writer(path, d1, d2, base, p[1]);
                }
                close(p[1]);
                usleep((useconds_t)(1000 + rnd(40000)));
                kill_and_reap(pid);
                /* Everything the child reported, whole lines only. */
                char buf[1 << 16];
                size_t have = 0;
                ssize_t k;
                while ((k = read(p[0], buf + have, sizeof buf - 1 - have)) > 0)
                        have += (size_t)k;
                close(p[0]);
                buf[have] = 0;
                char *end = strrchr(buf, '\n');
                if (end)
                        end[1] = 0;
                else
                        buf[0] = 0;
                for (char *tok = strtok(buf, "\n"); tok; tok = strtok(NULL, "\n")) {
                        if (nflushed == cap) {
                                cap = cap ? 2 * cap : 256;
                                flushed = realloc(flushed, cap * sizeof *flushed);
                        }
                        flushed[nflushed++] = strtoull(tok, NULL, 10);
                }

                VcStore *s;
                assert_int_equal(vc_store_open(path, &s), 0);
                for (size_t i = 0; i < nflushed; i++) {
                        uint64_t seed = flushed[i];
                        int r = verify_chunk(s, seed % 2 ? d2 : d1, seed);
                        if (r != 0)
                                fprintf(stderr, "# round %d: chunk %llu: %s\n", round, (unsigned long long)seed,
                                        vc_errmsg(r));
                        assert_int_equal(r, 0);
                }
                if (round % 5 == 4 || round == ROUNDS - 1)
                        assert_int_equal(check_store(s, true, NULL), 0);
                vc_store_free(s);
        }
        printf("# %zu chunks reported flushed over %d kills\n", nflushed, ROUNDS);
        assert_true(nflushed > 0);
        free(flushed);
        vc_errclear();
        tmp_store_free(path);
}

/* ---- two writers, one domain ---------------------------------------------------- */

_Noreturn static void two_writer(const char *path, uint64_t d, int id, int go, int done, int release)
{
        VcStore *s;
        VcWriter *w;
        char c;
        if (vc_store_open(path, &s) < 0 || vc_writer_new(s, &w) < 0)
                _exit(1);
        if (read(go, &c, 1) != 1)
                _exit(2);
        for (int j = 0; j < 300; j++) {
                if (put_chunk(w, d, (uint64_t)id * 100000 + (uint64_t)j) != 1)
                        _exit(3);
                if (j < 50 && put_chunk(w, d, 900000 + (uint64_t)j) < 0)   /* both put these */
                        _exit(4);
                if (j % 50 == 49 && vc_writer_flush(w) < 0)
                        _exit(5);
        }
        if (write(done, "D", 1) != 1)
                _exit(6);
        /* Keep the packs claimed until both are done. */
        if (read(release, &c, 1) < 0)
                _exit(7);
        vc_writer_free(w);
        vc_store_free(s);
        _exit(0);
}

typedef struct PackSets {
        uint8_t tags[2][300][VC_TAG_LEN];
        uint64_t used[2];       /* bit p: pack p holds a chunk of writer i */
        int seen;
} PackSets;

static int pack_sets_cb(const VcChunkInfo *ci, void *ctx)
{
        PackSets *ps = ctx;
        ps->seen++;
        for (int i = 0; i < 2; i++)
                for (int j = 0; j < 300; j++)
                        if (memcmp(ci->tag, ps->tags[i][j], VC_TAG_LEN) == 0)
                                ps->used[i] |= 1ull << (ci->pack % 64);
        return 0;
}

static void test_two_writers(void **state)
{
        (void)state;
        uint64_t d, d2;
        char *path = new_store(&d, &d2);
        int go[2], done[2], rel[2];
        assert_int_equal(pipe(go), 0);
        assert_int_equal(pipe(done), 0);
        assert_int_equal(pipe(rel), 0);
        pid_t pid[2];
        for (int i = 0; i < 2; i++) {
                pid[i] = fork();
                assert_true(pid[i] >= 0);
                if (pid[i] == 0) {
                        close(go[1]);
                        close(done[0]);
                        close(rel[1]);
                        two_writer(path, d, i + 1, go[0], done[1], rel[0]);
                }
        }
        close(go[0]);
        close(done[1]);
        close(rel[0]);
        assert_int_equal(write(go[1], "GG", 2), 2);
        char c;
        for (int i = 0; i < 2; i++)
                assert_int_equal(read(done[0], &c, 1), 1);
        close(rel[1]);
        for (int i = 0; i < 2; i++) {
                int status;
                assert_int_equal(waitpid(pid[i], &status, 0), pid[i]);
                assert_true(WIFEXITED(status));
                assert_int_equal(WEXITSTATUS(status), 0);
        }
        close(go[1]);
        close(done[0]);

        VcStore *s;
        assert_int_equal(vc_store_open(path, &s), 0);
        PackSets *ps = calloc(1, sizeof *ps);
        for (int i = 0; i < 2; i++)
                for (int j = 0; j < 300; j++) {
                        assert_int_equal(verify_chunk(s, d, (uint64_t)(i + 1) * 100000 + (uint64_t)j), 0);
                        chunk_tag((uint64_t)(i + 1) * 100000 + (uint64_t)j, ps->tags[i][j]);
                }
        for (int j = 0; j < 50; j++)
                assert_int_equal(verify_chunk(s, d, 900000 + (uint64_t)j), 0);
        VcTxn *t;
        assert_int_equal(vc_txn_begin(s, false, &t), 0);
        assert_int_equal(vc_txn_iter_chunks(t, pack_sets_cb, ps), 0);
        vc_txn_abort(t);
        assert_int_equal(ps->seen, 650);                /* the shared 50 indexed once */
        assert_true(ps->used[0] != 0 && ps->used[1] != 0);
        assert_true((ps->used[0] & ps->used[1]) == 0);  /* no pack written by both */
        free(ps);
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        tmp_store_free(path);
}

/* ---- locks ----------------------------------------------------------------------- */

static void test_locks(void **state)
{
        (void)state;
        uint64_t d1, d2;
        char *path = new_store(&d1, &d2);
        VcStore *s;
        int p[2], fd, fd2;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                VcStore *cs;
                int cfd;
                close(p[0]);
                if (vc_store_open(path, &cs) < 0 || vc_store_lock(cs, "parcel-3", true, false, &cfd) < 0)
                        _exit(1);
                if (write(p[1], "L", 1) != 1)
                        _exit(2);
                for (;;)
                        pause();
        }
        close(p[1]);
        char c;
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);

        char want[64];
        snprintf(want, sizeof want, "parcel-3 is locked by process %d", (int)pid);
        vc_errclear();
        assert_int_equal(vc_store_lock(s, "parcel-3", true, false, &fd), -EBUSY);
        assert_non_null(strstr(vc_errmsg(-EBUSY), want));
        vc_errclear();
        assert_int_equal(vc_store_lock(s, "parcel-3", false, false, &fd), -EBUSY);
        vc_errclear();
        assert_int_equal(vc_store_lock(s, "parcel-4", true, false, &fd), 0);    /* others are free */
        vc_store_unlock(fd);

        kill_and_reap(pid);
        assert_int_equal(vc_store_lock(s, "parcel-3", true, false, &fd), 0);
        vc_store_unlock(fd);
        vc_store_unlock(-1);

        /* Shared locks share; an exclusive one waits for them. */
        assert_int_equal(vc_store_lock(s, "gc", false, false, &fd), 0);
        assert_int_equal(vc_store_lock(s, "gc", false, false, &fd2), 0);
        assert_int_equal(vc_store_lock(s, "gc", true, false, &p[0]), -EBUSY);
        vc_store_unlock(fd);
        vc_store_unlock(fd2);

        /* wait = true blocks until the holder goes. */
        assert_int_equal(pipe(p), 0);
        pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
                VcStore *cs;
                int cfd;
                close(p[0]);
                if (vc_store_open(path, &cs) < 0 || vc_store_lock(cs, "parcel-5", true, false, &cfd) < 0)
                        _exit(1);
                if (write(p[1], "L", 1) != 1)
                        _exit(2);
                usleep(200000);
                _exit(0);
        }
        close(p[1]);
        assert_int_equal(read(p[0], &c, 1), 1);
        close(p[0]);
        double t0 = vc_mono();
        assert_int_equal(vc_store_lock(s, "parcel-5", true, true, &fd), 0);
        assert_true(vc_mono() - t0 > 0.05);
        vc_store_unlock(fd);
        int status;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);

        assert_int_equal(vc_store_lock(s, "../x", true, false, &fd), -EINVAL);
        assert_int_equal(vc_store_lock(s, "", true, false, &fd), -EINVAL);
        vc_store_free(s);
        vc_errclear();
        tmp_store_free(path);
}

/* ---- kill -9 during compaction ------------------------------------------------------ */

static void test_crash_compaction(void **state)
{
        (void)state;
        uint64_t d1, d2;
        char *path = new_store(&d1, &d2);
        const int ROUNDS = 14, PER = 150;
        Live live = { .tags = calloc((size_t)ROUNDS * PER, VC_TAG_LEN) };
        uint64_t killed_mid = 0;
        for (int round = 0; round < ROUNDS; round++) {
                VcStore *s;
                VcWriter *w;
                VcTxn *t;
                /* New chunks in small packs; a fifth of them stay live. */
                assert_int_equal(vc_store_open(path, &s), 0);
                assert_int_equal(vc_writer_new(s, &w), 0);
                vc_writer_set_pack_max(w, 64 << 10);
                for (int j = 0; j < PER; j++) {
                        uint64_t seed = (uint64_t)round * 1000 + (uint64_t)j;
                        assert_int_equal(put_chunk(w, seed % 2 ? d2 : d1, seed), 1);
                        if (seed % 5 == 0)
                                chunk_tag(seed, live.tags[live.n++]);
                }
                assert_int_equal(vc_writer_flush(w), 0);
                vc_writer_free(w);
                qsort(live.tags, live.n, VC_TAG_LEN, tag_cmp);
                VcSweepStats sw;
                assert_int_equal(vc_txn_begin(s, true, &t), 0);
                assert_int_equal(vc_txn_sweep(t, is_live, &live, INT64_MAX, &sw), 0);
                assert_int_equal(vc_txn_commit(t), 0);
                assert_int_equal(sw.chunks_kept, live.n);
                vc_store_free(s);

                pid_t pid = fork();
                assert_true(pid >= 0);
                if (pid == 0) {
                        if (vc_store_open(path, &s) < 0 || vc_store_compact(s, 0.8, NULL) < 0)
                                _exit(1);
                        _exit(0);
                }
                usleep((useconds_t)rnd(30000));
                int status;
                pid_t got = waitpid(pid, &status, WNOHANG);
                if (got == 0) {
                        killed_mid++;
                        kill_and_reap(pid);
                } else {
                        assert_int_equal(got, pid);
                        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
                }

                assert_int_equal(vc_store_open(path, &s), 0);
                for (int r2 = 0; r2 <= round; r2++)
                        for (int j = 0; j < PER; j += 5) {
                                uint64_t seed = (uint64_t)r2 * 1000 + (uint64_t)j;
                                assert_int_equal(verify_chunk(s, seed % 2 ? d2 : d1, seed), 0);
                        }
                assert_int_equal(verify_chunk(s, d2, (uint64_t)round * 1000 + 1), -ENOENT);
                assert_int_equal(check_store(s, true, NULL), 0);
                vc_store_free(s);
        }
        printf("# %llu of %d compactions killed midway\n", (unsigned long long)killed_mid, ROUNDS);

        /* Finish the job: dead bytes go, live chunks stay. */
        VcStore *s;
        VcCompactStats cs;
        assert_int_equal(vc_store_open(path, &s), 0);
        assert_int_equal(vc_store_compact(s, 0.8, &cs), 0);
        assert_true(cs.bytes_after <= cs.bytes_before);
        assert_int_equal(vc_store_compact(s, 0.8, &cs), 0);
        assert_int_equal(cs.chunks_moved, 0);                  /* nothing left to do */
        VcDomainStat *st;
        size_t n;
        assert_int_equal(vc_store_stat(s, &st, &n, NULL), 0);
        uint64_t live_bytes = 0, pack_bytes = 0, packs = 0;
        for (size_t i = 0; i < n; i++) {
                live_bytes += st[i].data_bytes + st[i].meta_bytes +
                              56 * (st[i].data_chunks + st[i].meta_chunks);
                pack_bytes += st[i].pack_bytes;
                packs += st[i].packs;
        }
        free(st);
        /* Left: live records, pack headers, and packs under the 0.8 bar. */
        assert_true(pack_bytes <= live_bytes / 0.8 + packs * 64 + (64 << 10));
        for (int r2 = 0; r2 < ROUNDS; r2++)
                for (int j = 0; j < PER; j++) {
                        uint64_t seed = (uint64_t)r2 * 1000 + (uint64_t)j;
                        assert_int_equal(verify_chunk(s, seed % 2 ? d2 : d1, seed), j % 5 == 0 ? 0 : -ENOENT);
                }
        assert_int_equal(check_store(s, true, NULL), 0);
        vc_store_free(s);
        free(live.tags);
        vc_errclear();
        tmp_store_free(path);
}

int main(void)
{
        seed_rng();
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_crash_writes),
                cmocka_unit_test(test_two_writers),
                cmocka_unit_test(test_locks),
                cmocka_unit_test(test_crash_compaction),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
