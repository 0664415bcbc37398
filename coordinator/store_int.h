/*
 * store_int: the store's internals that coord_verify's store steps use (store.c exports them;
 * nothing outside the store's own files and coord_verify.c includes this).  They behave as their
 * static counterparts in store.c: statements by name with bound parameters, the caller's
 * transaction, the money movement with its ledger row.  Thread and life cycle: those of the
 * store (coord_store.h): the database thread that owns it.
 */
#ifndef COORD_STORE_INT_H
#define COORD_STORE_INT_H

#include "coord_store.h"
#include "coord_verify_sql.h"
#include "store_backend.h"

int store_run(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
              struct db_res *r, co_err *err) __attribute__((warn_unused_result));
int store_next(struct db_res *r, co_err *err) __attribute__((warn_unused_result));
void store_done(struct db_res *r);
int store_exec(struct coord_store *s, enum store_q q, const struct db_param *p, int n,
               int64_t *changes, co_err *err) __attribute__((warn_unused_result));
/** Load one job with statement @q (Q_JOB_GET, Q_JOB_GET_NOCODE, Q_JOB_LOCK); CO_E_NOTFOUND. */
int store_job_load(struct coord_store *s, enum store_q q, const char *job_id, struct coord_job *out,
                   co_err *err) __attribute__((warn_unused_result));
/** Set @j final (status, failure, exit code and usage from @r when given). */
int store_job_set_final(struct coord_store *s, const struct coord_job *j, enum coord_job_status st,
                        enum coord_failure f, const struct coord_job_result *r, int64_t now,
                        co_err *err) __attribute__((warn_unused_result));
/** One money movement and its ledger row (unique on job and kind). */
int store_money_move(struct coord_store *s, const char *user_id, const char *job_id,
                     enum coord_ledger_kind kind, int64_t d_credits, int64_t d_held,
                     const char *note, int64_t now, co_err *err)
    __attribute__((warn_unused_result));
/**
 * Lock the users @ids (@n, reordered in place) in user_id order, the store's lock order for
 * users, and then create the missing ones named in @workers (NULL-terminated, may be NULL:
 * created as sellers) or @plain (may be NULL), each locked as it is created.  Every lock is
 * taken before anyone is created, so an insert never waits on a settlement that holds the row.
 */
int store_users_lock_ensure(struct coord_store *s, const char **ids, size_t n,
                            const char *const *workers, const char *plain, int64_t now, co_err *err)
    __attribute__((warn_unused_result));
/** Record a reputation outcome of @worker_id (coord_store_outcome_record, in this transaction). */
int store_outcome_note(struct coord_store *s, const char *worker_id, const char *job_id,
                       enum coord_outcome o, int64_t now, co_err *err)
    __attribute__((warn_unused_result));
/** The stored owner of @worker_id ("" when unknown or unset). */
int store_worker_owner(struct coord_store *s, const char *worker_id, char owner[CO_ID_MAX + 1],
                       co_err *err) __attribute__((warn_unused_result));

#endif
