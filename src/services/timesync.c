/* The timesync watcher: one thread. Triggers: boot (retried until the agent
 * first answers), host resume from suspend (CLOCK_BOOTTIME grew past
 * CLOCK_MONOTONIC by >= 1 s between samples 5 s apart), REST Resume. Each
 * attempt is a fresh vsock connection; a failed one is retried with backoff
 * 1, 2, 4 ... 30 s, for 2 minutes per trigger (the boot trigger: every
 * 5 s at most, until it works). The watcher never stops for good. */
#include "timesync.h"
#include <sys/prctl.h>
#include <errno.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vsock/vsock.h"
#include "../sandbox/sandbox.h"

#define SAMPLE_S 5
#define ANSWER_TIMEOUT_MS 5000
#define RETRY_WINDOW_S 120
#define BACKOFF_MAX_S 30
#define BOOT_BACKOFF_MAX_S 5 /* a booting guest is polled more often */

static struct {
	struct vsock *v;
	uint32_t port;
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool running, stop, triggered;
	int stop_fd; /* wakes an exchange in progress at exit */
} ts = { .lock = PTHREAD_MUTEX_INITIALIZER, .stop_fd = -1 };

static int64_t now_ns(clockid_t c)
{
	struct timespec t;
	clock_gettime(c, &t);
	return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

/* One exchange with the agent. 1 = clock set, 0 = the agent answered with
 * something else (not retried: it would answer the same), -1 = retry. */
static int sync_once(void)
{
	int fd = vsock_dial_guest(ts.v, ts.port);
	if (fd < 0)
		return -1;
	char cmd[160], line[512];
	int n = snprintf(cmd, sizeof(cmd), "{\"execute\": \"guest-set-time\", \"arguments\":{\"time\": %lld}}\n",
			 (long long)now_ns(CLOCK_REALTIME));
	int rc = -1;
	size_t got = 0;
	if (write(fd, cmd, n) != n)
		goto out;
	for (;;) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLIN }, { .fd = ts.stop_fd, .events = POLLIN } };
		if (poll(p, 2, ANSWER_TIMEOUT_MS) <= 0 || p[1].revents)
			goto out;
		ssize_t r = read(fd, line + got, sizeof(line) - 1 - got);
		if (r <= 0)
			goto out; /* refused or closed: nobody listens yet */
		got += r;
		line[got] = 0;
		if (strchr(line, '\n') || got == sizeof(line) - 1)
			break;
	}
	line[strcspn(line, "\n")] = 0;
	if (strstr(line, "\"return\"") && !strstr(line, "\"error\"")) {
		rc = 1;
	} else {
		log_warn("timesync: qemu-guest-agent answered: %s", line);
		rc = 0;
	}
out:
	close(fd);
	return rc;
}

/* Wait up to ms for stop or a trigger; true if triggered. */
static bool wait_ms(int64_t ms)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	t.tv_sec += ms / 1000;
	t.tv_nsec += (ms % 1000) * 1000000;
	if (t.tv_nsec >= 1000000000) {
		t.tv_sec++;
		t.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&ts.lock);
	while (!ts.stop && !ts.triggered)
		if (pthread_cond_timedwait(&ts.cond, &ts.lock, &t) == ETIMEDOUT)
			break;
	bool trig = ts.triggered;
	ts.triggered = false;
	pthread_mutex_unlock(&ts.lock);
	return trig;
}

/* What a pending sync is up to: retried with backoff until window_end. */
struct attempt {
	bool pending;
	int backoff;
	int64_t next_try, window_end;
};

/* A new trigger: try at once, then back off for RETRY_WINDOW_S. */
static void arm(struct attempt *a, int64_t mono_now)
{
	*a = (struct attempt){ .pending = true, .backoff = 1, .next_try = 0,
			       .window_end = mono_now + RETRY_WINDOW_S * 1000000000LL };
}

static void *watcher(void *arg)
{
	(void)arg;
	prctl(PR_SET_NAME, "timesync", 0, 0, 0);
	bool boot = true;
	struct attempt a;
	arm(&a, now_ns(CLOCK_MONOTONIC));
	int64_t slept = now_ns(CLOCK_BOOTTIME) - now_ns(CLOCK_MONOTONIC);
	while (!ts.stop) {
		sandbox_thread(SANDBOX_TIMESYNC);
		int64_t mono = now_ns(CLOCK_MONOTONIC);
		int64_t s = now_ns(CLOCK_BOOTTIME) - mono;
		if (s - slept >= 1000000000LL) {
			log_info("timesync: the host slept %.1f s, syncing the guest clock", (s - slept) / 1e9);
			arm(&a, mono);
		}
		slept = s;
		if (a.pending && mono >= a.next_try) {
			int r = sync_once();
			if (r >= 0) {
				if (r > 0)
					log_info("timesync: guest clock set through vsock port %u", ts.port);
				a.pending = boot = false;
			} else if (!boot && now_ns(CLOCK_MONOTONIC) >= a.window_end) {
				log_warn("timesync: qemu-guest-agent on vsock port %u did not answer for %d s; will retry at "
					 "the next trigger", ts.port, RETRY_WINDOW_S);
				a.pending = false;
			} else {
				a.next_try = now_ns(CLOCK_MONOTONIC) + a.backoff * 1000000000LL;
				int max = boot ? BOOT_BACKOFF_MAX_S : BACKOFF_MAX_S;
				a.backoff = a.backoff * 2 > max ? max : a.backoff * 2;
			}
		}
		int64_t wait = SAMPLE_S * 1000;
		if (a.pending) {
			int64_t until = (a.next_try - now_ns(CLOCK_MONOTONIC)) / 1000000;
			if (until < wait)
				wait = until > 0 ? until : 0;
		}
		if (wait_ms(wait))
			arm(&a, now_ns(CLOCK_MONOTONIC));
	}
	return NULL;
}

int timesync_start(struct vsock *v, uint32_t port)
{
	ts.v = v;
	ts.port = port;
	ts.stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (ts.stop_fd < 0)
		return -errno;
	pthread_condattr_t ca;
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ts.cond, &ca);
	pthread_condattr_destroy(&ca);
	int r = pthread_create(&ts.thread, NULL, watcher, NULL);
	if (r)
		return -r;
	ts.running = true;
	return 0;
}

void timesync_trigger(void)
{
	if (!ts.running)
		return;
	pthread_mutex_lock(&ts.lock);
	ts.triggered = true;
	pthread_cond_signal(&ts.cond);
	pthread_mutex_unlock(&ts.lock);
}

void timesync_stop(void)
{
	if (!ts.running)
		return;
	pthread_mutex_lock(&ts.lock);
	ts.stop = true;
	pthread_cond_signal(&ts.cond);
	pthread_mutex_unlock(&ts.lock);
	uint64_t one = 1;
	if (write(ts.stop_fd, &one, sizeof(one)) < 0)
		log_debug("timesync: cannot wake the watcher");
	pthread_join(ts.thread, NULL);
	close(ts.stop_fd);
	ts.running = false;
}
