/*
 * libFuzzer target for the agent-message decoder (proto_msg_decode).  Every accepted message
 * must encode, decode again, and re-encode to the same text (encode . decode is a fixed point).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "proto_agent.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(int cond)
{
    if (!cond)
        abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct proto_msg m, m2;
    co_err err = CO_ERR_INIT;
    size_t len1 = 0, len2 = 0;
    char *t1, *t2;

    if (proto_msg_decode((const char *)data, size, &m, &err) != 0) {
        check(m.type == PROTO_MSG_NONE);
        check(proto_utf8_valid(err.msg, strlen(err.msg)));
        return 0;
    }
    t1 = proto_msg_encode(&m, &len1);
    check(t1 != NULL);
    check(proto_msg_decode(t1, len1, &m2, &err) == 0);
    check(m2.type == m.type);
    t2 = proto_msg_encode(&m2, &len2);
    check(t2 != NULL && len1 == len2 && memcmp(t1, t2, len1) == 0);
    free(t1);
    free(t2);
    proto_msg_release(&m);
    proto_msg_release(&m2);
    return 0;
}
