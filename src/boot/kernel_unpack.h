/* Host-side unpacking of a bzImage's compressed kernel.
 *
 * A bzImage carries vmlinux compressed; its own decompressor unpacks it
 * inside the guest, lays out the ELF segments, applies the KASLR
 * relocations and jumps to startup_64. Under nested virtualization that is
 * a quarter of the boot. kvkit can do the same work on the host, in native
 * code, and enter startup_64 in the state the decompressor hands over (the
 * "64-bit boot loader" entry of arch/x86/kernel/head_64.S). Whatever it
 * does not recognise is left to the guest-side decompressor.
 *
 * The decompressed blob is vmlinux.bin (a stripped ELF) followed by the
 * relocation table arch/x86/tools/relocs writes: from the end, 32-bit
 * entries, 0, inverse 32-bit entries, 0, 64-bit entries, 0. Each entry is
 * the sign-extended 32-bit kernel virtual address of a field to adjust. */
#ifndef KVKIT_KERNEL_UNPACK_H
#define KVKIT_KERNEL_UNPACK_H
#include <stddef.h>
#include <stdint.h>

#define START_KERNEL_MAP 0xffffffff80000000ULL
#define KERNEL_IMAGE_SIZE (1ULL << 30) /* the KASLR window, CONFIG_RANDOMIZE_BASE */

enum kernel_compression { KC_UNKNOWN, KC_GZIP, KC_XZ, KC_LZ4, KC_ZSTD };

/* The compression of a bzImage payload, from its magic. */
enum kernel_compression kernel_compression_of(const uint8_t *payload, size_t len);
const char *kernel_compression_name(enum kernel_compression c);

/* The decompressed size the kernel build appends to every payload (its last
 * four bytes, little endian); 0 if the payload is too short. */
uint64_t kernel_payload_size(const uint8_t *payload, size_t len);

/* Decompress a whole payload (trailing size included) into out, which has
 * exactly `size` bytes: 0, or -1 with the reason in why. The library for the
 * format is dlopen()ed for the call and closed after. */
int kernel_decompress(enum kernel_compression c, const uint8_t *payload, size_t len, uint8_t *out, size_t size,
		      char *why, size_t whylen);

struct vmlinux_layout {
	uint64_t span;      /* bytes from the load address to the image end, bss included */
	uint64_t filespan;  /* the part of it that comes from the file (relocations land here) */
	uint64_t entry_off; /* startup_64 from the load address */
	uint64_t elf_end;   /* where the ELF file ends in the blob and the relocation table starts */
	uint64_t reloc_words; /* the relocation table's 32-bit words; 0: none, so no virtual KASLR */
	uint64_t relocs;      /* the entries in it */
};

/* Check the blob: an x86_64 ELF whose PT_LOAD segments lie in
 * [link_phys, link_phys + 1 GiB) and sit in the file at or after where they
 * go in memory (so the image can be laid out in place, as the kernel's
 * decompressor does), and a well-formed relocation table after it (or none).
 * 0, or -1 with the reason. */
int vmlinux_inspect(const uint8_t *blob, size_t len, uint64_t link_phys, struct vmlinux_layout *l, char *why,
		    size_t whylen);

/* Lay the image out in place: the blob (len bytes) was unpacked at the
 * kernel's load address, the segments move down to where they belong and,
 * if virt_delta is not 0, the relocations are applied for a kernel whose
 * virtual base moved by virt_delta. The buffer must hold max(len, l->span)
 * bytes and the blob must have passed vmlinux_inspect(). 0, or -1 with the
 * reason. */
int vmlinux_place(uint8_t *blob, size_t len, uint64_t link_phys, const struct vmlinux_layout *l, uint64_t virt_delta,
		  char *why, size_t whylen);

#endif
