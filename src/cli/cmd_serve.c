/* The server's commands: serve, user, login. */
#include "cli/vc_cli.h"
#include "backend/vc_backend.h"
#include "client/vc_bundle.h"
#include "client/vc_keystore.h"
#include "core/vc_util.h"
#include "server/vc_server.h"
#include "server/vc_users.h"

#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OPT_HELP { "help", no_argument, NULL, 'h' }
#define OPT_STORE { "store", required_argument, NULL, 's' }

static void print_json(json_t *j)
{
        char *s = j ? json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        if (s)
                puts(s);
        free(s);
        json_decref(j);
}

static int parse_uint(const char *cmd, const char *what, const char *s, unsigned max, unsigned *ret)
{
        uint64_t v;
        if (vc_parse_u64(s, what, &v) < 0 || v == 0 || v > max) {
                vc_errclear();
                return vc_cli_usage(cmd, "invalid %s '%s' (1 to %u)", what, s, max);
        }
        *ret = (unsigned)v;
        return 0;
}

/* ---- serve ------------------------------------------------------------------------ */

static void help_serve(void)
{
        printf("Usage: vmcas -s STORE serve [--listen HOST:PORT] [--tls-cert FILE --tls-key FILE]\n"
               "                           [--users FILE] [--no-existence-oracle] [--threads N]\n"
               "                           [--max-connections N] [--timeout SECONDS]\n\n"
               "Serves the store over HTTP (protocol: docs/protocol.md) until SIGTERM or SIGINT,\n"
               "then finishes the requests in progress and exits 0. Clients use the store as\n"
               "-s http://HOST:PORT with their token in VMCAS_TOKEN.\n\n"
               "  --listen HOST:PORT      address to listen on (default 127.0.0.1:8470; port 0: any)\n"
               "  --tls-cert, --tls-key   serve HTTPS with this PEM certificate and key\n"
               "  --users FILE            the users and token hashes (default STORE/users)\n"
               "  --no-existence-oracle   do not tell a user whether a shared pool (all, group:G)\n"
               "                          holds a chunk their parcel never stored or referenced\n"
               "  --threads N             connection threads (default 8)\n"
               "  --max-connections N     connections at once (default 256)\n"
               "  --timeout SECONDS       close a connection idle this long (default 30)\n");
}

int vc_cmd_serve(int argc, char **argv)
{
        static const struct option opts[] = {
                OPT_HELP, OPT_STORE,
                { "listen", required_argument, NULL, 'l' },
                { "tls-cert", required_argument, NULL, 'c' },
                { "tls-key", required_argument, NULL, 'k' },
                { "users", required_argument, NULL, 'u' },
                { "no-existence-oracle", no_argument, NULL, 'O' },
                { "threads", required_argument, NULL, 't' },
                { "max-connections", required_argument, NULL, 'm' },
                { "timeout", required_argument, NULL, 'T' },
                { 0 }
        };
        VcServerOpts o = { 0 };
        int c, r;
        while ((c = getopt_long(argc, argv, "hs:", opts, NULL)) != -1) {
                switch (c) {
                case 'h': help_serve(); return 0;
                case 's': vc_global.store = optarg; break;
                case 'l': o.listen = optarg; break;
                case 'c': o.tls_cert = optarg; break;
                case 'k': o.tls_key = optarg; break;
                case 'u': o.users = optarg; break;
                case 'O': o.no_existence_oracle = true; break;
                case 't': if ((r = parse_uint("serve", "thread count", optarg, 256, &o.threads))) return r; break;
                case 'm': if ((r = parse_uint("serve", "connection limit", optarg, 65536, &o.max_connections))) return r; break;
                case 'T': if ((r = parse_uint("serve", "timeout", optarg, 86400, &o.timeout))) return r; break;
                default: return vc_cli_badopt("serve", argv);
                }
        }
        if (optind != argc)
                return vc_cli_usage("serve", "unexpected argument '%s'", argv[optind]);
        if (!vc_global.store || !*vc_global.store)
                return vc_cli_usage("serve", "no store given: use -s PATH or set VMCAS_STORE");
        o.store = vc_global.store;
        r = vc_server_run(&o);
        return r < 0 ? vc_cli_fail(r, "serve") : 0;
}

/* ---- user -------------------------------------------------------------------------- */

static void help_user(void)
{
        printf("Usage: vmcas -s STORE user add NAME [--admin] [--users FILE] [--json]\n"
               "       vmcas -s STORE user list [--users FILE] [--json]\n"
               "       vmcas -s STORE user remove NAME [--users FILE] [--json]\n\n"
               "The users of 'vmcas serve'. add prints the user's token once, alone on the last\n"
               "line: give it to the user (their client reads it from VMCAS_TOKEN). The store\n"
               "keeps only its SHA-256, in STORE/users (mode 0600). A user sees only their own\n"
               "parcels; an administrator (--admin) may also create parcels for users, break\n"
               "leases, and run verify and gc. A running server sees changes within a second\n"
               "(at once on SIGHUP).\n\n"
               "  --admin       add an administrator\n"
               "  --users FILE  another users file than STORE/users\n"
               "  --json        add: {\"user\", \"admin\", \"token\"}; list: [{\"name\", \"admin\"}];\n"
               "                remove: {\"user\", \"removed\"} (docs/json.md)\n");
}

int vc_cmd_user(int argc, char **argv)
{
        static const struct option opts[] = {
                OPT_HELP, OPT_STORE,
                { "admin", no_argument, NULL, 'a' },
                { "users", required_argument, NULL, 'u' },
                { "json", no_argument, NULL, 'j' },
                { 0 }
        };
        bool admin = false, json = false;
        const char *users = NULL;
        int c;
        while ((c = getopt_long(argc, argv, "hs:", opts, NULL)) != -1) {
                switch (c) {
                case 'h': help_user(); return 0;
                case 's': vc_global.store = optarg; break;
                case 'a': admin = true; break;
                case 'u': users = optarg; break;
                case 'j': json = true; break;
                default: return vc_cli_badopt("user", argv);
                }
        }
        if (optind >= argc)
                return vc_cli_usage("user", "expected add, list or remove");
        const char *verb = argv[optind], *name = optind + 1 < argc ? argv[optind + 1] : NULL;
        bool named = strcmp(verb, "add") == 0 || strcmp(verb, "remove") == 0;
        if (strcmp(verb, "list") != 0 && !named)
                return vc_cli_usage("user", "unknown action '%s' (add, list or remove)", verb);
        if (named ? !name || optind + 2 != argc : optind + 1 != argc)
                return vc_cli_usage("user", named && !name ? "user %s needs a NAME" : "unexpected argument after '%s'", verb);
        char path[4096];
        int r = 0;
        if (users)
                snprintf(path, sizeof path, "%s", users);
        else if ((r = vc_users_default_path(vc_global.store, path, sizeof path)) < 0)
                return vc_cli_usage("user", "%s", vc_errmsg(r));
        if (strcmp(verb, "add") == 0) {
                char tok[VC_TOKEN_HEX + 1];
                if ((r = vc_users_add(path, name, admin, tok)) < 0)
                        return vc_cli_fail(r, "user add");
                if (json) {
                        print_json(json_pack("{s:s, s:b, s:s}", "user", name, "admin", admin, "token", tok));
                        vc_wipe(tok, sizeof tok);
                        return 0;
                }
                printf("Added %s '%s'. Their token, shown only now (the store keeps only its hash):\n%s\n",
                       admin ? "administrator" : "user", name, tok);
                vc_wipe(tok, sizeof tok);
                return 0;
        }
        if (strcmp(verb, "remove") == 0) {
                if ((r = vc_users_remove(path, name)) < 0)
                        return vc_cli_fail(r, "user remove");
                if (json) {
                        print_json(json_pack("{s:s, s:b}", "user", name, "removed", 1));
                        return 0;
                }
                printf("Removed user '%s': their token no longer works (their parcels stay).\n", name);
                return 0;
        }
        VcUsers u;
        if ((r = vc_users_load(path, &u)) < 0)
                return vc_cli_fail(r, "user list");
        if (json) {
                json_t *a = json_array();
                for (size_t i = 0; i < u.n; i++)
                        json_array_append_new(a, json_pack("{s:s, s:b}", "name", u.v[i].name, "admin", u.v[i].admin));
                char *s = json_dumps(a, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
                puts(s ? s : "[]");
                free(s);
                json_decref(a);
        } else {
                printf("%-24s %s\n", "USER", "ROLE");
                for (size_t i = 0; i < u.n; i++)
                        printf("%-24s %s\n", u.v[i].name, u.v[i].admin ? "admin" : "user");
        }
        vc_users_clear(&u);
        return 0;
}

/* ---- login ---------------------------------------------------------------------------- */

static void help_login(void)
{
        printf("Usage: vmcas login URL [--push] [--json]\n\n"
               "Fetches your key bundle from the server at URL and opens it into this host's key\n"
               "store, so that this host can check your parcels out. The bundle is sealed under\n"
               "your passphrase (scrypt, AES-256-GCM): the server keeps it but cannot read it.\n"
               "The token comes from VMCAS_TOKEN, the passphrase from VMCAS_PASSPHRASE or a\n"
               "prompt. A key this host already has is kept; one that differs is reported and\n"
               "left alone.\n\n"
               "  --push   the other way: seal this host's keys for the server's store and upload them\n"
               "  --json   {\"url\", \"keys_dir\", \"imported\", \"present\", \"conflicts\"}; with --push,\n"
               "           {\"url\", \"keys_dir\", \"uploaded\"} (docs/json.md)\n\n"
               "Exit status 1 also when some keys differ from this host's.\n");
}

int vc_cmd_login(int argc, char **argv)
{
        static const struct option opts[] = { OPT_HELP, { "push", no_argument, NULL, 'p' },
                                              { "json", no_argument, NULL, 'j' }, { 0 } };
        bool push = false, json = false;
        int c;
        while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
                switch (c) {
                case 'h': help_login(); return 0;
                case 'p': push = true; break;
                case 'j': json = true; break;
                default: return vc_cli_badopt("login", argv);
                }
        }
        if (optind + 1 != argc)
                return vc_cli_usage("login", optind >= argc ? "login needs the server's URL" : "unexpected argument '%s'",
                                    argv[optind + 1 < argc ? optind + 1 : 0]);
        const char *url = argv[optind];
        if (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0)
                return vc_cli_usage("login", "'%s' is not a server URL (http://HOST:PORT or https://...)", url);
        VcBackendOpts bo = { .no_cache = true };
        VcBackend *b;
        int r = vc_backend_open(url, &bo, &b);
        if (r < 0)
                return vc_cli_fail(r, "login");
        char dir[4096];
        vc_keystore_dir(vc_backend_uuid(b), dir, sizeof dir);
        if (push) {
                VcBundleStats st = { 0 };
                r = vc_bundle_push(b, vc_backend_uuid(b), true, &st);
                vc_backend_free(b);
                if (r < 0)
                        return vc_cli_fail(r, "login --push");
                if (json)
                        print_json(json_pack("{s:s, s:s, s:i}", "url", url, "keys_dir", dir, "uploaded", (int)st.keys));
                else
                        printf("Uploaded a key bundle of %u keys from %s to %s.\n", st.keys, dir, url);
                return 0;
        }
        uint8_t *blob = NULL, uuid[VC_UUID_LEN];
        size_t len = 0;
        memcpy(uuid, vc_backend_uuid(b), VC_UUID_LEN);
        r = vc_bundle_get(b, &blob, &len);
        vc_backend_free(b);
        if (r < 0)
                return vc_cli_fail(r, "login");
        char pass[VC_PASSPHRASE_MAX];
        VcBundleStats st = { 0 };
        if ((r = vc_bundle_passphrase(false, pass, sizeof pass)) >= 0)
                r = vc_bundle_open(uuid, pass, blob, len, &st);
        vc_wipe(pass, sizeof pass);
        free(blob);
        if (r < 0)
                return vc_cli_fail(r, "login");
        if (json) {
                print_json(json_pack("{s:s, s:s, s:i, s:i, s:i}", "url", url, "keys_dir", dir, "imported",
                                     (int)st.imported, "present", (int)st.present, "conflicts", (int)st.conflicts));
                return st.conflicts ? 1 : 0;
        }
        printf("Logged in to %s: %u keys written to %s, %u already there", url, st.imported, dir, st.present);
        if (st.conflicts)
                printf(", %u differ from this host's and were left alone", st.conflicts);
        printf(".\n");
        return st.conflicts ? 1 : 0;
}
