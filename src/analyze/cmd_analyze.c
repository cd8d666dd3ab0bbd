/* Placeholder until the analysis lands (being written now). */
#include "cli/vc_cli.h"
#include <stdio.h>
int vc_cmd_analyze(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "vmcas analyze: not built yet\n"); return 1; }
int vc_cmd_synth(int argc, char **argv) { (void)argc; (void)argv; fprintf(stderr, "vmcas synth: not built yet\n"); return 1; }
