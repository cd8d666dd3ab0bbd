/* vmcas analyze / vmcas synth: the command-line faces of vc_analyze. */
#include "analyze/vc_analyze.h"
#include "cli/vc_cli.h"
#include "core/vc_util.h"

#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void analyze_help(FILE *f)
{
        fprintf(f,
                "Usage: vmcas analyze TRACE [OPTIONS]\n\n"
                "What-if analysis of a history of VM images (shared/spec/analysis.md): storage per\n"
                "day, upload per checkin and download per checkout under the Delta, IP and ALL\n"
                "policies, for every chunk size and compression. TRACE is a directory holding\n"
                "manifest.tsv (columns parcel, version, timestamp, memory, disk) and the images.\n"
                "Prints the summary tables on stdout.\n\n"
                "Options:\n"
                "  -j, --json FILE          write every number as JSON (atomically)\n"
                "  -r, --report DIR         write the study's figures (SVG, PNG) and index.html\n"
                "  -c, --chunk-sizes LIST   chunk sizes, powers of two from 512 B to 64 MiB\n"
                "                           (default 4K,8K,16K,32K,64K,128K,256K,512K)\n"
                "  -z, --compress LIST      none, gzip, zstd (default none,gzip)\n"
                "  -t, --threads N          threads reading, hashing and compressing, besides\n"
                "                           the one that sums (default: number of cores)\n"
                "  -q, --quiet              no progress on stderr\n"
                "  -h, --help               this help\n");
}

int vc_cmd_analyze(int argc, char **argv)
{
        static const struct option opts[] = {
                { "json", required_argument, NULL, 'j' },
                { "report", required_argument, NULL, 'r' },
                { "chunk-sizes", required_argument, NULL, 'c' },
                { "compress", required_argument, NULL, 'z' },
                { "threads", required_argument, NULL, 't' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { 0 }
        };
        VcAnalyzeOpts o = { .quiet = vc_global.quiet };
        const char *json = NULL, *report = NULL;
        int c, r;
        while ((c = getopt_long(argc, argv, "j:r:c:z:t:qh", opts, NULL)) != -1) {
                switch (c) {
                case 'j': json = optarg; break;
                case 'r': report = optarg; break;
                case 'c':
                        if (vc_analyze_parse_chunk_sizes(optarg, &o) < 0) {
                                r = vc_cli_usage("analyze", "%s", vc_errmsg(-EINVAL));
                                vc_errclear();
                                return r;
                        }
                        break;
                case 'z':
                        if (vc_analyze_parse_comps(optarg, &o) < 0) {
                                r = vc_cli_usage("analyze", "%s", vc_errmsg(-EINVAL));
                                vc_errclear();
                                return r;
                        }
                        break;
                case 't': {
                        uint64_t n;
                        if (vc_parse_u64(optarg, "thread count", &n) < 0 || n < 1 || n > 64) {
                                vc_errclear();
                                return vc_cli_usage("analyze", "invalid thread count '%s' (1 to 64)", optarg);
                        }
                        o.threads = (unsigned)n;
                        break;
                }
                case 'q': o.quiet = true; break;
                case 'h': analyze_help(stdout); return 0;
                default: return vc_cli_badopt("analyze", argv);
                }
        }
        if (optind + 1 != argc)
                return vc_cli_usage("analyze", optind == argc ? "missing TRACE directory" : "too many arguments");
        const char *dir = argv[optind];
        VcTrace *t = NULL;
        r = vc_trace_open(dir, &t);
        if (r < 0)
                return vc_cli_fail(r, NULL);
        VcAnalysis *a = NULL;
        r = vc_analyze(t, &o, &a);
        if (r < 0) {
                vc_trace_free(t);
                return vc_cli_fail(r, "analyze %s", dir);
        }
        vc_analysis_print_tables(a, stdout);
        fflush(stdout);
        int ret = 0;
        if (json && (r = vc_analysis_write_json(a, json)) < 0)
                ret = vc_cli_fail(r, NULL);
        if (ret == 0 && report) {
                r = vc_analysis_write_report(a, report);
                if (r < 0)
                        ret = vc_cli_fail(r, "report");
                else if (!o.quiet)
                        fprintf(stderr, "report: %s/index.html\n", report);
        }
        vc_analysis_free(a);
        vc_trace_free(t);
        return ret;
}

static void synth_help(FILE *f)
{
        VcSynthOpts d;
        vc_synth_defaults(&d);
        fprintf(f,
                "Usage: vmcas synth OUTDIR [OPTIONS]\n\n"
                "Writes a synthetic trace of an enterprise's VM images for 'vmcas analyze': gold\n"
                "images of a few OS releases, parcels created from them on different days, and\n"
                "sessions a few days apart in which users install software, write and delete\n"
                "documents, download popular files, receive security patches and now and then\n"
                "rewrite large parts of their disk. The same options give the same bytes.\n"
                "OUTDIR must be missing or empty.\n\n"
                "Options:\n"
                "  --seed N            random seed (default %llu)\n"
                "  --parcels N         parcels (default %u)\n"
                "  --versions N        versions per parcel, the first included (default %u)\n"
                "  --memory-size SIZE  memory image size, any number of bytes, or 4M, 1G...\n"
                "                      (default %llu)\n"
                "  --disk-size SIZE    disk image size, likewise (default %llu)\n"
                "  --gold-images N     gold images, one per OS release (default %u)\n"
                "  --days N            days the trace spans (default %u)\n"
                "  -q, --quiet         no progress on stderr\n"
                "  -h, --help          this help\n",
                (unsigned long long)d.seed, d.parcels, d.versions, (unsigned long long)d.memory_size,
                (unsigned long long)d.disk_size, d.gold_images, d.days);
}

static int parse_count(const char *s, const char *what, uint64_t min, uint64_t max, uint64_t *ret)
{
        if (vc_parse_u64(s, what, ret) < 0 || *ret < min || *ret > max) {
                vc_errclear();
                return vc_cli_usage("synth", "invalid %s '%s' (%llu to %llu)", what, s, (unsigned long long)min,
                                    (unsigned long long)max);
        }
        return 0;
}

int vc_cmd_synth(int argc, char **argv)
{
        enum { O_SEED = 256, O_PARCELS, O_VERSIONS, O_MEM, O_DISK, O_GOLD, O_DAYS };
        static const struct option opts[] = {
                { "seed", required_argument, NULL, O_SEED },
                { "parcels", required_argument, NULL, O_PARCELS },
                { "versions", required_argument, NULL, O_VERSIONS },
                { "memory-size", required_argument, NULL, O_MEM },
                { "disk-size", required_argument, NULL, O_DISK },
                { "gold-images", required_argument, NULL, O_GOLD },
                { "days", required_argument, NULL, O_DAYS },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { 0 }
        };
        VcSynthOpts o;
        vc_synth_defaults(&o);
        o.quiet = vc_global.quiet;
        int c, r = 0;
        uint64_t v = 0;
        while ((c = getopt_long(argc, argv, "qh", opts, NULL)) != -1) {
                switch (c) {
                case O_SEED: r = parse_count(optarg, "seed", 0, UINT64_MAX, &o.seed); break;
                case O_PARCELS: r = parse_count(optarg, "parcel count", 1, 10000, &v); o.parcels = (unsigned)v; break;
                case O_VERSIONS: r = parse_count(optarg, "version count", 1, 10000, &v); o.versions = (unsigned)v; break;
                case O_GOLD: r = parse_count(optarg, "gold image count", 1, 100, &v); o.gold_images = (unsigned)v; break;
                case O_DAYS: r = parse_count(optarg, "day count", 1, 10000, &v); o.days = (unsigned)v; break;
                case O_MEM:
                case O_DISK:
                        if (vc_parse_size(optarg, c == O_MEM ? "memory size" : "disk size", &v) < 0) {
                                r = vc_cli_usage("synth", "%s", vc_errmsg(-EINVAL));
                                vc_errclear();
                                break;
                        }
                        if (v > (1ull << 40)) {
                                r = vc_cli_usage("synth", "invalid size '%s' (at most 1 TiB)", optarg);
                                break;
                        }
                        *(c == O_MEM ? &o.memory_size : &o.disk_size) = v;
                        break;
                case 'q': o.quiet = true; break;
                case 'h': synth_help(stdout); return 0;
                default: return vc_cli_badopt("synth", argv);
                }
                if (r)
                        return r;
        }
        if (optind + 1 != argc)
                return vc_cli_usage("synth", optind == argc ? "missing OUTDIR" : "too many arguments");
        r = vc_synth(argv[optind], &o);
        if (r < 0)
                return vc_cli_fail(r, "synth %s", argv[optind]);
        return 0;
}
