/* The remote back end: the store interface by HTTP(S) requests to a
 * `vmcas serve` (protocol: docs/protocol.md). The only file that knows
 * libcurl; its errors are translated here once.
 *
 * - Connections are kept: a small pool of curl handles, each on a multi
 *   handle of its own that keeps its connection open, shared by the
 *   client's threads under a mutex.
 * - A get of a few chunks (a disk server's miss) waits for its reply
 *   spinning for up to SPIN_SECONDS before it sleeps (VMCAS_NO_SPIN=1:
 *   never): see perform().
 * - Timeouts: 10 s to connect; a transfer slower than 1 KiB/s for 60 s is
 *   cut (not for verify and gc, which may think for long before answering).
 * - Retries: up to 3 attempts on a broken connection or a server that is
 *   shutting down (503), only for calls that may be repeated without
 *   effect: missing, get (only the chunks not yet delivered), put (chunks
 *   are named by content), and reads of the catalog. Never for commit,
 *   create, prune or leases.
 * - Batches are split to stay below the server's limits (GET /v1/store).
 * - The server's one-line message always reaches the user (vc_errf).
 */
#include "backend/vc_backend.h"
#include "core/vc_util.h"
#include "remote/vc_wire.h"

#include <curl/curl.h>
#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>
#include <time.h>

#define POOL_MAX 16
#define ATTEMPTS 3
#define ERRBODY_MAX (64u << 10)
#define TAGS_PER_REQUEST (1u << 18)      /* 8 MiB of tags: a get's first byte comes soon */
#define PUT_PER_REQUEST (32u << 20)
#define SMALL_BODY (16u << 10)           /* sent with the headers */
#define SPIN_TAGS 16                     /* a get of at most this many chunks waits spinning */
#define SPIN_SECONDS 0.00015             /* for at most this long, then sleeps */

/* A kept connection: an easy handle and the multi handle it runs on
 * (which holds its connection between requests). */
typedef struct Conn {
        CURL *h;
        CURLM *m;
} Conn;

typedef struct Remote {
        VcBackend base;
        char url[400];                   /* no trailing '/' */
        char auth[128];
        char ca[1024];
        pthread_mutex_t lock;
        Conn idle[POOL_MAX];
        unsigned nidle;
        size_t tags_max, put_max, commit_max;
        bool oracle;
} Remote;

static Remote *R(VcBackend *b)
{
        return (Remote *)b;
}

static void add(uint64_t *c, uint64_t n)
{
        __atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

/* ---- one HTTP exchange ----------------------------------------------------------- */

typedef struct Buf {
        uint8_t *p;
        size_t len, cap, max;
} Buf;

static int buf_add(Buf *b, const void *d, size_t n)
{
        if (n > b->max - b->len)
                return -EFBIG;
        if (b->len + n + 1 > b->cap) {
                size_t nc = b->cap ? b->cap : 4096;
                while (nc < b->len + n + 1)
                        nc *= 2;
                uint8_t *x = realloc(b->p, nc);
                if (!x)
                        return -ENOMEM;
                b->p = x;
                b->cap = nc;
        }
        memcpy(b->p + b->len, d, n);
        b->len += n;
        b->p[b->len] = 0;                /* a JSON reply can be parsed in place */
        return 0;
}

typedef struct Http {
        const char *method;
        char path[200];
        const char *ctype;
        const struct iovec *iov;         /* the body, gathered */
        size_t niov;
        /* the reply: whole into out, or streamed to sink (which returns <0 to stop) */
        Buf *out;
        int (*sink)(const uint8_t *d, size_t n, void *ctx);
        void *ctx;
        bool retry, long_op;
        /* state of an attempt */
        size_t iv, ivoff;
        long status;
        Buf err;
        int sink_err;
        CURL *h;
        uint8_t *small;                  /* a small body, gathered for one send */
        bool spin;                       /* a small get: wait for its reply spinning */
} Http;

static size_t read_cb(char *dst, size_t size, size_t nmemb, void *ctx)
{
        Http *x = ctx;
        size_t want = size * nmemb, n = 0;
        while (n < want && x->iv < x->niov) {
                const struct iovec *v = &x->iov[x->iv];
                size_t k = VC_MIN(want - n, v->iov_len - x->ivoff);
                if (k)
                        memcpy(dst + n, (const uint8_t *)v->iov_base + x->ivoff, k);
                n += k;
                x->ivoff += k;
                if (x->ivoff == v->iov_len) {
                        x->iv++;
                        x->ivoff = 0;
                }
        }
        return n;
}

/* curl rewinds the body when it must send it again: on a kept connection
 * that the server closed meanwhile (a server restarting), it resends the
 * request on a new one. The body is in memory: any offset can be sought. */
static int seek_cb(void *ctx, curl_off_t off, int origin)
{
        Http *x = ctx;
        if (origin != SEEK_SET || off < 0)
                return CURL_SEEKFUNC_CANTSEEK;
        uint64_t left = (uint64_t)off;
        x->iv = 0;
        x->ivoff = 0;
        while (x->iv < x->niov && left >= x->iov[x->iv].iov_len) {
                left -= x->iov[x->iv].iov_len;
                x->iv++;
        }
        if (x->iv == x->niov && left)
                return CURL_SEEKFUNC_FAIL;
        x->ivoff = (size_t)left;
        return CURL_SEEKFUNC_OK;
}

static size_t write_cb(char *d, size_t size, size_t nmemb, void *ctx)
{
        Http *x = ctx;
        size_t n = size * nmemb;
        if (!x->status)
                curl_easy_getinfo(x->h, CURLINFO_RESPONSE_CODE, &x->status);
        if (x->status >= 300) {
                /* an error body: keep its start for the message */
                if (x->err.len < ERRBODY_MAX)
                        buf_add(&x->err, d, VC_MIN(n, ERRBODY_MAX - x->err.len));
                return n;
        }
        int r = 0;
        if (x->sink)
                r = x->sink((const uint8_t *)d, n, x->ctx);
        else if (x->out && (r = buf_add(x->out, d, n)) == -EFBIG)
                r = vc_errf(-EPROTO, "the server's reply is larger than %zu bytes", x->out->max);
        if (r < 0) {
                x->sink_err = r;
                return 0;               /* curl stops: CURLE_WRITE_ERROR */
        }
        return n;
}

static void conn_drop(Conn *cn)
{
        if (cn->h)
                curl_easy_cleanup(cn->h);
        if (cn->m)
                curl_multi_cleanup(cn->m);
        cn->h = NULL;
        cn->m = NULL;
}

static int conn_get(Remote *rm, Conn *cn)
{
        pthread_mutex_lock(&rm->lock);
        bool got = rm->nidle > 0;
        if (got)
                *cn = rm->idle[--rm->nidle];
        pthread_mutex_unlock(&rm->lock);
        if (got)
                return 0;
        cn->h = curl_easy_init();
        cn->m = curl_multi_init();
        if (!cn->h || !cn->m) {
                conn_drop(cn);
                return -ENOMEM;
        }
        return 0;
}

static void conn_put(Remote *rm, Conn *cn)
{
        pthread_mutex_lock(&rm->lock);
        if (rm->nidle < POOL_MAX) {
                rm->idle[rm->nidle++] = *cn;
                cn->h = NULL;
                cn->m = NULL;
        }
        pthread_mutex_unlock(&rm->lock);
        conn_drop(cn);
}

/* Whether small gets may spin for their reply (VMCAS_NO_SPIN=1: never). */
static bool spin_allowed(void)
{
        static _Atomic int on = -1;
        if (on < 0) {
                const char *e = getenv("VMCAS_NO_SPIN");
                on = !(e && *e && strcmp(e, "0") != 0);
        }
        return on > 0;
}

/* Runs cn's transfer, as curl_easy_perform does, on cn's own multi handle.
 * With spin, it does not sleep in poll for the first SPIN_SECONDS but
 * asks again and again: a disk server's miss waits ~0.1 ms for a reply,
 * and on a VM a core that went idle takes 30-300 us to wake again (an
 * interrupt to a halted virtual CPU), as long as the server's work. */
static CURLcode perform(Conn *cn, bool spin)
{
        if (curl_multi_add_handle(cn->m, cn->h) != CURLM_OK)
                return CURLE_OUT_OF_MEMORY;
        double until = spin && spin_allowed() ? vc_mono() + SPIN_SECONDS : 0;
        CURLcode res = CURLE_OK;
        int running = 1;
        for (;;) {
                CURLMcode mc = curl_multi_perform(cn->m, &running);
                if (mc == CURLM_OK && running && !(until && vc_mono() < until))
                        mc = curl_multi_poll(cn->m, NULL, 0, 1000, NULL);
                if (mc != CURLM_OK) {
                        res = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
                        break;
                }
                if (!running)
                        break;
        }
        int left;
        for (CURLMsg *msg; (msg = curl_multi_info_read(cn->m, &left));)
                if (msg->msg == CURLMSG_DONE && msg->easy_handle == cn->h && res == CURLE_OK)
                        res = msg->data.result;
        curl_multi_remove_handle(cn->m, cn->h);
        return res;
}

static bool transient(CURLcode c)
{
        return c == CURLE_COULDNT_CONNECT || c == CURLE_SEND_ERROR || c == CURLE_RECV_ERROR ||
               c == CURLE_GOT_NOTHING || c == CURLE_PARTIAL_FILE || c == CURLE_OPERATION_TIMEDOUT;
}

static int curl_error(Remote *rm, CURLcode c, const char *msg)
{
        const char *m = msg && *msg ? msg : curl_easy_strerror(c);
        switch (c) {
        case CURLE_COULDNT_CONNECT:
                return vc_errf(-ECONNREFUSED, "cannot reach the server at %s: %s", rm->url, m);
        case CURLE_OPERATION_TIMEDOUT:
                return vc_errf(-ETIMEDOUT, "the server at %s did not answer in time: %s", rm->url, m);
        case CURLE_COULDNT_RESOLVE_HOST:
                return vc_errf(-EIO, "cannot find the server %s: %s", rm->url, m);
        case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CONNECT_ERROR: case CURLE_SSL_CACERT_BADFILE:
        case CURLE_SSL_CERTPROBLEM:
                return vc_errf(-EIO, "TLS with the server at %s failed: %s (VMCAS_CA=FILE names a certificate to "
                               "trust)", rm->url, m);
        default:
                return vc_errf(-EIO, "talking to the server at %s failed: %s", rm->url, m);
        }
}

/* The -errno of an error reply, with the server's message. */
static int http_error(Remote *rm, long status, const Buf *body)
{
        json_t *j = body->p ? json_loadb((const char *)body->p, body->len, 0, NULL) : NULL;
        const char *msg = json_string_value(json_object_get(j, "error"));
        int code = vc_wire_errcode(json_string_value(json_object_get(j, "code")));
        char m[1024];
        snprintf(m, sizeof m, "%s", msg && *msg ? msg : "(no message)");
        json_decref(j);
        switch (status) {
        case 401:
                return vc_errf(-EACCES, "the server refused the token (VMCAS_TOKEN; 'vmcas user add' on the server "
                               "makes one): %s", m);
        case 403:
                return vc_errf(-EACCES, "%s", m);
        case 404:
                return vc_errf(-ENOENT, "%s", m);
        case 409:
                if (code != -EEXIST && code != -EBUSY && code != -ESTALE)
                        code = -EAGAIN;
                return vc_errf(code, "%s", m);
        case 413:
                return vc_errf(-EFBIG, "%s", m);
        case 400:
                if (code != -EBADMSG && code != -EINVAL && code != -EPROTO && code != -EFBIG && code != -ENAMETOOLONG)
                        code = -EINVAL;
                return vc_errf(code, "%s", m);
        case 507:
                return vc_errf(-ENOSPC, "the server at %s has no room left (HTTP 507): %s", rm->url, m);
        default:
                if (status >= 500)
                        return vc_errf(-EIO, "the server at %s failed (HTTP %ld): %s", rm->url, status, m);
                return vc_errf(-EPROTO, "the server at %s answered HTTP %ld: %s", rm->url, status, m);
        }
}

static struct curl_slist *headers(Remote *rm, const Http *x)
{
        struct curl_slist *l = curl_slist_append(NULL, rm->auth);
        /* no "Expect: 100-continue" before a body: a round trip per
         * request (40 ms on the 20 ms link of bench/net.sh); a refusal
         * still comes at once, and the server reads no body it refused */
        if (l && x->niov)
                l = curl_slist_append(l, "Expect:");
        char ct[128];
        if (x->ctype) {
                snprintf(ct, sizeof ct, "Content-Type: %s", x->ctype);
                l = curl_slist_append(l, ct);
        }
        return l;
}

static void setup(Remote *rm, Http *x, CURL *h, struct curl_slist *hl, char *errbuf, uint64_t body_len)
{
        char url[700];
        snprintf(url, sizeof url, "%s%s", rm->url, x->path);
        curl_easy_reset(h);             /* keeps the connection */
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
        curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, 10L);
        if (!x->long_op) {
                curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1024L);
                curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, 60L);
        }
        curl_easy_setopt(h, CURLOPT_TCP_KEEPALIVE, 1L);
        curl_easy_setopt(h, CURLOPT_USERAGENT, "vmcas/0.1");
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
        curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
        /* replies (a get of 8 MiB) arrive in large pieces (16 KiB by default) */
        curl_easy_setopt(h, CURLOPT_BUFFERSIZE, 512L << 10);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, write_cb);
        curl_easy_setopt(h, CURLOPT_WRITEDATA, x);
        if (rm->ca[0])
                curl_easy_setopt(h, CURLOPT_CAINFO, rm->ca);
        if (strcmp(x->method, "GET") == 0)
                return;
        if (strcmp(x->method, "PUT") == 0) {
                curl_easy_setopt(h, CURLOPT_UPLOAD, 1L);
                curl_easy_setopt(h, CURLOPT_INFILESIZE_LARGE, (curl_off_t)body_len);
        } else {
                curl_easy_setopt(h, CURLOPT_POST, 1L);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
                if (strcmp(x->method, "POST") != 0)
                        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, x->method);
        }
        /* a small body (the tags of a get or a missing) goes in the packet
         * of the headers, which curl does for POSTFIELDS: sent apart, the
         * server woke twice and the request took a round trip longer */
        if (body_len <= SMALL_BODY && strcmp(x->method, "PUT") != 0 && (x->small = malloc(body_len + 1))) {
                size_t at = 0;
                for (size_t i = 0; i < x->niov; i++) {
                        if (x->iov[i].iov_len)
                                memcpy(x->small + at, x->iov[i].iov_base, x->iov[i].iov_len);
                        at += x->iov[i].iov_len;
                }
                curl_easy_setopt(h, CURLOPT_POSTFIELDS, x->small);
                curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
                return;
        }
        /* the body goes to the socket in large pieces (64 KiB by default) */
        curl_easy_setopt(h, CURLOPT_UPLOAD_BUFFERSIZE, 1L << 20);
        curl_easy_setopt(h, CURLOPT_READFUNCTION, read_cb);
        curl_easy_setopt(h, CURLOPT_READDATA, x);
        curl_easy_setopt(h, CURLOPT_SEEKFUNCTION, seek_cb);
        curl_easy_setopt(h, CURLOPT_SEEKDATA, x);
}

static void count_wire(Remote *rm, CURL *h)
{
        long req = 0, hdr = 0;
        curl_off_t up = 0, down = 0;
        curl_easy_getinfo(h, CURLINFO_REQUEST_SIZE, &req);
        curl_easy_getinfo(h, CURLINFO_SIZE_UPLOAD_T, &up);
        curl_easy_getinfo(h, CURLINFO_HEADER_SIZE, &hdr);
        curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &down);
        add(&rm->base.traffic.wire_sent, (uint64_t)req + (uint64_t)up);
        add(&rm->base.traffic.wire_recv, (uint64_t)hdr + (uint64_t)down);
}

/* One attempt. Returns 0 on a 2xx reply, -errno otherwise; *again if the
 * failure was a broken connection or a 503. */
static int attempt(Remote *rm, Http *x, bool *again)
{
        uint64_t body_len = 0;
        for (size_t i = 0; i < x->niov; i++)
                body_len += x->iov[i].iov_len;
        char errbuf[CURL_ERROR_SIZE] = "";
        Conn cn;
        if (conn_get(rm, &cn) < 0)
                return -ENOMEM;
        CURL *h = cn.h;
        struct curl_slist *hl = headers(rm, x);
        if (!hl) {
                conn_drop(&cn);
                return -ENOMEM;
        }
        x->h = h;
        x->iv = x->ivoff = 0;
        x->status = 0;
        x->err.len = 0;
        x->err.max = ERRBODY_MAX;
        x->sink_err = 0;
        setup(rm, x, h, hl, errbuf, body_len);
        CURLcode c = perform(&cn, x->spin);
        free(x->small);
        x->small = NULL;
        if (c == CURLE_OK || !x->status)
                curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &x->status);
        count_wire(rm, h);
        curl_slist_free_all(hl);
        int r = 0;
        *again = false;
        if (x->sink_err)
                r = x->sink_err;
        else if (c != CURLE_OK) {
                *again = transient(c);
                r = curl_error(rm, c, errbuf);
        } else if (x->status < 200 || x->status >= 300) {
                *again = x->status == 503;
                r = http_error(rm, x->status, &x->err);
        }
        if (c == CURLE_OK || r == x->sink_err)
                conn_put(rm, &cn);
        else
                conn_drop(&cn);         /* a broken connection is not kept */
        return r;
}

/* Sends x, with retries if x->retry. before_retry (if given) may adjust x
 * for the next attempt; it returns 1 if nothing is left to do. */
static int http(Remote *rm, Http *x, int (*before_retry)(Http *x))
{
        int r = 0;
        for (int i = 0; i < ATTEMPTS; i++) {
                bool again;
                if (x->out)
                        x->out->len = 0;
                vc_errclear();
                if ((r = attempt(rm, x, &again)) >= 0 || !again || !x->retry || i + 1 == ATTEMPTS)
                        break;
                if (before_retry && before_retry(x) == 1) {
                        r = 0;
                        break;
                }
                struct timespec ts = { 0, (long)(200 * 1000 * 1000) << i };
                nanosleep(&ts, NULL);
        }
        free(x->err.p);
        x->err.p = NULL;
        x->err.cap = 0;
        return r;
}

/* A JSON request (body may be NULL) with a JSON reply in *ret (may be NULL). */
static int http_json(Remote *rm, const char *method, const char *path, json_t *body, bool retry, bool long_op,
                     json_t **ret)
{
        char *s = body ? json_dumps(body, JSON_COMPACT) : NULL;
        json_decref(body);
        if (body && !s)
                return -ENOMEM;
        struct iovec iov = { s, s ? strlen(s) : 0 };
        Buf out = { .max = 64u << 20 };
        Http x = { .method = method, .ctype = s ? "application/json" : NULL, .iov = &iov, .niov = s ? 1 : 0,
                   .out = &out, .retry = retry, .long_op = long_op };
        snprintf(x.path, sizeof x.path, "%s", path);
        int r = http(rm, &x, NULL);
        free(s);
        if (r >= 0 && ret) {
                *ret = out.p ? json_loadb((const char *)out.p, out.len, 0, NULL) : NULL;
                if (!json_is_object(*ret)) {
                        json_decref(*ret);
                        *ret = NULL;
                        r = vc_errf(-EPROTO, "the server at %s gave a reply that is not JSON", rm->url);
                }
        }
        free(out.p);
        return r;
}

static int jhex(json_t *o, const char *key, uint8_t *out, size_t max, size_t *len)
{
        const char *s = json_string_value(json_object_get(o, key));
        size_t n = s ? strlen(s) : 0;
        if (!s || n % 2 || n / 2 > max || (!len && n / 2 != max) || vc_unhex(s, out, n / 2) < 0)
                return vc_errf(-EPROTO, "the server's reply has no valid \"%s\"", key);
        if (len)
                *len = n / 2;
        return 0;
}

static int64_t jint(json_t *o, const char *key)
{
        return json_integer_value(json_object_get(o, key));
}

/* ---- chunks ------------------------------------------------------------------------ */

static int missing_part(Remote *rm, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                        uint8_t *missing)
{
        uint8_t head[VC_WIRE_HEAD_MAX];
        struct iovec iov[2] = { { head, vc_wire_head(head, parcel, domain, (uint32_t)n) }, { (void *)tags, 32 * n } };
        Buf out = { .max = (n + 7) / 8 };
        Http x = { .method = "POST", .path = "/v1/chunks/missing", .ctype = "application/octet-stream", .iov = iov,
                   .niov = 2, .out = &out, .retry = true };
        int r = http(rm, &x, NULL);
        if (r >= 0 && out.len != (n + 7) / 8)
                r = vc_errf(-EPROTO, "the server's answer to 'missing' has %zu bytes, not %zu", out.len, (n + 7) / 8);
        for (size_t i = 0; r >= 0 && i < n; i++)
                missing[i] = (out.p[i / 8] >> (i % 8)) & 1;
        free(out.p);
        return r;
}

static int remote_missing(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                          uint8_t *missing)
{
        Remote *rm = R(b);
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i += rm->tags_max)
                r = missing_part(rm, parcel, domain, tags + 32 * i, VC_MIN(rm->tags_max, n - i), missing + i);
        return r;
}

/* Records of a get reply, parsed as they arrive. */
typedef struct GetParse {
        Remote *rm;
        const uint8_t *tags;             /* of this request */
        size_t n, done;                  /* records delivered */
        size_t base;                     /* index of tags[0] in the caller's list */
        vc_got_fn fn;
        void *ctx;
        uint8_t hdr[VC_WIRE_REC_HDR];
        size_t hlen;
        uint8_t *data;
        size_t dlen, dgot, dcap;
        bool ended;
} GetParse;

/* A whole record: its header in g->hdr, its data (dlen bytes) at data. */
static int record_done(GetParse *g, const uint8_t *data)
{
        uint8_t kind = g->hdr[0];
        if (kind == VC_WIRE_END) {
                if (g->done != g->n)
                        return vc_errf(-EPROTO, "the server ended a reply of %zu chunks after %zu", g->n, g->done);
                g->ended = true;
                return 0;
        }
        if (kind == VC_WIRE_ERROR) {
                /* the server failed after the reply began: its error, as JSON */
                json_t *j = json_loadb((const char *)data, g->dlen, 0, NULL);
                const char *msg = json_string_value(json_object_get(j, "error"));
                int code = vc_wire_errcode(json_string_value(json_object_get(j, "code")));
                int r = vc_errf(code ? code : -EIO, "%s", msg ? msg : "the server failed midway through a reply");
                json_decref(j);
                g->ended = true;
                return r;
        }
        if (kind > VC_KIND_META || g->done == g->n || memcmp(g->hdr + 5, g->tags + 32 * g->done, 32) != 0)
                return vc_errf(-EPROTO, "the server sent a chunk that was not asked for");
        add(kind == VC_KIND_META ? &g->rm->base.traffic.recv_meta : &g->rm->base.traffic.recv_data, g->dlen);
        int r = g->fn(g->base + g->done, data, g->dlen, g->ctx);
        g->done++;
        return r;
}

static int get_sink(const uint8_t *d, size_t n, void *ctx)
{
        GetParse *g = ctx;
        while (n) {
                if (g->ended)
                        return vc_errf(-EPROTO, "the server sent more after the end of a reply");
                /* a record wholly in what arrived is delivered in place
                 * (most are: curl hands over up to 512 KiB at a time) */
                if (g->hlen == 0 && n >= VC_WIRE_REC_HDR) {
                        size_t dl = vc_get32(d + 1);
                        if (dl <= VC_SEALED_MAX + ERRBODY_MAX && n - VC_WIRE_REC_HDR >= dl) {
                                memcpy(g->hdr, d, VC_WIRE_REC_HDR);
                                g->dlen = dl;
                                int r = record_done(g, d + VC_WIRE_REC_HDR);
                                if (r < 0)
                                        return r;
                                d += VC_WIRE_REC_HDR + dl;
                                n -= VC_WIRE_REC_HDR + dl;
                                continue;
                        }
                }
                if (g->hlen < VC_WIRE_REC_HDR) {
                        size_t k = VC_MIN(n, VC_WIRE_REC_HDR - g->hlen);
                        memcpy(g->hdr + g->hlen, d, k);
                        g->hlen += k;
                        d += k;
                        n -= k;
                        if (g->hlen < VC_WIRE_REC_HDR)
                                break;
                        g->dlen = vc_get32(g->hdr + 1);
                        g->dgot = 0;
                        if (g->dlen > VC_SEALED_MAX + ERRBODY_MAX)
                                return vc_errf(-EPROTO, "the server sent a record of %zu bytes", g->dlen);
                        if (g->dlen > g->dcap) {
                                uint8_t *x = realloc(g->data, g->dlen);
                                if (!x)
                                        return -ENOMEM;
                                g->data = x;
                                g->dcap = g->dlen;
                        }
                }
                size_t k = VC_MIN(n, g->dlen - g->dgot);
                memcpy(g->data + g->dgot, d, k);
                g->dgot += k;
                d += k;
                n -= k;
                if (g->dgot == g->dlen) {
                        g->hlen = 0;
                        int r = record_done(g, g->data);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int get_part(Remote *rm, const char *parcel, const char *domain, const uint8_t *tags, size_t n, size_t base,
                    vc_got_fn fn, void *ctx)
{
        GetParse g = { .rm = rm, .fn = fn, .ctx = ctx };
        int r = 0;
        /* a retry asks only for the chunks not yet delivered */
        for (int i = 0; i < ATTEMPTS; i++) {
                uint8_t head[VC_WIRE_HEAD_MAX];
                g.tags = tags + 32 * g.done;
                g.base = base + g.done;
                n -= g.done;
                tags += 32 * g.done;
                base += g.done;
                g.n = n;
                g.done = 0;
                g.hlen = 0;
                g.ended = false;
                struct iovec iov[2] = { { head, vc_wire_head(head, parcel, domain, (uint32_t)n) },
                                        { (void *)tags, 32 * n } };
                Http x = { .method = "POST", .path = "/v1/chunks/get", .ctype = "application/octet-stream",
                           .iov = iov, .niov = 2, .sink = get_sink, .ctx = &g, .spin = n <= SPIN_TAGS };
                bool again;
                vc_errclear();
                r = attempt(rm, &x, &again);
                free(x.err.p);
                if (r >= 0 && !g.ended)
                        r = vc_errf(-EIO, "the server's reply was cut short after %zu of %zu chunks", g.done, n);
                if (r >= 0 || !again || i + 1 == ATTEMPTS)
                        break;
                struct timespec ts = { 0, (long)(200 * 1000 * 1000) << i };
                nanosleep(&ts, NULL);
        }
        free(g.data);
        return r;
}

static int remote_get(VcBackend *b, const char *parcel, const char *domain, const uint8_t *tags, size_t n,
                      vc_got_fn fn, void *ctx)
{
        Remote *rm = R(b);
        int r = 0;
        for (size_t i = 0; i < n && r >= 0; i += rm->tags_max)
                r = get_part(rm, parcel, domain, tags + 32 * i, VC_MIN(rm->tags_max, n - i), i, fn, ctx);
        return r;
}

/* One upload of items[0..n), a body of at most rm->put_max bytes. */
static int put_part(Remote *rm, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        uint8_t head[VC_WIRE_HEAD_MAX];
        uint8_t *hdrs = malloc(VC_WIRE_REC_HDR * n);
        struct iovec *iov = malloc((2 * n + 1) * sizeof *iov);
        if (!hdrs || !iov) {
                free(hdrs);
                free(iov);
                return -ENOMEM;
        }
        iov[0] = (struct iovec){ head, vc_wire_head(head, parcel, domain, (uint32_t)n) };
        uint64_t data = 0, meta = 0;
        for (size_t i = 0; i < n; i++) {
                uint8_t *h = hdrs + VC_WIRE_REC_HDR * i;
                h[0] = items[i].kind;
                vc_put32(h + 1, items[i].len);
                memcpy(h + 5, items[i].tag, 32);
                iov[1 + 2 * i] = (struct iovec){ h, VC_WIRE_REC_HDR };
                iov[2 + 2 * i] = (struct iovec){ (void *)items[i].data, items[i].len };
                *(items[i].kind == VC_KIND_META ? &meta : &data) += items[i].len;
        }
        Buf out = { .max = 4096 };
        Http x = { .method = "POST", .path = "/v1/chunks/put", .ctype = "application/octet-stream", .iov = iov,
                   .niov = 2 * n + 1, .out = &out, .retry = true };
        int r = http(rm, &x, NULL);
        if (r >= 0) {
                add(&rm->base.traffic.sent_data, data);
                add(&rm->base.traffic.sent_meta, meta);
        }
        free(out.p);
        free(hdrs);
        free(iov);
        return r;
}

/* Sends items[0..n) in requests of at most put_max bytes. */
static int put_serial(Remote *rm, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        size_t i = 0;
        int r = 0;
        while (i < n && r >= 0) {
                size_t j = i, bytes = VC_WIRE_HEAD_MAX;
                while (j < n && (j == i || bytes + VC_WIRE_REC_HDR + items[j].len <= rm->put_max))
                        bytes += VC_WIRE_REC_HDR + items[j++].len;
                r = put_part(rm, parcel, domain, items + i, j - i);
                i = j;
        }
        return r;
}

#define PUT_STREAMS 3                   /* connections one large put uses at once */
#define PUT_SPLIT (1u << 20)            /* below this a put is one request */

typedef struct {
        Remote *rm;
        const char *parcel, *domain;
        const VcPutItem *items;
        size_t n;
        VcErr err;
} PutStream;

static void *put_stream(void *arg)
{
        PutStream *ps = arg;
        vc_errclear();
        vc_err_save(&ps->err, put_serial(ps->rm, ps->parcel, ps->domain, ps->items, ps->n));
        return NULL;
}

/* A large batch goes as a few requests on as many connections at once, so
 * that the server hashes and stores one part while the next arrives: over
 * a link with latency, and on a server with cores to spare, the upload is
 * not one request at a time. */
static int remote_put(VcBackend *b, const char *parcel, const char *domain, const VcPutItem *items, size_t n)
{
        Remote *rm = R(b);
        uint64_t total = 0;
        for (size_t i = 0; i < n; i++)
                total += items[i].len;
        if (total < PUT_SPLIT || n < PUT_STREAMS)
                return put_serial(rm, parcel, domain, items, n);
        PutStream ps[PUT_STREAMS];
        pthread_t th[PUT_STREAMS];
        bool started[PUT_STREAMS] = { false };
        for (int k = 0; k < PUT_STREAMS; k++) {
                size_t lo = n * (size_t)k / PUT_STREAMS, hi = n * (size_t)(k + 1) / PUT_STREAMS;
                ps[k] = (PutStream){ rm, parcel, domain, items + lo, hi - lo, VC_ERR_INIT };
        }
        for (int k = 1; k < PUT_STREAMS; k++)
                started[k] = pthread_create(&th[k], NULL, put_stream, &ps[k]) == 0;
        put_stream(&ps[0]);
        for (int k = 1; k < PUT_STREAMS; k++) {
                if (started[k])
                        pthread_join(th[k], NULL);
                else
                        put_stream(&ps[k]);
        }
        /* the first failure, with its message, in this thread */
        for (int k = 0; k < PUT_STREAMS; k++)
                if (vc_err_failed(&ps[k].err))
                        return vc_err_raise(&ps[k].err);
        return 0;
}

/* A put is received when it returns, durable after this (or a commit). */
static int remote_flush(VcBackend *b)
{
        return http_json(R(b), "POST", "/v1/chunks/flush", NULL, true, true, NULL);
}

/* ---- catalog ------------------------------------------------------------------------ */

static int parcel_of(Remote *rm, json_t *o, VcParcelInfo *pi)
{
        memset(pi, 0, sizeof *pi);
        const char *name = json_string_value(json_object_get(o, "name")),
                   *owner = json_string_value(json_object_get(o, "owner"));
        if (!name || strlen(name) > VC_NAME_MAX || !owner || strlen(owner) > VC_USER_MAX)
                return vc_errf(-EPROTO, "the server's parcel has no valid name or owner");
        snprintf(pi->name, sizeof pi->name, "%s", name);
        snprintf(pi->owner, sizeof pi->owner, "%s", owner);
        pi->latest = (uint32_t)jint(o, "latest");
        int r = jhex(o, "record", pi->record, sizeof pi->record, &pi->record_len);
        if (r >= 0)
                add(&rm->base.traffic.recv_meta, pi->record_len);
        return r;
}

static int version_of(Remote *rm, json_t *o, VcVersionInfo *v)
{
        memset(v, 0, sizeof *v);
        v->version = (uint32_t)jint(o, "version");
        v->seq = (uint64_t)jint(o, "seq");
        int r = jhex(o, "record", v->record, sizeof v->record, &v->record_len);
        if (r >= 0)
                add(&rm->base.traffic.recv_meta, v->record_len);
        return r;
}

static int remote_parcels(VcBackend *b, VcParcelInfo **ret, size_t *n)
{
        json_t *j;
        int r = http_json(R(b), "GET", "/v1/parcels", NULL, true, false, &j);
        if (r < 0)
                return r;
        json_t *a = json_object_get(j, "parcels");
        size_t k = json_array_size(a);
        VcParcelInfo *v = calloc(k ? k : 1, sizeof *v);
        if (!v)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < k; i++)
                r = parcel_of(R(b), json_array_get(a, i), &v[i]);
        json_decref(j);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *n = k;
        return 0;
}

static int remote_parcel(VcBackend *b, const char *name, VcParcelInfo *ret)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s", name);
        int r = http_json(R(b), "GET", path, NULL, true, false, &j);
        if (r < 0)
                return r;
        r = parcel_of(R(b), j, ret);
        json_decref(j);
        return r;
}

static int remote_versions(VcBackend *b, const char *name, VcVersionInfo **ret, size_t *n)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s/versions", name);
        int r = http_json(R(b), "GET", path, NULL, true, false, &j);
        if (r < 0)
                return r;
        json_t *a = json_object_get(j, "versions");
        size_t k = json_array_size(a);
        VcVersionInfo *v = calloc(k ? k : 1, sizeof *v);
        if (!v)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < k; i++)
                r = version_of(R(b), json_array_get(a, i), &v[i]);
        json_decref(j);
        if (r < 0) {
                free(v);
                return r;
        }
        *ret = v;
        *n = k;
        return 0;
}

static int remote_version(VcBackend *b, const char *name, uint32_t version, VcVersionInfo *ret)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s/versions/%u", name, version);
        int r = http_json(R(b), "GET", path, NULL, true, false, &j);
        if (r < 0)
                return r;
        r = version_of(R(b), j, ret);
        json_decref(j);
        return r;
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

static int remote_create(VcBackend *b, const char *name, const char *owner, const uint8_t *rec, size_t len)
{
        char path[128];
        snprintf(path, sizeof path, "/v1/parcels/%s", name);
        json_t *body = json_pack("{s:o}", "record", hexstr(rec, len));
        if (owner && *owner)
                json_object_set_new(body, "owner", json_string(owner));
        int r = http_json(R(b), "PUT", path, body, false, false, NULL);
        if (r >= 0)
                add(&b->traffic.sent_meta, len);
        return r;
}

static int remote_commit(VcBackend *b, const VcCommit *c)
{
        Remote *rm = R(b);
        if (VC_WIRE_COMMIT_FIXED + c->record_len + 8 + 32 * (c->n_nodes + c->n_data) > rm->commit_max)
                return vc_errf(-EFBIG, "a commit naming %zu chunks is more than the server takes (%zu bytes)",
                               c->n_nodes + c->n_data, rm->commit_max);
        uint8_t fixed[VC_WIRE_COMMIT_FIXED], counts[8];
        vc_put32(fixed, c->base);
        fixed[4] = c->lease ? 1 : 0;
        if (c->lease)
                memcpy(fixed + 5, c->lease, VC_LEASE_TOKEN_LEN);
        else
                memset(fixed + 5, 0, VC_LEASE_TOKEN_LEN);
        vc_put16(fixed + 21, (uint16_t)c->record_len);
        vc_put32(counts, (uint32_t)c->n_nodes);
        vc_put32(counts + 4, (uint32_t)c->n_data);
        struct iovec iov[5] = { { fixed, sizeof fixed }, { (void *)c->record, c->record_len }, { counts, 8 },
                                { (void *)c->need_nodes, 32 * c->n_nodes }, { (void *)c->need_data, 32 * c->n_data } };
        Buf out = { .max = 4096 };
        Http x = { .method = "POST", .ctype = "application/octet-stream", .iov = iov, .niov = 5, .out = &out };
        snprintf(x.path, sizeof x.path, "/v1/parcels/%s/commit", c->parcel);
        int r = http(rm, &x, NULL);        /* never retried: it may have happened */
        free(out.p);
        if (r >= 0)
                add(&b->traffic.sent_meta, c->record_len);
        return r;
}

static int remote_prune(VcBackend *b, const char *name, uint32_t keep)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s/prune", name);
        int r = http_json(R(b), "POST", path, json_pack("{s:I}", "keep", (json_int_t)keep), false, false, &j);
        if (r < 0)
                return r;
        r = (int)jint(j, "dropped");
        json_decref(j);
        return r;
}

/* ---- leases ---------------------------------------------------------------------------- */

static int lease_of(json_t *j, VcLease *ls, bool token)
{
        memset(ls, 0, sizeof *ls);
        ls->held = json_is_true(json_object_get(j, "held"));
        const char *host = json_string_value(json_object_get(j, "host"));
        if (ls->held && (!host || strlen(host) > VC_HOST_MAX))
                return vc_errf(-EPROTO, "the server's lease has no valid host");
        if (host)
                snprintf(ls->host, sizeof ls->host, "%s", host);
        ls->since = jint(j, "since");
        return token ? jhex(j, "token", ls->token, VC_LEASE_TOKEN_LEN, NULL) : 0;
}

static int remote_lease_acquire(VcBackend *b, const char *parcel, const char *host, VcLease *ret)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s/lease", parcel);
        int r = http_json(R(b), "POST", path, json_pack("{s:s}", "host", host), false, false, &j);
        if (r < 0)
                return r;
        r = lease_of(j, ret, true);
        json_decref(j);
        return r;
}

static int remote_lease_release(VcBackend *b, const char *parcel, const uint8_t token[VC_LEASE_TOKEN_LEN])
{
        char path[128];
        snprintf(path, sizeof path, "/v1/parcels/%s/lease", parcel);
        return http_json(R(b), "DELETE", path, json_pack("{s:o}", "token", hexstr(token, VC_LEASE_TOKEN_LEN)), false,
                         false, NULL);
}

static int remote_lease_break(VcBackend *b, const char *parcel)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s/lease/break", parcel);
        int r = http_json(R(b), "POST", path, NULL, false, false, &j);
        if (r < 0)
                return r;
        r = json_is_true(json_object_get(j, "was_held")) ? 1 : 0;
        json_decref(j);
        return r;
}

static int remote_lease_get(VcBackend *b, const char *parcel, VcLease *ret)
{
        char path[128];
        json_t *j;
        snprintf(path, sizeof path, "/v1/parcels/%s/lease", parcel);
        int r = http_json(R(b), "GET", path, NULL, true, false, &j);
        if (r < 0)
                return r;
        r = lease_of(j, ret, false);
        json_decref(j);
        return r;
}

/* ---- maintenance --------------------------------------------------------------------------- */

static int stat_parcel(json_t *o, VcParcelStat *x, size_t i)
{
        VcParcelInfo pi;
        memset(x, 0, sizeof *x);
        const char *name = json_string_value(json_object_get(o, "name"));
        const char *owner = json_string_value(json_object_get(o, "owner"));
        if (!name || !vc_name_valid(name) || !owner || strlen(owner) > VC_USER_MAX ||
            jhex(o, "record", pi.record, sizeof pi.record, &pi.record_len) < 0)
                return vc_errf(-EPROTO, "the server's stat of a parcel is malformed");
        int r = vc_parcel_unpack(pi.record, pi.record_len, name, &x->p);
        if (r < 0)
                return r;
        snprintf(x->p.owner, sizeof x->p.owner, "%s", owner);
        x->p.latest = (uint32_t)jint(o, "latest");
        x->versions = (uint32_t)jint(o, "versions");
        x->logical_bytes = (uint64_t)jint(o, "logical_bytes");
        x->data_bytes = (uint64_t)jint(o, "data_bytes");
        x->meta_bytes = (uint64_t)jint(o, "meta_bytes");
        x->disk_bytes = (uint64_t)jint(o, "disk_bytes");
        return 0;
}

static int remote_stat(VcBackend *b, VcStoreStat *st)
{
        json_t *j;
        memset(st, 0, sizeof *st);
        int r = http_json(R(b), "GET", "/v1/stat", NULL, true, true, &j);
        if (r < 0)
                return r;
        json_t *ps = json_object_get(j, "parcels"), *ds = json_object_get(j, "domains");
        st->data_bytes = (uint64_t)jint(j, "data_bytes");
        st->meta_bytes = (uint64_t)jint(j, "meta_bytes");
        st->disk_bytes = (uint64_t)jint(j, "disk_bytes");
        st->index_bytes = (uint64_t)jint(j, "index_bytes");
        st->logical_bytes = (uint64_t)jint(j, "logical_bytes");
        size_t np = json_array_size(ps), nd = json_array_size(ds);
        st->parcels = calloc(np ? np : 1, sizeof *st->parcels);
        st->domains = calloc(nd ? nd : 1, sizeof *st->domains);
        if (!st->parcels || !st->domains)
                r = -ENOMEM;
        for (size_t i = 0; r >= 0 && i < nd; i++) {
                json_t *o = json_array_get(ds, i);
                VcDomainStat *d = &st->domains[i];
                const char *name = json_string_value(json_object_get(o, "name"));
                snprintf(d->name, sizeof d->name, "%s", name ? name : "");
                d->domain = i + 1;       /* the store's ids do not cross the interface */
                d->data_chunks = (uint64_t)jint(o, "data_chunks");
                d->data_bytes = (uint64_t)jint(o, "data_bytes");
                d->meta_chunks = (uint64_t)jint(o, "meta_chunks");
                d->meta_bytes = (uint64_t)jint(o, "meta_bytes");
                d->pack_bytes = (uint64_t)jint(o, "pack_bytes");
                d->packs = (uint64_t)jint(o, "packs");
        }
        st->ndomains = nd;
        for (size_t i = 0; r >= 0 && i < np; i++) {
                VcParcelStat *x = &st->parcels[i];
                if ((r = stat_parcel(json_array_get(ps, i), x, i)) < 0)
                        break;
                for (size_t k = 0; k < nd; k++) {
                        if (strcmp(st->domains[k].name, x->p.node_dom) == 0)
                                x->p.node_domain = st->domains[k].domain;
                        if (strcmp(st->domains[k].name, x->p.data_dom) == 0)
                                x->p.data_domain = st->domains[k].domain;
                }
                st->nparcels++;
        }
        json_decref(j);
        if (r < 0)
                vc_repo_stat_free(st);
        return r;
}

static int remote_verify(VcBackend *b, bool full, void (*report)(const char *msg, void *ctx), void *ctx,
                         VcVerifyStats *st)
{
        json_t *j;
        int r = http_json(R(b), "POST", "/v1/admin/verify", json_pack("{s:b}", "full", full), true, true, &j);
        if (r < 0)
                return r;
        json_t *m = json_object_get(j, "messages");
        for (size_t i = 0; report && i < json_array_size(m); i++)
                if (json_string_value(json_array_get(m, i)))
                        report(json_string_value(json_array_get(m, i)), ctx);
        VcVerifyStats s = {
                .parcels = (uint64_t)jint(j, "parcels"),
                .versions = (uint64_t)jint(j, "versions"),
                .chunks_checked = (uint64_t)jint(j, "chunks_checked"),
                .bytes_checked = (uint64_t)jint(j, "bytes_checked"),
                .problems = (uint64_t)jint(j, "problems"),
        };
        if (st)
                *st = s;
        json_decref(j);
        return (int)VC_MIN(s.problems, (uint64_t)INT32_MAX);
}

static int remote_gc(VcBackend *b, int64_t grace, bool quiet, VcGcStats *st)
{
        json_t *j;
        int r = http_json(R(b), "POST", "/v1/admin/gc", json_pack("{s:I}", "grace", (json_int_t)grace), false, true, &j);
        if (r < 0)
                return r;
        json_t *sw = json_object_get(j, "sweep"), *cp = json_object_get(j, "compact");
        VcGcStats s = {
                .versions = (uint64_t)jint(j, "versions"),
                .referenced = (uint64_t)jint(j, "referenced"),
                .sweep = { (uint64_t)jint(sw, "chunks_freed"), (uint64_t)jint(sw, "bytes_freed"),
                           (uint64_t)jint(sw, "chunks_kept"), (uint64_t)jint(sw, "bytes_kept"),
                           (uint64_t)jint(sw, "chunks_young") },
                /* by name: VcCompactStats has fields between bytes_after
                 * and chunks_moved that the server does not send */
                .compact = { .packs_before = (uint64_t)jint(cp, "packs_before"),
                             .packs_after = (uint64_t)jint(cp, "packs_after"),
                             .packs_rewritten = (uint64_t)jint(cp, "packs_rewritten"),
                             .packs_deleted = (uint64_t)jint(cp, "packs_deleted"),
                             .bytes_before = (uint64_t)jint(cp, "bytes_before"),
                             .bytes_after = (uint64_t)jint(cp, "bytes_after"),
                             .chunks_moved = (uint64_t)jint(cp, "chunks_moved") },
        };
        if (st)
                *st = s;
        json_decref(j);
        return 0;
}

static int remote_bundle_get(VcBackend *b, uint8_t **ret, size_t *ret_len)
{
        Buf out = { .max = VC_WIRE_BUNDLE_MAX };
        Http x = { .method = "GET", .path = "/v1/bundle", .out = &out, .retry = true };
        int r = http(R(b), &x, NULL);
        if (r < 0) {
                free(out.p);
                return r;
        }
        *ret = out.p ? out.p : malloc(1);
        *ret_len = out.len;
        return *ret ? 0 : -ENOMEM;
}

static int remote_bundle_put(VcBackend *b, const uint8_t *blob, size_t len)
{
        struct iovec iov = { (void *)blob, len };
        Buf out = { .max = 4096 };
        Http x = { .method = "PUT", .path = "/v1/bundle", .ctype = "application/octet-stream", .iov = &iov,
                   .niov = 1, .out = &out, .retry = true };
        int r = http(R(b), &x, NULL);
        free(out.p);
        return r;
}

/* ---- opening ---------------------------------------------------------------------------- */

static void remote_free(VcBackend *b)
{
        Remote *rm = R(b);
        for (unsigned i = 0; i < rm->nidle; i++)
                conn_drop(&rm->idle[i]);
        vc_wipe(rm->auth, sizeof rm->auth);
        pthread_mutex_destroy(&rm->lock);
        free(rm);
}

static const VcBackendOps remote_ops = {
        .kind = "remote",
        .free = remote_free,
        .missing = remote_missing,
        .put = remote_put,
        .get = remote_get,
        .flush = remote_flush,
        .parcels = remote_parcels,
        .parcel = remote_parcel,
        .versions = remote_versions,
        .version = remote_version,
        .create = remote_create,
        .commit = remote_commit,
        .prune = remote_prune,
        .lease_acquire = remote_lease_acquire,
        .lease_release = remote_lease_release,
        .lease_break = remote_lease_break,
        .lease_get = remote_lease_get,
        .stat = remote_stat,
        .verify = remote_verify,
        .gc = remote_gc,
        .bundle_get = remote_bundle_get,
        .bundle_put = remote_bundle_put,
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
        curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

/* GET /v1/store: the store's uuid and the server's limits. */
static int hello(Remote *rm)
{
        json_t *j;
        int r = http_json(rm, "GET", "/v1/store", NULL, true, false, &j);
        if (r < 0)
                return r;
        if (jint(j, "protocol") != VC_WIRE_PROTOCOL)
                r = vc_errf(-EPROTO, "the server at %s speaks protocol %lld; this vmcas speaks %d", rm->url,
                            (long long)jint(j, "protocol"), VC_WIRE_PROTOCOL);
        if (r >= 0)
                r = jhex(j, "uuid", rm->base.uuid, 16, NULL);
        json_t *lim = json_object_get(j, "limits");
        int64_t tags = jint(lim, "tags"), put = jint(lim, "put_bytes"), commit = jint(lim, "commit_bytes");
        rm->tags_max = tags > 0 ? VC_MIN((size_t)tags, (size_t)TAGS_PER_REQUEST) : 4096;
        rm->put_max = put > 0 ? VC_MIN((size_t)put, (size_t)PUT_PER_REQUEST) : (1u << 20);
        rm->commit_max = commit > 0 ? (size_t)commit : (1u << 20);
        rm->oracle = !json_is_false(json_object_get(j, "existence_oracle"));
        json_decref(j);
        return r;
}

int vc_backend_remote_open(const char *url, const VcBackendOpts *o, VcBackend **ret)
{
        pthread_once(&curl_once, curl_init);
        if (curl_init_rc != CURLE_OK)
                return vc_errf(-EIO, "libcurl cannot start: %s", curl_easy_strerror(curl_init_rc));
        const char *tok = o && o->token ? o->token : getenv("VMCAS_TOKEN");
        if (!tok || !*tok)
                return vc_errf(-EACCES, "no token for %s: set VMCAS_TOKEN (an administrator makes one with 'vmcas "
                               "user add')", url);
        if (strlen(tok) > 80 || strpbrk(tok, " \t\r\n"))
                return vc_errf(-EINVAL, "VMCAS_TOKEN is not a token");
        size_t ul = strlen(url);
        while (ul && url[ul - 1] == '/')
                ul--;
        Remote *rm = calloc(1, sizeof *rm);
        if (!rm)
                return -ENOMEM;
        if (ul >= sizeof rm->url) {
                free(rm);
                return vc_errf(-ENAMETOOLONG, "the URL '%s' is too long", url);
        }
        memcpy(rm->url, url, ul);
        rm->base.ops = &remote_ops;
        snprintf(rm->base.where, sizeof rm->base.where, "%s", rm->url);
        snprintf(rm->auth, sizeof rm->auth, "Authorization: Bearer %s", tok);
        const char *ca = getenv("VMCAS_CA");
        if (ca && *ca)
                snprintf(rm->ca, sizeof rm->ca, "%s", ca);
        pthread_mutex_init(&rm->lock, NULL);
        int r = hello(rm);
        if (r < 0) {
                remote_free(&rm->base);
                return r;
        }
        /* opening is not traffic of the caller's operation */
        memset(&rm->base.traffic, 0, sizeof rm->base.traffic);
        *ret = &rm->base;
        return 0;
}
