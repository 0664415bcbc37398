/* Placeholder main until its issue lands: prints --help. */
#include <stdio.h>
#include <string.h>

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--help") == 0) {
        printf("usage: cacheout-run [--help]\ncacheout-run: run a command in the CacheOut sandbox (not implemented yet)\n");
        return 0;
    }
    fprintf(stderr, "cacheout-run: not implemented yet (try --help)\n");
    return 2;
}
