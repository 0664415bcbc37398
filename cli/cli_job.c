/* cli_job: finished jobs and their exit statuses (see cli_job.h). */
#include "cli_job.h"

#include <stdio.h>
#include <string.h>

static const char *
str(const json_t *job, const char *key)
{
    const char *s = json_string_value(json_object_get(job, key));
    return s ? s : "";
}

bool
cli_job_finished(const json_t *job)
{
    const char *s = str(job, "status");
    return strcmp(s, "completed") == 0 || strcmp(s, "failed") == 0 || strcmp(s, "cancelled") == 0;
}

int
cli_job_exit_status(const json_t *job)
{
    const char *status = str(job, "status");
    const char *reason = str(job, "failure_reason");
    const json_t *code = json_object_get(job, "exit_code");
    const json_t *sig = json_object_get(job, "signal");

    if (!cli_job_finished(job))
        return -1;
    if (strcmp(status, "completed") == 0)
        return 0;
    if (strcmp(status, "cancelled") == 0 || strcmp(reason, "cancelled") == 0)
        return CLI_EXIT_CANCELLED;
    if (strcmp(reason, "exit_code") == 0) {
        json_int_t v = json_is_integer(code) ? json_integer_value(code) : 1;
        return v >= 1 && v <= 255 ? (int)v : 1;
    }
    if (strcmp(reason, "timeout") == 0)
        return CLI_EXIT_TIMEOUT;
    if (strcmp(reason, "killed") == 0) {
        json_int_t s = json_is_integer(sig) ? json_integer_value(sig) : 9;
        return CLI_EXIT_SIGNAL + (s >= 1 && s <= 64 ? (int)s : 9);
    }
    if (strcmp(reason, "oom") == 0)
        return CLI_EXIT_SIGNAL + 9;
    return CLI_EXIT_PLATFORM;
}

const char *
cli_job_outcome(const json_t *job, char *buf, size_t size)
{
    const char *status = str(job, "status");
    const char *reason = str(job, "failure_reason");
    const json_t *code = json_object_get(job, "exit_code");

    if (strcmp(status, "completed") == 0)
        snprintf(buf, size, "completed");
    else if (strcmp(status, "cancelled") == 0)
        snprintf(buf, size, "cancelled");
    else if (strcmp(reason, "exit_code") == 0 && json_is_integer(code))
        snprintf(buf, size, "failed: exit code %lld", (long long)json_integer_value(code));
    else if (strcmp(reason, "timeout") == 0)
        snprintf(buf, size, "failed: timed out");
    else if (strcmp(reason, "oom") == 0)
        snprintf(buf, size, "failed: out of memory");
    else if (reason[0] != '\0')
        snprintf(buf, size, "failed: %s", reason);
    else
        snprintf(buf, size, "%s", status[0] ? status : "unknown");
    return buf;
}
