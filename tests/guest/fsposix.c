/* A small POSIX conformance suite run inside the test guest on a virtio-fs
 * mount (built static into the initramfs as kvkit-fsposix).
 *
 *   kvkit-fsposix suite DIR      permissions, times, link counts, errno values
 *   kvkit-fsposix escape DIR     what a guest may try to leave the share
 *   kvkit-fsposix fill FILE MiB  write a deterministic pattern (FILE - : stdout)
 *   kvkit-fsposix verify FILE MiB  read it back: "VERIFY OK" or where it differs
 *
 * Every check prints "FSPOSIX FAIL <what>: <detail>" when it fails; the
 * suite ends with "FSPOSIX DONE <checks> <failures>". */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <sys/sysmacros.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <time.h>
#include <unistd.h>

static int checks, failures;
static char dir[512];

static void check(int ok, const char *what, const char *fmt, ...)
{
	checks++;
	if (ok)
		return;
	failures++;
	char buf[256];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof(buf), fmt, ap);
	va_end(ap);
	printf("FSPOSIX FAIL %s: %s\n", what, buf);
	fflush(stdout);
}

/* rc must be -1 with errno e */
static void check_errno(int rc, int e, const char *what)
{
	int got = errno;
	check(rc == -1 && got == e, what, "rc %d errno %s, expected %s", rc, strerror(got), strerror(e));
}

static const char *p(const char *name)
{
	static char buf[4][600];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static int write_file(const char *path, const char *s, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	ssize_t n = write(fd, s, strlen(s));
	close(fd);
	return n == (ssize_t)strlen(s) ? 0 : -1;
}

static void files_and_modes(void)
{
	umask(022);
	check(write_file(p("f"), "hello", 0666) == 0, "create", "%s", strerror(errno));
	struct stat st;
	check(stat(p("f"), &st) == 0 && (st.st_mode & 0777) == 0644 && S_ISREG(st.st_mode), "umask applied",
	      "mode %o", st.st_mode);
	check(st.st_size == 5 && st.st_nlink == 1, "size and links", "size %ld nlink %lu", (long)st.st_size,
	      (unsigned long)st.st_nlink);
	check(chmod(p("f"), 0600) == 0 && stat(p("f"), &st) == 0 && (st.st_mode & 0777) == 0600, "chmod", "mode %o",
	      st.st_mode);
	check(chown(p("f"), 1234, 5678) == 0 && stat(p("f"), &st) == 0 && st.st_uid == 1234 && st.st_gid == 5678,
	      "chown", "%u:%u %s", st.st_uid, st.st_gid, strerror(errno));
	check(truncate(p("f"), 3) == 0 && stat(p("f"), &st) == 0 && st.st_size == 3, "truncate", "size %ld",
	      (long)st.st_size);
	int fd = open(p("f"), O_WRONLY | O_APPEND);
	check(fd >= 0 && write(fd, "XY", 2) == 2, "append", "%s", strerror(errno));
	close(fd);
	char buf[16] = { 0 };
	fd = open(p("f"), O_RDONLY);
	check(read(fd, buf, sizeof(buf)) == 5 && !memcmp(buf, "helXY", 5), "append lands at the end", "%s", buf);
	close(fd);
	check_errno(open(p("f"), O_RDWR | O_CREAT | O_EXCL, 0644), EEXIST, "O_EXCL on an existing file");
	check_errno(open(p("missing"), O_RDONLY), ENOENT, "open a missing file");
	check_errno(open(p("f/x"), O_RDONLY), ENOTDIR, "a file used as a directory");
	fd = open(p("f"), O_RDWR | O_TRUNC);
	check(fd >= 0 && fstat(fd, &st) == 0 && st.st_size == 0, "O_TRUNC", "size %ld", (long)st.st_size);
	/* sparse files: a hole, then data */
	check(pwrite(fd, "z", 1, 1 << 20) == 1, "write past the end", "%s", strerror(errno));
	check(lseek(fd, 0, SEEK_DATA) == (1 << 20) || lseek(fd, 0, SEEK_DATA) == 0, "SEEK_DATA", "%ld",
	      (long)lseek(fd, 0, SEEK_DATA));
	check(fallocate(fd, 0, 0, 8192) == 0 || errno == EOPNOTSUPP, "fallocate", "%s", strerror(errno));
	check(fsync(fd) == 0 && fdatasync(fd) == 0, "fsync", "%s", strerror(errno));
	close(fd);
	/* copy_file_range */
	int a = open(p("f"), O_RDONLY), b = open(p("copy"), O_WRONLY | O_CREAT | O_TRUNC, 0644);
	loff_t oi = (1 << 20), oo = 0;
	check(copy_file_range(a, &oi, b, &oo, 1, 0) == 1, "copy_file_range", "%s", strerror(errno));
	close(a);
	close(b);
	check(stat(p("copy"), &st) == 0 && st.st_size == 1, "copied size", "%ld", (long)st.st_size);
}

static void times(void)
{
	struct stat st;
	struct timespec ts[2] = { { 1000000000, 123456789 }, { 1200000000, 987654321 } };
	check(utimensat(AT_FDCWD, p("f"), ts, 0) == 0, "utimensat", "%s", strerror(errno));
	check(stat(p("f"), &st) == 0 && st.st_mtim.tv_sec == 1200000000 && st.st_mtim.tv_nsec == 987654321 &&
		      st.st_atim.tv_sec == 1000000000,
	      "times set", "mtime %ld.%09ld atime %ld", (long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec,
	      (long)st.st_atim.tv_sec);
	time_t before = time(NULL);
	int fd = open(p("f"), O_WRONLY);
	check(write(fd, "w", 1) == 1, "write", "%s", strerror(errno));
	close(fd);
	check(stat(p("f"), &st) == 0 && st.st_mtim.tv_sec >= before - 2, "write moves mtime", "mtime %ld now %ld",
	      (long)st.st_mtim.tv_sec, (long)before);
	check(st.st_ctim.tv_sec >= before - 2, "ctime follows changes", "ctime %ld", (long)st.st_ctim.tv_sec);
}

static void links(void)
{
	struct stat st;
	check(link(p("f"), p("f2")) == 0, "link", "%s", strerror(errno));
	check(stat(p("f"), &st) == 0 && st.st_nlink == 2, "nlink after link", "%lu", (unsigned long)st.st_nlink);
	struct stat st2;
	check(stat(p("f2"), &st2) == 0 && st2.st_ino == st.st_ino, "same inode", "%lu %lu", (unsigned long)st.st_ino,
	      (unsigned long)st2.st_ino);
	check(unlink(p("f2")) == 0 && stat(p("f"), &st) == 0 && st.st_nlink == 1, "nlink after unlink", "%lu",
	      (unsigned long)st.st_nlink);
	check(symlink("f", p("sl")) == 0, "symlink", "%s", strerror(errno));
	char buf[64] = { 0 };
	check(readlink(p("sl"), buf, sizeof(buf)) == 1 && buf[0] == 'f', "readlink", "%s", buf);
	check(lstat(p("sl"), &st) == 0 && S_ISLNK(st.st_mode), "lstat of a symlink", "mode %o", st.st_mode);
	check(stat(p("sl"), &st) == 0 && S_ISREG(st.st_mode), "stat follows", "mode %o", st.st_mode);
	check_errno(readlink(p("f"), buf, sizeof(buf)), EINVAL, "readlink on a file");
	check(mkdir(p("d"), 0755) == 0, "mkdir", "%s", strerror(errno));
	check_errno(link(p("d"), p("d2")), EPERM, "hard link to a directory");
	check_errno(mkdir(p("d"), 0755), EEXIST, "mkdir twice");
	check(mkdir(p("d/sub"), 0700) == 0 && stat(p("d"), &st) == 0 && st.st_nlink == 3, "directory link count",
	      "%lu", (unsigned long)st.st_nlink);
	check(write_file(p("d/sub/x"), "x", 0644) == 0, "file in a subfolder", "%s", strerror(errno));
	check_errno(rmdir(p("d")), ENOTEMPTY, "rmdir a non-empty folder");
	check_errno(unlink(p("d")), EISDIR, "unlink a folder");
	check_errno(open(p("d"), O_WRONLY), EISDIR, "open a folder for writing");
	check_errno(rename(p("d"), p("f")), ENOTDIR, "rename a folder over a file");
	/* rename over an existing file replaces it */
	check(write_file(p("r1"), "one", 0644) == 0 && write_file(p("r2"), "two", 0644) == 0 &&
		      rename(p("r1"), p("r2")) == 0,
	      "rename over a file", "%s", strerror(errno));
	int fd = open(p("r2"), O_RDONLY);
	memset(buf, 0, sizeof(buf));
	check(read(fd, buf, 8) == 3 && !strcmp(buf, "one"), "renamed content", "%s", buf);
	close(fd);
	check_errno(access(p("r1"), F_OK), ENOENT, "old name gone");
	check(write_file(p("r3"), "three", 0644) == 0, "create", "%s", strerror(errno));
	check_errno(renameat2(AT_FDCWD, p("r3"), AT_FDCWD, p("r2"), RENAME_NOREPLACE), EEXIST, "RENAME_NOREPLACE");
	check(renameat2(AT_FDCWD, p("r3"), AT_FDCWD, p("r2"), RENAME_EXCHANGE) == 0, "RENAME_EXCHANGE", "%s",
	      strerror(errno));
	check(stat(p("r2"), &st) == 0 && st.st_size == 5, "exchanged", "size %ld", (long)st.st_size);
	check(mkfifo(p("fifo"), 0644) == 0 && stat(p("fifo"), &st) == 0 && S_ISFIFO(st.st_mode), "mkfifo", "%s",
	      strerror(errno));
	check_errno(mknod(p("dev"), S_IFCHR | 0600, makedev(1, 3)), EPERM, "device nodes refused");
	/* readdir sees every name once */
	DIR *dp = opendir(dir);
	int n = 0, f = 0, dd = 0;
	for (struct dirent *e; dp && (e = readdir(dp));) {
		n++;
		f += !strcmp(e->d_name, "f");
		dd += !strcmp(e->d_name, "d") && e->d_type == DT_DIR;
	}
	if (dp)
		closedir(dp);
	check(f == 1 && dd == 1 && n >= 8, "readdir", "%d entries, f %d, d %d", n, f, dd);
}

static void xattrs_and_statfs(void)
{
	int rc = setxattr(p("f"), "user.kvkit", "v1", 2, 0);
	if (rc == 0) {
		char buf[16] = { 0 };
		check(getxattr(p("f"), "user.kvkit", buf, sizeof(buf)) == 2 && !strcmp(buf, "v1"), "getxattr", "%s", buf);
		check(listxattr(p("f"), buf, sizeof(buf)) > 0, "listxattr", "%s", strerror(errno));
		check(removexattr(p("f"), "user.kvkit") == 0, "removexattr", "%s", strerror(errno));
		check_errno(getxattr(p("f"), "user.kvkit", buf, sizeof(buf)), ENODATA, "removed xattr");
	} else {
		check(errno == EOPNOTSUPP, "setxattr", "%s", strerror(errno));
	}
	struct statfs sf;
	check(statfs(dir, &sf) == 0 && sf.f_bsize > 0 && sf.f_blocks > 0, "statfs", "%s", strerror(errno));
}

/* Runs steps() in a child as uid:gid and checks it returned 0; else the
 * failure names the step it returned (10: the ids could not be taken). */
static void as_user(uid_t uid, gid_t gid, int (*steps)(void), const char *what)
{
	pid_t pid = fork();
	if (pid == 0) {
		if (setgid(gid) || setuid(uid))
			_exit(10);
		_exit(steps());
	}
	int status = 0;
	waitpid(pid, &status, 0);
	check(WIFEXITED(status) && WEXITSTATUS(status) == 0, what, "step %d", WEXITSTATUS(status));
}

static int reach_roots_files(void)
{
	if (open(p("private"), O_RDONLY) >= 0 || errno != EACCES)
		return 1;
	if (open(p("locked/x"), O_WRONLY | O_CREAT, 0644) >= 0 || errno != EACCES)
		return 2;
	if (access(p("private"), R_OK) == 0)
		return 3;
	if (unlink(p("private")) == 0)
		return 4;
	return 0;
}

/* The guest enforces permissions on what the share reports. */
static void permissions(void)
{
	check(write_file(p("private"), "root only", 0600) == 0 && chown(p("private"), 0, 0) == 0, "private file", "%s",
	      strerror(errno));
	check(mkdir(p("locked"), 0700) == 0, "private folder", "%s", strerror(errno));
	as_user(1000, 1000, reach_roots_files, "a user cannot reach root's files");
}

static int create_in_own_folder(void)
{
	if (write_file(p("mine/made"), "theirs", 0644))
		return 1;
	if (mkdir(p("mine/sub"), 0755))
		return 2;
	return 0;
}

/* What a guest user creates is theirs on the host too (kvkit, as root,
 * creates it with the user's ids), and the guest sees that owner. */
static void users_own_what_they_create(void)
{
	check(mkdir(p("mine"), 0755) == 0 && chown(p("mine"), 1234, 5678) == 0, "a user's folder", "%s",
	      strerror(errno));
	as_user(1234, 5678, create_in_own_folder, "a user creates in their folder");
	struct stat st = { 0 }, sd = { 0 };
	check(stat(p("mine/made"), &st) == 0 && stat(p("mine/sub"), &sd) == 0 && st.st_uid == 1234 &&
	      st.st_gid == 5678 && sd.st_uid == 1234 && sd.st_gid == 5678,
	      "what a user creates is theirs", "file %u:%u folder %u:%u", (unsigned)st.st_uid, (unsigned)st.st_gid,
	      (unsigned)sd.st_uid, (unsigned)sd.st_gid);
}

/* The guest cannot plant a set-user-ID or set-group-ID file on the host,
 * even as root (kvkit strips the bits), nor give a file capabilities;
 * group inheritance on folders stays. What a write does to such bits is
 * the FUSE server's unit test (the host sets them there). */
static void no_setuid_from_guest(void)
{
	struct stat st = { 0 };
	check(write_file(p("suid"), "x", 0777) == 0 && chmod(p("suid"), 06777) == 0 && stat(p("suid"), &st) == 0 &&
	      (st.st_mode & 07777) == 0777, "chmod u+s,g+s is stripped", "mode %o", st.st_mode & 07777);
	static const unsigned char cap[20] = { 0, 0, 0, 2, 0xff, 0xff, 0xff, 0xff };
	check(setxattr(p("suid"), "security.capability", cap, sizeof(cap), 0) < 0 && errno == EPERM,
	      "file capabilities are refused", "%s", strerror(errno));
	check(mkdir(p("team"), 0775) == 0 && chmod(p("team"), 02775) == 0 && stat(p("team"), &st) == 0 &&
	      (st.st_mode & 07777) == 02775, "a folder keeps set-group-ID", "mode %o", st.st_mode & 07777);
}

/* A guest trying to reach host files outside the share. */
static void escape(void)
{
	char buf[256] = { 0 };
	/* symlinks the host put in the share resolve inside the guest */
	int fd = open(p("abs-link"), O_RDONLY);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	check(n < 0 || !strstr(buf, "HOST-SECRET"), "absolute symlink", "read the host's file: %s", buf);
	if (fd >= 0)
		close(fd);
	fd = open(p("rel-link"), O_RDONLY);
	memset(buf, 0, sizeof(buf));
	n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;
	check(n < 0 || !strstr(buf, "HOST-SECRET"), "relative symlink through ..", "read the host's file: %s", buf);
	if (fd >= 0)
		close(fd);
	/* .. from the share's root is the guest's own folder above the mount */
	check(access(p("../secret"), F_OK) != 0, "dot-dot above the share", "a host file is visible");
	/* a hard link from the guest's own files into the share */
	check_errno(link("/init", p("hl")), EXDEV, "hard link across file systems");
	/* device nodes the host made in the share are not usable */
	fd = open(p("host-null"), O_RDONLY);
	check(fd < 0, "host device node", "opened it");
	if (fd >= 0)
		close(fd);
	check_errno(mknod(p("blk"), S_IFBLK | 0600, makedev(8, 0)), EPERM, "making a block device");
	/* symlinks the guest makes are text to the host; following them stays in the guest */
	check(symlink("/init", p("guest-link")) == 0, "guest symlink", "%s", strerror(errno));
	check(rename(p("guest-link"), p("moved-link")) == 0, "rename a symlink", "%s", strerror(errno));
}

/* 1 MiB of the pattern: xorshift64 words, the state carried from block to block */
static void pattern_block(uint64_t *buf, uint64_t *x)
{
	for (size_t i = 0; i < (1 << 17); i++) {
		*x ^= *x << 13;
		*x ^= *x >> 7;
		*x ^= *x << 17;
		buf[i] = *x;
	}
}

static int fill(const char *path, long mib)
{
	int fd = strcmp(path, "-") ? open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644) : 1;
	if (fd < 0)
		return 1;
	static uint64_t buf[1 << 17];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (long m = 0; m < mib; m++) {
		pattern_block(buf, &x);
		if (write(fd, buf, sizeof(buf)) != sizeof(buf))
			return 1;
	}
	return close(fd) != 0;
}

static int verify(const char *path, long mib)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0) {
		printf("VERIFY FAIL open: %s\n", strerror(errno));
		return 1;
	}
	static uint64_t want[1 << 17], got[1 << 17];
	uint64_t x = 0x9e3779b97f4a7c15ull;
	for (long m = 0; m < mib; m++) {
		pattern_block(want, &x);
		size_t have = 0;
		while (have < sizeof(got)) {
			ssize_t n = read(fd, (char *)got + have, sizeof(got) - have);
			if (n <= 0) {
				printf("VERIFY FAIL short file at MiB %ld\n", m);
				return 1;
			}
			have += n;
		}
		if (memcmp(want, got, sizeof(got))) {
			printf("VERIFY FAIL content differs in MiB %ld\n", m);
			return 1;
		}
	}
	char extra;
	if (read(fd, &extra, 1) != 0) {
		printf("VERIFY FAIL longer than %ld MiB\n", mib);
		return 1;
	}
	close(fd);
	printf("VERIFY OK %ld MiB\n", mib);
	return 0;
}

/* Store text at offset 4096 of an existing file through a shared
 * mapping (on a DAX share: straight into the host's page cache). */
static int mmap_write(const char *path, const char *text)
{
	int fd = open(path, O_RDWR);
	if (fd < 0)
		return 1;
	char *p = mmap(NULL, 8192, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	if (p == MAP_FAILED)
		return 1;
	memcpy(p + 4096, text, strlen(text));
	int r = msync(p, 8192, MS_SYNC) != 0;
	munmap(p, 8192);
	return close(fd) != 0 || r;
}

/* Read a whole file in 1 MiB reads; print its size and how long it took
 * (busybox dd here prints no timing). */
static int read_all(const char *path)
{
	static char buf[1 << 20];
	struct timespec t0, t1;
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return 1;
	long long total = 0;
	ssize_t n;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		total += n;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	close(fd);
	double s = (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9;
	printf("%lld bytes in %.3f s, %.0f MB/s\n", total, s, total / 1e6 / s);
	return n < 0;
}

#ifndef STATX_ATTR_DAX
#define STATX_ATTR_DAX 0x00200000
#endif

/* Does the guest access this file through DAX (statx)? With mount -o
 * dax=inode the file server decides per file. */
static int is_dax(const char *path)
{
	struct statx stx;
	if (statx(AT_FDCWD, path, 0, STATX_BASIC_STATS, &stx) < 0 || !(stx.stx_attributes_mask & STATX_ATTR_DAX)) {
		printf("UNKNOWN\n");
		return 1;
	}
	printf("%s\n", stx.stx_attributes & STATX_ATTR_DAX ? "DAX" : "NODAX");
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "isdax"))
		return is_dax(argv[2]);
	if (argc == 3 && !strcmp(argv[1], "readall"))
		return read_all(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "mmapw"))
		return mmap_write(argv[2], argv[3]);
	if (argc == 4 && !strcmp(argv[1], "fill"))
		return fill(argv[2], atol(argv[3]));
	if (argc == 4 && !strcmp(argv[1], "verify"))
		return verify(argv[2], atol(argv[3]));
	if (argc != 3)
		return 2;
	snprintf(dir, sizeof(dir), "%s", argv[2]);
	if (!strcmp(argv[1], "suite")) {
		files_and_modes();
		times();
		links();
		xattrs_and_statfs();
		permissions();
		users_own_what_they_create();
		no_setuid_from_guest();
	} else if (!strcmp(argv[1], "escape")) {
		escape();
	} else {
		return 2;
	}
	printf("FSPOSIX DONE %d %d\n", checks, failures);
	return failures != 0;
}
