/* Resume and suspend a parcel's VM with QEMU (vc_vm.h). */
#include "vm/vc_vm.h"
#include "vm/vc_qmp.h"
#include "client/vc_client_int.h"
#include "client/vc_machine.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define START_TIMEOUT 60.0     /* QEMU up and its QMP socket open */
#define NBD_TIMEOUT 30.0       /* the disk server's socket */
#define MIGRATE_TIMEOUT 300.0  /* device state saved or loaded */
#define STOP_TIMEOUT 30.0      /* a process gone after being asked */

static int path_of(const char *dir, const char *name, char *buf, size_t len)
{
        int n = snprintf(buf, len, "%s/%s", dir, name);
        return n < 0 || (size_t)n >= len ? vc_errf(-ENAMETOOLONG, "the path %s/%s is too long", dir, name) : 0;
}

static void sleep_ms(long ms)
{
        struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };
        nanosleep(&ts, NULL);
}

static int read_pid(const char *dir, const char *name)
{
        char path[PATH_MAX];
        uint8_t *b = NULL;
        size_t n = 0;
        if (path_of(dir, name, path, sizeof path) < 0 || vc_read_file(path, &b, &n, 64) < 0) {
                vc_errclear();
                return 0;
        }
        long v = strtol((char *)b, NULL, 10);
        free(b);
        return v > 1 && v < INT_MAX ? (int)v : 0;
}

static int write_pid(const char *dir, const char *name, int pid)
{
        char path[PATH_MAX], buf[32];
        int n = snprintf(buf, sizeof buf, "%d\n", pid);
        int r = path_of(dir, name, path, sizeof path);
        return r < 0 ? r : vc_write_file_atomic(path, buf, (size_t)n, 0600);
}

/* Is pid alive? A child of ours that has exited is reaped here. */
static bool alive(int pid)
{
        if (pid <= 1)
                return false;
        int status;
        if (waitpid(pid, &status, WNOHANG) == pid)
                return false;
        if (kill(pid, 0) < 0 && errno == ESRCH)
                return false;
        /* a zombie that is not ours is gone too */
        char path[64], st = 0;
        snprintf(path, sizeof path, "/proc/%d/stat", pid);
        FILE *f = fopen(path, "r");
        if (!f)
                return false;
        int c;
        while ((c = fgetc(f)) != EOF && c != ')')
                ;
        if (fscanf(f, " %c", &st) != 1)
                st = 0;
        fclose(f);
        return st != 'Z';
}

static bool wait_gone(int pid, double timeout)
{
        double end = vc_mono() + timeout;
        while (alive(pid)) {
                if (vc_mono() >= end)
                        return false;
                sleep_ms(20);
        }
        return true;
}

/* Stops pid: SIGTERM, then SIGKILL if it lingers. */
static void stop_process(int pid)
{
        if (!alive(pid))
                return;
        kill(pid, SIGTERM);
        if (!wait_gone(pid, STOP_TIMEOUT)) {
                kill(pid, SIGKILL);
                wait_gone(pid, 5);
        }
}

/* The last lines of a log file, for an error message. */
static void log_tail(const char *dir, const char *name, char *out, size_t len)
{
        char path[PATH_MAX];
        uint8_t *b = NULL;
        size_t n = 0;
        out[0] = 0;
        if (path_of(dir, name, path, sizeof path) < 0 || vc_read_file(path, &b, &n, 16u << 20) < 0) {
                vc_errclear();
                return;
        }
        while (n && (b[n - 1] == '\n' || b[n - 1] == '\r'))
                n--;
        size_t from = n, lines = 0;
        while (from > 0 && lines < 3) {
                from--;
                if (b[from] == '\n')
                        lines++;
        }
        if (b[from] == '\n')
                from++;
        size_t k = 0;
        for (size_t i = from; i < n && k + 2 < len; i++)
                out[k++] = b[i] == '\n' ? ' ' : (char)b[i];
        out[k] = 0;
        free(b);
}

/* Starts argv in a session of its own, its output to DIR/log. */
static int spawn(char *const argv[], const char *dir, const char *log, int *pid)
{
        char path[PATH_MAX];
        int r = path_of(dir, log, path, sizeof path);
        if (r < 0)
                return r;
        int lfd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
        if (lfd < 0)
                return vc_errf(-errno, "cannot create %s: %s", path, strerror(errno));
        fflush(NULL);
        pid_t p = fork();
        if (p < 0) {
                int e = errno;
                close(lfd);
                return vc_errf(-e, "cannot fork: %s", strerror(e));
        }
        if (p == 0) {
                setsid();
                int nul = open("/dev/null", O_RDONLY);
                if (nul >= 0)
                        dup2(nul, 0);
                dup2(lfd, 1);
                dup2(lfd, 2);
                for (int fd = 3; fd < 1024; fd++)
                        close(fd);
                signal(SIGPIPE, SIG_DFL);
                execvp(argv[0], argv);
                dprintf(2, "vmcas: cannot run %s: %s\n", argv[0], strerror(errno));
                _exit(127);
        }
        close(lfd);
        *pid = (int)p;
        return 0;
}

int vc_vm_running(const char *dir, int *qemu_pid)
{
        int pid = read_pid(dir, "qemu.pid");
        if (qemu_pid)
                *qemu_pid = pid;
        return pid && alive(pid) ? 1 : 0;
}

int vc_vm_machine_new(const char *kernel, const char *initrd, const char *append, uint8_t **out, size_t *len)
{
        VcMachine m = { 0 };
        uint8_t *kb = NULL, *ib = NULL;
        size_t kn = 0, in = 0;
        int r = 0;
        snprintf(m.boot, sizeof m.boot, "%s", kernel ? "kernel" : "disk");
        if (append && strlen(append) >= sizeof m.append)
                return vc_errf(-EINVAL, "the kernel command line is longer than %zu bytes", sizeof m.append - 1);
        snprintf(m.append, sizeof m.append, "%s", append ? append : "");
        if (kernel) {
                if ((r = vc_read_file(kernel, &kb, &kn, VC_MACHINE_MAX)) < 0)
                        return vc_errf(r, "cannot read the kernel '%s': %s", kernel, strerror(-r));
                if (initrd && (r = vc_read_file(initrd, &ib, &in, VC_MACHINE_MAX)) < 0) {
                        free(kb);
                        return vc_errf(r, "cannot read the initramfs '%s': %s", initrd, strerror(-r));
                }
                if (kn < 1024) {
                        free(kb);
                        free(ib);
                        return vc_errf(-EINVAL, "'%s' is %zu bytes: that is no kernel", kernel, kn);
                }
                m.sec[VC_MS_KERNEL] = kb;
                m.len[VC_MS_KERNEL] = kn;
                m.sec[VC_MS_INITRD] = ib;
                m.len[VC_MS_INITRD] = in;
        }
        r = vc_machine_build(&m, out, len);
        free(kb);
        free(ib);
        return r;
}

/* ---- resume ------------------------------------------------------------------ */

/* Commas in a QEMU option value are doubled. */
static int qemu_escape(const char *in, char *out, size_t len)
{
        size_t k = 0;
        for (const char *c = in; *c; c++) {
                if (k + 3 > len)
                        return vc_errf(-ENAMETOOLONG, "the path '%s' is too long", in);
                out[k++] = *c;
                if (*c == ',')
                        out[k++] = ',';
        }
        out[k] = 0;
        return 0;
}

/* Whether /dev/kvm can be used by this process. */
static bool kvm_usable(void)
{
        int fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
        if (fd < 0)
                return false;
        close(fd);
        return true;
}

typedef struct Argv {
        char *v[256];
        int n;
} Argv;

static int arg(Argv *a, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int arg(Argv *a, const char *fmt, ...)
{
        if (a->n + 1 >= (int)VC_ARRAY_SIZE(a->v))
                return vc_errf(-E2BIG, "too many QEMU arguments");
        va_list ap;
        va_start(ap, fmt);
        int r = vasprintf(&a->v[a->n], fmt, ap);
        va_end(ap);
        if (r < 0)
                return -ENOMEM;
        a->n++;
        a->v[a->n] = NULL;
        return 0;
}

static void argv_free(Argv *a)
{
        for (int i = 0; i < a->n; i++)
                free(a->v[i]);
        a->n = 0;
}

/* Writes a section of the machine to DIR/name (0600). */
static int write_section(const char *dir, const char *name, const uint8_t *b, size_t n)
{
        char path[PATH_MAX];
        int r = path_of(dir, name, path, sizeof path);
        if (r >= 0 && (r = vc_write_file_atomic(path, b, n, 0600)) < 0)
                vc_errf_prefix(r, "writing %s", path);
        return r;
}

static void cleanup_run(const char *dir)
{
        static const char *const files[] = { "qemu.pid", "nbdkit.pid", "qmp.sock", "nbd.sock" };
        char path[PATH_MAX];
        for (size_t i = 0; i < VC_ARRAY_SIZE(files); i++)
                if (path_of(dir, files[i], path, sizeof path) == 0)
                        unlink(path);
}

/* Can a Unix socket at path be connected to? */
static bool listening(const char *path)
{
        struct sockaddr_un a = { .sun_family = AF_UNIX };
        if (strlen(path) >= sizeof a.sun_path)
                return false;
        strcpy(a.sun_path, path);
        int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
        if (fd < 0)
                return false;
        bool ok = connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
        close(fd);
        return ok;
}

/* Waits until process pid listens on the Unix socket path: -ECHILD if it
 * exits first. */
static int wait_socket(const char *path, int pid, double timeout)
{
        double end = vc_mono() + timeout;
        while (!listening(path)) {
                if (!alive(pid))
                        return -ECHILD;
                if (vc_mono() >= end)
                        return -ETIMEDOUT;
                sleep_ms(20);
        }
        return alive(pid) ? 0 : -ECHILD;
}

static int start_vm(const char *dir, const VcWsInfo *in, const VcMachine *m, const VcResumeOpts *o,
                    VcResumeStats *st)
{
        char self[PATH_MAX], sock[PATH_MAX], qmp[PATH_MAX], mem[PATH_MAX], con[PATH_MAX], dev[PATH_MAX];
        char esc[2 * PATH_MAX + 8], tail[1024];
        Argv a = { 0 };
        int nbd_pid = 0, qemu_pid = 0, r;
        VcQmp *q = NULL;
        ssize_t sn = readlink("/proc/self/exe", self, sizeof self - 1);
        if (sn <= 0)
                return vc_errf(-errno, "cannot find this program: %s", strerror(errno));
        self[sn] = 0;
        if ((r = path_of(dir, "nbd.sock", sock, sizeof sock)) < 0 || (r = path_of(dir, "qmp.sock", qmp, sizeof qmp)) < 0 ||
            (r = path_of(dir, "memory", mem, sizeof mem)) < 0 || (r = path_of(dir, "console.log", con, sizeof con)) < 0 ||
            (r = path_of(dir, "devstate", dev, sizeof dev)) < 0)
                return r;
        if (strchr(dir, '\'') || strchr(dir, '\n'))
                return vc_errf(-EINVAL, "the workspace path '%s' has a quote or a newline, which QEMU's exec: "
                               "migration cannot take", dir);
        if (in->mem_size % (1u << 20) || in->mem_size < (16u << 20))
                return vc_errf(-EINVAL, "parcel '%s' has a memory image of %" PRIu64 " bytes; a VM's RAM is a "
                               "whole number of MiB, at least 16", in->parcel, in->mem_size);
        unlink(qmp);
        unlink(sock);
        /* the disk first: QEMU opens it as it starts */
        char *nbd_argv[] = { self, "-q", "workspace", "serve", (char *)dir, "--socket", sock, NULL };
        if ((r = spawn(nbd_argv, dir, "nbdkit.log", &nbd_pid)) < 0)
                return r;
        write_pid(dir, "nbdkit.pid", nbd_pid);
        if ((r = wait_socket(sock, nbd_pid, NBD_TIMEOUT)) < 0) {
                log_tail(dir, "nbdkit.log", tail, sizeof tail);
                r = vc_errf(r == -ECHILD ? -EIO : r, "the disk server did not start%s%s", tail[0] ? ": " : "", tail);
                goto fail;
        }
        /* the accelerator: TCG unless KVM is asked for and works */
        const char *accel = o->accel && strcmp(o->accel, "kvm") == 0 ? "kvm" : "tcg";
        if (strcmp(accel, "kvm") == 0 && !kvm_usable()) {
                if (!o->quiet)
                        fprintf(stderr, "vmcas: /dev/kvm cannot be used here: running under TCG\n");
                accel = "tcg";
        }
        const char *qemu = getenv("VMCAS_QEMU");
        if (!qemu || !*qemu)
                qemu = "qemu-system-x86_64";
        bool incoming = m->sec[VC_MS_DEVSTATE] != NULL;
        for (int attempt = 0; attempt < 2; attempt++) {
                argv_free(&a);
                char emem[2 * PATH_MAX], esock[2 * PATH_MAX], econ[2 * PATH_MAX], eqmp[2 * PATH_MAX];
                if ((r = qemu_escape(mem, emem, sizeof emem)) < 0 || (r = qemu_escape(sock, esock, sizeof esock)) < 0 ||
                    (r = qemu_escape(con, econ, sizeof econ)) < 0 || (r = qemu_escape(qmp, eqmp, sizeof eqmp)) < 0)
                        goto fail;
                uint64_t mib = in->mem_size >> 20;
                if ((r = arg(&a, "%s", qemu)) < 0 || (r = arg(&a, "-name")) < 0 ||
                    (r = arg(&a, "vmcas-%s", in->parcel)) < 0 || (r = arg(&a, "-machine")) < 0 ||
                    (r = arg(&a, "pc,accel=%s,memory-backend=vmcas-ram", accel)) < 0 || (r = arg(&a, "-m")) < 0 ||
                    (r = arg(&a, "%" PRIu64 "M", mib)) < 0 || (r = arg(&a, "-object")) < 0 ||
                    (r = arg(&a, "memory-backend-file,id=vmcas-ram,size=%" PRIu64 "M,mem-path=%s,share=on", mib,
                             emem)) < 0 ||
                    (r = arg(&a, "-blockdev")) < 0 ||
                    (r = arg(&a, "driver=nbd,node-name=vmcas-disk,server.type=unix,server.path=%s", esock)) < 0 ||
                    (r = arg(&a, "-device")) < 0 || (r = arg(&a, "virtio-blk-pci,drive=vmcas-disk,bootindex=1")) < 0 ||
                    (r = arg(&a, "-nodefaults")) < 0 || (r = arg(&a, "-display")) < 0 || (r = arg(&a, "none")) < 0 ||
                    (r = arg(&a, "-serial")) < 0 || (r = arg(&a, "file:%s", econ)) < 0 || (r = arg(&a, "-qmp")) < 0 ||
                    (r = arg(&a, "unix:%s,server=on,wait=off", eqmp)) < 0)
                        goto fail;
                if (strcmp(m->boot, "kernel") == 0) {
                        char k[PATH_MAX], i[PATH_MAX];
                        if ((r = path_of(dir, "kernel", k, sizeof k)) < 0 || (r = path_of(dir, "initrd", i, sizeof i)) < 0 ||
                            (r = arg(&a, "-kernel")) < 0 || (r = arg(&a, "%s", k)) < 0)
                                goto fail;
                        if (m->sec[VC_MS_INITRD] && ((r = arg(&a, "-initrd")) < 0 || (r = arg(&a, "%s", i)) < 0))
                                goto fail;
                        if ((r = arg(&a, "-append")) < 0 || (r = arg(&a, "%s", m->append)) < 0)
                                goto fail;
                }
                if (incoming && ((r = arg(&a, "-incoming")) < 0 || (r = arg(&a, "defer")) < 0))
                        goto fail;
                for (int i = 0; i < o->nqemu_args; i++)
                        if ((r = arg(&a, "%s", o->qemu_args[i])) < 0)
                                goto fail;
                unlink(qmp);
                if ((r = spawn(a.v, dir, "qemu.log", &qemu_pid)) < 0)
                        goto fail;
                write_pid(dir, "qemu.pid", qemu_pid);
                r = wait_socket(qmp, qemu_pid, START_TIMEOUT);
                if (r == -ECHILD && strcmp(accel, "kvm") == 0) {
                        /* KVM would not start: TCG, as documented */
                        if (!o->quiet)
                                fprintf(stderr, "vmcas: QEMU did not start under KVM: running under TCG\n");
                        accel = "tcg";
                        continue;
                }
                break;
        }
        snprintf(st->accel, sizeof st->accel, "%s", accel);
        if (r < 0 || (r = vc_qmp_connect(qmp, START_TIMEOUT, &q)) < 0) {
                log_tail(dir, "qemu.log", tail, sizeof tail);
                char why[1024];
                snprintf(why, sizeof why, "%s", vc_errmsg(r));
                r = vc_errf_replace(-EIO, "QEMU did not start: %s", tail[0] ? tail : why);
                goto fail;
        }
        if (incoming) {
                int n = snprintf(esc, sizeof esc, "exec:cat '%s'", dev);
                if (n < 0 || (size_t)n >= sizeof esc) {
                        r = vc_errf(-ENAMETOOLONG, "the workspace path is too long");
                        goto fail;
                }
                json_t *caps = json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "x-ignore-shared", "state", 1);
                if ((r = vc_qmp_cmd(q, "migrate-set-capabilities", caps, 10, NULL)) < 0 ||
                    (r = vc_qmp_cmd(q, "migrate-incoming", json_pack("{s:s}", "uri", esc), 10, NULL)) < 0 ||
                    (r = vc_qmp_wait_migration(q, MIGRATE_TIMEOUT)) < 0 ||
                    (r = vc_qmp_cmd(q, "cont", NULL, 30, NULL)) < 0) {
                        char msg[1024];
                        snprintf(msg, sizeof msg, "%s", vc_errmsg(r));
                        sleep_ms(200);
                        log_tail(dir, "qemu.log", tail, sizeof tail);
                        r = vc_errf_replace(-EIO, "the device state of version %u of parcel '%s' does not load "
                                            "into QEMU (the VM was suspended with other devices, or another "
                                            "QEMU?): %s", in->version, in->parcel, tail[0] ? tail : msg);
                        goto fail;
                }
        }
        char status[32];
        double end = vc_mono() + 30;
        while ((r = vc_qmp_status(q, status, sizeof status)) >= 0 && strcmp(status, "running") != 0 &&
               vc_mono() < end)
                sleep_ms(20);
        if (r >= 0 && strcmp(status, "running") != 0)
                r = vc_errf(-EIO, "the guest is %s, not running", status);
        if (r < 0)
                goto fail;
        st->resumed = incoming;
        st->qemu_pid = qemu_pid;
        st->nbd_pid = nbd_pid;
        vc_qmp_close(q);
        argv_free(&a);
        unlink(dev);
        return 0;
fail:
        vc_qmp_close(q);
        argv_free(&a);
        {
                VcErr e = VC_ERR_INIT;
                vc_err_save(&e, r);
                if (qemu_pid) {
                        kill(qemu_pid, SIGKILL);
                        wait_gone(qemu_pid, STOP_TIMEOUT);
                }
                stop_process(nbd_pid);
                cleanup_run(dir);
                unlink(dev);
                vc_err_raise(&e);
        }
        return r;
}

static bool is_workspace(const char *dir)
{
        char path[PATH_MAX];
        return path_of(dir, "workspace", path, sizeof path) == 0 && access(path, F_OK) == 0;
}

int vc_vm_resume(VcBackend *b, const char *name, const char *dir, const VcResumeOpts *o, VcResumeStats *st)
{
        memset(st, 0, sizeof *st);
        double t0 = vc_mono();
        int r;
        if (is_workspace(dir)) {
                VcWsStatus ws;
                if ((r = vc_ws_status(dir, &ws)) < 0)
                        return r;
                if (name && strcmp(ws.info.parcel, name) != 0)
                        return vc_errf(-EEXIST, "'%s' is a workspace of parcel '%s', not '%s'", dir, ws.info.parcel,
                                       name);
                int pid;
                if (vc_vm_running(dir, &pid))
                        return vc_errf(-EBUSY, "a VM already runs in %s (QEMU pid %d): `vmcas suspend %s` first", dir,
                                       pid, dir);
                if (ws.served)
                        return vc_errf(-EBUSY, "the disk of %s is being served by another process", dir);
        } else {
                if (!b)
                        return vc_errf(-EINVAL, "'%s' is not a workspace", dir);
                VcWsCheckoutOpts co = { .fetch = o->fetch, .quiet = o->quiet, .locator = o->locator,
                                        .cache_dir = o->cache_dir };
                if ((r = vc_ws_checkout(b, name, dir, &co, &st->co)) < 0)
                        return r;
                st->checked_out = true;
                st->checkout_seconds = vc_mono() - t0;
        }
        double t1 = vc_mono();
        VcWsStatus ws;
        if ((r = vc_ws_status(dir, &ws)) < 0)
                return r;
        st->version = ws.info.version;
        char path[PATH_MAX];
        uint8_t *mach = NULL;
        size_t mlen = 0;
        if ((r = path_of(dir, "machine", path, sizeof path)) < 0)
                return r;
        if ((r = vc_read_file(path, &mach, &mlen, VC_MACHINE_MAX)) < 0) {
                if (r == -ENOENT)
                        return vc_errf(-ENOENT, "version %u of parcel '%s' has no machine to run (it was checked in "
                                       "from images: make a VM's parcel with `parcel create --from-qemu` or "
                                       "`--from-disk`)", ws.info.version, ws.info.parcel);
                return vc_errf(r, "cannot read %s: %s", path, strerror(-r));
        }
        VcMachine m;
        if ((r = vc_machine_parse(mach, mlen, &m)) < 0) {
                vc_errf_prefix(r, "%s", path);
                goto out;
        }
        if ((m.sec[VC_MS_KERNEL] && (r = write_section(dir, "kernel", m.sec[VC_MS_KERNEL], m.len[VC_MS_KERNEL])) < 0) ||
            (m.sec[VC_MS_INITRD] && (r = write_section(dir, "initrd", m.sec[VC_MS_INITRD], m.len[VC_MS_INITRD])) < 0) ||
            (m.sec[VC_MS_DEVSTATE] &&
             (r = write_section(dir, "devstate", m.sec[VC_MS_DEVSTATE], m.len[VC_MS_DEVSTATE])) < 0))
                goto out;
        if ((r = start_vm(dir, &ws.info, &m, o, st)) < 0)
                goto out;
        st->start_seconds = vc_mono() - t1;
        st->seconds = vc_mono() - t0;
        VcWsStatus now;
        if (vc_ws_status(dir, &now) == 0) {
                st->disk_present = now.present;
                st->disk_chunks = now.chunks - now.zero;
        } else
                vc_errclear();
        if (o->foreground) {
                int status;
                while (waitpid(st->qemu_pid, &status, 0) < 0 && errno == EINTR)
                        ;
                stop_process(st->nbd_pid);
                cleanup_run(dir);
        }
out:
        free(mach);
        return r < 0 ? r : 0;
}

/* ---- suspend ----------------------------------------------------------------- */

int vc_vm_suspend(const char *dir, bool checkin, bool release, bool quiet, VcSuspendStats *st)
{
        memset(st, 0, sizeof *st);
        char qmp[PATH_MAX], dev[PATH_MAX], mpath[PATH_MAX], mem[PATH_MAX], uri[PATH_MAX + 32];
        int r, pid = 0;
        VcQmp *q = NULL;
        uint8_t *mach = NULL, *ds = NULL, *out = NULL;
        size_t mlen = 0, dlen = 0, olen = 0;
        if (!is_workspace(dir))
                return vc_errf(-ENOENT, "'%s' is not a workspace", dir);
        if (!vc_vm_running(dir, &pid))
                return vc_errf(-ESRCH, "no VM runs in %s", dir);
        if ((r = path_of(dir, "qmp.sock", qmp, sizeof qmp)) < 0 || (r = path_of(dir, "devstate.new", dev, sizeof dev)) < 0 ||
            (r = path_of(dir, "machine", mpath, sizeof mpath)) < 0 || (r = path_of(dir, "memory", mem, sizeof mem)) < 0)
                return r;
        if ((r = vc_read_file(mpath, &mach, &mlen, VC_MACHINE_MAX)) < 0)
                return vc_errf(r, "cannot read %s: %s", mpath, strerror(-r));
        VcMachine m;
        if ((r = vc_machine_parse(mach, mlen, &m)) < 0)
                goto out;
        double t0 = vc_mono();
        if ((r = vc_qmp_connect(qmp, 10, &q)) < 0)
                goto out;
        char status[32];
        if ((r = vc_qmp_cmd(q, "stop", NULL, STOP_TIMEOUT, NULL)) < 0)
                goto out;
        double end = vc_mono() + STOP_TIMEOUT;
        while ((r = vc_qmp_status(q, status, sizeof status)) >= 0 && strcmp(status, "running") == 0 &&
               vc_mono() < end)
                sleep_ms(20);
        if (r >= 0 && strcmp(status, "running") == 0)
                r = vc_errf(-ETIMEDOUT, "the guest did not stop within %.0f s; it runs on", STOP_TIMEOUT);
        if (r < 0)
                goto out;
        unlink(dev);
        snprintf(uri, sizeof uri, "exec:cat > '%s'", dev);
        json_t *caps = json_pack("{s:[{s:s,s:b}]}", "capabilities", "capability", "x-ignore-shared", "state", 1);
        if ((r = vc_qmp_cmd(q, "migrate-set-capabilities", caps, 10, NULL)) < 0 ||
            (r = vc_qmp_cmd(q, "migrate", json_pack("{s:s}", "uri", uri), 10, NULL)) < 0 ||
            (r = vc_qmp_wait_migration(q, MIGRATE_TIMEOUT)) < 0)
                goto resume_guest;
        if ((r = vc_read_file(dev, &ds, &dlen, VC_MACHINE_MAX)) < 0) {
                r = vc_errf(r, "cannot read the saved device state %s: %s", dev, strerror(-r));
                goto resume_guest;
        }
        if (dlen == 0) {
                r = vc_errf(-EIO, "QEMU saved an empty device state");
                goto resume_guest;
        }
        m.sec[VC_MS_DEVSTATE] = ds;
        m.len[VC_MS_DEVSTATE] = dlen;
        if ((r = vc_machine_build(&m, &out, &olen)) < 0 || (r = vc_write_file_atomic(mpath, out, olen, 0600)) < 0) {
                vc_errf_prefix(r, "saving the device state into %s", mpath);
                goto resume_guest;
        }
        st->devstate_bytes = dlen;
        /* the state is saved: QEMU goes (it flushed the disk at the
         * migration's end), then the disk server */
        if (vc_qmp_cmd(q, "quit", NULL, 10, NULL) < 0)
                vc_errclear();
        vc_qmp_close(q);
        q = NULL;
        if (!wait_gone(pid, STOP_TIMEOUT)) {
                kill(pid, SIGKILL);
                wait_gone(pid, 5);
        }
        int mfd = open(mem, O_RDWR | O_CLOEXEC);
        if (mfd < 0 || fsync(mfd) < 0) {
                r = vc_errf(-errno, "cannot make the memory image %s durable: %s", mem, strerror(errno));
                if (mfd >= 0)
                        close(mfd);
                goto out;
        }
        close(mfd);
        stop_process(read_pid(dir, "nbdkit.pid"));
        cleanup_run(dir);
        unlink(dev);
        st->seconds = vc_mono() - t0;
        if (checkin) {
                if ((r = vc_ws_checkin(dir, release, quiet, &st->ci)) < 0) {
                        vc_errf_prefix(r, "the VM is suspended in %s, but its checkin failed (`vmcas workspace "
                                       "checkin %s` tries again)", dir, dir);
                        goto out;
                }
                st->checked_in = true;
        }
        goto out;
resume_guest: {
        /* the state could not be saved: the guest goes on as it was */
        VcErr e = VC_ERR_INIT;
        vc_err_save(&e, r);
        if (q && vc_qmp_cmd(q, "cont", NULL, 10, NULL) < 0)
                vc_errclear();
        unlink(dev);
        vc_err_raise(&e);
        vc_errf_prefix(r, "the VM in %s was not suspended and runs on", dir);
}
out:
        vc_qmp_close(q);
        free(mach);
        free(ds);
        free(out);
        return r < 0 ? r : 0;
}
