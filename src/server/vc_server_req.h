/* The request and server state shared by vc_server.c (routes, tokens,
 * bodies, errors) and vc_server_ops.c (one handler per route). */
#ifndef VC_SERVER_REQ_H
#define VC_SERVER_REQ_H

#include <jansson.h>
#include <pthread.h>
#include <sys/types.h>

#include "server/vc_server_int.h"

struct VcServer {
        char store[4096], users_path[4096], bundles[4096];
        bool no_oracle;
        VcBackend *b;                    /* the local back end, verify_puts */
        VcOracle *oracle;                /* with --no-existence-oracle */
        pthread_mutex_t users_lock;      /* users and the file's identity */
        VcUsers users;
        struct timespec users_mtime;
        ino_t users_ino;
        off_t users_size;
        double users_checked;
        pthread_mutex_t create_lock;     /* parcel creation checks then creates */
        /* upload buffers kept for the next upload: a fresh 4 MiB one was
         * faulted in page by page at every request, a twelfth of the
         * server's CPU in a checkin */
        pthread_mutex_t bufs_lock;
        uint8_t *bufs[VC_SRV_PUT_BUFS];
        size_t nbufs;
};

typedef enum {
        R_NONE = 0,
        R_STORE, R_MISSING, R_PUT, R_FLUSH, R_GET,
        R_PARCELS, R_PARCEL, R_CREATE, R_VERSIONS, R_VERSION, R_COMMIT, R_PRUNE,
        R_LEASE_ACQUIRE, R_LEASE_RELEASE, R_LEASE_BREAK, R_LEASE_GET,
        R_STAT, R_VERIFY, R_GC, R_BUNDLE_GET, R_BUNDLE_PUT,
} VcRoute;

typedef enum { BODY_NONE, BODY_JSON, BODY_BINARY, BODY_PUT } VcBodyKind;

/* The streaming parse of a chunk upload (POST /v1/chunks/put). */
typedef struct VcPutParse {
        uint8_t head[VC_WIRE_HEAD_MAX];
        size_t head_len;                 /* bytes of head seen; done when n is known */
        bool head_done;
        uint32_t n, got;                 /* records announced, records complete */
        uint8_t rec[VC_WIRE_REC_HDR];    /* the current record's header */
        size_t rec_len;                  /* of it seen */
        uint32_t data_len, data_got;     /* the current record's data */
        /* a batch: data of items back to back in buf */
        uint8_t *buf;
        size_t used;
        VcPutItem *items;
        size_t nitems, cap_items;
        size_t item_off[1024];
} VcPutParse;

struct VcReq {
        VcServer *s;
        VcRoute route;
        VcBodyKind body_kind;
        size_t limit;                    /* body bytes accepted */
        VcUser user;
        char name[VC_NAME_MAX + 1];      /* the parcel of /v1/parcels/NAME... */
        uint32_t version;                /* of .../versions/N */
        /* a body kept whole */
        uint8_t *buf;
        size_t len, cap;
        uint64_t discarded;
        /* a chunk upload, parsed as it arrives */
        VcPutParse *put;
        char parcel[VC_NAME_MAX + 1], domain[VC_DOMAIN_MAX];
        bool shared;                     /* domain is a shared pool and the oracle is off */
        /* the reply, once decided */
        bool replied;
        VcResp resp;
};

/* Replies. reply_err takes the message recorded with vc_errf and clears it. */
void vc_srv_reply_err(VcReq *q, int err);
void vc_srv_reply_json(VcReq *q, unsigned status, json_t *j);   /* takes j */
void vc_srv_reply_bytes(VcReq *q, const char *ctype, uint8_t *body, size_t len);  /* takes body */

/* -ENOENT "no parcel 'x' on this server" unless q's user may use parcel
 * name (owner or admin); fills *pi. The same message for a parcel that
 * does not exist and one of another user. */
int vc_srv_parcel(VcReq *q, const char *name, VcParcelInfo *pi);
/* Checks that domain is one of the parcel's (its node or data domain);
 * *shared: domain is a shared pool and the oracle is off. */
int vc_srv_domain(VcReq *q, const VcParcelInfo *pi, const char *domain, bool *shared);
/* Whether user name exists (for the owner of a new parcel). */
bool vc_srv_user_exists(VcServer *s, const char *name);

/* Handlers (vc_server_ops.c): each runs one route on q's body and replies. */
void vc_srv_op(VcReq *q);
/* The chunk upload: a batch is complete (vc_server.c calls it while
 * parsing; the last call with final). */
int vc_srv_put_batch(VcReq *q);

#endif
