/*
 * coord_lease: agent leases.  Once a second (an lws timer) it stores the heartbeats received
 * since the last tick (one database item for all of them), closes sessions silent for longer
 * than the lease, and reaps expired workers: a worker whose last heartbeat is older than
 * WORKER_TIMEOUT_SECONDS and that holds no live session here gets its jobs released (back to
 * pending with the next attempt, or failed with worker_lost and a refund at max_attempts) and is
 * marked offline.  A disconnect alone releases nothing: the agent may reconnect and resume.
 * Right after a start, workers not heard from since get COORD_LEASE_RESTART_GRACE_MS more.
 * Thread: the lws service thread (the tick's write on a database thread, through the hub's write
 * lane).  It sees the sessions through the hub (coord_hub.h) only; created and freed by the agent
 * protocol (coord_agent.c) at its start and stop, its timer armed from creation.
 */
#ifndef COORD_LEASE_H
#define COORD_LEASE_H

#include <stdint.h>

struct coord_agents;
struct coord_lease;

/* Period of the lease tick, in milliseconds. */
#define COORD_LEASE_TICK_MS 1000
/*
 * After a coordinator start, workers not heard from since then keep their jobs for the lease plus
 * this long (an agent's longest reconnect back-off: 30 s plus up to 30% jitter, agent_core.c)
 * before the reaper releases them.
 */
#define COORD_LEASE_RESTART_GRACE_MS 40000

/** A reaper for the sessions of @hub (borrowed; the agent protocol owns it).  Starts its timer. */
struct coord_lease *coord_lease_new(struct coord_agents *hub);

/** Stop its timer and free it (NULL is fine). */
void coord_lease_free(struct coord_lease *le);

/** Workers reaped so far (for logs and tests). */
uint64_t coord_lease_reaped(const struct coord_lease *le);

#endif
