/*
 * cli_config: where `cacheout` finds its coordinator and its credential.
 *
 * Sources, later ones winning key by key: the defaults (url http://127.0.0.1:8000), the config
 * file, the environment.  The file is CACHEOUT_CONFIG if set (it must then exist), else
 * $XDG_CONFIG_HOME/cacheout/config or ~/.config/cacheout/config (optional), with lines
 * `key = value` (keys url, token, admin_token, ca_file; '#' starts a comment line).  The
 * environment: CACHEOUT_URL, CACHEOUT_TOKEN, CACHEOUT_ADMIN_TOKEN, CACHEOUT_CA_FILE, TLS_CA_FILE.
 * The credential comes from one source: when the environment sets CACHEOUT_TOKEN or
 * CACHEOUT_ADMIN_TOKEN, the file's token and admin_token are ignored.  Setting both a token and
 * an admin token in one source is an error.
 */
#ifndef CLI_CONFIG_H
#define CLI_CONFIG_H

#include <stdbool.h>
#include <stddef.h>

#include "co_err.h"

struct cli_config {
    char *url;         /* base URL without a trailing '/', e.g. "https://co.example:8443" */
    char *token;       /* a user key (Authorization: Bearer), or NULL */
    char *admin_token; /* the admin token (X-Admin-Token), or NULL */
    char *ca_file;     /* CA bundle to verify the server with, or NULL: the system store */
    char *path;        /* the config file read, or NULL */
    bool loose_perms;  /* the file holding a credential is readable by group or others */
};

/**
 * Fill @c from the defaults, the file and the environment (see above).  Errors: a file that
 * cannot be read or has a bad line (with its path and line number), a URL that is not http(s),
 * both credentials set.  @c is caller-owned: cli_config_release() it, also after an error.
 */
int cli_config_load(struct cli_config *c, co_err *err) __attribute__((warn_unused_result));

/**
 * Apply the `key = value` lines of @text (@len bytes; @path only names it in messages) to @c.
 * Errors: a line without '=', an unknown key, an empty value.
 */
int cli_config_parse(struct cli_config *c, const char *text, size_t len, const char *path,
                     co_err *err) __attribute__((warn_unused_result));

/** Free the strings of @c. */
void cli_config_release(struct cli_config *c);

#endif
