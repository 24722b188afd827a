/* virtio-balloon inflate buffers: little-endian 32-bit page frame numbers,
 * read in one walk (kept apart from the device for tests and fuzzing). */
#ifndef KVKIT_VIRTIO_BALLOON_PFNS_H
#define KVKIT_VIRTIO_BALLOON_PFNS_H
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* Most page numbers taken from one chain: Linux sends 256 a buffer; a chain
 * may legally be gigabytes, and each number costs the I/O thread work. */
#define BALLOON_MAX_PFNS_PER_CHAIN (1u << 18) /* 1 GiB of 4 KiB pages */

/* Calls run(opaque, first, count) for each run of consecutive page
 * numbers among the first max numbers in iov[0..n) (a number may straddle
 * two pieces). One pass over the pieces. Returns how many numbers the
 * buffer held (may exceed max: the rest were not read). */
size_t balloon_pfn_runs(const struct iovec *iov, unsigned n, size_t max,
			void (*run)(void *opaque, uint64_t first, uint64_t count), void *opaque);
#endif
