/* Placeholder until the store commands land (being written now). */
#include "cli/vc_cli.h"
#include <stdio.h>
#define TODO(n) int vc_cmd_##n(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "vmcas " #n ": not built yet\n"); return 1; }
TODO(init) TODO(parcel) TODO(checkin) TODO(checkout) TODO(log) TODO(stat) TODO(verify) TODO(prune) TODO(gc)
