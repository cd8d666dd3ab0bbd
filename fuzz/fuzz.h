/* fuzz.h — what the fuzz targets share.
 *
 * Each fuzz/fuzz_<name>.c defines LLVMFuzzerTestOneInput() and calls the
 * real parser of libvmcas on the input. The same object is linked two
 * ways (see the Makefile): with libFuzzer by clang (`make fuzz`), and with
 * fuzz/replay.c by the normal compiler under ASan+UBSan, so `make test`
 * replays every committed corpus without clang.
 *
 * A target reports a broken invariant with FUZZ_CHECK, which aborts: to
 * both drivers that is a crash, like a sanitizer's report.
 */
#ifndef VC_FUZZ_H
#define VC_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Aborts with the file, line and condition when cond is false. */
#define FUZZ_CHECK(cond) ((cond) ? (void)0 : fuzz_fail(__FILE__, __LINE__, #cond))
void fuzz_fail(const char *file, int line, const char *what) __attribute__((noreturn));

/* An output buffer of n bytes followed by FUZZ_GUARD guard bytes, and the
 * check that they are untouched. zlib and libzstd come from Debian,
 * without ASan: a write of theirs past the n bytes is seen only this way. */
#define FUZZ_GUARD 64
uint8_t *fuzz_guarded(size_t n);
void fuzz_guard_check(const uint8_t *buf, size_t n);

/* With $FUZZ_VERBOSE set, prints a line on stderr (what a target made of
 * an input, to see which seeds reach how far). */
void fuzz_note(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* A private scratch directory for this process, made on first use under
 * $TMPDIR (or /tmp) and removed at exit. */
const char *fuzz_tmpdir(void);

/* Replaces the file at path with data[0..n), mode mode. Aborts on failure
 * (the target cannot go on without it). */
void fuzz_write_file(const char *path, const void *data, size_t n, unsigned mode);

/* A memfd holding data[0..n), for parsers that read a file descriptor.
 * The caller closes it. */
int fuzz_memfd(const void *data, size_t n);

#endif
