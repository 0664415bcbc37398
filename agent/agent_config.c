/* agent_config: settings of cacheout-agent (see agent_config.h). */
#include "agent_config.h"
#include "agent_artifacts.h"

#include <errno.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "co_alloc.h"
#include "co_config.h"

int
agent_host_caps_detect(struct agent_host_caps *out, co_err *err)
{
    memset(out, 0, sizeof(*out));

    long online = sysconf(_SC_NPROCESSORS_ONLN);
    int64_t cpus = online > 0 ? online : 1;
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof(set), &set) == 0) {
        int n = CPU_COUNT(&set);
        if (n > 0 && n < cpus)
            cpus = n;
    }
    out->cpus = cpus;

    co_autofclose FILE *f = fopen("/proc/meminfo", "re");
    if (!f)
        return co_err_sys(err, errno, "cannot open '/proc/meminfo'");
    char line[256];
    long long kb = -1;
    while (fgets(line, sizeof(line), f)) {
        if (sscanf(line, "MemTotal: %lld kB", &kb) == 1)
            break;
    }
    if (kb <= 0)
        return co_err_set(err, CO_E_INTERNAL, "cannot find MemTotal in '/proc/meminfo'");
    out->mem_total_mb = kb / 1024 > 0 ? kb / 1024 : 1;

    if (gethostname(out->hostname, sizeof(out->hostname) - 1) != 0)
        out->hostname[0] = '\0';
    out->hostname[sizeof(out->hostname) - 1] = '\0';
    return 0;
}

int64_t
agent_default_ram_mb(int64_t mem_total_mb)
{
    int64_t reserve = mem_total_mb / 10;
    if (reserve < AGENT_RAM_RESERVE_MIN_MB)
        reserve = AGENT_RAM_RESERVE_MIN_MB;
    int64_t ram = mem_total_mb - reserve;
    return ram >= 1 ? ram : 1;
}

int
agent_config_parse_url(struct agent_config *cfg, const char *url, co_err *err)
{
    const char *rest;
    bool tls;
    if (strncmp(url, "ws://", 5) == 0) {
        tls = false, rest = url + 5;
    } else if (strncmp(url, "wss://", 6) == 0) {
        tls = true, rest = url + 6;
    } else if (strncmp(url, "http://", 7) == 0) {
        tls = false, rest = url + 7;
    } else if (strncmp(url, "https://", 8) == 0) {
        tls = true, rest = url + 8;
    } else {
        return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                            "invalid COORDINATOR_URL '%s': must start with ws:// or wss://", url);
    }
    for (const char *p = url; *p; p++) {
        if ((unsigned char)*p <= 0x20 || *p == 0x7f)
            return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                                "invalid COORDINATOR_URL '%s': contains a space or control "
                                "character",
                                url);
    }

    size_t hostport_len = strcspn(rest, "/?#");
    const char *path = rest + hostport_len;
    co_autofree char *hostport = co_xstrndup(rest, hostport_len);
    if (strchr(hostport, '@'))
        return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                            "invalid COORDINATOR_URL '%s': credentials in the URL are not "
                            "supported (use AGENT_TOKEN)",
                            url);

    char *host = hostport;
    char *port_str = NULL;
    if (host[0] == '[') {
        char *close = strchr(host, ']');
        if (!close)
            return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                                "invalid COORDINATOR_URL '%s': unterminated '['", url);
        *close = '\0';
        host++;
        if (close[1] == ':')
            port_str = close + 2;
        else if (close[1] != '\0')
            return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                                "invalid COORDINATOR_URL '%s': junk after ']'", url);
    } else {
        char *colon = strchr(host, ':');
        if (colon) {
            *colon = '\0';
            port_str = colon + 1;
        }
    }
    if (host[0] == '\0')
        return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                            "invalid COORDINATOR_URL '%s': no host", url);

    int64_t port = tls ? 443 : 80;
    if (port_str) {
        co_err perr = CO_ERR_INIT;
        if (co_parse_int(port_str, "port", 1, 65535, &port, &perr) != 0)
            return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                                "invalid COORDINATOR_URL '%s': bad port '%s'", url, port_str);
    }

    /* A query is kept as part of the path; a fragment is dropped. */
    size_t path_len = strcspn(path, "#");
    char *new_path;
    if (path_len == 0 || path[0] != '/')
        new_path = co_xasprintf("%s%.*s", AGENT_DEFAULT_PATH, (int)path_len, path);
    else if (path_len == 1)
        new_path = co_xstrdup(AGENT_DEFAULT_PATH);
    else
        new_path = co_xstrndup(path, path_len);

    free(cfg->url);
    free(cfg->host);
    free(cfg->path);
    cfg->url = co_xstrdup(url);
    cfg->tls = tls;
    cfg->host = co_xstrdup(host);
    cfg->port = (int)port;
    cfg->path = new_path;
    return 0;
}

int
agent_default_work_root(uid_t euid, const char *xdg_state_home, const char *home, char **out,
                        co_err *err)
{
    *out = NULL;
    if (euid == 0) {
        *out = co_xstrdup(AGENT_DEFAULT_WORK_ROOT);
        return 0;
    }
    /* The XDG base directory rules: a relative XDG_STATE_HOME is invalid and ignored. */
    if (xdg_state_home && xdg_state_home[0] == '/') {
        *out = co_xasprintf("%s/cacheout-agent", xdg_state_home);
        return 0;
    }
    if (home && home[0] == '/') {
        *out = co_xasprintf("%s/.local/state/cacheout-agent", strcmp(home, "/") == 0 ? "" : home);
        return 0;
    }
    return co_err_field(err, CO_E_INVAL, "AGENT_WORK_ROOT",
                        "missing AGENT_WORK_ROOT: not running as root and neither "
                        "XDG_STATE_HOME nor HOME is an absolute path; set AGENT_WORK_ROOT "
                        "(or --work-root)");
}

static void
free_images(struct agent_config *cfg)
{
    for (size_t i = 0; i < cfg->n_images; i++)
        free(cfg->images[i]);
    free(cfg->images);
    cfg->images = NULL;
    cfg->n_images = 0;
}

static int
parse_images(struct agent_config *cfg, const char *list, co_err *err)
{
    free_images(cfg);
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, ",");
        co_autofree char *item = co_xstrndup(p, n);
        /* Trim spaces around each item. */
        char *s = item;
        while (*s == ' ' || *s == '\t')
            s++;
        char *e = s + strlen(s);
        while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
            *--e = '\0';
        if (*s) {
            if (!co_id_valid(s))
                return co_err_field(err, CO_E_INVAL, "AGENT_IMAGES",
                                    "invalid AGENT_IMAGES: '%s' is not an image name "
                                    "(1-64 of [A-Za-z0-9._-])",
                                    s);
            if (!agent_config_has_image(cfg, s)) {
                if (cfg->n_images >= AGENT_IMAGES_MAX)
                    return co_err_field(err, CO_E_RANGE, "AGENT_IMAGES",
                                        "invalid AGENT_IMAGES: more than %d images",
                                        AGENT_IMAGES_MAX);
                cfg->images =
                    co_xreallocarray(cfg->images, cfg->n_images + 1, sizeof(*cfg->images));
                cfg->images[cfg->n_images++] = co_xstrdup(s);
            }
        }
        p += n;
        if (*p == ',')
            p++;
    }
    if (cfg->n_images == 0)
        return co_err_field(err, CO_E_INVAL, "AGENT_IMAGES", "invalid AGENT_IMAGES: empty list");
    return 0;
}

static int
load_id(const char *name, const char *value, char out[CO_ID_MAX + 1], co_err *err)
{
    if (!co_id_valid(value))
        return co_err_field(err, CO_E_INVAL, name,
                            "invalid %s '%s': must be 1-64 characters of [A-Za-z0-9._-]", name,
                            value);
    co_strlcpy(out, value, CO_ID_MAX + 1);
    return 0;
}

static void
free_urls(struct agent_config *cfg)
{
    for (size_t i = 0; i < cfg->n_urls; i++) {
        free(cfg->urls[i].url);
        free(cfg->urls[i].host);
        free(cfg->urls[i].path);
    }
    free(cfg->urls);
    cfg->urls = NULL;
    cfg->n_urls = 0;
}

/*
 * COORDINATOR_URL: one URL or a comma-separated list of them (spaces around the commas are
 * ignored).  Every entry is checked now, so a typo in the third URL stops start-up rather than
 * showing up at the first failover.  cfg->url/tls/host/port/path end up as the first entry.
 */
static int
parse_url_list(struct agent_config *cfg, const char *list, co_err *err)
{
    co_autofree char *copy = co_xstrdup(list);
    size_t n = 1;
    for (const char *p = copy; *p; p++)
        n += *p == ',';
    if (n > AGENT_URLS_MAX)
        return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                            "invalid COORDINATOR_URL: %zu URLs, at most %d", n, AGENT_URLS_MAX);
    cfg->urls = co_xcalloc(n, sizeof(*cfg->urls));
    char *item = copy;
    for (size_t i = 0; i < n; i++) {
        char *comma = strchr(item, ',');
        if (comma)
            *comma = '\0';
        while (*item == ' ' || *item == '\t')
            item++;
        size_t len = strlen(item);
        while (len > 0 && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            item[--len] = '\0';
        if (len == 0)
            return co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                                "invalid COORDINATOR_URL '%s': entry %zu of the list is empty",
                                list, i + 1);
        if (agent_config_parse_url(cfg, item, err) != 0)
            return -1;
        struct agent_url *u = &cfg->urls[cfg->n_urls++];
        u->url = cfg->url, u->tls = cfg->tls, u->host = cfg->host, u->port = cfg->port;
        u->path = cfg->path;
        cfg->url = cfg->host = cfg->path = NULL;
        cfg->any_tls |= u->tls;
        item = comma ? comma + 1 : item + len;
    }
    cfg->url = co_xstrdup(cfg->urls[0].url);
    cfg->tls = cfg->urls[0].tls;
    cfg->host = co_xstrdup(cfg->urls[0].host);
    cfg->port = cfg->urls[0].port;
    cfg->path = co_xstrdup(cfg->urls[0].path);
    return 0;
}

int
agent_config_load(struct agent_config *cfg, const struct agent_host_caps *caps, co_err *err)
{
    memset(cfg, 0, sizeof(*cfg));

    const char *url = co_config_str("COORDINATOR_URL", NULL);
    if (!url) {
        co_err_field(err, CO_E_INVAL, "COORDINATOR_URL",
                     "missing COORDINATOR_URL: set it (or --coordinator) to the coordinator's "
                     "ws:// or wss:// address");
        goto fail;
    }
    if (parse_url_list(cfg, url, err) != 0)
        goto fail;

    /* TLS_CA_FILE, the name the coordinator and the packages use; AGENT_TLS_CA_FILE is older. */
    const char *ca_var = co_config_str("TLS_CA_FILE", NULL) ? "TLS_CA_FILE" : "AGENT_TLS_CA_FILE";
    const char *ca = co_config_str(ca_var, NULL);
    if (ca) {
        if (access(ca, R_OK) != 0) {
            co_err_field(err, CO_E_INVAL, ca_var, "invalid %s '%s': cannot read it", ca_var, ca);
            goto fail;
        }
        cfg->tls_ca_file = co_xstrdup(ca);
    }
    if (co_config_bool("AGENT_TLS_INSECURE", false, &cfg->tls_insecure, err) != 0)
        goto fail;

    const char *token = co_config_str("AGENT_TOKEN", "");
    if (strlen(token) > 1024) {
        co_err_field(err, CO_E_RANGE, "AGENT_TOKEN", "invalid AGENT_TOKEN: longer than 1024 bytes");
        goto fail;
    }
    cfg->token = co_xstrdup(token);
    const char *key = co_config_str("AGENT_KEY", "");
    if (strlen(key) > 1024) {
        co_err_field(err, CO_E_RANGE, "AGENT_KEY", "invalid AGENT_KEY: longer than 1024 bytes");
        goto fail;
    }
    for (const char *c = key; *c; c++) {
        if (*c <= ' ' || *c == 0x7f) {
            co_err_field(err, CO_E_INVAL, "AGENT_KEY",
                         "invalid AGENT_KEY: contains a space or a control character");
            goto fail;
        }
    }
    cfg->key = co_xstrdup(key);

    const char *worker = co_config_str("WORKER_ID", NULL);
    if (!worker) {
        if (!caps->hostname[0] || !co_id_valid(caps->hostname)) {
            co_err_field(err, CO_E_INVAL, "WORKER_ID",
                         "missing WORKER_ID: the host name '%s' is not a valid worker id, set "
                         "WORKER_ID (1-64 characters of [A-Za-z0-9._-])",
                         caps->hostname);
            goto fail;
        }
        worker = caps->hostname;
    }
    if (load_id("WORKER_ID", worker, cfg->worker_id, err) != 0)
        goto fail;
    if (load_id("OWNER_ID", co_config_str("OWNER_ID", cfg->worker_id), cfg->owner_id, err) != 0)
        goto fail;

    if (co_config_int("AGENT_CORES", caps->cpus, 1, 4096, &cfg->cores, err) != 0)
        goto fail;
    if (co_config_int("AGENT_RAM_MB", agent_default_ram_mb(caps->mem_total_mb), 1, INT64_C(1) << 40,
                      &cfg->ram_mb, err) != 0)
        goto fail;
    if (parse_images(cfg, co_config_str("AGENT_IMAGES", "default"), err) != 0)
        goto fail;
    cfg->has_price = co_config_str("AGENT_PRICE_PER_CORE_SECOND", NULL) != NULL ||
                     co_config_str("AGENT_PRICE_PER_GB_SECOND", NULL) != NULL;
    if (co_config_credits("AGENT_PRICE_PER_CORE_SECOND", "0", INT64_MAX,
                          &cfg->price_per_core_second, err) != 0 ||
        co_config_credits("AGENT_PRICE_PER_GB_SECOND", "0", INT64_MAX, &cfg->price_per_gb_second,
                          err) != 0)
        goto fail;

    const char *root = co_config_str("AGENT_WORK_ROOT", NULL);
    if (root) {
        if (root[0] != '/' || strlen(root) > 3000) {
            co_err_field(err, CO_E_INVAL, "AGENT_WORK_ROOT",
                         "invalid AGENT_WORK_ROOT '%s': must be an absolute path", root);
            goto fail;
        }
        cfg->work_root = co_xstrdup(root);
    } else if (agent_default_work_root(geteuid(), getenv("XDG_STATE_HOME"), getenv("HOME"),
                                       &cfg->work_root, err) != 0) {
        goto fail;
    } else if (strlen(cfg->work_root) > 3000) {
        co_err_field(err, CO_E_INVAL, "AGENT_WORK_ROOT",
                     "invalid default AGENT_WORK_ROOT '%s': longer than 3000 bytes, set "
                     "AGENT_WORK_ROOT",
                     cfg->work_root);
        goto fail;
    }

    if (co_config_int("AGENT_GRACE_SECONDS", AGENT_DEFAULT_GRACE_SECONDS, 0, 86400,
                      &cfg->grace_seconds, err) != 0)
        goto fail;
    if (co_config_int("AGENT_AUTH_RETRY_SECONDS", AGENT_DEFAULT_AUTH_RETRY_SECONDS, 1, 86400,
                      &cfg->auth_retry_s, err) != 0)
        goto fail;
    if (co_config_bool("AGENT_EXIT_ON_AUTH_ERROR", false, &cfg->exit_on_auth_error, err) != 0)
        goto fail;
    if (co_config_size("AGENT_OUTPUT_LIMIT", 1024 * 1024, 0, INT64_C(1) << 40, &cfg->output_limit,
                       err) != 0)
        goto fail;
    if (co_config_int("AGENT_JOB_PIDS", 256, 1, 1 << 22, &cfg->pids, err) != 0)
        goto fail;
    if (co_config_size("AGENT_MAX_ARTIFACT_BYTES", AGENT_ARTIFACT_BYTES_DEFAULT, 0,
                       PROTO_ARTIFACT_BYTES_MAX, &cfg->max_artifact_bytes, err) != 0)
        goto fail;
    if (co_config_int("AGENT_MAX_ARTIFACT_FILES", AGENT_ARTIFACT_FILES_DEFAULT, 0,
                      PROTO_ARTIFACT_FILES_MAX, &cfg->max_artifact_files, err) != 0)
        goto fail;
    if (co_config_bool("AGENT_BENCH_NO_SANDBOX", false, &cfg->bench_no_sandbox, err) != 0)
        goto fail;

    const char *level = co_config_str("LOG_LEVEL", "INFO");
    if (co_log_parse_level(level, &cfg->log_level, err) != 0) {
        co_err_field(err, CO_E_INVAL, "LOG_LEVEL",
                     "invalid LOG_LEVEL '%s': use DEBUG, INFO, WARNING or ERROR", level);
        goto fail;
    }
    const char *log_file = co_config_str("LOG_FILE", NULL);
    cfg->log_file = log_file ? co_xstrdup(log_file) : NULL;
    return 0;

fail:
    agent_config_release(cfg);
    return -1;
}

void
agent_config_release(struct agent_config *cfg)
{
    free_urls(cfg);
    free(cfg->url);
    free(cfg->host);
    free(cfg->path);
    free(cfg->token);
    free(cfg->key);
    free(cfg->tls_ca_file);
    free_images(cfg);
    free(cfg->work_root);
    free(cfg->log_file);
    memset(cfg, 0, sizeof(*cfg));
}

bool
agent_config_has_image(const struct agent_config *cfg, const char *image)
{
    for (size_t i = 0; i < cfg->n_images; i++) {
        if (strcmp(cfg->images[i], image) == 0)
            return true;
    }
    return false;
}
