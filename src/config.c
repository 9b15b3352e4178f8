/* SPDX-License-Identifier: MIT */
/*
 * The config file: its libconfuse schema, the defaults, and every check on
 * the values.  Mistakes are logged here as "FILE:LINE: ..." so that one run
 * lists them all; what the daemon does with a bad config is the caller's.
 */
#include "config.h"

#include <confuse.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <syslog.h>
#include <unistd.h>

#include "log.h"
#include "sink_kinesis.h"
#include "validate.h"

#define CONFIG_MS_HOUR  3600000L
#define CONFIG_MS_DAY   86400000L
#define CONFIG_KIB      1024L
#define CONFIG_MIB      (1024L * 1024L)
#define CONFIG_GIB      (1024L * 1024L * 1024L)

/*
 * An input's name ends up in log lines and in the names of its state files
 * under state_dir, so it is kept to characters that are safe in both.
 */
#define CONFIG_NAME_MAX 64

/*
 * The sections that may appear at most once, indexed for the "given
 * twice" check.  Exactly one of firehose and kinesis is required.
 */
enum config_section {
    CONFIG_SECTION_SPOOL,
    CONFIG_SECTION_SOCKET,
    CONFIG_SECTION_FIREHOSE,
    CONFIG_SECTION_SIGNING,
    CONFIG_SECTION_CONTROL,
    CONFIG_SECTION_VALIDATE,
    CONFIG_SECTION_KINESIS,
    CONFIG_SECTION_MAX,
};

static const char *const config_section_names[CONFIG_SECTION_MAX] = {
    "spool", "socket", "firehose", "signing", "control", "validate",
    "kinesis",
};

struct config_seen_input {
    char *name;
    int line;
};

/*
 * What one config_load() run has found so far.  libconfuse callbacks get no
 * user pointer, hence the file-scope pointer below; libconfuse's lexer keeps
 * global state of its own, so config_load() is not reentrant either way.
 *
 * libconfuse 3.3 keeps no line per option, only the current line of the
 * section being read.  While a section is read the root's line stays at the
 * section's opening brace, so the first value callback inside a section
 * notes it in section_line; the checks that run when the section closes
 * (required options, duplicates) report that line instead of the closing
 * brace.
 */
struct config_parser {
    const char *file;
    cfg_t *root;
    unsigned errors;
    int section_line;               /* 0: no value seen in this section */
    unsigned section_errors;        /* errors when the section began */
    int section_seen[CONFIG_SECTION_MAX];   /* opening line, 0: absent */
    struct config_seen_input *inputs;
    size_t n_inputs;
    struct validate *scratch;       /* takes each rule once, to check it */
};

static struct config_parser *config_parser;

struct config_limit {
    const char *option;
    long min;
    long max;
};

/* Sizes in bytes. */
static const struct config_limit config_size_limits[] = {
    { "max_size",       1, LONG_MAX },
    { "segment_size",   1, LONG_MAX },
    /*
     * A Firehose record holds at most 1000 KiB, so a longer event or line
     * could never be delivered whole.
     */
    { "max_event_size", 1, CONFIG_MIB },
    { "max_line",       1, CONFIG_MIB },
    /* Below one event, a single long line could never be finished. */
    { "max_buffer",     CONFIG_MIB, LONG_MAX },
    { "max_bytes",      1, CONFIG_MIB },        /* validate */
    { "max_bytes_per_second", 0, LONG_MAX },     /* 0: no limit */
};

/* Milliseconds and counts. */
static const struct config_limit config_number_limits[] = {
    { "sync_interval",   1, CONFIG_MS_HOUR },
    { "max_connections", 1, 65536 },
    { "partial_timeout", 0, CONFIG_MS_DAY },
    { "idle_timeout",    0, CONFIG_MS_DAY },
    { "rotate_wait",     0, CONFIG_MS_DAY },
    { "group_timeout",   1, CONFIG_MS_HOUR },
    { "max_in_flight",   1, 256 },
    { "timeout",         1, CONFIG_MS_HOUR },
    { "retry_initial",   1, CONFIG_MS_HOUR },
    { "retry_max",       1, CONFIG_MS_DAY },
    { "connect_timeout", 1, CONFIG_MS_HOUR },
    { "low_speed_time",  1000, CONFIG_MS_HOUR },
    { "max_records_per_second", 0, 10000000 },  /* 0: no limit */
    /* Seals: events per seal, milliseconds, seconds per key epoch. */
    { "seal_every",      1, 1000000 },
    { "seal_interval",   1, CONFIG_MS_HOUR },
    { "epoch",           0, 366L * 86400 },
    /* validate: the JSON check refuses deeper nesting anyway. */
    { "max_depth",       1, VALIDATE_DEPTH_MAX },
};

struct config_choice {
    const char *word;
    long value;
};

struct config_enum {
    const char *option;
    const struct config_choice *choices;
    size_t n_choices;
};

static const struct config_choice config_levels[] = {
    { "err", LOG_ERR }, { "warning", LOG_WARNING }, { "notice", LOG_NOTICE },
    { "info", LOG_INFO }, { "debug", LOG_DEBUG },
};

static const struct config_choice config_syncs[] = {
    { "always", CONFIG_SYNC_ALWAYS }, { "interval", CONFIG_SYNC_INTERVAL },
};

static const struct config_choice config_on_fulls[] = {
    { "block", CONFIG_ON_FULL_BLOCK },
    { "drop_oldest", CONFIG_ON_FULL_DROP_OLDEST },
};

static const struct config_choice config_formats[] = {
    { "json", CONFIG_FORMAT_JSON }, { "auditd", CONFIG_FORMAT_AUDITD },
    { "raw", CONFIG_FORMAT_RAW },
};

static const struct config_choice config_starts[] = {
    { "beginning", 0 }, { "end", 1 },
};

#define CONFIG_ENUM(opt, c) { opt, c, sizeof(c) / sizeof((c)[0]) }

static const struct config_enum config_enums[] = {
    CONFIG_ENUM("log_level", config_levels),
    CONFIG_ENUM("sync", config_syncs),
    CONFIG_ENUM("on_full", config_on_fulls),
    CONFIG_ENUM("format", config_formats),
    CONFIG_ENUM("start_at", config_starts),
};

static void config_report(int line, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static void
config_report(int line, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);

    if (line > 0)
        log_err("%s:%d: %s", config_parser->file, line, msg);
    else
        log_err("%s: %s", config_parser->file, msg);
    config_parser->errors++;
}

static void config_libconfuse_error(cfg_t *cfg, const char *fmt, va_list ap)
        __attribute__((format(printf, 2, 0)));

/* libconfuse's own findings: syntax errors and unknown options. */
static void
config_libconfuse_error(cfg_t *cfg, const char *fmt, va_list ap)
{
    char msg[1024];

    (void)vsnprintf(msg, sizeof(msg), fmt, ap);
    config_report(cfg ? cfg->line : 0, "%s", msg);
}

/*
 * A value as it may appear in a log line: the operator typed it, so control
 * characters are masked and a long one is cut rather than allowed to make a
 * line of its own.
 */
static const char *
config_quote(const char *value, char *buf, size_t size)
{
    size_t i;

    for (i = 0; value[i] && i + 4 < size; i++)
        buf[i] = (unsigned char)value[i] < 0x20 || value[i] == 0x7f
                ? '?' : value[i];
    if (value[i]) {
        memcpy(buf + i, "...", 3);
        i += 3;
    }
    buf[i] = '\0';
    return buf;
}

/* "state_dir", "spool.dir", "input 'app' path": what an error is about. */
static const char *
config_subject(cfg_t *cfg, const cfg_opt_t *opt, char *buf, size_t size)
{
    char title[CONFIG_NAME_MAX + 8];

    if (cfg == config_parser->root)
        (void)snprintf(buf, size, "%s", opt->name);
    else if (cfg->title)
        (void)snprintf(buf, size, "%s '%s' %s", cfg->name,
                       config_quote(cfg->title, title, sizeof(title)),
                       opt->name);
    else
        (void)snprintf(buf, size, "%s.%s", cfg->name, opt->name);
    return buf;
}

/* Called first by every value callback: see struct config_parser. */
static void
config_note_value(cfg_t *cfg)
{
    if (cfg == config_parser->root || config_parser->section_line)
        return;
    config_parser->section_line = config_parser->root->line;
    config_parser->section_errors = config_parser->errors;
}

static const struct config_limit *
config_find_limit(const struct config_limit *limits, size_t n,
                  const char *option)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(limits[i].option, option) == 0)
            return &limits[i];
    return NULL;
}

/* Digits with an optional suffix; -ERANGE when it does not fit 64 bits. */
static int
config_scan_size(const char *s, uint64_t *ret)
{
    uint64_t n = 0, mult = 1;
    const char *p = s;

    if (*p < '0' || *p > '9')
        return -EINVAL;
    for (; *p >= '0' && *p <= '9'; p++) {
        unsigned d = (unsigned)(*p - '0');

        if (n > (UINT64_MAX - d) / 10)
            return -ERANGE;
        n = n * 10 + d;
    }

    switch (*p) {
    case '\0':
        break;
    case 'k':
    case 'K':
        mult = UINT64_C(1) << 10;
        break;
    case 'M':
        mult = UINT64_C(1) << 20;
        break;
    case 'G':
        mult = UINT64_C(1) << 30;
        break;
    case 'T':
        mult = UINT64_C(1) << 40;
        break;
    default:
        return -EINVAL;
    }
    if (*p && p[1])
        return -EINVAL;

    if (n > UINT64_MAX / mult)
        return -ERANGE;
    *ret = n * mult;
    return 0;
}

int
config_parse_size(const char *s, uint64_t *ret)
{
    uint64_t n;
    int r;

    r = config_scan_size(s, &n);
    if (r < 0)
        return -EINVAL;
    *ret = n;
    return 0;
}

/* 1048576 as "1M", for limits in messages. */
static const char *
config_format_size(uint64_t n, char *buf, size_t size)
{
    static const char suffixes[] = "kMGT";
    int i = -1;

    while (i < 3 && n >= 1024 && n % 1024 == 0) {
        n /= 1024;
        i++;
    }
    if (i < 0)
        (void)snprintf(buf, size, "%llu", (unsigned long long)n);
    else
        (void)snprintf(buf, size, "%llu%c", (unsigned long long)n,
                       suffixes[i]);
    return buf;
}

static int
config_cb_size(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const struct config_limit *lim;
    char subj[160], q[80], max[32];
    uint64_t n = 0;
    int r;

    config_note_value(cfg);
    config_subject(cfg, opt, subj, sizeof(subj));
    config_quote(value, q, sizeof(q));
    lim = config_find_limit(config_size_limits,
                            sizeof(config_size_limits) /
                            sizeof(config_size_limits[0]), opt->name);
    *(long *)result = opt->def.number;

    r = config_scan_size(value, &n);
    if (r == -ERANGE || (r == 0 && n > (uint64_t)lim->max &&
                         lim->max == LONG_MAX)) {
        config_report(cfg->line, "%s: size '%s' is too large", subj, q);
        return 0;
    }
    if (r < 0) {
        config_report(cfg->line,
                      "%s: invalid size '%s' (use bytes with an optional k, M, G or T)",
                      subj, q);
        return 0;
    }
    if (n < (uint64_t)lim->min && lim->min > 1) {
        config_report(cfg->line, "%s: '%s' is less than the minimum of %s",
                      subj, q,
                      config_format_size((uint64_t)lim->min, max,
                                         sizeof(max)));
        return 0;
    }
    if (n < (uint64_t)lim->min) {
        config_report(cfg->line, "%s: must be larger than 0", subj);
        return 0;
    }
    if (n > (uint64_t)lim->max) {
        config_report(cfg->line, "%s: '%s' is more than the limit of %s",
                      subj, q,
                      config_format_size((uint64_t)lim->max, max,
                                         sizeof(max)));
        return 0;
    }

    *(long *)result = (long)n;
    return 0;
}

static int
config_cb_number(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const struct config_limit *lim;
    char subj[160], q[80];
    const char *p;
    long n = 0;

    config_note_value(cfg);
    config_subject(cfg, opt, subj, sizeof(subj));
    config_quote(value, q, sizeof(q));
    lim = config_find_limit(config_number_limits,
                            sizeof(config_number_limits) /
                            sizeof(config_number_limits[0]), opt->name);
    *(long *)result = opt->def.number;

    for (p = value; *p >= '0' && *p <= '9'; p++) {
        /* Anything past the limit is out of range, however long. */
        if (n <= lim->max)
            n = n * 10 + (*p - '0');
    }
    if (p == value || *p) {
        config_report(cfg->line, "%s: '%s' is not a whole number", subj, q);
        return 0;
    }
    if (n < lim->min || n > lim->max) {
        config_report(cfg->line, "%s: %s is out of range (%ld to %ld)",
                      subj, q, lim->min, lim->max);
        return 0;
    }

    *(long *)result = n;
    return 0;
}

static int
config_cb_enum(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const struct config_enum *e = NULL;
    char subj[160], q[80], words[128];
    size_t i, len = 0;

    config_note_value(cfg);
    for (i = 0; i < sizeof(config_enums) / sizeof(config_enums[0]); i++)
        if (strcmp(config_enums[i].option, opt->name) == 0)
            e = &config_enums[i];
    *(long *)result = opt->def.number;

    for (i = 0; i < e->n_choices; i++) {
        if (strcmp(value, e->choices[i].word) == 0) {
            *(long *)result = e->choices[i].value;
            return 0;
        }
    }

    words[0] = '\0';
    for (i = 0; i < e->n_choices; i++) {
        const char *sep = i == 0 ? "" :
                          i + 1 == e->n_choices ? " or " : ", ";

        len += (size_t)snprintf(words + len, sizeof(words) - len, "%s%s",
                                sep, e->choices[i].word);
        if (len >= sizeof(words))
            break;
    }
    config_report(cfg->line, "%s: unknown value '%s' (use %s)",
                  config_subject(cfg, opt, subj, sizeof(subj)),
                  config_quote(value, q, sizeof(q)), words);
    return 0;
}

static int
config_cb_bool(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char subj[160], q[80];
    int b;

    config_note_value(cfg);
    b = cfg_parse_boolean(value);
    if (b < 0) {
        config_report(cfg->line,
                      "%s: '%s' is not a boolean (use true or false)",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)));
        b = opt->def.boolean;
    }
    *(int *)result = b;
    return 0;
}

/* A permission mode written in octal; file type and set-id bits make no
 * sense for a socket, so only the nine permission bits are allowed. */
static int
config_cb_mode(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char subj[160], q[80];
    size_t len = strlen(value);
    long m = 0;

    config_note_value(cfg);
    *(long *)result = opt->def.number;
    if (len >= 3 && len <= 4 && strspn(value, "01234567") == len) {
        m = strtol(value, NULL, 8);
        if (m <= 0777) {
            *(long *)result = m;
            return 0;
        }
    }
    config_report(cfg->line, "%s: '%s' is not an octal mode such as 0660",
                  config_subject(cfg, opt, subj, sizeof(subj)),
                  config_quote(value, q, sizeof(q)));
    return 0;
}

/* The string callbacks keep the value even when it is wrong: nothing is
 * built from it, because config_load() fails once any error was found. */
static bool
config_check_path(cfg_t *cfg, cfg_opt_t *opt, const char *value)
{
    char subj[160], q[80];

    config_subject(cfg, opt, subj, sizeof(subj));
    if (!*value) {
        config_report(cfg->line, "%s: must not be empty", subj);
        return false;
    }
    if (value[0] != '/') {
        config_report(cfg->line, "%s: '%s' is not an absolute path", subj,
                      config_quote(value, q, sizeof(q)));
        return false;
    }
    return true;
}

static int
config_cb_path(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    config_note_value(cfg);
    (void)config_check_path(cfg, opt, value);
    *(const char **)result = value;
    return 0;
}

static int
config_cb_socket_path(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                      void *result)
{
    struct sockaddr_un sun;
    char subj[160];

    config_note_value(cfg);
    if (config_check_path(cfg, opt, value) &&
        strlen(value) >= sizeof(sun.sun_path))
        config_report(cfg->line,
                      "%s: too long for a Unix socket (at most %zu bytes)",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      sizeof(sun.sun_path) - 1);
    *(const char **)result = value;
    return 0;
}

static bool
config_is_word(const char *s, size_t max, const char *extra)
{
    size_t len = strlen(s);

    if (len == 0 || len > max)
        return false;
    for (const char *p = s; *p; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
            (*p >= '0' && *p <= '9') || strchr(extra, *p))
            continue;
        return false;
    }
    return true;
}

static int
config_cb_stream(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char subj[160], q[80];

    config_note_value(cfg);
    /* Firehose's own rule for delivery stream names. */
    if (!config_is_word(value, 64, "_.-"))
        config_report(cfg->line,
                      "%s: '%s' is not a stream name (1 to 64 of A-Z, a-z, 0-9, '_', '.', '-')",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)));
    *(const char **)result = value;
    return 0;
}

static int
config_cb_kinesis_stream(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                         void *result)
{
    char subj[160], q[160];

    config_note_value(cfg);
    /* Kinesis Data Streams' rule for stream names. */
    if (!config_is_word(value, 128, "_.-"))
        config_report(cfg->line,
                      "%s: '%s' is not a stream name (1 to 128 of A-Z, a-z, 0-9, '_', '.', '-')",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)));
    *(const char **)result = value;
    return 0;
}

static int
config_cb_partition_key(cfg_t *cfg, cfg_opt_t *opt, const char *value,
                        void *result)
{
    char subj[160], q[160];
    const char *why = NULL;

    config_note_value(cfg);
    if (!sink_kinesis_key_valid(value, &why))
        config_report(cfg->line, "%s: '%s': %s",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)), why);
    *(const char **)result = value;
    return 0;
}

/* Two lowercase letters, one or more "-word" parts, then "-digits". */
static bool
config_is_region(const char *s)
{
    const char *p = s;
    const char *last_dash = strrchr(s, '-');

    if (!last_dash || strlen(s) > 32)
        return false;
    if (strspn(last_dash + 1, "0123456789") != strlen(last_dash + 1) ||
        !last_dash[1])
        return false;
    if (strspn(p, "abcdefghijklmnopqrstuvwxyz") != 2 || p[2] != '-')
        return false;
    for (p += 2; p < last_dash; ) {
        size_t n;

        if (*p != '-')
            return false;
        p++;
        n = strspn(p, "abcdefghijklmnopqrstuvwxyz");
        if (n == 0)
            return false;
        p += n;
    }
    return last_dash > s + 2;
}

static int
config_cb_region(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char subj[160], q[80];

    config_note_value(cfg);
    if (!config_is_region(value))
        config_report(cfg->line,
                      "%s: '%s' is not a region name like us-east-1",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)));
    *(const char **)result = value;
    return 0;
}

/*
 * http:// or https://, a host name, IPv4 address or [IPv6] address, an
 * optional port, and an optional path.  No user information: credentials
 * never go in this file.
 */
static bool
config_is_url(const char *s)
{
    const char *p, *host;
    size_t n;

    if (strncmp(s, "https://", 8) == 0)
        p = s + 8;
    else if (strncmp(s, "http://", 7) == 0)
        p = s + 7;
    else
        return false;

    host = p;
    if (*p == '[') {
        n = strspn(p + 1, "0123456789abcdefABCDEF:.");
        if (n == 0 || p[1 + n] != ']')
            return false;
        p += n + 2;
    } else {
        n = strspn(p, "abcdefghijklmnopqrstuvwxyz"
                      "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.-");
        if (n == 0 || *p == '.' || *p == '-')
            return false;
        p += n;
    }
    if (p == host)
        return false;

    if (*p == ':') {
        long port = 0;

        p++;
        n = strspn(p, "0123456789");
        if (n == 0 || n > 5)
            return false;
        for (size_t i = 0; i < n; i++)
            port = port * 10 + (p[i] - '0');
        if (port < 1 || port > 65535)
            return false;
        p += n;
    }
    if (*p && *p != '/')
        return false;
    for (; *p; p++)
        if ((unsigned char)*p <= ' ' || *p == 0x7f)
            return false;
    return true;
}

static int
config_cb_url(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char subj[160], q[80];

    config_note_value(cfg);
    if (!config_is_url(value))
        config_report(cfg->line, "%s: '%s' is not an http or https URL",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)));
    *(const char **)result = value;
    return 0;
}

/*
 * Static AWS keys: printable, no blanks.  The value is never repeated in
 * an error: a secret must not reach the log, even a mistyped one.
 */
static int
config_cb_key(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    char subj[160];
    size_t len = strlen(value);
    bool ok = len > 0 && len <= 256;

    config_note_value(cfg);
    for (const char *p = value; ok && *p; p++)
        ok = (unsigned char)*p > ' ' && *p != 0x7f;
    if (!ok)
        config_report(cfg->line, "%s: not a key (1 to 256 printable "
                      "characters without blanks; value not shown)",
                      config_subject(cfg, opt, subj, sizeof(subj)));
    *(const char **)result = value;
    return 0;
}

/* libcurl's proxy forms: [scheme://][user:password@]host[:port]. */
static int
config_cb_proxy(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    static const char *const schemes[] = {
        "http://", "https://", "socks4://", "socks4a://", "socks5://",
        "socks5h://",
    };
    const char *sep = strstr(value, "://");
    char subj[160], q[80];
    bool ok = *value != '\0';

    config_note_value(cfg);
    if (sep) {
        ok = false;
        for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
            if (strncasecmp(value, schemes[i], strlen(schemes[i])) == 0)
                ok = sep[3] != '\0';
    }
    for (const char *p = value; ok && *p; p++)
        ok = (unsigned char)*p > ' ' && *p != 0x7f;
    if (!ok)
        config_report(cfg->line, "%s: '%s' is not a proxy "
                      "([http|https|socks4|socks4a|socks5|socks5h://]host"
                      "[:port])",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      strchr(value, '@') ? "(has a password, not shown)"
                                         : config_quote(value, q, sizeof(q)));
    *(const char **)result = value;
    return 0;
}

/*
 * agent_id goes into every delivered event and group to getgrnam(), so both
 * are kept to plain name characters; a group name may not start with '-'.
 */
static int
config_cb_word(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    bool group = strcmp(opt->name, "group") == 0;
    size_t max = group ? 32 : 128;
    char subj[160], q[80];

    config_note_value(cfg);
    if (!config_is_word(value, max, "_.-") || value[0] == '-')
        config_report(cfg->line,
                      "%s: '%s' is not a name (1 to %zu of A-Z, a-z, 0-9, '_', '.', '-')",
                      config_subject(cfg, opt, subj, sizeof(subj)),
                      config_quote(value, q, sizeof(q)), max);
    *(const char **)result = value;
    return 0;
}

/*
 * A validation rule, compiled once into a scratch set so that a mistake
 * is reported at its line; the rules are compiled for real per scope
 * once the whole file is known good.
 */
static int
config_cb_rule(cfg_t *cfg, cfg_opt_t *opt, const char *value, void *result)
{
    const char *why = NULL;
    char subj[160];
    int r;

    config_note_value(cfg);
    *(const char **)result = value;
    if (strcmp(opt->name, "required") == 0)
        r = validate_add_required(config_parser->scratch, value, &why);
    else
        r = validate_add_type(config_parser->scratch, value, &why);
    if (r == -ENOMEM)
        return -1;
    if (r < 0)
        config_report(cfg->line, "%s: %s",
                      config_subject(cfg, opt, subj, sizeof(subj)), why);
    return 0;
}

static int
config_section_index(const char *name)
{
    for (int i = 0; i < CONFIG_SECTION_MAX; i++)
        if (strcmp(config_section_names[i], name) == 0)
            return i;
    return -1;
}

/*
 * The line a section is reported at when it closes: its opening brace as
 * noted by the first value inside, or the closing brace when it held none.
 * *ret_clean says whether its values were all good.
 */
static int
config_section_take_line(cfg_t *parent, bool *ret_clean)
{
    int line = config_parser->section_line ? config_parser->section_line
                                           : parent->line;

    if (ret_clean)
        *ret_clean = !config_parser->section_line ||
                     config_parser->section_errors == config_parser->errors;
    config_parser->section_line = 0;
    return line;
}

static int
config_validate_section(cfg_t *cfg, cfg_opt_t *opt)
{
    int i = config_section_index(opt->name);
    cfg_t *sec = cfg_opt_getnsec(opt, 0);
    bool clean;
    int line;

    line = config_section_take_line(cfg, &clean);
    if (config_parser->section_seen[i]) {
        config_report(line, "%s: section given twice, first at line %d",
                      opt->name, config_parser->section_seen[i]);
        return 0;
    }
    config_parser->section_seen[i] = line;

    if (i == CONFIG_SECTION_FIREHOSE || i == CONFIG_SECTION_KINESIS) {
        if (!cfg_getstr(sec, "stream"))
            config_report(line, "%s: missing required option 'stream'",
                          opt->name);
        if (!cfg_getstr(sec, "region"))
            config_report(line, "%s: missing required option 'region'",
                          opt->name);
    }

    /* Relations between values only mean something if each one was good. */
    if (!clean)
        return 0;
    if (i == CONFIG_SECTION_SPOOL &&
        cfg_getint(sec, "segment_size") > cfg_getint(sec, "max_size"))
        config_report(line, "spool: segment_size is larger than max_size");
    if (i != CONFIG_SECTION_FIREHOSE && i != CONFIG_SECTION_KINESIS)
        return 0;
    if (cfg_getint(sec, "retry_initial") > cfg_getint(sec, "retry_max"))
        config_report(line, "%s: retry_initial is larger than retry_max",
                      opt->name);
    if (!cfg_getstr(sec, "access_key_id") !=
                !cfg_getstr(sec, "secret_access_key"))
        config_report(line, "%s: access_key_id and secret_access_key "
                      "go together; give both or neither", opt->name);
    return 0;
}

static int
config_validate_input(cfg_t *cfg, cfg_opt_t *opt)
{
    struct config_seen_input *seen;
    char q[CONFIG_NAME_MAX + 8];
    cfg_t *sec = NULL;
    int line;

    line = config_section_take_line(cfg, NULL);

    /*
     * libconfuse replaces an earlier section of the same title in place, so
     * the section just read is not always the last one: it is the one whose
     * line is still set, as checked sections get theirs cleared below.
     */
    for (unsigned i = 0; i < cfg_opt_size(opt); i++) {
        cfg_t *s = cfg_opt_getnsec(opt, i);

        if (s->line != 0)
            sec = s;
    }
    if (!sec)
        return 0;
    sec->line = 0;
    config_quote(sec->title, q, sizeof(q));

    for (size_t i = 0; i < config_parser->n_inputs; i++) {
        if (strcmp(config_parser->inputs[i].name, sec->title) == 0) {
            config_report(line,
                          "input '%s': duplicate name, first defined at line %d",
                          q, config_parser->inputs[i].line);
            return 0;
        }
    }

    if (!config_is_word(sec->title, CONFIG_NAME_MAX, "_.-"))
        config_report(line,
                      "input '%s': name must be 1 to %d of A-Z, a-z, 0-9, '_', '.', '-'",
                      q, CONFIG_NAME_MAX);
    if (!cfg_getstr(sec, "path"))
        config_report(line, "input '%s': missing required option 'path'", q);

    seen = realloc(config_parser->inputs,
                   (config_parser->n_inputs + 1) * sizeof(*seen));
    if (!seen)
        return -1;
    config_parser->inputs = seen;
    seen[config_parser->n_inputs].name = strdup(sec->title);
    if (!seen[config_parser->n_inputs].name)
        return -1;
    seen[config_parser->n_inputs++].line = line;
    return 0;
}

/* The schema is one table per section, hence the length. */
static cfg_t *
config_schema_new(void)
{
    /* Inside a socket or input section, added to the top-level rules. */
    cfg_opt_t validate_opts[] = {
        CFG_STR_LIST_CB("required", NULL, CFGF_NODEFAULT, config_cb_rule),
        CFG_STR_LIST_CB("types", NULL, CFGF_NODEFAULT, config_cb_rule),
        CFG_INT_CB("max_bytes", 0, CFGF_NODEFAULT, config_cb_size),
        CFG_INT_CB("max_depth", 0, CFGF_NODEFAULT, config_cb_number),
        CFG_END(),
    };
    cfg_opt_t spool_opts[] = {
        CFG_STR_CB("dir", "/var/spool/aaas", CFGF_NONE, config_cb_path),
        CFG_INT_CB("max_size", CONFIG_GIB, CFGF_NONE, config_cb_size),
        CFG_INT_CB("segment_size", 64 * CONFIG_MIB, CFGF_NONE,
                   config_cb_size),
        CFG_INT_CB("sync", CONFIG_SYNC_ALWAYS, CFGF_NONE, config_cb_enum),
        CFG_INT_CB("sync_interval", 1000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("on_full", CONFIG_ON_FULL_BLOCK, CFGF_NONE,
                   config_cb_enum),
        CFG_END(),
    };
    cfg_opt_t socket_opts[] = {
        CFG_BOOL_CB("enabled", cfg_true, CFGF_NONE, config_cb_bool),
        CFG_STR_CB("path", "/run/auditd.sock", CFGF_NONE,
                   config_cb_socket_path),
        CFG_INT_CB("mode", 0660, CFGF_NONE, config_cb_mode),
        CFG_STR_CB("group", NULL, CFGF_NODEFAULT, config_cb_word),
        CFG_INT_CB("max_connections", 1024, CFGF_NONE, config_cb_number),
        CFG_INT_CB("max_event_size", CONFIG_MIB, CFGF_NONE, config_cb_size),
        CFG_INT_CB("idle_timeout", 300000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("max_buffer", 16 * CONFIG_MIB, CFGF_NONE, config_cb_size),
        CFG_STR_CB("reject_file", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_SEC("validate", validate_opts, CFGF_NONE),
        CFG_END(),
    };
    cfg_opt_t input_opts[] = {
        CFG_STR_CB("path", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_INT_CB("format", CONFIG_FORMAT_JSON, CFGF_NONE, config_cb_enum),
        CFG_INT_CB("start_at", 0, CFGF_NONE, config_cb_enum),
        CFG_INT_CB("max_line", CONFIG_MIB, CFGF_NONE, config_cb_size),
        CFG_INT_CB("partial_timeout", 5000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("rotate_wait", 5000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("group_timeout", 2000, CFGF_NONE, config_cb_number),
        CFG_STR_CB("reject_file", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_SEC("validate", validate_opts, CFGF_NONE),
        CFG_END(),
    };
    cfg_opt_t firehose_opts[] = {
        CFG_STR_CB("stream", NULL, CFGF_NODEFAULT, config_cb_stream),
        CFG_STR_CB("region", NULL, CFGF_NODEFAULT, config_cb_region),
        CFG_STR_CB("endpoint", NULL, CFGF_NODEFAULT, config_cb_url),
        CFG_STR_CB("ca_file", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_INT_CB("max_in_flight", 4, CFGF_NONE, config_cb_number),
        CFG_INT_CB("timeout", 30000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("retry_initial", 100, CFGF_NONE, config_cb_number),
        CFG_INT_CB("retry_max", 30000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("connect_timeout", 10000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("low_speed_time", 30000, CFGF_NONE, config_cb_number),
        CFG_STR_CB("proxy", NULL, CFGF_NODEFAULT, config_cb_proxy),
        CFG_STR_CB("access_key_id", NULL, CFGF_NODEFAULT, config_cb_key),
        CFG_STR_CB("secret_access_key", NULL, CFGF_NODEFAULT, config_cb_key),
        CFG_BOOL_CB("pack", cfg_false, CFGF_NONE, config_cb_bool),
        CFG_INT_CB("max_records_per_second", 0, CFGF_NONE,
                   config_cb_number),
        CFG_INT_CB("max_bytes_per_second", 0, CFGF_NONE, config_cb_size),
        CFG_END(),
    };
    /* The same delivery options as firehose, and the partition key. */
    cfg_opt_t kinesis_opts[] = {
        CFG_STR_CB("stream", NULL, CFGF_NODEFAULT, config_cb_kinesis_stream),
        CFG_STR_CB("region", NULL, CFGF_NODEFAULT, config_cb_region),
        CFG_STR_CB("endpoint", NULL, CFGF_NODEFAULT, config_cb_url),
        CFG_STR_CB("partition_key", "{agent}", CFGF_NONE,
                   config_cb_partition_key),
        CFG_STR_CB("ca_file", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_INT_CB("max_in_flight", 4, CFGF_NONE, config_cb_number),
        CFG_INT_CB("timeout", 30000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("retry_initial", 100, CFGF_NONE, config_cb_number),
        CFG_INT_CB("retry_max", 30000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("connect_timeout", 10000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("low_speed_time", 30000, CFGF_NONE, config_cb_number),
        CFG_STR_CB("proxy", NULL, CFGF_NODEFAULT, config_cb_proxy),
        CFG_STR_CB("access_key_id", NULL, CFGF_NODEFAULT, config_cb_key),
        CFG_STR_CB("secret_access_key", NULL, CFGF_NODEFAULT, config_cb_key),
        CFG_BOOL_CB("pack", cfg_false, CFGF_NONE, config_cb_bool),
        CFG_INT_CB("max_records_per_second", 0, CFGF_NONE,
                   config_cb_number),
        CFG_INT_CB("max_bytes_per_second", 0, CFGF_NONE, config_cb_size),
        CFG_END(),
    };
    cfg_opt_t signing_opts[] = {
        CFG_STR_CB("key", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_INT_CB("seal_every", 1000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("seal_interval", 1000, CFGF_NONE, config_cb_number),
        CFG_INT_CB("epoch", 0, CFGF_NONE, config_cb_number),
        CFG_END(),
    };
    cfg_opt_t control_opts[] = {
        CFG_BOOL_CB("enabled", cfg_true, CFGF_NONE, config_cb_bool),
        CFG_STR_CB("path", "/run/aaas/control.sock", CFGF_NONE,
                   config_cb_socket_path),
        CFG_INT_CB("mode", 0660, CFGF_NONE, config_cb_mode),
        CFG_STR_CB("group", NULL, CFGF_NODEFAULT, config_cb_word),
        CFG_END(),
    };
    cfg_opt_t opts[] = {
        CFG_STR_CB("state_dir", "/var/lib/aaas", CFGF_NONE, config_cb_path),
        CFG_STR_CB("agent_id", NULL, CFGF_NODEFAULT, config_cb_word),
        CFG_INT_CB("log_level", LOG_INFO, CFGF_NONE, config_cb_enum),
        CFG_STR_CB("reject_file", NULL, CFGF_NODEFAULT, config_cb_path),
        CFG_SEC("validate", validate_opts, CFGF_NONE),
        CFG_SEC("spool", spool_opts, CFGF_NONE),
        CFG_SEC("socket", socket_opts, CFGF_NONE),
        CFG_SEC("input", input_opts, CFGF_MULTI | CFGF_TITLE),
        CFG_SEC("firehose", firehose_opts, CFGF_NONE),
        CFG_SEC("signing", signing_opts, CFGF_NONE),
        CFG_SEC("control", control_opts, CFGF_NONE),
        CFG_SEC("kinesis", kinesis_opts, CFGF_NONE),
        CFG_END(),
    };
    cfg_t *cfg;

    /* cfg_init() copies the tables, so they may live on this stack. */
    cfg = cfg_init(opts, CFGF_NONE);
    if (!cfg)
        return NULL;
    (void)cfg_set_error_function(cfg, config_libconfuse_error);
    for (int i = 0; i < CONFIG_SECTION_MAX; i++)
        (void)cfg_set_validate_func(cfg, config_section_names[i],
                                    config_validate_section);
    (void)cfg_set_validate_func(cfg, "input", config_validate_input);
    return cfg;
}

/* NULL stays NULL; -ENOMEM is the only way this fails. */
static int
config_dup(const char *s, char **ret)
{
    *ret = NULL;
    if (!s)
        return 0;
    *ret = strdup(s);
    return *ret ? 0 : -ENOMEM;
}

static int
config_add_rules(struct validate *v, cfg_t *sec)
{
    const char *why;
    int r;

    for (unsigned i = 0; i < cfg_size(sec, "required"); i++) {
        r = validate_add_required(v, cfg_getnstr(sec, "required", i), &why);
        if (r < 0)
            return r;
    }
    for (unsigned i = 0; i < cfg_size(sec, "types"); i++) {
        r = validate_add_type(v, cfg_getnstr(sec, "types", i), &why);
        if (r < 0)
            return r;
    }
    if (cfg_size(sec, "max_bytes") > 0)
        validate_set_max_bytes(v, (size_t)cfg_getint(sec, "max_bytes"));
    if (cfg_size(sec, "max_depth") > 0)
        validate_set_max_depth(v, (size_t)cfg_getint(sec, "max_depth"));
    return 0;
}

/*
 * One scope's rules: the top-level ones, then the section's own, whose
 * limits and type rules replace those they repeat.  NULL when there are
 * none, so that such a scope costs nothing.
 */
static int
config_build_rules(cfg_t *root, cfg_t *parent, struct validate **ret)
{
    struct validate *v;
    int r;

    *ret = NULL;
    v = validate_new();
    if (!v)
        return -ENOMEM;
    r = config_add_rules(v, cfg_getsec(root, "validate"));
    if (r >= 0)
        r = config_add_rules(v, cfg_getsec(parent, "validate"));
    if (r < 0) {
        validate_free(v);
        return r;
    }
    if (validate_is_empty(v))
        v = validate_free(v);
    *ret = v;
    return 0;
}

/* The section's own reject_file, or the top-level one. */
static int
config_reject_file(cfg_t *root, cfg_t *parent, char **ret)
{
    const char *own = cfg_getstr(parent, "reject_file");

    return config_dup(own ? own : cfg_getstr(root, "reject_file"), ret);
}

static int
config_fill_inputs(cfg_t *root, struct config *c)
{
    unsigned n = cfg_size(root, "input");
    int r;

    if (n == 0)
        return 0;
    c->inputs = calloc(n, sizeof(*c->inputs));
    if (!c->inputs)
        return -ENOMEM;

    for (unsigned i = 0; i < n; i++) {
        cfg_t *sec = cfg_getnsec(root, "input", i);
        struct config_input *in = &c->inputs[i];

        c->n_inputs++;
        r = config_dup(cfg_title(sec), &in->name);
        if (r < 0)
            return r;
        r = config_dup(cfg_getstr(sec, "path"), &in->path);
        if (r < 0)
            return r;
        in->format = (enum config_format)cfg_getint(sec, "format");
        in->start_at_end = cfg_getint(sec, "start_at") != 0;
        in->max_line = (size_t)cfg_getint(sec, "max_line");
        in->partial_timeout_ms = (unsigned)cfg_getint(sec, "partial_timeout");
        in->rotate_wait_ms = (unsigned)cfg_getint(sec, "rotate_wait");
        in->group_timeout_ms = (unsigned)cfg_getint(sec, "group_timeout");
        r = config_build_rules(root, sec, &in->validate);
        if (r < 0)
            return r;
        r = config_reject_file(root, sec, &in->reject_file);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Copies a checked tree into c; every value is known good by now. */
static int
config_fill(cfg_t *root, struct config *c)
{
    cfg_t *spool = cfg_getsec(root, "spool");
    cfg_t *sock = cfg_getsec(root, "socket");
    cfg_t *fh = cfg_getsec(root, "firehose");
    cfg_t *sign = cfg_getsec(root, "signing");
    cfg_t *ctl = cfg_getsec(root, "control");
    int r;

    /* One sink section was given: its delivery options are the ones. */
    c->kinesis = config_parser->section_seen[CONFIG_SECTION_KINESIS] != 0;
    if (c->kinesis) {
        fh = cfg_getsec(root, "kinesis");
        r = config_dup(cfg_getstr(fh, "partition_key"),
                       &c->kinesis_partition_key);
        if (r < 0)
            return r;
    }

    c->log_level = (int)cfg_getint(root, "log_level");
    c->spool_max_size = (uint64_t)cfg_getint(spool, "max_size");
    c->spool_segment_size = (uint64_t)cfg_getint(spool, "segment_size");
    c->spool_sync = (enum config_sync)cfg_getint(spool, "sync");
    c->spool_sync_interval_ms = (unsigned)cfg_getint(spool, "sync_interval");
    c->spool_on_full = (enum config_on_full)cfg_getint(spool, "on_full");
    c->socket_enabled = cfg_getbool(sock, "enabled");
    c->socket_mode = (mode_t)cfg_getint(sock, "mode");
    c->socket_max_connections =
            (unsigned)cfg_getint(sock, "max_connections");
    c->max_event_size = (size_t)cfg_getint(sock, "max_event_size");
    c->socket_idle_timeout_ms = (unsigned)cfg_getint(sock, "idle_timeout");
    c->socket_max_buffer = (size_t)cfg_getint(sock, "max_buffer");
    c->firehose_max_in_flight = (unsigned)cfg_getint(fh, "max_in_flight");
    c->firehose_timeout_ms = (unsigned)cfg_getint(fh, "timeout");
    c->retry_initial_ms = (unsigned)cfg_getint(fh, "retry_initial");
    c->retry_max_ms = (unsigned)cfg_getint(fh, "retry_max");
    c->firehose_connect_timeout_ms =
            (unsigned)cfg_getint(fh, "connect_timeout");
    c->firehose_low_speed_time_ms = (unsigned)cfg_getint(fh, "low_speed_time");
    c->firehose_pack = cfg_getbool(fh, "pack");
    c->firehose_max_records_per_second =
            (unsigned)cfg_getint(fh, "max_records_per_second");
    c->firehose_max_bytes_per_second =
            (uint64_t)cfg_getint(fh, "max_bytes_per_second");
    c->seal_every = (unsigned)cfg_getint(sign, "seal_every");
    c->seal_interval_ms = (unsigned)cfg_getint(sign, "seal_interval");
    c->epoch_sec = (unsigned)cfg_getint(sign, "epoch");

    r = config_dup(cfg_getstr(root, "state_dir"), &c->state_dir);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(root, "agent_id"), &c->agent_id);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(spool, "dir"), &c->spool_dir);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(sock, "path"), &c->socket_path);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(sock, "group"), &c->socket_group);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "stream"), &c->firehose_stream);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "region"), &c->firehose_region);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "endpoint"), &c->firehose_endpoint);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "ca_file"), &c->ca_file);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "proxy"), &c->firehose_proxy);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "access_key_id"), &c->access_key_id);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(fh, "secret_access_key"),
                   &c->secret_access_key);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(sign, "key"), &c->signing_key);
    if (r < 0)
        return r;
    c->control_enabled = cfg_getbool(ctl, "enabled");
    c->control_mode = (mode_t)cfg_getint(ctl, "mode");
    r = config_dup(cfg_getstr(ctl, "path"), &c->control_path);
    if (r < 0)
        return r;
    r = config_dup(cfg_getstr(ctl, "group"), &c->control_group);
    if (r < 0)
        return r;
    r = config_build_rules(root, sock, &c->socket_validate);
    if (r < 0)
        return r;
    r = config_reject_file(root, sock, &c->socket_reject_file);
    if (r < 0)
        return r;

    return config_fill_inputs(root, c);
}

/*
 * Opens the file for libconfuse, which would take a directory or a FIFO
 * as readily as a file.  O_NONBLOCK keeps open() from waiting on a FIFO's
 * writer; it changes nothing for a regular file.
 */
static int
config_open(const char *path, FILE **ret)
{
    struct stat st;
    FILE *f;
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd < 0) {
        r = -errno;
        log_err("cannot open '%s': %s", path, strerror(-r));
        return r;
    }

    if (fstat(fd, &st) < 0) {
        r = -errno;
        log_err("cannot open '%s': %s", path, strerror(-r));
        goto out;
    }
    if (S_ISDIR(st.st_mode)) {
        r = -EISDIR;
        log_err("cannot open '%s': %s", path, strerror(-r));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        r = -EINVAL;
        log_err("cannot open '%s': not a regular file", path);
        goto out;
    }

    f = fdopen(fd, "r");
    if (!f) {
        r = -errno;
        log_err("cannot open '%s': %s", path, strerror(-r));
        goto out;
    }
    *ret = f;
    return 0;

out:
    close(fd);
    return r;
}

/*
 * Reads and checks the whole file; the parser state goes with it.
 *
 * XXX: libconfuse 3.3 takes the end of the file as the end of any section
 * still open, so a config whose last closing brace is missing loads
 * without a word.  Nothing is misread (the section simply ends there), so
 * this is tolerable; telling the two apart needs a brace count from the
 * lexer, which libconfuse does not expose, or a tokenizer of our own.
 */
static int
config_parse(struct config_parser *p, FILE *f, struct config *c)
{
    int r;

    p->root = config_schema_new();
    if (!p->root)
        return -ENOMEM;
    p->scratch = validate_new();
    if (!p->scratch)
        return -ENOMEM;

    r = cfg_parse_fp(p->root, f);
    if (r != CFG_SUCCESS) {
        /* libconfuse fails without a word only when memory runs out. */
        if (p->errors == 0)
            return -ENOMEM;
        return -EINVAL;
    }

    if (!p->section_seen[CONFIG_SECTION_FIREHOSE] &&
        !p->section_seen[CONFIG_SECTION_KINESIS])
        config_report(0, "missing a sink: give a 'firehose' or a 'kinesis' "
                      "section");
    if (p->section_seen[CONFIG_SECTION_FIREHOSE] &&
        p->section_seen[CONFIG_SECTION_KINESIS])
        config_report(p->section_seen[CONFIG_SECTION_KINESIS],
                      "kinesis: only one sink may be given, and firehose "
                      "is at line %d",
                      p->section_seen[CONFIG_SECTION_FIREHOSE]);
    if (p->errors > 0)
        return -EINVAL;

    return config_fill(p->root, c);
}

int
config_load(const char *path, struct config **ret)
{
    struct config_parser p = { .file = path };
    struct config *c = NULL;
    FILE *f = NULL;
    int r;

    r = config_open(path, &f);
    if (r < 0)
        return r;

    c = calloc(1, sizeof(*c));
    if (!c) {
        r = -ENOMEM;
        goto out;
    }
    r = config_dup(path, &c->file);
    if (r < 0)
        goto out;

    config_parser = &p;
    r = config_parse(&p, f, c);
    config_parser = NULL;
    if (r < 0)
        goto out;

    *ret = c;
    c = NULL;

out:
    if (p.root)
        cfg_free(p.root);
    validate_free(p.scratch);
    for (size_t i = 0; i < p.n_inputs; i++)
        free(p.inputs[i].name);
    free(p.inputs);
    config_free(c);
    fclose(f);
    return r;
}

struct config *
config_free(struct config *c)
{
    if (!c)
        return NULL;

    for (size_t i = 0; i < c->n_inputs; i++) {
        free(c->inputs[i].name);
        free(c->inputs[i].path);
        validate_free(c->inputs[i].validate);
        free(c->inputs[i].reject_file);
    }
    free(c->inputs);
    free(c->file);
    free(c->state_dir);
    free(c->agent_id);
    free(c->spool_dir);
    free(c->socket_path);
    free(c->socket_group);
    validate_free(c->socket_validate);
    free(c->socket_reject_file);
    free(c->firehose_stream);
    free(c->firehose_region);
    free(c->firehose_endpoint);
    free(c->ca_file);
    free(c->firehose_proxy);
    free(c->kinesis_partition_key);
    if (c->secret_access_key)
        explicit_bzero(c->secret_access_key, strlen(c->secret_access_key));
    free(c->access_key_id);
    free(c->secret_access_key);
    free(c->signing_key);
    free(c->control_path);
    free(c->control_group);
    free(c);
    return NULL;
}
