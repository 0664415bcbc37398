/*
 * cli_cmd: the subcommands of `cacheout`, each one a function of the parsed command line, the
 * settings and an HTTP client.  Plain output goes to stdout (one line per thing, no decoration,
 * so that scripts can read it), notes and errors to stderr; with --json stdout gets the API's
 * JSON.  On a terminal a pending job shows a spinner with its pending_reason on stderr.
 */
#ifndef CLI_CMD_H
#define CLI_CMD_H

#include "cli_args.h"
#include "cli_config.h"
#include "cli_http.h"

struct cli_ctx {
    const struct cli_opts *o;     /* borrowed */
    const struct cli_config *cfg; /* borrowed */
    struct cli_http *http;        /* borrowed */
    bool tty_err;                 /* stderr is a terminal: spinner and progress lines */
    bool tty_out;                 /* stdout is a terminal: column headers */
};

/**
 * Run the command of ctx->o.  Returns the process's exit status: 0, CLI_EXIT_API with the
 * error printed on stderr, or (submit --wait) the job's status as cli_job_exit_status() maps it.
 */
int cli_cmd_run(struct cli_ctx *ctx);

/** Ask a running wait or follow loop to stop (async-signal-safe: sets a flag). */
void cli_cmd_interrupt(void);

#endif
