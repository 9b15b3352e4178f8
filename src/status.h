/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

/*
 * The control socket aaasctl talks to.  A client sends one command line
 * ("status", "status json" or "metrics"), gets the answer and EOF.  The
 * numbers come from the daemon through report_fn at the time of asking;
 * this module only formats them.
 */
struct status;

struct status_input {
    const char *name;           /* input name, or "socket" */
    uint64_t events;            /* lines taken, rejects included */
    uint64_t rejected;
};

struct status_report {
    const char *version;
    uint64_t start_time;        /* seconds since the epoch */
    uint64_t uptime_sec;

    uint64_t appended;          /* events written to the spool */
    uint64_t accepted;          /* of those, durable */
    uint64_t rejected;          /* delivered as _aaas_reject records */

    uint64_t spool_bytes;
    uint64_t spool_max_bytes;
    uint64_t spool_backlog;     /* durable, not yet acknowledged */
    bool spool_full;
    int spool_error;            /* last write or sync error, 0 if none */

    const struct status_input *inputs;
    size_t n_inputs;
    uint64_t files_followed;

    bool socket_enabled;
    uint64_t socket_connections;
    uint64_t socket_refused;
    uint64_t socket_partial_lines;
    uint64_t socket_open;

    const char *stream;
    const char *region;
    uint64_t delivered;
    uint64_t calls;
    uint64_t failed_calls;
    uint64_t failed_records;
    uint64_t possible_duplicates;
    uint64_t in_flight;
    const char *last_error;     /* "" when none */

    uint64_t reloads;
    uint64_t reload_failures;
};

typedef void (*status_report_fn)(void *userdata, struct status_report *ret);

struct status_options {
    sd_event *event;
    const char *path;
    mode_t mode;
    const char *group;          /* NULL: keep the daemon's group */
    status_report_fn report_fn;
    void *userdata;
};

/* -EADDRINUSE when another process is listening on the path. */
int status_new(const struct status_options *o, struct status **ret);
struct status *status_free(struct status *s);

/*
 * The three answers, as text into buf; each returns 0 or -ENOMEM.  They
 * are public so that the formats can be tested without a socket.
 */
struct status_buf {
    char *data;
    size_t len;
    size_t size;
};

void status_buf_done(struct status_buf *b);
int status_format_text(const struct status_report *r, struct status_buf *b);
int status_format_json(const struct status_report *r, struct status_buf *b);
int status_format_metrics(const struct status_report *r,
                          struct status_buf *b);
