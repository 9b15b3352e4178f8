/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "parse_json.h"

/*
 * Validation rules for one scope (the socket, or one file input): members
 * that must be present, the types members may have, and limits on an
 * event's size and nesting.  Rules are compiled once; checking an event
 * is the JSON check's own pass with a hook, without allocation.
 *
 * A member is named by a dotted path from the top-level object: "actor.id"
 * is the member "id" of the object in the member "actor".  A path does not
 * reach into arrays.  In a name, "\." stands for a dot and "\\" for a
 * backslash.
 */
struct validate;

/* Type bits for validate_add_type(); a rule accepts any of its bits. */
enum validate_type {
    VALIDATE_STRING = 1u << 0,
    VALIDATE_NUMBER = 1u << 1,      /* any number, integers included */
    VALIDATE_INTEGER = 1u << 2,     /* written without fraction or exponent */
    VALIDATE_BOOLEAN = 1u << 3,
    VALIDATE_OBJECT = 1u << 4,
    VALIDATE_ARRAY = 1u << 5,
    VALIDATE_NULL = 1u << 6,
};

/* Paths longer than this are refused, so that reasons stay short. */
#define VALIDATE_PATH_MAX 200
/* Nesting limits above the JSON check's own make no difference. */
#define VALIDATE_DEPTH_MAX PARSE_JSON_MAX_DEPTH_DEFAULT

/* Returns NULL only when out of memory.  A new set has no rules. */
struct validate *validate_new(void);
struct validate *validate_free(struct validate *v);

/*
 * Adding a rule returns -EINVAL and points *reterr_reason at a text that
 * says what is wrong with it (valid until the next call on v), or -ENOMEM.
 */
int validate_add_required(struct validate *v, const char *path,
                          const char **reterr_reason);
/*
 * rule is "PATH: TYPE[|TYPE...]" with TYPE one of string, number,
 * integer, boolean, object, array or null; the path ends at the last
 * ':'.  A later rule for the same path replaces the earlier one, so a
 * scope may override a type it inherited.
 */
int validate_add_type(struct validate *v, const char *rule,
                      const char **reterr_reason);
/* 0 leaves the limit off.  depth counts the top-level object as 1. */
void validate_set_max_bytes(struct validate *v, size_t bytes);
void validate_set_max_depth(struct validate *v, size_t depth);

/* True when v has no rule and no limit, so checking it is pointless. */
bool validate_is_empty(const struct validate *v);

/*
 * Checks one line: the JSON check of parse_json_check() on p, and the
 * rules of v (which may be NULL) in the same pass.  Returns 0 and fills
 * *ret as parse_json_check() does, or its errors, or -EBADMSG with a
 * reason naming the rule that failed, such as "missing required member
 * 'actor.id'" or "member 'n' is a string, expected number".  The reason
 * stays valid until the next call on p or v.  A line that is not JSON is
 * refused for that, whatever the rules say; of several broken rules the
 * size limit is reported first, then the first fault in the line, then
 * the first missing member in the order the rules were added.
 */
int validate_check(struct validate *v, struct parse_json *p,
                   const char *data, size_t len,
                   struct parse_json_result *ret,
                   const char **reterr_reason);
