/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * format = auditd: groups Linux audit records (one per line, raw or
 * ENRICHED) by their msg=audit(TIME:SERIAL) stamp into one JSON object per
 * audit event.  Records are held until their event is complete, so the
 * caller learns per file how far its lines are safe (parse_auditd_hold()).
 * One handle serves every file input; events never mix files.
 */
struct parse_auditd;
struct parse_auditd_event;

struct parse_auditd_limits {
    size_t max_open;            /* events held at once; 0: 1024 */
    size_t max_event;           /* bytes of record JSON per event before
                                 * it is split; 0: 512 KiB */
};

/* Where a line came from; the strings are copied when an event opens. */
struct parse_auditd_source {
    uint64_t id;                /* the file, as tail numbers it */
    uint64_t offset;            /* file offset of the line's first byte */
    const char *input;
    const char *path;
    uint64_t timeout_usec;      /* an event without EOE is complete this
                                 * long after its last record */
};

#define PARSE_AUDITD_HELD       0
#define PARSE_AUDITD_COMPLETE   1

struct parse_auditd *parse_auditd_new(const struct parse_auditd_limits *l);
struct parse_auditd *parse_auditd_free(struct parse_auditd *p);

/*
 * Adds the record on one line (without its '\n').  Returns
 *   PARSE_AUDITD_HELD      the record joined an open event (or was an EOE
 *                          with nothing open): nothing to emit now;
 *   PARSE_AUDITD_COMPLETE  *ret is the event this record completed: render
 *                          it, store it, then parse_auditd_drop() it, or
 *                          parse_auditd_undo() if it could not be stored;
 *   -ENOBUFS               *ret must be emitted and dropped first (too many
 *                          open events, or this one grew too big), then
 *                          the same line added again; nothing was added;
 *   -EBADMSG               the line is not an audit record; the reason
 *                          (static text) names what is wrong; nothing was
 *                          added;
 *   -ENOMEM.
 * now_usec is CLOCK_MONOTONIC, for the timeout.
 */
int parse_auditd_add(struct parse_auditd *p,
                     const struct parse_auditd_source *src,
                     const char *data, size_t len, uint64_t now_usec,
                     struct parse_auditd_event **ret,
                     const char **reterr_reason);

/* Takes back the last parse_auditd_add() that returned COMPLETE. */
void parse_auditd_undo(struct parse_auditd *p);

/*
 * The event's JSON object, valid until the next render or add.  The
 * object is never empty and ends with its closing brace.
 */
int parse_auditd_render(struct parse_auditd *p,
                        struct parse_auditd_event *ev,
                        const char **ret_json, size_t *ret_len);

/* Forgets an event that was stored (or could not be, for ever). */
void parse_auditd_drop(struct parse_auditd *p, struct parse_auditd_event *ev);

/* The oldest open event, or NULL: for shutdown. */
struct parse_auditd_event *parse_auditd_oldest(struct parse_auditd *p);

/* An open event whose timeout has passed at now_usec, or NULL. */
struct parse_auditd_event *parse_auditd_expired(struct parse_auditd *p,
                                                uint64_t now_usec);

/* When the next open event times out; UINT64_MAX when none is open. */
uint64_t parse_auditd_deadline(const struct parse_auditd *p);

/*
 * Offset of the first line of the oldest open event from file id, or
 * UINT64_MAX when none is open: lines before it are all in emitted events.
 */
uint64_t parse_auditd_hold(const struct parse_auditd *p, uint64_t id);

/* The file an event came from, as given to parse_auditd_add(). */
void parse_auditd_event_source(const struct parse_auditd_event *ev,
                               uint64_t *ret_id, const char **ret_input,
                               const char **ret_path);

/* Number of open events, for status and tests. */
size_t parse_auditd_open(const struct parse_auditd *p);
