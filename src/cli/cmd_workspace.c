/* vmcas workspace serve|status|checkin, and checkout --workspace. */
#include "backend/vc_backend.h"
#include "cli/vc_cli.h"
#include "client/vc_workspace.h"
#include "core/vc_util.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>


static void traffic_json(json_t *o, const VcTraffic *t)
{
        json_object_set_new(o, "sent_data_bytes", json_integer((json_int_t)t->sent_data));
        json_object_set_new(o, "sent_meta_bytes", json_integer((json_int_t)t->sent_meta));
        json_object_set_new(o, "received_data_bytes", json_integer((json_int_t)t->recv_data));
        json_object_set_new(o, "received_meta_bytes", json_integer((json_int_t)t->recv_meta));
        json_object_set_new(o, "wire_bytes", json_integer((json_int_t)(t->wire_sent + t->wire_recv)));
        json_object_set_new(o, "cache_hit_bytes", json_integer((json_int_t)t->cache_hit_bytes));
}

int vc_checkout_workspace(const char *name, uint32_t version, const char *dir, const char *fetch, bool no_lease,
                          bool json)
{
        VcWsCheckoutOpts o = { .version = version, .no_lease = no_lease, .quiet = vc_global.quiet || json,
                               .locator = vc_global.store, .cache_dir = vc_global.cache_dir };
        int fm;
        if (vc_cli_fetch_parse(fetch, &fm) < 0)
                return vc_cli_usage("checkout", "--fetch is demand, complete or background, not '%s'", fetch);
        o.fetch = (VcFetch)fm;
        if (!vc_global.store || !*vc_global.store)
                return vc_cli_usage("checkout", "no store given: use -s PATH or URL, or set VMCAS_STORE");
        if (vc_global.no_cache && strstr(vc_global.store, "://"))
                return vc_cli_usage("checkout", "a workspace keeps its disk in the host cache: not with --no-cache");
        VcBackendOpts bo = { .cache_dir = vc_global.cache_dir, .cache_size = vc_global.cache_size };
        VcBackend *b;
        int r = vc_backend_open(vc_global.store, &bo, &b);
        if (r < 0)
                return vc_cli_fail(r, NULL);
        VcWsCheckoutStats st;
        r = vc_ws_checkout(b, name, dir, &o, &st);
        vc_backend_free(b);
        if (r < 0)
                return vc_cli_fail(r, "checkout %s", name);
        if (json) {
                json_t *j = json_object();
                json_object_set_new(j, "parcel", json_string(name));
                json_object_set_new(j, "version", json_integer(st.co.version));
                json_object_set_new(j, "workspace", json_string(dir));
                json_object_set_new(j, "fetch", json_string(fetch ? fetch : "demand"));
                json_object_set_new(j, "chunks", json_integer((json_int_t)st.co.chunks));
                json_object_set_new(j, "zero_chunks", json_integer((json_int_t)st.co.zero_chunks));
                json_object_set_new(j, "disk_chunks_fetched", json_integer((json_int_t)st.disk_fetched));
                json_object_set_new(j, "seconds", json_real(st.co.seconds));
                traffic_json(j, &st.co.traffic);
                vc_cli_print_json(j);
        } else
                printf("Checked out %s version %u to workspace %s (disk: %s); serve it with 'vmcas workspace serve %s'.\n",
                       name, st.co.version, dir, fetch ? fetch : "demand", dir);
        return 0;
}

/* ---- workspace ------------------------------------------------------------------- */

static void help_workspace(void)
{
        printf("Usage: vmcas workspace serve DIR [--socket PATH | --port N]\n"
               "       vmcas workspace status DIR [--json]\n"
               "       vmcas workspace checkin DIR [--json] [--release]\n\n"
               "A workspace is made by 'vmcas -s STORE|URL checkout NAME --workspace DIR'. It holds\n"
               "the memory image as DIR/memory and serves the disk over NBD, its chunks fetched\n"
               "from the store (through the host cache) as they are read; writes go to an overlay.\n\n"
               "  serve    runs nbdkit with vmcas's disk plugin in the foreground and prints the\n"
               "           NBD URI (default socket: DIR/nbd.sock); qemu, nbdsh, nbdcopy attach\n"
               "  status   chunks present, dirty (written), missing (not in the host cache)\n"
               "  checkin  stores the next version: the memory image and the dirty chunks only;\n"
               "           the lease stays with this host unless --release\n");
}

/* The plugin: $VMCAS_PLUGIN, or beside (or one above) this program. */
static int find_plugin(char *buf, size_t len)
{
        const char *e = getenv("VMCAS_PLUGIN");
        if (e && *e) {
                snprintf(buf, len, "%s", e);
                return access(buf, R_OK) == 0 ? 0 : vc_errf(-ENOENT, "no plugin at $VMCAS_PLUGIN '%s'", e);
        }
        char exe[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
        if (n > 0) {
                exe[n] = 0;
                char *sl = strrchr(exe, '/');
                if (sl)
                        *sl = 0;
                const char *cands[] = { "%s/nbdkit-vmcas-plugin.so", "%s/../nbdkit-vmcas-plugin.so",
                                        "%s/../lib/vmcas/nbdkit-vmcas-plugin.so" };
                for (size_t i = 0; i < VC_ARRAY_SIZE(cands); i++) {
                        snprintf(buf, len, cands[i], exe);
                        if (access(buf, R_OK) == 0)
                                return 0;
                }
        }
        /* where make install and the Debian package put it: nbdkit's own
         * plugin directory */
        const char *fixed[] = { "/usr/lib/x86_64-linux-gnu/nbdkit/plugins/nbdkit-vmcas-plugin.so",
                                "/usr/lib/nbdkit/plugins/nbdkit-vmcas-plugin.so",
                                "/usr/local/lib/nbdkit/plugins/nbdkit-vmcas-plugin.so",
                                "/usr/lib/vmcas/nbdkit-vmcas-plugin.so" };
        for (size_t i = 0; i < VC_ARRAY_SIZE(fixed); i++) {
                snprintf(buf, len, "%s", fixed[i]);
                if (access(buf, R_OK) == 0)
                        return 0;
        }
        return vc_errf(-ENOENT, "cannot find nbdkit-vmcas-plugin.so (build it with make, or set VMCAS_PLUGIN)");
}

static volatile pid_t serve_child;

static void pass_signal(int sig)
{
        if (serve_child > 0)
                kill(serve_child, sig);
}

static int ws_serve(int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' },
                { "socket", required_argument, NULL, 'S' },
                { "port", required_argument, NULL, 'p' },
                { 0 }
        };
        const char *sock = NULL, *port = NULL;
        for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;)
                switch (c) {
                case 'h': help_workspace(); return 0;
                case 'S': sock = optarg; break;
                case 'p': port = optarg; break;
                default: return 2;
                }
        if (optind + 1 != argc)
                return vc_cli_usage("workspace", "serve needs a workspace DIR");
        if (sock && port)
                return vc_cli_usage("workspace", "--socket or --port, not both");
        const char *dir = argv[optind];
        uint64_t pn = 0;
        if (port && (vc_parse_u64(port, "port", &pn) < 0 || pn == 0 || pn > 65535))
                return vc_cli_usage("workspace", "invalid port '%s'", port);
        char plugin[PATH_MAX], sockbuf[PATH_MAX], arg[PATH_MAX + 8];
        int r = find_plugin(plugin, sizeof plugin);
        if (r < 0)
                return vc_cli_fail(r, NULL);
        snprintf(arg, sizeof arg, "%s/workspace", dir);
        if (access(arg, R_OK) < 0)
                return vc_cli_fail(vc_errf(-ENOENT, "'%s' is not a workspace (vmcas checkout --workspace makes one)",
                                           dir), NULL);
        if (!port && !sock) {
                snprintf(sockbuf, sizeof sockbuf, "%s/nbd.sock", dir);
                sock = sockbuf;
        }
        snprintf(arg, sizeof arg, "dir=%s", dir);
        const char *nbdkit = getenv("VMCAS_NBDKIT");
        if (!nbdkit || !*nbdkit)
                nbdkit = "nbdkit";
        if (sock) {
                unlink(sock);
                printf("nbd+unix:///?socket=%s\n", sock);
        } else
                printf("nbd://127.0.0.1:%s\n", port);
        fflush(stdout);
        /* nbdkit runs as our child, and we stay until it exits: it ties
         * its life to its parent's (it sets PR_SET_PDEATHSIG), and a
         * caller that starts us in the background (vmcas resume) goes
         * away. SIGTERM, SIGINT and SIGHUP are passed on to it. */
        fflush(NULL);
        pid_t child = fork();
        if (child < 0)
                return vc_cli_fail(vc_errf(-errno, "cannot fork: %s", strerror(errno)), NULL);
        if (child == 0) {
                if (sock)
                        execlp(nbdkit, nbdkit, "-f", "-U", sock, plugin, arg, (char *)NULL);
                else
                        execlp(nbdkit, nbdkit, "-f", "-i", "127.0.0.1", "-p", port, plugin, arg, (char *)NULL);
                fprintf(stderr, "vmcas: cannot run %s: %s\n", nbdkit, strerror(errno));
                _exit(127);
        }
        serve_child = child;
        struct sigaction sa = { .sa_handler = pass_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGTERM, &sa, NULL);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGHUP, &sa, NULL);
        int status;
        while (waitpid(child, &status, 0) < 0)
                if (errno != EINTR)
                        return vc_cli_fail(vc_errf(-errno, "waiting for nbdkit: %s", strerror(errno)), NULL);
        if (WIFEXITED(status))
                return WEXITSTATUS(status);
        return 1;
}

static int ws_status(int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' }, { "json", no_argument, NULL, 'j' }, { 0 }
        };
        bool json = false;
        for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;)
                switch (c) {
                case 'h': help_workspace(); return 0;
                case 'j': json = true; break;
                default: return 2;
                }
        if (optind + 1 != argc)
                return vc_cli_usage("workspace", "status needs a workspace DIR");
        VcWsStatus st;
        int r = vc_ws_status(argv[optind], &st);
        if (r < 0)
                return vc_cli_fail(r, "workspace %s", argv[optind]);
        if (json) {
                json_t *j = json_object();
                json_object_set_new(j, "parcel", json_string(st.info.parcel));
                json_object_set_new(j, "version", json_integer(st.info.version));
                json_object_set_new(j, "store", json_string(st.info.locator));
                json_object_set_new(j, "chunk_size", json_integer(st.info.chunk_size));
                json_object_set_new(j, "disk_size", json_integer((json_int_t)st.info.disk_size));
                json_object_set_new(j, "chunks", json_integer((json_int_t)st.chunks));
                json_object_set_new(j, "zero_chunks", json_integer((json_int_t)st.zero));
                json_object_set_new(j, "present_chunks", json_integer((json_int_t)st.present));
                json_object_set_new(j, "dirty_chunks", json_integer((json_int_t)st.dirty));
                json_object_set_new(j, "missing_chunks", json_integer((json_int_t)st.missing));
                json_object_set_new(j, "bytes_to_send", json_integer((json_int_t)st.dirty_bytes));
                json_object_set_new(j, "served", json_boolean(st.served));
                json_object_set_new(j, "read_order_chunks", json_integer((json_int_t)st.read_order));
                json_object_set_new(j, "working_set_chunks", json_integer((json_int_t)st.working_set));
                vc_cli_print_json(j);
        } else {
                char a[32];
                printf("workspace %s: parcel %s version %u from %s%s\n"
                       "disk: %" PRIu64 " chunks: %" PRIu64 " present, %" PRIu64 " dirty, %" PRIu64
                       " missing, %" PRIu64 " zero; at most %s to send\n",
                       argv[optind], st.info.parcel, st.info.version, st.info.locator, st.served ? " (served)" : "",
                       st.chunks, st.present, st.dirty, st.missing, st.zero, vc_fmt_size(st.dirty_bytes, a, sizeof a));
                if (st.working_set)
                        printf("working set: %" PRIu64 " chunks, fetched first while the disk is served\n",
                               st.working_set);
        }
        return 0;
}

static int ws_checkin(int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' }, { "json", no_argument, NULL, 'j' },
                { "release", no_argument, NULL, 'r' }, { 0 }
        };
        bool json = false, release = false;
        for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;)
                switch (c) {
                case 'h': help_workspace(); return 0;
                case 'j': json = true; break;
                case 'r': release = true; break;
                default: return 2;
                }
        if (optind + 1 != argc)
                return vc_cli_usage("workspace", "checkin needs a workspace DIR");
        VcCheckinStats st;
        int r = vc_ws_checkin(argv[optind], release, vc_global.quiet || json, &st);
        if (r < 0)
                return vc_cli_fail(r, "workspace checkin %s", argv[optind]);
        if (json) {
                json_t *o = json_object();
                json_object_set_new(o, "version", json_integer(st.version));
                json_object_set_new(o, "chunks", json_integer((json_int_t)st.chunks));
                json_object_set_new(o, "zero_chunks", json_integer((json_int_t)st.zero_chunks));
                json_object_set_new(o, "reused_chunks", json_integer((json_int_t)st.reused_chunks));
                json_object_set_new(o, "new_chunks", json_integer((json_int_t)st.new_chunks));
                json_object_set_new(o, "new_bytes", json_integer((json_int_t)st.new_bytes));
                json_object_set_new(o, "meta_bytes", json_integer((json_int_t)st.meta_bytes));
                json_object_set_new(o, "bytes_in", json_integer((json_int_t)st.bytes_in));
                json_object_set_new(o, "seconds", json_real(st.seconds));
                json_object_set_new(o, "released", json_boolean(release));
                traffic_json(o, &st.traffic);
                vc_cli_print_json(o);
        } else {
                char a[32];
                printf("workspace %s: version %u checked in: %" PRIu64 " new chunks (%s) in %.2f s; lease %s\n",
                       argv[optind], st.version, st.new_chunks, vc_fmt_size(st.new_bytes, a, sizeof a), st.seconds,
                       release ? "released" : "kept");
        }
        return 0;
}

int vc_cmd_workspace(int argc, char **argv)
{
        if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                help_workspace();
                return argc < 2 ? 2 : 0;
        }
        const char *sub = argv[1];
        optind = 0;
        if (strcmp(sub, "serve") == 0)
                return ws_serve(argc - 1, argv + 1);
        if (strcmp(sub, "status") == 0)
                return ws_status(argc - 1, argv + 1);
        if (strcmp(sub, "checkin") == 0)
                return ws_checkin(argc - 1, argv + 1);
        return vc_cli_usage("workspace", "unknown subcommand '%s' (serve, status, checkin)", sub);
}
