/* SPDX-License-Identifier: MIT */
/*
 * tail on real files in a scratch directory, driven by a real sd-event
 * loop: what lines come out, at which offsets, and where a restart
 * resumes according to the offsets file.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <systemd/sd-event.h>

#include "tail.h"

struct got {
    char *path;
    char *data;
    size_t len;
    uint64_t offset;
    uint64_t seq;
    uint64_t file_id;
    bool truncated;
};

struct ctx {
    char dir[64];
    char state[128];
    char logs[128];
    char pattern[160];
    sd_event *event;
    struct config_input in;
    struct tail *tail;

    struct got *got;
    size_t n_got;
    size_t cap_got;
    uint64_t next_seq;
    long refuse_at;             /* refuse the line when n_got equals this */
    unsigned refused;
    const char *hold_line;      /* tail_hold() from the line with this text */
};

static int
collect(void *userdata, const struct tail_line *l, uint64_t *ret_seq)
{
    struct ctx *c = userdata;
    struct got *g;

    assert_string_equal(l->input, c->in.name);
    if (c->refuse_at >= 0 && c->n_got == (size_t)c->refuse_at) {
        c->refuse_at = -1;
        c->refused++;
        return -EAGAIN;
    }
    if (c->n_got == c->cap_got) {
        c->cap_got = c->cap_got ? 2 * c->cap_got : 64;
        c->got = realloc(c->got, c->cap_got * sizeof(*c->got));
        assert_non_null(c->got);
    }
    g = &c->got[c->n_got++];
    g->path = strdup(l->path);
    g->data = malloc(l->len + 1);
    assert_non_null(g->path);
    assert_non_null(g->data);
    memcpy(g->data, l->data, l->len);
    g->data[l->len] = '\0';
    g->len = l->len;
    g->offset = l->offset;
    g->truncated = l->truncated;
    g->seq = ++c->next_seq;
    *ret_seq = g->seq;
    g->file_id = l->file_id;
    if (c->hold_line && strcmp(g->data, c->hold_line) == 0)
        tail_hold(c->tail, l->file_id, l->offset, g->seq);
    return 0;
}

static void
forget_lines(struct ctx *c)
{
    for (size_t i = 0; i < c->n_got; i++) {
        free(c->got[i].path);
        free(c->got[i].data);
    }
    c->n_got = 0;
}

static uint64_t
now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Runs the loop until n lines arrived or ms passed; true if they did. */
static bool
run_until_lines(struct ctx *c, size_t n, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    while (c->n_got < n && now_ms() < end)
        assert_true(sd_event_run(c->event, 10 * 1000) >= 0);
    return c->n_got >= n;
}

static void
run_for(struct ctx *c, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    while (now_ms() < end)
        assert_true(sd_event_run(c->event, 10 * 1000) >= 0);
}

static bool
run_until_files(struct ctx *c, size_t n, unsigned ms)
{
    uint64_t end = now_ms() + ms;

    while (tail_files(c->tail) != n && now_ms() < end)
        assert_true(sd_event_run(c->event, 10 * 1000) >= 0);
    return tail_files(c->tail) == n;
}

static void
put(const char *path, const char *mode, const char *data, size_t len)
{
    FILE *f = fopen(path, mode);

    assert_non_null(f);
    assert_int_equal(fwrite(data, 1, len, f), len);
    assert_int_equal(fclose(f), 0);
}

static void
puts_file(const char *path, const char *mode, const char *s)
{
    put(path, mode, s, strlen(s));
}

static void
log_path(const struct ctx *c, const char *name, char *buf, size_t size)
{
    assert_true((size_t)snprintf(buf, size, "%s/%s", c->logs, name) < size);
}

static void
start(struct ctx *c)
{
    struct tail_options o = {
        .event = c->event,
        .state_dir = c->state,
        .inputs = &c->in,
        .n_inputs = 1,
        .line_fn = collect,
        .userdata = c,
        .rescan_interval_ms = 100,
    };

    assert_null(c->tail);
    assert_int_equal(tail_new(&o, &c->tail), 0);
}

static void
stop(struct ctx *c)
{
    c->tail = tail_free(c->tail);
}

static void
expect_line(const struct ctx *c, size_t i, const char *data, uint64_t off)
{
    assert_true(i < c->n_got);
    assert_string_equal(c->got[i].data, data);
    assert_int_equal(c->got[i].len, strlen(data));
    assert_int_equal(c->got[i].offset, off);
    assert_false(c->got[i].truncated);
}

/* The record for path in the offsets file: its offset, or -1 if none. */
static int64_t
saved_offset(const struct ctx *c, const char *path)
{
    char file[160], line[1024], input[64], hex[65];
    unsigned long long dev, ino, off;
    int64_t found = -1;
    struct stat st;
    size_t fp_len;
    FILE *f;

    assert_int_equal(stat(path, &st), 0);
    snprintf(file, sizeof(file), "%s/offsets", c->state);
    f = fopen(file, "r");
    if (!f)
        return -1;
    assert_non_null(fgets(line, sizeof(line), f));
    assert_string_equal(line, "aaas-tail-offsets 2\n");
    assert_non_null(fgets(line, sizeof(line), f));
    assert_int_equal(strncmp(line, "seq ", 4), 0);
    while (fgets(line, sizeof(line), f)) {
        assert_int_equal(sscanf(line, "%63s %llu %llu %zu %64s %llu",
                                input, &dev, &ino, &fp_len, hex, &off), 6);
        assert_true(fp_len <= 256);
        assert_int_equal(strlen(hex), 64);
        if (dev == (unsigned long long)st.st_dev &&
            ino == (unsigned long long)st.st_ino &&
            strcmp(input, c->in.name) == 0)
            found = (int64_t)off;
    }
    fclose(f);
    return found;
}

static int
setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    strcpy(c->dir, "/tmp/test_tail.XXXXXX");
    assert_non_null(mkdtemp(c->dir));
    snprintf(c->state, sizeof(c->state), "%s/state", c->dir);
    snprintf(c->logs, sizeof(c->logs), "%s/logs", c->dir);
    snprintf(c->pattern, sizeof(c->pattern), "%s/*.log", c->logs);
    assert_int_equal(mkdir(c->state, 0700), 0);
    assert_int_equal(mkdir(c->logs, 0700), 0);
    assert_int_equal(sd_event_new(&c->event), 0);

    c->in.name = (char *)"app";
    c->in.path = c->pattern;
    c->in.format = CONFIG_FORMAT_JSON;
    c->in.max_line = 1024;
    c->refuse_at = -1;
    *state = c;
    return 0;
}

static int
rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    return remove(path);
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    stop(c);
    forget_lines(c);
    free(c->got);
    sd_event_unref(c->event);
    nftw(c->dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
    free(c);
    return 0;
}

static void
test_lines_in_order(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "a\nbb\n\nccc\n");
    start(c);
    assert_int_equal(tail_files(c->tail), 1);
    assert_true(run_until_lines(c, 4, 2000));
    expect_line(c, 0, "a", 0);
    expect_line(c, 1, "bb", 2);
    expect_line(c, 2, "", 5);
    expect_line(c, 3, "ccc", 6);
    assert_string_equal(c->got[0].path, p);

    puts_file(p, "a", "dddd\n");
    assert_true(run_until_lines(c, 5, 2000));
    expect_line(c, 4, "dddd", 10);
    run_for(c, 100);
    assert_int_equal(c->n_got, 5);
}

static void
test_partial_line_held(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "one\ntw");
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    run_for(c, 300);
    assert_int_equal(c->n_got, 1);
    expect_line(c, 0, "one", 0);

    puts_file(p, "a", "o\nthr");
    assert_true(run_until_lines(c, 2, 2000));
    expect_line(c, 1, "two", 4);
    run_for(c, 100);
    assert_int_equal(c->n_got, 2);
}

static void
test_long_line_truncated(void **state)
{
    struct ctx *c = *state;
    char p[256];

    c->in.max_line = 8;
    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "0123456789abcdef\nshort\n12345678\n123456789\n");
    start(c);
    assert_true(run_until_lines(c, 4, 2000));
    assert_string_equal(c->got[0].data, "01234567");
    assert_int_equal(c->got[0].len, 8);
    assert_int_equal(c->got[0].offset, 0);
    assert_true(c->got[0].truncated);
    expect_line(c, 1, "short", 17);
    expect_line(c, 2, "12345678", 23);    /* exactly max_line: whole */
    assert_string_equal(c->got[3].data, "12345678");
    assert_int_equal(c->got[3].offset, 32);
    assert_true(c->got[3].truncated);
}

/* Lines longer than the 64 KiB first buffer: grown for one that fits
 * max_line, skipped across several reads for one that does not. */
static void
test_long_line_across_reads(void **state)
{
    struct ctx *c = *state;
    size_t fits = 150000, over = 300000;
    char p[256], *big;

    c->in.max_line = 200000;
    log_path(c, "a.log", p, sizeof(p));
    big = malloc(over + 1);
    assert_non_null(big);
    memset(big, 'x', over);
    big[fits] = '\n';
    put(p, "w", big, fits + 1);
    big[fits] = 'y';
    big[over] = '\n';
    put(p, "a", big, over + 1);
    puts_file(p, "a", "after\n");

    start(c);
    assert_true(run_until_lines(c, 3, 5000));
    assert_int_equal(c->got[0].len, fits);
    assert_false(c->got[0].truncated);
    assert_int_equal(c->got[1].len, 200000);
    assert_int_equal(c->got[1].offset, fits + 1);
    assert_true(c->got[1].truncated);
    assert_memory_equal(c->got[1].data, big, 200000);
    expect_line(c, 2, "after", fits + 1 + over + 1);
    free(big);
}

static void
test_restart_resumes_at_durable(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "one\ntwo\nthree\nfour\n");
    start(c);
    assert_true(run_until_lines(c, 4, 2000));
    assert_int_equal(c->got[1].seq, 2);
    tail_durable(c->tail, c->got[1].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 8);
    stop(c);

    forget_lines(c);
    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    run_for(c, 100);
    assert_int_equal(c->n_got, 2);
    expect_line(c, 0, "three", 8);
    expect_line(c, 1, "four", 14);

    /* Everything durable: a third start delivers nothing. */
    tail_durable(c->tail, c->got[1].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 19);
    stop(c);
    forget_lines(c);
    start(c);
    run_for(c, 200);
    assert_int_equal(c->n_got, 0);
    puts_file(p, "a", "five\n");
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "five", 19);
}

/* The periodic save writes only durable offsets, on its own. */
static void
test_periodic_save(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "one\ntwo\n");
    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    run_for(c, 1300);
    assert_int_equal(saved_offset(c, p), 0);
    tail_durable(c->tail, c->got[0].seq);
    run_for(c, 1300);
    assert_int_equal(saved_offset(c, p), 4);
}

static void
test_start_at_end(void **state)
{
    struct ctx *c = *state;
    char p[256], q[256];

    c->in.start_at_end = true;
    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "old1\nold2\nhalf");
    start(c);
    run_for(c, 200);
    assert_int_equal(c->n_got, 0);

    puts_file(p, "a", "-line\nnew\n");
    assert_true(run_until_lines(c, 2, 2000));
    expect_line(c, 0, "half-line", 10);
    expect_line(c, 1, "new", 20);

    /* A file that appears later was written while we watched: from 0. */
    log_path(c, "b.log", q, sizeof(q));
    puts_file(q, "w", "b1\n");
    assert_true(run_until_lines(c, 3, 2000));
    expect_line(c, 2, "b1", 0);
    assert_string_equal(c->got[2].path, q);
}

static void
test_new_file_picked_up(void **state)
{
    struct ctx *c = *state;
    char p[256], q[256];

    start(c);
    assert_int_equal(tail_files(c->tail), 0);
    log_path(c, "other.txt", q, sizeof(q));
    puts_file(q, "w", "not mine\n");
    log_path(c, "later.log", p, sizeof(p));
    puts_file(p, "w", "hello\n");
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "hello", 0);
    assert_string_equal(c->got[0].path, p);
    assert_int_equal(tail_files(c->tail), 1);
    run_for(c, 200);
    assert_int_equal(c->n_got, 1);
}

/* A wildcard in the directory part: no directory watch, rescans find it. */
static void
test_new_file_by_rescan(void **state)
{
    struct ctx *c = *state;
    char d[256], p[300];

    snprintf(c->pattern, sizeof(c->pattern), "%s/*/x.log", c->logs);
    start(c);
    log_path(c, "sub", d, sizeof(d));
    assert_int_equal(mkdir(d, 0700), 0);
    snprintf(p, sizeof(p), "%s/x.log", d);
    puts_file(p, "w", "found\n");
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "found", 0);
}

static void
test_backpressure(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "l1\nl2\nl3\n");
    c->refuse_at = 1;
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    run_for(c, 300);
    assert_int_equal(c->refused, 1);
    assert_int_equal(c->n_got, 1);

    /* New data does not get past a refused line either. */
    puts_file(p, "a", "l4\n");
    run_for(c, 200);
    assert_int_equal(c->n_got, 1);

    tail_resume(c->tail);
    assert_true(run_until_lines(c, 4, 2000));
    expect_line(c, 0, "l1", 0);
    expect_line(c, 1, "l2", 3);
    expect_line(c, 2, "l3", 6);
    expect_line(c, 3, "l4", 9);

    tail_pause(c->tail);
    puts_file(p, "a", "l5\n");
    run_for(c, 300);
    assert_int_equal(c->n_got, 4);
    tail_resume(c->tail);
    assert_true(run_until_lines(c, 5, 2000));
    expect_line(c, 4, "l5", 12);
}

static void
test_truncation_restarts(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "aaaa\nbbbb\n");
    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    tail_durable(c->tail, c->got[1].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 10);

    puts_file(p, "w", "cc\n");
    assert_true(run_until_lines(c, 3, 2000));
    expect_line(c, 2, "cc", 0);
    /* The old offset is meaningless now: nothing of the new contents is
     * durable yet. */
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 0);
    tail_durable(c->tail, c->got[2].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 3);
}

/* Same device and inode, other first bytes: a different file. */
static void
test_identity_fingerprint(void **state)
{
    struct ctx *c = *state;
    char p[256];
    int fd;

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "first file line\nsecond\n");
    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    tail_durable(c->tail, c->got[1].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 23);
    stop(c);
    forget_lines(c);

    /* Rewrite in place, so the inode stays and only the bytes change. */
    fd = open(p, O_WRONLY);
    assert_true(fd >= 0);
    assert_int_equal(pwrite(fd, "OTHER", 5, 0), 5);
    assert_int_equal(close(fd), 0);

    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    expect_line(c, 0, "OTHER file line", 0);
    expect_line(c, 1, "second", 16);
}

/* A file shorter than the fingerprint length grows: still the same file. */
static void
test_identity_short_file_grows(void **state)
{
    struct ctx *c = *state;
    char p[256], line[64];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "short\n");
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    tail_durable(c->tail, c->got[0].seq);
    assert_int_equal(tail_save(c->tail), 0);
    stop(c);
    forget_lines(c);

    for (int i = 0; i < 40; i++) {
        snprintf(line, sizeof(line), "line %02d\n", i);
        puts_file(p, "a", line);
    }
    start(c);
    assert_true(run_until_lines(c, 40, 2000));
    expect_line(c, 0, "line 00", 6);
    expect_line(c, 39, "line 39", 6 + 39 * 8);
}

static void
test_partial_timeout(void **state)
{
    struct ctx *c = *state;
    uint64_t t0;
    char p[256];

    c->in.partial_timeout_ms = 150;
    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "abc\ndef");
    t0 = now_ms();
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "abc", 0);
    assert_true(run_until_lines(c, 2, 2000));
    assert_true(now_ms() - t0 >= 150);
    expect_line(c, 1, "def", 4);

    tail_durable(c->tail, c->got[1].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 7);

    puts_file(p, "a", "ghi\n");
    assert_true(run_until_lines(c, 3, 2000));
    expect_line(c, 2, "ghi", 7);
}

static void
test_deleted_file_read_and_closed(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "x1\n");
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    assert_int_equal(tail_files(c->tail), 1);
    puts_file(p, "a", "x2\nx3");
    assert_int_equal(unlink(p), 0);
    assert_true(run_until_files(c, 0, 2000));
    assert_int_equal(c->n_got, 3);
    expect_line(c, 1, "x2", 3);
    expect_line(c, 2, "x3", 6);
}

/* Renamed within the glob: followed on; renamed out of it: closed. */
static void
test_renamed_file(void **state)
{
    struct ctx *c = *state;
    char p[256], q[256], r[256];

    log_path(c, "a.log", p, sizeof(p));
    log_path(c, "b.log", q, sizeof(q));
    log_path(c, "b.log.1", r, sizeof(r));
    puts_file(p, "w", "r1\n");
    start(c);
    assert_true(run_until_lines(c, 1, 2000));

    assert_int_equal(rename(p, q), 0);
    run_for(c, 300);
    assert_int_equal(tail_files(c->tail), 1);
    puts_file(q, "a", "r2\n");
    assert_true(run_until_lines(c, 2, 2000));
    expect_line(c, 1, "r2", 3);
    assert_string_equal(c->got[1].path, q);

    puts_file(q, "a", "r3\n");
    assert_int_equal(rename(q, r), 0);
    assert_true(run_until_files(c, 0, 2000));
    assert_int_equal(c->n_got, 3);
    expect_line(c, 2, "r3", 6);
}

/*
 * A pipeline holds lines back (auditd records waiting for their event):
 * the offset stops at the first held line, however durable the rest is,
 * and a restart reads from there.
 */
static void
test_hold_keeps_offset(void **state)
{
    struct ctx *c = *state;
    char p[256];

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "one\ntwo\nthree\nfour\n");
    c->hold_line = "two";
    start(c);
    assert_true(run_until_lines(c, 4, 2000));
    tail_durable(c->tail, c->got[3].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 4);

    /* Released up to "four": everything before it is at seq 4. */
    tail_hold(c->tail, c->got[1].file_id, 14, c->got[3].seq);
    tail_durable(c->tail, c->got[3].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 14);
    stop(c);

    forget_lines(c);
    c->hold_line = NULL;
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    run_for(c, 100);
    assert_int_equal(c->n_got, 1);
    expect_line(c, 0, "four", 14);

    /* Released for good, then durable: the end. */
    tail_hold(c->tail, c->got[0].file_id, TAIL_HOLD_NONE, c->got[0].seq);
    tail_durable(c->tail, c->got[0].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 19);
    /* Unknown file ids are ignored. */
    tail_hold(c->tail, 999999, 0, 1);
}

/* A file held open by a pipeline stays known after it is deleted. */
static void
test_hold_outlives_close(void **state)
{
    struct ctx *c = *state;
    char p[256], q[256];

    log_path(c, "a.log", p, sizeof(p));
    log_path(c, "b.log", q, sizeof(q));
    puts_file(p, "w", "one\ntwo\n");
    puts_file(q, "w", "other\n");
    c->hold_line = "two";
    start(c);
    assert_true(run_until_lines(c, 3, 2000));
    c->hold_line = NULL;
    assert_int_equal(unlink(p), 0);
    assert_true(run_until_files(c, 1, 2000));
    tail_durable(c->tail, c->next_seq);
    assert_int_equal(tail_save(c->tail), 0);
    {
        char file[160], text[2048];
        FILE *f;
        size_t n;

        snprintf(file, sizeof(file), "%s/offsets", c->state);
        f = fopen(file, "r");
        assert_non_null(f);
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        /* Its record still says 4: the held line is not safe yet. */
        assert_non_null(strstr(text, " 4 ") ? strstr(text, "a.log") : NULL);
    }
    for (size_t i = 0; i < c->n_got; i++)
        if (strcmp(c->got[i].data, "two") == 0)
            tail_hold(c->tail, c->got[i].file_id, TAIL_HOLD_NONE,
                      c->next_seq);
    tail_durable(c->tail, c->next_seq);
    assert_int_equal(tail_save(c->tail), 0);
    {
        char file[160], text[2048];
        FILE *f;
        size_t n;

        snprintf(file, sizeof(file), "%s/offsets", c->state);
        f = fopen(file, "r");
        assert_non_null(f);
        n = fread(text, 1, sizeof(text) - 1, f);
        fclose(f);
        text[n] = '\0';
        assert_null(strstr(text, "a.log"));
        assert_non_null(strstr(text, "b.log"));
    }
}

/*
 * rename+create rotation: the old file is read on while its writer still
 * appends, and closed only after rotate_wait without growth.
 */
static void
test_rotate_wait(void **state)
{
    struct ctx *c = *state;
    char p[256], r[256];

    log_path(c, "a.log", p, sizeof(p));
    log_path(c, "a.log.1", r, sizeof(r));
    c->in.rotate_wait_ms = 600;
    puts_file(p, "w", "r1\n");
    start(c);
    assert_true(run_until_lines(c, 1, 2000));

    assert_int_equal(rename(p, r), 0);
    puts_file(p, "w", "n1\n");
    run_for(c, 300);
    /* The writer has not reopened yet: its line still arrives. */
    puts_file(r, "a", "r2\npartial");
    assert_true(run_until_lines(c, 3, 2000));
    assert_int_equal(tail_files(c->tail), 2);
    /* The partial line waits for the grace, then is taken at close. */
    assert_true(run_until_lines(c, 4, 3000));
    assert_true(run_until_files(c, 1, 3000));
    {
        bool r2 = false, part = false, n1 = false;

        for (size_t i = 0; i < c->n_got; i++) {
            r2 |= strcmp(c->got[i].data, "r2") == 0;
            /* Lines keep the name they were written under. */
            part |= strcmp(c->got[i].data, "partial") == 0 &&
                    strcmp(c->got[i].path, p) == 0;
            n1 |= strcmp(c->got[i].data, "n1") == 0;
        }
        assert_true(r2 && part && n1);
    }
    assert_int_equal(c->n_got, 4);
}

/*
 * Rotated while we were stopped: the old file, now outside the glob, is
 * found by inode and fingerprint and finished before the new one starts.
 */
static void
test_rotated_while_stopped(void **state)
{
    struct ctx *c = *state;
    char p[256], r[256];

    log_path(c, "a.log", p, sizeof(p));
    log_path(c, "a.log.1", r, sizeof(r));
    puts_file(p, "w", "old1\nold2\n");
    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    tail_durable(c->tail, c->got[0].seq);
    assert_int_equal(tail_save(c->tail), 0);
    stop(c);

    puts_file(p, "a", "old3\n");
    assert_int_equal(rename(p, r), 0);
    puts_file(p, "w", "new1\nnew2\n");
    forget_lines(c);
    start(c);
    assert_true(run_until_lines(c, 4, 2000));
    run_for(c, 200);
    assert_int_equal(c->n_got, 4);
    expect_line(c, 0, "old2", 5);
    expect_line(c, 1, "old3", 10);
    assert_string_equal(c->got[0].path, r);
    expect_line(c, 2, "new1", 0);
    expect_line(c, 3, "new2", 5);
    /* Read to its end and outside the glob: closed. */
    assert_true(run_until_files(c, 1, 2000));
}

/* A symlinked path whose target is swapped: old target finished. */
static void
test_symlink_swap(void **state)
{
    struct ctx *c = *state;
    char t1[256], t2[256], link[256], tmp[256];

    snprintf(t1, sizeof(t1), "%s/t1", c->dir);
    snprintf(t2, sizeof(t2), "%s/t2", c->dir);
    log_path(c, "cur.log", link, sizeof(link));
    log_path(c, "cur.tmp", tmp, sizeof(tmp));
    puts_file(t1, "w", "a1\n");
    assert_int_equal(symlink(t1, link), 0);
    start(c);
    assert_true(run_until_lines(c, 1, 2000));

    puts_file(t1, "a", "a2\n");
    puts_file(t2, "w", "b1\n");
    assert_int_equal(symlink(t2, tmp), 0);
    assert_int_equal(rename(tmp, link), 0);
    assert_true(run_until_lines(c, 3, 3000));
    assert_true(run_until_files(c, 1, 3000));
    run_for(c, 200);
    assert_int_equal(c->n_got, 3);
    {
        bool a2 = false, b1 = false;

        for (size_t i = 1; i < 3; i++) {
            a2 |= strcmp(c->got[i].data, "a2") == 0;
            b1 |= strcmp(c->got[i].data, "b1") == 0;
        }
        assert_true(a2 && b1);
    }
}

/* One busy file must not hold back another. */
static void
test_fairness(void **state)
{
    struct ctx *c = *state;
    size_t n_big = 40000, small_at = SIZE_MAX;
    char p[256], q[256], line[128];
    FILE *f;

    log_path(c, "big.log", p, sizeof(p));
    f = fopen(p, "w");
    assert_non_null(f);
    memset(line, 'b', 99);
    line[99] = '\n';
    for (size_t i = 0; i < n_big; i++)
        assert_int_equal(fwrite(line, 1, 100, f), 100);
    assert_int_equal(fclose(f), 0);
    log_path(c, "a-small.log", q, sizeof(q));
    puts_file(q, "w", "small\n");

    start(c);
    assert_true(run_until_lines(c, n_big + 1, 10000));
    for (size_t i = 0; i < c->n_got; i++)
        if (strcmp(c->got[i].path, q) == 0)
            small_at = i;
    assert_true(small_at < n_big / 4);
    assert_int_equal(c->got[c->n_got - 1].offset, (n_big - 1) * 100);
}

/* The per-file record of lines in flight stays small, yet the durable
 * offset never passes a line that is not durable. */
static void
test_many_lines_durable(void **state)
{
    struct ctx *c = *state;
    size_t n = 5000;
    int64_t off;
    char p[256];
    FILE *f;

    log_path(c, "a.log", p, sizeof(p));
    f = fopen(p, "w");
    assert_non_null(f);
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%07zu\n", i);
    assert_int_equal(fclose(f), 0);

    start(c);
    assert_true(run_until_lines(c, n, 5000));
    tail_durable(c->tail, 2500);
    assert_int_equal(tail_save(c->tail), 0);
    off = saved_offset(c, p);
    /* Coarser than one mark per line, but not by much. */
    assert_true(off >= 2000 * 8 && off <= 2500 * 8);
    assert_int_equal(off % 8, 0);

    tail_durable(c->tail, n);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), (int64_t)n * 8);
}

/* A damaged offsets file costs duplicates, never a failed start. */
static void
test_bad_offsets_file(void **state)
{
    struct ctx *c = *state;
    char p[256], o[256];

    snprintf(o, sizeof(o), "%s/offsets", c->state);
    puts_file(o, "w", "aaas-tail-offsets 1\ngarbage here\n");
    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "z\n");
    start(c);
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "z", 0);
}

/* The marker for everything read so far; the tail must have one. */
static size_t
take_marker(struct ctx *c, char *buf, size_t cap)
{
    size_t len = 0, again = 0;

    assert_int_equal(tail_marker(c->tail, buf, cap, &len), 0);
    assert_true(len > 0 && len < cap);
    assert_int_equal(strncmp(buf, "aaas-tail-marker 1\n", 19), 0);
    /* Nothing moved since: no second marker. */
    assert_int_equal(tail_marker(c->tail, buf + len, cap - len, &again), 0);
    assert_int_equal(again, 0);
    return len;
}

/*
 * A marker moves a file past what the offsets file says, before anything
 * is read; the offsets file records the sequence number it is exact for.
 */
static void
test_apply_marker(void **state)
{
    struct ctx *c = *state;
    char p[256], m[4096];
    size_t len;

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "one\ntwo\nthree\nfour\n");
    start(c);
    assert_true(run_until_lines(c, 4, 2000));
    len = take_marker(c, m, sizeof(m));
    /* Only "one" is durable in the offsets file. */
    tail_durable(c->tail, c->got[0].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 4);
    assert_int_equal(tail_saved_seq(c->tail), c->got[0].seq);
    stop(c);

    /* Without the marker, a restart reads "two" again... */
    forget_lines(c);
    start(c);
    assert_int_equal(tail_saved_seq(c->tail), 1);
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "two", 4);
    stop(c);

    /* ...with it, it goes on after "four". */
    forget_lines(c);
    start(c);
    assert_int_equal(tail_apply_marker(c->tail, m, len), 0);
    run_for(c, 200);
    assert_int_equal(c->n_got, 0);
    puts_file(p, "a", "five\n");
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "five", 19);
    /* Applied positions are saved like any other. */
    tail_durable(c->tail, c->got[0].seq);
    assert_int_equal(tail_save(c->tail), 0);
    assert_int_equal(saved_offset(c, p), 24);
    stop(c);

    /* The file was replaced by other bytes: the marker is not its. */
    forget_lines(c);
    unlink(p);
    puts_file(p, "w", "new\n");
    start(c);
    assert_int_equal(tail_apply_marker(c->tail, m, len), 0);
    assert_true(run_until_lines(c, 1, 2000));
    expect_line(c, 0, "new", 0);

    assert_int_equal(tail_apply_marker(c->tail, "junk\n", 5), -EBADMSG);
    assert_int_equal(tail_apply_marker(c->tail, m, len - 1), -EBADMSG);
}

/* Truncated, then re-read: the newest marker wins over an older one. */
static void
test_apply_marker_after_truncation(void **state)
{
    struct ctx *c = *state;
    char p[256], m1[4096], m2[4096];
    size_t len1, len2;

    log_path(c, "a.log", p, sizeof(p));
    puts_file(p, "w", "first line of the old file\nsecond\n");
    start(c);
    assert_true(run_until_lines(c, 2, 2000));
    len1 = take_marker(c, m1, sizeof(m1));
    assert_int_equal(truncate(p, 0), 0);
    puts_file(p, "w", "x\n");
    assert_true(run_until_lines(c, 3, 3000));
    expect_line(c, 2, "x", 0);
    len2 = take_marker(c, m2, sizeof(m2));
    stop(c);

    puts_file(p, "a", "y\n");
    forget_lines(c);
    start(c);
    assert_int_equal(tail_apply_marker(c->tail, m1, len1), 0);
    assert_int_equal(tail_apply_marker(c->tail, m2, len2), 0);
    assert_true(run_until_lines(c, 1, 2000));
    run_for(c, 100);
    assert_int_equal(c->n_got, 1);
    expect_line(c, 0, "y", 2);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_lines_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_line_held, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_line_truncated, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_long_line_across_reads, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_restart_resumes_at_durable,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_periodic_save, setup, teardown),
        cmocka_unit_test_setup_teardown(test_start_at_end, setup, teardown),
        cmocka_unit_test_setup_teardown(test_new_file_picked_up, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_new_file_by_rescan, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_backpressure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_truncation_restarts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_identity_fingerprint, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_identity_short_file_grows,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_partial_timeout, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_deleted_file_read_and_closed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_renamed_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_fairness, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_lines_durable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_offsets_file, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hold_keeps_offset, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_hold_outlives_close, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rotate_wait, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotated_while_stopped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_symlink_swap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_marker, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apply_marker_after_truncation,
                                        setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
