/*
 * coord_sched: the push scheduler.  On a kick (a job submitted, a job finished, an agent
 * connected or freed capacity) it reads the pending jobs in order (priority desc, oldest first)
 * and gives each to the connected agent where it fits best (least leftover cores, then RAM),
 * several per agent as capacity allows.  Every assignment is a store claim (attempt + 1)
 * committed before job.assign is queued.  A job that fits an agent's total capacity but not its
 * free capacity reserves that agent for the rest of the pass, so smaller, less urgent jobs do not
 * starve it.  Kicks coalesce: at most one pass is in flight, and a kick during a pass runs one
 * more pass after it.  Everything runs on the lws service thread (the pending read and the claims
 * on database threads, through the hub's submits and write lanes).  It sees the sessions through
 * the hub (coord_hub.h) only, and reconciliation's quarantine through the hub's quarantined hook
 * (it calls neither coord_reconcile nor coord_lease); created and freed by the agent protocol
 * (coord_agent.c) at its start and stop; a pass or a claim in flight at the stop completes
 * harmlessly.
 */
#ifndef COORD_SCHED_H
#define COORD_SCHED_H

#include <stddef.h>
#include <stdint.h>

struct agent_sess;
struct co_jsonw;
struct coord_agents;
struct coord_buyer_cap_list;
struct coord_job;
struct coord_job_list;
struct coord_sched;
struct coord_worker_list;

/* Pending jobs read per pass. */
#define COORD_SCHED_BATCH 512

/** A scheduler over the sessions of @hub (borrowed; the agent protocol owns the scheduler). */
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

/* ---- the steps of a pass, on their own for the unit tests (lws thread) ---- */

/* One placement of a scheduling pass. */
struct sched_pick {
    size_t job;           /* index in the job list */
    struct agent_sess *s; /* the session it goes to */
};

/**
 * Plan one pass over @jobs (pending, in scheduling order) without any I/O: for each job, among
 * the welcomed sessions with room that its terms allow (min_reputation; market: within its
 * maximum price), the cheapest (market), then the best reputation, then where it fits best
 * (least leftover), reserving its capacity on that session (an AJ_CLAIMING entry); a job that
 * fits a session's total but not its free capacity reserves the best such session for the rest
 * of the pass; jobs held by a session already are skipped.  Writes the placements to @picks
 * (room for jobs->len) and returns their number.
 */
size_t coord_sched_plan(struct coord_agents *hub, const struct coord_job_list *jobs,
                        struct sched_pick *picks);
/*
 * Copy each session's placement terms (price, reputation) from @terms (the store's read), found
 * through the worker index: O(terms).  A pass does this once; after that it applies only the
 * rows that changed since the read before and the terms of the sessions opened since.
 */
void coord_sched_apply_terms(struct coord_agents *hub, struct coord_worker_list *terms);

/**
 * Bring the fit of the pending read and the pending_reason board up to date with the sessions
 * the hub queued as changed (agent_hub_changed; each pass does this first): O(changed).
 */
void coord_sched_refresh(struct coord_sched *sc);

/**
 * Fair share: reorder a read (in the store's order) so that within a priority a round of turns
 * starts with the buyer served least recently (see coord_sched_served).
 */
void coord_sched_fair_order(struct coord_sched *sc, struct coord_job_list *jobs);

/** Record that a job of @buyer_id was placed now. */
void coord_sched_served(struct coord_sched *sc, const char *buyer_id);

/**
 * After a pass: the buyers of @caps left without room (sched_room: running jobs read at
 * @read_began_ms plus this coordinator's claims since) go on the pending_reason board as at their
 * max_running_jobs (running_limit).
 */
void coord_sched_note_caps(struct coord_sched *sc, const struct coord_buyer_cap_list *caps,
                           int64_t read_began_ms);

#endif
