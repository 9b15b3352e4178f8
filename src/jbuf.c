/* SPDX-License-Identifier: MIT */
/*
 * The JSON text writer the input parsers share: a reusable buffer and a
 * string escaper.  What goes into the text is the parsers' business.
 */
#include "jbuf.h"

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>

void
jbuf_done(struct jbuf *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

int
jbuf_grow(struct jbuf *b, size_t need)
{
    size_t cap = b->cap ? b->cap : 1024;
    char *p;

    while (cap < need) {
        if (cap > SIZE_MAX / 2)
            return -ENOMEM;
        cap *= 2;
    }
    p = realloc(b->buf, cap);
    if (!p)
        return -ENOMEM;
    b->buf = p;
    b->cap = cap;
    return 0;
}

int
jbuf_put_string(struct jbuf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    char *o;
    int r;

    /* Worst case: every byte a control character, 6 bytes each. */
    r = jbuf_reserve(b, n * 6 + 2);
    if (r < 0)
        return r;
    o = b->buf + b->len;
    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = p[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':  *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->buf);
    return 0;
}

int
jbuf_put_u64(struct jbuf *b, unsigned long long v)
{
    char tmp[24];
    size_t n = 0;

    do {
        tmp[sizeof(tmp) - 1 - n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return jbuf_put(b, tmp + sizeof(tmp) - n, n);
}
