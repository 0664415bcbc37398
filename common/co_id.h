/* Identifiers: random UUIDv4 strings and validation of client-chosen ids. */
#ifndef CO_ID_H
#define CO_ID_H

#include <stdbool.h>
#include <stddef.h>

#include "co_err.h"

#define CO_UUID_STRLEN 36
#define CO_ID_MAX 64

/** Write a random UUIDv4 ("xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx") and a NUL into @out. */
void co_uuid4(char out[CO_UUID_STRLEN + 1]);

/** Fill @buf with @len bytes from getrandom(); aborts if the kernel cannot provide them. */
void co_random_bytes(void *buf, size_t len);

/** Write @nbytes random bytes as 2*nbytes lower-case hex characters plus a NUL into @out. */
void co_random_hex(char *out, size_t nbytes);

/** True if @s is a valid id: 1-64 characters of [A-Za-z0-9._-]. */
bool co_id_valid(const char *s);

/** As co_id_valid() with an error naming @what and the reason. */
int co_id_check(const char *s, const char *what, co_err *err) __attribute__((warn_unused_result));

#endif
