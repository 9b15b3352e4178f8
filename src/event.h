/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "parse_json.h"

struct chain;

/*
 * The delivered form of one event: the writer's bytes with the daemon's
 * `_aaas` member inserted before the closing brace, or a `_aaas_reject`
 * wrapper around input that failed.  One builder is reused for every event.
 */
enum event_kind {
    EVENT_SOURCE_SOCKET,
    EVENT_SOURCE_FILE,
    EVENT_SOURCE_DAEMON,        /* a line of the daemon's own (a gap) */
};

struct event_source {
    enum event_kind kind;
    const char *input;          /* file input name, NULL for the socket */
    const char *path;           /* file path, NULL for the socket */
    bool has_peer;
    pid_t pid;
    uid_t uid;
    gid_t gid;
    /* Looked up from the pid at connect time; NULL when not found. */
    const char *comm;           /* process name, /proc/PID/comm */
    const char *exe;            /* executable, /proc/PID/exe */
    const char *unit;           /* systemd system unit */
    const char *user_unit;      /* systemd user unit */
};

#define EVENT_AGENT_ID_LEN 32   /* hex characters */

struct event_builder {
    char agent[EVENT_AGENT_ID_LEN + 1];
    char *buf;                  /* the line being built, '\n'-terminated */
    size_t len;
    size_t cap;
    time_t time_sec;            /* second whose text is cached below */
    char time_text[24];         /* "2026-12-04T16:38:58" */
    struct chain *chain;        /* not owned; NULL: no chain member */
};

/* The agent id: the machine id hashed for this application. */
int event_agent_id(char ret[static EVENT_AGENT_ID_LEN + 1]);

int event_builder_init(struct event_builder *b, const char *agent);
void event_builder_done(struct event_builder *b);

/*
 * Builds the line for an object that parse_json_check() accepted.  The
 * result is in b->buf / b->len until the next call.  With b->chain set,
 * the line carries its chain hash, pending until chain_commit().
 */
int event_build(struct event_builder *b, const char *data, size_t len,
                const struct parse_json_result *pr, uint64_t seq,
                const struct event_source *src, const struct timespec *now);

/*
 * No sequence number: for a line that is kept on the host, not spooled,
 * and so takes no number from the spool.  `_aaas` then has no "seq".
 */
#define EVENT_SEQ_NONE UINT64_MAX

/*
 * Builds the `_aaas_reject` line for input that failed with reason; seq
 * may be EVENT_SEQ_NONE.
 */
int event_build_reject(struct event_builder *b, const char *data, size_t len,
                       const char *reason, uint64_t seq,
                       const struct event_source *src,
                       const struct timespec *now);

/* True when [s, s + len) is well-formed UTF-8 without NUL bytes. */
bool event_utf8_valid(const char *s, size_t len);
