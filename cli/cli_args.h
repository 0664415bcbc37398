/*
 * cli_args: the command line of `cacheout` parsed into a plain struct, with one usage text per
 * subcommand.  Pure code (no I/O, no environment): the commands act on the result.
 *
 *   cacheout [--json] COMMAND [OPTIONS] [ARGS]
 *
 * Options take their value as the next word or after '=' (--cores 2, --cores=2); --json and
 * --help are accepted anywhere before `--`.
 */
#ifndef CLI_ARGS_H
#define CLI_ARGS_H

#include <stdbool.h>
#include <stddef.h>

#include "co_err.h"

enum cli_cmd {
    CLI_CMD_NONE = 0, /* no command: print the overview */
    CLI_CMD_SUBMIT,
    CLI_CMD_JOBS,
    CLI_CMD_SHOW,
    CLI_CMD_LOGS,
    CLI_CMD_CANCEL,
    CLI_CMD_ARTIFACTS,
    CLI_CMD_BALANCE,
    CLI_CMD_KEYS_CREATE,
    CLI_CMD_VERSION,
    CLI_CMD_COUNT_,
};

/* Scopes of `keys create --scope`. */
#define CLI_SCOPE_BUY 1u
#define CLI_SCOPE_SELL 2u

/*
 * A parsed command line.  Strings point into the argv given to cli_args_parse() (borrowed);
 * the arrays files and params are owned (cli_opts_release()).  Integer options are 0 when absent.
 */
struct cli_opts {
    enum cli_cmd cmd;
    bool help; /* --help/-h: print the command's usage and stop */
    bool json; /* --json: print the API's JSON */
    /* submit */
    long cores, ram_mb, timeout, priority, replicas;
    const char *image, *title, *description, *buyer;
    bool wait;
    const char **files; /* --file PATH, in order */
    size_t n_files;
    const char **params; /* --param K=V, in order (validated: K non-empty) */
    size_t n_params;
    char **argv; /* the job's command words (after `--`), borrowed */
    size_t argc;
    /* show, logs, cancel, artifacts */
    const char *id;
    bool follow;         /* logs -f */
    const char *out_dir; /* artifacts -o */
    /* jobs */
    const char *status;
    long limit;
    /* keys create, balance */
    const char *name;
    const char *user; /* --user ID: act on this user instead of the credential's (admin) */
    unsigned scopes;  /* CLI_SCOPE_* bits; 0 = the server's default */
};

/**
 * Parse @argc words of @argv (argv[0] is the program name).  On a usage error returns -1 with a
 * message in @err (and o->cmd set when the command was recognised, so that the caller can print
 * that command's usage).  @o is filled and owns its arrays on success and on failure: release it
 * with cli_opts_release() in both cases.
 */
int cli_args_parse(int argc, char **argv, struct cli_opts *o, co_err *err)
    __attribute__((warn_unused_result));

/** Free the arrays of @o (the strings are borrowed from argv). */
void cli_opts_release(struct cli_opts *o);

/** The usage text of @cmd (CLI_CMD_NONE: the overview); static, never NULL. */
const char *cli_usage(enum cli_cmd cmd);

/** The name of @cmd as typed ("submit", "keys create"); "" for CLI_CMD_NONE. */
const char *cli_cmd_name(enum cli_cmd cmd);

#endif
