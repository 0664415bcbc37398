/*
 * sbx-attack: the program the sandbox suite runs inside cacheout-run.  Each subcommand tries one
 * attack (or probes one property) and prints machine-checkable verdict lines, one per check:
 *
 *   <check> OK [detail]         the operation succeeded
 *   <check> ERRNO <NAME>        the operation failed with errno NAME (e.g. EPERM)
 *   <check> VALUE <text>        a measured value
 *
 * The harness (tests/sandbox/suite.py) parses these lines and asserts the exact outcome.
 */
#ifndef SBX_ATTACK_H
#define SBX_ATTACK_H

#include <stddef.h>

/** A subcommand: argc/argv exclude the program and subcommand names; returns the exit code. */
typedef int (*attack_fn)(int argc, char **argv);

struct attack_cmd {
    const char *name;
    attack_fn fn;
    const char *usage;
};

/** Print "<check> OK" or "<check> ERRNO <name>" for a result r (< 0 means failure, errno set). */
void attack_verdict(const char *check, long r);

/** Print a "<check> VALUE <fmt...>" line. */
void attack_value(const char *check, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/** Symbolic name of an errno value ("EPERM"); never NULL. */
const char *attack_errname(int e);

/** Parse a non-negative integer argument or exit 64 with a message. */
long attack_num(const char *s);

/** Wall clock in seconds (CLOCK_MONOTONIC). */
double attack_now(void);

/** argv[0] of this process: re-executions keep it so the host can recognise them. */
extern const char *attack_argv0;

/* Subcommand tables of each topic file (NULL-name terminated). */
extern const struct attack_cmd attack_limits_cmds[];
extern const struct attack_cmd attack_proc_cmds[];
extern const struct attack_cmd attack_fs_cmds[];
extern const struct attack_cmd attack_sys_cmds[];
extern const struct attack_cmd attack_net_cmds[];

#endif
