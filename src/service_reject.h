/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * The line that stands in for a record the service refused for good
 * (InvalidArgumentException for that record): small enough to pass, it
 * says why, names the events it replaces and keeps the head of their
 * bytes, so the spool can move on without losing track of them.
 */

/* Bytes of the refused record kept in "raw". */
#define SERVICE_REJECT_RAW_MAX 512u

struct service_reject {
    const void *record;         /* the refused record's bytes */
    size_t record_len;
    uint64_t first_seq;         /* the events it held */
    uint64_t last_seq;
    size_t n_events;
    const char *error_code;     /* the service's, may be "" */
    const char *error_message;
};

/*
 * Builds the line (NUL-terminated, malloc'd) of at most max_len bytes; the
 * raw head and then the message are left out when the full line would be
 * longer.  Returns 0, -ENOSPC when not even the bare line fits, -ENOMEM.
 *
 *     {"_aaas_reject":{"reason":"...","error_code":"...",
 *      "error_message":"...","first_seq":N,"last_seq":M,"events":K,
 *      "bytes":L,"raw":"...","raw_truncated":true},"_aaas":{...}}\n
 *
 * The `_aaas` object is the first event's own (agent, seq, time, source),
 * taken from the record, so that the line keeps its attribution.
 */
int service_reject_build(const struct service_reject *rj, size_t max_len,
                         char **ret, size_t *ret_len);
