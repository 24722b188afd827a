/* Little-endian loads and stores at any alignment: what guest memory, PCI
 * config space, ACPI tables, boot headers and disk formats hold (the x86
 * guest is little-endian; the conversions say so and cost nothing here).
 * The big-endian ones are for fw_cfg, whose selectors and sizes are BE,
 * and the length prefix of QEMU's network stream framing. */
#ifndef KVKIT_UTIL_BYTES_H
#define KVKIT_UTIL_BYTES_H
#include <endian.h>
#include <stdint.h>
#include <string.h>

static inline uint16_t rd16(const void *p) { uint16_t v; memcpy(&v, p, 2); return le16toh(v); }
static inline uint32_t rd32(const void *p) { uint32_t v; memcpy(&v, p, 4); return le32toh(v); }
static inline uint64_t rd64(const void *p) { uint64_t v; memcpy(&v, p, 8); return le64toh(v); }
static inline void wr16(void *p, uint16_t v) { v = htole16(v); memcpy(p, &v, 2); }
static inline void wr32(void *p, uint32_t v) { v = htole32(v); memcpy(p, &v, 4); }
static inline void wr64(void *p, uint64_t v) { v = htole64(v); memcpy(p, &v, 8); }
static inline void wr16be(void *p, uint16_t v) { v = htobe16(v); memcpy(p, &v, 2); }
static inline void wr32be(void *p, uint32_t v) { v = htobe32(v); memcpy(p, &v, 4); }
static inline uint32_t rd32be(const void *p) { uint32_t v; memcpy(&v, p, 4); return be32toh(v); }

#endif
