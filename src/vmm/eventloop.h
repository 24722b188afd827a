/* The I/O thread's epoll loop: device backends, ioeventfds, signals, timers. */
#ifndef KVKIT_EVENTLOOP_H
#define KVKIT_EVENTLOOP_H
#include <stdbool.h>
#include <stdint.h>

typedef void (*ev_handler)(void *opaque, uint32_t events);

struct ev_watch {
	int fd;
	uint32_t events;
	ev_handler fn;
	void *opaque;
};

/* For libraries that want a poll() loop of their own (libslirp): before
 * each wait, fill() adds pollfds and may shorten the timeout; afterwards
 * dispatch() gets them back with revents. The I/O thread then polls the
 * epoll fd and these together. */
struct pollfd;
struct ev_poll_hook {
	int (*fill)(void *opaque, struct pollfd *p, int max, int *timeout_ms);
	void (*dispatch)(void *opaque, struct pollfd *p, int n);
	void *opaque;
	int first, count; /* this round's slice of the pollfd array */
};
#define EV_MAX_HOOKS 8
#define EV_MAX_POLLFDS 1024

/* Runs after each round of events: a handler may retire a watch whose
 * event is still pending in the same round, so memory is freed here. */
struct ev_round_hook {
	void (*fn)(void *opaque);
	void *opaque;
};

struct eventloop {
	int epfd;
	bool quit;
	struct ev_poll_hook *hooks[EV_MAX_HOOKS];
	unsigned nhooks;
	struct ev_round_hook round_end[EV_MAX_HOOKS];
	unsigned nround_end;
};

int ev_init(struct eventloop *ev);
/* The watch struct must stay valid while registered. */
int ev_add(struct eventloop *ev, struct ev_watch *w);
int ev_mod(struct eventloop *ev, struct ev_watch *w, uint32_t events);
void ev_del(struct eventloop *ev, struct ev_watch *w);
int ev_add_poll_hook(struct eventloop *ev, struct ev_poll_hook *h);
void ev_del_poll_hook(struct eventloop *ev, struct ev_poll_hook *h);
int ev_add_round_end(struct eventloop *ev, void (*fn)(void *opaque), void *opaque);
/* Run until ev->quit. */
void ev_run(struct eventloop *ev);

#endif
