/* Logging to stderr in vfkit's logrus text format, never blocking the caller. */
#include "log.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static enum log_level g_level = LOG_INFO;
static struct timespec g_start;
static unsigned long g_dropped;
static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;

void log_init(enum log_level level)
{
	struct stat st;

	g_level = level;
	clock_gettime(CLOCK_MONOTONIC, &g_start);
	/* A pipe or socket on stderr is ours alone once the parent closed its
	 * end: make it non-blocking so a stalled reader cannot stall the VM.
	 * A TTY or file is left alone (shared with the shell / never blocks). */
	if (fstat(STDERR_FILENO, &st) == 0 && (S_ISFIFO(st.st_mode) || S_ISSOCK(st.st_mode))) {
		int fl = fcntl(STDERR_FILENO, F_GETFL);
		if (fl >= 0)
			fcntl(STDERR_FILENO, F_SETFL, fl | O_NONBLOCK);
	}
}

void log_phase(const char *what)
{
	if (!log_enabled(LOG_DEBUG))
		return;
	struct timespec wall, cpu;
	clock_gettime(CLOCK_REALTIME, &wall);
	/* a system call (no vDSO for it), in every thread's seccomp list */
	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &cpu);
	log_msg(LOG_DEBUG, "phase %s: at %lld.%06ld, %.3f ms after start, CPU %.3f ms", what, (long long)wall.tv_sec,
		wall.tv_nsec / 1000, log_uptime_ms(), cpu.tv_sec * 1e3 + cpu.tv_nsec / 1e6);
}

void log_set_level(enum log_level level) { g_level = level; }
bool log_enabled(enum log_level level) { return level <= g_level; }

double log_uptime_ms(void)
{
	struct timespec now;
	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - g_start.tv_sec) * 1e3 + (now.tv_nsec - g_start.tv_nsec) / 1e6;
}

static const char *level_name(enum log_level l)
{
	switch (l) {
	case LOG_ERROR: return "error";
	case LOG_WARN: return "warning";
	case LOG_INFO: return "info";
	default: return "debug";
	}
}

/* logfmt quoting; other control bytes become \xNN, so text from the
 * guest (firmware lines, agent answers, file names) cannot send escape
 * sequences to the user's terminal. */
static size_t escape(char *dst, size_t cap, const char *src)
{
	size_t n = 0;
	for (; *src && n + 5 < cap; src++) {
		unsigned char ch = (unsigned char)*src;
		if ((ch < 0x20 && ch != '\n' && ch != '\t') || ch == 0x7f) {
			n += (size_t)snprintf(dst + n, cap - n, "\\x%02x", ch);
			continue;
		}
		if (*src == '"' || *src == '\\') {
			dst[n++] = '\\';
			dst[n++] = *src;
		} else if (*src == '\n') {
			dst[n++] = '\\';
			dst[n++] = 'n';
		} else if (*src == '\t') {
			dst[n++] = '\\';
			dst[n++] = 't';
		} else {
			dst[n++] = *src;
		}
	}
	dst[n] = 0;
	return n;
}

static bool write_line(const char *buf, size_t len)
{
	ssize_t w = write(STDERR_FILENO, buf, len);
	return w == (ssize_t)len || (w < 0 && errno == EPIPE);
}

void log_msg(enum log_level level, const char *fmt, ...)
{
	char text[1024], esc[4200], line[4400], ts[40];
	struct timespec now;
	struct tm tm;
	va_list ap;
	int n;

	if (!log_enabled(level))
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	escape(esc, sizeof(esc), text);
	clock_gettime(CLOCK_REALTIME, &now);
	localtime_r(&now.tv_sec, &tm);
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S%z", &tm);
	/* RFC 3339 wants the zone as +hh:mm */
	size_t tl = strlen(ts);
	if (tl >= 5) {
		memmove(ts + tl - 1, ts + tl - 2, 3);
		ts[tl - 2] = ':';
	}
	pthread_mutex_lock(&g_lock);
	if (g_dropped) {
		n = snprintf(line, sizeof(line), "time=\"%s\" level=warning msg=\"%lu log lines dropped (stderr full)\"\n", ts, g_dropped);
		if (write_line(line, n))
			g_dropped = 0;
	}
	n = snprintf(line, sizeof(line), "time=\"%s\" level=%s msg=\"%s\"\n", ts, level_name(level), esc);
	if (n > (int)sizeof(line) - 1)
		n = sizeof(line) - 1;
	if (!write_line(line, n))
		g_dropped++;
	pthread_mutex_unlock(&g_lock);
}

int errorf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}
