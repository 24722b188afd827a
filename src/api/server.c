/* The REST API's HTTP side: --restful-uri (spec 4.1), listeners bound
 * before the guest runs, and libmicrohttpd serving on its own thread so a
 * busy guest or device never delays an answer. */
#define _GNU_SOURCE
#include <sys/prctl.h>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>
#include "../util/log.h"
#include "api.h"
#include "../util/mhd_lib.h"
#include "../util/unixsock.h"
#include "../sandbox/sandbox.h"

#define MAX_LISTENERS 2
#define DRAIN_TIMEOUT_MS 2000

static struct {
	int fds[MAX_LISTENERS];
	bool tcp[MAX_LISTENERS]; /* the listener is TCP: the Host header is checked */
	unsigned nfds;
	char bound_host[256];    /* the host of tcp://HOST:PORT */
	struct MHD_Daemon *d[MAX_LISTENERS];
	char unix_path[108]; /* removed at shutdown */
	const struct api_vm_ops *ops;
	int open_conns;
	pthread_mutex_t lock;
} srv = { .lock = PTHREAD_MUTEX_INITIALIZER };

/* ---------------- --restful-uri ---------------- */

int api_uri_parse(const char *uri, struct api_uri *u, char *err, size_t errlen)
{
	memset(u, 0, sizeof(*u));
	if (!uri || !*uri || !strncmp(uri, "none:", 5))
		return 0; /* kvkit differs: any none: URI turns the API off */
	const char *colon = strchr(uri, ':');
	size_t sl = colon ? (size_t)(colon - uri) : 0;
	if (!colon || sl == 0 || strcspn(uri, "/?#") < sl)
		return errorf(err, errlen, "parse \"%s\": invalid URI for request", uri);
	const char *rest = colon + 1;
	if (sl == 4 && !strncmp(uri, "unix", 4)) {
		if (!strncmp(rest, "//", 2)) {
			rest += 2;
			size_t hl = strcspn(rest, "/");
			if (hl)
				return errorf(err, errlen, "invalid unix uri: host is forbidden");
		}
		if (!*rest)
			return errorf(err, errlen, "invalid unix uri: missing path");
		if (strlen(rest) > 107)
			return errorf(err, errlen, "invalid unix uri: socket path length exceeds 107 bytes");
		u->kind = API_URI_UNIX;
		snprintf(u->path, sizeof(u->path), "%s", rest);
		return 0;
	}
	if ((sl == 3 && !strncmp(uri, "tcp", 3)) || (sl == 4 && !strncmp(uri, "http", 4))) {
		if (strncmp(rest, "//", 2))
			return errorf(err, errlen, "invalid TCP uri: missing host");
		rest += 2;
		size_t hpl = strcspn(rest, "/?#");
		const char *path = rest + hpl;
		char hp[256];
		if (hpl >= sizeof(hp))
			return errorf(err, errlen, "invalid TCP uri: host too long");
		memcpy(hp, rest, hpl);
		hp[hpl] = 0;
		if (!*hp)
			return errorf(err, errlen, "invalid TCP uri: missing host");
		char *port = NULL;
		if (hp[0] == '[') {
			char *close = strchr(hp, ']');
			if (!close)
				return errorf(err, errlen, "parse \"%s\": missing ']' in host", uri);
			*close = 0;
			snprintf(u->host, sizeof(u->host), "%s", hp + 1);
			if (close[1] == ':')
				port = close + 2;
			else if (close[1])
				return errorf(err, errlen, "parse \"%s\": invalid port after host", uri);
		} else {
			char *c = strrchr(hp, ':');
			if (c) {
				*c = 0;
				port = c + 1;
			}
			snprintf(u->host, sizeof(u->host), "%s", hp);
		}
		if (!port || !*port)
			return errorf(err, errlen, "invalid TCP uri: missing port");
		char *end;
		long p = strtol(port, &end, 10);
		if (*end || p < 1 || p > 65535)
			return errorf(err, errlen, "parse \"%s\": invalid port \":%s\" after host", uri, port);
		if (*path)
			return errorf(err, errlen, "invalid TCP uri: path is forbidden");
		u->kind = API_URI_TCP;
		u->port = (unsigned)p;
		return 0;
	}
	return errorf(err, errlen, "invalid scheme %.*s", (int)sl, uri);
}

/* ---------------- listening ---------------- */

static int listen_fd(int fd, const struct sockaddr *sa, socklen_t len, const char *what, char *err, size_t errlen)
{
	int one = 1;
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, sa, len) < 0 || listen(fd, 64) < 0) {
		int e = errno;
		close(fd);
		return errorf(err, errlen, "cannot listen on %s: %s", what, strerror(e));
	}
	srv.tcp[srv.nfds] = sa->sa_family != AF_UNIX;
	srv.fds[srv.nfds++] = fd;
	return 0;
}

static int listen_unix(const char *path, char *err, size_t errlen)
{
	char label[160];
	snprintf(label, sizeof(label), "unix://%s", path);
	int fd = unix_listen(path, label, err, errlen);
	if (fd < 0)
		return -1;
	srv.fds[srv.nfds++] = fd;
	snprintf(srv.unix_path, sizeof(srv.unix_path), "%s", path);
	return 0;
}

static bool is_loopback(const struct sockaddr *sa)
{
	if (sa->sa_family == AF_INET)
		return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
	if (sa->sa_family == AF_INET6)
		return IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)sa)->sin6_addr);
	return false;
}

static int listen_tcp(const struct api_uri *u, char *err, size_t errlen)
{
	char what[300];
	snprintf(what, sizeof(what), "tcp://%s%s%s:%u", strchr(u->host, ':') ? "[" : "", u->host,
		 strchr(u->host, ':') ? "]" : "", u->port);
	if (!strcmp(u->host, "localhost")) {
		/* Go clients try both; bind 127.0.0.1 and ::1 where it exists */
		struct sockaddr_in a4 = { .sin_family = AF_INET, .sin_port = htons(u->port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
		int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0 || listen_fd(fd, (struct sockaddr *)&a4, sizeof(a4), what, err, errlen) < 0)
			return fd < 0 ? errorf(err, errlen, "cannot listen on %s: %s", what, strerror(errno)) : -1;
		struct sockaddr_in6 a6 = { .sin6_family = AF_INET6, .sin6_port = htons(u->port), .sin6_addr = IN6ADDR_LOOPBACK_INIT };
		int fd6 = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
		char ignored[200];
		if (fd6 >= 0) {
			int one = 1;
			setsockopt(fd6, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
			if (listen_fd(fd6, (struct sockaddr *)&a6, sizeof(a6), what, ignored, sizeof(ignored)) < 0)
				log_debug("REST API: no IPv6 loopback listener: %s", ignored);
		}
		return 0;
	}
	struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE | AI_NUMERICSERV }, *res;
	char port[8];
	snprintf(port, sizeof(port), "%u", u->port);
	int gr = getaddrinfo(*u->host ? u->host : NULL, port, &hints, &res);
	if (gr)
		return errorf(err, errlen, "cannot listen on %s: %s", what, gai_strerror(gr));
	int rc = -1;
	for (struct addrinfo *ai = res; ai && rc < 0; ai = ai->ai_next) {
		int fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, 0);
		if (fd < 0)
			continue;
		if (ai->ai_family == AF_INET6) {
			int zero = 0; /* tcp://:PORT: one dual-stack socket for every interface */
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &zero, sizeof(zero));
		}
		rc = listen_fd(fd, ai->ai_addr, ai->ai_addrlen, what, err, errlen);
		if (rc == 0 && !is_loopback(ai->ai_addr))
			log_warn("REST API listening on %s beyond the loopback interface: it has no authentication", what);
	}
	freeaddrinfo(res);
	return rc;
}

int api_listen(const struct api_uri *u, char *err, size_t errlen)
{
	if (u->kind == API_URI_UNIX)
		return listen_unix(u->path, err, errlen);
	if (u->kind == API_URI_TCP) {
		snprintf(srv.bound_host, sizeof(srv.bound_host), "%s", u->host);
		return listen_tcp(u, err, errlen);
	}
	return 0;
}

/* ---------------- serving ---------------- */

struct req {
	char *body;
	size_t len;
	bool too_big;
};

static enum MHD_Result reply(struct MHD_Connection *conn, struct api_response *r)
{
	struct MHD_Response *resp = MHD_create_response_from_buffer(r->len, r->body, MHD_RESPMEM_MUST_FREE);
	if (!resp) {
		free(r->body);
		return MHD_NO;
	}
	if (r->content_type)
		MHD_add_response_header(resp, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
	/* once kvkit is gone, a client's next poll must see ECONNREFUSED */
	MHD_add_response_header(resp, MHD_HTTP_HEADER_CONNECTION, "close");
	enum MHD_Result ret = MHD_queue_response(conn, r->status, resp);
	MHD_destroy_response(resp);
	return ret;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
				  const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
	(void)version;
	static __thread bool named; /* libmicrohttpd's thread, for top -H and the sandbox's messages */
	if (!named)
		named = prctl(PR_SET_NAME, "rest-api", 0, 0, 0) == 0;
	sandbox_thread(SANDBOX_HTTP);
	const bool *tcp = cls;
	struct req *rq = *con_cls;
	if (!rq) {
		rq = calloc(1, sizeof(*rq));
		if (!rq)
			return MHD_NO;
		*con_cls = rq;
		return MHD_YES;
	}
	if (*upload_size) {
		if (rq->len + *upload_size > API_MAX_BODY) {
			rq->too_big = true;
		} else {
			char *n = realloc(rq->body, rq->len + *upload_size + 1);
			if (!n)
				return MHD_NO;
			rq->body = n;
			memcpy(rq->body + rq->len, upload, *upload_size);
			rq->len += *upload_size;
			rq->body[rq->len] = 0;
		}
		*upload_size = 0;
		return MHD_YES;
	}
	struct api_response r;
	if (rq->too_big) {
		memset(&r, 0, sizeof(r));
		r.status = 413;
		r.content_type = API_JSON_TYPE;
		r.body = strdup("{\"error\":\"request body too large\"}");
		r.len = r.body ? strlen(r.body) : 0;
	} else if (api_request_allowed(MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Host"),
				       MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin"),
				       MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Type"), *tcp,
				       srv.bound_host, &r)) {
		api_handle(srv.ops, method, url, rq->body, rq->len, &r);
	}
	log_debug("REST %s %s -> %u", method, url, r.status);
	return reply(conn, &r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
	(void)cls; (void)conn; (void)toe;
	struct req *rq = *con_cls;
	if (rq) {
		free(rq->body);
		free(rq);
		*con_cls = NULL;
	}
}

static void on_connection(void *cls, struct MHD_Connection *conn, void **socket_context,
			  enum MHD_ConnectionNotificationCode toe)
{
	(void)cls; (void)conn; (void)socket_context;
	pthread_mutex_lock(&srv.lock);
	srv.open_conns += toe == MHD_CONNECTION_NOTIFY_STARTED ? 1 : -1;
	pthread_mutex_unlock(&srv.lock);
}

int api_start(const struct api_vm_ops *ops, char *err, size_t errlen)
{
	srv.ops = ops;
	if (srv.nfds && mhd_lib_load(err, errlen) < 0)
		return -1;
	for (unsigned i = 0; i < srv.nfds; i++) {
		srv.d[i] = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_POLL | MHD_USE_ITC, 0, NULL, NULL,
					    on_request, &srv.tcp[i], MHD_OPTION_LISTEN_SOCKET, srv.fds[i],
					    MHD_OPTION_CONNECTION_TIMEOUT, 10u, MHD_OPTION_CONNECTION_LIMIT, 64u,
					    MHD_OPTION_NOTIFY_COMPLETED, on_completed, NULL,
					    MHD_OPTION_NOTIFY_CONNECTION, on_connection, NULL, MHD_OPTION_END);
		if (!srv.d[i])
			return errorf(err, errlen, "cannot start the REST API server");
	}
	return 0;
}

void api_shutdown(void)
{
	/* first refuse new connections, then let answers in flight go out */
	for (unsigned i = 0; i < srv.nfds; i++) {
		if (srv.d[i]) {
			MHD_socket s = MHD_quiesce_daemon(srv.d[i]);
			if (s != MHD_INVALID_SOCKET)
				close(s);
		} else {
			close(srv.fds[i]);
		}
	}
	if (*srv.unix_path)
		unlink(srv.unix_path);
	for (int waited = 0; waited < DRAIN_TIMEOUT_MS; waited += 10) {
		pthread_mutex_lock(&srv.lock);
		int open = srv.open_conns;
		pthread_mutex_unlock(&srv.lock);
		if (open <= 0)
			break;
		nanosleep(&(struct timespec){ .tv_nsec = 10 * 1000000 }, NULL);
	}
	for (unsigned i = 0; i < srv.nfds; i++)
		if (srv.d[i])
			MHD_stop_daemon(srv.d[i]);
	srv.nfds = 0;
	srv.unix_path[0] = 0;
}
