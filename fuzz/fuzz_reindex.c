/* fuzz_reindex — the repair of a store from its packs: vc_store_reindex
 * (src/store/vc_store_gc.c) walks the pack files of every domain and
 * indexes each record whose bytes match its tag; vc_store_check --full
 * walks them again as verify does; vc_repo_rebuild_catalog
 * (src/repo/vc_catalog.c) rebuilds the parcels and versions from the
 * catalog copies among the records.
 *
 * Input: the bytes of one pack file, written as pack 1 of domain 'all' of
 * a scratch store made once per process (under $TMPDIR). The seeds are
 * packs of a fixed placeholder store id, "vmcas-fuzz-store": a header
 * that decodes and carries it gets the scratch store's id (and a CRC to
 * match), so that it counts as this store's pack; any other header is
 * left as it is (damaged: the records are still read; another store's:
 * the pack is skipped).
 *
 * Checks: reindex, check and the rebuild never fail on what a pack holds
 * (damage is skipped or reported, not an error); every chunk reindex
 * indexed can be read back with vc_store_get and its bytes match its tag;
 * the committed length is inside the file; the rebuilt catalog reads back
 * (every parcel and version record in it unpacks) with as many parcels
 * and versions as the rebuild says, each version of its parcel's uuid and
 * none past the parcel's latest.
 */
#include "fuzz.h"
#include "core/vc_hash.h"
#include "repo/vc_repo.h"
#include "store/vc_store_int.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#define PLACEHOLDER_UUID "vmcas-fuzz-store"

static VcStore *store;
static uint64_t domain;
static char pack_path[PATH_MAX];

static void close_store(void)
{
        vc_store_free(store);
}

static void open_store(void)
{
        char path[PATH_MAX];
        snprintf(path, sizeof path, "%s/store", fuzz_tmpdir());
        FUZZ_CHECK(vc_store_create(path) == 0);
        FUZZ_CHECK(vc_store_open(path, &store) == 0);
        FUZZ_CHECK(vc_store_domain(store, "all", true, &domain) == 0);
        FUZZ_CHECK(vc_pack_path(store, domain, 1, pack_path, sizeof pack_path) == 0);
        atexit(close_store);
}

static void on_damage(uint64_t d, const uint8_t *tag, const char *what, void *ctx)
{
        (void)d, (void)tag, (void)what;
        ++*(uint64_t *)ctx;
}

typedef struct {
        uint8_t *buf;
        size_t cap;
        uint64_t n;
} Chunks;

static int on_chunk(const VcChunkInfo *ci, void *ctx)
{
        Chunks *c = ctx;
        size_t len = 0;
        FUZZ_CHECK(ci->domain == domain && ci->pack == 1);
        FUZZ_CHECK(vc_store_get(store, ci->domain, ci->tag, &c->buf, &c->cap, &len) == 0);
        FUZZ_CHECK(len == ci->len);
        uint8_t h[VC_HASH_LEN];
        vc_sha256(c->buf, len, h);
        FUZZ_CHECK(memcmp(h, ci->tag, VC_HASH_LEN) == 0);
        c->n++;
        return 0;
}

static int on_pack(uint64_t d, uint32_t pack, const VcPackEnt *e, void *ctx)
{
        FUZZ_CHECK(d == domain && pack == 1);
        FUZZ_CHECK(e->committed >= VC_PACK_HDR_LEN && e->committed <= *(size_t *)ctx);
        return 0;
}

static void check_catalog(const VcRebuildStats *st)
{
        VcTxn *t;
        FUZZ_CHECK(vc_txn_begin(store, false, &t) == 0);
        VcParcel *ps = NULL;
        size_t np = 0;
        uint64_t nv = 0;
        FUZZ_CHECK(vc_repo_parcels(t, &ps, &np) == 0);
        for (size_t i = 0; i < np; i++) {
                VcVersion *vs = NULL;
                size_t n = 0;
                FUZZ_CHECK(vc_repo_versions(t, &ps[i], &vs, &n) == 0);
                for (size_t j = 0; j < n; j++)
                        FUZZ_CHECK(memcmp(vs[j].uuid, ps[i].uuid, 16) == 0 && vs[j].version <= ps[i].latest);
                nv += n;
                free(vs);
        }
        FUZZ_CHECK(np == st->parcels && nv == st->versions);
        free(ps);
        vc_txn_abort(t);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (!store)
                open_store();
        vc_errclear();
        uint8_t *pack = malloc(size ? size : 1);
        FUZZ_CHECK(pack);
        memcpy(pack, data, size);
        VcPackHdr h;
        if (size >= VC_PACK_HDR_LEN && vc_pack_hdr_decode(pack, &h) == 0 &&
            memcmp(h.uuid, PLACEHOLDER_UUID, VC_UUID_LEN) == 0) {
                memcpy(pack + 40, vc_store_uuid(store), VC_UUID_LEN);
                vc_put32(pack + 60, (uint32_t)crc32(crc32(0L, Z_NULL, 0), pack, 60));
        }
        fuzz_write_file(pack_path, pack, size, 0644);
        free(pack);

        int indexed = vc_store_reindex(store);
        if (indexed < 0)
                fuzz_note("reindex failed: %s", vc_errmsg(indexed));
        FUZZ_CHECK(indexed >= 0);
        uint64_t problems = 0;
        int r = vc_store_check(store, true, on_damage, &problems, NULL);
        fuzz_note("reindex: %d indexed %s; check: %d problems", indexed, indexed < 0 ? vc_errmsg(indexed) : "", r);
        FUZZ_CHECK(r >= 0 && (uint64_t)r == problems);

        VcTxn *t;
        FUZZ_CHECK(vc_txn_begin(store, false, &t) == 0);
        Chunks c = { 0 };
        FUZZ_CHECK(vc_txn_iter_chunks(t, on_chunk, &c) == 0);
        FUZZ_CHECK(c.n == (uint64_t)indexed);
        FUZZ_CHECK(vc_packs_each(t, 0, on_pack, &size) == 0);
        vc_txn_abort(t);
        free(c.buf);

        VcRebuildStats st;
        vc_errclear();
        r = vc_repo_rebuild_catalog(store, &st);
        fuzz_note("rebuild_catalog: %d; %llu copies, %llu damaged, %llu parcels, %llu versions, %llu pruned", r,
                  (unsigned long long)st.copies, (unsigned long long)st.damaged, (unsigned long long)st.parcels,
                  (unsigned long long)st.versions, (unsigned long long)st.pruned);
        FUZZ_CHECK(r == 0);
        check_catalog(&st);
        return 0;
}
