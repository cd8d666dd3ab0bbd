/* vmcas resume and vmcas suspend: a parcel as a running QEMU VM. */
#include "backend/vc_backend.h"
#include "cli/vc_cli.h"
#include "core/vc_util.h"
#include "vm/vc_vm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>


static void help_resume(void)
{
        printf("Usage: vmcas -s STORE|URL resume NAME --workspace DIR [--fetch demand|complete|background]\n"
               "              [--accel tcg|kvm] [--foreground] [--json] [-- QEMU ARGS...]\n\n"
               "Runs parcel NAME as a QEMU virtual machine on this host. Unless DIR is already a\n"
               "workspace of NAME (a VM suspended here), its latest version is checked out into DIR\n"
               "first (the memory image whole, the disk as --fetch says; the lease is taken). The\n"
               "disk is served from DIR by nbdkit and the vmcas plugin, the RAM is DIR/memory, and\n"
               "the guest continues where it was suspended, on whichever host that was; a version\n"
               "that has no device state yet boots. resume returns once the guest runs, leaving\n"
               "QEMU and the disk server in the background; `vmcas suspend DIR` stops them.\n\n"
               "  --fetch F      demand (default): disk chunks come as the guest reads them, the\n"
               "                 working set of the last run first; complete: the whole disk before\n"
               "                 the guest starts; background: all of it, behind the guest's reads\n"
               "  --accel A      tcg (default) or kvm (falls back to TCG where KVM does not work);\n"
               "                 resume with the accelerator the VM was suspended under\n"
               "  --foreground   stay until QEMU exits, then stop the disk server\n"
               "  -- ARGS        more arguments for qemu-system-x86_64 ($VMCAS_QEMU)\n"
               "The guest's serial console goes to DIR/console.log.\n");
}

static void help_suspend(void)
{
        printf("Usage: vmcas suspend DIR [--checkin] [--release] [--json]\n\n"
               "Suspends the VM running in workspace DIR: stops the guest, saves its device state\n"
               "(the RAM stays in DIR/memory), quits QEMU and the disk server. If the state cannot\n"
               "be saved, the guest runs on and nothing changes.\n\n"
               "  --checkin   then check the workspace in as the next version: the memory image\n"
               "              (chunks the store has are not sent), the dirty disk chunks, the\n"
               "              device state and the order the guest read its disk in\n"
               "  --release   with --checkin: give up the parcel's lease, so another host can resume\n");
}

int vc_cmd_resume(int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' }, { "store", required_argument, NULL, 's' },
                { "workspace", required_argument, NULL, 'w' }, { "fetch", required_argument, NULL, 'f' },
                { "accel", required_argument, NULL, 'a' }, { "foreground", no_argument, NULL, 'F' },
                { "json", no_argument, NULL, 'j' }, { 0 }
        };
        const char *dir = NULL, *fetch = "demand", *accel = "tcg";
        bool fg = false, json = false;
        /* everything after "--" is QEMU's: split off before getopt */
        int dd = -1;
        for (int i = 1; i < argc; i++)
                if (strcmp(argv[i], "--") == 0) {
                        dd = i;
                        break;
                }
        int nopt = dd >= 0 ? dd : argc;
        for (int c; (c = getopt_long(nopt, argv, "hs:", opts, NULL)) != -1;)
                switch (c) {
                case 'h': help_resume(); return 0;
                case 's': vc_global.store = optarg; break;
                case 'w': dir = optarg; break;
                case 'f': fetch = optarg; break;
                case 'a': accel = optarg; break;
                case 'F': fg = true; break;
                case 'j': json = true; break;
                default: return vc_cli_badopt("resume", argv);
                }
        if (optind >= nopt)
                return vc_cli_usage("resume", "resume needs a parcel NAME");
        if (nopt - optind != 1)
                return vc_cli_usage("resume", "unexpected argument '%s'", argv[optind + 1]);
        const char *name = argv[optind];
        if (!dir)
                return vc_cli_usage("resume", "--workspace DIR is required");
        VcResumeOpts o = { .accel = accel, .foreground = fg, .quiet = vc_global.quiet || json,
                           .locator = vc_global.store, .cache_dir = vc_global.cache_dir };
        int fm;
        if (vc_cli_fetch_parse(fetch, &fm) < 0)
                return vc_cli_usage("resume", "--fetch is demand, complete or background, not '%s'", fetch);
        o.fetch = (VcFetch)fm;
        if (strcmp(accel, "tcg") != 0 && strcmp(accel, "kvm") != 0)
                return vc_cli_usage("resume", "--accel is tcg or kvm, not '%s'", accel);
        if (dd >= 0) {
                o.qemu_args = argv + dd + 1;
                o.nqemu_args = argc - dd - 1;
        }
        VcBackend *b = NULL;
        char wpath[4200];
        snprintf(wpath, sizeof wpath, "%s/workspace", dir);
        bool have_ws = access(wpath, F_OK) == 0;
        int r;
        if (!have_ws) {
                if (!vc_global.store || !*vc_global.store)
                        return vc_cli_usage("resume", "no store given: use -s PATH or URL, or set VMCAS_STORE");
                if (vc_global.no_cache && strstr(vc_global.store, "://"))
                        return vc_cli_usage("resume", "a VM's disk is kept in the host cache: not with --no-cache");
                VcBackendOpts bo = { .cache_dir = vc_global.cache_dir, .cache_size = vc_global.cache_size };
                if ((r = vc_backend_open(vc_global.store, &bo, &b)) < 0)
                        return vc_cli_fail(r, NULL);
        }
        VcResumeStats st;
        r = vc_vm_resume(b, name, dir, &o, &st);
        vc_backend_free(b);
        if (r < 0)
                return vc_cli_fail(r, "resume %s", name);
        if (json) {
                json_t *j = json_object();
                json_object_set_new(j, "parcel", json_string(name));
                json_object_set_new(j, "version", json_integer(st.version));
                json_object_set_new(j, "workspace", json_string(dir));
                json_object_set_new(j, "checked_out", json_boolean(st.checked_out));
                json_object_set_new(j, "resumed", json_boolean(st.resumed));
                json_object_set_new(j, "accel", json_string(st.accel));
                json_object_set_new(j, "fetch", json_string(fetch));
                json_object_set_new(j, "checkout_seconds", json_real(st.checkout_seconds));
                json_object_set_new(j, "start_seconds", json_real(st.start_seconds));
                json_object_set_new(j, "seconds", json_real(st.seconds));
                json_object_set_new(j, "received_bytes",
                                    json_integer((json_int_t)(st.co.co.traffic.recv_data + st.co.co.traffic.recv_meta)));
                json_object_set_new(j, "wire_bytes", json_integer((json_int_t)(st.co.co.traffic.wire_recv +
                                                                                st.co.co.traffic.wire_sent)));
                json_object_set_new(j, "working_set_chunks", json_integer((json_int_t)st.co.working_set));
                json_object_set_new(j, "disk_chunks", json_integer((json_int_t)st.disk_chunks));
                json_object_set_new(j, "disk_chunks_present", json_integer((json_int_t)st.disk_present));
                json_object_set_new(j, "qemu_pid", json_integer(st.qemu_pid));
                json_object_set_new(j, "nbdkit_pid", json_integer(st.nbd_pid));
                vc_cli_print_json(j);
        } else if (!fg) {
                char a[32];
                printf("%s %s version %u in %s under %s in %.2f s (%s received; disk: %" PRIu64 " of %" PRIu64
                       " chunks here); console: %s/console.log; `vmcas suspend %s` stops it.\n",
                       st.resumed ? "Resumed" : "Booted", name, st.version, dir, st.accel, st.seconds,
                       vc_fmt_size(st.co.co.traffic.recv_data + st.co.co.traffic.recv_meta, a, sizeof a),
                       st.disk_present, st.disk_chunks, dir, dir);
        }
        return 0;
}

int vc_cmd_suspend(int argc, char **argv)
{
        static const struct option opts[] = {
                { "help", no_argument, NULL, 'h' }, { "checkin", no_argument, NULL, 'c' },
                { "release", no_argument, NULL, 'r' }, { "json", no_argument, NULL, 'j' }, { 0 }
        };
        bool checkin = false, release = false, json = false;
        for (int c; (c = getopt_long(argc, argv, "h", opts, NULL)) != -1;)
                switch (c) {
                case 'h': help_suspend(); return 0;
                case 'c': checkin = true; break;
                case 'r': release = true; break;
                case 'j': json = true; break;
                default: return vc_cli_badopt("suspend", argv);
                }
        if (optind + 1 != argc)
                return vc_cli_usage("suspend", optind >= argc ? "suspend needs a workspace DIR"
                                                              : "unexpected argument '%s'", argv[argc - 1]);
        if (release && !checkin)
                return vc_cli_usage("suspend", "--release goes with --checkin (the lease is given up after it)");
        const char *dir = argv[optind];
        VcSuspendStats st;
        int r = vc_vm_suspend(dir, checkin, release, vc_global.quiet || json, &st);
        if (r < 0)
                return vc_cli_fail(r, "suspend %s", dir);
        if (json) {
                json_t *j = json_object();
                json_object_set_new(j, "workspace", json_string(dir));
                json_object_set_new(j, "device_state_bytes", json_integer((json_int_t)st.devstate_bytes));
                json_object_set_new(j, "seconds", json_real(st.seconds));
                json_object_set_new(j, "checked_in", json_boolean(st.checked_in));
                if (st.checked_in) {
                        json_object_set_new(j, "version", json_integer(st.ci.version));
                        json_object_set_new(j, "chunks", json_integer((json_int_t)st.ci.chunks));
                        json_object_set_new(j, "reused_chunks", json_integer((json_int_t)st.ci.reused_chunks));
                        json_object_set_new(j, "new_chunks", json_integer((json_int_t)st.ci.new_chunks));
                        json_object_set_new(j, "new_bytes", json_integer((json_int_t)st.ci.new_bytes));
                        json_object_set_new(j, "sent_data_bytes", json_integer((json_int_t)st.ci.traffic.sent_data));
                        json_object_set_new(j, "released", json_boolean(release));
                }
                vc_cli_print_json(j);
        } else {
                char a[32], b[32];
                printf("Suspended the VM in %s in %.2f s (device state %s).\n", dir, st.seconds,
                       vc_fmt_size(st.devstate_bytes, a, sizeof a));
                if (st.checked_in)
                        printf("Checked in as version %u: %" PRIu64 " chunks, %" PRIu64 " new (%s sent); lease %s.\n",
                               st.ci.version, st.ci.chunks, st.ci.new_chunks,
                               vc_fmt_size(st.ci.traffic.sent_data, b, sizeof b), release ? "released" : "kept");
        }
        return 0;
}
