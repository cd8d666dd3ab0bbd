/* vc_machine — what a version holds beside its two images to run as a
 * virtual machine: how it boots and the device state QEMU saved when it
 * was suspended (docs/FORMAT.md, "Machine").
 *
 * The machine is a byte string kept in the version's machine tree
 * (vc_repo.h), chunked, sealed and deduplicated like the images (a kernel
 * that every version carries is stored once):
 *
 *   0 "VMCM"  4 u8 format 1  5..7 0  8 u32 number of sections  12 u32 0
 *   then each section: u32 type, u32 0, u64 length, the bytes, zero
 *   padding to a multiple of 8
 *
 * Section types: 1 config (text lines "key=value": boot=kernel|disk,
 * append=the kernel command line), 2 kernel, 3 initrd, 4 device state (a
 * QEMU migration stream of the devices only: the RAM is the memory image).
 * A version without a device state boots; one with it resumes. Every
 * section is authenticated like the images' chunks, so a store cannot
 * change how a VM boots or what state it resumes in. */
#ifndef VC_MACHINE_H
#define VC_MACHINE_H

#include <stddef.h>
#include <stdint.h>

enum { VC_MS_CONFIG = 1, VC_MS_KERNEL = 2, VC_MS_INITRD = 3, VC_MS_DEVSTATE = 4, VC_MS_MAX = 4 };

typedef struct VcMachine {
        /* each section, or NULL/0 if absent (pointers into the parsed
         * buffer, or the caller's for vc_machine_build) */
        const uint8_t *sec[VC_MS_MAX + 1];
        size_t len[VC_MS_MAX + 1];
        /* from the config */
        char boot[16];             /* "kernel" or "disk" */
        char append[1024];         /* kernel command line */
} VcMachine;

/* Parses buf (kept by the caller while m is used). -EBADMSG naming what is
 * wrong. */
int vc_machine_parse(const uint8_t *buf, size_t len, VcMachine *m);
/* Builds a machine from m's boot, append and sections KERNEL, INITRD,
 * DEVSTATE (the config is made from boot and append). *out malloc'ed. */
int vc_machine_build(const VcMachine *m, uint8_t **out, size_t *out_len);

#endif
