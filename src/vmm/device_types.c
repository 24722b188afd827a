/* The device registry: one line per --device type kvkit can create. Each
 * type's descriptor lives in its own file (docs/architecture.md: adding a
 * device). */
#include "device.h"

#define DEVICE_TYPES(X)                                                                                                \
	X(virtio_serial_device)  /* src/virtio/console.c */                                                          \
	X(virtio_rng_device)     /* src/virtio/rng.c */                                                              \
	X(virtio_balloon_device) /* src/virtio/balloon.c */                                                          \
	X(virtio_net_device)     /* src/virtio/net.c */                                                              \
	X(virtio_blk_device)     /* src/virtio/blk.c */                                                              \
	X(nbd_device)            /* src/virtio/blk.c: virtio-blk over an NBD client */                               \
	X(nvme_device)           /* src/nvme/nvme.c */                                                               \
	X(virtio_vsock_device)   /* src/virtio/vsock.c */                                                            \
	X(virtio_fs_device)      /* src/virtio/fs.c */                                                               \
	X(virtio_gpu_device)     /* src/virtio/gpu.c */                                                              \
	X(virtio_input_device)   /* src/virtio/input.c */                                                            \
	X(rosetta_device)        /* src/devices/rosetta.c */

#define DECLARE(name) extern const struct device_type name;
DEVICE_TYPES(DECLARE)
#define ENTRY(name) &name,
const struct device_type *const device_types[] = { DEVICE_TYPES(ENTRY) NULL };
