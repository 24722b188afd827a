/* The system-call filter (libseccomp). One allow-list for the whole
 * process, loaded with TSYNC from the main thread just before the vCPUs
 * start: every device, socket, library (libnbd, libmicrohttpd are dlopen()ed
 * before) and file kvkit needs at start is open by then. What is left is
 * what a running VMM does: I/O on open descriptors, KVM ioctls, memory,
 * threads, the shared folder's file operations, sockets for NAT, NBD
 * reconnects and the REST API. Not allowed, among others: execve, fork,
 * ptrace, mount, namespaces, bpf, perf, kernel modules, keyrings, and
 * sockets other than unix, inet, inet6 and route netlink.
 *
 * A call outside the list traps: the SIGSYS handler names it on stderr and
 * the process dies of SIGSYS. The call itself never runs. */
#define _GNU_SOURCE
#include "sandbox.h"
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <linux/netlink.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "../util/log.h"

/* Measured on the e2e suite (plain and ASan builds) with strace; see
 * docs/security.md for how to redo it. */
static const char *const allowed[] = {
	/* file and descriptor I/O */
	"read", "write", "pread64", "pwrite64", "readv", "writev", "preadv", "pwritev", "preadv2", "pwritev2",
	"lseek", "close", "openat", "fstat", "newfstatat", "statx", "fsync", "fdatasync", "fallocate",
	"ftruncate", "getdents64", "fcntl", "dup", "dup2", "dup3", "pipe2", "flock", "fadvise64",
	"sync_file_range", "syncfs", "copy_file_range", "statfs", "fstatfs", "faccessat", "faccessat2", "getcwd", "fchdir",
	/* the same through glibc's older entry points (no more power than the *at calls) */
	"unlink", "rmdir", "rename", "mkdir", "access", "readlink", "stat", "lstat", "pipe", "getdents", "open",
	"creat", "chmod", "chown", "lchown", "truncate", "link", "symlink", "mknod", "utime", "utimes", "futimesat",
	/* the shared folder (src/fs): namespace and metadata operations */
	"unlinkat", "renameat", "renameat2", "mkdirat", "mknodat", "symlinkat", "linkat", "readlinkat", "fchmod",
	"fchmodat", "fchown", "fchownat", "utimensat", "fsetxattr", "fgetxattr", "flistxattr", "fremovexattr",
	"lsetxattr", "lgetxattr", "llistxattr", "lremovexattr", "setxattr", "getxattr", "listxattr",
	"removexattr", "setfsuid", "setfsgid",
	/* memory: guest RAM, balloon, DAX window, allocators */
	"mmap", "munmap", "mprotect", "madvise", "mremap", "brk",
	/* event loop */
	"epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd2", "timerfd_create",
	"timerfd_settime", "timerfd_gettime", "poll", "ppoll", "select", "pselect6", "signalfd4",
	/* sockets (socket() itself is checked below) */
	"socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
	"setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
	"shutdown",
	/* threads, signals, time */
	"futex", "set_robust_list", "rseq", "exit", "exit_group", "gettid", "getpid", "rt_sigaction",
	"rt_sigprocmask", "rt_sigreturn", "sigaltstack", "sched_yield", "sched_getaffinity", "nanosleep",
	"clock_nanosleep", "clock_gettime", "gettimeofday", "getrandom", "prctl", "uname", "prlimit64",
	"getrlimit", "getuid", "geteuid", "getgid", "getegid", "restart_syscall",
	/* KVM, tap, block devices; io_uring (its rings are only for disk I/O) */
	"ioctl", "io_uring_setup", "io_uring_enter", "io_uring_register",
};

static char names[512][24]; /* for the SIGSYS handler: no allocation there */

static size_t put(char *b, size_t n, const char *s)
{
	while (*s && n < 255)
		b[n++] = *s++;
	return n;
}

static void on_sigsys(int sig, siginfo_t *si, void *uc)
{
	(void)sig;
	(void)uc;
	char b[256], num[12], comm[17] = "";
	size_t n = 0;
	int nr = si->si_syscall, k = 0;
	unsigned v = nr < 0 ? 0 : (unsigned)nr;
	do
		num[k++] = (char)('0' + v % 10);
	while ((v /= 10) && k < 11);
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	n = put(b, n, "level=fatal msg=\"sandbox: the system call ");
	n = put(b, n, nr >= 0 && nr < 512 && names[nr][0] ? names[nr] : "?");
	n = put(b, n, " (");
	while (k)
		b[n++] = num[--k];
	n = put(b, n, ") is not allowed (thread ");
	n = put(b, n, comm);
	n = put(b, n, "); kvkit stops\"\n");
	ssize_t w = write(STDERR_FILENO, b, n);
	(void)w;
	/* die of SIGSYS, as SECCOMP_RET_KILL_PROCESS would */
	struct sigaction sa = { .sa_handler = SIG_DFL };
	sigaction(SIGSYS, &sa, NULL);
	raise(SIGSYS);
}

/* SCMP_A0() and friends leave fields out, which -Wextra refuses */
static struct scmp_arg_cmp arg(unsigned i, enum scmp_compare op, scmp_datum_t a, scmp_datum_t b)
{
	return (struct scmp_arg_cmp){ .arg = i, .op = op, .datum_a = a, .datum_b = b };
}

static int add(scmp_filter_ctx ctx, uint32_t action, const char *name, unsigned nargs, ...)
{
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return -EINVAL;
	va_list ap;
	struct scmp_arg_cmp cmp[2];
	va_start(ap, nargs);
	for (unsigned i = 0; i < nargs && i < 2; i++)
		cmp[i] = va_arg(ap, struct scmp_arg_cmp);
	va_end(ap);
	return seccomp_rule_add_array(ctx, action, nr, nargs, cmp);
}

int sandbox_enter(bool filter, char *err, size_t errlen)
{
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) {
		snprintf(err, errlen, "sandbox: cannot set no_new_privs: %s", strerror(errno));
		return -1;
	}
	if (!filter) {
		log_warn("the sandbox is off (--sandbox off): the guest's devices run without a system-call filter");
		return 0;
	}
	for (int nr = 0; nr < 512; nr++) {
		char *s = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
		if (s)
			snprintf(names[nr], sizeof(names[nr]), "%s", s);
		free(s);
	}
	struct sigaction sa = { .sa_sigaction = on_sigsys, .sa_flags = SA_SIGINFO };
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) < 0) {
		snprintf(err, errlen, "sandbox: cannot catch SIGSYS: %s", strerror(errno));
		return -1;
	}
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
	if (!ctx) {
		snprintf(err, errlen, "sandbox: cannot create the system-call filter");
		return -1;
	}
	int r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1);
	pid_t pid = getpid();
	for (size_t i = 0; r == 0 && i < sizeof(allowed) / sizeof(allowed[0]); i++)
		if ((r = add(ctx, SCMP_ACT_ALLOW, allowed[i], 0)) < 0)
			log_error("sandbox: cannot allow %s", allowed[i]);
	/* threads only: no new processes */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "clone", 1, arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* clone3's flags are behind a pointer the filter cannot read: glibc
	 * falls back to clone on ENOSYS */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0);
	/* signals to itself only */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, arg(0, SCMP_CMP_EQ, (scmp_datum_t)pid, 0));
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "kill", 1, arg(0, SCMP_CMP_EQ, (scmp_datum_t)pid, 0));
	/* sockets: unix (API, vsock, gvproxy), inet (NAT, NBD, REST), route
	 * netlink (getaddrinfo); other families are a common way into the
	 * kernel and kvkit has no use for them */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, arg(0, SCMP_CMP_EQ, AF_UNIX, 0));
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, arg(0, SCMP_CMP_EQ, AF_INET, 0));
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, arg(0, SCMP_CMP_EQ, AF_INET6, 0));
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 2, arg(0, SCMP_CMP_EQ, AF_NETLINK, 0),
			arg(2, SCMP_CMP_EQ, NETLINK_ROUTE, 0));
#ifdef __SANITIZE_ADDRESS__
	/* ASan's report starts llvm-symbolizer: let that fail, not trap, so
	 * the report still prints (unsymbolized) */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ERRNO(EPERM), "execve", 0);
	if (r == 0)
		r = add(ctx, SCMP_ACT_ERRNO(EPERM), "clone", 1, arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, 0));
	if (r == 0)
		r = add(ctx, SCMP_ACT_ERRNO(EPERM), "vfork", 0);
#endif
	if (r == 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0) {
		snprintf(err, errlen, "sandbox: cannot load the system-call filter: %s (--sandbox off runs without)",
			 strerror(-r));
		return -1;
	}
	log_debug("sandbox: system-call filter on, %zu calls allowed", sizeof(allowed) / sizeof(allowed[0]) + 4);
	return 0;
}

int sandbox_resolve_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen)
{
	if (geteuid() != 0) {
		snprintf(err, errlen, "--user %s: kvkit must be started as root to change its user", user);
		return -1;
	}
	struct passwd *pw = getpwnam(user);
	if (pw) {
		*uid = pw->pw_uid;
		*gid = pw->pw_gid;
	} else {
		char *end;
		unsigned long v = strtoul(user, &end, 10);
		if (end == user || *end || v >= 0xffffffffUL) {
			snprintf(err, errlen, "--user %s: no such user", user);
			return -1;
		}
		*uid = (uid_t)v;
		pw = getpwuid(*uid);
		*gid = pw ? pw->pw_gid : (gid_t)v;
	}
	if (*uid == 0) {
		snprintf(err, errlen, "--user %s: that is root, which keeps every privilege", user);
		return -1;
	}
	return 0;
}

int sandbox_drop_user(uid_t uid, gid_t gid, const char *const *own, size_t n, char *err, size_t errlen)
{
	for (size_t i = 0; i < n; i++)
		if (own[i] && chown(own[i], uid, gid) < 0)
			log_warn("--user: cannot give %s to uid %u: %s (it may stay after kvkit exits)", own[i],
				 (unsigned)uid, strerror(errno));
	/* glibc changes every thread's credentials, not only the caller's */
	if (setgroups(0, NULL) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0) {
		snprintf(err, errlen, "--user: cannot change to uid %u gid %u: %s", (unsigned)uid, (unsigned)gid,
			 strerror(errno));
		return -1;
	}
	if (setresuid(0, 0, 0) == 0) { /* a drop that can be undone is none */
		snprintf(err, errlen, "--user: kvkit could become root again");
		return -1;
	}
	log_info("running as uid %u, gid %u from now on", (unsigned)uid, (unsigned)gid);
	return 0;
}

void sandbox_test_hook(void)
{
#ifdef KVKIT_TEST_HOOKS
	const char *name = getenv("KVKIT_TEST_FORBIDDEN_SYSCALL");
	if (!name || !*name)
		return;
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return;
	log_info("test hook: calling %s", name);
	syscall(nr, 0, 0, 0, 0, 0, 0);
	log_info("test hook: %s returned: %s", name, strerror(errno));
#endif
}
