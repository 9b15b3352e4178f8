/* SPDX-License-Identifier: MIT */
/*
 * Validation rules: compiles required members and member types into a
 * tree of names, and checks events against it through parse_json's hook,
 * in the same pass as the JSON check.  Where a refused event goes is the
 * caller's business.
 */
#include "validate.h"

#include <assert.h>
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define VALIDATE_NONE UINT32_MAX
#define VALIDATE_ROOT 0u

/*
 * One member name on the way down a rule's path.  The root stands for
 * the top-level object; a node is a rule's target when it has types or is
 * required, and only a way to its children otherwise.
 */
struct validate_node {
    char *name;                 /* unescaped, for comparing with keys */
    size_t len;
    char *text;                 /* the path as written, for reasons */
    uint32_t child;             /* first child, VALIDATE_NONE for none */
    uint32_t sibling;           /* next child of the same parent */
    unsigned types;             /* enum validate_type bits, 0: any */
    uint64_t seen;              /* number of the last event it was in */
};

struct validate {
    struct validate_node *nodes;
    uint32_t n_nodes;
    uint32_t cap_nodes;
    uint32_t *required;         /* nodes, in the order they were added */
    uint32_t n_required;
    size_t max_bytes;           /* 0: no limit */
    size_t max_depth;           /* 0: no limit */

    /* State of the event being checked. */
    uint64_t event;             /* counts events, so seen needs no reset */
    uint32_t stack[VALIDATE_DEPTH_MAX + 1];     /* node per open level */
    size_t depth;
    uint32_t pending;           /* the node the last key matched */
    bool failed;                /* reason holds the first fault */

    char reason[VALIDATE_PATH_MAX + 96];
};

static const struct {
    const char *name;
    unsigned bit;
} validate_type_names[] = {
    { "string", VALIDATE_STRING },
    { "number", VALIDATE_NUMBER },
    { "integer", VALIDATE_INTEGER },
    { "boolean", VALIDATE_BOOLEAN },
    { "object", VALIDATE_OBJECT },
    { "array", VALIDATE_ARRAY },
    { "null", VALIDATE_NULL },
};

#define VALIDATE_N_TYPES \
        (sizeof(validate_type_names) / sizeof(validate_type_names[0]))

static int validate_fail(struct validate *v, const char **reterr_reason,
                         const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static int
validate_fail(struct validate *v, const char **reterr_reason,
              const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(v->reason, sizeof(v->reason), fmt, ap);
    va_end(ap);
    if (reterr_reason)
        *reterr_reason = v->reason;
    return -EINVAL;
}

static int
validate_node_add(struct validate *v, uint32_t parent, const char *name,
                  size_t len, uint32_t *ret)
{
    struct validate_node *n;
    uint32_t i;

    if (v->n_nodes == v->cap_nodes) {
        uint32_t cap = v->cap_nodes ? v->cap_nodes * 2 : 8;

        n = realloc(v->nodes, cap * sizeof(*n));
        if (!n)
            return -ENOMEM;
        v->nodes = n;
        v->cap_nodes = cap;
    }
    i = v->n_nodes;
    n = &v->nodes[i];
    memset(n, 0, sizeof(*n));
    n->child = n->sibling = VALIDATE_NONE;
    n->name = malloc(len + 1);
    if (!n->name)
        return -ENOMEM;
    memcpy(n->name, name, len);
    n->name[len] = '\0';
    n->len = len;
    v->n_nodes++;

    if (parent != VALIDATE_NONE) {
        n->sibling = v->nodes[parent].child;
        v->nodes[parent].child = i;
    }
    *ret = i;
    return 0;
}

struct validate *
validate_new(void)
{
    struct validate *v;
    uint32_t root;

    v = calloc(1, sizeof(*v));
    if (!v)
        return NULL;
    if (validate_node_add(v, VALIDATE_NONE, "", 0, &root) < 0)
        return validate_free(v);
    return v;
}

struct validate *
validate_free(struct validate *v)
{
    if (!v)
        return NULL;
    for (uint32_t i = 0; i < v->n_nodes; i++) {
        free(v->nodes[i].name);
        free(v->nodes[i].text);
    }
    free(v->nodes);
    free(v->required);
    free(v);
    return NULL;
}

static uint32_t
validate_find_child(const struct validate *v, uint32_t parent,
                    const char *name, size_t len)
{
    uint32_t i;

    for (i = v->nodes[parent].child; i != VALIDATE_NONE;
         i = v->nodes[i].sibling)
        if (v->nodes[i].len == len && memcmp(v->nodes[i].name, name, len) == 0)
            return i;
    return VALIDATE_NONE;
}

/*
 * Finds or makes the node for path[0, len), which the caller has trimmed,
 * and gives it the path's text for reasons.
 */
static int
validate_path_node(struct validate *v, const char *path, size_t len,
                   uint32_t *ret, const char **reterr_reason)
{
    char name[VALIDATE_PATH_MAX];
    uint32_t node = VALIDATE_ROOT, next;
    size_t i = 0, n;
    int r;

    if (len == 0)
        return validate_fail(v, reterr_reason, "empty member path");
    if (len > VALIDATE_PATH_MAX)
        return validate_fail(v, reterr_reason,
                             "member path '%.40s...' is longer than %d bytes",
                             path, VALIDATE_PATH_MAX);

    for (;;) {
        for (n = 0; i < len && path[i] != '.'; i++) {
            if (path[i] == '\\') {
                if (i + 1 == len || (path[i + 1] != '.' && path[i + 1] != '\\'))
                    return validate_fail(v, reterr_reason,
                                         "in member path '%.*s': '\\' must "
                                         "be followed by '.' or '\\'",
                                         (int)len, path);
                i++;
            }
            name[n++] = path[i];
        }
        if (n == 0)
            return validate_fail(v, reterr_reason,
                                 "empty member name in path '%.*s'",
                                 (int)len, path);
        next = validate_find_child(v, node, name, n);
        if (next == VALIDATE_NONE) {
            r = validate_node_add(v, node, name, n, &next);
            if (r < 0)
                return r;
        }
        node = next;
        if (i == len)
            break;
        i++;
        if (i == len)
            return validate_fail(v, reterr_reason,
                                 "empty member name in path '%.*s'",
                                 (int)len, path);
    }

    if (!v->nodes[node].text) {
        v->nodes[node].text = strndup(path, len);
        if (!v->nodes[node].text)
            return -ENOMEM;
    }
    *ret = node;
    return 0;
}

static bool
validate_blank(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims blanks off [*s, *s + *len). */
static void
validate_trim(const char **s, size_t *len)
{
    while (*len > 0 && validate_blank(**s)) {
        (*s)++;
        (*len)--;
    }
    while (*len > 0 && validate_blank((*s)[*len - 1]))
        (*len)--;
}

int
validate_add_required(struct validate *v, const char *path,
                      const char **reterr_reason)
{
    size_t len = strlen(path);
    uint32_t node, *req;
    int r;

    validate_trim(&path, &len);
    r = validate_path_node(v, path, len, &node, reterr_reason);
    if (r < 0)
        return r;
    for (uint32_t i = 0; i < v->n_required; i++)
        if (v->required[i] == node)
            return 0;
    req = realloc(v->required, (v->n_required + 1) * sizeof(*req));
    if (!req)
        return -ENOMEM;
    v->required = req;
    v->required[v->n_required++] = node;
    return 0;
}

static int
validate_parse_types(struct validate *v, const char *s, size_t len,
                     unsigned *ret, const char **reterr_reason)
{
    unsigned types = 0;
    size_t i = 0, j, n;

    for (;;) {
        const char *word;
        size_t k;

        for (j = i; j < len && s[j] != '|'; j++)
            ;
        word = s + i;
        n = j - i;
        validate_trim(&word, &n);
        if (n == 0)
            return validate_fail(v, reterr_reason,
                                 "missing type name in '%.*s'", (int)len, s);
        for (k = 0; k < VALIDATE_N_TYPES; k++)
            if (strlen(validate_type_names[k].name) == n &&
                memcmp(validate_type_names[k].name, word, n) == 0)
                break;
        if (k == VALIDATE_N_TYPES)
            return validate_fail(v, reterr_reason,
                                 "unknown type '%.*s' (use string, number, "
                                 "integer, boolean, object, array or null)",
                                 n > 32 ? 32 : (int)n, word);
        types |= validate_type_names[k].bit;
        if (j == len)
            break;
        i = j + 1;
    }
    *ret = types;
    return 0;
}

int
validate_add_type(struct validate *v, const char *rule,
                  const char **reterr_reason)
{
    const char *colon = strrchr(rule, ':'), *path = rule;
    size_t len;
    unsigned types = 0;
    uint32_t node;
    int r;

    if (!colon)
        return validate_fail(v, reterr_reason,
                             "'%.*s' is not PATH: TYPE", VALIDATE_PATH_MAX,
                             rule);
    r = validate_parse_types(v, colon + 1, strlen(colon + 1), &types,
                             reterr_reason);
    if (r < 0)
        return r;
    len = (size_t)(colon - rule);
    validate_trim(&path, &len);
    r = validate_path_node(v, path, len, &node, reterr_reason);
    if (r < 0)
        return r;
    v->nodes[node].types = types;
    return 0;
}

void
validate_set_max_bytes(struct validate *v, size_t bytes)
{
    v->max_bytes = bytes;
}

void
validate_set_max_depth(struct validate *v, size_t depth)
{
    v->max_depth = depth;
}

bool
validate_is_empty(const struct validate *v)
{
    return v->n_nodes == 1 && v->max_bytes == 0 && v->max_depth == 0;
}

static const char *
validate_kind_text(enum parse_json_kind kind)
{
    switch (kind) {
    case PARSE_JSON_NULL:
        return "null";
    case PARSE_JSON_BOOLEAN:
        return "a boolean";
    case PARSE_JSON_INTEGER:
    case PARSE_JSON_NUMBER:
        return "a number";
    case PARSE_JSON_STRING:
        return "a string";
    case PARSE_JSON_OBJECT:
        return "an object";
    case PARSE_JSON_ARRAY:
        return "an array";
    }
    return "a value";
}

static bool
validate_accepts(unsigned types, enum parse_json_kind kind)
{
    switch (kind) {
    case PARSE_JSON_NULL:
        return types & VALIDATE_NULL;
    case PARSE_JSON_BOOLEAN:
        return types & VALIDATE_BOOLEAN;
    case PARSE_JSON_INTEGER:
        return types & (VALIDATE_INTEGER | VALIDATE_NUMBER);
    case PARSE_JSON_NUMBER:
        return types & VALIDATE_NUMBER;
    case PARSE_JSON_STRING:
        return types & VALIDATE_STRING;
    case PARSE_JSON_OBJECT:
        return types & VALIDATE_OBJECT;
    case PARSE_JSON_ARRAY:
        return types & VALIDATE_ARRAY;
    }
    return false;
}

/* "number", "string or null", "string, number or null". */
static void
validate_types_text(unsigned types, char *buf, size_t size)
{
    size_t k, len = 0, left = 0, done = 0;

    for (k = 0; k < VALIDATE_N_TYPES; k++)
        if (types & validate_type_names[k].bit)
            left++;
    buf[0] = '\0';
    for (k = 0; k < VALIDATE_N_TYPES && len < size; k++) {
        if (!(types & validate_type_names[k].bit))
            continue;
        len += (size_t)snprintf(buf + len, size - len, "%s%s",
                                done == 0 ? "" :
                                done + 1 == left ? " or " : ", ",
                                validate_type_names[k].name);
        done++;
    }
}

static void
validate_value(struct validate *v, enum parse_json_kind kind)
{
    struct validate_node *n;
    char want[96];

    if (v->pending == VALIDATE_NONE)
        return;
    n = &v->nodes[v->pending];
    v->pending = VALIDATE_NONE;
    n->seen = v->event;
    if (v->failed || n->types == 0 || validate_accepts(n->types, kind))
        return;
    validate_types_text(n->types, want, sizeof(want));
    (void)snprintf(v->reason, sizeof(v->reason),
                   "member '%s' is %s, expected %s", n->text,
                   validate_kind_text(kind), want);
    v->failed = true;
}

static void
validate_on_key(void *ctx, const char *key, size_t len)
{
    struct validate *v = ctx;
    uint32_t top = v->depth > 0 && v->depth <= VALIDATE_DEPTH_MAX + 1
                   ? v->stack[v->depth - 1] : VALIDATE_NONE;

    v->pending = top == VALIDATE_NONE ? VALIDATE_NONE
                                      : validate_find_child(v, top, key, len);
}

static void
validate_on_scalar(void *ctx, enum parse_json_kind kind)
{
    validate_value(ctx, kind);
}

static void
validate_on_open(void *ctx, enum parse_json_kind kind, size_t depth,
                 size_t at)
{
    struct validate *v = ctx;
    uint32_t node = VALIDATE_NONE;

    if (v->max_depth && depth > v->max_depth && !v->failed) {
        (void)snprintf(v->reason, sizeof(v->reason),
                       "nesting deeper than %zu at byte %zu", v->max_depth,
                       at);
        v->failed = true;
    }
    if (depth == 1) {
        node = VALIDATE_ROOT;
    } else if (v->pending != VALIDATE_NONE) {
        if (kind == PARSE_JSON_OBJECT)
            node = v->pending;
        validate_value(v, kind);
    }
    v->pending = VALIDATE_NONE;
    /* The JSON check stops nesting long before the stack would overflow. */
    if (depth <= VALIDATE_DEPTH_MAX + 1)
        v->stack[depth - 1] = node;
    v->depth = depth;
}

static void
validate_on_close(void *ctx)
{
    struct validate *v = ctx;

    v->depth--;
    v->pending = VALIDATE_NONE;
}

int
validate_check(struct validate *v, struct parse_json *p, const char *data,
               size_t len, struct parse_json_result *ret,
               const char **reterr_reason)
{
    const struct parse_json_hook hook = {
        .key_fn = validate_on_key,
        .scalar_fn = validate_on_scalar,
        .open_fn = validate_on_open,
        .close_fn = validate_on_close,
        .ctx = v,
    };
    int r;

    if (!v)
        return parse_json_check(p, data, len, ret, reterr_reason);

    if (v->max_bytes && len > v->max_bytes) {
        (void)snprintf(v->reason, sizeof(v->reason),
                       "event of %zu bytes is over the limit of %zu bytes",
                       len, v->max_bytes);
        if (reterr_reason)
            *reterr_reason = v->reason;
        return -EBADMSG;
    }

    v->event++;
    v->depth = 0;
    v->pending = VALIDATE_NONE;
    v->failed = false;
    r = parse_json_check_with(p, data, len, &hook, ret, reterr_reason);
    if (r < 0)
        return r;

    for (uint32_t i = 0; i < v->n_required && !v->failed; i++) {
        const struct validate_node *n = &v->nodes[v->required[i]];

        if (n->seen != v->event) {
            (void)snprintf(v->reason, sizeof(v->reason),
                           "missing required member '%s'", n->text);
            v->failed = true;
        }
    }
    if (!v->failed)
        return 0;
    if (reterr_reason)
        *reterr_reason = v->reason;
    return -EBADMSG;
}
