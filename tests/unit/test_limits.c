/* Unit tests of core/vc_limits: image sizes and chunk sizes at and beyond
 * the limits, and the messages that say what to change. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include "core/vc_limits.h"
#include "core/vc_util.h"

static void assert_msg(const char *want)
{
        const char *m = vc_errmsg(-EINVAL);
        if (!strstr(m, want))
                fail_msg("message '%s' lacks '%s'", m, want);
}

static void test_chunk_size(void **state)
{
        (void)state;
        for (uint32_t cs = VC_CHUNK_MIN; cs <= VC_CHUNK_MAX; cs <<= 1)
                assert_int_equal(vc_chunk_size_check(cs), 0);
        uint32_t bad[] = { 0, 1, 2048, 4095, 4097, 48 << 10, 1u << 20, UINT32_MAX, 1u << 31 };
        for (size_t i = 0; i < VC_ARRAY_SIZE(bad); i++) {
                vc_errclear();
                assert_int_equal(vc_chunk_size_check(bad[i]), -EINVAL);
                assert_msg("not a power of two from 4 KiB to 512 KiB");
                assert_int_equal(vc_image_size_check("disk size", 1 << 20, bad[i]), -EINVAL);
        }
        vc_errclear();
}

static void test_image_size(void **state)
{
        (void)state;
        /* every size up to the limits */
        assert_int_equal(vc_image_size_check("memory size", 0, 4096), 0);
        assert_int_equal(vc_image_size_check("memory size", 1, 4096), 0);
        assert_int_equal(vc_image_size_check("memory size", VC_IMAGE_CHUNKS_MAX * 4096, 4096), 0);
        assert_int_equal(vc_image_size_check("memory size", VC_IMAGE_CHUNKS_MAX * 4096 - 1, 4096), 0);
        assert_int_equal(vc_image_size_check("disk size", VC_IMAGE_MAX, VC_CHUNK_MAX), 0);
        assert_int_equal(vc_image_size_check("disk size", VC_IMAGE_MAX, 256u << 10), 0);
        assert_int_equal(vc_image_size_check("disk size", 2ULL << 40, VC_CHUNK_DEFAULT), 0);

        /* one byte more: one chunk more than allowed */
        vc_errclear();
        assert_int_equal(vc_image_size_check("memory size", VC_IMAGE_CHUNKS_MAX * 4096 + 1, 4096), -EINVAL);
        assert_msg("memory size");
        assert_msg("16777217 chunks, more than the 16777216");
        assert_msg("use a chunk size of 8 KiB or more");

        vc_errclear();
        assert_int_equal(vc_image_size_check("disk size", 1ULL << 40, 4096), -EINVAL);
        assert_msg("disk size 1 TiB in chunks of 4 KiB is 268435456 chunks");
        assert_msg("16 GiB of memory");
        assert_msg("use a chunk size of 64 KiB or more");

        /* above the byte limit, at any chunk size */
        vc_errclear();
        assert_int_equal(vc_image_size_check("disk size", VC_IMAGE_MAX + 1, VC_CHUNK_MAX), -EINVAL);
        assert_msg("too large: vmcas accepts images of at most 4 TiB");
        vc_errclear();
        /* what `--memory-size 16777215T` parses to */
        assert_int_equal(vc_image_size_check("memory size", 16777215ULL << 40, VC_CHUNK_DEFAULT), -EINVAL);
        assert_msg("memory size 18446742974197923840 bytes (16777215 TiB) is too large");
        vc_errclear();
        assert_int_equal(vc_image_size_check("memory size", UINT64_MAX, 4096), -EINVAL);
        assert_msg("too large");
        vc_errclear();

        /* what the limits promise the nonces and the allocations */
        assert_true(VC_IMAGE_CHUNKS_MAX <= VC_DELTA_DISK_BASE);
        assert_true(((VC_DELTA_DISK_BASE + VC_IMAGE_CHUNKS_MAX) << 20) >> 20 ==
                    VC_DELTA_DISK_BASE + VC_IMAGE_CHUNKS_MAX);
        assert_int_equal(vc_chunk_count(0, 4096), 0);
        assert_int_equal(vc_chunk_count(1, 4096), 1);
        assert_int_equal(vc_chunk_count(4096, 4096), 1);
        assert_int_equal(vc_chunk_count(4097, 4096), 2);
        assert_true(vc_chunk_count(VC_IMAGE_MAX, VC_CHUNK_MIN) == 1ULL << 30);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_chunk_size),
                cmocka_unit_test(test_image_size),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
