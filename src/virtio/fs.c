/* virtio-fs (1af4:105a, virtio 1.2 5.11): the mount tag in config space, a
 * high-priority queue (FORGET) and request queues whose FUSE requests are
 * served by a small worker pool off the I/O thread (src/fs/fuse_server.c).
 * Workers complete requests out of order, straight into the used ring. */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <sys/stat.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "../fs/fuse_server.h"
#include "../util/log.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "virtio_pci.h"

#define VIRTIO_ID_FS 26
#define REQUEST_QUEUES 2
#define WORKERS 4
#define TAG_LEN 36

struct job {
	unsigned q;
	unsigned gen; /* device generation it was popped in */
	struct virtq_elem e;
	struct job *next;
};

struct fs_dev {
	struct virtio_dev dev;
	struct fuse_server *srv;
	char tag[TAG_LEN + 1];
	pthread_mutex_t jlock;
	pthread_cond_t jcond, idle;
	struct job *head, *tail, *free_jobs;
	unsigned busy;  /* jobs taken by workers */
	unsigned gen;   /* bumped at reset: late completions are dropped */
	bool quit;
	pthread_t workers[WORKERS];
	unsigned nworkers;
	struct fs_dev *next;
};

static struct fs_dev *all_fs;

static struct job *job_alloc(struct fs_dev *s)
{
	pthread_mutex_lock(&s->jlock);
	struct job *j = s->free_jobs;
	if (j)
		s->free_jobs = j->next;
	pthread_mutex_unlock(&s->jlock);
	return j ? j : malloc(sizeof(*j));
}

static void *worker(void *arg)
{
	struct fs_dev *s = arg;
	/* The guest already applied its umask to the modes it sends: this
	 * thread gets its own umask of 0 so kvkit's does not apply twice. */
	if (unshare(CLONE_FS) == 0)
		umask(0);
	else
		log_debug("virtio-fs: unshare(CLONE_FS): %m; kvkit's umask applies to guest-created files");
	pthread_mutex_lock(&s->jlock);
	for (;;) {
		while (!s->head && !s->quit)
			pthread_cond_wait(&s->jcond, &s->jlock);
		if (s->quit)
			break;
		struct job *j = s->head;
		s->head = j->next;
		if (!s->head)
			s->tail = NULL;
		s->busy++;
		pthread_mutex_unlock(&s->jlock);

		size_t len = fuse_server_handle(s->srv, j->e.iov, j->e.n_out, j->e.iov + j->e.n_out, j->e.n_in);
		pthread_mutex_lock(&s->dev.lock);
		if (j->gen == s->gen) {
			struct virtq *vq = &s->dev.q[j->q].vq;
			virtq_push(vq, j->e.head, (uint32_t)len);
			virtio_notify(&s->dev, j->q);
		}
		pthread_mutex_unlock(&s->dev.lock);

		pthread_mutex_lock(&s->jlock);
		s->busy--;
		j->next = s->free_jobs;
		s->free_jobs = j;
		if (!s->busy && !s->head)
			pthread_cond_broadcast(&s->idle);
	}
	pthread_mutex_unlock(&s->jlock);
	return NULL;
}

static void fs_queue_notify(struct virtio_dev *d, unsigned q)
{
	struct fs_dev *s = d->priv;
	struct virtq *vq = &d->q[q].vq;
	if (virtio_dev_paused(d))
		return;
	if (q == 0) {
		/* high priority: FORGET and BATCH_FORGET, cheap and answerless */
		struct virtq_elem e;
		bool pushed = false;
		while (virtq_pop(vq, &e) > 0) {
			size_t len = fuse_server_handle(s->srv, e.iov, e.n_out, e.iov + e.n_out, e.n_in);
			virtq_push(vq, e.head, (uint32_t)len);
			pushed = true;
		}
		if (pushed)
			virtio_notify(d, q);
		return;
	}
	for (;;) {
		struct job *j = job_alloc(s);
		if (!j) {
			log_warn("virtio-fs: out of memory; requests wait");
			return;
		}
		if (virtq_pop(vq, &j->e) <= 0) {
			pthread_mutex_lock(&s->jlock);
			j->next = s->free_jobs;
			s->free_jobs = j;
			pthread_mutex_unlock(&s->jlock);
			return;
		}
		j->q = q;
		j->gen = s->gen;
		j->next = NULL;
		pthread_mutex_lock(&s->jlock);
		if (s->tail)
			s->tail->next = j;
		else
			s->head = j;
		s->tail = j;
		pthread_cond_signal(&s->jcond);
		pthread_mutex_unlock(&s->jlock);
	}
}

/* Device lock held. Queued jobs are dropped; jobs running finish against
 * guest memory (still mapped) but their completions are not pushed. */
static void fs_reset(struct virtio_dev *d)
{
	struct fs_dev *s = d->priv;
	memset(d->config, 0, TAG_LEN);
	memcpy(d->config, s->tag, strlen(s->tag));
	uint32_t nq = REQUEST_QUEUES;
	memcpy(d->config + TAG_LEN, &nq, sizeof(nq));
	pthread_mutex_lock(&s->jlock);
	s->gen++;
	while (s->head) {
		struct job *j = s->head;
		s->head = j->next;
		j->next = s->free_jobs;
		s->free_jobs = j;
	}
	s->tail = NULL;
	pthread_mutex_unlock(&s->jlock);
}

static const struct virtio_ops fs_ops = {
	.name = "virtio-fs",
	.device_id = VIRTIO_ID_FS,
	.class_code = 0x018000, /* mass storage, other */
	.num_queues = 1 + REQUEST_QUEUES,
	.queue_max = 1024,
	.config_size = TAG_LEN + 4,
	.queue_notify = fs_queue_notify,
	.reset = fs_reset,
};

int virtio_fs_create(struct vm *vm, const struct kv_fs *fs, char *err, size_t errlen)
{
	const char *dir = fs->shared_dir, *tag = fs->mount_tag;
	enum fuse_cache cache = fs->cache == KV_FS_CACHE_ALWAYS ? FUSE_CACHE_ALWAYS
				: fs->cache == KV_FS_CACHE_NEVER ? FUSE_CACHE_NEVER : FUSE_CACHE_AUTO;
	char why[300];
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
	pthread_mutex_init(&s->jlock, NULL);
	pthread_cond_init(&s->jcond, NULL);
	pthread_cond_init(&s->idle, NULL);
	int rc = virtio_dev_init(&s->dev, vm, &fs_ops, s);
	if (rc < 0) {
		snprintf(err, errlen, "virtio-fs: cannot create device: %s", strerror(-rc));
		fuse_server_free(s->srv);
		free(s);
		return -1;
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
	s->next = all_fs;
	all_fs = s;
	return 0;
}

void virtio_fs_close_all(void)
{
	for (struct fs_dev *s = all_fs; s; s = s->next) {
		pthread_mutex_lock(&s->jlock);
		while (s->busy || s->head) /* let requests in flight end */
			pthread_cond_wait(&s->idle, &s->jlock);
		s->quit = true;
		pthread_cond_broadcast(&s->jcond);
		pthread_mutex_unlock(&s->jlock);
		for (unsigned i = 0; i < s->nworkers; i++)
			pthread_join(s->workers[i], NULL);
		if (log_enabled(LOG_DEBUG)) {
			char line[600];
			fuse_server_describe(s->srv, line, sizeof(line));
			log_debug("virtio-fs %s: %u inodes held by the guest at exit; requests: %s", s->tag,
				  fuse_server_inodes(s->srv), line);
		}
		fuse_server_free(s->srv);
		s->srv = NULL;
		while (s->free_jobs) {
			struct job *j = s->free_jobs;
			s->free_jobs = j->next;
			free(j);
		}
	}
}
