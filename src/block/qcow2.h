/* qcow2 images (QEMU's format, versions 2 and 3): the translation from the
 * guest's offsets to the file's, with backing files. Calls are synchronous
 * and thread-safe (one lock for the metadata; data moves outside it where
 * the mapping is settled), so the block backend runs them on its workers.
 *
 * Crash safety: new clusters are counted (refcounts) and their data written
 * before any table points at them, and tables are written back only after
 * a sync of what they point to; a cluster a table stops pointing at is
 * freed only once that table is on disk. A kill at any point therefore
 * leaves at worst leaked clusters, never a table pointing at a free one. */
#ifndef KVKIT_BLOCK_QCOW2_H
#define KVKIT_BLOCK_QCOW2_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

struct qcow2;

#define QCOW2_MAGIC "QFI\xfb"
#define QCOW2_MAX_BACKING_DEPTH 16

/* Open the qcow2 image on fd (kept by the image, closed by qcow2_close),
 * its backing chain too. path names it in errors and anchors relative
 * backing paths. A bad header or chain: -1 and one line in err. */
int qcow2_open(int fd, const char *path, bool readonly, struct qcow2 **out, char *err, size_t errlen);
uint64_t qcow2_size(const struct qcow2 *q);
/* cache=uncached: dfd (the image opened O_DIRECT, owned from now on) carries
 * the data of allocated clusters; metadata stays on the buffered fd. */
void qcow2_set_direct_fd(struct qcow2 *q, int dfd);
uint32_t qcow2_cluster_size(const struct qcow2 *q);

/* 0 or -errno; len is the iovec's total. */
int qcow2_readv(struct qcow2 *q, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len);
int qcow2_writev(struct qcow2 *q, uint64_t off, const struct iovec *iov, unsigned niov, uint64_t len);
/* Zeroes that read back as zeroes; unmap lets whole clusters be freed. */
int qcow2_write_zeroes(struct qcow2 *q, uint64_t off, uint64_t len, bool unmap);
/* A hint: whole clusters in the range are freed (partial ones are kept). */
int qcow2_discard(struct qcow2 *q, uint64_t off, uint64_t len);
/* Data and metadata on stable storage. */
int qcow2_flush(struct qcow2 *q);
/* Flushes a writable image, then frees everything; the fd is closed. */
int qcow2_close(struct qcow2 *q);

#endif
