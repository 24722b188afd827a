/* A shared folder's jail: a mount namespace whose root is the folder, for
 * the threads that serve it, so that a path bug in the FUSE server can
 * reach nothing but the folder (docs/security.md). */
#pragma once
#include <stddef.h>

struct jail {
	int ns;        /* the mount namespace (-1: no jail) */
	int root_path; /* the folder as seen inside: O_PATH */
	int root_dir;  /* the same, O_RDONLY: where jail_enter() goes */
};

/* Make the namespace (from a short-lived thread: the caller's own view of
 * the file system does not change). Needs root (CAP_SYS_ADMIN). */
int jail_make(const char *dir, struct jail *j, char *err, size_t errlen);

/* The calling thread moves into the jail for good: the namespace, and the
 * folder as its root. It must not share its file-system attributes
 * (unshare(CLONE_FS) first) and needs CAP_SYS_ADMIN and CAP_SYS_CHROOT.
 * 0 or -errno. */
int jail_enter(const struct jail *j);

/* Close what jail_make opened (threads inside keep the namespace alive). */
void jail_free(struct jail *j);
