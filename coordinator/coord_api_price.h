/*
 * coord_api_price: the REST side of pricing and reputation (coord_price.h, API.md "Verified
 * results, reputation, pricing"): the hold of a submitted job in each PRICING mode, PATCH
 * /workers/{id} (a seller's prices) and GET /users/{id}/statement (the price and reputation
 * fields of jobs and workers are coord_render's).  Handlers run on database threads, like
 * coord_api's, with that thread's store.  No state of its own, no life cycle.
 */
#ifndef COORD_API_PRICE_H
#define COORD_API_PRICE_H

#include <stdbool.h>

#include <jansson.h>

#include "coord_config.h"
#include "coord_req.h"
#include "coord_store.h"
#include "proto_job.h"

/**
 * Price a job being submitted: @job->cost (the hold), pricing, rate, max_rate and min_reputation
 * from @spec and @cfg.  flat: the original formula; metered: the configured prices for
 * timeout_seconds; market: the buyer's maximum (required) for timeout_seconds.  Answers 422 and
 * returns -1 on bad input.
 */
int coord_api_job_price(const struct coord_config *cfg, const struct proto_job_spec *spec,
                        struct coord_job *job, struct coord_req *r);

/**
 * Read "price_per_core_second" / "price_per_gb_second" (credits, >= 0) from @obj; both are
 * needed when @required, else *@has tells whether any was given (a missing one is 0).  Answers
 * 422 and returns -1 on bad input.
 */
int coord_api_read_price(struct coord_req *r, json_t *obj, bool required, struct coord_rate *out,
                         bool *has);

/** PATCH /workers/{id}: {"price_per_core_second", "price_per_gb_second"}, owner or admin. */
void coord_api_worker_patch(struct coord_store *s, struct coord_req *r);

/** GET /users/{id}/statement?days=30: [{day, spent, earned, fees}], self or admin. */
void coord_api_statement(struct coord_store *s, struct coord_req *r);

/* coord_api.c's body helpers, shared. */
json_t *coord_api_body_object(struct coord_req *r);
int coord_api_only_fields(struct coord_req *r, json_t *obj, const char *const *allowed);

#endif
