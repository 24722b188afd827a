/* The virtqueue engine against a hostile guest: crafted rings in a fake
 * guest memory must be rejected without a crash (run under ASan in CI). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include "../../src/virtio/virtq.h"

#define MEM_SIZE (1 << 20)
#define QSZ 8
#define DESC 0x1000
#define AVAIL 0x2000
#define USED 0x3000
#define BUF 0x10000

static uint8_t *ram;
static struct gmem mem;
static struct virtq vq;
static struct virtq_elem elem;

static struct vring_desc *desc(void) { return (struct vring_desc *)(ram + DESC); }
static struct vring_avail *avail(void) { return (struct vring_avail *)(ram + AVAIL); }
static struct vring_used *used(void) { return (struct vring_used *)(ram + USED); }

static int setup(void **s)
{
	ram = calloc(1, MEM_SIZE);
	memset(&mem, 0, sizeof(mem));
	gmem_add(&mem, 0, MEM_SIZE, ram);
	virtq_reset(&vq);
	vq.size = QSZ;
	vq.desc_gpa = DESC;
	vq.avail_gpa = AVAIL;
	vq.used_gpa = USED;
	assert_int_equal(virtq_start(&vq, &mem), 0);
	return 0;
}

static int teardown(void **s)
{
	free(ram);
	return 0;
}

static void put(uint16_t head)
{
	avail()->ring[avail()->idx % QSZ] = head;
	avail()->idx++;
}

static void simple_chain(void **s)
{
	desc()[0] = (struct vring_desc){ BUF, 100, VRING_DESC_F_NEXT, 1 };
	desc()[1] = (struct vring_desc){ BUF + 100, 200, VRING_DESC_F_WRITE, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.n_out, 1);
	assert_int_equal(elem.n_in, 1);
	assert_int_equal(elem.out_len, 100);
	assert_int_equal(elem.in_len, 200);
	assert_ptr_equal(elem.iov[0].iov_base, ram + BUF);
	virtq_push(&vq, elem.head, 50);
	assert_int_equal(used()->idx, 1);
	assert_int_equal(used()->ring[0].id, 0);
	assert_int_equal(used()->ring[0].len, 50);
	assert_true(virtq_should_notify(&vq));
	assert_int_equal(virtq_pop(&vq, &elem), 0);
}

static void descriptor_loop(void **s)
{
	desc()[0] = (struct vring_desc){ BUF, 1, VRING_DESC_F_NEXT, 1 };
	desc()[1] = (struct vring_desc){ BUF, 1, VRING_DESC_F_NEXT, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
	assert_true(vq.broken);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL); /* stays broken */
}

static void self_loop(void **s)
{
	desc()[3] = (struct vring_desc){ BUF, 1, VRING_DESC_F_NEXT, 3 };
	put(3);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void address_out_of_range(void **s)
{
	desc()[0] = (struct vring_desc){ MEM_SIZE - 10, 100, 0, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void address_wraps(void **s)
{
	desc()[0] = (struct vring_desc){ UINT64_MAX - 10, 100, 0, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void huge_length(void **s)
{
	desc()[0] = (struct vring_desc){ BUF, 0xffffffff, VRING_DESC_F_WRITE, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void head_out_of_range(void **s)
{
	put(QSZ);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void next_out_of_range(void **s)
{
	desc()[0] = (struct vring_desc){ BUF, 1, VRING_DESC_F_NEXT, 200 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void avail_index_jump(void **s)
{
	avail()->idx = QSZ + 1; /* more pending than the ring holds */
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void readable_after_writable(void **s)
{
	desc()[0] = (struct vring_desc){ BUF, 1, VRING_DESC_F_WRITE | VRING_DESC_F_NEXT, 1 };
	desc()[1] = (struct vring_desc){ BUF, 1, 0, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void indirect_ok(void **s)
{
	struct vring_desc *t = (struct vring_desc *)(ram + 0x4000);
	t[0] = (struct vring_desc){ BUF, 16, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ BUF + 16, 32, VRING_DESC_F_WRITE, 0 };
	desc()[0] = (struct vring_desc){ 0x4000, 32, VRING_DESC_F_INDIRECT, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.out_len, 16);
	assert_int_equal(elem.in_len, 32);
}

static void indirect_loop(void **s)
{
	struct vring_desc *t = (struct vring_desc *)(ram + 0x4000);
	t[0] = (struct vring_desc){ BUF, 16, VRING_DESC_F_NEXT, 1 };
	t[1] = (struct vring_desc){ BUF, 16, VRING_DESC_F_NEXT, 0 };
	desc()[0] = (struct vring_desc){ 0x4000, 32, VRING_DESC_F_INDIRECT, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void indirect_nested(void **s)
{
	struct vring_desc *t = (struct vring_desc *)(ram + 0x4000);
	t[0] = (struct vring_desc){ 0x4000, 16, VRING_DESC_F_INDIRECT, 0 };
	desc()[0] = (struct vring_desc){ 0x4000, 16, VRING_DESC_F_INDIRECT, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void indirect_bad_length(void **s)
{
	desc()[0] = (struct vring_desc){ 0x4000, 17, VRING_DESC_F_INDIRECT, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void indirect_outside_memory(void **s)
{
	desc()[0] = (struct vring_desc){ MEM_SIZE - 16, 64, VRING_DESC_F_INDIRECT, 0 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void indirect_with_next(void **s)
{
	desc()[0] = (struct vring_desc){ 0x4000, 16, VRING_DESC_F_INDIRECT | VRING_DESC_F_NEXT, 1 };
	put(0);
	assert_int_equal(virtq_pop(&vq, &elem), -EINVAL);
}

static void rings_outside_memory(void **s)
{
	struct virtq q2;
	virtq_reset(&q2);
	q2.size = 256;
	q2.desc_gpa = MEM_SIZE - 16;
	q2.avail_gpa = AVAIL;
	q2.used_gpa = USED;
	assert_int_equal(virtq_start(&q2, &mem), -EINVAL);
	q2.size = 3; /* not a power of two */
	q2.desc_gpa = DESC;
	assert_int_equal(virtq_start(&q2, &mem), -EINVAL);
	q2.size = 8;
	q2.used_gpa = USED + 1; /* misaligned */
	assert_int_equal(virtq_start(&q2, &mem), -EINVAL);
}

static void event_idx_suppression(void **s)
{
	vq.event_idx = true;
	for (int i = 0; i < 3; i++) {
		desc()[i] = (struct vring_desc){ BUF, 4, VRING_DESC_F_WRITE, 0 };
		put(i);
		assert_int_equal(virtq_pop(&vq, &elem), 1);
	}
	/* while the device keeps popping, avail_event stays put: the driver's
	 * additions meanwhile need no kick */
	assert_int_equal(*(uint16_t *)&used()->ring[QSZ], 0);
	/* an empty pop publishes it before re-reading avail->idx, so a buffer
	 * added in between is seen */
	assert_int_equal(virtq_pop(&vq, &elem), 0);
	assert_int_equal(*(uint16_t *)&used()->ring[QSZ], 3);
	/* a buffer that comes now is found by the next pop, and avail_event
	 * stays where it was until the queue is empty again */
	desc()[3] = (struct vring_desc){ BUF, 4, VRING_DESC_F_WRITE, 0 };
	put(3);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(*(uint16_t *)&used()->ring[QSZ], 3);
	assert_int_equal(virtq_pop(&vq, &elem), 0);
	assert_int_equal(*(uint16_t *)&used()->ring[QSZ], 4);
	avail()->ring[QSZ] = 0; /* used_event: interrupt after the first entry */
	virtq_push(&vq, 0, 4);
	assert_true(virtq_should_notify(&vq)); /* first notification always */
	avail()->ring[QSZ] = 5; /* driver wants an interrupt only past entry 5 */
	virtq_push(&vq, 1, 4);
	assert_false(virtq_should_notify(&vq));
}

/* Unpop hands a chain back to the available side: it is popped again, in
 * the same order. */
static void inflight_heads(void **s)
{
	desc()[0] = (struct vring_desc){ BUF, 4, VRING_DESC_F_WRITE, 0 };
	desc()[1] = (struct vring_desc){ BUF, 4, VRING_DESC_F_WRITE, 0 };
	put(0);
	put(1);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	virtq_unpop(&vq);
	virtq_push(&vq, 0, 4);
	assert_int_equal(used()->idx, 1);
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.head, 1);
	assert_int_equal(virtq_pop(&vq, &elem), 0);
}

/* A chain completed after later ones were popped cannot be given back:
 * winding back over it would pop it twice and lose another (the vsock
 * receive path did that). The refusal changes nothing. */
static void unpop_refuses_completed_chain(void **s)
{
	for (uint16_t i = 0; i < 3; i++) {
		desc()[i] = (struct vring_desc){ BUF + i * 16, 4, VRING_DESC_F_WRITE, 0 };
		put(i);
	}
	for (uint16_t i = 0; i < 3; i++) {
		assert_int_equal(virtq_pop(&vq, &elem), 1);
		assert_int_equal(elem.head, i);
	}
	virtq_push(&vq, 1, 0);                /* the middle one completed */
	assert_int_equal(virtq_unpop(&vq), 0); /* 2 goes back */
	assert_int_equal(virtq_unpop(&vq), -1); /* 1 is done: refused */
	assert_int_equal(virtq_pop(&vq, &elem), 1);
	assert_int_equal(elem.head, 2);
	assert_int_equal(virtq_pop(&vq, &elem), 0);
	assert_int_equal(used()->idx, 1);
}

static void iov_copy_bounds(void **s)
{
	char a[4], b[4], out[16];
	struct iovec iov[2] = { { a, 4 }, { b, 4 } };
	assert_int_equal(iov_from_buf(iov, 2, 2, "abcdefgh", 8), 6);
	assert_int_equal(iov_to_buf(iov, 2, 0, out, sizeof(out)), 8);
	assert_memory_equal(out + 2, "abcdef", 6);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(simple_chain), T(inflight_heads), T(unpop_refuses_completed_chain), T(descriptor_loop), T(self_loop), T(address_out_of_range), T(address_wraps),
		T(huge_length), T(head_out_of_range), T(next_out_of_range), T(avail_index_jump),
		T(readable_after_writable), T(indirect_ok), T(indirect_loop), T(indirect_nested),
		T(indirect_bad_length), T(indirect_outside_memory), T(indirect_with_next), T(rings_outside_memory),
		T(event_idx_suppression), T(iov_copy_bounds),
	};
	return cmocka_run_group_tests_name("virtq", tests, NULL, NULL);
}
