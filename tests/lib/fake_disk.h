/* A disk in memory behind a device model's block requests (struct
 * blk_io), for the NVMe and virtio-blk tests and harnesses. */
#ifndef KVKIT_TESTS_FAKE_DISK_H
#define KVKIT_TESTS_FAKE_DISK_H
#include <stdint.h>
#include "../../src/block/backend.h"

/* Copy a read's data out of disk into its iovec, or a write's into disk
 * (the caller checked the range); other operations are left to it. */
void fake_disk_copy(uint8_t *disk, const struct blk_io *io);

#endif
