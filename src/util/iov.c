/* iovec copies and slices; see iov.h. */
#include "iov.h"
#include <stdbool.h>
#include <string.h>

static size_t iov_copy(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len, bool to_iov)
{
	size_t done = 0;
	for (unsigned i = 0; i < n && done < len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		size_t c = iov[i].iov_len - off;
		if (c > len - done)
			c = len - done;
		char *v = (char *)iov[i].iov_base + off, *b = (char *)buf + done;
		memcpy(to_iov ? v : b, to_iov ? b : v, c);
		done += c;
		off = 0;
	}
	return done;
}

/* Bytes [off, off+len) of iov[0..n) as a new iovec list in dst (max entries).
 * Returns the entry count, or -1 when the range is not all there or needs
 * more than max entries. */
int iov_slice(const struct iovec *iov, unsigned n, uint64_t off, uint64_t len, struct iovec *dst,
		     unsigned max)
{
	unsigned k = 0;
	for (unsigned i = 0; i < n && len; i++) {
		if (off >= iov[i].iov_len) {
			off -= iov[i].iov_len;
			continue;
		}
		uint64_t take = iov[i].iov_len - off;
		if (take > len)
			take = len;
		if (k == max)
			return -1;
		dst[k].iov_base = (char *)iov[i].iov_base + off;
		dst[k].iov_len = take;
		k++;
		len -= take;
		off = 0;
	}
	return len ? -1 : (int)k;
}

size_t iov_from_buf(const struct iovec *iov, unsigned n, size_t off, const void *buf, size_t len)
{
	return iov_copy(iov, n, off, (void *)buf, len, true);
}

size_t iov_to_buf(const struct iovec *iov, unsigned n, size_t off, void *buf, size_t len)
{
	return iov_copy(iov, n, off, buf, len, false);
}
