/* The sandbox kvkit enters once everything it opens at start is open:
 * no_new_privs and a seccomp allow-list of system calls (docs/security.md). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* no_new_privs always; the system-call filter unless filter is false
 * (--sandbox off). Applies to every thread, existing and future; each
 * thread then narrows itself with sandbox_thread(). */
int sandbox_enter(bool filter, char *err, size_t errlen);

/* The kinds of thread, each with its own narrower list. */
enum sandbox_role {
	SANDBOX_VCPU,
	SANDBOX_IO,       /* the main thread's event loop */
	SANDBOX_SHARE,    /* virtio-fs workers */
	SANDBOX_BLOCK,    /* disk I/O threads (no io_uring) */
	SANDBOX_HTTP,     /* REST API and Ignition (libmicrohttpd) */
	SANDBOX_TIMESYNC,
	SANDBOX_DISPLAY,  /* the --gui window */
	SANDBOX_ROLES
};

/* The calling thread narrows itself: to its role's capabilities at the
 * first call (when sandbox_plan() said so), and to its role's list of
 * system calls at the first call after the process-wide filter is on. A
 * no-op otherwise, cheap enough to call at the top of a request loop; call
 * it when a thread starts, too. */
void sandbox_thread(enum sandbox_role role);

/* Called at start, before any thread: whether the sandbox will be on and
 * whether --user will take every capability anyway. */
void sandbox_plan(bool on, bool switching_user);

/* --gui: the process-wide list also allows what the window needs. */
void sandbox_plan_display(void);

/* Whether a shared folder's workers get a jail (src/sandbox/jail.h): with
 * the sandbox on, when kvkit runs as root. */
bool sandbox_jails_shares(void);

#include <sys/types.h>

/* --user: a user name or number, checked at start (kvkit must run as root,
 * and the user must not be root). */
int sandbox_resolve_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* Become uid/gid for good, with no supplementary groups and no
 * capabilities left. The files in own (NULL entries skipped) are given to
 * the user first: kvkit removes them at exit (pidfile, REST socket). */
int sandbox_drop_user(uid_t uid, gid_t gid, const char *const *own, size_t n, char *err, size_t errlen);

/* Test builds only (KVKIT_TEST_HOOKS): make the system call named by
 * $KVKIT_TEST_FORBIDDEN_SYSCALL, to show the filter stops it. "NAME" is
 * called from the main thread (where "main") before it narrows itself,
 * "vcpu:NAME" from each vCPU thread after it took its own list. */
void sandbox_test_hook(const char *where);
