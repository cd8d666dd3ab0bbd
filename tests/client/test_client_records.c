/* The client trusts nothing in the catalog that it did not authenticate:
 * every field of a parcel record is rewritten on disk (through the
 * store's own catalog calls, so its checksum is right), and checkin,
 * checkout and `parcel create --from` must refuse, naming the parcel,
 * and write nothing. The same for version records. */
#include "../store/store_test.h"
#include "backend/vc_backend.h"
#include "client/vc_client.h"
#include "repo/vc_repo.h"

typedef struct {
        char *path, keys[PATH_MAX], mem[PATH_MAX], disk[PATH_MAX], out[PATH_MAX];
} Fix;

static void write_img(const char *path, size_t n, uint64_t seed)
{
        uint8_t *b = malloc(n);
        for (size_t i = 0; i < n; i += 8) {
                uint64_t v = splitmix(&seed);
                memcpy(b + i, &v, VC_MIN(8, n - i));
        }
        FILE *f = fopen(path, "wb");
        assert_non_null(f);
        assert_int_equal(fwrite(b, 1, n, f), n);
        fclose(f);
        free(b);
}

static int setup(void **state)
{
        Fix *f = calloc(1, sizeof *f);
        f->path = tmp_store();
        snprintf(f->keys, sizeof f->keys, "%s.keys", f->path);
        snprintf(f->mem, sizeof f->mem, "%s.mem", f->path);
        snprintf(f->disk, sizeof f->disk, "%s.disk", f->path);
        snprintf(f->out, sizeof f->out, "%s.out", f->path);
        setenv("VMCAS_KEYS", f->keys, 1);
        setenv("VMCAS_HOST", "test-host", 1);
        write_img(f->mem, 65536, 1);
        write_img(f->disk, 131072, 2);
        assert_int_equal(vc_store_create(f->path), 0);
        *state = f;
        return 0;
}

static int teardown(void **state)
{
        Fix *f = *state;
        tmp_store_free(f->path);
        free(f);
        return 0;
}

static VcBackend *open_b(Fix *f)
{
        VcBackend *b;
        assert_int_equal(vc_backend_open(f->path, NULL, &b), 0);
        return b;
}

static void make_parcel(Fix *f, const char *name, const char *policy)
{
        VcBackend *b = open_b(f);
        VcCreateOpts o = { .name = name, .comp = VC_COMP_ZSTD, .chunk_size = 4096, .mem_size = 65536,
                           .disk_size = 131072 };
        assert_int_equal(vc_policy_parse(policy, &o.policy, o.group, sizeof o.group), 0);
        VcCheckinStats st;
        assert_int_equal(vc_parcel_create(b, &o, true, &st), 0);
        VcCheckinOpts co = { .quiet = true };
        assert_int_equal(vc_checkin(b, name, f->mem, f->disk, &co, &st), 0);
        vc_backend_free(b);
}

/* Rewrites byte `at` of parcel name's record (XOR x) in the catalog. */
static void poke_record(Fix *f, const char *name, size_t at, uint8_t x)
{
        VcStore *s;
        VcTxn *t;
        assert_int_equal(vc_store_open(f->path, &s), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        const void *val;
        size_t vl;
        assert_int_equal(vc_txn_get(t, VC_TABLE_PARCELS, name, strlen(name), &val, &vl), 0);
        uint8_t buf[1024];
        memcpy(buf, val, vl);
        size_t rec = 13 + buf[12];      /* id, latest, owner */
        assert_true(rec + at < vl);
        buf[rec + at] ^= x;
        assert_int_equal(vc_txn_put(t, VC_TABLE_PARCELS, name, strlen(name), buf, vl), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);
}

static uint32_t latest(Fix *f, const char *name)
{
        VcBackend *b = open_b(f);
        VcParcelInfo pi;
        assert_int_equal(vc_cat_parcel(b, name, &pi), 0);
        vc_backend_free(b);
        return pi.latest;
}

/* checkin, checkout and create --from all refuse, and nothing changes */
static void expect_refused(Fix *f, const char *name, const char *why)
{
        VcBackend *b = open_b(f);
        VcCheckinStats st;
        VcCheckoutStats os;
        VcCheckinOpts co = { .quiet = true };
        VcCheckoutOpts oo = { .quiet = true, .no_lease = true };
        uint32_t before = latest(f, name);
        vc_errclear();
        int r = vc_checkin(b, name, f->mem, f->disk, &co, &st);
        assert_true(r < 0);
        if (!strstr(vc_errmsg(r), why))
                fail_msg("checkin: '%s' does not say '%s'", vc_errmsg(r), why);
        assert_int_equal(latest(f, name), before);
        vc_errclear();
        unlink(f->out);
        r = vc_checkout(b, name, 0, f->out, f->out, &oo, &os);
        assert_true(r < 0);
        assert_non_null(strstr(vc_errmsg(r), why));
        assert_int_equal(access(f->out, F_OK), -1);
        vc_errclear();
        VcCreateOpts o = { .name = "copy", .policy = VC_POLICY_IP, .comp = VC_COMP_NONE, .from = name };
        r = vc_parcel_create(b, &o, true, &st);
        assert_true(r < 0);
        assert_non_null(strstr(vc_errmsg(r), why));
        VcParcelInfo pi;
        assert_int_equal(vc_cat_parcel(b, "copy", &pi), -ENOENT);
        vc_errclear();
        vc_backend_free(b);
}

static void test_every_field(void **state)
{
        Fix *f = *state;
        make_parcel(f, "p", "delta");
        make_parcel(f, "g", "group:eng");
        /* offsets in the record (vc_repo.h): policy, compression, uuid,
         * chunk size, sizes, created, key checks, names, MAC */
        static const size_t at[] = { 5, 6, 8, 23, 24, 25, 32, 39, 40, 47, 48, 55, 60, 80, 88, 89, 95, 130 };
        for (size_t i = 0; i < VC_ARRAY_SIZE(at); i++) {
                for (int which = 0; which < 2; which++) {
                        const char *name = which ? "g" : "p";
                        /* the policy byte: turn delta into all (3), the
                         * attack of the issue; other bytes: flip one bit */
                        uint8_t x = at[i] == 5 ? (which ? 1 : 3) : 0x01;
                        poke_record(f, name, at[i], x);
                        /* a malformed record, a wrong key check or a failed
                         * MAC: each a refusal naming the parcel */
                        VcBackend *b = open_b(f);
                        VcCheckinStats st;
                        VcCheckinOpts co = { .quiet = true };
                        vc_errclear();
                        int r = vc_checkin(b, name, f->mem, f->disk, &co, &st);
                        vc_backend_free(b);
                        assert_true(r < 0);
                        char msg[1100];
                        snprintf(msg, sizeof msg, "%s", vc_errmsg(r));
                        char want[64];
                        snprintf(want, sizeof want, "'%s'", name);
                        if (!strstr(msg, want))
                                fail_msg("byte %zu: '%s' does not name the parcel", at[i], msg);
                        expect_refused(f, name, want);
                        poke_record(f, name, at[i], x);      /* back */
                }
        }
        /* and unharmed again, it works */
        VcBackend *b = open_b(f);
        VcCheckinStats st;
        VcCheckinOpts co = { .quiet = true };
        assert_int_equal(vc_checkin(b, "p", f->mem, f->disk, &co, &st), 0);
        vc_backend_free(b);
}

static void test_policy_attack_message(void **state)
{
        Fix *f = *state;
        make_parcel(f, "ip1", "ip");
        poke_record(f, "ip1", 5, 1 ^ 3);        /* ip -> all */
        expect_refused(f, "ip1", "the record of parcel 'ip1' was changed outside vmcas");
}

/* A version record moved from one parcel to another, or from one version
 * to another, is refused. */
static void test_version_records(void **state)
{
        Fix *f = *state;
        make_parcel(f, "a", "ip");
        make_parcel(f, "b", "ip");
        VcBackend *b = open_b(f);
        VcCheckinOpts co = { .quiet = true };
        VcCheckinStats st;
        assert_int_equal(vc_checkin(b, "a", f->mem, f->disk, &co, &st), 0);    /* a@2 */
        vc_backend_free(b);
        VcStore *s;
        VcTxn *t;
        VcParcel pa, pb;
        assert_int_equal(vc_store_open(f->path, &s), 0);
        assert_int_equal(vc_txn_begin(s, true, &t), 0);
        assert_int_equal(vc_repo_parcel(t, "a", &pa), 0);
        assert_int_equal(vc_repo_parcel(t, "b", &pb), 0);
        uint8_t k1[12], k2[12], kb[12], v1[8 + VC_VERSION_REC_LEN];
        const void *val;
        size_t vl;
        vc_version_key(pa.id, 1, k1);
        vc_version_key(pa.id, 2, k2);
        vc_version_key(pb.id, 1, kb);
        /* a's version 1 record served as its version 2 */
        assert_int_equal(vc_txn_get(t, VC_TABLE_VERSIONS, k1, 12, &val, &vl), 0);
        memcpy(v1, val, vl);
        assert_int_equal(vc_txn_put(t, VC_TABLE_VERSIONS, k2, 12, v1, vl), 0);
        /* and as b's version 1 */
        assert_int_equal(vc_txn_put(t, VC_TABLE_VERSIONS, kb, 12, v1, vl), 0);
        assert_int_equal(vc_txn_commit(t), 0);
        vc_store_free(s);
        b = open_b(f);
        VcCheckoutStats os;
        VcCheckoutOpts oo = { .quiet = true, .no_lease = true };
        vc_errclear();
        int r = vc_checkout(b, "a", 2, f->out, f->out, &oo, &os);
        assert_int_equal(r, -EBADMSG);
        assert_non_null(strstr(vc_errmsg(r), "another record"));
        vc_errclear();
        r = vc_checkout(b, "b", 1, f->out, f->out, &oo, &os);
        assert_true(r < 0);
        assert_non_null(strstr(vc_errmsg(r), "does not open with this key"));
        vc_errclear();
        vc_backend_free(b);
}

int main(void)
{
        const struct CMUnitTest tests[] = {
                cmocka_unit_test_setup_teardown(test_every_field, setup, teardown),
                cmocka_unit_test_setup_teardown(test_policy_attack_message, setup, teardown),
                cmocka_unit_test_setup_teardown(test_version_records, setup, teardown),
        };
        return cmocka_run_group_tests(tests, NULL, NULL);
}
