/*
 * agent_cap: the agent's capacity accounting.  A job reserves its cores and RAM when it is
 * accepted and gives them back when its run is over; the agent never runs more than fits.
 * Not thread-safe: used only from the WebSocket service thread.
 */
#ifndef AGENT_CAP_H
#define AGENT_CAP_H

#include <stdbool.h>
#include <stdint.h>

struct agent_cap {
    int64_t cores_total, ram_mb_total;
    int64_t cores_used, ram_mb_used;
    int64_t jobs; /* reservations held */
};

/** Start with @cores and @ram_mb free (both >= 1) and nothing reserved. */
void agent_cap_init(struct agent_cap *cap, int64_t cores, int64_t ram_mb);

/** True if a job needing @cores and @ram_mb (both >= 1) fits in what is free now. */
bool agent_cap_fits(const struct agent_cap *cap, int64_t cores, int64_t ram_mb);

/** Reserve @cores and @ram_mb.  Returns false (and reserves nothing) when they do not fit. */
bool agent_cap_take(struct agent_cap *cap, int64_t cores, int64_t ram_mb);

/** Give back a reservation made by agent_cap_take() (over-release is clamped at zero). */
void agent_cap_put(struct agent_cap *cap, int64_t cores, int64_t ram_mb);

/** Free cores now. */
int64_t agent_cap_free_cores(const struct agent_cap *cap);

/** Free RAM in MiB now. */
int64_t agent_cap_free_ram_mb(const struct agent_cap *cap);

#endif
