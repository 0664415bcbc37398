/* cli_file: whole-file reads (see cli_file.h). */
#include "cli_file.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_buf.h"

int
cli_file_read(const char *path, size_t max, char **data, size_t *len, struct stat *st, co_err *err)
{
    co_autoclose int fd = open(path, O_RDONLY | O_CLOEXEC);
    struct co_buf b = CO_BUF_INIT;
    struct stat sb;

    if (fd < 0)
        return co_err_sys(err, errno, "cannot open '%s'", path);
    if (fstat(fd, &sb) < 0)
        return co_err_sys(err, errno, "cannot stat '%s'", path);
    if (!S_ISREG(sb.st_mode))
        return co_err_set(err, CO_E_INVAL, "'%s' is not a regular file", path);
    for (;;) {
        co_buf_grow(&b, 65536);
        ssize_t n = read(fd, b.data + b.len, 65536);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            co_buf_release(&b);
            return co_err_sys(err, errno, "cannot read '%s'", path);
        }
        if (n == 0)
            break;
        b.len += (size_t)n;
        b.data[b.len] = '\0';
        if (b.len > max) {
            co_buf_release(&b);
            return co_err_set(err, CO_E_TOOLARGE, "'%s' is over %zu bytes", path, max);
        }
    }
    if (st != NULL)
        *st = sb;
    *data = co_buf_steal(&b, len);
    return 0;
}
