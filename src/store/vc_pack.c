/* vc_pack — the byte layouts of the store: pack header, record header,
 * index and packs-table values (docs/format-store.md), and reading packs.
 *
 * Every field is packed explicitly, little-endian, never a struct laid over
 * bytes. Every header ends with a CRC-32 (zlib) of the bytes before it.
 */
#include "store/vc_store_int.h"
#include "core/vc_util.h"
#include "core/vc_hash.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <unistd.h>
#include <zlib.h>

static uint32_t crc(const uint8_t *p, size_t n)
{
        return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n);
}

/* ---- pack header -----------------------------------------------------------
 *  0 magic[8] "VCPACK\r\n"   8 version u32   12 header length u32 (64)
 * 16 domain u64              24 pack u32     28 reserved u32
 * 32 created i64             40 store uuid[16]
 * 56 reserved u32            60 crc32 of bytes 0..59                      */

void vc_pack_hdr_encode(const VcPackHdr *h, uint8_t out[VC_PACK_HDR_LEN])
{
        memset(out, 0, VC_PACK_HDR_LEN);
        memcpy(out, VC_PACK_MAGIC, 8);
        vc_put32(out + 8, VC_PACK_VERSION);
        vc_put32(out + 12, VC_PACK_HDR_LEN);
        vc_put64(out + 16, h->domain);
        vc_put32(out + 24, h->pack);
        vc_put64(out + 32, (uint64_t)h->created);
        memcpy(out + 40, h->uuid, VC_UUID_LEN);
        vc_put32(out + 60, crc(out, 60));
}

int vc_pack_hdr_decode(const uint8_t in[VC_PACK_HDR_LEN], VcPackHdr *h)
{
        if (memcmp(in, VC_PACK_MAGIC, 8) != 0)
                return -EBADMSG;
        if (vc_get32(in + 60) != crc(in, 60))
                return -EBADMSG;
        if (vc_get32(in + 8) != VC_PACK_VERSION || vc_get32(in + 12) != VC_PACK_HDR_LEN)
                return -EPROTO;
        h->domain = vc_get64(in + 16);
        h->pack = vc_get32(in + 24);
        h->created = (int64_t)vc_get64(in + 32);
        memcpy(h->uuid, in + 40, VC_UUID_LEN);
        return 0;
}

/* ---- record header ----------------------------------------------------------
 *  0 magic u32 "VCR1"   4 kind u8   5 reserved[3]   8 domain u64
 * 16 tag[32]           48 len u32  52 crc32 of bytes 0..51   56 data[len]
 * The data is not under the CRC: its SHA-256 is the tag.                   */

void vc_rec_hdr_encode(const VcRecHdr *h, uint8_t out[VC_REC_HDR_LEN])
{
        memset(out, 0, VC_REC_HDR_LEN);
        vc_put32(out, VC_REC_MAGIC);
        out[4] = (uint8_t)h->kind;
        vc_put64(out + 8, h->domain);
        memcpy(out + 16, h->tag, VC_TAG_LEN);
        vc_put32(out + 48, h->len);
        vc_put32(out + 52, crc(out, 52));
}

int vc_rec_hdr_decode(const uint8_t in[VC_REC_HDR_LEN], VcRecHdr *h)
{
        if (vc_get32(in) != VC_REC_MAGIC || vc_get32(in + 52) != crc(in, 52))
                return -EBADMSG;
        if (in[4] > VC_KIND_META || vc_get32(in + 48) > VC_REC_DATA_MAX)
                return -EBADMSG;
        h->kind = in[4];
        h->domain = vc_get64(in + 8);
        memcpy(h->tag, in + 16, VC_TAG_LEN);
        h->len = vc_get32(in + 48);
        return 0;
}

/* ---- index entry ---------------------------------------------------------------
 * key: domain BE64, tag[32] (big-endian so a domain's entries are adjacent)
 * value: 0 pack u32, 4 offset u64, 12 len u32, 16 kind u8, 17 stored_at i64,
 *        25 crc32 of key || value[0..24] (added by the db layer)           */

void vc_idx_key(uint8_t out[VC_IDX_KEY_LEN], uint64_t domain, const uint8_t tag[VC_TAG_LEN])
{
        vc_put64be(out, domain);
        memcpy(out + 8, tag, VC_TAG_LEN);
}

void vc_idx_encode(const VcIdx *x, uint8_t out[VC_IDX_VAL_LEN])
{
        vc_put32(out, x->pack);
        vc_put64(out + 4, x->off);
        vc_put32(out + 12, x->len);
        out[16] = (uint8_t)x->kind;
        vc_put64(out + 17, (uint64_t)x->stored_at);
}

int vc_idx_decode(const void *v, size_t vl, VcIdx *x)
{
        const uint8_t *p = v;
        if (vl != VC_IDX_VAL_LEN || p[16] > VC_KIND_META)
                return -EBADMSG;
        x->pack = vc_get32(p);
        x->off = vc_get64(p + 4);
        x->len = vc_get32(p + 12);
        x->kind = p[16];
        x->stored_at = (int64_t)vc_get64(p + 17);
        return 0;
}

int vc_idx_get(VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], VcIdx *ret)
{
        uint8_t k[VC_IDX_KEY_LEN];
        const void *v;
        size_t vl;
        vc_idx_key(k, domain, tag);
        int r = vc_db_get(t, VC_DB_INDEX, k, sizeof k, &v, &vl);
        if (r == -EBADMSG)
                return vc_db_damaged(VC_DB_INDEX, k, sizeof k);
        if (r < 0)
                return r;
        if (vc_idx_decode(v, vl, ret) < 0) {
                char what[160];
                vc_db_describe(VC_DB_INDEX, k, sizeof k, what, sizeof what);
                return vc_errf(-EBADMSG, "index entry damaged: %s (malformed)", what);
        }
        return 0;
}

int vc_idx_put(VcTxn *t, uint64_t domain, const uint8_t tag[VC_TAG_LEN], const VcIdx *x)
{
        uint8_t k[VC_IDX_KEY_LEN], v[VC_IDX_VAL_LEN];
        vc_idx_key(k, domain, tag);
        vc_idx_encode(x, v);
        return vc_db_put(t, VC_DB_INDEX, k, sizeof k, v, sizeof v);
}

int vc_idx_info(const void *k, size_t kl, const void *v, size_t vl, VcChunkInfo *ci)
{
        VcIdx x;
        if (kl != VC_IDX_KEY_LEN || vc_idx_decode(v, vl, &x) < 0)
                return -EBADMSG;
        const uint8_t *p = k;
        ci->domain = vc_get64be(p);
        memcpy(ci->tag, p + 8, VC_TAG_LEN);
        ci->kind = x.kind;
        ci->pack = x.pack;
        ci->offset = x.off;
        ci->len = x.len;
        ci->stored_at = x.stored_at;
        return 0;
}

int vc_idx_each(VcTxn *t, uint64_t domain, vc_chunk_fn fn, void *ctx)
{
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *c = NULL;
        uint8_t prefix[8];
        vc_put64be(prefix, domain);
        int r = vc_db_cursor_open(t, VC_DB_INDEX, prefix, domain ? sizeof prefix : 0, &c);
        if (r < 0)
                return r;
        const void *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        while ((r = vc_db_cursor_next(c, &k, &kl, &v, &vl)) != 0) {
                VcChunkInfo ci = { 0 };
                if (r < 0 && r != -EBADMSG)
                        return r;
                if (r < 0 || vc_idx_info(k, kl, v, vl, &ci) < 0)
                        return vc_db_damaged(VC_DB_INDEX, k, kl);
                r = fn(&ci, ctx);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* ---- packs table -----------------------------------------------------------------
 * key: domain BE64, pack BE32
 * value: 0 version u8 (1), 1 flags u8, 2 reserved u16, 4 committed u64,
 *        12 crc32 (db layer)                                               */

void vc_packs_key(uint8_t out[VC_PACKS_KEY_LEN], uint64_t domain, uint32_t pack)
{
        vc_put64be(out, domain);
        vc_put32be(out + 8, pack);
}

void vc_packs_encode(const VcPackEnt *e, uint8_t out[VC_PACKS_VAL_LEN])
{
        memset(out, 0, VC_PACKS_VAL_LEN);
        out[0] = VC_PACKS_VERSION;
        out[1] = (uint8_t)e->flags;
        vc_put64(out + 4, e->committed);
}

int vc_packs_decode(const void *v, size_t vl, VcPackEnt *e)
{
        const uint8_t *p = v;
        if (vl != VC_PACKS_VAL_LEN || p[0] != VC_PACKS_VERSION)
                return -EBADMSG;
        e->flags = p[1];
        e->committed = vc_get64(p + 4);
        return 0;
}

int vc_packs_get(VcTxn *t, uint64_t domain, uint32_t pack, VcPackEnt *ret)
{
        uint8_t k[VC_PACKS_KEY_LEN];
        const void *v;
        size_t vl;
        vc_packs_key(k, domain, pack);
        int r = vc_db_get(t, VC_DB_PACKS, k, sizeof k, &v, &vl);
        if (r == -EBADMSG)
                return vc_db_damaged(VC_DB_PACKS, k, sizeof k);
        if (r < 0)
                return r;
        if (vc_packs_decode(v, vl, ret) < 0)
                return vc_errf(-EBADMSG, "packs table entry of pack %" PRIu32 " of domain %" PRIu64
                               " is malformed", pack, domain);
        return 0;
}

int vc_packs_put(VcTxn *t, uint64_t domain, uint32_t pack, const VcPackEnt *e)
{
        uint8_t k[VC_PACKS_KEY_LEN], v[VC_PACKS_VAL_LEN];
        vc_packs_key(k, domain, pack);
        vc_packs_encode(e, v);
        return vc_db_put(t, VC_DB_PACKS, k, sizeof k, v, sizeof v);
}

int vc_packs_each(VcTxn *t, uint64_t domain, vc_packs_fn fn, void *ctx)
{
        _vc_cleanup_(vc_db_cursor_closep) VcDbCursor *c = NULL;
        uint8_t prefix[8];
        vc_put64be(prefix, domain);
        int r = vc_db_cursor_open(t, VC_DB_PACKS, prefix, domain ? sizeof prefix : 0, &c);
        if (r < 0)
                return r;
        const void *k = NULL, *v = NULL;
        size_t kl = 0, vl = 0;
        while ((r = vc_db_cursor_next(c, &k, &kl, &v, &vl)) != 0) {
                VcPackEnt e = { 0 };
                if (r < 0 && r != -EBADMSG)
                        return r;
                if (r < 0 || kl != VC_PACKS_KEY_LEN || vc_packs_decode(v, vl, &e) < 0)
                        continue;
                r = fn(vc_get64be(k), vc_get32be((const uint8_t *)k + 8), &e, ctx);
                if (r != 0)
                        return r;
        }
        return 0;
}

/* ---- per-domain pack counter: 'p' id BE64 -> next pack number u32 ----------- */

int vc_domain_next_pack(VcTxn *t, uint64_t domain, uint32_t *ret)
{
        uint8_t k[9] = { 'p' };
        const void *v;
        size_t vl;
        vc_put64be(k + 1, domain);
        int r = vc_db_get(t, VC_DB_DOMAINS, k, sizeof k, &v, &vl);
        if (r == -ENOENT) {
                *ret = 1;
                return 0;
        }
        if (r == -EBADMSG)
                return vc_db_damaged(VC_DB_DOMAINS, k, sizeof k);
        if (r < 0)
                return r;
        if (vl != 4)
                return vc_errf(-EBADMSG, "pack counter of domain %" PRIu64 " is malformed", domain);
        *ret = vc_get32(v);
        return 0;
}

int vc_domain_set_next_pack(VcTxn *t, uint64_t domain, uint32_t next)
{
        uint8_t k[9] = { 'p' }, v[4];
        vc_put64be(k + 1, domain);
        vc_put32(v, next);
        return vc_db_put(t, VC_DB_DOMAINS, k, sizeof k, v, sizeof v);
}

/* ---- paths ------------------------------------------------------------------------ */

int vc_domain_dir(const VcStore *s, uint64_t domain, char *buf, size_t len)
{
        if ((size_t)snprintf(buf, len, "%s/packs/%" PRIu64, s->path, domain) >= len)
                return -ENAMETOOLONG;
        return 0;
}

int vc_pack_path(const VcStore *s, uint64_t domain, uint32_t pack, char *buf, size_t len)
{
        if ((size_t)snprintf(buf, len, "%s/packs/%" PRIu64 "/%08" PRIu32 ".pack", s->path, domain, pack) >= len)
                return -ENAMETOOLONG;
        return 0;
}

bool vc_pack_name_parse(const char *name, uint32_t *ret)
{
        uint64_t v = 0;
        const char *p = name;
        if (*p < '0' || *p > '9')
                return false;
        for (; *p >= '0' && *p <= '9'; p++) {
                v = v * 10 + (uint64_t)(*p - '0');
                if (v > UINT32_MAX)
                        return false;
        }
        if (strcmp(p, ".pack") != 0 || v == 0)
                return false;
        *ret = (uint32_t)v;
        return true;
}

int vc_pack_check_hdr(const VcStore *s, int fd, uint64_t domain, uint32_t pack)
{
        uint8_t b[VC_PACK_HDR_LEN];
        VcPackHdr h = { 0 };
        char path[4096];
        vc_pack_path(s, domain, pack, path, sizeof path);
        int r = vc_pread_full(fd, b, sizeof b, 0);
        if (r < 0)
                return vc_errf(-EBADMSG, "pack %s is too short for its header", path);
        r = vc_pack_hdr_decode(b, &h);
        if (r == -EPROTO)
                return vc_errf(-EPROTO, "pack %s has an unknown format version %" PRIu32, path, vc_get32(b + 8));
        if (r < 0)
                return vc_errf(-EBADMSG, "pack %s has a damaged header", path);
        if (h.domain != domain || h.pack != pack)
                return vc_errf(-EBADMSG, "pack %s says it is pack %" PRIu32 " of domain %" PRIu64,
                               path, h.pack, h.domain);
        if (memcmp(h.uuid, s->uuid, VC_UUID_LEN) != 0)
                return vc_errf(-EBADMSG, "pack %s belongs to another store", path);
        return 0;
}

/* ---- reading records ----------------------------------------------------------------- */

/* preadv until every byte is in; -EIO on a short file. */
static int preadv_full(int fd, struct iovec *iov, int n, off_t off)
{
        while (n > 0) {
                ssize_t k = preadv(fd, iov, n, off);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        return -errno;
                }
                if (k == 0)
                        return -EIO;
                off += k;
                while (n > 0 && (size_t)k >= iov->iov_len) {
                        k -= (ssize_t)iov->iov_len;
                        iov++;
                        n--;
                }
                if (n > 0) {
                        iov->iov_base = (uint8_t *)iov->iov_base + k;
                        iov->iov_len -= (size_t)k;
                }
        }
        return 0;
}

int vc_pack_read_record(int fd, uint64_t off, uint64_t domain, const uint8_t tag[VC_TAG_LEN],
                        const VcIdx *x, void *data)
{
        uint8_t hb[VC_REC_HDR_LEN];
        struct iovec iov[2] = { { hb, sizeof hb }, { data, data ? x->len : 0 } };
        int r = preadv_full(fd, iov, data && x->len ? 2 : 1, (off_t)off);
        if (r < 0)
                return r;
        VcRecHdr h = { 0 };
        if (vc_rec_hdr_decode(hb, &h) < 0 || h.domain != domain || h.len != x->len || h.kind != x->kind ||
            memcmp(h.tag, tag, VC_TAG_LEN) != 0)
                return -EBADMSG;
        return 0;
}

/* ---- buffered reader ------------------------------------------------------------------ */

#define VC_PREADER_WINDOW (1u << 20)

void vc_preader_init(VcPackReader *r, int fd, uint64_t end)
{
        memset(r, 0, sizeof *r);
        r->fd = fd;
        r->end = end;
}

void vc_preader_done(VcPackReader *r)
{
        free(r->buf);
        r->buf = NULL;
}

int vc_preader_get(VcPackReader *r, uint64_t off, size_t n, const uint8_t **p)
{
        if (off > r->end || n > r->end - off)
                return -EIO;
        if (off >= r->boff && off + n <= r->boff + r->blen) {
                *p = r->buf + (off - r->boff);
                return 0;
        }
        size_t want = VC_MAX(n, (size_t)VC_PREADER_WINDOW);
        want = (size_t)VC_MIN((uint64_t)want, r->end - off);
        if (want > r->cap) {
                uint8_t *b = realloc(r->buf, want);
                if (!b)
                        return -ENOMEM;
                r->buf = b;
                r->cap = want;
        }
        r->blen = 0;
        int ret = vc_pread_full(r->fd, r->buf, want, (off_t)off);
        if (ret < 0)
                return ret;
        r->boff = off;
        r->blen = want;
        *p = r->buf;
        return 0;
}

/* The offset of the next valid record header of domain at or after from,
 * or r->end if there is none. */
static uint64_t resync(VcPackReader *r, uint64_t domain, uint64_t from)
{
        uint8_t m[4];
        vc_put32(m, VC_REC_MAGIC);
        uint64_t pos = from;
        while (pos + VC_REC_HDR_LEN <= r->end) {
                size_t want = (size_t)VC_MIN((uint64_t)VC_PREADER_WINDOW, r->end - pos);
                const uint8_t *p, *h;
                if (vc_preader_get(r, pos, want, &p) < 0)
                        return r->end;
                const uint8_t *q = memmem(p, want, m, sizeof m);
                if (!q) {
                        pos += want - (sizeof m - 1);
                        continue;
                }
                uint64_t cand = pos + (uint64_t)(q - p);
                VcRecHdr rh = { 0 };
                if (cand + VC_REC_HDR_LEN <= r->end && vc_preader_get(r, cand, VC_REC_HDR_LEN, &h) == 0 &&
                    vc_rec_hdr_decode(h, &rh) == 0 && rh.domain == domain)
                        return cand;
                pos = cand + 1;
        }
        return r->end;
}

int vc_pack_walk(int fd, uint64_t domain, uint64_t start, uint64_t end, vc_rec_fn fn, void *ctx)
{
        VcPackReader r;
        vc_preader_init(&r, fd, end);
        uint64_t off = start;
        int ret = 0;
        while (off < end) {
                const uint8_t *p;
                VcRecHdr h = { 0 };
                if (off + VC_REC_HDR_LEN > end) {
                        ret = fn(off, NULL, NULL, ctx);       /* a torn header */
                        break;
                }
                ret = vc_preader_get(&r, off, VC_REC_HDR_LEN, &p);
                if (ret < 0)
                        break;
                if (vc_rec_hdr_decode(p, &h) == 0 && h.domain == domain) {
                        uint64_t rend = off + VC_REC_HDR_LEN + h.len;
                        if (rend > end) {
                                ret = fn(off, &h, NULL, ctx);
                                break;
                        }
                        ret = vc_preader_get(&r, off + VC_REC_HDR_LEN, h.len, &p);
                        if (ret < 0)
                                break;
                        ret = fn(off, &h, p, ctx);
                        if (ret < 0)
                                break;
                        off = rend;
                        continue;
                }
                ret = fn(off, NULL, NULL, ctx);
                if (ret < 0)
                        break;
                off = resync(&r, domain, off + 1);
        }
        vc_preader_done(&r);
        return ret < 0 ? ret : 0;
}
