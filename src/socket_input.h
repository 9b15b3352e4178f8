/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include <systemd/sd-event.h>

/*
 * The event socket: accepts writers on a Unix stream socket, takes their
 * credentials from the kernel and hands each complete line to the
 * pipeline; writers that ask for it get one reply line per event.
 */
struct socket_input;

struct socket_line {
    const char *data;           /* line bytes, without the '\n' */
    size_t len;
    bool truncated;             /* longer than max_event_size: data holds
                                 * the first max_event_size bytes */
    pid_t pid;                  /* the writer, from SO_PEERCRED */
    uid_t uid;
    gid_t gid;
    /* Found from the pid at connect time, NULL when not found. */
    const char *comm;
    const char *exe;
    const char *unit;
    const char *user_unit;
};

/*
 * Same contract as tail_line_fn: 0 and a sequence number, or -EAGAIN.  On
 * success *reterr_reason is NULL for an accepted event or the reason it
 * was spooled as a reject; the text lives until the next call.
 */
typedef int (*socket_line_fn)(void *userdata, const struct socket_line *l,
                              uint64_t *ret_seq, const char **reterr_reason);

struct socket_input_options {
    sd_event *event;
    const char *path;
    mode_t mode;
    const char *group;          /* NULL: keep the daemon's group */
    unsigned max_connections;
    size_t max_event_size;
    unsigned idle_timeout_ms;   /* close a writer with no complete line
                                 * for this long; 0: never */
    size_t max_buffer;          /* bytes of unfinished lines held across
                                 * all connections before readers wait */
    socket_line_fn line_fn;
    void *userdata;
};

/*
 * Takes a socket passed by systemd for the path when there is one, or
 * creates it.  -EADDRINUSE when another process is listening on it.
 */
int socket_input_new(const struct socket_input_options *o,
                     struct socket_input **ret);
struct socket_input *socket_input_free(struct socket_input *s);

void socket_input_pause(struct socket_input *s);
void socket_input_resume(struct socket_input *s);

/*
 * Everything up to and including seq is on stable storage: writers that
 * asked for acknowledgements get theirs.
 */
void socket_input_durable(struct socket_input *s, uint64_t seq);

/*
 * Before shutdown: reads what every open connection has already sent, so
 * that bytes a writer finished writing are not dropped with the socket.
 * Stops accepting; the listening socket stays open until free.
 */
void socket_input_drain(struct socket_input *s);

struct socket_input_stats {
    uint64_t connections;       /* accepted since start */
    uint64_t refused;           /* over max_connections */
    uint64_t partial_lines;     /* lost to a disconnect mid-line */
    uint64_t idle_closed;       /* closed by idle_timeout */
    uint64_t acks_sent;         /* reply lines written */
    unsigned open;
    size_t buffered;            /* bytes held for unfinished lines */
};

void socket_input_stats(const struct socket_input *s,
                        struct socket_input_stats *ret);
