/* SPDX-License-Identifier: MIT */
/*
 * The JSON line checker: decides whether a line is exactly one JSON object
 * the daemon may extend, and where its closing brace sits.  It builds no
 * tree; what the members mean is left to validate and event.
 */
#include "parse_json.h"

#include <assert.h>
#include <errno.h>
#include <stdalign.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yajl_parse.h>

/*
 * yajl cannot be reset, so every line costs a yajl_alloc() and yajl_free():
 * the handle, its state stack, the lexer and two buffers.  Those come from
 * this arena, which is rewound per line.  A line needs a few hundred bytes
 * plus the largest string holding escapes; 32 KiB covers typical events.
 * What does not fit goes to malloc and is freed by yajl or at the rewind.
 */
#define PARSE_JSON_ARENA_SIZE   (32u * 1024u)

/* Keeps every block aligned for any type yajl stores in it. */
#define PARSE_JSON_ALIGN        alignof(max_align_t)

/* A block's size, and for heap blocks the link in the handle's list. */
struct parse_json_block {
    size_t size;
    struct parse_json_block *next;
    alignas(max_align_t) unsigned char data[];
};

enum parse_json_stop {
    PARSE_JSON_STOP_NONE,
    PARSE_JSON_STOP_NOT_OBJECT,
    PARSE_JSON_STOP_DEPTH,
    PARSE_JSON_STOP_RESERVED,
};

struct parse_json {
    struct parse_json_limits limits;
    yajl_alloc_funcs afs;
    yajl_handle yajl;           /* lives for one line */
    const struct parse_json_hook *hook;     /* for one line, or NULL */

    unsigned char *arena;       /* PARSE_JSON_ARENA_SIZE bytes */
    size_t arena_used;
    struct parse_json_block *arena_last;    /* may grow in place */
    struct parse_json_block *heap;          /* blocks that did not fit */

    /* What the callbacks learnt about the current line. */
    size_t depth;               /* open objects and arrays */
    bool members;               /* the top-level object has a key */
    bool closed;                /* the top-level object's '}' was seen */
    enum parse_json_stop stop;  /* why a callback stopped yajl */
    const char *stop_key;       /* the reserved name, for the reason */
    size_t stop_at;             /* offset of the bracket too deep */

    char reason[160];
};

static size_t
parse_json_round(size_t n)
{
    return (n + PARSE_JSON_ALIGN - 1) & ~(PARSE_JSON_ALIGN - 1);
}

static bool
parse_json_in_arena(const struct parse_json *p,
                    const struct parse_json_block *b)
{
    uintptr_t u = (uintptr_t)b, a = (uintptr_t)p->arena;

    return u >= a && u - a < PARSE_JSON_ARENA_SIZE;
}

static struct parse_json_block *
parse_json_block_of(void *ptr)
{
    return (struct parse_json_block *)
            ((unsigned char *)ptr - offsetof(struct parse_json_block, data));
}

static void *
parse_json_heap_alloc(struct parse_json *p, size_t size)
{
    struct parse_json_block *b;

    if (size > SIZE_MAX - sizeof(*b))
        return NULL;
    b = malloc(sizeof(*b) + size);
    if (!b)
        return NULL;
    b->size = size;
    b->next = p->heap;
    p->heap = b;
    return b->data;
}

static void
parse_json_heap_unlink(struct parse_json *p, struct parse_json_block *b)
{
    struct parse_json_block **pp;

    for (pp = &p->heap; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            return;
        }
    assert(!"block not in the heap list");
}

static void *
parse_json_malloc(void *ctx, size_t size)
{
    struct parse_json *p = ctx;
    struct parse_json_block *b;
    size_t need;

    if (size <= PARSE_JSON_ARENA_SIZE) {
        need = sizeof(*b) + parse_json_round(size);
        if (need <= PARSE_JSON_ARENA_SIZE - p->arena_used) {
            b = (struct parse_json_block *)(p->arena + p->arena_used);
            b->size = size;
            b->next = NULL;
            p->arena_used += need;
            p->arena_last = b;
            return b->data;
        }
    }
    return parse_json_heap_alloc(p, size);
}

static void
parse_json_free_cb(void *ctx, void *ptr)
{
    struct parse_json *p = ctx;
    struct parse_json_block *b;

    if (!ptr)
        return;
    b = parse_json_block_of(ptr);
    if (!parse_json_in_arena(p, b)) {
        parse_json_heap_unlink(p, b);
        free(b);
        return;
    }
    /* Only the newest arena block can be given back before the rewind. */
    if (b == p->arena_last) {
        p->arena_used = (size_t)((unsigned char *)b - p->arena);
        p->arena_last = NULL;
    }
}

static void *
parse_json_realloc(void *ctx, void *ptr, size_t size)
{
    struct parse_json *p = ctx;
    struct parse_json_block *b, *nb;
    size_t start;
    void *n;

    if (!ptr)
        return parse_json_malloc(p, size);
    b = parse_json_block_of(ptr);

    if (!parse_json_in_arena(p, b)) {
        if (size > SIZE_MAX - sizeof(*b))
            return NULL;
        parse_json_heap_unlink(p, b);
        nb = realloc(b, sizeof(*b) + size);
        if (!nb) {
            b->next = p->heap;
            p->heap = b;
            return NULL;
        }
        nb->size = size;
        nb->next = p->heap;
        p->heap = nb;
        return nb->data;
    }

    /* yajl's buffers and state stack grow one at a time: extend in place. */
    start = (size_t)((unsigned char *)b - p->arena);
    if (b == p->arena_last && size <= PARSE_JSON_ARENA_SIZE &&
        sizeof(*b) + parse_json_round(size) <= PARSE_JSON_ARENA_SIZE - start) {
        b->size = size;
        p->arena_used = start + sizeof(*b) + parse_json_round(size);
        return ptr;
    }

    n = parse_json_malloc(p, size);
    if (!n)
        return NULL;
    memcpy(n, ptr, b->size < size ? b->size : size);
    parse_json_free_cb(p, ptr);
    return n;
}

static void
parse_json_rewind(struct parse_json *p)
{
    struct parse_json_block *b;

    while (p->heap) {
        b = p->heap;
        p->heap = b->next;
        free(b);
    }
    p->arena_used = 0;
    p->arena_last = NULL;
}

static int
parse_json_stop(struct parse_json *p, enum parse_json_stop why)
{
    p->stop = why;
    return 0;
}

/* The offset of the single-byte token yajl has just handed to a callback. */
static size_t
parse_json_token_at(const struct parse_json *p)
{
    size_t n = yajl_get_bytes_consumed(p->yajl);

    return n > 0 ? n - 1 : 0;
}

static int
parse_json_open(struct parse_json *p, bool object)
{
    if (p->depth == 0 && !object)
        return parse_json_stop(p, PARSE_JSON_STOP_NOT_OBJECT);
    if (p->depth >= p->limits.max_depth) {
        p->stop_at = parse_json_token_at(p);
        return parse_json_stop(p, PARSE_JSON_STOP_DEPTH);
    }
    p->depth++;
    if (p->hook)
        p->hook->open_fn(p->hook->ctx,
                         object ? PARSE_JSON_OBJECT : PARSE_JSON_ARRAY,
                         p->depth, parse_json_token_at(p));
    return 1;
}

static int
parse_json_on_start_map(void *ctx)
{
    return parse_json_open(ctx, true);
}

static int
parse_json_on_start_array(void *ctx)
{
    return parse_json_open(ctx, false);
}

static int
parse_json_on_end(void *ctx)
{
    struct parse_json *p = ctx;

    /*
     * yajl matches brackets itself, so depth never goes below zero, and the
     * top level is known to be an object by now.
     */
    p->depth--;
    if (p->depth == 0)
        p->closed = true;
    if (p->hook)
        p->hook->close_fn(p->hook->ctx);
    return 1;
}

static int
parse_json_on_key(void *ctx, const unsigned char *key, size_t len)
{
    struct parse_json *p = ctx;

    if (p->hook)
        p->hook->key_fn(p->hook->ctx, (const char *)key, len);
    if (p->depth != 1)
        return 1;
    p->members = true;

    /*
     * yajl hands over the key unescaped, so "_aa\u0061s" is caught too.
     * Duplicate keys are let through: JSON allows them, and the bytes are
     * the writer's own to deliver as written.
     */
    if (len < 5 || key[0] != '_' || memcmp(key, "_aaas", 5) != 0)
        return 1;
    if (len == 5)
        p->stop_key = "_aaas";
    else if (len == 10 && memcmp(key + 5, "_seal", 5) == 0)
        p->stop_key = "_aaas_seal";
    else if (len == 12 && memcmp(key + 5, "_reject", 7) == 0)
        p->stop_key = "_aaas_reject";
    else if (len == 9 && memcmp(key + 5, "_gap", 4) == 0)
        p->stop_key = "_aaas_gap";
    else
        return 1;
    return parse_json_stop(p, PARSE_JSON_STOP_RESERVED);
}

/*
 * Having a number callback keeps yajl from converting numbers, which would
 * refuse integers beyond 64 bits; the digits are delivered as written.
 */
static int
parse_json_on_number(void *ctx, const char *s, size_t len)
{
    struct parse_json *p = ctx;

    if (p->depth == 0)
        return parse_json_stop(p, PARSE_JSON_STOP_NOT_OBJECT);
    if (p->hook) {
        bool integer = !memchr(s, '.', len) && !memchr(s, 'e', len) &&
                       !memchr(s, 'E', len);

        p->hook->scalar_fn(p->hook->ctx, integer ? PARSE_JSON_INTEGER
                                                 : PARSE_JSON_NUMBER);
    }
    return 1;
}

/*
 * The scalars below are only reported with a hook: without one yajl
 * skips them, and strings holding escapes are not even decoded.  A scalar
 * at the top level is left to yajl, as it is without a hook, so that the
 * verdict on the line stays the same.
 */
static int
parse_json_on_scalar(struct parse_json *p, enum parse_json_kind kind)
{
    if (p->depth > 0)
        p->hook->scalar_fn(p->hook->ctx, kind);
    return 1;
}

static int
parse_json_on_null(void *ctx)
{
    return parse_json_on_scalar(ctx, PARSE_JSON_NULL);
}

static int
parse_json_on_boolean(void *ctx, int value)
{
    (void)value;
    return parse_json_on_scalar(ctx, PARSE_JSON_BOOLEAN);
}

static int
parse_json_on_string(void *ctx, const unsigned char *s, size_t len)
{
    (void)s;
    (void)len;
    return parse_json_on_scalar(ctx, PARSE_JSON_STRING);
}

static const yajl_callbacks parse_json_callbacks = {
    .yajl_number = parse_json_on_number,
    .yajl_start_map = parse_json_on_start_map,
    .yajl_map_key = parse_json_on_key,
    .yajl_end_map = parse_json_on_end,
    .yajl_start_array = parse_json_on_start_array,
    .yajl_end_array = parse_json_on_end,
};

static const yajl_callbacks parse_json_hook_callbacks = {
    .yajl_null = parse_json_on_null,
    .yajl_boolean = parse_json_on_boolean,
    .yajl_number = parse_json_on_number,
    .yajl_string = parse_json_on_string,
    .yajl_start_map = parse_json_on_start_map,
    .yajl_map_key = parse_json_on_key,
    .yajl_end_map = parse_json_on_end,
    .yajl_start_array = parse_json_on_start_array,
    .yajl_end_array = parse_json_on_end,
};

struct parse_json *
parse_json_new(const struct parse_json_limits *l)
{
    struct parse_json *p;

    p = calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->arena = malloc(PARSE_JSON_ARENA_SIZE);
    if (!p->arena) {
        free(p);
        return NULL;
    }
    if (l)
        p->limits = *l;
    if (p->limits.max_depth == 0)
        p->limits.max_depth = PARSE_JSON_MAX_DEPTH_DEFAULT;
    p->afs.malloc = parse_json_malloc;
    p->afs.realloc = parse_json_realloc;
    p->afs.free = parse_json_free_cb;
    p->afs.ctx = p;
    return p;
}

struct parse_json *
parse_json_free(struct parse_json *p)
{
    if (!p)
        return NULL;
    parse_json_rewind(p);
    free(p->arena);
    free(p);
    return NULL;
}

/*
 * What a byte scan finds that yajl does not report the way we want: NUL
 * bytes, control characters that yajl takes for blanks between tokens
 * (line feed, vertical tab, form feed), and byte sequences that are not
 * UTF-8 under RFC 3629.  yajl's own UTF-8 check is turned off: it lets
 * overlong forms, surrogates and values past U+10FFFF through.
 */
struct parse_json_scan {
    size_t nul;
    size_t ctl;
    size_t utf8;
};

#define PARSE_JSON_NONE SIZE_MAX

/* Returns the length of the UTF-8 sequence at s, or 0 when it is invalid. */
static size_t
parse_json_utf8_len(const unsigned char *s, size_t left)
{
    unsigned char c = s[0], lo = 0x80, hi = 0xbf;
    size_t n, i;

    if (c >= 0xc2 && c <= 0xdf)
        n = 2;
    else if (c >= 0xe0 && c <= 0xef)
        n = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        n = 4;
    else
        return 0;

    /* The second byte's range rules out overlong forms and surrogates. */
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;

    if (left < n || s[1] < lo || s[1] > hi)
        return 0;
    for (i = 2; i < n; i++)
        if (s[i] < 0x80 || s[i] > 0xbf)
            return 0;
    return n;
}

static void
parse_json_scan(const unsigned char *s, size_t len,
                struct parse_json_scan *ret)
{
    const uint64_t ones = 0x0101010101010101u;
    size_t i = 0, n;
    uint64_t w;
    unsigned char c;

    ret->nul = ret->ctl = ret->utf8 = PARSE_JSON_NONE;
    while (i < len) {
        /*
         * Eight bytes at a time: a byte below 0x20 borrows into its top bit
         * when 0x20 is taken away, a byte from 0x80 up has it already.
         */
        if (len - i >= 8) {
            memcpy(&w, s + i, 8);
            if ((((w - 0x20 * ones) | w) & (0x80 * ones)) == 0) {
                i += 8;
                continue;
            }
        }
        c = s[i];
        if (c >= 0x20 && c < 0x80) {
            i++;
        } else if (c == 0) {
            ret->nul = i;
            return;
        } else if (c < 0x20) {
            if (c != '\t' && c != '\r' && ret->ctl == PARSE_JSON_NONE)
                ret->ctl = i;
            i++;
        } else {
            n = parse_json_utf8_len(s + i, len - i);
            if (n == 0 && ret->utf8 == PARSE_JSON_NONE)
                ret->utf8 = i;
            i += n ? n : 1;
        }
    }
}

static bool
parse_json_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static int
parse_json_fail(struct parse_json *p, const char **reterr_reason,
                const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int
parse_json_fail(struct parse_json *p, const char **reterr_reason,
                const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(p->reason, sizeof(p->reason), fmt, ap);
    va_end(ap);
    if (reterr_reason)
        *reterr_reason = p->reason;
    return -EBADMSG;
}

/*
 * yajl's text reads "lexical error: invalid char in json text.\n"; our
 * reason already says the JSON is invalid, so keep only the middle part.
 *
 * The offset is where yajl stopped: the offending byte for faults inside
 * a string, a number or a literal, and the end of the offending token, or
 * its last byte, for a token out of place.  A byte that can start no token
 * is read before it is refused, so step back onto it.
 */
static int
parse_json_fail_yajl(struct parse_json *p, const char **reterr_reason,
                     size_t at)
{
    unsigned char *e;
    const char *m;
    size_t n;
    int r;

    e = yajl_get_error(p->yajl, 0, NULL, 0);
    if (!e)
        return parse_json_fail(p, reterr_reason, "invalid JSON at byte %zu",
                               at);
    m = (const char *)e;
    if (strncmp(m, "lexical error: ", 15) == 0)
        m += 15;
    else if (strncmp(m, "parse error: ", 13) == 0)
        m += 13;
    n = strlen(m);
    while (n > 0 && (m[n - 1] == '\n' || m[n - 1] == '.'))
        n--;
    if (at > 0 && n == 25 && memcmp(m, "invalid char in json text", n) == 0)
        at--;
    r = parse_json_fail(p, reterr_reason, "invalid JSON at byte %zu: %.*s",
                        at, (int)n, m);
    yajl_free_error(p->yajl, e);
    return r;
}

static int
parse_json_fail_stop(struct parse_json *p, const char **reterr_reason)
{
    switch (p->stop) {
    case PARSE_JSON_STOP_DEPTH:
        return parse_json_fail(p, reterr_reason,
                               "nesting deeper than %zu at byte %zu",
                               p->limits.max_depth, p->stop_at);
    case PARSE_JSON_STOP_RESERVED:
        return parse_json_fail(p, reterr_reason, "reserved member '%s'",
                               p->stop_key);
    case PARSE_JSON_STOP_NOT_OBJECT:
    case PARSE_JSON_STOP_NONE:
        break;
    }
    return parse_json_fail(p, reterr_reason, "not a JSON object");
}

static int
parse_json_fail_ctl(struct parse_json *p, const char **reterr_reason,
                    const char *data, size_t at)
{
    return parse_json_fail(p, reterr_reason,
                           "invalid JSON at byte %zu: control character "
                           "0x%02x outside a string",
                           at, (unsigned char)data[at]);
}

/*
 * Runs yajl over the line.  On success returns 0 and the offset just past
 * the top-level value in *ret_end.  yajl is told to stop there and leave
 * what follows to us, so that only our own notion of blanks applies.
 *
 * yajl refuses control characters inside strings, at their own offset, but
 * skips line feed, vertical tab and form feed between tokens.  One found
 * before the point where yajl gave up is therefore outside a string, and
 * is the first fault in the line.
 */
static int
parse_json_run(struct parse_json *p, const char *data, size_t len,
               size_t ctl, size_t *ret_end, const char **reterr_reason)
{
    yajl_status st;
    size_t end;

    st = yajl_parse(p->yajl, (const unsigned char *)data, len);
    end = yajl_get_bytes_consumed(p->yajl);
    if (st != yajl_status_ok) {
        if (p->stop != PARSE_JSON_STOP_NONE)
            return parse_json_fail_stop(p, reterr_reason);
        if (ctl < end)
            return parse_json_fail_ctl(p, reterr_reason, data, ctl);
        return parse_json_fail_yajl(p, reterr_reason, end);
    }
    if (p->closed) {
        *ret_end = end;
        return 0;
    }

    /*
     * All the input went in and the object is still open, or the line held
     * a scalar that yajl only reports once it knows the value has ended.
     * Whatever yajl finds now, the line stopped short of a whole object.
     */
    st = yajl_complete_parse(p->yajl);
    if (p->stop != PARSE_JSON_STOP_NONE)
        return parse_json_fail_stop(p, reterr_reason);
    if (ctl != PARSE_JSON_NONE)
        return parse_json_fail_ctl(p, reterr_reason, data, ctl);
    if (st != yajl_status_ok || p->depth > 0)
        return parse_json_fail(p, reterr_reason, "truncated JSON");
    return parse_json_fail(p, reterr_reason, "not a JSON object");
}

static int
parse_json_check_line(struct parse_json *p, const char *data, size_t len,
                      struct parse_json_result *ret,
                      const char **reterr_reason)
{
    struct parse_json_scan scan;
    size_t i, end = 0;
    int r;

    for (i = 0; i < len && parse_json_blank(data[i]); i++)
        ;
    if (i == len)
        return parse_json_fail(p, reterr_reason, "empty line");

    parse_json_scan((const unsigned char *)data, len, &scan);
    if (scan.nul != PARSE_JSON_NONE)
        return parse_json_fail(p, reterr_reason, "NUL byte at byte %zu",
                               scan.nul);

    p->yajl = yajl_alloc(p->hook ? &parse_json_hook_callbacks
                                 : &parse_json_callbacks, &p->afs, p);
    if (!p->yajl)
        return -ENOMEM;
    /* Both options are known to yajl 2, so these cannot fail. */
    (void)yajl_config(p->yajl, yajl_allow_trailing_garbage, 1);
    (void)yajl_config(p->yajl, yajl_dont_validate_strings, 1);

    r = parse_json_run(p, data, len, scan.ctl, &end, reterr_reason);
    if (r < 0)
        return r;

    /*
     * Faults in the order they appear.  Bytes from 0x80 up that yajl let
     * through before the end can only be inside strings.
     */
    if (scan.ctl < end)
        return parse_json_fail_ctl(p, reterr_reason, data, scan.ctl);
    if (scan.utf8 < end)
        return parse_json_fail(p, reterr_reason, "invalid UTF-8 at byte %zu",
                               scan.utf8);
    for (i = end; i < len && parse_json_blank(data[i]); i++)
        ;
    if (i < len)
        return parse_json_fail(p, reterr_reason,
                               "trailing data after the object at byte %zu",
                               i);

    assert(end > 0 && data[end - 1] == '}');
    ret->close = end - 1;
    ret->empty = !p->members;
    return 0;
}

int
parse_json_check(struct parse_json *p, const char *data, size_t len,
                 struct parse_json_result *ret, const char **reterr_reason)
{
    return parse_json_check_with(p, data, len, NULL, ret, reterr_reason);
}

int
parse_json_check_with(struct parse_json *p, const char *data, size_t len,
                      const struct parse_json_hook *hook,
                      struct parse_json_result *ret,
                      const char **reterr_reason)
{
    int r;

    assert(p);
    assert(data || len == 0);
    assert(ret);
    assert(!hook || (hook->key_fn && hook->scalar_fn && hook->open_fn &&
                     hook->close_fn));

    p->hook = hook;
    p->depth = 0;
    p->members = false;
    p->closed = false;
    p->stop = PARSE_JSON_STOP_NONE;
    p->stop_key = NULL;
    p->stop_at = 0;
    p->reason[0] = '\0';

    r = parse_json_check_line(p, data, len, ret, reterr_reason);
    if (r == -ENOMEM) {
        (void)snprintf(p->reason, sizeof(p->reason), "out of memory");
        if (reterr_reason)
            *reterr_reason = p->reason;
    }

    if (p->yajl) {
        yajl_free(p->yajl);
        p->yajl = NULL;
    }
    parse_json_rewind(p);
    p->hook = NULL;
    return r;
}
