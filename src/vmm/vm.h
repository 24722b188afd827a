/* A KVM virtual machine: guest RAM, in-kernel irqchip, vCPU threads, the
 * trap buses, interrupt routing, and the one state machine that owns every
 * lifecycle transition. */
#ifndef KVKIT_VM_H
#define KVKIT_VM_H
#include <linux/kvm.h>
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include "bus.h"
#include "eventloop.h"
#include "guest_mem.h"

enum vm_state {
	VM_STARTING, VM_RUNNING, VM_PAUSING, VM_PAUSED, VM_RESUMING, VM_STOPPING, VM_STOPPED, VM_ERROR,
};

enum vm_stop_reason { STOP_NONE, STOP_POWEROFF, STOP_REBOOT, STOP_HARD, STOP_ERROR };

#define VCPU_EXIT_HIST 24

struct vcpu {
	struct vm *vm;
	int id;
	int fd;
	struct kvm_run *run;
	pthread_t thread;
	bool started;
	/* for the debug log at stop: is the thread in the guest, and since when */
	int in_guest;
	uint32_t last_exit;
	uint64_t last_exit_addr, exits, since_ns;
	/* exits by (reason, port or address), logged at debug level at stop:
	 * what a boot spends its exits on */
	struct vcpu_exit_count { uint32_t reason; uint64_t addr, n; } hist[VCPU_EXIT_HIST];
	uint64_t hist_other;
};

#define VM_MAX_ROUTES 1024

struct device;

struct vm {
	int kvm_fd, vm_fd, mem_fd;
	size_t run_size;
	uint64_t ram_size, low_ram, high_ram;
	uint8_t *ram;
	struct gmem mem;
	unsigned ncpus;
	struct vcpu *vcpus;
	bool nested;
	struct bus pio, mmio;
	struct eventloop ev;

	pthread_mutex_t lock; /* state, routing */
	enum vm_state state;
	enum vm_stop_reason stop_reason;
	char error[256];
	int stop_efd;          /* wakes the I/O thread when a stop is requested */
	struct ev_watch stop_watch;
	volatile bool vcpus_exit;

	/* pause: vCPUs park on pause_cond while pause_req is set */
	pthread_mutex_t pause_lock;
	pthread_cond_t pause_cond;
	bool pause_req;
	unsigned parked;
	struct kvm_clock_data saved_clock;
	/* devices take no new guest work while set (read on the I/O thread) */
	volatile bool devices_paused;
	/* broadcast on lock's state changes (hard stop waits for Stopped) */
	pthread_cond_t state_cond;

	struct kvm_irq_routing *routes;
	uint32_t next_gsi;

	unsigned next_slot; /* KVM memory slots: 0 and 1 are RAM, then vm_memslot_new() */
	/* a vCPU's KVM_RUN failed with EFAULT: give devices that map host
	 * files into the guest a chance to mend (see vm_add_fault_fixer) */
	struct vm_fault_fixer { bool (*fn)(void *opaque); void *opaque; } fixers[4];
	unsigned nfixers;
	/* every device, in creation order (src/vmm/device.h) */
	struct device *devices, *devices_tail;
};

int vm_create(struct vm *vm, unsigned ncpus, uint64_t ram_bytes, bool nested, char *err, size_t errlen);
void vm_destroy(struct vm *vm);
int vm_start(struct vm *vm);
/* Ask the VM to stop for this reason (any thread); the I/O thread tears down. */
void vm_request_stop(struct vm *vm, enum vm_stop_reason why, const char *detail);
/* Kick all vCPUs out of KVM_RUN and join them (I/O thread only). */
void vm_stop_vcpus(struct vm *vm);
/* Debug aid after a hard stop: where each vCPU was. */
void vm_log_vcpu_state(struct vm *vm);
/* debug level: each vCPU's exits to userspace by port or address */
void vm_log_exit_counts(struct vm *vm);

/* A KVM memory slot of its own for device memory the guest maps (not RAM:
 * virtqueues cannot point into it). */
int vm_memslot_new(struct vm *vm);
/* Show [hva, hva + size) to the guest at gpa in this slot; size 0 removes it. */
int vm_memslot_set(struct vm *vm, int slot, uint64_t gpa, void *hva, uint64_t size);
/* fn() returns true if it changed something a vCPU may retry against. */
int vm_add_fault_fixer(struct vm *vm, bool (*fn)(void *opaque), void *opaque);

int vm_irq_line(struct vm *vm, unsigned irq, int level);
/* MSI routing: allocate a GSI, point it at (addr, data), commit to KVM. */
int vm_msi_gsi_alloc(struct vm *vm);
int vm_msi_route(struct vm *vm, uint32_t gsi, uint64_t addr, uint32_t data);
int vm_irqfd(struct vm *vm, int efd, uint32_t gsi, bool assign);
int vm_ioeventfd(struct vm *vm, int efd, uint64_t addr, unsigned len, bool pio, bool assign);

/* The state names of the REST API (spec 3.2). */
static inline const char *vm_state_name(enum vm_state s)
{
	static const char *const n[] = { "VirtualMachineStateStarting", "VirtualMachineStateRunning",
					 "VirtualMachineStatePausing", "VirtualMachineStatePaused",
					 "VirtualMachineStateResuming", "VirtualMachineStateStopping",
					 "VirtualMachineStateStopped", "VirtualMachineStateError" };
	return (unsigned)s < sizeof(n) / sizeof(n[0]) ? n[s] : "VirtualMachineStateError";
}
enum vm_state vm_get_state(struct vm *vm);
/* Set the state (Stopped at the end, ...) and wake waiters. */
void vm_set_state(struct vm *vm, enum vm_state s);
/* Wait (bounded) until the state is one of Stopped/Error; false on timeout. */
bool vm_wait_stopped(struct vm *vm, int timeout_ms);
/* Running -> Pausing -> Paused: every vCPU parked outside KVM_RUN, the guest
 * clock saved, device queues quiesced. 0, or -EBUSY with why in err. */
int vm_pause(struct vm *vm, char *err, size_t errlen);
/* Paused -> Resuming -> Running: the guest clock continues from where it
 * stopped; devices look at their queues again. */
int vm_resume(struct vm *vm, char *err, size_t errlen);
int kvm_check_nested(char *err, size_t errlen);

#endif
