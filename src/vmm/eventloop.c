/* epoll-based event loop for the I/O thread. */
#include "eventloop.h"
#include <errno.h>
#include <poll.h>
#include <stdlib.h>
#include <sys/epoll.h>
#include <unistd.h>
#include "../util/log.h"

int ev_init(struct eventloop *ev)
{
	ev->quit = false;
	ev->nround_end = 0;
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

int ev_add_poll_hook(struct eventloop *ev, struct ev_poll_hook *h)
{
	if (ev->nhooks >= EV_MAX_HOOKS)
		return -ENOSPC;
	ev->hooks[ev->nhooks++] = h;
	return 0;
}

void ev_del_poll_hook(struct eventloop *ev, struct ev_poll_hook *h)
{
	for (unsigned i = 0; i < ev->nhooks; i++)
		if (ev->hooks[i] == h) {
			ev->hooks[i] = ev->hooks[--ev->nhooks];
			return;
		}
}

int ev_add_round_end(struct eventloop *ev, void (*fn)(void *opaque), void *opaque)
{
	if (ev->nround_end >= EV_MAX_HOOKS)
		return -ENOSPC;
	ev->round_end[ev->nround_end++] = (struct ev_round_hook){ fn, opaque };
	return 0;
}

/* One round with poll hooks: poll the epoll fd and the hooks' fds. */
static int poll_round(struct eventloop *ev, struct pollfd *pfd)
{
	int n = 1, timeout = -1;
	pfd[0] = (struct pollfd){ .fd = ev->epfd, .events = POLLIN };
	for (unsigned i = 0; i < ev->nhooks; i++) {
		struct ev_poll_hook *h = ev->hooks[i];
		h->first = n;
		h->count = h->fill(h->opaque, pfd + n, EV_MAX_POLLFDS - n, &timeout);
		n += h->count;
	}
	int r = poll(pfd, n, timeout);
	if (r < 0 && errno != EINTR) {
		log_error("poll: %m");
		return -1;
	}
	for (unsigned i = 0; i < ev->nhooks && r >= 0; i++) {
		struct ev_poll_hook *h = ev->hooks[i];
		h->dispatch(h->opaque, pfd + h->first, h->count);
	}
	return 0;
}

void ev_run(struct eventloop *ev)
{
	struct epoll_event evs[32];
	struct pollfd *pfd = NULL;

	while (!ev->quit) {
		int wait = -1;
		if (ev->nhooks) {
			if (!pfd && !(pfd = calloc(EV_MAX_POLLFDS, sizeof(*pfd)))) {
				log_error("event loop: out of memory");
				return;
			}
			if (poll_round(ev, pfd) < 0)
				break;
			wait = 0; /* the epoll fd was in the poll set */
		}
		int n = epoll_wait(ev->epfd, evs, 32, wait);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			log_error("epoll_wait: %m");
			break;
		}
		for (int i = 0; i < n && !ev->quit; i++) {
			struct ev_watch *w = evs[i].data.ptr;
			w->fn(w->opaque, evs[i].events);
		}
		for (unsigned i = 0; i < ev->nround_end; i++)
			ev->round_end[i].fn(ev->round_end[i].opaque);
	}
	free(pfd);
}
