/* Hand-computed cases of vmcas analyze: small traces whose every number
 * was worked out on paper from shared/spec/analysis.md (the working is in
 * the comments), including ties in the global order, chunks shorter than
 * the chunk size, empty images and negative timestamps. gzip lengths of
 * zero chunks were taken from Python's zlib (the same zlib 1.2.13). */
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
#include <sys/stat.h>
#include <unistd.h>

#include "analyze/vc_analyze.h"
#include "core/vc_util.h"

#define U 4096u

static char dir[512];
static uint8_t A[U], B[U], C[U], Z[U], R[904];

static void fill(uint8_t *p, size_t n, uint64_t seed)
{
        for (size_t i = 0; i < n; i++) {
                seed = seed * 6364136223846793005ull + 1442695040888963407ull;
                p[i] = (uint8_t)(seed >> 56);
        }
}

/* Writes DIR/name as the concatenation of the given parts. */
static void img(const char *name, int nparts, ...)
{
        char path[600];
        snprintf(path, sizeof path, "%s/%s", dir, name);
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        va_list ap;
        va_start(ap, nparts);
        for (int i = 0; i < nparts; i++) {
                const uint8_t *p = va_arg(ap, const uint8_t *);
                size_t n = va_arg(ap, size_t);
                assert_int_equal(fwrite(p, 1, n, f), n);
        }
        va_end(ap);
        assert_int_equal(fclose(f), 0);
}

static void manifest(const char *text)
{
        char path[600];
        snprintf(path, sizeof path, "%s/manifest.tsv", dir);
        FILE *f = fopen(path, "w");
        assert_non_null(f);
        fputs(text, f);
        assert_int_equal(fclose(f), 0);
}

static json_t *analyze(const char *sizes, const char *comps)
{
        VcTrace *t = NULL;
        int r = vc_trace_open(dir, &t);
        if (r < 0)
                fail_msg("%s", vc_errmsg(r));
        VcAnalyzeOpts o = { .quiet = true, .threads = 2 };
        assert_int_equal(vc_analyze_parse_chunk_sizes(sizes, &o), 0);
        assert_int_equal(vc_analyze_parse_comps(comps, &o), 0);
        VcAnalysis *a = NULL;
        r = vc_analyze(t, &o, &a);
        if (r < 0)
                fail_msg("%s", vc_errmsg(r));
        char path[600];
        snprintf(path, sizeof path, "%s/out.json", dir);
        assert_int_equal(vc_analysis_write_json(a, path), 0);
        vc_analysis_free(a);
        vc_trace_free(t);
        json_error_t err;
        json_t *root = json_load_file(path, 0, &err);
        assert_non_null(root);
        return root;
}

static bool str_is(json_t *row, const char *k, const char *v)
{
        return strcmp(json_string_value(json_object_get(row, k)), v) == 0;
}

static bool int_is(json_t *row, const char *k, uint64_t v)
{
        return (uint64_t)json_integer_value(json_object_get(row, k)) == v;
}

static uint64_t num(json_t *row, const char *k)
{
        return (uint64_t)json_integer_value(json_object_get(row, k));
}

static json_t *storage(json_t *root, const char *pol, uint32_t size, const char *comp, uint32_t day)
{
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(root, "storage"), i, row) if (str_is(row, "policy", pol) &&
                                                                          int_is(row, "chunk_size", size) &&
                                                                          str_is(row, "compression", comp) &&
                                                                          int_is(row, "day", day)) return row;
        fail_msg("no storage row %s %u %s day %u", pol, size, comp, day);
        return NULL;
}

static json_t *upload(json_t *root, const char *parcel, uint32_t v, const char *pol, uint32_t size, const char *comp)
{
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(root, "upload"), i, row) if (str_is(row, "parcel", parcel) &&
                                                                         int_is(row, "version", v) &&
                                                                         str_is(row, "policy", pol) &&
                                                                         int_is(row, "chunk_size", size) &&
                                                                         str_is(row, "compression", comp)) return row;
        fail_msg("no upload row %s v%u %s %u %s", parcel, v, pol, size, comp);
        return NULL;
}

static uint64_t download(json_t *root, const char *parcel, uint32_t v, const char *mode, const char *method,
                         uint32_t size, const char *comp)
{
        size_t i;
        json_t *row;
        json_array_foreach(json_object_get(root, "download"), i, row) if (
                str_is(row, "parcel", parcel) && int_is(row, "version", v) && str_is(row, "mode", mode) &&
                str_is(row, "method", method) && int_is(row, "chunk_size", size) &&
                str_is(row, "compression", comp)) return num(row, "bytes");
        fail_msg("no download row %s v%u %s %s %u %s", parcel, v, mode, method, size, comp);
        return 0;
}

#define ST(pol, size, comp, day, data, meta)                                        \
        do {                                                                        \
                json_t *r_ = storage(root, pol, size, comp, day);                   \
                assert_int_equal(num(r_, "data_bytes"), (data));                    \
                assert_int_equal(num(r_, "meta_bytes"), (meta));                    \
        } while (0)
#define UP(parcel, v, pol, size, comp, data, meta)                                  \
        do {                                                                        \
                json_t *r_ = upload(root, parcel, v, pol, size, comp);              \
                assert_int_equal(num(r_, "data_bytes"), (data));                    \
                assert_int_equal(num(r_, "meta_bytes"), (meta));                    \
        } while (0)
#define DL(parcel, v, mode, method, size, comp, bytes) \
        assert_int_equal(download(root, parcel, v, mode, method, size, comp), (bytes))

static int setup(void **state)
{
        (void)state;
        snprintf(dir, sizeof dir, "%s/hand-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
        assert_non_null(mkdtemp(dir));
        fill(A, U, 1);
        fill(B, U, 2);
        fill(C, U, 3);
        fill(R, sizeof R, 4);
        memset(Z, 0, U);
        return 0;
}

static int teardown(void **state)
{
        (void)state;
        char cmd[600];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        return system(cmd);
}

/* Two parcels, 4 KiB blocks A B C (random) and Z (zero):
 *   p v1 t=0       M=[A A] D=[Z B]      day 0
 *   q v1 t=86400   M=[A A] D=[Z Z]      day 0 (of q)
 *   p v2 t=172805  M=[A C] D=[B B]      day 2
 *   q v2 t=172805  M=[C A] D=[Z B]      day 1 (tie with p v2: p first)
 * At 4 KiB (u = 4096):
 *   delta: day 0 = 4u + 4u; day 1 adds q v2 (full 4u, diff of q v1 from
 *          q v2 at M0 and D1: 2u) -> q 6u, total 10u; day 2: p 6u -> 12u
 *   ip:    day 0 p{A,Z,B} + q{A,Z} = 5u; day 1 q{A,Z,C,B} -> 7u; day 2 8u
 *   all:   day 0 {A,Z,B} 3u; day 1 +C 4u; day 2 4u
 *   meta:  entries 8, 12, 16 -> ip 160 240 320, all 320 480 640
 *   upload p v2: delta M1,D0 = 2u; ip {C} u; all {C} u (p v2 comes first)
 *   upload q v2: delta M0,D1 = 2u; ip {C,B} 2u; all nothing new: 0
 * At 8 KiB (one chunk per image: AA ZB AC BB / AA ZZ CA ZB), U = 8192:
 *   delta 4U, 6U, 8U; ip 4U, 6U, 8U; all {AA,ZB,ZZ} 3U, +CA 4U, +AC,BB 6U
 *   upload p v2: 2U, 2U, 2U; q v2: delta 2U, ip 2U, all {CA} U */
static void test_two_parcels(void **state)
{
        (void)state;
        img("p1.mem", 2, A, U, A, U);
        img("p1.disk", 2, Z, U, B, U);
        img("p2.mem", 2, A, U, C, U);
        img("p2.disk", 2, B, U, B, U);
        img("q1.mem", 2, A, U, A, U);
        img("q1.disk", 2, Z, U, Z, U);
        img("q2.mem", 2, C, U, A, U);
        img("q2.disk", 2, Z, U, B, U);
        manifest("parcel\tversion\ttimestamp\tmemory\tdisk\n"
                 "q\t2\t172805\tq2.mem\tq2.disk\n"
                 "p\t2\t172805\tp2.mem\tp2.disk\n"
                 "p\t1\t0\tp1.mem\tp1.disk\n"
                 "q\t1\t86400\tq1.mem\tq1.disk\n");
        json_t *root = analyze("4K,8K", "none,gzip");
        const uint64_t u = U, W = 2 * U;
        assert_int_equal(json_array_size(json_object_get(root, "storage")), 3 * 2 * 2 * 3);
        ST("delta", U, "none", 0, 8 * u, 0);
        ST("delta", U, "none", 1, 10 * u, 0);
        ST("delta", U, "none", 2, 12 * u, 0);
        ST("ip", U, "none", 0, 5 * u, 160);
        ST("ip", U, "none", 1, 7 * u, 240);
        ST("ip", U, "none", 2, 8 * u, 320);
        ST("all", U, "none", 0, 3 * u, 320);
        ST("all", U, "none", 1, 4 * u, 480);
        ST("all", U, "none", 2, 4 * u, 640);
        /* gzip: random blocks do not compress (c = u), a zero block costs 38.
         * all day 0 {A,Z,B}: 2u + 38; delta day 0: p 3u + 38, q 2u + 2*38 */
        ST("all", U, "gzip", 0, 2 * u + 38, 320);
        ST("delta", U, "gzip", 0, 5 * u + 3 * 38, 0);
        ST("ip", U, "gzip", 2, 6 * u + 2 * 38, 320);
        ST("delta", W, "none", 0, 4 * W, 0);
        ST("delta", W, "none", 1, 6 * W, 0);
        ST("delta", W, "none", 2, 8 * W, 0);
        ST("ip", W, "none", 1, 6 * W, 120);
        ST("all", W, "none", 0, 3 * W, 160);
        ST("all", W, "none", 1, 4 * W, 240);
        ST("all", W, "none", 2, 6 * W, 320);

        UP("p", 2, "delta", U, "none", 2 * u, 0);
        UP("p", 2, "ip", U, "none", u, 80);
        UP("p", 2, "all", U, "none", u, 160);
        UP("q", 2, "delta", U, "none", 2 * u, 0);
        UP("q", 2, "ip", U, "none", 2 * u, 80);
        UP("q", 2, "all", U, "none", 0, 160);
        UP("p", 2, "all", W, "none", 2 * W, 80);
        UP("q", 2, "all", W, "none", W, 80);
        UP("q", 2, "ip", W, "none", 2 * W, 40);

        /* p v2: M [A A] -> [A C]; D [Z B] -> [B B] */
        DL("p", 2, "demand", "nocache", U, "none", 2 * u);
        DL("p", 2, "demand", "delta", U, "none", u);
        DL("p", 2, "demand", "cas_m", U, "none", u);
        DL("p", 2, "demand", "cas_md", U, "none", u);
        DL("p", 2, "complete", "nocache", U, "none", 4 * u);
        DL("p", 2, "complete", "delta", U, "none", 2 * u);
        DL("p", 2, "complete", "cas", U, "none", u);
        /* q v2: M [A A] -> [C A]; D [Z Z] -> [Z B] */
        DL("q", 2, "demand", "cas_m", U, "none", u);
        DL("q", 2, "demand", "cas_md", U, "none", u);
        DL("q", 2, "complete", "delta", U, "none", 2 * u);
        DL("q", 2, "complete", "cas", U, "none", 2 * u);
        DL("q", 2, "complete", "cas", W, "none", 2 * W);
        json_decref(root);
}

/* Chunks shorter than the chunk size count with their real length:
 *   r v1 M = Z(4096) Z(904)   r v2 M = Z(4096) R(904)   (5000 bytes, no disk)
 * 4 KiB: v1 [Z4096, Z904], v2 [Z4096, R904]
 *   delta = full v2 (5000) + v1's differing Z904 (904) = 5904; ip, all the same
 *   gzip: Z4096 38, Z904 29, R904 904 (random): delta 38 + 904 + 29 = 971
 *   upload v2 = 904 for every policy; keyring 2 entries
 * 8 KiB: one chunk each, different: delta = ip = all = 10000, upload 5000. */
static void test_short_tail(void **state)
{
        (void)state;
        img("r1.mem", 2, Z, U, Z, (size_t)904);
        img("r2.mem", 2, Z, U, R, sizeof R);
        img("empty", 0);
        manifest("# tails\r\n\r\nmemory\tdisk\tparcel\ttimestamp\tversion\r\n"
                 "r1.mem\tempty\tr\t100\t1\r\n"
                 "r2.mem\tempty\tr\t200\t2\r\n");
        json_t *root = analyze("4K,8K", "none,gzip,zstd");
        ST("delta", U, "none", 0, 5904, 0);
        ST("ip", U, "none", 0, 5904, 80);
        ST("all", U, "none", 0, 5904, 160);
        ST("delta", U, "gzip", 0, 971, 0);
        ST("all", U, "gzip", 0, 971, 160);
        UP("r", 2, "delta", U, "none", 904, 0);
        UP("r", 2, "ip", U, "gzip", 904, 40);
        UP("r", 2, "all", U, "none", 904, 80);
        ST("delta", 2 * U, "none", 0, 10000, 0);
        ST("all", 2 * U, "none", 0, 10000, 80);
        UP("r", 2, "all", 2 * U, "none", 5000, 40);
        DL("r", 2, "demand", "nocache", U, "gzip", 38 + 904);
        DL("r", 2, "complete", "cas", U, "none", 904);
        json_decref(root);
}

/* Days count from the parcel's version 1 with floor division, also for
 * negative timestamps; a day without checkins repeats the day before; an
 * image of 0 bytes has no chunks.
 *   n v1 t=-86401 (day 0), v2 t=-2 (86399 s later: day 0), v3 t=-1 (day 1)
 *   m v1 t=-300000 day 0, v2 t=-300000+3*86400 day 3 (days 2 and 3 repeat) */
static void test_days(void **state)
{
        (void)state;
        img("z.mem", 1, Z, U);
        img("a.disk", 1, A, U);
        img("b.disk", 1, B, U);
        img("c.disk", 1, C, U);
        img("e", 0);
        manifest("parcel\tversion\ttimestamp\tmemory\tdisk\n"
                 "n\t1\t-86401\tz.mem\ta.disk\n"
                 "n\t2\t-2\tz.mem\tb.disk\n"
                 "n\t3\t-1\tz.mem\tc.disk\n"
                 "m\t1\t-300000\te\te\n"
                 "m\t2\t-40800\te\te\n");
        json_t *root = analyze("4K", "none");
        assert_int_equal(json_array_size(json_object_get(root, "storage")), 3 * 4);
        /* day 0: n v1, v2 -> delta = full v2 (Z, B) + A = 3u */
        ST("delta", U, "none", 0, 3 * U, 0);
        ST("delta", U, "none", 1, 4 * U, 0);
        ST("delta", U, "none", 2, 4 * U, 0);
        ST("delta", U, "none", 3, 4 * U, 0);
        ST("ip", U, "none", 0, 3 * U, 80);
        ST("ip", U, "none", 3, 4 * U, 120);
        UP("m", 2, "all", U, "none", 0, 0);
        DL("m", 2, "complete", "nocache", U, "none", 0);
        UP("n", 3, "ip", U, "none", U, 40);
        json_decref(root);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_two_parcels, setup, teardown),
                cmocka_unit_test_setup_teardown(test_short_tail, setup, teardown),
                cmocka_unit_test_setup_teardown(test_days, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
