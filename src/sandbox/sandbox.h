/* The sandbox kvkit enters once everything it opens at start is open:
 * no_new_privs and a seccomp allow-list of system calls (docs/security.md). */
#pragma once
#include <stdbool.h>
#include <stddef.h>

/* no_new_privs always; the system-call filter unless filter is false
 * (--sandbox off). Applies to every thread, existing and future. */
int sandbox_enter(bool filter, char *err, size_t errlen);

/* Test builds only (KVKIT_TEST_HOOKS): make the system call named by
 * $KVKIT_TEST_FORBIDDEN_SYSCALL, to show the filter stops it. */
void sandbox_test_hook(void);
