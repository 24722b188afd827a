/* virtio-console (1af4:1043), one port per device -> guest hvc0, hvc1, ...
 * Backends: a log file (output only), stdio, or a pseudo-terminal.
 * Output never blocks the I/O thread: a full stdout pauses the transmit
 * queue until it drains; a pty nobody reads drops output. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include "../util/log.h"
#include "../vmm/device.h"
#include "../vmm/vm.h"
#include "devices.h"
#include "virtio_pci.h"
#include <linux/virtio_console.h>

#define RX_Q 0
#define TX_Q 1

enum out_policy { OUT_FILE, OUT_WAIT, OUT_DROP };

struct console {
	struct virtio_dev dev;
	struct vm *vm;
	int in_fd, out_fd;
	int pty_slave_fd; /* held open so a pty without reader fills instead of hanging up */
	enum out_policy policy;
	struct ev_watch in_watch, out_watch;
	bool in_active, in_eof;
	/* a transmit chain partly written when stdout was full */
	bool tx_pending;
	size_t tx_off;
	struct virtq_elem rx_elem, tx_elem;
	/* logFilePath: its name, and bytes written to it since it was opened */
	char *log_path;
	uint64_t log_bytes, log_max;
};

/* A guest writing without end must not fill the host's disk: past this
 * size the log file is renamed PATH.1 (one older generation kept) and a
 * fresh one begun. KVKIT_CONSOLE_LOG_MAX_MIB changes it. */
#define LOG_MAX_DEFAULT (64ULL << 20)

static void log_rotate_if_full(struct console *c)
{
	if (!c->log_path || __atomic_load_n(&c->log_bytes, __ATOMIC_RELAXED) < c->log_max)
		return;
	size_t n = strlen(c->log_path) + 3;
	char *old = malloc(n);
	if (!old)
		return;
	snprintf(old, n, "%s.1", c->log_path);
	int fd = -1;
	if (rename(c->log_path, old) == 0)
		fd = open(c->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	/* dup2 keeps the descriptor number the vCPUs' early output uses */
	if (fd < 0 || dup2(fd, c->out_fd) < 0)
		log_warn("virtio-serial: cannot start a new log file %s: %m; writing on", c->log_path);
	else
		__atomic_store_n(&c->log_bytes, 0, __ATOMIC_RELAXED);
	if (fd >= 0)
		close(fd);
	free(old);
}

static void log_count(struct console *c, ssize_t w)
{
	if (c->log_path && w > 0)
		__atomic_add_fetch(&c->log_bytes, (uint64_t)w, __ATOMIC_RELAXED);
}

extern const struct device_type virtio_serial_device;
static struct termios saved_tio;
static bool tio_saved;

static void restore_terminal(void)
{
	if (tio_saved) {
		tcsetattr(STDIN_FILENO, TCSANOW, &saved_tio);
		tio_saved = false;
	}
}

static void set_in_watch(struct console *c, bool on)
{
	if (c->in_fd < 0 || c->in_eof || c->in_active == on)
		return;
	c->in_active = on;
	ev_mod(&c->vm->ev, &c->in_watch, on ? EPOLLIN : 0);
}

/* Guest input: fill receive buffers from the backend. */
static void rx_fill(struct console *c)
{
	struct virtio_dev *d = &c->dev;
	struct virtq *vq = &d->q[RX_Q].vq;
	bool any = false;

	if (!virtio_driver_ok(d) || !d->q[RX_Q].enabled)
		return;
	if (virtio_dev_paused(d)) {
		set_in_watch(c, false); /* rx_fill runs again at resume */
		return;
	}
	for (;;) {
		int r = virtq_pop(vq, &c->rx_elem);
		if (r <= 0) {
			/* no buffer (or a broken queue): stop reading until the guest adds some */
			set_in_watch(c, false);
			break;
		}
		struct virtq_elem *e = &c->rx_elem;
		ssize_t n = e->n_in ? readv(c->in_fd, e->iov + e->n_out, e->n_in) : 0;
		if (n < 0 && (errno == EAGAIN || errno == EINTR)) {
			virtq_unpop(vq);
			set_in_watch(c, true);
			break;
		}
		if (n <= 0) {
			virtq_unpop(vq);
			/* EOF on stdin, or a pty whose last reader went away (EIO) */
			if (n == 0 || errno != EIO) {
				ev_del(&c->vm->ev, &c->in_watch);
				c->in_eof = true;
			}
			break;
		}
		virtq_push(vq, e->head, n);
		any = true;
	}
	if (any)
		virtio_notify(d, RX_Q);
}

static void in_ready(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	(void)events;
	pthread_mutex_lock(&c->dev.lock);
	rx_fill(c);
	pthread_mutex_unlock(&c->dev.lock);
}

/* Write one chain's readable part from tx_off on; false = must wait. */
static bool tx_write(struct console *c, struct virtq_elem *e)
{
	size_t off = c->tx_off;
	log_rotate_if_full(c);
	for (unsigned i = 0; i < e->n_out; i++) {
		if (off >= e->iov[i].iov_len) {
			off -= e->iov[i].iov_len;
			continue;
		}
		const char *p = (const char *)e->iov[i].iov_base + off;
		size_t left = e->iov[i].iov_len - off;
		while (left) {
			ssize_t w = write(c->out_fd, p, left);
			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0 && errno == EAGAIN && c->policy == OUT_WAIT)
				return false;
			if (w <= 0)
				return true; /* dropped: EAGAIN on a pty, EPIPE, ... */
			log_count(c, w);
			p += w;
			left -= w;
			c->tx_off += w;
		}
		off = 0;
	}
	return true;
}

static void tx_drain(struct console *c)
{
	struct virtio_dev *d = &c->dev;
	struct virtq *vq = &d->q[TX_Q].vq;
	bool any = false;

	if (!d->q[TX_Q].enabled || virtio_dev_paused(d))
		return;
	for (;;) {
		if (!c->tx_pending) {
			if (virtq_pop(vq, &c->tx_elem) <= 0)
				break;
			c->tx_pending = true;
			c->tx_off = 0;
		}
		if (!tx_write(c, &c->tx_elem)) {
			ev_mod(&c->vm->ev, &c->out_watch, EPOLLOUT);
			break;
		}
		c->tx_pending = false;
		virtq_push(vq, c->tx_elem.head, 0);
		any = true;
	}
	if (any)
		virtio_notify(d, TX_Q);
}

static void out_ready(void *opaque, uint32_t events)
{
	struct console *c = opaque;
	(void)events;
	pthread_mutex_lock(&c->dev.lock);
	ev_mod(&c->vm->ev, &c->out_watch, 0);
	tx_drain(c);
	pthread_mutex_unlock(&c->dev.lock);
}

static void console_notify(struct virtio_dev *d, unsigned q)
{
	struct console *c = d->priv;
	if (q == RX_Q)
		rx_fill(c);
	else
		tx_drain(c);
}

static void console_reset(struct virtio_dev *d)
{
	struct console *c = d->priv;
	c->tx_pending = false;
	/* config: cols, rows = 0 (unknown); one port */
	memset(d->config, 0, 12);
	d->config[4] = 1;
}

static void console_config_written(struct virtio_dev *d, unsigned off, unsigned len)
{
	struct console *c = d->priv;
	/* emerg_wr at offset 8: one character, written at once */
	if (off <= 8 && off + len > 8 && c->out_fd >= 0) {
		ssize_t w = write(c->out_fd, &d->config[8], 1);
		if (w < 0)
			log_debug("virtio-console emergency write: %m");
		log_count(c, w);
	}
}

static const struct virtio_ops console_ops = {
	.name = "virtio-console",
	.device_id = VIRTIO_ID_CONSOLE,
	.class_code = 0x078000,
	.num_queues = 2,
	.queue_max = 256,
	.features = VIRTIO_BIT(VIRTIO_CONSOLE_F_EMERG_WRITE),
	.config_size = 12,
	.config_written = console_config_written,
	.queue_notify = console_notify,
	.reset = console_reset,
};

void virtio_console_early_output(struct vm *vm, const uint8_t *buf, size_t len)
{
	struct device *d = device_first(vm, &virtio_serial_device);
	struct console *c = d ? virtio_device_model(d) : NULL;
	if (!c || c->out_fd < 0)
		return;
	while (len) {
		ssize_t w = write(c->out_fd, buf, len);
		if (w <= 0)
			return; /* never wait here: this runs on a vCPU */
		log_count(c, w);
		buf += w;
		len -= w;
	}
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);
	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

static int open_pty(struct console *c, struct kv_serial *s, int *master, char *err, size_t errlen)
{
	int m = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (m < 0 || grantpt(m) < 0 || unlockpt(m) < 0) {
		snprintf(err, errlen, "virtio-serial: cannot allocate a pty: %s", strerror(errno));
		if (m >= 0)
			close(m);
		return -1;
	}
	char *name = ptsname(m);
	struct termios t;
	if (tcgetattr(m, &t) == 0) {
		cfmakeraw(&t);
		tcsetattr(m, TCSANOW, &t);
	}
	free(s->pty_name);
	s->pty_name = strdup(name ? name : "");
	/* Hold the slave open ourselves: with no reader the master would
	 * report hangup in a loop; with ours it just fills and we drop. */
	c->pty_slave_fd = open(s->pty_name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	set_nonblock(m);
	*master = m;
	log_info("Using PTY (pty path: %s)", s->pty_name);
	return 0;
}

static int console_create(struct vm *vm, struct kv_config *cfg, size_t i, char *err, size_t errlen)
{
	struct kv_serial *s = &cfg->devices[i].u.serial;
	struct console *c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "virtio-serial: out of memory");
		return -ENOMEM;
	}
	c->vm = vm;
	c->in_fd = c->out_fd = c->pty_slave_fd = -1;
	switch (s->mode) {
	case KV_SERIAL_LOGFILE:
		c->out_fd = open(s->log_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
		if (c->out_fd < 0) {
			snprintf(err, errlen, "virtio-serial: cannot open log file %s: %s", s->log_path, strerror(errno));
			free(c);
			return -errno;
		}
		c->policy = OUT_FILE;
		c->log_path = strdup(s->log_path);
		c->log_max = LOG_MAX_DEFAULT;
		const char *mib = getenv("KVKIT_CONSOLE_LOG_MAX_MIB");
		if (mib && strtoull(mib, NULL, 10))
			c->log_max = strtoull(mib, NULL, 10) << 20;
		break;
	case KV_SERIAL_STDIO:
		c->in_fd = STDIN_FILENO;
		c->out_fd = STDOUT_FILENO;
		c->policy = OUT_WAIT;
		if (isatty(STDIN_FILENO) && !tio_saved && tcgetattr(STDIN_FILENO, &saved_tio) == 0) {
			struct termios t = saved_tio;
			t.c_iflag &= ~ICRNL;
			t.c_lflag &= ~(ICANON | ECHO);
			tio_saved = true;
			tcsetattr(STDIN_FILENO, TCSANOW, &t);
		}
		struct stat st;
		/* stdout as a pipe is ours to make non-blocking; a TTY is shared with the shell */
		if (fstat(STDOUT_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode)))
			set_nonblock(STDOUT_FILENO);
		if (fstat(STDIN_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode) || S_ISCHR(st.st_mode)))
			set_nonblock(STDIN_FILENO);
		break;
	case KV_SERIAL_PTY: {
		int m;
		if (open_pty(c, s, &m, err, errlen) < 0) {
			free(c);
			return -EIO;
		}
		c->in_fd = c->out_fd = m;
		c->policy = OUT_DROP;
		break;
	}
	default:
		free(c);
		snprintf(err, errlen, "virtio-serial: no backend");
		return -EINVAL;
	}
	int r = virtio_dev_init(&c->dev, vm, &console_ops, c);
	if (r < 0) {
		snprintf(err, errlen, "virtio-serial: cannot create device: %s", strerror(-r));
		restore_terminal();
		return r;
	}
	if (c->in_fd >= 0) {
		/* a regular file or /dev/null on stdin cannot be polled: read it lazily */
		c->in_watch = (struct ev_watch){ .fd = c->in_fd, .events = 0, .fn = in_ready, .opaque = c };
		if (ev_add(&vm->ev, &c->in_watch) < 0) {
			log_debug("virtio-serial: input is not pollable, ignoring it");
			c->in_fd = -1;
		}
	}
	if (c->out_fd >= 0 && c->policy == OUT_WAIT) {
		c->out_watch = (struct ev_watch){ .fd = c->out_fd, .events = 0, .fn = out_ready, .opaque = c };
		if (ev_add(&vm->ev, &c->out_watch) < 0)
			c->policy = OUT_FILE; /* regular file: writes never wait */
	}
	return device_add(vm, &virtio_serial_device, &c->dev, err, errlen);
}

/* The terminal gets back the settings a stdio console changed. */
static void console_destroy(struct device *d)
{
	(void)d;
	restore_terminal();
}

const struct device_type virtio_serial_device = {
	.kind = KV_DEV_VIRTIO_SERIAL, .create = console_create, .resume = virtio_device_resume,
	.destroy = console_destroy,
};
