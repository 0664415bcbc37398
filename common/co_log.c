#include "co_log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "co_time.h"

/*
 * The log sink is one of the few globals the style allows: it is set up at start-up and guarded
 * by a mutex so that lines from several threads never interleave.
 */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static enum co_log_level log_level = CO_LOG_INFO;
static int log_fd = -1;

static const char *const level_names[] = {"DEBUG", "INFO", "WARNING", "ERROR"};

int
co_log_parse_level(const char *s, enum co_log_level *out, co_err *err)
{
    static const struct {
        const char *name;
        enum co_log_level level;
    } table[] = {
        {"DEBUG", CO_LOG_DEBUG},  {"INFO", CO_LOG_INFO},   {"WARNING", CO_LOG_WARNING},
        {"WARN", CO_LOG_WARNING}, {"ERROR", CO_LOG_ERROR}, {"CRITICAL", CO_LOG_ERROR},
        {"OFF", CO_LOG_OFF},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
        if (strcasecmp(s, table[i].name) == 0) {
            *out = table[i].level;
            return 0;
        }
    }
    return co_err_field(err, CO_E_INVAL, "LOG_LEVEL",
                        "invalid LOG_LEVEL '%s': expected DEBUG, INFO, WARNING or ERROR", s);
}

int
co_log_init(enum co_log_level level, const char *file, co_err *err)
{
    int fd = -1;

    if (file != NULL && file[0] != '\0') {
        fd = open(file, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
        if (fd < 0)
            return co_err_sys(err, errno, "cannot open log file '%s'", file);
    }
    pthread_mutex_lock(&log_lock);
    log_level = level;
    if (log_fd >= 0)
        close(log_fd);
    log_fd = fd;
    pthread_mutex_unlock(&log_lock);
    return 0;
}

void
co_log_close(void)
{
    pthread_mutex_lock(&log_lock);
    if (log_fd >= 0)
        close(log_fd);
    log_fd = -1;
    pthread_mutex_unlock(&log_lock);
}

int
co_log_enabled(enum co_log_level level)
{
    return level >= log_level && level < CO_LOG_OFF;
}

static void
write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return;
        }
        p += w;
        n -= (size_t)w;
    }
}

void
co_log(enum co_log_level level, const char *fmt, ...)
{
    char line[4096];
    char ts[CO_ISO_LEN];
    va_list ap;
    int n, m;
    int saved = errno;

    if (!co_log_enabled(level))
        return;
    co_time_iso(co_wall_ms(), ts);
    n = snprintf(line, sizeof(line), "%s level=%s ", ts, level_names[level]);
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (m < 0)
        m = 0;
    n += m;
    if ((size_t)n > sizeof(line) - 2)
        n = sizeof(line) - 2; /* truncated: keep the line a line */
    /* One event, one line: newlines inside a message would forge log lines. */
    for (int i = 0; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';

    pthread_mutex_lock(&log_lock);
    write_all(2, line, (size_t)n);
    if (log_fd >= 0)
        write_all(log_fd, line, (size_t)n);
    pthread_mutex_unlock(&log_lock);
    errno = saved;
}
