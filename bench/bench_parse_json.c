/* SPDX-License-Identifier: MIT */
/*
 * Times parse_json_check() on real audit lines, and yajl alone on the same
 * lines with its default allocator, so the checker's own cost shows.
 *
 *   bench_parse_json FILE.jsonl [ITERATIONS]
 *
 * The BENCH_LINES_MAX lines of FILE nearest 500 bytes long are checked in
 * turn, ITERATIONS times in all (1000000).
 */
#include "parse_json.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <yajl_parse.h>

#define BENCH_LINES_MAX 16

struct bench_line {
    const char *data;
    size_t len;
};

static double
bench_now(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static char *
bench_read(const char *path, size_t *ret_len)
{
    char *buf = NULL, *n;
    size_t len = 0, cap = 0, got;
    FILE *f;

    f = fopen(path, "rb");
    if (!f)
        return NULL;
    for (;;) {
        if (cap - len < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            n = realloc(buf, cap);
            if (!n)
                break;
            buf = n;
        }
        got = fread(buf + len, 1, cap - len, f);
        len += got;
        if (got == 0)
            break;
    }
    fclose(f);
    *ret_len = len;
    return buf;
}

static size_t
bench_distance(const struct bench_line *l)
{
    return l->len > 500 ? l->len - 500 : 500 - l->len;
}

static int
bench_nearer(const void *a, const void *b)
{
    size_t da = bench_distance(a), db = bench_distance(b);

    return da < db ? -1 : da > db;
}

/* Keeps the non-empty lines nearest 500 bytes, in file order no more. */
static size_t
bench_pick(char *data, size_t len, struct bench_line *lines)
{
    struct bench_line *all = NULL, *n;
    size_t count = 0, cap = 0;
    char *p = data, *end = data + len, *nl;

    for (; p < end; p = nl + 1) {
        nl = memchr(p, '\n', (size_t)(end - p));
        if (!nl)
            nl = end;
        if (nl == p)
            continue;
        if (count == cap) {
            cap = cap ? cap * 2 : 1024;
            n = realloc(all, cap * sizeof(*all));
            if (!n)
                break;
            all = n;
        }
        all[count++] = (struct bench_line){ p, (size_t)(nl - p) };
    }
    qsort(all, count, sizeof(*all), bench_nearer);
    if (count > BENCH_LINES_MAX)
        count = BENCH_LINES_MAX;
    if (count > 0)
        memcpy(lines, all, count * sizeof(*all));
    free(all);
    return count;
}

static int
bench_yajl_number(void *ctx, const char *s, size_t l)
{
    (void)ctx;
    (void)s;
    (void)l;
    return 1;
}

/* What any yajl user pays per line: a handle, one parse, a free. */
static int
bench_yajl_only(const struct bench_line *l)
{
    static const yajl_callbacks cb = { .yajl_number = bench_yajl_number };
    yajl_handle h;
    int ok;

    h = yajl_alloc(&cb, NULL, NULL);
    if (!h)
        return 0;
    /* As the checker runs it: its own scan does the UTF-8 work. */
    (void)yajl_config(h, yajl_dont_validate_strings, 1);
    ok = yajl_parse(h, (const unsigned char *)l->data, l->len) ==
         yajl_status_ok;
    yajl_free(h);
    return ok;
}

int
main(int argc, char **argv)
{
    struct bench_line lines[BENCH_LINES_MAX];
    struct parse_json_result res;
    struct parse_json *p;
    unsigned long iters = 1000000, i, okays = 0;
    size_t len, n, bytes = 0, k;
    const char *why = NULL;
    double t0, t1, t2;
    char *data;

    if (argc < 2 || argc > 3) {
        fprintf(stderr, "usage: %s FILE.jsonl [ITERATIONS]\n", argv[0]);
        return 2;
    }
    if (argc == 3)
        iters = strtoul(argv[2], NULL, 10);
    data = bench_read(argv[1], &len);
    if (!data) {
        fprintf(stderr, "bench: cannot read '%s': %s\n", argv[1],
                strerror(errno));
        return 1;
    }
    n = bench_pick(data, len, lines);
    if (n == 0) {
        fprintf(stderr, "bench: no lines in '%s'\n", argv[1]);
        return 1;
    }
    for (k = 0; k < n; k++)
        bytes += lines[k].len;

    p = parse_json_new(NULL);
    if (!p)
        return 1;
    for (k = 0; k < n; k++)
        if (parse_json_check(p, lines[k].data, lines[k].len, &res, &why) < 0) {
            fprintf(stderr, "bench: line refused: %s\n", why);
            return 1;
        }

    t0 = bench_now();
    for (i = 0; i < iters; i++)
        okays += parse_json_check(p, lines[i % n].data, lines[i % n].len,
                                  &res, &why) == 0;
    t1 = bench_now();
    for (i = 0; i < iters; i++)
        okays += (unsigned long)bench_yajl_only(&lines[i % n]);
    t2 = bench_now();

    printf("%zu lines of %.0f bytes on average, %lu checks\n", n,
           (double)bytes / (double)n, iters);
    printf("parse_json_check: %.1f ns/line, %.2f ns/byte\n",
           (t1 - t0) / (double)iters,
           (t1 - t0) / (double)iters / ((double)bytes / (double)n));
    printf("yajl alone:       %.1f ns/line (malloc, no checks)\n",
           (t2 - t1) / (double)iters);
    if (okays != 2 * iters)
        fprintf(stderr, "bench: %lu of %lu checks failed\n",
                2 * iters - okays, 2 * iters);
    parse_json_free(p);
    free(data);
    return okays == 2 * iters ? 0 : 1;
}
