#include "core/vc_tagset.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
        uint8_t tag[32];
        uint64_t domain;     /* stored +1 so that 0 marks an empty slot */
        uint64_t val;
} Slot;

struct VcTagSet {
        Slot *s;
        size_t cap, n;       /* cap is a power of two */
};

static uint64_t hash(uint64_t domain, const uint8_t *tag)
{
        uint64_t h;
        memcpy(&h, tag, 8);
        h ^= domain * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
        return h;
}

int vc_tagset_new(VcTagSet **ret)
{
        VcTagSet *t = calloc(1, sizeof *t);
        if (!t)
                return -ENOMEM;
        t->cap = 1024;
        t->s = calloc(t->cap, sizeof(Slot));
        if (!t->s) {
                free(t);
                return -ENOMEM;
        }
        *ret = t;
        return 0;
}

void vc_tagset_free(VcTagSet *t)
{
        if (!t)
                return;
        free(t->s);
        free(t);
}

static Slot *find(const VcTagSet *t, uint64_t domain, const uint8_t *tag)
{
        size_t m = t->cap - 1;
        for (size_t i = hash(domain, tag) & m;; i = (i + 1) & m) {
                Slot *x = &t->s[i];
                if (x->domain == 0 || (x->domain == domain + 1 && memcmp(x->tag, tag, 32) == 0))
                        return x;
        }
}

/* Writes a zero into every page of a fresh table. A large calloc is fresh
 * mapped memory: a probe that reads a page first maps the shared zero
 * page, and the insert that follows faults again to replace it, which in
 * a process with other threads costs a TLB flush on every core (in a
 * checkin of 1 GiB of new data the put threads spent a tenth of their
 * time there). One write fault per page instead. */
static void prefault(void *p, size_t n)
{
        for (size_t i = 0; i < n; i += 4096)
                ((volatile uint8_t *)p)[i] = 0;
}

static int grow(VcTagSet *t)
{
        VcTagSet n = { .cap = t->cap * 2 };
        n.s = calloc(n.cap, sizeof(Slot));
        if (!n.s)
                return -ENOMEM;
        prefault(n.s, n.cap * sizeof(Slot));
        for (size_t i = 0; i < t->cap; i++)
                if (t->s[i].domain)
                        *find(&n, t->s[i].domain - 1, t->s[i].tag) = t->s[i];
        free(t->s);
        t->s = n.s;
        t->cap = n.cap;
        return 0;
}

static int put(VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t val, bool replace)
{
        if ((t->n + 1) * 2 > t->cap) {
                int r = grow(t);
                if (r < 0)
                        return r;
        }
        Slot *x = find(t, domain, tag);
        if (x->domain) {
                if (replace)
                        x->val = val;
                return 0;
        }
        memcpy(x->tag, tag, 32);
        x->domain = domain + 1;
        x->val = val;
        t->n++;
        return 1;
}

int vc_tagset_add(VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t val)
{
        return put(t, domain, tag, val, false);
}

int vc_tagset_set(VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t val)
{
        int r = put(t, domain, tag, val, true);
        return r < 0 ? r : 0;
}

bool vc_tagset_get(const VcTagSet *t, uint64_t domain, const uint8_t tag[32], uint64_t *val)
{
        Slot *x = find(t, domain, tag);
        if (!x->domain)
                return false;
        if (val)
                *val = x->val;
        return true;
}

uint64_t *vc_tagset_ref(VcTagSet *t, uint64_t domain, const uint8_t tag[32], bool *added)
{
        if ((t->n + 1) * 2 > t->cap && grow(t) < 0)
                return NULL;
        Slot *x = find(t, domain, tag);
        *added = !x->domain;
        if (*added) {
                memcpy(x->tag, tag, 32);
                x->domain = domain + 1;
                x->val = 0;
                t->n++;
        }
        return &x->val;
}

size_t vc_tagset_count(const VcTagSet *t)
{
        return t->n;
}

int vc_tagset_each(const VcTagSet *t, int (*fn)(uint64_t, const uint8_t *, uint64_t, void *), void *ctx)
{
        for (size_t i = 0; i < t->cap; i++)
                if (t->s[i].domain) {
                        int r = fn(t->s[i].domain - 1, t->s[i].tag, t->s[i].val, ctx);
                        if (r)
                                return r;
                }
        return 0;
}
