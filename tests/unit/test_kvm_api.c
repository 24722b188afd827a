/* KVM glue on the host's own /dev/kvm (PVM here is enough for this): VM and
 * vCPU creation with kvkit's setup, memory slots, and PIO/MMIO exit dispatch
 * with a tiny real-mode payload; ioeventfd delivery. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <unistd.h>
#include "../../src/vmm/vm.h"

static const uint8_t payload[] = {
	0xba, 0xf8, 0x03,             /* mov dx, 0x3f8 */
	0xb0, 'K',                    /* mov al, 'K' */
	0xee,                         /* out dx, al */
	0xb0, 0x42,                   /* mov al, 0x42 */
	0xe6, 0x80,                   /* out 0x80, al */
	0xb8, 0x00, 0x20,             /* mov ax, 0x2000 */
	0x8e, 0xc0,                   /* mov es, ax */
	0x26, 0xc6, 0x06, 0x10, 0x00, 0x5a, /* mov byte [es:0x10], 0x5a  (MMIO write at 0x20010) */
	0x26, 0xa0, 0x20, 0x00,       /* mov al, [es:0x20]  (MMIO read at 0x20020) */
	0xe6, 0x81,                   /* out 0x81, al */
	0xe6, 0x82,                   /* out 0x82, al  (ioeventfd, no exit) */
	0xe6, 0x99,                   /* out 0x99, al  (done) */
	0xf4,                         /* hlt */
};

static struct { uint8_t com1, dbg, echoed; uint64_t mmio_w_addr; uint8_t mmio_w_val; bool done; } seen;

static void pio(void *o, uint64_t off, uint8_t *d, unsigned len, bool w)
{
	uint64_t port = (uintptr_t)o + off;
	if (!w) { memset(d, 0, len); return; }
	if (port == 0x3f8) seen.com1 = d[0];
	if (port == 0x80) seen.dbg = d[0];
	if (port == 0x81) seen.echoed = d[0];
	if (port == 0x99) seen.done = true;
}

static void mmio(void *o, uint64_t off, uint8_t *d, unsigned len, bool w)
{
	if (w) { seen.mmio_w_addr = 0x20000 + off; seen.mmio_w_val = d[0]; }
	else memset(d, 0x77, len);
}

static void real_mode_exits(void **s)
{
	struct vm vm;
	char err[256];
	int fd = open("/dev/kvm", O_RDWR);
	if (fd < 0) {
		fprintf(stderr, "SKIP: no /dev/kvm on this machine: KVM API tests not run\n");
		skip();
	}
	close(fd);
	assert_int_equal(vm_create(&vm, 1, 0x10000, false, err, sizeof(err)), 0);
	memcpy(vm.ram + 0x1000, payload, sizeof(payload));
	assert_ptr_equal(gmem_ptr(&vm.mem, 0x1000, 16), vm.ram + 0x1000);
	assert_null(gmem_ptr(&vm.mem, 0x20000, 1)); /* not RAM: MMIO */
	bus_register(&vm.pio, 0x3f8, 1, pio, (void *)0x3f8);
	bus_register(&vm.pio, 0x80, 2, pio, (void *)0x80);
	bus_register(&vm.pio, 0x99, 1, pio, (void *)0x99);
	bus_register(&vm.mmio, 0x20000, 0x1000, mmio, NULL);
	int efd = eventfd(0, EFD_NONBLOCK);
	assert_int_equal(vm_ioeventfd(&vm, efd, 0x82, 1, true, true), 0);

	struct vcpu *c = &vm.vcpus[0];
	struct kvm_sregs sr;
	assert_int_equal(ioctl(c->fd, KVM_GET_SREGS, &sr), 0);
	sr.cs.base = 0;
	sr.cs.selector = 0;
	assert_int_equal(ioctl(c->fd, KVM_SET_SREGS, &sr), 0);
	struct kvm_regs regs = { .rip = 0x1000, .rflags = 2 };
	assert_int_equal(ioctl(c->fd, KVM_SET_REGS, &regs), 0);

	memset(&seen, 0, sizeof(seen));
	for (int i = 0; i < 100 && !seen.done; i++) {
		assert_int_equal(ioctl(c->fd, KVM_RUN, 0), 0);
		struct kvm_run *r = c->run;
		if (r->exit_reason == KVM_EXIT_IO)
			bus_access(&vm.pio, r->io.port, (uint8_t *)r + r->io.data_offset, r->io.size,
				   r->io.direction == KVM_EXIT_IO_OUT);
		else if (r->exit_reason == KVM_EXIT_MMIO)
			bus_access(&vm.mmio, r->mmio.phys_addr, r->mmio.data, r->mmio.len, r->mmio.is_write);
		else
			fail_msg("unexpected exit %u", r->exit_reason);
	}
	assert_true(seen.done);
	assert_int_equal(seen.com1, 'K');
	assert_int_equal(seen.dbg, 0x42);
	assert_int_equal(seen.mmio_w_addr, 0x20010);
	assert_int_equal(seen.mmio_w_val, 0x5a);
	assert_int_equal(seen.echoed, 0x77);
	uint64_t n = 0;
	assert_int_equal(read(efd, &n, 8), 8); /* the ioeventfd fired without an exit */
	assert_int_equal(n, 1);
	/* MSI routing and irqfd plumbing accept a route */
	int gsi = vm_msi_gsi_alloc(&vm);
	assert_true(gsi >= 24);
	assert_int_equal(vm_msi_route(&vm, gsi, 0xfee00000, 0x30), 0);
	assert_int_equal(vm_irqfd(&vm, efd, gsi, true), 0);
	close(efd);
	vm_destroy(&vm);
}

static void too_many_vcpus(void **s)
{
	struct vm vm;
	char err[256] = "";
	int fd = open("/dev/kvm", O_RDWR);
	if (fd < 0)
		skip();
	close(fd);
	assert_true(vm_create(&vm, 100000, 1 << 20, false, err, sizeof(err)) < 0);
	assert_non_null(strstr(err, "invalid virtual machine configuration"));
	vm_destroy(&vm);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(real_mode_exits),
		cmocka_unit_test(too_many_vcpus),
	};
	return cmocka_run_group_tests_name("kvm_api", tests, NULL, NULL);
}
