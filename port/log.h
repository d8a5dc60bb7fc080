/*
 * The port's own diagnostics: one line per message on the stderr the port was
 * started with (the BEAM's stderr), saved before fd 2 is redirected. Each line
 * is written with a single write(2), so lines from different threads never mix.
 */
#ifndef PYPORT_LOG_H
#define PYPORT_LOG_H

/// Sets the fd to log to and the context name shown in every line; call once at start.
void log_init(int fd, const char *name);

/// Returns the fd given to log_init (2 before it is called).
int log_fd(void);

/// Logs at error level (always shown).
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/// Logs at warning level (always shown).
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/// Logs at debug level (shown only when PYPORT_DEBUG is set in the environment).
void log_debug(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
