/* Store throughput: put+flush, dedup hits, get, check, against the raw
 * cost of writing and reading the same bytes with plain pwrite/pread.
 * Usage: bench_store DIR [CHUNKS] [CHUNK_SIZE] */
#include "core/vc_hash.h"
#include "core/vc_util.h"
#include "store/vc_store.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void fill(uint8_t *b, size_t n, uint64_t seed)
{
        for (size_t i = 0; i < n; i += 8) {
                uint64_t z = (seed += 0x9E3779B97F4A7C15ull);
                z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
                z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
                memcpy(b + i, &z, VC_MIN((size_t)8, n - i));
        }
}

static int fail(const char *what, int r)
{
        fprintf(stderr, "bench_store: %s: %s\n", what, vc_errmsg(r));
        return 1;
}

int main(int argc, char **argv)
{
        if (argc < 2) {
                fprintf(stderr, "usage: bench_store DIR [CHUNKS] [CHUNK_SIZE]\n");
                return 2;
        }
        const char *dir = argv[1];
        size_t n = argc > 2 ? strtoul(argv[2], NULL, 10) : 100000;
        size_t len = argc > 3 ? strtoul(argv[3], NULL, 10) : 4096;
        char path[4096], raw[4200];
        snprintf(path, sizeof path, "%s/store", dir);
        snprintf(raw, sizeof raw, "%s/raw", dir);
        uint8_t *data = malloc(len), (*tags)[VC_TAG_LEN] = malloc(n * VC_TAG_LEN);
        for (size_t i = 0; i < n; i++) {
                fill(data, len, i);
                vc_sha256(data, len, tags[i]);
        }

        /* Baseline: the same bytes with pwrite, one fdatasync, then pread. */
        double t0 = vc_mono();
        int fd = open(raw, O_RDWR | O_CREAT | O_TRUNC, 0644);
        for (size_t i = 0; i < n; i++) {
                fill(data, len, i);
                if (vc_pwrite_full(fd, data, len, (off_t)(i * len)) < 0)
                        return 1;
        }
        fdatasync(fd);
        double raw_w = vc_mono() - t0;
        t0 = vc_mono();
        for (size_t i = 0; i < n; i++)
                if (vc_pread_full(fd, data, len, (off_t)((i * 7919 % n) * len)) < 0)
                        return 1;
        double raw_r = vc_mono() - t0;
        close(fd);
        unlink(raw);

        VcStore *s;
        VcWriter *w;
        uint64_t d;
        int r = vc_store_create(path);
        if (r < 0 || (r = vc_store_open(path, &s)) < 0 || (r = vc_store_domain(s, "all", true, &d)) < 0 ||
            (r = vc_writer_new(s, &w)) < 0)
                return fail("open", r);
        t0 = vc_mono();
        for (size_t i = 0; i < n; i++) {
                fill(data, len, i);
                if ((r = vc_writer_put(w, d, VC_KIND_DATA, tags[i], data, len)) != 1)
                        return fail("put", r);
        }
        if ((r = vc_writer_flush(w)) < 0)
                return fail("flush", r);
        double put = vc_mono() - t0;
        t0 = vc_mono();
        for (size_t i = 0; i < n; i++)
                if ((r = vc_writer_put(w, d, VC_KIND_DATA, tags[i], data, len)) != 0)
                        return fail("put (dedup)", r);
        double dedup = vc_mono() - t0;
        vc_writer_free(w);
        uint8_t *buf = NULL;
        size_t cap = 0, got;
        t0 = vc_mono();
        for (size_t i = 0; i < n; i++)
                if ((r = vc_store_get(s, d, tags[i * 7919 % n], &buf, &cap, &got)) < 0)
                        return fail("get", r);
        double get = vc_mono() - t0;
        t0 = vc_mono();
        if ((r = vc_store_check(s, true, NULL, NULL, NULL)) != 0)
                return fail("check", r);
        double check = vc_mono() - t0;
        double mb = (double)n * (double)len / 1e6;
        printf("%zu chunks of %zu bytes (%.0f MB)\n", n, len, mb);
        printf("put+flush   %8.0f chunks/s %7.0f MB/s   (raw pwrite %7.0f MB/s, ratio %.2f)\n", n / put, mb / put,
               mb / raw_w, raw_w / put);
        printf("dedup put   %8.0f chunks/s\n", n / dedup);
        printf("get         %8.0f chunks/s %7.0f MB/s   (raw pread  %7.0f MB/s, ratio %.2f)\n", n / get, mb / get,
               mb / raw_r, raw_r / get);
        printf("check full  %8.0f MB/s\n", mb / check);
        free(buf);
        free(data);
        free(tags);
        vc_store_free(s);
        return 0;
}
