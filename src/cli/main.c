/* vmcas — content-addressable storage for virtual machine state. */
#include "cli/vc_cli.h"
#include "core/vc_util.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
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
        { "resume",   vc_cmd_resume,   "run a parcel as a QEMU VM, where it was suspended" },
        { "suspend",  vc_cmd_suspend,  "suspend a VM into its workspace, and check it in" },
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
                   "  -s, --store PATH|URL  the store: a directory, a server's http(s):// URL, or\n"
                   "                     rados://POOL[/PREFIX][?conf=FILE] (default: $VMCAS_STORE)\n"
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

/* Under --json: {"error": {...}} on stdout (docs/json.md, error.schema.json). */
static void json_error(const char *msg, int status, int err)
{
        json_t *e = json_pack("{s:s, s:i}", "message", msg, "exit_status", status);
        if (!e)
                return;
        const char *name = err > 0 ? strerrorname_np(err) : NULL;
        if (name)
                json_object_set_new(e, "errno", json_string(name));
        json_object_set_new(e, "command", vc_global.cmd ? json_string(vc_global.cmd) : json_null());
        json_t *o = json_pack("{s:o}", "error", e);
        char *s = o ? json_dumps(o, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (s) {
                fflush(stdout);
                puts(s);
                fflush(stdout);
        }
        free(s);
        json_decref(o);
}

void vc_cli_print_json(json_t *j)
{
        char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
        if (s)
                puts(s);
        free(s);
        json_decref(j);
}

int vc_cli_fetch_parse(const char *s, int *f)
{
        static const char *const names[] = { "demand", "complete", "background" };
        for (int i = 0; i < 3; i++)
                if (!s || strcmp(s, names[i]) == 0) {
                        *f = i;
                        return 0;
                }
        return -EINVAL;
}

int vc_cli_fail(int r, const char *fmt, ...)
{
        va_list ap;
        char ctx[1024] = "";
        if (fmt) {
                va_start(ap, fmt);
                vsnprintf(ctx, sizeof ctx, fmt, ap);
                va_end(ap);
        }
        if (vc_global.json) {
                char *msg = NULL;
                if (asprintf(&msg, "%s%s%s", ctx, fmt ? ": " : "", vc_errmsg(r)) < 0)
                        msg = NULL;
                json_error(msg ? msg : vc_errmsg(r), 1, -r);
                free(msg);
        }
        fprintf(stderr, "vmcas: %s%s%s\n", ctx, fmt ? ": " : "", vc_errmsg(r));
        vc_errclear();
        return 1;
}

int vc_cli_usage(const char *cmd, const char *fmt, ...)
{
        va_list ap;
        char msg[2048];
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        if (vc_global.json) {
                char full[2200];
                snprintf(full, sizeof full, "%s (try 'vmcas %s --help')", msg, cmd);
                json_error(full, 2, 0);
        }
        fprintf(stderr, "vmcas %s: %s\nTry 'vmcas %s --help'.\n", cmd, msg, cmd);
        return 2;
}

int vc_cli_badopt(const char *cmd, char **argv)
{
        const char *opt = optind > 0 ? argv[optind - 1] : "?";
        if (strncmp(opt, "--", 2) == 0) {
                if (optopt == 0)
                        return vc_cli_usage(cmd, "unrecognized option '%s'", opt);
                return vc_cli_usage(cmd, "option '%s' requires an argument", opt);
        }
        return vc_cli_usage(cmd, "invalid option -%c, or its argument is missing", optopt ? optopt : '?');
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
                        vc_global.cmd = commands[i].name;
                        /* --json anywhere (before a "--") asks for errors as
                         * JSON too, also those found before getopt reaches it;
                         * analyze's --json names a file, and its errors stay text */
                        if (strcmp(cmd, "analyze") != 0)
                                for (int k = idx + 1; k < argc && strcmp(argv[k], "--") != 0; k++)
                                        if (strcmp(argv[k], "--json") == 0)
                                                vc_global.json = true;
                        opterr = 0; /* vc_cli_badopt says what is wrong */
                        return commands[i].fn(argc - idx, argv + idx);
                }
        fprintf(stderr, "vmcas: unknown command '%s'\n", cmd);
        usage(stderr);
        return 2;
}
