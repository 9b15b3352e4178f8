/* SPDX-License-Identifier: MIT */
/*
 * aaasd: wires the inputs, the spool and the sender onto one sd-event
 * loop, and owns start-up, readiness, signals and shutdown.  The modules
 * do the work; this file decides the order and what an event is worth
 * (accepted once durable, never before).
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "batch.h"
#include "config.h"
#include "credentials.h"
#include "event.h"
#include "http.h"
#include "log.h"
#include "parse_json.h"
#include "sender.h"
#include "sigv4.h"
#include "socket_input.h"
#include "spool.h"
#include "tail.h"

#define AAASD_DEFAULT_CONFIG "/etc/aaas.conf"
#define AAASD_STATUS_USEC (5ull * 1000000ull)
/* How long SIGTERM waits for the sink to take what is spooled. */
#define AAASD_FLUSH_USEC (5ull * 1000000ull)
/* A reject keeps at most this much of the raw input (see pipeline_take). */
#define AAASD_REJECT_RAW_MAX (512u * 1024u)
#define AAASD_PARSE_DEPTH 64
#define AAASD_RETRY_USEC (200ull * 1000ull)

static const char *arg_config = AAASD_DEFAULT_CONFIG;
static int arg_check_config;

struct aaasd {
    struct config *cfg;
    sd_event *event;
    struct spool *spool;
    struct parse_json *parser;
    struct event_builder builder;
    struct tail *tail;
    struct socket_input *socket;
    struct http *http;
    struct credentials *credentials;
    struct sender *sender;

    sd_event_source *commit;        /* requests a sync after appends */
    sd_event_source *sync_io;       /* the spool's sync completions */
    sd_event_source *status_timer;
    sd_event_source *flush_timer;   /* shutdown deadline */
    sd_event_source *stop_check;    /* shutdown: exits once all is sent */

    sd_event_source *retry_timer;   /* re-tries a failed spool write */
    bool full;                      /* spool at max_size: inputs paused */
    bool held;                      /* an input holds a line until the
                                     * spool's write buffer drains */
    bool stopping;
    int sync_error;                 /* last sync failure, 0 when fine */
    uint64_t accepted;              /* events durable in the spool */
    uint64_t rejected;
    uint64_t appended;              /* events appended, durable or not */
};

static void
pipeline_pause(struct aaasd *d)
{
    if (d->tail)
        tail_pause(d->tail);
    if (d->socket)
        socket_input_pause(d->socket);
}

static void
pipeline_resume(struct aaasd *d)
{
    if (d->stopping)
        return;
    if (d->tail)
        tail_resume(d->tail);
    if (d->socket)
        socket_input_resume(d->socket);
}

static int
pipeline_append(struct aaasd *d, uint64_t *ret_seq)
{
    int r;

    r = spool_append(d->spool, d->builder.buf, d->builder.len, ret_seq);
    if (r == -EAGAIN) {
        /* The write buffer is full: write it out, then try once more. */
        r = spool_sync_request(d->spool);
        if (r >= 0)
            r = spool_append(d->spool, d->builder.buf, d->builder.len,
                             ret_seq);
    }
    if (r == -ENOSPC && !d->full) {
        d->full = true;
        log_notice("spool: '%s' reached its size limit, pausing inputs "
                   "until the sink catches up", d->cfg->spool_dir);
    }
    return r;
}

/*
 * Turns one input line into a spool frame: the event in its delivered form
 * or a reject record.  Returns -EAGAIN to make the input hold the line.
 */
static int
pipeline_take(struct aaasd *d, const char *data, size_t len, bool truncated,
              size_t max, const struct event_source *src, uint64_t *ret_seq)
{
    struct parse_json_result pr;
    const char *reason = NULL;
    char why[128];
    struct timespec now;
    uint64_t seq;
    int r;

    if (d->full || d->stopping)
        return -EAGAIN;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    seq = spool_next_seq(d->spool);

    if (truncated) {
        (void)snprintf(why, sizeof(why), "line longer than %zu bytes", max);
        reason = why;
    } else {
        r = parse_json_check(d->parser, data, len, &pr, &reason);
        if (r == 0) {
            r = event_build(&d->builder, data, len, &pr, seq, src, &now);
            if (r < 0)
                return r;
            if (d->builder.len > BATCH_MAX_RECORD_BYTES) {
                (void)snprintf(why, sizeof(why),
                               "event of %zu bytes is over the Firehose "
                               "record limit of %u bytes", d->builder.len,
                               BATCH_MAX_RECORD_BYTES);
                reason = why;
            }
        }
    }

    if (reason) {
        /*
         * The reject must fit in one record too, so very long input keeps
         * only its head; the reason says how long it was.
         */
        size_t keep = len > AAASD_REJECT_RAW_MAX ? AAASD_REJECT_RAW_MAX : len;

        r = event_build_reject(&d->builder, data, keep, reason, seq, src,
                               &now);
        if (r < 0)
            return r;
    }

    r = pipeline_append(d, ret_seq);
    if (r < 0) {
        /* Whatever the cause, the input holds the line until we resume. */
        d->held = true;
        return r == -ENOSPC ? -EAGAIN : r;
    }
    if (reason) {
        d->rejected++;
        log_debug("pipeline: event %llu rejected: %s",
                  (unsigned long long)*ret_seq, reason);
    }
    d->appended++;
    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
    return 0;
}

static int
pipeline_file_line(void *userdata, const struct tail_line *l,
                   uint64_t *ret_seq)
{
    struct aaasd *d = userdata;
    const struct event_source src = {
        .kind = EVENT_SOURCE_FILE,
        .input = l->input,
        .path = l->path,
    };
    size_t max = 0;

    for (size_t i = 0; i < d->cfg->n_inputs; i++)
        if (strcmp(d->cfg->inputs[i].name, l->input) == 0)
            max = d->cfg->inputs[i].max_line;
    return pipeline_take(d, l->data, l->len, l->truncated, max, &src,
                         ret_seq);
}

static int
pipeline_socket_line(void *userdata, const struct socket_line *l,
                     uint64_t *ret_seq)
{
    struct aaasd *d = userdata;
    const struct event_source src = {
        .kind = EVENT_SOURCE_SOCKET,
        .has_peer = true,
        .pid = l->pid,
        .uid = l->uid,
        .gid = l->gid,
    };

    return pipeline_take(d, l->data, l->len, l->truncated,
                         d->cfg->max_event_size, &src, ret_seq);
}

static int
pipeline_retry_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct aaasd *d = userdata;

    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
    return 0;
}

/*
 * After a failed write or sync the spool keeps the bytes; try again after
 * a pause rather than spinning on a disk that is full or failing.
 */
static void
pipeline_retry_later(struct aaasd *d)
{
    int r;

    r = sd_event_source_set_time_relative(d->retry_timer,
                                          AAASD_RETRY_USEC);
    if (r >= 0)
        r = sd_event_source_set_enabled(d->retry_timer, SD_EVENT_ONESHOT);
    if (r < 0)
        log_err("spool: cannot arm the retry timer: %s", strerror(-r));
}

/* Runs once the loop has no input left to dispatch: one sync per burst. */
static int
pipeline_commit(sd_event_source *es, void *userdata)
{
    struct aaasd *d = userdata;
    int r;

    r = spool_sync_request(d->spool);
    if (r < 0 && r != d->sync_error) {
        log_err("spool: cannot write to '%s': %s, holding events in memory "
                "and retrying", d->cfg->spool_dir, strerror(-r));
        d->sync_error = r;
    }
    if (r < 0)
        pipeline_retry_later(d);
    return 0;
}

static int
pipeline_synced(sd_event_source *es, int fd, uint32_t revents,
                void *userdata)
{
    struct aaasd *d = userdata;
    uint64_t durable;
    int r;

    r = spool_sync_collect(d->spool);
    if (r < 0) {
        if (r != d->sync_error)
            log_err("spool: cannot sync '%s': %s, events stay unacknowledged "
                    "and the sync is retried", d->cfg->spool_dir,
                    strerror(-r));
        d->sync_error = r;
        pipeline_retry_later(d);
        return 0;
    }
    if (d->sync_error) {
        log_notice("spool: '%s' is writable again", d->cfg->spool_dir);
        d->sync_error = 0;
    }

    durable = spool_durable_seq(d->spool);
    d->accepted = durable;
    if (d->held && !d->full) {
        d->held = false;
        pipeline_resume(d);
    }
    if (d->tail)
        tail_durable(d->tail, durable);
    sender_kick(d->sender);
    return 0;
}

static void
pipeline_acked(void *userdata, uint64_t acked_seq)
{
    struct aaasd *d = userdata;

    if (d->full && !spool_is_full(d->spool)) {
        d->full = false;
        d->held = false;
        log_notice("spool: '%s' has room again, resuming inputs",
                   d->cfg->spool_dir);
        pipeline_resume(d);
    }
}

static void
aaasd_status(struct aaasd *d)
{
    struct sender_stats st;
    uint64_t backlog;

    sender_get_stats(d->sender, &st);
    backlog = spool_durable_seq(d->spool) - spool_acked_seq(d->spool);
    (void)sd_notifyf(0, "STATUS=%saccepted %llu, delivered %llu, rejected "
                     "%llu, refused by the service %llu, backlog %llu, "
                     "billed %llu bytes (%llu unpacked)%s%s",
                     st.stalled ? "STALLED, needs attention: " : "",
                     (unsigned long long)d->accepted,
                     (unsigned long long)st.delivered,
                     (unsigned long long)d->rejected,
                     (unsigned long long)st.rejected_events,
                     (unsigned long long)backlog,
                     (unsigned long long)st.billed_bytes,
                     (unsigned long long)st.billed_bytes_unpacked,
                     st.last_error[0] ? ", last error: " : "",
                     st.last_error);
}

static int
aaasd_status_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct aaasd *d = userdata;

    aaasd_status(d);
    (void)sd_event_source_set_time_relative(es, AAASD_STATUS_USEC);
    return 0;
}

static void
aaasd_finish(struct aaasd *d, const char *why)
{
    struct sender_stats st;

    sender_get_stats(d->sender, &st);
    /* Nothing numeric after the duplicates: tools read the number before. */
    log_notice("stopping (%s): accepted %llu, delivered %llu, rejected %llu, "
               "refused by the service %llu, "
               "%llu calls, %llu records, billed %llu bytes (%llu unpacked), "
               "%llu left in the spool, %llu possible duplicates", why,
               (unsigned long long)d->accepted,
               (unsigned long long)st.delivered,
               (unsigned long long)d->rejected,
               (unsigned long long)st.rejected_events,
               (unsigned long long)st.calls,
               (unsigned long long)st.records,
               (unsigned long long)st.billed_bytes,
               (unsigned long long)st.billed_bytes_unpacked,
               (unsigned long long)(spool_durable_seq(d->spool) -
                                    spool_acked_seq(d->spool)),
               (unsigned long long)st.possible_duplicates);
    (void)sd_event_exit(d->event, 0);
}

static int
aaasd_flush_deadline(sd_event_source *es, uint64_t usec, void *userdata)
{
    aaasd_finish(userdata, "flush time is up, the rest stays spooled");
    return 0;
}

/* While stopping: checked after every event until the sender is idle. */
static int
aaasd_stop_check(sd_event_source *es, void *userdata)
{
    struct aaasd *d = userdata;

    if (spool_durable_seq(d->spool) + 1 < spool_next_seq(d->spool))
        return 0;
    if (sender_idle(d->sender))
        aaasd_finish(d, "everything delivered");
    return 0;
}

static int
aaasd_on_term(sd_event_source *es, const struct signalfd_siginfo *si,
              void *userdata)
{
    struct aaasd *d = userdata;
    int r;

    if (d->stopping)
        return 0;
    d->stopping = true;
    (void)sd_notify(0, "STOPPING=1");
    log_notice("received %s, flushing for up to %llu s",
               strsignal((int)si->ssi_signo), AAASD_FLUSH_USEC / 1000000ull);

    /* No new input; what is already read is synced and sent. */
    d->socket = socket_input_free(d->socket);
    pipeline_pause(d);
    (void)spool_sync_request(d->spool);

    r = sd_event_add_time_relative(d->event, &d->flush_timer,
                                   CLOCK_MONOTONIC, AAASD_FLUSH_USEC, 0,
                                   aaasd_flush_deadline, d);
    if (r >= 0)
        r = sd_event_add_post(d->event, &d->stop_check, aaasd_stop_check,
                              d);
    if (r < 0)
        aaasd_finish(d, "cannot wait for the flush");
    return 0;
}

static int
aaasd_on_hup(sd_event_source *es, const struct signalfd_siginfo *si,
             void *userdata)
{
    log_notice("received SIGHUP: reloading is not supported yet, restart "
               "the service to apply a changed config, ignoring");
    return 0;
}

/* mkdir -p, for the state directory: its parents may be missing too. */
static int
aaasd_mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static int
aaasd_setup_inputs(struct aaasd *d)
{
    struct config *c = d->cfg;
    int r;

    if (c->socket_enabled) {
        struct socket_input_options so = {
            .event = d->event,
            .path = c->socket_path,
            .mode = c->socket_mode,
            .group = c->socket_group,
            .max_connections = c->socket_max_connections,
            .max_event_size = c->max_event_size,
            .line_fn = pipeline_socket_line,
            .userdata = d,
        };

        r = socket_input_new(&so, &d->socket);
        if (r == -EADDRINUSE) {
            log_err("socket: another process is listening on '%s', exiting",
                    c->socket_path);
            return r;
        }
        if (r < 0) {
            log_err("socket: cannot listen on '%s': %s, exiting",
                    c->socket_path, strerror(-r));
            return r;
        }
    }

    if (c->n_inputs > 0) {
        r = aaasd_mkdir_p(c->state_dir, 0750);
        if (r < 0) {
            log_err("cannot create state directory '%s': %s, exiting",
                    c->state_dir, strerror(-r));
            return r;
        }

        struct tail_options to = {
            .event = d->event,
            .state_dir = c->state_dir,
            .inputs = c->inputs,
            .n_inputs = c->n_inputs,
            .line_fn = pipeline_file_line,
            .userdata = d,
        };

        r = tail_new(&to, &d->tail);
        if (r < 0) {
            log_err("tail: cannot start the file inputs: %s, exiting",
                    strerror(-r));
            return r;
        }
    }
    return 0;
}

static int
aaasd_setup_spool(struct aaasd *d)
{
    struct config *c = d->cfg;
    struct spool_options so = {
        .dir = c->spool_dir,
        .max_size = c->spool_max_size,
        .segment_size = c->spool_segment_size,
        .sync = c->spool_sync == CONFIG_SYNC_INTERVAL ? SPOOL_SYNC_INTERVAL
                                                      : SPOOL_SYNC_ALWAYS,
        .sync_interval_ms = c->spool_sync_interval_ms,
    };
    int r;

    r = spool_open(&so, &d->spool);
    if (r == -EBUSY) {
        log_err("spool: '%s' is in use by another aaasd, exiting",
                c->spool_dir);
        return r;
    }
    if (r < 0) {
        log_err("spool: cannot open '%s': %s, exiting", c->spool_dir,
                strerror(-r));
        return r;
    }
    log_info("spool: '%s' holds events up to %llu, acknowledged up to %llu",
             c->spool_dir,
             (unsigned long long)spool_next_seq(d->spool) - 1,
             (unsigned long long)spool_acked_seq(d->spool));

    r = sd_event_add_io(d->event, &d->sync_io, spool_sync_fd(d->spool),
                        EPOLLIN, pipeline_synced, d);
    if (r < 0)
        return r;
    r = sd_event_add_defer(d->event, &d->commit, pipeline_commit, d);
    if (r < 0)
        return r;
    /* After every input source, so one sync covers the whole burst. */
    (void)sd_event_source_set_priority(d->commit, SD_EVENT_PRIORITY_IDLE);
    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_OFF);

    r = sd_event_add_time(d->event, &d->retry_timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 0, pipeline_retry_cb, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->retry_timer, SD_EVENT_OFF);
    return 0;
}

static int
aaasd_setup(struct aaasd *d)
{
    struct config *c = d->cfg;
    struct parse_json_limits pl = { .max_depth = AAASD_PARSE_DEPTH };
    const char *why = NULL;
    char agent[EVENT_AGENT_ID_LEN + 1];
    sigset_t ss;
    int r;

    if (c->agent_id) {
        (void)snprintf(agent, sizeof(agent), "%s", c->agent_id);
    } else {
        r = event_agent_id(agent);
        if (r < 0) {
            log_err("cannot derive the agent id from /etc/machine-id: %s; "
                    "set agent_id in '%s', exiting", strerror(-r), c->file);
            return r;
        }
    }
    r = event_builder_init(&d->builder, agent);
    if (r < 0) {
        log_err("agent id '%s' is longer than %d characters, exiting", agent,
                EVENT_AGENT_ID_LEN);
        return r;
    }
    d->parser = parse_json_new(&pl);
    if (!d->parser)
        return -ENOMEM;

    r = sd_event_default(&d->event);
    if (r < 0)
        return r;

    (void)sigemptyset(&ss);
    (void)sigaddset(&ss, SIGTERM);
    (void)sigaddset(&ss, SIGINT);
    (void)sigaddset(&ss, SIGHUP);
    (void)sigprocmask(SIG_BLOCK, &ss, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    r = sd_event_add_signal(d->event, NULL, SIGTERM, aaasd_on_term, d);
    if (r >= 0)
        r = sd_event_add_signal(d->event, NULL, SIGINT, aaasd_on_term, d);
    if (r >= 0)
        r = sd_event_add_signal(d->event, NULL, SIGHUP, aaasd_on_hup, d);
    if (r < 0)
        return r;
    (void)sd_event_set_watchdog(d->event, true);

    r = aaasd_setup_spool(d);
    if (r < 0)
        return r;

    d->credentials = credentials_new();
    if (!d->credentials)
        return -ENOMEM;
    struct credentials_options co = {
        .access_key_id = c->access_key_id,
        .secret_access_key = c->secret_access_key,
        .region = c->firehose_region,
        .ca_file = c->ca_file,
        .proxy = c->firehose_proxy,
    };
    r = credentials_set_options(d->credentials, &co);
    if (r < 0)
        return r;
    if (c->access_key_id)
        log_warning("config: '%s' holds static AWS keys (access key id "
                    "%.4s...), used before the environment and roles; keep "
                    "the file private and prefer a role", c->file,
                    c->access_key_id);
    r = http_new(d->event, &d->http);
    if (r < 0)
        return r;

    struct sender_options so = {
        .event = d->event,
        .spool = d->spool,
        .http = d->http,
        .credentials = d->credentials,
        .stream = c->firehose_stream,
        .region = c->firehose_region,
        .endpoint = c->firehose_endpoint,
        .kinesis = c->kinesis,
        .partition_key = c->kinesis_partition_key,
        .agent = d->builder.agent,
        .ca_file = c->ca_file,
        .max_in_flight = c->firehose_max_in_flight,
        .timeout_ms = c->firehose_timeout_ms,
        .connect_timeout_ms = c->firehose_connect_timeout_ms,
        .low_speed_time_ms = c->firehose_low_speed_time_ms,
        .proxy = c->firehose_proxy,
        .pack = c->firehose_pack,
        .max_records_per_second = c->firehose_max_records_per_second,
        .max_bytes_per_second = c->firehose_max_bytes_per_second,
        .retry_initial_ms = c->retry_initial_ms,
        .retry_max_ms = c->retry_max_ms,
        .acked_fn = pipeline_acked,
        .userdata = d,
    };
    r = sender_new(&so, &d->sender, &why);
    if (r < 0) {
        log_err("sender: cannot set up stream '%s': %s, exiting",
                c->firehose_stream, why ? why : strerror(-r));
        return r;
    }

    r = aaasd_setup_inputs(d);
    if (r < 0)
        return r;

    r = sd_event_add_time_relative(d->event, &d->status_timer,
                                   CLOCK_MONOTONIC, AAASD_STATUS_USEC, 0,
                                   aaasd_status_cb, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->status_timer, SD_EVENT_ON);

    /* Whatever the spool recovered is sent without waiting for input. */
    sender_kick(d->sender);
    return 0;
}

static void
aaasd_teardown(struct aaasd *d)
{
    int r;

    d->socket = socket_input_free(d->socket);
    if (d->spool) {
        r = spool_sync_now(d->spool);
        if (r < 0)
            log_err("spool: final sync of '%s' failed: %s",
                    d->cfg->spool_dir, strerror(-r));
        else if (d->tail)
            tail_durable(d->tail, spool_durable_seq(d->spool));
    }
    if (d->tail) {
        r = tail_save(d->tail);
        if (r < 0)
            log_err("tail: cannot save offsets under '%s': %s; lines since "
                    "the last save will be read again", d->cfg->state_dir,
                    strerror(-r));
    }
    d->tail = tail_free(d->tail);
    /* Transfers go before the sender whose buffers they point into. */
    d->http = http_free(d->http);
    d->sender = sender_free(d->sender);
    d->credentials = credentials_free(d->credentials);
    /* Wipes the signing keys this thread derived. */
    sigv4_done();
    sd_event_source_disable_unref(d->commit);
    sd_event_source_disable_unref(d->sync_io);
    sd_event_source_disable_unref(d->retry_timer);
    sd_event_source_disable_unref(d->status_timer);
    sd_event_source_disable_unref(d->flush_timer);
    sd_event_source_disable_unref(d->stop_check);
    d->spool = spool_free(d->spool);
    d->parser = parse_json_free(d->parser);
    event_builder_done(&d->builder);
    d->event = sd_event_unref(d->event);
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: aaasd [-c file] [--check-config] [--version]\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --check-config  validate the configuration and exit\n"
            "  -h, --help          show this help\n"
            "      --version       show the version\n",
            AAASD_DEFAULT_CONFIG);
}

static int
parse_args(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_VERSION };
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, OPT_CHECK },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 },
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            arg_config = optarg;
            break;
        case OPT_CHECK:
            arg_check_config = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case OPT_VERSION:
            printf("aaasd %s\n", PACKAGE_VERSION);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aaasd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct aaasd d = { 0 };
    int r;

    log_open();
    if (parse_args(argc, argv) < 0)
        return 2;

    r = config_load(arg_config, &d.cfg);
    if (r < 0) {
        log_err("configuration '%s' is not valid, exiting", arg_config);
        return 1;
    }
    if (arg_check_config) {
        printf("configuration '%s' is valid\n", arg_config);
        d.cfg = config_free(d.cfg);
        return 0;
    }
    log_set_level(d.cfg->log_level);

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        log_err("cannot initialise libcurl, exiting");
        d.cfg = config_free(d.cfg);
        return 1;
    }

    r = aaasd_setup(&d);
    if (r < 0) {
        log_err("start-up failed: %s, exiting", strerror(-r));
        goto out;
    }

    log_notice("aaasd %s started: stream '%s', %zu file inputs, socket %s",
               PACKAGE_VERSION, d.cfg->firehose_stream, d.cfg->n_inputs,
               d.socket ? d.cfg->socket_path : "off");
    (void)sd_notify(0, "READY=1");
    aaasd_status(&d);

    r = sd_event_loop(d.event);
    if (r < 0)
        log_err("event loop failed: %s, exiting", strerror(-r));

out:
    aaasd_teardown(&d);
    curl_global_cleanup();
    d.cfg = config_free(d.cfg);
    return r < 0 ? 1 : 0;
}
