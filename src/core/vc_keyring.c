#include "core/vc_keyring.h"
#include "core/vc_pool.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

unsigned vc_tree_height(uint64_t n)
{
        if (n == 0)
                return 0;
        unsigned h = 1;
        for (uint64_t cover = VC_FANOUT; cover < n; cover *= VC_FANOUT)
                h++;
        return h;
}

static void node_key(const uint8_t secret[VC_KEY_LEN], const uint8_t *hdr, const VcEntry *e, uint32_t count,
                     uint8_t key[VC_KEY_LEN])
{
        /* HMAC over header, tags, keys: fed as one buffer built by caller. */
        uint8_t buf[VC_NODE_MAX];
        memcpy(buf, hdr, VC_NODE_HDR);
        for (uint32_t i = 0; i < count; i++) {
                memcpy(buf + VC_NODE_HDR + 32 * i, e[i].tag, 32);
                memcpy(buf + VC_NODE_HDR + 32 * (count + i), e[i].key, 32);
        }
        vc_hmac256_label(secret, "node", buf, VC_NODE_HDR + 64 * (size_t)count, key);
        vc_wipe(buf, sizeof buf);
}

static int seal_node(const uint8_t secret[VC_KEY_LEN], unsigned level, const VcEntry *e, uint32_t count,
                     vc_node_put_fn put, void *ctx, VcEntry *out)
{
        uint8_t node[VC_NODE_MAX], keys[VC_FANOUT * 32];
        static const uint8_t iv[16];
        node[0] = 'V';
        node[1] = 'K';
        node[2] = 1;
        node[3] = (uint8_t)level;
        vc_put32(node + 4, count);
        node_key(secret, node, e, count, out->key);
        for (uint32_t i = 0; i < count; i++) {
                memcpy(node + VC_NODE_HDR + 32 * i, e[i].tag, 32);
                memcpy(keys + 32 * i, e[i].key, 32);
        }
        int r = vc_ctr(out->key, iv, keys, node + VC_NODE_HDR + 32 * count, 32 * (size_t)count);
        vc_wipe(keys, sizeof keys);
        if (r < 0)
                return r;
        size_t len = VC_NODE_HDR + 64 * (size_t)count;
        vc_sha256(node, len, out->tag);
        r = put(out->tag, node, len, ctx);
        return r < 0 ? r : 0;
}

int vc_tree_build(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *e, uint64_t n,
                  vc_node_put_fn put, void *ctx, VcEntry *root)
{
        return vc_tree_build_from(node_secret, e, n, NULL, 0, NULL, put, ctx, root);
}

int vc_tree_build_from(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *e, uint64_t n, const VcEntry *prev,
                       uint64_t prev_n, const VcTreeNodes *pn, vc_node_put_fn put, void *ctx, VcEntry *root)
{
        memset(root, 0, sizeof *root);
        if (n == 0)
                return 0;
        VcEntry *cur = NULL;
        const VcEntry *in = e;
        uint64_t cnt = n;
        unsigned level = 0;
        int r = 0;
        if (!prev || !pn)
                pn = NULL;
        do {
                uint64_t next = (cnt + VC_FANOUT - 1) / VC_FANOUT;
                VcEntry *out = calloc(next, sizeof *out);
                if (!out) {
                        r = -ENOMEM;
                        break;
                }
                /* the previous tree at this level: its children and its nodes */
                const VcEntry *pin = NULL, *pout = NULL;
                uint64_t pcnt = 0, pnext = 0;
                if (pn && level < pn->h && pn->lv[level]) {
                        pin = level ? pn->lv[level - 1] : prev;
                        pcnt = level ? pn->cnt[level - 1] : prev_n;
                        pout = pn->lv[level];
                        pnext = pn->cnt[level];
                        if (!pin)
                                pout = NULL;
                }
                for (uint64_t g = 0; g < next && r == 0; g++) {
                        uint32_t c = (uint32_t)VC_MIN((uint64_t)VC_FANOUT, cnt - g * VC_FANOUT);
                        const VcEntry *grp = in + g * VC_FANOUT;
                        /* (g < pnext: the previous level has a group g) */
                        if (pout && g < pnext && (uint32_t)VC_MIN((uint64_t)VC_FANOUT, pcnt - g * VC_FANOUT) == c &&
                            memcmp(grp, pin + g * VC_FANOUT, c * sizeof(VcEntry)) == 0) {
                                out[g] = pout[g];
                                continue;
                        }
                        bool zero = true;
                        for (uint32_t i = 0; i < c && zero; i++)
                                zero = vc_entry_is_zero(&grp[i]);
                        if (!zero)
                                r = seal_node(node_secret, level, grp, c, put, ctx, &out[g]);
                }
                free(cur);
                cur = out;
                in = out;
                cnt = next;
                level++;
        } while (r == 0 && cnt > 1);
        if (r == 0)
                *root = cur[0];
        if (cur)
                vc_wipe(cur, sizeof *cur);
        free(cur);
        return r;
}

int vc_node_parse(const uint8_t *sealed, size_t len, unsigned *level, uint32_t *count, const uint8_t **tags)
{
        if (len < VC_NODE_HDR || sealed[0] != 'V' || sealed[1] != 'K' || sealed[2] != 1)
                return vc_errf(-EBADMSG, "not a keyring node of a known format");
        uint32_t c = vc_get32(sealed + 4);
        if (c == 0 || c > VC_FANOUT || len != VC_NODE_HDR + 64 * (size_t)c)
                return vc_errf(-EBADMSG, "malformed keyring node");
        *level = sealed[3];
        *count = c;
        *tags = sealed + VC_NODE_HDR;
        return 0;
}

typedef struct {
        const uint8_t *secret;
        vc_node_get_fn get;
        void *ctx;
        uint8_t *buf;
        size_t cap;
        VcEntry *out;
} ReadCtx;

/* Opens the node of entry e, at level, covering span entries, from its
 * sealed bytes: checks tag, shape and key, and writes its children to ent
 * (*count of them). */
static int open_node(const uint8_t *secret, const VcEntry *e, unsigned level, uint64_t span, const uint8_t *sealed,
                     size_t len, VcEntry ent[VC_FANOUT], uint32_t *ret_count)
{
        char hex[65];
        vc_hex(e->tag, 32, hex);
        uint8_t h[32];
        vc_sha256(sealed, len, h);
        if (!vc_hash_eq(h, e->tag, 32))
                return vc_errf(-EBADMSG, "keyring node %s is damaged (its bytes do not match its tag)", hex);
        unsigned lv = 0;
        uint32_t count = 0;
        const uint8_t *tags = NULL;
        if (vc_node_parse(sealed, len, &lv, &count, &tags) < 0)
                return vc_errf_replace(-EBADMSG, "keyring node %s is malformed", hex);
        uint64_t child_span = 1;
        for (unsigned i = 0; i < level; i++)
                child_span *= VC_FANOUT;
        uint64_t want = (span + child_span - 1) / child_span;
        if (lv != level || count != want)
                return vc_errf(-EBADMSG, "keyring node %s has the wrong shape", hex);
        uint8_t keys[VC_FANOUT * 32];
        static const uint8_t iv[16];
        int r = vc_ctr(e->key, iv, tags + 32 * count, keys, 32 * (size_t)count);
        if (r < 0)
                return r;
        for (uint32_t i = 0; i < count; i++) {
                memcpy(ent[i].tag, tags + 32 * i, 32);
                memcpy(ent[i].key, keys + 32 * i, 32);
        }
        vc_wipe(keys, sizeof keys);
        uint8_t k[32];
        node_key(secret, sealed, ent, count, k);
        if (!vc_hash_eq(k, e->key, 32)) {
                vc_wipe(ent, sizeof(VcEntry) * VC_FANOUT);
                return vc_errf(-EKEYREJECTED, "keyring node %s does not open with this parcel's key (wrong key?)", hex);
        }
        *ret_count = count;
        return 0;
}

static uint64_t span_of(unsigned level)
{
        uint64_t s = 1;
        for (unsigned i = 0; i < level; i++)
                s *= VC_FANOUT;
        return s;
}

/* Reads the subtree of entry e at `level` covering entries [first, first+span). */
static int read_sub(ReadCtx *rc, const VcEntry *e, unsigned level, uint64_t first, uint64_t span)
{
        if (vc_entry_is_zero(e)) {
                memset(rc->out + first, 0, span * sizeof(VcEntry));
                return 0;
        }
        size_t len;
        int r = rc->get(e->tag, &rc->buf, &rc->cap, &len, rc->ctx);
        if (r < 0)
                return r;
        VcEntry ent[VC_FANOUT];
        uint32_t count;
        if ((r = open_node(rc->secret, e, level, span, rc->buf, len, ent, &count)) < 0)
                return r;
        uint64_t child_span = span_of(level);
        if (level == 0) {
                memcpy(rc->out + first, ent, count * sizeof(VcEntry));
        } else {
                for (uint32_t i = 0; i < count && r == 0; i++) {
                        uint64_t f = first + i * child_span;
                        r = read_sub(rc, &ent[i], level - 1, f, VC_MIN(child_span, first + span - f));
                }
        }
        vc_wipe(ent, sizeof ent);
        return r;
}

/* ---- level by level, in batches ------------------------------------------- */

typedef struct Front {
        VcEntry e;
        uint64_t first, span;
} Front;

typedef struct {
        const uint8_t *secret;
        unsigned level;
        const Front *cur;          /* this level's non-zero entries */
        const size_t *idx;         /* batch position -> index into cur */
        Front *next;               /* the level below, at 32 * position */
        uint32_t *counts;
        VcEntry *out;
} LevelCtx;

static int got_node(size_t i, const uint8_t *sealed, size_t len, void *ctx)
{
        LevelCtx *lc = ctx;
        size_t at = lc->idx[i];
        const Front *f = &lc->cur[at];
        VcEntry ent[VC_FANOUT];
        uint32_t count;
        int r = open_node(lc->secret, &f->e, lc->level, f->span, sealed, len, ent, &count);
        if (r < 0)
                return r;
        uint64_t cs = span_of(lc->level);
        if (lc->level == 0)
                memcpy(lc->out + f->first, ent, count * sizeof(VcEntry));
        else
                for (uint32_t c = 0; c < count; c++) {
                        Front *n = &lc->next[at * VC_FANOUT + c];
                        n->e = ent[c];
                        n->first = f->first + c * cs;
                        n->span = VC_MIN(cs, f->first + f->span - n->first);
                }
        lc->counts[at] = count;
        vc_wipe(ent, sizeof ent);
        return 0;
}

#define LEVEL_BATCH 4096
#define LEVEL_PAR 512           /* nodes in a level below which one thread reads it */

/* One level's nodes, in batches taken by the readers in turn. */
typedef struct {
        LevelCtx lc;
        vc_nodes_get_fn get;
        void *ctx;
        size_t ncur, bs;
        atomic_size_t next;
} LevelRun;

static int level_work(void *arg, int tid)
{
        LevelRun *lr = arg;
        size_t *idx = malloc(LEVEL_BATCH * sizeof *idx);
        uint8_t *tags = malloc(LEVEL_BATCH * 32);
        int r = !idx || !tags ? -ENOMEM : 0;
        for (;;) {
                size_t b = atomic_fetch_add(&lr->next, lr->bs);
                if (r < 0 || b >= lr->ncur || vc_pool_stopping())
                        break;
                size_t m = VC_MIN(lr->bs, lr->ncur - b);
                for (size_t i = 0; i < m; i++) {
                        idx[i] = b + i;
                        memcpy(tags + 32 * i, lr->lc.cur[b + i].e.tag, 32);
                }
                /* got_node writes only what belongs to its node */
                LevelCtx lc = lr->lc;
                lc.idx = idx;
                r = lr->get(tags, m, got_node, &lc, lr->ctx);
        }
        free(idx);
        free(tags);
        return r;
}

void vc_tree_nodes_free(VcTreeNodes *nodes)
{
        if (!nodes)
                return;
        for (unsigned i = 0; i < VC_TREE_MAX_H; i++) {
                if (nodes->lv[i])
                        vc_wipe(nodes->lv[i], nodes->cnt[i] * sizeof(VcEntry));
                free(nodes->lv[i]);
        }
        memset(nodes, 0, sizeof *nodes);
}

int vc_tree_read_levels(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *root, uint64_t n,
                        vc_nodes_get_fn get, void *ctx, VcEntry *out)
{
        return vc_tree_read_nodes(node_secret, root, n, get, ctx, out, NULL);
}

int vc_tree_read_nodes(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *root, uint64_t n,
                       vc_nodes_get_fn get, void *ctx, VcEntry *out, VcTreeNodes *nodes)
{
        if (nodes)
                memset(nodes, 0, sizeof *nodes);
        if (n == 0)
                return 0;
        unsigned level = vc_tree_height(n) - 1;
        if (nodes && level + 1 > VC_TREE_MAX_H)
                nodes = NULL;           /* (never: 32^14 chunks) */
        if (nodes) {
                nodes->h = level + 1;
                for (unsigned l = 0; l <= level; l++) {
                        uint64_t span = span_of(l + 1);
                        nodes->cnt[l] = l == level ? 1 : (n + span - 1) / span;
                        if (!(nodes->lv[l] = calloc(nodes->cnt[l], sizeof(VcEntry)))) {
                                vc_tree_nodes_free(nodes);
                                return -ENOMEM;
                        }
                }
        }
        Front *cur = malloc(sizeof *cur);
        if (!cur) {
                vc_tree_nodes_free(nodes);
                return -ENOMEM;
        }
        cur[0] = (Front){ *root, 0, n };
        size_t ncur = 1;
        int threads = vc_pool_threads();
        if (threads < 1) {
                vc_errclear();
                threads = 1;
        }
        int r = 0;
        for (;;) {
                if (nodes) {
                        /* node g of this level covers chunks from g * 32^(level+1) */
                        uint64_t span = level + 1 == nodes->h ? 0 : span_of(level + 1);
                        for (size_t i = 0; i < ncur; i++) {
                                uint64_t g = span ? cur[i].first / span : 0;
                                if (g < nodes->cnt[level])
                                        nodes->lv[level][g] = cur[i].e;
                        }
                }
                /* zero entries stand for all-zero stretches: no node */
                size_t live = 0;
                for (size_t i = 0; i < ncur; i++) {
                        if (vc_entry_is_zero(&cur[i].e))
                                memset(out + cur[i].first, 0, cur[i].span * sizeof(VcEntry));
                        else
                                cur[live++] = cur[i];
                }
                ncur = live;
                Front *next = level ? calloc(ncur * VC_FANOUT + 1, sizeof *next) : NULL;
                uint32_t *counts = calloc(ncur + 1, sizeof *counts);
                if ((level && !next) || !counts)
                        r = -ENOMEM;
                /* a level of many nodes (the leaves of a large image) is
                 * read and opened on every core, in batches of equal size,
                 * as many as a multiple of the readers */
                int nt = ncur >= LEVEL_PAR && !vc_pool_in_worker() ? threads : 1;
                size_t nb = (ncur + LEVEL_BATCH - 1) / LEVEL_BATCH;
                nb = (nb + (size_t)nt - 1) / (size_t)nt * (size_t)nt;
                LevelRun lr = { .lc = { node_secret, level, cur, NULL, next, counts, out }, .get = get, .ctx = ctx,
                                .ncur = ncur, .bs = nb ? (ncur + nb - 1) / nb : 1 };
                atomic_init(&lr.next, 0);
                if (r == 0 && ncur)
                        r = vc_pool_run(nt, level_work, &lr);
                /* a back end that skipped a node would leave a hole */
                for (size_t i = 0; r == 0 && i < ncur; i++)
                        if (counts[i] == 0)
                                r = vc_errf(-EIO, "a keyring node was not delivered");
                size_t nnext = 0;
                if (r == 0 && level)
                        for (size_t i = 0; i < ncur; i++)
                                for (uint32_t c = 0; c < counts[i]; c++)
                                        next[nnext++] = next[i * VC_FANOUT + c];
                vc_wipe(cur, ncur * sizeof *cur);
                free(cur);
                free(counts);
                cur = next;
                ncur = nnext;
                if (r < 0 || level == 0)
                        break;
                level--;
        }
        if (cur) {
                vc_wipe(cur, ncur * sizeof *cur);
                free(cur);
        }
        if (r < 0)
                vc_tree_nodes_free(nodes);
        return r;
}

int vc_tree_read(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *root, uint64_t n,
                 vc_node_get_fn get, void *ctx, VcEntry *out)
{
        if (n == 0)
                return 0;
        ReadCtx rc = { .secret = node_secret, .get = get, .ctx = ctx, .out = out };
        int r = read_sub(&rc, root, vc_tree_height(n) - 1, 0, n);
        free(rc.buf);
        return r;
}
