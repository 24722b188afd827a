/* kvkit: parse the vfkit command line, validate, build the VM, run it, and
 * own every lifecycle transition (spec sections 1 and 3). */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <kvkit/cmdline.h>
#include <kvkit/config.h>
#include <kvkit/json.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>
#include "api/api.h"
#include "boot/efi.h"
#include "boot/linux.h"
#include "devices/platform.h"
#include "display/screenshot.h"
#include "display/vnc.h"
#include "display/window.h"
#include "devices/uart.h"
#include "pci/pci.h"
#include "services/cloudinit.h"
#include "services/ignition.h"
#include "sandbox/sandbox.h"
#include "services/timesync.h"
#include "vsock/vsock.h"
#include "util/file_replace.h"
#include "util/log.h"
#include "virtio/devices.h"
#include "vmm/arch.h"
#include "vmm/device.h"
#include "vmm/vm.h"

#ifndef KVKIT_VERSION
#define KVKIT_VERSION "0.1.0"
#endif
#ifndef KVKIT_VFKIT_VERSION
#define KVKIT_VFKIT_VERSION "0.6.1"
#endif

#define STOP_GRACE_SECONDS 5

static struct {
	struct kv_config cfg;
	struct vm vm;
	bool vm_created;
	char *pidfile_written;
	int sig_fd, timer_fd;
	struct ev_watch sig_watch, timer_watch;
	bool stop_requested;
	struct api_uri api_uri;
	uid_t user_uid; /* --user */
	gid_t user_gid;
} g = { .sig_fd = -1, .timer_fd = -1 };

static int user_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int user_error(const char *fmt, ...)
{
	char buf[1024];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	fprintf(stderr, "Error: %s\n", buf);
	return 1;
}

static const char *prog_name(const char *argv0)
{
	const char *b = strrchr(argv0, '/');
	return b ? b + 1 : argv0;
}

/* Features whose backends other issues bring: refuse them up front. */
static int reject_unsupported(struct kv_config *c, char *err, size_t errlen)
{
	if (c->boot.kind == KV_BOOT_MACOS) {
		snprintf(err, errlen, "macOS guests are not supported on Linux");
		return -1;
	}
	return devices_supported(c, err, errlen);
}

/* --gui (spec 6.7): the window shows the first GPU, 800x600 when --gui
 * brings its own. */
static struct kv_device *first_device(struct kv_config *c, enum kv_dev_kind kind)
{
	for (size_t i = 0; i < c->ndevices; i++)
		if (c->devices[i].kind == kind)
			return &c->devices[i];
	return NULL;
}

static int open_window(struct kv_config *c, char *err, size_t errlen)
{
	struct kv_device *gpu = first_device(c, KV_DEV_VIRTIO_GPU);
	sandbox_plan_display();
	return window_open(gpu ? gpu->u.gpu.width : 800, gpu ? gpu->u.gpu.height : 600, err, errlen);
}

static int open_vnc(struct kv_config *c, char *err, size_t errlen)
{
	struct kv_device *gpu = first_device(c, KV_DEV_VIRTIO_GPU);
	if (!gpu || !gpu->u.gpu.vnc)
		return 0;
	sandbox_plan_display();
	return vnc_open(gpu->u.gpu.vnc, gpu->u.gpu.width, gpu->u.gpu.height, err, errlen);
}

/* After the command line's devices and the cloud-init disk (spec 7's
 * order): the devices --gui adds when the user gave none. */
static int add_gui_devices(struct kv_config *c, char *err, size_t errlen)
{
	if (!first_device(c, KV_DEV_VIRTIO_GPU)) {
		log_warn("--gui flag specified but no virtio-gpu device configured, automatically adding it");
		if (!kv_add_gpu(c, 800, 600))
			goto oom;
	}
	if (!first_device(c, KV_DEV_VIRTIO_INPUT)) {
		log_warn("--gui flag specified but no virtio-input device configured, automatically adding it");
		if (!kv_add_input(c, KV_INPUT_KEYBOARD))
			goto oom;
	}
	first_device(c, KV_DEV_VIRTIO_GPU)->u.gpu.uses_gui = true;
	return 0;
oom:
	snprintf(err, errlen, "out of memory");
	return -1;
}

static void press_power_button(struct vm *vm)
{
	platform_press_power_button(vm);
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int n = snprintf(buf, sizeof(buf), "%d", getpid());
	return file_replace(path, buf, (size_t)n, 0600);
}

static void remove_pidfile(void)
{
	char buf[32] = "";
	if (!g.pidfile_written)
		return;
	int fd = open(g.pidfile_written, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n > 0 && atoi(buf) == getpid())
			unlink(g.pidfile_written);
	}
	free(g.pidfile_written);
	g.pidfile_written = NULL;
}

/* Problems the user can fix are reported before anything is created. */
static int check_devices(struct kv_config *c, char *err, size_t errlen)
{
	if (devices_check(c, err, errlen) < 0)
		return -1;
	if (c->ignition && ignition_load(c->ignition, err, errlen) < 0)
		return -1;
	return 0;
}

/* --ignition and --timesync bring the vsock device with them. */
static int add_vsock_services(char *err, size_t errlen)
{
	struct vsock *v;
	if (!g.cfg.ignition && !g.cfg.has_timesync)
		return 0;
	if (!(v = virtio_vsock_get(&g.vm, err, errlen)))
		return -1;
	if (g.cfg.ignition && (ignition_start(err, errlen) < 0 ||
			       vsock_add_service(v, IGNITION_VSOCK_PORT, ignition_accept, NULL, err, errlen) < 0))
		return -1;
	return 0;
}

static void cleanup(void)
{
	window_close(); /* they read the GPU: before the devices go */
	vnc_close();
	api_shutdown();
	timesync_stop();
	uart_flush(); /* into the first console, destroyed next */
	devices_destroy(&g.vm);
	ignition_stop();
	cloudinit_remove();
	efi_boot_finish();
	remove_pidfile();
}

static void on_signal(void *opaque, uint32_t events)
{
	struct signalfd_siginfo si;
	(void)opaque; (void)events;
	while (read(g.sig_fd, &si, sizeof(si)) == sizeof(si)) {
		log_info("received signal %s", strsignal(si.ssi_signo));
		if (g.stop_requested)
			continue; /* later signals do not extend the grace period */
		g.stop_requested = true;
		platform_press_power_button(&g.vm);
		struct itimerspec t = { .it_value = { .tv_sec = STOP_GRACE_SECONDS } };
		timerfd_settime(g.timer_fd, 0, &t, NULL);
	}
}

static void on_grace_expired(void *opaque, uint32_t events)
{
	uint64_t n;
	(void)opaque; (void)events;
	if (read(g.timer_fd, &n, sizeof(n)) < 0)
		return;
	log_info("guest did not stop within %d s, stopping it", STOP_GRACE_SECONDS);
	vm_request_stop(&g.vm, STOP_HARD, NULL);
}

static int setup_signals(void)
{
	sigset_t set;
	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	/* blocked in every thread: only the signalfd sees them */
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	g.sig_fd = signalfd(-1, &set, SFD_CLOEXEC | SFD_NONBLOCK);
	g.timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK);
	return g.sig_fd < 0 || g.timer_fd < 0 ? -errno : 0;
}

/* ---- what the REST API may do ---- */

static enum vm_state api_get_state(void *opaque)
{
	return vm_get_state(opaque);
}

static int api_change_state(void *opaque, const char *want, char *err, size_t errlen)
{
	struct vm *vm = opaque;
	if (!strcmp(want, "Pause"))
		return vm_pause(vm, err, errlen);
	if (!strcmp(want, "Resume")) {
		int r = vm_resume(vm, err, errlen);
		if (r == 0)
			timesync_trigger(); /* the guest clock stood still while paused */
		return r;
	}
	if (!strcmp(want, "Stop")) {
		log_info("REST API: stop requested, pressing the power button");
		platform_press_power_button(vm);
		return 0;
	}
	/* HardStop: answered once the vCPUs are gone; the process exits after */
	log_info("REST API: hard stop requested");
	vm_request_stop(vm, STOP_HARD, NULL);
	if (!vm_wait_stopped(vm, 5000)) {
		snprintf(err, errlen, "the VM did not stop within 5 s");
		return -1;
	}
	return 0;
}

static char *api_inspect(void *opaque)
{
	(void)opaque;
	return kv_config_to_json(&g.cfg, KV_JSON_RUNTIME);
}

static int api_balloon_info(void *opaque, struct balloon_info *out)
{
	return virtio_balloon_info(opaque, out);
}

static int api_balloon_set(void *opaque, uint64_t bytes, char *err, size_t errlen)
{
	return virtio_balloon_set_target(opaque, bytes, err, errlen);
}

static int api_screenshot(void *opaque, uint8_t **png, size_t *len, char *err, size_t errlen)
{
	return screenshot_png(opaque, png, len, err, errlen);
}

static const struct api_vm_ops api_ops = {
	.get_state = api_get_state, .change_state = api_change_state, .inspect = api_inspect,
	.balloon_info = api_balloon_info, .balloon_set = api_balloon_set, .screenshot = api_screenshot, .opaque = &g.vm,
};

static void uart_to_console(void *opaque, const uint8_t *buf, size_t len)
{
	virtio_console_early_output(opaque, buf, len);
}

static int build_vm(char *err, size_t errlen)
{
	struct kv_config *c = &g.cfg;
	int r = vm_create(&g.vm, c->cpus, c->memory_bytes, c->nested, err, errlen);
	g.vm_created = true;
	if (r < 0)
		return r;
	if (platform_devices_init(&g.vm) < 0 || uart_init(&g.vm, uart_to_console, &g.vm) < 0 ||
	    pci_init(&g.vm, c->boot.kind == KV_BOOT_EFI) < 0) {
		snprintf(err, errlen, "cannot set up the platform devices");
		return -1;
	}
	arch_place_pci_windows(&g.vm);
	if (devices_create(&g.vm, c, err, errlen) < 0)
		return -1;
	if (add_vsock_services(err, errlen) < 0)
		return -1;
	if (c->boot.kind == KV_BOOT_EFI)
		return efi_boot_load(&g.vm, &c->boot, err, errlen);
	return linux_boot_load(&g.vm, &c->boot, err, errlen);
}

int main(int argc, char **argv)
{
	char err[1024] = "";
	enum kv_cmdline_action action;
	const char *name = prog_name(argv[0]);

	log_init(LOG_INFO);
	kv_config_init(&g.cfg);
	if (kv_cmdline_parse(argc, argv, &g.cfg, &action, err, sizeof(err)) < 0)
		return user_error("%s", err);
	if (action == KV_ACTION_HELP) {
		fputs(kv_usage(), stdout);
		return 0;
	}
	if (action == KV_ACTION_VERSION) {
		if (!strcmp(name, "vfkit")) {
			const char *v = getenv("KVKIT_VFKIT_VERSION");
			printf("vfkit version: %s\n", v && *v ? v : KVKIT_VFKIT_VERSION);
		} else {
			printf("kvkit version: %s\n", KVKIT_VERSION);
		}
		return 0;
	}
	log_set_level(g.cfg.log_level == KV_LOG_DEBUG ? LOG_DEBUG : g.cfg.log_level == KV_LOG_ERROR ? LOG_ERROR : LOG_INFO);

	if (reject_unsupported(&g.cfg, err, sizeof(err)) < 0)
		return user_error("%s", err);
	if (g.cfg.user && sandbox_resolve_user(g.cfg.user, &g.user_uid, &g.user_gid, err, sizeof(err)) < 0)
		return user_error("%s", err);
	sandbox_plan(!g.cfg.sandbox_off, g.cfg.user != NULL);
	if (g.cfg.nested && kvm_check_nested(err, sizeof(err)) < 0)
		return user_error("%s", err);
	if ((g.cfg.boot.kind == KV_BOOT_EFI ? efi_boot_validate(&g.cfg.boot, err, sizeof(err))
					     : linux_boot_validate(&g.cfg.boot, err, sizeof(err))) < 0)
		return user_error("%s", err);
	if (check_devices(&g.cfg, err, sizeof(err)) < 0)
		return user_error("%s", err);
	if (api_uri_parse(g.cfg.restful_uri, &g.api_uri, err, sizeof(err)) < 0)
		return user_error("%s", err);
	if (g.cfg.ncloud_init && cloudinit_check(g.cfg.cloud_init, g.cfg.ncloud_init, err, sizeof(err)) < 0)
		return user_error("%s", err);
	/* the last checks: they connect to the display and open the window,
	 * and bind the VNC listener */
	if (g.cfg.gui && open_window(&g.cfg, err, sizeof(err)) < 0)
		return user_error("%s", err);
	if (open_vnc(&g.cfg, err, sizeof(err)) < 0) {
		cleanup();
		return user_error("%s", err);
	}
	if (setup_signals() < 0) {
		cleanup();
		return user_error("cannot set up signal handling: %s", strerror(errno));
	}

	if ((g.cfg.ncloud_init && cloudinit_add_seed_disk(&g.cfg, err, sizeof(err)) < 0) ||
	    (g.cfg.gui && add_gui_devices(&g.cfg, err, sizeof(err)) < 0)) {
		cleanup();
		return user_error("%s", err);
	}
	if (build_vm(err, sizeof(err)) < 0 || api_listen(&g.api_uri, err, sizeof(err)) < 0 ||
	    api_start(&api_ops, err, sizeof(err)) < 0) {
		cleanup();
		return user_error("%s", err);
	}
	if (g.cfg.gui)
		window_attach(&g.vm, press_power_button);
	if (first_device(&g.cfg, KV_DEV_VIRTIO_GPU) && first_device(&g.cfg, KV_DEV_VIRTIO_GPU)->u.gpu.vnc &&
	    vnc_attach(&g.vm, err, sizeof(err)) < 0) {
		cleanup();
		return user_error("%s", err);
	}
	if (g.cfg.pidfile && *g.cfg.pidfile) {
		int r = write_pidfile(g.cfg.pidfile);
		if (r < 0) {
			cleanup();
			return user_error("cannot write pidfile %s: %s", g.cfg.pidfile, strerror(-r));
		}
		g.pidfile_written = strdup(g.cfg.pidfile);
	}

	g.sig_watch = (struct ev_watch){ .fd = g.sig_fd, .events = EPOLLIN, .fn = on_signal };
	g.timer_watch = (struct ev_watch){ .fd = g.timer_fd, .events = EPOLLIN, .fn = on_grace_expired };
	ev_add(&g.vm.ev, &g.sig_watch);
	ev_add(&g.vm.ev, &g.timer_watch);

	log_info("virtual machine parameters:");
	log_info("\tvCPUs: %u", g.cfg.cpus);
	log_info("\tmemory: %llu MiB", (unsigned long long)(g.cfg.memory_bytes >> 20));
	/* everything is open: from here on, only what a running VM needs */
	const char *own[] = { g.pidfile_written, g.api_uri.kind == API_URI_UNIX ? g.api_uri.path : NULL };
	if (g.cfg.user && sandbox_drop_user(g.user_uid, g.user_gid, own, sizeof(own) / sizeof(own[0]), err, sizeof(err)) < 0) {
		cleanup();
		return user_error("%s", err);
	}
	if (sandbox_enter(!g.cfg.sandbox_off, err, sizeof(err)) < 0) {
		cleanup();
		return user_error("%s", err);
	}
	sandbox_test_hook("main");
	if (vm_start(&g.vm) < 0) {
		cleanup();
		return user_error("cannot start the vCPUs");
	}
	log_info("virtual machine is running");
	if (g.cfg.has_timesync) {
		struct vsock *v = virtio_vsock_get(&g.vm, err, sizeof(err));
		if (v && timesync_start(v, g.cfg.timesync_port) < 0)
			log_warn("timesync: cannot start the watcher");
	}
	/* after the last thread is created: the I/O thread's list has no clone */
	sandbox_thread(SANDBOX_IO);
	log_info("waiting for VM to stop");
	ev_run(&g.vm.ev);

	vm_stop_vcpus(&g.vm);
	/* the guest is gone, but what it already asked of its disks completes */
	devices_drain(&g.vm);
	enum vm_stop_reason why = g.vm.stop_reason;
	if (why == STOP_HARD || why == STOP_ERROR)
		vm_log_vcpu_state(&g.vm);
	vm_log_exit_counts(&g.vm);
	int status = 0;
	if (why == STOP_ERROR) {
		log_error("virtualization error: hypervisor virtualization error: %s", g.vm.error);
		status = 1;
	} else {
		vm_set_state(&g.vm, VM_STOPPED);
		log_info("VM is stopped");
	}
	cleanup();
	log_phase("exit");
	return status;
}
