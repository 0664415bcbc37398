/* cli_config: settings of `cacheout` from the environment and a config file (see cli_config.h). */
#include "cli_config.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "cli_file.h"
#include "co_alloc.h"

#define CONFIG_MAX (64 * 1024)

void
cli_config_release(struct cli_config *c)
{
    free(c->url);
    free(c->token);
    free(c->admin_token);
    free(c->ca_file);
    free(c->path);
    memset(c, 0, sizeof(*c));
}

static void
replace(char **slot, const char *v, size_t n)
{
    free(*slot);
    *slot = co_xstrndup(v, n);
}

static bool
blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

int
cli_config_parse(struct cli_config *c, const char *text, size_t len, const char *path, co_err *err)
{
    const char *p = text, *end = text + len;
    int line = 0;

    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *le = nl ? nl : end;
        const char *k = p, *ke, *v, *ve;
        line++;
        p = nl ? nl + 1 : end;
        while (k < le && blank(*k))
            k++;
        if (k == le || *k == '#')
            continue;
        const char *eq = memchr(k, '=', (size_t)(le - k));
        if (eq == NULL)
            return co_err_set(err, CO_E_INVAL, "%s:%d: expected 'key = value'", path, line);
        for (ke = eq; ke > k && blank(ke[-1]); ke--)
            ;
        for (v = eq + 1; v < le && blank(*v); v++)
            ;
        for (ve = le; ve > v && blank(ve[-1]); ve--)
            ;
        if (ve == v)
            return co_err_set(err, CO_E_INVAL, "%s:%d: empty value for '%.*s'", path, line,
                              (int)(ke - k), k);
        /* A value may be quoted, for values with leading or trailing blanks. */
        if (ve - v >= 2 && ((*v == '"' && ve[-1] == '"') || (*v == '\'' && ve[-1] == '\''))) {
            v++;
            ve--;
        }
        size_t kn = (size_t)(ke - k), vn = (size_t)(ve - v);
        if (memchr(v, '\0', vn) != NULL)
            return co_err_set(err, CO_E_INVAL, "%s:%d: NUL byte in the value", path, line);
        if (kn == 3 && memcmp(k, "url", 3) == 0)
            replace(&c->url, v, vn);
        else if (kn == 5 && memcmp(k, "token", 5) == 0)
            replace(&c->token, v, vn);
        else if (kn == 11 && memcmp(k, "admin_token", 11) == 0)
            replace(&c->admin_token, v, vn);
        else if (kn == 7 && memcmp(k, "ca_file", 7) == 0)
            replace(&c->ca_file, v, vn);
        else
            return co_err_set(err, CO_E_INVAL,
                              "%s:%d: unknown key '%.*s' (url, token, admin_token, ca_file)", path,
                              line, (int)kn, k);
    }
    return 0;
}

static char *
default_path(void)
{
    const char *x = getenv("XDG_CONFIG_HOME");
    const char *home = getenv("HOME");

    if (x != NULL && x[0] == '/')
        return co_xasprintf("%s/cacheout/config", x);
    if (home != NULL && home[0] != '\0')
        return co_xasprintf("%s/.config/cacheout/config", home);
    return NULL;
}

/* Read the file at @path into @c; a missing file is fine unless @required. */
static int
read_file(struct cli_config *c, const char *path, bool required, co_err *err)
{
    co_autofree char *text = NULL;
    size_t len = 0;
    struct stat st;

    if (cli_file_read(path, CONFIG_MAX, &text, &len, &st, err) < 0) {
        if (err->sys_errno == ENOENT && !required)
            return 0;
        return co_err_wrap(err, "config file");
    }
    if (cli_config_parse(c, text, len, path, err) < 0)
        return -1;
    c->path = co_xstrdup(path);
    c->loose_perms = (c->token || c->admin_token) && (st.st_mode & 077) != 0;
    return 0;
}

static const char *
env(const char *name)
{
    const char *v = getenv(name);
    return v != NULL && v[0] != '\0' ? v : NULL;
}

int
cli_config_load(struct cli_config *c, co_err *err)
{
    const char *explicit_path = env("CACHEOUT_CONFIG");
    co_autofree char *path = explicit_path ? co_xstrdup(explicit_path) : default_path();
    const char *v;

    memset(c, 0, sizeof(*c));
    if (path != NULL && read_file(c, path, explicit_path != NULL, err) < 0)
        return -1;
    if (env("CACHEOUT_TOKEN") || env("CACHEOUT_ADMIN_TOKEN")) {
        free(c->token);
        free(c->admin_token);
        c->token = c->admin_token = NULL;
        c->loose_perms = false;
        if ((v = env("CACHEOUT_TOKEN")) != NULL)
            c->token = co_xstrdup(v);
        if ((v = env("CACHEOUT_ADMIN_TOKEN")) != NULL)
            c->admin_token = co_xstrdup(v);
    }
    if ((v = env("CACHEOUT_URL")) != NULL)
        replace(&c->url, v, strlen(v));
    if ((v = env("CACHEOUT_CA_FILE")) != NULL || (v = env("TLS_CA_FILE")) != NULL)
        replace(&c->ca_file, v, strlen(v));
    if (c->url == NULL)
        c->url = co_xstrdup("http://127.0.0.1:8000");

    if (strncmp(c->url, "http://", 7) != 0 && strncmp(c->url, "https://", 8) != 0)
        return co_err_set(err, CO_E_INVAL, "url '%s' is not an http:// or https:// URL", c->url);
    size_t n = strlen(c->url);
    while (n > 0 && c->url[n - 1] == '/')
        c->url[--n] = '\0';
    if (c->token != NULL && c->admin_token != NULL)
        return co_err_set(err, CO_E_INVAL,
                          "both a user key (token) and the admin token are set: keep one");
    return 0;
}
