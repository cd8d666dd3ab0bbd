/* vc_users — the users of a `vmcas serve` and their tokens.
 *
 * A token is 32 random bytes, given to the user once as 64 hex digits
 * (`vmcas user add`). The server keeps only SHA-256 of the token's bytes,
 * in a users file (default STORE/users, mode 0600, rewritten atomically):
 *
 *   vmcas-users 1
 *   NAME ROLE HASH          one line per user: ROLE is "user" or "admin",
 *                           HASH the 64 hex digits of SHA-256(token)
 *
 * Someone who reads the file learns no token. Changes are serialised by
 * flock() on FILE.lock, so two `user add` never lose each other's line.
 */
#ifndef VC_USERS_H
#define VC_USERS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "repo/vc_repo.h"

#define VC_TOKEN_LEN 32
#define VC_TOKEN_HEX (2 * VC_TOKEN_LEN)

typedef struct VcUser {
        char name[VC_USER_MAX + 1];
        bool admin;
        uint8_t hash[32];            /* SHA-256 of the token's bytes */
} VcUser;

typedef struct VcUsers {
        VcUser *v;
        size_t n;
} VcUsers;

/* STORE/users. */
int vc_users_default_path(const char *store, char *buf, size_t len);

/* Reads the users file. -ENOENT (with a message saying how to add a user)
 * if it does not exist; -EBADMSG naming the line if it is malformed;
 * -EPERM if others may read or write it. */
int vc_users_load(const char *path, VcUsers *ret);
void vc_users_clear(VcUsers *u);       /* NULL ok */

/* Adds user name with a fresh token, written to token_hex (64 hex digits
 * and a NUL). -EEXIST if name is taken. Creates the file if absent. */
int vc_users_add(const char *path, const char *name, bool admin, char token_hex[VC_TOKEN_HEX + 1]);
/* -ENOENT if there is no such user. */
int vc_users_remove(const char *path, const char *name);

/* The user whose token is token_hex (constant time in the token), or NULL
 * if none (also for a malformed token). Costs one SHA-256 and a compare
 * per user. */
const VcUser *vc_users_check(const VcUsers *u, const char *token_hex);
const VcUser *vc_users_find(const VcUsers *u, const char *name);

#endif
