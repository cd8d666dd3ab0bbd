/* Parsing and checking a trace's manifest.tsv (spec section 1).
 *
 * Every check that can be made without reading the images is made here, so
 * that a malformed trace fails at once, naming the line, before any output
 * is written and before hours of reading start. */
#include "analyze/analyze_internal.h"
#include "core/vc_util.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MANIFEST_MAX (256u << 20)

enum { COL_PARCEL, COL_VERSION, COL_TIMESTAMP, COL_MEMORY, COL_DISK, COL_MAX };
static const char *const col_names[COL_MAX] = { "parcel", "version", "timestamp", "memory", "disk" };

void vc_trace_free(VcTrace *t)
{
        if (!t)
                return;
        for (size_t i = 0; i < t->nversions; i++)
                for (int m = 0; m < VC_IMG_MAX; m++)
                        free(t->versions[i].path[m]);
        for (size_t i = 0; i < t->nparcels; i++)
                free(t->parcels[i].name);
        free(t->versions);
        free(t->parcels);
        free(t->order);
        free(t->manifest);
        free(t);
}

size_t vc_trace_nparcels(const VcTrace *t) { return t->nparcels; }
size_t vc_trace_nversions(const VcTrace *t) { return t->nversions; }
uint64_t vc_trace_bytes(const VcTrace *t) { return t->bytes; }
uint32_t vc_trace_max_day(const VcTrace *t) { return t->max_day; }

/* Splits line in place at tabs; returns the number of fields (stops at max,
 * but keeps counting so that a row with too many fields is reported). */
static size_t split_tabs(char *line, char **fields, size_t max)
{
        size_t n = 0;
        char *p = line;
        for (;;) {
                char *tab = strchr(p, '\t');
                if (n < max)
                        fields[n] = p;
                n++;
                if (!tab)
                        break;
                *tab = 0;
                p = tab + 1;
        }
        return n;
}

static bool is_blank(const char *s)
{
        for (; *s; s++)
                if (*s != ' ' && *s != '\t')
                        return false;
        return true;
}

static bool valid_parcel(const char *s)
{
        if (!*s)
                return false;
        for (; *s; s++)
                if (!((*s >= 'A' && *s <= 'Z') || (*s >= 'a' && *s <= 'z') || (*s >= '0' && *s <= '9') ||
                      *s == '.' || *s == '_' || *s == '-'))
                        return false;
        return true;
}

/* Decimal digits only: no sign, no spaces, no empty string. */
static bool parse_digits(const char *s, uint64_t limit, uint64_t *ret)
{
        if (!*s)
                return false;
        uint64_t v = 0;
        for (; *s; s++) {
                if (*s < '0' || *s > '9')
                        return false;
                unsigned d = (unsigned)(*s - '0');
                if (v > (limit - d) / 10)
                        return false;
                v = v * 10 + d;
        }
        *ret = v;
        return true;
}

static bool parse_timestamp(const char *s, int64_t *ret)
{
        bool neg = *s == '-';
        uint64_t v;
        if (!parse_digits(s + neg, neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX, &v))
                return false;
        /* -(2^63) is representable; negate in unsigned arithmetic. */
        *ret = neg ? (int64_t)(0 - v) : (int64_t)v;
        return true;
}

typedef struct Row {
        char *parcel;
        uint32_t version;
        int64_t ts;
        uint32_t line;
        char *path[VC_IMG_MAX];
        uint64_t size[VC_IMG_MAX];
} Row;

static int row_cmp(const void *x, const void *y)
{
        const Row *a = x, *b = y;
        int c = strcmp(a->parcel, b->parcel);
        if (c)
                return c;
        return a->version < b->version ? -1 : a->version > b->version;
}

static char *join_path(const char *dir, const char *rel)
{
        char *p;
        if (rel[0] == '/')
                return strdup(rel);
        if (asprintf(&p, "%s/%s", dir, rel) < 0)
                return NULL;
        return p;
}

/* Checks that an image exists, is a regular file and can be opened. */
static int stat_image(const VcTrace *t, uint32_t line, const char *what, const char *rel, const char *path,
                      uint64_t *ret)
{
        int fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0)
                return vc_errf(-errno, "%s:%u: cannot open %s image '%s': %s", t->manifest, line, what, rel,
                               strerror(errno));
        struct stat st;
        int r = fstat(fd, &st) < 0 ? -errno : 0;
        close(fd);
        if (r < 0)
                return vc_errf(r, "%s:%u: cannot stat %s image '%s': %s", t->manifest, line, what, rel,
                               strerror(-r));
        if (!S_ISREG(st.st_mode))
                return vc_errf(-EINVAL, "%s:%u: %s image '%s' is not a regular file", t->manifest, line, what, rel);
        *ret = (uint64_t)st.st_size;
        return 0;
}

static int parse_rows(VcTrace *t, const char *dir, char *text, Row **ret_rows, size_t *ret_n)
{
        int col[COL_MAX];
        size_t ncols = 0;
        bool have_header = false;
        Row *rows = NULL;
        size_t n = 0, cap = 0;
        char **fields = NULL;
        int r = 0;
        uint32_t lineno = 0;

        for (char *line = text, *next; line; line = next) {
                next = strchr(line, '\n');
                if (next)
                        *next++ = 0;
                lineno++;
                size_t len = strlen(line);
                if (len && line[len - 1] == '\r')
                        line[--len] = 0;
                if (line[0] == '#' || is_blank(line))
                        continue;
                if (!have_header) {
                        size_t nf = 1;
                        for (const char *c = line; *c; c++)
                                nf += *c == '\t';
                        fields = calloc(nf, sizeof *fields);
                        if (!fields)
                                return -ENOMEM;
                        split_tabs(line, fields, nf);
                        for (int c = 0; c < COL_MAX; c++)
                                col[c] = -1;
                        for (size_t i = 0; i < nf; i++)
                                for (int c = 0; c < COL_MAX; c++)
                                        if (strcmp(fields[i], col_names[c]) == 0) {
                                                if (col[c] >= 0) {
                                                        r = vc_errf(-EINVAL, "%s:%u: the header names column '%s' twice",
                                                                    t->manifest, lineno, col_names[c]);
                                                        goto out;
                                                }
                                                col[c] = (int)i;
                                        }
                        for (int c = 0; c < COL_MAX; c++)
                                if (col[c] < 0) {
                                        r = vc_errf(-EINVAL,
                                                    "%s:%u: the header has no '%s' column (it needs parcel, version, "
                                                    "timestamp, memory and disk, separated by tabs)",
                                                    t->manifest, lineno, col_names[c]);
                                        goto out;
                                }
                        ncols = nf;
                        have_header = true;
                        continue;
                }
                size_t nf = split_tabs(line, fields, ncols);
                if (nf != ncols) {
                        r = vc_errf(-EINVAL, "%s:%u: %zu fields, but the header has %zu (fields are separated by tabs)",
                                    t->manifest, lineno, nf, ncols);
                        goto out;
                }
                Row *nr = vc_grow(rows, &cap, n, sizeof *nr, 64);
                if (!nr) {
                        r = -ENOMEM;
                        goto out;
                }
                rows = nr;
                Row *row = &rows[n++]; /* counted now, so an error frees its strings */
                memset(row, 0, sizeof *row);
                row->line = lineno;
                const char *parcel = fields[col[COL_PARCEL]];
                if (!valid_parcel(parcel)) {
                        r = vc_errf(-EINVAL, "%s:%u: bad parcel name '%s' (letters, digits, '.', '_' and '-' only)",
                                    t->manifest, lineno, parcel);
                        goto out;
                }
                uint64_t v;
                const char *vs = fields[col[COL_VERSION]];
                if (!parse_digits(vs, UINT32_MAX - 1, &v) || v == 0) {
                        r = vc_errf(-EINVAL, "%s:%u: bad version '%s' (expected a whole number 1, 2, 3, ...)",
                                    t->manifest, lineno, vs);
                        goto out;
                }
                row->version = (uint32_t)v;
                const char *ts = fields[col[COL_TIMESTAMP]];
                if (!parse_timestamp(ts, &row->ts)) {
                        r = vc_errf(-EINVAL,
                                    "%s:%u: bad timestamp '%s' (expected whole seconds since the epoch, "
                                    "optionally negative)",
                                    t->manifest, lineno, ts);
                        goto out;
                }
                static const int img_col[VC_IMG_MAX] = { COL_MEMORY, COL_DISK };
                for (int m = 0; m < VC_IMG_MAX; m++) {
                        const char *rel = fields[col[img_col[m]]];
                        if (!*rel) {
                                r = vc_errf(-EINVAL, "%s:%u: empty %s path", t->manifest, lineno, col_names[img_col[m]]);
                                goto out;
                        }
                        row->path[m] = join_path(dir, rel);
                        if (!row->path[m]) {
                                r = -ENOMEM;
                                goto out;
                        }
                        r = stat_image(t, lineno, col_names[img_col[m]], rel, row->path[m], &row->size[m]);
                        if (r < 0)
                                goto out;
                }
                row->parcel = strdup(parcel);
                if (!row->parcel) {
                        r = -ENOMEM;
                        goto out;
                }
        }
        if (!have_header)
                r = vc_errf(-EINVAL, "%s: no header line (parcel, version, timestamp, memory, disk)", t->manifest);
        else if (n == 0)
                r = vc_errf(-EINVAL, "%s: no versions: the manifest has a header but no rows", t->manifest);
out:
        free(fields);
        if (r < 0) {
                for (size_t i = 0; i < n; i++) {
                        free(rows[i].parcel);
                        for (int m = 0; m < VC_IMG_MAX; m++)
                                free(rows[i].path[m]);
                }
                free(rows);
                return r;
        }
        *ret_rows = rows;
        *ret_n = n;
        return 0;
}

static int order_cmp(const void *x, const void *y, void *arg)
{
        const VcTrace *t = arg;
        const VcTraceVersion *a = &t->versions[*(const uint32_t *)x];
        const VcTraceVersion *b = &t->versions[*(const uint32_t *)y];
        if (a->ts != b->ts)
                return a->ts < b->ts ? -1 : 1;
        if (a->parcel != b->parcel) /* parcels are sorted bytewise by name */
                return a->parcel < b->parcel ? -1 : 1;
        return a->version < b->version ? -1 : a->version > b->version;
}

/* Moves sorted rows into parcels and versions, checking what needs the
 * whole parcel: consecutive versions, timestamps, sizes. */
static int build(VcTrace *t, Row *rows, size_t n)
{
        static const char *const img_name[VC_IMG_MAX] = { "memory", "disk" };
        qsort(rows, n, sizeof *rows, row_cmp);
        for (size_t i = 0, first = 0; i < n; i++) {
                Row *row = &rows[i];
                bool new_parcel = i == 0 || strcmp(rows[i - 1].parcel, row->parcel) != 0;
                if (new_parcel)
                        first = i;
                uint32_t want = (uint32_t)(i - first + 1);
                if (!new_parcel && row->version == rows[i - 1].version)
                        return vc_errf(-EINVAL, "%s:%u: parcel %s version %u appears twice (also on line %u)",
                                       t->manifest, row->line, row->parcel, row->version, rows[i - 1].line);
                if (row->version != want) {
                        if (want == 1)
                                return vc_errf(-EINVAL, "%s:%u: parcel %s has no version 1 (its first is version %u)",
                                               t->manifest, row->line, row->parcel, row->version);
                        return vc_errf(-EINVAL,
                                       "%s:%u: version gap: parcel %s version %u follows version %u "
                                       "(versions must be consecutive)",
                                       t->manifest, row->line, row->parcel, row->version, want - 1);
                }
                if (new_parcel)
                        continue;
                const Row *prev = &rows[i - 1], *v1 = &rows[first];
                if (row->ts < prev->ts)
                        return vc_errf(-EINVAL,
                                       "%s:%u: timestamp goes back: parcel %s version %u has %" PRId64
                                       ", before version %u's %" PRId64 " (line %u)",
                                       t->manifest, row->line, row->parcel, row->version, row->ts, prev->version,
                                       prev->ts, prev->line);
                for (int m = 0; m < VC_IMG_MAX; m++)
                        if (row->size[m] != v1->size[m])
                                return vc_errf(-EINVAL,
                                               "%s:%u: size change: %s image of parcel %s version %u is %" PRIu64
                                               " bytes, version 1 (line %u) has %" PRIu64,
                                               t->manifest, row->line, img_name[m], row->parcel, row->version,
                                               row->size[m], v1->line, v1->size[m]);
                /* ts >= ts of version 1, so the difference is non-negative and
                 * fits in uint64 even across the whole int64 range. */
                uint64_t days = ((uint64_t)row->ts - (uint64_t)v1->ts) / 86400;
                if (days >= VC_TRACE_MAX_DAYS)
                        return vc_errf(-EINVAL, "%s:%u: parcel %s version %u is on day %" PRIu64
                                       " after its version 1; at most %u days are supported",
                                       t->manifest, row->line, row->parcel, row->version, days,
                                       VC_TRACE_MAX_DAYS - 1);
        }

        size_t np = 0;
        for (size_t i = 0; i < n; i++)
                np += rows[i].version == 1;
        t->parcels = calloc(np, sizeof *t->parcels);
        t->versions = calloc(n, sizeof *t->versions);
        t->order = calloc(n, sizeof *t->order);
        if (!t->parcels || !t->versions || !t->order)
                return -ENOMEM;
        for (size_t i = 0; i < n; i++) {
                Row *row = &rows[i];
                if (row->version == 1) {
                        VcTraceParcel *p = &t->parcels[t->nparcels++];
                        p->name = row->parcel;
                        row->parcel = NULL;
                        p->first = (uint32_t)i;
                        memcpy(p->size, row->size, sizeof p->size);
                }
                VcTraceParcel *p = &t->parcels[t->nparcels - 1];
                p->nversions++;
                VcTraceVersion *v = &t->versions[t->nversions++];
                v->parcel = (uint32_t)(t->nparcels - 1);
                v->version = row->version;
                v->ts = row->ts;
                v->day = (uint32_t)(((uint64_t)row->ts - (uint64_t)t->versions[p->first].ts) / 86400);
                v->line = row->line;
                for (int m = 0; m < VC_IMG_MAX; m++) {
                        v->path[m] = row->path[m];
                        row->path[m] = NULL;
                        t->bytes += row->size[m];
                }
                t->max_day = VC_MAX(t->max_day, v->day);
                t->order[i] = (uint32_t)i;
        }
        qsort_r(t->order, n, sizeof *t->order, order_cmp, t);
        return 0;
}

int vc_trace_open(const char *dir, VcTrace **ret)
{
        VcTrace *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        if (asprintf(&t->manifest, "%s/manifest.tsv", dir) < 0) {
                free(t);
                return -ENOMEM;
        }
        uint8_t *text = NULL;
        size_t len = 0;
        int r = vc_read_file(t->manifest, &text, &len, MANIFEST_MAX);
        if (r < 0) {
                r = vc_errf(r, "cannot read %s: %s", t->manifest, r == -EFBIG ? "larger than 256 MiB" : strerror(-r));
                vc_trace_free(t);
                return r;
        }
        if (memchr(text, 0, len)) {
                free(text);
                r = vc_errf(-EINVAL, "%s: contains a NUL byte: not a text manifest", t->manifest);
                vc_trace_free(t);
                return r;
        }
        Row *rows = NULL;
        size_t n = 0;
        r = parse_rows(t, dir, (char *)text, &rows, &n);
        free(text);
        if (r < 0) {
                vc_trace_free(t);
                return r;
        }
        r = build(t, rows, n);
        for (size_t i = 0; i < n; i++) {
                free(rows[i].parcel);
                for (int m = 0; m < VC_IMG_MAX; m++)
                        free(rows[i].path[m]);
        }
        free(rows);
        if (r < 0) {
                vc_trace_free(t);
                return r;
        }
        *ret = t;
        return 0;
}
