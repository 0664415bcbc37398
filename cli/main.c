/*
 * cacheout: the buyer's command-line client of a CacheOut coordinator.  Parses the command line
 * (cli_args), reads the settings (cli_config), and runs one command (cli_cmd) over libcurl
 * (cli_http).  Exit status: 0, 1 for API/network errors, 2 for usage errors, or the job's status
 * for `submit --wait` (cli_job.h).
 */
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli_args.h"
#include "cli_cmd.h"
#include "cli_config.h"
#include "cli_http.h"
#include "cli_job.h"

static void
on_interrupt(int sig)
{
    (void)sig;
    cli_cmd_interrupt();
}

int
main(int argc, char **argv)
{
    struct cli_opts o;
    struct cli_config cfg = {0};
    co_err err = CO_ERR_INIT;
    int status = CLI_EXIT_USAGE;

    json_object_seed(0);
    if (cli_args_parse(argc, argv, &o, &err) < 0) {
        fprintf(stderr, "cacheout: %s\n", err.msg);
        fprintf(stderr, "(cacheout %s%s--help shows the usage)\n", cli_cmd_name(o.cmd),
                o.cmd != CLI_CMD_NONE ? " " : "");
        goto out;
    }
    if (o.help || o.cmd == CLI_CMD_NONE) {
        fputs(cli_usage(o.cmd), o.help ? stdout : stderr);
        status = o.help ? 0 : CLI_EXIT_USAGE;
        goto out;
    }
    if (o.cmd == CLI_CMD_VERSION) {
        printf("cacheout %s\n", CLI_VERSION);
        status = 0;
        goto out;
    }
    if (cli_config_load(&cfg, &err) < 0) {
        fprintf(stderr, "cacheout: %s\n", err.msg);
        goto out;
    }
    if (cfg.loose_perms)
        fprintf(stderr,
                "cacheout: warning: '%s' holds a token and others can read it "
                "(chmod 600 it)\n",
                cfg.path);

    struct cli_http *http = cli_http_new(&cfg, &err);
    if (http == NULL) {
        fprintf(stderr, "cacheout: %s\n", err.msg);
        status = CLI_EXIT_API;
        goto out;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_interrupt; /* no SA_RESTART: a wait in progress returns early */
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    struct cli_ctx ctx = {.o = &o,
                          .cfg = &cfg,
                          .http = http,
                          .tty_err = isatty(STDERR_FILENO) == 1,
                          .tty_out = isatty(STDOUT_FILENO) == 1};
    status = cli_cmd_run(&ctx);
    cli_http_free(http);
out:
    cli_config_release(&cfg);
    cli_opts_release(&o);
    if (fflush(stdout) != 0 && status == 0)
        status = CLI_EXIT_API;
    return status;
}
