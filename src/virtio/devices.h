/* The virtio devices kvkit can create; one file each. */
#ifndef KVKIT_VIRTIO_DEVICES_H
#define KVKIT_VIRTIO_DEVICES_H
#include <kvkit/config.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
struct vm;

/* virtio-console; fills s->pty_name for pty mode. err gets one line. */
int virtio_console_create(struct vm *vm, struct kv_serial *s, char *err, size_t errlen);
/* Copy bytes to the first console's output (the UART's sink). */
void virtio_console_early_output(const uint8_t *buf, size_t len);
/* Restore terminal settings changed for stdio consoles. */
void virtio_console_restore_terminal(void);
int virtio_rng_create(struct vm *vm, char *err, size_t errlen);

struct blk_backend;
/* virtio-blk over an open backend (the device takes it over); serial may be
 * NULL; label names the disk in log lines. */
int virtio_blk_create(struct vm *vm, struct blk_backend *be, const char *serial, const char *label, char *err,
		      size_t errlen);
/* Let every disk's in-flight requests finish (on stop, before exit). */
void virtio_blk_drain_all(void);
void virtio_blk_close_all(void);

struct net_backend;
/* virtio-net over an open backend; picks a MAC into cfg when none is set. */
int virtio_net_create(struct vm *vm, struct kv_net *cfg, struct net_backend *be, char *err, size_t errlen);
void virtio_net_close_all(void);

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
int virtio_balloon_create(struct vm *vm, char *err, size_t errlen);
bool virtio_balloon_present(void);
/* Ask the guest to keep guest_bytes of its memory (the rest inflates). */
int virtio_balloon_set_target(uint64_t guest_bytes, char *err, size_t errlen);
/* Sizes and fresh statistics (waits up to 1 s for the guest). */
int virtio_balloon_info(struct balloon_info *out);

/* The one virtio-vsock device (created on first call); entries are added
 * to the engine it returns (src/vsock/vsock.h). NULL + err on failure. */
struct vsock;
struct vsock *virtio_vsock_create(struct vm *vm, char *err, size_t errlen);
/* Close connections, remove the sockets kvkit created. */
void virtio_vsock_close(void);

/* A virtio-fs share: its own FUSE server and worker threads. */
int virtio_fs_create(struct vm *vm, const struct kv_fs *fs, char *err, size_t errlen);
/* Let requests in flight end, stop the workers, close the shares. */
void virtio_fs_close_all(void);

#endif
