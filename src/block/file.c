/* File and block-device backend: raw images, ISOs, /dev/... disks, and
 * qcow2 images (format=qcow2, through qcow2.c).
 * Raw I/O goes through io_uring (one ring, on the I/O thread, completions
 * signalled by an eventfd); where the kernel refuses io_uring, and for
 * qcow2 (whose metadata lookups and allocation are synchronous calls), a
 * small pool of worker threads does the calls. */
#define _GNU_SOURCE
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/eventloop.h"
#include "backend.h"
#include "qcow2.h"
#include "../sandbox/sandbox.h"

#define POOL_THREADS 4

struct file_backend {
	struct blk_backend b;
	int fd;
	bool is_dev;
	bool use_uring;
	struct qcow2 *qcow2; /* format=qcow2: the image's mapping (owns fd) */
	struct eventloop *ev;
	int efd; /* completion eventfd (both engines) */
	struct ev_watch watch;
	/* io_uring engine */
	struct io_uring ring;
	unsigned unsubmitted;
	struct blk_io *backlog, **backlog_tail; /* ring full: wait for room */
	/* worker pool engine */
	pthread_t threads[POOL_THREADS];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct blk_io *todo, **todo_tail;
	struct blk_io *finished;
	bool stopping;
};

/* ---------------- helpers shared by both engines ---------------- */

/* Drop the first n bytes of an iovec array in place. */
static void iov_advance(struct blk_io *io, size_t n)
{
	while (n && io->niov) {
		if (n < io->iov[0].iov_len) {
			io->iov[0].iov_base = (char *)io->iov[0].iov_base + n;
			io->iov[0].iov_len -= n;
			return;
		}
		n -= io->iov[0].iov_len;
		io->iov++;
		io->niov--;
	}
}

static void iov_zero(struct blk_io *io)
{
	for (unsigned i = 0; i < io->niov; i++)
		memset(io->iov[i].iov_base, 0, io->iov[i].iov_len);
}

static int zero_mode(const struct blk_io *io)
{
	if (io->op == BLK_DISCARD || io->unmap)
		return FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
	return FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
}

/* After a (partial) result: true when io is finished (io->result set). */
static bool account(struct blk_io *io, long res)
{
	if (res < 0) {
		if (res == -EOPNOTSUPP && io->op == BLK_WRITE_ZEROES && !io->unmap) {
			/* no ZERO_RANGE (tmpfs, some filesystems): a punched hole reads
			 * back as zeroes too, it only also frees the blocks */
			io->unmap = true;
			return false;
		}
		if (res == -EOPNOTSUPP && io->op == BLK_DISCARD)
			res = 0; /* discard is a hint */
		io->result = (int)res;
		return true;
	}
	if (io->op != BLK_READ && io->op != BLK_WRITE) {
		io->result = 0;
		return true;
	}
	io->done += res;
	if (io->done >= io->len) {
		io->result = 0;
		return true;
	}
	if (res == 0) {
		if (io->op == BLK_WRITE) {
			io->result = -EIO;
			return true;
		}
		/* read past the end of a file that shrank: zeroes */
		iov_zero(io);
		io->result = 0;
		return true;
	}
	iov_advance(io, res);
	return false;
}

static void deliver(struct file_backend *f, struct blk_io *io)
{
	f->b.inflight--;
	f->b.complete(f->b.opaque, io);
}

/* ---------------- io_uring engine ---------------- */

static bool uring_prep(struct file_backend *f, struct blk_io *io)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&f->ring);
	if (!sqe)
		return false;
	uint64_t off = io->offset + io->done;
	switch (io->op) {
	case BLK_READ: io_uring_prep_readv(sqe, f->fd, io->iov, io->niov, off); break;
	case BLK_WRITE: io_uring_prep_writev(sqe, f->fd, io->iov, io->niov, off); break;
	case BLK_FLUSH: io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC); break;
	case BLK_DISCARD:
	case BLK_WRITE_ZEROES: io_uring_prep_fallocate(sqe, f->fd, zero_mode(io), io->offset, io->len); break;
	}
	io_uring_sqe_set_data(sqe, io);
	f->unsubmitted++;
	return true;
}

static void uring_push(struct file_backend *f)
{
	if (!f->unsubmitted)
		return;
	int r = io_uring_submit(&f->ring);
	if (r >= 0)
		f->unsubmitted -= r < (int)f->unsubmitted ? (unsigned)r : f->unsubmitted;
	else if (r != -EAGAIN && r != -EBUSY && r != -EINTR)
		log_error("io_uring submit: %s", strerror(-r));
}

static void uring_queue(struct file_backend *f, struct blk_io *io)
{
	if (f->backlog || !uring_prep(f, io)) {
		io->next = NULL;
		*f->backlog_tail = io;
		f->backlog_tail = &io->next;
	}
}

static unsigned uring_reap(struct file_backend *f)
{
	struct io_uring_cqe *cqe;
	unsigned head, n = 0;
	struct blk_io *done = NULL, **tail = &done;

	io_uring_for_each_cqe(&f->ring, head, cqe) {
		struct blk_io *io = io_uring_cqe_get_data(cqe);
		n++;
		if (account(io, cqe->res)) {
			io->next = NULL;
			*tail = io;
			tail = &io->next;
		} else {
			uring_queue(f, io); /* the rest of a short transfer */
		}
	}
	io_uring_cq_advance(&f->ring, n);
	/* completions freed ring room: move the backlog in */
	while (f->backlog) {
		struct blk_io *io = f->backlog;
		if (!uring_prep(f, io))
			break;
		f->backlog = io->next;
		if (!f->backlog)
			f->backlog_tail = &f->backlog;
	}
	uring_push(f);
	while (done) {
		struct blk_io *io = done;
		done = io->next;
		deliver(f, io);
	}
	return n;
}

/* ---------------- worker pool engine ---------------- */

/* A whole request on a qcow2 image: bytes done, or -errno. */
static long qcow2_do(struct file_backend *f, struct blk_io *io)
{
	uint64_t left = io->len - io->done, off = io->offset + io->done;
	int r;
	switch (io->op) {
	case BLK_READ: r = qcow2_readv(f->qcow2, off, io->iov, io->niov, left); break;
	case BLK_WRITE: r = qcow2_writev(f->qcow2, off, io->iov, io->niov, left); break;
	case BLK_FLUSH: r = f->b.flush_is_noop ? 0 : qcow2_flush(f->qcow2); break;
	case BLK_DISCARD: r = qcow2_discard(f->qcow2, io->offset, io->len); break;
	default: r = qcow2_write_zeroes(f->qcow2, io->offset, io->len, io->unmap); break;
	}
	return r < 0 ? r : (long)left;
}

static long pool_do(struct file_backend *f, struct blk_io *io)
{
	uint64_t off = io->offset + io->done;
	long r;
	if (f->qcow2)
		return qcow2_do(f, io);
	switch (io->op) {
	case BLK_READ: r = preadv(f->fd, io->iov, (int)io->niov, (off_t)off); break;
	case BLK_WRITE: r = pwritev(f->fd, io->iov, (int)io->niov, (off_t)off); break;
	case BLK_FLUSH: r = fdatasync(f->fd); break;
	default: r = fallocate(f->fd, zero_mode(io), (off_t)io->offset, (off_t)io->len); break;
	}
	return r < 0 ? -errno : r;
}

static void *pool_worker(void *opaque)
{
	struct file_backend *f = opaque;
	prctl(PR_SET_NAME, "blk-io", 0, 0, 0);
	sandbox_thread(SANDBOX_BLOCK);
	pthread_mutex_lock(&f->lock);
	for (;;) {
		while (!f->todo && !f->stopping)
			pthread_cond_wait(&f->cond, &f->lock);
		if (!f->todo)
			break;
		struct blk_io *io = f->todo;
		f->todo = io->next;
		if (!f->todo)
			f->todo_tail = &f->todo;
		pthread_mutex_unlock(&f->lock);
		long r;
		sandbox_thread(SANDBOX_BLOCK);
		do {
			r = pool_do(f, io);
		} while (r == -EINTR || !account(io, r));
		pthread_mutex_lock(&f->lock);
		io->next = f->finished;
		f->finished = io;
		uint64_t one = 1;
		if (write(f->efd, &one, sizeof(one)) < 0)
			log_error("block worker: cannot signal completion: %m");
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static unsigned pool_reap(struct file_backend *f)
{
	pthread_mutex_lock(&f->lock);
	struct blk_io *list = f->finished;
	f->finished = NULL;
	pthread_mutex_unlock(&f->lock);
	/* the list is newest first: reverse it to complete in order */
	struct blk_io *rev = NULL;
	unsigned n = 0;
	while (list) {
		struct blk_io *io = list;
		list = io->next;
		io->next = rev;
		rev = io;
	}
	while (rev) {
		struct blk_io *io = rev;
		rev = io->next;
		deliver(f, io);
		n++;
	}
	return n;
}

/* ---------------- backend ops ---------------- */

static void file_submit(struct blk_backend *b, struct blk_io *io)
{
	struct file_backend *f = (struct file_backend *)b;
	io->done = 0;
	io->result = 0;
	b->inflight++;
	if (f->use_uring) {
		uring_queue(f, io);
		return;
	}
	pthread_mutex_lock(&f->lock);
	io->next = NULL;
	*f->todo_tail = io;
	f->todo_tail = &io->next;
	pthread_cond_signal(&f->cond);
	pthread_mutex_unlock(&f->lock);
}

static void file_kick(struct blk_backend *b)
{
	struct file_backend *f = (struct file_backend *)b;
	if (f->use_uring)
		uring_push(f);
}

static void on_completion(void *opaque, uint32_t events)
{
	struct file_backend *f = opaque;
	uint64_t v;
	(void)events;
	if (read(f->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
		log_error("block completion eventfd: %m");
	unsigned n = f->use_uring ? uring_reap(f) : pool_reap(f);
	if (n && f->b.batch_done)
		f->b.batch_done(f->b.opaque);
}

static void file_drain(struct blk_backend *b)
{
	struct file_backend *f = (struct file_backend *)b;
	while (b->inflight) {
		if (f->use_uring) {
			uring_push(f);
			struct io_uring_cqe *cqe;
			int r = io_uring_wait_cqe(&f->ring, &cqe);
			if (r < 0 && r != -EINTR) {
				log_error("io_uring wait: %s", strerror(-r));
				return;
			}
			uring_reap(f);
		} else {
			struct pollfd p = { .fd = f->efd, .events = POLLIN };
			poll(&p, 1, 100);
			uint64_t v;
			if (read(f->efd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				return;
			pool_reap(f);
		}
	}
	if (b->batch_done)
		b->batch_done(b->opaque);
}

static void file_close(struct blk_backend *b)
{
	struct file_backend *f = (struct file_backend *)b;
	file_drain(b);
	if (f->use_uring) {
		io_uring_queue_exit(&f->ring);
	} else {
		pthread_mutex_lock(&f->lock);
		f->stopping = true;
		pthread_cond_broadcast(&f->cond);
		pthread_mutex_unlock(&f->lock);
		for (int i = 0; i < POOL_THREADS; i++)
			pthread_join(f->threads[i], NULL);
	}
	ev_del(f->ev, &f->watch);
	close(f->efd);
	if (f->qcow2) {
		/* the last metadata reaches the disk here */
		if (qcow2_close(f->qcow2) < 0)
			log_error("closing a qcow2 image failed: its last writes may be lost");
	} else {
		close(f->fd);
	}
	free(f);
}

static const struct blk_backend_ops file_ops = {
	.name = "file",
	.submit = file_submit,
	.kick = file_kick,
	.drain = file_drain,
	.close = file_close,
};

/* ---------------- opening and checking ---------------- */

/* O_DIRECT wants aligned offsets and lengths: find the smallest that works. */
static uint32_t direct_alignment(int fd, uint64_t size)
{
	static const uint32_t sizes[] = { 512, 4096 };
	void *buf;
	if (posix_memalign(&buf, 4096, 4096))
		return 4096;
	uint32_t a = 4096;
	for (unsigned i = 0; i < 2; i++) {
		if (size < sizes[i] || pread(fd, buf, sizes[i], 0) == (ssize_t)sizes[i]) {
			a = sizes[i];
			break;
		}
	}
	free(buf);
	return a;
}

/* Debian 12's liburing declares io_uring_register_restrictions and
 * io_uring_enable_rings but does not export them: the system call does it */
static int ring_register(struct io_uring *ring, unsigned op, void *arg, unsigned n)
{
	return syscall(__NR_io_uring_register, ring->ring_fd, op, arg, n) < 0 ? -errno : 0;
}

static int start_engine(struct file_backend *f, unsigned depth, char *err, size_t errlen)
{
	f->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (f->efd < 0) {
		snprintf(err, errlen, "cannot create an eventfd: %s", strerror(errno));
		return -1;
	}
	f->backlog_tail = &f->backlog;
	f->todo_tail = &f->todo;
	const char *no = getenv(BLK_ENV_NO_IO_URING);
	int r = -ENOSYS;
	if ((!no || !*no || !strcmp(no, "0")) && !f->qcow2) {
		/* the ring starts disabled: first limit it to the four operations
		 * this engine submits. io_uring requests bypass the sandbox's
		 * system-call filter, so a ring that could open files or sockets
		 * would be a way around it. */
		struct io_uring_restriction res[] = {
			{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_READV },
			{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_WRITEV },
			{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FSYNC },
			{ .opcode = IORING_RESTRICTION_SQE_OP, .sqe_op = IORING_OP_FALLOCATE },
		};
		r = io_uring_queue_init(depth, &f->ring, IORING_SETUP_R_DISABLED);
		if (r == 0 && ((r = io_uring_register_eventfd(&f->ring, f->efd)) < 0 ||
			       (r = ring_register(&f->ring, IORING_REGISTER_RESTRICTIONS, res, sizeof(res) / sizeof(res[0]))) < 0 ||
			       (r = ring_register(&f->ring, IORING_REGISTER_ENABLE_RINGS, NULL, 0)) < 0))
			io_uring_queue_exit(&f->ring);
	}
	f->use_uring = r == 0;
	if (!f->use_uring) {
		log_debug("io_uring unavailable (%s): block I/O through %d worker threads", strerror(-r), POOL_THREADS);
		pthread_mutex_init(&f->lock, NULL);
		pthread_cond_init(&f->cond, NULL);
		for (int i = 0; i < POOL_THREADS; i++) {
			if ((r = pthread_create(&f->threads[i], NULL, pool_worker, f)) != 0) {
				snprintf(err, errlen, "cannot start block I/O threads: %s", strerror(r));
				/* the started ones exit at once */
				pthread_mutex_lock(&f->lock);
				f->stopping = true;
				pthread_cond_broadcast(&f->cond);
				pthread_mutex_unlock(&f->lock);
				while (i--)
					pthread_join(f->threads[i], NULL);
				close(f->efd);
				return -1;
			}
		}
	}
	f->watch = (struct ev_watch){ .fd = f->efd, .events = EPOLLIN, .fn = on_completion, .opaque = f };
	if (ev_add(f->ev, &f->watch) < 0) {
		snprintf(err, errlen, "cannot watch block completions");
		return -1;
	}
	return 0;
}

int blk_file_check(const struct kv_disk *k, struct stat *out, char *err, size_t errlen)
{
	const char *p = k->path;
	struct stat st;

	/* The spec's checks, in vfkit's order: open, read the header, qcow2. */
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		snprintf(err, errlen, "failed to open file %s: %s", p, strerror(errno));
		return -1;
	}
	if (fstat(fd, &st) < 0) {
		snprintf(err, errlen, "failed to open file %s: %s", p, strerror(errno));
		close(fd);
		return -1;
	}
	char hdr[4];
	ssize_t n = pread(fd, hdr, sizeof(hdr), 0);
	close(fd);
	if (n < 0 || (n < 4 && !S_ISBLK(st.st_mode))) {
		snprintf(err, errlen, "failed to read the header of file %s: %s", p, n < 0 ? strerror(errno) : "EOF");
		return -1;
	}
	/* the format is the user's word, never a guess from a header the
	 * guest may have written */
	bool is_qcow2 = n == 4 && !memcmp(hdr, QCOW2_MAGIC, 4);
	if (is_qcow2 && !k->qcow2) {
		snprintf(err, errlen, "kvkit does not support qcow2 image format");
		return -1;
	}
	if (k->qcow2 && !is_qcow2) {
		snprintf(err, errlen, "file %s is not a qcow2 image (format=qcow2)", p);
		return -1;
	}
	bool is_dev = S_ISBLK(st.st_mode);
	if (k->type == KV_DISK_DEV && !is_dev) {
		snprintf(err, errlen, "file %s is not a block device", p);
		return -1;
	}
	if (!is_dev && !S_ISREG(st.st_mode)) {
		snprintf(err, errlen, "file %s is not a regular file or a block device", p);
		return -1;
	}
	if (out)
		*out = st;
	return 0;
}

/* The image opened as the disk says (O_DIRECT if direct), or -1 and the line. */
static int open_image(const struct kv_disk *k, bool direct, char *err, size_t errlen)
{
	int fd = open(k->path, (k->readonly ? O_RDONLY : O_RDWR) | O_CLOEXEC | (direct ? O_DIRECT : 0));
	if (fd < 0 && direct && errno == EINVAL)
		snprintf(err, errlen, "failed to open file %s with cache=uncached: the filesystem does not support O_DIRECT",
			 k->path);
	else if (fd < 0)
		snprintf(err, errlen, "failed to open file %s: %s", k->path, strerror(errno));
	return fd;
}

int blk_file_open(const struct kv_disk *k, struct eventloop *ev, struct blk_backend **out, char *err, size_t errlen)
{
	const char *p = k->path;
	struct stat st;
	bool direct = k->cache == KV_CACHE_UNCACHED && !k->qcow2;
	int fd;

	if (blk_file_check(k, &st, err, errlen) < 0)
		return -1;
	bool is_dev = S_ISBLK(st.st_mode);

	if ((fd = open_image(k, direct, err, errlen)) < 0)
		return -1;
	/* Two writers on one image corrupt it: take an OFD lock like QEMU does
	 * (shared for read-only disks, exclusive otherwise). */
	struct flock fl = { .l_type = k->readonly ? F_RDLCK : F_WRLCK, .l_whence = SEEK_SET };
	if (fcntl(fd, F_OFD_SETLK, &fl) < 0 && (errno == EAGAIN || errno == EACCES)) {
		snprintf(err, errlen, "file %s is in use by another process (locked)", p);
		close(fd);
		return -1;
	}

	struct file_backend *f = calloc(1, sizeof(*f));
	if (!f) {
		close(fd);
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	f->b.ops = &file_ops;
	f->fd = fd;
	f->is_dev = is_dev;
	f->ev = ev;
	f->b.readonly = k->readonly;
	f->b.flush_is_noop = k->sync == KV_SYNC_NONE;
	f->b.logical_block = 512;
	f->b.physical_block = 4096;
	if (k->qcow2) {
		if (qcow2_open(fd, p, k->readonly, &f->qcow2, err, errlen) < 0) {
			free(f);
			return -1; /* fd closed by qcow2_open */
		}
		f->b.size = qcow2_size(f->qcow2);
		if (k->cache == KV_CACHE_UNCACHED) {
			/* cluster data bypasses the page cache; tables do not */
			int dfd = open_image(k, true, err, errlen);
			if (dfd < 0)
				goto fail;
			qcow2_set_direct_fd(f->qcow2, dfd);
		}
	} else if (is_dev) {
		uint64_t sz = 0;
		int lbs = 512;
		unsigned int pbs = 4096;
		if (ioctl(fd, BLKGETSIZE64, &sz) < 0) {
			snprintf(err, errlen, "cannot get the size of block device %s: %s", p, strerror(errno));
			goto fail;
		}
		if (ioctl(fd, BLKSSZGET, &lbs) == 0 && lbs >= 512 && lbs <= 4096)
			f->b.logical_block = (uint32_t)lbs;
		if (ioctl(fd, BLKPBSZGET, &pbs) == 0 && pbs >= f->b.logical_block && pbs <= 65536)
			f->b.physical_block = pbs;
		f->b.size = sz;
	} else {
		f->b.size = (uint64_t)st.st_size;
		if (direct)
			f->b.logical_block = direct_alignment(fd, f->b.size);
	}
	f->b.can_discard = !k->readonly;
	if (f->b.size % 512)
		log_warn("%s: size %llu is not a multiple of 512; the last %llu bytes are not visible to the guest", p,
			 (unsigned long long)f->b.size, (unsigned long long)(f->b.size % 512));
	if (start_engine(f, 1024, err, errlen) < 0)
		goto fail;
	*out = &f->b;
	return 0;
fail:
	if (f->qcow2)
		qcow2_close(f->qcow2);
	else
		close(fd);
	free(f);
	return -1;
}

int blk_disk_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	return blk_file_check(&c->devices[i].u.disk, NULL, err, errlen);
}

int blk_disk_open(const struct kv_config *c, size_t i, const char *model, struct eventloop *ev,
		  struct blk_backend **out, char *err, size_t errlen)
{
	const struct kv_disk *k = &c->devices[i].u.disk;
	log_info("Adding %s device (imagePath: %s, type: %s)", model, k->path, k->type == KV_DISK_DEV ? "dev" : "image");
	return blk_file_open(k, ev, out, err, errlen);
}
