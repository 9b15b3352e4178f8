/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <string.h>

/*
 * A growable byte buffer for building JSON text.  It is reused from one
 * event to the next, so once warm it allocates nothing.  Every writer
 * reserves its own room and returns -ENOMEM when it cannot.
 */
struct jbuf {
    char *buf;
    size_t len;
    size_t cap;
};

void jbuf_done(struct jbuf *b);
int jbuf_grow(struct jbuf *b, size_t need);

static inline int
jbuf_reserve(struct jbuf *b, size_t more)
{
    if (b->cap - b->len >= more)
        return 0;
    return jbuf_grow(b, b->len + more);
}

static inline int
jbuf_put(struct jbuf *b, const void *p, size_t n)
{
    int r;

    r = jbuf_reserve(b, n);
    if (r < 0)
        return r;
    memcpy(b->buf + b->len, p, n);
    b->len += n;
    return 0;
}

static inline int
jbuf_puts(struct jbuf *b, const char *s)
{
    return jbuf_put(b, s, strlen(s));
}

/*
 * Appends [s, s + n) as a quoted JSON string.  The bytes must already be
 * valid UTF-8; control characters, '"' and '\\' are escaped.
 */
int jbuf_put_string(struct jbuf *b, const char *s, size_t n);

/* Appends an unsigned decimal number. */
int jbuf_put_u64(struct jbuf *b, unsigned long long v);
