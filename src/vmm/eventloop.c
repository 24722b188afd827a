/* epoll-based event loop for the I/O thread. */
#include "eventloop.h"
#include <errno.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "../util/log.h"

int ev_init(struct eventloop *ev)
{
	ev->quit = false;
	ev->epfd = epoll_create1(EPOLL_CLOEXEC);
	return ev->epfd < 0 ? -errno : 0;
}

int ev_add(struct eventloop *ev, struct ev_watch *w)
{
	struct epoll_event e = { .events = w->events, .data.ptr = w };
	return epoll_ctl(ev->epfd, EPOLL_CTL_ADD, w->fd, &e) < 0 ? -errno : 0;
}

int ev_mod(struct eventloop *ev, struct ev_watch *w, uint32_t events)
{
	struct epoll_event e = { .events = events, .data.ptr = w };
	w->events = events;
	return epoll_ctl(ev->epfd, EPOLL_CTL_MOD, w->fd, &e) < 0 ? -errno : 0;
}

void ev_del(struct eventloop *ev, struct ev_watch *w)
{
	epoll_ctl(ev->epfd, EPOLL_CTL_DEL, w->fd, NULL);
}

void ev_run(struct eventloop *ev)
{
	struct epoll_event evs[32];

	while (!ev->quit) {
		int n = epoll_wait(ev->epfd, evs, 32, -1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %m");
			return;
		}
		for (int i = 0; i < n && !ev->quit; i++) {
			struct ev_watch *w = evs[i].data.ptr;
			w->fn(w->opaque, evs[i].events);
		}
	}
}
