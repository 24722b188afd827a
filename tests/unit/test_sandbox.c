/* The sandbox's per-thread lists and capabilities (src/sandbox): in a child
 * process, enter the sandbox, take a role's list, make one system call, and
 * see whether the child lives or dies of SIGSYS. No KVM needed. */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/capability.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>
#include "../../src/sandbox/jail.h"
#include "../../src/sandbox/sandbox.h"

/* The system calls a test makes, with arguments that make them fail
 * harmlessly once the filter lets them through. */
enum call { C_READ, C_OPENAT, C_MKDIRAT, C_UNLINKAT, C_SOCKET_INET, C_SOCKET_PACKET, C_CONNECT, C_IOCTL,
	    C_IOCTL_TIOCSTI, C_IOCTL_TUNSETOFFLOAD, C_IOCTL_FIONREAD, C_IO_URING_ENTER, C_CLONE_THREAD, C_PTRACE, C_SOCKETPAIR };

static void make(enum call c)
{
	switch (c) {
	case C_READ: syscall(SYS_read, -1, NULL, 0); break;
	case C_OPENAT:
		if (syscall(SYS_openat, AT_FDCWD, "/dev/null", O_RDONLY) < 0)
			_exit(errno);
		break;
	case C_MKDIRAT: syscall(SYS_mkdirat, -1, "", 0); break;
	case C_UNLINKAT: syscall(SYS_unlinkat, -1, "", 0); break;
	case C_SOCKET_INET: close((int)syscall(SYS_socket, AF_INET, SOCK_DGRAM, 0)); break;
	case C_SOCKET_PACKET: syscall(SYS_socket, AF_PACKET, SOCK_DGRAM, 0); break;
	case C_CONNECT: syscall(SYS_connect, -1, NULL, 0); break;
	case C_IOCTL: syscall(SYS_ioctl, -1, KVM_RUN, 0); break;
	case C_IOCTL_TIOCSTI: syscall(SYS_ioctl, -1, TIOCSTI, "x"); break;
	case C_IOCTL_TUNSETOFFLOAD: syscall(SYS_ioctl, -1, TUNSETOFFLOAD, 0); break;
	case C_IOCTL_FIONREAD: syscall(SYS_ioctl, -1, FIONREAD, NULL); break;
	case C_IO_URING_ENTER: syscall(SYS_io_uring_enter, -1, 0, 0, 0, NULL, 0); break;
	/* the flags of a thread, a bad stack: EINVAL before anything starts */
	case C_CLONE_THREAD: syscall(SYS_clone, CLONE_THREAD | CLONE_SIGHAND | CLONE_VM, (void *)1, NULL, NULL, 0); break;
	case C_PTRACE: syscall(SYS_ptrace, -1, 0, 0, 0); break;
	case C_SOCKETPAIR: syscall(SYS_socketpair, AF_UNIX, SOCK_STREAM, 0, NULL); break;
	}
}

/* 0: the call returned; SIGSYS: the filter stopped it; -E: the filter made
 * it fail with E (only the calls make() checks). */
static int outcome(enum sandbox_role role, enum call c)
{
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		char err[200];
		int devnull = open("/dev/null", O_WRONLY); /* the SIGSYS line */
		if (!getenv("TEST_SANDBOX_VERBOSE"))
			dup2(devnull, STDERR_FILENO);
		sandbox_plan(true, false);
		if (role == SANDBOX_DISPLAY) /* --gui */
			sandbox_plan_display();
		if (sandbox_enter(true, err, sizeof(err)) < 0)
			_exit(3);
		sandbox_thread(role);
		make(c);
		_exit(0);
	}
	int st;
	assert_int_equal(waitpid(pid, &st, 0), pid);
	if (WIFSIGNALED(st))
		return WTERMSIG(st);
	return -WEXITSTATUS(st);
}

static void each_role_keeps_only_its_calls(void **s)
{
	(void)s;
	static const struct {
		enum sandbox_role role;
		enum call call;
		int expect;
	} cases[] = {
		/* everyone reads and writes the descriptors it has */
		{ SANDBOX_VCPU, C_READ, 0 },
		{ SANDBOX_BLOCK, C_READ, 0 },
		{ SANDBOX_HTTP, C_READ, 0 },
		/* a vCPU thread opens nothing, makes no sockets, leaves the share alone */
		{ SANDBOX_VCPU, C_IOCTL, 0 },
		{ SANDBOX_VCPU, C_IOCTL_TUNSETOFFLOAD, 0 }, /* the guest negotiates a tap's offloads */
		/* ioctl by request: KVM's and a few others, never one that types
		 * into the user's terminal */
		{ SANDBOX_VCPU, C_IOCTL_TIOCSTI, SIGSYS },
		{ SANDBOX_IO, C_IOCTL_TIOCSTI, SIGSYS },
		{ SANDBOX_HTTP, C_IOCTL_TIOCSTI, SIGSYS },
		{ SANDBOX_IO, C_IOCTL_FIONREAD, 0 }, /* libslirp sizes a UDP datagram */
		{ SANDBOX_DISPLAY, C_IOCTL_TIOCSTI, 0 }, /* a GPU driver's requests: any */
		{ SANDBOX_BLOCK, C_IOCTL, SIGSYS },		{ SANDBOX_VCPU, C_OPENAT, -EACCES }, /* glibc's own lazy opens fail, not trap */
		{ SANDBOX_VCPU, C_MKDIRAT, SIGSYS },
		{ SANDBOX_VCPU, C_SOCKET_INET, SIGSYS },
		{ SANDBOX_VCPU, C_IO_URING_ENTER, SIGSYS },
		/* the shared folder's workers change the share's namespace */
		{ SANDBOX_SHARE, C_MKDIRAT, 0 },
		{ SANDBOX_SHARE, C_UNLINKAT, 0 },
		{ SANDBOX_SHARE, C_CONNECT, SIGSYS },
		{ SANDBOX_SHARE, C_SOCKET_INET, SIGSYS },
		/* disk threads do I/O and nothing else */
		{ SANDBOX_BLOCK, C_CONNECT, SIGSYS },
		{ SANDBOX_BLOCK, C_MKDIRAT, SIGSYS },
		/* the event loop: NAT and vsock sockets, disks' rings */
		{ SANDBOX_IO, C_SOCKET_INET, 0 },
		{ SANDBOX_IO, C_CONNECT, 0 },
		{ SANDBOX_IO, C_IO_URING_ENTER, 0 },
		{ SANDBOX_IO, C_SOCKET_PACKET, SIGSYS },
		{ SANDBOX_IO, C_MKDIRAT, SIGSYS },
		{ SANDBOX_IO, C_OPENAT, 0 }, /* console log rotation, clean-up at exit */
		/* the HTTP servers: sockets, the clock on pause, no files by name */
		{ SANDBOX_HTTP, C_CONNECT, 0 },
		{ SANDBOX_HTTP, C_IOCTL, 0 },
		{ SANDBOX_HTTP, C_MKDIRAT, SIGSYS },
		{ SANDBOX_HTTP, C_IO_URING_ENTER, SIGSYS },
		{ SANDBOX_HTTP, C_OPENAT, -EACCES },
		{ SANDBOX_SHARE, C_OPENAT, 0 },
		{ SANDBOX_TIMESYNC, C_SOCKET_INET, SIGSYS },
		{ SANDBOX_TIMESYNC, C_SOCKETPAIR, 0 }, /* its line to the vsock device */
		{ SANDBOX_BLOCK, C_SOCKETPAIR, SIGSYS },
		/* no thread starts threads once the VM runs, none traces */
		{ SANDBOX_IO, C_CLONE_THREAD, SIGSYS },
		{ SANDBOX_SHARE, C_PTRACE, SIGSYS },
	};
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		int got = outcome(cases[i].role, cases[i].call);
		if (got != cases[i].expect)
			fail_msg("case %zu (role %d, call %d): %s, expected %s", i, cases[i].role, cases[i].call,
				 got > 0 ? strsignal(got) : strerror(-got), cases[i].expect > 0 ? strsignal(cases[i].expect) : strerror(-cases[i].expect));
	}
}

static uint64_t caps_after(enum sandbox_role role, bool on, bool switching_user)
{
	int p[2];
	assert_int_equal(pipe(p), 0);
	fflush(NULL);
	pid_t pid = fork();
	if (pid == 0) {
		sandbox_plan(on, switching_user);
		sandbox_thread(role);
		struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
		struct __user_cap_data_struct d[2];
		uint64_t v = ~0ull;
		if (syscall(SYS_capget, &h, d) == 0 && d[0].effective == d[0].permitted && d[1].effective == d[1].permitted)
			v = d[0].permitted | (uint64_t)d[1].permitted << 32;
		_exit(write(p[1], &v, sizeof(v)) == sizeof(v) ? 0 : 1);
	}
	close(p[1]);
	uint64_t v = 0;
	assert_int_equal(read(p[0], &v, sizeof(v)), sizeof(v));
	close(p[0]);
	int st;
	waitpid(pid, &st, 0);
	return v;
}

static void root_threads_keep_only_the_capabilities_they_need(void **s)
{
	(void)s;
	if (geteuid() != 0)
		skip();
	uint64_t all = caps_after(SANDBOX_VCPU, false, false);
	assert_true(all & (1ull << CAP_SYS_ADMIN)); /* root as the test started */
	assert_int_equal(caps_after(SANDBOX_VCPU, true, false), 0);
	assert_int_equal(caps_after(SANDBOX_IO, true, false), 0);
	assert_int_equal(caps_after(SANDBOX_HTTP, true, false), 0);
	assert_int_equal(caps_after(SANDBOX_SHARE, true, false),
			 (1ull << CAP_CHOWN) | (1ull << CAP_DAC_OVERRIDE) | (1ull << CAP_DAC_READ_SEARCH) |
				 (1ull << CAP_FOWNER) | (1ull << CAP_FSETID) | (1ull << CAP_SETUID) | (1ull << CAP_SETGID));
	/* --user takes them all by itself; --sandbox off keeps them */
	assert_int_equal(caps_after(SANDBOX_VCPU, true, true), all);
	assert_int_equal(caps_after(SANDBOX_SHARE, false, false), all);
}

struct inside {
	const struct jail *j;
	int entered, own, host, dotdot_is_root, root_is_folder;
};

static void *jailed(void *arg)
{
	struct inside *in = arg;
	struct stat a, b;
	in->entered = unshare(CLONE_FS) == 0 ? jail_enter(in->j) : -errno;
	if (in->entered == 0) {
		int fd = open("/mine", O_RDONLY);
		in->own = fd >= 0;
		if (fd >= 0)
			close(fd);
		fd = open("/etc/passwd", O_RDONLY);
		in->host = fd >= 0;
		if (fd >= 0)
			close(fd);
		fd = openat(in->j->root_path, "..", O_PATH);
		in->dotdot_is_root = fd >= 0 && fstat(fd, &a) == 0 && fstat(in->j->root_path, &b) == 0 &&
				     a.st_ino == b.st_ino && a.st_dev == b.st_dev;
		if (fd >= 0)
			close(fd);
		in->root_is_folder = stat("/", &a) == 0 && fstat(in->j->root_path, &b) == 0 && a.st_ino == b.st_ino;
	}
	return NULL;
}

/* A shared folder's jail: a thread inside sees the folder as its root and
 * nothing of the host, ".." at the top stays there; the caller's view of
 * the file system does not change. */
static void jail_shows_only_the_folder(void **s)
{
	(void)s;
	if (geteuid() != 0)
		skip();
	char dir[] = "/var/tmp/kvkit-jail-XXXXXX", file[64], err[200];
	assert_non_null(mkdtemp(dir));
	snprintf(file, sizeof(file), "%s/mine", dir);
	int fd = open(file, O_CREAT | O_WRONLY, 0600);
	assert_true(fd >= 0);
	close(fd);
	struct jail j;
	int r = jail_make(dir, &j, err, sizeof(err));
	if (r < 0)
		fail_msg("%s", err);
	struct inside in = { .j = &j };
	pthread_t t;
	assert_int_equal(pthread_create(&t, NULL, jailed, &in), 0);
	pthread_join(t, NULL);
	assert_int_equal(in.entered, 0);
	assert_true(in.own);
	assert_false(in.host);
	assert_true(in.dotdot_is_root);
	assert_true(in.root_is_folder);
	/* this thread still sees the host */
	fd = open("/etc/passwd", O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	jail_free(&j);
	unlink(file);
	rmdir(dir);
	/* a folder that is not there: one line, no jail */
	assert_int_equal(jail_make("/nonexistent-kvkit-folder", &j, err, sizeof(err)), -1);
	assert_non_null(strstr(err, "cannot jail the folder's workers (bind-mount the folder: No such file or directory)"));
	assert_int_equal(j.ns, -1);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(each_role_keeps_only_its_calls),
		cmocka_unit_test(root_threads_keep_only_the_capabilities_they_need),
		cmocka_unit_test(jail_shows_only_the_folder),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
