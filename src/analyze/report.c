#include "analyze/analyze_internal.h"
#include <errno.h>
int vc_analysis_write_report(const VcAnalysis *a, const char *dir) { (void)a; (void)dir; return -ENOSYS; }
