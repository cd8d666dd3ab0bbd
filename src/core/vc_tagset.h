/* vc_tagset — a hash map from (domain, 32-byte tag or key) to a u64, for
 * the mark set of gc, the chunk lookups of checkin and the reverse map of
 * verify. Open addressing, linear probing; tags are already uniform, so
 * their first 8 bytes (mixed with the domain) are the hash. 48 bytes an
 * entry at most 50 % load. */
#ifndef VC_TAGSET_H
#define VC_TAGSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct VcTagSet VcTagSet;

int vc_tagset_new(VcTagSet **ret);
void vc_tagset_free(VcTagSet *t);      /* NULL ok */
/* 1 if added, 0 if present (value left unchanged), -ENOMEM. */
int vc_tagset_add(VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t val);
/* Sets the value of a present or new entry. */
int vc_tagset_set(VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t val);
bool vc_tagset_get(const VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t *val);
/* The value of an entry, added with value 0 if absent (*added tells); NULL
 * if out of memory. Valid until the next entry is added. One probe where
 * get-then-add takes two. */
uint64_t *vc_tagset_ref(VcTagSet *t, uint64_t domain, const uint8_t tag[32], bool *added);
size_t vc_tagset_count(const VcTagSet *t);
/* Calls fn for each entry; stops at a non-zero return, which it returns. */
int vc_tagset_each(const VcTagSet *t, int (*fn)(uint64_t domain, const uint8_t tag[32], uint64_t val, void *ctx),
                   void *ctx);

#endif
