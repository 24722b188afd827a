/* qcow2 (docs/disks.md; QEMU's docs/interop/qcow2.txt is the format's
 * reference). Guest offset -> L1 entry -> L2 table -> cluster; refcount
 * table -> refcount blocks count each host cluster's users.
 *
 * Metadata is cached write-back: L2 tables and refcount blocks in small
 * bounded caches, the L1 and refcount tables whole. Write order on a flush
 * (and before a dirty L2 table leaves the cache): refcount blocks and table,
 * sync (data too), L2 tables, sync, L1 table, sync; then the clusters the
 * written tables no longer use are freed (in memory, written next time).
 * Everything read from the file is hostile: offsets, sizes and counts are
 * checked before use (qcow2_open's checks, table_entry_ok, compressed
 * lengths bounded by the cluster size). */
#define _GNU_SOURCE
#include "qcow2.h"
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include "../util/log.h"
#include "../util/iov.h"

#define INCOMPAT_DIRTY (1ULL << 0)
#define INCOMPAT_CORRUPT (1ULL << 1)
#define INCOMPAT_DATA_FILE (1ULL << 2)
#define INCOMPAT_COMPRESSION (1ULL << 3)
#define INCOMPAT_EXTL2 (1ULL << 4)
#define INCOMPAT_KNOWN (INCOMPAT_DIRTY | INCOMPAT_CORRUPT | INCOMPAT_DATA_FILE | INCOMPAT_COMPRESSION | INCOMPAT_EXTL2)

#define OFLAG_COPIED (1ULL << 63)
#define OFLAG_COMPRESSED (1ULL << 62)
#define OFLAG_ZERO 1ULL
#define OFFSET_MASK 0x00fffffffffffe00ULL /* bits 9-55 */

#define EXT_END 0
#define EXT_BACKING_FORMAT 0xe2792acaU
#define EXT_DATA_FILE 0x44415441U

#define MAX_L1_BYTES (32u << 20)   /* QEMU's limits: tables a header may ask for */
#define MAX_RT_BYTES (8u << 20)
#define CACHE_BYTES (4u << 20)      /* per cache, and CACHE_MIN to CACHE_MAX tables */
#define CACHE_MIN 4
#define CACHE_MAX 256               /* lookups scan the slots */
#define MAX_SIZE (1ULL << 56)        /* offsets have 56 bits */

/* One image of a chain: a qcow2 or a raw backing file. */
struct layer {
	struct qcow2 *q; /* NULL: raw */
	int fd;
	uint64_t size;
};

struct centry {
	uint64_t off; /* host offset of the table; 0: free slot */
	uint8_t *data;
	bool dirty;
	uint64_t used;
};

struct cache {
	struct centry *e;
	unsigned n;
	unsigned last; /* the slot hit last: lookups come in runs */
	uint64_t tick;
};

struct qcow2 {
	int fd;
	int dfd; /* cache=uncached: the same file with O_DIRECT, for cluster data */
	bool ro;
	char *path;
	pthread_mutex_t lock;
	uint32_t version, cluster_bits, cluster_size;
	uint64_t size;
	uint64_t incompat, compat, autoclear;
	uint32_t header_len;
	int zstd; /* compression type */
	uint64_t *l1; /* host byte order */
	uint32_t l1_size;
	uint64_t l1_off;
	bool l1_dirty;
	uint64_t *rt; /* refcount table, host byte order */
	uint64_t rt_len, rt_off;
	bool rt_dirty;
	bool rt_moved; /* the header must name the grown table */
	uint32_t refbits;
	uint64_t l2_entries, rb_entries;
	struct cache l2, rb;
	uint64_t top;       /* first cluster index past everything in use */
	uint64_t free_hint; /* no free cluster below this index */
	uint64_t *pending;  /* clusters to free once the tables are on disk */
	size_t npending, cap_pending;
	struct layer backing;
	bool has_backing;
	bool failed; /* a metadata write failed: no more writes */
};

/* ---------------- small helpers ---------------- */

static int pread_full(int fd, void *buf, size_t len, uint64_t off)
{
	uint8_t *p = buf;
	while (len) {
		ssize_t n = pread(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			return -EIO; /* metadata past the end of the file */
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int pwrite_full(int fd, const void *buf, size_t len, uint64_t off)
{
	const uint8_t *p = buf;
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int sync_fd(int fd)
{
	return fdatasync(fd) < 0 ? -errno : 0;
}

static void iov_memset0(const struct iovec *iov, unsigned niov)
{
	for (unsigned i = 0; i < niov; i++)
		memset(iov[i].iov_base, 0, iov[i].iov_len);
}

/* Drop the first n bytes of an iovec array (in place). */
static void iov_consume(struct iovec **iov, unsigned *niov, size_t n)
{
	while (*niov && n >= (*iov)->iov_len) {
		n -= (*iov)->iov_len;
		(*iov)++;
		(*niov)--;
	}
	if (*niov) {
		(*iov)->iov_base = (uint8_t *)(*iov)->iov_base + n;
		(*iov)->iov_len -= n;
	}
}

/* preadv to the end, zeroes past the end of the file (the last data
 * cluster of an image may be short). */
static int preadv_full(int fd, struct iovec *iov, unsigned niov, uint64_t off)
{
	while (niov) {
		ssize_t n = preadv(fd, iov, (int)niov, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0) {
			iov_memset0(iov, niov);
			return 0;
		}
		off += (uint64_t)n;
		iov_consume(&iov, &niov, (size_t)n);
	}
	return 0;
}

static int pwritev_full(int fd, struct iovec *iov, unsigned niov, uint64_t off)
{
	while (niov) {
		ssize_t n = pwritev(fd, iov, (int)niov, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		off += (uint64_t)n;
		iov_consume(&iov, &niov, (size_t)n);
	}
	return 0;
}

/* A table's or cluster's host offset as read from the image: aligned to a
 * cluster, not the header's cluster, inside what offsets can say. */
static bool offset_ok(const struct qcow2 *q, uint64_t off)
{
	return off && !(off & (q->cluster_size - 1)) && off < MAX_SIZE;
}

/* ---------------- metadata caches ---------------- */

/* Slots get their memory on first use: a small disk never fills them. */
static int cache_init(struct cache *c, uint32_t cluster_size)
{
	c->n = CACHE_BYTES / cluster_size;
	if (c->n < CACHE_MIN)
		c->n = CACHE_MIN;
	if (c->n > CACHE_MAX)
		c->n = CACHE_MAX;
	c->e = calloc(c->n, sizeof(*c->e));
	return c->e ? 0 : -1;
}

static void cache_free(struct cache *c)
{
	for (unsigned i = 0; c->e && i < c->n; i++)
		free(c->e[i].data);
	free(c->e);
}

static int write_refcounts(struct qcow2 *q);

/* The table at off (fresh: a new one, all zero, not read). The pointer is
 * good until the next cache_get on the same cache. */
static int cache_get(struct qcow2 *q, struct cache *c, uint64_t off, bool fresh, uint8_t **out)
{
	struct centry *victim = NULL;
	for (unsigned k = 0; k < c->n; k++) {
		unsigned i = (c->last + k) % c->n;
		struct centry *e = &c->e[i];
		if (e->off == off) {
			c->last = i;
			e->used = ++c->tick;
			if (fresh) {
				memset(e->data, 0, q->cluster_size);
				e->dirty = true;
			}
			*out = e->data;
			return 0;
		}
		if (!victim || !e->off || (victim->off && e->used < victim->used))
			victim = e;
	}
	if (victim->off && victim->dirty) {
		int r = 0;
		/* an L2 table may point at clusters whose refcounts and data
		 * are not on disk yet */
		if (c == &q->l2 && ((r = write_refcounts(q)) < 0 || (r = sync_fd(q->fd)) < 0))
			return r;
		if ((r = pwrite_full(q->fd, victim->data, q->cluster_size, victim->off)) < 0)
			return r;
		victim->dirty = false;
	}
	victim->off = 0;
	if (!victim->data && !(victim->data = malloc(q->cluster_size)))
		return -ENOMEM;
	if (fresh) {
		memset(victim->data, 0, q->cluster_size);
	} else {
		int r = pread_full(q->fd, victim->data, q->cluster_size, off);
		if (r < 0)
			return r;
	}
	victim->off = off;
	c->last = (unsigned)(victim - c->e);
	victim->dirty = fresh;
	victim->used = ++c->tick;
	*out = victim->data;
	return 0;
}

static void cache_mark_dirty(struct cache *c, uint64_t off)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->e[i].off == off)
			c->e[i].dirty = true;
}

static int cache_write_dirty(struct qcow2 *q, struct cache *c, bool *wrote)
{
	for (unsigned i = 0; i < c->n; i++) {
		struct centry *e = &c->e[i];
		if (e->off && e->dirty) {
			int r = pwrite_full(q->fd, e->data, q->cluster_size, e->off);
			if (r < 0)
				return r;
			e->dirty = false;
			if (wrote)
				*wrote = true;
		}
	}
	return 0;
}

/* ---------------- refcounts ---------------- */

static uint64_t rb_get(const struct qcow2 *q, const uint8_t *b, uint64_t i)
{
	switch (q->refbits) {
	case 64: return be64toh(((const uint64_t *)b)[i]);
	case 32: return be32toh(((const uint32_t *)b)[i]);
	case 16: return be16toh(((const uint16_t *)b)[i]);
	case 8: return b[i];
	default: {
		/* 1, 2, 4 bits: QEMU packs them from the low bits of each byte */
		unsigned per = 8 / q->refbits;
		return (b[i / per] >> ((i % per) * q->refbits)) & ((1u << q->refbits) - 1);
	}
	}
}

static void rb_set(const struct qcow2 *q, uint8_t *b, uint64_t i, uint64_t v)
{
	switch (q->refbits) {
	case 64: ((uint64_t *)b)[i] = htobe64(v); break;
	case 32: ((uint32_t *)b)[i] = htobe32((uint32_t)v); break;
	case 16: ((uint16_t *)b)[i] = htobe16((uint16_t)v); break;
	case 8: b[i] = (uint8_t)v; break;
	default: {
		unsigned per = 8 / q->refbits, sh = (unsigned)(i % per) * q->refbits;
		uint8_t m = (uint8_t)(((1u << q->refbits) - 1) << sh);
		b[i / per] = (uint8_t)((b[i / per] & ~m) | ((v << sh) & m));
	}
	}
}

static int refcount_get(struct qcow2 *q, uint64_t cl, uint64_t *v)
{
	uint64_t ti = cl / q->rb_entries;
	*v = 0;
	if (ti >= q->rt_len || !(q->rt[ti] & OFFSET_MASK))
		return 0;
	uint8_t *b;
	int r = cache_get(q, &q->rb, q->rt[ti] & OFFSET_MASK, false, &b);
	if (r < 0)
		return r;
	*v = rb_get(q, b, cl % q->rb_entries);
	return 0;
}

static int refcount_set(struct qcow2 *q, uint64_t cl, uint64_t v);
static int defer_free(struct qcow2 *q, uint64_t off, uint64_t len);

/* A refcount table at least twice as large, past everything in use; the
 * header names it once it is written, then the old one is freed. */
static int grow_refcount_table(struct qcow2 *q, uint64_t ti)
{
	uint64_t per = q->cluster_size / 8, len = q->rt_len * 2;
	if (len < ti + 1)
		len = ti + 1;
	len = (len + per - 1) / per * per;
	if (len * 8 > MAX_RT_BYTES) {
		log_error("%s: the refcount table would pass %u MiB", q->path, MAX_RT_BYTES >> 20);
		return -ENOSPC;
	}
	uint64_t *rt = calloc(len, 8);
	if (!rt)
		return -ENOMEM;
	memcpy(rt, q->rt, q->rt_len * 8);
	uint64_t old_off = q->rt_off, old_bytes = q->rt_len * 8, first = q->top, n = len * 8 / q->cluster_size;
	q->top += n;
	free(q->rt);
	q->rt = rt;
	q->rt_len = len;
	q->rt_off = first << q->cluster_bits;
	q->rt_dirty = q->rt_moved = true;
	int r = 0;
	for (uint64_t i = 0; i < n && r == 0; i++)
		r = refcount_set(q, first + i, 1);
	return r < 0 ? r : defer_free(q, old_off, old_bytes);
}

/* A refcount block for table index ti, placed past everything in use. */
static int new_refcount_block(struct qcow2 *q, uint64_t ti)
{
	int r;
	if (ti >= q->rt_len && (r = grow_refcount_table(q, ti)) < 0)
		return r;
	if (q->rt[ti]) /* counting the grown table's clusters made this block */
		return 0;
	uint64_t cl = q->top++;
	uint8_t *b;
	if ((r = cache_get(q, &q->rb, cl << q->cluster_bits, true, &b)) < 0)
		return r;
	q->rt[ti] = cl << q->cluster_bits;
	q->rt_dirty = true;
	return refcount_set(q, cl, 1); /* counts itself, or in a block of its own */
}

static int refcount_set(struct qcow2 *q, uint64_t cl, uint64_t v)
{
	uint64_t ti = cl / q->rb_entries;
	int r;
	if (q->refbits < 64 && v >> q->refbits)
		return -ERANGE;
	if ((ti >= q->rt_len || !(q->rt[ti] & OFFSET_MASK)) && (r = new_refcount_block(q, ti)) < 0)
		return r;
	uint8_t *b;
	uint64_t boff = q->rt[ti] & OFFSET_MASK;
	if ((r = cache_get(q, &q->rb, boff, false, &b)) < 0)
		return r;
	rb_set(q, b, cl % q->rb_entries, v);
	cache_mark_dirty(&q->rb, boff);
	return 0;
}

/* Is cluster cl part of the header or the tables the header points at? */
static bool is_fixed_metadata(const struct qcow2 *q, uint64_t cl)
{
	uint64_t off = cl << q->cluster_bits, cs = q->cluster_size;
	uint64_t l1_end = q->l1_off + (uint64_t)q->l1_size * 8, rt_end = q->rt_off + q->rt_len * 8;
	return cl == 0 || (off + cs > q->l1_off && off < l1_end) || (off + cs > q->rt_off && off < rt_end);
}

/* n contiguous free clusters; their refcounts become 1 (in the cache). */
static int alloc_clusters(struct qcow2 *q, uint64_t n, uint64_t *off)
{
	uint64_t start = q->free_hint, run = 0, v, first_free = UINT64_MAX;
	int r;
	/* a run that reaches top goes on: everything from there up is free */
	for (uint64_t cl = start; run < n && cl < q->top; cl++) {
		if ((r = refcount_get(q, cl, &v)) < 0)
			return r;
		if (v || is_fixed_metadata(q, cl)) {
			run = 0;
			start = cl + 1;
		} else {
			if (first_free == UINT64_MAX)
				first_free = cl;
			run++;
		}
	}
	if (start + n > q->top)
		q->top = start + n;
	for (uint64_t i = 0; i < n; i++)
		if ((r = refcount_set(q, start + i, 1)) < 0)
			return r;
	/* the next search starts at the first free cluster left behind */
	q->free_hint = first_free < start ? first_free : start + n;
	*off = start << q->cluster_bits;
	return 0;
}

/* Free the host clusters under [off, off+len) once the tables are synced. */
static int defer_free(struct qcow2 *q, uint64_t off, uint64_t len)
{
	for (uint64_t cl = off >> q->cluster_bits; cl <= (off + len - 1) >> q->cluster_bits; cl++) {
		if (q->npending == q->cap_pending) {
			size_t cap = q->cap_pending ? q->cap_pending * 2 : 64;
			uint64_t *p = realloc(q->pending, cap * sizeof(*p));
			if (!p)
				return -ENOMEM;
			q->pending = p;
			q->cap_pending = cap;
		}
		q->pending[q->npending++] = cl;
	}
	return 0;
}

static int write_refcounts(struct qcow2 *q)
{
	int r = cache_write_dirty(q, &q->rb, NULL);
	if (r < 0 || !q->rt_dirty)
		return r;
	uint64_t bytes = q->rt_len * 8;
	uint64_t *be = malloc(bytes);
	if (!be)
		return -ENOMEM;
	for (uint64_t i = 0; i < q->rt_len; i++)
		be[i] = htobe64(q->rt[i]);
	r = pwrite_full(q->fd, be, bytes, q->rt_off);
	free(be);
	if (r == 0)
		q->rt_dirty = false;
	if (r == 0 && q->rt_moved) {
		/* the new table and its blocks first, then the header names it */
		uint8_t h[12];
		uint64_t off = htobe64(q->rt_off);
		uint32_t cls = htobe32((uint32_t)(q->rt_len * 8 / q->cluster_size));
		memcpy(h, &off, 8);
		memcpy(h + 8, &cls, 4);
		if ((r = sync_fd(q->fd)) == 0 && (r = pwrite_full(q->fd, h, sizeof(h), 48)) == 0)
			q->rt_moved = false;
	}
	return r;
}

/* ---------------- L1 / L2 ---------------- */

/* The L2 entry for guest cluster vcl (0 where no L2 table); -EIO for a
 * table offset a header or L1 entry cannot have. */
static int l2_lookup(struct qcow2 *q, uint64_t vcl, uint64_t *entry)
{
	uint64_t l1i = vcl / q->l2_entries, l1e = q->l1[l1i];
	*entry = 0;
	if (!(l1e & OFFSET_MASK))
		return 0;
	if (!offset_ok(q, l1e & OFFSET_MASK))
		return -EIO;
	uint8_t *t;
	int r = cache_get(q, &q->l2, l1e & OFFSET_MASK, false, &t);
	if (r < 0)
		return r;
	*entry = be64toh(((uint64_t *)t)[vcl % q->l2_entries]);
	if (*entry & OFLAG_COMPRESSED) {
		if (*entry & OFLAG_COPIED) /* a compressed cluster is never ours alone */
			return -EIO;
	} else if ((*entry & OFFSET_MASK) && !offset_ok(q, *entry & OFFSET_MASK)) {
		return -EIO;
	}
	return 0;
}

/* Make vcl's L2 table exist and be ours (allocating it), then set the entry. */
static int l2_set(struct qcow2 *q, uint64_t vcl, uint64_t entry)
{
	uint64_t l1i = vcl / q->l2_entries, toff = q->l1[l1i] & OFFSET_MASK;
	uint8_t *t;
	int r;
	if (!toff) {
		if ((r = alloc_clusters(q, 1, &toff)) < 0)
			return r;
		if ((r = cache_get(q, &q->l2, toff, true, &t)) < 0)
			return r;
		q->l1[l1i] = toff | OFLAG_COPIED;
		q->l1_dirty = true;
	} else if ((r = cache_get(q, &q->l2, toff, false, &t)) < 0) {
		return r;
	}
	((uint64_t *)t)[vcl % q->l2_entries] = htobe64(entry);
	cache_mark_dirty(&q->l2, toff);
	return 0;
}

/* ---------------- reading clusters ---------------- */

static int layer_readv(struct layer *l, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len);

static int decompress(struct qcow2 *q, const uint8_t *in, size_t inlen, uint8_t *out)
{
	if (q->zstd) {
		ZSTD_DCtx *d = ZSTD_createDCtx();
		if (!d)
			return -ENOMEM;
		ZSTD_inBuffer ib = { in, inlen, 0 };
		ZSTD_outBuffer ob = { out, q->cluster_size, 0 };
		size_t r = 1;
		while (ob.pos < ob.size && ib.pos < ib.size && r) {
			r = ZSTD_decompressStream(d, &ob, &ib);
			if (ZSTD_isError(r))
				break;
		}
		ZSTD_freeDCtx(d);
		return !ZSTD_isError(r) && ob.pos == ob.size ? 0 : -EIO;
	}
	z_stream s = { 0 };
	if (inflateInit2(&s, -12) != Z_OK) /* raw deflate, QEMU's window */
		return -ENOMEM;
	s.next_in = (Bytef *)in;
	s.avail_in = (uInt)inlen;
	s.next_out = out;
	s.avail_out = q->cluster_size;
	int r = inflate(&s, Z_FINISH);
	inflateEnd(&s);
	return (r == Z_STREAM_END || r == Z_OK || r == Z_BUF_ERROR) && s.avail_out == 0 ? 0 : -EIO;
}

/* Where a compressed cluster's bytes lie in the file: the entry holds the
 * offset in its low x bits, and above them the 512-byte sectors it spans
 * beyond the first. */
static void compressed_range(const struct qcow2 *q, uint64_t e, uint64_t *off, uint64_t *len)
{
	unsigned x = 62 - (q->cluster_bits - 8);
	*off = e & ((1ULL << x) - 1);
	*len = (((e >> x) & ((1ULL << (q->cluster_bits - 8)) - 1)) + 1) * 512 - (*off & 511);
}

/* A compressed cluster's data (whole cluster into out). */
static int read_compressed(struct qcow2 *q, uint64_t e, uint8_t *out)
{
	uint64_t off, len;
	compressed_range(q, e, &off, &len);
	if (!off || len > 2 * (uint64_t)q->cluster_size)
		return -EIO;
	uint8_t *in = malloc(len);
	if (!in)
		return -ENOMEM;
	struct iovec v = { in, len };
	int r = preadv_full(q->fd, &v, 1, off); /* the last one may end early */
	if (r == 0)
		r = decompress(q, in, len, out);
	free(in);
	return r;
}

/* Whole guest cluster vcl as it reads now (for copy-on-write). */
static int read_cluster(struct qcow2 *q, uint64_t vcl, uint64_t e, uint8_t *buf)
{
	uint64_t cs = q->cluster_size, voff = vcl * cs;
	if (e & OFLAG_COMPRESSED)
		return read_compressed(q, e, buf);
	if (e & OFLAG_ZERO || (!(e & OFFSET_MASK) && !q->has_backing)) {
		memset(buf, 0, cs);
		return 0;
	}
	struct iovec v = { buf, cs };
	if (e & OFFSET_MASK)
		return preadv_full(q->fd, &v, 1, e & OFFSET_MASK);
	return layer_readv(&q->backing, voff, &v, 1, cs);
}

#define IOV_STACK 64

/* Guest data to or from an allocated cluster: O_DIRECT where the disk is
 * uncached and the buffers are aligned enough (the kernel says EINVAL
 * otherwise, and the page cache takes it; it keeps both views coherent). */
static int data_io(struct qcow2 *q, bool write, struct iovec *iov, unsigned niov, uint64_t off)
{
	if (q->dfd >= 0) {
		struct iovec copy[IOV_STACK];
		if (niov <= IOV_STACK) {
			memcpy(copy, iov, niov * sizeof(*iov));
			int r = write ? pwritev_full(q->dfd, copy, niov, off) : preadv_full(q->dfd, copy, niov, off);
			if (r != -EINVAL)
				return r;
		}
	}
	return write ? pwritev_full(q->fd, iov, niov, off) : preadv_full(q->fd, iov, niov, off);
}

int qcow2_readv(struct qcow2 *q, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len)
{
	uint64_t cs = q->cluster_size, pos = 0;
	struct iovec stack[IOV_STACK], *sub = stack;
	unsigned maxsub = niov > IOV_STACK ? niov : IOV_STACK;
	uint8_t *cbuf = NULL;
	int r = 0;
	if (off > q->size || len > q->size - off)
		return -EINVAL;
	if (niov > IOV_STACK && !(sub = malloc(niov * sizeof(*sub))))
		return -ENOMEM;
	while (pos < len && r == 0) {
		uint64_t g = off + pos, vcl = g / cs, in = g % cs;
		uint64_t e, seg = cs - in;
		pthread_mutex_lock(&q->lock);
		r = l2_lookup(q, vcl, &e);
		/* merge the following clusters that lie right after this one */
		if (r == 0 && !(e & (OFLAG_COMPRESSED | OFLAG_ZERO)) && (e & OFFSET_MASK)) {
			uint64_t want = (e & OFFSET_MASK) + cs, ne;
			while (pos + seg < len && l2_lookup(q, vcl + 1, &ne) == 0 &&
			       !(ne & (OFLAG_COMPRESSED | OFLAG_ZERO)) && (ne & OFFSET_MASK) == want) {
				vcl++;
				seg += cs;
				want += cs;
			}
		}
		pthread_mutex_unlock(&q->lock);
		if (r < 0)
			break;
		if (seg > len - pos)
			seg = len - pos;
		int n = iov_slice(iov, niov, pos, seg, sub, maxsub);
		if (n < 0) {
			r = -EINVAL; /* the iovec holds less than len */
			break;
		}
		if (e & OFLAG_COMPRESSED) {
			if (!cbuf && !(cbuf = malloc(cs))) {
				r = -ENOMEM;
				break;
			}
			if ((r = read_compressed(q, e, cbuf)) == 0)
				iov_from_buf(sub, (unsigned)n, 0, cbuf + in, seg);
		} else if (e & OFLAG_ZERO || (!(e & OFFSET_MASK) && !q->has_backing)) {
			iov_memset0(sub, (unsigned)n);
		} else if (e & OFFSET_MASK) {
			r = data_io(q, false, sub, (unsigned)n, (e & OFFSET_MASK) + in);
		} else {
			r = layer_readv(&q->backing, g, sub, (unsigned)n, seg);
		}
		pos += seg;
	}
	free(cbuf);
	if (sub != stack)
		free(sub);
	return r;
}

static int layer_readv(struct layer *l, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len)
{
	if (off >= l->size) {
		iov_memset0(iov, niov);
		return 0;
	}
	struct iovec stack[IOV_STACK], *sub = stack;
	uint64_t in = len < l->size - off ? len : l->size - off;
	int r;
	if (niov > IOV_STACK && !(sub = malloc(niov * sizeof(*sub))))
		return -ENOMEM;
	int n = iov_slice(iov, niov, 0, in, sub, niov > IOV_STACK ? niov : IOV_STACK);
	if (n < 0)
		r = -EINVAL;
	else if (l->q)
		r = qcow2_readv(l->q, off, sub, (unsigned)n, in);
	else
		r = preadv_full(l->fd, sub, (unsigned)n, off);
	if (r == 0 && in < len) { /* the backing file ends: zeroes after */
		n = iov_slice(iov, niov, in, len - in, sub, niov > IOV_STACK ? niov : IOV_STACK);
		if (n < 0)
			r = -EINVAL;
		else
			iov_memset0(sub, (unsigned)n);
	}
	if (sub != stack)
		free(sub);
	return r;
}

/* ---------------- writing ---------------- */

/* Write seg bytes at offset in inside guest cluster vcl from src (NULL:
 * zeroes), allocating the cluster (with copy-on-write of the rest) when it
 * is not a plain one of ours. Called with the lock held. */
static int write_cluster_locked(struct qcow2 *q, uint64_t vcl, uint64_t in, uint64_t seg, const struct iovec *src,
				unsigned nsrc, bool *done_fast, uint64_t *host)
{
	uint64_t cs = q->cluster_size, e;
	int r = l2_lookup(q, vcl, &e);
	if (r < 0)
		return r;
	*done_fast = false;
	if ((e & OFLAG_COPIED) && !(e & (OFLAG_COMPRESSED | OFLAG_ZERO)) && (e & OFFSET_MASK)) {
		*host = e & OFFSET_MASK;
		if (is_fixed_metadata(q, *host >> q->cluster_bits))
			return -EIO; /* a crafted table: guest data over the header */
		*done_fast = true; /* the caller writes in place, unlocked */
		return 0;
	}
	if ((e & OFFSET_MASK) && !(e & OFLAG_COPIED) && !(e & OFLAG_COMPRESSED))
		return -EIO; /* shared with a snapshot: refused at open */
	uint64_t hoff;
	bool reuse = (e & OFLAG_ZERO) && (e & OFLAG_COPIED) && (e & OFFSET_MASK);
	if (reuse)
		hoff = e & OFFSET_MASK;
	else if ((r = alloc_clusters(q, 1, &hoff)) < 0)
		return r;
	uint8_t *buf = malloc(cs);
	if (!buf)
		return -ENOMEM;
	if (seg < cs)
		r = read_cluster(q, vcl, reuse ? OFLAG_ZERO : e, buf);
	if (r == 0) {
		if (src)
			iov_to_buf(src, nsrc, 0, buf + in, seg);
		else
			memset(buf + in, 0, seg);
		r = pwrite_full(q->fd, buf, cs, hoff);
	}
	free(buf);
	if (r == 0 && (e & OFLAG_COMPRESSED)) {
		uint64_t coff, clen;
		compressed_range(q, e, &coff, &clen);
		r = defer_free(q, coff, clen);
	}
	if (r == 0)
		r = l2_set(q, vcl, hoff | OFLAG_COPIED);
	return r;
}

static int write_range(struct qcow2 *q, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len)
{
	uint64_t cs = q->cluster_size, pos = 0;
	struct iovec stack[IOV_STACK], *sub = stack;
	unsigned maxsub = niov > IOV_STACK ? niov : IOV_STACK;
	int r = 0;
	if (q->ro)
		return -EROFS;
	if (off > q->size || len > q->size - off)
		return -EINVAL;
	if (niov > IOV_STACK && !(sub = malloc(niov * sizeof(*sub))))
		return -ENOMEM;
	while (pos < len && r == 0) {
		uint64_t g = off + pos, vcl = g / cs, in = g % cs, seg = cs - in, host = 0;
		if (seg > len - pos)
			seg = len - pos;
		int n = iov ? iov_slice(iov, niov, pos, seg, sub, maxsub) : 0;
		bool fast;
		if (n < 0) {
			r = -EINVAL; /* the iovec holds less than len */
			break;
		}
		pthread_mutex_lock(&q->lock);
		r = q->failed ? -EIO : write_cluster_locked(q, vcl, in, seg, iov ? sub : NULL, (unsigned)n, &fast, &host);
		if (r == 0 && fast && iov) {
			/* the following clusters that are ours and lie right after
			 * this one take the same write */
			uint64_t want = host + cs, ne;
			while (pos + seg < len && l2_lookup(q, ++vcl, &ne) == 0 && (ne & OFLAG_COPIED) &&
			       !(ne & (OFLAG_COMPRESSED | OFLAG_ZERO)) && (ne & OFFSET_MASK) == want &&
			       !is_fixed_metadata(q, want >> q->cluster_bits)) {
				seg += len - pos - seg < cs ? len - pos - seg : cs;
				want += cs;
			}
			if ((n = iov_slice(iov, niov, pos, seg, sub, maxsub)) < 0)
				r = -EINVAL;
		}
		pthread_mutex_unlock(&q->lock);
		if (r == 0 && fast) {
			if (iov) {
				r = data_io(q, true, sub, (unsigned)n, host + in);
			} else {
				uint8_t *z = calloc(1, seg);
				r = z ? pwrite_full(q->fd, z, seg, host + in) : -ENOMEM;
				free(z);
			}
		}
		pos += seg;
	}
	if (sub != stack)
		free(sub);
	return r;
}

int qcow2_writev(struct qcow2 *q, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len)
{
	return write_range(q, off, iov, niov, len);
}

/* Whole clusters of [off, off+len) get entry kind new_e (0: unallocated,
 * OFLAG_ZERO: reads zeroes); their host clusters are freed after the sync. */
static int drop_clusters(struct qcow2 *q, uint64_t off, uint64_t len, uint64_t new_e)
{
	uint64_t cs = q->cluster_size;
	int r = 0;
	pthread_mutex_lock(&q->lock);
	for (uint64_t vcl = off / cs; r == 0 && vcl < (off + len + cs - 1) / cs; vcl++) {
		uint64_t e;
		if ((r = l2_lookup(q, vcl, &e)) < 0)
			break;
		if (e == new_e || (!e && !(q->l1[vcl / q->l2_entries] & OFFSET_MASK) && !new_e))
			continue;
		if (e & OFLAG_COMPRESSED) {
			uint64_t coff, clen;
			compressed_range(q, e, &coff, &clen);
			r = defer_free(q, coff, clen);
		} else if ((e & OFFSET_MASK) && (e & OFLAG_COPIED)) {
			r = defer_free(q, e & OFFSET_MASK, cs);
		}
		if (r == 0)
			r = l2_set(q, vcl, new_e);
	}
	pthread_mutex_unlock(&q->lock);
	return r;
}

/* The whole clusters of [off, off+len) as [*a, *b) (the disk's last,
 * partial cluster counts as whole); -errno for a range the disk has not. */
static int whole_clusters(const struct qcow2 *q, uint64_t off, uint64_t len, uint64_t *a, uint64_t *b)
{
	uint64_t cs = q->cluster_size;
	if (q->ro)
		return -EROFS;
	if (off > q->size || len > q->size - off)
		return -EINVAL;
	*a = (off + cs - 1) / cs * cs;
	*b = off + len == q->size ? off + len : (off + len) / cs * cs;
	return 0;
}

int qcow2_discard(struct qcow2 *q, uint64_t off, uint64_t len)
{
	uint64_t a, b;
	int r = whole_clusters(q, off, len, &a, &b);
	if (r < 0 || b <= a)
		return r;
	if (q->has_backing && q->version < 3)
		return 0; /* would show the backing data again; v2 has no zero flag */
	/* unallocated reads as zeroes unless a backing file shows through */
	return drop_clusters(q, a, b - a, q->has_backing ? OFLAG_ZERO : 0);
}

int qcow2_write_zeroes(struct qcow2 *q, uint64_t off, uint64_t len, bool unmap)
{
	uint64_t a, b;
	int r0 = whole_clusters(q, off, len, &a, &b);
	if (r0 < 0)
		return r0;
	/* whole clusters: a zero entry (v3), or unallocated where nothing shows through */
	if (b > a && (q->version >= 3 || !q->has_backing)) {
		int r = drop_clusters(q, a, b - a, q->has_backing ? OFLAG_ZERO : 0);
		if (r < 0)
			return r;
		(void)unmap; /* whole clusters are always given back */
		if (a > off && (r = write_range(q, off, NULL, 0, a - off)) < 0)
			return r;
		return off + len > b ? write_range(q, b, NULL, 0, off + len - b) : 0;
	}
	return write_range(q, off, NULL, 0, len);
}

/* ---------------- flush ---------------- */

static int flush_locked(struct qcow2 *q)
{
	int r;
	bool l2_dirty = false;
	if (q->ro)
		return 0;
	if (q->failed)
		return -EIO;
	if ((r = write_refcounts(q)) < 0 || (r = sync_fd(q->fd)) < 0)
		goto fail;
	if ((r = cache_write_dirty(q, &q->l2, &l2_dirty)) < 0)
		goto fail;
	if ((l2_dirty || q->l1_dirty) && (r = sync_fd(q->fd)) < 0)
		goto fail;
	if (q->l1_dirty) {
		uint64_t *be = malloc((size_t)q->l1_size * 8);
		if (!be) {
			r = -ENOMEM;
			goto fail;
		}
		for (uint32_t i = 0; i < q->l1_size; i++)
			be[i] = htobe64(q->l1[i]);
		r = pwrite_full(q->fd, be, (size_t)q->l1_size * 8, q->l1_off);
		free(be);
		if (r < 0 || (r = sync_fd(q->fd)) < 0)
			goto fail;
		q->l1_dirty = false;
	}
	/* the tables on disk no longer use these: their clusters are free */
	for (size_t i = 0; i < q->npending; i++) {
		uint64_t cl = q->pending[i], v;
		if ((r = refcount_get(q, cl, &v)) < 0)
			goto fail;
		if (!v) {
			log_warn("%s: cluster %llu freed twice; the image's refcounts were wrong", q->path,
				 (unsigned long long)cl);
			continue;
		}
		if ((r = refcount_set(q, cl, v - 1)) < 0)
			goto fail;
		if (v == 1 && cl < q->free_hint)
			q->free_hint = cl;
	}
	q->npending = 0;
	return 0;
fail:
	/* what is on disk is consistent (leaks at worst); keep it that way */
	q->failed = true;
	log_error("%s: writing qcow2 metadata failed: %s; no more writes to this disk", q->path, strerror(-r));
	return r;
}

int qcow2_flush(struct qcow2 *q)
{
	pthread_mutex_lock(&q->lock);
	int r = flush_locked(q);
	pthread_mutex_unlock(&q->lock);
	return r;
}

uint64_t qcow2_size(const struct qcow2 *q)
{
	return q->size;
}

uint32_t qcow2_cluster_size(const struct qcow2 *q)
{
	return q->cluster_size;
}

static void layer_close(struct layer *l)
{
	if (l->q)
		qcow2_close(l->q);
	else if (l->fd >= 0)
		close(l->fd);
}

int qcow2_close(struct qcow2 *q)
{
	int r = 0;
	if (!q)
		return 0;
	if (!q->ro && !q->failed) {
		/* twice: the second writes the refcounts the first freed */
		r = qcow2_flush(q);
		if (r == 0)
			r = qcow2_flush(q);
	}
	if (q->has_backing)
		layer_close(&q->backing);
	cache_free(&q->l2);
	cache_free(&q->rb);
	free(q->l1);
	free(q->rt);
	free(q->pending);
	free(q->path);
	pthread_mutex_destroy(&q->lock);
	if (q->dfd >= 0)
		close(q->dfd);
	close(q->fd);
	free(q);
	return r;
}

/* ---------------- repair after a crash with lazy refcounts ---------------- */

/* With lazy_refcounts on, QEMU writes L2 entries without their refcounts
 * and keeps the dirty bit set until it closes the image. Opening such an
 * image for writing recounts every cluster's users from the tables, as
 * qemu-img check -r all does: refcounts that differ are rewritten (new
 * refcount blocks go past the end of the file), data clusters get back
 * their "copied" flag, the tables are flushed, and only then the dirty bit
 * is cleared. A reference kvkit cannot explain (past the end of the file,
 * or a cluster used twice) is refused: guessing could lose data. */

#define MAX_REPAIR_CLUSTERS (64ULL << 20) /* 256 MiB of counts */
#define REF_EXCLUSIVE 0x80000000u        /* a table or data cluster: one user only */

/* Count one more user of the clusters under [off, off+len). */
static int count_users(uint32_t *cnt, uint64_t n, unsigned bits, uint64_t off, uint64_t len, bool exclusive)
{
	for (uint64_t cl = off >> bits; cl <= (off + len - 1) >> bits; cl++) {
		if (cl >= n)
			return -ERANGE;
		if (exclusive ? cnt[cl] != 0 : (cnt[cl] & REF_EXCLUSIVE) || cnt[cl] == REF_EXCLUSIVE - 1)
			return -EEXIST;
		cnt[cl] = exclusive ? REF_EXCLUSIVE : cnt[cl] + 1;
	}
	return 0;
}

static uint64_t users(uint32_t c)
{
	return c & REF_EXCLUSIVE ? 1 : c;
}

/* Walk the tables; fix the copied flags of L2 entries on the way. */
static int count_all_users(struct qcow2 *q, uint32_t *cnt, uint64_t n, uint64_t *at)
{
	unsigned b = q->cluster_bits;
	int r = count_users(cnt, n, b, 0, q->cluster_size, true);
	if (r == 0 && q->l1_size)
		r = count_users(cnt, n, b, q->l1_off, (uint64_t)q->l1_size * 8, true);
	if (r == 0)
		r = count_users(cnt, n, b, q->rt_off, q->rt_len * 8, true);
	for (uint64_t i = 0; r == 0 && i < q->rt_len; i++)
		if (q->rt[i] && (r = count_users(cnt, n, b, *at = q->rt[i], q->cluster_size, true)) < 0)
			return r;
	for (uint32_t i = 0; r == 0 && i < q->l1_size; i++) {
		uint64_t toff = q->l1[i] & OFFSET_MASK;
		uint8_t *t;
		if (!toff)
			continue;
		if ((r = count_users(cnt, n, b, *at = toff, q->cluster_size, true)) < 0 ||
		    (r = cache_get(q, &q->l2, toff, false, &t)) < 0)
			return r;
		uint64_t *ent = (uint64_t *)t;
		bool changed = false;
		for (uint64_t k = 0; k < q->l2_entries && r == 0; k++) {
			uint64_t e = be64toh(ent[k]), off, len;
			if (e & OFLAG_COMPRESSED) {
				compressed_range(q, e, &off, &len);
				if (!off || len > 2 * (uint64_t)q->cluster_size)
					return -EIO;
				r = count_users(cnt, n, b, *at = off, len, false);
			} else if ((off = e & OFFSET_MASK)) {
				if (!offset_ok(q, off))
					return -EIO;
				r = count_users(cnt, n, b, *at = off, q->cluster_size, true);
				if (!(e & OFLAG_COPIED)) {
					ent[k] = htobe64(e | OFLAG_COPIED);
					changed = true;
				}
			}
		}
		if (changed)
			cache_mark_dirty(&q->l2, toff);
	}
	return r;
}

static int repair_refcounts(struct qcow2 *q, char *err, size_t errlen)
{
	uint64_t n = q->top, at = 0, fixed = 0, v;
	if (n > MAX_REPAIR_CLUSTERS) {
		snprintf(err, errlen, "%s: the image was not closed cleanly and is too large to repair here; "
			 "use qemu-img check -r all", q->path);
		return -1;
	}
	uint32_t *cnt = calloc(n, sizeof(*cnt));
	if (!cnt) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	int r = count_all_users(q, cnt, n, &at);
	if (r == -ERANGE || r == -EEXIST || r == -EIO) {
		snprintf(err, errlen, "%s: the image was not closed cleanly and its tables %s at offset %llu; "
			 "kvkit will not guess: check it with qemu-img check", q->path,
			 r == -ERANGE ? "point past the end of the file" :
			 r == -EEXIST ? "use a cluster twice" : "hold an invalid entry",
			 (unsigned long long)at);
		free(cnt);
		return -1;
	}
	/* counts past the end of the file first: nothing allocated yet */
	for (uint64_t ti = 0; r == 0 && ti < q->rt_len; ti++)
		for (uint64_t cl = ti * q->rb_entries; q->rt[ti] && cl < (ti + 1) * q->rb_entries && r == 0; cl++)
			if (cl >= n && (r = refcount_get(q, cl, &v)) == 0 && v) {
				r = refcount_set(q, cl, 0);
				fixed++;
			}
	/* then every cluster of the file; new refcount blocks go past n */
	for (uint64_t cl = 0; r == 0 && cl < n; cl++)
		if ((r = refcount_get(q, cl, &v)) == 0 && v != users(cnt[cl])) {
			r = refcount_set(q, cl, users(cnt[cl]));
			fixed++;
		}
	free(cnt);
	q->free_hint = 0;
	if (r == 0)
		r = flush_locked(q);
	if (r == 0)
		r = flush_locked(q); /* the frees of a grown refcount table */
	if (r == 0) {
		uint64_t inc = htobe64(q->incompat & ~INCOMPAT_DIRTY);
		if ((r = pwrite_full(q->fd, &inc, 8, 72)) == 0 && (r = sync_fd(q->fd)) == 0)
			q->incompat &= ~INCOMPAT_DIRTY;
	}
	if (r < 0) {
		snprintf(err, errlen, "%s: repairing the refcounts of an image not closed cleanly failed: %s", q->path,
			 r == -ERANGE ? "a cluster has more users than the refcount width holds" : strerror(-r));
		return -1;
	}
	log_info("%s: the image was not closed cleanly (lazy refcounts); %llu refcounts repaired", q->path,
		 (unsigned long long)fixed);
	return 0;
}

/* ---------------- opening ---------------- */

static uint32_t be32at(const uint8_t *h, size_t o)
{
	uint32_t v;
	memcpy(&v, h + o, 4);
	return be32toh(v);
}

static uint64_t be64at(const uint8_t *h, size_t o)
{
	uint64_t v;
	memcpy(&v, h + o, 8);
	return be64toh(v);
}

#define FAIL(...)                                        \
	do {                                             \
		snprintf(err, errlen, __VA_ARGS__);      \
		goto fail;                               \
	} while (0)

struct chain {
	dev_t dev[QCOW2_MAX_BACKING_DEPTH + 1];
	ino_t ino[QCOW2_MAX_BACKING_DEPTH + 1];
	int depth;
};

static int open_chain(int fd, const char *path, bool ro, struct chain *ch, struct qcow2 **out, char *err,
		      size_t errlen);

/* The backing file named in the header, opened read-only as its recorded
 * format says. */
static int open_backing(struct qcow2 *q, const char *name, const char *fmt, struct chain *ch, char *err,
			size_t errlen)
{
	char full[PATH_MAX];
	if (name[0] == '/') {
		snprintf(full, sizeof(full), "%s", name);
	} else {
		const char *slash = strrchr(q->path, '/');
		int dl = slash ? (int)(slash - q->path + 1) : 0;
		if (snprintf(full, sizeof(full), "%.*s%s", dl, q->path, name) >= (int)sizeof(full)) {
			snprintf(err, errlen, "%s: backing file name too long", q->path);
			return -1;
		}
	}
	if (!fmt) {
		/* probing would let a raw file that happens to hold a qcow2
		 * header (a guest can write one) name host files */
		snprintf(err, errlen, "%s: the backing file %s has no recorded format; set it with "
			 "qemu-img rebase -u -F raw|qcow2 -b %s %s", q->path, name, name, q->path);
		return -1;
	}
	if (ch->depth >= QCOW2_MAX_BACKING_DEPTH) {
		snprintf(err, errlen, "%s: the backing chain is deeper than %d files", q->path, QCOW2_MAX_BACKING_DEPTH);
		return -1;
	}
	int bfd = open(full, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (bfd < 0 || fstat(bfd, &st) < 0) {
		snprintf(err, errlen, "%s: cannot open the backing file %s: %s", q->path, full, strerror(errno));
		if (bfd >= 0)
			close(bfd);
		return -1;
	}
	for (int i = 0; i <= ch->depth; i++)
		if (ch->dev[i] == st.st_dev && ch->ino[i] == st.st_ino) {
			snprintf(err, errlen, "%s: the backing chain loops at %s", q->path, full);
			close(bfd);
			return -1;
		}
	if (!S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "%s: the backing file %s is not a regular file", q->path, full);
		close(bfd);
		return -1;
	}
	ch->depth++;
	ch->dev[ch->depth] = st.st_dev;
	ch->ino[ch->depth] = st.st_ino;
	q->has_backing = true;
	q->backing.fd = -1;
	if (!strcmp(fmt, "raw")) {
		q->backing.fd = bfd;
		q->backing.size = (uint64_t)st.st_size;
		return 0;
	}
	if (strcmp(fmt, "qcow2")) {
		snprintf(err, errlen, "%s: the backing file %s has format '%s' (kvkit reads raw and qcow2)", q->path,
			 full, fmt);
		close(bfd);
		q->has_backing = false;
		return -1;
	}
	if (open_chain(bfd, full, true, ch, &q->backing.q, err, errlen) < 0) {
		q->has_backing = false;
		return -1;
	}
	q->backing.size = q->backing.q->size;
	return 0;
}

static int open_chain(int fd, const char *path, bool ro, struct chain *ch, struct qcow2 **out, char *err,
		      size_t errlen)
{
	uint8_t h[4096];
	char bname[1024], bfmt[32];
	bool have_fmt = false;
	struct stat st;
	struct qcow2 *q = calloc(1, sizeof(*q));
	if (!q || !(q->path = strdup(path))) {
		free(q);
		snprintf(err, errlen, "out of memory");
		close(fd);
		return -1;
	}
	q->fd = fd;
	q->dfd = -1;
	q->ro = ro;
	pthread_mutex_init(&q->lock, NULL);
	if (fstat(fd, &st) < 0)
		FAIL("%s: %s", path, strerror(errno));
	memset(h, 0, sizeof(h));
	ssize_t got = pread(fd, h, sizeof(h), 0);
	if (got < 72 || memcmp(h, QCOW2_MAGIC, 4))
		FAIL("%s: not a qcow2 image", path);
	q->version = be32at(h, 4);
	if (q->version != 2 && q->version != 3)
		FAIL("%s: qcow2 version %u is not supported (2 and 3 are)", path, q->version);
	uint64_t boff = be64at(h, 8);
	uint32_t blen = be32at(h, 16);
	q->cluster_bits = be32at(h, 20);
	q->size = be64at(h, 24);
	uint32_t crypt = be32at(h, 32);
	q->l1_size = be32at(h, 36);
	q->l1_off = be64at(h, 40);
	q->rt_off = be64at(h, 48);
	uint32_t rt_clusters = be32at(h, 56);
	uint32_t nb_snapshots = be32at(h, 60);
	q->refbits = 16;
	q->header_len = 72;
	if (q->version >= 3) {
		if (got < 104)
			FAIL("%s: qcow2 header too short", path);
		q->incompat = be64at(h, 72);
		q->compat = be64at(h, 80);
		q->autoclear = be64at(h, 88);
		uint32_t order = be32at(h, 96);
		q->header_len = be32at(h, 100);
		if (order > 6)
			FAIL("%s: refcount width 2^%u bits is invalid", path, order);
		q->refbits = 1u << order;
		if (q->header_len < 104 || q->header_len > 4096 || q->header_len % 8)
			FAIL("%s: invalid qcow2 header length %u", path, q->header_len);
		if (q->header_len > 104)
			q->zstd = h[104];
	}
	if (q->cluster_bits < 9 || q->cluster_bits > 21)
		FAIL("%s: invalid cluster size 2^%u (512 B to 2 MiB)", path, q->cluster_bits);
	q->cluster_size = 1u << q->cluster_bits;
	if (crypt)
		FAIL("%s: encrypted qcow2 images are not supported", path);
	if (q->incompat & INCOMPAT_DATA_FILE)
		FAIL("%s: qcow2 images with an external data file are not supported", path);
	if (q->incompat & INCOMPAT_EXTL2)
		FAIL("%s: qcow2 images with subclusters (extended L2 entries) are not supported", path);
	if (q->incompat & ~INCOMPAT_KNOWN)
		FAIL("%s: the image uses qcow2 features kvkit does not know (incompatible bits 0x%llx)", path,
		     (unsigned long long)(q->incompat & ~INCOMPAT_KNOWN));
	if (!(q->incompat & INCOMPAT_COMPRESSION))
		q->zstd = 0;
	else if (q->zstd > 1)
		FAIL("%s: unknown compression type %d", path, q->zstd);
	if (!ro && (q->incompat & INCOMPAT_CORRUPT))
		FAIL("%s: the image is marked corrupt; check it with qemu-img check -r all, or open it readonly", path);
	if (!ro && nb_snapshots)
		FAIL("%s: the image has %u internal snapshots: kvkit writes only to images without (open it readonly, "
		     "or remove them with qemu-img snapshot -d)", path, nb_snapshots);
	if (q->size > MAX_SIZE || q->size % 512)
		FAIL("%s: invalid virtual size %llu", path, (unsigned long long)q->size);
	q->l2_entries = q->cluster_size / 8;
	q->rb_entries = (uint64_t)q->cluster_size * 8 / q->refbits;
	uint64_t need_l1 = (q->size + ((uint64_t)q->cluster_size * q->l2_entries) - 1) /
			   ((uint64_t)q->cluster_size * q->l2_entries);
	if ((uint64_t)q->l1_size * 8 > MAX_L1_BYTES || q->l1_size < need_l1)
		FAIL("%s: invalid L1 table size %u for a %llu-byte disk", path, q->l1_size, (unsigned long long)q->size);
	if ((q->l1_size && !offset_ok(q, q->l1_off)) || !offset_ok(q, q->rt_off))
		FAIL("%s: invalid table offset in the qcow2 header", path);
	if (!rt_clusters || (uint64_t)rt_clusters * q->cluster_size > MAX_RT_BYTES)
		FAIL("%s: invalid refcount table size (%u clusters)", path, rt_clusters);
	q->rt_len = (uint64_t)rt_clusters * q->cluster_size / 8;
	/* header extensions */
	for (uint64_t p = q->header_len; p + 8 <= sizeof(h) && p + 8 <= q->cluster_size;) {
		uint32_t type = be32at(h, p), len = be32at(h, p + 4);
		if (type == EXT_END)
			break;
		if (len > sizeof(h) - p - 8)
			FAIL("%s: a qcow2 header extension runs past the header", path);
		if (type == EXT_BACKING_FORMAT) {
			if (len == 0 || len >= sizeof(bfmt))
				FAIL("%s: invalid backing format", path);
			memcpy(bfmt, h + p + 8, len);
			bfmt[len] = 0;
			have_fmt = true;
		}
		p += 8 + ((len + 7ULL) & ~7ULL);
	}
	/* tables */
	if (q->l1_size) {
		size_t bytes = (size_t)q->l1_size * 8;
		if (!(q->l1 = malloc(bytes)) || pread_full(fd, q->l1, bytes, q->l1_off) < 0)
			FAIL("%s: cannot read the L1 table", path);
		for (uint32_t i = 0; i < q->l1_size; i++) {
			q->l1[i] = be64toh(q->l1[i]);
			uint64_t t = q->l1[i] & OFFSET_MASK;
			if (t && !offset_ok(q, t))
				FAIL("%s: L1 entry %u points at an invalid offset", path, i);
			if (t && !ro && !(q->l1[i] & OFLAG_COPIED))
				FAIL("%s: L1 entry %u is shared (snapshots?): kvkit writes only to unshared tables", path, i);
		}
	}
	if (!(q->rt = malloc(q->rt_len * 8)) || pread_full(fd, q->rt, q->rt_len * 8, q->rt_off) < 0)
		FAIL("%s: cannot read the refcount table", path);
	for (uint64_t i = 0; i < q->rt_len; i++) {
		q->rt[i] = be64toh(q->rt[i]);
		if ((q->rt[i] & ~511ULL) && !offset_ok(q, q->rt[i] & ~511ULL))
			FAIL("%s: refcount table entry %llu points at an invalid offset", path, (unsigned long long)i);
		q->rt[i] &= ~511ULL;
	}
	if (cache_init(&q->l2, q->cluster_size) < 0 || cache_init(&q->rb, q->cluster_size) < 0)
		FAIL("out of memory");
	q->top = ((uint64_t)st.st_size + q->cluster_size - 1) >> q->cluster_bits;
	if (q->top < 1)
		q->top = 1;
	/* backing file */
	if (boff) {
		if (blen == 0 || blen > 1023 || boff > q->cluster_size || boff + blen > sizeof(h))
			FAIL("%s: invalid backing file name in the header", path);
		memcpy(bname, h + boff, blen);
		bname[blen] = 0;
		if (strlen(bname) != blen)
			FAIL("%s: invalid backing file name in the header", path);
		if (open_backing(q, bname, have_fmt ? bfmt : NULL, ch, err, errlen) < 0)
			goto fail_quiet;
	}
	/* unknown autoclear bits (bitmaps) are dropped when writing, as the
	 * format asks of programs that do not keep them up to date */
	if (!ro && q->version >= 3 && q->autoclear) {
		uint64_t z = 0;
		if (pwrite_full(fd, &z, 8, 88) < 0 || sync_fd(fd) < 0)
			FAIL("%s: cannot update the qcow2 header: %s", path, strerror(errno));
		q->autoclear = 0;
	}
	/* after the bitmaps' bit is gone: their clusters are not counted */
	if (!ro && (q->incompat & INCOMPAT_DIRTY) && repair_refcounts(q, err, errlen) < 0)
		goto fail_quiet;
	*out = q;
	return 0;
fail:
fail_quiet:
	if (q->has_backing)
		layer_close(&q->backing);
	q->has_backing = false;
	q->ro = true; /* nothing to flush */
	qcow2_close(q);
	return -1;
}

int qcow2_open(int fd, const char *path, bool readonly, struct qcow2 **out, char *err, size_t errlen)
{
	struct chain ch = { .depth = 0 };
	struct stat st;
	if (fstat(fd, &st) == 0) {
		ch.dev[0] = st.st_dev;
		ch.ino[0] = st.st_ino;
	}
	return open_chain(fd, path, readonly, &ch, out, err, errlen);
}

void qcow2_set_direct_fd(struct qcow2 *q, int dfd)
{
	q->dfd = dfd;
}
