/* The analysis' outputs for people and scripts: the JSON of spec section 6
 * and the summary tables. */
#include "analyze/analyze_internal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int cmp_u64(const void *x, const void *y)
{
        uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;
        return a < b ? -1 : a > b;
}

void vc_stats(uint64_t *vals, size_t n, VcStats *ret)
{
        memset(ret, 0, sizeof *ret);
        if (n == 0)
                return;
        qsort(vals, n, sizeof *vals, cmp_u64);
        long double sum = 0;
        for (size_t i = 0; i < n; i++)
                sum += vals[i];
        ret->mean = (double)(sum / n);
        /* Nearest rank: the smallest value with at least p % of the values
         * at or below it (so the median of an even count is the lower one). */
        ret->median = vals[(n + 1) / 2 - 1];
        ret->p95 = vals[(95 * n + 99) / 100 - 1];
        ret->max = vals[n - 1];
}

void vc_analysis_upload_series(const VcAnalysis *a, int pol, size_t si, size_t ci, uint64_t *out)
{
        for (size_t ev = 0; ev < a->nevents; ev++)
                out[ev] = a->up[vc_up_idx(a, ev, pol, si, ci)];
}

void vc_analysis_download_series(const VcAnalysis *a, int m, size_t si, size_t ci, uint64_t *out)
{
        for (size_t ev = 0; ev < a->nevents; ev++)
                out[ev] = a->dl[vc_dl_idx(a, ev, m, si, ci)];
}

double vc_unit_for(uint64_t max, const char **name)
{
        static const char *const names[] = { "bytes", "KiB", "MiB", "GiB", "TiB" };
        unsigned u = 0;
        double div = 1;
        while (u + 1 < VC_ARRAY_SIZE(names) && (double)max >= 10 * 1024 * div) {
                div *= 1024;
                u++;
        }
        *name = names[u];
        return div;
}

/* --- JSON ---------------------------------------------------------------- */

static void json_rows(const VcAnalysis *a, FILE *f)
{
        const VcTrace *t = a->trace;
        const char *sep = "\n";
        fprintf(f, "  \"storage\": [");
        for (int p = 0; p < VC_POL_MAX; p++)
                for (size_t si = 0; si < a->nsizes; si++)
                        for (size_t ci = 0; ci < a->ncomps; ci++)
                                for (uint32_t d = 0; d < a->ndays; d++) {
                                        fprintf(f,
                                                "%s    {\"policy\": \"%s\", \"chunk_size\": %u, \"compression\": \"%s\", "
                                                "\"day\": %u, \"data_bytes\": %" PRIu64 ", \"meta_bytes\": %" PRIu64 "}",
                                                sep, vc_pol_name[p], a->sizes[si], vc_comp_name(a->comps[ci]), d,
                                                a->storage[vc_st_idx(a, p, si, ci, d)],
                                                a->storage_meta[vc_stm_idx(a, p, si, d)]);
                                        sep = ",\n";
                                }
        fprintf(f, "\n  ],\n  \"upload\": [");
        sep = "\n";
        for (size_t ev = 0; ev < a->nevents; ev++) {
                const VcTraceVersion *v = &t->versions[a->events[ev]];
                for (int p = 0; p < VC_POL_MAX; p++)
                        for (size_t si = 0; si < a->nsizes; si++)
                                for (size_t ci = 0; ci < a->ncomps; ci++) {
                                        fprintf(f,
                                                "%s    {\"parcel\": \"%s\", \"version\": %u, \"policy\": \"%s\", "
                                                "\"chunk_size\": %u, \"compression\": \"%s\", \"data_bytes\": %" PRIu64
                                                ", \"meta_bytes\": %" PRIu64 "}",
                                                sep, t->parcels[v->parcel].name, v->version, vc_pol_name[p],
                                                a->sizes[si], vc_comp_name(a->comps[ci]),
                                                a->up[vc_up_idx(a, ev, p, si, ci)], vc_up_meta(a, ev, p, si));
                                        sep = ",\n";
                                }
        }
        fprintf(f, "\n  ],\n  \"download\": [");
        sep = "\n";
        for (size_t ev = 0; ev < a->nevents; ev++) {
                const VcTraceVersion *v = &t->versions[a->events[ev]];
                for (int m = 0; m < VC_DL_MAX; m++)
                        for (size_t si = 0; si < a->nsizes; si++)
                                for (size_t ci = 0; ci < a->ncomps; ci++) {
                                        fprintf(f,
                                                "%s    {\"parcel\": \"%s\", \"version\": %u, \"mode\": \"%s\", "
                                                "\"method\": \"%s\", \"chunk_size\": %u, \"compression\": \"%s\", "
                                                "\"bytes\": %" PRIu64 "}",
                                                sep, t->parcels[v->parcel].name, v->version, vc_dl_mode[m],
                                                vc_dl_method[m], a->sizes[si], vc_comp_name(a->comps[ci]),
                                                a->dl[vc_dl_idx(a, ev, m, si, ci)]);
                                        sep = ",\n";
                                }
        }
        fprintf(f, "\n  ]\n");
}

static void json_write(const VcAnalysis *a, FILE *f)
{
        fprintf(f, "{\n  \"chunk_sizes\": [");
        for (size_t si = 0; si < a->nsizes; si++)
                fprintf(f, "%s%u", si ? ", " : "", a->sizes[si]);
        fprintf(f, "],\n  \"compressions\": [");
        for (size_t ci = 0; ci < a->ncomps; ci++)
                fprintf(f, "%s\"%s\"", ci ? ", " : "", vc_comp_name(a->comps[ci]));
        /* Extra keys (allowed by the spec): what was analysed. */
        fprintf(f, "],\n  \"parcels\": %zu,\n  \"versions\": %zu,\n  \"image_bytes\": %" PRIu64
                   ",\n  \"distinct_chunks\": [",
                a->trace->nparcels, a->trace->nversions, a->trace->bytes);
        for (size_t si = 0; si < a->nsizes; si++)
                fprintf(f, "%s%" PRIu64, si ? ", " : "", a->distinct[si]);
        fprintf(f, "],\n  \"table_bytes\": %" PRIu64 ",\n", a->peak_state_bytes);
        json_rows(a, f);
        fprintf(f, "}\n");
}

int vc_analysis_write_json(const VcAnalysis *a, const char *path)
{
        char tmp[PATH_MAX];
        if ((size_t)snprintf(tmp, sizeof tmp, "%s.tmp.%d", path, (int)getpid()) >= sizeof tmp)
                return vc_errf(-ENAMETOOLONG, "%s: name too long", path);
        FILE *f = fopen(tmp, "we");
        if (!f)
                return vc_errf(-errno, "cannot write %s: %s", path, strerror(errno));
        setvbuf(f, NULL, _IOFBF, 1 << 20);
        json_write(a, f);
        int r = 0;
        if (fflush(f) != 0 || ferror(f) || fsync(fileno(f)) < 0)
                r = errno ? -errno : -EIO;
        if (fclose(f) != 0 && r == 0)
                r = -errno;
        if (r == 0 && rename(tmp, path) < 0)
                r = -errno;
        if (r < 0) {
                unlink(tmp);
                return vc_errf(r, "cannot write %s: %s", path, strerror(-r));
        }
        return 0;
}

/* --- tables -------------------------------------------------------------- */

const char *vc_chunk_label(uint32_t s, bool short_form, char *buf, size_t len)
{
        if (s % (1u << 20) == 0)
                snprintf(buf, len, short_form ? "%uM" : "%u MiB", s >> 20);
        else if (s % 1024 == 0)
                snprintf(buf, len, short_form ? "%uK" : "%u KiB", s >> 10);
        else
                snprintf(buf, len, short_form ? "%u" : "%u B", s);
        return buf;
}

void *vc_grow(void *p, size_t *cap, size_t n, size_t elem, size_t first)
{
        if (n < *cap)
                return p;
        size_t ncap = *cap ? 2 * *cap : first;
        void *np = realloc(p, ncap * elem);
        if (np)
                *cap = ncap;
        return np;
}

/* A group header such as "|------- delta -------" centred over w chars. */
static void group_header(FILE *f, const char *name, int w)
{
        int n = (int)strlen(name) + 2, left = (w - 1 - n) / 2, right = w - 1 - n - left;
        fputc('|', f);
        for (int i = 0; i < left; i++)
                fputc('-', f);
        fprintf(f, " %s ", name);
        for (int i = 0; i < right; i++)
                fputc('-', f);
}

/* One table of mean / median / p95 over events, per size x comp, for
 * the kinds listed (upload policies or download methods). */
static void stats_table(const VcAnalysis *a, FILE *f, const char *title, bool upload, const int *kinds,
                        const char *const *names, int nk)
{
        uint64_t *vals = malloc((a->nevents + 1) * sizeof *vals);
        VcStats *st = calloc((size_t)nk * a->nsizes * a->ncomps, sizeof *st);
        if (!vals || !st) {
                free(vals);
                free(st);
                return;
        }
        uint64_t max = 0;
        for (int k = 0; k < nk; k++)
                for (size_t si = 0; si < a->nsizes; si++)
                        for (size_t ci = 0; ci < a->ncomps; ci++) {
                                if (upload)
                                        vc_analysis_upload_series(a, kinds[k], si, ci, vals);
                                else
                                        vc_analysis_download_series(a, kinds[k], si, ci, vals);
                                VcStats *s = &st[((size_t)k * a->nsizes + si) * a->ncomps + ci];
                                vc_stats(vals, a->nevents, s);
                                max = VC_MAX(max, s->p95);
                        }
        const char *unit;
        double div = vc_unit_for(max, &unit);
        fprintf(f, "%s, in %s: mean / median / 95th percentile of %zu\n", title, unit, a->nevents);
        fprintf(f, "%-16s", "");
        for (int k = 0; k < nk; k++)
                group_header(f, names[k], 27);
        fprintf(f, "\n%-9s%-7s", "chunk", "compr");
        for (int k = 0; k < nk; k++)
                fprintf(f, " %8s %8s %8s", "mean", "median", "p95");
        fputc('\n', f);
        for (size_t si = 0; si < a->nsizes; si++)
                for (size_t ci = 0; ci < a->ncomps; ci++) {
                        char sb[16];
                        fprintf(f, "%-9s%-7s", vc_chunk_label(a->sizes[si], false, sb, sizeof sb), vc_comp_name(a->comps[ci]));
                        for (int k = 0; k < nk; k++) {
                                const VcStats *s = &st[((size_t)k * a->nsizes + si) * a->ncomps + ci];
                                fprintf(f, " %8.2f %8.2f %8.2f", s->mean / div, (double)s->median / div,
                                        (double)s->p95 / div);
                        }
                        fputc('\n', f);
                }
        fputc('\n', f);
        free(vals);
        free(st);
}

static void storage_table(const VcAnalysis *a, FILE *f)
{
        uint32_t last = a->ndays - 1;
        uint64_t max = 0;
        for (int p = 0; p < VC_POL_MAX; p++)
                for (size_t si = 0; si < a->nsizes; si++)
                        for (size_t ci = 0; ci < a->ncomps; ci++)
                                max = VC_MAX(max, a->storage[vc_st_idx(a, p, si, ci, last)]);
        const char *unit;
        double div = vc_unit_for(max, &unit);
        fprintf(f, "Storage on day %u (the last day), in %s; saved = 1 - (data + meta) / delta data\n", last, unit);
        fprintf(f, "%-16s", "");
        group_header(f, "delta", 10);
        group_header(f, "ip", 28);
        group_header(f, "all", 28);
        fprintf(f, "\n%-9s%-7s %9s", "chunk", "compr", "data");
        for (int p = VC_POL_IP; p <= VC_POL_ALL; p++)
                fprintf(f, " %9s %9s %7s", "data", "meta", "saved");
        fputc('\n', f);
        for (size_t si = 0; si < a->nsizes; si++)
                for (size_t ci = 0; ci < a->ncomps; ci++) {
                        char sb[16];
                        uint64_t delta = a->storage[vc_st_idx(a, VC_POL_DELTA, si, ci, last)];
                        fprintf(f, "%-9s%-7s %9.2f", vc_chunk_label(a->sizes[si], false, sb, sizeof sb),
                                vc_comp_name(a->comps[ci]), (double)delta / div);
                        for (int p = VC_POL_IP; p <= VC_POL_ALL; p++) {
                                uint64_t d = a->storage[vc_st_idx(a, p, si, ci, last)];
                                uint64_t m = a->storage_meta[vc_stm_idx(a, p, si, last)];
                                fprintf(f, " %9.2f %9.2f", (double)d / div, (double)m / div);
                                if (delta)
                                        fprintf(f, " %6.1f%%", 100.0 * (1.0 - (double)(d + m) / (double)delta));
                                else
                                        fprintf(f, " %7s", "-");
                        }
                        fputc('\n', f);
                }
        fputc('\n', f);
}

void vc_analysis_print_tables(const VcAnalysis *a, FILE *f)
{
        const VcTrace *t = a->trace;
        char b1[32], b2[32];
        fprintf(f, "Trace: %zu parcels, %zu versions (%zu checkins), %s of images, days 0..%u\n", t->nparcels,
                t->nversions, a->nevents, vc_fmt_size(t->bytes, b1, sizeof b1), a->ndays - 1);
        fprintf(f, "Read and analysed in %.2f s (%s/s) with %u threads\n", a->seconds,
                vc_fmt_size(a->seconds > 0 ? (uint64_t)((double)t->bytes / a->seconds) : 0, b2, sizeof b2),
                a->threads);
        uint64_t distinct = 0;
        for (size_t si = 0; si < a->nsizes; si++)
                distinct += a->distinct[si];
        fprintf(f, "Distinct chunks: %" PRIu64 " (all chunk sizes), compressed once each in %.2f s of CPU; "
                   "chunk tables at most %s\n\n",
                distinct, a->compress_seconds, vc_fmt_size(a->peak_state_bytes, b1, sizeof b1));
        storage_table(a, f);
        if (a->nevents == 0) {
                fprintf(f, "No version after the first in any parcel: no upload or download to show.\n");
                return;
        }
        static const int pols[] = { VC_POL_DELTA, VC_POL_IP, VC_POL_ALL };
        stats_table(a, f, "Upload per checkin (data, without keyrings)", true, pols, vc_pol_name, 3);
        static const int dem[] = { VC_DL_DEMAND_NOCACHE, VC_DL_DEMAND_DELTA, VC_DL_DEMAND_CAS_M, VC_DL_DEMAND_CAS_MD };
        static const char *const dem_names[] = { "nocache", "delta", "cas_m", "cas_md" };
        stats_table(a, f, "Demand-fetch download (memory image)", false, dem, dem_names, 4);
        static const int com[] = { VC_DL_COMPLETE_NOCACHE, VC_DL_COMPLETE_DELTA, VC_DL_COMPLETE_CAS };
        static const char *const com_names[] = { "nocache", "delta", "cas" };
        stats_table(a, f, "Complete-fetch download (memory and disk images)", false, com, com_names, 3);
}
