/* vmcas — content-addressable storage for virtual machine state. */
#include "cli/vc_cli.h"
#include "core/vc_util.h"

#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

VcGlobal vc_global;

static const struct {
        const char *name;
        int (*fn)(int, char **);
        const char *help;
} commands[] = {
        { "init",     vc_cmd_init,     "create an empty store" },
        { "parcel",   vc_cmd_parcel,   "create or list parcels" },
        { "checkin",  vc_cmd_checkin,  "store a new version of a parcel" },
        { "checkout", vc_cmd_checkout, "write out a version of a parcel" },
        { "workspace", vc_cmd_workspace, "serve, inspect or check in a workspace (checkout --workspace)" },
        { "log",      vc_cmd_log,      "list the versions of a parcel" },
        { "stat",     vc_cmd_stat,     "storage used, per store and parcel" },
        { "verify",   vc_cmd_verify,   "check the store's structure (--full: every chunk)" },
        { "prune",    vc_cmd_prune,    "drop old versions of a parcel" },
        { "gc",       vc_cmd_gc,       "free unreferenced chunks, compact packs" },
        { "lease",    vc_cmd_lease,    "who holds a parcel's lease; break it" },
        { "repair",   vc_cmd_repair,   "rebuild index and catalog from the packs alone" },
        { "serve",    vc_cmd_serve,    "serve the store over HTTP(S) to remote clients" },
        { "user",     vc_cmd_user,     "add, list or remove the users of a server" },
        { "login",    vc_cmd_login,    "fetch your key bundle from a server" },
        { "analyze",  vc_cmd_analyze,  "what-if analysis of a trace of VM images" },
        { "synth",    vc_cmd_synth,    "write a synthetic enterprise trace" },
};

static void usage(FILE *f)
{
        fprintf(f, "Usage: vmcas [-s STORE|URL] [-q] [--cache DIR] [--cache-size SIZE] [--no-cache] COMMAND [ARGS...]\n\n"
                   "Content-addressable storage for the state of virtual machines.\n\n"
                   "Options:\n"
                   "  -s, --store PATH|URL  the store: a directory, or a server's http(s):// URL\n"
                   "                     (default: $VMCAS_STORE)\n"
                   "      --cache DIR    the host chunk cache in front of a server (default:\n"
                   "                     $VMCAS_CACHE, or ~/.cache/vmcas)\n"
                   "      --cache-size SIZE  its bound, least recently used chunks go first\n"
                   "      --no-cache     talk to the server directly\n"
                   "  -q, --quiet        no progress output\n"
                   "  -h, --help         this help\n"
                   "      --version      print the version\n\n"
                   "Commands:\n");
        for (size_t i = 0; i < VC_ARRAY_SIZE(commands); i++)
                fprintf(f, "  %-10s %s\n", commands[i].name, commands[i].help);
        fprintf(f, "\nRun 'vmcas COMMAND --help' for the options of one command.\n");
}

int vc_cli_fail(int r, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "vmcas: ");
        if (fmt) {
                va_start(ap, fmt);
                vfprintf(stderr, fmt, ap);
                va_end(ap);
                fprintf(stderr, ": ");
        }
        fprintf(stderr, "%s\n", vc_errmsg(r));
        vc_errclear();
        return 1;
}

int vc_cli_usage(const char *cmd, const char *fmt, ...)
{
        va_list ap;
        fprintf(stderr, "vmcas %s: ", cmd);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fprintf(stderr, "\nTry 'vmcas %s --help'.\n", cmd);
        return 2;
}

int main(int argc, char **argv)
{
        static const struct option opts[] = {
                { "store", required_argument, NULL, 's' },
                { "quiet", no_argument, NULL, 'q' },
                { "help", no_argument, NULL, 'h' },
                { "version", no_argument, NULL, 'V' },
                { "cache", required_argument, NULL, 'C' },
                { "cache-size", required_argument, NULL, 'Z' },
                { "no-cache", no_argument, NULL, 'N' },
                { 0 }
        };
        int r;
        vc_global.store = getenv("VMCAS_STORE");
        int c;
        while ((c = getopt_long(argc, argv, "+s:qh", opts, NULL)) != -1) {
                switch (c) {
                case 's': vc_global.store = optarg; break;
                case 'q': vc_global.quiet = true; break;
                case 'h': usage(stdout); return 0;
                case 'V': printf("vmcas 0.2\n"); return 0;
                case 'C': vc_global.cache_dir = optarg; break;
                case 'N': vc_global.no_cache = true; break;
                case 'Z':
                        if ((r = vc_parse_size(optarg, "--cache-size", &vc_global.cache_size)) < 0) {
                                fprintf(stderr, "vmcas: %s\n", vc_errmsg(r));
                                return 2;
                        }
                        break;
                default: usage(stderr); return 2;
                }
        }
        if (optind >= argc) {
                usage(stderr);
                return 2;
        }
        int idx = optind;
        const char *cmd = argv[idx];
        for (size_t i = 0; i < VC_ARRAY_SIZE(commands); i++)
                if (strcmp(cmd, commands[i].name) == 0) {
                        optind = 0; /* a fresh getopt scan for the subcommand */
                        return commands[i].fn(argc - idx, argv + idx);
                }
        fprintf(stderr, "vmcas: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
