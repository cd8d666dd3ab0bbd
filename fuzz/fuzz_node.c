/* fuzz_node — keyring nodes (src/core/vc_keyring.c): vc_node_parse, the
 * keyless parse gc and verify run on nodes from the store, and the two
 * readers a checkout runs on nodes a store serves, vc_tree_read (node by
 * node) and vc_tree_read_levels (level by level, in batches).
 *
 * Input: u32 LE n (entries of the image, mod 40001, so trees up to height
 * 4) ‖ u8 control ‖ u8[32] root key ‖ nodes, each u16 LE length ‖ bytes.
 * The first node is the root: its tag is SHA-256 of its bytes (as a
 * version record would say). The get callbacks serve any node of the
 * input by its tag, -ENOENT for others; the batch callback of
 * vc_tree_read_levels delivers a batch
 *   control bit 0: in reverse order
 *           bit 1: with every node twice
 *           bit 2: without its last node (a back end that skips one).
 * The seeds (fuzz/gen_corpus.c) are real trees built by vc_tree_build
 * under the fixed node secret below, so changing n, dropping, repeating or
 * damaging nodes reaches the shape and authentication checks of every
 * level.
 *
 * Checks: vc_node_parse's results lie inside the node; the readers return
 * 0, -EBADMSG, -EKEYREJECTED or -ENOENT (-EIO for a skipped node), write
 * only the n entries they are given (ASan), and agree: both succeed, with
 * the same entries, or both fail, and a skipped node never goes
 * unnoticed; entries they accept build, with vc_tree_build, the same root
 * again (trees are convergent).
 */
#include "fuzz.h"
#include "core/vc_hash.h"
#include "core/vc_keyring.h"
#include "core/vc_util.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NODES 256
#define MAX_ENTRIES 40000u

typedef struct {
        const uint8_t *p[MAX_NODES];
        size_t len[MAX_NODES];
        uint8_t tag[MAX_NODES][VC_HASH_LEN];
        size_t n;
        unsigned ctl;
        bool skipped;
} Nodes;

static int find(const Nodes *ns, const uint8_t tag[VC_HASH_LEN])
{
        for (size_t i = 0; i < ns->n; i++)
                if (memcmp(ns->tag[i], tag, VC_HASH_LEN) == 0)
                        return (int)i;
        return -1;
}

static int get(const uint8_t tag[VC_HASH_LEN], uint8_t **buf, size_t *cap, size_t *len, void *ctx)
{
        Nodes *ns = ctx;
        int i = find(ns, tag);
        if (i < 0)
                return vc_errf(-ENOENT, "no such node");
        if (*cap < ns->len[i] || !*buf) {
                uint8_t *b = realloc(*buf, ns->len[i] ? ns->len[i] : 1);
                if (!b)
                        return -ENOMEM;
                *buf = b;
                *cap = ns->len[i];
        }
        memcpy(*buf, ns->p[i], ns->len[i]);
        *len = ns->len[i];
        return 0;
}

/* Hands node i over in a buffer of exactly its size (ASan sees over-reads). */
static int deliver(const Nodes *ns, int i, size_t idx, vc_node_got_fn got, void *gctx)
{
        uint8_t *copy = malloc(ns->len[i] ? ns->len[i] : 1);
        FUZZ_CHECK(copy);
        memcpy(copy, ns->p[i], ns->len[i]);
        int r = got(idx, copy, ns->len[i], gctx);
        free(copy);
        return r;
}

static int get_batch(const uint8_t *tags, size_t n, vc_node_got_fn got, void *gctx, void *ctx)
{
        Nodes *ns = ctx;
        size_t m = n;
        if ((ns->ctl & 4) && m > 0) {
                m--;
                ns->skipped = true;
        }
        for (size_t k = 0; k < m; k++) {
                size_t idx = ns->ctl & 1 ? n - 1 - k : k;
                if ((ns->ctl & 4) && (ns->ctl & 1))
                        idx = n - 2 - k;        /* reversed, still without the last */
                int i = find(ns, tags + 32 * idx);
                if (i < 0)
                        return vc_errf(-ENOENT, "no such node");
                for (int twice = 0; twice < (ns->ctl & 2 ? 2 : 1); twice++) {
                        int r = deliver(ns, i, idx, got, gctx);
                        if (r < 0)
                                return r;
                }
        }
        return 0;
}

static int put(const uint8_t tag[VC_HASH_LEN], const uint8_t *sealed, size_t len, void *ctx)
{
        (void)tag, (void)sealed, (void)len, (void)ctx;
        return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
        if (size < 5 + VC_KEY_LEN)
                return 0;
        vc_errclear();
        uint64_t n = vc_get32(data) % (MAX_ENTRIES + 1);
        VcEntry root;
        memset(&root, 0, sizeof root);
        memcpy(root.key, data + 5, VC_KEY_LEN);
        Nodes *ns = calloc(1, sizeof *ns);
        FUZZ_CHECK(ns);
        ns->ctl = data[4];
        for (size_t off = 5 + VC_KEY_LEN; off + 2 <= size && ns->n < MAX_NODES;) {
                size_t l = vc_get16(data + off);
                off += 2;
                if (l > size - off)
                        l = size - off;
                ns->p[ns->n] = data + off;
                ns->len[ns->n] = l;
                vc_sha256(data + off, l, ns->tag[ns->n]);
                ns->n++;
                off += l;
        }
        /* The keyless parse, on every node. */
        for (size_t i = 0; i < ns->n; i++) {
                unsigned level = 0;
                uint32_t count = 0;
                const uint8_t *tags = NULL;
                int r = vc_node_parse(ns->p[i], ns->len[i], &level, &count, &tags);
                FUZZ_CHECK(r == 0 || r == -EBADMSG);
                if (r == 0) {
                        FUZZ_CHECK(count >= 1 && count <= VC_FANOUT);
                        FUZZ_CHECK(tags == ns->p[i] + VC_NODE_HDR);
                        FUZZ_CHECK(ns->len[i] == VC_NODE_HDR + 64 * (size_t)count);
                }
        }
        if (ns->n)
                memcpy(root.tag, ns->tag[0], VC_HASH_LEN);

        uint8_t parcel[VC_KEY_LEN], secret[VC_KEY_LEN];
        memset(parcel, 0x5a, sizeof parcel);
        vc_derive(parcel, "node", secret);
        VcEntry *out = n ? malloc(n * sizeof *out) : NULL, *lv = n ? malloc(n * sizeof *lv) : NULL;
        FUZZ_CHECK(!n || (out && lv));
        int r = vc_tree_read(secret, &root, n, get, ns, out);
        fuzz_note("tree_read n %llu, %zu nodes: %d %s", (unsigned long long)n, ns->n, r, r ? vc_errmsg(r) : "");
        FUZZ_CHECK(r == 0 || r == -EBADMSG || r == -EKEYREJECTED || r == -ENOENT);
        vc_errclear();
        int rl = vc_tree_read_levels(secret, &root, n, get_batch, ns, lv);
        fuzz_note("tree_read_levels (control %u): %d %s", ns->ctl & 7, rl, rl ? vc_errmsg(rl) : "");
        FUZZ_CHECK(rl == 0 || rl == -EBADMSG || rl == -EKEYREJECTED || rl == -ENOENT || rl == -EIO);
        if (ns->skipped)
                FUZZ_CHECK(rl < 0);
        else
                FUZZ_CHECK((rl == 0) == (r == 0) && rl != -EIO);
        if (r == 0 && rl == 0 && n)
                FUZZ_CHECK(memcmp(out, lv, n * sizeof *out) == 0);
        if (r == 0 && n) {
                VcEntry again;
                FUZZ_CHECK(vc_tree_build(secret, out, n, put, NULL, &again) == 0);
                FUZZ_CHECK(memcmp(again.tag, root.tag, VC_HASH_LEN) == 0);
                if (!vc_entry_is_zero(&root))
                        FUZZ_CHECK(memcmp(again.key, root.key, VC_KEY_LEN) == 0);
        }
        free(out);
        free(lv);
        free(ns);
        return 0;
}
