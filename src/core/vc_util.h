/* vc_util — small helpers shared by every part of vmcas.
 *
 * Error convention (all of libvmcas): functions return int, 0 or a positive
 * count on success and -errno on failure.  Codes with a fixed meaning:
 *   -EBADMSG   a digest or checksum mismatch (damaged data)
 *   -ENOENT    no such parcel / version / chunk / file
 *   -EINVAL    bad argument or malformed input
 *   -EBUSY     a lock is held by another process
 *   -EKEYREJECTED  wrong key (authentication of sealed metadata failed)
 *   -ENOKEY    the key is missing from the key store
 * A function that fails may leave a sentence for the user with vc_errf();
 * only the command prints it (vc_errmsg()).
 *
 * The sentence belongs to the thread that set it. Work done on other
 * threads hands its error back as a VcErr value (below): the worker saves
 * its code and sentence into it, and the thread that reports raises it
 * again. vc_pool (core/vc_pool.h) does both for a pool of workers, so
 * whoever calls it gets the first failing worker's sentence.
 */
#ifndef VC_UTIL_H
#define VC_UTIL_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>
#include <sys/types.h>

#define VC_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define VC_MIN(a, b) ((a) < (b) ? (a) : (b))
#define VC_MAX(a, b) ((a) > (b) ? (a) : (b))
#define _vc_cleanup_(f) __attribute__((cleanup(f)))
#define _vc_printf_(a, b) __attribute__((format(printf, a, b)))

/* Records a message for the user (thread-local) and returns err (negative).
 * The first message set since vc_errclear() wins, so the innermost, most
 * specific cause is what the user sees. */
int vc_errf(int err, const char *fmt, ...) _vc_printf_(2, 3);
/* Same, but replaces any earlier message. */
int vc_errf_replace(int err, const char *fmt, ...) _vc_printf_(2, 3);
/* Puts context in front of this thread's message (or of strerror(err) if
 * it has none): "CONTEXT: message". For a caller that knows what its callee
 * did not (the parcel, version, image or chunk): the innermost cause stays,
 * and says where it happened. */
int vc_errf_prefix(int err, const char *fmt, ...) _vc_printf_(2, 3);
/* The message recorded for this thread, or strerror(-err) if none. */
const char *vc_errmsg(int err);
/* Forgets this thread's message. A thread that starts a new piece of work
 * (a request of a server, a job of a pool) calls it first. */
void vc_errclear(void);

/* An error with its message, as a value that can cross threads.
 *
 *   VcErr e = VC_ERR_INIT;       (shared by the workers, or one's own)
 *   worker:  return vc_err_save(&e, r);        keeps the first error only
 *   worker:  if (vc_err_failed(&e)) stop;      another worker has failed
 *   after joining them:  return vc_err_raise(&e);  code and message here
 *
 * Several threads may save into one VcErr at once: the first error saved
 * wins, with its own message, and later ones are dropped (an atomic flag,
 * no lock). vc_err_failed may be called at any time. Read code and msg,
 * copy or clear the value only when no thread can still save into it
 * (vc_err_raise also waits for a save in progress to finish). */
#define VC_ERRMSG_MAX 1024
typedef struct VcErr {
        int code;                     /* 0, or the first error saved (negative) */
        char msg[VC_ERRMSG_MAX];      /* its message; "" if its thread had none */
        _Atomic int state_;           /* private: 0 empty, 1 being saved, 2 saved */
} VcErr;
#define VC_ERR_INIT { 0 }
/* If r < 0 and e holds no error yet, saves r and this thread's message (a
 * copy: the thread keeps its own). Returns r, whatever it is. */
int vc_err_save(VcErr *e, int r);
/* If e holds an error, makes its message this thread's message (replacing
 * any) or, if it had none, clears this thread's; returns its code. Returns
 * 0 and changes nothing if e holds no error. */
int vc_err_raise(const VcErr *e);
/* Whether an error was saved into e (or is being saved). */
bool vc_err_failed(const VcErr *e);
void vc_err_clear(VcErr *e);

/* Parses "4096", "4K", "4KiB", "64k", "1M", "2G", "1T" (binary units).
 * Returns -EINVAL (with a message naming `what`) on anything else,
 * including overflow, empty strings and trailing junk. */
int vc_parse_size(const char *s, const char *what, uint64_t *ret);
/* Formats n as "4 KiB", "1.5 MiB" into buf (at least 16 bytes). */
const char *vc_fmt_size(uint64_t n, char *buf, size_t len);
/* Parses a non-negative decimal integer that fits in uint64. */
int vc_parse_u64(const char *s, const char *what, uint64_t *ret);

void vc_hex(const uint8_t *in, size_t n, char *out /* 2n+1 */);
int vc_unhex(const char *in, uint8_t *out, size_t n);

/* Wipes a secret so the compiler cannot drop the store. */
void vc_wipe(void *p, size_t n);

/* Little-endian packing, Venti-style: explicit, never a struct over bytes. */
static inline void vc_put16(uint8_t *p, uint16_t v) { p[0] = v; p[1] = v >> 8; }
static inline void vc_put32(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (8 * i); }
static inline void vc_put64(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (8 * i); }
static inline uint16_t vc_get16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t vc_get32(const uint8_t *p) { uint32_t v = 0; for (int i = 3; i >= 0; i--) v = v << 8 | p[i]; return v; }
static inline uint64_t vc_get64(const uint8_t *p) { uint64_t v = 0; for (int i = 7; i >= 0; i--) v = v << 8 | p[i]; return v; }
/* Big-endian, for LMDB keys that must sort numerically. */
static inline void vc_put64be(uint8_t *p, uint64_t v) { for (int i = 0; i < 8; i++) p[i] = v >> (56 - 8 * i); }
static inline uint64_t vc_get64be(const uint8_t *p) { uint64_t v = 0; for (int i = 0; i < 8; i++) v = v << 8 | p[i]; return v; }
static inline void vc_put32be(uint8_t *p, uint32_t v) { for (int i = 0; i < 4; i++) p[i] = v >> (24 - 8 * i); }
static inline uint32_t vc_get32be(const uint8_t *p) { uint32_t v = 0; for (int i = 0; i < 4; i++) v = v << 8 | p[i]; return v; }

/* I/O that retries on EINTR and short counts. -errno on failure;
 * vc_pread_full returns -EIO (with message) on a short file. */
int vc_write_full(int fd, const void *buf, size_t n);
int vc_pwrite_full(int fd, const void *buf, size_t n, off_t off);
int vc_pread_full(int fd, void *buf, size_t n, off_t off);
/* fsync()s the directory holding path (after a create or rename). */
int vc_fsync_dir(const char *dir);
/* Writes a whole file atomically: temp name, fsync, rename, fsync dir. */
int vc_write_file_atomic(const char *path, const void *buf, size_t n, mode_t mode);
/* Reads a whole (small) file into a malloc'ed buffer. */
int vc_read_file(const char *path, uint8_t **ret, size_t *ret_len, size_t max);
/* mkdir -p */
int vc_mkdir_p(const char *path, mode_t mode);

/* Wall clock in seconds / monotonic seconds as a double. */
int64_t vc_now(void);
double vc_mono(void);

void vc_freep(void *p); /* for _vc_cleanup_(vc_freep) on any pointer */
void vc_closep(int *fd);

/* Progress on stderr for long work: shown only when stderr is a terminal
 * or VMCAS_PROGRESS=1, never when quiet. Call vc_progress with the total
 * done so far; it redraws at most ~5 times a second. */
typedef struct VcProgress {
        const char *what;
        uint64_t total;     /* bytes expected, 0 if unknown */
        uint64_t done;      /* the last count reported */
        double start, last;
        bool enabled;
} VcProgress;
void vc_progress_init(VcProgress *p, const char *what, uint64_t total, bool quiet);
void vc_progress(VcProgress *p, uint64_t done);
void vc_progress_end(VcProgress *p, uint64_t done);

/* A test hook: if $env names a path, creates that file and waits (up
 * to a minute) until the test removes it. */
void vc_test_hold(const char *env);

#endif
