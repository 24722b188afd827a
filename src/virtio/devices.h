/* What the rest of kvkit asks of particular virtio devices. The devices
 * themselves (one file each) register with the device registry
 * (src/vmm/device.h) and are created from the config by it. */
#ifndef KVKIT_VIRTIO_DEVICES_H
#define KVKIT_VIRTIO_DEVICES_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <kvkit/config.h>
#include <linux/virtio_input.h>
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

/* virtio-gpu: the first GPU's scanout as packed 8-bit RGB (malloc'ed).
 * -ENODEV: no GPU; -EAGAIN: the guest has not set a scanout yet. */
int virtio_gpu_scanout_rgb(struct vm *vm, uint8_t **rgb, uint32_t *width, uint32_t *height);
/* The first GPU's cursor (struct in gpu_ctrl.h): -ENODEV, -EAGAIN (none shown). */
struct gpu_cursor_image;
int virtio_gpu_cursor(struct vm *vm, struct gpu_cursor_image *c);
/* A counter that moves whenever what the first GPU shows changes (0 with
 * no GPU): a display polls it and redraws when it moved. cursor_updates
 * (when not NULL) gets the one that moves only when the cursor changes.
 * Any thread. */
uint64_t virtio_gpu_updates(struct vm *vm, uint64_t *cursor_updates);

/* virtio-input: events for the first device of that kind (a batch ends
 * with EV_SYN), from any thread. -ENODEV: none; -ENOSPC: the guest has
 * not read the last 1024 events, this batch is dropped. */
int virtio_input_send(struct vm *vm, enum kv_input_kind kind, const struct virtio_input_event *ev, unsigned n);

#endif
