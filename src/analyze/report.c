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

static const struct {
        const char *file, *caption;
        bool needs_events, wide;    /* wide: three panels side by side */
} figs[] = {
        { "fig5", "Fig. 5: growth of storage over the days, per policy (data, no keyrings).", false, false },
        { "fig6", "Fig. 6: growth of storage per chunk size, per policy (no compression, no keyrings).", false, true },
        { "fig7a", "Fig. 7(a): storage on the last day against chunk size, data only.", false, false },
        { "fig7b", "Fig. 7(b): storage on the last day against chunk size, data and keyrings.", false, false },
        { "fig8", "Fig. 8: keyrings as a percentage of stored data.", false, false },
        { "fig10", "Fig. 10: cumulative distribution of upload (checkin) sizes.", true, true },
        { "fig11", "Fig. 11: upload sizes against chunk size: mean, median, 95th percentile.", true, true },
        { "fig12", "Fig. 12: demand-fetch (memory image) download sizes against chunk size.", true, true },
        { "fig13", "Fig. 13: complete-fetch (memory and disk) download sizes against chunk size.", true, true },
};

static void html_escape(FILE *f, const char *s)
{
        for (; *s; s++)
                switch (*s) {
                case '<': fputs("&lt;", f); break;
                case '>': fputs("&gt;", f); break;
                case '&': fputs("&amp;", f); break;
                default: fputc(*s, f);
                }
}

static void write_html(Report *r)
{
        const VcAnalysis *a = r->a;
        FILE *f = open_in(r, "index.html");
        if (!f)
                return;
        char *tables = NULL;
        size_t len = 0;
        FILE *t = open_memstream(&tables, &len);
        if (t) {
                vc_analysis_print_tables(a, t);
                fclose(t);
        }
        fprintf(f, "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
                   "<title>vmcas analyze: report</title>\n<style>\n"
                   "body { font-family: sans-serif; margin: 2em; max-width: 1560px; }\n"
                   "pre { background: #f6f6f6; padding: 1em; overflow-x: auto; font-size: 13px; }\n"
                   "figure { margin: 2em 0; } img { width: 100%%; max-width: 900px; border: 1px solid #ddd; }\n"
                   "img.wide { max-width: 1500px; }\n"
                   "figcaption { color: #333; margin-top: .3em; }\n</style></head><body>\n"
                   "<h1>What-if analysis of a VM image trace</h1>\n"
                   "<p>Storage and network costs of the Delta, IP and ALL policies for every chunk size and "
                   "compression, as defined in <code>shared/spec/analysis.md</code> after Nath et al., USENIX ATC "
                   "2006. Figure numbers follow the study. The numbers behind every figure are in the "
                   "<code>.dat</code> files beside this page; <code>figures.gp</code> redraws them.</p>\n"
                   "<h2>Tables</h2>\n<pre>");
        html_escape(f, tables ? tables : "");
        free(tables);
        fprintf(f, "</pre>\n<h2>Figures</h2>\n");
        for (size_t i = 0; i < VC_ARRAY_SIZE(figs); i++) {
                if (figs[i].needs_events && a->nevents == 0)
                        continue;
                fprintf(f, "<figure id=\"%s\"><a href=\"%s.svg\"><img%s src=\"%s.svg\" alt=\"%s\"></a>"
                           "<figcaption>%s (<a href=\"%s.png\">PNG</a>)</figcaption></figure>\n",
                        figs[i].file, figs[i].file, figs[i].wide ? " class=\"wide\"" : "", figs[i].file,
                        figs[i].caption, figs[i].caption, figs[i].file);
        }
        if (a->nevents == 0)
                fprintf(f, "<p>No parcel has a second version: there is no upload or download to draw.</p>\n");
        fprintf(f, "</body></html>\n");
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
