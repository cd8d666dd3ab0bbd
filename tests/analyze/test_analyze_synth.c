/* Invariants of the analysis on synthetic enterprises (vmcas synth), which
 * are larger and more realistic than the property test's traces; each
 * follows from the definitions of shared/spec/analysis.md:
 * - ALL <= IP <= Delta, in storage and in every upload;
 * - storage never decreases from one day to the next;
 * - Delta storage on the last day = every parcel's version 1 + every Delta
 *   upload; IP storage likewise with the IP uploads;
 * - downloads: cas_md <= cas_m <= ... <= nocache, cas <= delta <= nocache;
 * - metadata: ALL's is twice IP's, the same for every compression. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "analyze/vc_analyze.h"
#include "core/vc_util.h"

#define MAXS 8
#define MAXC 3
#define MAXD 400
#define MAXEV 200

static int cidx(const char *c) { return !strcmp(c, "none") ? 0 : !strcmp(c, "gzip") ? 1 : 2; }
static int pidx(const char *p) { return !strcmp(p, "delta") ? 0 : !strcmp(p, "ip") ? 1 : 2; }

static int sidx(json_t *root, uint64_t size)
{
        size_t i;
        json_t *v;
        json_array_foreach(json_object_get(root, "chunk_sizes"), i, v) if ((uint64_t)json_integer_value(v) == size)
                return (int)i;
        fail_msg("unknown chunk size %" PRIu64, size);
        return -1;
}

static uint64_t num(json_t *row, const char *k) { return (uint64_t)json_integer_value(json_object_get(row, k)); }
static const char *str(json_t *row, const char *k) { return json_string_value(json_object_get(row, k)); }

/* Synthesises a trace into dir with so, analyses it at the given chunk
 * sizes and compressions, and returns the JSON it writes. */
static json_t *synth_and_analyze(const char *dir, const VcSynthOpts *so, const char *sizes, const char *comps)
{
        char json[600];
        assert_int_equal(vc_synth(dir, so), 0);
        VcTrace *t = NULL;
        assert_int_equal(vc_trace_open(dir, &t), 0);
        VcAnalyzeOpts o = { .quiet = true };
        assert_int_equal(vc_analyze_parse_chunk_sizes(sizes, &o), 0);
        if (comps)
                assert_int_equal(vc_analyze_parse_comps(comps, &o), 0);
        VcAnalysis *a = NULL;
        assert_int_equal(vc_analyze(t, &o, &a), 0);
        snprintf(json, sizeof json, "%s/out.json", dir);
        assert_int_equal(vc_analysis_write_json(a, json), 0);
        vc_analysis_free(a);
        vc_trace_free(t);
        json_error_t err;
        json_t *root = json_load_file(json, 0, &err);
        assert_non_null(root);
        return root;
}

static void check_trace(uint64_t seed, const char *sizes)
{
        char dir[512];
        snprintf(dir, sizeof dir, "%s/synth-%" PRIu64, getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp", seed);
        VcSynthOpts so;
        vc_synth_defaults(&so);
        so.seed = seed;
        so.parcels = 4;
        so.versions = 5;
        so.memory_size = 200000 + seed;
        so.disk_size = 600001;
        so.gold_images = 3;
        so.days = 40;
        so.quiet = true;
        json_t *root = synth_and_analyze(dir, &so, sizes, "none,gzip,zstd");

        static uint64_t st[3][MAXS][MAXC][MAXD], meta[3][MAXS][MAXC][MAXD];
        static uint64_t up[MAXEV][3][MAXS][MAXC], dl[MAXEV][7][MAXS][MAXC];
        memset(st, 0, sizeof st);
        uint32_t ndays = 0;
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(root, "storage"), i, row) {
                uint32_t d = (uint32_t)num(row, "day");
                assert_true(d < MAXD);
                int p = pidx(str(row, "policy")), s = sidx(root, num(row, "chunk_size")), c = cidx(str(row, "compression"));
                st[p][s][c][d] = num(row, "data_bytes");
                meta[p][s][c][d] = num(row, "meta_bytes");
                ndays = d + 1 > ndays ? d + 1 : ndays;
        }
        int ns = (int)json_array_size(json_object_get(root, "chunk_sizes"));
        /* Events in the order of the JSON (the global order), 3 x ns x 3
         * upload rows and 7 x ns x 3 download rows each. */
        json_t *ups = json_object_get(root, "upload"), *dls = json_object_get(root, "download");
        size_t nev = json_array_size(ups) / (3 * (size_t)ns * 3);
        assert_true(nev > 0 && nev <= MAXEV);
        assert_int_equal(json_array_size(dls), nev * 7 * (size_t)ns * 3);
        json_array_foreach(ups, i, row) {
                size_t ev = i / (3 * (size_t)ns * 3);
                up[ev][pidx(str(row, "policy"))][sidx(root, num(row, "chunk_size"))][cidx(str(row, "compression"))] =
                        num(row, "data_bytes");
        }
        static const char *const methods[7] = { "demand/nocache", "demand/delta", "demand/cas_m", "demand/cas_md",
                                                "complete/nocache", "complete/delta", "complete/cas" };
        json_array_foreach(dls, i, row) {
                size_t ev = i / (7 * (size_t)ns * 3);
                char m[64];
                snprintf(m, sizeof m, "%s/%s", str(row, "mode"), str(row, "method"));
                int k = 0;
                while (k < 7 && strcmp(methods[k], m))
                        k++;
                assert_true(k < 7);
                dl[ev][k][sidx(root, num(row, "chunk_size"))][cidx(str(row, "compression"))] = num(row, "bytes");
        }
        for (int s = 0; s < ns; s++)
                for (int c = 0; c < 3; c++) {
                        for (uint32_t d = 0; d < ndays; d++) {
                                assert_true(st[2][s][c][d] <= st[1][s][c][d]);
                                assert_true(st[1][s][c][d] <= st[0][s][c][d]);
                                assert_int_equal(meta[2][s][c][d], 2 * meta[1][s][c][d]);
                                assert_int_equal(meta[1][s][c][d], meta[1][s][0][d]);
                                assert_int_equal(meta[0][s][c][d], 0);
                                for (int p = 0; p < 3 && d > 0; p++)
                                        assert_true(st[p][s][c][d] >= st[p][s][c][d - 1]);
                        }
                        uint64_t sum[2] = { 0, 0 };
                        for (size_t ev = 0; ev < nev; ev++) {
                                assert_true(up[ev][2][s][c] <= up[ev][1][s][c]);
                                assert_true(up[ev][1][s][c] <= up[ev][0][s][c]);
                                sum[0] += up[ev][0][s][c];
                                sum[1] += up[ev][1][s][c];
                                uint64_t *x = &dl[ev][0][s][c];
#define D(k) x[(size_t)(k) * MAXS * MAXC]
                                assert_true(D(3) <= D(2) && D(2) <= D(0) && D(1) <= D(0));
                                assert_true(D(6) <= D(5) && D(5) <= D(4) && D(0) <= D(4));
                                assert_true(D(1) <= D(5) && D(3) <= D(6));
#undef D
                        }
                        /* Storage on the last day is every parcel's version 1
                         * plus every upload (Delta, IP); day 0 holds every
                         * version 1 and maybe more. */
                        assert_true(st[0][s][c][ndays - 1] >= sum[0]);
                        assert_true(st[1][s][c][ndays - 1] >= sum[1]);
                        assert_true(st[0][s][c][ndays - 1] - sum[0] <= st[0][s][c][0]);
                        assert_true(st[1][s][c][ndays - 1] - sum[1] <= st[1][s][c][0]);
                }
        json_decref(root);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

static void test_synth_invariants(void **state)
{
        (void)state;
        check_trace(1, "4K,8K,64K");
        check_trace(2, "512,4K,128K,512K");
        check_trace(3, "4K");
}

/* Delta and IP storage grow by exactly the uploads: with one parcel whose
 * versions are all on later days, day 0 holds version 1 alone. */
static void test_storage_is_uploads(void **state)
{
        (void)state;
        char dir[512];
        snprintf(dir, sizeof dir, "%s/synth-one", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        VcSynthOpts so;
        vc_synth_defaults(&so);
        so.parcels = 1;
        so.versions = 6;
        so.memory_size = 100000;
        so.disk_size = 300007;
        so.days = 60;
        so.quiet = true;
        json_t *root = synth_and_analyze(dir, &so, "4K", NULL);
        uint64_t first[3] = { 0 }, last[3] = { 0 }, sum[3] = { 0 };
        uint32_t lastday = 0;
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(root, "storage"), i, row) if (!strcmp(str(row, "compression"), "gzip")) {
                int p = pidx(str(row, "policy"));
                if (num(row, "day") == 0)
                        first[p] = num(row, "data_bytes");
                if (num(row, "day") >= lastday) {
                        lastday = (uint32_t)num(row, "day");
                        last[p] = num(row, "data_bytes");
                }
        }
        json_array_foreach(json_object_get(root, "upload"), i, row) if (!strcmp(str(row, "compression"), "gzip"))
                sum[pidx(str(row, "policy"))] += num(row, "data_bytes");
        assert_int_equal(last[0], first[0] + sum[0]);
        assert_int_equal(last[1], first[1] + sum[1]);
        assert_true(last[2] == last[1]); /* one parcel: ALL = IP */
        json_decref(root);
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_synth_invariants),
                cmocka_unit_test(test_storage_is_uploads),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
