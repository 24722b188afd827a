/* In-process FUSE server for virtio-fs; see fuse_server.h for the model.
 *
 * Requests are copied out of guest memory before they are looked at (the
 * guest may change its buffers at any time); only WRITE payloads and READ
 * replies move straight between guest memory and the host file. */
#define _GNU_SOURCE
#include "fuse_server.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/fuse.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <sys/stat.h>
#include <sys/fsuid.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/xattr.h>
#include <unistd.h>
#include "../util/log.h"
#include "../util/iov.h"
#include "dax_window.h"

/* iovec entries in a slice of one request: a request is one virtqueue
 * chain, at most 1024 descriptors long */
#define MAX_SLICE 1024

#define MAX_WRITE (1u << 20)
#define MAX_PAGES (MAX_WRITE / 4096)
#define ARGS_MAX (128u * 1024) /* the largest request besides WRITE: SETXATTR */
#define XATTR_MAX (64u * 1024)
#define DIRBUF 32768
#define OUT_HDR ((unsigned)sizeof(struct fuse_out_header))

/* ---------------- tables ---------------- */

/* A guest-visible inode: an O_PATH handle on the host object. */
struct node {
	uint64_t id;
	int fd;
	dev_t dev;
	ino_t ino;
	mode_t type;      /* S_IFMT bits; an inode never changes type */
	uint64_t nlookup; /* references the guest holds (LOOKUP minus FORGET) */
	unsigned refs;    /* requests using it right now */
	bool hashed;      /* findable by (dev, ino) */
	struct node *key_next;
};

/* An open file or directory. */
struct handle {
	uint64_t id;
	int fd;
	bool dir;
	unsigned refs;
	bool released;
	pthread_mutex_t lock; /* directories: lseek + getdents go together */
};

/* A slot table: ids are (generation << 32 | slot + 1), so an id the guest
 * made up or kept after a release finds nothing. */
struct slots {
	void **v;
	uint32_t *gen;
	uint32_t n, cap, *free_list, nfree;
};

struct fuse_server {
	pthread_mutex_t lock;
	enum fuse_cache cache;
	int proc_fd; /* /proc/self/fd, to reopen O_PATH handles */
	int root_dir_fd; /* a real descriptor of the share, for syncfs */
	struct node *root;
	struct slots nodes, handles;
	struct node **by_key;
	size_t key_buckets, nkeys;
	unsigned nnodes;
	struct dax_window *dax; /* the guest's DAX window, NULL if none */
	bool inode_dax; /* the guest mounted with dax=inode: we pick the files (FUSE_ATTR_DAX) */
	uint64_t ops[64], op_ns[64], write_bytes, read_bytes, busy_ns; /* for the debug log at exit */
};

static uint64_t slot_add(struct slots *t, void *p)
{
	uint32_t i;
	if (t->nfree) {
		i = t->free_list[--t->nfree];
	} else {
		if (t->n == t->cap) {
			uint32_t cap = t->cap ? t->cap * 2 : 64;
			void **v = realloc(t->v, cap * sizeof(*v));
			if (!v)
				return 0;
			t->v = v;
			uint32_t *g = realloc(t->gen, cap * sizeof(*g));
			if (!g)
				return 0;
			t->gen = g;
			uint32_t *f = realloc(t->free_list, cap * sizeof(*f));
			if (!f)
				return 0;
			t->free_list = f;
			t->cap = cap;
		}
		i = t->n++;
		t->gen[i] = 0;
	}
	t->v[i] = p;
	return ((uint64_t)t->gen[i] << 32) | (i + 1);
}

static void *slot_get(const struct slots *t, uint64_t id)
{
	uint32_t i = (uint32_t)id - 1;
	if ((uint32_t)id == 0 || i >= t->n || t->gen[i] != (uint32_t)(id >> 32))
		return NULL;
	return t->v[i];
}

static void slot_del(struct slots *t, uint64_t id)
{
	uint32_t i = (uint32_t)id - 1;
	t->v[i] = NULL;
	t->gen[i]++;
	t->free_list[t->nfree++] = i;
}

static size_t key_hash(const struct fuse_server *s, dev_t dev, ino_t ino)
{
	return (size_t)((ino * 0x9e3779b97f4a7c15ull) ^ dev) & (s->key_buckets - 1);
}

static void key_insert(struct fuse_server *s, struct node *n)
{
	if (s->nkeys >= s->key_buckets) { /* grow: keep chains short */
		size_t nb = s->key_buckets * 2;
		struct node **b = calloc(nb, sizeof(*b));
		if (b) {
			for (size_t i = 0; i < s->key_buckets; i++)
				for (struct node *x = s->by_key[i], *next; x; x = next) {
					next = x->key_next;
					size_t h = (size_t)((x->ino * 0x9e3779b97f4a7c15ull) ^ x->dev) & (nb - 1);
					x->key_next = b[h];
					b[h] = x;
				}
			free(s->by_key);
			s->by_key = b;
			s->key_buckets = nb;
		}
	}
	size_t h = key_hash(s, n->dev, n->ino);
	n->key_next = s->by_key[h];
	s->by_key[h] = n;
	n->hashed = true;
	s->nkeys++;
}

static void key_remove(struct fuse_server *s, struct node *n)
{
	if (!n->hashed)
		return;
	for (struct node **p = &s->by_key[key_hash(s, n->dev, n->ino)]; *p; p = &(*p)->key_next)
		if (*p == n) {
			*p = n->key_next;
			break;
		}
	n->hashed = false;
	s->nkeys--;
}

static struct node *key_find(struct fuse_server *s, dev_t dev, ino_t ino)
{
	for (struct node *n = s->by_key[key_hash(s, dev, ino)]; n; n = n->key_next)
		if (n->dev == dev && n->ino == ino)
			return n;
	return NULL;
}

/* Descriptors all shares together may hold (an O_PATH one per file the
 * guest knows, one per open file): past it the guest gets ENFILE, and the
 * descriptors the rest of kvkit needs (disks, sockets, the API) stay free.
 * Without it a guest looking up files without end took every descriptor. */
#define FD_RESERVE 4096
static long fd_budget_set, fds_held;

void fuse_server_set_fd_budget(long n) { __atomic_store_n(&fd_budget_set, n, __ATOMIC_RELAXED); }

static long fd_budget(void)
{
	long b = __atomic_load_n(&fd_budget_set, __ATOMIC_RELAXED);
	if (b)
		return b;
	struct rlimit rl;
	long cur = getrlimit(RLIMIT_NOFILE, &rl) < 0 ? 1024 : rl.rlim_cur == RLIM_INFINITY ? (1L << 20) : (long)rl.rlim_cur;
	b = cur > 2 * FD_RESERVE ? cur - FD_RESERVE : cur / 2;
	__atomic_store_n(&fd_budget_set, b, __ATOMIC_RELAXED); /* set once the limit was raised (fs.c) */
	return b;
}

static bool fd_take(void)
{
	if (__atomic_add_fetch(&fds_held, 1, __ATOMIC_RELAXED) <= fd_budget())
		return true;
	__atomic_sub_fetch(&fds_held, 1, __ATOMIC_RELAXED);
	return false;
}

static void fd_give(int fd)
{
	close(fd);
	__atomic_sub_fetch(&fds_held, 1, __ATOMIC_RELAXED);
}

/* lock held */
static void node_maybe_free(struct fuse_server *s, struct node *n)
{
	if (n == s->root || n->nlookup || n->refs)
		return;
	key_remove(s, n);
	slot_del(&s->nodes, n->id);
	fd_give(n->fd);
	free(n);
	s->nnodes--;
}

static struct node *node_get(struct fuse_server *s, uint64_t id)
{
	pthread_mutex_lock(&s->lock);
	struct node *n = slot_get(&s->nodes, id);
	if (n)
		n->refs++;
	pthread_mutex_unlock(&s->lock);
	return n;
}

static void node_put(struct fuse_server *s, struct node *n)
{
	if (!n)
		return;
	pthread_mutex_lock(&s->lock);
	n->refs--;
	node_maybe_free(s, n);
	pthread_mutex_unlock(&s->lock);
}

static void forget(struct fuse_server *s, uint64_t id, uint64_t nlookup)
{
	pthread_mutex_lock(&s->lock);
	struct node *n = slot_get(&s->nodes, id);
	if (n && n != s->root) {
		n->nlookup = nlookup > n->nlookup ? 0 : n->nlookup - nlookup;
		node_maybe_free(s, n);
	}
	pthread_mutex_unlock(&s->lock);
}

static struct handle *handle_get(struct fuse_server *s, uint64_t id, bool dir)
{
	pthread_mutex_lock(&s->lock);
	struct handle *h = slot_get(&s->handles, id);
	if (h && h->dir == dir)
		h->refs++;
	else
		h = NULL;
	pthread_mutex_unlock(&s->lock);
	return h;
}

static void handle_put(struct fuse_server *s, struct handle *h)
{
	pthread_mutex_lock(&s->lock);
	bool last = --h->refs == 0 && h->released;
	pthread_mutex_unlock(&s->lock);
	if (last) {
		fd_give(h->fd);
		pthread_mutex_destroy(&h->lock);
		free(h);
	}
}

/* 0 with errno ENFILE (the descriptor budget) or ENOMEM on failure; the
 * caller still owns fd then. */
static uint64_t handle_new(struct fuse_server *s, int fd, bool dir)
{
	if (!fd_take()) {
		errno = ENFILE;
		return 0;
	}
	struct handle *h = calloc(1, sizeof(*h));
	if (!h) {
		__atomic_sub_fetch(&fds_held, 1, __ATOMIC_RELAXED);
		errno = ENOMEM;
		return 0;
	}
	h->fd = fd;
	h->dir = dir;
	pthread_mutex_init(&h->lock, NULL);
	pthread_mutex_lock(&s->lock);
	uint64_t id = slot_add(&s->handles, h);
	if (id)
		h->id = id;
	pthread_mutex_unlock(&s->lock);
	if (!id) {
		pthread_mutex_destroy(&h->lock);
		free(h);
		__atomic_sub_fetch(&fds_held, 1, __ATOMIC_RELAXED);
		errno = ENOMEM;
	}
	return id;
}

static int handle_release(struct fuse_server *s, uint64_t id, bool dir)
{
	pthread_mutex_lock(&s->lock);
	struct handle *h = slot_get(&s->handles, id);
	if (!h || h->dir != dir) {
		pthread_mutex_unlock(&s->lock);
		return -EBADF;
	}
	slot_del(&s->handles, id);
	h->released = true;
	h->refs++;
	pthread_mutex_unlock(&s->lock);
	handle_put(s, h);
	return 0;
}

/* ---------------- request and reply ---------------- */

struct req {
	struct fuse_server *s;
	struct fuse_in_header in;
	const struct iovec *riov, *wiov;
	unsigned nr, nw;
	size_t rlen, wcap;
	const uint8_t *arg; /* a copy of the arguments */
	size_t arg_len, arg_off;
	uint8_t *out; /* reply payload being built */
	size_t out_len, out_cap;
};

static const void *take(struct req *r, size_t len)
{
	if (r->arg_len - r->arg_off < len)
		return NULL;
	const void *p = r->arg + r->arg_off;
	r->arg_off += len;
	return p;
}

/* A NUL-terminated string from the arguments. */
static const char *take_str(struct req *r)
{
	const char *p = (const char *)r->arg + r->arg_off;
	size_t left = r->arg_len - r->arg_off;
	const char *nul = memchr(p, 0, left);
	if (!nul)
		return NULL;
	r->arg_off += nul - p + 1;
	return p;
}

/* A name inside a directory: one component, never "." or "..". */
static const char *take_name(struct req *r, int *err)
{
	const char *n = take_str(r);
	*err = -EINVAL;
	if (!n || !*n || strchr(n, '/') || !strcmp(n, ".") || !strcmp(n, ".."))
		return NULL;
	if (strlen(n) > NAME_MAX) {
		*err = -ENAMETOOLONG;
		return NULL;
	}
	return n;
}

/* The reply payload buffer, made on first use (most replies are small
 * structs built on the stack; READ goes straight to guest memory). */
static bool have_out(struct req *r)
{
	if (!r->out && r->out_cap)
		r->out = malloc(r->out_cap);
	return r->out != NULL;
}

static void *out_room(struct req *r, size_t len)
{
	if (r->out_cap - r->out_len < len || !have_out(r))
		return NULL;
	void *p = r->out + r->out_len;
	memset(p, 0, len);
	r->out_len += len;
	return p;
}

/* Write header + payload into the guest's reply buffers. */
static size_t reply(struct req *r, int err, const void *data, size_t len)
{
	if (err)
		len = 0;
	if (OUT_HDR + len > r->wcap) {
		err = -EIO; /* the guest's buffers cannot hold the answer */
		len = 0;
	}
	if (r->wcap < OUT_HDR)
		return 0;
	struct fuse_out_header h = { .len = OUT_HDR + len, .error = err, .unique = r->in.unique };
	iov_from_buf(r->wiov, r->nw, 0, &h, OUT_HDR);
	if (len)
		iov_from_buf(r->wiov, r->nw, OUT_HDR, data, len);
	return OUT_HDR + len;
}

static size_t reply_err(struct req *r, int err)
{
	return reply(r, err < 0 ? err : -err, NULL, 0);
}

static size_t reply_out(struct req *r)
{
	return reply(r, 0, r->out, r->out_len);
}

/* ---------------- attributes ---------------- */

static void timeout(const struct fuse_server *s, uint64_t *sec, uint32_t *nsec)
{
	*nsec = 0;
	*sec = s->cache == FUSE_CACHE_ALWAYS ? 86400 : s->cache == FUSE_CACHE_AUTO ? 1 : 0;
}

/* With dax=inode, files at least this big go through the DAX window. A
 * smaller one would cost a 2 MiB mapping and a page fault for little data,
 * which one FUSE READ into the guest's page cache serves more cheaply (the
 * untar and re-read of small files ran slower with DAX for every file). */
#define DAX_INODE_MIN_SIZE DAX_CHUNK

static void fill_attr(const struct fuse_server *s, struct fuse_attr *a, const struct stat *st)
{
	*a = (struct fuse_attr){
		.ino = st->st_ino, .size = st->st_size, .blocks = st->st_blocks,
		.atime = st->st_atim.tv_sec, .mtime = st->st_mtim.tv_sec, .ctime = st->st_ctim.tv_sec,
		.atimensec = st->st_atim.tv_nsec, .mtimensec = st->st_mtim.tv_nsec, .ctimensec = st->st_ctim.tv_nsec,
		.mode = st->st_mode, .nlink = st->st_nlink, .uid = st->st_uid, .gid = st->st_gid,
		.rdev = st->st_rdev, .blksize = st->st_blksize,
	};
	if (s->inode_dax && S_ISREG(st->st_mode) && (uint64_t)st->st_size >= DAX_INODE_MIN_SIZE)
		a->flags |= FUSE_ATTR_DAX;
}

static int stat_fd(int fd, struct stat *st)
{
	return fstatat(fd, "", st, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0 ? -errno : 0;
}

/* The guest takes one more reference to name in parent: find or make its
 * node and fill e. */
static int lookup(struct fuse_server *s, int parent_fd, const char *name, struct fuse_entry_out *e)
{
	if (!fd_take())
		return -ENFILE;
	int fd = openat(parent_fd, name, O_PATH | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0) {
		int rc = -errno;
		__atomic_sub_fetch(&fds_held, 1, __ATOMIC_RELAXED);
		return rc;
	}
	struct stat st;
	int rc = stat_fd(fd, &st);
	if (rc == 0 && (S_ISCHR(st.st_mode) || S_ISBLK(st.st_mode)))
		rc = -EACCES; /* host device nodes stay invisible: the guest would open its own device */
	if (rc < 0) {
		fd_give(fd);
		return rc;
	}
	struct node *fresh = calloc(1, sizeof(*fresh));
	pthread_mutex_lock(&s->lock);
	struct node *n = key_find(s, st.st_dev, st.st_ino);
	if (n) {
		/* the same (dev, ino) may be a new file that reused the number of
		 * one deleted on the host: the old node then stops being found */
		struct stat old;
		if ((n->type != (st.st_mode & S_IFMT)) || (stat_fd(n->fd, &old) == 0 && old.st_nlink == 0 && st.st_nlink)) {
			key_remove(s, n);
			n = NULL;
		}
	}
	if (n) {
		n->nlookup++;
		pthread_mutex_unlock(&s->lock);
		free(fresh);
		fd_give(fd);
	} else if (!fresh || !(fresh->id = slot_add(&s->nodes, fresh))) {
		pthread_mutex_unlock(&s->lock);
		free(fresh);
		fd_give(fd);
		return -ENOMEM;
	} else {
		n = fresh;
		n->fd = fd;
		n->dev = st.st_dev;
		n->ino = st.st_ino;
		n->type = st.st_mode & S_IFMT;
		n->nlookup = 1;
		key_insert(s, n);
		s->nnodes++;
		pthread_mutex_unlock(&s->lock);
	}
	memset(e, 0, sizeof(*e));
	e->nodeid = n->id;
	timeout(s, &e->entry_valid, &e->entry_valid_nsec);
	timeout(s, &e->attr_valid, &e->attr_valid_nsec);
	fill_attr(s, &e->attr, &st);
	return 0;
}

/* Reopen an O_PATH handle for real I/O; only files and directories. */
static int reopen(struct fuse_server *s, const struct node *n, int flags)
{
	if (n->type != S_IFREG && n->type != S_IFDIR)
		return -EACCES; /* device nodes, fifos, sockets, symlinks: never opened */
	char name[16];
	snprintf(name, sizeof(name), "%d", n->fd);
	int fd = openat(s->proc_fd, name, flags | O_CLOEXEC);
	return fd < 0 ? -errno : fd;
}

/* The node's name in /proc/self/fd (s->proc_fd): the *at calls reach an
 * O_PATH handle through it. Not an absolute path: a worker's root is the
 * share (jail.c), where /proc is not. */
static void proc_name(const struct node *n, char *buf, size_t len)
{
	snprintf(buf, len, "%d", n->fd);
}

/* ---------------- operations ---------------- */

/* Modes the guest may give host files: never set-user-ID, and
 * set-group-ID on folders only (new files inherit their group). kvkit
 * runs as root: a set-user-ID root binary the guest planted in the share
 * would be a root shell for any host user who can reach it. */
static mode_t host_mode(mode_t mode, bool dir)
{
	return mode & 07777 & ~(mode_t)(S_ISUID | (dir ? 0 : S_ISGID));
}

/* Extended attributes that give privileges on the host: file capabilities
 * (security.capability) and the trusted namespace. The guest may not set
 * them; user.*, security labels and ACLs pass. */
static bool xattr_privileged(const char *name)
{
	return !strcmp(name, "security.capability") || !strncmp(name, "trusted.", 8);
}


/* What a guest user creates in the share is theirs on the host, as with
 * virtiofsd: when kvkit runs as root, the worker takes the request's uid
 * and gid as its filesystem ids for the one call that creates (per
 * thread: other workers are not affected), so the host kernel makes the
 * file theirs and checks the folder's permissions as that user. Leaving
 * fsuid 0 takes the worker's file capabilities away for the call; coming
 * back gives them back. Run as another user (--user, or unprivileged),
 * kvkit cannot switch, and files are its user's. as_guest() says whether
 * it switched, and as_kvkit() takes that to switch back. */
static bool as_guest(const struct req *r)
{
	if ((r->in.uid == 0 && r->in.gid == 0) || geteuid() != 0)
		return false;
	/* setfsuid(-1) and setfsgid(-1) change nothing: they read back */
	setfsgid(r->in.gid);
	setfsuid(r->in.uid);
	if ((uid_t)setfsuid((uid_t)-1) != r->in.uid || (gid_t)setfsgid((gid_t)-1) != r->in.gid)
		log_debug("virtio-fs: cannot act as uid %u gid %u; the share's files stay kvkit's", r->in.uid,
			  r->in.gid);
	return true;
}

static void as_kvkit(bool switched)
{
	if (!switched)
		return;
	int e = errno;
	setfsuid(0);
	setfsgid(0);
	errno = e;
}

/* FUSE_HANDLE_KILLPRIV_V2: the guest leaves clearing the set-user-ID and
 * set-group-ID bits on a write, truncate or chown by an unprivileged guest
 * user to us (kvkit holds CAP_FSETID, so the host kernel keeps them; it does
 * drop security.capability by itself). In exchange the guest stops sending a
 * GETXATTR security.capability before every write. `path` names an O_PATH
 * node (fchmod refuses those); NULL means fd is an open file. */
static void kill_suidgid(struct fuse_server *s, int fd, const char *path)
{
	struct stat st;
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return;
	mode_t m = st.st_mode & 07777, keep = m & ~S_ISUID;
	if ((m & (S_ISGID | S_IXGRP)) == (S_ISGID | S_IXGRP))
		keep &= ~S_ISGID;
	if (keep != m) /* on failure the guest sees the bits on its next GETATTR */
		(void)(path ? fchmodat(s->proc_fd, path, keep, 0) : fchmod(fd, keep));
}

static size_t do_init(struct req *r)
{
	const struct fuse_init_in *in = take(r, 16); /* major, minor, max_readahead, flags */
	if (!in)
		return reply_err(r, EINVAL);
	struct fuse_init_out o = { .major = FUSE_KERNEL_VERSION, .minor = FUSE_KERNEL_MINOR_VERSION };
	if (in->major < 7)
		return reply_err(r, EPROTO);
	if (in->major > 7) /* the kernel asks again with our major */
		return reply(r, 0, &o, sizeof(o));
	uint32_t want = FUSE_ASYNC_READ | FUSE_ATOMIC_O_TRUNC | FUSE_BIG_WRITES | FUSE_DO_READDIRPLUS |
			FUSE_READDIRPLUS_AUTO | FUSE_PARALLEL_DIROPS | FUSE_MAX_PAGES | FUSE_CACHE_SYMLINKS |
			FUSE_ASYNC_DIO | FUSE_HANDLE_KILLPRIV_V2;
	if (r->s->cache == FUSE_CACHE_AUTO)
		want |= FUSE_AUTO_INVAL_DATA;
	o.flags = in->flags & want;
	o.max_readahead = in->max_readahead;
	o.max_background = 64;
	o.congestion_threshold = 48;
	o.max_write = MAX_WRITE;
	o.time_gran = 1;
	o.max_pages = MAX_PAGES;
	/* a DAX mapping covers whole 2 MiB chunks of file and window */
	if (r->s->dax && (in->flags & FUSE_MAP_ALIGNMENT)) {
		o.flags |= FUSE_MAP_ALIGNMENT;
		o.map_alignment = DAX_CHUNK_SHIFT;
	}
	/* the rest of an extended INIT (7.36): flags2, the bits above 31 */
	bool ext = in->flags & FUSE_INIT_EXT;
	if (ext) {
		if (!take(r, sizeof(*in) - 16))
			return reply_err(r, EINVAL);
		o.flags |= FUSE_INIT_EXT;
	}
	r->s->inode_dax = ext && r->s->dax && (in->flags2 & (uint32_t)(FUSE_HAS_INODE_DAX >> 32));
	if (r->s->inode_dax)
		o.flags2 |= (uint32_t)(FUSE_HAS_INODE_DAX >> 32);
	return reply(r, 0, &o, in->minor < 23 ? 24 : sizeof(o));
}

static size_t do_lookup(struct req *r, struct node *n)
{
	int err;
	const char *name = take_name(r, &err);
	if (!name)
		return reply_err(r, err);
	if (n->type != S_IFDIR)
		return reply_err(r, ENOTDIR);
	struct fuse_entry_out e;
	int rc = lookup(r->s, n->fd, name, &e);
	if (rc == -ENOENT && r->s->cache != FUSE_CACHE_NEVER) {
		/* a negative entry (node 0): the guest remembers "no such name"
		 * for as long as it would remember a positive one */
		memset(&e, 0, sizeof(e));
		timeout(r->s, &e.entry_valid, &e.entry_valid_nsec);
		return reply(r, 0, &e, sizeof(e));
	}
	return rc ? reply_err(r, rc) : reply(r, 0, &e, sizeof(e));
}

static size_t attr_reply(struct req *r, int fd)
{
	struct stat st;
	int rc = stat_fd(fd, &st);
	if (rc)
		return reply_err(r, rc);
	struct fuse_attr_out o = { 0 };
	timeout(r->s, &o.attr_valid, &o.attr_valid_nsec);
	fill_attr(r->s, &o.attr, &st);
	return reply(r, 0, &o, sizeof(o));
}

static size_t do_setattr(struct req *r, struct node *n)
{
	const struct fuse_setattr_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	struct handle *h = NULL;
	if (in->valid & FATTR_FH) {
		h = handle_get(r->s, in->fh, false);
		if (!h)
			return reply_err(r, EBADF);
	}
	char path[40];
	proc_name(n, path, sizeof(path));
	int rc = 0;
	bool link = n->type == S_IFLNK;
	if (in->valid & FATTR_MODE) {
		if (link)
			rc = -EOPNOTSUPP;
		else if ((h ? fchmod(h->fd, host_mode(in->mode, n->type == S_IFDIR))
			    : fchmodat(r->s->proc_fd, path, host_mode(in->mode, n->type == S_IFDIR), 0)) < 0)
			rc = -errno;
	}
	if (!rc && (in->valid & (FATTR_UID | FATTR_GID))) {
		uid_t uid = in->valid & FATTR_UID ? in->uid : (uid_t)-1;
		gid_t gid = in->valid & FATTR_GID ? in->gid : (gid_t)-1;
		if (fchownat(n->fd, "", uid, gid, AT_EMPTY_PATH | AT_SYMLINK_NOFOLLOW) < 0)
			rc = -errno;
	}
	if (!rc && (in->valid & FATTR_SIZE)) {
		if (h) {
			rc = ftruncate(h->fd, in->size) < 0 ? -errno : 0;
		} else if (n->type == S_IFDIR) {
			rc = -EISDIR;
		} else {
			int fd = reopen(r->s, n, O_WRONLY);
			rc = fd < 0 ? fd : ftruncate(fd, in->size) < 0 ? -errno : 0;
			if (fd >= 0)
				close(fd);
		}
	}
	if (!rc && (in->valid & FATTR_KILL_SUIDGID) && !(in->valid & FATTR_MODE) &&
	    (in->valid & (FATTR_SIZE | FATTR_UID | FATTR_GID)))
		kill_suidgid(r->s, h ? h->fd : n->fd, h ? NULL : path);
	if (!rc && (in->valid & (FATTR_ATIME | FATTR_MTIME))) {
		struct timespec ts[2] = { { 0, UTIME_OMIT }, { 0, UTIME_OMIT } };
		if (in->valid & FATTR_ATIME)
			ts[0] = in->valid & FATTR_ATIME_NOW ? (struct timespec){ 0, UTIME_NOW }
							    : (struct timespec){ in->atime, in->atimensec };
		if (in->valid & FATTR_MTIME)
			ts[1] = in->valid & FATTR_MTIME_NOW ? (struct timespec){ 0, UTIME_NOW }
							    : (struct timespec){ in->mtime, in->mtimensec };
		if ((ts[0].tv_nsec != UTIME_NOW && ts[0].tv_nsec != UTIME_OMIT && ts[0].tv_nsec >= 1000000000) ||
		    (ts[1].tv_nsec != UTIME_NOW && ts[1].tv_nsec != UTIME_OMIT && ts[1].tv_nsec >= 1000000000))
			rc = -EINVAL;
		else if (h)
			rc = futimens(h->fd, ts) < 0 ? -errno : 0;
		else if (link)
			rc = -EOPNOTSUPP;
		else
			rc = utimensat(r->s->proc_fd, path, ts, 0) < 0 ? -errno : 0;
	}
	if (h)
		handle_put(r->s, h);
	return rc ? reply_err(r, rc) : attr_reply(r, n->fd);
}

/* Host open flags from the guest's: no O_DIRECT (tmpfs and others refuse
 * it), no creation here, never a controlling terminal. */
static int open_flags(uint32_t f)
{
	return (int)(f & ~(O_DIRECT | O_CREAT | O_EXCL | O_PATH | O_TMPFILE)) | O_NOCTTY | O_CLOEXEC;
}

static uint32_t fopen_flags(const struct fuse_server *s)
{
	return s->cache == FUSE_CACHE_ALWAYS ? FOPEN_KEEP_CACHE : s->cache == FUSE_CACHE_NEVER ? FOPEN_DIRECT_IO : 0;
}

static size_t do_open(struct req *r, struct node *n, bool dir)
{
	const struct fuse_open_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	if (dir && n->type != S_IFDIR)
		return reply_err(r, ENOTDIR);
	if (!dir && n->type == S_IFDIR)
		return reply_err(r, EISDIR);
	int fd = reopen(r->s, n, dir ? O_RDONLY | O_DIRECTORY : open_flags(in->flags));
	if (fd < 0)
		return reply_err(r, fd);
	if (!dir && (in->open_flags & FUSE_OPEN_KILL_SUIDGID) && (in->flags & O_TRUNC))
		kill_suidgid(r->s, fd, NULL);
	struct fuse_open_out o = { .fh = handle_new(r->s, fd, dir), .open_flags = dir ? 0 : fopen_flags(r->s) };
	if (!o.fh) {
		int e = errno;
		close(fd);
		return reply_err(r, e);
	}
	return reply(r, 0, &o, sizeof(o));
}

static size_t do_create(struct req *r, struct node *n)
{
	const struct fuse_create_in *in = take(r, sizeof(*in));
	int err;
	const char *name = in ? take_name(r, &err) : NULL;
	if (!in)
		return reply_err(r, EINVAL);
	if (!name)
		return reply_err(r, err);
	if (n->type != S_IFDIR)
		return reply_err(r, ENOTDIR);
	/* Only a regular file is ever opened. A name that exists as anything
	 * else (a FIFO the guest made, a device node on the host) is refused
	 * before any open: opening a FIFO blocks the worker for good, opening a
	 * device runs its driver. O_NONBLOCK and the check after the open
	 * cover a swap in between; O_NOFOLLOW: a planted symlink is not
	 * followed. */
	struct stat st;
	if (!(in->flags & O_EXCL) && fstatat(n->fd, name, &st, AT_SYMLINK_NOFOLLOW) == 0 && !S_ISREG(st.st_mode))
		return reply_err(r, S_ISDIR(st.st_mode) ? EISDIR : EACCES);
	bool g = as_guest(r);
	int fd = openat(n->fd, name, open_flags(in->flags) | O_CREAT | O_NOFOLLOW | O_NONBLOCK | (in->flags & O_EXCL),
			host_mode(in->mode, false));
	as_kvkit(g);
	if (fd < 0)
		return reply_err(r, -errno);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    (!(in->flags & O_NONBLOCK) && fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) & ~O_NONBLOCK) < 0)) {
		close(fd);
		return reply_err(r, EACCES);
	}
	if ((in->open_flags & FUSE_OPEN_KILL_SUIDGID) && (in->flags & O_TRUNC))
		kill_suidgid(r->s, fd, NULL);
	struct {
		struct fuse_entry_out e;
		struct fuse_open_out o;
	} out = { 0 };
	int rc = lookup(r->s, n->fd, name, &out.e);
	if (rc) {
		close(fd);
		return reply_err(r, rc);
	}
	out.o.fh = handle_new(r->s, fd, false);
	out.o.open_flags = fopen_flags(r->s);
	if (!out.o.fh) {
		int e = errno;
		close(fd);
		forget(r->s, out.e.nodeid, 1);
		return reply_err(r, e);
	}
	return reply(r, 0, &out, sizeof(out));
}

/* MKNOD, MKDIR, SYMLINK, LINK: make the object, then look it up. */
static size_t made(struct req *r, struct node *dir, const char *name, int rc)
{
	if (rc < 0)
		return reply_err(r, -errno);
	struct fuse_entry_out e;
	rc = lookup(r->s, dir->fd, name, &e);
	return rc ? reply_err(r, rc) : reply(r, 0, &e, sizeof(e));
}

static size_t do_mknod(struct req *r, struct node *n)
{
	const struct fuse_mknod_in *in = take(r, sizeof(*in));
	int err;
	const char *name = in ? take_name(r, &err) : NULL;
	if (!in)
		return reply_err(r, EINVAL);
	if (!name)
		return reply_err(r, err);
	if (!S_ISREG(in->mode) && !S_ISFIFO(in->mode))
		return reply_err(r, EPERM); /* no device nodes or sockets in the share */
	bool g = as_guest(r);
	int rc = mknodat(n->fd, name, (in->mode & S_IFMT) | host_mode(in->mode, false), 0);
	as_kvkit(g);
	return made(r, n, name, rc);
}

static size_t do_mkdir(struct req *r, struct node *n)
{
	const struct fuse_mkdir_in *in = take(r, sizeof(*in));
	int err;
	const char *name = in ? take_name(r, &err) : NULL;
	if (!in)
		return reply_err(r, EINVAL);
	if (!name)
		return reply_err(r, err);
	bool g = as_guest(r);
	int rc = mkdirat(n->fd, name, host_mode(in->mode, true));
	as_kvkit(g);
	return made(r, n, name, rc);
}

static size_t do_symlink(struct req *r, struct node *n)
{
	int err;
	const char *name = take_name(r, &err);
	const char *target = name ? take_str(r) : NULL;
	if (!name)
		return reply_err(r, err);
	if (!target || !*target || strlen(target) >= PATH_MAX)
		return reply_err(r, EINVAL);
	/* the target is only text to the host: it is never followed here */
	bool g = as_guest(r);
	int rc = symlinkat(target, n->fd, name);
	as_kvkit(g);
	return made(r, n, name, rc);
}

static size_t do_link(struct req *r, struct node *n)
{
	const struct fuse_link_in *in = take(r, sizeof(*in));
	int err;
	const char *name = in ? take_name(r, &err) : NULL;
	if (!in)
		return reply_err(r, EINVAL);
	if (!name)
		return reply_err(r, err);
	struct node *old = node_get(r->s, in->oldnodeid);
	if (!old)
		return reply_err(r, ENOENT);
	char path[40];
	proc_name(old, path, sizeof(path));
	int rc = old->type == S_IFDIR ? (errno = EPERM, -1) : linkat(r->s->proc_fd, path, n->fd, name, AT_SYMLINK_FOLLOW);
	node_put(r->s, old);
	return made(r, n, name, rc);
}

static size_t do_unlink(struct req *r, struct node *n, bool dir)
{
	int err;
	const char *name = take_name(r, &err);
	if (!name)
		return reply_err(r, err);
	return reply_err(r, unlinkat(n->fd, name, dir ? AT_REMOVEDIR : 0) < 0 ? -errno : 0);
}

static size_t do_rename(struct req *r, struct node *n, bool v2)
{
	uint64_t newdir;
	uint32_t flags = 0;
	if (v2) {
		const struct fuse_rename2_in *in = take(r, sizeof(*in));
		if (!in)
			return reply_err(r, EINVAL);
		newdir = in->newdir;
		flags = in->flags;
	} else {
		const struct fuse_rename_in *in = take(r, sizeof(*in));
		if (!in)
			return reply_err(r, EINVAL);
		newdir = in->newdir;
	}
	int err;
	const char *oldname = take_name(r, &err);
	if (!oldname)
		return reply_err(r, err);
	const char *newname = take_name(r, &err);
	if (!newname)
		return reply_err(r, err);
	if (flags & ~(RENAME_NOREPLACE | RENAME_EXCHANGE))
		return reply_err(r, EINVAL); /* RENAME_WHITEOUT would make a device node */
	struct node *nd = node_get(r->s, newdir);
	if (!nd)
		return reply_err(r, ENOENT);
	int rc = renameat2(n->fd, oldname, nd->fd, newname, flags) < 0 ? -errno : 0;
	node_put(r->s, nd);
	return reply_err(r, rc);
}

static size_t do_readlink(struct req *r, struct node *n)
{
	if (n->type != S_IFLNK)
		return reply_err(r, EINVAL);
	char buf[PATH_MAX];
	ssize_t len = readlinkat(n->fd, "", buf, sizeof(buf));
	if (len < 0)
		return reply_err(r, -errno);
	return reply(r, 0, buf, len);
}

static size_t do_read(struct req *r)
{
	const struct fuse_read_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	if (r->wcap < OUT_HDR)
		return 0; /* no room for any answer */
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return reply_err(r, EBADF);
	size_t want = in->size;
	if (want > r->wcap - OUT_HDR)
		want = r->wcap - OUT_HDR;
	struct iovec iov[MAX_SLICE];
	int k = want ? iov_slice(r->wiov, r->nw, OUT_HDR, want, iov, MAX_SLICE) : 0;
	ssize_t n = k < 0 ? -1 : k == 0 ? 0 : preadv(h->fd, iov, k, in->offset);
	if (n > 0)
		__atomic_fetch_add(&r->s->read_bytes, (uint64_t)n, __ATOMIC_RELAXED);
	int e = n < 0 ? (k < 0 ? EINVAL : errno) : 0;
	handle_put(r->s, h);
	if (n < 0)
		return reply_err(r, e);
	struct fuse_out_header oh = { .len = OUT_HDR + n, .unique = r->in.unique };
	iov_from_buf(r->wiov, r->nw, 0, &oh, OUT_HDR);
	return OUT_HDR + n;
}

/* WRITE and COPY_FILE_RANGE answer how many bytes moved, or errno e. */
static size_t reply_written(struct req *r, ssize_t n, int e)
{
	if (n < 0)
		return reply_err(r, e);
	struct fuse_write_out o = { .size = (uint32_t)n };
	return reply(r, 0, &o, sizeof(o));
}

static size_t do_write(struct req *r)
{
	const struct fuse_write_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	size_t data_off = sizeof(struct fuse_in_header) + sizeof(*in);
	if (in->size > MAX_WRITE || data_off + in->size > r->rlen)
		return reply_err(r, EINVAL);
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return reply_err(r, EBADF);
	struct iovec iov[MAX_SLICE];
	int k = in->size ? iov_slice(r->riov, r->nr, data_off, in->size, iov, MAX_SLICE) : 0;
	ssize_t n = k < 0 ? -1 : k == 0 ? 0 : pwritev(h->fd, iov, k, in->offset);
	if (n > 0 && (in->write_flags & FUSE_WRITE_KILL_SUIDGID))
		kill_suidgid(r->s, h->fd, NULL);
	if (n > 0)
		__atomic_fetch_add(&r->s->write_bytes, (uint64_t)n, __ATOMIC_RELAXED);
	int e = n < 0 ? (k < 0 ? EINVAL : errno) : 0;
	handle_put(r->s, h);
	return reply_written(r, n, e);
}

static size_t do_statfs(struct req *r, struct node *n)
{
	struct statvfs sv;
	if (fstatvfs(n->fd, &sv) < 0)
		return reply_err(r, -errno);
	struct fuse_statfs_out o = { .st = { .blocks = sv.f_blocks, .bfree = sv.f_bfree, .bavail = sv.f_bavail,
					     .files = sv.f_files, .ffree = sv.f_ffree, .bsize = sv.f_bsize,
					     .namelen = sv.f_namemax, .frsize = sv.f_frsize } };
	return reply(r, 0, &o, sizeof(o));
}

static size_t do_release(struct req *r, bool dir)
{
	const struct fuse_release_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	return reply_err(r, handle_release(r->s, in->fh, dir));
}

static size_t do_fsync(struct req *r, bool dir)
{
	const struct fuse_fsync_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	struct handle *h = handle_get(r->s, in->fh, dir);
	if (!h)
		return reply_err(r, EBADF);
	int rc = ((in->fsync_flags & 1) ? fdatasync(h->fd) : fsync(h->fd)) < 0 ? -errno : 0;
	handle_put(r->s, h);
	return reply_err(r, rc);
}

/* xattrs on a descriptor reopened for reading: O_PATH handles have no
 * f*xattr, there is no *at form, and only files and directories are ever
 * opened (as virtiofsd does). */
static size_t do_xattr(struct req *r, struct node *n, uint32_t op)
{
	bool ok_type = n->type == S_IFREG || n->type == S_IFDIR;
	const char *name = NULL;
	const void *val = NULL;
	const struct fuse_setxattr_in *sin = NULL;
	const struct fuse_getxattr_in *gin = NULL;
	if (op == FUSE_SETXATTR) {
		sin = take(r, FUSE_COMPAT_SETXATTR_IN_SIZE);
		name = sin ? take_str(r) : NULL;
		val = name ? take(r, sin->size) : NULL;
		if (!val || sin->size > XATTR_MAX)
			return reply_err(r, EINVAL);
		if (!ok_type)
			return reply_err(r, EOPNOTSUPP);
		if (xattr_privileged(name))
			return reply_err(r, EPERM);
	} else if (op == FUSE_REMOVEXATTR) {
		if (!(name = take_str(r)))
			return reply_err(r, EINVAL);
		if (!ok_type)
			return reply_err(r, EOPNOTSUPP);
	} else {
		gin = take(r, sizeof(*gin));
		name = gin && op == FUSE_GETXATTR ? take_str(r) : NULL;
		if (!gin || (op == FUSE_GETXATTR && !name))
			return reply_err(r, EINVAL);
		if (!ok_type)
			return reply_err(r, op == FUSE_GETXATTR ? ENODATA : EOPNOTSUPP);
	}
	int fd = reopen(r->s, n, O_RDONLY | O_NONBLOCK);
	if (fd < 0)
		return reply_err(r, fd);
	size_t len;
	if (op == FUSE_SETXATTR) {
		len = reply_err(r, fsetxattr(fd, name, val, sin->size, sin->flags) < 0 ? -errno : 0);
	} else if (op == FUSE_REMOVEXATTR) {
		len = reply_err(r, fremovexattr(fd, name) < 0 ? -errno : 0);
	} else {
		size_t size = gin->size > XATTR_MAX ? XATTR_MAX : gin->size;
		uint8_t *buf = size ? out_room(r, size) : NULL;
		ssize_t got = size && !buf ? (errno = ERANGE, -1)
			      : op == FUSE_GETXATTR ? fgetxattr(fd, name, buf, size)
						    : flistxattr(fd, (char *)buf, size);
		if (got < 0) {
			len = reply_err(r, -errno);
		} else if (!size) {
			struct fuse_getxattr_out o = { .size = (uint32_t)got };
			len = reply(r, 0, &o, sizeof(o));
		} else {
			len = reply(r, 0, buf, got);
		}
	}
	close(fd);
	return len;
}

static size_t do_access(struct req *r, struct node *n)
{
	const struct fuse_access_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	if (n->type == S_IFLNK)
		return reply_err(r, 0);
	char path[40];
	proc_name(n, path, sizeof(path));
	return reply_err(r, faccessat(r->s->proc_fd, path, in->mask & 7, 0) < 0 ? -errno : 0);
}

static size_t do_readdir(struct req *r, bool plus)
{
	const struct fuse_read_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	struct handle *h = handle_get(r->s, in->fh, true);
	if (!h)
		return reply_err(r, EBADF);
	size_t cap = in->size < r->out_cap ? in->size : r->out_cap;
	char *dbuf = malloc(DIRBUF);
	int rc = 0;
	pthread_mutex_lock(&h->lock);
	if (!dbuf || (cap && !have_out(r)))
		rc = -ENOMEM;
	else if (lseek(h->fd, (off_t)in->offset, SEEK_SET) < 0)
		rc = -errno;
	bool full = false;
	while (!rc && !full) {
		long got = syscall(SYS_getdents64, h->fd, dbuf, DIRBUF);
		if (got < 0)
			rc = -errno;
		if (got <= 0)
			break;
		for (long pos = 0; pos < got;) {
			struct dirent64 *d = (struct dirent64 *)(dbuf + pos);
			pos += d->d_reclen;
			size_t nlen = strlen(d->d_name);
			size_t rec = plus ? FUSE_NAME_OFFSET_DIRENTPLUS + nlen : FUSE_NAME_OFFSET + nlen;
			rec = FUSE_DIRENT_ALIGN(rec);
			if (cap - r->out_len < rec) {
				full = true;
				break;
			}
			struct fuse_dirent *fd;
			if (plus) {
				struct fuse_direntplus *p = (struct fuse_direntplus *)(r->out + r->out_len);
				memset(p, 0, rec);
				bool dots = !strcmp(d->d_name, ".") || !strcmp(d->d_name, "..");
				/* nodeid 0: the guest skips the entry's attributes */
				if (!dots && lookup(r->s, h->fd, d->d_name, &p->entry_out) < 0)
					memset(&p->entry_out, 0, sizeof(p->entry_out));
				fd = &p->dirent;
			} else {
				fd = (struct fuse_dirent *)(r->out + r->out_len);
				memset(fd, 0, rec);
			}
			fd->ino = d->d_ino;
			fd->off = d->d_off;
			fd->namelen = nlen;
			fd->type = d->d_type;
			memcpy(fd->name, d->d_name, nlen);
			r->out_len += rec;
		}
	}
	pthread_mutex_unlock(&h->lock);
	free(dbuf);
	handle_put(r->s, h);
	/* entries already sent count even when a later getdents failed */
	return rc && !r->out_len ? reply_err(r, rc) : reply_out(r);
}

static size_t do_fallocate(struct req *r)
{
	const struct fuse_fallocate_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return reply_err(r, EBADF);
	int rc = fallocate(h->fd, (int)in->mode, (off_t)in->offset, (off_t)in->length) < 0 ? -errno : 0;
	handle_put(r->s, h);
	return reply_err(r, rc);
}

static size_t do_lseek(struct req *r)
{
	const struct fuse_lseek_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	struct handle *h = handle_get(r->s, in->fh, false);
	if (!h)
		return reply_err(r, EBADF);
	off_t off = lseek(h->fd, (off_t)in->offset, (int)in->whence);
	int e = errno;
	handle_put(r->s, h);
	if (off < 0)
		return reply_err(r, e);
	struct fuse_lseek_out o = { .offset = (uint64_t)off };
	return reply(r, 0, &o, sizeof(o));
}

static size_t do_copy_file_range(struct req *r)
{
	const struct fuse_copy_file_range_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	struct handle *a = handle_get(r->s, in->fh_in, false);
	struct handle *b = a ? handle_get(r->s, in->fh_out, false) : NULL;
	ssize_t n = -1;
	int e = EBADF;
	if (b) {
		loff_t oi = (loff_t)in->off_in, oo = (loff_t)in->off_out;
		size_t len = in->len > (1u << 30) ? (1u << 30) : in->len; /* the answer is 32 bits */
		n = copy_file_range(a->fd, &oi, b->fd, &oo, len, 0);
		e = errno;
	}
	if (b)
		handle_put(r->s, b);
	if (a)
		handle_put(r->s, a);
	return reply_written(r, n, e);
}

static void batch_forget(struct req *r)
{
	const struct fuse_batch_forget_in *in = take(r, sizeof(*in));
	for (uint32_t i = 0; in && i < in->count; i++) {
		const struct fuse_forget_one *f = take(r, sizeof(*f));
		if (!f)
			break;
		forget(r->s, f->nodeid, f->nlookup);
	}
}

/* FUSE_SETUPMAPPING: the guest's DAX driver maps a 2 MiB piece of a file
 * into its window. The kernel sends no file handle (fh is -1): the inode is
 * opened again, as any OPEN would be, so only regular files qualify. */
static size_t do_setupmapping(struct req *r, struct node *n)
{
	const struct fuse_setupmapping_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	if (n->type != S_IFREG)
		return reply_err(r, n->type == S_IFDIR ? EISDIR : EACCES);
	bool writable = in->flags & FUSE_SETUPMAPPING_FLAG_WRITE;
	int fd = reopen(r->s, n, writable ? O_RDWR : O_RDONLY);
	if (fd < 0)
		return reply_err(r, -fd);
	int rc = dax_window_map(r->s->dax, fd, in->foffset, in->moffset, in->len, writable);
	close(fd);
	return reply_err(r, rc);
}

/* FUSE_REMOVEMAPPING: a count, then that many (moffset, len) ranges. */
static size_t do_removemapping(struct req *r)
{
	const struct fuse_removemapping_in *in = take(r, sizeof(*in));
	if (!in)
		return reply_err(r, EINVAL);
	int rc = 0;
	for (uint32_t i = 0; i < in->count; i++) {
		/* the ranges follow the 4-byte count: copied out, not cast, as
		 * they are not 8-byte aligned */
		struct fuse_removemapping_one one;
		const void *p = take(r, sizeof(one));
		if (!p)
			return reply_err(r, EINVAL);
		memcpy(&one, p, sizeof(one));
		int e = dax_window_unmap(r->s->dax, one.moffset, one.len);
		if (e && !rc)
			rc = e;
	}
	return reply_err(r, rc);
}

/* Everything but the first request's copy: dispatch on the opcode. */
static size_t dispatch(struct req *r)
{
	struct fuse_server *s = r->s;
	uint32_t op = r->in.opcode;
	switch (op) {
	case FUSE_INIT:
		return do_init(r);
	case FUSE_FORGET: {
		const struct fuse_forget_in *in = take(r, sizeof(*in));
		if (in)
			forget(s, r->in.nodeid, in->nlookup);
		return 0;
	}
	case FUSE_BATCH_FORGET:
		batch_forget(r);
		return 0;
	case FUSE_READ:
		return do_read(r);
	case FUSE_WRITE:
		return do_write(r);
	case FUSE_RELEASE:
	case FUSE_RELEASEDIR:
		return do_release(r, op == FUSE_RELEASEDIR);
	case FUSE_FSYNC:
	case FUSE_FSYNCDIR:
		return do_fsync(r, op == FUSE_FSYNCDIR);
	case FUSE_FLUSH:
		return reply_err(r, 0);
	case FUSE_READDIR:
	case FUSE_READDIRPLUS:
		return do_readdir(r, op == FUSE_READDIRPLUS);
	case FUSE_FALLOCATE:
		return do_fallocate(r);
	case FUSE_LSEEK:
		return do_lseek(r);
	case FUSE_COPY_FILE_RANGE:
		return do_copy_file_range(r);
	case FUSE_DESTROY:
		if (s->dax)
			dax_window_clear(s->dax);
		return reply_err(r, 0);
	case FUSE_REMOVEMAPPING:
		if (!s->dax)
			return reply_err(r, ENOSYS);
		return do_removemapping(r);
	case FUSE_SETUPMAPPING:
		if (!s->dax)
			return reply_err(r, ENOSYS);
		break; /* on its inode, below */
	case FUSE_SYNCFS:
		return reply_err(r, syncfs(s->root_dir_fd) < 0 ? -errno : 0);
	case FUSE_INTERRUPT:
		return 0; /* requests are not interruptible here; no answer is due */
	default:
		break;
	}
	/* the rest work on the request's inode */
	struct node *n = node_get(s, r->in.nodeid);
	if (!n) {
		switch (op) {
		case FUSE_LOOKUP: case FUSE_GETATTR: case FUSE_SETATTR: case FUSE_OPEN: case FUSE_OPENDIR:
		case FUSE_CREATE: case FUSE_MKNOD: case FUSE_MKDIR: case FUSE_UNLINK: case FUSE_RMDIR:
		case FUSE_RENAME: case FUSE_RENAME2: case FUSE_LINK: case FUSE_SYMLINK: case FUSE_READLINK:
		case FUSE_STATFS: case FUSE_GETXATTR: case FUSE_SETXATTR: case FUSE_LISTXATTR:
		case FUSE_REMOVEXATTR: case FUSE_ACCESS: case FUSE_SETUPMAPPING:
			return reply_err(r, ENOENT);
		default:
			return reply_err(r, ENOSYS);
		}
	}
	size_t len;
	switch (op) {
	case FUSE_LOOKUP: len = do_lookup(r, n); break;
	case FUSE_GETATTR: {
		const struct fuse_getattr_in *in = take(r, sizeof(*in));
		struct handle *h = in && (in->getattr_flags & FUSE_GETATTR_FH) ? handle_get(s, in->fh, false) : NULL;
		len = attr_reply(r, h ? h->fd : n->fd);
		if (h)
			handle_put(s, h);
		break;
	}
	case FUSE_SETATTR: len = do_setattr(r, n); break;
	case FUSE_OPEN: len = do_open(r, n, false); break;
	case FUSE_OPENDIR: len = do_open(r, n, true); break;
	case FUSE_CREATE: len = do_create(r, n); break;
	case FUSE_MKNOD: len = do_mknod(r, n); break;
	case FUSE_MKDIR: len = do_mkdir(r, n); break;
	case FUSE_SYMLINK: len = do_symlink(r, n); break;
	case FUSE_LINK: len = do_link(r, n); break;
	case FUSE_UNLINK: len = do_unlink(r, n, false); break;
	case FUSE_RMDIR: len = do_unlink(r, n, true); break;
	case FUSE_RENAME: len = do_rename(r, n, false); break;
	case FUSE_RENAME2: len = do_rename(r, n, true); break;
	case FUSE_READLINK: len = do_readlink(r, n); break;
	case FUSE_STATFS: len = do_statfs(r, n); break;
	case FUSE_GETXATTR: case FUSE_SETXATTR: case FUSE_LISTXATTR: case FUSE_REMOVEXATTR:
		len = do_xattr(r, n, op);
		break;
	case FUSE_ACCESS: len = do_access(r, n); break;
	case FUSE_SETUPMAPPING: len = do_setupmapping(r, n); break;
	default: len = reply_err(r, ENOSYS); break; /* GETLK, IOCTL, POLL, BMAP, TMPFILE... */
	}
	node_put(s, n);
	return len;
}

static size_t iov_total(const struct iovec *iov, unsigned n)
{
	size_t t = 0;
	for (unsigned i = 0; i < n; i++)
		t += iov[i].iov_len;
	return t;
}

size_t fuse_server_handle(struct fuse_server *s, const struct iovec *req, unsigned nreq, const struct iovec *rep,
			  unsigned nrep)
{
	struct req r = { .s = s, .riov = req, .nr = nreq, .wiov = rep, .nw = nrep };
	r.rlen = iov_total(req, nreq);
	r.wcap = iov_total(rep, nrep);
	if (iov_to_buf(req, nreq, 0, &r.in, sizeof(r.in)) != sizeof(r.in))
		return 0; /* not even a header: nothing to answer to */
	size_t len = r.in.len < r.rlen ? r.in.len : r.rlen;
	if (len < sizeof(r.in))
		return reply_err(&r, EINVAL);
	/* WRITE data stays in guest memory; everything else is copied */
	size_t args = len - sizeof(r.in);
	if (r.in.opcode == FUSE_WRITE && args > sizeof(struct fuse_write_in))
		args = sizeof(struct fuse_write_in);
	if (args > ARGS_MAX)
		return reply_err(&r, EINVAL);
	uint8_t *copy = malloc(args + 1);
	r.out_cap = r.wcap > OUT_HDR ? r.wcap - OUT_HDR : 0;
	if (r.out_cap > MAX_WRITE)
		r.out_cap = MAX_WRITE;
	__atomic_fetch_add(&s->ops[r.in.opcode & 63], 1, __ATOMIC_RELAXED);
	struct timespec t0, t1;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	size_t ret;
	if (!copy) {
		ret = reply_err(&r, ENOMEM);
	} else {
		iov_to_buf(req, nreq, sizeof(r.in), copy, args);
		copy[args] = 0;
		r.arg = copy;
		r.arg_len = args;
		ret = dispatch(&r);
	}
	free(copy);
	free(r.out);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	uint64_t ns = (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + t1.tv_nsec - t0.tv_nsec);
	__atomic_fetch_add(&s->busy_ns, ns, __ATOMIC_RELAXED);
	__atomic_fetch_add(&s->op_ns[r.in.opcode & 63], ns, __ATOMIC_RELAXED);
	return ret;
}

/* ---------------- setup ---------------- */

struct fuse_server *fuse_server_new(const char *dir, enum fuse_cache cache, char *err, size_t errlen)
{
	struct stat st;
	if (stat(dir, &st) < 0) {
		snprintf(err, errlen, "cannot use %s: %s", dir, strerror(errno));
		return NULL;
	}
	if (!S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s is not a directory", dir);
		return NULL;
	}
	struct fuse_server *s = calloc(1, sizeof(*s));
	struct node *root = calloc(1, sizeof(*root));
	if (!s || !root) {
		free(s);
		free(root);
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&s->lock, NULL);
	s->cache = cache;
	s->key_buckets = 1024;
	s->by_key = calloc(s->key_buckets, sizeof(*s->by_key));
	s->proc_fd = open("/proc/self/fd", O_PATH | O_DIRECTORY | O_CLOEXEC);
	s->root_dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	root->fd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	s->root = root;
	if (!s->by_key || s->proc_fd < 0 || s->root_dir_fd < 0 || root->fd < 0 ||
	    stat_fd(root->fd, &st) < 0 || slot_add(&s->nodes, root) != FUSE_ROOT_ID) {
		snprintf(err, errlen, "cannot open %s: %s", dir, strerror(errno ? errno : ENOMEM));
		fuse_server_free(s);
		return NULL;
	}
	root->id = FUSE_ROOT_ID;
	root->dev = st.st_dev;
	root->ino = st.st_ino;
	root->type = S_IFDIR;
	root->nlookup = 1;
	key_insert(s, root);
	s->nnodes = 1;
	return s;
}

int fuse_server_set_root(struct fuse_server *s, int path_fd, int dir_fd)
{
	struct stat a, b;
	if (fstat(path_fd, &a) < 0 || fstat(dir_fd, &b) < 0 || a.st_dev != s->root->dev || a.st_ino != s->root->ino ||
	    b.st_dev != a.st_dev || b.st_ino != a.st_ino)
		return -EXDEV;
	/* same numbers, new descriptors: nothing holds the old ones */
	if (dup3(path_fd, s->root->fd, O_CLOEXEC) < 0 || dup3(dir_fd, s->root_dir_fd, O_CLOEXEC) < 0)
		return -errno;
	close(path_fd);
	close(dir_fd);
	return 0;
}

void fuse_server_free(struct fuse_server *s)
{
	if (!s)
		return;
	for (uint32_t i = 0; i < s->nodes.n; i++) {
		struct node *n = s->nodes.v[i];
		if (n) {
			if (n == s->root)
				close(n->fd); /* the root is not counted */
			else if (n->fd >= 0)
				fd_give(n->fd);
			free(n);
		}
	}
	if (!s->nodes.n && s->root) { /* setup failed before the root was filed */
		if (s->root->fd >= 0)
			close(s->root->fd);
		free(s->root);
	}
	for (uint32_t i = 0; i < s->handles.n; i++) {
		struct handle *h = s->handles.v[i];
		if (h) {
			fd_give(h->fd);
			pthread_mutex_destroy(&h->lock);
			free(h);
		}
	}
	free(s->nodes.v);
	free(s->nodes.gen);
	free(s->nodes.free_list);
	free(s->handles.v);
	free(s->handles.gen);
	free(s->handles.free_list);
	free(s->by_key);
	if (s->proc_fd >= 0)
		close(s->proc_fd);
	if (s->root_dir_fd >= 0)
		close(s->root_dir_fd);
	pthread_mutex_destroy(&s->lock);
	free(s);
}

void fuse_server_describe(struct fuse_server *s, char *buf, size_t len)
{
	static const struct { unsigned op; const char *name; } names[] = {
		{ FUSE_LOOKUP, "lookup" }, { FUSE_GETATTR, "getattr" }, { FUSE_SETATTR, "setattr" },
		{ FUSE_OPEN, "open" }, { FUSE_CREATE, "create" }, { FUSE_READ, "read" }, { FUSE_WRITE, "write" },
		{ FUSE_RELEASE, "release" }, { FUSE_FLUSH, "flush" }, { FUSE_FSYNC, "fsync" },
		{ FUSE_READDIRPLUS, "readdirplus" }, { FUSE_FORGET, "forget" }, { FUSE_BATCH_FORGET, "batch_forget" },
		{ FUSE_GETXATTR, "getxattr" }, { FUSE_SETUPMAPPING, "setupmapping" },
		{ FUSE_REMOVEMAPPING, "removemapping" },
	};
	uint64_t total = 0;
	for (unsigned i = 0; i < 64; i++)
		total += __atomic_load_n(&s->ops[i], __ATOMIC_RELAXED);
	/* the time spent serving: against the guest's elapsed time it tells the
	 * server's share from the transport's (exits, wake-ups, interrupts) */
	uint64_t busy = __atomic_load_n(&s->busy_ns, __ATOMIC_RELAXED);
	size_t off = (size_t)snprintf(buf, len, "%llu served in %.3f s (%.1f us each): ", (unsigned long long)total,
				      busy / 1e9, total ? busy / 1e3 / total : 0.0);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]) && off < len; i++) {
		uint64_t n = __atomic_load_n(&s->ops[names[i].op & 63], __ATOMIC_RELAXED);
		uint64_t ns = __atomic_load_n(&s->op_ns[names[i].op & 63], __ATOMIC_RELAXED);
		off += (size_t)snprintf(buf + off, len - off, n ? "%s %llu (%.0f us) " : "%s 0 ", names[i].name,
					(unsigned long long)n, n ? ns / 1e3 / n : 0.0);
	}
	if (off < len)
		snprintf(buf + off, len - off, "| %llu MiB written, %llu MiB read",
			 (unsigned long long)(s->write_bytes >> 20), (unsigned long long)(s->read_bytes >> 20));
}

void fuse_server_set_dax(struct fuse_server *s, struct dax_window *w)
{
	s->dax = w;
}

unsigned fuse_server_inodes(struct fuse_server *s)
{
	pthread_mutex_lock(&s->lock);
	unsigned n = s->nnodes;
	pthread_mutex_unlock(&s->lock);
	return n;
}
