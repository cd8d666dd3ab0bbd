/* Unit tests of core/vc_util: size parsing, hex, packing. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>
#include <errno.h>
#include <string.h>
#include "core/vc_util.h"

static void test_parse_size(void **state)
{
        (void)state;
        uint64_t v;
        assert_int_equal(vc_parse_size("4096", "size", &v), 0); assert_int_equal(v, 4096);
        assert_int_equal(vc_parse_size("4K", "size", &v), 0); assert_int_equal(v, 4096);
        assert_int_equal(vc_parse_size("64KiB", "size", &v), 0); assert_int_equal(v, 65536);
        assert_int_equal(vc_parse_size("512k", "size", &v), 0); assert_int_equal(v, 524288);
        assert_int_equal(vc_parse_size("2G", "size", &v), 0); assert_int_equal(v, 2ULL << 30);
        assert_int_equal(vc_parse_size("1MB", "size", &v), 0); assert_int_equal(v, 1 << 20);
        assert_int_equal(vc_parse_size("4Q", "size", &v), -EINVAL);
        assert_int_equal(vc_parse_size("", "size", &v), -EINVAL);
        assert_int_equal(vc_parse_size("-1", "size", &v), -EINVAL);
        assert_int_equal(vc_parse_size("K", "size", &v), -EINVAL);
        assert_int_equal(vc_parse_size("4 K", "size", &v), -EINVAL);
        assert_int_equal(vc_parse_size("99999999999999999999", "size", &v), -EINVAL);
        assert_int_equal(vc_parse_size("17179869184T", "size", &v), -EINVAL);
        vc_errclear();
        vc_parse_size("4Q", "chunk size", &v);
        assert_non_null(strstr(vc_errmsg(-EINVAL), "chunk size"));
        vc_errclear();
}

static void test_hex_pack(void **state)
{
        (void)state;
        uint8_t in[3] = { 0x00, 0xab, 0xff }, out[3];
        char h[7];
        vc_hex(in, 3, h);
        assert_string_equal(h, "00abff");
        assert_int_equal(vc_unhex(h, out, 3), 0);
        assert_memory_equal(in, out, 3);
        assert_int_equal(vc_unhex("00abfg", out, 3), -EINVAL);
        assert_int_equal(vc_unhex("00ab", out, 3), -EINVAL);
        uint8_t b[8];
        vc_put64(b, 0x0102030405060708ULL);
        assert_int_equal(b[0], 8);
        assert_true(vc_get64(b) == 0x0102030405060708ULL);
        vc_put64be(b, 0x0102030405060708ULL);
        assert_int_equal(b[0], 1);
        assert_true(vc_get64be(b) == 0x0102030405060708ULL);
        vc_put32(b, 0xdeadbeef);
        assert_true(vc_get32(b) == 0xdeadbeef);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test(test_parse_size),
                cmocka_unit_test(test_hex_pack),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
