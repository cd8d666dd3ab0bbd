/* vc_keyring — a version's keyring as a hash tree (like Venti's pointer
 * blocks), so that versions share the leaves that did not change.
 *
 * The keyring of an image of n chunks is its n entries (tag, key). They are
 * cut into leaves of VC_FANOUT entries; each level above holds the entries
 * (tag, key) of up to VC_FANOUT nodes below; the root is one entry. A group
 * of all-zero entries (an all-zero region) is itself the zero entry: no
 * node. Height h is the least h >= 1 with VC_FANOUT^h >= n.
 *
 * Sealed node (integers little-endian):
 *   0  u8[2]  magic "VK"
 *   2  u8     format version (1)
 *   3  u8     level (0: children are chunks; else: children are nodes)
 *   4  u32    count (1..VC_FANOUT)
 *   8  u8[32 count]  the children's tags, in the clear
 *   .. u8[32 count]  the children's keys, AES-256-CTR under K (IV zero)
 * K = HMAC(node secret, header ‖ tags ‖ keys), the node secret being derived
 * from the parcel secret; the parent's entry is (SHA-256(node), K). So a
 * node is convergent within its parcel (same entries, same bytes: stored
 * once) and opening it authenticates it under the parcel's secret. Tags are
 * in the clear so that a server can walk versions, garbage-collect and
 * verify without any key; it learns which chunks a version uses, in order,
 * which it sees at upload anyway — never a key or a byte of content.
 */
#ifndef VC_KEYRING_H
#define VC_KEYRING_H

#include <stddef.h>
#include <stdint.h>

#include "core/vc_seal.h"

#define VC_FANOUT 32
#define VC_NODE_HDR 8
#define VC_NODE_MAX (VC_NODE_HDR + VC_FANOUT * 64)

/* Called for each node built; the store deduplicates identical nodes. */
typedef int (*vc_node_put_fn)(const uint8_t tag[VC_HASH_LEN], const uint8_t *sealed, size_t len, void *ctx);
/* Must return the sealed bytes of the node with this tag (in *buf, grown
 * as needed) or -errno. */
typedef int (*vc_node_get_fn)(const uint8_t tag[VC_HASH_LEN], uint8_t **buf, size_t *cap, size_t *len, void *ctx);

/* Builds the tree of entries e[0..n) and sets *root. Cost: one HMAC, one
 * AES and one SHA-256 pass over 64 bytes per entry, ~3 % of the entries
 * again for the levels above. */
int vc_tree_build(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *e, uint64_t n,
                  vc_node_put_fn put, void *ctx, VcEntry *root);

/* Reads the n entries under root into out[0..n). -EBADMSG (with a message
 * naming the node) if a node is damaged, malformed or not authentic under
 * node_secret. */
int vc_tree_read(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *root, uint64_t n,
                 vc_node_get_fn get, void *ctx, VcEntry *out);

/* The same, level by level: all the nodes of one level are fetched in
 * batches of up to 4096 with one get call each, so a remote back end makes
 * (height × nodes / 4096) requests rather than one per node. get must call
 * got(i, sealed, len, gctx) once for each tags[i] (i < n), in any order,
 * from the calling thread, and return got's first error. A level of 512
 * nodes or more is read on vc_pool_threads() threads (one inside a pool
 * worker), so get is called from several threads at once. */
typedef int (*vc_node_got_fn)(size_t i, const uint8_t *sealed, size_t len, void *gctx);
typedef int (*vc_nodes_get_fn)(const uint8_t *tags, size_t n, vc_node_got_fn got, void *gctx, void *ctx);
int vc_tree_read_levels(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *root, uint64_t n,
                        vc_nodes_get_fn get, void *ctx, VcEntry *out);

/* A tree's node entries as read, level by level: lv[L][g] is the entry of
 * node g of level L (its children at level L - 1, level 0's being the
 * chunks), zero for an all-zero stretch; cnt[L] nodes in level L, h
 * levels. What vc_tree_build_from needs of the previous version. */
#define VC_TREE_MAX_H 14
typedef struct VcTreeNodes {
        VcEntry *lv[VC_TREE_MAX_H];
        uint64_t cnt[VC_TREE_MAX_H];
        unsigned h;
} VcTreeNodes;

/* vc_tree_read_levels, keeping the node entries in *nodes (which
 * vc_tree_nodes_free releases) if nodes is not NULL. */
int vc_tree_read_nodes(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *root, uint64_t n,
                       vc_nodes_get_fn get, void *ctx, VcEntry *out, VcTreeNodes *nodes);
void vc_tree_nodes_free(VcTreeNodes *nodes);

/* vc_tree_build, where a node whose children are the same entries as
 * those of the node at its place in a previous tree (entries prev[0..
 * prev_n), its nodes pn) is that node: its entry is taken as it is,
 * neither sealed nor put. (Nodes are convergent within a parcel: the same
 * children make the same node, so the tree is the one vc_tree_build
 * makes.) The caller must know the previous tree's nodes are stored: a
 * checkin's previous version is the one its commit builds on. */
int vc_tree_build_from(const uint8_t node_secret[VC_KEY_LEN], const VcEntry *e, uint64_t n, const VcEntry *prev,
                       uint64_t prev_n, const VcTreeNodes *pn, vc_node_put_fn put, void *ctx, VcEntry *root);

/* Parses a sealed node without a key: its level, count and tags (pointing
 * into sealed). -EBADMSG if malformed. */
int vc_node_parse(const uint8_t *sealed, size_t len, unsigned *level, uint32_t *count, const uint8_t **tags);

/* The height of the tree of n entries (0 for n == 0). */
unsigned vc_tree_height(uint64_t n);

#endif
