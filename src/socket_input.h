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
 * pipeline.
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
};

/* Same contract as tail_line_fn: 0 and a sequence number, or -EAGAIN. */
typedef int (*socket_line_fn)(void *userdata, const struct socket_line *l,
                              uint64_t *ret_seq);

struct socket_input_options {
    sd_event *event;
    const char *path;
    mode_t mode;
    const char *group;          /* NULL: keep the daemon's group */
    unsigned max_connections;
    size_t max_event_size;
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

struct socket_input_stats {
    uint64_t connections;       /* accepted since start */
    uint64_t refused;           /* over max_connections */
    uint64_t partial_lines;     /* lost to a disconnect mid-line */
    unsigned open;
};

void socket_input_stats(const struct socket_input *s,
                        struct socket_input_stats *ret);
