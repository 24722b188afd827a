/* See fake_disk.h. */
#include "fake_disk.h"
#include "../../src/util/iov.h"

void fake_disk_copy(uint8_t *disk, const struct blk_io *io)
{
	if (io->op == BLK_READ)
		iov_from_buf(io->iov, io->niov, 0, disk + io->offset, io->len);
	else if (io->op == BLK_WRITE)
		iov_to_buf(io->iov, io->niov, 0, disk + io->offset, io->len);
}
