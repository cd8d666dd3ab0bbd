/* Distinct-chunk tables of the analysis; see chunktab.h for the layout. */
#include "analyze/chunktab.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define TAB_MIN_SLOTS 1024u
#define TAB_MAX_IDS   (UINT32_MAX - 1)

void vc_chunktab_done(VcChunkTab *t)
{
        if (!t)
                return;
        free(t->ents);
        free(t->slots);
        memset(t, 0, sizeof *t);
}

/* The key is (a prefix of) a cryptographic hash: its bytes are uniform, so
 * they serve as slot position and tag without mixing. */
static inline uint64_t key_pos(const uint8_t *key)
{
        uint64_t v;
        memcpy(&v, key, sizeof v);
        return v;
}

static inline uint64_t key_tag(const uint8_t *key)
{
        uint32_t v;
        memcpy(&v, key + 8, sizeof v);
        return (uint64_t)v << 32;
}

static int tab_grow_slots(VcChunkTab *t)
{
        uint64_t nslots = t->slots ? 2 * (t->mask + 1) : TAB_MIN_SLOTS;
        uint64_t *slots = calloc(nslots, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        uint64_t mask = nslots - 1;
        for (uint32_t id = 0; id < t->n; id++) {
                const uint8_t *key = t->ents[id].key;
                uint64_t pos = key_pos(key) & mask;
                while (slots[pos])
                        pos = (pos + 1) & mask;
                slots[pos] = key_tag(key) | (id + 1u);
        }
        free(t->slots);
        t->slots = slots;
        t->mask = mask;
        return 0;
}

int vc_chunktab_get(VcChunkTab *t, const uint8_t key[VC_CT_KEY_LEN], uint32_t len, uint32_t *id, bool *isnew)
{
        /* Keep the load at most 3/4: linear probing stays short, and the
         * 4-byte tag in the slot spares reading entries that do not match. */
        if (!t->slots || (uint64_t)(t->n + 1) * 4 > (t->mask + 1) * 3) {
                int r = tab_grow_slots(t);
                if (r < 0)
                        return r;
        }
        uint64_t tag = key_tag(key), pos = key_pos(key) & t->mask;
        for (;;) {
                uint64_t s = t->slots[pos];
                if (!s)
                        break;
                if ((s & 0xffffffff00000000ull) == tag) {
                        uint32_t i = (uint32_t)s - 1;
                        if (memcmp(t->ents[i].key, key, VC_CT_KEY_LEN) == 0) {
                                *id = i;
                                *isnew = false;
                                return 0;
                        }
                }
                pos = (pos + 1) & t->mask;
        }
        if (t->n >= TAB_MAX_IDS)
                return -E2BIG;
        if (t->n == t->cap) {
                uint32_t ncap = t->cap ? (t->cap > TAB_MAX_IDS / 2 ? TAB_MAX_IDS : 2 * t->cap) : 512;
                VcChunkEnt *e = realloc(t->ents, (size_t)ncap * sizeof *e);
                if (!e)
                        return -ENOMEM;
                t->ents = e;
                t->cap = ncap;
        }
        uint32_t i = t->n++;
        VcChunkEnt *e = &t->ents[i];
        memcpy(e->key, key, VC_CT_KEY_LEN);
        e->len = len;
        e->minday = UINT32_MAX;
        e->cost[0] = e->cost[1] = len;
        t->slots[pos] = tag | (i + 1u);
        *id = i;
        *isnew = true;
        return 0;
}

uint64_t vc_chunktab_bytes(const VcChunkTab *t)
{
        /* Entries past n are reserved address space that nothing touched
         * (large reallocs are mremap'ed), not memory: count the used ones. */
        return (uint64_t)t->n * sizeof *t->ents + (t->slots ? (t->mask + 1) * sizeof *t->slots : 0);
}

void vc_ipset_done(VcIpSet *s)
{
        if (!s)
                return;
        free(s->slots);
        memset(s, 0, sizeof *s);
}

/* Ids are dense small integers: Fibonacci hashing spreads them. */
static inline uint32_t ip_pos(uint32_t id, uint8_t bits)
{
        return (uint32_t)(((uint64_t)id * 0x9e3779b97f4a7c15ull) >> (64 - bits));
}

static int ipset_grow(VcIpSet *s)
{
        uint8_t bits = s->slots ? (uint8_t)(s->bits + 1) : 6; /* small: a trace may hold many parcels */
        if (bits > 32)
                return -E2BIG;
        uint64_t nslots = 1ull << bits;
        VcIpEnt *slots = calloc(nslots, sizeof *slots);
        if (!slots)
                return -ENOMEM;
        uint32_t mask = (uint32_t)(nslots - 1);
        for (uint64_t i = 0; s->slots && i < (1ull << s->bits); i++) {
                if (!s->slots[i].id1)
                        continue;
                uint32_t pos = ip_pos(s->slots[i].id1 - 1, bits);
                while (slots[pos].id1)
                        pos = (pos + 1) & mask;
                slots[pos] = s->slots[i];
        }
        free(s->slots);
        s->slots = slots;
        s->bits = bits;
        return 0;
}

VcIpEnt *vc_ipset_get(VcIpSet *s, uint32_t id, bool *inserted)
{
        if (!s->slots || (uint64_t)(s->n + 1) * 4 > (1ull << s->bits) * 3)
                if (ipset_grow(s) < 0)
                        return NULL;
        uint32_t mask = (uint32_t)((1ull << s->bits) - 1);
        uint32_t pos = ip_pos(id, s->bits);
        for (;;) {
                VcIpEnt *e = &s->slots[pos];
                if (e->id1 == id + 1) {
                        *inserted = false;
                        return e;
                }
                if (!e->id1) {
                        e->id1 = id + 1;
                        e->last[0] = e->last[1] = 0;
                        s->n++;
                        *inserted = true;
                        return e;
                }
                pos = (pos + 1) & mask;
        }
}

uint64_t vc_ipset_bytes(const VcIpSet *s)
{
        return s->slots ? (1ull << s->bits) * sizeof *s->slots : 0;
}
