/*
 * Force-included into every translation unit (-include co_banned.h).  Functions that are easy to
 * misuse become compile errors; use the safe alternative named in the message instead.
 */
#ifndef CO_BANNED_H
#define CO_BANNED_H

/*
 * The system headers that declare the banned functions are included first, so that their
 * declarations are parsed before the macros below exist (their include guards keep later
 * inclusions from seeing the macros).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CO_BANNED(func) sorry_##func##_is_a_banned_function

#undef sprintf
#define sprintf(...) CO_BANNED(sprintf_use_snprintf)
#undef vsprintf
#define vsprintf(...) CO_BANNED(vsprintf_use_vsnprintf)
#undef strcpy
#define strcpy(x, y) CO_BANNED(strcpy_use_co_strlcpy)
#undef strcat
#define strcat(x, y) CO_BANNED(strcat_use_co_buf)
#undef strncpy
#define strncpy(x, y, n) CO_BANNED(strncpy_use_co_strlcpy)
#undef strncat
#define strncat(x, y, n) CO_BANNED(strncat_use_co_buf)
#undef strtok
#define strtok(x, y) CO_BANNED(strtok_use_strtok_r)
#undef gmtime
#define gmtime(t) CO_BANNED(gmtime_use_gmtime_r)
#undef localtime
#define localtime(t) CO_BANNED(localtime_use_localtime_r)
#undef asctime
#define asctime(t) CO_BANNED(asctime_use_strftime)
#undef ctime
#define ctime(t) CO_BANNED(ctime_use_strftime)
#undef system
#define system(c) CO_BANNED(system_no_host_shell)
#undef gets
#define gets(s) CO_BANNED(gets)

#endif
