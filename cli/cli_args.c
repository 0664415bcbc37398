/* cli_args: parsing of the `cacheout` command line (see cli_args.h). */
#include "cli_args.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "co_alloc.h"

#define BIT(c) (1u << (c))
#define ALL_CMDS 0xffffffffu

enum opt_kind { OPT_FLAG, OPT_INT, OPT_STR, OPT_LIST, OPT_SCOPE };

/* One option: where it is stored, for which commands, and the range of an integer. */
struct opt_def {
    const char *name; /* long name without "--" */
    char short_name;  /* 0 when none */
    enum opt_kind kind;
    size_t off;    /* offset of the field in struct cli_opts */
    size_t count;  /* OPT_LIST: offset of the count field */
    unsigned cmds; /* BIT(cmd) of the commands that take it */
    long min, max;
};

#define F(field) offsetof(struct cli_opts, field)
static const struct opt_def opts[] = {
    {"help", 'h', OPT_FLAG, F(help), 0, ALL_CMDS, 0, 0},
    {"json", 0, OPT_FLAG, F(json), 0, ALL_CMDS, 0, 0},
    {"cores", 0, OPT_INT, F(cores), 0, BIT(CLI_CMD_SUBMIT), 1, 1000000},
    {"ram", 0, OPT_INT, F(ram_mb), 0, BIT(CLI_CMD_SUBMIT), 1, INT32_MAX},
    {"timeout", 0, OPT_INT, F(timeout), 0, BIT(CLI_CMD_SUBMIT), 1, INT32_MAX},
    {"priority", 0, OPT_INT, F(priority), 0, BIT(CLI_CMD_SUBMIT), 1, 10},
    {"replicas", 0, OPT_INT, F(replicas), 0, BIT(CLI_CMD_SUBMIT), 1, 5},
    {"image", 0, OPT_STR, F(image), 0, BIT(CLI_CMD_SUBMIT), 0, 0},
    {"title", 0, OPT_STR, F(title), 0, BIT(CLI_CMD_SUBMIT), 0, 0},
    {"description", 0, OPT_STR, F(description), 0, BIT(CLI_CMD_SUBMIT), 0, 0},
    {"buyer", 0, OPT_STR, F(buyer), 0, BIT(CLI_CMD_SUBMIT), 0, 0},
    {"wait", 'w', OPT_FLAG, F(wait), 0, BIT(CLI_CMD_SUBMIT), 0, 0},
    {"file", 'f', OPT_LIST, F(files), F(n_files), BIT(CLI_CMD_SUBMIT), 0, 0},
    {"param", 'p', OPT_LIST, F(params), F(n_params), BIT(CLI_CMD_SUBMIT), 0, 0},
    {"follow", 'f', OPT_FLAG, F(follow), 0, BIT(CLI_CMD_LOGS), 0, 0},
    {"output-dir", 'o', OPT_STR, F(out_dir), 0, BIT(CLI_CMD_ARTIFACTS), 0, 0},
    {"status", 0, OPT_STR, F(status), 0, BIT(CLI_CMD_JOBS), 0, 0},
    {"limit", 'n', OPT_INT, F(limit), 0, BIT(CLI_CMD_JOBS), 1, 1000},
    {"scope", 's', OPT_SCOPE, F(scopes), 0, BIT(CLI_CMD_KEYS_CREATE), 0, 0},
    {"user", 'u', OPT_STR, F(user), 0, BIT(CLI_CMD_KEYS_CREATE) | BIT(CLI_CMD_BALANCE), 0, 0},
};
#undef F

static const char *const names[CLI_CMD_COUNT_] = {
    [CLI_CMD_NONE] = "",
    [CLI_CMD_SUBMIT] = "submit",
    [CLI_CMD_JOBS] = "jobs",
    [CLI_CMD_SHOW] = "show",
    [CLI_CMD_LOGS] = "logs",
    [CLI_CMD_CANCEL] = "cancel",
    [CLI_CMD_ARTIFACTS] = "artifacts",
    [CLI_CMD_BALANCE] = "balance",
    [CLI_CMD_KEYS_CREATE] = "keys create",
    [CLI_CMD_VERSION] = "version",
};

#define COMMON "  --json          print the API's JSON answer\n  -h, --help      this help\n"

static const char *const usages[CLI_CMD_COUNT_] = {
    [CLI_CMD_NONE] =
        "usage: cacheout [--json] COMMAND [OPTIONS] [ARGS]\n"
        "\n"
        "Commands:\n"
        "  submit [OPTIONS] -- CMD [ARGS...]   submit a job (and wait for it with --wait)\n"
        "  jobs                                list your jobs\n"
        "  show ID                             show one job\n"
        "  logs ID [-f]                        print a job's output (follow it with -f)\n"
        "  cancel ID                           cancel a job\n"
        "  artifacts ID [-o DIR]               download a job's artifacts (sha256 checked)\n"
        "  balance                             show your credits\n"
        "  keys create NAME [--scope S]...     create an API key\n"
        "  version                             print the version\n"
        "\n"
        "Settings: CACHEOUT_URL, CACHEOUT_TOKEN (a user key) or CACHEOUT_ADMIN_TOKEN,\n"
        "CACHEOUT_CA_FILE (or TLS_CA_FILE), else ~/.config/cacheout/config (key = value:\n"
        "url, token, admin_token, ca_file).  `cacheout COMMAND --help` describes a command.\n"
        "Exit status: 0 success, 1 API or network error, 2 usage error; submit --wait exits\n"
        "with the job's status (see --help of submit).\n",
    [CLI_CMD_SUBMIT] =
        "usage: cacheout submit [OPTIONS] -- CMD [ARGS...]\n"
        "Submit a job that runs CMD with ARGS (quoted so that the job gets exactly these words;\n"
        "no shell runs them: use `sh -c '...'` for shell features).  Prints the job id.\n"
        "  --cores N       cores (default 1)\n"
        "  --ram MB        memory in MB (default 256)\n"
        "  --image I       job image (default: the coordinator's default)\n"
        "  --timeout S     wall-clock limit in seconds\n"
        "  --priority P    1-10, 10 most urgent (default 5)\n"
        "  --replicas R    run on R workers of distinct sellers, majority wins (1-5)\n"
        "  -f, --file PATH upload PATH into the job's work folder under its base name\n"
        "                  (repeatable; text as content, anything else as base64)\n"
        "  -p, --param K=V a job parameter (repeatable; the value is a string)\n"
        "  --title T       title (default: the command)\n"
        "  --description D description\n"
        "  --buyer ID      buyer (default: the key's user; needed with the admin token)\n"
        "  -w, --wait      stream the job's output and exit with its status:\n"
        "                  the exit code of the job; 128+signal when it was killed\n"
        "                  (137 for out of memory); 124 timeout; 143 cancelled;\n"
        "                  125 platform failure (sandbox_error, worker_lost, unverified)\n" COMMON,
    [CLI_CMD_JOBS] = "usage: cacheout jobs [--status S] [-n LIMIT]\n"
                     "List jobs, newest first (a buy key sees its own).\n"
                     "  --status S      only jobs in status S (pending, running, completed, ...)\n"
                     "  -n, --limit N   at most N jobs (default 100, at most 1000)\n" COMMON,
    [CLI_CMD_SHOW] = "usage: cacheout show ID\nShow one job.\n" COMMON,
    [CLI_CMD_LOGS] = "usage: cacheout logs ID [-f]\n"
                     "Print a job's output: stdout to stdout, stderr to stderr.\n"
                     "  -f, --follow    keep printing new output until the job finishes\n" COMMON,
    [CLI_CMD_CANCEL] = "usage: cacheout cancel ID\n"
                       "Cancel a job: refunded when it had not started, killed and charged when\n"
                       "running.\n" COMMON,
    [CLI_CMD_ARTIFACTS] =
        "usage: cacheout artifacts ID [-o DIR]\n"
        "Download the files a job left in /work/out into DIR (default: the current folder),\n"
        "checking each file's sha256.  Prints one line per file: sha256, size, path.\n"
        "  -o, --output-dir DIR   where to write the files\n" COMMON,
    [CLI_CMD_BALANCE] = "usage: cacheout balance [--user ID]\n"
                        "Show the credits and the held credits of your account.\n"
                        "  -u, --user ID   another user's balance (admin)\n" COMMON,
    [CLI_CMD_KEYS_CREATE] =
        "usage: cacheout keys create NAME [--scope buy|sell]...\n"
        "Create an API key and print its token (shown this once: keep it).\n"
        "  -s, --scope S   buy (submit and manage jobs) or sell (run agents); repeatable;\n"
        "                  default: the server's default\n"
        "  -u, --user ID   create the key for another user (admin)\n" COMMON,
    [CLI_CMD_VERSION] = "usage: cacheout version\n",
};

const char *
cli_usage(enum cli_cmd cmd)
{
    return (unsigned)cmd < CLI_CMD_COUNT_ && usages[cmd] ? usages[cmd] : usages[CLI_CMD_NONE];
}

const char *
cli_cmd_name(enum cli_cmd cmd)
{
    return (unsigned)cmd < CLI_CMD_COUNT_ && names[cmd] ? names[cmd] : "";
}

void
cli_opts_release(struct cli_opts *o)
{
    free(o->files);
    free(o->params);
    o->files = o->params = NULL;
    o->n_files = o->n_params = 0;
}

static const struct opt_def *
find_opt(const char *arg, size_t name_len, bool is_short, enum cli_cmd cmd)
{
    for (size_t i = 0; i < CO_ARRAY_LEN(opts); i++) {
        const struct opt_def *d = &opts[i];
        if (!(d->cmds & BIT(cmd)))
            continue;
        if (is_short ? d->short_name == arg[0]
                     : strlen(d->name) == name_len && strncmp(d->name, arg, name_len) == 0)
            return d;
    }
    return NULL;
}

static int
set_opt(struct cli_opts *o, const struct opt_def *d, const char *shown, const char *val,
        co_err *err)
{
    char *base = (char *)o;

    switch (d->kind) {
    case OPT_FLAG:
        *(bool *)(base + d->off) = true;
        return 0;
    case OPT_INT: {
        char *end = NULL;
        errno = 0;
        long v = strtol(val, &end, 10);
        if (val[0] == '\0' || *end != '\0' || errno != 0 || v < d->min || v > d->max)
            return co_err_set(err, CO_E_INVAL, "%s: '%s' is not an integer from %ld to %ld", shown,
                              val, d->min, d->max);
        *(long *)(base + d->off) = v;
        return 0;
    }
    case OPT_STR:
        if (val[0] == '\0')
            return co_err_set(err, CO_E_INVAL, "%s: the value is empty", shown);
        *(const char **)(base + d->off) = val;
        return 0;
    case OPT_LIST: {
        const char ***arr = (const char ***)(base + d->off);
        size_t *n = (size_t *)(base + d->count);
        if (val[0] == '\0')
            return co_err_set(err, CO_E_INVAL, "%s: the value is empty", shown);
        if (arr == &o->params) {
            const char *eq = strchr(val, '=');
            if (eq == NULL || eq == val)
                return co_err_set(err, CO_E_INVAL, "%s: '%s' is not KEY=VALUE", shown, val);
        }
        *arr = co_xreallocarray(*arr, *n + 1, sizeof(**arr));
        (*arr)[(*n)++] = val;
        return 0;
    }
    case OPT_SCOPE:
        if (strcmp(val, "buy") == 0)
            o->scopes |= CLI_SCOPE_BUY;
        else if (strcmp(val, "sell") == 0)
            o->scopes |= CLI_SCOPE_SELL;
        else
            return co_err_set(err, CO_E_INVAL, "%s: '%s' is not a scope (buy or sell)", shown, val);
        return 0;
    }
    return co_err_set(err, CO_E_INTERNAL, "unknown option kind");
}

static enum cli_cmd
find_cmd(const char *w)
{
    for (int c = CLI_CMD_SUBMIT; c < CLI_CMD_COUNT_; c++)
        if (c != CLI_CMD_KEYS_CREATE && strcmp(names[c], w) == 0)
            return (enum cli_cmd)c;
    return CLI_CMD_NONE;
}

/* Positional words after the options: how many each command takes, and where they go. */
static int
take_positionals(struct cli_opts *o, char **pos, size_t n, co_err *err)
{
    const char *cmd = cli_cmd_name(o->cmd);

    switch (o->cmd) {
    case CLI_CMD_SUBMIT:
        if (n == 0)
            return co_err_set(err, CO_E_INVAL, "submit: no command (cacheout submit -- CMD ...)");
        o->argv = pos;
        o->argc = n;
        return 0;
    case CLI_CMD_SHOW:
    case CLI_CMD_LOGS:
    case CLI_CMD_CANCEL:
    case CLI_CMD_ARTIFACTS:
        if (n != 1)
            return co_err_set(err, CO_E_INVAL, "%s: expected one job id, got %zu arguments", cmd,
                              n);
        o->id = pos[0];
        return 0;
    case CLI_CMD_KEYS_CREATE:
        if (n != 1)
            return co_err_set(err, CO_E_INVAL, "keys create: expected one key name, got %zu", n);
        o->name = pos[0];
        return 0;
    default:
        if (n != 0)
            return co_err_set(err, CO_E_INVAL, "%s: unexpected argument '%s'", cmd, pos[0]);
        return 0;
    }
}

int
cli_args_parse(int argc, char **argv, struct cli_opts *o, co_err *err)
{
    char **pos = co_xcalloc((size_t)argc + 1, sizeof(*pos));
    size_t n_pos = 0;
    int i = 1;
    int rc = -1;

    memset(o, 0, sizeof(*o));
    /* Global options, then the command word (and "keys"'s sub-command). */
    for (; i < argc && argv[i][0] == '-'; i++) {
        if (strcmp(argv[i], "--json") == 0)
            o->json = true;
        else if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            o->help = true;
        else if (strcmp(argv[i], "--version") == 0)
            o->cmd = CLI_CMD_VERSION;
        else {
            co_err_set(err, CO_E_INVAL, "unknown option '%s'", argv[i]);
            goto out;
        }
    }
    if (o->cmd == CLI_CMD_VERSION || i >= argc) {
        rc = 0;
        goto out;
    }
    if (strcmp(argv[i], "help") == 0) {
        o->help = true;
        i++;
        if (i >= argc) {
            rc = 0;
            goto out;
        }
    }
    if (strcmp(argv[i], "keys") == 0) {
        if (i + 1 >= argc || strcmp(argv[i + 1], "create") != 0) {
            o->cmd = CLI_CMD_KEYS_CREATE;
            if (i + 1 < argc &&
                (strcmp(argv[i + 1], "--help") == 0 || strcmp(argv[i + 1], "-h") == 0))
                o->help = true;
            if (o->help) {
                rc = 0;
                goto out;
            }
            co_err_set(err, CO_E_INVAL, "keys: expected 'create' (cacheout keys create NAME)");
            goto out;
        }
        o->cmd = CLI_CMD_KEYS_CREATE;
        i += 2;
    } else {
        o->cmd = find_cmd(argv[i]);
        if (o->cmd == CLI_CMD_NONE) {
            co_err_set(err, CO_E_INVAL, "unknown command '%s'", argv[i]);
            goto out;
        }
        i++;
    }

    /* Options and positionals, mixed; `--` ends the options; for submit the first positional
     * also does, so that `cacheout submit python x.py --flag` gives --flag to the job. */
    for (; i < argc; i++) {
        const char *a = argv[i];
        if (o->cmd == CLI_CMD_SUBMIT && n_pos > 0) {
            pos[n_pos++] = argv[i];
            continue;
        }
        if (strcmp(a, "--") == 0) {
            for (i++; i < argc; i++)
                pos[n_pos++] = argv[i];
            break;
        }
        if (a[0] != '-' || a[1] == '\0') {
            pos[n_pos++] = argv[i];
            continue;
        }
        bool is_short = a[1] != '-';
        const char *name = is_short ? a + 1 : a + 2;
        const char *eq = is_short ? NULL : strchr(name, '=');
        size_t name_len = eq ? (size_t)(eq - name) : strlen(name);
        if (is_short && name_len != 1) {
            co_err_set(err, CO_E_INVAL, "%s: unknown option '%s'", cli_cmd_name(o->cmd), a);
            goto out;
        }
        const struct opt_def *d = find_opt(name, name_len, is_short, o->cmd);
        if (d == NULL) {
            co_err_set(err, CO_E_INVAL, "%s: unknown option '%.*s'", cli_cmd_name(o->cmd),
                       (int)(name_len + (is_short ? 1 : 2)), a);
            goto out;
        }
        char shown[80];
        snprintf(shown, sizeof(shown), "--%s", d->name);
        const char *val = NULL;
        if (d->kind == OPT_FLAG) {
            if (eq != NULL) {
                co_err_set(err, CO_E_INVAL, "%s takes no value", shown);
                goto out;
            }
        } else if (eq != NULL) {
            val = eq + 1;
        } else if (i + 1 < argc) {
            val = argv[++i];
        } else {
            co_err_set(err, CO_E_INVAL, "%s needs a value", shown);
            goto out;
        }
        if (set_opt(o, d, shown, val, err) < 0)
            goto out;
    }
    if (o->help) {
        rc = 0;
        goto out;
    }
    if (take_positionals(o, pos, n_pos, err) < 0)
        goto out;
    if (o->cmd == CLI_CMD_SUBMIT) {
        /* The job's words must stay valid: they live in argv, pos only indexes them. */
        o->argv = &argv[argc - (int)n_pos];
    }
    rc = 0;
out:
    free(pos);
    return rc;
}
