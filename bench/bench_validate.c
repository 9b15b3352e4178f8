/* SPDX-License-Identifier: MIT */
/*
 * The cost of validation rules per event: the JSON check alone, then the
 * same check with six rules through validate_check(), on 500-byte events
 * that pass every rule (the common case: nothing is built for a reject).
 *
 *   bench/bench_validate [ITERATIONS]     (built by make)
 */
#include "validate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define BENCH_EVENTS 16

static double
bench_now(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

/* An audit-like event of about 500 bytes; i varies values and length. */
static size_t
bench_event(char *buf, size_t size, unsigned i)
{
    int n;

    n = snprintf(buf, size,
                 "{\"time\":\"2026-05-04T10:%02u:%02u.123456Z\","
                 "\"action\":\"user.login\",\"outcome\":\"success\","
                 "\"actor\":{\"id\":\"u%05u\",\"name\":\"user %u\","
                 "\"uid\":%u,\"groups\":[\"wheel\",\"audit\",\"ops\"]},"
                 "\"target\":{\"host\":\"web-%02u.example.internal\","
                 "\"service\":\"sshd\",\"port\":22},"
                 "\"source\":{\"ip\":\"10.%u.%u.%u\",\"port\":%u},"
                 "\"details\":{\"method\":\"publickey\",\"key\":"
                 "\"SHA256:%08x%08x%08x\",\"tty\":\"pts/%u\","
                 "\"session\":%u,\"message\":\"Accepted publickey for "
                 "user %u from 10.%u.%u.%u port %u ssh2\"},"
                 "\"pad\":\"%.*s\"}",
                 i % 60, i % 60, i, i, 1000 + i, i % 100, i % 256,
                 (i * 7) % 256, (i * 13) % 256, 30000 + i, i * 2654435761u,
                 i * 40503u, i ^ 0x5bd1e995u, i % 10, 4000 + i, i, i % 256,
                 (i * 7) % 256, (i * 13) % 256, 30000 + i,
                 (int)(i % 40), "........................................");
    return n > 0 ? (size_t)n : 0;
}

static struct validate *
bench_rules(void)
{
    static const char *const required[] = { "time", "action", "actor.id" };
    static const char *const types[] = {
        "actor.id: string", "actor.uid: integer", "details: object | null",
    };
    struct validate *v = validate_new();
    const char *why;

    if (!v)
        return NULL;
    for (size_t i = 0; i < 3; i++)
        if (validate_add_required(v, required[i], &why) < 0 ||
            validate_add_type(v, types[i], &why) < 0)
            return validate_free(v);
    return v;
}

int
main(int argc, char **argv)
{
    static char events[BENCH_EVENTS][1024];
    size_t lens[BENCH_EVENTS], bytes = 0;
    unsigned long iters = 1000000, i, bad = 0;
    struct parse_json_result res;
    struct parse_json *p;
    struct validate *v;
    const char *why = NULL;
    double t0, t1, t2, plain, rules;

    if (argc > 1)
        iters = strtoul(argv[1], NULL, 10);
    for (unsigned k = 0; k < BENCH_EVENTS; k++) {
        lens[k] = bench_event(events[k], sizeof(events[k]), k * 37 + 11);
        bytes += lens[k];
    }
    p = parse_json_new(NULL);
    v = bench_rules();
    if (!p || !v)
        return 1;
    for (unsigned k = 0; k < BENCH_EVENTS; k++)
        if (validate_check(v, p, events[k], lens[k], &res, &why) < 0) {
            fprintf(stderr, "bench: event %u refused: %s\n", k, why);
            return 1;
        }

    t0 = bench_now();
    for (i = 0; i < iters; i++)
        bad += parse_json_check(p, events[i % BENCH_EVENTS],
                                lens[i % BENCH_EVENTS], &res, &why) != 0;
    t1 = bench_now();
    for (i = 0; i < iters; i++)
        bad += validate_check(v, p, events[i % BENCH_EVENTS],
                              lens[i % BENCH_EVENTS], &res, &why) != 0;
    t2 = bench_now();
    if (bad)
        fprintf(stderr, "bench: %lu checks failed\n", bad);

    plain = (t1 - t0) / (double)iters;
    rules = (t2 - t1) / (double)iters;
    printf("%d events of %.0f bytes on average, %lu checks each way\n",
           BENCH_EVENTS, (double)bytes / BENCH_EVENTS, iters);
    printf("JSON check alone:         %.1f ns/event\n", plain);
    printf("with 3 required, 3 types: %.1f ns/event\n", rules);
    printf("validation costs:         %.1f ns/event, %.3f CPU-s per "
           "million events\n", rules - plain, (rules - plain) / 1e3);
    validate_free(v);
    parse_json_free(p);
    return bad ? 1 : 0;
}
