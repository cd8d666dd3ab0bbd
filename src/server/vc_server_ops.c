/* The server's handlers: one per route of docs/protocol.md, each on the
 * local back end, each checking first that the user may use the parcel. */
#include "server/vc_server_req.h"
#include "core/vc_hash.h"
#include "core/vc_util.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define VERIFY_MESSAGES_MAX 1000

/* ---- JSON bodies --------------------------------------------------------------- */

/* The body as a JSON object; an empty body is {}. */
static int body_json(VcReq *q, json_t **ret)
{
        if (q->len == 0) {
                *ret = json_object();
                return *ret ? 0 : -ENOMEM;
        }
        json_error_t e;
        json_t *j = json_loadb((const char *)q->buf, q->len, JSON_REJECT_DUPLICATES, &e);
        if (!j)
                return vc_errf(-EINVAL, "the body is not JSON: %s (line %d)", e.text, e.line);
        if (!json_is_object(j)) {
                json_decref(j);
                return vc_errf(-EINVAL, "the body is not a JSON object");
        }
        *ret = j;
        return 0;
}

/* A field of kind string; NULL if absent; -EINVAL if of another type. */
static int jstr(json_t *o, const char *key, bool required, const char **ret)
{
        json_t *v = json_object_get(o, key);
        *ret = NULL;
        if (!v && !required)
                return 0;
        if (!json_is_string(v))
                return vc_errf(-EINVAL, "the body needs \"%s\" as a string", key);
        *ret = json_string_value(v);
        return 0;
}

static int jint(json_t *o, const char *key, bool required, int64_t min, int64_t max, int64_t *ret)
{
        json_t *v = json_object_get(o, key);
        if (!v && !required)
                return 0;
        if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max)
                return vc_errf(-EINVAL, "the body needs \"%s\" as an integer from %" PRId64 " to %" PRId64, key, min,
                               max);
        *ret = json_integer_value(v);
        return 0;
}

static int jhex(json_t *o, const char *key, uint8_t *out, size_t max, size_t *len)
{
        const char *s;
        int r = jstr(o, key, true, &s);
        if (r < 0)
                return r;
        size_t n = strlen(s);
        if (n % 2 || n / 2 > max || n == 0 || vc_unhex(s, out, n / 2) < 0)
                return vc_errf(-EINVAL, "\"%s\" is not %s hex digits", key, len ? "up to the allowed" : "the right number of");
        if (len)
                *len = n / 2;
        else if (n / 2 != max)
                return vc_errf(-EINVAL, "\"%s\" is not %zu hex digits", key, 2 * max);
        return 0;
}

static json_t *hexstr(const uint8_t *b, size_t n)
{
        char *s = malloc(2 * n + 1);
        if (!s)
                return NULL;
        vc_hex(b, n, s);
        json_t *j = json_string(s);
        free(s);
        return j;
}

/* ---- the store ------------------------------------------------------------------------ */

static void op_store(VcReq *q)
{
        json_t *j = json_pack("{s:i, s:s, s:o, s:b, s:s, s:b, s:{s:I, s:I, s:I}}", "protocol", VC_WIRE_PROTOCOL,
                              "server", "vmcas 0.1", "uuid", hexstr(vc_backend_uuid(q->s->b), 16),
                              "existence_oracle", !q->s->no_oracle, "user", q->user.name, "admin", q->user.admin,
                              "limits", "put_bytes", (json_int_t)VC_WIRE_PUT_MAX, "tags", (json_int_t)VC_WIRE_TAGS_MAX,
                              "commit_bytes", (json_int_t)VC_WIRE_COMMIT_MAX);
        vc_srv_reply_json(q, 200, j);
}

/* ---- chunks ------------------------------------------------------------------------------ */

/* The head and tags of a missing or get body, checked against the parcel. */
static int chunk_tags(VcReq *q, const uint8_t **tags, uint32_t *n)
{
        int h = vc_wire_head_parse(q->buf, q->len, q->parcel, q->domain, n);
        if (h == 0)
                return vc_errf(-EINVAL, "the body was cut short");
        if (h < 0)
                return h;
        if (*n > VC_WIRE_TAGS_MAX)
                return vc_errf(-EFBIG, "%u tags in one request; at most %u", *n, VC_WIRE_TAGS_MAX);
        if (q->len - (size_t)h != 32 * (size_t)*n)
                return vc_errf(-EINVAL, "the body holds %zu bytes of tags, not 32 for each of %u", q->len - (size_t)h,
                               *n);
        *tags = q->buf + h;
        VcParcelInfo pi;
        int r = vc_srv_parcel(q, q->parcel, &pi);
        return r < 0 ? r : vc_srv_domain(q, &pi, q->domain, &q->shared);
}

/* miss[i] = 1 if tags[i] is not stored, or (oracle off, shared pool) the
 * parcel may not know of it. */
static int missing_of(VcReq *q, const uint8_t *tags, uint32_t n, uint8_t *miss)
{
        int r = vc_chunks_missing(q->s->b, q->parcel, q->domain, tags, n, miss);
        if (r < 0 || !q->shared)
                return r;
        uint8_t *known = malloc(n);
        if (!known)
                return -ENOMEM;
        if ((r = vc_oracle_known(q->s->oracle, q->parcel, tags, n, known)) >= 0)
                for (uint32_t i = 0; i < n; i++)
                        miss[i] |= !known[i];
        free(known);
        return r;
}

static void op_missing(VcReq *q)
{
        const uint8_t *tags;
        uint32_t n;
        int r = chunk_tags(q, &tags, &n);
        uint8_t *miss = r < 0 ? NULL : malloc(n ? n : 1), *bits = NULL;
        if (r >= 0 && !miss)
                r = -ENOMEM;
        if (r >= 0 && (r = missing_of(q, tags, n, miss)) >= 0 && !(bits = calloc((n + 7) / 8 + 1, 1)))
                r = -ENOMEM;
        if (r < 0) {
                free(miss);
                vc_srv_reply_err(q, r);
                return;
        }
        for (uint32_t i = 0; i < n; i++)
                if (miss[i])
                        bits[i / 8] |= (uint8_t)(1u << (i % 8));
        free(miss);
        vc_srv_reply_bytes(q, "application/octet-stream", bits, (n + 7) / 8);
}

/* A reply of chunk records, read from the store a few at a time as the
 * client takes them, so a request of a million tags costs a buffer of
 * about a megabyte, not the chunks. */
typedef struct GetStream {
        VcServer *s;
        char parcel[VC_NAME_MAX + 1], domain[VC_DOMAIN_MAX];
        uint8_t *tags;
        size_t n, next, batch;
        uint8_t *buf;                    /* records of the current batch, in order */
        size_t len, pos, cap;
        size_t expect;                   /* the index fn should see next */
        struct { uint8_t *data; size_t len; bool have; } *held;  /* ones that came early */
        bool ended;
} GetStream;

#define GET_TARGET (1u << 20)
#define GET_INLINE 16                   /* tags of a get answered from one buffer */
#define GET_CHECK 256                   /* tags of a get all looked up before its reply */
_Static_assert(GET_INLINE <= GET_CHECK, "an inline get is looked up before it is read");

static int gs_room(GetStream *g, size_t need)
{
        if (g->len + need <= g->cap)
                return 0;
        size_t nc = g->cap ? g->cap : 65536;
        while (nc < g->len + need)
                nc *= 2;
        uint8_t *b = realloc(g->buf, nc);
        if (!b)
                return -ENOMEM;
        g->buf = b;
        g->cap = nc;
        return 0;
}

static int gs_record(GetStream *g, uint8_t kind, const uint8_t *tag, const uint8_t *data, size_t len)
{
        int r = gs_room(g, VC_WIRE_REC_HDR + len);
        if (r < 0)
                return r;
        uint8_t *p = g->buf + g->len;
        p[0] = kind;
        vc_put32(p + 1, (uint32_t)len);
        if (tag)
                memcpy(p + 5, tag, 32);
        else
                memset(p + 5, 0, 32);
        if (len)
                memcpy(p + VC_WIRE_REC_HDR, data, len);
        g->len += VC_WIRE_REC_HDR + len;
        return 0;
}

static int gs_emit(GetStream *g, size_t idx, const uint8_t *data, size_t len)
{
        /* keyring nodes start "VK", sealed chunks "VC" (vc_keyring.h, vc_seal.h) */
        uint8_t kind = len >= 2 && data[0] == 'V' && data[1] == 'K' ? VC_KIND_META : VC_KIND_DATA;
        return gs_record(g, kind, g->tags + 32 * (g->next + idx), data, len);
}

/* Records go out in the order of the request. The local back end reads
 * in order; one that does not (RADOS reads packs in their order) has the
 * chunks that come early held until their turn. */
static int gs_got(size_t idx, const uint8_t *data, size_t len, void *ctx)
{
        GetStream *g = ctx;
        if (idx != g->expect) {
                if (idx < g->expect || g->held[idx].have)
                        return vc_errf(-EIO, "chunk %zu of a batch came twice from the store", idx);
                if (!(g->held[idx].data = malloc(len ? len : 1)))
                        return -ENOMEM;
                if (len)
                        memcpy(g->held[idx].data, data, len);
                g->held[idx].len = len;
                g->held[idx].have = true;
                return 0;
        }
        int r = gs_emit(g, idx, data, len);
        for (g->expect++; r >= 0 && g->held[g->expect].have; g->expect++) {
                r = gs_emit(g, g->expect, g->held[g->expect].data, g->held[g->expect].len);
                free(g->held[g->expect].data);
                g->held[g->expect].data = NULL;
                g->held[g->expect].have = false;
        }
        return r;
}

static void gs_unhold(GetStream *g, size_t k)
{
        for (size_t i = 0; i < k; i++) {
                free(g->held[i].data);
                g->held[i].data = NULL;
                g->held[i].have = false;
        }
}

static void gs_error(GetStream *g, int err)
{
        json_t *j = json_pack("{s:s, s:s}", "error", vc_errmsg(err), "code", vc_wire_errname(err));
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        vc_errclear();
        g->len = g->pos = 0;
        if (gs_record(g, VC_WIRE_ERROR, NULL, (const uint8_t *)(s ? s : "{}"), s ? strlen(s) : 2) < 0)
                g->len = 0;
        free(s);
}

static int gs_refill(GetStream *g)
{
        g->len = g->pos = 0;
        if (g->next == g->n) {
                g->ended = true;
                return gs_record(g, VC_WIRE_END, NULL, NULL, 0);
        }
        size_t k = VC_MIN(g->batch, g->n - g->next);
        g->expect = 0;
        vc_errclear();
        /* one slot past the batch: gs_got looks at held[k] when done */
        if (!g->held && !(g->held = calloc(257, sizeof *g->held)))
                return -1;
        int r = vc_chunks_get(g->s->b, g->parcel, g->domain, g->tags + 32 * g->next, k, gs_got, g);
        gs_unhold(g, k);
        if (r >= 0 && g->expect != k)
                r = vc_errf(-EIO, "the store gave %zu of %zu chunks of a batch", g->expect, k);
        if (r < 0) {
                g->ended = true;
                gs_error(g, r);
                return 0;
        }
        g->next += k;
        /* aim at about GET_TARGET bytes a batch */
        size_t per = g->len / k + 1;
        g->batch = VC_MAX((size_t)1, VC_MIN((size_t)256, GET_TARGET / per));
        return 0;
}

static ssize_t gs_read(void *ctx, uint8_t *buf, size_t max)
{
        GetStream *g = ctx;
        if (g->pos == g->len) {
                if (g->ended)
                        return 0;
                if (gs_refill(g) < 0)
                        return -1;
        }
        size_t k = VC_MIN(max, g->len - g->pos);
        memcpy(buf, g->buf + g->pos, k);
        g->pos += k;
        return (ssize_t)k;
}

static void gs_free(void *ctx)
{
        GetStream *g = ctx;
        free(g->tags);
        free(g->buf);
        free(g->held);
        free(g);
}

static void op_get(VcReq *q)
{
        const uint8_t *tags;
        uint32_t n;
        int r = chunk_tags(q, &tags, &n);
        bool check = q->shared || n <= GET_CHECK;
        uint8_t *miss = r < 0 || !check ? NULL : malloc(n ? n : 1);
        if (r >= 0 && check && !miss)
                r = -ENOMEM;
        /* Every chunk is there (and may be known) before the reply
         * starts, so that a missing chunk is a 404, not an error record
         * midway: for a get of a shared pool without the oracle (what a
         * user may get is what its parcel's history knows) and for a get
         * of up to GET_CHECK tags. A larger one (a checkout's) finds an
         * absent chunk as it reads, and ends its reply with that error
         * (as any failure midway): the look-up before it looked every tag
         * up twice, a fifth of the server's CPU in a checkout. */
        if (r >= 0 && check && (r = missing_of(q, tags, n, miss)) >= 0)
                for (uint32_t i = 0; i < n; i++)
                        if (miss[i]) {
                                char hex[65];
                                vc_hex(tags + 32 * i, 32, hex);
                                r = vc_errf(-ENOENT, "chunk %s is not in the store", hex);
                                break;
                        }
        free(miss);
        GetStream *g = r < 0 ? NULL : calloc(1, sizeof *g);
        if (r >= 0 && (!g || !(g->tags = malloc(32 * (size_t)n + 1)))) {
                free(g);
                r = -ENOMEM;
        }
        if (r < 0) {
                vc_srv_reply_err(q, r);
                return;
        }
        g->s = q->s;
        snprintf(g->parcel, sizeof g->parcel, "%s", q->parcel);
        snprintf(g->domain, sizeof g->domain, "%s", q->domain);
        memcpy(g->tags, tags, 32 * (size_t)n);
        g->n = n;
        g->batch = 4;
        if (n <= GET_INLINE) {
                /* a disk server's miss: read now and sent whole with its
                 * headers, in one write (streamed, the headers, the
                 * records and the end went out apart, a wake-up each) */
                g->batch = n;
                size_t cap = 0, len = 0;
                uint8_t *body = NULL;
                ssize_t k = 1;
                while (k > 0) {
                        if (cap - len < (64u << 10)) {
                                uint8_t *nb = realloc(body, cap + (256u << 10));
                                if (!nb)
                                        break;
                                body = nb;
                                cap += 256u << 10;
                        }
                        k = gs_read(g, body + len, cap - len);
                        len += k > 0 ? (size_t)k : 0;
                }
                gs_free(g);
                if (k != 0) {
                        free(body);
                        vc_srv_reply_err(q, -ENOMEM);
                        return;
                }
                vc_srv_reply_bytes(q, "application/octet-stream", body, len);
                return;
        }
        vc_srv_reply_bytes(q, "application/octet-stream", NULL, 0);
        q->resp.read = gs_read;
        q->resp.free = gs_free;
        q->resp.ctx = g;
}

int vc_srv_put_batch(VcReq *q)
{
        VcPutParse *p = q->put;
        int r = 0;
        if (p->nitems) {
                for (size_t i = 0; i < p->nitems; i++)
                        p->items[i].data = p->buf + p->item_off[i];
                r = vc_chunks_put(q->s->b, q->parcel, q->domain, p->items, p->nitems);
                if (r >= 0 && q->shared)
                        r = vc_oracle_uploaded(q->s->oracle, q->parcel, p->items[0].tag, sizeof *p->items, p->nitems);
                p->nitems = 0;
                p->used = 0;
        }
        /* Durable at the next flush (a flush request, a commit, the
         * writer's own threshold or the shutdown), not at every put: each
         * flush of random tags rewrites the index's leaf pages and syncs,
         * and a checkin of 512 MiB spent 5 of its 12 s in 400 of them.
         * A chunk put and not yet flushed counts as present to `missing`
         * while this process runs; a crash forgets it, and the commit that
         * names it is refused (409 EAGAIN) until a retry sends it again. */
        return r;
}

static void op_flush(VcReq *q)
{
        int r = vc_chunks_flush(q->s->b);
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, json_pack("{s:b}", "flushed", 1));
}

/* ---- catalog ------------------------------------------------------------------------------- */

static json_t *parcel_json(const VcParcelInfo *pi)
{
        return json_pack("{s:s, s:s, s:i, s:o}", "name", pi->name, "owner", pi->owner, "latest", (json_int_t)pi->latest,
                         "record", hexstr(pi->record, pi->record_len));
}

static json_t *version_json(const VcVersionInfo *v)
{
        return json_pack("{s:I, s:I, s:o}", "version", (json_int_t)v->version, "seq", (json_int_t)v->seq, "record",
                         hexstr(v->record, v->record_len));
}

static bool may_see(const VcReq *q, const VcParcelInfo *pi)
{
        return q->user.admin || strcmp(pi->owner, q->user.name) == 0;
}

static void op_parcels(VcReq *q)
{
        VcParcelInfo *v = NULL;
        size_t n = 0;
        int r = vc_cat_parcels(q->s->b, &v, &n);
        if (r < 0) {
                vc_srv_reply_err(q, r);
                return;
        }
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
                if (may_see(q, &v[i]))
                        json_array_append_new(a, parcel_json(&v[i]));
        free(v);
        vc_srv_reply_json(q, 200, json_pack("{s:o}", "parcels", a));
}

static void op_parcel(VcReq *q)
{
        VcParcelInfo pi;
        int r = vc_srv_parcel(q, q->name, &pi);
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, parcel_json(&pi));
}

static void op_versions(VcReq *q)
{
        VcParcelInfo pi;
        VcVersionInfo *v = NULL;
        size_t n = 0;
        int r = vc_srv_parcel(q, q->name, &pi);
        if (r < 0 || (r = vc_cat_versions(q->s->b, q->name, &v, &n)) < 0) {
                vc_srv_reply_err(q, r);
                return;
        }
        json_t *a = json_array();
        for (size_t i = 0; i < n; i++)
                json_array_append_new(a, version_json(&v[i]));
        free(v);
        vc_srv_reply_json(q, 200, json_pack("{s:o}", "versions", a));
}

static void op_version(VcReq *q)
{
        VcParcelInfo pi;
        VcVersionInfo v;
        int r = vc_srv_parcel(q, q->name, &pi);
        if (r < 0 || (r = vc_cat_version(q->s->b, q->name, q->version, &v)) < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, version_json(&v));
}

/* A new parcel's record must name its own fresh domains: the server would
 * otherwise let a record that copies another parcel's uuid reach that
 * parcel's chunks. */
static int check_new_record(VcReq *q, const uint8_t *rec, size_t len)
{
        VcParcel p, want;
        int r = vc_parcel_unpack(rec, len, q->name, &p);
        if (r < 0)
                return r;
        want = p;
        vc_parcel_domains(&want);
        if (strcmp(want.node_dom, p.node_dom) != 0 || strcmp(want.data_dom, p.data_dom) != 0)
                return vc_errf(-EINVAL, "the record of parcel '%s' names domains %s and %s, not its own", q->name,
                               p.node_dom, p.data_dom);
        VcParcelInfo *v = NULL;
        size_t n = 0;
        if ((r = vc_cat_parcels(q->s->b, &v, &n)) < 0)
                return r;
        for (size_t i = 0; i < n && r >= 0; i++) {
                VcParcel o;
                if (strcmp(v[i].name, q->name) != 0 && vc_parcel_unpack(v[i].record, v[i].record_len, v[i].name, &o) == 0 &&
                    memcmp(o.uuid, p.uuid, 16) == 0)
                        r = vc_errf(-EINVAL, "the record of parcel '%s' has the uuid of another parcel", q->name);
                vc_errclear();
        }
        free(v);
        return r;
}

static void op_create(VcReq *q)
{
        json_t *j = NULL;
        const char *owner = NULL;
        uint8_t rec[VC_PARCEL_REC_MAX];
        size_t len = 0;
        int r = body_json(q, &j);
        if (r >= 0 && (r = jstr(j, "owner", false, &owner)) >= 0)
                r = jhex(j, "record", rec, sizeof rec, &len);
        if (r >= 0 && owner && strcmp(owner, q->user.name) != 0) {
                if (!q->user.admin)
                        r = vc_errf(-EPERM, "only an administrator may create a parcel for another user");
                else if (!vc_name_valid(owner) || !vc_srv_user_exists(q->s, owner))
                        r = vc_errf(-EINVAL, "no user '%s' on this server", owner);
        }
        if (r >= 0) {
                pthread_mutex_lock(&q->s->create_lock);
                if ((r = check_new_record(q, rec, len)) >= 0)
                        r = vc_cat_create(q->s->b, q->name, owner ? owner : q->user.name, rec, len);
                pthread_mutex_unlock(&q->s->create_lock);
        }
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 201, json_pack("{s:s, s:s}", "name", q->name, "owner", owner ? owner : q->user.name));
        json_decref(j);
}

/* With the oracle off, a commit may name only chunks of a shared pool
 * that the parcel may know of: otherwise its answer would be the oracle. */
static int commit_known(VcReq *q, const VcCommit *c)
{
        VcParcelInfo pi;
        bool shared = false;
        int r = vc_srv_parcel(q, c->parcel, &pi);
        if (r < 0)
                return r;
        VcParcel p;
        if ((r = vc_parcel_unpack(pi.record, pi.record_len, pi.name, &p)) < 0)
                return r;
        if ((r = vc_srv_domain(q, &pi, p.data_dom, &shared)) < 0 || !shared || c->n_data == 0)
                return r;
        uint8_t *known = malloc(c->n_data);
        if (!known)
                return -ENOMEM;
        r = vc_oracle_known(q->s->oracle, c->parcel, c->need_data, c->n_data, known);
        for (size_t i = 0; r >= 0 && i < c->n_data; i++)
                if (!known[i]) {
                        char hex[65];
                        vc_hex(c->need_data + 32 * i, 32, hex);
                        r = vc_errf(-EAGAIN, "chunk %s is not in the store (it vanished during the checkin: a gc "
                                    "ran?); nothing was committed, run the checkin again", hex);
                }
        free(known);
        return r;
}

static int parse_commit(VcReq *q, VcCommit *c)
{
        const uint8_t *b = q->buf;
        size_t len = q->len;
        memset(c, 0, sizeof *c);
        if (len < VC_WIRE_COMMIT_FIXED)
                return vc_errf(-EINVAL, "the commit body was cut short");
        c->parcel = q->name;
        c->base = vc_get32(b);
        if (b[4] & ~1u)
                return vc_errf(-EINVAL, "unknown flags 0x%02x in the commit", b[4]);
        c->lease = b[4] & 1 ? b + 5 : NULL;
        c->record_len = vc_get16(b + 21);
        size_t o = VC_WIRE_COMMIT_FIXED;
        if (c->record_len != VC_VERSION_REC_LEN || len < o + c->record_len + 8)
                return vc_errf(-EINVAL, "the commit body was cut short or its record is not %u bytes",
                               VC_VERSION_REC_LEN);
        c->record = b + o;
        o += c->record_len;
        c->n_nodes = vc_get32(b + o);
        c->n_data = vc_get32(b + o + 4);
        o += 8;
        if ((len - o) / 32 < (uint64_t)c->n_nodes + c->n_data || len - o != 32 * ((uint64_t)c->n_nodes + c->n_data))
                return vc_errf(-EINVAL, "the commit body holds %zu bytes of tags, not 32 for each of %zu", len - o,
                               c->n_nodes + c->n_data);
        c->need_nodes = b + o;
        c->need_data = b + o + 32 * c->n_nodes;
        return 0;
}

static void op_commit(VcReq *q)
{
        VcCommit c;
        int r = parse_commit(q, &c);
        if (r >= 0)
                r = commit_known(q, &c);
        /* the chunks it names are durable before the version is */
        if (r >= 0)
                r = vc_chunks_flush(q->s->b);
        if (r >= 0)
                r = vc_cat_commit(q->s->b, &c);
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, json_pack("{s:I}", "version", (json_int_t)c.base + 1));
}

static void op_prune(VcReq *q)
{
        json_t *j = NULL;
        VcParcelInfo pi;
        int64_t keep = 0;
        int r = vc_srv_parcel(q, q->name, &pi);
        if (r >= 0 && (r = body_json(q, &j)) >= 0 && (r = jint(j, "keep", true, 1, UINT32_MAX, &keep)) >= 0)
                r = vc_cat_prune(q->s->b, q->name, (uint32_t)keep);
        json_decref(j);
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, json_pack("{s:i}", "dropped", r));
}

/* ---- leases ---------------------------------------------------------------------------------- */

static json_t *lease_json(const VcLease *ls, bool token)
{
        json_t *j = json_pack("{s:b}", "held", ls->held);
        if (ls->held) {
                json_object_set_new(j, "host", json_string(ls->host));
                json_object_set_new(j, "since", json_integer(ls->since));
        }
        if (token)
                json_object_set_new(j, "token", hexstr(ls->token, VC_LEASE_TOKEN_LEN));
        return j;
}

static void op_lease(VcReq *q)
{
        VcParcelInfo pi;
        VcLease ls = { 0 };
        json_t *j = NULL, *out = NULL;
        const char *host;
        uint8_t tok[VC_LEASE_TOKEN_LEN];
        int r = vc_srv_parcel(q, q->name, &pi);
        if (r < 0)
                goto done;
        switch (q->route) {
        case R_LEASE_ACQUIRE:
                if ((r = body_json(q, &j)) >= 0 && (r = jstr(j, "host", true, &host)) >= 0 &&
                    (r = vc_lease_acquire(q->s->b, q->name, host, &ls)) >= 0)
                        out = lease_json(&ls, true);
                break;
        case R_LEASE_RELEASE:
                if ((r = body_json(q, &j)) >= 0 && (r = jhex(j, "token", tok, sizeof tok, NULL)) >= 0 &&
                    (r = vc_lease_release(q->s->b, q->name, tok)) >= 0)
                        out = json_object();
                break;
        case R_LEASE_BREAK:
                if ((r = vc_lease_break(q->s->b, q->name)) >= 0)
                        out = json_pack("{s:b}", "was_held", r > 0);
                break;
        default:
                if ((r = vc_lease_get(q->s->b, q->name, &ls)) >= 0)
                        out = lease_json(&ls, false);
                break;
        }
done:
        json_decref(j);
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, out);
}

/* ---- maintenance -------------------------------------------------------------------------------- */

static void op_stat(VcReq *q)
{
        VcStoreStat st;
        int r = vc_backend_stat(q->s->b, &st);
        if (r < 0) {
                vc_srv_reply_err(q, r);
                return;
        }
        json_t *ps = json_array(), *ds = json_array();
        uint64_t data = 0, meta = 0, disk = 0, logical = 0;
        for (size_t i = 0; i < st.nparcels; i++) {
                VcParcelStat *x = &st.parcels[i];
                if (!q->user.admin && strcmp(x->p.owner, q->user.name) != 0)
                        continue;
                VcParcelInfo pi;
                if (vc_cat_parcel(q->s->b, x->p.name, &pi) < 0) {
                        vc_errclear();
                        continue;           /* dropped meanwhile */
                }
                data += x->data_bytes;
                meta += x->meta_bytes;
                disk += x->disk_bytes;
                logical += x->logical_bytes;
                json_array_append_new(ps, json_pack("{s:s, s:s, s:i, s:o, s:i, s:I, s:I, s:I, s:I}", "name", x->p.name,
                                                    "owner", x->p.owner, "latest", (json_int_t)pi.latest, "record",
                                                    hexstr(pi.record, pi.record_len), "versions",
                                                    (json_int_t)x->versions, "logical_bytes",
                                                    (json_int_t)x->logical_bytes, "data_bytes",
                                                    (json_int_t)x->data_bytes, "meta_bytes", (json_int_t)x->meta_bytes,
                                                    "disk_bytes", (json_int_t)x->disk_bytes));
        }
        /* the shared pools and the store's totals tell of other users' data:
         * an administrator's only */
        for (size_t i = 0; q->user.admin && i < st.ndomains; i++) {
                VcDomainStat *d = &st.domains[i];
                json_array_append_new(ds, json_pack("{s:s, s:I, s:I, s:I, s:I, s:I, s:I}", "name", d->name,
                                                    "data_chunks", (json_int_t)d->data_chunks, "data_bytes",
                                                    (json_int_t)d->data_bytes, "meta_chunks",
                                                    (json_int_t)d->meta_chunks, "meta_bytes",
                                                    (json_int_t)d->meta_bytes, "pack_bytes",
                                                    (json_int_t)d->pack_bytes, "packs", (json_int_t)d->packs));
        }
        if (q->user.admin) {
                data = st.data_bytes;
                meta = st.meta_bytes;
                disk = st.disk_bytes;
                logical = st.logical_bytes;
        }
        json_t *j = json_pack("{s:I, s:I, s:I, s:I, s:I, s:o, s:o}", "data_bytes", (json_int_t)data, "meta_bytes",
                              (json_int_t)meta, "disk_bytes", (json_int_t)disk, "index_bytes",
                              (json_int_t)(q->user.admin ? st.index_bytes : 0), "logical_bytes", (json_int_t)logical,
                              "parcels", ps, "domains", ds);
        vc_repo_stat_free(&st);
        vc_srv_reply_json(q, 200, j);
}

static void verify_report(const char *msg, void *ctx)
{
        json_t *a = ctx;
        if (json_array_size(a) < VERIFY_MESSAGES_MAX)
                json_array_append_new(a, json_string(msg));
}

static void op_verify(VcReq *q)
{
        json_t *j = NULL, *msgs = json_array();
        VcVerifyStats st = { 0 };
        int full = 0;
        int r = body_json(q, &j);
        if (r >= 0) {
                json_t *f = json_object_get(j, "full");
                if (f && !json_is_boolean(f))
                        r = vc_errf(-EINVAL, "\"full\" is not true or false");
                full = f && json_is_true(f);
        }
        if (r >= 0)
                r = vc_backend_verify(q->s->b, full, verify_report, msgs, &st);
        json_decref(j);
        if (r < 0) {
                json_decref(msgs);
                vc_srv_reply_err(q, r);
                return;
        }
        vc_srv_reply_json(q, 200, json_pack("{s:I, s:I, s:I, s:I, s:I, s:o}", "problems", (json_int_t)st.problems,
                                            "parcels", (json_int_t)st.parcels, "versions", (json_int_t)st.versions,
                                            "chunks_checked", (json_int_t)st.chunks_checked, "bytes_checked",
                                            (json_int_t)st.bytes_checked, "messages", msgs));
}

static void op_gc(VcReq *q)
{
        json_t *j = NULL;
        int64_t grace = 3600;
        VcGcStats st = { 0 };
        int r = body_json(q, &j);
        if (r >= 0 && (r = jint(j, "grace", false, 0, INT32_MAX, &grace)) >= 0)
                r = vc_backend_gc(q->s->b, grace, true, &st);
        /* the oracle keeps what it knows: its answers are "known and still
         * stored", and a gc must not make a checkin in progress start over */
        json_decref(j);
        if (r < 0) {
                vc_srv_reply_err(q, r);
                return;
        }
        vc_srv_reply_json(q, 200, json_pack("{s:I, s:I, s:{s:I, s:I, s:I, s:I, s:I}, s:{s:I, s:I, s:I, s:I, s:I, s:I, s:I}}",
                                            "versions", (json_int_t)st.versions, "referenced",
                                            (json_int_t)st.referenced, "sweep", "chunks_freed",
                                            (json_int_t)st.sweep.chunks_freed, "bytes_freed",
                                            (json_int_t)st.sweep.bytes_freed, "chunks_kept",
                                            (json_int_t)st.sweep.chunks_kept, "bytes_kept",
                                            (json_int_t)st.sweep.bytes_kept, "chunks_young",
                                            (json_int_t)st.sweep.chunks_young, "compact", "packs_before",
                                            (json_int_t)st.compact.packs_before, "packs_after",
                                            (json_int_t)st.compact.packs_after, "packs_rewritten",
                                            (json_int_t)st.compact.packs_rewritten, "packs_deleted",
                                            (json_int_t)st.compact.packs_deleted, "bytes_before",
                                            (json_int_t)st.compact.bytes_before, "bytes_after",
                                            (json_int_t)st.compact.bytes_after, "chunks_moved",
                                            (json_int_t)st.compact.chunks_moved));
}

/* ---- key bundles: STORE/bundles/USER, sealed by the client ---------------------------------------- */

static void op_bundle(VcReq *q)
{
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", q->s->bundles, q->user.name);
        int r;
        /* over RADOS: object blob/bundle.USER of the store, so that every
         * server sees it */
        char blob[128];
        bool rados = vc_backend_is_rados(q->s->b);
        snprintf(blob, sizeof blob, "bundle.%s", q->user.name);
        if (q->route == R_BUNDLE_GET) {
                uint8_t *b = NULL;
                size_t n = 0;
                r = rados ? vc_backend_rados_blob_get(q->s->b, blob, VC_WIRE_BUNDLE_MAX, &b, &n)
                          : vc_read_file(path, &b, &n, VC_WIRE_BUNDLE_MAX);
                if (r == -ENOENT)
                        r = vc_errf(-ENOENT, "no key bundle for user '%s' on this server (a checkin or 'vmcas login "
                                    "--push' uploads one)", q->user.name);
                if (r < 0)
                        vc_srv_reply_err(q, r);
                else
                        vc_srv_reply_bytes(q, "application/octet-stream", b, n);
                return;
        }
        if (q->len < 4 || memcmp(q->buf, "VBUN", 4) != 0)
                r = vc_errf(-EINVAL, "the body is not a vmcas key bundle");
        else if (rados)
                r = vc_backend_rados_blob_put(q->s->b, blob, q->buf, q->len);
        else if ((r = vc_mkdir_p(q->s->bundles, 0700)) >= 0)
                r = vc_write_file_atomic(path, q->buf, q->len, 0600);
        if (r < 0)
                vc_srv_reply_err(q, r);
        else
                vc_srv_reply_json(q, 200, json_pack("{s:I}", "stored", (json_int_t)q->len));
}

void vc_srv_op(VcReq *q)
{
        switch (q->route) {
        case R_STORE: op_store(q); break;
        case R_MISSING: op_missing(q); break;
        case R_FLUSH: op_flush(q); break;
        case R_GET: op_get(q); break;
        case R_PARCELS: op_parcels(q); break;
        case R_PARCEL: op_parcel(q); break;
        case R_CREATE: op_create(q); break;
        case R_VERSIONS: op_versions(q); break;
        case R_VERSION: op_version(q); break;
        case R_COMMIT: op_commit(q); break;
        case R_PRUNE: op_prune(q); break;
        case R_LEASE_ACQUIRE: case R_LEASE_RELEASE: case R_LEASE_BREAK: case R_LEASE_GET: op_lease(q); break;
        case R_STAT: op_stat(q); break;
        case R_VERIFY: op_verify(q); break;
        case R_GC: op_gc(q); break;
        case R_BUNDLE_GET: case R_BUNDLE_PUT: op_bundle(q); break;
        default: vc_srv_reply_err(q, vc_errf(-ENOSYS, "no such request")); break;
        }
}
