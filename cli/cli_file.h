/* cli_file: reading a whole local file (the config file, the files a job is submitted with). */
#ifndef CLI_FILE_H
#define CLI_FILE_H

#include <stddef.h>
#include <sys/stat.h>

#include "co_err.h"

/**
 * Read the regular file @path whole into *data (caller-owned, NUL-terminated, of *len bytes);
 * *st (if not NULL) receives its fstat.  Errors: it cannot be opened (errno ENOENT is kept in
 * err->sys_errno), is not a regular file, cannot be read, or is over @max bytes (CO_E_TOOLARGE).
 */
int cli_file_read(const char *path, size_t max, char **data, size_t *len, struct stat *st,
                  co_err *err) __attribute__((warn_unused_result));

#endif
