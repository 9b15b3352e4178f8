/* SPDX-License-Identifier: MIT */
/*
 * config_load() on real files in a scratch directory: the values it builds,
 * its defaults, and the exact lines an operator reads for each mistake.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <syslog.h>
#include <unistd.h>

#include "config.h"
#include "parse_json.h"
#include "validate.h"

struct scratch {
    char dir[64];
};

static int
scratch_setup(void **state)
{
    struct scratch *s = calloc(1, sizeof(*s));

    assert_non_null(s);
    strcpy(s->dir, "/tmp/test_config.XXXXXX");
    assert_non_null(mkdtemp(s->dir));
    /* Lines must come out plain, as on a terminal. */
    unsetenv("JOURNAL_STREAM");
    *state = s;
    return 0;
}

static int
scratch_teardown(void **state)
{
    struct scratch *s = *state;
    struct dirent *de;
    char path[512];
    DIR *d;

    d = opendir(s->dir);
    assert_non_null(d);
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", s->dir, de->d_name);
        if (rmdir(path) < 0)
            assert_int_equal(unlink(path), 0);
    }
    closedir(d);
    assert_int_equal(rmdir(s->dir), 0);
    free(s);
    return 0;
}

static const char *
scratch_write(struct scratch *s, const char *name, const char *text)
{
    static char path[512];
    FILE *f;

    snprintf(path, sizeof(path), "%s/%s", s->dir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

/*
 * Runs config_load() with fd 2 sent to a file, since that is where
 * log_write() puts the operator's lines; *ret_log gets what was written.
 */
static int
load_logged(struct scratch *s, const char *path, struct config **ret,
            char **ret_log)
{
    char log_path[512];
    struct stat st;
    char *text;
    int fd, saved, r;

    snprintf(log_path, sizeof(log_path), "%s/stderr", s->dir);
    fd = open(log_path, O_RDWR | O_CREAT | O_TRUNC, 0600);
    assert_true(fd >= 0);
    saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fd, STDERR_FILENO) >= 0);

    r = config_load(path, ret);

    assert_true(dup2(saved, STDERR_FILENO) >= 0);
    close(saved);
    assert_int_equal(fstat(fd, &st), 0);
    text = calloc(1, (size_t)st.st_size + 1);
    assert_non_null(text);
    assert_int_equal(pread(fd, text, (size_t)st.st_size, 0), st.st_size);
    close(fd);
    assert_int_equal(unlink(log_path), 0);
    *ret_log = text;
    return r;
}

static size_t
count_lines(const char *text)
{
    size_t n = 0;

    for (; *text; text++)
        n += *text == '\n';
    return n;
}

/* One "aaasd: error: FILE:LINE: MESSAGE" line, LINE 0 meaning none. */
static void
assert_logged(const char *log, const char *file, int line, const char *msg)
{
    char want[1024];

    if (line > 0)
        snprintf(want, sizeof(want), "aaasd: error: %s:%d: %s\n", file, line,
                 msg);
    else
        snprintf(want, sizeof(want), "aaasd: error: %s: %s\n", file, msg);
    if (!strstr(log, want)) {
        print_error("expected the line\n  %sin\n%s", want, log);
        fail();
    }
}

static const char firehose_ok[] =
    "firehose {\n"
    "    stream = \"audit-events\"\n"
    "    region = \"us-east-1\"\n"
    "}\n";

static void
test_design_example(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
        "state_dir = \"/var/lib/aaas\"          # tail offsets, agent state\n"
        "\n"
        "spool {\n"
        "    dir      = \"/var/spool/aaas\"\n"
        "    max_size = \"1G\"\n"
        "}\n"
        "\n"
        "socket {\n"
        "    path  = \"/run/auditd.sock\"\n"
        "    mode  = \"0660\"\n"
        "    group = \"aaas\"\n"
        "}\n"
        "\n"
        "input \"app\" {                        # one section per file input\n"
        "    path   = \"/var/log/app/audit*.log\"\n"
        "    format = \"json\"                  # json | auditd | raw\n"
        "}\n"
        "\n"
        "firehose {\n"
        "    stream   = \"audit-events\"\n"
        "    region   = \"us-east-1\"\n"
        "    endpoint = \"http://127.0.0.1:4573\"   # optional override\n"
        "}\n"
        "\n"
        "signing {\n"
        "    key = \"/etc/aaas/signing.key\"\n"
        "}\n");

    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(log, "");
    assert_non_null(c);
    assert_string_equal(c->file, path);
    assert_string_equal(c->state_dir, "/var/lib/aaas");
    assert_string_equal(c->spool_dir, "/var/spool/aaas");
    assert_int_equal(c->spool_max_size, UINT64_C(1) << 30);
    assert_string_equal(c->socket_path, "/run/auditd.sock");
    assert_int_equal(c->socket_mode, 0660);
    assert_string_equal(c->socket_group, "aaas");
    assert_int_equal(c->n_inputs, 1);
    assert_string_equal(c->inputs[0].name, "app");
    assert_string_equal(c->inputs[0].path, "/var/log/app/audit*.log");
    assert_int_equal(c->inputs[0].format, CONFIG_FORMAT_JSON);
    assert_string_equal(c->firehose_stream, "audit-events");
    assert_string_equal(c->firehose_region, "us-east-1");
    assert_string_equal(c->firehose_endpoint, "http://127.0.0.1:4573");
    assert_string_equal(c->signing_key, "/etc/aaas/signing.key");
    free(log);
    config_free(c);
}

static void
test_defaults(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf", firehose_ok);
    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(log, "");

    assert_string_equal(c->state_dir, "/var/lib/aaas");
    assert_null(c->agent_id);
    assert_int_equal(c->log_level, LOG_INFO);
    assert_string_equal(c->spool_dir, "/var/spool/aaas");
    assert_int_equal(c->spool_max_size, UINT64_C(1) << 30);
    assert_int_equal(c->spool_segment_size, UINT64_C(64) << 20);
    assert_int_equal(c->spool_sync, CONFIG_SYNC_ALWAYS);
    assert_int_equal(c->spool_sync_interval_ms, 1000);
    assert_int_equal(c->spool_on_full, CONFIG_ON_FULL_BLOCK);
    assert_true(c->socket_enabled);
    assert_string_equal(c->socket_path, "/run/auditd.sock");
    assert_int_equal(c->socket_mode, 0660);
    assert_null(c->socket_group);
    assert_int_equal(c->socket_max_connections, 1024);
    assert_int_equal(c->max_event_size, 1 << 20);
    assert_int_equal(c->socket_idle_timeout_ms, 300000);
    assert_int_equal(c->socket_max_buffer, 16 << 20);
    assert_int_equal(c->n_inputs, 0);
    assert_null(c->inputs);
    assert_null(c->firehose_endpoint);
    assert_null(c->ca_file);
    assert_int_equal(c->firehose_max_in_flight, 4);
    assert_int_equal(c->firehose_timeout_ms, 30000);
    assert_int_equal(c->retry_initial_ms, 100);
    assert_int_equal(c->retry_max_ms, 30000);
    assert_null(c->signing_key);
    assert_true(c->control_enabled);
    assert_string_equal(c->control_path, "/run/aaas/control.sock");
    assert_int_equal(c->control_mode, 0660);
    assert_null(c->control_group);
    assert_int_equal(c->seal_every, 1000);
    assert_int_equal(c->seal_interval_ms, 1000);
    assert_int_equal(c->epoch_sec, 0);
    free(log);
    config_free(c);
}

static void
test_every_option(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
        "state_dir = \"/srv/aaas/state\"\n"
        "agent_id = \"web-01.example\"\n"
        "log_level = \"debug\"\n"
        "spool {\n"
        "    dir = \"/srv/aaas/spool\"\n"
        "    max_size = \"2T\"\n"
        "    segment_size = \"512k\"\n"
        "    sync = \"interval\"\n"
        "    sync_interval = 250\n"
        "    on_full = \"drop_oldest\"\n"
        "}\n"
        "socket {\n"
        "    enabled = false\n"
        "    path = \"/run/aaas/in.sock\"\n"
        "    mode = \"600\"\n"
        "    group = \"audit\"\n"
        "    max_connections = 16\n"
        "    max_event_size = \"64k\"\n"
        "    idle_timeout = 0\n"
        "    max_buffer = \"2M\"\n"
        "}\n"
        "input \"app\" {\n"
        "    path = \"/var/log/app/*.log\"\n"
        "    format = \"raw\"\n"
        "    start_at = \"end\"\n"
        "    max_line = \"4096\"\n"
        "    partial_timeout = 0\n"
        "    rotate_wait = 0\n"
        "}\n"
        "input \"kernel\" {\n"
        "    path = \"/var/log/audit/audit.log\"\n"
        "    format = \"auditd\"\n"
        "    group_timeout = 500\n"
        "}\n"
        "firehose {\n"
        "    stream = \"a.b_c-1\"\n"
        "    region = \"ap-southeast-2\"\n"
        "    endpoint = \"https://[::1]:8443/fh\"\n"
        "    ca_file = \"/etc/aaas/ca.pem\"\n"
        "    max_in_flight = 8\n"
        "    timeout = 5000\n"
        "    retry_initial = 50\n"
        "    retry_max = 60000\n"
        "    connect_timeout = 2000\n"
        "    low_speed_time = 15000\n"
        "    proxy = \"http://proxy.example:3128\"\n"
        "    access_key_id = \"AKIDCONFIG\"\n"
        "    secret_access_key = \"se/cr+et\"\n"
        "    pack = true\n"
        "    max_records_per_second = 1000\n"
        "    max_bytes_per_second = \"1M\"\n"
        "}\n"
        "signing {\n"
        "    key = \"/etc/aaas/k\"\n"
        "    seal_every = 50\n"
        "    seal_interval = 250\n"
        "    epoch = 3600\n"
        "}\n"
        "control {\n"
        "    enabled = false\n"
        "    path = \"/run/x/ctl.sock\"\n"
        "    mode = \"0600\"\n"
        "    group = \"adm\"\n"
        "}\n");

    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(log, "");
    assert_string_equal(c->state_dir, "/srv/aaas/state");
    assert_string_equal(c->agent_id, "web-01.example");
    assert_int_equal(c->log_level, LOG_DEBUG);
    assert_string_equal(c->spool_dir, "/srv/aaas/spool");
    assert_int_equal(c->spool_max_size, UINT64_C(2) << 40);
    assert_int_equal(c->spool_segment_size, 512 * 1024);
    assert_int_equal(c->spool_sync, CONFIG_SYNC_INTERVAL);
    assert_int_equal(c->spool_sync_interval_ms, 250);
    assert_int_equal(c->spool_on_full, CONFIG_ON_FULL_DROP_OLDEST);
    assert_false(c->socket_enabled);
    assert_string_equal(c->socket_path, "/run/aaas/in.sock");
    assert_int_equal(c->socket_mode, 0600);
    assert_string_equal(c->socket_group, "audit");
    assert_int_equal(c->socket_max_connections, 16);
    assert_false(c->control_enabled);
    assert_string_equal(c->control_path, "/run/x/ctl.sock");
    assert_int_equal(c->control_mode, 0600);
    assert_string_equal(c->control_group, "adm");
    assert_int_equal(c->max_event_size, 64 * 1024);
    assert_int_equal(c->socket_idle_timeout_ms, 0);
    assert_int_equal(c->socket_max_buffer, 2 << 20);

    assert_int_equal(c->n_inputs, 2);
    assert_string_equal(c->inputs[0].name, "app");
    assert_string_equal(c->inputs[0].path, "/var/log/app/*.log");
    assert_int_equal(c->inputs[0].format, CONFIG_FORMAT_RAW);
    assert_true(c->inputs[0].start_at_end);
    assert_int_equal(c->inputs[0].max_line, 4096);
    assert_int_equal(c->inputs[0].partial_timeout_ms, 0);
    assert_int_equal(c->inputs[0].rotate_wait_ms, 0);
    assert_int_equal(c->inputs[0].group_timeout_ms, 2000);
    assert_string_equal(c->inputs[1].name, "kernel");
    assert_int_equal(c->inputs[1].format, CONFIG_FORMAT_AUDITD);
    assert_false(c->inputs[1].start_at_end);
    assert_int_equal(c->inputs[1].max_line, 1 << 20);
    assert_int_equal(c->inputs[1].partial_timeout_ms, 5000);
    assert_int_equal(c->inputs[1].rotate_wait_ms, 5000);
    assert_int_equal(c->inputs[1].group_timeout_ms, 500);

    assert_string_equal(c->firehose_stream, "a.b_c-1");
    assert_string_equal(c->firehose_region, "ap-southeast-2");
    assert_string_equal(c->firehose_endpoint, "https://[::1]:8443/fh");
    assert_string_equal(c->ca_file, "/etc/aaas/ca.pem");
    assert_int_equal(c->firehose_max_in_flight, 8);
    assert_int_equal(c->firehose_timeout_ms, 5000);
    assert_int_equal(c->retry_initial_ms, 50);
    assert_int_equal(c->retry_max_ms, 60000);
    assert_int_equal(c->firehose_connect_timeout_ms, 2000);
    assert_int_equal(c->firehose_low_speed_time_ms, 15000);
    assert_string_equal(c->firehose_proxy, "http://proxy.example:3128");
    assert_string_equal(c->access_key_id, "AKIDCONFIG");
    assert_string_equal(c->secret_access_key, "se/cr+et");
    assert_true(c->firehose_pack);
    assert_int_equal(c->firehose_max_records_per_second, 1000);
    assert_int_equal(c->firehose_max_bytes_per_second, 1024 * 1024);
    assert_string_equal(c->signing_key, "/etc/aaas/k");
    assert_int_equal(c->seal_every, 50);
    assert_int_equal(c->seal_interval_ms, 250);
    assert_int_equal(c->epoch_sec, 3600);
    free(log);
    config_free(c);
}

/*
 * The shipped file, found from the source tree: automake's test driver
 * exports srcdir; run by hand, the path this file was compiled from leads
 * there too.
 */
static void
test_shipped_config(void **state)
{
    struct scratch *s = *state;
    const char *srcdir = getenv("srcdir");
    const char *here = __FILE__;
    struct config *c = NULL;
    char path[1024];
    char *log;

    if (srcdir)
        snprintf(path, sizeof(path), "%s/etc/aaas.conf", srcdir);
    else
        snprintf(path, sizeof(path), "%.*setc/aaas.conf",
                 (int)(strlen(here) - strlen("tests/unit/test_config.c")),
                 here);

    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(log, "");
    assert_string_equal(c->firehose_stream, "audit-events");
    assert_string_equal(c->firehose_region, "us-east-1");
    assert_null(c->firehose_endpoint);
    assert_string_equal(c->state_dir, "/var/lib/aaas");
    assert_int_equal(c->log_level, LOG_INFO);
    assert_int_equal(c->spool_max_size, UINT64_C(1) << 30);
    assert_int_equal(c->spool_segment_size, UINT64_C(64) << 20);
    assert_string_equal(c->socket_path, "/run/auditd.sock");
    assert_int_equal(c->socket_mode, 0660);
    assert_string_equal(c->socket_group, "aaas");
    assert_int_equal(c->n_inputs, 0);
    assert_null(c->signing_key);
    assert_true(c->control_enabled);
    assert_string_equal(c->control_path, "/run/aaas/control.sock");
    assert_int_equal(c->control_mode, 0660);
    assert_string_equal(c->control_group, "aaas");
    free(log);
    config_free(c);
}

/* A file that differs from a good one in one place, and what is said. */
struct bad_case {
    const char *text;           /* a good firehose section is added unless
                                 * the text has one */
    int line;
    const char *msg;
};

/* The rest of a firehose section whose first lines are under test. */
#define FH_BOTH   "  stream = \"s\"\n  region = \"us-east-1\"\n}\n"
#define FH_STREAM "  stream = \"s\"\n}\n"
#define FH_REGION "  region = \"us-east-1\"\n}\n"
#define STREAM_RULE " (1 to 64 of A-Z, a-z, 0-9, '_', '.', '-')"
#define A5   "aaaaa"
#define A65  A5 A5 A5 A5 A5 A5 A5 A5 A5 A5 A5 A5 A5
#define A100 A65 A5 A5 A5 A5 A5 A5 A5

static const struct bad_case bad_cases[] = {
    /* Unknown options and syntax: libconfuse's words, our file:line. */
    { "\n\ncolour = \"blue\"\n", 3, "no such option 'colour'" },
    { "spool {\n  dir = \"/s\"\n  frobnicate = 1\n}\n", 3,
      "no such option 'frobnicate'" },
    { "state_dir \"/x\"\n", 1, "missing equal sign after option 'state_dir'" },
    /* Wrong types. */
    { "socket {\n  max_connections = \"many\"\n}\n", 2,
      "socket.max_connections: 'many' is not a whole number" },
    { "socket {\n  max_connections = -1\n}\n", 2,
      "socket.max_connections: '-1' is not a whole number" },
    { "socket {\n  enabled = maybe\n}\n", 2,
      "socket.enabled: 'maybe' is not a boolean (use true or false)" },
    { "firehose {\n  timeout = 0\n" FH_BOTH, 2,
      "firehose.timeout: 0 is out of range (1 to 3600000)" },
    { "socket {\n  max_connections = 99999999999999999999999\n}\n", 2,
      "socket.max_connections: 99999999999999999999999 is out of range (1 to 65536)" },
    /* Sizes. */
    { "spool {\n  max_size = \"12Q\"\n}\n", 2,
      "spool.max_size: invalid size '12Q' (use bytes with an optional k, M, G or T)" },
    { "spool {\n  max_size = \"\"\n}\n", 2,
      "spool.max_size: invalid size '' (use bytes with an optional k, M, G or T)" },
    { "spool {\n  max_size = \"99999999999T\"\n}\n", 2,
      "spool.max_size: size '99999999999T' is too large" },
    { "spool {\n  segment_size = 0\n}\n", 2,
      "spool.segment_size: must be larger than 0" },
    { "socket {\n  max_event_size = \"2M\"\n}\n", 2,
      "socket.max_event_size: '2M' is more than the limit of 1M" },
    { "socket {\n  max_buffer = \"512k\"\n}\n", 2,
      "socket.max_buffer: '512k' is less than the minimum of 1M" },
    { "socket {\n  idle_timeout = 86400001\n}\n", 2,
      "socket.idle_timeout: 86400001 is out of range (0 to 86400000)" },
    { "socket {\n  idle_timeout = \"5m\"\n}\n", 2,
      "socket.idle_timeout: '5m' is not a whole number" },
    { "input \"a\" {\n  path = \"/l\"\n  max_line = \"1025k\"\n}\n", 3,
      "input 'a' max_line: '1025k' is more than the limit of 1M" },
    { "input \"a\" {\n  path = \"/l\"\n  group_timeout = 0\n}\n", 3,
      "input 'a' group_timeout: 0 is out of range (1 to 3600000)" },
    { "input \"a\" {\n  path = \"/l\"\n  rotate_wait = \"soon\"\n}\n", 3,
      "input 'a' rotate_wait: 'soon' is not a whole number" },
    /* Modes and names from a fixed set. */
    { "socket {\n  mode = \"0999\"\n}\n", 2,
      "socket.mode: '0999' is not an octal mode such as 0660" },
    { "socket {\n  mode = \"4755\"\n}\n", 2,
      "socket.mode: '4755' is not an octal mode such as 0660" },
    { "control {\n  mode = \"rw\"\n}\n", 2,
      "control.mode: 'rw' is not an octal mode such as 0660" },
    { "control {\n  path = \"run/ctl\"\n}\n", 2,
      "control.path: 'run/ctl' is not an absolute path" },
    { "control {\n  group = \"-x\"\n}\n", 2,
      "control.group: '-x' is not a name (1 to 32 of A-Z, a-z, 0-9, '_', '.', '-')" },
    { "control {\n  enabled = true\n}\ncontrol {\n  enabled = true\n}\n", 4,
      "control: section given twice, first at line 1" },
    { "log_level = \"loud\"\n", 1,
      "log_level: unknown value 'loud' (use err, warning, notice, info or debug)" },
    { "input \"a\" {\n  path = \"/l\"\n  format = \"xml\"\n}\n", 3,
      "input 'a' format: unknown value 'xml' (use json, auditd or raw)" },
    { "input \"a\" {\n  path = \"/l\"\n  start_at = \"middle\"\n}\n", 3,
      "input 'a' start_at: unknown value 'middle' (use beginning or end)" },
    { "spool {\n  sync = \"never\"\n}\n", 2,
      "spool.sync: unknown value 'never' (use always or interval)" },
    { "spool {\n  max_size = \"1G\"\n  on_full = \"drop\"\n}\n", 3,
      "spool.on_full: unknown value 'drop' (use block or drop_oldest)" },
    /* Paths. */
    { "state_dir = \"var/lib/aaas\"\n", 1,
      "state_dir: 'var/lib/aaas' is not an absolute path" },
    { "spool {\n  dir = \"spool\"\n}\n", 2,
      "spool.dir: 'spool' is not an absolute path" },
    { "signing {\n  key = \"signing.key\"\n}\n", 2,
      "signing.key: 'signing.key' is not an absolute path" },
    { "signing {\n  seal_every = 0\n}\n", 2,
      "signing.seal_every: 0 is out of range (1 to 1000000)" },
    { "signing {\n\n  seal_interval = \"soon\"\n}\n", 3,
      "signing.seal_interval: 'soon' is not a whole number" },
    { "signing {\n  epoch = 99999999\n}\n", 2,
      "signing.epoch: 99999999 is out of range (0 to 31622400)" },
    { "input \"a\" {\n  path = \"\"\n}\n", 2,
      "input 'a' path: must not be empty" },
    { "input \"a\" {\n  path = \"*.log\"\n}\n", 2,
      "input 'a' path: '*.log' is not an absolute path" },
    { "socket {\n  path = \"/run/" A100 ".sock\"\n}\n",
      2, "socket.path: too long for a Unix socket (at most 107 bytes)" },
    /* Firehose values. */
    { "firehose {\n  endpoint = \"ftp://127.0.0.1/\"\n" FH_BOTH, 2,
      "firehose.endpoint: 'ftp://127.0.0.1/' is not an http or https URL" },
    { "firehose {\n  endpoint = \"http://\"\n" FH_BOTH, 2,
      "firehose.endpoint: 'http://' is not an http or https URL" },
    { "firehose {\n  endpoint = \"http://127.0.0.1:99999\"\n" FH_BOTH, 2,
      "firehose.endpoint: 'http://127.0.0.1:99999' is not an http or https URL" },
    { "firehose {\n  endpoint = \"http://user@127.0.0.1\"\n" FH_BOTH, 2,
      "firehose.endpoint: 'http://user@127.0.0.1' is not an http or https URL" },
    { "firehose {\n  region = \"useast1\"\n" FH_STREAM, 2,
      "firehose.region: 'useast1' is not a region name like us-east-1" },
    { "firehose {\n  region = \"us-east\"\n" FH_STREAM, 2,
      "firehose.region: 'us-east' is not a region name like us-east-1" },
    { "firehose {\n  stream = \"audit events\"\n" FH_REGION, 2,
      "firehose.stream: 'audit events' is not a stream name" STREAM_RULE },
    { "firehose {\n  stream = \"" A65 "\"\n" FH_REGION,
      2, "firehose.stream: '" A65 "' is not a stream name" STREAM_RULE },
    { "agent_id = \"web 01\"\n", 1,
      "agent_id: 'web 01' is not a name (1 to 128 of A-Z, a-z, 0-9, '_', '.', '-')" },
    /* Missing, duplicated and contradicting. */
    { "input \"a\" {\n  format = \"raw\"\n}\n", 1,
      "input 'a': missing required option 'path'" },
    { "input \"a\" {\n  path = \"/x\"\n}\ninput \"a\" {\n  path = \"/y\"\n}\n",
      4, "input 'a': duplicate name, first defined at line 1" },
    { "input \"a/b\" {\n  path = \"/x\"\n}\n", 1,
      "input 'a/b': name must be 1 to 64 of A-Z, a-z, 0-9, '_', '.', '-'" },
    { "spool {\n  max_size = \"1M\"\n}\n", 1,
      "spool: segment_size is larger than max_size" },
    { "firehose {\n  retry_initial = 5000\n  retry_max = 1000\n" FH_BOTH, 1,
      "firehose: retry_initial is larger than retry_max" },
    { "firehose {\n  access_key_id = \"AKID\"\n" FH_BOTH, 1,
      "firehose: access_key_id and secret_access_key go together; give both or neither" },
    /* A bad secret is never echoed. */
    { "firehose {\n  secret_access_key = \"has blank\"\n"
      "  access_key_id = \"A\"\n" FH_BOTH, 2,
      "firehose.secret_access_key: not a key (1 to 256 printable "
      "characters without blanks; value not shown)" },
    { "firehose {\n  proxy = \"ftp://p:21\"\n" FH_BOTH, 2,
      "firehose.proxy: 'ftp://p:21' is not a proxy "
      "([http|https|socks4|socks4a|socks5|socks5h://]host[:port])" },
    { "firehose {\n  low_speed_time = 10\n" FH_BOTH, 2,
      "firehose.low_speed_time: 10 is out of range (1000 to 3600000)" },
    { "firehose {\n  pack = maybe\n" FH_BOTH, 2,
      "firehose.pack: 'maybe' is not a boolean (use true or false)" },
    { "spool {\n  dir = \"/a\"\n}\n\nspool {\n  dir = \"/b\"\n}\n", 5,
      "spool: section given twice, first at line 1" },
    /* Validation rules and reject files. */
    { "validate {\n  required = { \"a\", \"b..c\" }\n}\n", 2,
      "validate.required: empty member name in path 'b..c'" },
    { "validate {\n  types = { \"n: text\" }\n}\n", 2,
      "validate.types: unknown type 'text' (use string, number, integer, "
      "boolean, object, array or null)" },
    { "validate {\n  types = { \"n\" }\n}\n", 2,
      "validate.types: 'n' is not PATH: TYPE" },
    { "validate {\n  max_depth = 65\n}\n", 2,
      "validate.max_depth: 65 is out of range (1 to 64)" },
    { "validate {\n  max_bytes = 0\n}\n", 2,
      "validate.max_bytes: must be larger than 0" },
    { "socket {\n  validate {\n    max_bytes = \"2M\"\n  }\n}\n", 3,
      "validate.max_bytes: '2M' is more than the limit of 1M" },
    { "input \"a\" {\n  path = \"/l\"\n  validate {\n"
      "    types = { \"x:string|\" }\n  }\n}\n", 4,
      "validate.types: missing type name in 'string|'" },
    { "reject_file = \"rejects.jsonl\"\n", 1,
      "reject_file: 'rejects.jsonl' is not an absolute path" },
    { "input \"a\" {\n  path = \"/l\"\n  reject_file = \"\"\n}\n", 3,
      "input 'a' reject_file: must not be empty" },
    { "socket {\n  reject_file = \"r\"\n}\n", 2,
      "socket.reject_file: 'r' is not an absolute path" },
    { "validate {\n  max_depth = 3\n}\nvalidate {\n  max_depth = 4\n}\n", 4,
      "validate: section given twice, first at line 1" },
};

static void
test_each_mistake(void **state)
{
    struct scratch *s = *state;

    for (size_t i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
        const struct bad_case *bc = &bad_cases[i];
        struct config *c = (struct config *)&bad_cases;
        char text[2048];
        const char *path;
        char *log;

        snprintf(text, sizeof(text), "%s%s", bc->text,
                 strstr(bc->text, "firehose {") ? "" : firehose_ok);
        path = scratch_write(s, "bad.conf", text);
        assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
        assert_logged(log, path, bc->line, bc->msg);
        if (count_lines(log) != 1) {
            print_error("case %zu: expected one line, got\n%s", i, log);
            fail();
        }
        /* Untouched on failure. */
        assert_ptr_equal(c, (struct config *)&bad_cases);
        free(log);
    }
}

static void
test_missing_required(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
                         "state_dir = \"/var/lib/aaas\"\n"
                         "firehose {\n"
                         "    timeout = 1000\n"
                         "}\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 2, "firehose: missing required option 'stream'");
    assert_logged(log, path, 2, "firehose: missing required option 'region'");
    assert_int_equal(count_lines(log), 2);
    assert_null(c);
    free(log);

    /* An empty section has no value to date it: its closing line it is. */
    path = scratch_write(s, "aaas.conf", "firehose {\n}\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 2, "firehose: missing required option 'stream'");
    free(log);

    path = scratch_write(s, "aaas.conf", "state_dir = \"/var/lib/aaas\"\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 0, "missing a sink: give a 'firehose' or a "
                  "'kinesis' section");
    assert_int_equal(count_lines(log), 1);
    free(log);

    path = scratch_write(s, "aaas.conf", "");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 0, "missing a sink: give a 'firehose' or a "
                  "'kinesis' section");
    free(log);
    assert_null(c);
}

static void
test_kinesis_sink(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
        "kinesis {\n"
        "    stream = \"audit.stream-with_a_name_longer_than_sixty_four_"
        "characters_which_kinesis_allows_x\"\n"
        "    region = \"eu-west-1\"\n"
        "    endpoint = \"http://127.0.0.1:4567\"\n"
        "    partition_key = \"host/{agent}/{seq}\"\n"
        "    max_in_flight = 2\n"
        "    pack = true\n"
        "}\n");
    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(log, "");
    assert_true(c->kinesis);
    assert_string_equal(c->firehose_stream, "audit.stream-with_a_name_longer_"
                        "than_sixty_four_characters_which_kinesis_allows_x");
    assert_string_equal(c->firehose_region, "eu-west-1");
    assert_string_equal(c->firehose_endpoint, "http://127.0.0.1:4567");
    assert_string_equal(c->kinesis_partition_key, "host/{agent}/{seq}");
    assert_int_equal(c->firehose_max_in_flight, 2);
    assert_true(c->firehose_pack);
    free(log);
    config_free(c);

    /* The default key; firehose configs are not kinesis ones. */
    path = scratch_write(s, "aaas.conf",
                         "kinesis { stream = \"k\" region = \"us-east-1\" }\n");
    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(c->kinesis_partition_key, "{agent}");
    free(log);
    config_free(c);
    path = scratch_write(s, "aaas.conf", firehose_ok);
    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_false(c->kinesis);
    assert_null(c->kinesis_partition_key);
    free(log);
    config_free(c);
    c = NULL;

    /* Both sinks, bad keys and names: every mistake, each at its line. */
    path = scratch_write(s, "aaas.conf",
        "firehose {\n"
        "    stream = \"audit-events\"\n"
        "    region = \"us-east-1\"\n"
        "}\n"
        "kinesis {\n"
        "    stream = \"bad name\"\n"
        "    region = \"us-east-1\"\n"
        "    partition_key = \"{host}\"\n"
        "}\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 6, "kinesis.stream: 'bad name' is not a stream "
                  "name (1 to 128 of A-Z, a-z, 0-9, '_', '.', '-')");
    assert_logged(log, path, 8, "kinesis.partition_key: '{host}': '{' "
                  "starts no known placeholder ({agent} or {seq})");
    assert_logged(log, path, 5, "kinesis: only one sink may be given, and "
                  "firehose is at line 1");
    assert_int_equal(count_lines(log), 3);
    assert_null(c);
    free(log);

    path = scratch_write(s, "aaas.conf",
        "kinesis {\n"
        "    partition_key = \"\"\n"
        "}\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 2, "kinesis.partition_key: '': partition key "
                  "is empty");
    assert_logged(log, path, 1, "kinesis: missing required option 'stream'");
    assert_logged(log, path, 1, "kinesis: missing required option 'region'");
    free(log);
    assert_null(c);
}

/* One run, every mistake: nothing stops at the first bad value. */
static void
test_all_mistakes_in_one_run(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
        "state_dir = \"lib/aaas\"\n"                    /* 1 */
        "log_level = \"chatty\"\n"
        "spool {\n"
        "    max_size = \"1X\"\n"                       /* 4 */
        "    sync_interval = soon\n"
        "}\n"
        "socket {\n"
        "    mode = \"rw\"\n"                           /* 8 */
        "    max_event_size = \"3M\"\n"
        "}\n"
        "input \"app\" {\n"                             /* 11 */
        "    path = \"\"\n"
        "    format = \"yaml\"\n"
        "}\n"
        "input \"app\" {\n"                             /* 15 */
        "    path = \"/var/log/app.log\"\n"
        "}\n"
        "firehose {\n"                                  /* 18 */
        "    region = \"mars\"\n"
        "    endpoint = \"localhost:4573\"\n"
        "}\n");

    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 1, "state_dir: 'lib/aaas' is not an absolute path");
    assert_logged(log, path, 2,
                  "log_level: unknown value 'chatty' (use err, warning, notice, info or debug)");
    assert_logged(log, path, 4,
                  "spool.max_size: invalid size '1X' (use bytes with an optional k, M, G or T)");
    assert_logged(log, path, 5, "spool.sync_interval: 'soon' is not a whole number");
    assert_logged(log, path, 8, "socket.mode: 'rw' is not an octal mode such as 0660");
    assert_logged(log, path, 9,
                  "socket.max_event_size: '3M' is more than the limit of 1M");
    assert_logged(log, path, 12, "input 'app' path: must not be empty");
    assert_logged(log, path, 13,
                  "input 'app' format: unknown value 'yaml' (use json, auditd or raw)");
    assert_logged(log, path, 15,
                  "input 'app': duplicate name, first defined at line 11");
    assert_logged(log, path, 19,
                  "firehose.region: 'mars' is not a region name like us-east-1");
    assert_logged(log, path, 20,
                  "firehose.endpoint: 'localhost:4573' is not an http or https URL");
    assert_logged(log, path, 18, "firehose: missing required option 'stream'");
    assert_int_equal(count_lines(log), 12);
    assert_null(c);
    free(log);
}

/* A syntax error ends the run, but what came before it is still said. */
static void
test_values_before_syntax_error(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
                         "state_dir = \"relative\"\n"
                         "spool {\n"
                         "    dir = \"/s\"\n"
                         "    }\n"
                         "}\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 1, "state_dir: 'relative' is not an absolute path");
    assert_logged(log, path, 5, "unexpected closing brace");
    assert_int_equal(count_lines(log), 2);
    free(log);

    path = scratch_write(s, "aaas.conf",
                         "spool {\n"
                         "    dir = \"spool\"\n"
                         "}\n"
                         "state_dir =\n");
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_logged(log, path, 2, "spool.dir: 'spool' is not an absolute path");
    assert_logged(log, path, 5, "premature end of file");
    assert_int_equal(count_lines(log), 2);
    free(log);
    assert_null(c);
}

static void
test_cannot_open(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    char path[512], want[600];
    char *log;

    snprintf(path, sizeof(path), "%s/absent.conf", s->dir);
    snprintf(want, sizeof(want),
             "aaasd: error: cannot open '%s': No such file or directory\n",
             path);
    assert_int_equal(load_logged(s, path, &c, &log), -ENOENT);
    assert_string_equal(log, want);
    free(log);

    snprintf(want, sizeof(want),
             "aaasd: error: cannot open '%s': Is a directory\n", s->dir);
    assert_int_equal(load_logged(s, s->dir, &c, &log), -EISDIR);
    assert_string_equal(log, want);
    free(log);

    /* A FIFO would block a reader with no writer: refused at once. */
    snprintf(path, sizeof(path), "%s/fifo", s->dir);
    assert_int_equal(mkfifo(path, 0600), 0);
    snprintf(want, sizeof(want),
             "aaasd: error: cannot open '%s': not a regular file\n", path);
    assert_int_equal(load_logged(s, path, &c, &log), -EINVAL);
    assert_string_equal(log, want);
    free(log);
    assert_null(c);
}

/*
 * Root reads any file, so as root the load runs in a child that has given
 * up root first; the file stays root's and 0600.
 */
static void
test_unreadable(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    char want[600], got[600], *log;
    const char *path;
    int pfd[2], status;
    ssize_t n;
    pid_t pid;

    path = scratch_write(s, "secret.conf", firehose_ok);
    assert_int_equal(chmod(path, 0), 0);
    snprintf(want, sizeof(want),
             "aaasd: error: cannot open '%s': Permission denied\n", path);

    if (geteuid() != 0) {
        assert_int_equal(load_logged(s, path, &c, &log), -EACCES);
        assert_string_equal(log, want);
        free(log);
        return;
    }

    /*
     * The child reports through a pipe and its exit status only: a cmocka
     * failure in a forked child would run the rest of the suite twice.
     */
    assert_int_equal(chmod(s->dir, 0755), 0);
    assert_int_equal(pipe(pfd), 0);
    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(pfd[0]);
        if (setgid(65534) < 0 || setuid(65534) < 0 ||
            dup2(pfd[1], STDERR_FILENO) < 0)
            _exit(2);
        _exit(config_load(path, &c) == -EACCES && !c ? 0 : 1);
    }
    close(pfd[1]);
    n = read(pfd[0], got, sizeof(got) - 1);
    close(pfd[0]);
    assert_true(n >= 0);
    got[n] = '\0';
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_string_equal(got, want);
}

static void
test_parse_size(void **state)
{
    static const struct {
        const char *s;
        uint64_t want;
    } good[] = {
        { "0", 0 },
        { "100", 100 },
        { "64k", 64 * 1024 },
        { "64K", 64 * 1024 },
        { "512M", UINT64_C(512) << 20 },
        { "1G", UINT64_C(1) << 30 },
        { "3T", UINT64_C(3) << 40 },
        { "18446744073709551615", UINT64_MAX },
        { "16777215T", UINT64_C(16777215) << 40 },
        { "007", 7 },
    };
    static const char *const bad[] = {
        "", "k", "M", "-1", "+1", " 1", "1 ", "1.5G", "1GB", "1g", "1m",
        "1KK", "0x10", "1P", "ten",
        "18446744073709551616",         /* one past 2^64 - 1 */
        "99999999999999999999999",
        "16777216T",                    /* 2^64 exactly */
        "17179869184G",
    };
    uint64_t n;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        n = 42;
        assert_int_equal(config_parse_size(good[i].s, &n), 0);
        assert_int_equal(n, good[i].want);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = 42;
        if (config_parse_size(bad[i], &n) != -EINVAL) {
            print_error("'%s' was taken as %llu\n", bad[i],
                        (unsigned long long)n);
            fail();
        }
        assert_int_equal(n, 42);
    }
}

/* Checks one line against a scope's rules; want NULL: it must pass. */
static void
expect_rules(struct validate *v, const char *line, const char *want)
{
    struct parse_json *p = parse_json_new(NULL);
    struct parse_json_result res;
    const char *why = NULL;
    int r;

    assert_non_null(p);
    r = validate_check(v, p, line, strlen(line), &res, &why);
    if (want ? r != -EBADMSG || strcmp(why, want) != 0 : r != 0)
        fail_msg("line '%s': got %d '%s', want '%s'", line, r,
                 why ? why : "", want ? want : "(pass)");
    parse_json_free(p);
}

/*
 * The top-level rules reach every scope; a section's own are added, and
 * its limits and type rules replace the ones they repeat.
 */
static void
test_rules_per_scope(void **state)
{
    struct scratch *s = *state;
    struct config *c = NULL;
    const char *path;
    char *log;

    path = scratch_write(s, "aaas.conf",
                         "reject_file = \"/var/lib/aaas/rejects.jsonl\"\n"
                         "validate {\n"
                         "  required = { \"actor.id\" }\n"
                         "  types = { \"actor.id: string\", \"n: number\" }\n"
                         "  max_bytes = 100\n"
                         "}\n"
                         "socket {\n"
                         "  reject_file = \"/var/lib/aaas/socket.jsonl\"\n"
                         "  validate {\n"
                         "    required = { \"action\" }\n"
                         "    types = { \"n: string\" }\n"
                         "    max_depth = 2\n"
                         "  }\n"
                         "}\n"
                         "input \"plain\" {\n  path = \"/l/*.log\"\n}\n"
                         "input \"big\" {\n  path = \"/b/*.log\"\n"
                         "  validate {\n    max_bytes = \"1k\"\n  }\n}\n"
                         "firehose {\n  stream = \"s\"\n"
                         "  region = \"us-east-1\"\n}\n");
    assert_int_equal(load_logged(s, path, &c, &log), 0);
    assert_string_equal(log, "");
    free(log);

    assert_string_equal(c->socket_reject_file, "/var/lib/aaas/socket.jsonl");
    assert_string_equal(c->inputs[0].reject_file,
                        "/var/lib/aaas/rejects.jsonl");
    assert_string_equal(c->inputs[1].reject_file,
                        "/var/lib/aaas/rejects.jsonl");

    expect_rules(c->socket_validate,
                 "{\"action\":1,\"actor\":{\"id\":\"u\"},\"n\":\"x\"}", NULL);
    expect_rules(c->socket_validate, "{\"action\":1}",
                 "missing required member 'actor.id'");
    expect_rules(c->socket_validate, "{\"actor\":{\"id\":\"u\"}}",
                 "missing required member 'action'");
    expect_rules(c->socket_validate,
                 "{\"action\":1,\"actor\":{\"id\":\"u\"},\"n\":1}",
                 "member 'n' is a number, expected string");
    expect_rules(c->socket_validate,
                 "{\"action\":1,\"actor\":{\"id\":\"u\",\"x\":[]}}",
                 "nesting deeper than 2 at byte 34");

    expect_rules(c->inputs[0].validate, "{\"actor\":{\"id\":\"u\"},\"n\":1}",
                 NULL);
    expect_rules(c->inputs[0].validate, "{\"actor\":{\"id\":1}}",
                 "member 'actor.id' is a number, expected string");
    expect_rules(c->inputs[0].validate,
                 "{\"actor\":{\"id\":\"u\"},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                 "event of 110 bytes is over the limit of 100 bytes");
    expect_rules(c->inputs[1].validate,
                 "{\"actor\":{\"id\":\"u\"},\"pad\":\"xxxxxxxxxxxxxxxxxxxxxxxx"
                 "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx\"}",
                 NULL);
    config_free(c);

    /* Without any rule a scope has none to check, and no reject file. */
    path = scratch_write(s, "aaas.conf",
                         "input \"a\" {\n  path = \"/l/*.log\"\n}\n"
                         "firehose {\n  stream = \"s\"\n"
                         "  region = \"us-east-1\"\n}\n");
    assert_int_equal(load_logged(s, path, &c, &log), 0);
    free(log);
    assert_null(c->socket_validate);
    assert_null(c->inputs[0].validate);
    assert_null(c->socket_reject_file);
    assert_null(c->inputs[0].reject_file);
    config_free(c);
}

static void
test_free_null(void **state)
{
    (void)state;
    assert_null(config_free(NULL));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_design_example,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_defaults,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_kinesis_sink, scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_every_option,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_shipped_config,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_each_mistake,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_missing_required,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_all_mistakes_in_one_run,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_values_before_syntax_error,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_cannot_open,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_unreadable,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test_setup_teardown(test_rules_per_scope,
                                        scratch_setup, scratch_teardown),
        cmocka_unit_test(test_parse_size),
        cmocka_unit_test(test_free_null),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
