/* The machine of a version: its sections, parsed and built (vc_machine.h). */
#include "client/vc_machine.h"
#include "client/vc_client_int.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define HDR 16
#define SEC_HDR 16

static int bad(const char *what)
{
        return vc_errf(-EBADMSG, "the machine of this version is malformed (%s)", what);
}

static int parse_config(const uint8_t *b, size_t len, VcMachine *m)
{
        char line[1200];
        size_t o = 0;
        while (o < len) {
                const uint8_t *nl = memchr(b + o, '\n', len - o);
                size_t n = nl ? (size_t)(nl - (b + o)) : len - o;
                if (n >= sizeof line)
                        return bad("a config line is too long");
                memcpy(line, b + o, n);
                line[n] = 0;
                if (memchr(line, 0, n))
                        return bad("a NUL in the config");
                o += n + 1;
                char *eq = strchr(line, '=');
                if (!n)
                        continue;
                if (!eq)
                        return bad("a config line without '='");
                *eq = 0;
                const char *v = eq + 1;
                if (strcmp(line, "boot") == 0) {
                        if (strcmp(v, "kernel") != 0 && strcmp(v, "disk") != 0)
                                return bad("boot is neither kernel nor disk");
                        snprintf(m->boot, sizeof m->boot, "%s", v);
                } else if (strcmp(line, "append") == 0) {
                        if (strlen(v) >= sizeof m->append)
                                return bad("the kernel command line is too long");
                        snprintf(m->append, sizeof m->append, "%s", v);
                }
                /* other keys: from a later vmcas, ignored */
        }
        if (!m->boot[0])
                return bad("no boot line in the config");
        return 0;
}

int vc_machine_parse(const uint8_t *b, size_t len, VcMachine *m)
{
        memset(m, 0, sizeof *m);
        if (len < HDR || memcmp(b, "VMCM", 4) != 0)
                return bad("no VMCM header");
        if (b[4] != 1)
                return vc_errf(-EPROTO, "the machine of this version has format %u; this vmcas reads format 1",
                               b[4]);
        if (b[5] || b[6] || b[7] || vc_get32(b + 12))
                return bad("reserved bytes set");
        uint32_t n = vc_get32(b + 8);
        size_t o = HDR;
        for (uint32_t i = 0; i < n; i++) {
                if (len - o < SEC_HDR)
                        return bad("a section header is cut short");
                uint32_t type = vc_get32(b + o);
                uint64_t sl = vc_get64(b + o + 8);
                if (vc_get32(b + o + 4))
                        return bad("reserved bytes set");
                o += SEC_HDR;
                if (sl > len - o)
                        return bad("a section is cut short");
                if (type >= 1 && type <= VC_MS_MAX) {
                        if (m->sec[type])
                                return bad("a section twice");
                        m->sec[type] = b + o;
                        m->len[type] = (size_t)sl;
                }
                size_t pad = (size_t)((8 - sl % 8) % 8);
                if (pad > len - o - sl)
                        return bad("a section is cut short");
                o += (size_t)sl + pad;
        }
        if (o != len)
                return bad("bytes after the last section");
        if (!m->sec[VC_MS_CONFIG])
                return bad("no config section");
        int r = parse_config(m->sec[VC_MS_CONFIG], m->len[VC_MS_CONFIG], m);
        if (r < 0)
                return r;
        if (strcmp(m->boot, "kernel") == 0 && !m->sec[VC_MS_KERNEL])
                return bad("it boots a kernel but holds none");
        return 0;
}

int vc_machine_build(const VcMachine *m, uint8_t **out, size_t *out_len)
{
        char cfg[1200];
        int cl = snprintf(cfg, sizeof cfg, "boot=%s\nappend=%s\n", m->boot, m->append);
        if (cl < 0 || (size_t)cl >= sizeof cfg || strchr(m->append, '\n'))
                return vc_errf(-EINVAL, "the kernel command line is too long or has a newline");
        const uint8_t *sec[VC_MS_MAX + 1] = { 0 };
        size_t len[VC_MS_MAX + 1] = { 0 };
        sec[VC_MS_CONFIG] = (const uint8_t *)cfg;
        len[VC_MS_CONFIG] = (size_t)cl;
        for (int t = VC_MS_KERNEL; t <= VC_MS_MAX; t++) {
                sec[t] = m->sec[t];
                len[t] = m->sec[t] ? m->len[t] : 0;
        }
        size_t total = HDR;
        uint32_t n = 0;
        for (int t = 1; t <= VC_MS_MAX; t++)
                if (sec[t]) {
                        total += SEC_HDR + len[t] + (8 - len[t] % 8) % 8;
                        n++;
                }
        if (total > VC_MACHINE_MAX)
                return vc_errf(-EFBIG, "the machine would be %zu bytes; a version holds at most %llu", total,
                               (unsigned long long)VC_MACHINE_MAX);
        uint8_t *b = calloc(1, total);
        if (!b)
                return -ENOMEM;
        memcpy(b, "VMCM", 4);
        b[4] = 1;
        vc_put32(b + 8, n);
        size_t o = HDR;
        for (int t = 1; t <= VC_MS_MAX; t++) {
                if (!sec[t])
                        continue;
                vc_put32(b + o, (uint32_t)t);
                vc_put64(b + o + 8, len[t]);
                o += SEC_HDR;
                memcpy(b + o, sec[t], len[t]);
                o += len[t] + (8 - len[t] % 8) % 8;
        }
        *out = b;
        *out_len = total;
        return 0;
}
