/* The vmcas command: one entry point per subcommand.
 * Each takes argv as given after the subcommand name (argv[0] is the
 * subcommand) and returns the process exit status: 0 success, 1 failure,
 * 2 usage error. Only these functions print errors for the user. */
#ifndef VC_CLI_H
#define VC_CLI_H

#include <stdbool.h>

#include <stdint.h>

#include <jansson.h>

typedef struct VcGlobal {
        const char *store;      /* -s/--store or $VMCAS_STORE, may be NULL */
        bool quiet;
        const char *cache_dir;  /* --cache DIR (a server's host cache) */
        uint64_t cache_size;    /* --cache-size */
        bool no_cache;          /* --no-cache */
        bool json;              /* --json among the command's arguments: errors
                                 * go to stdout as one JSON object too (docs/json.md) */
        const char *cmd;        /* the command's name, for messages */
} VcGlobal;

extern VcGlobal vc_global;

/* store and parcel commands (src/cli/cmd_store.c) */
int vc_cmd_init(int argc, char **argv);
int vc_cmd_parcel(int argc, char **argv);
int vc_cmd_checkin(int argc, char **argv);
int vc_cmd_checkout(int argc, char **argv);
int vc_cmd_log(int argc, char **argv);
int vc_cmd_stat(int argc, char **argv);
int vc_cmd_verify(int argc, char **argv);
int vc_cmd_prune(int argc, char **argv);
int vc_cmd_gc(int argc, char **argv);
int vc_cmd_lease(int argc, char **argv);
int vc_cmd_repair(int argc, char **argv);

/* the server and its users, and logging in to one (src/cli/cmd_serve.c) */
int vc_cmd_serve(int argc, char **argv);
int vc_cmd_user(int argc, char **argv);
int vc_cmd_login(int argc, char **argv);

/* workspaces (src/cli/cmd_workspace.c) */
int vc_cmd_workspace(int argc, char **argv);
/* checkout NAME --workspace DIR (fetch: NULL, "demand", "complete", "background") */
int vc_checkout_workspace(const char *name, uint32_t version, const char *dir, const char *fetch, bool no_lease,
                          bool json);

/* a parcel as a QEMU VM (src/cli/cmd_vm.c) */
int vc_cmd_resume(int argc, char **argv);
int vc_cmd_suspend(int argc, char **argv);

/* the what-if analysis (src/analyze/) */
int vc_cmd_analyze(int argc, char **argv);
int vc_cmd_synth(int argc, char **argv);

/* Prints j (indented, in its order) and a newline on stdout; drops j. */
void vc_cli_print_json(json_t *j);
/* "demand", "complete", "background" (NULL: demand) into *f; -EINVAL for
 * another word. */
int vc_cli_fetch_parse(const char *s, int *f);

/* Prints "vmcas: <msg>" for a failed library call; returns 1. */
int vc_cli_fail(int r, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Prints "vmcas CMD: <msg>\nTry 'vmcas CMD --help'." and returns 2. */
int vc_cli_usage(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* For getopt's '?': an unknown option or a missing argument, said as a
 * usage error (getopt itself is silent); returns 2. */
int vc_cli_badopt(const char *cmd, char **argv);
/* Under --json, error messages are also printed as
 *   {"error": {"message": "...", "exit_status": N, "errno": "ENOENT", "command": "log"}}
 * on stdout (errno only for failures that have one); stderr has the same
 * line as without --json. */

#endif
