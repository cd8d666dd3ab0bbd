/* vc_wire — what the remote back end (vc_remote.c) and the server
 * (src/server) share of the HTTP protocol of docs/protocol.md: the binary
 * layouts, the limits, the error codes. Neither libcurl nor libmicrohttpd
 * is known here.
 *
 * Binary bodies (integers little-endian):
 *   chunk head    u8 parcel length ‖ parcel ‖ u8 domain length ‖ domain ‖ u32 n
 *   missing       head ‖ n × u8[32] tags          reply: bitmap, bit i = tag i missing
 *   get           head ‖ n × u8[32] tags          reply: n records, then an end record
 *   put           head ‖ n records                reply: JSON {"received": n}
 *   record        u8 kind ‖ u32 len ‖ u8[32] tag ‖ len bytes
 *   end record    kind VC_WIRE_END, len 0, zero tag; or kind VC_WIRE_ERROR,
 *                 len bytes of a JSON error body
 *   commit        u32 base ‖ u8 flags (bit 0: lease given) ‖ u8[16] lease ‖
 *                 u16 record length ‖ record ‖ u32 n_nodes ‖ u32 n_data ‖
 *                 n_nodes × u8[32] ‖ n_data × u8[32]
 */
#ifndef VC_WIRE_H
#define VC_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define VC_WIRE_PROTOCOL 1
#define VC_WIRE_HEAD_MAX (1 + 64 + 1 + 80 + 4)
#define VC_WIRE_REC_HDR (1 + 4 + 32)
#define VC_WIRE_END 0xff
#define VC_WIRE_ERROR 0xfe
#define VC_WIRE_COMMIT_FIXED (4 + 1 + 16 + 2)

/* Limits of one request body; the server refuses more (413), the client
 * splits its batches to stay below. */
#define VC_WIRE_PUT_MAX (64u << 20)
#define VC_WIRE_TAGS_MAX (1u << 20)
#define VC_WIRE_COMMIT_MAX (64u << 20)
#define VC_WIRE_JSON_MAX (64u << 10)
#define VC_WIRE_BUNDLE_MAX (1u << 20)

/* Writes the chunk head into buf (VC_WIRE_HEAD_MAX bytes); returns its length. */
size_t vc_wire_head(uint8_t *buf, const char *parcel, const char *domain, uint32_t n);
/* Parses a chunk head from the first len bytes of buf. Returns its length,
 * 0 if more bytes are needed, -EINVAL (with message) if malformed. */
int vc_wire_head_parse(const uint8_t *buf, size_t len, char parcel[65], char domain[80], uint32_t *n);

/* "EAGAIN" for -EAGAIN, and back (0 if unknown). Only the codes with a
 * fixed meaning in vc_backend.h and vc_util.h have names on the wire. */
const char *vc_wire_errname(int err);
int vc_wire_errcode(const char *name);

#endif
