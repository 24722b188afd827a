/* An in-process FUSE server for virtio-fs: it answers the requests the Linux
 * guest driver sends, on one shared host directory.
 *
 * Safety model: every inode the guest knows is an O_PATH handle opened one
 * name at a time with O_NOFOLLOW relative to its parent's handle, starting at
 * the shared directory. Names with '/' and the names "." and ".." are refused,
 * symlinks are never followed on the host (the guest resolves them itself),
 * only regular files and directories are ever opened, and device nodes are
 * not even looked up (the guest would open its own device). So whatever the
 * guest sends, it can only reach what lies under the shared directory.
 *
 * Requests may be served by several threads at once. */
#ifndef KVKIT_FUSE_SERVER_H
#define KVKIT_FUSE_SERVER_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

enum fuse_cache {
	FUSE_CACHE_AUTO,   /* 1 s attribute/entry timeouts, page cache kept while unchanged */
	FUSE_CACHE_ALWAYS, /* long timeouts, page cache kept: the host does not change the folder */
	FUSE_CACHE_NEVER,  /* no timeouts, direct I/O: the host changes the folder under the guest */
};

struct fuse_server;

/* Open dir for serving. NULL with a one-line reason in err. */
struct fuse_server *fuse_server_new(const char *dir, enum fuse_cache cache, char *err, size_t errlen);
void fuse_server_free(struct fuse_server *s);

/* Serve one request: req[0..nreq) is what the guest wrote (header and
 * arguments), rep[0..nrep) where the reply goes. Returns the reply length
 * (0: the request takes no reply, e.g. FORGET). Never trusts req: a
 * malformed request gets an error reply, or none when even its header is
 * unreadable. */
size_t fuse_server_handle(struct fuse_server *s, const struct iovec *req, unsigned nreq, const struct iovec *rep,
			  unsigned nrep);

/* One line of request counts (debug log at exit). */
void fuse_server_describe(struct fuse_server *s, char *buf, size_t len);

/* Serve FUSE_SETUPMAPPING/REMOVEMAPPING into this DAX window (NULL: none,
 * the default; they answer ENOSYS). The window outlives the server. */
struct dax_window;
void fuse_server_set_dax(struct fuse_server *s, struct dax_window *w);

/* Before the first request: serve the shared folder through these
 * descriptors of the same directory (O_PATH and O_RDONLY), opened inside
 * the workers' jail, so every lookup starts inside it. Takes them. 0, or
 * -EXDEV when they are another directory. */
int fuse_server_set_root(struct fuse_server *s, int path_fd, int dir_fd);

/* Inodes the guest holds (for tests and debug logs). */
unsigned fuse_server_inodes(struct fuse_server *s);

/* How many descriptors all shares may hold together (file handles the
 * guest keeps, open files); 0: the open-file limit less 4096 kept for the
 * rest of kvkit (half the limit when it is small). For tests. */
void fuse_server_set_fd_budget(long n);
#endif
