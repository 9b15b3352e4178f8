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
 * Top-level members named _aaas, _aaas_seal, _aaas_reject or _aaas_gap
 * are refused.
 * Returns -ENOMEM, with the reason "out of memory", when a line needs more
 * than the handle's arena and malloc fails; the line may be tried again.
 */
int parse_json_check(struct parse_json *p, const char *data, size_t len,
                     struct parse_json_result *ret,
                     const char **reterr_reason);

/* What a value is, as a hook sees it. */
enum parse_json_kind {
    PARSE_JSON_NULL,
    PARSE_JSON_BOOLEAN,
    PARSE_JSON_INTEGER,         /* a number without fraction or exponent */
    PARSE_JSON_NUMBER,          /* any other number */
    PARSE_JSON_STRING,
    PARSE_JSON_OBJECT,
    PARSE_JSON_ARRAY,
};

/*
 * Told about every token of the line in order, from inside the one pass
 * the check makes, so that rules on members need no tree and no second
 * parse.  The hook only watches: it cannot stop the parse, and what the
 * check decides about the line is exactly what parse_json_check() decides.
 * Once the check fails, the hook's findings mean nothing.  All four
 * functions must be set.
 */
struct parse_json_hook {
    /* A member's name at any depth, unescaped; its value follows. */
    void (*key_fn)(void *ctx, const char *key, size_t len);
    /* A value other than an object or an array. */
    void (*scalar_fn)(void *ctx, enum parse_json_kind kind);
    /* An object or an array opens at byte at; depth counts it already. */
    void (*open_fn)(void *ctx, enum parse_json_kind kind, size_t depth,
                    size_t at);
    /* The innermost open object or array closes. */
    void (*close_fn)(void *ctx);
    void *ctx;
};

/* parse_json_check() with a hook; hook may be NULL. */
int parse_json_check_with(struct parse_json *p, const char *data,
                          size_t len, const struct parse_json_hook *hook,
                          struct parse_json_result *ret,
                          const char **reterr_reason);
