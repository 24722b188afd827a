/* What the socket backends (fdnet.c, stream.c) share: checking an
 * inherited fd= and sizing a socket's kernel buffers. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include "net.h"

void net_set_socket_buffers(int fd)
{
	int snd = 1 << 20, rcv = 4 << 20;
	/* the FORCE variants pass wmem_max/rmem_max when we may; a cap is fine */
	if (setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &snd, sizeof(snd)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &snd, sizeof(snd));
	if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcv, sizeof(rcv)) < 0)
		setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
}

int net_check_inherited(int fd, int want, char *err, size_t errlen)
{
	int type = 0;
	socklen_t tl = sizeof(type);
	struct sockaddr_storage peer;
	socklen_t pl = sizeof(peer);
	if (fcntl(fd, F_GETFD) < 0) {
		snprintf(err, errlen, "invalid file descriptor: %d", fd);
		return -1;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &tl) < 0 || type != want) {
		snprintf(err, errlen, "fd=%d is not a %s socket%s", fd, want == SOCK_STREAM ? "stream" : "datagram",
			 want == SOCK_STREAM ? " (type=unixstream)" : "");
		return -1;
	}
	if (getpeername(fd, (struct sockaddr *)&peer, &pl) < 0) {
		snprintf(err, errlen, "fd=%d is not a connected socket: %s", fd, strerror(errno));
		return -1;
	}
	return 0;
}
