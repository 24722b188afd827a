/* Listening unix stream sockets that kvkit creates (REST API, vsock
 * connect/mux entries): a stale socket file is replaced, a live one or a
 * file that is not a socket is refused. */
#ifndef KVKIT_UNIXSOCK_H
#define KVKIT_UNIXSOCK_H
#include <stddef.h>

#define UNIX_PATH_MAX_LEN 107

/* Bind and listen at path (mode 0600), non-blocking, close-on-exec.
 * Returns the fd, or -1 with "cannot listen on <label>: <reason>" in err. */
int unix_listen(const char *path, const char *label, char *err, size_t errlen);

#endif
