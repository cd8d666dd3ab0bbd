/* Unit tests of errors across threads: VcErr (core/vc_util) and the worker
 * pool (core/vc_pool). An error and its message raised in a worker reach
 * the caller's thread, with 1 thread and with several. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "core/vc_limits.h"
#include "core/vc_pool.h"
#include "core/vc_util.h"

static void test_err_value(void **state)
{
        (void)state;
        VcErr e = VC_ERR_INIT;
        assert_false(vc_err_failed(&e));
        assert_int_equal(vc_err_raise(&e), 0);
        assert_int_equal(vc_err_save(&e, 0), 0);
        assert_int_equal(vc_err_save(&e, 5), 5);
        assert_false(vc_err_failed(&e));

        vc_errclear();
        vc_errf(-EBADMSG, "chunk 3f2a at offset 4096 of pack 1: damaged");
        assert_int_equal(vc_err_save(&e, -EBADMSG), -EBADMSG);
        assert_true(vc_err_failed(&e));
        /* the saving thread keeps its own message */
        assert_string_equal(vc_errmsg(-EBADMSG), "chunk 3f2a at offset 4096 of pack 1: damaged");
        /* the first error wins */
        vc_errclear();
        vc_errf(-EIO, "a later error");
        assert_int_equal(vc_err_save(&e, -EIO), -EIO);
        assert_int_equal(e.code, -EBADMSG);
        /* raise replaces this thread's message */
        assert_int_equal(vc_err_raise(&e), -EBADMSG);
        assert_string_equal(vc_errmsg(-EBADMSG), "chunk 3f2a at offset 4096 of pack 1: damaged");

        /* an error without a message raises as none: strerror */
        vc_err_clear(&e);
        assert_false(vc_err_failed(&e));
        vc_errclear();
        vc_err_save(&e, -ENOMEM);
        vc_errf(-EIO, "stale");
        assert_int_equal(vc_err_raise(&e), -ENOMEM);
        assert_string_equal(vc_errmsg(-ENOMEM), strerror(ENOMEM));

        /* a value: copies keep the error */
        vc_errclear();
        vc_errf(-EINVAL, "copied");
        VcErr a = VC_ERR_INIT;
        vc_err_save(&a, -EINVAL);
        VcErr b = a;
        vc_errclear();
        assert_int_equal(vc_err_raise(&b), -EINVAL);
        assert_string_equal(vc_errmsg(-EINVAL), "copied");

        /* context in front of the innermost cause, or of strerror */
        vc_errclear();
        vc_errf(-EBADMSG, "data of chunk 3f2a does not match its tag");
        assert_int_equal(vc_errf_prefix(-EBADMSG, "version %u, %s image", 2u, "disk"), -EBADMSG);
        assert_string_equal(vc_errmsg(-EBADMSG), "version 2, disk image: data of chunk 3f2a does not match its tag");
        vc_errclear();
        vc_errf_prefix(-EIO, "chunk %d", 7);
        assert_string_equal(vc_errmsg(-EIO), "chunk 7: Input/output error");

        /* a message as long as the buffer survives the trip, cut as vc_errf cuts it */
        char big[3000];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = 0;
        vc_errclear();
        vc_errf(-EIO, "%s", big);
        VcErr c = VC_ERR_INIT;
        vc_err_save(&c, -EIO);
        vc_errclear();
        vc_err_raise(&c);
        assert_int_equal(strlen(vc_errmsg(-EIO)), VC_ERRMSG_MAX - 1);
        vc_errclear();
}

/* ---- one VcErr shared by raw threads ---- */

typedef struct {
        VcErr *e;
        int id;
        atomic_int *go;
} Saver;

static void *saver(void *arg)
{
        Saver *s = arg;
        while (!atomic_load(s->go))
                ;
        vc_errf(-(100 + s->id), "error of thread %d", s->id);
        vc_err_save(s->e, -(100 + s->id));
        return NULL;
}

static void test_err_shared(void **state)
{
        (void)state;
        for (int round = 0; round < 50; round++) {
                VcErr e = VC_ERR_INIT;
                atomic_int go = 0;
                pthread_t th[8];
                Saver sv[8];
                for (int i = 0; i < 8; i++) {
                        sv[i] = (Saver){ &e, i, &go };
                        assert_int_equal(pthread_create(&th[i], NULL, saver, &sv[i]), 0);
                }
                atomic_store(&go, 1);
                for (int i = 0; i < 8; i++)
                        pthread_join(th[i], NULL);
                /* one winner, whose message goes with its own code */
                vc_errclear();
                int r = vc_err_raise(&e);
                assert_true(r <= -100 && r >= -107);
                char want[64];
                snprintf(want, sizeof want, "error of thread %d", -r - 100);
                assert_string_equal(vc_errmsg(r), want);
        }
        vc_errclear();
}

/* ---- the pool ---- */

typedef struct {
        int fail_tid;           /* -1: none */
        int n;
        atomic_int ran[VC_THREADS_MAX];
        atomic_int stopped;
        pthread_t caller;
        atomic_int in_caller;
} Job;

/* Like a checkout worker: the failing one names the chunk, pack, offset,
 * parcel and version, wrapped by a second layer as real code does. */
static int read_chunk(int tid)
{
        return vc_errf(-EBADMSG, "data of chunk %04x at offset %d of pack 1 does not match its tag", tid, 4096 * tid);
}

static int work(void *ctx, int tid)
{
        Job *j = ctx;
        atomic_fetch_add(&j->ran[tid], 1);
        if (pthread_equal(pthread_self(), j->caller))
                atomic_fetch_add(&j->in_caller, 1);
        if (tid == j->fail_tid) {
                int r = read_chunk(tid);
                return vc_errf_prefix(r, "checkout of parcel alice version 2");
        }
        if (j->fail_tid >= 0) {
                /* wait (a little) until the failing worker has failed, then stop */
                for (int i = 0; i < 2000 && !vc_pool_stopping(); i++)
                        usleep(1000);
                if (vc_pool_stopping())
                        atomic_fetch_add(&j->stopped, 1);
        }
        return 0;
}

static void run_case(int n, int fail_tid)
{
        Job *j = calloc(1, sizeof *j);
        j->fail_tid = fail_tid;
        j->n = n;
        j->caller = pthread_self();
        vc_errclear();
        int r = vc_pool_run(n, work, j);
        for (int t = 0; t < n; t++)
                assert_int_equal(atomic_load(&j->ran[t]), 1);
        if (n == 1)
                assert_int_equal(atomic_load(&j->in_caller), 1);
        else
                assert_int_equal(atomic_load(&j->in_caller), 0);
        if (fail_tid < 0) {
                assert_int_equal(r, 0);
        } else {
                assert_int_equal(r, -EBADMSG);
                char want[200];
                snprintf(want, sizeof want, "checkout of parcel alice version 2: data of chunk %04x at offset %d "
                         "of pack 1 does not match its tag", fail_tid, 4096 * fail_tid);
                assert_string_equal(vc_errmsg(r), want);
                assert_int_equal(atomic_load(&j->stopped), n - 1);
        }
        free(j);
        vc_errclear();
}

static void test_pool_one_thread(void **state)
{
        (void)state;
        run_case(1, -1);
        run_case(1, 0);
}

static void test_pool_several(void **state)
{
        (void)state;
        for (int n = 2; n <= 4; n++)
                for (int f = -1; f < n; f++)
                        run_case(n, f);
        run_case(VC_THREADS_MAX, VC_THREADS_MAX - 1);
}

static int all_fail(void *ctx, int tid)
{
        (void)ctx;
        return vc_errf(-(200 + tid), "worker %d failed", tid);
}

static void test_pool_first_wins(void **state)
{
        (void)state;
        for (int i = 0; i < 20; i++) {
                int r = vc_pool_run(4, all_fail, NULL);
                assert_true(r <= -200 && r >= -203);
                char want[64];
                snprintf(want, sizeof want, "worker %d failed", -r - 200);
                assert_string_equal(vc_errmsg(r), want);
                vc_errclear();
        }
}

static int succeed(void *ctx, int tid)
{
        (void)ctx;
        (void)tid;
        vc_errf(-EIO, "a message of a worker that then succeeded");
        return 0;
}

static int fail_without_message(void *ctx, int tid)
{
        (void)ctx;
        return tid == 0 ? -ENOSPC : 0;
}

static void test_pool_caller_message(void **state)
{
        (void)state;
        /* on success the caller's message is left as it was, 1 thread or several */
        for (int n = 1; n <= 3; n++) {
                vc_errclear();
                vc_errf(-ENOENT, "the caller's own");
                assert_int_equal(vc_pool_run(n, succeed, NULL), 0);
                assert_string_equal(vc_errmsg(-ENOENT), "the caller's own");
                vc_errclear();
                assert_int_equal(vc_pool_run(n, succeed, NULL), 0);
                assert_string_equal(vc_errmsg(-ENOENT), strerror(ENOENT));
        }
        /* on failure a stale message of the caller does not hide the worker's error */
        for (int n = 1; n <= 3; n++) {
                vc_errclear();
                vc_errf(-ENOENT, "stale");
                assert_int_equal(vc_pool_run(n, fail_without_message, NULL), -ENOSPC);
                assert_string_equal(vc_errmsg(-ENOSPC), strerror(ENOSPC));
                vc_errclear();
                vc_errf(-ENOENT, "stale");
                assert_int_equal(vc_pool_run(n, all_fail, NULL) <= -200, 1);
                assert_non_null(strstr(vc_errmsg(-1), "worker"));
        }
        assert_false(vc_pool_stopping());
        vc_errclear();
}

static void test_pool_bounds(void **state)
{
        (void)state;
        vc_errclear();
        assert_int_equal(vc_pool_run(0, succeed, NULL), -EINVAL);
        assert_int_equal(vc_pool_run(VC_THREADS_MAX + 1, succeed, NULL), -EINVAL);
        assert_non_null(strstr(vc_errmsg(-EINVAL), "worker threads"));
        vc_errclear();

        setenv("VMCAS_THREADS", "3", 1);
        assert_int_equal(vc_pool_threads(), 3);
        setenv("VMCAS_THREADS", "16", 1);
        assert_int_equal(vc_pool_threads(), 16);
        const char *bad[] = { "0", "17", "abc", "-1", "2x", "99999999999999999999" };
        for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
                setenv("VMCAS_THREADS", bad[i], 1);
                vc_errclear();
                assert_int_equal(vc_pool_threads(), -EINVAL);
                assert_non_null(strstr(vc_errmsg(-EINVAL), "invalid VMCAS_THREADS"));
                assert_non_null(strstr(vc_errmsg(-EINVAL), bad[i]));
        }
        unsetenv("VMCAS_THREADS");
        int n = vc_pool_threads();
        assert_true(n >= 1 && n <= VC_THREADS_MAX);
        vc_errclear();
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_err_value),
                cmocka_unit_test(test_err_shared),
                cmocka_unit_test(test_pool_one_thread),
                cmocka_unit_test(test_pool_several),
                cmocka_unit_test(test_pool_first_wins),
                cmocka_unit_test(test_pool_caller_message),
                cmocka_unit_test(test_pool_bounds),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
