/*
 * coord_sched: the push scheduler.  On a kick (a job submitted, a job finished, an agent
 * connected or freed capacity) it reads the pending jobs in order (priority desc, oldest first)
 * and gives each to the connected agent where it fits best (least leftover cores, then RAM),
 * several per agent as capacity allows.  Every assignment is a store claim (attempt + 1)
 * committed before job.assign is queued.  A job that fits an agent's total capacity but not its
 * free capacity reserves that agent for the rest of the pass, so smaller, less urgent jobs do not
 * starve it.  Kicks coalesce: at most one pass is in flight, and a kick during a pass runs one
 * more pass after it.  Everything runs on the lws service thread.
 */
#ifndef COORD_SCHED_H
#define COORD_SCHED_H

#include <stdint.h>

struct co_jsonw;
struct coord_agents;
struct coord_job;
struct coord_sched;

/* Pending jobs read per pass. */
#define COORD_SCHED_BATCH 512

/** A scheduler over the sessions of @hub (borrowed; the hub owns the scheduler). */
struct coord_sched *coord_sched_new(struct coord_agents *hub);

/** Cancel its timer and free it (NULL is fine).  A pass in flight completes harmlessly. */
void coord_sched_free(struct coord_sched *sc);

/** Ask for a scheduling pass soon (lws thread; cheap, coalesced). */
void coord_sched_kick(struct coord_sched *sc);

/** Passes run so far (for logs and tests). */
uint64_t coord_sched_passes(const struct coord_sched *sc);

/*
 * pending_reason: the scheduler keeps a board of what the connected agents can run (worker id,
 * total cores and RAM, images), refreshed by each pass when the set of agents changed.  The
 * board is process-wide and read under a mutex, so REST handlers on the database threads and
 * the dashboards render reasons without asking the lws thread.
 */

/**
 * Write "pending_reason": null unless @j is pending, else {"code","message"}: no_agents,
 * no_agent_with_image, exceeds_largest_agent (naming the largest connected agent with the
 * image), no_agent_with_reputation (none that fits has min_reputation), no_agent_within_price
 * (PRICING=market: naming the cheapest fitting agent and its prices), running_limit (the buyer is
 * at its max_running_jobs as of the last pass; the message names the limit), or
 * waiting_for_capacity.  Any thread.
 */
void coord_sched_write_pending_reason(struct co_jsonw *w, const struct coord_job *j);

/**
 * A number that changes whenever a pending job's reason may have changed (the board of agents or
 * the buyers at their limit), so that the dashboards know to send pending jobs again.  Any thread.
 */
uint64_t coord_sched_reasons_generation(void);

#endif
