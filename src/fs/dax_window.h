/* The virtio-fs DAX window: a span of kvkit's address space that the guest
 * sees as the share's cache (a PCI BAR backed by a KVM memory slot). On the
 * guest's FUSE_SETUPMAPPING kvkit maps a range of a shared file into it, so
 * the guest reads and writes the host's page cache with plain loads and
 * stores, without a request per read.
 *
 * The window is cut in 2 MiB chunks (the unit the Linux driver maps) and a
 * mapping covers whole chunks. A chunk with no file behind it is private
 * anonymous memory: a guest that touches it reads zeros and gets no access
 * to anything else. */
#ifndef KVKIT_DAX_WINDOW_H
#define KVKIT_DAX_WINDOW_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DAX_CHUNK_SHIFT 21
#define DAX_CHUNK (1ull << DAX_CHUNK_SHIFT)

struct dax_window;

/* size: a multiple of DAX_CHUNK. NULL with a one-line reason in err. */
struct dax_window *dax_window_new(uint64_t size, char *err, size_t errlen);
void dax_window_free(struct dax_window *w);
void *dax_window_base(const struct dax_window *w);
uint64_t dax_window_size(const struct dax_window *w);

/* Map [foffset, foffset + len) of the open file fd at moffset of the
 * window (all three chunk-aligned, len > 0, inside the window), replacing
 * what was there; fd is duplicated, the caller keeps its own. 0 or -errno. */
int dax_window_map(struct dax_window *w, int fd, uint64_t foffset, uint64_t moffset, uint64_t len, bool writable);
/* Drop the mappings of [moffset, moffset + len) (chunk-aligned). 0 or -errno. */
int dax_window_unmap(struct dax_window *w, uint64_t moffset, uint64_t len);
/* Drop every mapping (device reset, FUSE_DESTROY). */
void dax_window_clear(struct dax_window *w);
/* A vCPU could not reach guest memory (KVM_RUN failed with EFAULT): a file
 * mapped here may have shrunk on the host, leaving pages past its new end
 * that the host cannot produce. Put zero pages where a mapped file covered
 * a chunk and no longer does; true if anything changed (the vCPU may
 * retry). */
bool dax_window_repair(struct dax_window *w);
/* Chunks mapped right now (tests, debug log). */
unsigned dax_window_mapped(struct dax_window *w);

#endif
