/* fuzz_pack — pack files (src/store/vc_pack.c): the pack header, record
 * headers, vc_pack_walk (the front-to-back walk of verify --full and of
 * reindex, with its resynchronisation after a damaged header) and
 * vc_pack_read_record (what a get does at an indexed offset).
 *
 * Input: a pack file, walked as domain 1 (the seeds' domain) in a memfd,
 * once to its end and once to a shorter committed length.
 *
 * Checks: header decoding gives 0, -EBADMSG or -EPROTO, and what it
 * accepts encodes back to the same fields (to the same bytes when the
 * reserved fields are zero); the walk reports records at strictly
 * increasing offsets inside [start, end), a record with data lies wholly
 * before end and its data are the input's bytes there, a record without
 * runs past end; every such record reads back by vc_pack_read_record.
 */
#include "fuzz.h"
#include "store/vc_store_int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define DOMAIN 1

static bool rec_eq(const VcRecHdr *a, const VcRecHdr *b)
{
        return a->kind == b->kind && a->domain == b->domain && a->len == b->len &&
               memcmp(a->tag, b->tag, VC_TAG_LEN) == 0;
}

typedef struct {
        const uint8_t *data;
        uint64_t start, end, last, calls;
        bool any;
        int fd;
} Walk;

static int on_record(uint64_t off, const VcRecHdr *h, const uint8_t *data, void *ctx)
{
        Walk *w = ctx;
        FUZZ_CHECK(off >= w->start && off < w->end);
        FUZZ_CHECK(!w->any || off > w->last);
        w->any = true;
        w->last = off;
        w->calls++;
        if (!h) {
                FUZZ_CHECK(!data);
                return 0;
        }
        FUZZ_CHECK(h->domain == DOMAIN && h->kind >= VC_KIND_DATA && h->kind <= VC_KIND_CATALOG);
        FUZZ_CHECK(off + VC_REC_HDR_LEN <= w->end);
        VcRecHdr again = { 0 };
        FUZZ_CHECK(vc_rec_hdr_decode(w->data + off, &again) == 0);
        FUZZ_CHECK(rec_eq(&again, h));
        uint64_t rend = off + VC_REC_HDR_LEN + h->len;
        if (!data) {
                FUZZ_CHECK(rend > w->end);
                return 0;
        }
        FUZZ_CHECK(rend <= w->end);
        FUZZ_CHECK(memcmp(data, w->data + off + VC_REC_HDR_LEN, h->len) == 0);
        VcIdx x = { .len = h->len, .kind = h->kind };
        uint8_t *buf = malloc(h->len ? h->len : 1);
        FUZZ_CHECK(buf);
        FUZZ_CHECK(vc_pack_read_record(w->fd, off, DOMAIN, h->tag, &x, buf) == 0);
        FUZZ_CHECK(memcmp(buf, data, h->len) == 0);
        free(buf);
        return 0;
}

static void check_pack_hdr(const uint8_t *in)
{
        VcPackHdr h = { 0 }, h2 = { 0 };
        int r = vc_pack_hdr_decode(in, &h);
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EPROTO);
        if (r < 0)
                return;
        uint8_t b[VC_PACK_HDR_LEN];
        vc_pack_hdr_encode(&h, b);
        FUZZ_CHECK(vc_pack_hdr_decode(b, &h2) == 0);
        FUZZ_CHECK(h.domain == h2.domain && h.pack == h2.pack && h.created == h2.created &&
                   memcmp(h.uuid, h2.uuid, VC_UUID_LEN) == 0);
        if (vc_get32(in + 28) == 0 && vc_get32(in + 56) == 0)
                FUZZ_CHECK(memcmp(b, in, VC_PACK_HDR_LEN) == 0);
}

static void check_rec_hdr(const uint8_t *in)
{
        VcRecHdr h = { 0 }, h2 = { 0 };
        int r = vc_rec_hdr_decode(in, &h);
        FUZZ_CHECK(r == 0 || r == -EBADMSG);
        if (r < 0)
                return;
        uint8_t b[VC_REC_HDR_LEN];
        vc_rec_hdr_encode(&h, b);
        FUZZ_CHECK(vc_rec_hdr_decode(b, &h2) == 0 && rec_eq(&h, &h2));
        if (in[5] == 0 && in[6] == 0 && in[7] == 0)
                FUZZ_CHECK(memcmp(b, in, VC_REC_HDR_LEN) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        vc_errclear();
        if (size >= VC_PACK_HDR_LEN)
                check_pack_hdr(data);
        if (size >= VC_PACK_HDR_LEN + VC_REC_HDR_LEN)
                check_rec_hdr(data + VC_PACK_HDR_LEN);
        if (size <= VC_PACK_HDR_LEN)
                return 0;
        int fd = fuzz_memfd(data, size);
        /* The whole file (as reindex walks it), then a committed length
         * that cuts it short (as verify --full walks it). */
        uint64_t ends[2] = { size, VC_PACK_HDR_LEN + (size - VC_PACK_HDR_LEN) * 2 / 3 };
        for (int i = 0; i < 2; i++) {
                Walk w = { .data = data, .start = VC_PACK_HDR_LEN, .end = ends[i], .fd = fd };
                if (w.end <= w.start)
                        continue;
                int r = vc_pack_walk(fd, DOMAIN, w.start, w.end, on_record, &w);
                fuzz_note("walk [%llu, %llu): %d, %llu records", (unsigned long long)w.start,
                          (unsigned long long)w.end, r, (unsigned long long)w.calls);
                FUZZ_CHECK(r == 0);
                FUZZ_CHECK(w.calls <= w.end - w.start);
        }
        close(fd);
        return 0;
}
