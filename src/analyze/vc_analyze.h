/* vc_analyze — the what-if analysis of shared/spec/analysis.md, and a
 * generator of synthetic enterprise traces to run it on.
 *
 * A trace is a directory with manifest.tsv and the image files it names
 * (spec section 1). vc_trace_open() parses and checks the manifest;
 * vc_analyze() reads every image once and computes, for every chunk size
 * and compression asked for, the storage per day, the upload of every
 * checkin and the download of every checkout under the spec's policies.
 * The result can be written as the spec's JSON, printed as tables, or drawn
 * as the study's figures.
 *
 * All functions return 0 or -errno and leave a message naming the file and
 * line with vc_errf(). Free functions accept NULL.
 */
#ifndef VC_ANALYZE_H
#define VC_ANALYZE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "core/vc_compress.h"

typedef struct VcTrace VcTrace;
typedef struct VcAnalysis VcAnalysis;

/* Compressions, in the order the output lists them: core's VcComp, i.e.
 * none, gzip (zlib deflate level 6, gzip wrapper, spec section 2) and our
 * extension zstd (ZSTD_compressCCtx level 3). */
#define VC_COMP_MAX 3

/* Chunk sizes accepted: powers of two in [VC_AN_CHUNK_MIN, VC_AN_CHUNK_MAX], at
 * most VC_AN_CHUNK_SIZES_MAX of them (hashes of larger sizes are combined from
 * the smallest one, so every size must be a power-of-two multiple of it). */
#define VC_AN_CHUNK_MIN       512u
#define VC_AN_CHUNK_MAX       (64u << 20)
#define VC_AN_CHUNK_SIZES_MAX 18

/* Days a trace may span (storage has a row per day). */
#define VC_TRACE_MAX_DAYS  100000u

/* Parses and checks TRACE/manifest.tsv and stats every image it names.
 * Nothing is read from the images yet. */
int vc_trace_open(const char *dir, VcTrace **ret);
void vc_trace_free(VcTrace *t);
size_t vc_trace_nparcels(const VcTrace *t);
size_t vc_trace_nversions(const VcTrace *t);
uint64_t vc_trace_bytes(const VcTrace *t);   /* all image bytes */
uint32_t vc_trace_max_day(const VcTrace *t);

typedef struct VcAnalyzeOpts {
        uint32_t chunk_sizes[VC_AN_CHUNK_SIZES_MAX]; /* ascending */
        size_t n_chunk_sizes;                     /* 0: 4 KiB .. 512 KiB */
        bool comp[VC_COMP_MAX];                   /* all false: none and gzip */
        unsigned threads;                         /* 0: number of cores */
        bool quiet;                               /* no progress on stderr */
} VcAnalyzeOpts;

/* "4K,8K,64K" -> o->chunk_sizes (sorted, duplicates dropped). */
int vc_analyze_parse_chunk_sizes(const char *s, VcAnalyzeOpts *o);
/* "none,gzip,zstd" -> o->comp. */
int vc_analyze_parse_comps(const char *s, VcAnalyzeOpts *o);

/* Runs the analysis. Memory: see docs/analyze.md (about 50 bytes per
 * distinct chunk, 20 per distinct chunk of each parcel, 4 per chunk position
 * of each parcel's latest version, for every chunk size). */
int vc_analyze(const VcTrace *t, const VcAnalyzeOpts *o, VcAnalysis **ret);
void vc_analysis_free(VcAnalysis *a);

/* Writes the JSON of spec section 6 to path, atomically (temp + rename):
 * on failure an existing file at path is left as it was. */
int vc_analysis_write_json(const VcAnalysis *a, const char *path);
/* Prints the summary tables (storage on the last day, upload and download
 * mean / median / 95th percentile). */
void vc_analysis_print_tables(const VcAnalysis *a, FILE *f);
/* Writes the study's figures (SVG and PNG, drawn by gnuplot), their data
 * and index.html into dir (created if missing). */
int vc_analysis_write_report(const VcAnalysis *a, const char *dir);

typedef struct VcSynthOpts {
        uint64_t seed;
        unsigned parcels;
        unsigned versions;       /* per parcel, version 1 included */
        uint64_t memory_size;
        uint64_t disk_size;
        unsigned gold_images;
        unsigned days;           /* span of the parcels' creation dates */
        bool quiet;
} VcSynthOpts;

/* Defaults for the demo: small and fast. */
void vc_synth_defaults(VcSynthOpts *o);
/* Writes a trace into outdir (created; must be empty or missing).
 * Deterministic: the same options give the same bytes. */
int vc_synth(const char *outdir, const VcSynthOpts *o);

#endif
