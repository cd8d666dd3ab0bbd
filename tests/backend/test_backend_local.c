/* The local back end's own races, which the conformance suite cannot
 * time: a flush by another thread between `missing`'s look-up in the index
 * and its look at the writer. Before the fix the chunks were in neither
 * place at those two moments, and `missing` (and a server's get, which
 * asks it first) called chunks absent that had just been stored; the same
 * gap in get itself. */
#include "backend_test.h"

#include <pthread.h>

typedef struct Asker {
        VcBackend *b;
        const VcParcel *p;
        const BtChunks *c;
        uint8_t *miss;
        int r;
} Asker;

static void *ask(void *arg)
{
        Asker *a = arg;
        vc_errclear();
        a->r = vc_chunks_missing(a->b, a->p->name, a->p->data_dom, a->c->tags, a->c->n, a->miss);
        return NULL;
}

/* A fresh local store in a scratch directory (returned), one parcel in
 * it, and the path of the hold file beside it. */
static char *fresh(char hold[PATH_MAX], VcBackend **b, VcParcel *p)
{
        char *dir = bt_tmpdir("local"), store[PATH_MAX];
        snprintf(store, sizeof store, "%s/store", dir);
        snprintf(hold, PATH_MAX, "%s/hold", dir);
        VcBackendOpts o = { .create = true };
        assert_rc(vc_backend_local_open(store, &o, b), 0);
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t len;
        bt_parcel(p, "race", VC_POLICY_IP, NULL, rec, &len);
        assert_rc(vc_cat_create(*b, p->name, NULL, rec, len), 0);
        return dir;
}

/* Runs fn(arg) on a thread that stops at the hold of env, flushes b's
 * writer meanwhile, then lets the thread go on and waits for it. */
static void flush_in_hold(VcBackend *b, const char *env, const char *hold, void *(*fn)(void *), void *arg)
{
        setenv(env, hold, 1);
        pthread_t th;
        assert_int_equal(pthread_create(&th, NULL, fn, arg), 0);
        for (int i = 0; i < 500 && access(hold, F_OK) != 0; i++)
                usleep(10000);
        assert_int_equal(access(hold, F_OK), 0);
        unsetenv(env);
        assert_rc(vc_chunks_flush(b), 0);
        unlink(hold);
        pthread_join(th, NULL);
}

static void test_flush_during_missing(void **state)
{
        char hold[PATH_MAX];
        VcParcel p;
        VcBackend *b;
        char *dir = fresh(hold, &b, &p);
        BtChunks c;
        bt_chunks(&c, 40, 7, NULL);
        for (int round = 0; round < 2; round++) {
                /* round 0: put, not flushed (in the writer); round 1: the
                 * same again, now indexed (the writer holds nothing) */
                assert_rc(vc_chunks_put(b, p.name, p.data_dom, c.items, c.n), 0);
                uint8_t miss[40];
                memset(miss, 7, sizeof miss);
                Asker a = { .b = b, .p = &p, .c = &c, .miss = miss };
                /* the asker has looked in the index and holds; the
                 * writer's chunks go to the index meanwhile */
                flush_in_hold(b, "VMCAS_TEST_HOLD_MISSING", hold, ask, &a);
                assert_rc(a.r, 0);
                for (size_t i = 0; i < c.n; i++)
                        if (miss[i] != 0)
                                fail_msg("round %d: chunk %zu called missing (%u) while it was stored", round, i,
                                         miss[i]);
        }
        /* and a get finds them all */
        assert_rc(bt_get_check(b, p.name, p.data_dom, c.tags, c.n, &c), 0);
        bt_chunks_free(&c);
        vc_backend_free(b);
        bt_rm_rf(dir);
        free(dir);
}

typedef struct Getter {
        VcBackend *b;
        const VcParcel *p;
        const BtChunks *c;
        int r;
        VcErr err;               /* its message (messages are per thread) */
} Getter;

static void *get(void *arg)
{
        Getter *g = arg;
        g->r = bt_get_check(g->b, g->p->name, g->p->data_dom, g->c->tags, g->c->n, g->c);
        vc_err_save(&g->err, g->r);
        return NULL;
}

/* The same gap in get: its snapshot has not the chunks, and by the time
 * it asks the writer, the writer has flushed them. */
static void test_flush_during_get(void **state)
{
        char hold[PATH_MAX];
        VcParcel p;
        VcBackend *b;
        char *dir = fresh(hold, &b, &p);
        BtChunks c;
        bt_chunks(&c, 40, 8, NULL);
        assert_rc(vc_chunks_put(b, p.name, p.data_dom, c.items, c.n), 0);
        Getter g = { .b = b, .p = &p, .c = &c };
        flush_in_hold(b, "VMCAS_TEST_HOLD_GET", hold, get, &g);
        if (g.r != 0)
                fail_msg("the get failed: %s", g.err.msg);
        bt_chunks_free(&c);
        vc_backend_free(b);
        bt_rm_rf(dir);
        free(dir);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_flush_during_missing),
                cmocka_unit_test(test_flush_during_get),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
