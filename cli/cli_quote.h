/*
 * cli_quote: turn an argv into the `command` string of a job, quoted so that the coordinator's
 * splitter (proto_argv_split: POSIX-like words, quotes and backslashes, no expansion) gives the
 * same argv back.  Pure code.
 */
#ifndef CLI_QUOTE_H
#define CLI_QUOTE_H

#include <stddef.h>

/**
 * Join @argc words of @argv into one command line.  A word made only of characters that the
 * splitter takes literally is written as it is; any other word (empty, with blanks, quotes,
 * backslashes, newlines, or shell metacharacters a reader would misread) is put in single
 * quotes, an embedded single quote becoming '\''.  Returns a caller-owned string (free()).
 */
char *cli_quote_join(char *const *argv, size_t argc);

/** Append one quoted word to a new string (the unit of cli_quote_join); caller-owned. */
char *cli_quote_word(const char *word);

#endif
