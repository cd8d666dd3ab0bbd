/* vc-testimg: deterministic VM-like test images for the tests and benches.
 *
 *   vc-testimg new FILE SIZE SEED      pseudo-random data with all-zero
 *                                      regions (~20 %) and 4 KiB pages that
 *                                      repeat (~10 %), like a memory image
 *   vc-testimg random FILE SIZE SEED   pseudo-random data, no zero or repeat
 *   vc-testimg mutate FILE SEED PCT    rewrites PCT % of the file in runs of
 *                                      4-64 pages at random places
 *   vc-testimg flip FILE OFFSET        flips one bit of the byte at OFFSET
 */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static uint64_t st;
static uint64_t rnd(void)
{
        st += 0x9E3779B97F4A7C15ULL;
        uint64_t z = st;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
        return z ^ (z >> 31);
}

static void page(uint8_t *p, size_t n, uint64_t seed)
{
        uint64_t save = st;
        st = seed;
        for (size_t i = 0; i < n; i += 8) {
                uint64_t v = rnd();
                memcpy(p + i, &v, n - i < 8 ? n - i : 8);
        }
        st = save;
}

static unsigned long long num(const char *s)
{
        char *e;
        errno = 0;
        unsigned long long v = strtoull(s, &e, 0);
        if (errno || *e) {
                fprintf(stderr, "vc-testimg: bad number '%s'\n", s);
                exit(2);
        }
        return v;
}

int main(int argc, char **argv)
{
        if (argc == 5 && (strcmp(argv[1], "new") == 0 || strcmp(argv[1], "random") == 0)) {
                bool mixed = strcmp(argv[1], "new") == 0;
                uint64_t size = num(argv[3]);
                st = num(argv[4]);
                FILE *f = fopen(argv[2], "wb");
                if (!f)
                        return perror(argv[2]), 1;
                uint8_t buf[4096];
                for (uint64_t off = 0; off < size; off += 4096) {
                        size_t n = size - off < 4096 ? (size_t)(size - off) : 4096;
                        uint64_t k = mixed ? rnd() % 100 : 100;
                        if (k < 20)
                                memset(buf, 0, n);
                        else if (k < 30)
                                page(buf, n, 1000 + rnd() % 16);    /* a shared page */
                        else
                                page(buf, n, rnd());
                        if (fwrite(buf, 1, n, f) != n)
                                return perror(argv[2]), 1;
                }
                return fclose(f) ? 1 : 0;
        }
        if (argc == 5 && strcmp(argv[1], "mutate") == 0) {
                st = num(argv[3]);
                unsigned pct = (unsigned)num(argv[4]);
                int fd = open(argv[2], O_RDWR);
                struct stat sb;
                if (fd < 0 || fstat(fd, &sb) < 0)
                        return perror(argv[2]), 1;
                uint64_t pages = ((uint64_t)sb.st_size + 4095) / 4096, want = pages * pct / 100, done = 0;
                uint8_t buf[4096];
                while (done < want && pages) {
                        uint64_t at = rnd() % pages, run = 4 + rnd() % 61;
                        for (uint64_t i = at; i < at + run && i < pages && done < want; i++, done++) {
                                size_t n = (uint64_t)sb.st_size - i * 4096 < 4096 ? (size_t)((uint64_t)sb.st_size - i * 4096) : 4096;
                                page(buf, n, rnd());
                                if (pwrite(fd, buf, n, (off_t)(i * 4096)) != (ssize_t)n)
                                        return perror(argv[2]), 1;
                        }
                }
                return close(fd) ? 1 : 0;
        }
        if (argc == 4 && strcmp(argv[1], "flip") == 0) {
                int fd = open(argv[2], O_RDWR);
                off_t off = (off_t)num(argv[3]);
                uint8_t b;
                if (fd < 0 || pread(fd, &b, 1, off) != 1)
                        return perror(argv[2]), 1;
                b ^= 0x10;
                if (pwrite(fd, &b, 1, off) != 1)
                        return perror(argv[2]), 1;
                return close(fd) ? 1 : 0;
        }
        fprintf(stderr, "usage: vc-testimg new|random FILE SIZE SEED | mutate FILE SEED PCT | flip FILE OFFSET\n");
        return 2;
}
