/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

/*
 * Checks that a line is exactly one JSON object, without building a tree.
 * The handle is reusable and does no heap allocation per line once warm.
 */
struct parse_json;

/* Used when max_depth is 0: far deeper than any audit event we know of. */
#define PARSE_JSON_MAX_DEPTH_DEFAULT 64

struct parse_json_limits {
    size_t max_depth;           /* nesting of objects and arrays; the
                                 * top-level object counts as 1 */
};

struct parse_json_result {
    size_t close;               /* offset of the object's closing brace */
    bool empty;                 /* the object has no members */
};

/* l may be NULL for the defaults.  Returns NULL only when out of memory. */
struct parse_json *parse_json_new(const struct parse_json_limits *l);
struct parse_json *parse_json_free(struct parse_json *p);

/*
 * Returns 0 and fills *ret when [data, data + len) holds one JSON object,
 * optionally surrounded by blanks (space, tab, CR).  Otherwise returns
 * -EBADMSG and points *reterr_reason at a short text naming the fault and
 * its byte offset; the text lives in the handle until the next call.
 * Top-level members named _aaas, _aaas_seal or _aaas_reject are refused.
 * Returns -ENOMEM, with the reason "out of memory", when a line needs more
 * than the handle's arena and malloc fails; the line may be tried again.
 */
int parse_json_check(struct parse_json *p, const char *data, size_t len,
                     struct parse_json_result *ret,
                     const char **reterr_reason);
