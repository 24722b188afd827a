/* Test helper: bytes of a unixstream peer fed to the framing parser
 * (src/net/stream_frames.h) in reads of a chosen size, as the backend
 * reads them. Used by the unit test and the fuzzer. */
#ifndef KVKIT_TESTS_STREAM_FEED_H
#define KVKIT_TESTS_STREAM_FEED_H
#include <stddef.h>
#include <stdint.h>
#include "../../src/net/stream_frames.h"

/* Feed in[0..len) to r in reads of at most piece bytes (0: as much as
 * fits), handing each whole frame to frame(); the number of frames, or -1
 * once framing is lost. Aborts if the parser ever offers no room. */
int stream_feed(struct stream_rx *r, const uint8_t *in, size_t len, size_t piece,
		void (*frame)(void *opaque, const uint8_t *f, size_t flen), void *opaque);

#endif
