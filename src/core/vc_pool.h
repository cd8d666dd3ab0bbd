/* vc_pool — one job on n worker threads, whose first error, with its
 * message, comes back to the caller's thread.
 *
 * The message of vc_errf() is thread-local (core/vc_util.h), so an error a
 * worker records would otherwise die with the worker and the user would
 * see only strerror ("Bad message"). Every part of vmcas that runs workers
 * (checkin, checkout, the server, the disk plugin) runs them here:
 *
 *   static int work(void *ctx, int tid) {
 *           for (each item of slice tid) {
 *                   if (vc_pool_stopping())     another worker failed:
 *                           return 0;           no need to go on
 *                   if ((r = do_item(...)) < 0)
 *                           return vc_errf(r, "chunk %s of ...: %s", ..., vc_errmsg(r));
 *           }
 *           return 0;
 *   }
 *   r = vc_pool_run(n, work, &ctx);   the first failing worker's code, and
 *                                     its message is now this thread's
 */
#ifndef VC_POOL_H
#define VC_POOL_H

#include <stdbool.h>

typedef int (*vc_pool_fn)(void *ctx, int tid);

/* Runs fn(ctx, tid) for tid = 0 .. n-1, each on a thread of its own (with
 * n == 1, in the calling thread), and returns when all have returned.
 * Each worker starts with no message of its own. Returns 0 if every
 * worker returned >= 0. Otherwise returns the first error saved (in time)
 * and makes its message this thread's message (vc_errmsg), replacing any;
 * the errors of the other workers are dropped. On success this thread's
 * message is left as it was. If a thread cannot be started, its tid runs
 * in the calling thread after the others have started, so fn must not
 * wait for another tid. 1 <= n <= VC_THREADS_MAX, else -EINVAL. */
int vc_pool_run(int n, vc_pool_fn fn, void *ctx);

/* In a worker of vc_pool_run: true once another worker of the same run
 * has failed, so that this one can stop early. False outside a pool. */
bool vc_pool_stopping(void);

/* True in a worker of vc_pool_run: a part that would run workers of its
 * own runs in the calling thread instead (the cores are taken). */
bool vc_pool_in_worker(void);

/* The number of worker threads: $VMCAS_THREADS if set (a whole number
 * from 1 to VC_THREADS_MAX, else -EINVAL with a message), or the number of
 * online cores, at most VC_THREADS_MAX. */
int vc_pool_threads(void);

#endif
