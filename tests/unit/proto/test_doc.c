/*
 * Every ```json example in proto/PROTOCOL.md must decode with proto_msg_decode(), and every
 * message type must have at least one example: the document cannot drift from the code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "co_buf.h"
#include "proto_agent.h"

#ifndef PROTO_DOC_PATH
#error "PROTO_DOC_PATH must name proto/PROTOCOL.md"
#endif

static void
test_examples_decode(void **state)
{
    (void)state;
    FILE *f = fopen(PROTO_DOC_PATH, "r");
    char line[1024];
    struct co_buf block = CO_BUF_INIT;
    bool in_json = false;
    int seen[PROTO_MSG_JOB_ARTIFACTS + 1] = {0};
    int examples = 0;

    assert_non_null(f);
    while (fgets(line, sizeof(line), f) != NULL) {
        if (!in_json && strncmp(line, "```json", 7) == 0) {
            in_json = true;
            co_buf_reset(&block);
            continue;
        }
        if (in_json && strncmp(line, "```", 3) == 0) {
            struct proto_msg m;
            co_err err = CO_ERR_INIT;
            in_json = false;
            examples++;
            if (proto_msg_decode(block.data, block.len, &m, &err) != 0)
                fail_msg("example %d does not decode: field '%s': %s\n%s", examples, err.field,
                         err.msg, block.data);
            seen[m.type]++;
            proto_msg_release(&m);
            continue;
        }
        if (in_json)
            co_buf_puts(&block, line);
    }
    fclose(f);
    co_buf_release(&block);
    assert_false(in_json);
    for (int t = PROTO_MSG_HELLO; t <= PROTO_MSG_JOB_ARTIFACTS; t++) {
        if (seen[t] == 0)
            fail_msg("no example of '%s' in PROTOCOL.md", proto_msg_type_name(t));
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_examples_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
