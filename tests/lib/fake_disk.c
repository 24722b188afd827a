/* See fake_disk.h. */
#include "fake_disk.h"
#include <string.h>

void fake_disk_copy(uint8_t *disk, const struct blk_io *io)
{
	uint64_t off = io->offset;
	for (unsigned k = 0; k < io->niov; k++) {
		if (io->op == BLK_READ)
			memcpy(io->iov[k].iov_base, disk + off, io->iov[k].iov_len);
		else if (io->op == BLK_WRITE)
			memcpy(disk + off, io->iov[k].iov_base, io->iov[k].iov_len);
		off += io->iov[k].iov_len;
	}
}
