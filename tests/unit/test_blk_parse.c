/* virtio-blk request parsing against hand-built chains: what a well-behaved
 * driver sends, and what a hostile one might. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../src/virtio/blk_parse.h"

static struct virtq_elem e;
static struct blk_parsed p;
static uint8_t hdr[16], data[8192], seg[16], status[4];
static struct blk_disk_info disk = { .sectors = 100, .discard = true, .max_discard_sectors = 64 };

static void set_hdr(uint32_t type, uint64_t sector)
{
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, &type, 4);
	memcpy(hdr + 8, &sector, 8);
}

/* chain: out buffers, then in buffers; lengths summed like virtq_pop does */
static void chain(unsigned n_out, unsigned n_in, ...)
{
	va_list ap;
	va_start(ap, n_in);
	memset(&e, 0, sizeof(e));
	e.n_out = n_out;
	e.n_in = n_in;
	for (unsigned i = 0; i < n_out + n_in; i++) {
		e.iov[i].iov_base = va_arg(ap, void *);
		e.iov[i].iov_len = va_arg(ap, size_t);
		if (i < n_out)
			e.out_len += e.iov[i].iov_len;
		else
			e.in_len += e.iov[i].iov_len;
	}
	va_end(ap);
}

static void read_request(void **s)
{
	set_hdr(VIRTIO_BLK_T_IN, 10);
	chain(1, 2, hdr, (size_t)16, data, (size_t)4096, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
	assert_int_equal(p.len, 4096);
	assert_int_equal(p.sector, 10);
	assert_int_equal(p.ndata, 1);
	assert_ptr_equal(p.status, status);
}

static void status_shares_the_data_buffer(void **s)
{
	/* Linux may put data and status in one descriptor: status is the last byte */
	set_hdr(VIRTIO_BLK_T_IN, 0);
	chain(1, 1, hdr, (size_t)16, data, (size_t)513);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
	assert_int_equal(p.len, 512);
	assert_ptr_equal(p.status, data + 512);
}

static void header_split_across_descriptors(void **s)
{
	set_hdr(VIRTIO_BLK_T_OUT, 3);
	memcpy(data, hdr, 16);
	/* 5 + 11 header bytes, then data that starts in the second buffer */
	chain(2, 1, data, (size_t)5, data + 5, (size_t)(11 + 1024), status, (size_t)1);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
	assert_int_equal(p.type, VIRTIO_BLK_T_OUT);
	assert_int_equal(p.sector, 3);
	assert_int_equal(p.len, 1024);
	assert_ptr_equal(p.data[0].iov_base, data + 16);
}

static void hostile_requests(void **s)
{
	set_hdr(VIRTIO_BLK_T_IN, 0);
	chain(1, 0, hdr, (size_t)16); /* no room for a status byte */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);
	assert_null(p.status);

	chain(1, 1, hdr, (size_t)10, status, (size_t)1); /* short header */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);

	chain(1, 1, hdr, (size_t)16, data, (size_t)(100 + 1)); /* not whole sectors */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);

	set_hdr(VIRTIO_BLK_T_IN, 99); /* two sectors from the last one: past the end */
	chain(1, 1, hdr, (size_t)16, data, (size_t)(1024 + 1));
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);

	set_hdr(VIRTIO_BLK_T_IN, UINT64_MAX); /* sector + count wraps */
	chain(1, 1, hdr, (size_t)16, data, (size_t)(512 + 1));
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);

	set_hdr(42, 0);
	chain(1, 1, hdr, (size_t)16, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_UNSUPP);
}

static void readonly_refuses_writes(void **s)
{
	struct blk_disk_info ro = disk;
	ro.readonly = true;
	set_hdr(VIRTIO_BLK_T_OUT, 0);
	chain(2, 1, hdr, (size_t)16, data, (size_t)512, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &ro, &p), VIRTIO_BLK_S_IOERR);
	set_hdr(VIRTIO_BLK_T_IN, 0);
	chain(1, 1, hdr, (size_t)16, data, (size_t)513);
	assert_int_equal(blk_parse(&e, &ro, &p), VIRTIO_BLK_S_OK);
}

static void get_id_and_flush(void **s)
{
	set_hdr(VIRTIO_BLK_T_GET_ID, 0);
	chain(1, 1, hdr, (size_t)16, data, (size_t)(20 + 1));
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
	assert_int_equal(p.len, 20);
	chain(1, 1, hdr, (size_t)16, data, (size_t)(8 + 1)); /* a shorter buffer gets a prefix */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
	assert_int_equal(p.len, 8);
	set_hdr(VIRTIO_BLK_T_FLUSH, 0);
	chain(1, 1, hdr, (size_t)16, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
}

static void set_seg(uint64_t sector, uint32_t n, uint32_t flags)
{
	memcpy(seg, &sector, 8);
	memcpy(seg + 8, &n, 4);
	memcpy(seg + 12, &flags, 4);
}

static void discard_and_write_zeroes(void **s)
{
	set_hdr(VIRTIO_BLK_T_WRITE_ZEROES, 0);
	set_seg(8, 16, 1);
	chain(2, 1, hdr, (size_t)16, seg, (size_t)16, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_OK);
	assert_int_equal(p.range_sector, 8);
	assert_int_equal(p.range_sectors, 16);
	assert_true(p.unmap);

	set_hdr(VIRTIO_BLK_T_DISCARD, 0);
	set_seg(8, 16, 1); /* unmap is not a discard flag */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_UNSUPP);
	set_seg(90, 16, 0); /* past the end */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);
	set_seg(0, 65, 0); /* more than max_discard_sectors */
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);
	/* two segments: we offered one */
	chain(2, 1, hdr, (size_t)16, data, (size_t)32, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &disk, &p), VIRTIO_BLK_S_IOERR);

	struct blk_disk_info nodisc = disk;
	nodisc.discard = false;
	set_seg(0, 1, 0);
	chain(2, 1, hdr, (size_t)16, seg, (size_t)16, status, (size_t)1);
	assert_int_equal(blk_parse(&e, &nodisc, &p), VIRTIO_BLK_S_UNSUPP);
}

static void too_many_segments(void **s)
{
	/* more data buffers than seg_max: refused, never overflowing p.data */
	set_hdr(VIRTIO_BLK_T_IN, 0);
	memset(&e, 0, sizeof(e));
	e.n_out = 1;
	e.iov[0].iov_base = hdr;
	e.iov[0].iov_len = 16;
	e.out_len = 16;
	e.n_in = BLK_MAX_SEGS + 2;
	for (unsigned i = 1; i <= e.n_in; i++) {
		e.iov[i].iov_base = data + (i % 16) * 512;
		e.iov[i].iov_len = i == e.n_in ? 1 : 512;
		e.in_len += e.iov[i].iov_len;
	}
	assert_int_equal(blk_parse(&e, &(struct blk_disk_info){ .sectors = 1000 }, &p), VIRTIO_BLK_S_IOERR);
}

/* Which parsed requests may join a merged read or write. */
static void merging(void **state)
{
	(void)state;
	struct blk_parsed r = { .type = VIRTIO_BLK_T_IN, .sector = 8, .ndata = 2, .len = 4096 };
	/* continues a read that ends at sector 8 */
	assert_true(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, 2, 4096, 1, &r));
	/* a gap, an overlap, another type */
	assert_false(blk_mergeable(VIRTIO_BLK_T_IN, 7 * BLK_SECTOR, 2, 4096, 1, &r));
	assert_false(blk_mergeable(VIRTIO_BLK_T_IN, 9 * BLK_SECTOR, 2, 4096, 1, &r));
	assert_false(blk_mergeable(VIRTIO_BLK_T_OUT, 8 * BLK_SECTOR, 2, 4096, 1, &r));
	r.type = VIRTIO_BLK_T_OUT;
	assert_true(blk_mergeable(VIRTIO_BLK_T_OUT, 8 * BLK_SECTOR, 2, 4096, 1, &r));
	/* only reads and writes merge, and only with data */
	r.type = VIRTIO_BLK_T_FLUSH;
	assert_false(blk_mergeable(VIRTIO_BLK_T_FLUSH, 8 * BLK_SECTOR, 2, 4096, 1, &r));
	r.type = VIRTIO_BLK_T_DISCARD;
	assert_false(blk_mergeable(VIRTIO_BLK_T_DISCARD, 8 * BLK_SECTOR, 2, 4096, 1, &r));
	r.type = VIRTIO_BLK_T_IN;
	r.len = 0;
	assert_false(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, 2, 4096, 1, &r));
	r.len = 4096;
	/* the limits: requests, iovecs, bytes */
	assert_true(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, 2, 4096, BLK_MERGE_MAX_REQS - 1, &r));
	assert_false(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, 2, 4096, BLK_MERGE_MAX_REQS, &r));
	assert_true(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, BLK_MERGE_MAX_IOV - 2, 4096, 1, &r));
	assert_false(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, BLK_MERGE_MAX_IOV - 1, 4096, 1, &r));
	assert_true(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, 2, BLK_MERGE_MAX_BYTES - 4096, 1, &r));
	assert_false(blk_mergeable(VIRTIO_BLK_T_IN, 8 * BLK_SECTOR, 2, BLK_MERGE_MAX_BYTES - 4095, 1, &r));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(read_request), cmocka_unit_test(status_shares_the_data_buffer),
		cmocka_unit_test(header_split_across_descriptors), cmocka_unit_test(hostile_requests),
		cmocka_unit_test(readonly_refuses_writes), cmocka_unit_test(get_id_and_flush),
		cmocka_unit_test(discard_and_write_zeroes), cmocka_unit_test(too_many_segments),
		cmocka_unit_test(merging),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
