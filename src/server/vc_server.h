/* vc_server — `vmcas serve`: the store interface (src/backend/vc_backend.h)
 * over HTTP, for the remote back end (src/remote/vc_remote.c). The protocol
 * is docs/protocol.md; running it, users and TLS are docs/server.md.
 *
 *   vc_server.c         the protocol: routes, users and ownership, request
 *                       bodies parsed as they arrive, replies; every op
 *                       runs on a local back end opened with verify_puts
 *   vc_server_oracle.c  --no-existence-oracle: what a parcel may know of
 *                       a shared pool
 *   vc_server_mhd.c     the only file that knows libmicrohttpd: daemon,
 *                       TLS, limits, signals
 *   vc_users.c          the users file and tokens
 *
 * What the server guarantees: a request whose token is missing or unknown
 * gets 401 and touches nothing; a user sees, leases, reads and writes only
 * parcels they own (another user's parcel is "no parcel", 404); chunk calls
 * reach only the domains of the parcel they name; every chunk put is
 * re-hashed and a chunk whose bytes do not hash to its tag is refused;
 * every request body has a size limit and is parsed as it arrives, so a
 * request costs bounded memory; a commit is one LMDB transaction, so a
 * server killed at any moment has committed a version wholly or not at all.
 */
#ifndef VC_SERVER_H
#define VC_SERVER_H

#include <stdbool.h>
#include <stdint.h>

/* Connection threads by default: a get's thread waits for the packs it
 * reads (direct I/O from disk), so more than the cores keep them busy. */
#define VC_SERVER_THREADS 8

typedef struct VcServerOpts {
        const char *store;           /* the store directory */
        const char *listen;          /* "HOST:PORT" (PORT 0: any free port); NULL: 127.0.0.1:8470 */
        const char *tls_cert;        /* PEM files: both or neither */
        const char *tls_key;
        const char *users;           /* users file; NULL: STORE/users */
        bool no_existence_oracle;    /* answer `missing` of shared pools from the parcel's own history */
        unsigned threads;            /* connection threads; 0: VC_SERVER_THREADS */
        unsigned max_connections;    /* 0: 256 */
        unsigned timeout;            /* seconds a connection may be idle; 0: 30 */
} VcServerOpts;

/* Runs the server until SIGTERM or SIGINT. Prints one line
 * "vmcas serve: listening on http://HOST:PORT (store STORE)" to stderr
 * when it accepts connections (with the real port if PORT was 0). On a
 * signal it stops accepting, lets requests in progress finish (at most
 * 30 s), flushes the store and returns 0. -errno (with a message) if it
 * cannot start. Blocks SIGTERM, SIGINT and SIGPIPE in the calling thread. */
int vc_server_run(const VcServerOpts *o);

#endif
