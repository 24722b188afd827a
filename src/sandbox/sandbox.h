/* The sandbox kvkit enters once everything it opens at start is open:
 * no_new_privs and a seccomp allow-list of system calls (docs/security.md). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* no_new_privs always; the system-call filter unless filter is false
 * (--sandbox off). Applies to every thread, existing and future. */
int sandbox_enter(bool filter, char *err, size_t errlen);

#include <sys/types.h>

/* --user: a user name or number, checked at start (kvkit must run as root,
 * and the user must not be root). */
int sandbox_resolve_user(const char *user, uid_t *uid, gid_t *gid, char *err, size_t errlen);

/* Become uid/gid for good, with no supplementary groups and no
 * capabilities left. The files in own (NULL entries skipped) are given to
 * the user first: kvkit removes them at exit (pidfile, REST socket). */
int sandbox_drop_user(uid_t uid, gid_t gid, const char *const *own, size_t n, char *err, size_t errlen);

/* Test builds only (KVKIT_TEST_HOOKS): make the system call named by
 * $KVKIT_TEST_FORBIDDEN_SYSCALL, to show the filter stops it. */
void sandbox_test_hook(void);
