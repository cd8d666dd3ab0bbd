/* The server's HTTP side: the only file that knows libmicrohttpd.
 *
 * A pool of connection threads, each polling its connections (a slow
 * client costs a socket, never a thread). Bodies are handed to the
 * protocol as they arrive (vc_req_body); a request found wrong in its
 * headers (token, route, size, type) is answered at once and its body is
 * not read. Long ops (verify, gc) run in a thread of their own while
 * their connection is suspended, so they hold up no other client.
 *
 * Shutdown (SIGTERM, SIGINT): stop accepting, wait for requests in
 * progress (at most DRAIN_SECONDS; a verify or gc until it ends), close
 * the rest, flush the store.
 *
 * Under systemd: a listening socket handed over by socket activation
 * ($LISTEN_FDS) is served instead of --listen; READY=1 is sent to
 * $NOTIFY_SOCKET once the daemon accepts connections, STOPPING=1 at
 * shutdown, RELOADING=1 then READY=1 around a SIGHUP, which reads the
 * users file again at once. */
#include "server/vc_server_int.h"
#include "core/vc_util.h"

#include <errno.h>
#include <microhttpd.h>
#include <netdb.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <systemd/sd-daemon.h>
#include <time.h>
#include <unistd.h>

#define DRAIN_SECONDS 30
#define READ_BLOCK (256u << 10)

typedef struct Glue {
        VcServer *s;
        unsigned active;                 /* requests begun and not completed (atomic) */
        unsigned slow;                   /* of them, verify or gc running in their thread */
} Glue;

/* One request as the glue holds it. */
typedef struct Conn {
        Glue *g;
        VcReq *q;
        struct MHD_Connection *c;
        int async;                       /* 0 no, 1 running, 2 done */
        VcResp resp;
} Conn;

typedef struct Stream {
        ssize_t (*read)(void *ctx, uint8_t *buf, size_t max);
        void (*free)(void *ctx);
        void *ctx;
} Stream;

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
        Stream *st = cls;
        ssize_t n = st->read(st->ctx, (uint8_t *)buf, max);
        return n > 0 ? n : n == 0 ? MHD_CONTENT_READER_END_OF_STREAM : MHD_CONTENT_READER_END_WITH_ERROR;
}

static void stream_free(void *cls)
{
        Stream *st = cls;
        if (st->free)
                st->free(st->ctx);
        free(st);
}

/* Queues r (taking what it owns). */
static enum MHD_Result queue(struct MHD_Connection *c, VcResp *r)
{
        struct MHD_Response *resp = NULL;
        if (r->read) {
                Stream *st = malloc(sizeof *st);
                if (st) {
                        *st = (Stream){ r->read, r->free, r->ctx };
                        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, READ_BLOCK, stream_read, st,
                                                                 stream_free);
                        if (!resp)
                                stream_free(st);
                } else if (r->free)
                        r->free(r->ctx);
                free(r->body);
        } else if (r->body) {
                resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
                if (!resp)
                        free(r->body);
        } else
                resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
        if (!resp)
                return MHD_NO;
        if (r->ctype)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->ctype);
        if (r->www_auth)
                MHD_add_response_header(resp, MHD_HTTP_HEADER_WWW_AUTHENTICATE, "Bearer realm=\"vmcas\"");
        enum MHD_Result ok = MHD_queue_response(c, r->status, resp);
        MHD_destroy_response(resp);
        return ok;
}

static int64_t content_length(struct MHD_Connection *c)
{
        const char *te = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_TRANSFER_ENCODING);
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (te && strcasecmp(te, "identity") != 0)
                return -1;
        if (!cl)
                return 0;
        char *end;
        long long v = strtoll(cl, &end, 10);
        return *end || v < 0 ? -1 : v;
}

static void *slow_op(void *arg)
{
        Conn *k = arg;
        Glue *g = k->g;                  /* k may be freed once resumed */
        vc_req_finish(k->q, &k->resp);
        __atomic_store_n(&k->async, 2, __ATOMIC_RELEASE);
        MHD_resume_connection(k->c);
        __atomic_fetch_sub(&g->slow, 1, __ATOMIC_RELAXED);
        return NULL;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *c, const char *url, const char *method,
                                 const char *version, const char *upload_data, size_t *upload_data_size,
                                 void **con_cls)
{
        Glue *g = cls;
        Conn *k = *con_cls;
        if (!k) {
                VcReqHead h = {
                        .method = method,
                        .path = url,
                        .content_type = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE),
                        .authorization = MHD_lookup_connection_value(c, MHD_HEADER_KIND, MHD_HTTP_HEADER_AUTHORIZATION),
                        .content_length = content_length(c),
                };
                if (!(k = calloc(1, sizeof *k)))
                        return MHD_NO;
                if (!(k->q = vc_req_begin(g->s, &h))) {
                        free(k);
                        return MHD_NO;
                }
                k->g = g;
                k->c = c;
                *con_cls = k;
                __atomic_fetch_add(&g->active, 1, __ATOMIC_RELAXED);
                VcResp r;
                /* decided by the headers alone: answer now, read no body */
                return vc_req_reply(k->q, &r) ? queue(c, &r) : MHD_YES;
        }
        if (*upload_data_size) {
                int r = vc_req_body(k->q, (const uint8_t *)upload_data, *upload_data_size);
                *upload_data_size = 0;
                return r < 0 ? MHD_NO : MHD_YES;
        }
        int a = __atomic_load_n(&k->async, __ATOMIC_ACQUIRE);
        if (a == 2) {
                VcResp r = k->resp;
                memset(&k->resp, 0, sizeof k->resp);
                return queue(c, &r);
        }
        if (a == 1)
                return MHD_YES;
        if (vc_req_slow(k->q)) {
                pthread_t t;
                k->async = 1;
                __atomic_fetch_add(&g->slow, 1, __ATOMIC_RELAXED);
                MHD_suspend_connection(c);
                if (pthread_create(&t, NULL, slow_op, k) == 0) {
                        pthread_detach(t);
                        return MHD_YES;
                }
                MHD_resume_connection(c);
                __atomic_fetch_sub(&g->slow, 1, __ATOMIC_RELAXED);
                k->async = 0;
        }
        VcResp r;
        vc_req_finish(k->q, &r);
        return queue(c, &r);
}

static void completed_cb(void *cls, struct MHD_Connection *c, void **con_cls, enum MHD_RequestTerminationCode why)
{
        Glue *g = cls;
        Conn *k = *con_cls;
        if (!k)
                return;
        vc_req_free(k->q);
        if (k->resp.free)
                k->resp.free(k->resp.ctx);
        free(k->resp.body);
        free(k);
        *con_cls = NULL;
        __atomic_fetch_sub(&g->active, 1, __ATOMIC_RELAXED);
}

static void mhd_log(void *cls, const char *fmt, va_list ap)
{
        fprintf(stderr, "vmcas serve: ");
        vfprintf(stderr, fmt, ap);
        size_t n = strlen(fmt);
        if (n == 0 || fmt[n - 1] != '\n')
                fputc('\n', stderr);
}

/* "HOST:PORT" or "[V6]:PORT" to an address. */
static int parse_listen(const char *s, struct sockaddr_storage *ss, socklen_t *sl, char *host, size_t hl,
                        bool *v6)
{
        const char *colon = strrchr(s, ':');
        if (!colon || colon == s || !colon[1])
                return vc_errf(-EINVAL, "--listen '%s': expected HOST:PORT, such as 127.0.0.1:8470", s);
        size_t n = (size_t)(colon - s);
        if (s[0] == '[' && n >= 2 && s[n - 1] == ']') {
                s++;
                n -= 2;
        }
        if (n >= hl)
                return vc_errf(-EINVAL, "--listen '%s': host name too long", s);
        memcpy(host, s, n);
        host[n] = 0;
        uint64_t port;
        if (vc_parse_u64(colon + 1, "port", &port) < 0 || port > 65535)
                return vc_errf_replace(-EINVAL, "--listen '%s': invalid port '%s'", s, colon + 1);
        struct addrinfo hints = { .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                                  .ai_flags = AI_NUMERICSERV | AI_PASSIVE }, *ai;
        int e = getaddrinfo(host, colon + 1, &hints, &ai);
        if (e)
                return vc_errf(-EINVAL, "--listen '%s': %s", s, gai_strerror(e));
        memcpy(ss, ai->ai_addr, ai->ai_addrlen);
        *sl = ai->ai_addrlen;
        *v6 = ai->ai_family == AF_INET6;
        freeaddrinfo(ai);
        return 0;
}

/* A PEM file, NUL-terminated, for MHD's TLS. */
static int read_pem(const char *path, const char *what, char **ret)
{
        uint8_t *b = NULL;
        size_t n = 0;
        int r = vc_read_file(path, &b, &n, 1u << 20);
        if (r < 0)
                return vc_errf(r, "cannot read the TLS %s %s: %s", what, path, strerror(-r));
        char *s = malloc(n + 1);
        if (!s) {
                vc_wipe(b, n);
                free(b);
                return -ENOMEM;
        }
        memcpy(s, b, n);
        s[n] = 0;
        vc_wipe(b, n);
        free(b);
        *ret = s;
        return 0;
}

static void free_pem(char *s)
{
        if (s) {
                vc_wipe(s, strlen(s));
                free(s);
        }
}

typedef struct Daemon {
        struct MHD_Daemon *d;
        char *cert, *key;
        char host[256];
        unsigned port;
        bool tls;
} Daemon;

/* A socket from systemd's socket activation: its fd, or -1 if none. */
static int activated_socket(char *host, size_t len, bool *v6)
{
        int n = sd_listen_fds(1);
        if (n <= 0)
                return -1;
        int fd = SD_LISTEN_FDS_START;
        if (n > 1)
                fprintf(stderr, "vmcas serve: %d sockets passed by systemd; serving the first\n", n);
        if (sd_is_socket(fd, AF_UNSPEC, SOCK_STREAM, 1) <= 0)
                return vc_errf(-ENOTSOCK, "the socket passed by systemd (fd %d) is not a listening stream socket", fd);
        struct sockaddr_storage ss;
        socklen_t sl = sizeof ss;
        snprintf(host, len, "socket");
        if (getsockname(fd, (struct sockaddr *)&ss, &sl) == 0) {
                if (ss.ss_family == AF_INET)
                        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, host, (socklen_t)len);
                else if (ss.ss_family == AF_INET6) {
                        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, host, (socklen_t)len);
                        *v6 = true;
                }
        }
        return fd;
}

static int start(const VcServerOpts *o, Glue *g, Daemon *dm)
{
        struct sockaddr_storage ss = { 0 };
        socklen_t sl;
        bool v6 = false;
        int r, lfd = activated_socket(dm->host, sizeof dm->host, &v6);
        if (lfd < -1)
                return lfd;
        if (lfd < 0 &&
            (r = parse_listen(o->listen ? o->listen : "127.0.0.1:8470", &ss, &sl, dm->host, sizeof dm->host, &v6)) < 0)
                return r;
        if (!o->tls_cert != !o->tls_key)
                return vc_errf(-EINVAL, "give both --tls-cert and --tls-key, or neither");
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
        if (v6)
                flags |= MHD_USE_IPv6;
        if (o->tls_cert) {
                if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
                        return vc_errf(-ENOTSUP, "this libmicrohttpd was built without TLS");
                if ((r = read_pem(o->tls_cert, "certificate", &dm->cert)) < 0 ||
                    (r = read_pem(o->tls_key, "key", &dm->key)) < 0)
                        return r;
                flags |= MHD_USE_TLS;
                dm->tls = true;
        }
        struct MHD_OptionItem tls[] = {
                { MHD_OPTION_HTTPS_MEM_CERT, 0, dm->cert },
                { MHD_OPTION_HTTPS_MEM_KEY, 0, dm->key },
                { MHD_OPTION_END, 0, NULL },
        };
        /* where to listen: systemd's socket, or the address of --listen */
        struct MHD_OptionItem where[] = {
                { MHD_OPTION_LISTEN_SOCKET, lfd, NULL },
                { MHD_OPTION_END, 0, NULL },
                { MHD_OPTION_SOCK_ADDR, 0, &ss },
                { MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, NULL },
                { MHD_OPTION_END, 0, NULL },
        };
        dm->d = MHD_start_daemon(flags, 0, NULL, NULL, access_cb, g,
                                 MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL,
                                 MHD_OPTION_ARRAY, lfd >= 0 ? where : where + 2,
                                 MHD_OPTION_THREAD_POOL_SIZE, (unsigned)(o->threads ? o->threads : VC_SERVER_THREADS),
                                 MHD_OPTION_CONNECTION_LIMIT, (unsigned)(o->max_connections ? o->max_connections : 256),
                                 MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)(o->timeout ? o->timeout : 30),
                                 MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256u << 10),
                                 MHD_OPTION_NOTIFY_COMPLETED, completed_cb, g,
                                 MHD_OPTION_ARRAY, dm->tls ? tls : tls + 2,
                                 MHD_OPTION_END);
        if (!dm->d && lfd >= 0)
                return vc_errf(-EINVAL, "cannot serve on the socket passed by systemd");
        if (!dm->d)
                return vc_errf(-EADDRINUSE, "cannot listen on %s (in use, or not an address of this host?)",
                               o->listen ? o->listen : "127.0.0.1:8470");
        const union MHD_DaemonInfo *info = MHD_get_daemon_info(dm->d, MHD_DAEMON_INFO_BIND_PORT);
        dm->port = info ? info->port : 0;
        (void)sl;
        return 0;
}

int vc_server_run(const VcServerOpts *o)
{
        sigset_t set;
        sigemptyset(&set);
        sigaddset(&set, SIGTERM);
        sigaddset(&set, SIGINT);
        sigaddset(&set, SIGHUP);
        sigaddset(&set, SIGPIPE);
        /* every thread made from here on inherits the mask: only sigwait sees them */
        pthread_sigmask(SIG_BLOCK, &set, NULL);
        Glue g = { 0 };
        Daemon dm = { 0 };
        int r = vc_server_new(o, &g.s);
        if (r >= 0 && (r = start(o, &g, &dm)) < 0) {
                vc_server_free(g.s);
                g.s = NULL;
        }
        if (r < 0) {
                free_pem(dm.cert);
                free_pem(dm.key);
                return r;
        }
        bool brackets = strchr(dm.host, ':') != NULL;
        fprintf(stderr, "vmcas serve: listening on %s://%s%s%s:%u (store %s)\n", dm.tls ? "https" : "http",
                brackets ? "[" : "", dm.host, brackets ? "]" : "", dm.port, vc_server_store(g.s));
        fflush(stderr);
        sd_notifyf(0, "READY=1\nSTATUS=listening on %s://%s%s%s:%u\nMAINPID=%lu", dm.tls ? "https" : "http",
                   brackets ? "[" : "", dm.host, brackets ? "]" : "", dm.port, (unsigned long)getpid());
        int sig = 0;
        sigdelset(&set, SIGPIPE);
        for (;;) {
                if (sigwait(&set, &sig) != 0)
                        continue;
                if (sig != SIGHUP)
                        break;
                sd_notify(0, "RELOADING=1");
                size_t n = 0;
                if ((r = vc_server_users_reload(g.s, &n)) < 0) {
                        fprintf(stderr, "vmcas serve: SIGHUP: the users file could not be read, the users known "
                                "before stay: %s\n", vc_errmsg(r));
                        vc_errclear();
                } else
                        fprintf(stderr, "vmcas serve: SIGHUP: read the users file again: %zu users\n", n);
                fflush(stderr);
                sd_notify(0, "READY=1");
        }
        sd_notify(0, "STOPPING=1");
        fprintf(stderr, "vmcas serve: %s: no new connections; finishing requests in progress\n", strsignal(sig));
        MHD_socket ls = MHD_quiesce_daemon(dm.d);
        if (ls != MHD_INVALID_SOCKET)
                close(ls);
        double t0 = vc_mono();
        /* a verify or gc is waited for however long it takes: its connection
         * is suspended, and the daemon must not stop under it */
        while (__atomic_load_n(&g.active, __ATOMIC_RELAXED) &&
               (vc_mono() - t0 < DRAIN_SECONDS || __atomic_load_n(&g.slow, __ATOMIC_RELAXED))) {
                struct timespec ts = { 0, 20 * 1000 * 1000 };
                nanosleep(&ts, NULL);
        }
        unsigned left = __atomic_load_n(&g.active, __ATOMIC_RELAXED);
        MHD_stop_daemon(dm.d);
        free_pem(dm.cert);
        free_pem(dm.key);
        r = vc_server_flush(g.s);
        vc_server_free(g.s);
        if (left)
                fprintf(stderr, "vmcas serve: %u requests were cut off after %d s\n", left, DRAIN_SECONDS);
        if (r < 0)
                return r;
        fprintf(stderr, "vmcas serve: stopped\n");
        return 0;
}
