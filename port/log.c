/*
 * Port diagnostics on the saved stderr. Thread-safe: the name is set once at
 * start-up, and each line is formatted on the stack and written in one call.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int g_fd = 2;
static char g_name[64] = "pyport";
static int g_debug = -1;

void log_init(int fd, const char *name)
{
    g_fd = fd;
    if (name != NULL) {
        snprintf(g_name, sizeof g_name, "%s", name);
    }
    g_debug = getenv("PYPORT_DEBUG") != NULL;
}

int log_fd(void)
{
    return g_fd;
}

static void vlog(const char *level, const char *fmt, va_list ap)
{
    char line[1024];
    int n = snprintf(line, sizeof line, "pyport[%s %d] %s: ", g_name, (int)getpid(), level);
    if (n < 0 || (size_t)n >= sizeof line) {
        return;
    }
    int m = vsnprintf(line + n, sizeof line - (size_t)n - 1, fmt, ap);
    if (m < 0) {
        return;
    }
    size_t len = (size_t)n + (size_t)m;
    if (len > sizeof line - 2) {
        len = sizeof line - 2;
    }
    line[len++] = '\n';
    ssize_t w = write(g_fd, line, len);
    (void)w; /* nothing sensible to do if stderr is gone */
}

void log_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("error", fmt, ap);
    va_end(ap);
}

void log_warn(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vlog("warning", fmt, ap);
    va_end(ap);
}

void log_debug(const char *fmt, ...)
{
    if (g_debug < 0) {
        g_debug = getenv("PYPORT_DEBUG") != NULL;
    }
    if (!g_debug) {
        return;
    }
    va_list ap;
    va_start(ap, fmt);
    vlog("debug", fmt, ap);
    va_end(ap);
}
