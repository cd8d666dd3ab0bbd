/* vc_qmp — a small client of QEMU's machine protocol (QMP) on a Unix
 * socket: one command at a time, events skipped, every wait bounded. */
#ifndef VC_QMP_H
#define VC_QMP_H

#include <jansson.h>

typedef struct VcQmp VcQmp;

/* Connects to the QMP socket at path, retrying until timeout seconds have
 * passed (QEMU may still be starting), and negotiates capabilities. */
int vc_qmp_connect(const char *path, double timeout, VcQmp **ret);
void vc_qmp_close(VcQmp *q);          /* NULL ok */

/* Runs cmd with args (stolen; NULL for none). *ret (if not NULL) gets the
 * "return" value (a new reference). A QMP error is -EIO with QEMU's
 * description; no answer within timeout seconds is -ETIMEDOUT. */
int vc_qmp_cmd(VcQmp *q, const char *cmd, json_t *args, double timeout, json_t **ret);

/* The "status" of query-status ("running", "paused", ...) into buf. */
int vc_qmp_status(VcQmp *q, char *buf, size_t len);

/* Polls query-migrate until it is "completed" (0) or "failed"/"cancelled"
 * (-EIO with QEMU's error), at most timeout seconds. */
int vc_qmp_wait_migration(VcQmp *q, double timeout);

#endif
