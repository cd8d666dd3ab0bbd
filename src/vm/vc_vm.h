/* vc_vm — a parcel run as a QEMU virtual machine: resume on any host,
 * suspend back into the parcel.
 *
 * A VM runs from a workspace (client/vc_workspace.h): its RAM is the
 * workspace's memory image, mapped by QEMU (memory-backend-file,
 * share=on), its disk the workspace's disk served by nbdkit and the vmcas
 * plugin over a Unix socket, its boot and device state the version's
 * machine (client/vc_machine.h), kept as DIR/machine. Suspend stops the
 * guest, migrates only the device state (capability x-ignore-shared: the
 * RAM stays in the memory file) into the machine, and quits QEMU; resume
 * starts QEMU with -incoming defer and loads it back, or boots a version
 * that has no device state yet.
 *
 * Files of a running VM in DIR: qemu.pid, nbdkit.pid, qmp.sock, nbd.sock,
 * console.log (the guest's serial console), qemu.log and nbdkit.log
 * (their own messages), kernel and initrd (a kernel-booted VM), devstate
 * (the device state being loaded or saved). */
#ifndef VC_VM_H
#define VC_VM_H

#include <stdbool.h>
#include <stdint.h>

#include "backend/vc_backend.h"
#include "client/vc_workspace.h"

typedef struct VcResumeOpts {
        VcFetch fetch;
        const char *accel;         /* "tcg" or "kvm" (NULL: tcg) */
        bool foreground;           /* wait for QEMU to exit */
        bool quiet;
        const char *locator;       /* the store as the user named it */
        const char *cache_dir;     /* --cache, or NULL */
        char **qemu_args;          /* more QEMU arguments, after `--` */
        int nqemu_args;
} VcResumeOpts;

typedef struct VcResumeStats {
        uint32_t version;
        bool checked_out;          /* the workspace was made now (else it was there) */
        bool resumed;              /* the device state was loaded (else the guest booted) */
        char accel[8];             /* what QEMU runs with */
        VcWsCheckoutStats co;
        double checkout_seconds;   /* making the workspace */
        double start_seconds;      /* the disk server and QEMU, to a running guest */
        double seconds;
        uint64_t disk_present;     /* disk chunks in the host cache when the guest ran */
        uint64_t disk_chunks;
        int qemu_pid, nbd_pid;
} VcResumeStats;

/* Resumes parcel name (its latest version) in workspace dir: checks it out
 * into dir first unless dir is a workspace of name already (a VM suspended
 * here), starts the disk server and QEMU, and returns once the guest runs
 * (o->foreground: once QEMU has exited). b may be NULL when dir is a
 * workspace. On any error no process is left running and nothing is
 * checked in. */
int vc_vm_resume(VcBackend *b, const char *name, const char *dir, const VcResumeOpts *o, VcResumeStats *st);

typedef struct VcSuspendStats {
        uint64_t devstate_bytes;
        double seconds;            /* guest stopped to QEMU gone */
        bool checked_in;
        VcCheckinStats ci;
} VcSuspendStats;

/* Suspends the VM of workspace dir: stops the guest, saves its device
 * state into DIR/machine, quits QEMU and the disk server; with checkin,
 * checks the workspace in (release: and gives up the lease). If the
 * device state cannot be saved the guest runs on and nothing changes. */
int vc_vm_suspend(const char *dir, bool checkin, bool release, bool quiet, VcSuspendStats *st);

/* Is a VM running in dir? (1 yes, 0 no) and its QEMU's pid. */
int vc_vm_running(const char *dir, int *qemu_pid);

/* A machine that boots kernel and initrd (files) with the command line
 * append, or (kernel NULL) one that boots its disk. *out malloc'ed. */
int vc_vm_machine_new(const char *kernel, const char *initrd, const char *append, uint8_t **out, size_t *len);

#endif
