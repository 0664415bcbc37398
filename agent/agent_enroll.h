/*
 * agent_enroll: `cacheout-agent enroll --coordinator URL --key KEY`, which checks a seller's key
 * with the coordinator (GET /api/v1/me with `Authorization: Bearer KEY`, the certificate
 * verified against TLS_CA_FILE or the system's store) and only then writes COORDINATOR_URL,
 * AGENT_KEY (and TLS_CA_FILE when given) into the agent's env file, keeping its other lines.
 */
#ifndef AGENT_ENROLL_H
#define AGENT_ENROLL_H

#include <stddef.h>

#include "co_err.h"

/* Where the packaged service reads its settings (packaging/systemd/cacheout-agent.service). */
#define AGENT_ENROLL_DEFAULT_ENV_FILE "/etc/cacheout/agent.env"

/**
 * Run the enroll command; @argv[0] is "enroll".  Prints what it did or why it refused on
 * stdout/stderr.  Returns the exit status: 0 enrolled, 1 refused key or unreachable
 * coordinator, 2 bad arguments.
 */
int agent_enroll_main(int argc, char **argv);

/**
 * Set each @keys[i] to @values[i] in the env file text @text (NULL: an empty file): the first
 * uncommented `KEY=` line of each is replaced, later ones are dropped, a missing one is appended;
 * every other line is kept.  Returns the new text (caller-owned).
 */
char *agent_enroll_env_update(const char *text, const char *const *keys, const char *const *values,
                              size_t n);

#endif
