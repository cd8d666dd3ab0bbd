/* Between the protocol (vc_server.c) and the HTTP library's glue
 * (vc_server_mhd.c), and the existence oracle (vc_server_oracle.c).
 *
 * A request goes through:
 *   vc_req_begin    once the headers are in: route, token, limits. It may
 *                   already hold the reply (an error, or no body needed);
 *                   then the body is not read.
 *   vc_req_body     for each piece of the body as it arrives: parsed at
 *                   once (chunk uploads) or kept up to the route's limit.
 *   vc_req_finish   when the body is complete: runs the op, gives the reply.
 *   vc_req_free     always, also for a request cut off midway.
 */
#ifndef VC_SERVER_INT_H
#define VC_SERVER_INT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "backend/vc_backend.h"
#include "server/vc_server.h"
#include "remote/vc_wire.h"
#include "server/vc_users.h"

/* Limits of request bodies: remote/vc_wire.h. */
#define VC_SRV_PUT_BATCH (4u << 20)         /* chunks are stored in batches of this many bytes */
#define VC_SRV_PUT_BUFS 8                   /* upload buffers kept between requests, at most */

typedef struct VcServer VcServer;
typedef struct VcReq VcReq;

/* A reply: a whole body in memory, or a stream pulled by read (which
 * returns bytes written into buf, 0 at the end, -1 to cut the reply). */
typedef struct VcResp {
        unsigned status;
        const char *ctype;
        uint8_t *body;                      /* malloc'ed; the glue frees it */
        size_t len;
        ssize_t (*read)(void *ctx, uint8_t *buf, size_t max);
        void (*free)(void *ctx);
        void *ctx;
        bool www_auth;                      /* add WWW-Authenticate: Bearer */
} VcResp;

typedef struct VcReqHead {
        const char *method, *path;          /* path: percent-decoded */
        const char *content_type;           /* NULL if none */
        const char *authorization;          /* NULL if none */
        int64_t content_length;             /* -1 if not given (chunked) */
} VcReqHead;

int vc_server_new(const VcServerOpts *o, VcServer **ret);
void vc_server_free(VcServer *s);
/* Flushes every chunk put (at shutdown). */
int vc_server_flush(VcServer *s);
/* Reads the users file again now (SIGHUP); *n: how many users it has.
 * On failure the users known before stay. */
int vc_server_users_reload(VcServer *s, size_t *n);
/* The store's path, for the "listening" line. */
const char *vc_server_store(const VcServer *s);

/* Never fails: a request that cannot be served carries its error reply
 * (vc_req_reply). NULL only if out of memory. */
VcReq *vc_req_begin(VcServer *s, const VcReqHead *h);
/* The reply already decided (an error found in the headers or the body),
 * or false. */
bool vc_req_reply(VcReq *q, VcResp *ret);
/* Takes a piece of the body. Returns 0, or -1 if the connection should be
 * dropped (a client that keeps sending far past a limit). After an error
 * the rest of the body is read and discarded. */
int vc_req_body(VcReq *q, const uint8_t *data, size_t len);
/* True if the op may take long (verify, gc): the glue runs it apart from
 * the connection threads. */
bool vc_req_slow(const VcReq *q);
/* Runs the op and fills *ret. */
void vc_req_finish(VcReq *q, VcResp *ret);
void vc_req_free(VcReq *q);                /* NULL ok */

/* ---- the existence oracle (vc_server_oracle.c) ------------------------------ */

/* What each parcel may learn about the shared pools when the server runs
 * with --no-existence-oracle: the data chunks its versions reference
 * (walked once per version with vc_repo_walk, kept in memory) and those it
 * uploaded since the server started. At most VC_ORACLE_PARCELS parcels are
 * kept; the least recently used is dropped (its uploads are then asked for
 * again, which costs traffic, never correctness). */
#define VC_ORACLE_PARCELS 64
typedef struct VcOracle VcOracle;
int vc_oracle_new(VcBackend *local, VcOracle **ret);
void vc_oracle_free(VcOracle *o);          /* NULL ok */
/* known[i] = 1 if parcel may know of tags[i] in its data domain. */
int vc_oracle_known(VcOracle *o, const char *parcel, const uint8_t *tags, size_t n, uint8_t *known);
/* Records n tags (at tags + stride i) as uploaded by parcel. */
int vc_oracle_uploaded(VcOracle *o, const char *parcel, const uint8_t *tags, size_t stride, size_t n);
/* Drops what is kept of parcel (NULL: of every parcel), after a prune or gc. */
void vc_oracle_forget(VcOracle *o, const char *parcel);

#endif
