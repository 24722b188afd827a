/* The jail of a shared folder's workers: the way virtiofsd does it (a new
 * mount namespace, mounts no longer shared back to the host, the folder
 * bind-mounted on itself, pivot_root into it, the old root detached), but
 * for threads: a thread that does not share its file-system attributes
 * may have a mount namespace of its own. */
#define _GNU_SOURCE
#include "jail.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/syscall.h>
#include <unistd.h>

struct making {
	const char *dir;
	struct jail *j;
	const char *step;
	int err;
};

static int fail(struct making *m, const char *step)
{
	m->step = step;
	m->err = errno;
	return -1;
}

static int make_here(struct making *m)
{
	struct jail *j = m->j;
	if (unshare(CLONE_FS | CLONE_NEWNS) < 0)
		return fail(m, "unshare");
	j->ns = open("/proc/thread-self/ns/mnt", O_RDONLY | O_CLOEXEC);
	if (j->ns < 0)
		return fail(m, "open its namespace");
	/* from here on, nothing done in here shows outside, while the
	 * host's later mounts still show in here */
	if (mount(NULL, "/", NULL, MS_REC | MS_SLAVE, NULL) < 0)
		return fail(m, "make mounts private");
	if (mount(m->dir, m->dir, NULL, MS_BIND | MS_REC, NULL) < 0)
		return fail(m, "bind-mount the folder");
	if (chdir(m->dir) < 0)
		return fail(m, "enter the folder");
	/* the old root ends up stacked on ".", and is then detached */
	if (syscall(SYS_pivot_root, ".", ".") < 0)
		return fail(m, "pivot_root");
	if (umount2(".", MNT_DETACH) < 0)
		return fail(m, "detach the host's root");
	if (chdir("/") < 0)
		return fail(m, "chdir /");
	j->root_path = open("/", O_PATH | O_DIRECTORY | O_CLOEXEC);
	j->root_dir = open("/", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (j->root_path < 0 || j->root_dir < 0)
		return fail(m, "open the folder inside");
	return 0;
}

static void *maker(void *arg)
{
	make_here(arg);
	return NULL;
}

int jail_make(const char *dir, struct jail *j, char *err, size_t errlen)
{
	*j = (struct jail){ .ns = -1, .root_path = -1, .root_dir = -1 };
	struct making m = { .dir = dir, .j = j };
	pthread_t t;
	int r = pthread_create(&t, NULL, maker, &m);
	if (r) {
		snprintf(err, errlen, "cannot start a thread: %s", strerror(r));
		return -1;
	}
	pthread_join(t, NULL);
	if (m.step) {
		snprintf(err, errlen, "cannot jail the folder's workers (%s: %s)", m.step, strerror(m.err));
		jail_free(j);
		return -1;
	}
	return 0;
}

int jail_enter(const struct jail *j)
{
	if (setns(j->ns, CLONE_NEWNS) < 0)
		return -errno;
	/* setns puts the thread at the top of the namespace's mount tree,
	 * which is the folder only where the host's root is a mount of its
	 * own on the initial ramfs; when the host runs chrooted (a rig, a
	 * container) the top is elsewhere: go to the folder explicitly */
	if (fchdir(j->root_dir) < 0 || chroot(".") < 0 || chdir("/") < 0)
		return -errno;
	return 0;
}

void jail_free(struct jail *j)
{
	if (j->ns >= 0)
		close(j->ns);
	if (j->root_path >= 0)
		close(j->root_path);
	if (j->root_dir >= 0)
		close(j->root_dir);
	*j = (struct jail){ .ns = -1, .root_path = -1, .root_dir = -1 };
}
