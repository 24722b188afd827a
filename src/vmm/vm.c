/* KVM VM lifecycle: create, memory, irqchip, vCPU threads, interrupt routing. */
#define _GNU_SOURCE
#include "vm.h"
#include "device.h"
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>
#include "arch.h"
#include "../util/log.h"
#include "../sandbox/sandbox.h"


static int read_sys_flag(const char *path)
{
	char c = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return 0;
	if (read(fd, &c, 1) != 1)
		c = 0;
	close(fd);
	return c == 'Y' || c == 'y' || c == '1';
}

int kvm_check_nested(char *err, size_t errlen)
{
	if (read_sys_flag("/sys/module/kvm_intel/parameters/nested") ||
	    read_sys_flag("/sys/module/kvm_amd/parameters/nested"))
		return 0;
	snprintf(err, errlen, "nested virtualization is not supported");
	return -ENOTSUP;
}

static int fail(char *err, size_t errlen, const char *what)
{
	int e = errno;
	snprintf(err, errlen, "%s: %s", what, strerror(e));
	return -e;
}

static void stop_event(void *opaque, uint32_t events)
{
	struct vm *vm = opaque;
	uint64_t v;
	(void)events;
	if (read(vm->stop_efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_debug("stop eventfd: %m");
	vm->ev.quit = true;
}

int vm_create(struct vm *vm, unsigned ncpus, uint64_t ram_bytes, bool nested, char *err, size_t errlen)
{
	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = vm->mem_fd = vm->stop_efd = -1;
	vm->ncpus = ncpus;
	vm->nested = nested;
	vm->ram_size = ram_bytes;
	vm->state = VM_STARTING;
	vm->pio.name = "port I/O";
	vm->mmio.name = "MMIO";
	pthread_mutex_init(&vm->lock, NULL);
	pthread_mutex_init(&vm->pause_lock, NULL);
	/* timed waits below use CLOCK_MONOTONIC deadlines */
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&vm->pause_cond, &ca);
	pthread_cond_init(&vm->state_cond, &ca);
	pthread_condattr_destroy(&ca);

	vm->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0)
		return fail(err, errlen, "cannot open /dev/kvm");
	if (ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "cannot open /dev/kvm: unsupported KVM API version");
		return -ENOTSUP;
	}
	int max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_MAX_VCPUS);
	if (max_vcpus <= 0)
		max_vcpus = ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_NR_VCPUS);
	if (max_vcpus > 0 && ncpus > (unsigned)max_vcpus) {
		snprintf(err, errlen, "invalid virtual machine configuration: %u vCPUs requested, KVM allows at most %d",
			 ncpus, max_vcpus);
		return -EINVAL;
	}
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0)
		return fail(err, errlen, "KVM_CREATE_VM");
	int r = arch_vm_init(vm, err, errlen);
	if (r < 0)
		return r;

	/* Guest RAM: one memfd (shareable later), split around the PCI hole. */
	uint64_t high_base;
	arch_ram_split(ram_bytes, &vm->low_ram, &high_base);
	vm->high_ram = ram_bytes - vm->low_ram;
	vm->mem_fd = memfd_create("kvkit-guest-ram", MFD_CLOEXEC);
	if (vm->mem_fd < 0)
		return fail(err, errlen, "memfd_create");
	if (ftruncate(vm->mem_fd, ram_bytes) < 0)
		return fail(err, errlen, "invalid virtual machine configuration: cannot size guest memory");
	vm->ram = mmap(NULL, ram_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_NORESERVE, vm->mem_fd, 0);
	if (vm->ram == MAP_FAILED) {
		vm->ram = NULL;
		return fail(err, errlen, "invalid virtual machine configuration: cannot map guest memory");
	}
	madvise(vm->ram, ram_bytes, MADV_DONTDUMP);
	/* Huge pages where the host allows them for shared memory
	 * (transparent_hugepage/shmem_enabled = advise or always; Debian's
	 * default is never): KVM then maps the guest with 2 MiB pages, so the
	 * guest takes fewer TLB misses and kvkit fewer faults. QEMU's anonymous
	 * RAM gets them from the plain THP setting. */
	madvise(vm->ram, ram_bytes, MADV_HUGEPAGE);
	struct kvm_userspace_memory_region slot = {
		.slot = 0, .guest_phys_addr = 0, .memory_size = vm->low_ram, .userspace_addr = (uintptr_t)vm->ram,
	};
	if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
		return fail(err, errlen, "invalid virtual machine configuration: KVM_SET_USER_MEMORY_REGION");
	gmem_add(&vm->mem, 0, vm->low_ram, vm->ram);
	if (vm->high_ram) {
		slot.slot = 1;
		slot.guest_phys_addr = high_base;
		slot.memory_size = vm->high_ram;
		slot.userspace_addr = (uintptr_t)(vm->ram + vm->low_ram);
		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &slot) < 0)
			return fail(err, errlen, "invalid virtual machine configuration: KVM_SET_USER_MEMORY_REGION");
		gmem_add(&vm->mem, high_base, vm->high_ram, vm->ram + vm->low_ram);
	}
	vm->next_slot = 2;

	vm->routes = calloc(1, sizeof(*vm->routes) + VM_MAX_ROUTES * sizeof(struct kvm_irq_routing_entry));
	if (!vm->routes)
		return fail(err, errlen, "out of memory");
	vm->next_gsi = arch_irq_routes(vm->routes);
	if (ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->routes) < 0)
		return fail(err, errlen, "KVM_SET_GSI_ROUTING");

	if (ev_init(&vm->ev) < 0)
		return fail(err, errlen, "epoll_create");
	vm->stop_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (vm->stop_efd < 0)
		return fail(err, errlen, "eventfd");
	vm->stop_watch = (struct ev_watch){ .fd = vm->stop_efd, .events = EPOLLIN, .fn = stop_event, .opaque = vm };
	ev_add(&vm->ev, &vm->stop_watch);

	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	vm->vcpus = calloc(ncpus, sizeof(*vm->vcpus));
	if (!vm->vcpus)
		return fail(err, errlen, "out of memory");
	for (unsigned i = 0; i < ncpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		c->vm = vm;
		c->id = i;
		c->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, i);
		if (c->fd < 0)
			return fail(err, errlen, "KVM_CREATE_VCPU");
		c->run = mmap(NULL, vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, c->fd, 0);
		if (c->run == MAP_FAILED) {
			c->run = NULL;
			return fail(err, errlen, "mmap kvm_run");
		}
		int r = arch_vcpu_init(c, err, errlen);
		if (r < 0)
			return r;
	}
	return 0;
}

void vm_destroy(struct vm *vm)
{
	if (vm->vcpus) {
		for (unsigned i = 0; i < vm->ncpus; i++) {
			if (vm->vcpus[i].run)
				munmap(vm->vcpus[i].run, vm->run_size);
			if (vm->vcpus[i].fd >= 0)
				close(vm->vcpus[i].fd);
		}
		free(vm->vcpus);
	}
	free(vm->routes);
	if (vm->ram)
		munmap(vm->ram, vm->ram_size);
	if (vm->mem_fd >= 0)
		close(vm->mem_fd);
	if (vm->stop_efd >= 0)
		close(vm->stop_efd);
	if (vm->ev.epfd > 0)
		close(vm->ev.epfd);
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	memset(vm, 0, sizeof(*vm));
}

void vm_request_stop(struct vm *vm, enum vm_stop_reason why, const char *detail)
{
	uint64_t one = 1;
	pthread_mutex_lock(&vm->lock);
	if (vm->stop_reason == STOP_NONE) {
		if (why == STOP_POWEROFF)
			log_phase("power-off requested"); /* bench/boot: kvkit's shut-down starts */
		vm->stop_reason = why;
		if (detail)
			snprintf(vm->error, sizeof(vm->error), "%s", detail);
		vm->state = why == STOP_ERROR ? VM_ERROR : VM_STOPPING;
		pthread_cond_broadcast(&vm->state_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	vm->vcpus_exit = true;
	/* parked vCPUs wake up to exit */
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	if (write(vm->stop_efd, &one, sizeof(one)) < 0)
		log_debug("stop eventfd write: %m");
}

/* ---- vCPU threads ---- */

static void kick_handler(int sig) { (void)sig; }

static bool handle_exit(struct vcpu *c)
{
	struct kvm_run *run = c->run;
	struct vm *vm = c->vm;
	char detail[200];

	switch (run->exit_reason) {
	case KVM_EXIT_IO: {
		uint8_t *p = (uint8_t *)run + run->io.data_offset;
		for (uint32_t i = 0; i < run->io.count; i++, p += run->io.size)
			bus_access(&vm->pio, run->io.port, p, run->io.size, run->io.direction == KVM_EXIT_IO_OUT);
		return true;
	}
	case KVM_EXIT_MMIO:
		bus_access(&vm->mmio, run->mmio.phys_addr, run->mmio.data, run->mmio.len, run->mmio.is_write);
		return true;
	case KVM_EXIT_SHUTDOWN:
		log_info("vCPU %d: triple fault, treating as guest reset", c->id);
		vm_request_stop(vm, STOP_REBOOT, NULL);
		return false;
	case KVM_EXIT_SYSTEM_EVENT:
		if (run->system_event.type == KVM_SYSTEM_EVENT_RESET)
			vm_request_stop(vm, STOP_REBOOT, NULL);
		else
			vm_request_stop(vm, STOP_POWEROFF, NULL);
		return false;
	case KVM_EXIT_HLT:
		/* only without an in-kernel LAPIC; treat as idle */
		return true;
	case KVM_EXIT_FAIL_ENTRY:
		snprintf(detail, sizeof(detail), "vCPU %d: KVM entry failed, hardware reason 0x%llx", c->id,
			 (unsigned long long)run->fail_entry.hardware_entry_failure_reason);
		break;
	case KVM_EXIT_INTERNAL_ERROR:
		snprintf(detail, sizeof(detail), "vCPU %d: KVM internal error, suberror %u", c->id,
			 run->internal.suberror);
		break;
	default:
		snprintf(detail, sizeof(detail), "vCPU %d: unexpected KVM exit reason %u", c->id, run->exit_reason);
		break;
	}
	vm_request_stop(vm, STOP_ERROR, detail);
	return false;
}

/* Wait outside KVM_RUN until resumed or stopped. */
static void vcpu_park(struct vcpu *c)
{
	struct vm *vm = c->vm;
	pthread_mutex_lock(&vm->pause_lock);
	vm->parked++;
	pthread_cond_broadcast(&vm->pause_cond);
	while (vm->pause_req && !vm->vcpus_exit)
		pthread_cond_wait(&vm->pause_cond, &vm->pause_lock);
	vm->parked--;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
}

static uint64_t now_ns(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_sec * 1000000000u + t.tv_nsec;
}

static void count_exit(struct vcpu *c)
{
	for (unsigned i = 0; i < VCPU_EXIT_HIST; i++) {
		struct vcpu_exit_count *h = &c->hist[i];
		if (h->n && (h->reason != c->last_exit || h->addr != c->last_exit_addr))
			continue;
		h->reason = c->last_exit;
		h->addr = c->last_exit_addr;
		h->n++;
		return;
	}
	c->hist_other++;
}

/* Cheap bookkeeping so a stuck guest can be told from a stuck vCPU thread. */
static void mark(struct vcpu *c, int in_guest)
{
	if (!in_guest) {
		c->exits++;
		c->last_exit = c->run->exit_reason;
		c->last_exit_addr = c->run->exit_reason == KVM_EXIT_IO ? c->run->io.port
				    : c->run->exit_reason == KVM_EXIT_MMIO ? c->run->mmio.phys_addr : 0;
		count_exit(c);
	}
	__atomic_store_n(&c->since_ns, now_ns(), __ATOMIC_RELAXED);
	__atomic_store_n(&c->in_guest, in_guest, __ATOMIC_RELEASE);
}

int vm_memslot_new(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	int slot = (int)vm->next_slot++;
	pthread_mutex_unlock(&vm->lock);
	return slot;
}

int vm_memslot_set(struct vm *vm, int slot, uint64_t gpa, void *hva, uint64_t size)
{
	struct kvm_userspace_memory_region r = {
		.slot = (uint32_t)slot, .guest_phys_addr = gpa, .memory_size = size, .userspace_addr = (uintptr_t)hva,
	};
	return ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0 ? -errno : 0;
}

int vm_add_fault_fixer(struct vm *vm, bool (*fn)(void *opaque), void *opaque)
{
	if (vm->nfixers >= sizeof(vm->fixers) / sizeof(vm->fixers[0]))
		return -ENOSPC;
	vm->fixers[vm->nfixers++] = (struct vm_fault_fixer){ fn, opaque };
	return 0;
}

/* KVM_RUN failed with EFAULT: the guest touched memory whose host pages
 * cannot be produced. Only a fixer that changed something earns a retry. */
static bool fix_fault(struct vm *vm)
{
	bool changed = false;
	for (unsigned i = 0; i < vm->nfixers; i++)
		changed |= vm->fixers[i].fn(vm->fixers[i].opaque);
	return changed;
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *c = arg;
	char name[16];
	sigset_t set;

	snprintf(name, sizeof(name), "vcpu%d", c->id);
	pthread_setname_np(pthread_self(), name);
	sigemptyset(&set);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_UNBLOCK, &set, NULL);
	sandbox_thread(SANDBOX_VCPU);
	sandbox_test_hook("vcpu");

	if (c->id == 0)
		log_phase("first KVM_RUN"); /* bench/boot: kvkit's own start-up ends here */
	while (!c->vm->vcpus_exit) {
		if (__atomic_load_n(&c->vm->pause_req, __ATOMIC_SEQ_CST)) {
			vcpu_park(c);
			continue;
		}
		mark(c, 1);
		int r = ioctl(c->fd, KVM_RUN, 0);
		mark(c, 0);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				c->run->immediate_exit = 0;
				continue;
			}
			if (errno == EFAULT && fix_fault(c->vm))
				continue;
			char detail[100];
			snprintf(detail, sizeof(detail), "vCPU %d: KVM_RUN: %s", c->id, strerror(errno));
			vm_request_stop(c->vm, STOP_ERROR, detail);
			break;
		}
		if (!handle_exit(c))
			break;
	}
	return NULL;
}

int vm_start(struct vm *vm)
{
	struct sigaction sa = { .sa_handler = kick_handler };
	sigaction(SIGUSR1, &sa, NULL);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		int r = pthread_create(&c->thread, NULL, vcpu_thread, c);
		if (r) {
			vm_request_stop(vm, STOP_ERROR, "cannot create vCPU thread");
			return -r;
		}
		c->started = true;
	}
	pthread_mutex_lock(&vm->lock);
	if (vm->state == VM_STARTING)
		vm->state = VM_RUNNING;
	pthread_mutex_unlock(&vm->lock);
	return 0;
}

static void kick_vcpus(struct vm *vm)
{
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		if (!c->started)
			continue;
		c->run->immediate_exit = 1;
		pthread_kill(c->thread, SIGUSR1);
	}
}

static void deadline_in(struct timespec *ts, int ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000;
	if (ts->tv_nsec >= 1000000000) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000;
	}
}

enum vm_state vm_get_state(struct vm *vm)
{
	pthread_mutex_lock(&vm->lock);
	enum vm_state s = vm->state;
	pthread_mutex_unlock(&vm->lock);
	return s;
}

void vm_set_state(struct vm *vm, enum vm_state s)
{
	pthread_mutex_lock(&vm->lock);
	vm->state = s;
	pthread_cond_broadcast(&vm->state_cond);
	pthread_mutex_unlock(&vm->lock);
}

bool vm_wait_stopped(struct vm *vm, int timeout_ms)
{
	struct timespec dl;
	deadline_in(&dl, timeout_ms);
	pthread_mutex_lock(&vm->lock);
	while (vm->state != VM_STOPPED && vm->state != VM_ERROR)
		if (pthread_cond_timedwait(&vm->state_cond, &vm->lock, &dl) == ETIMEDOUT)
			break;
	bool ok = vm->state == VM_STOPPED || vm->state == VM_ERROR;
	pthread_mutex_unlock(&vm->lock);
	return ok;
}

/* Move from one state to another only if the VM is in `from`. */
static bool transition(struct vm *vm, enum vm_state from, enum vm_state to)
{
	pthread_mutex_lock(&vm->lock);
	bool ok = vm->state == from && vm->stop_reason == STOP_NONE;
	if (ok) {
		vm->state = to;
		pthread_cond_broadcast(&vm->state_cond);
	}
	pthread_mutex_unlock(&vm->lock);
	return ok;
}

#define PARK_TIMEOUT_MS 2000

int vm_pause(struct vm *vm, char *err, size_t errlen)
{
	if (!transition(vm, VM_RUNNING, VM_PAUSING)) {
		snprintf(err, errlen, "cannot pause the VM in state %s", vm_state_name(vm_get_state(vm)));
		return -EBUSY;
	}
	vm->devices_paused = true;
	devices_quiesce(vm);
	__atomic_store_n(&vm->pause_req, true, __ATOMIC_SEQ_CST);
	kick_vcpus(vm);
	struct timespec dl;
	deadline_in(&dl, PARK_TIMEOUT_MS);
	pthread_mutex_lock(&vm->pause_lock);
	while (vm->parked < vm->ncpus && !vm->vcpus_exit)
		if (pthread_cond_timedwait(&vm->pause_cond, &vm->pause_lock, &dl) == ETIMEDOUT)
			break;
	bool all = vm->parked == vm->ncpus;
	pthread_mutex_unlock(&vm->pause_lock);
	if (!all) {
		/* give up: let the vCPUs run on rather than half-pause the guest */
		pthread_mutex_lock(&vm->pause_lock);
		vm->pause_req = false;
		pthread_cond_broadcast(&vm->pause_cond);
		pthread_mutex_unlock(&vm->pause_lock);
		vm->devices_paused = false;
		transition(vm, VM_PAUSING, VM_RUNNING);
		snprintf(err, errlen, "cannot pause the VM: a vCPU did not stop within %d ms", PARK_TIMEOUT_MS);
		return -EBUSY;
	}
	/* the guest's kvmclock stops with it: at resume it goes on from here */
	if (ioctl(vm->vm_fd, KVM_GET_CLOCK, &vm->saved_clock) < 0)
		log_warn("KVM_GET_CLOCK: %m; the guest clock will jump at resume");
	else
		vm->saved_clock.flags = 0;
	transition(vm, VM_PAUSING, VM_PAUSED);
	log_info("virtual machine is paused");
	return 0;
}

int vm_resume(struct vm *vm, char *err, size_t errlen)
{
	if (!transition(vm, VM_PAUSED, VM_RESUMING)) {
		snprintf(err, errlen, "cannot resume the VM in state %s", vm_state_name(vm_get_state(vm)));
		return -EBUSY;
	}
	if (vm->saved_clock.clock && ioctl(vm->vm_fd, KVM_SET_CLOCK, &vm->saved_clock) < 0)
		log_warn("KVM_SET_CLOCK: %m");
	vm->devices_paused = false;
	devices_resume(vm);
	pthread_mutex_lock(&vm->pause_lock);
	vm->pause_req = false;
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	transition(vm, VM_RESUMING, VM_RUNNING);
	log_info("virtual machine is running");
	return 0;
}

void vm_stop_vcpus(struct vm *vm)
{
	vm->vcpus_exit = true;
	pthread_mutex_lock(&vm->pause_lock);
	pthread_cond_broadcast(&vm->pause_cond);
	pthread_mutex_unlock(&vm->pause_lock);
	if (log_enabled(LOG_DEBUG)) {
		uint64_t now = now_ns();
		for (unsigned i = 0; i < vm->ncpus; i++) {
			struct vcpu *c = &vm->vcpus[i];
			if (c->started)
				log_debug("vCPU %u at stop: %s for %.3f s, %llu exits, the last reason %u at %#llx", i,
					  __atomic_load_n(&c->in_guest, __ATOMIC_ACQUIRE) ? "in KVM_RUN" : "in kvkit",
					  (now - __atomic_load_n(&c->since_ns, __ATOMIC_RELAXED)) / 1e9,
					  (unsigned long long)c->exits, c->last_exit, (unsigned long long)c->last_exit_addr);
		}
	}
	kick_vcpus(vm);
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct vcpu *c = &vm->vcpus[i];
		if (c->started)
			pthread_join(c->thread, NULL);
		c->started = false;
	}
}

static int by_count(const void *a, const void *b)
{
	const struct vcpu_exit_count *x = a, *y = b;
	return x->n < y->n ? 1 : x->n > y->n ? -1 : 0;
}

static void log_exit_counts(struct vcpu *c)
{
	struct vcpu_exit_count h[VCPU_EXIT_HIST];
	memcpy(h, c->hist, sizeof(h));
	qsort(h, VCPU_EXIT_HIST, sizeof(h[0]), by_count);
	char line[600];
	int n = snprintf(line, sizeof(line), "vCPU %d: %llu exits to kvkit:", c->id, (unsigned long long)c->exits);
	for (unsigned i = 0; i < VCPU_EXIT_HIST && h[i].n && n < (int)sizeof(line) - 48; i++) {
		if (h[i].reason == KVM_EXIT_IO || h[i].reason == KVM_EXIT_MMIO)
			n += snprintf(line + n, sizeof(line) - n, " %s 0x%llx x%llu,",
				      h[i].reason == KVM_EXIT_IO ? "pio" : "mmio", (unsigned long long)h[i].addr,
				      (unsigned long long)h[i].n);
		else
			n += snprintf(line + n, sizeof(line) - n, " reason %u x%llu,", h[i].reason,
				      (unsigned long long)h[i].n);
	}
	if (n < (int)sizeof(line) - 1)
		snprintf(line + n, sizeof(line) - n, " rest x%llu", (unsigned long long)c->hist_other);
	log_debug("%s", line);
}

void vm_log_vcpu_state(struct vm *vm)
{
	if (!log_enabled(LOG_DEBUG))
		return;
	for (unsigned i = 0; i < vm->ncpus; i++) {
		struct kvm_regs r;
		struct kvm_sregs sr;
		if (ioctl(vm->vcpus[i].fd, KVM_GET_REGS, &r) < 0 || ioctl(vm->vcpus[i].fd, KVM_GET_SREGS, &sr) < 0)
			continue;
		log_debug("vCPU %u: rip 0x%llx rsp 0x%llx rflags 0x%llx cr0 0x%llx cs 0x%x efer 0x%llx", i,
			  (unsigned long long)r.rip, (unsigned long long)r.rsp, (unsigned long long)r.rflags,
			  (unsigned long long)sr.cr0, sr.cs.selector, (unsigned long long)sr.efer);
		char st[400];
		arch_vcpu_describe(&vm->vcpus[i], st, sizeof(st));
		log_debug("vCPU %u: %s", i, st);
	}
}

void vm_log_exit_counts(struct vm *vm)
{
	if (log_enabled(LOG_DEBUG))
		for (unsigned i = 0; i < vm->ncpus; i++)
			log_exit_counts(&vm->vcpus[i]);
}

/* ---- interrupts ---- */

int vm_irq_line(struct vm *vm, unsigned irq, int level)
{
	struct kvm_irq_level l = { .irq = irq, .level = level };
	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &l) < 0 ? -errno : 0;
}

int vm_msi_gsi_alloc(struct vm *vm)
{
	int gsi;
	pthread_mutex_lock(&vm->lock);
	if (vm->routes->nr >= VM_MAX_ROUTES) {
		pthread_mutex_unlock(&vm->lock);
		return -ENOSPC;
	}
	gsi = vm->next_gsi++;
	struct kvm_irq_routing_entry *e = &vm->routes->entries[vm->routes->nr++];
	memset(e, 0, sizeof(*e));
	e->gsi = gsi;
	e->type = KVM_IRQ_ROUTING_MSI;
	pthread_mutex_unlock(&vm->lock);
	return gsi;
}

int vm_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data)
{
	int r = -ENOENT;
	pthread_mutex_lock(&vm->lock);
	for (uint32_t i = 0; i < vm->routes->nr; i++) {
		struct kvm_irq_routing_entry *e = &vm->routes->entries[i];
		if (e->gsi != gsi || e->type != KVM_IRQ_ROUTING_MSI)
			continue;
		e->u.msi.address_lo = (uint32_t)addr;
		e->u.msi.address_hi = addr >> 32;
		e->u.msi.data = data;
		r = ioctl(vm->vm_fd, KVM_SET_GSI_ROUTING, vm->routes) < 0 ? -errno : 0;
		break;
	}
	pthread_mutex_unlock(&vm->lock);
	return r;
}

int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign)
{
	struct kvm_irqfd f = { .fd = efd, .gsi = gsi, .flags = assign ? 0 : KVM_IRQFD_FLAG_DEASSIGN };
	return ioctl(vm->vm_fd, KVM_IRQFD, &f) < 0 ? -errno : 0;
}

int vm_ioeventfd(struct vm *vm, int efd, uint64_t addr, unsigned len, bool pio, bool assign)
{
	struct kvm_ioeventfd f = { .addr = addr, .len = len, .fd = efd };
	if (pio)
		f.flags |= KVM_IOEVENTFD_FLAG_PIO;
	if (!assign)
		f.flags |= KVM_IOEVENTFD_FLAG_DEASSIGN;
	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &f) < 0 ? -errno : 0;
}
