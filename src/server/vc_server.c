/* The server's protocol side (docs/protocol.md): routes, tokens, request
 * bodies and error replies. The handlers of the routes are in
 * vc_server_ops.c; the HTTP library is in vc_server_mhd.c. */
#include "server/vc_server_req.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

/* ---- the server ------------------------------------------------------------ */

static int users_refresh(VcServer *s);

int vc_server_new(const VcServerOpts *o, VcServer **ret)
{
        if (!o->store || !*o->store)
                return vc_errf(-EINVAL, "no store given: use -s PATH or set VMCAS_STORE");
        VcServer *s = calloc(1, sizeof *s);
        if (!s)
                return -ENOMEM;
        pthread_mutex_init(&s->users_lock, NULL);
        pthread_mutex_init(&s->create_lock, NULL);
        pthread_mutex_init(&s->bufs_lock, NULL);
        snprintf(s->store, sizeof s->store, "%s", o->store);
        snprintf(s->bundles, sizeof s->bundles, "%s/bundles", o->store);
        s->no_oracle = o->no_existence_oracle;
        int r = 0;
        bool rados = strncmp(o->store, "rados://", 8) == 0;
        if (o->users)
                snprintf(s->users_path, sizeof s->users_path, "%s", o->users);
        else
                r = vc_users_default_path(o->store, s->users_path, sizeof s->users_path);
        if (r >= 0 && rados && s->no_oracle)
                r = vc_errf(-ENOTSUP, "--no-existence-oracle needs a store directory (it keeps what each parcel "
                            "uploaded on the server's disk); servers over a RADOS store answer as the store does");
        /* Over RADOS every server is stateless: chunks, catalog, leases and
         * key bundles are in the cluster, the users file is given. */
        VcBackendOpts bo = { .verify_puts = true };
        if (r >= 0)
                r = rados ? vc_backend_open(o->store, &bo, &s->b) : vc_backend_local_open(o->store, &bo, &s->b);
        if (r >= 0 && s->no_oracle)
                r = vc_oracle_new(s->b, &s->oracle);
        if (r >= 0)
                r = users_refresh(s);
        if (r < 0) {
                vc_server_free(s);
                return r;
        }
        *ret = s;
        return 0;
}

void vc_server_free(VcServer *s)
{
        if (!s)
                return;
        vc_oracle_free(s->oracle);
        vc_backend_free(s->b);
        vc_users_clear(&s->users);
        pthread_mutex_destroy(&s->users_lock);
        pthread_mutex_destroy(&s->create_lock);
        for (size_t i = 0; i < s->nbufs; i++)
                free(s->bufs[i]);
        pthread_mutex_destroy(&s->bufs_lock);
        free(s);
}

int vc_server_flush(VcServer *s)
{
        return vc_chunks_flush(s->b);
}

const char *vc_server_store(const VcServer *s)
{
        return s->store;
}

/* ---- users: the file is read again when it changes (checked at most once a
 * second), so `vmcas user add` needs no restart --------------------------------- */

static int users_refresh_locked(VcServer *s)
{
        double now = vc_mono();
        if (s->users_checked && now - s->users_checked < 1.0)
                return 0;
        s->users_checked = now;
        struct stat st;
        if (stat(s->users_path, &st) < 0)
                return vc_errf(-errno, "cannot read users file %s: %s%s", s->users_path, strerror(errno),
                               errno == ENOENT ? " (add a user first: vmcas -s STORE user add NAME)" : "");
        if (st.st_ino == s->users_ino && st.st_size == s->users_size &&
            st.st_mtim.tv_sec == s->users_mtime.tv_sec && st.st_mtim.tv_nsec == s->users_mtime.tv_nsec)
                return 0;
        VcUsers u;
        int r = vc_users_load(s->users_path, &u);
        if (r < 0)
                return r;
        vc_users_clear(&s->users);
        s->users = u;
        s->users_ino = st.st_ino;
        s->users_size = st.st_size;
        s->users_mtime = st.st_mtim;
        return 0;
}

static int users_refresh(VcServer *s)
{
        pthread_mutex_lock(&s->users_lock);
        int r = users_refresh_locked(s);
        pthread_mutex_unlock(&s->users_lock);
        return r;
}

int vc_server_users_reload(VcServer *s, size_t *n)
{
        pthread_mutex_lock(&s->users_lock);
        s->users_checked = 0;
        s->users_size = -1; /* read it even if it looks unchanged */
        int r = users_refresh_locked(s);
        *n = s->users.n;
        pthread_mutex_unlock(&s->users_lock);
        return r;
}

/* The user of "Authorization: Bearer TOKEN", copied into *ret. */
static int authenticate(VcServer *s, const char *auth, VcUser *ret)
{
        if (!auth || strncasecmp(auth, "Bearer ", 7) != 0)
                return vc_errf(-EACCES, "this server needs a token (Authorization: Bearer TOKEN; the client "
                               "reads it from VMCAS_TOKEN)");
        const char *tok = auth + 7;
        while (*tok == ' ')
                tok++;
        pthread_mutex_lock(&s->users_lock);
        int r = users_refresh_locked(s);
        if (r < 0) {
                /* keep serving the users read before; say so on the console */
                fprintf(stderr, "vmcas serve: %s (keeping the users read before)\n", vc_errmsg(r));
                vc_errclear();
        }
        const VcUser *u = vc_users_check(&s->users, tok);
        if (u)
                *ret = *u;
        pthread_mutex_unlock(&s->users_lock);
        return u ? 0 : vc_errf(-EACCES, "unknown token");
}

bool vc_srv_user_exists(VcServer *s, const char *name)
{
        pthread_mutex_lock(&s->users_lock);
        bool r = vc_users_find(&s->users, name) != NULL;
        pthread_mutex_unlock(&s->users_lock);
        return r;
}

/* ---- replies ----------------------------------------------------------------- */

/* Codes only the server uses for the HTTP status: EPERM (403, admin
 * only), EMEDIUMTYPE (415), ENOSYS (405). */
static unsigned status_of(int err)
{
        switch (-err) {
        case EINVAL: case EBADMSG: case EPROTO: case ENAMETOOLONG: case ERANGE: case EKEYREJECTED:
                return 400;
        case EACCES: return 401;
        case EPERM: return 403;
        case ENOENT: return 404;
        case ENOSYS: return 405;
        case EEXIST: case EAGAIN: case EBUSY: case ESTALE: return 409;
        case EFBIG: return 413;
        case EMEDIUMTYPE: return 415;
        case ENOTSUP: return 501;
        case ENOSPC: return 507;
        default: return 500;
        }
}

static const char *code_of(int err)
{
        switch (-err) {
        case EPERM: return "EACCES";
        case EMEDIUMTYPE: case ENOSYS: return "EINVAL";
        default: return vc_wire_errname(err);
        }
}

void vc_srv_reply_json(VcReq *q, unsigned status, json_t *j)
{
        char *s = j ? json_dumps(j, JSON_COMPACT) : NULL;
        json_decref(j);
        if (q->replied)
                vc_freep(&q->resp.body);
        memset(&q->resp, 0, sizeof q->resp);
        q->replied = true;
        q->resp.status = s ? status : 500;
        q->resp.ctype = "application/json";
        q->resp.body = (uint8_t *)s;
        q->resp.len = s ? strlen(s) : 0;
}

static bool path_char(char c)
{
        return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' || c == '_' ||
               c == '-' || c == '/';
}

/* msg with every mention of the store's directory (as a whole path or
 * the start of one: "st" of "st/packs", not of "stored") replaced by
 * "<store>". */
static void scrub_store(const char *store, const char *msg, char *out, size_t cap)
{
        size_t sl = strlen(store), o = 0;
        const char *start = msg;
        while (*msg && o + 1 < cap) {
                if (sl && strncmp(msg, store, sl) == 0 && (msg == start || !path_char(msg[-1])) &&
                    (msg[sl] == '/' || !path_char(msg[sl]))) {
                        int k = snprintf(out + o, cap - o, "<store>");
                        o += k > 0 ? VC_MIN((size_t)k, cap - o - 1) : 0;
                        msg += sl;
                        continue;
                }
                out[o++] = *msg++;
        }
        out[o] = 0;
}

void vc_srv_reply_err(VcReq *q, int err)
{
        const char *msg = vc_errmsg(err);
        unsigned status = status_of(err);
        char clean[VC_ERRMSG_MAX];
        if (status >= 500) {
                /* The server's own failure (a full disk, an I/O error): the
                 * whole message goes to its log, and the client's copy does
                 * not tell where the store is on the server's disk. */
                fprintf(stderr, "vmcas serve: HTTP %u to user '%s': %s\n", status,
                        q->user.name[0] ? q->user.name : "-", msg);
                scrub_store(q->s->store, msg, clean, sizeof clean);
                msg = clean;
        }
        json_t *j = json_pack("{s:s, s:s}", "error", msg, "code", code_of(err));
        vc_srv_reply_json(q, status, j);
        q->resp.www_auth = err == -EACCES;
        vc_errclear();
}

void vc_srv_reply_bytes(VcReq *q, const char *ctype, uint8_t *body, size_t len)
{
        if (q->replied)
                vc_freep(&q->resp.body);
        memset(&q->resp, 0, sizeof q->resp);
        q->replied = true;
        q->resp.status = 200;
        q->resp.ctype = ctype;
        q->resp.body = body;
        q->resp.len = len;
}

/* ---- parcels and domains as a user may see them ----------------------------- */

int vc_srv_parcel(VcReq *q, const char *name, VcParcelInfo *pi)
{
        int r = vc_cat_parcel(q->s->b, name, pi);
        if (r == -ENOENT || (r == 0 && !q->user.admin && strcmp(pi->owner, q->user.name) != 0)) {
                vc_errclear();
                return vc_errf(-ENOENT, "no parcel '%s' on this server", name);
        }
        return r;
}

int vc_srv_domain(VcReq *q, const VcParcelInfo *pi, const char *domain, bool *shared)
{
        VcParcel p;
        int r = vc_parcel_unpack(pi->record, pi->record_len, pi->name, &p);
        if (r < 0)
                return r;
        if (strcmp(domain, p.node_dom) != 0 && strcmp(domain, p.data_dom) != 0)
                return vc_errf(-EPERM, "domain '%s' is not a domain of parcel '%s' (its domains are %s and %s)",
                               domain, pi->name, p.node_dom, p.data_dom);
        *shared = q->s->no_oracle && strcmp(domain, p.node_dom) != 0;
        return 0;
}

/* ---- routes --------------------------------------------------------------------- */

typedef struct Route {
        const char *method;
        const char *pattern;             /* segments after /v1/; "*" a parcel name, "#" a version */
        VcRoute route;
        VcBodyKind body;
        size_t limit;
        bool admin;
} Route;

static const Route routes[] = {
        { "GET", "store", R_STORE, BODY_NONE, 0, false },
        { "POST", "chunks/missing", R_MISSING, BODY_BINARY, VC_WIRE_HEAD_MAX + 32u * VC_WIRE_TAGS_MAX, false },
        { "POST", "chunks/put", R_PUT, BODY_PUT, VC_WIRE_PUT_MAX, false },
        { "POST", "chunks/flush", R_FLUSH, BODY_NONE, 0, false },
        { "POST", "chunks/get", R_GET, BODY_BINARY, VC_WIRE_HEAD_MAX + 32u * VC_WIRE_TAGS_MAX, false },
        { "GET", "parcels", R_PARCELS, BODY_NONE, 0, false },
        { "GET", "parcels/*", R_PARCEL, BODY_NONE, 0, false },
        { "PUT", "parcels/*", R_CREATE, BODY_JSON, VC_WIRE_JSON_MAX, false },
        { "GET", "parcels/*/versions", R_VERSIONS, BODY_NONE, 0, false },
        { "GET", "parcels/*/versions/#", R_VERSION, BODY_NONE, 0, false },
        { "POST", "parcels/*/commit", R_COMMIT, BODY_BINARY, VC_WIRE_COMMIT_MAX, false },
        { "POST", "parcels/*/prune", R_PRUNE, BODY_JSON, VC_WIRE_JSON_MAX, false },
        { "POST", "parcels/*/lease", R_LEASE_ACQUIRE, BODY_JSON, VC_WIRE_JSON_MAX, false },
        { "DELETE", "parcels/*/lease", R_LEASE_RELEASE, BODY_JSON, VC_WIRE_JSON_MAX, false },
        { "GET", "parcels/*/lease", R_LEASE_GET, BODY_NONE, 0, false },
        { "POST", "parcels/*/lease/break", R_LEASE_BREAK, BODY_NONE, 0, true },
        { "GET", "stat", R_STAT, BODY_NONE, 0, false },
        { "POST", "admin/verify", R_VERIFY, BODY_JSON, VC_WIRE_JSON_MAX, true },
        { "POST", "admin/gc", R_GC, BODY_JSON, VC_WIRE_JSON_MAX, true },
        { "GET", "bundle", R_BUNDLE_GET, BODY_NONE, 0, false },
        { "PUT", "bundle", R_BUNDLE_PUT, BODY_BINARY, VC_WIRE_BUNDLE_MAX, false },
};

#define SEG_MAX 6

/* Splits path (after "/v1/") into at most SEG_MAX segments; -1 if it has
 * more, an empty one, or one longer than any name. */
static int split(const char *path, char seg[SEG_MAX][VC_NAME_MAX + 2])
{
        int n = 0;
        const char *p = path;
        for (;;) {
                const char *e = strchr(p, '/');
                size_t l = e ? (size_t)(e - p) : strlen(p);
                if (n == SEG_MAX || l == 0)
                        return -1;
                if (l > VC_NAME_MAX)    /* cut: the name check says it is too long */
                        l = VC_NAME_MAX + 1;
                memcpy(seg[n], p, l);
                seg[n++][l] = 0;
                if (!e)
                        return n;
                p = e + 1;
        }
}

static bool match(const char *pattern, char seg[SEG_MAX][VC_NAME_MAX + 2], int n)
{
        char pat[64];
        snprintf(pat, sizeof pat, "%s", pattern);
        int i = 0;
        for (char *save = NULL, *t = strtok_r(pat, "/", &save); t; t = strtok_r(NULL, "/", &save), i++) {
                if (i >= n)
                        return false;
                if (strcmp(t, "*") != 0 && strcmp(t, "#") != 0 && strcmp(t, seg[i]) != 0)
                        return false;
        }
        return i == n;
}

/* Finds the route of method and path; -ENOENT / -ENOSYS if none. */
static int find_route(VcReq *q, const char *method, const char *path, const Route **ret)
{
        char seg[SEG_MAX][VC_NAME_MAX + 2];
        int n = strncmp(path, "/v1/", 4) == 0 ? split(path + 4, seg) : -1;
        bool path_ok = false;
        for (size_t i = 0; n > 0 && i < VC_ARRAY_SIZE(routes); i++) {
                if (!match(routes[i].pattern, seg, n))
                        continue;
                path_ok = true;
                if (strcmp(routes[i].method, method) != 0)
                        continue;
                *ret = &routes[i];
                if (strncmp(routes[i].pattern, "parcels/*", 9) == 0) {
                        if (!vc_name_valid(seg[1]))
                                return vc_errf(-EINVAL, "invalid parcel name '%.64s%s' (use 1-64 letters, digits, "
                                               "'.', '_', '-', not starting with '.' or '-')", seg[1],
                                               strlen(seg[1]) > VC_NAME_MAX ? "..." : "");
                        memcpy(q->name, seg[1], strlen(seg[1]) + 1);   /* valid: at most 64 */
                }
                if (routes[i].route == R_VERSION) {
                        uint64_t v;
                        if (vc_parse_u64(seg[3], "version", &v) < 0 || v == 0 || v > UINT32_MAX)
                                return vc_errf_replace(-EINVAL, "invalid version '%s'", seg[3]);
                        q->version = (uint32_t)v;
                }
                return 0;
        }
        if (path_ok)
                return vc_errf(-ENOSYS, "%s is not allowed on %s", method, path);
        return vc_errf(-ENOENT, "no such endpoint: %s %.200s (this server speaks protocol 1, under /v1/)", method,
                       path);
}

static bool ctype_is(const char *ct, const char *want)
{
        size_t n = strlen(want);
        return ct && strncasecmp(ct, want, n) == 0 && (ct[n] == 0 || ct[n] == ';' || ct[n] == ' ');
}

static int check_head(VcReq *q, const VcReqHead *h, const Route **rt)
{
        /* nobody learns anything without a token, not even which names are valid */
        if (authenticate(q->s, h->authorization, &q->user) < 0) {
                vc_errclear();
                return vc_errf(-EACCES, "%s", h->authorization ? "the server refused the token (unknown token)"
                                                                : "this server needs a token (Authorization: Bearer TOKEN)");
        }
        int r = find_route(q, h->method, h->path, rt);
        if (r < 0)
                return r;
        const Route *x = *rt;
        if (x->admin && !q->user.admin)
                return vc_errf(-EPERM, "only an administrator may do this (user '%s' is not one)", q->user.name);
        if (x->body == BODY_NONE && h->content_length > 0)
                return vc_errf(-EFBIG, "%s %s takes no body", h->method, h->path);
        if (h->content_length > 0 || (h->content_length < 0 && x->body != BODY_NONE)) {
                const char *want = x->body == BODY_JSON ? "application/json" : "application/octet-stream";
                if (!ctype_is(h->content_type, want))
                        return vc_errf(-EMEDIUMTYPE, "%s %s takes a body of type %s, not %s", h->method, h->path,
                                       want, h->content_type ? h->content_type : "none");
        }
        if (h->content_length > 0 && (uint64_t)h->content_length > x->limit)
                return vc_errf(-EFBIG, "a body of %lld bytes is more than the %zu this request takes",
                               (long long)h->content_length, x->limit);
        return 0;
}

VcReq *vc_req_begin(VcServer *s, const VcReqHead *h)
{
        VcReq *q = calloc(1, sizeof *q);
        if (!q)
                return NULL;
        q->s = s;
        vc_errclear();
        const Route *rt = NULL;
        int r = check_head(q, h, &rt);
        if (r < 0) {
                vc_srv_reply_err(q, r);
                return q;
        }
        q->route = rt->route;
        q->body_kind = rt->body;
        q->limit = rt->limit;
        if (q->body_kind == BODY_PUT && !(q->put = calloc(1, sizeof *q->put))) {
                vc_srv_reply_err(q, -ENOMEM);
                return q;
        }
        return q;
}

bool vc_req_reply(VcReq *q, VcResp *ret)
{
        if (!q->replied)
                return false;
        *ret = q->resp;
        memset(&q->resp, 0, sizeof q->resp);  /* the glue owns the body now */
        return true;
}

bool vc_req_slow(const VcReq *q)
{
        return !q->replied && (q->route == R_VERIFY || q->route == R_GC);
}

/* ---- bodies ------------------------------------------------------------------------- */

static int keep(VcReq *q, const uint8_t *data, size_t len)
{
        if (len > q->limit - q->len)
                return vc_errf(-EFBIG, "the body is more than the %zu bytes this request takes", q->limit);
        if (q->len + len > q->cap) {
                size_t nc = q->cap ? q->cap : 4096;
                while (nc < q->len + len)
                        nc *= 2;
                nc = VC_MIN(nc, q->limit);
                uint8_t *b = realloc(q->buf, nc);
                if (!b)
                        return -ENOMEM;
                q->buf = b;
                q->cap = nc;
        }
        memcpy(q->buf + q->len, data, len);
        q->len += len;
        return 0;
}

/* An upload buffer: one kept from an earlier upload, or a new one. */
static uint8_t *buf_take(VcServer *s)
{
        uint8_t *b = NULL;
        pthread_mutex_lock(&s->bufs_lock);
        if (s->nbufs)
                b = s->bufs[--s->nbufs];
        pthread_mutex_unlock(&s->bufs_lock);
        return b ? b : malloc(VC_SRV_PUT_BATCH + VC_SEALED_MAX);
}

static void buf_give(VcServer *s, uint8_t *b)
{
        if (!b)
                return;
        pthread_mutex_lock(&s->bufs_lock);
        if (s->nbufs < VC_SRV_PUT_BUFS) {
                s->bufs[s->nbufs++] = b;
                b = NULL;
        }
        pthread_mutex_unlock(&s->bufs_lock);
        free(b);
}

/* The head of an upload: the parcel and domain, checked before any chunk
 * is taken. */
static int put_head(VcReq *q, const uint8_t **data, size_t *len)
{
        VcPutParse *p = q->put;
        while (!p->head_done && *len) {
                p->head[p->head_len++] = *(*data)++;
                (*len)--;
                uint32_t n;
                int r = vc_wire_head_parse(p->head, p->head_len, q->parcel, q->domain, &n);
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                p->head_done = true;
                p->n = n;
                VcParcelInfo pi;
                if ((r = vc_srv_parcel(q, q->parcel, &pi)) < 0 || (r = vc_srv_domain(q, &pi, q->domain, &q->shared)) < 0)
                        return r;
                if (!(p->buf = buf_take(q->s)) ||
                    !(p->items = calloc(VC_ARRAY_SIZE(p->item_off), sizeof *p->items)))
                        return -ENOMEM;
        }
        return 0;
}

/* Takes bytes of the records; a batch is stored when it is full. */
static int put_records(VcReq *q, const uint8_t *data, size_t len)
{
        VcPutParse *p = q->put;
        while (len) {
                if (p->rec_len < VC_WIRE_REC_HDR) {
                        size_t k = VC_MIN(len, VC_WIRE_REC_HDR - p->rec_len);
                        if (p->got == p->n)
                                return vc_errf(-EINVAL, "the body goes on after the %u chunks it announced", p->n);
                        memcpy(p->rec + p->rec_len, data, k);
                        p->rec_len += k;
                        data += k;
                        len -= k;
                        if (p->rec_len < VC_WIRE_REC_HDR)
                                break;
                        p->data_len = vc_get32(p->rec + 1);
                        p->data_got = 0;
                        if (p->rec[0] > VC_KIND_META || p->data_len == 0 || p->data_len > VC_SEALED_MAX)
                                return vc_errf(-EINVAL, "chunk %u of the upload has kind %u and %u bytes", p->got,
                                               p->rec[0], p->data_len);
                        if (p->used + p->data_len > VC_SRV_PUT_BATCH || p->nitems == VC_ARRAY_SIZE(p->item_off)) {
                                int r = vc_srv_put_batch(q);
                                if (r < 0)
                                        return r;
                        }
                }
                size_t k = VC_MIN(len, (size_t)(p->data_len - p->data_got));
                memcpy(p->buf + p->used + p->data_got, data, k);
                p->data_got += (uint32_t)k;
                data += k;
                len -= k;
                if (p->data_got == p->data_len) {
                        VcPutItem *it = &p->items[p->nitems];
                        memcpy(it->tag, p->rec + 5, 32);
                        it->kind = p->rec[0];
                        it->len = p->data_len;
                        p->item_off[p->nitems++] = p->used;
                        p->used += p->data_len;
                        p->rec_len = 0;
                        p->got++;
                }
        }
        return 0;
}

int vc_req_body(VcReq *q, const uint8_t *data, size_t len)
{
        vc_errclear();
        if (q->replied) {
                /* an error was found: read the rest, but not forever */
                q->discarded += len;
                return q->discarded > (uint64_t)q->limit + (1u << 20) ? -1 : 0;
        }
        int r;
        if (q->body_kind == BODY_PUT) {
                if ((r = put_head(q, &data, &len)) >= 0 && len)
                        r = put_records(q, data, len);
        } else
                r = keep(q, data, len);
        if (r < 0)
                vc_srv_reply_err(q, r);
        return 0;
}

static int put_finish(VcReq *q)
{
        VcPutParse *p = q->put;
        if (!p->head_done)
                return vc_errf(-EINVAL, "the upload was cut short: no complete head");
        if (p->got != p->n || p->rec_len)
                return vc_errf(-EINVAL, "the upload was cut short: %u of the %u chunks it announced came whole",
                               p->got, p->n);
        return vc_srv_put_batch(q);
}

void vc_req_finish(VcReq *q, VcResp *ret)
{
        vc_errclear();
        if (!q->replied) {
                if (q->body_kind == BODY_PUT) {
                        int r = put_finish(q);
                        if (r < 0)
                                vc_srv_reply_err(q, r);
                        else {
                                json_t *j = json_pack("{s:I}", "received", (json_int_t)q->put->n);
                                vc_srv_reply_json(q, 200, j);
                        }
                } else
                        vc_srv_op(q);
        }
        if (!q->replied)
                vc_srv_reply_err(q, vc_errf(-EIO, "the server gave no reply (a bug)"));
        vc_req_reply(q, ret);
}

void vc_req_free(VcReq *q)
{
        if (!q)
                return;
        if (q->put) {
                buf_give(q->s, q->put->buf);
                free(q->put->items);
                free(q->put);
        }
        free(q->buf);
        if (q->replied) {
                if (q->resp.free)
                        q->resp.free(q->resp.ctx);
                free(q->resp.body);
        }
        free(q);
}
