/* SPDX-License-Identifier: MIT */
/*
 * The daemon's CPU cost of chaining and sealing, per million events of
 * about 500 bytes, and a delivered-looking file for timing verify:
 *
 *   bench_chain [EVENTS [SEAL_EVERY [OUT.jsonl PUB]]]
 *
 * Lines are built once per event as event.c builds them (a 500-byte
 * object plus `_aaas`), linked with chain_link(), and a seal is signed
 * every SEAL_EVERY events (1000).  With OUT, the lines and seals are
 * written there and the public key to PUB, for `aaasctl verify`.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "chain.h"
#include "chain_key.h"

#define BENCH_AGENT "0123456789abcdef0123456789abcdef"

static double
bench_cpu(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Builds line i for seq; returns its length. */
static size_t
bench_line(char *line, size_t cap, unsigned long i, uint64_t seq,
           const char *pad)
{
    return (size_t)snprintf(line, cap,
                            "{\"type\":\"USER_LOGIN\",\"i\":%lu,\"msg\":"
                            "\"%s\",\"_aaas\":{\"agent\":\"" BENCH_AGENT
                            "\",\"seq\":%llu,\"time\":\"2023-11-14T22:13:"
                            "20.000000Z\",\"source\":\"socket\"}}\n", i, pad,
                            (unsigned long long)seq);
}

/*
 * One pass over n events; with c, each is chained and a seal made every
 * `every`.  The cost of chaining is the difference between a pass with
 * and one without, so no clock is read per event.
 */
static int
bench_pass(struct chain *c, const struct chain_key *k, unsigned long n,
           unsigned long every, FILE *out, unsigned long *ret_bytes)
{
    struct timespec now = { .tv_sec = 1700000000 };
    char pad[260], line[1024], seal[CHAIN_SEAL_MAX];
    volatile unsigned long sink = 0;
    uint64_t seq = 1;
    size_t len;

    memset(pad, 'x', sizeof(pad) - 1);
    pad[sizeof(pad) - 1] = '\0';
    *ret_bytes = 0;
    for (unsigned long i = 1; i <= n; i++) {
        len = bench_line(line, sizeof(line), i, seq, pad);
        if (c) {
            if (chain_link(c, line, &len, sizeof(line)) < 0)
                return -1;
            chain_commit(c, seq);
        }
        sink += (unsigned char)line[len / 2];
        *ret_bytes += len + (sink & 0);
        if (out)
            (void)fwrite(line, 1, len, out);
        seq++;
        if (c && (i % every == 0 || i == n)) {
            if (chain_seal(c, k, NULL, seq, &now, seal, &len) < 0)
                return -1;
            chain_seal_commit(c);
            if (out)
                (void)fwrite(seal, 1, len, out);
            seq++;
        }
    }
    return 0;
}

int
main(int argc, char **argv)
{
    unsigned long n = argc > 1 ? strtoul(argv[1], NULL, 10) : 1000000;
    unsigned long every = argc > 2 ? strtoul(argv[2], NULL, 10) : 1000;
    FILE *out = argc > 3 ? fopen(argv[3], "w") : NULL;
    unsigned long bytes;
    double t0, base, full;
    struct chain_key k;
    struct chain c;

    if (argc > 3 && (!out || argc < 5)) {
        fprintf(stderr, "usage: bench_chain [EVENTS [SEAL_EVERY "
                "[OUT.jsonl PUB]]]\n");
        return 2;
    }
    if (n == 0 || every == 0 || chain_init(&c, BENCH_AGENT) < 0 ||
        chain_key_generate(&k, 0, 0) < 0)
        return 1;

    t0 = bench_cpu();
    if (bench_pass(NULL, NULL, n, every, NULL, &bytes) < 0)
        return 1;
    base = bench_cpu() - t0;
    t0 = bench_cpu();
    if (bench_pass(&c, &k, n, every, NULL, &bytes) < 0)
        return 1;
    full = bench_cpu() - t0;

    printf("%lu events of %.0f bytes delivered on average, a seal every "
           "%lu\n", n, (double)bytes / (double)n, every);
    printf("chaining and sealing: %.3f CPU-s per million events (building "
           "the lines alone: %.3f)\n", (full - base) * 1e6 / (double)n,
           base * 1e6 / (double)n);
    if (out) {
        char pub[CHAIN_KEY_PUB_TEXT_MAX];
        struct chain c2;
        FILE *p = fopen(argv[4], "w");

        if (chain_init(&c2, BENCH_AGENT) < 0 ||
            bench_pass(&c2, &k, n, every, out, &bytes) < 0)
            return 1;
        chain_done(&c2);
        chain_key_pub_text(&k, pub);
        if (!p || fprintf(p, "%s\n", pub) < 0 || fclose(p) != 0 ||
            fclose(out) != 0)
            return 1;
    }
    chain_key_done(&k);
    chain_done(&c);
    return 0;
}
