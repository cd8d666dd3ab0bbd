/* replay — runs a fuzz target on saved inputs, without libFuzzer.
 *
 *   replay_<name> DIR|FILE...
 *
 * Feeds every regular file of each DIR (in name order, not recursive) and
 * every FILE to LLVMFuzzerTestOneInput, each in a buffer of exactly its
 * size so that ASan sees any read past the end, as libFuzzer's standalone
 * driver does. Built with the normal compiler under ASan+UBSan, so `make
 * test` replays the committed corpora (fuzz/corpus/<name>/) without
 * clang. Exits 0 when every input ran (a crash aborts), 1 on an I/O error
 * or when no input was found.
 */
#include "fuzz.h"

#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

/* libFuzzer calls it first if a target defines it. */
int LLVMFuzzerInitialize(int *argc, char ***argv) __attribute__((weak));

static int run_file(const char *path)
{
        FILE *f = fopen(path, "rb");
        if (!f) {
                fprintf(stderr, "replay: cannot open %s: %s\n", path, strerror(errno));
                return -1;
        }
        struct stat st;
        if (fstat(fileno(f), &st) < 0) {
                fprintf(stderr, "replay: cannot stat %s: %s\n", path, strerror(errno));
                fclose(f);
                return -1;
        }
        size_t n = (size_t)st.st_size;
        uint8_t *buf = malloc(n ? n : 1);
        if (!buf || fread(buf, 1, n, f) != n) {
                fprintf(stderr, "replay: cannot read %s\n", path);
                free(buf);
                fclose(f);
                return -1;
        }
        fclose(f);
        if (getenv("REPLAY_VERBOSE"))
                fprintf(stderr, "replay: %s (%zu bytes)\n", path, n);
        LLVMFuzzerTestOneInput(buf, n);
        free(buf);
        return 0;
}

static int name_cmp(const void *a, const void *b)
{
        return strcmp(*(char *const *)a, *(char *const *)b);
}

static int run_dir(const char *dir, size_t *count)
{
        DIR *d = opendir(dir);
        if (!d) {
                fprintf(stderr, "replay: cannot read %s: %s\n", dir, strerror(errno));
                return -1;
        }
        char **names = NULL;
        size_t n = 0;
        struct dirent *e;
        int r = 0;
        while ((e = readdir(d))) {
                if (e->d_name[0] == '.')
                        continue;
                char **nv = realloc(names, (n + 1) * sizeof *nv);
                if (!nv || !(nv[n] = malloc(strlen(dir) + strlen(e->d_name) + 2))) {
                        names = nv ? nv : names;
                        r = -1;
                        break;
                }
                names = nv;
                sprintf(names[n++], "%s/%s", dir, e->d_name);
        }
        closedir(d);
        if (r == 0)
                qsort(names, n, sizeof *names, name_cmp);
        for (size_t i = 0; i < n; i++) {
                struct stat st;
                if (r == 0 && stat(names[i], &st) == 0 && S_ISREG(st.st_mode)) {
                        if (run_file(names[i]) < 0)
                                r = -1;
                        else
                                (*count)++;
                }
                free(names[i]);
        }
        free(names);
        return r;
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: %s DIR|FILE...\n", argv[0]);
                return 2;
        }
        if (LLVMFuzzerInitialize)
                LLVMFuzzerInitialize(&argc, &argv);
        size_t count = 0;
        for (int i = 1; i < argc; i++) {
                struct stat st;
                if (stat(argv[i], &st) < 0) {
                        fprintf(stderr, "replay: %s: %s\n", argv[i], strerror(errno));
                        return 1;
                }
                if (S_ISDIR(st.st_mode) ? run_dir(argv[i], &count) < 0 : run_file(argv[i]) < 0)
                        return 1;
                if (!S_ISDIR(st.st_mode))
                        count++;
        }
        printf("replay: %zu inputs ran\n", count);
        return count ? 0 : 1;
}
