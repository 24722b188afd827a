/* The FUSE server against a real temporary folder: protocol answers, what
 * lands on disk, and escape attempts that must fail. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/fuse.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/uio.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../src/fs/dax_window.h"
#include <sys/fsuid.h>
#include "../../src/fs/fuse_server.h"

static char top[256], share[300], outside[300];
static struct fuse_server *srv;
static uint8_t reqbuf[1 << 16], repbuf[1 << 17];
static uint64_t uniq;
static uint32_t guest_uid, guest_gid; /* the guest user making the requests */

/* one request: header + args (pieces concatenated); returns the error field,
 * the payload is at repbuf + 16 */
static int call(uint32_t op, uint64_t nodeid, size_t *outlen, int nparts, ...)
{
	struct fuse_in_header h = { .opcode = op, .unique = ++uniq, .nodeid = nodeid, .uid = guest_uid, .gid = guest_gid };
	size_t len = sizeof(h);
	va_list ap;
	va_start(ap, nparts);
	for (int i = 0; i < nparts; i++) {
		const void *p = va_arg(ap, const void *);
		size_t n = va_arg(ap, size_t);
		memcpy(reqbuf + len, p, n);
		len += n;
	}
	va_end(ap);
	h.len = len;
	memcpy(reqbuf, &h, sizeof(h));
	struct iovec rq = { reqbuf, len }, rp = { repbuf, sizeof(repbuf) };
	memset(repbuf, 0xee, 64);
	size_t n = fuse_server_handle(srv, &rq, 1, &rp, 1);
	if (outlen)
		*outlen = n;
	if (n == 0)
		return 1; /* no reply */
	struct fuse_out_header *o = (struct fuse_out_header *)repbuf;
	assert_int_equal(o->unique, uniq);
	assert_int_equal(o->len, n);
	return o->error;
}

#define S(str) (str), strlen(str) + 1

static uint64_t lookup(uint64_t dir, const char *name, int *err)
{
	int e = call(FUSE_LOOKUP, dir, NULL, 1, S(name));
	if (err)
		*err = e;
	return e ? 0 : ((struct fuse_entry_out *)(repbuf + 16))->nodeid;
}

static uint64_t open_file(uint64_t node, int flags, int *err)
{
	struct fuse_open_in in = { .flags = flags };
	int e = call(FUSE_OPEN, node, NULL, 1, &in, sizeof(in));
	if (err)
		*err = e;
	return e ? 0 : ((struct fuse_open_out *)(repbuf + 16))->fh;
}

static int setup(void **st)
{
	snprintf(top, sizeof(top), "/tmp/kvkit-fuse-XXXXXX");
	assert_non_null(mkdtemp(top));
	snprintf(share, sizeof(share), "%s/share", top);
	snprintf(outside, sizeof(outside), "%s/secret", top);
	mkdir(share, 0755);
	FILE *f = fopen(outside, "w");
	fputs("secret", f);
	fclose(f);
	char err[200];
	srv = fuse_server_new(share, FUSE_CACHE_AUTO, err, sizeof(err));
	assert_non_null(srv);
	struct fuse_init_in in = { .major = 7, .minor = 36, .max_readahead = 65536,
				   .flags = FUSE_ASYNC_READ | FUSE_DO_READDIRPLUS | FUSE_POSIX_LOCKS };
	size_t n;
	assert_int_equal(call(FUSE_INIT, 0, &n, 1, &in, sizeof(in)), 0);
	struct fuse_init_out *o = (struct fuse_init_out *)(repbuf + 16);
	assert_int_equal(o->major, 7);
	assert_true(o->flags & FUSE_DO_READDIRPLUS);
	assert_false(o->flags & FUSE_POSIX_LOCKS); /* not offered: the guest locks locally */
	return 0;
}

static int teardown(void **st)
{
	fuse_server_free(srv);
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", top);
	return system(cmd);
}

static void create_write_read(void **st)
{
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT | O_EXCL, .mode = S_IFREG | 0640 };
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("a.txt")), 0);
	struct fuse_entry_out *e = (struct fuse_entry_out *)(repbuf + 16);
	struct fuse_open_out *oo = (struct fuse_open_out *)(e + 1);
	uint64_t node = e->nodeid, fh = oo->fh;
	assert_true(S_ISREG(e->attr.mode));
	struct fuse_write_in wi = { .fh = fh, .offset = 3, .size = 5 };
	assert_int_equal(call(FUSE_WRITE, node, NULL, 2, &wi, sizeof(wi), "hello", (size_t)5), 0);
	assert_int_equal(((struct fuse_write_out *)(repbuf + 16))->size, 5);
	/* on the host */
	char path[400], buf[16] = { 0 };
	snprintf(path, sizeof(path), "%s/a.txt", share);
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, buf, sizeof(buf), 0), 8);
	close(fd);
	assert_memory_equal(buf, "\0\0\0hello", 8);
	struct stat hs;
	stat(path, &hs);
	assert_int_equal(hs.st_mode & 0777, 0640);
	/* back through the server */
	struct fuse_read_in ri = { .fh = fh, .offset = 3, .size = 100 };
	size_t n;
	assert_int_equal(call(FUSE_READ, node, &n, 1, &ri, sizeof(ri)), 0);
	assert_int_equal(n, 16 + 5);
	assert_memory_equal(repbuf + 16, "hello", 5);
	/* a second CREATE with O_EXCL fails */
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("a.txt")), -EEXIST);
	struct fuse_release_in rel = { .fh = fh };
	assert_int_equal(call(FUSE_RELEASE, node, NULL, 1, &rel, sizeof(rel)), 0);
	/* the handle is gone */
	assert_int_equal(call(FUSE_READ, node, NULL, 1, &ri, sizeof(ri)), -EBADF);
	assert_int_equal(call(FUSE_RELEASE, node, NULL, 1, &rel, sizeof(rel)), -EBADF);
}

static void names_that_escape(void **st)
{
	int err;
	lookup(FUSE_ROOT_ID, "..", &err);
	assert_int_equal(err, -EINVAL);
	lookup(FUSE_ROOT_ID, ".", &err);
	assert_int_equal(err, -EINVAL);
	lookup(FUSE_ROOT_ID, "../secret", &err);
	assert_int_equal(err, -EINVAL);
	lookup(FUSE_ROOT_ID, "", &err);
	assert_int_equal(err, -EINVAL);
	struct fuse_mkdir_in mi = { .mode = 0755 };
	assert_int_equal(call(FUSE_MKDIR, FUSE_ROOT_ID, NULL, 2, &mi, sizeof(mi), S("a/b")), -EINVAL);
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0644 };
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("../evil")), -EINVAL);
	char evil[400];
	snprintf(evil, sizeof(evil), "%s/evil", top);
	assert_int_equal(access(evil, F_OK), -1);
	/* a name without its NUL */
	assert_int_equal(call(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 1, "abc", (size_t)3), -EINVAL);
}

static void symlinks_stay_in_the_guest(void **st)
{
	/* a symlink to a host file outside the share, made on the host */
	char path[400];
	snprintf(path, sizeof(path), "%s/out", share);
	assert_int_equal(symlink(outside, path), 0);
	int err;
	uint64_t node = lookup(FUSE_ROOT_ID, "out", &err);
	assert_int_equal(err, 0);
	assert_true(S_ISLNK(((struct fuse_entry_out *)(repbuf + 16))->attr.mode));
	/* it is never opened on the host: the guest resolves the link itself */
	open_file(node, O_RDONLY, &err);
	assert_int_equal(err, -EACCES);
	size_t n;
	assert_int_equal(call(FUSE_READLINK, node, &n, 0), 0);
	assert_int_equal(n - 16, strlen(outside));
	/* CREATE through the symlink's name does not follow it */
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT | O_TRUNC, .mode = S_IFREG | 0644 };
	assert_int_not_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("out")), 0);
	struct stat s;
	assert_int_equal(stat(outside, &s), 0);
	assert_int_equal(s.st_size, 6); /* not truncated */
	/* a guest symlink is just text to the host */
	assert_int_equal(call(FUSE_SYMLINK, FUSE_ROOT_ID, NULL, 2, S("ln"), S("/etc/passwd")), 0);
	snprintf(path, sizeof(path), "%s/ln", share);
	char tgt[64] = { 0 };
	assert_int_equal(readlink(path, tgt, sizeof(tgt)), 11);
	assert_string_equal(tgt, "/etc/passwd");
	/* xattrs on a symlink are not reached through it */
	struct fuse_getxattr_in gi = { .size = 64 };
	assert_int_equal(call(FUSE_GETXATTR, node, NULL, 2, &gi, sizeof(gi), S("user.x")), -ENODATA);
}

static void device_nodes_never_open(void **st)
{
	struct fuse_mknod_in mk = { .mode = S_IFCHR | 0666, .rdev = makedev(1, 3) };
	assert_int_equal(call(FUSE_MKNOD, FUSE_ROOT_ID, NULL, 2, &mk, sizeof(mk), S("null")), -EPERM);
	mk.mode = S_IFIFO | 0644;
	assert_int_equal(call(FUSE_MKNOD, FUSE_ROOT_ID, NULL, 2, &mk, sizeof(mk), S("fifo")), 0);
	/* a device node made on the host (needs root) */
	char path[400];
	snprintf(path, sizeof(path), "%s/zero", share);
	if (mknod(path, S_IFCHR | 0666, makedev(1, 5)) == 0) {
		int err;
		lookup(FUSE_ROOT_ID, "zero", &err);
		assert_int_equal(err, -EACCES);
	}
	/* RENAME_WHITEOUT would make a 0/0 char device */
	struct fuse_rename2_in rn = { .newdir = FUSE_ROOT_ID, .flags = RENAME_WHITEOUT };
	assert_int_equal(call(FUSE_RENAME2, FUSE_ROOT_ID, NULL, 3, &rn, sizeof(rn), S("fifo"), S("fifo2")), -EINVAL);
}

/* Issue 23 defect 2: CREATE without O_EXCL on an existing FIFO opened it
 * (the worker blocked for good: here the test would hang, and SIGALRM ends
 * it), and on a host device node opened the device. */
static void create_never_opens_fifo_or_device(void **st)
{
	struct fuse_mknod_in mk = { .mode = S_IFIFO | 0644 };
	assert_int_equal(call(FUSE_MKNOD, FUSE_ROOT_ID, NULL, 2, &mk, sizeof(mk), S("fifo")), 0);
	alarm(10);
	struct fuse_create_in ci = { .flags = O_WRONLY, .mode = S_IFREG | 0644 };
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("fifo")), -EACCES);
	ci.flags = O_RDONLY;
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("fifo")), -EACCES);
	alarm(0);
	char path[400];
	snprintf(path, sizeof(path), "%s/null", share);
	if (mknod(path, S_IFCHR | 0666, makedev(1, 3)) == 0) { /* needs root */
		ci.flags = O_WRONLY | O_TRUNC;
		assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("null")), -EACCES);
	}
	/* a folder by that name */
	snprintf(path, sizeof(path), "%s/dir", share);
	assert_int_equal(mkdir(path, 0755), 0);
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("dir")), -EISDIR);
	/* a regular file is still opened, O_NONBLOCK only if the guest asked */
	ci.flags = O_WRONLY;
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("plain")), 0);
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("plain")), 0);
}

/* Issue 23 defect 3: every file the guest looked up kept a host
 * descriptor, without a cap, until kvkit's opens failed with EMFILE. Past
 * the budget the guest gets ENFILE; forgetting gives descriptors back. */
static void descriptor_budget(void **st)
{
	char path[400];
	for (int i = 0; i < 40; i++) {
		snprintf(path, sizeof(path), "%s/f%d", share, i);
		int fd = open(path, O_CREAT | O_WRONLY, 0644);
		assert_true(fd >= 0);
		close(fd);
	}
	fuse_server_set_fd_budget(16);
	uint64_t ids[40];
	int got = 0, err = 0;
	for (int i = 0; i < 40; i++) {
		char name[16];
		snprintf(name, sizeof(name), "f%d", i);
		ids[got] = lookup(FUSE_ROOT_ID, name, &err);
		if (err) {
			assert_int_equal(err, -ENFILE);
			break;
		}
		got++;
	}
	assert_int_equal(got, 16);
	/* an open needs one more: refused the same way */
	struct fuse_create_in ci = { .flags = O_WRONLY, .mode = S_IFREG | 0644 };
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("new")), -ENFILE);
	/* kvkit itself still opens files */
	int fd = open(path, O_RDONLY);
	assert_true(fd >= 0);
	close(fd);
	/* the guest forgets one: the next lookup works */
	struct fuse_forget_in fg = { .nlookup = 1 };
	call(FUSE_FORGET, ids[0], NULL, 1, &fg, sizeof(fg));
	lookup(FUSE_ROOT_ID, "f39", &err);
	assert_int_equal(err, 0);
	fuse_server_set_fd_budget(0);
}

static void links_renames_and_dirs(void **st)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/f", share);
	FILE *f = fopen(path, "w");
	fputs("one", f);
	fclose(f);
	int err;
	uint64_t fnode = lookup(FUSE_ROOT_ID, "f", &err);
	struct fuse_link_in li = { .oldnodeid = fnode };
	assert_int_equal(call(FUSE_LINK, FUSE_ROOT_ID, NULL, 2, &li, sizeof(li), S("g")), 0);
	struct fuse_entry_out *e = (struct fuse_entry_out *)(repbuf + 16);
	assert_int_equal(e->nodeid, fnode); /* the same inode, one more reference */
	assert_int_equal(e->attr.nlink, 2);
	struct fuse_mkdir_in mi = { .mode = 0700 };
	assert_int_equal(call(FUSE_MKDIR, FUSE_ROOT_ID, NULL, 2, &mi, sizeof(mi), S("d")), 0);
	uint64_t d = ((struct fuse_entry_out *)(repbuf + 16))->nodeid;
	struct fuse_rename_in rn = { .newdir = d };
	assert_int_equal(call(FUSE_RENAME, FUSE_ROOT_ID, NULL, 3, &rn, sizeof(rn), S("g"), S("h")), 0);
	snprintf(path, sizeof(path), "%s/d/h", share);
	assert_int_equal(access(path, F_OK), 0);
	/* rename over an existing file (h and f are one inode: make another) */
	assert_int_equal(call(FUSE_RMDIR, FUSE_ROOT_ID, NULL, 1, S("d")), -ENOTEMPTY);
	assert_int_equal(call(FUSE_UNLINK, d, NULL, 1, S("h")), 0);
	snprintf(path, sizeof(path), "%s/d/new", share);
	f = fopen(path, "w");
	fputs("two", f);
	fclose(f);
	rn.newdir = FUSE_ROOT_ID;
	assert_int_equal(call(FUSE_RENAME, d, NULL, 3, &rn, sizeof(rn), S("new"), S("f")), 0);
	snprintf(path, sizeof(path), "%s/f", share);
	char buf[8] = { 0 };
	f = fopen(path, "r");
	assert_non_null(fgets(buf, sizeof(buf), f));
	fclose(f);
	assert_string_equal(buf, "two");
	assert_int_equal(call(FUSE_RMDIR, FUSE_ROOT_ID, NULL, 1, S("d")), 0);
	assert_int_equal(call(FUSE_UNLINK, FUSE_ROOT_ID, NULL, 1, S("f")), 0);
	assert_int_equal(call(FUSE_UNLINK, FUSE_ROOT_ID, NULL, 1, S("f")), -ENOENT);
	/* a renamed-away directory's node is stale but harmless */
	struct fuse_getattr_in gi = { 0 };
	assert_int_equal(call(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 1, &gi, sizeof(gi)), 0);
}

static void readdirplus_and_forget(void **st)
{
	unsigned before = fuse_server_inodes(srv);
	for (int i = 0; i < 50; i++) {
		char path[400];
		snprintf(path, sizeof(path), "%s/n%02d", share, i);
		close(open(path, O_CREAT | O_WRONLY, 0644));
	}
	struct fuse_open_in oi = { .flags = O_RDONLY };
	assert_int_equal(call(FUSE_OPENDIR, FUSE_ROOT_ID, NULL, 1, &oi, sizeof(oi)), 0);
	uint64_t fh = ((struct fuse_open_out *)(repbuf + 16))->fh;
	int seen = 0, dots = 0;
	uint64_t off = 0;
	uint64_t ids[64];
	for (;;) {
		struct fuse_read_in ri = { .fh = fh, .offset = off, .size = 1024 }; /* small: several rounds */
		size_t n;
		assert_int_equal(call(FUSE_READDIRPLUS, FUSE_ROOT_ID, &n, 1, &ri, sizeof(ri)), 0);
		if (n == 16)
			break;
		for (size_t p = 16; p < n;) {
			struct fuse_direntplus *dp = (struct fuse_direntplus *)(repbuf + p);
			if (dp->dirent.namelen <= 2 && dp->dirent.name[0] == '.') {
				dots++;
				assert_int_equal(dp->entry_out.nodeid, 0);
			} else {
				assert_true(dp->entry_out.nodeid != 0);
				ids[seen++] = dp->entry_out.nodeid;
			}
			off = dp->dirent.off;
			p += FUSE_DIRENT_ALIGN(FUSE_NAME_OFFSET_DIRENTPLUS + dp->dirent.namelen);
		}
	}
	assert_int_equal(dots, 2);
	assert_true(seen >= 50);
	assert_true(fuse_server_inodes(srv) >= before + 50);
	/* BATCH_FORGET hands them back: no reply */
	struct {
		struct fuse_batch_forget_in b;
		struct fuse_forget_one one[64];
	} bf = { .b.count = seen };
	for (int i = 0; i < seen; i++)
		bf.one[i] = (struct fuse_forget_one){ ids[i], 1 };
	size_t n;
	call(FUSE_BATCH_FORGET, 0, &n, 1, &bf, sizeof(bf.b) + seen * sizeof(bf.one[0]));
	assert_int_equal(n, 0);
	assert_true(fuse_server_inodes(srv) <= before + (unsigned)seen - 50);
	struct fuse_release_in rel = { .fh = fh };
	assert_int_equal(call(FUSE_RELEASEDIR, FUSE_ROOT_ID, NULL, 1, &rel, sizeof(rel)), 0);
}

static void bad_requests(void **st)
{
	/* unknown node, unknown opcode, short arguments, made-up handles */
	struct fuse_getattr_in gi = { 0 };
	assert_int_equal(call(FUSE_GETATTR, 0x123456789ull, NULL, 1, &gi, sizeof(gi)), -ENOENT);
	assert_int_equal(call(9999, FUSE_ROOT_ID, NULL, 0), -ENOSYS);
	assert_int_equal(call(FUSE_SETATTR, FUSE_ROOT_ID, NULL, 1, "x", (size_t)1), -EINVAL);
	struct fuse_read_in ri = { .fh = 0xdeadbeef, .size = 10 };
	assert_int_equal(call(FUSE_READ, FUSE_ROOT_ID, NULL, 1, &ri, sizeof(ri)), -EBADF);
	/* WRITE claiming more data than it carries */
	struct fuse_write_in wi = { .fh = 1, .size = 4096 };
	assert_int_equal(call(FUSE_WRITE, FUSE_ROOT_ID, NULL, 2, &wi, sizeof(wi), "ab", (size_t)2), -EINVAL);
	/* a header alone, shorter than itself */
	struct iovec rq = { reqbuf, 10 }, rp = { repbuf, sizeof(repbuf) };
	assert_int_equal(fuse_server_handle(srv, &rq, 1, &rp, 1), 0);
	/* no room for a reply: nothing written */
	struct fuse_in_header h = { .len = sizeof(h), .opcode = FUSE_STATFS, .nodeid = FUSE_ROOT_ID };
	memcpy(reqbuf, &h, sizeof(h));
	rq.iov_len = sizeof(h);
	rp.iov_len = 8;
	assert_int_equal(fuse_server_handle(srv, &rq, 1, &rp, 1), 0);
	/* a reply that does not fit the guest's buffer turns into EIO */
	rp.iov_len = 20;
	assert_int_equal(fuse_server_handle(srv, &rq, 1, &rp, 1), 16);
	assert_int_equal(((struct fuse_out_header *)repbuf)->error, -EIO);
	/* forgetting the root or an unknown node changes nothing */
	struct fuse_forget_in fi = { .nlookup = 100 };
	call(FUSE_FORGET, FUSE_ROOT_ID, NULL, 1, &fi, sizeof(fi));
	call(FUSE_FORGET, 77777, NULL, 1, &fi, sizeof(fi));
	assert_int_equal(call(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 1, &gi, sizeof(gi)), 0);
}

static void setattr_xattr_statfs(void **st)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/t", share);
	close(open(path, O_CREAT | O_WRONLY, 0600));
	int err;
	uint64_t node = lookup(FUSE_ROOT_ID, "t", &err);
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_MODE | FATTR_MTIME, .size = 12345, .mode = 0604,
				      .mtime = 1000000000 };
	assert_int_equal(call(FUSE_SETATTR, node, NULL, 1, &sa, sizeof(sa)), 0);
	struct fuse_attr_out *ao = (struct fuse_attr_out *)(repbuf + 16);
	assert_int_equal(ao->attr.size, 12345);
	assert_int_equal(ao->attr.mode & 0777, 0604);
	assert_int_equal(ao->attr.mtime, 1000000000);
	struct stat s;
	stat(path, &s);
	assert_int_equal(s.st_size, 12345);
	struct {
		struct fuse_setxattr_in in;
	} sx = { { .size = 3 } };
	if (call(FUSE_SETXATTR, node, NULL, 3, &sx, (size_t)FUSE_COMPAT_SETXATTR_IN_SIZE, S("user.k"), "abc",
		 (size_t)3) == 0) { /* tmpfs without user xattrs says EOPNOTSUPP */
		struct fuse_getxattr_in gi = { .size = 0 };
		assert_int_equal(call(FUSE_GETXATTR, node, NULL, 2, &gi, sizeof(gi), S("user.k")), 0);
		assert_int_equal(((struct fuse_getxattr_out *)(repbuf + 16))->size, 3);
		gi.size = 64;
		size_t n;
		assert_int_equal(call(FUSE_GETXATTR, node, &n, 2, &gi, sizeof(gi), S("user.k")), 0);
		assert_int_equal(n, 19);
		assert_memory_equal(repbuf + 16, "abc", 3);
	}
	assert_int_equal(call(FUSE_STATFS, FUSE_ROOT_ID, NULL, 0), 0);
	assert_true(((struct fuse_statfs_out *)(repbuf + 16))->st.bsize > 0);
}

static mode_t host_mode(const char *name)
{
	char path[400];
	struct stat s;
	snprintf(path, sizeof(path), "%s/%s", share, name);
	assert_int_equal(stat(path, &s), 0);
	return s.st_mode & 07777;
}

/* FUSE_HANDLE_KILLPRIV_V2: set-user-ID and executable set-group-ID bits go
 * when the guest says so (an unprivileged writer), and only then */
static void kill_suidgid_on_write_and_truncate(void **st)
{
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT, .mode = S_IFREG | 0755 };
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("suid")), 0);
	struct fuse_entry_out *e = (struct fuse_entry_out *)(repbuf + 16);
	uint64_t node = e->nodeid, fh = ((struct fuse_open_out *)(e + 1))->fh;
	char path[400];
	snprintf(path, sizeof(path), "%s/suid", share);
	assert_int_equal(chmod(path, 06755), 0);
	struct fuse_write_in wi = { .fh = fh, .size = 2 };
	assert_int_equal(call(FUSE_WRITE, node, NULL, 2, &wi, sizeof(wi), "ab", (size_t)2), 0);
	assert_int_equal(host_mode("suid"), 06755); /* a privileged writer keeps them */
	wi.write_flags = FUSE_WRITE_KILL_SUIDGID;
	assert_int_equal(call(FUSE_WRITE, node, NULL, 2, &wi, sizeof(wi), "ab", (size_t)2), 0);
	assert_int_equal(host_mode("suid"), 0755);
	/* set-group-ID without group execute is a lock marker: it stays */
	assert_int_equal(chmod(path, 06744), 0);
	assert_int_equal(call(FUSE_WRITE, node, NULL, 2, &wi, sizeof(wi), "ab", (size_t)2), 0);
	assert_int_equal(host_mode("suid"), 02744);
	/* a truncate through SETATTR, on the node (no handle) */
	assert_int_equal(chmod(path, 04755), 0);
	struct fuse_setattr_in sa = { .valid = FATTR_SIZE | FATTR_KILL_SUIDGID, .size = 1 };
	assert_int_equal(call(FUSE_SETATTR, node, NULL, 1, &sa, sizeof(sa)), 0);
	assert_int_equal(((struct fuse_attr_out *)(repbuf + 16))->attr.mode & 07777, 0755);
	/* an open with O_TRUNC */
	assert_int_equal(chmod(path, 04755), 0);
	struct fuse_open_in oi = { .flags = O_WRONLY | O_TRUNC, .open_flags = FUSE_OPEN_KILL_SUIDGID };
	assert_int_equal(call(FUSE_OPEN, node, NULL, 1, &oi, sizeof(oi)), 0);
	assert_int_equal(host_mode("suid"), 0755);
}

/* Issue 23 defect 1: the guest planted set-user-ID files and file
 * capabilities on the host (kvkit runs as root). */
static void no_setuid_or_capabilities_from_the_guest(void **st)
{
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT | O_EXCL, .mode = S_IFREG | 06755 };
	assert_int_equal(call(FUSE_CREATE, FUSE_ROOT_ID, NULL, 2, &ci, sizeof(ci), S("sh")), 0);
	uint64_t node = ((struct fuse_entry_out *)(repbuf + 16))->nodeid;
	assert_int_equal(host_mode("sh"), 0755);
	struct fuse_setattr_in sa = { .valid = FATTR_MODE, .mode = S_IFREG | 06755 };
	assert_int_equal(call(FUSE_SETATTR, node, NULL, 1, &sa, sizeof(sa)), 0);
	assert_int_equal(host_mode("sh"), 0755);
	struct fuse_mknod_in mk = { .mode = S_IFREG | 04711 };
	assert_int_equal(call(FUSE_MKNOD, FUSE_ROOT_ID, NULL, 2, &mk, sizeof(mk), S("mk")), 0);
	assert_int_equal(host_mode("mk"), 0711);
	/* set-group-ID on a folder is group inheritance: it stays */
	struct fuse_mkdir_in md = { .mode = 0775 };
	assert_int_equal(call(FUSE_MKDIR, FUSE_ROOT_ID, NULL, 2, &md, sizeof(md), S("team")), 0);
	uint64_t team = ((struct fuse_entry_out *)(repbuf + 16))->nodeid;
	sa.mode = S_IFDIR | 06775;
	assert_int_equal(call(FUSE_SETATTR, team, NULL, 1, &sa, sizeof(sa)), 0);
	assert_int_equal(host_mode("team"), 02775);
	/* file capabilities and trusted.* are refused; user.* passes */
	static const uint8_t cap[20] = { 0x00, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff };
	const char *names[] = { "security.capability", "trusted.overlay.opaque" };
	for (unsigned i = 0; i < 2; i++) {
		struct fuse_setxattr_in sx = { .size = sizeof(cap) };
		assert_int_equal(call(FUSE_SETXATTR, node, NULL, 3, &sx, (size_t)FUSE_COMPAT_SETXATTR_IN_SIZE, S(names[i]),
				      cap, sizeof(cap)), -EPERM);
	}
	char path[400];
	snprintf(path, sizeof(path), "%s/sh", share);
	assert_int_equal(getxattr(path, "security.capability", NULL, 0), -1);
	struct fuse_setxattr_in sx = { .size = 2 };
	assert_int_equal(call(FUSE_SETXATTR, node, NULL, 3, &sx, (size_t)FUSE_COMPAT_SETXATTR_IN_SIZE, S("user.ok"), "hi",
			      (size_t)2), 0);
}

static void host_owner(const char *name, uid_t uid, gid_t gid)
{
	char path[400];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", share, name);
	assert_int_equal(lstat(path, &st), 0);
	if (st.st_uid != uid || st.st_gid != gid)
		fail_msg("%s belongs to %u:%u, expected %u:%u", name, (unsigned)st.st_uid, (unsigned)st.st_gid,
			 (unsigned)uid, (unsigned)gid);
}

/* Issue 23: what a guest user creates is theirs on the host, not root's
 * (kvkit as root takes the request's ids for the call, as virtiofsd
 * does), and the host checks the folder's permissions as that user. */
static void guest_users_own_what_they_create(void **st)
{
	if (geteuid() != 0)
		skip(); /* only root can act as another user */
	struct fuse_mkdir_in md = { .mode = 0755 };
	assert_int_equal(call(FUSE_MKDIR, FUSE_ROOT_ID, NULL, 2, &md, sizeof(md), S("home")), 0);
	uint64_t home = ((struct fuse_entry_out *)(repbuf + 16))->nodeid;
	host_owner("home", 0, 0);
	struct fuse_setattr_in sa = { .valid = FATTR_UID | FATTR_GID, .uid = 1234, .gid = 5678 };
	assert_int_equal(call(FUSE_SETATTR, home, NULL, 1, &sa, sizeof(sa)), 0);
	guest_uid = 1234, guest_gid = 5678;
	struct fuse_create_in ci = { .flags = O_RDWR | O_CREAT | O_EXCL, .mode = S_IFREG | 0644 };
	assert_int_equal(call(FUSE_CREATE, home, NULL, 2, &ci, sizeof(ci), S("file")), 0);
	assert_int_equal(call(FUSE_MKDIR, home, NULL, 2, &md, sizeof(md), S("dir")), 0);
	struct fuse_mknod_in mk = { .mode = S_IFIFO | 0600 };
	assert_int_equal(call(FUSE_MKNOD, home, NULL, 2, &mk, sizeof(mk), S("fifo")), 0);
	assert_int_equal(call(FUSE_SYMLINK, home, NULL, 2, S("link"), S("file")), 0);
	/* the share's top is root's and 0755: this user may not write there */
	assert_int_equal(call(FUSE_MKDIR, FUSE_ROOT_ID, NULL, 2, &md, sizeof(md), S("no")), -EACCES);
	guest_uid = guest_gid = 0;
	for (const char *const *n = (const char *const[]){ "home/file", "home/dir", "home/fifo", "home/link", NULL }; *n; n++)
		host_owner(*n, 1234, 5678);
	/* the worker is kvkit again: its ids are back, root creates as root */
	assert_int_equal(setfsuid((uid_t)-1), 0);
	assert_int_equal(setfsgid((gid_t)-1), 0);
	assert_int_equal(call(FUSE_CREATE, home, NULL, 2, &ci, sizeof(ci), S("roots")), 0);
	host_owner("home/roots", 0, 0);
}

/* a missing name is a negative entry the guest may cache (node 0), except
 * with cache=never, where it is a plain ENOENT */
static void negative_lookups(void **st)
{
	assert_int_equal(call(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 1, S("nope")), 0);
	struct fuse_entry_out *e = (struct fuse_entry_out *)(repbuf + 16);
	assert_int_equal(e->nodeid, 0);
	assert_int_equal(e->entry_valid, 1);
	struct fuse_server *keep = srv;
	char err[200];
	srv = fuse_server_new(share, FUSE_CACHE_NEVER, err, sizeof(err));
	assert_non_null(srv);
	struct fuse_init_in in = { .major = 7, .minor = 36, .max_readahead = 65536 };
	assert_int_equal(call(FUSE_INIT, 0, NULL, 1, &in, sizeof(in)), 0);
	assert_int_equal(call(FUSE_LOOKUP, FUSE_ROOT_ID, NULL, 1, S("nope")), -ENOENT);
	fuse_server_free(srv);
	srv = keep;
}

static void host_file(const char *name, const char *text, size_t len)
{
	char path[400];
	snprintf(path, sizeof(path), "%s/%s", share, name);
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	close(fd);
}

static int setupmapping(uint64_t node, uint64_t foffset, uint64_t moffset, uint64_t len, uint64_t flags)
{
	struct fuse_setupmapping_in in = { .fh = (uint64_t)-1, .foffset = foffset, .len = len, .flags = flags,
					   .moffset = moffset };
	return call(FUSE_SETUPMAPPING, node, NULL, 1, &in, sizeof(in));
}

/* FUSE_SETUPMAPPING puts the host file in the window; writes through the
 * window reach the file; REMOVEMAPPING leaves zeros; bad ranges, other
 * inode types and a server without a window are refused. */
static void dax_mappings(void **st)
{
	char err[200];
	struct fuse_init_in init = { .major = 7, .minor = 36, .flags = FUSE_MAP_ALIGNMENT };
	assert_int_equal(call(FUSE_SETUPMAPPING, FUSE_ROOT_ID, NULL, 0), -ENOSYS); /* no window yet */
	struct dax_window *w = dax_window_new(8 * DAX_CHUNK, err, sizeof(err));
	assert_non_null(w);
	fuse_server_set_dax(srv, w);
	assert_int_equal(call(FUSE_INIT, 0, NULL, 1, &init, sizeof(init)), 0);
	struct fuse_init_out *io = (struct fuse_init_out *)(repbuf + 16);
	assert_true(io->flags & FUSE_MAP_ALIGNMENT);
	assert_int_equal(io->map_alignment, DAX_CHUNK_SHIFT);

	char big[3 * 4096];
	memset(big, 'x', sizeof(big));
	memcpy(big + 8192, "third page", 10);
	host_file("m.bin", big, sizeof(big));
	uint64_t node = lookup(FUSE_ROOT_ID, "m.bin", NULL);
	uint8_t *base = dax_window_base(w);
	assert_int_equal((uintptr_t)base % DAX_CHUNK, 0); /* huge pages can back a chunk */
	assert_int_equal(setupmapping(node, 0, 2 * DAX_CHUNK, DAX_CHUNK,
				      FUSE_SETUPMAPPING_FLAG_READ | FUSE_SETUPMAPPING_FLAG_WRITE), 0);
	assert_int_equal(dax_window_mapped(w), 1);
	assert_memory_equal(base + 2 * DAX_CHUNK + 8192, "third page", 10);
	memcpy(base + 2 * DAX_CHUNK + 100, "via window", 10);
	char path[400], buf[16] = { 0 };
	snprintf(path, sizeof(path), "%s/m.bin", share);
	int fd = open(path, O_RDONLY);
	assert_int_equal(pread(fd, buf, 10, 100), 10);
	assert_string_equal(buf, "via window");
	/* the host file shrinks: nothing to mend until it is shorter than the mapping's pages */
	assert_false(dax_window_repair(w));
	assert_int_equal(truncate(path, 5000), 0);
	assert_true(dax_window_repair(w));
	assert_false(dax_window_repair(w)); /* once */
	assert_int_equal(base[2 * DAX_CHUNK + 8192], 0); /* past the end: a zero page, no SIGBUS */
	assert_int_equal(base[2 * DAX_CHUNK + 4095], 'x');

	/* the kernel sends the count and the ranges back to back, unpadded */
	struct __attribute__((packed)) { struct fuse_removemapping_in in; struct fuse_removemapping_one one[2]; } rm = {
		{ 2 }, { { 2 * DAX_CHUNK, DAX_CHUNK }, { 5 * DAX_CHUNK, DAX_CHUNK } } };
	assert_int_equal(call(FUSE_REMOVEMAPPING, node, NULL, 1, &rm, sizeof(rm)), 0);
	assert_int_equal(dax_window_mapped(w), 0);
	assert_int_equal(base[2 * DAX_CHUNK + 100], 0);
	assert_int_equal(pread(fd, buf, 10, 100), 10);
	assert_string_equal(buf, "via window"); /* the file keeps what was written */
	close(fd);
	/* a count larger than the ranges sent */
	rm.in.count = 3;
	assert_int_equal(call(FUSE_REMOVEMAPPING, node, NULL, 1, &rm, sizeof(rm)), -EINVAL);

	/* misaligned, empty, outside the window, overflowing */
	uint64_t rw = FUSE_SETUPMAPPING_FLAG_READ;
	assert_int_equal(setupmapping(node, 4096, 0, DAX_CHUNK, rw), -EINVAL);
	assert_int_equal(setupmapping(node, 0, 4096, DAX_CHUNK, rw), -EINVAL);
	assert_int_equal(setupmapping(node, 0, 0, 0, rw), -EINVAL);
	assert_int_equal(setupmapping(node, 0, 0, 3 * 4096, rw), -EINVAL);
	assert_int_equal(setupmapping(node, 0, 7 * DAX_CHUNK, 2 * DAX_CHUNK, rw), -EINVAL);
	assert_int_equal(setupmapping(node, 0, UINT64_MAX - DAX_CHUNK + 1, DAX_CHUNK, rw), -EINVAL);
	assert_int_equal(setupmapping(node, UINT64_MAX - DAX_CHUNK + 1, 0, DAX_CHUNK, rw), -EINVAL);
	assert_int_equal(dax_window_mapped(w), 0);
	/* only regular files */
	assert_int_equal(setupmapping(FUSE_ROOT_ID, 0, 0, DAX_CHUNK, rw), -EISDIR);
	assert_int_equal(symlink("m.bin", strcat(strcpy(path, share), "/sl")), 0);
	assert_int_equal(setupmapping(lookup(FUSE_ROOT_ID, "sl", NULL), 0, 0, DAX_CHUNK, rw), -EACCES);
	assert_int_equal(setupmapping(12345, 0, 0, DAX_CHUNK, rw), -ENOENT);
	/* the whole window at once, then DESTROY empties it */
	assert_int_equal(setupmapping(node, 0, 0, 8 * DAX_CHUNK, rw), 0);
	assert_int_equal(dax_window_mapped(w), 8);
	assert_int_equal(call(FUSE_DESTROY, 0, NULL, 0), 0);
	assert_int_equal(dax_window_mapped(w), 0);
	fuse_server_set_dax(srv, NULL);
	dax_window_free(w);
}

static uint32_t attr_flags_of(const char *name)
{
	int err;
	lookup(FUSE_ROOT_ID, name, &err);
	assert_int_equal(err, 0);
	return ((struct fuse_entry_out *)(repbuf + 16))->attr.flags;
}

/* mount -o dax=inode: the guest asks (FUSE_HAS_INODE_DAX in flags2 of an
 * extended INIT) and kvkit marks the files worth a DAX mapping, the big
 * regular ones, in every attribute reply. Without a window, or without the
 * guest asking, no file is marked. */
static void dax_per_inode(void **st)
{
	char err[200], path[400];
	uint32_t ask = (uint32_t)(FUSE_HAS_INODE_DAX >> 32);
	struct fuse_init_in init = { .major = 7, .minor = 36, .flags = FUSE_MAP_ALIGNMENT | FUSE_INIT_EXT, .flags2 = ask };
	host_file("small.txt", "tiny", 4);
	host_file("big.bin", "x", 1);
	assert_int_equal(truncate(strcat(strcpy(path, share), "/big.bin"), DAX_CHUNK), 0);
	/* no window: not offered */
	assert_int_equal(call(FUSE_INIT, 0, NULL, 1, &init, sizeof(init)), 0);
	struct fuse_init_out *io = (struct fuse_init_out *)(repbuf + 16);
	assert_true(io->flags & FUSE_INIT_EXT);
	assert_int_equal(io->flags2, 0);
	assert_int_equal(attr_flags_of("big.bin"), 0);

	struct dax_window *w = dax_window_new(4 * DAX_CHUNK, err, sizeof(err));
	assert_non_null(w);
	fuse_server_set_dax(srv, w);
	assert_int_equal(call(FUSE_INIT, 0, NULL, 1, &init, sizeof(init)), 0);
	assert_int_equal(io->flags2, ask);
	assert_int_equal(attr_flags_of("big.bin"), FUSE_ATTR_DAX);
	assert_int_equal(attr_flags_of("small.txt"), 0);
	uint64_t node = lookup(FUSE_ROOT_ID, "big.bin", NULL);
	assert_int_equal(call(FUSE_GETATTR, node, NULL, 1, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in)), 0);
	assert_int_equal(((struct fuse_attr_out *)(repbuf + 16))->attr.flags, FUSE_ATTR_DAX);
	assert_int_equal(call(FUSE_GETATTR, FUSE_ROOT_ID, NULL, 1, &(struct fuse_getattr_in){ 0 }, sizeof(struct fuse_getattr_in)), 0);
	assert_int_equal(((struct fuse_attr_out *)(repbuf + 16))->attr.flags, 0); /* a folder */
	/* mount -o dax (every file) or no DAX: the guest does not ask */
	init.flags2 = 0;
	assert_int_equal(call(FUSE_INIT, 0, NULL, 1, &init, sizeof(init)), 0);
	assert_int_equal(io->flags2, 0);
	assert_int_equal(attr_flags_of("big.bin"), 0);
	/* an extended INIT cut short */
	assert_int_equal(call(FUSE_INIT, 0, NULL, 1, &init, (size_t)16), -EINVAL);
	fuse_server_set_dax(srv, NULL);
	dax_window_free(w);
}

/* The jail hands the server new descriptors of the folder: another
 * directory is refused and changes nothing; the same one keeps serving. */
static void root_moves_to_new_descriptors(void **st)
{
	int other = open(top, O_PATH | O_DIRECTORY), other_dir = open(top, O_RDONLY | O_DIRECTORY);
	assert_int_equal(fuse_server_set_root(srv, other, other_dir), -EXDEV);
	close(other);
	close(other_dir);
	int e;
	assert_int_equal(lookup(FUSE_ROOT_ID, "secret", &e), 0); /* still the share: not found (negative entry) */
	assert_int_equal(fuse_server_set_root(srv, open(share, O_PATH | O_DIRECTORY), open(share, O_RDONLY | O_DIRECTORY)), 0);
	host_file("after", "x", 1);
	assert_true(lookup(FUSE_ROOT_ID, "after", &e) > 0);
	assert_int_equal(call(FUSE_STATFS, FUSE_ROOT_ID, NULL, 0), 0);
}

int main(void)
{
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
	const struct CMUnitTest tests[] = {
		T(create_write_read), T(create_never_opens_fifo_or_device), T(descriptor_budget), T(names_that_escape), T(symlinks_stay_in_the_guest), T(device_nodes_never_open),
		T(links_renames_and_dirs), T(readdirplus_and_forget), T(bad_requests), T(setattr_xattr_statfs),
		T(kill_suidgid_on_write_and_truncate), T(no_setuid_or_capabilities_from_the_guest), T(guest_users_own_what_they_create), T(negative_lookups), T(dax_mappings), T(dax_per_inode),
		T(root_moves_to_new_descriptors),
	};
	return cmocka_run_group_tests(tests, NULL, NULL);
}
