/* The protocol's shared layouts and error names (vc_wire.h). */
#include "remote/vc_wire.h"
#include "core/vc_util.h"
#include "repo/vc_repo.h"

#include <errno.h>
#include <string.h>

size_t vc_wire_head(uint8_t *buf, const char *parcel, const char *domain, uint32_t n)
{
        size_t pl = strlen(parcel), dl = strlen(domain), o = 0;
        buf[o++] = (uint8_t)pl;
        memcpy(buf + o, parcel, pl);
        o += pl;
        buf[o++] = (uint8_t)dl;
        memcpy(buf + o, domain, dl);
        o += dl;
        vc_put32(buf + o, n);
        return o + 4;
}

int vc_wire_head_parse(const uint8_t *buf, size_t len, char parcel[65], char domain[80], uint32_t *n)
{
        if (len < 1)
                return 0;
        size_t pl = buf[0];
        if (pl == 0 || pl > VC_NAME_MAX)
                return vc_errf(-EINVAL, "a parcel name of %zu bytes in the request", pl);
        if (len < 1 + pl + 1)
                return 0;
        size_t dl = buf[1 + pl];
        if (dl == 0 || dl >= VC_DOMAIN_MAX)
                return vc_errf(-EINVAL, "a domain name of %zu bytes in the request", dl);
        size_t total = 1 + pl + 1 + dl + 4;
        if (len < total)
                return 0;
        memcpy(parcel, buf + 1, pl);
        parcel[pl] = 0;
        memcpy(domain, buf + 2 + pl, dl);
        domain[dl] = 0;
        if (strlen(parcel) != pl || !vc_name_valid(parcel))
                return vc_errf(-EINVAL, "invalid parcel name in the request");
        if (strlen(domain) != dl || !vc_domain_name_valid(domain))
                return vc_errf(-EINVAL, "invalid domain name in the request");
        *n = vc_get32(buf + 2 + pl + dl);
        return (int)total;
}

static const struct { int err; const char *name; } names[] = {
        { EINVAL, "EINVAL" },   { EBADMSG, "EBADMSG" }, { EPROTO, "EPROTO" },   { ENOENT, "ENOENT" },
        { EEXIST, "EEXIST" },   { EAGAIN, "EAGAIN" },   { EBUSY, "EBUSY" },     { ESTALE, "ESTALE" },
        { EACCES, "EACCES" },   { EFBIG, "EFBIG" },     { ENOTSUP, "ENOTSUP" }, { EIO, "EIO" },
        { ENOSPC, "ENOSPC" },   { ENOMEM, "ENOMEM" },   { ENAMETOOLONG, "ENAMETOOLONG" },
        { EKEYREJECTED, "EKEYREJECTED" }, { ENOKEY, "ENOKEY" }, { ETIMEDOUT, "ETIMEDOUT" },
};

const char *vc_wire_errname(int err)
{
        for (size_t i = 0; i < VC_ARRAY_SIZE(names); i++)
                if (names[i].err == -err)
                        return names[i].name;
        return "EIO";
}

int vc_wire_errcode(const char *name)
{
        for (size_t i = 0; name && i < VC_ARRAY_SIZE(names); i++)
                if (strcmp(names[i].name, name) == 0)
                        return -names[i].err;
        return 0;
}
