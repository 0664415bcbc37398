/*
 * proto_fields: typed, range-checked access to the members of a decoded JSON object, shared by
 * the job-spec and agent-message decoders.  Internal to proto/ (not for other modules).
 *
 * Every getter follows one rule for presence: an absent key and a JSON null both mean "absent".
 * An absent required field is an error "missing '<key>'"; an absent optional field leaves *out
 * untouched and returns 0.  A present field returns 1 after its checks passed.  Errors are
 * CO_E_INVAL with err->field = @key, and the getters return -1.
 */
#ifndef PROTO_FIELDS_H
#define PROTO_FIELDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "co_err.h"
#include "co_id.h"

enum pf_unit {
    PF_BYTES, /* lengths count bytes */
    PF_CHARS, /* lengths count Unicode characters */
};

/**
 * A string member of @obj with a length in [@min, @max] (@unit), containing no NUL.  *out
 * borrows from @obj; *len_out (if not NULL) receives its length in bytes.
 */
int pf_string(const json_t *obj, const char *key, bool required, size_t min, size_t max,
              enum pf_unit unit, const char **out, size_t *len_out, co_err *err)
    __attribute__((warn_unused_result));

/** As pf_string() but copies into a new heap string *out (the previous value is freed). */
int pf_string_dup(const json_t *obj, const char *key, bool required, size_t min, size_t max,
                  enum pf_unit unit, char **out, co_err *err) __attribute__((warn_unused_result));

/** A JSON integer (not a real, not a boolean) member of @obj within [@min, @max]. */
int pf_int(const json_t *obj, const char *key, bool required, int64_t min, int64_t max,
           int64_t *out, co_err *err) __attribute__((warn_unused_result));

/** A JSON boolean member of @obj. */
int pf_bool(const json_t *obj, const char *key, bool required, bool *out, co_err *err)
    __attribute__((warn_unused_result));

/** An id member (co_id_valid) of @obj, copied into @out. */
int pf_id(const json_t *obj, const char *key, bool required, char out[CO_ID_MAX + 1], co_err *err)
    __attribute__((warn_unused_result));

/** An object member of @obj, borrowed into *out. */
int pf_object(const json_t *obj, const char *key, bool required, const json_t **out, co_err *err)
    __attribute__((warn_unused_result));

/** An array member of @obj with at most @max elements, borrowed into *out. */
int pf_array(const json_t *obj, const char *key, bool required, size_t max, const json_t **out,
             co_err *err) __attribute__((warn_unused_result));

/**
 * Copy @name into a co_err field, cut on a UTF-8 character boundary to fit, so an error about
 * an unknown (client-chosen) key stays valid UTF-8; control characters become '?'.  An empty
 * name becomes `""`.
 */
void pf_field_name(char *dst, size_t size, const char *name);

#endif
