/* fuzz_trace — the trace manifest of `vmcas analyze`: vc_trace_open
 * (src/analyze/trace.c), which parses and checks TRACE/manifest.tsv and
 * stats the images it names.
 *
 * Input: the manifest's bytes, written into a scratch trace directory
 * that holds a few images: m1, m2, m3 (4 KiB), d1, d2 (8 KiB), s (100
 * bytes), e (empty) and the directory sub (with sub/x, 4 KiB). Inputs
 * that could name a path outside it (an absolute path, or "..") are
 * skipped: opening an arbitrary file of the machine (a FIFO, a device)
 * could block or have effects, and the absolute-path branch is a strdup.
 *
 * Checks: the result is 0, -EINVAL or -ENOENT (or -ENOTDIR and the like
 * for a path through a file); a trace it accepts is well formed:
 * parcels sorted by name and distinct, each with versions 1..k in order,
 * one size per image kind, non-decreasing timestamps, days within the
 * limit, `order` a permutation sorted by (timestamp, parcel, version),
 * and bytes the sum of the image sizes.
 */
#include "fuzz.h"
#include "analyze/analyze_internal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static char dir[PATH_MAX], manifest[PATH_MAX];

static void setup(void)
{
        static const struct { const char *name; size_t size; } img[] = {
                { "m1", 4096 }, { "m2", 4096 }, { "m3", 4096 }, { "d1", 8192 }, { "d2", 8192 },
                { "s", 100 }, { "e", 0 }, { "sub/x", 4096 },
        };
        static uint8_t bytes[8192];
        char p[PATH_MAX];
        snprintf(dir, sizeof dir, "%s/trace", fuzz_tmpdir());
        FUZZ_CHECK((size_t)snprintf(p, sizeof p, "%s/sub", dir) < sizeof p);
        FUZZ_CHECK(vc_mkdir_p(p, 0755) == 0);
        for (size_t i = 0; i < VC_ARRAY_SIZE(img); i++) {
                FUZZ_CHECK((size_t)snprintf(p, sizeof p, "%s/%s", dir, img[i].name) < sizeof p);
                fuzz_write_file(p, bytes, img[i].size, 0644);
        }
        FUZZ_CHECK((size_t)snprintf(manifest, sizeof manifest, "%s/manifest.tsv", dir) < sizeof manifest);
}

/* True if a field could start with '/' or any path could climb out. */
static bool escapes(const uint8_t *data, size_t size)
{
        for (size_t i = 0; i < size; i++) {
                if (data[i] == '/' && (i == 0 || data[i - 1] == '\t' || data[i - 1] == '\n'))
                        return true;
                if (data[i] == '.' && i + 1 < size && data[i + 1] == '.')
                        return true;
        }
        return false;
}

static void check_trace(const VcTrace *t)
{
        FUZZ_CHECK(t->nparcels >= 1 && t->nversions >= t->nparcels);
        uint64_t bytes = 0;
        uint32_t max_day = 0;
        size_t v = 0;
        for (size_t i = 0; i < t->nparcels; i++) {
                const VcTraceParcel *p = &t->parcels[i];
                if (i > 0)
                        FUZZ_CHECK(strcmp(t->parcels[i - 1].name, p->name) < 0);
                FUZZ_CHECK(p->first == v && p->nversions >= 1);
                for (uint32_t k = 0; k < p->nversions; k++, v++) {
                        FUZZ_CHECK(v < t->nversions);
                        const VcTraceVersion *x = &t->versions[v];
                        FUZZ_CHECK(x->parcel == i && x->version == k + 1);
                        FUZZ_CHECK(x->day < VC_TRACE_MAX_DAYS);
                        if (k > 0)
                                FUZZ_CHECK(x->ts >= t->versions[v - 1].ts && x->day >= t->versions[v - 1].day);
                        for (int m = 0; m < VC_IMG_MAX; m++) {
                                struct stat st;
                                FUZZ_CHECK(x->path[m] && stat(x->path[m], &st) == 0);
                                FUZZ_CHECK((uint64_t)st.st_size == p->size[m]);
                                bytes += p->size[m];
                        }
                        max_day = VC_MAX(max_day, x->day);
                }
        }
        FUZZ_CHECK(v == t->nversions && bytes == t->bytes && max_day == t->max_day);
        uint8_t *seen = calloc(t->nversions, 1);
        FUZZ_CHECK(seen);
        for (size_t i = 0; i < t->nversions; i++) {
                uint32_t o = t->order[i];
                FUZZ_CHECK(o < t->nversions && !seen[o]);
                seen[o] = 1;
                if (i > 0) {
                        const VcTraceVersion *a = &t->versions[t->order[i - 1]], *b = &t->versions[o];
                        FUZZ_CHECK(a->ts < b->ts || (a->ts == b->ts && (a->parcel < b->parcel ||
                                   (a->parcel == b->parcel && a->version < b->version))));
                }
        }
        free(seen);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!dir[0])
                setup();
        if (escapes(data, size))
                return -1;      /* not added to the corpus */
        vc_errclear();
        fuzz_write_file(manifest, data, size, 0644);
        VcTrace *t = NULL;
        int r = vc_trace_open(dir, &t);
        fuzz_note("trace_open: %d %s", r, r ? vc_errmsg(r) : "");
        FUZZ_CHECK(r == 0 || r == -EINVAL || r == -ENOENT || r == -ENOTDIR || r == -EISDIR ||
                   r == -ENAMETOOLONG);
        FUZZ_CHECK((r == 0) == (t != NULL));
        if (t)
                check_trace(t);
        vc_trace_free(t);
        return 0;
}
