/* Logging in vfkit's style: time="RFC3339" level=L msg="text", to stderr.
 * A log write never blocks: on a full pipe the line is dropped and counted. */
#ifndef KVKIT_LOG_H
#define KVKIT_LOG_H
#include <stdbool.h>
#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

void log_init(enum log_level level);
void log_set_level(enum log_level level);
bool log_enabled(enum log_level level);
void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Format a one-line error into err for the caller to report; returns -1. */
int errorf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
double log_uptime_ms(void);
/* At debug level: a start-up or shut-down milestone with the wall clock
 * (CLOCK_REALTIME, so a benchmark can set it beside its own and another
 * VMM's trace), the time since start and the process's CPU time so far. */
void log_phase(const char *what);

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...) log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...) log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) do { if (log_enabled(LOG_DEBUG)) log_msg(LOG_DEBUG, __VA_ARGS__); } while (0)

#endif
