/*
 * coord_idem: the `Idempotency-Key` header on any POST (API.md "Scheduling guarantees").  The
 * first answer for (credential, method, path, key), the credential being the principal
 * (coord_idem_credential), is kept in the store for COORD_IDEM_TTL_MS;
 * a repeat with the same body gets that answer again with `Idempotent-Replayed: true` and runs
 * nothing; a repeat with another body gets 409 `idempotency_mismatch`.
 *
 * The reservation, the request's own store calls and the stored answer are one batch transaction
 * (coord_store_batch_*): a concurrent duplicate cannot run in between (SQLite: one writer;
 * PostgreSQL: the second INSERT waits for the first transaction, then finds its row), and a
 * request whose transaction does not commit leaves no key behind.  Answers of 500 and above
 * (database down, internal errors) are not kept: the client may retry with the same key.
 *
 * Threads: coord_idem_header_ok() and coord_idem_body_hash() anywhere; coord_idem_run() on a
 * database thread with that thread's store.  No state of its own: the keys live in the store,
 * and coord_retention purges the expired ones.
 */
#ifndef COORD_IDEM_H
#define COORD_IDEM_H

#include <stdbool.h>
#include <stddef.h>

#include "coord_auth.h"
#include "coord_req.h"
#include "coord_store.h"

#define COORD_IDEM_KEY_MAX 255
#define COORD_IDEM_TTL_MS (24LL * 3600 * 1000)

/** True if @key (@len bytes) is a valid key: 1-255 visible ASCII characters. */
bool coord_idem_header_ok(const char *key, size_t len);

#define COORD_IDEM_HASH_SIZE (COORD_KEY_HASH_LEN + 1)
#define COORD_IDEM_CRED_SIZE (2 * CO_ID_MAX + 8)

/** The hex SHA-256 of @len bytes of @body (NULL: empty) into @out (coord_auth_hash). */
void coord_idem_body_hash(const void *body, size_t len, char out[COORD_IDEM_HASH_SIZE]);

/**
 * Who a key belongs to (@out): a user key is its user and key id ("key:<user>/<key>"), the shared
 * tokens are their own identities ("admin-token", "agent-token"), else "open" or "anonymous".
 * Different users never share an Idempotency-Key.
 */
void coord_idem_credential(const struct coord_principal *p, char out[COORD_IDEM_CRED_SIZE]);

/** The request handler coord_idem_run() wraps. */
typedef void (*coord_idem_handler_fn)(struct coord_store *s, struct coord_req *r);

/**
 * Run @handler for @r (which carries r->idem_key; the credential is r->principal) at most once per
 * key: reserve, run and store the answer in one transaction, or answer from the stored row.  Fills
 * @r's answer in every case.
 */
void coord_idem_run(struct coord_store *s, struct coord_req *r, coord_idem_handler_fn handler);

#endif
