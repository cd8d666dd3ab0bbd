/* The store and parcel commands of vmcas. */
#include "backend/vc_backend.h"
#include "cli/vc_cli.h"
#include "client/vc_bundle.h"
#include "client/vc_client.h"
#include "client/vc_keystore.h"
#include "core/vc_limits.h"
#include "core/vc_util.h"
#include "repo/vc_repo.h"
#include "store/vc_store.h"
#include "vm/vc_vm.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <limits.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define OPT_HELP { "help", no_argument, NULL, 'h' }
#define OPT_STORE { "store", required_argument, NULL, 's' }


static const char *sz(uint64_t n, char *buf)
{
        return vc_fmt_size(n, buf, 32);
}

/* Opens the back end of -s (a path or a URL) with the global options. */
static int open_backend(const char *cmd, VcBackend **b)
{
        if (!vc_global.store || !*vc_global.store)
                return vc_cli_usage(cmd, "no store given: use -s PATH or URL, or set VMCAS_STORE");
        VcBackendOpts o = { .cache_dir = vc_global.cache_dir, .cache_size = vc_global.cache_size,
                            .no_cache = vc_global.no_cache };
        int r = vc_backend_open(vc_global.store, &o, b);
        if (r < 0)
                return vc_cli_fail(r, NULL);
        return 0;
}

/* Commands that repair a store directory: opened even if its index is
 * damaged. */
static int open_local_repair(const char *cmd, VcStore **s)
{
        if (!vc_global.store || !*vc_global.store)
                return vc_cli_usage(cmd, "no store given: use -s PATH or set VMCAS_STORE");
        if (strncmp(vc_global.store, "rados://", 8) == 0)
                return vc_cli_usage(cmd, "this works on a store directory only; on a RADOS store (%s) run 'vmcas "
                                    "repair', which drops index entries whose bytes are gone", vc_global.store);
        if (strstr(vc_global.store, "://"))
                return vc_cli_usage(cmd, "this works on a store directory only, not on a server (%s)", vc_global.store);
        int r = vc_store_open_repair(vc_global.store, s);
        if (r < 0)
                return vc_cli_fail(r, NULL);
        return 0;
}


/* Over a server, the user's key bundle follows new keys (and keys this
 * host has that the bundle lacks): sealed under $VMCAS_PASSPHRASE. A
 * failure is a warning: what was stored stays stored. */
static void sync_bundle(VcBackend *b, bool always)
{
        if (vc_backend_local_store(b) || vc_backend_is_rados(b) || (!always && !getenv("VMCAS_PASSPHRASE")))
                return;
        int r = vc_bundle_sync(b, vc_backend_uuid(b));
        if (r < 0) {
                fprintf(stderr, "vmcas: warning: the key bundle on the server was not updated: %s\n", vc_errmsg(r));
                vc_errclear();
        }
}

static void traffic_json(json_t *o, const VcTraffic *t)
{
        json_object_set_new(o, "sent_data_bytes", json_integer((json_int_t)t->sent_data));
        json_object_set_new(o, "sent_meta_bytes", json_integer((json_int_t)t->sent_meta));
        json_object_set_new(o, "received_data_bytes", json_integer((json_int_t)t->recv_data));
        json_object_set_new(o, "received_meta_bytes", json_integer((json_int_t)t->recv_meta));
        json_object_set_new(o, "wire_bytes", json_integer((json_int_t)(t->wire_sent + t->wire_recv)));
        json_object_set_new(o, "cache_hit_bytes", json_integer((json_int_t)t->cache_hit_bytes));
}

/* Shared option loop: handles -h and -s; returns the option or -1. */
#define GETOPT_LOOP(argc, argv, short_, opts, helpfn)                                   \
        for (int _c; (_c = getopt_long(argc, argv, "hs:" short_, opts, NULL)) != -1;) \
                switch (_c) {                                                           \
                case 'h': helpfn(); return 0;                                           \
                case 's': vc_global.store = optarg; break;                              \
                case '?': return vc_cli_badopt(vc_global.cmd, argv);

#define GETOPT_END }

/* ---- init ------------------------------------------------------------------------- */

static void help_init(void)
{
        printf("Usage: vmcas -s STORE init [--json]\n\nCreates an empty store at STORE (a new or empty directory), and says its\n"
               "store id and where the keys of its parcels will go.\n\n"
               "  --json   {\"store\", \"store_id\", \"keys_dir\"} (docs/json.md)\n");
}

int vc_cmd_init(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "json", no_argument, NULL, 'j' }, { 0 } };
        bool json = false;
        GETOPT_LOOP(argc, argv, "", opts, help_init)
        case 'j': json = true; break;
        GETOPT_END
        if (optind != argc)
                return vc_cli_usage("init", "unexpected argument '%s'", argv[optind]);
        if (!vc_global.store)
                return vc_cli_usage("init", "no store given: use -s PATH or set VMCAS_STORE");
        if (strncmp(vc_global.store, "rados://", 8) == 0) {
                uint8_t uuid[16];
                char where[512], hex[33], keys[4096];
                int r = vc_backend_rados_init(vc_global.store, uuid, where, sizeof where);
                if (r < 0)
                        return vc_cli_fail(r, "init");
                vc_hex(uuid, VC_UUID_LEN, hex);
                vc_keystore_dir(uuid, keys, sizeof keys);
                if (json)
                        vc_cli_print_json(json_pack("{s:s, s:s, s:s}", "store", where, "store_id", hex, "keys_dir", keys));
                else
                        printf("Initialized an empty vmcas store in %s\nstore id %s; keys of its parcels go to %s\n",
                               where, hex, keys);
                return 0;
        }
        if (strstr(vc_global.store, "://"))
                return vc_cli_usage("init", "init makes a store directory or a RADOS store; a server's store is made "
                                    "on its host");
        int r = vc_store_create(vc_global.store);
        if (r < 0)
                return vc_cli_fail(r, "init");
        VcStore *s;
        if ((r = vc_store_open(vc_global.store, &s)) < 0)
                return vc_cli_fail(r, "init");
        char hex[33], keys[4096];
        vc_hex(vc_store_uuid(s), VC_UUID_LEN, hex);
        vc_keystore_dir(vc_store_uuid(s), keys, sizeof keys);
        if (json)
                vc_cli_print_json(json_pack("{s:s, s:s, s:s}", "store", vc_global.store, "store_id", hex, "keys_dir", keys));
        else
                printf("Initialized an empty vmcas store in %s\nstore id %s; keys of its parcels go to %s\n",
                       vc_global.store, hex, keys);
        vc_store_free(s);
        return 0;
}

/* ---- parcel ----------------------------------------------------------------------- */

static void help_parcel(void)
{
        printf("Usage: vmcas -s STORE parcel create NAME --policy delta|ip|all|group:GROUP\n"
               "              [--chunk-size 4K..512K] [--compress none|gzip|zstd]\n"
               "              (--memory-size SIZE --disk-size SIZE | --from PARCEL[@VERSION]) [--json]\n"
               "       vmcas -s STORE parcel create NAME --policy P (--from-qemu KERNEL,INITRD | --from-disk IMAGE)\n"
               "              --memory-size SIZE [--disk-size SIZE] [--append CMDLINE] ...\n"
               "       vmcas -s STORE parcel list [--json]\n\n"
               "create makes a parcel. With sizes it has no version yet and its first checkin is\n"
               "version 1; with --from, version 1 is a copy of another parcel's version (a gold\n"
               "image). The parcel's secret (and the group's, for group:GROUP) is created in the\n"
               "key store on this machine ($VMCAS_KEYS, or ~/.config/vmcas/keys).\n\n"
               "  --policy P        delta: only the same position in the previous version is shared;\n"
               "                    ip: anything within the parcel; group:G: anything within the group G;\n"
               "                    all: anything in the store (convergent encryption)\n"
               "  --chunk-size S    a power of two from 4K to 512K (default: the source's, or 128K)\n"
               "  --compress C      per chunk, kept only when smaller (default: zstd)\n"
               "  --from-qemu K,I   a virtual machine whose first resume boots kernel K and initramfs I\n"
               "                    (both kept in the parcel) with an empty disk of --disk-size\n"
               "  --from-disk IMG   a virtual machine whose first resume boots the raw disk image IMG\n"
               "                    (--disk-size defaults to its size)\n"
               "  --append CMDLINE  the kernel command line of --from-qemu (default: console=ttyS0)\n"
               "A VM's memory size is its RAM: a whole number of MiB. `vmcas resume` runs it.\n");
}

static void parcel_json(json_t *o, const VcParcel *p)
{
        json_object_set_new(o, "name", json_string(p->name));
        json_object_set_new(o, "policy", json_string(vc_policy_name(p->policy)));
        if (p->policy == VC_POLICY_GROUP)
                json_object_set_new(o, "group", json_string(p->group));
        json_object_set_new(o, "chunk_size", json_integer(p->chunk_size));
        json_object_set_new(o, "compression", json_string(vc_comp_name(p->comp)));
        json_object_set_new(o, "memory_size", json_integer((json_int_t)p->mem_size));
        json_object_set_new(o, "disk_size", json_integer((json_int_t)p->disk_size));
        json_object_set_new(o, "latest_version", json_integer(p->latest));
        json_object_set_new(o, "created", json_integer(p->created));
}

static json_t *checkin_json(const VcCheckinStats *st)
{
        json_t *o = json_object();
        json_object_set_new(o, "version", json_integer(st->version));
        json_object_set_new(o, "chunks", json_integer((json_int_t)st->chunks));
        json_object_set_new(o, "zero_chunks", json_integer((json_int_t)st->zero_chunks));
        json_object_set_new(o, "reused_chunks", json_integer((json_int_t)st->reused_chunks));
        json_object_set_new(o, "new_chunks", json_integer((json_int_t)st->new_chunks));
        json_object_set_new(o, "new_bytes", json_integer((json_int_t)st->new_bytes));
        json_object_set_new(o, "meta_bytes", json_integer((json_int_t)st->meta_bytes));
        json_object_set_new(o, "bytes_in", json_integer((json_int_t)st->bytes_in));
        json_object_set_new(o, "seconds", json_real(st->seconds));
        traffic_json(o, &st->traffic);
        return o;
}

static void checkin_text(const char *name, const VcCheckinStats *st)
{
        char a[32], b[32], c[32], d[32];
        double rate = st->seconds > 0 ? (double)st->bytes_in / st->seconds : 0;
        printf("%s version %u: %" PRIu64 " chunks (%" PRIu64 " zero, %" PRIu64 " unchanged, %" PRIu64
               " new), %s new data, %s metadata; read %s at %s/s\n",
               name, st->version, st->chunks, st->zero_chunks, st->reused_chunks, st->new_chunks,
               sz(st->new_bytes, a), sz(st->meta_bytes, b), sz(st->bytes_in, c), sz((uint64_t)rate, d));
}

static int parcel_create(int argc, char **argv)
{
        static const struct option opts[] = {
                OPT_HELP, OPT_STORE,
                { "policy", required_argument, NULL, 'p' },
                { "chunk-size", required_argument, NULL, 'c' },
                { "compress", required_argument, NULL, 'z' },
                { "memory-size", required_argument, NULL, 'm' },
                { "disk-size", required_argument, NULL, 'd' },
                { "from", required_argument, NULL, 'f' },
                { "json", no_argument, NULL, 'j' },
                { "owner", required_argument, NULL, 'o' },
                { "from-qemu", required_argument, NULL, 'Q' },
                { "from-disk", required_argument, NULL, 'D' },
                { "append", required_argument, NULL, 'A' },
                { 0 }
        };
        VcCreateOpts o = { .comp = VC_COMP_ZSTD };
        const char *policy = NULL, *from = NULL, *from_qemu = NULL, *from_disk = NULL, *append = NULL;
        bool json = false, have_mem = false, have_disk = false;
        uint64_t v;
        int r;
        GETOPT_LOOP(argc, argv, "", opts, help_parcel)
        case 'p': policy = optarg; break;
        case 'c':
                if ((r = vc_parse_size(optarg, "chunk size", &v)) < 0)
                        return vc_cli_usage("parcel", "%s", vc_errmsg(r));
                if (v < VC_CHUNK_MIN || v > VC_CHUNK_MAX || (v & (v - 1)))
                        return vc_cli_usage("parcel", "invalid chunk size '%s' (a power of two from 4K to 512K)", optarg);
                o.chunk_size = (uint32_t)v;
                break;
        case 'z':
                if ((r = vc_comp_parse(optarg, &o.comp)) < 0)
                        return vc_cli_usage("parcel", "%s", vc_errmsg(r));
                break;
        case 'm':
                if ((r = vc_parse_size(optarg, "memory size", &o.mem_size)) < 0)
                        return vc_cli_usage("parcel", "%s", vc_errmsg(r));
                have_mem = true;
                break;
        case 'd':
                if ((r = vc_parse_size(optarg, "disk size", &o.disk_size)) < 0)
                        return vc_cli_usage("parcel", "%s", vc_errmsg(r));
                have_disk = true;
                break;
        case 'f': from = optarg; break;
        case 'j': json = true; break;
        case 'o': o.owner = optarg; break;
        case 'Q': from_qemu = optarg; break;
        case 'D': from_disk = optarg; break;
        case 'A': append = optarg; break;
        GETOPT_END
        if (optind + 1 != argc)
                return vc_cli_usage("parcel", optind >= argc ? "parcel create needs a NAME"
                                                             : "unexpected argument '%s'", argv[optind + 1 < argc ? optind + 1 : 0]);
        o.name = argv[optind];
        if (!policy)
                return vc_cli_usage("parcel", "--policy is required (delta, ip, all or group:NAME)");
        if ((r = vc_policy_parse(policy, &o.policy, o.group, sizeof o.group)) < 0)
                return vc_cli_usage("parcel", "%s", vc_errmsg(r));
        bool vm = from_qemu || from_disk;
        if (from_qemu && from_disk)
                return vc_cli_usage("parcel", "give --from-qemu or --from-disk, not both");
        if (vm && from)
                return vc_cli_usage("parcel", "--from copies a parcel's version; it does not go with --from-qemu or "
                                    "--from-disk");
        if (append && !from_qemu)
                return vc_cli_usage("parcel", "--append is the kernel command line of --from-qemu");
        _vc_cleanup_(vc_freep) uint8_t *machine = NULL;
        char kernel[PATH_MAX] = "", *initrd = NULL;
        if (vm) {
                if (!have_mem)
                        return vc_cli_usage("parcel", "a VM needs --memory-size (its RAM)");
                if (o.mem_size % (1u << 20) || o.mem_size < (16u << 20))
                        return vc_cli_usage("parcel", "a VM's --memory-size is a whole number of MiB, at least 16M");
                if (from_disk) {
                        struct stat dst;
                        if (stat(from_disk, &dst) < 0 || !S_ISREG(dst.st_mode))
                                return vc_cli_fail(vc_errf(-ENOENT, "the disk image '%s' %s", from_disk,
                                                           errno == ENOENT ? "does not exist" : "is not a regular file"),
                                                   "parcel create %s", argv[optind]);
                        if (!have_disk)
                                o.disk_size = (uint64_t)dst.st_size;
                        have_disk = true;
                        o.disk_image = from_disk;
                } else if (!have_disk)
                        return vc_cli_usage("parcel", "--from-qemu needs --disk-size (its empty disk)");
                if (from_qemu) {
                        const char *comma = strchr(from_qemu, ',');
                        size_t kn = comma ? (size_t)(comma - from_qemu) : strlen(from_qemu);
                        if (!comma || kn == 0 || !comma[1] || kn >= sizeof kernel)
                                return vc_cli_usage("parcel", "--from-qemu takes KERNEL,INITRD");
                        memcpy(kernel, from_qemu, kn);
                        kernel[kn] = 0;
                        initrd = (char *)comma + 1;
                }
                size_t mlen = 0;
                if ((r = vc_vm_machine_new(from_qemu ? kernel : NULL, initrd, append ? append : "console=ttyS0",
                                           &machine, &mlen)) < 0)
                        return vc_cli_fail(r, "parcel create %s", argv[optind]);
                o.machine = machine;
                o.machine_len = mlen;
        }
        if (from && (have_mem || have_disk))
                return vc_cli_usage("parcel", "give either --from or --memory-size and --disk-size, not both");
        if (!from && !(have_mem && have_disk))
                return vc_cli_usage("parcel", "give --memory-size and --disk-size, or --from PARCEL[@VERSION]");
        if (!from) {
                /* refused here, before the store is opened: sizes beyond
                 * the limits of core/vc_limits.h would size allocations */
                uint32_t cs = o.chunk_size ? o.chunk_size : VC_CHUNK_DEFAULT;
                if ((r = vc_image_size_check("memory size", o.mem_size, cs)) < 0 ||
                    (r = vc_image_size_check("disk size", o.disk_size, cs)) < 0)
                        return vc_cli_usage("parcel", "%s", vc_errmsg(r));
        }
        char fromname[VC_NAME_MAX + 1];
        if (from) {
                const char *at = strchr(from, '@');
                size_t n = at ? (size_t)(at - from) : strlen(from);
                if (n == 0 || n > VC_NAME_MAX)
                        return vc_cli_usage("parcel", "invalid --from '%s'", from);
                memcpy(fromname, from, n);
                fromname[n] = 0;
                if (at) {
                        if ((r = vc_parse_u64(at + 1, "version", &v)) < 0 || v == 0 || v > UINT32_MAX)
                                return vc_cli_usage("parcel", "invalid version in --from '%s'", from);
                        o.from_version = (uint32_t)v;
                }
                o.from = fromname;
        }
        VcBackend *s;
        if ((r = open_backend("parcel", &s)) != 0)
                return r;
        VcCheckinStats st;
        r = vc_parcel_create(s, &o, vc_global.quiet || json, &st);
        if (r < 0) {
                vc_backend_free(s);
                return vc_cli_fail(r, "parcel create %s", o.name);
        }
        if (json) {
                json_t *j = from || vm ? checkin_json(&st) : json_object();
                json_object_set_new(j, "parcel", json_string(o.name));
                vc_cli_print_json(j);
        } else if (from) {
                printf("Created parcel %s (%s) from %s.\n", o.name, policy, from);
                checkin_text(o.name, &st);
        } else if (vm) {
                printf("Created parcel %s (%s): a VM that boots %s; `vmcas resume %s --workspace DIR` runs it.\n",
                       o.name, policy, from_qemu ? kernel : from_disk, o.name);
                checkin_text(o.name, &st);
        } else
                printf("Created parcel %s (%s); its first checkin will be version 1.\n", o.name, policy);
        sync_bundle(s, true);
        vc_backend_free(s);
        return 0;
}

static int parcel_list(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "json", no_argument, NULL, 'j' }, { 0 } };
        bool json = false;
        GETOPT_LOOP(argc, argv, "", opts, help_parcel)
        case 'j': json = true; break;
        GETOPT_END
        VcBackend *s;
        int r = open_backend("parcel", &s);
        if (r != 0)
                return r;
        VcParcelInfo *pi = NULL;
        size_t n = 0;
        r = vc_cat_parcels(s, &pi, &n);
        VcParcel *ps = r >= 0 ? calloc(n + 1, sizeof *ps) : NULL;
        if (r >= 0 && !ps)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < n; i++) {
                /* shown as the store has them: listing needs no key */
                r = vc_parcel_unpack(pi[i].record, pi[i].record_len, pi[i].name, &ps[i]);
                ps[i].latest = pi[i].latest;
        }
        free(pi);
        if (r < 0) {
                free(ps);
                vc_backend_free(s);
                return vc_cli_fail(r, "parcel list");
        }
        json_t *arr = json_array();
        if (!json)
                printf("%-20s %-12s %6s %-5s %10s %10s %7s\n", "PARCEL", "POLICY", "CHUNK", "COMP", "MEMORY", "DISK",
                       "LATEST");
        for (size_t i = 0; i < n; i++) {
                char pol[80], a[32], b[32], c[32];
                snprintf(pol, sizeof pol, "%s%s%s", vc_policy_name(ps[i].policy),
                         ps[i].policy == VC_POLICY_GROUP ? ":" : "", ps[i].policy == VC_POLICY_GROUP ? ps[i].group : "");
                if (json) {
                        json_t *o = json_object();
                        parcel_json(o, &ps[i]);
                        json_array_append_new(arr, o);
                } else
                        printf("%-20s %-12s %6s %-5s %10s %10s %7u\n", ps[i].name, pol, sz(ps[i].chunk_size, c),
                               vc_comp_name(ps[i].comp), sz(ps[i].mem_size, a), sz(ps[i].disk_size, b), ps[i].latest);
        }
        if (json)
                vc_cli_print_json(arr);
        else
                json_decref(arr);
        free(ps);
        vc_backend_free(s);
        return 0;
}

int vc_cmd_parcel(int argc, char **argv)
{
        if (argc < 2)
                return vc_cli_usage("parcel", "missing subcommand (create or list)");
        if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
                help_parcel();
                return 0;
        }
        if (strcmp(argv[1], "create") == 0)
                return parcel_create(argc - 1, argv + 1);
        if (strcmp(argv[1], "list") == 0)
                return parcel_list(argc - 1, argv + 1);
        return vc_cli_usage("parcel", "unknown subcommand '%s' (expected create or list)", argv[1]);
}

/* ---- checkin / checkout ----------------------------------------------------------------- */

static void help_checkin(void)
{
        printf("Usage: vmcas -s STORE|URL checkin NAME --memory FILE --disk FILE [--keep-lease]\n"
               "                                  [--compress zstd:LEVEL] [--json]\n\n"
               "Stores the two images as the next version of parcel NAME. Only chunks the store\n"
               "does not hold yet (within the parcel's policy) are sent and written.\n\n"
               "The parcel must be leased to this host (a checkout took it; the host's name is\n"
               "$VMCAS_HOST or the system's) or to nobody. A checkin from a host whose lease was\n"
               "broken is refused. After the commit the lease is given up, unless --keep-lease.\n\n"
               "  --compress zstd:LEVEL  the zstd level (1 to 19, default 3) of the chunks this\n"
               "           checkin stores new, for a parcel compressed with zstd. The level is\n"
               "           stored nowhere (reading needs none) and unchanged chunks keep theirs;\n"
               "           under policy all, content sealed at two levels is stored twice.\n"
               "  --json   the counts, and the bytes moved: sent_data_bytes, sent_meta_bytes,\n"
               "           received_data_bytes, received_meta_bytes, wire_bytes\n");
}

int vc_cmd_checkin(int argc, char **argv)
{
        static const struct option opts[] = {
                OPT_HELP, OPT_STORE,
                { "memory", required_argument, NULL, 'm' },
                { "disk", required_argument, NULL, 'd' },
                { "json", no_argument, NULL, 'j' },
                { "keep-lease", no_argument, NULL, 'k' },
                { "compress", required_argument, NULL, 'z' },
                { 0 }
        };
        const char *mem = NULL, *disk = NULL;
        bool json = false;
        VcCheckinOpts co = { 0 };
        GETOPT_LOOP(argc, argv, "", opts, help_checkin)
        case 'm': mem = optarg; break;
        case 'd': disk = optarg; break;
        case 'j': json = true; break;
        case 'k': co.keep_lease = true; break;
        case 'z':
                if (vc_zstd_level_parse(optarg, &co.zstd_level) < 0)
                        return vc_cli_usage("checkin", "%s", vc_errmsg(-EINVAL));
                break;
        GETOPT_END
        if (optind + 1 != argc)
                return vc_cli_usage("checkin", optind >= argc ? "checkin needs a parcel NAME" : "unexpected argument");
        if (!mem || !disk)
                return vc_cli_usage("checkin", "--memory FILE and --disk FILE are required");
        VcBackend *s;
        int r = open_backend("checkin", &s);
        if (r != 0)
                return r;
        VcCheckinStats st;
        co.quiet = vc_global.quiet || json;
        r = vc_checkin(s, argv[optind], mem, disk, &co, &st);
        if (r >= 0)
                sync_bundle(s, false);
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "checkin %s", argv[optind]);
        if (json)
                vc_cli_print_json(checkin_json(&st));
        else
                checkin_text(argv[optind], &st);
        return 0;
}

static void help_checkout(void)
{
        printf("Usage: vmcas -s STORE|URL checkout NAME [--version N] --memory FILE --disk FILE\n"
               "                                  [--no-lease] [--json]\n"
               "       vmcas -s STORE|URL checkout NAME [--version N] --workspace DIR\n"
               "                                  [--fetch demand|complete|background] [--no-lease] [--json]\n\n"
               "Writes version N (default: the latest) of parcel NAME, byte for byte. Each file is\n"
               "written beside its target and renamed into place only when both are complete.\n"
               "From a server, only the chunks the host cache lacks are fetched.\n\n"
               "The parcel is leased to this host until it checks in; a parcel leased to another\n"
               "host is refused. --no-lease reads without taking the lease (nothing to check in).\n\n"
               "  --json   the counts, and the bytes moved (as for checkin)\n\n"
               "--workspace DIR writes the memory image to DIR/memory and keeps the disk in the\n"
               "host cache, served by `vmcas workspace serve DIR` (see `vmcas workspace --help`):\n"
               "--fetch demand (the default) fetches disk chunks when they are read, complete\n"
               "fetches them all before returning, background while the disk is served. With\n"
               "demand and background, the chunks the VM read first after its last resume (the\n"
               "version's working set) are fetched first, in that order, while the disk is served.\n");
}

int vc_cmd_checkout(int argc, char **argv)
{
        static const struct option opts[] = {
                OPT_HELP, OPT_STORE,
                { "memory", required_argument, NULL, 'm' },
                { "disk", required_argument, NULL, 'd' },
                { "version", required_argument, NULL, 'v' },
                { "no-lease", no_argument, NULL, 'n' },
                { "json", no_argument, NULL, 'j' },
                { "workspace", required_argument, NULL, 'W' },
                { "fetch", required_argument, NULL, 'F' },
                { 0 }
        };
        const char *mem = NULL, *disk = NULL, *ws = NULL, *fetch = NULL;
        uint64_t version = 0;
        bool json = false;
        VcCheckoutOpts co = { 0 };
        int r;
        GETOPT_LOOP(argc, argv, "", opts, help_checkout)
        case 'n': co.no_lease = true; break;
        case 'j': json = true; break;
        case 'm': mem = optarg; break;
        case 'd': disk = optarg; break;
        case 'W': ws = optarg; break;
        case 'F': fetch = optarg; break;
        case 'v':
                if ((r = vc_parse_u64(optarg, "version", &version)) < 0 || version == 0 || version > UINT32_MAX)
                        return vc_cli_usage("checkout", "invalid version '%s' (versions are 1, 2, 3...)", optarg);
                break;
        GETOPT_END
        if (optind + 1 != argc)
                return vc_cli_usage("checkout", optind >= argc ? "checkout needs a parcel NAME" : "unexpected argument");
        if (ws || fetch) {
                if (!ws || mem || disk)
                        return vc_cli_usage("checkout", "--workspace DIR goes without --memory and --disk; --fetch needs it");
                return vc_checkout_workspace(argv[optind], (uint32_t)version, ws, fetch, co.no_lease, json);
        }
        if (!mem || !disk)
                return vc_cli_usage("checkout", "--memory FILE and --disk FILE are required");
        VcBackend *s;
        if ((r = open_backend("checkout", &s)) != 0)
                return r;
        VcCheckoutStats st;
        co.quiet = vc_global.quiet || json;
        r = vc_checkout(s, argv[optind], (uint32_t)version, mem, disk, &co, &st);
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "checkout %s", argv[optind]);
        if (json) {
                json_t *o = json_object();
                json_object_set_new(o, "parcel", json_string(argv[optind]));
                json_object_set_new(o, "version", json_integer(st.version));
                json_object_set_new(o, "chunks", json_integer((json_int_t)st.chunks));
                json_object_set_new(o, "zero_chunks", json_integer((json_int_t)st.zero_chunks));
                json_object_set_new(o, "bytes_out", json_integer((json_int_t)st.bytes_out));
                json_object_set_new(o, "seconds", json_real(st.seconds));
                traffic_json(o, &st.traffic);
                vc_cli_print_json(o);
        }
        return 0;
}

/* ---- log ------------------------------------------------------------------------- */

static void help_log(void)
{
        printf("Usage: vmcas -s STORE log NAME [--json]\n\nLists the versions of parcel NAME, oldest first.\n");
}

static void fmt_time(int64_t t, char *buf, size_t len)
{
        time_t tt = (time_t)t;
        struct tm tm;
        gmtime_r(&tt, &tm);
        strftime(buf, len, "%Y-%m-%d %H:%M:%SZ", &tm);
}

int vc_cmd_log(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "json", no_argument, NULL, 'j' }, { 0 } };
        bool json = false;
        GETOPT_LOOP(argc, argv, "", opts, help_log)
        case 'j': json = true; break;
        GETOPT_END
        if (optind + 1 != argc)
                return vc_cli_usage("log", optind >= argc ? "log needs a parcel NAME" : "unexpected argument");
        VcBackend *s;
        int r = open_backend("log", &s);
        if (r != 0)
                return r;
        VcParcel p;
        VcVersion *vs = NULL;
        size_t n = 0;
        /* as the store lists them: a log needs no key */
        if ((r = vc_parcel_peek(s, argv[optind], &p)) >= 0)
                r = vc_versions_peek(s, argv[optind], &vs, &n);
        VcLease ls = { 0 };
        if (r >= 0 && vc_lease_get(s, argv[optind], &ls) < 0)
                vc_errclear();
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "log %s", argv[optind]);
        if (json) {
                json_t *o = json_object(), *arr = json_array();
                parcel_json(o, &p);
                for (size_t i = 0; i < n; i++) {
                        json_t *v = json_object();
                        json_object_set_new(v, "version", json_integer(vs[i].version));
                        json_object_set_new(v, "timestamp", json_integer(vs[i].timestamp));
                        json_object_set_new(v, "memory_size", json_integer((json_int_t)vs[i].mem_size));
                        json_object_set_new(v, "disk_size", json_integer((json_int_t)vs[i].disk_size));
                        json_object_set_new(v, "new_chunks", json_integer((json_int_t)vs[i].new_chunks));
                        json_object_set_new(v, "new_bytes", json_integer((json_int_t)vs[i].new_bytes));
                        json_object_set_new(v, "meta_bytes", json_integer((json_int_t)vs[i].meta_bytes));
                        json_array_append_new(arr, v);
                }
                json_object_set_new(o, "versions", arr);
                json_object_set_new(o, "leased_to", ls.held ? json_string(ls.host) : json_null());
                vc_cli_print_json(o);
        } else {
                char a[32], b[32];
                printf("parcel %s: policy %s%s%s, %u KiB chunks, %s compression\n", p.name, vc_policy_name(p.policy),
                       p.policy == VC_POLICY_GROUP ? ":" : "", p.policy == VC_POLICY_GROUP ? p.group : "",
                       p.chunk_size >> 10, vc_comp_name(p.comp));
                printf("%8s  %-20s  %12s  %12s  %10s\n", "VERSION", "CHECKED IN (UTC)", "NEW CHUNKS", "NEW DATA", "METADATA");
                for (size_t i = 0; i < n; i++) {
                        char when[40];
                        fmt_time(vs[i].timestamp, when, sizeof when);
                        printf("%8u  %-20s  %12" PRIu64 "  %12s  %10s\n", vs[i].version, when, vs[i].new_chunks,
                               sz(vs[i].new_bytes, a), sz(vs[i].meta_bytes, b));
                }
                if (n == 0)
                        printf("(no version yet)\n");
                if (ls.held) {
                        char since[40];
                        fmt_time(ls.since, since, sizeof since);
                        printf("leased to host %s since %s\n", ls.host, since);
                }
        }
        free(vs);
        return 0;
}

/* ---- stat ------------------------------------------------------------------------ */

static void help_stat(void)
{
        printf("Usage: vmcas -s STORE stat [--json]\n\n"
               "What the store holds: data_bytes (sealed chunk bytes), meta_bytes (keyrings and\n"
               "version records), disk_bytes (what it occupies on disk, dead space included), for\n"
               "the store, for each parcel (data it uses; metadata and disk of its own domain) and\n"
               "for each shared pool (all, group:NAME).\n\n"
               "Where the bytes on disk go (breakdown in --json): sealed chunk data, keyring\n"
               "nodes, the header of each record in the packs, the rest of the packs (copies of\n"
               "the catalog's records, and dead space that gc has not reclaimed yet), and the\n"
               "index (chunk locations, parcel and version records).\n");
}

/* Where the bytes of disk_bytes go. */
typedef struct Breakdown {
        uint64_t data, keyring, framing, pack_other, index, versions;
} Breakdown;

static void breakdown(const VcStoreStat *st, Breakdown *b)
{
        uint64_t records = 0, packs = 0, pack_bytes = 0;
        memset(b, 0, sizeof *b);
        for (size_t i = 0; i < st->ndomains; i++) {
                const VcDomainStat *d = &st->domains[i];
                b->data += d->data_bytes;
                b->keyring += d->meta_bytes;
                records += d->data_chunks + d->meta_chunks;
                packs += d->packs;
                pack_bytes += d->pack_bytes;
        }
        b->framing = vc_store_framing_bytes(records, packs);
        uint64_t used = b->data + b->keyring + b->framing;
        b->pack_other = pack_bytes > used ? pack_bytes - used : 0;
        b->index = st->index_bytes;
        for (size_t i = 0; i < st->nparcels; i++)
                b->versions += st->parcels[i].versions;
}

static const char *pct(uint64_t part, uint64_t whole, char *buf)
{
        snprintf(buf, 16, "%.1f %%", whole ? 100.0 * (double)part / (double)whole : 0.0);
        return buf;
}

int vc_cmd_stat(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "json", no_argument, NULL, 'j' }, { 0 } };
        bool json = false;
        GETOPT_LOOP(argc, argv, "", opts, help_stat)
        case 'j': json = true; break;
        GETOPT_END
        if (optind != argc)
                return vc_cli_usage("stat", "unexpected argument '%s'", argv[optind]);
        VcBackend *s;
        int r = open_backend("stat", &s);
        if (r != 0)
                return r;
        VcStoreStat st;
        r = vc_backend_stat(s, &st);
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "stat");
        if (json) {
                json_t *o = json_object(), *arr = json_array(), *pools = json_array();
                json_object_set_new(o, "data_bytes", json_integer((json_int_t)st.data_bytes));
                json_object_set_new(o, "meta_bytes", json_integer((json_int_t)st.meta_bytes));
                json_object_set_new(o, "disk_bytes", json_integer((json_int_t)st.disk_bytes));
                json_object_set_new(o, "index_bytes", json_integer((json_int_t)st.index_bytes));
                json_object_set_new(o, "logical_bytes", json_integer((json_int_t)st.logical_bytes));
                for (size_t i = 0; i < st.nparcels; i++) {
                        VcParcelStat *x = &st.parcels[i];
                        json_t *p = json_object();
                        parcel_json(p, &x->p);
                        json_object_set_new(p, "versions", json_integer(x->versions));
                        json_object_set_new(p, "logical_bytes", json_integer((json_int_t)x->logical_bytes));
                        json_object_set_new(p, "data_bytes", json_integer((json_int_t)x->data_bytes));
                        json_object_set_new(p, "meta_bytes", json_integer((json_int_t)x->meta_bytes));
                        json_object_set_new(p, "disk_bytes", json_integer((json_int_t)x->disk_bytes));
                        json_array_append_new(arr, p);
                }
                for (size_t i = 0; i < st.ndomains; i++) {
                        VcDomainStat *d = &st.domains[i];
                        if (strncmp(d->name, "parcel:", 7) == 0)
                                continue;
                        json_t *p = json_object();
                        json_object_set_new(p, "pool", json_string(d->name));
                        json_object_set_new(p, "chunks", json_integer((json_int_t)d->data_chunks));
                        json_object_set_new(p, "data_bytes", json_integer((json_int_t)d->data_bytes));
                        json_object_set_new(p, "disk_bytes", json_integer((json_int_t)d->pack_bytes));
                        json_array_append_new(pools, p);
                }
                json_object_set_new(o, "parcels", arr);
                json_object_set_new(o, "pools", pools);
                Breakdown bd;
                breakdown(&st, &bd);
                json_t *bo = json_object();
                json_object_set_new(bo, "sealed_data_bytes", json_integer((json_int_t)bd.data));
                json_object_set_new(bo, "keyring_bytes", json_integer((json_int_t)bd.keyring));
                json_object_set_new(bo, "record_header_bytes", json_integer((json_int_t)bd.framing));
                json_object_set_new(bo, "pack_other_bytes", json_integer((json_int_t)bd.pack_other));
                json_object_set_new(bo, "index_bytes", json_integer((json_int_t)bd.index));
                json_object_set_new(bo, "versions", json_integer((json_int_t)bd.versions));
                json_object_set_new(o, "breakdown", bo);
                vc_cli_print_json(o);
        } else {
                char a[32], b[32], c[32], d[32];
                printf("store %s: %s data, %s metadata, %s on disk (%s of images in all versions)\n",
                       vc_global.store, sz(st.data_bytes, a), sz(st.meta_bytes, b), sz(st.disk_bytes, c),
                       sz(st.logical_bytes, d));
                Breakdown bd;
                char p1[16], p2[16], p3[16], p4[16], p5[16], ix[32];
                breakdown(&st, &bd);
                uint64_t all = bd.data + bd.keyring + bd.framing + bd.pack_other + bd.index;
                printf("on disk: sealed data %s (%s), keyring nodes %s (%s), record headers %s (%s),\n"
                       "         other pack bytes (catalog copies, dead space) %s (%s), index %s (%s; %" PRIu64
                       " version records)\n",
                       sz(bd.data, a), pct(bd.data, all, p1), sz(bd.keyring, b), pct(bd.keyring, all, p2),
                       sz(bd.framing, c), pct(bd.framing, all, p3), sz(bd.pack_other, d), pct(bd.pack_other, all, p4),
                       sz(bd.index, ix), pct(bd.index, all, p5), bd.versions);
                printf("\n%-20s %-12s %6s %8s %12s %12s %12s %12s\n", "PARCEL", "POLICY", "CHUNK", "VERSIONS", "IMAGES",
                       "DATA", "METADATA", "DISK");
                for (size_t i = 0; i < st.nparcels; i++) {
                        VcParcelStat *x = &st.parcels[i];
                        char pol[80], e[32];
                        snprintf(pol, sizeof pol, "%s%s%s", vc_policy_name(x->p.policy),
                                 x->p.policy == VC_POLICY_GROUP ? ":" : "",
                                 x->p.policy == VC_POLICY_GROUP ? x->p.group : "");
                        printf("%-20s %-12s %6s %8u %12s %12s %12s %12s\n", x->p.name, pol, sz(x->p.chunk_size, e),
                               x->versions, sz(x->logical_bytes, a), sz(x->data_bytes, b), sz(x->meta_bytes, c),
                               sz(x->disk_bytes, d));
                }
                bool header = false;
                for (size_t i = 0; i < st.ndomains; i++) {
                        VcDomainStat *dm = &st.domains[i];
                        if (strncmp(dm->name, "parcel:", 7) == 0)
                                continue;
                        if (!header)
                                printf("\n%-20s %12s %12s %12s\n", "SHARED POOL", "CHUNKS", "DATA", "DISK");
                        header = true;
                        printf("%-20s %12" PRIu64 " %12s %12s\n", dm->name, dm->data_chunks, sz(dm->data_bytes, a),
                               sz(dm->pack_bytes, b));
                }
        }
        vc_repo_stat_free(&st);
        return 0;
}

/* ---- verify ------------------------------------------------------------------------ */

static void help_verify(void)
{
        printf("Usage: vmcas -s STORE|URL verify [--full] [--reindex] [--json]\n\n"
               "Checks the structure: every page of the index file, every index entry points at a\n"
               "matching pack record, every catalog record's checksum, every domain's packs/N/domain\n"
               "file, every keyring node and chunk of every version present. --full also reads\n"
               "every pack record and re-hashes it, and names each damaged chunk with the parcels\n"
               "and versions it breaks. Each problem is followed by the repair that fixes it.\n"
               "Exit status 1 if anything is wrong.\n\n"
               "--reindex first rebuilds the chunk index from the pack files alone (every record\n"
               "names its domain and tag; only records whose bytes match their tag are indexed):\n"
               "the repair for a damaged or lost index. An index whose file is damaged is moved\n"
               "aside to STORE/index.damaged-TIME and a new one is built, with the parcels and\n"
               "versions copied out of the old one if they can be read. Run it with nothing else\n"
               "using the store.\n\n"
               "  --json   the counts, \"ok\", and each problem as a string of \"problems\"\n"
               "           (docs/json.md); the exit status is still 1 if anything is wrong\n");
}

/* One problem: what is damaged, then (a local store's verify adds it on a
 * line of its own) which repair fixes it. */
static json_t *verify_problems; /* verify --json: the problems, in order */

static void report_line(const char *msg, void *ctx)
{
        (*(int *)ctx)++;
        if (verify_problems)
                json_array_append_new(verify_problems, json_string(msg));
        else
                printf("DAMAGE: %s\n", msg);
}

static const char *catalog_fate(VcCatalogFate f)
{
        switch (f) {
        case VC_CATALOG_KEPT: return "kept";
        case VC_CATALOG_RECOVERED: return "recovered";
        case VC_CATALOG_RECOVERED_OLDER: return "recovered_older";
        case VC_CATALOG_RECOVERED_PART: return "recovered_part";
        case VC_CATALOG_LOST: return "lost";
        }
        return "unknown";
}

static json_t *reindex_json(int chunks, const VcReindexInfo *ri)
{
        json_t *o = json_object();
        json_object_set_new(o, "chunks", json_integer(chunks));
        json_object_set_new(o, "replaced", json_boolean(ri->replaced));
        json_object_set_new(o, "moved_to", ri->moved_to[0] ? json_string(ri->moved_to) : json_null());
        json_object_set_new(o, "catalog", json_string(catalog_fate(ri->catalog)));
        json_object_set_new(o, "catalog_records", json_integer((json_int_t)ri->catalog_records));
        json_object_set_new(o, "domain_files_written", json_integer((json_int_t)ri->domain_files_written));
        return o;
}

/* What verify --reindex did, when it had to build a new index. 1 if the
 * catalog was lost. */
static int reindex_text(const VcReindexInfo *ri)
{
        if (!ri->replaced)
                return 0;
        if (ri->moved_to[0])
                printf("the store's index could not be used; it was moved to %s and a new one was built\n",
                       ri->moved_to);
        else
                printf("the store's index was missing; a new one was built\n");
        switch (ri->catalog) {
        case VC_CATALOG_RECOVERED:
                printf("the catalog (parcels, versions) was recovered from the damaged index: %" PRIu64 " records\n",
                       ri->catalog_records);
                break;
        case VC_CATALOG_RECOVERED_OLDER:
                printf("the catalog (parcels, versions) was recovered from an older snapshot of the damaged index: %"
                       PRIu64 " records; the last commit before the damage may be lost (%s)\n", ri->catalog_records,
                       ri->catalog_why);
                break;
        case VC_CATALOG_RECOVERED_PART:
                printf("the catalog (parcels, versions) was recovered in part from the damaged index: %" PRIu64
                       " records; %" PRIu64 " damaged page%s or record%s could not be read (%s)\n",
                       ri->catalog_records, ri->catalog_lost, ri->catalog_lost == 1 ? "" : "s",
                       ri->catalog_lost == 1 ? "" : "s", ri->catalog_why);
                break;
        case VC_CATALOG_LOST:
        case VC_CATALOG_KEPT:
                break;
        }
        if (ri->domain_files_written)
                printf("wrote %" PRIu64 " domain file%s again\n", ri->domain_files_written,
                       ri->domain_files_written == 1 ? "" : "s");
        if (ri->catalog != VC_CATALOG_LOST)
                return 0;
        fprintf(stderr, "vmcas: the catalog could not be recovered from the damaged index (%s): the new index has "
                "the chunks but no parcels or versions%s%s\n", ri->catalog_why,
                ri->moved_to[0] ? "; the damaged index is kept in " : "", ri->moved_to);
        return 1;
}

int vc_cmd_verify(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "full", no_argument, NULL, 'f' },
                                              { "reindex", no_argument, NULL, 'r' },
                                              { "json", no_argument, NULL, 'j' }, { 0 } };
        bool full = false, reindex = false, json = false;
        GETOPT_LOOP(argc, argv, "", opts, help_verify)
        case 'f': full = true; break;
        case 'r': reindex = true; break;
        case 'j': json = true; break;
        GETOPT_END
        if (optind != argc)
                return vc_cli_usage("verify", "unexpected argument '%s'", argv[optind]);
        int r, lost = 0;
        json_t *reindexed = NULL;
        if (reindex) {
                VcStore *ls;
                if ((r = open_local_repair("verify", &ls)) != 0)
                        return r;
                VcReindexInfo ri;
                r = vc_store_reindex_ex(ls, &ri);
                vc_store_free(ls);
                if (r < 0)
                        return vc_cli_fail(r, "verify --reindex");
                if (json) {
                        reindexed = reindex_json(r, &ri);
                        lost = ri.replaced && ri.catalog == VC_CATALOG_LOST;
                } else {
                        lost = reindex_text(&ri);
                        printf("reindexed %d chunks from the packs\n", r);
                }
        }
        VcBackend *s;
        if ((r = open_backend("verify", &s)) != 0) {
                json_decref(reindexed);
                return r;
        }
        int lines = 0;
        VcVerifyStats st;
        VcProgress prog;
        vc_progress_init(&prog, "verify", 0, vc_global.quiet || json);
        if (vc_backend_local_store(s))
                vc_store_set_progress(vc_backend_local_store(s), &prog);
        if (json)
                verify_problems = json_array();
        r = vc_backend_verify(s, full, report_line, &lines, &st);
        vc_backend_free(s);
        if (r < 0) {
                json_decref(verify_problems);
                verify_problems = NULL;
                json_decref(reindexed);
                return vc_cli_fail(r, "verify");
        }
        char a[32];
        if (json) {
                json_t *o = json_object(), *rp = json_object();
                json_object_set_new(o, "full", json_boolean(full));
                json_object_set_new(o, "ok", json_boolean(r == 0 && !lost));
                json_object_set_new(o, "parcels", json_integer((json_int_t)st.parcels));
                json_object_set_new(o, "versions", json_integer((json_int_t)st.versions));
                json_object_set_new(o, "chunks_checked", json_integer((json_int_t)st.chunks_checked));
                json_object_set_new(o, "bytes_checked", json_integer((json_int_t)st.bytes_checked));
                json_object_set_new(o, "problems", verify_problems);
                verify_problems = NULL;
                json_object_set_new(rp, "reindex", json_integer((json_int_t)st.by_repair[VC_REPAIR_REINDEX]));
                json_object_set_new(rp, "reindex_if_intact", json_integer((json_int_t)st.by_repair[VC_REPAIR_REINDEX_IF]));
                json_object_set_new(rp, "repair", json_integer((json_int_t)st.by_repair[VC_REPAIR_BACKUP]));
                json_object_set_new(rp, "none", json_integer((json_int_t)st.by_repair[VC_REPAIR_NONE]));
                json_object_set_new(rp, "harmless", json_integer((json_int_t)st.by_repair[VC_REPAIR_HARMLESS]));
                json_object_set_new(o, "problems_by_repair", rp);
                json_object_set_new(o, "reindex", reindexed ? reindexed : json_null());
                vc_cli_print_json(o);
                return r == 0 && !lost ? 0 : 1;
        }
        if (full)
                printf("verified (full) %" PRIu64 " parcels, %" PRIu64 " versions, re-hashed %" PRIu64 " chunks, %s: %s\n",
                       st.parcels, st.versions, st.chunks_checked, sz(st.bytes_checked, a), r == 0 ? "ok" : "PROBLEMS FOUND");
        else
                printf("verified %" PRIu64 " parcels, %" PRIu64 " versions, %" PRIu64 " indexed chunks: %s\n", st.parcels,
                       st.versions, st.chunks_checked, r == 0 ? "ok" : "PROBLEMS FOUND");
        if (r > 0) {
                uint64_t re = st.by_repair[VC_REPAIR_REINDEX] + st.by_repair[VC_REPAIR_REINDEX_IF];
                uint64_t no = st.by_repair[VC_REPAIR_NONE], cat = st.by_repair[VC_REPAIR_BACKUP];
                fprintf(stderr, "vmcas: verify found %d problem%s", r, r == 1 ? "" : "s");
                if (re && !reindex)
                        fprintf(stderr, "; 'vmcas verify --reindex' repairs %" PRIu64 "%s", re,
                                st.by_repair[VC_REPAIR_REINDEX_IF] ? " (some only if their pack records are intact)"
                                                                   : "");
                if (cat)
                        fprintf(stderr, "; 'vmcas repair' rebuilds the catalog (%" PRIu64 ")", cat);
                if (no)
                        fprintf(stderr, "; %" PRIu64 " cannot be repaired in this store", no);
                fprintf(stderr, "\n");
        }
        return r == 0 && !lost ? 0 : 1;
}

/* ---- prune / gc ------------------------------------------------------------------------ */

static void help_prune(void)
{
        printf("Usage: vmcas -s STORE|URL prune NAME --keep N [--json]\n\n"
               "Drops every version of parcel NAME but the newest N (N >= 1). Run 'vmcas gc' to\n"
               "free the chunks no version needs any more.\n\n"
               "  --json   {\"parcel\", \"kept\", \"dropped\"} (docs/json.md)\n");
}

int vc_cmd_prune(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "keep", required_argument, NULL, 'k' },
                                              { "json", no_argument, NULL, 'j' }, { 0 } };
        uint64_t keep = 0;
        bool have = false, json = false;
        int r;
        GETOPT_LOOP(argc, argv, "", opts, help_prune)
        case 'k':
                if ((r = vc_parse_u64(optarg, "--keep", &keep)) < 0 || keep == 0 || keep > UINT32_MAX)
                        return vc_cli_usage("prune", "invalid --keep '%s' (a number of versions, at least 1)", optarg);
                have = true;
                break;
        case 'j': json = true; break;
        GETOPT_END
        if (optind + 1 != argc)
                return vc_cli_usage("prune", optind >= argc ? "prune needs a parcel NAME" : "unexpected argument");
        if (!have)
                return vc_cli_usage("prune", "--keep N is required");
        VcBackend *s;
        if ((r = open_backend("prune", &s)) != 0)
                return r;
        r = vc_cat_prune(s, argv[optind], (uint32_t)keep);
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "prune %s", argv[optind]);
        if (json)
                vc_cli_print_json(json_pack("{s:s, s:I, s:i}", "parcel", argv[optind], "kept", (json_int_t)keep, "dropped", r));
        else
                printf("dropped %d version%s of %s; run 'vmcas gc' to free their chunks\n", r, r == 1 ? "" : "s",
                       argv[optind]);
        return 0;
}

static void help_gc(void)
{
        printf("Usage: vmcas -s STORE|URL gc [--grace SECONDS] [--json]\n\n"
               "Frees the chunks that no version needs: deletes pack files left with nothing\n"
               "live, punches the dead records out of the others in place, and rewrites those\n"
               "that are more than half dead if the disk has room. Works on a full disk.\n"
               "Unreferenced chunks younger than the grace period (default 3600 s) are kept:\n"
               "they may belong to a checkin in progress. Safe to run beside checkins.\n\n"
               "  --grace SECONDS  keep unreferenced chunks younger than this (default 3600)\n"
               "  --json           the counts and sizes before and after (docs/json.md)\n");
}

int vc_cmd_gc(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "grace", required_argument, NULL, 'g' },
                                              { "json", no_argument, NULL, 'j' }, { 0 } };
        uint64_t grace = 3600;
        bool json = false;
        int r;
        GETOPT_LOOP(argc, argv, "", opts, help_gc)
        case 'g':
                if ((r = vc_parse_u64(optarg, "--grace", &grace)) < 0 || grace > (1ULL << 40))
                        return vc_cli_usage("gc", "invalid --grace '%s' (seconds)", optarg);
                break;
        case 'j': json = true; break;
        GETOPT_END
        if (optind != argc)
                return vc_cli_usage("gc", "unexpected argument '%s'", argv[optind]);
        VcBackend *s;
        if ((r = open_backend("gc", &s)) != 0)
                return r;
        VcGcStats st;
        r = vc_backend_gc(s, (int64_t)grace, vc_global.quiet, &st);
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "gc");
        if (json) {
                json_t *o = json_object();
                json_object_set_new(o, "versions", json_integer((json_int_t)st.versions));
                json_object_set_new(o, "chunks_freed", json_integer((json_int_t)st.sweep.chunks_freed));
                json_object_set_new(o, "bytes_freed", json_integer((json_int_t)st.sweep.bytes_freed));
                json_object_set_new(o, "chunks_young", json_integer((json_int_t)st.sweep.chunks_young));
                json_object_set_new(o, "packs_rewritten", json_integer((json_int_t)st.compact.packs_rewritten));
                json_object_set_new(o, "packs_deleted", json_integer((json_int_t)st.compact.packs_deleted));
                json_object_set_new(o, "packs_punched", json_integer((json_int_t)st.compact.packs_punched));
                json_object_set_new(o, "bytes_punched", json_integer((json_int_t)st.compact.bytes_punched));
                json_object_set_new(o, "tail_bytes_cut", json_integer((json_int_t)st.compact.tail_bytes));
                json_object_set_new(o, "packs_not_compacted",
                                    json_integer((json_int_t)st.compact.packs_not_compacted));
                /* on disk: the blocks the pack files take (punched holes take none) */
                json_object_set_new(o, "disk_bytes_before", json_integer((json_int_t)st.compact.disk_before));
                json_object_set_new(o, "disk_bytes_after", json_integer((json_int_t)st.compact.disk_after));
                json_object_set_new(o, "file_bytes_before", json_integer((json_int_t)st.compact.bytes_before));
                json_object_set_new(o, "file_bytes_after", json_integer((json_int_t)st.compact.bytes_after));
                vc_cli_print_json(o);
        } else {
                char a[32], b[32], c[32], d[32], e[32];
                char punched[64] = "", tails[64] = "", left[96] = "";
                if (st.compact.packs_punched)
                        snprintf(punched, sizeof punched, ", %" PRIu64 " punched (%s freed in place)",
                                 st.compact.packs_punched, sz(st.compact.bytes_punched, d));
                if (st.compact.tail_bytes)
                        snprintf(tails, sizeof tails, "; cut %s of unindexed tails", sz(st.compact.tail_bytes, e));
                if (st.compact.packs_not_compacted)
                        snprintf(left, sizeof left, "; %" PRIu64 " pack%s not rewritten for lack of space",
                                 st.compact.packs_not_compacted, st.compact.packs_not_compacted == 1 ? "" : "s");
                printf("gc: %" PRIu64 " versions marked; freed %" PRIu64 " chunks (%s)%s; packs: %" PRIu64
                       " rewritten, %" PRIu64 " deleted%s%s%s; %s -> %s on disk\n",
                       st.versions, st.sweep.chunks_freed, sz(st.sweep.bytes_freed, a),
                       st.sweep.chunks_young ? " (some kept within the grace period)" : "",
                       st.compact.packs_rewritten, st.compact.packs_deleted, punched, tails, left,
                       sz(st.compact.disk_before, b), sz(st.compact.disk_after, c));
        }
        return 0;
}

/* ---- lease ------------------------------------------------------------------------ */

static void help_lease(void)
{
        printf("Usage: vmcas -s STORE|URL lease show NAME [--json]\n"
               "       vmcas -s STORE|URL lease break NAME [--json]\n\n"
               "A parcel is leased to the host that checked it out, until that host checks it\n"
               "in. show says who holds it; break takes it away (an administrator's call, for a\n"
               "host that is lost): the old holder's next checkin is then refused, never merged.\n\n"
               "  --json   show: {\"parcel\", \"held\", \"host\", \"since\"}; break: {\"parcel\", \"broken\"}\n"
               "           (docs/json.md)\n");
}

int vc_cmd_lease(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "json", no_argument, NULL, 'j' }, { 0 } };
        bool json = false;
        if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
                help_lease();
                return 0;
        }
        if (argc < 2 || (strcmp(argv[1], "show") != 0 && strcmp(argv[1], "break") != 0))
                return vc_cli_usage("lease", argc < 2 ? "missing subcommand (show or break)"
                                                      : "unknown subcommand '%s' (expected show or break)", argv[1]);
        const char *sub = argv[1];
        argc--, argv++;
        GETOPT_LOOP(argc, argv, "", opts, help_lease)
        case 'j': json = true; break;
        GETOPT_END
        if (optind + 1 != argc)
                return vc_cli_usage("lease", optind >= argc ? "lease %s needs a parcel NAME" : "unexpected argument", sub);
        VcBackend *s;
        int r = open_backend("lease", &s);
        if (r != 0)
                return r;
        const char *name = argv[optind];
        if (strcmp(sub, "break") == 0) {
                r = vc_lease_break(s, name);
                vc_backend_free(s);
                if (r < 0)
                        return vc_cli_fail(r, "lease break %s", name);
                if (json) {
                        vc_cli_print_json(json_pack("{s:s, s:b}", "parcel", name, "broken", r > 0));
                        return 0;
                }
                printf(r ? "broke the lease on %s: its holder's next checkin will be refused\n"
                         : "%s was not leased\n", name);
                return 0;
        }
        VcLease ls;
        r = vc_lease_get(s, name, &ls);
        vc_backend_free(s);
        if (r < 0)
                return vc_cli_fail(r, "lease show %s", name);
        char since[40] = "";
        if (ls.held)
                fmt_time(ls.since, since, sizeof since);
        if (json) {
                json_t *o = json_object();
                json_object_set_new(o, "parcel", json_string(name));
                json_object_set_new(o, "held", json_boolean(ls.held));
                json_object_set_new(o, "host", ls.held ? json_string(ls.host) : json_null());
                json_object_set_new(o, "since", ls.held ? json_integer(ls.since) : json_null());
                vc_cli_print_json(o);
        } else if (ls.held)
                printf("%s is leased to host %s since %s\n", name, ls.host, since);
        else
                printf("%s is not leased\n", name);
        return 0;
}

/* ---- repair ------------------------------------------------------------------------ */

static void help_repair(void)
{
        printf("Usage: vmcas -s STORE repair [--json]\n\n"
               "Rebuilds the store's index and catalog from the pack files alone: first the\n"
               "chunk index (every pack record names its domain and tag; only records whose\n"
               "bytes match their tag are indexed), then the parcels and versions from the\n"
               "copies of their records that every create, checkin and prune writes to the\n"
               "packs. Versions that prune dropped stay dropped; leases are not kept (check\n"
               "the parcels out again). Then it verifies the store. The repair for a damaged\n"
               "or lost STORE/index/. Run it with no checkin or gc running.\n\n"
               "  --json   the reindex, the catalog rebuilt and the verify that follows, as one\n"
               "           object (docs/json.md); exit status 1 if the verify found problems\n");
}

/* A RADOS store has no index to rebuild from its packs (the cluster keeps
 * it, replicated): repair drops the entries whose bytes are gone or
 * damaged, so the next checkin of a host that has them stores them again,
 * then verifies. */
static int repair_rados(bool json)
{
        VcBackend *b;
        int r = open_backend("repair", &b);
        if (r != 0)
                return r;
        uint64_t dropped = 0;
        r = vc_backend_rados_repair(b, true, &dropped);
        if (r < 0) {
                vc_backend_free(b);
                return vc_cli_fail(r, "repair");
        }
        VcVerifyStats st;
        int lines = 0;
        if (json)
                verify_problems = json_array();
        r = vc_backend_verify(b, false, report_line, &lines, &st);
        vc_backend_free(b);
        if (r < 0) {
                json_decref(verify_problems);
                verify_problems = NULL;
                return vc_cli_fail(r, "repair");
        }
        if (json) {
                vc_cli_print_json(json_pack("{s:s, s:I, s:{s:b, s:I, s:I, s:I, s:o}, s:b}", "store", vc_global.store,
                                     "index_entries_dropped", (json_int_t)dropped, "verify", "ok",
                                     st.problems == 0, "parcels", (json_int_t)st.parcels, "versions",
                                     (json_int_t)st.versions, "problems", (json_int_t)st.problems, "problem_list",
                                     verify_problems, "ok", st.problems == 0));
                verify_problems = NULL;
        } else {
                printf("dropped %" PRIu64 " index entr%s whose bytes were gone or damaged\n", dropped,
                       dropped == 1 ? "y" : "ies");
                printf("verified %" PRIu64 " parcels, %" PRIu64 " versions: %" PRIu64 " problem%s\n", st.parcels,
                       st.versions, st.problems, st.problems == 1 ? "" : "s");
        }
        return st.problems ? 1 : 0;
}

int vc_cmd_repair(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, OPT_STORE, { "json", no_argument, NULL, 'j' }, { 0 } };
        bool json = false;
        GETOPT_LOOP(argc, argv, "", opts, help_repair)
        case 'j': json = true; break;
        GETOPT_END
        if (optind != argc)
                return vc_cli_usage("repair", "unexpected argument '%s'", argv[optind]);
        if (vc_global.store && strncmp(vc_global.store, "rados://", 8) == 0)
                return repair_rados(json);
        VcStore *s;
        int r = open_local_repair("repair", &s);
        if (r != 0)
                return r;
        VcReindexInfo ri;
        r = vc_store_reindex_ex(s, &ri);
        if (r < 0) {
                vc_store_free(s);
                return vc_cli_fail(r, "repair");
        }
        json_t *o = json ? json_object() : NULL;
        if (json)
                json_object_set_new(o, "reindex", reindex_json(r, &ri));
        else {
                if (ri.replaced && ri.moved_to[0])
                        printf("the store's index could not be used; it was moved to %s and a new one was built\n",
                               ri.moved_to);
                printf("reindexed %d chunks from the packs\n", r);
        }
        VcRebuildStats rs;
        r = vc_repo_rebuild_catalog(s, &rs);
        if (r < 0) {
                vc_store_free(s);
                json_decref(o);
                return vc_cli_fail(r, "repair: rebuilding the catalog");
        }
        if (json)
                json_object_set_new(o, "catalog", json_pack("{s:I, s:I, s:I, s:I}", "parcels", (json_int_t)rs.parcels,
                                                            "versions", (json_int_t)rs.versions, "pruned",
                                                            (json_int_t)rs.pruned, "damaged_copies",
                                                            (json_int_t)rs.damaged));
        else
                printf("rebuilt the catalog: %" PRIu64 " parcels, %" PRIu64 " versions (%" PRIu64
                       " pruned ones left out%s)\n",
                       rs.parcels, rs.versions, rs.pruned, rs.damaged ? "; some damaged copies skipped" : "");
        vc_store_free(s);
        int lines = 0;
        VcVerifyStats st;
        VcBackend *b;
        if ((r = open_backend("repair", &b)) != 0) {
                json_decref(o);
                return r;
        }
        if (json)
                verify_problems = json_array();
        r = vc_backend_verify(b, false, report_line, &lines, &st);
        vc_backend_free(b);
        if (r < 0) {
                json_decref(o);
                json_decref(verify_problems);
                verify_problems = NULL;
                return vc_cli_fail(r, "repair: verify");
        }
        if (json) {
                json_object_set_new(o, "verify", json_pack("{s:b, s:I, s:I, s:I, s:o}", "ok", r == 0, "parcels",
                                                           (json_int_t)st.parcels, "versions", (json_int_t)st.versions,
                                                           "chunks_checked", (json_int_t)st.chunks_checked,
                                                           "problems", verify_problems));
                verify_problems = NULL;
                json_object_set_new(o, "ok", json_boolean(r == 0));
                vc_cli_print_json(o);
        } else
                printf("verified %" PRIu64 " parcels, %" PRIu64 " versions, %" PRIu64 " indexed chunks: %s\n",
                       st.parcels, st.versions, st.chunks_checked, r == 0 ? "ok" : "PROBLEMS FOUND");
        return r == 0 ? 0 : 1;
}
