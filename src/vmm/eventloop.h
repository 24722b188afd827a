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

struct eventloop {
	int epfd;
	bool quit;
};

int ev_init(struct eventloop *ev);
/* The watch struct must stay valid while registered. */
int ev_add(struct eventloop *ev, struct ev_watch *w);
int ev_mod(struct eventloop *ev, struct ev_watch *w, uint32_t events);
void ev_del(struct eventloop *ev, struct ev_watch *w);
/* Run until ev->quit; timeout_ms < 0 waits forever between events. */
void ev_run(struct eventloop *ev);

#endif
