/* cli_quote: argv -> command string for the coordinator's splitter (see cli_quote.h). */
#include "cli_quote.h"

#include <stdbool.h>
#include <string.h>

#include "co_alloc.h"
#include "co_buf.h"

/*
 * Characters left bare.  The splitter itself only treats blanks, quotes and backslashes
 * specially, but a command shown on a dashboard should also read the same to a person used to
 * a shell, so '$', '*', ';', '&' and the like are quoted too.
 */
static bool
plain_char(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           strchr("_-.,/:=+@%^", c) != NULL || c >= 0x80;
}

static void
quote_into(struct co_buf *b, const char *word)
{
    bool plain = word[0] != '\0';

    for (const char *p = word; *p != '\0' && plain; p++)
        plain = plain_char((unsigned char)*p);
    if (plain) {
        co_buf_puts(b, word);
        return;
    }
    /* Inside single quotes everything is literal up to the next quote: close, add \', reopen. */
    co_buf_putc(b, '\'');
    for (const char *p = word; *p != '\0'; p++) {
        if (*p == '\'')
            co_buf_puts(b, "'\\''");
        else
            co_buf_putc(b, *p);
    }
    co_buf_putc(b, '\'');
}

char *
cli_quote_word(const char *word)
{
    struct co_buf b = CO_BUF_INIT;

    quote_into(&b, word);
    return co_buf_steal(&b, NULL);
}

char *
cli_quote_join(char *const *argv, size_t argc)
{
    struct co_buf b = CO_BUF_INIT;

    for (size_t i = 0; i < argc; i++) {
        if (i > 0)
            co_buf_putc(&b, ' ');
        quote_into(&b, argv[i]);
    }
    return co_buf_steal(&b, NULL);
}
