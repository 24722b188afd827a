/* What the rest of kvkit asks of particular virtio devices. The devices
 * themselves (one file each) register with the device registry
 * (src/vmm/device.h) and are created from the config by it. */
#ifndef KVKIT_VIRTIO_DEVICES_H
#define KVKIT_VIRTIO_DEVICES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
struct vm;

/* Copy bytes to the first console's output (the UART's sink). */
void virtio_console_early_output(struct vm *vm, const uint8_t *buf, size_t len);

/* virtio-balloon; the REST API drives the first one. */
enum { BALLOON_STAT_COUNT = 10 }; /* swap in/out, faults, free, total, available, caches, hugetlb */
struct balloon_stats {
	bool valid;
	uint32_t present; /* bit per tag the guest reported */
	uint64_t val[BALLOON_STAT_COUNT];
};
struct balloon_info {
	uint64_t memory_bytes, target_bytes, actual_bytes;
	struct balloon_stats stats;
};
/* Ask the guest to keep guest_bytes of its memory (the rest inflates). */
int virtio_balloon_set_target(struct vm *vm, uint64_t guest_bytes, char *err, size_t errlen);
/* Sizes and fresh statistics (waits up to 1 s for the guest); -ENODEV
 * without a balloon. */
int virtio_balloon_info(struct vm *vm, struct balloon_info *out);

/* The VM's one virtio-vsock device, created on first call (--device
 * virtio-vsock entries, --ignition and --timesync share it); entries are
 * added to the engine it returns (src/vsock/vsock.h). NULL + err on failure. */
struct vsock;
struct vsock *virtio_vsock_get(struct vm *vm, char *err, size_t errlen);

#endif
