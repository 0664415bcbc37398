/* agent_cap: capacity accounting (see agent_cap.h). */
#include "agent_cap.h"

void
agent_cap_init(struct agent_cap *cap, int64_t cores, int64_t ram_mb)
{
    cap->cores_total = cores;
    cap->ram_mb_total = ram_mb;
    cap->cores_used = 0;
    cap->ram_mb_used = 0;
    cap->jobs = 0;
}

bool
agent_cap_fits(const struct agent_cap *cap, int64_t cores, int64_t ram_mb)
{
    if (cores < 1 || ram_mb < 1)
        return false;
    /* Written as subtractions of non-negative values so that huge requests cannot overflow. */
    return cores <= agent_cap_free_cores(cap) && ram_mb <= agent_cap_free_ram_mb(cap);
}

bool
agent_cap_take(struct agent_cap *cap, int64_t cores, int64_t ram_mb)
{
    if (!agent_cap_fits(cap, cores, ram_mb))
        return false;
    cap->cores_used += cores;
    cap->ram_mb_used += ram_mb;
    cap->jobs++;
    return true;
}

void
agent_cap_put(struct agent_cap *cap, int64_t cores, int64_t ram_mb)
{
    cap->cores_used = cores < cap->cores_used ? cap->cores_used - cores : 0;
    cap->ram_mb_used = ram_mb < cap->ram_mb_used ? cap->ram_mb_used - ram_mb : 0;
    if (cap->jobs > 0)
        cap->jobs--;
}

int64_t
agent_cap_free_cores(const struct agent_cap *cap)
{
    int64_t f = cap->cores_total - cap->cores_used;
    return f > 0 ? f : 0;
}

int64_t
agent_cap_free_ram_mb(const struct agent_cap *cap)
{
    int64_t f = cap->ram_mb_total - cap->ram_mb_used;
    return f > 0 ? f : 0;
}
