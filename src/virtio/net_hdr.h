/* The virtio-net header in front of every frame (virtio 1.x, 5.1.6). */
#ifndef KVKIT_NET_HDR_H
#define KVKIT_NET_HDR_H
#include <stdint.h>

struct virtio_net_hdr_v1 {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers; /* receive: buffers this frame spans */
};
_Static_assert(sizeof(struct virtio_net_hdr_v1) == 12, "virtio-net header");

#endif
