/* The system-call filter (libseccomp), in two layers.
 *
 * The process-wide list, loaded with TSYNC from the main thread just before
 * the vCPUs start: every device, socket, library (libnbd, libmicrohttpd are
 * dlopen()ed before) and file kvkit needs at start is open by then. It
 * allows what a running VMM does, all threads together. Not allowed, among
 * others: execve, fork, ptrace, mount, namespaces, bpf, perf, kernel
 * modules, keyrings, and sockets other than unix, inet, inet6 and route
 * netlink.
 *
 * Then each thread narrows itself to its role's list (sandbox_thread()):
 * a vCPU thread cannot open files, make sockets or touch the shared
 * folder's namespace, a disk thread only does I/O, and so on. Filters only
 * ever add up, so a thread can never get back what it gave away.
 *
 * A call outside the lists traps: the SIGSYS handler names it and the
 * thread on stderr and the process dies of SIGSYS. The call never runs. */
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
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/if_tun.h>
#include <linux/kvm.h>
#include <linux/seccomp.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <termios.h>
#include <unistd.h>
#include "../util/log.h"

/* The ioctl requests a running kvkit makes outside KVM's own (all of which
 * a thread with G_IOCTL may make): the terminal's modes (the console on
 * stdin, restored at exit), bytes waiting on a socket (libslirp's UDP,
 * X11), non-blocking and close-on-exec flags, the tap's offloads the
 * guest negotiates and a multiqueue tap's queues the guest uses or stops
 * using. Not among them, for instance: TIOCSTI, which types
 * into the user's terminal, and every other driver's requests. Devices,
 * taps and disks are set up before the filter goes on. */
static const unsigned long ioctl_requests[] = { TCGETS,	 TCSETS,  TCSETSW, TCSETSF,	  TIOCGWINSZ,
						FIONREAD, FIONBIO, FIOCLEX, FIONCLEX, TUNSETOFFLOAD, TUNSETQUEUE };

/* The calls, in groups. Measured on the e2e suite (plain and ASan builds)
 * with strace, thread by thread; see docs/security.md for how to redo it.
 * The process-wide filter allows every group; each thread then narrows
 * itself to the groups of its role (roles[] below). */
enum {
	G_BASIC,    /* every thread: memory, locks, time, logging, exit, SIGSYS handler */
	G_IO,       /* I/O on descriptors already open */
	G_OPEN,     /* opening and examining files by name */
	G_SHARE,    /* the shared folder's namespace and metadata operations */
	G_EVENTS,   /* event loop and waiting */
	G_NET,      /* sockets on descriptors, and creating them (socket() checked below) */
	G_THREADS,  /* creating threads (clone with CLONE_THREAD only, below) */
	G_IOCTL,    /* KVM's requests, and the few terminal and tap ones kvkit makes */
	G_URING,    /* io_uring (its rings are limited to disk I/O) */
	G_DISPLAY,  /* the --gui window's X11 shared-memory images (only with --gui) */
	G_COUNT
};

static const char *const group_calls[G_COUNT][72] = {
	[G_BASIC] = { "mmap", "munmap", "mprotect", "madvise", "mremap", "brk", "futex", "set_robust_list",
		      "rseq", "exit", "exit_group", "gettid", "getpid", "rt_sigaction", "rt_sigprocmask",
		      "rt_sigreturn", "sigaltstack", "sched_yield", "sched_getaffinity", "nanosleep",
		      "clock_nanosleep", "clock_gettime", "gettimeofday", "getrandom", "restart_syscall",
		      "write", "writev", "close", "getuid", "geteuid", "getgid", "getegid", "uname", "getrlimit",
		      "prlimit64" },
	[G_IO] = { "read", "pread64", "pwrite64", "readv", "preadv", "pwritev", "preadv2", "pwritev2", "lseek",
		   "fstat", "fsync", "fdatasync", "fallocate", "ftruncate", "fcntl", "dup", "dup2", "dup3",
		   "pipe2", "pipe", "flock", "fadvise64", "sync_file_range", "syncfs", "copy_file_range", "fstatfs",
		   "getdents64", "getdents" },
	[G_OPEN] = { "openat", "open", "creat", "newfstatat", "statx", "stat", "lstat", "statfs", "faccessat",
		     "faccessat2", "access", "getcwd", "fchdir", "readlink", "readlinkat", "unlink", "rename" },
	/* glibc's older path-based entry points (chmod, ...) do no more than
	 * the *at calls; the share reaches them through /proc/self/fd */
	[G_SHARE] = { "unlinkat", "renameat", "renameat2", "mkdirat", "mknodat", "symlinkat", "linkat",
		      "fchmod", "fchmodat", "fchown", "fchownat", "utimensat", "fsetxattr", "fgetxattr",
		      "flistxattr", "fremovexattr", "lsetxattr", "lgetxattr", "llistxattr", "lremovexattr",
		      "setxattr", "getxattr", "listxattr", "removexattr", "setfsuid", "setfsgid", "rmdir", "mkdir",
		      "chmod", "chown", "lchown", "truncate", "link", "symlink", "mknod", "utime", "utimes",
		      "futimesat" },
	[G_EVENTS] = { "epoll_create1", "epoll_ctl", "epoll_wait", "epoll_pwait", "eventfd2", "timerfd_create",
		       "timerfd_settime", "timerfd_gettime", "poll", "ppoll", "select", "pselect6", "signalfd4" },
	[G_NET] = { "socketpair", "bind", "listen", "accept", "accept4", "connect", "getsockname", "getpeername",
		    "setsockopt", "getsockopt", "sendto", "recvfrom", "sendmsg", "recvmsg", "sendmmsg", "recvmmsg",
		    "shutdown" },
	[G_IOCTL] = { NULL }, /* ioctl, by request: build() */
	[G_URING] = { "io_uring_setup", "io_uring_enter", "io_uring_register" },
	[G_DISPLAY] = { "shmget", "shmat", "shmdt", "shmctl" },
};

#define BIT(g) (1u << (g))
#define ALL_GROUPS (BIT(G_COUNT) - 1)

#define CAP(c) (1ull << (c))
/* A shared folder served by root acts for the guest's root: it gives files
 * to the guest's users, reaches files whatever their mode, changes modes
 * and times on files it does not own, and keeps the setgid bit of
 * directories; it creates files as the guest user asking (setfsuid and
 * setfsgid, the only id changes its list allows). Nothing else needs a
 * capability once the VM runs. */
#define SHARE_CAPS \
	(CAP(CAP_CHOWN) | CAP(CAP_DAC_OVERRIDE) | CAP(CAP_DAC_READ_SEARCH) | CAP(CAP_FOWNER) | CAP(CAP_FSETID) | \
	 CAP(CAP_SETUID) | CAP(CAP_SETGID))

/* What each kind of thread may do once it has taken its list, and the
 * capabilities it keeps when kvkit runs as root without --user. */
static const struct role {
	const char *name;
	unsigned groups;
	const char *extra[2]; /* single calls beyond the groups */
	uint64_t caps;
} roles[SANDBOX_ROLES] = {
	/* KVM_RUN and the exits it hands back: port and MMIO devices, PCI
	 * config (ioeventfds, irqfds, memory slots), the flash store */
	[SANDBOX_VCPU] = { .name = "vcpu", .groups = BIT(G_BASIC) | BIT(G_IO) | BIT(G_IOCTL) },
	/* the event loop: virtqueues, NAT, vsock, tap, NBD, disks' rings; it
	 * opens files by name to rotate console logs, and at exit to remove
	 * the pidfile, the cloud-init seed and to save the EFI variables */
	[SANDBOX_IO] = { .name = "io",
			 .groups = BIT(G_BASIC) | BIT(G_IO) | BIT(G_OPEN) | BIT(G_EVENTS) | BIT(G_NET) | BIT(G_IOCTL) |
				   BIT(G_URING) },
	/* a shared folder's FUSE requests */
	[SANDBOX_SHARE] = { .name = "share",
			    .groups = BIT(G_BASIC) | BIT(G_IO) | BIT(G_OPEN) | BIT(G_SHARE) | BIT(G_EVENTS),
			    .caps = SHARE_CAPS },
	/* disk reads, writes, flushes and discards without io_uring */
	[SANDBOX_BLOCK] = { .name = "block", .groups = BIT(G_BASIC) | BIT(G_IO) },
	/* the REST API's and Ignition's HTTP servers (libmicrohttpd); pause
	 * and resume save and restore the guest clock (KVM ioctls) */
	[SANDBOX_HTTP] = { .name = "http", .groups = BIT(G_BASIC) | BIT(G_IO) | BIT(G_EVENTS) | BIT(G_NET) | BIT(G_IOCTL) },
	/* the time-sync watcher: waits, then talks to the guest agent over
	 * vsock, through a socket pair the vsock device serves */
	/* the --gui window: its display connection (X11 asks FIONREAD) and
	 * shared-memory images */
	[SANDBOX_DISPLAY] = { .name = "display",
			      .groups = BIT(G_BASIC) | BIT(G_IO) | BIT(G_EVENTS) | BIT(G_NET) | BIT(G_IOCTL) | BIT(G_DISPLAY) },
	[SANDBOX_TIMESYNC] = { .name = "timesync", .groups = BIT(G_BASIC) | BIT(G_IO) | BIT(G_EVENTS),
			       .extra = { "socketpair" } },
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

/* One filter: the calls of the groups in mask, plus the calls allowed only
 * with certain arguments. The process-wide filter (base) also lets a
 * thread add its own, narrower filter. */
static scmp_filter_ctx build(unsigned mask, bool base, uint32_t otherwise)
{
	scmp_filter_ctx ctx = seccomp_init(otherwise);
	if (!ctx)
		return NULL;
	int r = base ? seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) : 0;
	/* every call of every thread runs through the filters (KVM_RUN after
	 * each exit): a binary search over the call numbers, not a list */
	if (r == 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	static const char *const hot[] = { "ioctl", "read", "write", "futex", "epoll_wait", "ppoll", "readv",
					   "writev", "recvmsg", "sendmsg", "io_uring_enter" };
	for (size_t i = 0; r == 0 && i < sizeof(hot) / sizeof(hot[0]); i++)
		r = seccomp_syscall_priority(ctx, seccomp_syscall_resolve_name(hot[i]), 255);
	for (unsigned g = 0; g < G_COUNT; g++)
		for (size_t i = 0; r == 0 && (mask & BIT(g)) && i < sizeof(group_calls[g]) / sizeof(group_calls[g][0]) &&
				   group_calls[g][i];
		     i++)
			if ((r = add(ctx, SCMP_ACT_ALLOW, group_calls[g][i], 0)) < 0)
				log_error("sandbox: cannot allow %s", group_calls[g][i]);
	/* glibc opens a file now and then on its own (malloc reads
	 * /proc/sys/vm/overcommit_memory the first time a thread's heap
	 * shrinks): a thread that opens nothing gets EACCES, not a trap */
	bool learning = otherwise == SCMP_ACT_LOG; /* there, every open is seen */
	if (r == 0 && !base && !learning && !(mask & BIT(G_OPEN)))
		r = add(ctx, SCMP_ACT_ERRNO(EACCES), "openat", 0);
	if (r == 0 && !base && !learning && !(mask & BIT(G_OPEN)))
		r = add(ctx, SCMP_ACT_ERRNO(EACCES), "open", 0);
	/* ioctl: KVM's requests (its type byte, KVMIO) and the list above;
	 * the window's thread any (a GPU driver's requests, SDL's renderer
	 * under Wayland, cannot be listed) */
	if (r == 0 && (mask & BIT(G_DISPLAY)))
		r = add(ctx, SCMP_ACT_ALLOW, "ioctl", 0);
	else if (r == 0 && (mask & BIT(G_IOCTL)))
		r = add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, arg(1, SCMP_CMP_MASKED_EQ, 0xff00, KVMIO << 8));
	for (size_t i = 0; r == 0 && !(mask & BIT(G_DISPLAY)) && (mask & BIT(G_IOCTL)) &&
			   i < sizeof(ioctl_requests) / sizeof(ioctl_requests[0]);
	     i++)
		r = add(ctx, SCMP_ACT_ALLOW, "ioctl", 1, arg(1, SCMP_CMP_MASKED_EQ, 0xffffffff, ioctl_requests[i]));
	pid_t pid = getpid();
	/* threads only: no new processes */
	if (r == 0 && (mask & BIT(G_THREADS)))
		r = add(ctx, SCMP_ACT_ALLOW, "clone", 1, arg(0, SCMP_CMP_MASKED_EQ, CLONE_THREAD, CLONE_THREAD));
	/* clone3's flags are behind a pointer the filter cannot read: glibc
	 * falls back to clone on ENOSYS */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ERRNO(ENOSYS), "clone3", 0);
	/* prctl: anything at start; a thread that took its list only names
	 * itself or reads its name (the SIGSYS handler) */
	if (r == 0 && base)
		r = add(ctx, SCMP_ACT_ALLOW, "prctl", 0);
	if (r == 0 && !base)
		r = add(ctx, SCMP_ACT_ALLOW, "prctl", 1, arg(0, SCMP_CMP_EQ, PR_SET_NAME, 0));
	if (r == 0 && !base)
		r = add(ctx, SCMP_ACT_ALLOW, "prctl", 1, arg(0, SCMP_CMP_EQ, PR_GET_NAME, 0));
	/* signals to itself only (vCPU kicks, raise() in the SIGSYS handler) */
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "tgkill", 1, arg(0, SCMP_CMP_EQ, (scmp_datum_t)pid, 0));
	if (r == 0)
		r = add(ctx, SCMP_ACT_ALLOW, "kill", 1, arg(0, SCMP_CMP_EQ, (scmp_datum_t)pid, 0));
	/* sockets: unix (API, vsock, gvproxy), inet (NAT, NBD, REST), route
	 * netlink (getaddrinfo); other families are a common way into the
	 * kernel and kvkit has no use for them */
	if (r == 0 && (mask & BIT(G_NET)))
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, arg(0, SCMP_CMP_EQ, AF_UNIX, 0));
	if (r == 0 && (mask & BIT(G_NET)))
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, arg(0, SCMP_CMP_EQ, AF_INET, 0));
	if (r == 0 && (mask & BIT(G_NET)))
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 1, arg(0, SCMP_CMP_EQ, AF_INET6, 0));
	if (r == 0 && (mask & BIT(G_NET)))
		r = add(ctx, SCMP_ACT_ALLOW, "socket", 2, arg(0, SCMP_CMP_EQ, AF_NETLINK, 0),
			arg(2, SCMP_CMP_EQ, NETLINK_ROUTE, 0));
	/* a thread narrows itself (sandbox_thread): a filter and fewer
	 * capabilities; no thread can widen either */
	if (r == 0 && base)
		r = add(ctx, SCMP_ACT_ALLOW, "seccomp", 2, arg(0, SCMP_CMP_EQ, SECCOMP_SET_MODE_FILTER, 0),
			arg(1, SCMP_CMP_EQ, 0, 0));
	if (r == 0 && base)
		r = add(ctx, SCMP_ACT_ALLOW, "capget", 0);
	if (r == 0 && base)
		r = add(ctx, SCMP_ACT_ALLOW, "capset", 0);
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
	if (r < 0) {
		seccomp_release(ctx);
		return NULL;
	}
	return ctx;
}

/* Each role's filter, compiled to BPF before the base filter goes on, so
 * that a thread takes it with one system call and no allocation. */
static struct sock_fprog progs[SANDBOX_ROLES];
static bool active;
static bool drop_caps; /* root without --user, sandbox on */
static bool planned_on;
static bool display_planned; /* --gui: the base list has G_DISPLAY */
static __thread bool narrowed, caps_dropped;

static int compile(const struct role *role, struct sock_fprog *prog)
{
	uint32_t otherwise = SCMP_ACT_TRAP;
#ifdef KVKIT_TEST_HOOKS
	/* the learning run (docs/security.md): a thread's calls outside its
	 * list are logged by the kernel (dmesg, audit type 1326) and allowed */
	const char *learn = getenv("KVKIT_SANDBOX_LEARN");
	if (learn && *learn == '1')
		otherwise = SCMP_ACT_LOG;
#endif
	scmp_filter_ctx ctx = build(role->groups, false, otherwise);
	if (!ctx)
		return -EINVAL;
	for (unsigned i = 0; i < sizeof(role->extra) / sizeof(role->extra[0]) && role->extra[i]; i++)
		if (add(ctx, SCMP_ACT_ALLOW, role->extra[i], 0) < 0) {
			seccomp_release(ctx);
			return -EINVAL;
		}
	int fd = memfd_create("kvkit-seccomp", MFD_CLOEXEC);
	int r = fd < 0 ? -errno : seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	off_t len = r == 0 ? lseek(fd, 0, SEEK_END) : -1;
	if (r == 0 && (len <= 0 || len % sizeof(struct sock_filter) || len / sizeof(struct sock_filter) > 0xffff))
		r = -EINVAL;
	if (r == 0 && !(prog->filter = malloc((size_t)len)))
		r = -ENOMEM;
	if (r == 0 && pread(fd, prog->filter, (size_t)len, 0) != len)
		r = -EIO;
	if (r == 0)
		prog->len = (unsigned short)(len / sizeof(struct sock_filter));
	if (fd >= 0)
		close(fd);
	return r;
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
	int r = 0;
	for (unsigned i = 0; r == 0 && i < SANDBOX_ROLES; i++)
		r = compile(&roles[i], &progs[i]);
	unsigned base = display_planned ? ALL_GROUPS : ALL_GROUPS & ~BIT(G_DISPLAY);
	scmp_filter_ctx ctx = r == 0 ? build(base, true, SCMP_ACT_TRAP) : NULL;
	r = r < 0 ? r : !ctx ? -EINVAL : seccomp_load(ctx);
	seccomp_release(ctx);
	if (r < 0) {
		snprintf(err, errlen, "sandbox: cannot load the system-call filter: %s (--sandbox off runs without)",
			 strerror(-r));
		return -1;
	}
	__atomic_store_n(&active, true, __ATOMIC_RELEASE);
	log_debug("sandbox: system-call filter on for every thread");
	return 0;
}

void sandbox_plan(bool on, bool switching_user)
{
	/* with --user, the switch takes every capability from every thread
	 * (glibc has each thread call setresuid, which a thread without
	 * CAP_SETUID would fail); without the sandbox, nothing is taken */
	drop_caps = on && !switching_user;
	planned_on = on;
}

void sandbox_plan_display(void)
{
	display_planned = true;
}

bool sandbox_jails_shares(void)
{
	return planned_on && geteuid() == 0;
}

/* Keep only the role's capabilities. Capabilities belong to a thread, so
 * each thread drops its own. */
static void limit_caps(enum sandbox_role role)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct d[2];
	if (syscall(SYS_capget, &h, d) < 0)
		return;
	uint64_t have = d[0].permitted | (uint64_t)d[1].permitted << 32, keep = have & roles[role].caps;
	if (have == keep && !d[0].inheritable && !d[1].inheritable)
		return;
	for (int i = 0; i < 2; i++) {
		d[i].permitted = d[i].effective = (uint32_t)(keep >> (32 * i));
		d[i].inheritable = 0;
	}
	if (syscall(SYS_capset, &h, d) < 0)
		log_warn("sandbox: cannot drop the capabilities of a %s thread: %s", roles[role].name, strerror(errno));
}

void sandbox_thread(enum sandbox_role role)
{
	if (drop_caps && !caps_dropped) {
		caps_dropped = true;
		limit_caps(role);
	}
	if (narrowed || !__atomic_load_n(&active, __ATOMIC_ACQUIRE))
		return;
	narrowed = true;
	char comm[17] = "";
	prctl(PR_GET_NAME, comm, 0, 0, 0);
	if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &progs[role]) < 0) {
		log_warn("sandbox: thread %s keeps the process-wide list: %s", comm, strerror(errno));
		return;
	}
	log_debug("sandbox: thread %d (%s) takes the %s list", (int)syscall(SYS_gettid), comm, roles[role].name);
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

void sandbox_test_hook(const char *where)
{
#ifdef KVKIT_TEST_HOOKS
	const char *name = getenv("KVKIT_TEST_FORBIDDEN_SYSCALL");
	if (!name || !*name)
		return;
	const char *colon = strchr(name, ':');
	size_t wl = strlen(where);
	if (colon ? (size_t)(colon - name) != wl || strncmp(name, where, wl) : strcmp(where, "main"))
		return;
	if (colon)
		name = colon + 1;
	int nr = seccomp_syscall_resolve_name(name);
	if (nr == __NR_SCMP_ERROR)
		return;
	log_info("test hook: calling %s", name);
	syscall(nr, 0, 0, 0, 0, 0, 0);
	log_info("test hook: %s returned: %s", name, strerror(errno));
#else
	(void)where;
#endif
}
