/* virtio-blk request parsing; see blk_parse.h. */
#include "blk_parse.h"
#include <string.h>

static bool range_ok(const struct blk_disk_info *d, uint64_t sector, uint64_t nsec)
{
	return sector <= d->sectors && nsec <= d->sectors - sector;
}

int blk_parse(const struct virtq_elem *e, const struct blk_disk_info *disk, struct blk_parsed *p)
{
	const struct iovec *out = e->iov, *in = e->iov + e->n_out;
	p->status = NULL;
	p->ndata = 0;
	p->len = 0;
	p->unmap = false;

	/* the status byte is the last writable byte of the chain */
	if (e->in_len < 1)
		return VIRTIO_BLK_S_IOERR;
	for (unsigned i = e->n_in; i-- > 0;) {
		if (in[i].iov_len) {
			p->status = (uint8_t *)in[i].iov_base + in[i].iov_len - 1;
			break;
		}
	}
	uint64_t in_data = e->in_len - 1;

	uint8_t hdr[16];
	if (e->out_len < sizeof(hdr) || iov_to_buf(out, e->n_out, 0, hdr, sizeof(hdr)) != sizeof(hdr))
		return VIRTIO_BLK_S_IOERR;
	memcpy(&p->type, hdr, 4);
	memcpy(&p->sector, hdr + 8, 8);
	uint64_t out_data = e->out_len - sizeof(hdr);
	int k;

	switch (p->type) {
	case VIRTIO_BLK_T_IN:
	case VIRTIO_BLK_T_OUT: {
		bool rd = p->type == VIRTIO_BLK_T_IN;
		if (!rd && disk->readonly)
			return VIRTIO_BLK_S_IOERR;
		p->len = rd ? in_data : out_data;
		if (p->len % BLK_SECTOR || !range_ok(disk, p->sector, p->len / BLK_SECTOR))
			return VIRTIO_BLK_S_IOERR;
		k = rd ? iov_slice(in, e->n_in, 0, p->len, p->data, BLK_MAX_SEGS)
		       : iov_slice(out, e->n_out, sizeof(hdr), p->len, p->data, BLK_MAX_SEGS);
		if (k < 0)
			return VIRTIO_BLK_S_IOERR;
		p->ndata = (unsigned)k;
		return VIRTIO_BLK_S_OK;
	}
	case VIRTIO_BLK_T_FLUSH:
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_GET_ID:
		p->len = in_data < VIRTIO_BLK_ID_BYTES ? in_data : VIRTIO_BLK_ID_BYTES;
		k = iov_slice(in, e->n_in, 0, p->len, p->data, BLK_MAX_SEGS);
		if (k < 0)
			return VIRTIO_BLK_S_IOERR;
		p->ndata = (unsigned)k;
		return VIRTIO_BLK_S_OK;
	case VIRTIO_BLK_T_DISCARD:
	case VIRTIO_BLK_T_WRITE_ZEROES: {
		if (!disk->discard)
			return VIRTIO_BLK_S_UNSUPP;
		if (disk->readonly)
			return VIRTIO_BLK_S_IOERR;
		/* we offer one segment per request (max_*_seg = 1) */
		uint8_t seg[16];
		if (out_data != sizeof(seg) || iov_to_buf(out, e->n_out, sizeof(hdr), seg, sizeof(seg)) != sizeof(seg))
			return VIRTIO_BLK_S_IOERR;
		uint32_t flags;
		memcpy(&p->range_sector, seg, 8);
		memcpy(&p->range_sectors, seg + 8, 4);
		memcpy(&flags, seg + 12, 4);
		/* unmap is only defined for WRITE_ZEROES; other flag bits are reserved */
		if (flags & ~1u || (p->type == VIRTIO_BLK_T_DISCARD && flags))
			return VIRTIO_BLK_S_UNSUPP;
		p->unmap = flags & 1;
		if (p->range_sectors > disk->max_discard_sectors || !range_ok(disk, p->range_sector, p->range_sectors))
			return VIRTIO_BLK_S_IOERR;
		return VIRTIO_BLK_S_OK;
	}
	default:
		return VIRTIO_BLK_S_UNSUPP;
	}
}

bool blk_mergeable(uint32_t type, uint64_t end, unsigned niov, uint64_t len, unsigned nreqs,
		   const struct blk_parsed *p)
{
	return (type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_OUT) && p->type == type && p->len &&
	       p->sector * BLK_SECTOR == end && nreqs < BLK_MERGE_MAX_REQS && niov + p->ndata <= BLK_MERGE_MAX_IOV &&
	       len + p->len <= BLK_MERGE_MAX_BYTES;
}
