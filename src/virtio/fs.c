/* virtio-fs (1af4:105a, virtio 1.2 5.11): the mount tag in config space, a
 * high-priority queue (FORGET) and request queues whose FUSE requests are
 * served by a small worker pool off the I/O thread (src/fs/fuse_server.c),
 * woken by the guest's kicks directly. Workers complete requests out of
 * order, straight into the used ring.
 *
 * With a DAX window (dax=MiB), the share's cache is BAR 2: a KVM memory
 * slot over src/fs/dax_window.c, which FUSE_SETUPMAPPING fills with file
 * ranges the guest then reads and writes without requests. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <poll.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "../fs/dax_window.h"
#include "../fs/fuse_server.h"
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "virtio_pci.h"
#include "../sandbox/jail.h"
#include "../sandbox/sandbox.h"

#define REQUEST_QUEUES 2
#define WORKERS 4
#define TAG_LEN 36
#define SHMCAP_ID_CACHE 0 /* virtio-fs shared memory region: the DAX cache */

struct fs_dev {
	struct virtio_dev dev;
	struct fuse_server *srv;
	char tag[TAG_LEN + 1];
	unsigned gen;    /* bumped at reset: late completions are dropped (dev.lock) */
	unsigned next_q; /* the request queue looked at first: round robin (dev.lock) */
	pthread_mutex_t lock; /* what follows */
	pthread_cond_t promote, idle;
	bool has_leader, quit;
	unsigned busy; /* requests being served */
	int quit_efd;
	struct dax_window *dax; /* NULL without dax= */
	int dax_slot;
	struct ev_watch dax_tick;
	pthread_t workers[WORKERS];
	unsigned nworkers, ready; /* started, and done setting themselves up */
	struct jail jail; /* the workers' mount namespace: only the folder */
};

extern const struct device_type virtio_fs_device;

/* Device lock held. The high-priority queue carries FORGETs: cheap and
 * answerless, served on the spot. */
static void serve_hiprio(struct fs_dev *s)
{
	struct virtq *vq = &s->dev.q[0].vq;
	struct virtq_elem e;
	bool pushed = false;
	while (virtq_pop(vq, &e) > 0) {
		size_t len = fuse_server_handle(s->srv, e.iov, e.n_out, e.iov + e.n_out, e.n_in);
		virtq_push(vq, e.head, (uint32_t)len);
		pushed = true;
	}
	if (pushed)
		virtio_notify(&s->dev, 0);
}

/* One request from any request queue, if the driver is running. */
static bool pop_request(struct fs_dev *s, struct virtq_elem *e, unsigned *q, unsigned *gen)
{
	struct virtio_dev *d = &s->dev;
	bool got = false;
	pthread_mutex_lock(&d->lock);
	if (!virtio_dev_paused(d) && virtio_driver_ok(d)) {
		if (d->q[0].enabled)
			serve_hiprio(s);
		for (unsigned i = 0; i < REQUEST_QUEUES && !got; i++) {
			unsigned qi = 1 + (s->next_q + i) % REQUEST_QUEUES;
			if (d->q[qi].enabled && virtq_pop(&d->q[qi].vq, e) > 0) {
				got = true;
				*q = qi;
				*gen = s->gen;
				s->next_q = (s->next_q + i + 1) % REQUEST_QUEUES;
			}
		}
	}
	pthread_mutex_unlock(&d->lock);
	return got;
}

/* The leader waits on the queues' notify eventfds for the next request;
 * false when kvkit stops. The rings are looked at first: while requests
 * keep coming this costs no system call. A kick that lands after an empty
 * look leaves its eventfd readable, so the poll returns; only readable
 * eventfds are drained. */
static bool lead(struct fs_dev *s, struct virtq_elem *e, unsigned *q, unsigned *gen)
{
	struct pollfd pfd[1 + 1 + REQUEST_QUEUES];
	unsigned n = s->dev.num_queues;
	for (unsigned i = 0; i < n; i++)
		pfd[i] = (struct pollfd){ .fd = s->dev.q[i].notify_efd, .events = POLLIN };
	pfd[n] = (struct pollfd){ .fd = s->quit_efd, .events = POLLIN };
	for (;;) {
		if (pop_request(s, e, q, gen))
			return true;
		for (unsigned i = 0; i <= n; i++)
			pfd[i].revents = 0;
		if (poll(pfd, n + 1, -1) < 0 && errno != EINTR)
			log_debug("virtio-fs: poll: %m");
		if (pfd[n].revents)
			return false;
		uint64_t v;
		for (unsigned i = 0; i < n; i++)
			if ((pfd[i].revents & POLLIN) && read(pfd[i].fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
				log_debug("virtio-fs: notify eventfd: %m");
	}
}

static void serve(struct fs_dev *s, struct virtq_elem *e, unsigned q, unsigned gen)
{
	size_t len = fuse_server_handle(s->srv, e->iov, e->n_out, e->iov + e->n_out, e->n_in);
	pthread_mutex_lock(&s->dev.lock);
	if (gen == s->gen) {
		virtq_push(&s->dev.q[q].vq, e->head, (uint32_t)len);
		virtio_notify(&s->dev, q);
	}
	pthread_mutex_unlock(&s->dev.lock);
}

/* Leader/followers: one worker waits for the guest's kick, takes one
 * request, hands the waiting to the next worker and serves its request.
 * A request so goes from the kick to the worker that serves it with one
 * thread wake-up, not two (an I/O thread, then a pool thread). */
static void *worker(void *arg)
{
	struct fs_dev *s = arg;
	/* The guest already applied its umask to the modes it sends: this
	 * thread gets its own umask of 0 so kvkit's does not apply twice. */
	if (unshare(CLONE_FS) == 0)
		umask(0);
	else
		log_debug("virtio-fs: unshare(CLONE_FS): %m; kvkit's umask applies to guest-created files");
	int r = s->jail.ns >= 0 ? jail_enter(&s->jail) : 0;
	if (r == 0)
		sandbox_thread(SANDBOX_SHARE);
	else /* the others serve: this one would see the whole host */
		log_error("virtio-fs %s: a worker cannot enter the folder's jail: %s", s->tag, strerror(-r));
	pthread_mutex_lock(&s->lock);
	s->ready++; /* the creator waits: kvkit may drop root next */
	pthread_cond_broadcast(&s->idle);
	while (r == 0) {
		while (s->has_leader && !s->quit)
			pthread_cond_wait(&s->promote, &s->lock);
		if (s->quit)
			break;
		s->has_leader = true;
		pthread_mutex_unlock(&s->lock);

		struct virtq_elem e;
		unsigned q = 0, gen = 0;
		bool got = lead(s, &e, &q, &gen);

		pthread_mutex_lock(&s->lock);
		s->has_leader = false;
		pthread_cond_signal(&s->promote);
		if (!got)
			break;
		s->busy++;
		pthread_mutex_unlock(&s->lock);

		sandbox_thread(SANDBOX_SHARE);
		serve(s, &e, q, gen);

		pthread_mutex_lock(&s->lock);
		if (!--s->busy)
			pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->lock);
	return NULL;
}

/* Device lock held. Requests being served finish against guest memory
 * (still mapped) but their completions are not pushed. */
static void fs_reset(struct virtio_dev *d)
{
	struct fs_dev *s = d->priv;
	memset(d->config, 0, TAG_LEN);
	memcpy(d->config, s->tag, strlen(s->tag));
	uint32_t nq = REQUEST_QUEUES;
	memcpy(d->config + TAG_LEN, &nq, sizeof(nq));
	s->gen++;
	if (s->dax) /* a new driver starts with an empty window */
		dax_window_clear(s->dax);
}

/* The guest put (or moved) the cache BAR: the memory slot follows it. */
static void dax_placed(struct virtio_dev *d, uint64_t addr)
{
	struct fs_dev *s = d->priv;
	uint64_t size = addr ? dax_window_size(s->dax) : 0;
	int r = vm_memslot_set(d->vm, s->dax_slot, addr, dax_window_base(s->dax), size);
	if (r < 0)
		log_warn("virtio-fs %s: cannot place the DAX window at 0x%llx: %s", s->tag, (unsigned long long)addr,
			 strerror(-r));
	else
		log_debug("virtio-fs %s: DAX window of %llu MiB at 0x%llx", s->tag,
			  (unsigned long long)(dax_window_size(s->dax) >> 20), (unsigned long long)addr);
}

static bool dax_fault(void *opaque)
{
	return dax_window_repair(opaque);
}

/* A guest touching pages of a file that shrank on the host does not always
 * make KVM_RUN fail: KVM may instead retry the fault in the background
 * ("async page fault") again and again, the vCPU stuck inside KVM_RUN. So
 * the I/O thread also looks for shrunk files every second, which ends such
 * a loop; a look is one fstat per mapped 2 MiB chunk. */
static void dax_tick(void *opaque, uint32_t events)
{
	struct fs_dev *s = opaque;
	uint64_t n;
	(void)events;
	if (read(s->dax_tick.fd, &n, sizeof(n)) < 0 && errno != EAGAIN)
		log_debug("virtio-fs DAX: timerfd: %m");
	dax_window_repair(s->dax);
}

static int dax_watch(struct vm *vm, struct fs_dev *s)
{
	int fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	struct itimerspec every = { .it_interval = { 1, 0 }, .it_value = { 1, 0 } };
	timerfd_settime(fd, 0, &every, NULL);
	s->dax_tick = (struct ev_watch){ .fd = fd, .events = EPOLLIN, .fn = dax_tick, .opaque = s };
	return ev_add(&vm->ev, &s->dax_tick);
}

static const struct virtio_ops fs_ops = {
	.name = "virtio-fs",
	.device_id = VIRTIO_ID_FS,
	.class_code = 0x018000, /* mass storage, other */
	.num_queues = 1 + REQUEST_QUEUES,
	.queue_max = 1024,
	.config_size = TAG_LEN + 4,
	.own_notify = true, /* the workers wait on the kicks themselves */
	.reset = fs_reset,
};

/* Every file or folder the guest knows is an O_PATH descriptor held by
 * kvkit (until the guest forgets it), so a share needs far more than the
 * usual 1024 descriptors: an untar of 10,000 files stopped with EMFILE at
 * about 900. Raise the soft limit to the hard one and, when allowed (root),
 * both to the kernel's ceiling. */
static void raise_fd_limit(void)
{
	static bool done;
	struct rlimit rl;
	if (done || getrlimit(RLIMIT_NOFILE, &rl) < 0)
		return;
	done = true;
	unsigned long ceiling = 0;
	FILE *f = fopen("/proc/sys/fs/nr_open", "r");
	if (f) {
		if (fscanf(f, "%lu", &ceiling) != 1)
			ceiling = 0;
		fclose(f);
	}
	struct rlimit want = { ceiling, ceiling };
	if (ceiling <= rl.rlim_max || setrlimit(RLIMIT_NOFILE, &want) < 0) {
		want = (struct rlimit){ rl.rlim_max, rl.rlim_max };
		if (setrlimit(RLIMIT_NOFILE, &want) < 0)
			want = rl;
	}
	if (want.rlim_cur < 65536)
		log_warn("virtio-fs: kvkit may hold only %lu open files (ulimit -n); past that the guest gets "
			 "\"Too many open files\" on the share", (unsigned long)want.rlim_cur);
	else
		log_debug("virtio-fs: open file limit %lu", (unsigned long)want.rlim_cur);
}

/* The cache window: BAR 2 of the device (set up before virtio_dev_init),
 * served by the FUSE server. */
static int dax_setup(struct vm *vm, struct fs_dev *s, uint64_t size, char *why, size_t whylen)
{
	s->dax = dax_window_new(size, why, whylen);
	if (!s->dax)
		return -1;
	fuse_server_set_dax(s->srv, s->dax);
	s->dax_slot = vm_memslot_new(vm);
	s->dev.shm_size = size;
	s->dev.shm_id = SHMCAP_ID_CACHE;
	s->dev.shm_placed = dax_placed;
	return 0;
}

/* Once the device exists: what mends a window whose file shrank. Nothing
 * registered here points at a device that failed to be made. */
static int dax_start(struct vm *vm, struct fs_dev *s, char *why, size_t whylen)
{
	if (vm_add_fault_fixer(vm, dax_fault, s->dax) < 0) {
		snprintf(why, whylen, "too many DAX windows");
		return -1;
	}
	int r = dax_watch(vm, s);
	if (r < 0) {
		snprintf(why, whylen, "cannot start the DAX timer: %s", strerror(-r));
		return -1;
	}
	return 0;
}

/* The workers' jail (src/sandbox/jail.h): the server serves through
 * copies of the jail's descriptors of the folder; the jail keeps its own
 * for the workers to enter. */
static int jail_share(struct fs_dev *s, const char *dir, char *why, size_t whylen)
{
	if (jail_make(dir, &s->jail, why, whylen) < 0)
		return -1;
	int path_fd = fcntl(s->jail.root_path, F_DUPFD_CLOEXEC, 0);
	int dir_fd = fcntl(s->jail.root_dir, F_DUPFD_CLOEXEC, 0);
	int r = path_fd < 0 || dir_fd < 0 ? -errno : fuse_server_set_root(s->srv, path_fd, dir_fd);
	if (r == 0)
		return 0; /* the server took both */
	if (path_fd >= 0)
		close(path_fd);
	if (dir_fd >= 0)
		close(dir_fd);
	snprintf(why, whylen, "cannot serve the folder from inside its jail: %s", strerror(-r));
	return -1;
}

/* Shares: an existing folder each, tags unique (the guest mounts by tag). */
static int fs_check(const struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_fs *a = &c->devices[i].u.fs;
	struct stat st;
	if (stat(a->shared_dir, &st) < 0) {
		snprintf(err, errlen, "virtio-fs: shared directory %s: %s", a->shared_dir, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "virtio-fs: shared directory %s is not a directory", a->shared_dir);
		return -1;
	}
	for (size_t j = 0; j < i; j++)
		if (c->devices[j].kind == KV_DEV_VIRTIO_FS && !strcmp(c->devices[j].u.fs.mount_tag, a->mount_tag)) {
			snprintf(err, errlen, "virtio-fs: mount tag '%s' is used twice", a->mount_tag);
			return -1;
		}
	return 0;
}

static int fs_create(struct vm *vm, struct kv_config *c, size_t i, char *err, size_t errlen)
{
	const struct kv_fs *fs = &c->devices[i].u.fs;
	log_info("Adding virtio-fs device (sharedDir: %s, mountTag: %s)", fs->shared_dir, fs->mount_tag);
	const char *dir = fs->shared_dir, *tag = fs->mount_tag;
	enum fuse_cache cache = fs->cache == KV_FS_CACHE_ALWAYS ? FUSE_CACHE_ALWAYS
				: fs->cache == KV_FS_CACHE_NEVER ? FUSE_CACHE_NEVER : FUSE_CACHE_AUTO;
	char why[300];
	raise_fd_limit();
	struct fs_dev *s = calloc(1, sizeof(*s));
	if (!s) {
		snprintf(err, errlen, "virtio-fs: out of memory");
		return -1;
	}
	s->srv = fuse_server_new(dir, cache, why, sizeof(why));
	if (!s->srv) {
		snprintf(err, errlen, "virtio-fs %s: %s", tag, why);
		free(s);
		return -1;
	}
	snprintf(s->tag, sizeof(s->tag), "%s", tag);
	s->jail = (struct jail){ .ns = -1, .root_path = -1, .root_dir = -1 };
	if (sandbox_jails_shares() && jail_share(s, dir, why, sizeof(why)) < 0) {
		log_warn("virtio-fs %s: %s; its workers see the host's whole file system", tag, why);
		jail_free(&s->jail);
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->promote, NULL);
	pthread_cond_init(&s->idle, NULL);
	if (fs->dax_mib && dax_setup(vm, s, (uint64_t)fs->dax_mib << 20, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "virtio-fs %s: %s", tag, why);
		fuse_server_free(s->srv);
		jail_free(&s->jail);
		free(s);
		return -1;
	}
	s->quit_efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	int rc = s->quit_efd < 0 ? -errno : virtio_dev_init(&s->dev, vm, &fs_ops, s);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-fs: cannot create device: %s%s", strerror(-rc),
			 rc == -ENOSPC && s->dax ? " (no room left for the DAX window among the PCI BARs: use a smaller dax=)" : "");
		if (s->quit_efd >= 0)
			close(s->quit_efd);
		fuse_server_free(s->srv);
		jail_free(&s->jail);
		dax_window_free(s->dax);
		free(s);
		return -1;
	}
	if (s->dax && dax_start(vm, s, why, sizeof(why)) < 0) {
		snprintf(err, errlen, "virtio-fs %s: %s", tag, why);
		return -1; /* the device is on the bus: kvkit exits without freeing it */
	}
	fs_reset(&s->dev);
	for (; s->nworkers < WORKERS; s->nworkers++) {
		if (pthread_create(&s->workers[s->nworkers], NULL, worker, s) != 0)
			break;
		pthread_setname_np(s->workers[s->nworkers], "virtio-fs");
	}
	if (!s->nworkers) {
		snprintf(err, errlen, "virtio-fs: cannot start worker threads");
		return -1;
	}
	pthread_mutex_lock(&s->lock);
	while (s->ready < s->nworkers)
		pthread_cond_wait(&s->idle, &s->lock);
	pthread_mutex_unlock(&s->lock);
	return device_add(vm, &virtio_fs_device, &s->dev, err, errlen);
}

/* Let requests in flight end, stop the workers, close the share. */
static void fs_destroy(struct device *d)
{
	struct fs_dev *s = virtio_device_model(d);
	uint64_t one = 1;
	pthread_mutex_lock(&s->lock);
	while (s->busy) /* let requests being served end */
		pthread_cond_wait(&s->idle, &s->lock);
	s->quit = true;
	pthread_cond_broadcast(&s->promote);
	pthread_mutex_unlock(&s->lock);
	if (write(s->quit_efd, &one, sizeof(one)) < 0)
		log_debug("virtio-fs: quit eventfd: %m");
	for (unsigned i = 0; i < s->nworkers; i++)
		pthread_join(s->workers[i], NULL);
	if (log_enabled(LOG_DEBUG)) {
		char line[1024];
		fuse_server_describe(s->srv, line, sizeof(line));
		log_debug("virtio-fs %s: %u inodes held by the guest at exit; requests: %s", s->tag,
			  fuse_server_inodes(s->srv), line);
	}
	fuse_server_free(s->srv);
	jail_free(&s->jail);
	s->srv = NULL;
}

const struct device_type virtio_fs_device = {
	.kind = KV_DEV_VIRTIO_FS, .check = fs_check, .create = fs_create, .resume = virtio_device_resume,
	.destroy = fs_destroy,
};
