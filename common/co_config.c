#include "co_config.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "co_alloc.h"
#include "co_credits.h"

static char *
trim(char *s)
{
    char *e;
    while (isspace((unsigned char)*s))
        s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        *--e = '\0';
    return s;
}

int
co_config_load_env_file(const char *path, bool optional, co_err *err)
{
    co_autofclose FILE *f = fopen(path, "re");
    char line[8192];
    int lineno = 0;

    if (f == NULL) {
        if (optional && errno == ENOENT)
            return 0;
        return co_err_sys(err, errno, "cannot open '%s'", path);
    }
    while (fgets(line, sizeof(line), f) != NULL) {
        char *p, *eq, *key, *val;
        lineno++;
        p = trim(line);
        if (*p == '\0' || *p == '#')
            continue;
        if (strncmp(p, "export ", 7) == 0)
            p = trim(p + 7);
        eq = strchr(p, '=');
        if (eq == NULL)
            return co_err_set(err, CO_E_INVAL, "'%s' line %d: expected KEY=VALUE", path, lineno);
        *eq = '\0';
        key = trim(p);
        val = trim(eq + 1);
        if (*key == '\0')
            return co_err_set(err, CO_E_INVAL, "'%s' line %d: empty variable name", path, lineno);
        for (char *k = key; *k; k++) {
            if (!(isalnum((unsigned char)*k) || *k == '_'))
                return co_err_set(err, CO_E_INVAL, "'%s' line %d: invalid variable name '%s'", path,
                                  lineno, key);
        }
        size_t vl = strlen(val);
        if (vl >= 2 && (val[0] == '"' || val[0] == '\'') && val[vl - 1] == val[0]) {
            val[vl - 1] = '\0';
            val++;
        } else {
            /* An unquoted value may carry a trailing comment: "PORT=8000  # the port". */
            char *hash = strstr(val, " #");
            if (hash != NULL) {
                *hash = '\0';
                val = trim(val);
            }
        }
        if (setenv(key, val, 0) != 0)
            return co_err_sys(err, errno, "'%s' line %d: cannot set '%s'", path, lineno, key);
    }
    return 0;
}

const char *
co_config_str(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v == NULL || v[0] == '\0') ? def : v;
}

int
co_parse_int(const char *s, const char *what, int64_t min, int64_t max, int64_t *out, co_err *err)
{
    char *end;
    long long v;

    errno = 0;
    while (isspace((unsigned char)*s))
        s++;
    if (*s == '\0')
        return co_err_field(err, CO_E_INVAL, what, "invalid %s '': not an integer", what);
    v = strtoll(s, &end, 10);
    while (isspace((unsigned char)*end))
        end++;
    if (*end != '\0')
        return co_err_field(err, CO_E_INVAL, what, "invalid %s '%s': not an integer", what, s);
    if (errno == ERANGE || v < min || v > max)
        return co_err_field(err, CO_E_RANGE, what, "invalid %s '%s': must be between %lld and %lld",
                            what, s, (long long)min, (long long)max);
    *out = v;
    return 0;
}

int
co_config_int(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out, co_err *err)
{
    const char *v = co_config_str(name, NULL);
    if (v == NULL) {
        *out = def;
        return 0;
    }
    return co_parse_int(v, name, min, max, out, err);
}

int
co_config_bool(const char *name, bool def, bool *out, co_err *err)
{
    static const char *const yes[] = {"1", "true", "yes", "on"};
    static const char *const no[] = {"0", "false", "no", "off"};
    const char *v = co_config_str(name, NULL);

    if (v == NULL) {
        *out = def;
        return 0;
    }
    for (size_t i = 0; i < 4; i++) {
        if (strcasecmp(v, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(v, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return co_err_field(err, CO_E_INVAL, name, "invalid %s '%s': expected true or false", name, v);
}

int
co_config_credits(const char *name, const char *def, int64_t max_micro, int64_t *out, co_err *err)
{
    const char *v = co_config_str(name, def);
    int64_t m;

    if (co_credits_parse(v, strlen(v), name, &m, err) < 0)
        return -1;
    if (m < 0 || m > max_micro) {
        char maxs[CO_CREDITS_STRLEN];
        co_credits_format(max_micro, maxs);
        return co_err_field(err, CO_E_RANGE, name, "invalid %s '%s': must be between 0 and %s",
                            name, v, maxs);
    }
    *out = m;
    return 0;
}

int
co_parse_size(const char *s, const char *what, int64_t *out, co_err *err)
{
    char *end;
    unsigned long long v;
    int shift = 0;

    errno = 0;
    if (!isdigit((unsigned char)*s))
        return co_err_field(err, CO_E_INVAL, what, "invalid %s '%s': not a size", what, s);
    v = strtoull(s, &end, 10);
    if (errno == ERANGE)
        return co_err_field(err, CO_E_RANGE, what, "invalid %s '%s': too large", what, s);
    switch (*end) {
    case '\0':
        break;
    case 'k':
    case 'K':
        shift = 10;
        break;
    case 'm':
    case 'M':
        shift = 20;
        break;
    case 'g':
    case 'G':
        shift = 30;
        break;
    case 't':
    case 'T':
        shift = 40;
        break;
    default:
        return co_err_field(err, CO_E_INVAL, what,
                            "invalid %s '%s': unknown unit (use K, M, G or T)", what, s);
    }
    if (*end != '\0') {
        end++;
        if (strcmp(end, "iB") == 0 || strcmp(end, "B") == 0 || strcmp(end, "b") == 0)
            end += strlen(end);
        if (*end != '\0')
            return co_err_field(err, CO_E_INVAL, what, "invalid %s '%s': unknown unit", what, s);
    }
    if (shift > 0 && v > (unsigned long long)INT64_MAX >> shift)
        return co_err_field(err, CO_E_RANGE, what, "invalid %s '%s': too large", what, s);
    v <<= shift;
    if (v > (unsigned long long)INT64_MAX)
        return co_err_field(err, CO_E_RANGE, what, "invalid %s '%s': too large", what, s);
    *out = (int64_t)v;
    return 0;
}

int
co_config_size(const char *name, int64_t def, int64_t min, int64_t max, int64_t *out, co_err *err)
{
    const char *v = co_config_str(name, NULL);
    int64_t n;

    if (v == NULL) {
        *out = def;
        return 0;
    }
    if (co_parse_size(v, name, &n, err) < 0)
        return -1;
    if (n < min || n > max)
        return co_err_field(err, CO_E_RANGE, name,
                            "invalid %s '%s': must be between %lld and %lld bytes", name, v,
                            (long long)min, (long long)max);
    *out = n;
    return 0;
}

int
co_parse_duration_ms(const char *s, const char *what, int64_t *out, co_err *err)
{
    int64_t micro;
    const char *unit;
    size_t numlen;
    int64_t scale; /* milliseconds per unit */

    for (unit = s; *unit && (isdigit((unsigned char)*unit) || *unit == '.'); unit++)
        ;
    numlen = (size_t)(unit - s);
    if (numlen == 0)
        return co_err_field(err, CO_E_INVAL, what, "invalid %s '%s': not a duration", what, s);
    if (*unit == '\0' || strcmp(unit, "s") == 0)
        scale = 1000;
    else if (strcmp(unit, "ms") == 0)
        scale = 1;
    else if (strcmp(unit, "m") == 0 || strcmp(unit, "min") == 0)
        scale = 60000;
    else if (strcmp(unit, "h") == 0)
        scale = 3600000;
    else
        return co_err_field(err, CO_E_INVAL, what,
                            "invalid %s '%s': unknown unit (use ms, s, m or h)", what, s);
    /* Reuse the exact decimal parser: a duration is a decimal with up to 6 fractional digits. */
    if (co_credits_parse(s, numlen, what, &micro, err) < 0)
        return co_err_wrap(err, "invalid duration");
    __int128 ms = (__int128)micro * scale / CO_MICRO;
    if (ms > INT64_MAX)
        return co_err_field(err, CO_E_RANGE, what, "invalid %s '%s': too large", what, s);
    *out = (int64_t)ms;
    return 0;
}
