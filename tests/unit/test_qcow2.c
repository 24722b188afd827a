/* qcow2 format code against images QEMU's own tools make and check: what
 * qemu-io writes, kvkit reads; what kvkit writes, qemu-img check finds
 * clean and qemu-img compare finds equal to a raw file given the same
 * writes. The corpus is made at test time under a temporary folder. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>
#include "../../src/block/qcow2.h"

static char dir[64];

static int sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	char full[2200];
	snprintf(full, sizeof(full), "cd %s && (%s) >/dev/null 2>&1", dir, cmd);
	return system(full) == 0 ? 0 : -1;
}

static char *p(const char *name)
{
	static char buf[4][256];
	static int i;
	i = (i + 1) % 4;
	snprintf(buf[i], sizeof(buf[i]), "%s/%s", dir, name);
	return buf[i];
}

static struct qcow2 *open_img(const char *name, bool ro, char *err)
{
	int fd = open(p(name), (ro ? O_RDONLY : O_RDWR) | O_CLOEXEC);
	assert_true(fd >= 0);
	struct qcow2 *q = NULL;
	if (qcow2_open(fd, p(name), ro, &q, err, 512) < 0)
		return NULL;
	return q;
}

/* The whole disk through kvkit equals the raw file, read in pieces of
 * `chunk` bytes split over two iovecs. */
static void assert_reads_as(struct qcow2 *q, const char *raw, uint64_t chunk)
{
	uint64_t size = qcow2_size(q);
	uint8_t *a = malloc(size), *b = malloc(size);
	int fd = open(p(raw), O_RDONLY);
	assert_true(fd >= 0);
	assert_int_equal(pread(fd, b, size, 0), (ssize_t)size);
	close(fd);
	memset(a, 0xa5, size);
	for (uint64_t off = 0; off < size; off += chunk) {
		uint64_t n = size - off < chunk ? size - off : chunk;
		struct iovec v[2] = { { a + off, n / 3 }, { a + off + n / 3, n - n / 3 } };
		assert_int_equal(qcow2_readv(q, off, v, 2, n), 0);
	}
	for (uint64_t i = 0; i < size; i++)
		if (a[i] != b[i])
			fail_msg("byte %llu differs: %02x, raw %02x", (unsigned long long)i, a[i], b[i]);
	free(a);
	free(b);
}

/* qemu-img check finds name clean; otherwise its findings are printed and
 * the test fails with what (which image kvkit made, and how). */
static void assert_qemu_img_clean(const char *name, const char *what, const char *opts)
{
	if (!sh("qemu-img check -q %s", name))
		return;
	char cmd[300];
	snprintf(cmd, sizeof(cmd), "qemu-img check %s/%s 2>&1 | tail -12", dir, name);
	if (system(cmd) < 0)
		perror("system");
	fail_msg("qemu-img check found errors %s (%s)", what, opts);
}

/* qemu-io writes (data, zeroes, unaligned) to a qcow2 and a raw twin. */
static const char *QIO_WRITES = "-c 'write -P 0x11 0 100k' -c 'write -P 0x22 1M 3M' -c 'write -P 0x33 5000 7' "
				"-c 'write -z 2M 64k' -c 'write -P 0x44 15M 1M'";

static void read_case(const char *opts)
{
	char err[512];
	assert_int_equal(sh("rm -f r.qcow2 r.raw && qemu-img create -q -f qcow2 %s r.qcow2 16M && "
			    "qemu-img create -q -f raw r.raw 16M && qemu-io -f qcow2 %s r.qcow2 && qemu-io -f raw %s r.raw",
			    opts, QIO_WRITES, QIO_WRITES), 0);
	struct qcow2 *q = open_img("r.qcow2", true, err);
	assert_non_null(q);
	assert_int_equal(qcow2_size(q), 16 << 20);
	assert_reads_as(q, "r.raw", 1 << 20);
	assert_reads_as(q, "r.raw", 4096 + 512);
	assert_int_equal(qcow2_close(q), 0);
}

static void reads_what_qemu_wrote(void **state)
{
	(void)state;
	read_case("-o cluster_size=65536");
	read_case("-o cluster_size=512,compat=0.10");
	read_case("-o cluster_size=2M,refcount_bits=1");
	read_case("-o cluster_size=4096,refcount_bits=64,lazy_refcounts=on");
}

static void reads_compressed_clusters(void **state)
{
	(void)state;
	char err[512];
	assert_int_equal(sh("rm -f c.raw c.qcow2 cz.qcow2 && qemu-img create -q -f raw c.raw 8M && "
			    "qemu-io -f raw -c 'write -P 0x5a 0 3M' -c 'write -P 0x01 4M 100k' c.raw && "
			    "qemu-img convert -c -O qcow2 c.raw c.qcow2 && "
			    "qemu-img convert -c -O qcow2 -o compression_type=zstd c.raw cz.qcow2"), 0);
	struct qcow2 *q = open_img("c.qcow2", true, err);
	assert_non_null(q);
	assert_reads_as(q, "c.raw", 1 << 20);
	qcow2_close(q);
	q = open_img("cz.qcow2", true, err);
	assert_non_null(q);
	assert_reads_as(q, "c.raw", 3000);
	qcow2_close(q);
}

/* The same pseudo-random writes to the qcow2 through kvkit and to a raw
 * file; then QEMU checks the image and compares the two. */
static void write_case(const char *opts, const char *base_cmd)
{
	char err[512];
	uint64_t size = 24 << 20;
	assert_int_equal(sh("rm -f w.qcow2 w.raw && %s && qemu-img create -q -f qcow2 %s w.qcow2 24M", base_cmd, opts), 0);
	struct qcow2 *q = open_img("w.qcow2", false, err);
	if (!q)
		fail_msg("%s", err);
	int raw = open(p("w.raw"), O_RDWR);
	assert_true(raw >= 0);
	uint8_t *buf = malloc(1 << 20);
	srandom(7);
	for (int i = 0; i < 120; i++) {
		uint64_t len = 1 + (uint64_t)random() % (i % 5 ? 70000 : (1 << 20));
		uint64_t off = (uint64_t)random() % (size - len);
		if (i % 3 == 0)
			off &= ~4095ULL;
		memset(buf, 0x20 + i, len);
		buf[0] = (uint8_t)i;
		struct iovec v[2] = { { buf, len / 2 }, { buf + len / 2, len - len / 2 } };
		assert_int_equal(qcow2_writev(q, off, v, 2, len), 0);
		assert_int_equal(pwrite(raw, buf, len, off), (ssize_t)len);
		if (i % 40 == 39)
			assert_int_equal(qcow2_flush(q), 0);
		if (i % 17 == 5) { /* zeroes over a stretch, some whole clusters freed */
			uint64_t zl = (uint64_t)random() % (3 << 20), zo = (uint64_t)random() % (size - zl);
			assert_int_equal(qcow2_write_zeroes(q, zo, zl, true), 0);
			memset(buf, 0, zl < (1 << 20) ? zl : (1 << 20));
			for (uint64_t d = 0; d < zl; d += 1 << 20)
				assert_int_equal(pwrite(raw, buf, zl - d < (1 << 20) ? zl - d : (1 << 20), zo + d) >= 0, 1);
		}
	}
	assert_reads_as(q, "w.raw", 300000);
	assert_int_equal(qcow2_close(q), 0);
	close(raw);
	free(buf);
	assert_qemu_img_clean("w.qcow2", "in an image kvkit wrote", opts);
	if (sh("qemu-img compare -q -f qcow2 -F raw w.qcow2 w.raw"))
		fail_msg("the image kvkit wrote differs from the raw twin (%s)", opts);
}

static void writes_pass_qemu_img_check(void **state)
{
	(void)state;
	const char *raw = "qemu-img create -q -f raw w.raw 24M";
	write_case("-o cluster_size=65536", raw);
	write_case("-o cluster_size=65536,compat=0.10", raw);
	write_case("-o cluster_size=2M", raw);
	write_case("-o cluster_size=4096,refcount_bits=1", raw);
	/* a one-cluster refcount table covers 8 MiB here: it grows */
	write_case("-o cluster_size=512", raw);
	write_case("-o cluster_size=65536,refcount_bits=64,lazy_refcounts=on", raw);
}

static void writes_into_compressed_image(void **state)
{
	(void)state;
	/* w.raw starts as the compressed image's content */
	write_case("-o cluster_size=65536", "qemu-img create -q -f raw w.raw 24M");
	char err[512];
	assert_int_equal(sh("rm -f w2.raw w2.qcow2 && qemu-img create -q -f raw w2.raw 8M && "
			    "qemu-io -f raw -c 'write -P 0x66 0 8M' w2.raw && qemu-img convert -c -O qcow2 w2.raw w2.qcow2"), 0);
	struct qcow2 *q = open_img("w2.qcow2", false, err);
	assert_non_null(q);
	uint8_t b[1000];
	memset(b, 0x77, sizeof(b));
	struct iovec v = { b, sizeof(b) };
	assert_int_equal(qcow2_writev(q, 70000, &v, 1, sizeof(b)), 0);
	assert_int_equal(qcow2_discard(q, 1 << 20, 1 << 20), 0);
	assert_int_equal(qcow2_close(q), 0);
	int fd = open(p("w2.raw"), O_RDWR);
	assert_int_equal(pwrite(fd, b, sizeof(b), 70000), (ssize_t)sizeof(b));
	uint8_t *z = calloc(1, 1 << 20);
	assert_int_equal(pwrite(fd, z, 1 << 20, 1 << 20), 1 << 20);
	free(z);
	close(fd);
	assert_int_equal(sh("qemu-img check -q w2.qcow2"), 0);
	assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw w2.qcow2 w2.raw"), 0);
}

static void discard_leaves_clusters_unallocated(void **state)
{
	(void)state;
	char err[512];
	assert_int_equal(sh("rm -f d.qcow2 && qemu-img create -q -f qcow2 d.qcow2 8M && "
			    "qemu-io -f qcow2 -c 'write -P 0x31 0 8M' d.qcow2"), 0);
	struct qcow2 *q = open_img("d.qcow2", false, err);
	assert_non_null(q);
	assert_int_equal(qcow2_discard(q, 2 << 20, 3 << 20), 0);
	assert_int_equal(qcow2_discard(q, 100, 1000), 0); /* partial: a hint, kept */
	assert_int_equal(qcow2_close(q), 0);
	assert_int_equal(sh("qemu-img check -q d.qcow2"), 0);
	/* 2M..5M no longer allocated, the rest still is */
	assert_int_equal(sh("qemu-img map --output=json d.qcow2 | grep -q "
			    "'\"start\": 2097152, \"length\": 3145728, \"depth\": 0, \"present\": false, \"zero\": true, \"data\": false'"),
			 0);
	struct stat st;
	assert_int_equal(stat(p("d.qcow2"), &st), 0);
	/* freed clusters are reused: writing 3 MiB more does not grow the file */
	q = open_img("d.qcow2", false, err);
	uint8_t *b = malloc(3 << 20);
	memset(b, 1, 3 << 20);
	struct iovec v = { b, 3 << 20 };
	assert_int_equal(qcow2_writev(q, 2 << 20, &v, 1, 3 << 20), 0);
	assert_int_equal(qcow2_close(q), 0);
	free(b);
	struct stat st2;
	assert_int_equal(stat(p("d.qcow2"), &st2), 0);
	assert_true(st2.st_size <= st.st_size);
	assert_int_equal(sh("qemu-img check -q d.qcow2"), 0);
}

static void backing_chain_reads_through_writes_on_top(void **state)
{
	(void)state;
	char err[512];
	assert_int_equal(sh("rm -f base.raw mid.qcow2 top.qcow2 flat.raw && qemu-img create -q -f raw base.raw 16M && "
			    "qemu-io -f raw -c 'write -P 0xb0 0 16M' base.raw && "
			    "qemu-img create -q -f qcow2 -b base.raw -F raw mid.qcow2 && "
			    "qemu-io -f qcow2 -c 'write -P 0xc1 1M 1M' -c 'write -z 6M 64k' mid.qcow2 && "
			    "qemu-img create -q -f qcow2 -b mid.qcow2 -F qcow2 top.qcow2 20M && "
			    "qemu-io -f qcow2 -c 'write -P 0xd2 1536k 4k' top.qcow2 && "
			    "qemu-img convert -O raw top.qcow2 flat.raw && sha256sum base.raw mid.qcow2 > sums"), 0);
	struct qcow2 *q = open_img("top.qcow2", false, err);
	if (!q)
		fail_msg("%s", err);
	assert_reads_as(q, "flat.raw", 777777);
	/* partial writes copy the rest of the cluster up from the chain */
	uint8_t b[3000];
	memset(b, 0xee, sizeof(b));
	struct iovec v = { b, sizeof(b) };
	assert_int_equal(qcow2_writev(q, (1 << 20) + 100, &v, 1, sizeof(b)), 0);
	assert_int_equal(qcow2_writev(q, (17 << 20) - 10, &v, 1, sizeof(b)), 0);
	assert_int_equal(qcow2_discard(q, 8 << 20, 1 << 20), 0);
	assert_int_equal(qcow2_close(q), 0);
	int fd = open(p("flat.raw"), O_RDWR);
	assert_int_equal(pwrite(fd, b, sizeof(b), (1 << 20) + 100), (ssize_t)sizeof(b));
	assert_int_equal(pwrite(fd, b, sizeof(b), (17 << 20) - 10), (ssize_t)sizeof(b));
	uint8_t *z = calloc(1, 1 << 20);
	assert_int_equal(pwrite(fd, z, 1 << 20, 8 << 20), 1 << 20);
	free(z);
	close(fd);
	assert_int_equal(sh("sha256sum -c --quiet sums"), 0); /* the chain below is untouched */
	assert_int_equal(sh("qemu-img check -q top.qcow2"), 0);
	assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw top.qcow2 flat.raw"), 0);
}

/* cache=uncached: aligned data goes through an O_DIRECT descriptor,
 * unaligned data falls back to the page cache; both views agree. */
static void uncached_data_through_o_direct(void **state)
{
	(void)state;
	char err[512];
	assert_int_equal(sh("rm -f u.qcow2 u.raw && qemu-img create -q -f qcow2 u.qcow2 8M && qemu-img create -q -f raw u.raw 8M"), 0);
	struct qcow2 *q = open_img("u.qcow2", false, err);
	assert_non_null(q);
	int dfd = open(p("u.qcow2"), O_RDWR | O_DIRECT | O_CLOEXEC);
	if (dfd < 0) {
		qcow2_close(q);
		skip(); /* a filesystem without O_DIRECT (tmpfs) */
	}
	qcow2_set_direct_fd(q, dfd);
	int raw = open(p("u.raw"), O_RDWR);
	uint8_t *a = aligned_alloc(4096, 1 << 20);
	assert_non_null(a);
	for (int i = 0; i < 40; i++) {
		bool aligned = i % 2;
		uint64_t len = aligned ? 4096ULL * (1 + i) : 1000ULL + i, off = aligned ? 65536ULL * i + 4096 : 777ULL * i;
		memset(a, 0x30 + i, len);
		struct iovec v = { a, len };
		assert_int_equal(qcow2_writev(q, off, &v, 1, len), 0);
		assert_int_equal(pwrite(raw, a, len, off), (ssize_t)len);
	}
	/* an aligned read of what the page cache holds goes through O_DIRECT */
	struct iovec v = { a, 1 << 20 };
	assert_int_equal(qcow2_readv(q, 0, &v, 1, 1 << 20), 0);
	uint8_t *b = malloc(1 << 20);
	assert_int_equal(pread(raw, b, 1 << 20, 0), 1 << 20);
	assert_memory_equal(a, b, 1 << 20);
	free(b);
	free(a);
	close(raw);
	assert_int_equal(qcow2_close(q), 0);
	assert_int_equal(sh("qemu-img check -q u.qcow2"), 0);
	assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw u.qcow2 u.raw"), 0);
}

static void expect_refused(const char *name, bool ro, const char *want)
{
	char err[512] = "";
	struct qcow2 *q = open_img(name, ro, err);
	if (q) {
		qcow2_close(q);
		fail_msg("%s opened; expected: %s", name, want);
	}
	if (!strstr(err, want))
		fail_msg("%s: got '%s', expected '%s'", name, err, want);
}

static void bad_images_are_refused_with_one_line(void **state)
{
	(void)state;
	assert_int_equal(sh("rm -f b*.qcow2 b.raw && qemu-img create -q -f raw b.raw 1M && "
			    "qemu-img create -q -f qcow2 -b b.raw -F raw bnofmt.qcow2 && "
			    "qemu-img create -q -f qcow2 -o extended_l2=on bext.qcow2 1M && "
			    "qemu-img create -q -f qcow2 --object secret,id=s,data=x -o encrypt.format=luks,encrypt.key-secret=s "
			    "benc.qcow2 1M && "
			    "qemu-img create -q -f qcow2 bl1.qcow2 1M && qemu-img create -q -f qcow2 -b bl1.qcow2 -F qcow2 bl2.qcow2 1M && "
			    "qemu-img rebase -q -u -F qcow2 -b bl2.qcow2 bl1.qcow2 && "
			    "qemu-img create -q -f qcow2 -u -F raw -b missing.raw bmiss.qcow2 1M && "
			    "qemu-img create -q -f qcow2 bsnap.qcow2 1M && qemu-img snapshot -c s1 bsnap.qcow2 && "
			    "qemu-img create -q -f qcow2 bhuge.qcow2 1M && "
			    /* l1_size (offset 36) of 2^30 entries */
			    "printf '\\100\\000\\000\\000' | dd of=bhuge.qcow2 bs=1 seek=36 conv=notrunc status=none && "
			    "qemu-img create -q -f qcow2 bclb.qcow2 1M && "
			    "printf '\\000\\000\\000\\050' | dd of=bclb.qcow2 bs=1 seek=20 conv=notrunc status=none"), 0);
	/* QEMU no longer makes an image without a backing format: rename the
	 * extension that records it to one nobody knows */
	int fd = open(p("bnofmt.qcow2"), O_RDWR);
	uint8_t h[4096];
	assert_int_equal(pread(fd, h, sizeof(h), 0), (ssize_t)sizeof(h));
	uint8_t *ext = memmem(h, sizeof(h), "\xe2\x79\x2a\xca", 4);
	assert_non_null(ext);
	assert_int_equal(pwrite(fd, "\x12\x34\x56\x78", 4, ext - h), 4);
	close(fd);
	expect_refused("bnofmt.qcow2", true, "has no recorded format");
	expect_refused("bext.qcow2", true, "subclusters (extended L2 entries) are not supported");
	expect_refused("benc.qcow2", true, "encrypted qcow2 images are not supported");
	expect_refused("bl1.qcow2", true, "the backing chain loops");
	expect_refused("bmiss.qcow2", true, "cannot open the backing file");
	expect_refused("bsnap.qcow2", false, "internal snapshots");
	expect_refused("bhuge.qcow2", true, "invalid L1 table size");
	expect_refused("bclb.qcow2", true, "invalid cluster size");
	expect_refused("b.raw", true, "not a qcow2 image");
	/* readable with snapshots, read-only */
	char err[512];
	struct qcow2 *q = open_img("bsnap.qcow2", true, err);
	assert_non_null(q);
	qcow2_close(q);
}

/* QEMU with lazy_refcounts killed mid-run (qemu-io's abort) leaves a dirty
 * image whose refcounts miss its writes; opening it for writing repairs
 * them. opts: the image's options. */
static void dirty_case(const char *opts)
{
	char err[512];
	const char *w = "-c 'write -P 0x5a 0 3M' -c 'write -P 0x6b 8M 100k' -c 'write -z 12M 1M' -c 'write -P 0x7c 20M 2M'";
	assert_int_equal(sh("rm -f z.qcow2 z.raw && qemu-img create -q -f raw z.raw 24M && qemu-io -f raw %s z.raw && "
			    "qemu-img create -q -f qcow2 -o lazy_refcounts=on,%s z.qcow2 24M && "
			    "(qemu-io -f qcow2 %s -c abort z.qcow2; true)", w, opts, w), 0);
	/* the test would pass on a clean image: make sure this one is not */
	if (!sh("qemu-img check -q z.qcow2"))
		fail_msg("qemu-io's abort left a clean image (%s)", opts);
	struct qcow2 *q = open_img("z.qcow2", true, err); /* readonly: no repair, still dirty */
	assert_non_null(q);
	assert_reads_as(q, "z.raw", 1 << 20);
	qcow2_close(q);
	assert_int_not_equal(sh("qemu-img check -q z.qcow2"), 0);
	if (!(q = open_img("z.qcow2", false, err)))
		fail_msg("%s", err);
	assert_reads_as(q, "z.raw", 1 << 20);
	uint8_t b[70000];
	memset(b, 0x8d, sizeof(b));
	struct iovec v = { b, sizeof(b) };
	assert_int_equal(qcow2_writev(q, 5 << 20, &v, 1, sizeof(b)), 0);
	assert_int_equal(qcow2_close(q), 0);
	int fd = open(p("z.raw"), O_RDWR);
	assert_int_equal(pwrite(fd, b, sizeof(b), 5 << 20), (ssize_t)sizeof(b));
	close(fd);
	assert_qemu_img_clean("z.qcow2", "after kvkit's repair", opts);
	assert_int_equal(sh("qemu-img compare -q -f qcow2 -F raw z.qcow2 z.raw"), 0);
	/* the dirty bit is gone: QEMU opens it without repairing */
	assert_int_equal(sh("qemu-img info z.qcow2 | grep -q 'lazy refcounts: true'"), 0);
	assert_int_equal(sh("qemu-img check z.qcow2 | grep -q 'No errors'"), 0);
}

static void dirty_lazy_refcounts_image_is_repaired(void **state)
{
	(void)state;
	dirty_case("cluster_size=65536");
	dirty_case("cluster_size=65536,refcount_bits=1");
	/* 512-byte clusters: the repair adds ~200 refcount blocks and grows the table */
	dirty_case("cluster_size=512");
	dirty_case("cluster_size=2M,refcount_bits=64");
	/* a dirty image whose tables point past its end is refused, not guessed at */
	assert_int_equal(sh("rm -f zt.qcow2 && qemu-img create -q -f qcow2 -o lazy_refcounts=on zt.qcow2 8M && "
			    "(qemu-io -f qcow2 -c 'write -P 1 0 4M' -c abort zt.qcow2; true) && truncate -s 1M zt.qcow2"), 0);
	expect_refused("zt.qcow2", false, "point past the end of the file");
}

static int setup(void **state)
{
	(void)state;
	snprintf(dir, sizeof(dir), "/var/tmp/kvkit-qcow2-XXXXXX");
	assert_non_null(mkdtemp(dir));
	if (system("qemu-img --version >/dev/null 2>&1 && qemu-io --version >/dev/null 2>&1")) {
		fprintf(stderr, "test_qcow2: qemu-img/qemu-io (qemu-utils) missing\n");
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	(void)state;
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(reads_what_qemu_wrote),
		cmocka_unit_test(reads_compressed_clusters),
		cmocka_unit_test(writes_pass_qemu_img_check),
		cmocka_unit_test(writes_into_compressed_image),
		cmocka_unit_test(discard_leaves_clusters_unallocated),
		cmocka_unit_test(backing_chain_reads_through_writes_on_top),
		cmocka_unit_test(uncached_data_through_o_direct),
		cmocka_unit_test(bad_images_are_refused_with_one_line),
		cmocka_unit_test(dirty_lazy_refcounts_image_is_repaired),
	};
	return cmocka_run_group_tests(tests, setup, teardown);
}
