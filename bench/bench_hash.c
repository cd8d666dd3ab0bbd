/* The baseline of the store benchmarks: what SHA-256, AES-256-CTR and
 * zstd-3 do per core and on every core on this machine, over 4 KiB blocks.
 * Prints "name MB/s" lines that bench/store.sh divides by. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/vc_compress.h"
#include "core/vc_hash.h"
#include "core/vc_seal.h"
#include "core/vc_util.h"

#define BUF (64u << 20)
static uint8_t *buf;
static int mode;

static void *run(void *arg)
{
        (void)arg;
        uint8_t out[32], key[32] = { 1 }, iv[16] = { 0 };
        static _Thread_local uint8_t tmp[8192];
        VcCompressor *cz = NULL;
        vc_compressor_new(&cz);
        for (size_t off = 0; off < BUF; off += 4096) {
                if (mode == 0)
                        vc_sha256(buf + off, 4096, out);
                else if (mode == 1)
                        vc_ctr(key, iv, buf + off, tmp, 4096);
                else
                        vc_compress(cz, VC_COMP_ZSTD, tmp, sizeof tmp, buf + off, 4096);
        }
        vc_compressor_free(cz);
        return NULL;
}

int main(void)
{
        buf = malloc(BUF);
        for (size_t i = 0; i < BUF; i++)
                buf[i] = (uint8_t)(i * 2654435761u >> 13);
        const char *names[] = { "sha256", "aes256ctr", "zstd3" };
        for (mode = 0; mode < 3; mode++) {
                for (int threads = 1; threads <= 2; threads++) {
                        pthread_t th[2];
                        double t0 = vc_mono();
                        for (int i = 0; i < threads; i++)
                                pthread_create(&th[i], NULL, run, NULL);
                        for (int i = 0; i < threads; i++)
                                pthread_join(th[i], NULL);
                        double el = vc_mono() - t0;
                        printf("%s_%dcore %.0f\n", names[mode], threads, (double)BUF * threads / el / 1e6);
                }
        }
        free(buf);
        return 0;
}
