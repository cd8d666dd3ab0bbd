/* vmcas analyze --report DIR: the study's Figures 5 to 13 drawn from the
 * analysis, as SVG and PNG (by gnuplot, a Debian package: the figures need
 * no code of ours to lay out axes and legends), and an index.html that
 * shows the tables and every figure.
 *
 * DIR gets the data of each figure (figN.dat, plain columns with a header),
 * the gnuplot script (figures.gp, rerunnable by hand), the pictures and
 * index.html; gnuplot's messages go to gnuplot.log. */
#include "analyze/analyze_internal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <fcntl.h>

/* Colours per policy / method, dash type per compression. */
static const char *const colours[] = { "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf" };
static const int dashes[VC_COMP_MAX] = { 1, 2, 3 };
static const char *const pol_label[VC_POL_MAX] = { "Delta", "IP", "ALL" };

typedef struct Report {
        const VcAnalysis *a;
        const char *dir;
        FILE *gp;          /* the gnuplot script being written */
        size_t fixed;      /* chunk size of Fig. 5 and 10 (the study's 128 KiB) */
        int err;
} Report;

static FILE *open_in(Report *r, const char *name)
{
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", r->dir, name);
        FILE *f = fopen(path, "we");
        if (!f && r->err == 0)
                r->err = vc_errf(-errno, "cannot write %s: %s", path, strerror(errno));
        return f;
}

static void close_in(Report *r, FILE *f, const char *name)
{
        if (!f)
                return;
        if ((ferror(f) | fclose(f)) && r->err == 0)
                r->err = vc_errf(-EIO, "cannot write %s/%s", r->dir, name);
}

static const char *comp_suffix(VcComp c)
{
        return c == VC_COMP_NONE ? "" : c == VC_COMP_GZIP ? ", gzip" : ", zstd";
}

/* x axis of chunk sizes: log2 scale, one labelled tic per size. */
static void size_axis(const VcAnalysis *a, FILE *f)
{
        fprintf(f, "set logscale x 2\nset xlabel \"chunk size\"\nset xtics (");
        for (size_t si = 0; si < a->nsizes; si++) {
                char b[16];
                fprintf(f, "%s\"%s\" %u", si ? ", " : "", vc_chunk_label(a->sizes[si], true, b, sizeof b), a->sizes[si]);
        }
        fprintf(f, ")\nset xrange [%g:%g]\n", a->sizes[0] / 1.3, a->sizes[a->nsizes - 1] * 1.3);
}

/* One figure, drawn once per terminal. body is gnuplot code. */
static void figure(Report *r, const char *name, int width, int height, const char *body)
{
        static const struct {
                const char *ext, *term;
        } terms[] = {
                { "svg", "svg size %d,%d dynamic enhanced font \"DejaVu Sans,12\" background \"white\"" },
                { "png", "pngcairo size %d,%d enhanced font \"DejaVu Sans,11\" background \"white\"" },
        };
        for (size_t i = 0; i < VC_ARRAY_SIZE(terms); i++) {
                fprintf(r->gp, "reset\nset terminal ");
                fprintf(r->gp, terms[i].term, width, height);
                fprintf(r->gp, "\nset output \"%s.%s\"\nset grid\nset key box opaque\n%s\nunset multiplot\nset output\n",
                        name, terms[i].ext, body);
        }
}

/* A string built with fprintf (the body of a figure). */
typedef struct Buf {
        char *p;
        size_t n;
        FILE *f;
} Buf;

static bool buf_open(Report *r, Buf *b)
{
        b->p = NULL;
        b->n = 0;
        b->f = open_memstream(&b->p, &b->n);
        if (!b->f && r->err == 0)
                r->err = -ENOMEM;
        return b->f != NULL;
}

static const char *buf_str(Buf *b)
{
        fflush(b->f);
        return b->p ? b->p : "";
}

static void buf_close(Buf *b)
{
        fclose(b->f);
        free(b->p);
}

static uint64_t storage_max(const VcAnalysis *a, bool with_meta, size_t si_only)
{
        uint64_t max = 1;
        for (int p = 0; p < VC_POL_MAX; p++)
                for (size_t si = 0; si < a->nsizes; si++)
                        for (size_t ci = 0; ci < a->ncomps; ci++) {
                                if (si_only != SIZE_MAX && si != si_only)
                                        continue;
                                uint64_t v = a->storage[vc_st_idx(a, p, si, ci, a->ndays - 1)];
                                if (with_meta)
                                        v += a->storage_meta[vc_stm_idx(a, p, si, a->ndays - 1)];
                                max = VC_MAX(max, v);
                        }
        return max;
}

/* Fig. 5 and 6: storage (data) per day. fig56.dat: day, then for every
 * size, comp, policy a column. */
static void fig_growth(Report *r)
{
        const VcAnalysis *a = r->a;
        FILE *f = open_in(r, "fig56.dat");
        if (!f)
                return;
        fprintf(f, "# day");
        for (size_t si = 0; si < a->nsizes; si++)
                for (size_t ci = 0; ci < a->ncomps; ci++)
                        for (int p = 0; p < VC_POL_MAX; p++)
                                fprintf(f, " %s/%u/%s", vc_pol_name[p], a->sizes[si], vc_comp_name(a->comps[ci]));
        fputc('\n', f);
        for (uint32_t d = 0; d < a->ndays; d++) {
                fprintf(f, "%u", d);
                for (size_t si = 0; si < a->nsizes; si++)
                        for (size_t ci = 0; ci < a->ncomps; ci++)
                                for (int p = 0; p < VC_POL_MAX; p++)
                                        fprintf(f, " %" PRIu64, a->storage[vc_st_idx(a, p, si, ci, d)]);
                fputc('\n', f);
        }
        close_in(r, f, "fig56.dat");
#define COL(si, ci, p) (2 + ((si) * a->ncomps + (ci)) * VC_POL_MAX + (size_t)(p))
        char sb[16];
        const char *unit;
        Buf b;
        if (!buf_open(r, &b))
                return;
        double div = vc_unit_for(storage_max(a, false, r->fixed), &unit);
        fprintf(b.f,
                "set title \"Fig. 5: growth of storage per policy, %s chunks\"\n"
                "set xlabel \"day (each parcel's day 0 is its creation)\"\nset ylabel \"stored data (%s)\"\n"
                "set key top left\nset yrange [0:*]\nset xrange [0:%u]\nplot ",
                vc_chunk_label(a->sizes[r->fixed], true, sb, sizeof sb), unit, VC_MAX(a->ndays - 1, 1u));
        for (size_t ci = 0; ci < a->ncomps; ci++)
                for (int p = 0; p < VC_POL_MAX; p++)
                        fprintf(b.f, "%s\"fig56.dat\" using 1:($%zu/%.0f) with steps lw 2 lc rgb \"%s\" dt %d title \"%s%s\"",
                                ci || p ? ", " : "", COL(r->fixed, ci, p), div, colours[p], dashes[a->comps[ci]],
                                pol_label[p], comp_suffix(a->comps[ci]));
        fputc('\n', b.f);
        figure(r, "fig5", 900, 560, buf_str(&b));
        buf_close(&b);

        if (!buf_open(r, &b))
                return;
        div = vc_unit_for(storage_max(a, false, SIZE_MAX), &unit);
        fprintf(b.f, "set multiplot layout 1,3 title \"Fig. 6: growth of storage per chunk size, without metadata\"\n");
        for (int p = 0; p < VC_POL_MAX; p++) {
                fprintf(b.f,
                        "set title \"%s\"\nset xlabel \"day\"\nset ylabel \"stored data (%s)\"\nset key top left "
                        "font \",9\"\nset yrange [0:*]\nset xrange [0:%u]\nplot ",
                        pol_label[p], unit, VC_MAX(a->ndays - 1, 1u));
                for (size_t si = 0; si < a->nsizes; si++)
                        fprintf(b.f, "%s\"fig56.dat\" using 1:($%zu/%.0f) with steps lw 2 lc %zu title \"%s\"",
                                si ? ", " : "", COL(si, 0, p), div, si + 1,
                                vc_chunk_label(a->sizes[si], true, sb, sizeof sb));
                fputc('\n', b.f);
        }
        figure(r, "fig6", 1500, 520, buf_str(&b));
        buf_close(&b);
#undef COL
}

/* Fig. 7 and 8: storage on the last day per chunk size. fig78.dat: size,
 * then per comp and policy: data, meta. */
static void fig_chunk_sizes(Report *r)
{
        const VcAnalysis *a = r->a;
        uint32_t last = a->ndays - 1;
        FILE *f = open_in(r, "fig78.dat");
        if (!f)
                return;
        fprintf(f, "# chunk_size");
        for (size_t ci = 0; ci < a->ncomps; ci++)
                for (int p = 0; p < VC_POL_MAX; p++)
                        fprintf(f, " %s/%s/data %s/%s/meta", vc_pol_name[p], vc_comp_name(a->comps[ci]), vc_pol_name[p],
                                vc_comp_name(a->comps[ci]));
        fputc('\n', f);
        for (size_t si = 0; si < a->nsizes; si++) {
                fprintf(f, "%u", a->sizes[si]);
                for (size_t ci = 0; ci < a->ncomps; ci++)
                        for (int p = 0; p < VC_POL_MAX; p++)
                                fprintf(f, " %" PRIu64 " %" PRIu64, a->storage[vc_st_idx(a, p, si, ci, last)],
                                        a->storage_meta[vc_stm_idx(a, p, si, last)]);
                fputc('\n', f);
        }
        close_in(r, f, "fig78.dat");
#define DCOL(ci, p) (2 + 2 * ((ci) * VC_POL_MAX + (size_t)(p)))
        for (int meta = 0; meta < 2; meta++) {
                const char *unit;
                double div = vc_unit_for(storage_max(a, meta, SIZE_MAX), &unit);
                Buf b;
                if (!buf_open(r, &b))
                        return;
                fprintf(b.f, "set title \"Fig. 7(%c): storage on day %u, %s\"\nset ylabel \"%s (%s)\"\n"
                             "set key top left\nset yrange [0:*]\n",
                        meta ? 'b' : 'a', last, meta ? "data and metadata" : "data only, without metadata",
                        meta ? "stored data + keyrings" : "stored data", unit);
                size_axis(a, b.f);
                fprintf(b.f, "plot ");
                for (size_t ci = 0; ci < a->ncomps; ci++)
                        for (int p = 0; p < VC_POL_MAX; p++) {
                                char expr[64];
                                if (meta)
                                        snprintf(expr, sizeof expr, "$%zu+$%zu", DCOL(ci, p), DCOL(ci, p) + 1);
                                else
                                        snprintf(expr, sizeof expr, "$%zu", DCOL(ci, p));
                                fprintf(b.f,
                                        "%s\"fig78.dat\" using 1:((%s)/%.0f) with linespoints lw 2 pt 7 lc rgb \"%s\" "
                                        "dt %d title \"%s%s\"",
                                        ci || p ? ", " : "", expr, div, colours[p], dashes[a->comps[ci]], pol_label[p],
                                        comp_suffix(a->comps[ci]));
                        }
                fputc('\n', b.f);
                figure(r, meta ? "fig7b" : "fig7a", 900, 560, buf_str(&b));
                buf_close(&b);
        }
        Buf b;
        if (!buf_open(r, &b))
                return;
        fprintf(b.f, "set title \"Fig. 8: metadata (keyrings) as a share of stored data, day %u\"\n"
                     "set ylabel \"metadata / data (%%)\"\nset key top right\nset yrange [0:*]\n",
                last);
        size_axis(a, b.f);
        fprintf(b.f, "plot ");
        bool first = true;
        for (size_t ci = 0; ci < a->ncomps; ci++)
                for (int p = VC_POL_IP; p <= VC_POL_ALL; p++) {
                        fprintf(b.f,
                                "%s\"fig78.dat\" using 1:($%zu > 0 ? 100.0*$%zu/$%zu : 1/0) with linespoints lw 2 pt 7 "
                                "lc rgb \"%s\" dt %d title \"%s%s\"",
                                first ? "" : ", ", DCOL(ci, p), DCOL(ci, p) + 1, DCOL(ci, p), colours[p],
                                dashes[a->comps[ci]], pol_label[p], comp_suffix(a->comps[ci]));
                        first = false;
                }
        fputc('\n', b.f);
        figure(r, "fig8", 900, 560, buf_str(&b));
        buf_close(&b);
#undef DCOL
}

/* Fig. 10: CDF of upload sizes at the fixed chunk size, one panel per
 * compression. fig10.dat: one block per (comp, policy), "size fraction". */
static void fig_upload_cdf(Report *r)
{
        const VcAnalysis *a = r->a;
        size_t n = a->nevents;
        uint64_t *vals = malloc(n * sizeof *vals), max = 1;
        FILE *f = open_in(r, "fig10.dat");
        if (!vals || !f) {
                free(vals);
                close_in(r, f, "fig10.dat");
                if (r->err == 0)
                        r->err = -ENOMEM;
                return;
        }
        fprintf(f, "# upload sizes at %u-byte chunks, sorted; blocks: compression x policy\n", a->sizes[r->fixed]);
        for (size_t ci = 0; ci < a->ncomps; ci++)
                for (int p = 0; p < VC_POL_MAX; p++) {
                        VcStats st;
                        vc_analysis_upload_series(a, p, r->fixed, ci, vals);
                        vc_stats(vals, n, &st); /* sorts */
                        max = VC_MAX(max, st.max);
                        fprintf(f, "# %s %s\n%" PRIu64 " 0\n", vc_comp_name(a->comps[ci]), vc_pol_name[p], vals[0]);
                        for (size_t i = 0; i < n; i++)
                                fprintf(f, "%" PRIu64 " %.6f\n", vals[i], (double)(i + 1) / (double)n);
                        fprintf(f, "\n\n");
                }
        close_in(r, f, "fig10.dat");
        free(vals);
        const char *unit;
        double div = vc_unit_for(max, &unit);
        char sb[16];
        Buf b;
        if (!buf_open(r, &b))
                return;
        fprintf(b.f, "set multiplot layout 1,%zu title \"Fig. 10: CDF of upload sizes, %s chunks (%zu checkins)\"\n",
                a->ncomps, vc_chunk_label(a->sizes[r->fixed], true, sb, sizeof sb), n);
        for (size_t ci = 0; ci < a->ncomps; ci++) {
                fprintf(b.f,
                        "set title \"%s\"\nset xlabel \"upload size (%s)\"\nset ylabel \"fraction of checkins\"\n"
                        "set yrange [0:1.02]\nset xrange [0:*]\nset key bottom right\nplot ",
                        a->comps[ci] == VC_COMP_NONE ? "without compression" : vc_comp_name(a->comps[ci]), unit);
                for (int p = 0; p < VC_POL_MAX; p++)
                        fprintf(b.f, "%s\"fig10.dat\" index %zu using ($1/%.0f):2 with steps lw 2 lc rgb \"%s\" title \"%s\"",
                                p ? ", " : "", ci * VC_POL_MAX + (size_t)p, div, colours[p], pol_label[p]);
                fputc('\n', b.f);
        }
        figure(r, "fig10", 500 * (int)a->ncomps, 500, buf_str(&b));
        buf_close(&b);
}

/* Fig. 11, 12, 13: mean, median and 95th percentile against chunk size,
 * one panel each. The data file has per size, for every comp and kind:
 * mean median p95. */
static void fig_stats(Report *r, const char *name, const char *title, const char *what, bool upload,
                      const int *kinds, const char *const *labels, int nk)
{
        const VcAnalysis *a = r->a;
        size_t n = a->nevents;
        char dat[64];
        snprintf(dat, sizeof dat, "%s.dat", name);
        uint64_t *vals = malloc(n * sizeof *vals), max = 1;
        FILE *f = open_in(r, dat);
        if (!vals || !f) {
                free(vals);
                close_in(r, f, dat);
                if (r->err == 0)
                        r->err = -ENOMEM;
                return;
        }
        fprintf(f, "# chunk_size, then mean median p95 for each compression x kind\n");
        for (size_t si = 0; si < a->nsizes; si++) {
                fprintf(f, "%u", a->sizes[si]);
                for (size_t ci = 0; ci < a->ncomps; ci++)
                        for (int k = 0; k < nk; k++) {
                                VcStats st;
                                if (upload)
                                        vc_analysis_upload_series(a, kinds[k], si, ci, vals);
                                else
                                        vc_analysis_download_series(a, kinds[k], si, ci, vals);
                                vc_stats(vals, n, &st);
                                max = VC_MAX(max, st.p95);
                                fprintf(f, " %.1f %" PRIu64 " %" PRIu64, st.mean, st.median, st.p95);
                        }
                fputc('\n', f);
        }
        close_in(r, f, dat);
        free(vals);
        const char *unit;
        double div = vc_unit_for(max, &unit);
        static const char *const stat_names[3] = { "mean", "median", "95th percentile" };
        Buf b;
        if (!buf_open(r, &b))
                return;
        fprintf(b.f, "set multiplot layout 1,3 title \"%s\"\n", title);
        for (int s = 0; s < 3; s++) {
                /* The legend goes below the panel: inside, it hides lines. */
                fprintf(b.f, "set title \"(%c) %s\"\nset ylabel \"%s (%s)\"\nset yrange [0:*]\n"
                             "set key below font \",9\" maxcols 2\nset bmargin %zu\n",
                        'a' + s, stat_names[s], what, unit, 4 + (a->ncomps * (size_t)nk + 1) / 2);
                size_axis(a, b.f);
                fprintf(b.f, "plot ");
                for (size_t ci = 0; ci < a->ncomps; ci++)
                        for (int k = 0; k < nk; k++)
                                fprintf(b.f,
                                        "%s\"%s\" using 1:($%zu/%.0f) with linespoints lw 2 pt 7 lc rgb \"%s\" dt %d "
                                        "title \"%s%s\"",
                                        ci || k ? ", " : "", dat, 2 + 3 * (ci * (size_t)nk + (size_t)k) + (size_t)s, div,
                                        colours[k], dashes[a->comps[ci]], labels[k], comp_suffix(a->comps[ci]));
                fputc('\n', b.f);
        }
        figure(r, name, 1500, 640, buf_str(&b));
        buf_close(&b);
}

static void html_escape(FILE *f, const char *s)
{
        for (; *s; s++)
                switch (*s) {
                case '<': fputs("&lt;", f); break;
                case '>': fputs("&gt;", f); break;
                case '&': fputs("&amp;", f); break;
                case '"': fputs("&quot;", f); break;
                default: fputc(*s, f);
                }
}

/* A size for people, e.g. "12.3 MiB". */
static const char *hsz(uint64_t n, char *buf)
{
        return vc_fmt_size(n, buf, 32);
}

static const char *clabel(const VcAnalysis *a, size_t si, char *buf)
{
        return vc_chunk_label(a->sizes[si], false, buf, 16);
}

static const char *comp_words(VcComp c)
{
        return c == VC_COMP_NONE ? "without compression" : c == VC_COMP_GZIP ? "with gzip" : "with zstd";
}

/* Storage on the last day: data, and data + keyrings. */
static uint64_t st_data(const VcAnalysis *a, int p, size_t si, size_t ci)
{
        return a->storage[vc_st_idx(a, p, si, ci, a->ndays - 1)];
}

static uint64_t st_total(const VcAnalysis *a, int p, size_t si, size_t ci)
{
        return st_data(a, p, si, ci) + a->storage_meta[vc_stm_idx(a, p, si, a->ndays - 1)];
}

/* 100 * (1 - x / base): what x saves against base, in percent. */
static double saved(uint64_t x, uint64_t base)
{
        return base ? 100.0 * (1.0 - (double)x / (double)base) : 0.0;
}

/* Mean, median, p95 of one series (upload per policy, or download per
 * method) at one chunk size and compression. */
static VcStats series_stats(const VcAnalysis *a, bool upload, int kind, size_t si, size_t ci, uint64_t *vals)
{
        VcStats st;
        if (upload)
                vc_analysis_upload_series(a, kind, si, ci, vals);
        else
                vc_analysis_download_series(a, kind, si, ci, vals);
        vc_stats(vals, a->nevents, &st);
        return st;
}

/* The chunk size that stores least (data + keyrings) under policy p. */
static size_t best_size(const VcAnalysis *a, int p, size_t ci)
{
        size_t best = 0;
        for (size_t si = 1; si < a->nsizes; si++)
                if (st_total(a, p, si, ci) < st_total(a, p, best, ci))
                        best = si;
        return best;
}

/* The compression that stores least under ALL at its best size, or ci 0. */
static size_t best_comp(const VcAnalysis *a)
{
        size_t best = 0;
        for (size_t ci = 1; ci < a->ncomps; ci++)
                if (st_total(a, VC_POL_ALL, best_size(a, VC_POL_ALL, ci), ci) <
                    st_total(a, VC_POL_ALL, best_size(a, VC_POL_ALL, best), best))
                        best = ci;
        return best;
}

static void fig_html(FILE *f, const char *file, bool wide, const char *caption, const char *reading)
{
        fprintf(f, "<figure id=\"%s\"%s><a href=\"%s.svg\"><img src=\"%s.svg\" alt=\"", file,
                wide ? " class=\"wide\"" : "", file, file);
        html_escape(f, caption);
        fprintf(f, "\"></a><figcaption><strong>");
        html_escape(f, caption);
        fprintf(f, "</strong> ");
        html_escape(f, reading);
        fprintf(f, " (<a href=\"%s.png\">PNG</a>)</figcaption></figure>\n", file);
}

/* The storage table: per chunk size and compression, Delta's data, then
 * for IP and ALL data, keyrings and what they save against Delta. */
static void storage_table_html(const VcAnalysis *a, FILE *f, size_t only_si)
{
        char b1[32], b2[32], b3[32], sb[16];
        fprintf(f, "<table><caption>Storage on day %u (the last day); saved: 1 &minus; (data + keyrings) / "
                   "Delta's data</caption>\n<thead><tr><th rowspan=\"2\">chunk</th><th rowspan=\"2\">compression</th>"
                   "<th>Delta</th><th colspan=\"3\">IP</th><th colspan=\"3\">ALL</th></tr>\n"
                   "<tr><th>data</th><th>data</th><th>keyrings</th><th>saved</th><th>data</th><th>keyrings</th>"
                   "<th>saved</th></tr></thead>\n<tbody>\n", a->ndays - 1);
        for (size_t si = 0; si < a->nsizes; si++) {
                if (only_si != SIZE_MAX && si != only_si)
                        continue;
                for (size_t ci = 0; ci < a->ncomps; ci++) {
                        uint64_t delta = st_data(a, VC_POL_DELTA, si, ci);
                        fprintf(f, "<tr><td>%s</td><td>%s</td><td>%s</td>", clabel(a, si, sb),
                                vc_comp_name(a->comps[ci]), hsz(delta, b1));
                        for (int p = VC_POL_IP; p <= VC_POL_ALL; p++) {
                                uint64_t d = st_data(a, p, si, ci), t = st_total(a, p, si, ci);
                                fprintf(f, "<td>%s</td><td>%s</td><td>%.1f%%</td>", hsz(d, b2), hsz(t - d, b3),
                                        saved(t, delta));
                        }
                        fprintf(f, "</tr>\n");
                }
        }
        fprintf(f, "</tbody></table>\n");
}

/* Mean / median / p95 per chunk size and compression, for each kind. */
static void stats_table_html(const VcAnalysis *a, FILE *f, const char *title, bool upload, const int *kinds,
                             const char *const *names, int nk, uint64_t *vals)
{
        char b1[32], b2[32], b3[32], sb[16];
        fprintf(f, "<table><caption>");
        html_escape(f, title);
        fprintf(f, ": mean, median and 95th percentile of %zu</caption>\n<thead><tr><th rowspan=\"2\">chunk</th>"
                   "<th rowspan=\"2\">compression</th>", a->nevents);
        for (int k = 0; k < nk; k++)
                fprintf(f, "<th colspan=\"3\">%s</th>", names[k]);
        fprintf(f, "</tr>\n<tr>");
        for (int k = 0; k < nk; k++)
                fprintf(f, "<th>mean</th><th>median</th><th>p95</th>");
        fprintf(f, "</tr></thead>\n<tbody>\n");
        for (size_t si = 0; si < a->nsizes; si++)
                for (size_t ci = 0; ci < a->ncomps; ci++) {
                        fprintf(f, "<tr><td>%s</td><td>%s</td>", clabel(a, si, sb), vc_comp_name(a->comps[ci]));
                        for (int k = 0; k < nk; k++) {
                                VcStats st = series_stats(a, upload, kinds[k], si, ci, vals);
                                fprintf(f, "<td>%s</td><td>%s</td><td>%s</td>", hsz((uint64_t)st.mean, b1),
                                        hsz(st.median, b2), hsz(st.p95, b3));
                        }
                        fprintf(f, "</tr>\n");
                }
        fprintf(f, "</tbody></table>\n");
}

static void write_html(Report *r)
{
        const VcAnalysis *a = r->a;
        const VcTrace *t = a->trace;
        FILE *f = open_in(r, "index.html");
        if (!f)
                return;
        uint64_t *vals = malloc((a->nevents + 1) * sizeof *vals);
        if (!vals) {
                fclose(f);
                if (r->err == 0)
                        r->err = -ENOMEM;
                return;
        }
        size_t fx = r->fixed;
        uint32_t last = a->ndays - 1;
        char b1[32], b2[32], b3[32], b4[32], b5[32], sb[16], sb2[16], line[512];
        fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                   "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
                   "<title>vmcas analyze: what content addressing saves on this trace</title>\n<style>\n"
                   "body { font-family: \"DejaVu Sans\", sans-serif; margin: 2em auto; max-width: 1500px; "
                   "padding: 0 1em; color: #222; line-height: 1.4; }\n"
                   "h1 { font-size: 1.6em; } h2 { margin-top: 2em; border-bottom: 1px solid #ccc; }\n"
                   ".answers { background: #f3f7fb; border-left: 4px solid #1f77b4; padding: .5em 1.5em; }\n"
                   ".answers li { margin: .4em 0; }\n"
                   ".pair { display: flex; flex-wrap: wrap; gap: 2em; align-items: flex-start; margin: 1.5em 0; }\n"
                   ".pair > figure { flex: 1 1 520px; margin: 0; } .pair > .tables { flex: 1 1 640px; overflow-x: auto; }\n"
                   "figure.wide { flex-basis: 100%%; }\n"
                   "img { width: 100%%; border: 1px solid #ddd; background: white; }\n"
                   "figcaption { margin-top: .4em; }\n"
                   "table { border-collapse: collapse; font-size: 13px; margin-bottom: 1.5em; }\n"
                   "caption { text-align: left; font-weight: bold; padding-bottom: .3em; }\n"
                   "th, td { border: 1px solid #ccc; padding: .2em .5em; text-align: right; white-space: nowrap; }\n"
                   "th { background: #eee; } tbody tr:nth-child(even) { background: #fafafa; }\n"
                   ".broken { color: #b00; font-weight: bold; }\n"
                   "</style>\n"
                   /* page errors are kept where a test (or a person) can see them */
                   "<script>window.addEventListener('error', function (e) { var h = document.documentElement;\n"
                   "  if (e.message) h.setAttribute('data-errors', (h.getAttribute('data-errors') || '') + e.message + '; '); });\n"
                   "</script></head><body>\n"
                   "<h1>What content addressing saves on this trace</h1>\n");
        fprintf(f, "<p>The trace: %zu parcels, %zu versions (%zu checkins), %s of images over %u days. "
                   "The Delta, IP and ALL policies are replayed for every chunk size and compression "
                   "(after Nath et al., USENIX ATC 2006; figure numbers follow the study).</p>\n",
                t->nparcels, t->nversions, a->nevents, hsz(t->bytes, b1), a->ndays);

        /* ---- the answers ---- */
        size_t c0 = 0; /* the first compression asked for: "none" by default */
        fprintf(f, "<section class=\"answers\"><h2 style=\"border:0; margin-top:.5em\">The answers</h2>\n<ol>\n");
        fprintf(f, "<li><strong>How much does each policy save against Delta?</strong> At %s chunks %s, on day %u, "
                   "IP stores %.1f%% less than Delta and ALL %.1f%% less (data and keyrings: %s, %s, %s).",
                clabel(a, fx, sb), comp_words(a->comps[c0]), last,
                saved(st_total(a, VC_POL_IP, fx, c0), st_data(a, VC_POL_DELTA, fx, c0)),
                saved(st_total(a, VC_POL_ALL, fx, c0), st_data(a, VC_POL_DELTA, fx, c0)),
                hsz(st_data(a, VC_POL_DELTA, fx, c0), b1), hsz(st_total(a, VC_POL_IP, fx, c0), b2),
                hsz(st_total(a, VC_POL_ALL, fx, c0), b3));
        if (a->nevents) {
                VcStats d = series_stats(a, true, VC_POL_DELTA, fx, c0, vals);
                VcStats ip = series_stats(a, true, VC_POL_IP, fx, c0, vals);
                VcStats al = series_stats(a, true, VC_POL_ALL, fx, c0, vals);
                VcStats cd = series_stats(a, false, VC_DL_COMPLETE_DELTA, fx, c0, vals);
                VcStats cc = series_stats(a, false, VC_DL_COMPLETE_CAS, fx, c0, vals);
                fprintf(f, " On the network, a checkin uploads on average %s under Delta, %s under IP "
                           "(%.1f%% less) and %s under ALL (%.1f%% less); a complete checkout downloads %s with "
                           "Delta's cache and %s with a CAS cache (%.1f%% less).",
                        hsz((uint64_t)d.mean, b1), hsz((uint64_t)ip.mean, b2), saved((uint64_t)ip.mean, (uint64_t)d.mean),
                        hsz((uint64_t)al.mean, b3), saved((uint64_t)al.mean, (uint64_t)d.mean),
                        hsz((uint64_t)cd.mean, b4), hsz((uint64_t)cc.mean, b5), saved((uint64_t)cc.mean, (uint64_t)cd.mean));
        } else
                fprintf(f, " No parcel has a second version, so there is no network traffic to compare.");
        fprintf(f, "</li>\n<li><strong>Which chunk size is best?</strong> ");
        for (size_t ci = 0; ci < a->ncomps; ci++) {
                size_t bi = best_size(a, VC_POL_IP, ci), ba = best_size(a, VC_POL_ALL, ci);
                fprintf(f, "%s%s, storage is smallest at %s chunks under ALL (%s) and at %s under IP (%s)",
                        ci ? "; " : "", comp_words(a->comps[ci]), clabel(a, ba, sb), hsz(st_total(a, VC_POL_ALL, ba, ci), b1),
                        clabel(a, bi, sb2), hsz(st_total(a, VC_POL_IP, bi, ci), b2));
                if (ci == 0)
                        fprintf(f, ", keyrings included");
        }
        size_t bc = best_comp(a);
        fprintf(f, ". The least storage overall: ALL at %s chunks %s.",
                clabel(a, best_size(a, VC_POL_ALL, bc), sb), comp_words(a->comps[bc]));
        fprintf(f, "</li>\n</ol></section>\n");

        /* ---- storage over time ---- */
        fprintf(f, "<h2>Storage over time</h2>\n<div class=\"pair\">\n");
        snprintf(line, sizeof line, "After %u days at %s chunks, Delta holds %s, IP %s and ALL %s (data, no "
                 "keyrings): the lines part where versions share content Delta cannot see.", last, clabel(a, fx, sb),
                 hsz(st_data(a, VC_POL_DELTA, fx, c0), b1), hsz(st_data(a, VC_POL_IP, fx, c0), b2),
                 hsz(st_data(a, VC_POL_ALL, fx, c0), b3));
        fig_html(f, "fig5", false, "Fig. 5: growth of storage per policy.", line);
        fprintf(f, "<div class=\"tables\">\n");
        storage_table_html(a, f, fx);
        fprintf(f, "</div></div>\n<div class=\"pair\">\n");
        snprintf(line, sizeof line, "Each panel is one policy: smaller chunks find more sharing, so their lines "
                 "grow slower (%s chunks under ALL: %s; %s: %s).", clabel(a, 0, sb), hsz(st_data(a, VC_POL_ALL, 0, 0), b1),
                 clabel(a, a->nsizes - 1, sb2), hsz(st_data(a, VC_POL_ALL, a->nsizes - 1, 0), b2));
        fig_html(f, "fig6", true, "Fig. 6: growth of storage per chunk size, without compression or keyrings.", line);
        fprintf(f, "</div>\n");

        /* ---- storage against chunk size ---- */
        fprintf(f, "<h2>Storage against chunk size</h2>\n<div class=\"pair\">\n");
        size_t ba = best_size(a, VC_POL_ALL, c0);
        snprintf(line, sizeof line, "Data alone shrinks as chunks get smaller: ALL holds %s at %s chunks and %s "
                 "at %s.", hsz(st_data(a, VC_POL_ALL, 0, c0), b1), clabel(a, 0, sb),
                 hsz(st_data(a, VC_POL_ALL, a->nsizes - 1, c0), b2), clabel(a, a->nsizes - 1, sb2));
        fig_html(f, "fig7a", false, "Fig. 7(a): storage on the last day, data only.", line);
        fprintf(f, "<div class=\"tables\">\n");
        storage_table_html(a, f, SIZE_MAX);
        fprintf(f, "</div></div>\n<div class=\"pair\">\n");
        snprintf(line, sizeof line, "With keyrings, small chunks cost metadata: ALL is smallest at %s chunks (%s).",
                 clabel(a, ba, sb), hsz(st_total(a, VC_POL_ALL, ba, c0), b1));
        fig_html(f, "fig7b", false, "Fig. 7(b): storage on the last day, data and keyrings.", line);
        {
                uint64_t d0 = st_data(a, VC_POL_ALL, 0, c0);
                snprintf(line, sizeof line, "Keyrings are %.1f%% of ALL's data at %s chunks and %.1f%% at %s.",
                         d0 ? 100.0 * (double)(st_total(a, VC_POL_ALL, 0, c0) - d0) / (double)d0 : 0.0,
                         clabel(a, 0, sb),
                         st_data(a, VC_POL_ALL, a->nsizes - 1, c0)
                                 ? 100.0 * (double)(st_total(a, VC_POL_ALL, a->nsizes - 1, c0) -
                                                    st_data(a, VC_POL_ALL, a->nsizes - 1, c0)) /
                                           (double)st_data(a, VC_POL_ALL, a->nsizes - 1, c0)
                                 : 0.0,
                         clabel(a, a->nsizes - 1, sb2));
                fig_html(f, "fig8", false, "Fig. 8: keyrings as a share of stored data.", line);
        }
        fprintf(f, "</div>\n");

        if (a->nevents == 0) {
                fprintf(f, "<p>No parcel has a second version: there is no upload or download to draw.</p>\n");
        } else {
                static const int pols[] = { VC_POL_DELTA, VC_POL_IP, VC_POL_ALL };
                static const char *const pol_names[] = { "Delta", "IP", "ALL" };
                fprintf(f, "<h2>Upload per checkin</h2>\n<div class=\"pair\">\n");
                VcStats d = series_stats(a, true, VC_POL_DELTA, fx, c0, vals);
                VcStats al = series_stats(a, true, VC_POL_ALL, fx, c0, vals);
                snprintf(line, sizeof line, "At %s chunks, half the checkins upload at most %s under Delta and "
                         "%s under ALL; the 95th percentile is %s and %s.", clabel(a, fx, sb), hsz(d.median, b1),
                         hsz(al.median, b2), hsz(d.p95, b3), hsz(al.p95, b4));
                fig_html(f, "fig10", true, "Fig. 10: cumulative distribution of upload sizes.", line);
                fprintf(f, "</div>\n<div class=\"pair\">\n");
                snprintf(line, sizeof line, "Smaller chunks upload less: under ALL the mean upload is %s at %s "
                         "chunks and %s at %s.", hsz((uint64_t)series_stats(a, true, VC_POL_ALL, 0, c0, vals).mean, b1),
                         clabel(a, 0, sb),
                         hsz((uint64_t)series_stats(a, true, VC_POL_ALL, a->nsizes - 1, c0, vals).mean, b2),
                         clabel(a, a->nsizes - 1, sb2));
                fig_html(f, "fig11", true, "Fig. 11: upload sizes against chunk size.", line);
                fprintf(f, "<div class=\"tables\">\n");
                stats_table_html(a, f, "Upload per checkin (data, without keyrings)", true, pols, pol_names, 3, vals);
                fprintf(f, "</div></div>\n");

                fprintf(f, "<h2>Download per checkout</h2>\n<div class=\"pair\">\n");
                static const int dem[] = { VC_DL_DEMAND_NOCACHE, VC_DL_DEMAND_DELTA, VC_DL_DEMAND_CAS_M,
                                           VC_DL_DEMAND_CAS_MD };
                static const char *const dem_names[] = { "No cache", "Delta", "CAS + cache (M)", "CAS + cache (M+D)" };
                VcStats nc = series_stats(a, false, VC_DL_DEMAND_NOCACHE, fx, c0, vals);
                VcStats md = series_stats(a, false, VC_DL_DEMAND_CAS_MD, fx, c0, vals);
                snprintf(line, sizeof line, "Fetching the memory image on demand costs %s on average without a "
                         "cache and %s with a CAS cache of memory and disk (%.1f%% less), at %s chunks.",
                         hsz((uint64_t)nc.mean, b1), hsz((uint64_t)md.mean, b2),
                         saved((uint64_t)md.mean, (uint64_t)nc.mean), clabel(a, fx, sb));
                fig_html(f, "fig12", true, "Fig. 12: demand-fetch download (memory image).", line);
                fprintf(f, "<div class=\"tables\">\n");
                stats_table_html(a, f, "Demand-fetch download (memory image)", false, dem, dem_names, 4, vals);
                fprintf(f, "</div></div>\n<div class=\"pair\">\n");
                static const int com[] = { VC_DL_COMPLETE_NOCACHE, VC_DL_COMPLETE_DELTA, VC_DL_COMPLETE_CAS };
                static const char *const com_names[] = { "No cache", "Delta", "CAS" };
                VcStats cn = series_stats(a, false, VC_DL_COMPLETE_NOCACHE, fx, c0, vals);
                VcStats cc = series_stats(a, false, VC_DL_COMPLETE_CAS, fx, c0, vals);
                snprintf(line, sizeof line, "A complete checkout of both images costs %s on average without a "
                         "cache and %s with a CAS cache (%.1f%% less), at %s chunks.", hsz((uint64_t)cn.mean, b1),
                         hsz((uint64_t)cc.mean, b2), saved((uint64_t)cc.mean, (uint64_t)cn.mean), clabel(a, fx, sb));
                fig_html(f, "fig13", true, "Fig. 13: complete-fetch download (memory and disk images).", line);
                fprintf(f, "<div class=\"tables\">\n");
                stats_table_html(a, f, "Complete-fetch download (memory and disk images)", false, com, com_names, 3,
                                 vals);
                fprintf(f, "</div></div>\n");
        }
        fprintf(f, "<h2>Method</h2>\n<p>Storage is what each policy keeps after every version of the trace is "
                   "checked in, in time order; keyrings are each version's list of chunk tags and keys. Uploads "
                   "are the data a checkin sends, downloads the data a checkout fetches with each kind of cache "
                   "(<code>docs/analyze.md</code>). The numbers behind every figure are in the <code>.dat</code> "
                   "files beside this page, and <code>figures.gp</code> redraws them with gnuplot. Read and "
                   "analysed in %.2f s with %u threads.</p>\n", a->seconds, a->threads);
        /* a figure that did not load says so, instead of leaving a hole */
        fprintf(f, "<script>\nwindow.addEventListener('load', function () {\n"
                   "  var bad = [];\n"
                   "  document.querySelectorAll('img').forEach(function (i) {\n"
                   "    if (!i.complete || i.naturalWidth === 0) {\n"
                   "      bad.push(i.getAttribute('src'));\n"
                   "      var p = document.createElement('p'); p.className = 'broken';\n"
                   "      p.textContent = 'This figure could not be loaded: ' + i.getAttribute('src') +\n"
                   "        ' (is gnuplot installed? see gnuplot.log)';\n"
                   "      i.parentNode.parentNode.insertBefore(p, i.parentNode);\n"
                   "    }\n  });\n"
                   "  document.body.setAttribute('data-figures', bad.length ? 'missing: ' + bad.join(' ') : 'ok');\n"
                   "});\n</script>\n");
        fprintf(f, "</body></html>\n");
        free(vals);
        close_in(r, f, "index.html");
}

static int run_gnuplot(const char *dir)
{
        pid_t pid = fork();
        if (pid < 0)
                return vc_errf(-errno, "cannot start gnuplot: %s", strerror(errno));
        if (pid == 0) {
                if (chdir(dir) < 0)
                        _exit(126);
                int fd = open("gnuplot.log", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
                if (fd >= 0) {
                        dup2(fd, 1);
                        dup2(fd, 2);
                }
                execlp("gnuplot", "gnuplot", "figures.gp", (char *)NULL);
                _exit(127);
        }
        int status;
        while (waitpid(pid, &status, 0) < 0)
                if (errno != EINTR)
                        return vc_errf(-errno, "waiting for gnuplot: %s", strerror(errno));
        if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return vc_errf(-ENOENT, "gnuplot not found: install Debian's gnuplot-nox (scripts/deps.sh); "
                                        "the data and index.html are in %s", dir);
        if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
                return vc_errf(-EIO, "gnuplot failed: see %s/gnuplot.log", dir);
        return 0;
}

int vc_analysis_write_report(const VcAnalysis *a, const char *dir)
{
        int err = vc_mkdir_p(dir, 0755);
        if (err < 0)
                return vc_errf(err, "cannot create %s: %s", dir, strerror(-err));
        Report r = { .a = a, .dir = dir };
        /* The study's figures 5 and 10 use 128 KiB chunks: take the size
         * nearest to it (in powers of two). */
        for (size_t si = 1; si < a->nsizes; si++)
                if (fabs(log2(a->sizes[si]) - 17) < fabs(log2(a->sizes[r.fixed]) - 17))
                        r.fixed = si;
        r.gp = open_in(&r, "figures.gp");
        if (!r.gp)
                return r.err;
        fprintf(r.gp, "# Draws the figures of vmcas analyze --report from the .dat files here: gnuplot figures.gp\n");
        fig_growth(&r);
        fig_chunk_sizes(&r);
        if (a->nevents) {
                static const int pols[] = { VC_POL_DELTA, VC_POL_IP, VC_POL_ALL };
                fig_upload_cdf(&r);
                fig_stats(&r, "fig11", "Fig. 11: upload sizes for different chunk sizes (data, no keyrings)",
                          "upload size", true, pols, pol_label, 3);
                static const int dem[] = { VC_DL_DEMAND_NOCACHE, VC_DL_DEMAND_DELTA, VC_DL_DEMAND_CAS_M,
                                           VC_DL_DEMAND_CAS_MD };
                static const char *const dem_labels[] = { "No-cache", "Delta", "CAS+Cache_M", "CAS+Cache_{M+D}" };
                fig_stats(&r, "fig12", "Fig. 12: demand-fetch download size (memory image of the latest version)",
                          "download size", false, dem, dem_labels, 4);
                static const int com[] = { VC_DL_COMPLETE_NOCACHE, VC_DL_COMPLETE_DELTA, VC_DL_COMPLETE_CAS };
                static const char *const com_labels[] = { "No-cache", "Delta", "CAS" };
                fig_stats(&r, "fig13", "Fig. 13: complete-fetch download size (memory and disk of the latest version)",
                          "download size", false, com, com_labels, 3);
        }
        close_in(&r, r.gp, "figures.gp");
        write_html(&r);
        if (r.err < 0)
                return r.err;
        return run_gnuplot(dir);
}
