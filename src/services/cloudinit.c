/* --cloud-init (spec 6.4): a NoCloud "cidata" ISO 9660 image, written with
 * libisofs (Rock Ridge and Joliet, so the guest sees the exact lower-case
 * names), attached as the last virtio-blk disk, read-only, and deleted at
 * exit. Images left by dead kvkit processes are removed at the next start. */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <kvkit/config.h>
#include <stdint.h> /* libisofs.h needs it first */
/* struct burn_source comes with libisofs.h itself: kvkit does not use libburn */
#define LIBISOFS_WITHOUT_LIBBURN 1
#include <libisofs/libisofs.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../util/log.h"
#include "cloudinit.h"

#define MAX_FILE_BYTES (16u << 20)
static const char *const names[3] = { "user-data", "meta-data", "network-config" };

static char *iso_path; /* the image this process made */

static const char *base_name(const char *p)
{
	const char *b = strrchr(p, '/');
	return b ? b + 1 : p;
}

int cloudinit_check(char *const *files, size_t n, char *err, size_t errlen)
{
	bool have_ud = false, have_md = false;
	for (size_t i = 0; i < n; i++) {
		int fd = open(files[i], O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			snprintf(err, errlen, "failed to open cloud-init file %s: %s", files[i], strerror(errno));
			return -1;
		}
		close(fd);
		const char *b = base_name(files[i]);
		have_ud |= !strcmp(b, names[0]);
		have_md |= !strcmp(b, names[1]);
		if (strcmp(b, names[0]) && strcmp(b, names[1]) && strcmp(b, names[2]))
			log_warn("cloud-init: ignoring %s: only user-data, meta-data and network-config are used", files[i]);
	}
	if (!have_ud && !have_md) {
		snprintf(err, errlen, "cloud-init needs user-data and meta-data files to work");
		return -1;
	}
	return 0;
}

static int read_small(const char *path, unsigned char **buf, size_t *len, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "failed to read cloud-init file %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > MAX_FILE_BYTES) {
		snprintf(err, errlen, "failed to read cloud-init file %s: not a regular file of at most 16 MiB", path);
		close(fd);
		return -1;
	}
	*buf = malloc(st.st_size ? st.st_size : 1);
	size_t got = 0;
	while (*buf && got < (size_t)st.st_size) {
		ssize_t r = read(fd, *buf + got, st.st_size - got);
		if (r <= 0)
			break;
		got += r;
	}
	close(fd);
	if (!*buf || got != (size_t)st.st_size) {
		free(*buf);
		snprintf(err, errlen, "failed to read cloud-init file %s", path);
		return -1;
	}
	*len = got;
	return 0;
}

/* ${TMPDIR:-/tmp}/vfkit-cloudinit-UID: ours alone (0700, owned by us). */
static int private_dir(char *dir, size_t len, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");
	snprintf(dir, len, "%s/vfkit-cloudinit-%u", tmp && *tmp ? tmp : "/tmp", (unsigned)getuid());
	if (mkdir(dir, 0700) < 0 && errno != EEXIST) {
		snprintf(err, errlen, "cloud-init: cannot create %s: %s", dir, strerror(errno));
		return -1;
	}
	struct stat st;
	if (lstat(dir, &st) < 0 || !S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 0077)) {
		snprintf(err, errlen, "cloud-init: %s is not a private directory of this user", dir);
		return -1;
	}
	return 0;
}

/* Images named vfkit-cloudinit-PID-*.iso whose PID is gone are stale. */
static void remove_stale(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	if (!d)
		return;
	while ((e = readdir(d))) {
		int pid;
		char tail[64];
		if (sscanf(e->d_name, "vfkit-cloudinit-%d-%63s", &pid, tail) != 2 || pid <= 0 ||
		    !strstr(e->d_name, ".iso"))
			continue;
		if (kill(pid, 0) == 0 || errno != ESRCH)
			continue;
		if (unlinkat(dirfd(d), e->d_name, 0) == 0)
			log_info("cloud-init: removed %s/%s left by process %d", dir, e->d_name, pid);
	}
	closedir(d);
}

static int write_iso(IsoImage *img, int fd, char *err, size_t errlen)
{
	IsoWriteOpts *opts;
	struct burn_source *src;
	int r = iso_write_opts_new(&opts, 0);
	if (r < 0)
		goto fail;
	iso_write_opts_set_rockridge(opts, 1);
	iso_write_opts_set_joliet(opts, 1);
	r = iso_image_create_burn_source(img, opts, &src);
	iso_write_opts_free(opts);
	if (r < 0)
		goto fail;
	unsigned char buf[2048];
	int n, wr = 0;
	while ((n = src->read_xt(src, buf, sizeof(buf))) > 0)
		if (wr == 0 && write(fd, buf, n) != n)
			wr = -1; /* keep reading: the writer thread must finish */
	src->free_data(src);
	free(src);
	if (n < 0 || wr < 0) {
		snprintf(err, errlen, "cloud-init: cannot write the ISO image: %s", n < 0 ? "libisofs error" : strerror(errno));
		return -1;
	}
	return 0;
fail:
	snprintf(err, errlen, "cloud-init: libisofs error %d", r);
	return -1;
}

int cloudinit_build(char *const *files, size_t n, char **out_path, char *err, size_t errlen)
{
	char dir[4096], path[4200];
	unsigned short rnd = 0;
	if (private_dir(dir, sizeof(dir), err, errlen) < 0)
		return -1;
	remove_stale(dir);
	if (getrandom(&rnd, sizeof(rnd), 0) < 0)
		rnd = (unsigned short)getpid();
	snprintf(path, sizeof(path), "%s/vfkit-cloudinit-%d-%04x.iso", dir, (int)getpid(), rnd);

	if (iso_init() < 0) {
		snprintf(err, errlen, "cloud-init: cannot initialise libisofs");
		return -1;
	}
	IsoImage *img = NULL;
	int rc = -1, fd = -1;
	if (iso_image_new("cidata", &img) < 0) {
		snprintf(err, errlen, "cloud-init: out of memory");
		goto out;
	}
	IsoDir *root = iso_image_get_root(img);
	for (int k = 0; k < 3; k++) {
		/* the last file with this name wins; a missing one is empty */
		const char *src = NULL;
		for (size_t i = 0; i < n; i++)
			if (!strcmp(base_name(files[i]), names[k]))
				src = files[i];
		unsigned char *buf = NULL;
		size_t len = 0;
		if (src && read_small(src, &buf, &len, err, errlen) < 0)
			goto out;
		if (!src && !(buf = malloc(1))) {
			snprintf(err, errlen, "cloud-init: out of memory");
			goto out;
		}
		IsoStream *stream;
		IsoFile *file;
		if (iso_memory_stream_new(buf, len, &stream) < 0) {
			free(buf);
			snprintf(err, errlen, "cloud-init: out of memory");
			goto out;
		}
		if (iso_tree_add_new_file(root, names[k], stream, &file) < 0) {
			iso_stream_unref(stream);
			snprintf(err, errlen, "cloud-init: cannot add %s to the image", names[k]);
			goto out;
		}
		iso_node_set_permissions((IsoNode *)file, 0444); /* the file took our stream reference */
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		snprintf(err, errlen, "cloud-init: cannot create %s: %s", path, strerror(errno));
		goto out;
	}
	iso_path = strdup(path);
	if (!iso_path || write_iso(img, fd, err, errlen) < 0 || fsync(fd) < 0)
		goto out;
	*out_path = strdup(path);
	rc = *out_path ? 0 : -1;
out:
	if (fd >= 0)
		close(fd);
	if (img)
		iso_image_unref(img);
	iso_finish();
	if (rc < 0)
		cloudinit_remove();
	else
		log_info("cloud-init: seed image %s", path);
	return rc;
}

void cloudinit_remove(void)
{
	if (iso_path) {
		unlink(iso_path);
		free(iso_path);
		iso_path = NULL;
	}
}

int cloudinit_add_seed_disk(struct kv_config *c, char *err, size_t errlen)
{
	char *iso;
	if (cloudinit_build(c->cloud_init, c->ncloud_init, &iso, err, errlen) < 0)
		return -1;
	struct kv_device *d = kv_add_disk(c, KV_DEV_VIRTIO_BLK, iso, true);
	free(iso);
	if (!d) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	return 0;
}
