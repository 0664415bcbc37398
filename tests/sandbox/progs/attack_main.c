/* sbx-attack entry point: dispatches to the subcommand tables of the topic files. */
#include "attack.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

const char *
attack_errname(int e)
{
    const char *n = strerrorname_np(e);
    return n ? n : "EUNKNOWN";
}

void
attack_verdict(const char *check, long r)
{
    if (r < 0)
        printf("%s ERRNO %s\n", check, attack_errname(errno));
    else
        printf("%s OK\n", check);
    fflush(stdout);
}

void
attack_value(const char *check, const char *fmt, ...)
{
    va_list ap;

    printf("%s VALUE ", check);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    putchar('\n');
    fflush(stdout);
}

long
attack_num(const char *s)
{
    char *end = NULL;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < 0) {
        fprintf(stderr, "sbx-attack: bad number '%s'\n", s);
        exit(64);
    }
    return v;
}

double
attack_now(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

const char *attack_argv0 = "sbx-attack";

static const struct attack_cmd *const tables[] = {
    attack_limits_cmds, attack_proc_cmds, attack_fs_cmds, attack_sys_cmds, attack_net_cmds,
};

static void
usage(void)
{
    fprintf(stderr, "usage: sbx-attack SUBCOMMAND [ARGS...]\n");
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const struct attack_cmd *c = tables[t]; c->name; c++)
            fprintf(stderr, "  %s %s\n", c->name, c->usage);
}

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage();
        return 64;
    }
    setvbuf(stdout, NULL, _IOLBF, 0);
    attack_argv0 = argv[0];
    for (size_t t = 0; t < sizeof(tables) / sizeof(tables[0]); t++)
        for (const struct attack_cmd *c = tables[t]; c->name; c++)
            if (strcmp(c->name, argv[1]) == 0)
                return c->fn(argc - 2, argv + 2);
    fprintf(stderr, "sbx-attack: unknown subcommand '%s'\n", argv[1]);
    usage();
    return 64;
}
