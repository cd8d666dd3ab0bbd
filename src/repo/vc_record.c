/* Parcel and version records: their layout (vc_repo.h), packed and
 * unpacked field by field. No key is used here: the MAC of a parcel
 * record and the GCM tag of a version record are checked by the client. */
#include "repo/vc_repo.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

bool vc_name_valid(const char *s)
{
        size_t n = strlen(s);
        if (n == 0 || n > VC_NAME_MAX || s[0] == '.' || s[0] == '-')
                return false;
        for (; *s; s++)
                if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

bool vc_domain_name_valid(const char *s)
{
        if (strcmp(s, "all") == 0)
                return true;
        if (strncmp(s, "group:", 6) == 0)
                return vc_name_valid(s + 6);
        if (strncmp(s, "parcel:", 7) != 0 || strlen(s + 7) != 32)
                return false;
        for (const char *c = s + 7; *c; c++)
                if (!((*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'f')))
                        return false;
        return true;
}

void vc_parcel_domains(VcParcel *p)
{
        char hex[33];
        vc_hex(p->uuid, 16, hex);
        snprintf(p->node_dom, sizeof p->node_dom, "parcel:%s", hex);
        if (p->policy == VC_POLICY_GROUP)
                snprintf(p->data_dom, sizeof p->data_dom, "group:%s", p->group);
        else if (p->policy == VC_POLICY_ALL)
                snprintf(p->data_dom, sizeof p->data_dom, "all");
        else
                snprintf(p->data_dom, sizeof p->data_dom, "%s", p->node_dom);
}

static size_t put_str(uint8_t *b, const char *s)
{
        size_t n = strlen(s);
        b[0] = (uint8_t)n;
        memcpy(b + 1, s, n);
        return 1 + n;
}

int vc_parcel_pack(const VcParcel *p, uint8_t *b, size_t cap, size_t *len)
{
        size_t need = VC_PARCEL_REC_FIXED + 3 + strlen(p->group) + strlen(p->node_dom) + strlen(p->data_dom) +
                      VC_RECORD_MAC_LEN;
        if (cap < need || strlen(p->group) > VC_NAME_MAX)
                return -ENOBUFS;
        memset(b, 0, VC_PARCEL_REC_FIXED);
        memcpy(b, "VPAR", 4);
        b[4] = VC_PARCEL_FORMAT;
        b[5] = (uint8_t)p->policy;
        b[6] = (uint8_t)p->comp;
        memcpy(b + 8, p->uuid, 16);
        vc_put32(b + 24, p->chunk_size);
        vc_put64(b + 32, p->mem_size);
        vc_put64(b + 40, p->disk_size);
        vc_put64(b + 48, (uint64_t)p->created);
        memcpy(b + 56, p->check, 16);
        memcpy(b + 72, p->group_check, 16);
        size_t o = VC_PARCEL_REC_FIXED;
        o += put_str(b + o, p->group);
        o += put_str(b + o, p->node_dom);
        o += put_str(b + o, p->data_dom);
        memcpy(b + o, p->mac, VC_RECORD_MAC_LEN);
        *len = o + VC_RECORD_MAC_LEN;
        return 0;
}

/* Reads a length-prefixed string of at most max bytes. */
static int get_str(const uint8_t *b, size_t len, size_t *o, char *out, size_t max)
{
        if (*o >= len || b[*o] > max || *o + 1 + b[*o] > len)
                return -1;
        size_t n = b[*o];
        memcpy(out, b + *o + 1, n);
        out[n] = 0;
        if (memchr(out, 0, n))
                return -1;
        *o += 1 + n;
        return 0;
}

int vc_parcel_unpack(const uint8_t *b, size_t len, const char *name, VcParcel *p)
{
        memset(p, 0, sizeof *p);
        if (len >= 5 && memcmp(b, "VPAR", 4) == 0 && b[4] == 1)
                return vc_errf(-EPROTO, "parcel '%s' was made by an earlier vmcas (record format 1, which "
                               "is not authenticated); this vmcas cannot use it", name);
        size_t o = VC_PARCEL_REC_FIXED;
        if (len < VC_PARCEL_REC_FIXED + 3 + VC_RECORD_MAC_LEN || memcmp(b, "VPAR", 4) != 0 ||
            b[4] != VC_PARCEL_FORMAT || b[5] > VC_POLICY_ALL || b[6] > VC_COMP_ZSTD || b[7] != 0)
                goto bad;
        snprintf(p->name, sizeof p->name, "%s", name);
        p->policy = b[5];
        p->comp = b[6];
        memcpy(p->uuid, b + 8, 16);
        p->chunk_size = vc_get32(b + 24);
        p->mem_size = vc_get64(b + 32);
        p->disk_size = vc_get64(b + 40);
        p->created = (int64_t)vc_get64(b + 48);
        memcpy(p->check, b + 56, 16);
        memcpy(p->group_check, b + 72, 16);
        if (get_str(b, len, &o, p->group, VC_NAME_MAX) < 0 || get_str(b, len, &o, p->node_dom, VC_DOMAIN_MAX - 1) < 0 ||
            get_str(b, len, &o, p->data_dom, VC_DOMAIN_MAX - 1) < 0 || o + VC_RECORD_MAC_LEN != len)
                goto bad;
        /* Like a bad domain name, a chunk size that no vmcas writes is
         * refused here, before anyone divides by it or sizes a buffer by
         * it; the MAC, which would catch it too, is checked only by a
         * client, after unpack (found by fuzz_parcel: under record format
         * 1, unauthenticated, a chunk size of 0 made checkout die of
         * SIGFPE). */
        if (!vc_chunk_size_valid(p->chunk_size) || !vc_domain_name_valid(p->node_dom) ||
            !vc_domain_name_valid(p->data_dom) ||
            strncmp(p->node_dom, "parcel:", 7) != 0 || (p->policy == VC_POLICY_GROUP && !vc_name_valid(p->group)) ||
            (p->policy != VC_POLICY_GROUP && p->group[0]))
                goto bad;
        memcpy(p->mac, b + o, VC_RECORD_MAC_LEN);
        return 0;
bad:
        memset(p, 0, sizeof *p);
        return vc_errf(-EBADMSG, "the record of parcel '%s' is malformed (changed outside vmcas?)", name);
}

size_t vc_version_pack(const VcVersion *v, uint8_t b[VC_VERSION_REC_MAX])
{
        bool v2 = v->format == 2;
        size_t len = v2 ? VC_VERSION_REC_LEN_V2 : VC_VERSION_REC_LEN;
        memset(b, 0, len);
        memcpy(b, "VVER", 4);
        b[4] = v2 ? 2 : VC_VERSION_FORMAT;
        vc_put32(b + 8, v->version);
        vc_put64(b + 16, (uint64_t)v->timestamp);
        memcpy(b + 24, v->uuid, 16);
        vc_put64(b + 40, v->mem_size);
        vc_put64(b + 48, v->disk_size);
        memcpy(b + 56, v->mem_root, 32);
        memcpy(b + 88, v->disk_root, 32);
        vc_put64(b + 120, v->new_chunks);
        vc_put64(b + 128, v->new_bytes);
        vc_put64(b + 136, v->meta_bytes);
        if (v2) {
                memcpy(b + 144, v->wrapped, VC_WRAPPED_LEN_V2);
                return len;
        }
        vc_put64(b + 144, v->machine_size);
        memcpy(b + 152, v->machine_root, 32);
        vc_put64(b + 184, v->order_size);
        memcpy(b + 192, v->order_root, 32);
        memcpy(b + 224, v->wrapped, VC_WRAPPED_LEN);
        return len;
}

size_t vc_version_aad(const VcVersion *v, uint8_t aad[VC_VERSION_AAD_LEN])
{
        uint8_t rec[VC_VERSION_REC_MAX];
        vc_version_pack(v, rec);
        size_t n = v->format == 2 ? VC_VERSION_AAD_LEN_V2 : VC_VERSION_AAD_LEN;
        memcpy(aad, rec, n);
        vc_wipe(rec, sizeof rec);
        return n;
}

int vc_version_unpack(const uint8_t *b, size_t len, VcVersion *v)
{
        static const uint8_t zero[32];
        uint64_t seq = v->seq;
        memset(v, 0, sizeof *v);
        v->seq = seq;
        if (!vc_version_rec_len_ok(len) || memcmp(b, "VVER", 4) != 0 ||
            b[4] != (len == VC_VERSION_REC_LEN ? VC_VERSION_FORMAT : 2) || b[5] || b[6] || b[7] || vc_get32(b + 12))
                return vc_errf(-EBADMSG, "a version record is malformed (changed outside vmcas?)");
        v->format = b[4];
        v->version = vc_get32(b + 8);
        v->timestamp = (int64_t)vc_get64(b + 16);
        memcpy(v->uuid, b + 24, 16);
        v->mem_size = vc_get64(b + 40);
        v->disk_size = vc_get64(b + 48);
        memcpy(v->mem_root, b + 56, 32);
        memcpy(v->disk_root, b + 88, 32);
        v->new_chunks = vc_get64(b + 120);
        v->new_bytes = vc_get64(b + 128);
        v->meta_bytes = vc_get64(b + 136);
        if (v->format == 2) {
                memcpy(v->wrapped, b + 144, VC_WRAPPED_LEN_V2);
                return 0;
        }
        v->machine_size = vc_get64(b + 144);
        memcpy(v->machine_root, b + 152, 32);
        v->order_size = vc_get64(b + 184);
        memcpy(v->order_root, b + 192, 32);
        memcpy(v->wrapped, b + 224, VC_WRAPPED_LEN);
        /* a tree of no bytes has no root */
        if ((v->machine_size == 0 && memcmp(v->machine_root, zero, 32) != 0) ||
            (v->order_size == 0 && memcmp(v->order_root, zero, 32) != 0) || v->order_size % 8 != 0)
                return vc_errf(-EBADMSG, "a version record is malformed (changed outside vmcas?)");
        return 0;
}

void vc_version_key(uint64_t parcel_id, uint32_t version, uint8_t key[12])
{
        vc_put64be(key, parcel_id);
        vc_put32be(key + 8, version);
}
