/* Copies and slices over an iovec array, bounded by the array: what every
 * device model does with a guest's scatter-gather list (a virtqueue chain,
 * an NVMe PRP list) and what the disk formats do with their requests. */
#ifndef KVKIT_UTIL_IOV_H
#define KVKIT_UTIL_IOV_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Copy len bytes into (from_buf) or out of (to_buf) the iovec, starting off
 * bytes in; returns what was copied (less when the iovec ends first). */
size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len);
size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len);
/* Bytes [off, off+len) of iov[0..n) as a new iovec list in dst (max entries).
 * Returns the entry count, or -1 when the range is not all there or needs
 * more than max entries. */
int iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len, struct iovec *dst, unsigned max);

#endif
