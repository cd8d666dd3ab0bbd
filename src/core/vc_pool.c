#include "core/vc_pool.h"
#include "core/vc_limits.h"
#include "core/vc_util.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

typedef struct Pool {
        vc_pool_fn fn;
        void *ctx;
        VcErr err;              /* the first error of any worker */
} Pool;

typedef struct Job {
        Pool *pool;
        int tid;
} Job;

/* the pool whose worker this thread is running, for vc_pool_stopping */
static _Thread_local Pool *current;

static void run_job(Job *j)
{
        Pool *outer = current;
        current = j->pool;
        vc_errclear();
        vc_err_save(&j->pool->err, j->pool->fn(j->pool->ctx, j->tid));
        current = outer;
}

static void *thread_main(void *arg)
{
        run_job(arg);
        return NULL;
}

/* Runs job j in the calling thread, keeping the caller's own message. */
static void run_inline(Job *j)
{
        VcErr *mine = malloc(sizeof *mine);
        if (mine) {
                vc_err_clear(mine);
                vc_err_save(mine, -1);
        }
        run_job(j);
        if (mine) {
                vc_err_raise(mine);
                free(mine);
        }
}

int vc_pool_run(int n, vc_pool_fn fn, void *ctx)
{
        if (n < 1 || n > VC_THREADS_MAX)
                return vc_errf(-EINVAL, "cannot run %d worker threads (1 to %d)", n, VC_THREADS_MAX);
        Pool *p = malloc(sizeof *p);
        if (!p)
                return -ENOMEM;
        p->fn = fn;
        p->ctx = ctx;
        vc_err_clear(&p->err);
        Job jobs[VC_THREADS_MAX];
        pthread_t th[VC_THREADS_MAX];
        bool started[VC_THREADS_MAX] = { false };
        for (int t = 0; t < n; t++) {
                jobs[t] = (Job){ p, t };
                if (n > 1 && pthread_create(&th[t], NULL, thread_main, &jobs[t]) == 0)
                        started[t] = true;
        }
        for (int t = 0; t < n; t++)
                if (!started[t])
                        run_inline(&jobs[t]);
        for (int t = 0; t < n; t++)
                if (started[t])
                        pthread_join(th[t], NULL);
        int r = vc_err_raise(&p->err);
        free(p);
        return r;
}

bool vc_pool_stopping(void)
{
        return current && vc_err_failed(&current->err);
}

bool vc_pool_in_worker(void)
{
        return current != NULL;
}

int vc_pool_threads(void)
{
        const char *e = getenv("VMCAS_THREADS");
        if (e && *e) {
                uint64_t n;
                if (vc_parse_u64(e, "VMCAS_THREADS", &n) < 0 || n < 1 || n > VC_THREADS_MAX)
                        return vc_errf_replace(-EINVAL, "invalid VMCAS_THREADS '%s' (a number of worker threads "
                                               "from 1 to %d)", e, VC_THREADS_MAX);
                return (int)n;
        }
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        return (int)VC_MAX(1, VC_MIN(c, VC_THREADS_MAX));
}
