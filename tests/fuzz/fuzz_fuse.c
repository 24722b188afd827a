/* libFuzzer: FUSE requests a hostile guest sends virtio-fs. Each input is
 * one or more requests (a 2-byte length, then that many bytes, split into
 * two guest buffers at a point the input picks) against a real share with a
 * file, a folder and a symlink pointing outside. After every input the
 * folder around the share must be untouched: any change there is an escape
 * and aborts. The server has a small DAX window, so SETUPMAPPING and
 * REMOVEMAPPING are reached too; the window's bookkeeping must agree with
 * its size. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <unistd.h>
#include "../../src/fs/dax_window.h"
#include "../../src/fs/fuse_server.h"

static char top[64], share[80], secret[80];
static struct fuse_server *srv;
static struct dax_window *win;
static struct stat top_st, secret_st;
static unsigned runs;
static uint8_t req[1 << 16], rep[1 << 16];

static void fresh_share(void)
{
	char cmd[128];
	if (srv) {
		fuse_server_free(srv);
		snprintf(cmd, sizeof(cmd), "rm -rf %s/*", share);
		if (system(cmd) != 0)
			abort();
	} else {
		snprintf(top, sizeof(top), "/tmp/kvkit-fuzz-fuse-XXXXXX");
		if (!mkdtemp(top))
			abort();
		snprintf(share, sizeof(share), "%s/share", top);
		snprintf(secret, sizeof(secret), "%s/secret", top);
		mkdir(share, 0755);
		FILE *f = fopen(secret, "w");
		fputs("keep out", f);
		fclose(f);
	}
	snprintf(cmd, sizeof(cmd), "cd %s && mkdir d && echo hello > f && ln -s %s out && ln -s .. up", share, secret);
	if (system(cmd) != 0)
		abort();
	char err[200];
	srv = fuse_server_new(share, FUSE_CACHE_AUTO, err, sizeof(err));
	if (!srv)
		abort();
	if (!win && !(win = dax_window_new(4 * DAX_CHUNK, err, sizeof(err))))
		abort();
	dax_window_clear(win);
	fuse_server_set_dax(srv, win);
	stat(top, &top_st);
	stat(secret, &secret_st);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!srv || ++runs % 2000 == 0)
		fresh_share();
	while (size >= 3) {
		size_t len = data[0] | data[1] << 8;
		size_t split = data[2];
		data += 3;
		size -= 3;
		if (len > size)
			len = size;
		memcpy(req, data, len);
		if (split > len)
			split = len;
		struct iovec rq[2] = { { req, split }, { req + split, len - split } };
		/* the reply buffer size comes from the request too: small ones matter */
		size_t cap = len >= 8 ? (req[len - 1] | req[len - 2] << 8) % sizeof(rep) : sizeof(rep);
		struct iovec rp[2] = { { rep, cap / 2 }, { rep + cap / 2, cap - cap / 2 } };
		size_t n = fuse_server_handle(srv, rq, 2, rp, 2);
		if (n > cap)
			abort();
		data += len;
		size -= len;
	}
	if (dax_window_mapped(win) > 4)
		abort();
	dax_window_repair(win);
	/* nothing outside the share moved */
	struct stat t, s;
	if (stat(top, &t) || stat(secret, &s) || t.st_mtim.tv_nsec != top_st.st_mtim.tv_nsec ||
	    t.st_mtim.tv_sec != top_st.st_mtim.tv_sec || s.st_size != secret_st.st_size ||
	    s.st_mtim.tv_nsec != secret_st.st_mtim.tv_nsec || s.st_mode != secret_st.st_mode) {
		fprintf(stderr, "escape: the folder around the share changed (top mtime %ld/%ld, secret size %ld mode %o)\n",
			(long)t.st_mtim.tv_sec, (long)top_st.st_mtim.tv_sec, (long)s.st_size, s.st_mode);
		system("ls -la /tmp/kvkit-fuzz-fuse-*");
		abort();
	}
	return 0;
}
