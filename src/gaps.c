/* SPDX-License-Identifier: MIT */
/*
 * Bookkeeping of declared gaps (on_full = drop_oldest): which ranges the
 * gap lines still in the spool declare, so that a drop taking such a line
 * declares its range again.  Dropping and appending are the pipeline's.
 */
#include "gaps.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define GAPS_PREFIX "{\"_aaas_gap\":{\"first_seq\":"

void
gaps_init(struct gaps *g)
{
    memset(g, 0, sizeof(*g));
}

void
gaps_done(struct gaps *g)
{
    free(g->v);
    gaps_init(g);
}

static int
gaps_push(struct gaps *g, const struct gap_entry *e)
{
    if (g->n == g->cap) {
        size_t cap = g->cap ? g->cap * 2 : 8;
        struct gap_entry *v = realloc(g->v, cap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        g->v = v;
        g->cap = cap;
    }
    g->v[g->n++] = *e;
    return 0;
}

/* Reads the digits after key in [p, end); -EBADMSG without any. */
static int
gaps_number(const char *p, const char *end, const char *key, uint64_t *ret)
{
    size_t klen = strlen(key);
    uint64_t v = 0;
    const char *q;

    q = memmem(p, (size_t)(end - p), key, klen);
    if (!q)
        return -EBADMSG;
    q += klen;
    if (q == end || *q < '0' || *q > '9')
        return -EBADMSG;
    for (; q < end && *q >= '0' && *q <= '9'; q++) {
        if (v > (UINT64_MAX - 9) / 10)
            return -EBADMSG;
        v = v * 10 + (uint64_t)(*q - '0');
    }
    *ret = v;
    return 0;
}

int
gaps_note_line(struct gaps *g, uint64_t seq, const void *data, size_t len)
{
    const char *p = data, *end = p + len, *meta;
    struct gap_entry e = { .line_seq = seq };
    int r;

    if (len < sizeof(GAPS_PREFIX) - 1 ||
        memcmp(p, GAPS_PREFIX, sizeof(GAPS_PREFIX) - 1) != 0)
        return 0;
    /* Only the gap object's own members, not those of `_aaas`. */
    meta = memmem(p, len, "},\"_aaas\":", 10);
    if (meta)
        end = meta;
    r = gaps_number(p, end, "\"first_seq\":", &e.first);
    if (r == 0)
        r = gaps_number(p, end, "\"last_seq\":", &e.last);
    if (r == 0)
        r = gaps_number(p, end, "\"count\":", &e.count);
    if (r < 0 || e.first > e.last || e.last >= seq)
        return -EBADMSG;
    r = gaps_push(g, &e);
    return r < 0 ? r : 1;
}

void
gaps_plan(const struct gaps *g, uint64_t first, uint64_t last,
          uint64_t *ret_first, uint64_t *ret_count)
{
    uint64_t f = first, count = last - first + 1;

    for (size_t i = 0; i < g->n; i++) {
        const struct gap_entry *e = &g->v[i];

        if (e->line_seq < first || e->line_seq > last)
            continue;
        if (e->first < f)
            f = e->first;
        count += e->count;
    }
    *ret_first = f;
    *ret_count = count;
}

int
gaps_commit(struct gaps *g, uint64_t first, uint64_t last, uint64_t line_seq)
{
    struct gap_entry e = { .line_seq = line_seq, .last = last };
    size_t keep = 0;

    gaps_plan(g, first, last, &e.first, &e.count);
    for (size_t i = 0; i < g->n; i++)
        if (g->v[i].line_seq < first || g->v[i].line_seq > last)
            g->v[keep++] = g->v[i];
    g->n = keep;
    return gaps_push(g, &e);
}

void
gaps_delivered(struct gaps *g, uint64_t seq)
{
    size_t keep = 0;

    for (size_t i = 0; i < g->n; i++)
        if (g->v[i].line_seq > seq)
            g->v[keep++] = g->v[i];
    g->n = keep;
}

size_t
gaps_format(char *buf, uint64_t first, uint64_t last, uint64_t count)
{
    int n = snprintf(buf, GAPS_OBJECT_MAX + 1,
                     GAPS_PREFIX "%llu,\"last_seq\":%llu,\"count\":%llu,"
                     "\"reason\":\"spool full\"}}",
                     (unsigned long long)first, (unsigned long long)last,
                     (unsigned long long)count);

    return n < 0 ? 0 : (size_t)n;
}
