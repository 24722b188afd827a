/* The virtio-fs DAX window; see dax_window.h. */
#define _GNU_SOURCE
#include "dax_window.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include "../util/log.h"

#define PAGE 4096ull

struct chunk {
	int fd;           /* the file mapped here (a duplicate), -1 if none */
	uint64_t foffset; /* where in the file the chunk starts */
	uint64_t valid;   /* bytes of the chunk the file covered when last looked at, in whole pages */
};

struct dax_window {
	pthread_mutex_t lock;
	uint8_t *base;
	uint64_t size;
	unsigned nchunks, mapped;
	struct chunk *chunk;
};

/* Fresh private zero memory over [at, at + len): drops whatever was mapped. */
static int zero_map(uint8_t *at, uint64_t len)
{
	void *p = mmap(at, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
	return p == MAP_FAILED ? -errno : 0;
}

struct dax_window *dax_window_new(uint64_t size, char *err, size_t errlen)
{
	if (!size || size % DAX_CHUNK) {
		snprintf(err, errlen, "DAX window of %llu bytes is not a whole number of 2 MiB chunks",
			 (unsigned long long)size);
		return NULL;
	}
	struct dax_window *w = calloc(1, sizeof(*w));
	if (w)
		w->chunk = calloc(size / DAX_CHUNK, sizeof(*w->chunk));
	if (!w || !w->chunk) {
		free(w);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	/* NORESERVE: the window costs host memory only where the guest writes
	 * to a chunk with no file behind it. One chunk more is reserved and
	 * trimmed so that the window starts on a 2 MiB boundary: a file whose
	 * page cache has 2 MiB pages (tmpfs huge=, large folios) is then mapped
	 * with one page-table entry per chunk, and KVM can map the chunk to the
	 * guest as one huge page instead of 512 faults of 4 KiB. */
	uint8_t *raw = mmap(NULL, size + DAX_CHUNK, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (raw == MAP_FAILED) {
		snprintf(err, errlen, "cannot reserve a DAX window of %llu MiB: %s", (unsigned long long)(size >> 20),
			 strerror(errno));
		free(w->chunk);
		free(w);
		return NULL;
	}
	uint64_t head = (DAX_CHUNK - (uintptr_t)raw % DAX_CHUNK) % DAX_CHUNK;
	if (head)
		munmap(raw, head);
	munmap(raw + head + size, DAX_CHUNK - head);
	w->base = raw + head;
	w->size = size;
	w->nchunks = (unsigned)(size / DAX_CHUNK);
	for (unsigned i = 0; i < w->nchunks; i++)
		w->chunk[i].fd = -1;
	pthread_mutex_init(&w->lock, NULL);
	return w;
}

void dax_window_free(struct dax_window *w)
{
	if (!w)
		return;
	for (unsigned i = 0; i < w->nchunks; i++)
		if (w->chunk[i].fd >= 0)
			close(w->chunk[i].fd);
	munmap(w->base, w->size);
	pthread_mutex_destroy(&w->lock);
	free(w->chunk);
	free(w);
}

void *dax_window_base(const struct dax_window *w)
{
	return w->base;
}

uint64_t dax_window_size(const struct dax_window *w)
{
	return w->size;
}

/* How much of a chunk starting at foffset the file covers, in whole pages
 * (the guest may touch the last page's tail: the kernel gives zeros). */
static uint64_t covered(int fd, uint64_t foffset)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || (uint64_t)st.st_size <= foffset)
		return 0;
	uint64_t n = (uint64_t)st.st_size - foffset;
	return n >= DAX_CHUNK ? DAX_CHUNK : (n + PAGE - 1) & ~(PAGE - 1);
}

static bool range_ok(const struct dax_window *w, uint64_t moffset, uint64_t len)
{
	return len && !(moffset % DAX_CHUNK) && !(len % DAX_CHUNK) && moffset <= w->size && len <= w->size - moffset;
}

/* Lock held. */
static void chunk_drop(struct dax_window *w, unsigned i)
{
	struct chunk *c = &w->chunk[i];
	if (c->fd < 0)
		return;
	close(c->fd);
	c->fd = -1;
	w->mapped--;
}

int dax_window_map(struct dax_window *w, int fd, uint64_t foffset, uint64_t moffset, uint64_t len, bool writable)
{
	if (!range_ok(w, moffset, len) || foffset % DAX_CHUNK || foffset > (uint64_t)INT64_MAX - len)
		return -EINVAL;
	unsigned first = (unsigned)(moffset / DAX_CHUNK), n = (unsigned)(len / DAX_CHUNK);
	int *fds = calloc(n, sizeof(*fds));
	int r = fds ? 0 : -ENOMEM;
	unsigned got = 0;
	for (; !r && got < n; got++) {
		fds[got] = fcntl(fd, F_DUPFD_CLOEXEC, 0);
		if (fds[got] < 0) {
			r = -errno;
			break;
		}
	}
	pthread_mutex_lock(&w->lock);
	if (!r) {
		int prot = PROT_READ | (writable ? PROT_WRITE : 0);
		void *p = mmap(w->base + moffset, len, prot, MAP_SHARED | MAP_FIXED, fd, (off_t)foffset);
		if (p == MAP_FAILED) {
			r = -errno;
			/* MAP_FIXED may have dropped the old mapping before failing */
			for (unsigned i = 0; i < n; i++)
				chunk_drop(w, first + i);
			if (zero_map(w->base + moffset, len) < 0)
				log_warn("virtio-fs DAX: cannot clear a failed mapping: %m");
		} else {
			/* a hint (errors ignored): tmpfs huge=advise then uses 2 MiB
			 * pages, XFS reads the file in 2 MiB folios */
			madvise(p, len, MADV_HUGEPAGE);
		}
	}
	if (!r) {
		for (unsigned i = 0; i < n; i++) {
			struct chunk *c = &w->chunk[first + i];
			chunk_drop(w, first + i);
			*c = (struct chunk){ .fd = fds[i], .foffset = foffset + i * DAX_CHUNK };
			c->valid = covered(c->fd, c->foffset);
			w->mapped++;
		}
		got = 0; /* the chunks own them now */
	}
	pthread_mutex_unlock(&w->lock);
	for (unsigned i = 0; i < got; i++)
		close(fds[i]);
	free(fds);
	return r;
}

int dax_window_unmap(struct dax_window *w, uint64_t moffset, uint64_t len)
{
	if (!range_ok(w, moffset, len))
		return -EINVAL;
	pthread_mutex_lock(&w->lock);
	int r = zero_map(w->base + moffset, len);
	for (uint64_t i = moffset / DAX_CHUNK; i < (moffset + len) / DAX_CHUNK; i++)
		chunk_drop(w, (unsigned)i);
	pthread_mutex_unlock(&w->lock);
	return r;
}

void dax_window_clear(struct dax_window *w)
{
	if (dax_window_unmap(w, 0, w->size) < 0)
		log_warn("virtio-fs DAX: cannot clear the window: %m");
}

bool dax_window_repair(struct dax_window *w)
{
	bool changed = false;
	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < w->nchunks; i++) {
		struct chunk *c = &w->chunk[i];
		if (c->fd < 0)
			continue;
		/* Only pages the file covered and no longer does: past the end
		 * it had at mapping time the guest has no business (its driver
		 * knows the size). Pages zeroed here stay zero, even if the file
		 * grows back, until the guest maps the chunk again. */
		uint64_t now = covered(c->fd, c->foffset);
		if (now >= c->valid) {
			c->valid = now;
			continue;
		}
		if (zero_map(w->base + (uint64_t)i * DAX_CHUNK + now, c->valid - now) < 0)
			continue;
		log_warn("virtio-fs DAX: a file mapped by the guest shrank on the host; the guest reads zeros where it "
			 "ended (window offset 0x%llx, %llu KiB)", (unsigned long long)i * DAX_CHUNK + now,
			 (unsigned long long)(c->valid - now) >> 10);
		c->valid = now;
		changed = true;
	}
	pthread_mutex_unlock(&w->lock);
	return changed;
}

unsigned dax_window_mapped(struct dax_window *w)
{
	pthread_mutex_lock(&w->lock);
	unsigned n = w->mapped;
	pthread_mutex_unlock(&w->lock);
	return n;
}
