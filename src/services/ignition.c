/* The Ignition server: libmicrohttpd with no listening socket of its own;
 * every guest connection to vsock port 1024 arrives as one end of a
 * socketpair (MHD_add_connection). Any path, any method answered like GET
 * (HEAD without a body), keep-alive, Range. Headers must arrive within 10 s;
 * a connection idle for 60 s between requests is closed. */
#include "ignition.h"
#include <sys/prctl.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>
#include "../util/log.h"
#include "../util/mhd_lib.h"
#include "../sandbox/sandbox.h"

#define HEADER_TIMEOUT_S 10
#define IDLE_TIMEOUT_S 60
#define MAX_IGNITION_SIZE (64u << 20)

static struct {
	char *data;
	size_t len;
	struct MHD_Daemon *d;
} ign;

int ignition_load(const char *path, char *err, size_t errlen)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) < 0) {
		snprintf(err, errlen, "failed to add ignition file: %s: %s", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > MAX_IGNITION_SIZE) {
		snprintf(err, errlen, "failed to add ignition file: %s: %s", path,
			 S_ISREG(st.st_mode) ? "larger than 64 MiB" : "not a regular file");
		close(fd);
		return -1;
	}
	ign.data = malloc(st.st_size ? st.st_size : 1);
	size_t got = 0;
	while (ign.data && got < (size_t)st.st_size) {
		ssize_t n = read(fd, ign.data + got, st.st_size - got);
		if (n <= 0)
			break;
		got += n;
	}
	close(fd);
	if (!ign.data || got != (size_t)st.st_size) {
		snprintf(err, errlen, "failed to add ignition file: %s: short read", path);
		free(ign.data);
		ign.data = NULL;
		return -1;
	}
	ign.len = got;
	return 0;
}

/* "bytes=A-B", "bytes=A-", "bytes=-N": one range. 1 = ok, 0 = unsatisfiable,
 * -1 = not understood (serve the whole file, as RFC 9110 allows). */
static int parse_range(const char *r, size_t len, size_t *from, size_t *to)
{
	if (strncmp(r, "bytes=", 6) || strchr(r, ','))
		return -1;
	r += 6;
	char *end;
	if (*r == '-') {
		unsigned long long n = strtoull(r + 1, &end, 10);
		if (end == r + 1 || *end)
			return -1;
		if (!n || !len)
			return 0;
		*from = n >= len ? 0 : len - n;
		*to = len - 1;
		return 1;
	}
	unsigned long long a = strtoull(r, &end, 10), b = len ? len - 1 : 0;
	if (end == r || *end != '-')
		return -1;
	if (end[1]) {
		char *e2;
		b = strtoull(end + 1, &e2, 10);
		if (*e2 || b < a)
			return -1;
	}
	if (a >= len)
		return 0;
	*from = a;
	*to = b >= len ? len - 1 : b;
	return 1;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
	(void)cls; (void)version; (void)upload_data;
	static __thread bool named; /* libmicrohttpd's thread, for top -H and the sandbox's messages */
	if (!named)
		named = prctl(PR_SET_NAME, "ignition", 0, 0, 0) == 0;
	sandbox_thread(SANDBOX_HTTP);
	if (!*con_cls) { /* headers are in: from now on the idle timeout applies */
		*con_cls = conn;
		MHD_set_connection_option(conn, MHD_CONNECTION_OPTION_TIMEOUT, (unsigned)IDLE_TIMEOUT_S);
		return MHD_YES;
	}
	if (*upload_data_size) { /* a body is read and ignored */
		*upload_data_size = 0;
		return MHD_YES;
	}
	log_debug("ignition: %s %s", method, url);
	size_t from = 0, to = ign.len ? ign.len - 1 : 0;
	unsigned status = MHD_HTTP_OK;
	const char *range = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_RANGE);
	int rr = range ? parse_range(range, ign.len, &from, &to) : -1;
	struct MHD_Response *resp;
	char cr[96];
	if (rr == 0) {
		status = MHD_HTTP_RANGE_NOT_SATISFIABLE;
		resp = MHD_create_response_from_buffer(0, "", MHD_RESPMEM_PERSISTENT);
		snprintf(cr, sizeof(cr), "bytes */%zu", ign.len);
	} else if (rr == 1) {
		status = MHD_HTTP_PARTIAL_CONTENT;
		resp = MHD_create_response_from_buffer(to - from + 1, ign.data + from, MHD_RESPMEM_PERSISTENT);
		snprintf(cr, sizeof(cr), "bytes %zu-%zu/%zu", from, to, ign.len);
	} else {
		resp = MHD_create_response_from_buffer(ign.len, ign.data, MHD_RESPMEM_PERSISTENT);
	}
	if (!resp)
		return MHD_NO;
	if (rr >= 0)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_RANGE, cr);
	MHD_add_response_header(resp, MHD_HTTP_HEADER_ACCEPT_RANGES, "bytes");
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, "application/json");
	enum MHD_Result r = MHD_queue_response(conn, status, resp);
	MHD_destroy_response(resp);
	return r;
}

static void on_log(void *cls, const char *fmt, va_list ap)
{
	(void)cls;
	if (log_enabled(LOG_DEBUG)) {
		char buf[256];
		vsnprintf(buf, sizeof(buf), fmt, ap);
		buf[strcspn(buf, "\n")] = 0;
		log_debug("ignition: %s", buf);
	}
}

int ignition_start(char *err, size_t errlen)
{
	if (mhd_lib_load(err, errlen) < 0)
		return -1;
	ign.d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC |
					 MHD_USE_ERROR_LOG,
				 0, NULL, NULL, on_request, NULL, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HEADER_TIMEOUT_S,
				 MHD_OPTION_EXTERNAL_LOGGER, on_log, NULL, MHD_OPTION_END);
	if (!ign.d) {
		snprintf(err, errlen, "cannot start the Ignition server");
		return -1;
	}
	return 0;
}

void ignition_accept(void *opaque, int fd)
{
	(void)opaque;
	struct sockaddr_un sa = { .sun_family = AF_UNIX, .sun_path = "vsock" };
	if (!ign.d || MHD_add_connection(ign.d, fd, (struct sockaddr *)&sa, sizeof(sa)) != MHD_YES) {
		log_warn("ignition: cannot serve a guest connection"); /* MHD closed fd */
	}
}

void ignition_stop(void)
{
	if (ign.d)
		MHD_stop_daemon(ign.d);
	ign.d = NULL;
	free(ign.data);
	ign.data = NULL;
}
