/* virtio-net's control queue: the one command taken (the number of queue
 * pairs) and everything else a driver, or a hostile guest, may send. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <cmocka.h>
#include "../../src/virtio/net_frames.h"

struct cmd {
	uint8_t out[8];
	uint8_t in[4];
	struct virtq_elem e;
};

/* A chain of the header and data (out_len bytes, split after split bytes
 * when not 0) and in_len bytes of room for the ack. */
static void chain(struct cmd *c, uint8_t class, uint8_t cmdno, uint16_t pairs, size_t out_len, size_t split,
		  size_t in_len)
{
	memset(c, 0, sizeof(*c));
	c->out[0] = class, c->out[1] = cmdno;
	c->out[2] = (uint8_t)pairs, c->out[3] = (uint8_t)(pairs >> 8);
	memset(c->in, 0xee, sizeof(c->in));
	unsigned k = 0;
	if (split && split < out_len) {
		c->e.iov[k++] = (struct iovec){ c->out, split };
		c->e.iov[k++] = (struct iovec){ c->out + split, out_len - split };
	} else {
		c->e.iov[k++] = (struct iovec){ c->out, out_len };
	}
	c->e.n_out = k;
	if (in_len)
		c->e.iov[k++] = (struct iovec){ c->in, in_len };
	c->e.n_in = k - c->e.n_out;
}

static void pairs_set(void **s)
{
	(void)s;
	struct cmd c;
	uint32_t w;
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 4, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 2);
	assert_int_equal(w, 1);
	assert_int_equal(c.in[0], VIRTIO_NET_OK);
	/* header and data in two pieces, as Linux sends them */
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 4, 4, 2, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 4);
	assert_int_equal(c.in[0], VIRTIO_NET_OK);
}

static void refused(void **s)
{
	(void)s;
	struct cmd c;
	uint32_t w;
	/* more pairs than the device has, none, no multiqueue negotiated */
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 5, 4, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 0);
	assert_int_equal(c.in[0], VIRTIO_NET_ERR);
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 0, 4, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 0);
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 4, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, false, &w), 0);
	assert_int_equal(c.in[0], VIRTIO_NET_ERR);
	/* another command (promiscuous mode: CTRL_RX is not offered) */
	chain(&c, VIRTIO_NET_CTRL_RX, VIRTIO_NET_CTRL_RX_PROMISC, 1, 3, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 0);
	assert_int_equal(c.in[0], VIRTIO_NET_ERR);
	/* the data cut short */
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 3, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 0);
	chain(&c, VIRTIO_NET_CTRL_MQ, 0, 0, 0, 0, 1);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 0);
	assert_int_equal(c.in[0], VIRTIO_NET_ERR);
}

static void ack_room(void **s)
{
	(void)s;
	struct cmd c;
	uint32_t w = 99;
	/* no room for the ack: the command still runs, nothing is written */
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 4, 0, 0);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 2);
	assert_int_equal(w, 0);
	/* more room than a byte: the ack is its last byte */
	chain(&c, VIRTIO_NET_CTRL_MQ, VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET, 2, 4, 0, 4);
	assert_int_equal(net_ctrl_command(&c.e, 4, true, &w), 2);
	assert_int_equal(w, 4);
	assert_int_equal(c.in[3], VIRTIO_NET_OK);
	assert_int_equal(c.in[0], 0xee);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(pairs_set),
		cmocka_unit_test(refused),
		cmocka_unit_test(ack_room),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
