/* SPDX-License-Identifier: MIT */
/*
 * The control socket and the three ways the daemon's numbers are shown:
 * for people, as JSON for scripts, and in the Prometheus text format.
 * What the numbers mean is the daemon's; this file owns their spelling.
 */
#include "status.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "log.h"

/* A client that does not send its command in time is dropped. */
#define STATUS_CLIENT_USEC (5ull * 1000000ull)
/* Enough for the daemon's own tool; more would only be a way to pin fds. */
#define STATUS_CLIENTS_MAX 8
#define STATUS_COMMAND_MAX 64

struct status_client {
    struct status *owner;
    int fd;
    sd_event_source *io;
    sd_event_source *timer;
    char cmd[STATUS_COMMAND_MAX];
    size_t len;
};

struct status {
    struct status_options opts;
    char *path;
    int fd;
    bool bound;                 /* the socket file is ours to remove */
    sd_event_source *listen;
    struct status_client clients[STATUS_CLIENTS_MAX];
};

void
status_buf_done(struct status_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->size = 0;
}

static int status_printf(struct status_buf *b, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

static int
status_printf(struct status_buf *b, const char *fmt, ...)
{
    va_list ap;
    int n;

    for (;;) {
        size_t room = b->size - b->len;

        va_start(ap, fmt);
        n = vsnprintf(b->data ? b->data + b->len : NULL, room, fmt, ap);
        va_end(ap);
        if (n < 0)
            return -EINVAL;
        if ((size_t)n < room) {
            b->len += (size_t)n;
            return 0;
        }

        size_t size = b->size ? b->size * 2 : 4096;
        char *p;

        while (size - b->len <= (size_t)n)
            size *= 2;
        p = realloc(b->data, size);
        if (!p)
            return -ENOMEM;
        b->data = p;
        b->size = size;
    }
}

/* A JSON string body: the last error may hold any bytes a peer sent. */
static int
status_json_string(struct status_buf *b, const char *s)
{
    int r = 0;

    r = status_printf(b, "\"");
    for (const unsigned char *p = (const unsigned char *)s; r >= 0 && *p;
         p++) {
        if (*p == '"' || *p == '\\')
            r = status_printf(b, "\\%c", *p);
        else if (*p < 0x20 || *p == 0x7f)
            r = status_printf(b, "\\u%04x", *p);
        else
            r = status_printf(b, "%c", *p);
    }
    if (r >= 0)
        r = status_printf(b, "\"");
    return r;
}

/* Prometheus label values escape backslash, quote and newline only. */
static int
status_label(struct status_buf *b, const char *s)
{
    int r = 0;

    for (const char *p = s; r >= 0 && *p; p++) {
        if (*p == '\\' || *p == '"')
            r = status_printf(b, "\\%c", *p);
        else if (*p == '\n')
            r = status_printf(b, "\\n");
        else
            r = status_printf(b, "%c", *p);
    }
    return r;
}

#define U(x) ((unsigned long long)(x))

int
status_format_text(const struct status_report *r, struct status_buf *b)
{
    int k;

    k = status_printf(b,
                      "aaasd %s, up %llu s\n"
                      "events:  %llu accepted, %llu rejected, %llu not yet "
                      "durable\n"
                      "spool:   %llu of %llu bytes, %llu waiting for the "
                      "sink%s%s%s\n",
                      r->version, U(r->uptime_sec), U(r->accepted),
                      U(r->rejected),
                      U(r->appended > r->accepted ? r->appended - r->accepted
                                                  : 0),
                      U(r->spool_bytes), U(r->spool_max_bytes),
                      U(r->spool_backlog), r->spool_full ? ", full" : "",
                      r->spool_error ? ", write error: " : "",
                      r->spool_error ? strerror(-r->spool_error) : "");
    for (size_t i = 0; k >= 0 && i < r->n_inputs; i++)
        k = status_printf(b, "input:   %s: %llu events, %llu rejected\n",
                          r->inputs[i].name, U(r->inputs[i].events),
                          U(r->inputs[i].rejected));
    if (k >= 0)
        k = status_printf(b, "files:   %llu followed\n",
                          U(r->files_followed));
    if (k >= 0 && r->socket_enabled)
        k = status_printf(b, "socket:  %llu open, %llu accepted, %llu "
                          "refused, %llu partial lines lost\n",
                          U(r->socket_open), U(r->socket_connections),
                          U(r->socket_refused), U(r->socket_partial_lines));
    if (k >= 0)
        k = status_printf(b,
                          "sink:    stream '%s' in %s: %llu delivered, %llu "
                          "calls, %llu failed, %llu records retried, %llu "
                          "in flight, %llu possible duplicates\n"
                          "last error: %s\n"
                          "reloads: %llu, %llu refused\n",
                          r->stream, r->region, U(r->delivered), U(r->calls),
                          U(r->failed_calls), U(r->failed_records),
                          U(r->in_flight), U(r->possible_duplicates),
                          r->last_error[0] ? r->last_error : "none",
                          U(r->reloads), U(r->reload_failures));
    return k;
}

int
status_format_json(const struct status_report *r, struct status_buf *b)
{
    int k;

    k = status_printf(b,
                      "{\"version\":\"%s\",\"start_time\":%llu,"
                      "\"uptime\":%llu,\"events\":{\"appended\":%llu,"
                      "\"accepted\":%llu,\"rejected\":%llu},"
                      "\"spool\":{\"bytes\":%llu,\"max_bytes\":%llu,"
                      "\"backlog\":%llu,\"full\":%s,\"error\":",
                      r->version, U(r->start_time), U(r->uptime_sec),
                      U(r->appended), U(r->accepted), U(r->rejected),
                      U(r->spool_bytes), U(r->spool_max_bytes),
                      U(r->spool_backlog), r->spool_full ? "true" : "false");
    if (k >= 0)
        k = status_json_string(b, r->spool_error ? strerror(-r->spool_error)
                                                 : "");
    if (k >= 0)
        k = status_printf(b, "},\"inputs\":[");
    for (size_t i = 0; k >= 0 && i < r->n_inputs; i++) {
        k = status_printf(b, "%s{\"name\":", i ? "," : "");
        if (k >= 0)
            k = status_json_string(b, r->inputs[i].name);
        if (k >= 0)
            k = status_printf(b, ",\"events\":%llu,\"rejected\":%llu}",
                              U(r->inputs[i].events),
                              U(r->inputs[i].rejected));
    }
    if (k >= 0)
        k = status_printf(b,
                          "],\"files_followed\":%llu,\"socket\":{"
                          "\"enabled\":%s,\"open\":%llu,\"connections\":%llu,"
                          "\"refused\":%llu,\"partial_lines\":%llu},"
                          "\"sink\":{\"stream\":",
                          U(r->files_followed),
                          r->socket_enabled ? "true" : "false",
                          U(r->socket_open), U(r->socket_connections),
                          U(r->socket_refused), U(r->socket_partial_lines));
    if (k >= 0)
        k = status_json_string(b, r->stream);
    if (k >= 0)
        k = status_printf(b, ",\"region\":");
    if (k >= 0)
        k = status_json_string(b, r->region);
    if (k >= 0)
        k = status_printf(b,
                          ",\"delivered\":%llu,\"calls\":%llu,"
                          "\"failed_calls\":%llu,\"failed_records\":%llu,"
                          "\"in_flight\":%llu,\"possible_duplicates\":%llu,"
                          "\"last_error\":",
                          U(r->delivered), U(r->calls), U(r->failed_calls),
                          U(r->failed_records), U(r->in_flight),
                          U(r->possible_duplicates));
    if (k >= 0)
        k = status_json_string(b, r->last_error);
    if (k >= 0)
        k = status_printf(b, "},\"reloads\":%llu,\"reload_failures\":%llu}\n",
                          U(r->reloads), U(r->reload_failures));
    return k;
}

enum status_metric_label {
    STATUS_LABEL_NONE,
    STATUS_LABEL_STREAM,
};

/* One metric with a single sample read from the report at offset. */
struct status_metric {
    const char *name;
    const char *type;
    const char *help;
    size_t offset;
    enum status_metric_label label;
};

#define M(n, t, h, f, l) { n, t, h, offsetof(struct status_report, f), l }

static const struct status_metric status_metrics[] = {
    M("aaas_start_time_seconds", "gauge",
      "When the daemon started, in seconds since the epoch.", start_time,
      STATUS_LABEL_NONE),
    M("aaas_events_appended_total", "counter",
      "Events written to the spool, durable or not.", appended,
      STATUS_LABEL_NONE),
    M("aaas_events_accepted_total", "counter",
      "Events durable in the spool.", accepted, STATUS_LABEL_NONE),
    M("aaas_events_rejected_total", "counter",
      "Input lines delivered as reject records.", rejected,
      STATUS_LABEL_NONE),
    M("aaas_spool_bytes", "gauge", "Bytes held in the spool.", spool_bytes,
      STATUS_LABEL_NONE),
    M("aaas_spool_max_bytes", "gauge", "The spool's size limit.",
      spool_max_bytes, STATUS_LABEL_NONE),
    M("aaas_spool_backlog_events", "gauge",
      "Durable events the sink has not acknowledged yet.", spool_backlog,
      STATUS_LABEL_NONE),
    M("aaas_files_followed", "gauge", "Files the file inputs follow.",
      files_followed, STATUS_LABEL_NONE),
    M("aaas_socket_connections_total", "counter",
      "Writers accepted on the event socket.", socket_connections,
      STATUS_LABEL_NONE),
    M("aaas_socket_refused_total", "counter",
      "Writers refused for the connection limit.", socket_refused,
      STATUS_LABEL_NONE),
    M("aaas_socket_partial_lines_total", "counter",
      "Lines cut off by a writer's disconnect.", socket_partial_lines,
      STATUS_LABEL_NONE),
    M("aaas_socket_connections_open", "gauge",
      "Writers connected now.", socket_open, STATUS_LABEL_NONE),
    M("aaas_sink_delivered_events_total", "counter",
      "Events the sink accepted.", delivered, STATUS_LABEL_STREAM),
    M("aaas_sink_calls_total", "counter", "Calls made to the sink.", calls,
      STATUS_LABEL_STREAM),
    M("aaas_sink_failed_calls_total", "counter",
      "Calls that failed as a whole.", failed_calls, STATUS_LABEL_STREAM),
    M("aaas_sink_failed_records_total", "counter",
      "Records the sink refused and that were sent again.", failed_records,
      STATUS_LABEL_STREAM),
    M("aaas_sink_possible_duplicates_total", "counter",
      "Events sent again that may already have arrived.",
      possible_duplicates, STATUS_LABEL_STREAM),
    M("aaas_sink_calls_in_flight", "gauge", "Calls waiting for an answer.",
      in_flight, STATUS_LABEL_STREAM),
    M("aaas_reloads_total", "counter", "Configuration reloads applied.",
      reloads, STATUS_LABEL_NONE),
    M("aaas_reload_failures_total", "counter",
      "Reloads refused for an invalid configuration.", reload_failures,
      STATUS_LABEL_NONE),
};

static int
status_metric_head(struct status_buf *b, const char *name, const char *type,
                   const char *help)
{
    return status_printf(b, "# HELP %s %s\n# TYPE %s %s\n", name, help, name,
                         type);
}

static int
status_format_inputs(const struct status_report *r, struct status_buf *b)
{
    static const char *const names[] = {
        "aaas_input_events_total", "aaas_input_rejected_total",
    };
    static const char *const helps[] = {
        "Lines an input handed to the pipeline.",
        "Lines of an input delivered as reject records.",
    };
    int k = 0;

    for (size_t m = 0; k >= 0 && m < 2; m++) {
        k = status_metric_head(b, names[m], "counter", helps[m]);
        for (size_t i = 0; k >= 0 && i < r->n_inputs; i++) {
            k = status_printf(b, "%s{input=\"", names[m]);
            if (k >= 0)
                k = status_label(b, r->inputs[i].name);
            if (k >= 0)
                k = status_printf(b, "\"} %llu\n",
                                  U(m ? r->inputs[i].rejected
                                      : r->inputs[i].events));
        }
    }
    return k;
}

int
status_format_metrics(const struct status_report *r, struct status_buf *b)
{
    int k;

    k = status_metric_head(b, "aaas_build_info", "gauge",
                           "The daemon's version; the value is always 1.");
    if (k >= 0)
        k = status_printf(b, "aaas_build_info{version=\"");
    if (k >= 0)
        k = status_label(b, r->version);
    if (k >= 0)
        k = status_printf(b, "\"} 1\n");

    for (size_t i = 0; k >= 0 && i < sizeof(status_metrics) /
                                     sizeof(status_metrics[0]); i++) {
        const struct status_metric *m = &status_metrics[i];
        uint64_t v = *(const uint64_t *)((const char *)r + m->offset);

        k = status_metric_head(b, m->name, m->type, m->help);
        if (k < 0)
            break;
        if (m->label == STATUS_LABEL_NONE) {
            k = status_printf(b, "%s %llu\n", m->name, U(v));
            continue;
        }
        k = status_printf(b, "%s{stream=\"", m->name);
        if (k >= 0)
            k = status_label(b, r->stream);
        if (k >= 0)
            k = status_printf(b, "\"} %llu\n", U(v));
    }
    if (k >= 0)
        k = status_metric_head(b, "aaas_spool_full", "gauge",
                               "1 while the spool is full and inputs wait.");
    if (k >= 0)
        k = status_printf(b, "aaas_spool_full %d\n", r->spool_full ? 1 : 0);
    if (k >= 0)
        k = status_format_inputs(r, b);
    return k;
}

static void
status_client_close(struct status_client *c)
{
    c->io = sd_event_source_disable_unref(c->io);
    c->timer = sd_event_source_disable_unref(c->timer);
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
    c->len = 0;
}

static int
status_answer(struct status *s, const char *cmd, struct status_buf *b)
{
    struct status_report rep;

    memset(&rep, 0, sizeof(rep));
    s->opts.report_fn(s->opts.userdata, &rep);
    if (strcmp(cmd, "status") == 0)
        return status_format_text(&rep, b);
    if (strcmp(cmd, "status json") == 0)
        return status_format_json(&rep, b);
    if (strcmp(cmd, "metrics") == 0)
        return status_format_metrics(&rep, b);
    return status_printf(b, "error: unknown command '%.32s'\n", cmd);
}

/*
 * The answer is a few kilobytes, far below a Unix socket's buffer, so the
 * blocking send normally returns at once; a client that does not read is
 * cut off by the send timeout, so the loop waits a second at worst.
 */
static void
status_reply(struct status_client *c)
{
    struct status_buf b = { 0 };
    struct timeval tv = { .tv_sec = 1 };
    size_t off = 0;
    int flags, r;

    r = status_answer(c->owner, c->cmd, &b);
    if (r < 0) {
        log_debug("status: cannot format the answer: %s", strerror(-r));
        goto out;
    }
    flags = fcntl(c->fd, F_GETFL);
    if (flags >= 0)
        (void)fcntl(c->fd, F_SETFL, flags & ~O_NONBLOCK);
    (void)setsockopt(c->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    while (off < b.len) {
        ssize_t n = send(c->fd, b.data + off, b.len - off, MSG_NOSIGNAL);

        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            log_debug("status: client went away: %s", strerror(errno));
            break;
        }
        off += (size_t)n;
    }

out:
    status_buf_done(&b);
    status_client_close(c);
}

static int
status_client_io(sd_event_source *es, int fd, uint32_t revents,
                 void *userdata)
{
    struct status_client *c = userdata;
    char *nl;
    ssize_t n;

    n = read(fd, c->cmd + c->len, sizeof(c->cmd) - 1 - c->len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR))
        return 0;
    if (n <= 0) {
        status_client_close(c);
        return 0;
    }
    c->len += (size_t)n;
    c->cmd[c->len] = '\0';
    nl = strchr(c->cmd, '\n');
    if (!nl && c->len < sizeof(c->cmd) - 1)
        return 0;
    if (nl)
        *nl = '\0';
    status_reply(c);
    return 0;
}

static int
status_client_timeout(sd_event_source *es, uint64_t usec, void *userdata)
{
    status_client_close(userdata);
    return 0;
}

static int
status_accept(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
    struct status *s = userdata;
    struct status_client *c = NULL;
    int cfd, r;

    cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0)
        return 0;
    for (size_t i = 0; i < STATUS_CLIENTS_MAX && !c; i++)
        if (s->clients[i].fd < 0)
            c = &s->clients[i];
    if (!c) {
        log_debug("status: %d clients already connected, refusing one",
                  STATUS_CLIENTS_MAX);
        close(cfd);
        return 0;
    }

    c->fd = cfd;
    r = sd_event_add_io(s->opts.event, &c->io, cfd, EPOLLIN,
                        status_client_io, c);
    if (r >= 0)
        r = sd_event_add_time_relative(s->opts.event, &c->timer,
                                       CLOCK_MONOTONIC, STATUS_CLIENT_USEC,
                                       0, status_client_timeout, c);
    if (r < 0)
        status_client_close(c);
    return 0;
}

/* A leftover socket file nobody listens on is replaced; a live one not. */
static int
status_clear_stale(const struct sockaddr_un *sa)
{
    struct stat st;
    int fd, r = 0;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0)
        r = -EADDRINUSE;
    else if (errno == ECONNREFUSED && lstat(sa->sun_path, &st) == 0 &&
             S_ISSOCK(st.st_mode))
        (void)unlink(sa->sun_path);
    close(fd);
    return r;
}

static int
status_listen(struct status *s)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    mode_t old;
    int r;

    if (strlen(s->path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    memcpy(sa.sun_path, s->path, strlen(s->path) + 1);
    r = status_clear_stale(&sa);
    if (r < 0)
        return r;

    s->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (s->fd < 0)
        return -errno;
    /* Nobody may connect in the moment between bind() and chmod(). */
    old = umask(0177);
    r = bind(s->fd, (const struct sockaddr *)&sa, sizeof(sa));
    umask(old);
    if (r < 0)
        return -errno;
    s->bound = true;
    if (listen(s->fd, STATUS_CLIENTS_MAX) < 0)
        return -errno;
    if (chmod(s->path, s->opts.mode) < 0)
        return -errno;
    if (s->opts.group) {
        struct group *gr = getgrnam(s->opts.group);

        if (!gr)
            return -ENOENT;
        /* The file has our group already; a filter may forbid chown(). */
        if (gr->gr_gid != getegid() &&
            chown(s->path, (uid_t)-1, gr->gr_gid) < 0)
            return -errno;
    }
    return sd_event_add_io(s->opts.event, &s->listen, s->fd, EPOLLIN,
                           status_accept, s);
}

int
status_new(const struct status_options *o, struct status **ret)
{
    struct status *s;
    int r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->opts = *o;
    s->fd = -1;
    for (size_t i = 0; i < STATUS_CLIENTS_MAX; i++) {
        s->clients[i].owner = s;
        s->clients[i].fd = -1;
    }
    s->path = strdup(o->path);
    if (!s->path) {
        r = -ENOMEM;
        goto out;
    }
    s->opts.path = s->path;

    r = status_listen(s);
    /* The group is only looked up once, and o's strings may go away. */
    s->opts.group = NULL;
    if (r < 0)
        goto out;
    *ret = s;
    return 0;

out:
    status_free(s);
    return r;
}

struct status *
status_free(struct status *s)
{
    if (!s)
        return NULL;
    for (size_t i = 0; i < STATUS_CLIENTS_MAX; i++)
        status_client_close(&s->clients[i]);
    s->listen = sd_event_source_disable_unref(s->listen);
    if (s->fd >= 0)
        close(s->fd);
    if (s->bound)
        (void)unlink(s->path);
    free(s->path);
    free(s);
    return NULL;
}
