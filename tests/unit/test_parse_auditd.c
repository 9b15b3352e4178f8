/* SPDX-License-Identifier: MIT */
/*
 * Tests for the auditd record grouper and the raw wrapper: the JSON each
 * event becomes (checked with yajl, value by value), how records group,
 * when events complete, what is refused and why, and every auditd file
 * of the shared corpus.
 */
#include "parse_auditd.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <yajl/yajl_tree.h>

#include "parse_raw.h"

#ifndef AAAS_SHARED_DIR
#error "AAAS_SHARED_DIR must name the shared test data directory"
#endif

#define SEC 1000000ull

struct ctx {
    struct parse_auditd *p;
    uint64_t now;
    uint64_t offset;
    uint64_t id;
    const char *why;
    yajl_val last;              /* the last event, parsed */
    unsigned events;
};

static int
setup(void **state)
{
    struct ctx *c = calloc(1, sizeof(*c));

    assert_non_null(c);
    c->p = parse_auditd_new(NULL);
    assert_non_null(c->p);
    c->now = 100 * SEC;
    c->id = 1;
    *state = c;
    return 0;
}

static int
teardown(void **state)
{
    struct ctx *c = *state;

    yajl_tree_free(c->last);
    parse_auditd_free(c->p);
    free(c);
    return 0;
}

/* Renders ev, checks it is one JSON object, keeps it in c->last. */
static void
take(struct ctx *c, struct parse_auditd_event *ev)
{
    char err[256], *text;
    const char *json;
    size_t len;

    assert_int_equal(parse_auditd_render(c->p, ev, &json, &len), 0);
    assert_true(len >= 2);
    assert_int_equal(json[0], '{');
    assert_int_equal(json[len - 1], '}');
    text = strndup(json, len);
    assert_non_null(text);
    yajl_tree_free(c->last);
    c->last = yajl_tree_parse(text, err, sizeof(err));
    if (!c->last)
        fail_msg("not JSON (%s): %s", err, text);
    assert_true(YAJL_IS_OBJECT(c->last));
    free(text);
    parse_auditd_drop(c->p, ev);
    c->events++;
}

/* Adds one line; returns what parse_auditd_add() did, taking events. */
static int
add(struct ctx *c, const char *line)
{
    struct parse_auditd_source src = {
        .id = c->id,
        .offset = c->offset,
        .input = "kernel",
        .path = "/var/log/audit/audit.log",
        .timeout_usec = 2 * SEC,
    };
    struct parse_auditd_event *ev = NULL;
    int r;

    c->why = NULL;
    r = parse_auditd_add(c->p, &src, line, strlen(line), c->now, &ev,
                         &c->why);
    if (r == PARSE_AUDITD_COMPLETE)
        take(c, ev);
    if (r != -ENOBUFS)
        c->offset += strlen(line) + 1;
    return r;
}

static const char *
str_at(yajl_val v, const char *const *path)
{
    yajl_val s = yajl_tree_get(v, (const char **)path, yajl_t_string);

    return s ? YAJL_GET_STRING(s) : NULL;
}

/* Member key of record i of the last event, or NULL. */
static const char *
rec(const struct ctx *c, size_t i, const char *key)
{
    const char *recs[] = { "records", NULL };
    const char *k[] = { key, NULL };
    yajl_val a = yajl_tree_get(c->last, recs, yajl_t_array);

    assert_non_null(a);
    if (i >= YAJL_GET_ARRAY(a)->len)
        return NULL;
    return str_at(YAJL_GET_ARRAY(a)->values[i], k);
}

static size_t
n_records(const struct ctx *c)
{
    const char *recs[] = { "records", NULL };
    yajl_val a = yajl_tree_get(c->last, recs, yajl_t_array);

    assert_non_null(a);
    return YAJL_GET_ARRAY(a)->len;
}

static long long
serial(const struct ctx *c)
{
    const char *k[] = { "serial", NULL };
    yajl_val v = yajl_tree_get(c->last, k, yajl_t_number);

    assert_non_null(v);
    return YAJL_GET_INTEGER(v);
}

static const char *
top(const struct ctx *c, const char *key)
{
    const char *k[] = { key, NULL };

    return str_at(c->last, k);
}

static void
test_execve_event(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(add(c, "type=SYSCALL msg=audit(1492037291.036:59): arch=c000003e syscall=59 success=yes exit=0 a0=1522170 items=2 comm=\"grep\" exe=\"/usr/bin/grep\" key=\"user_commands\""),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=EXECVE msg=audit(1492037291.036:59): argc=3 a0=\"grep\" a1=2D2D636F6C6F723D6175746F a2=6D61 a3=6D6 7070696E67"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=CWD msg=audit(1492037291.036:59):  cwd=2F686F6D652F6120622F63"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=PATH msg=audit(1492037291.036:59): item=0 name=\"/usr/bin/grep\" inode=2512"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=PROCTITLE msg=audit(1492037291.036:59): proctitle=67726570002D2D636F6C6F723D6175746F00"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(c->events, 0);
    assert_int_equal(add(c, "type=EOE msg=audit(1492037291.036:59)"),
                     PARSE_AUDITD_COMPLETE);

    assert_string_equal(top(c, "time"), "2017-04-12T22:48:11.036Z");
    assert_int_equal(serial(c), 59);
    assert_null(top(c, "node"));
    /* EOE ends the event but carries nothing to store. */
    assert_int_equal(n_records(c), 5);
    assert_string_equal(rec(c, 0, "type"), "SYSCALL");
    assert_string_equal(rec(c, 0, "a0"), "1522170");    /* not decoded */
    assert_string_equal(rec(c, 0, "exe"), "/usr/bin/grep");
    assert_string_equal(rec(c, 1, "a0"), "grep");
    assert_string_equal(rec(c, 1, "a1"), "--color=auto");
    assert_string_equal(rec(c, 1, "a2"), "ma");
    /* Odd length is no hex; a bare word is kept. */
    assert_string_equal(rec(c, 1, "a3"), "6D6");
    assert_string_equal(rec(c, 1, "words"), "7070696E67");
    assert_string_equal(rec(c, 2, "cwd"), "/home/a b/c");
    assert_string_equal(rec(c, 3, "name"), "/usr/bin/grep");
    assert_string_equal(rec(c, 4, "proctitle"), "grep --color=auto");
    assert_int_equal(parse_auditd_open(c->p), 0);
}

static void
test_interleaved_and_hold(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(add(c, "type=SYSCALL msg=audit(10.000:1): a=1"), 0);
    assert_int_equal(parse_auditd_hold(c->p, 1), 0);
    c->offset = 100;
    assert_int_equal(add(c, "type=SYSCALL msg=audit(10.000:2): b=1"), 0);
    c->offset = 200;
    assert_int_equal(add(c, "type=PATH msg=audit(10.000:1): a=2"), 0);
    assert_int_equal(parse_auditd_open(c->p), 2);
    assert_int_equal(parse_auditd_hold(c->p, 1), 0);
    /* Another file's view is its own. */
    assert_int_equal(parse_auditd_hold(c->p, 2), UINT64_MAX);

    c->offset = 300;
    assert_int_equal(add(c, "type=EOE msg=audit(10.000:1):"),
                     PARSE_AUDITD_COMPLETE);
    assert_int_equal(serial(c), 1);
    assert_int_equal(n_records(c), 2);
    assert_string_equal(rec(c, 1, "a"), "2");
    /* Event 2 still holds its line at 100. */
    assert_int_equal(parse_auditd_hold(c->p, 1), 100);
    assert_int_equal(add(c, "type=EOE msg=audit(10.000:2):"),
                     PARSE_AUDITD_COMPLETE);
    assert_int_equal(parse_auditd_hold(c->p, 1), UINT64_MAX);
    /* An EOE whose event is gone: nothing to emit, nothing held. */
    assert_int_equal(add(c, "type=EOE msg=audit(10.000:2):"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(parse_auditd_open(c->p), 0);
}

static void
test_same_stamp_other_file_or_node(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(add(c, "type=SYSCALL msg=audit(10.000:1): f=1"), 0);
    c->id = 2;
    assert_int_equal(add(c, "type=SYSCALL msg=audit(10.000:1): f=2"), 0);
    assert_int_equal(add(c, "node=n1 type=SYSCALL msg=audit(10.000:1): f=3"),
                     0);
    assert_int_equal(parse_auditd_open(c->p), 3);
    assert_int_equal(add(c, "node=n1 type=EOE msg=audit(10.000:1):"),
                     PARSE_AUDITD_COMPLETE);
    assert_string_equal(top(c, "node"), "n1");
    assert_string_equal(rec(c, 0, "f"), "3");
    assert_int_equal(parse_auditd_open(c->p), 2);
}

static void
test_missing_eoe_times_out(void **state)
{
    struct ctx *c = *state;
    struct parse_auditd_event *ev;

    assert_int_equal(add(c, "type=AVC msg=audit(10.000:7): avc:  denied  { read } for  pid=1 comm=\"cat\""),
                     0);
    assert_int_equal(parse_auditd_deadline(c->p), c->now + 2 * SEC);
    c->now += SEC;
    /* A later record pushes the deadline back. */
    assert_int_equal(add(c, "type=SYSCALL msg=audit(10.000:7): x=1"), 0);
    assert_null(parse_auditd_expired(c->p, c->now + SEC));
    ev = parse_auditd_expired(c->p, c->now + 2 * SEC);
    assert_non_null(ev);
    take(c, ev);
    assert_int_equal(n_records(c), 2);
    assert_string_equal(rec(c, 0, "words"), "avc: denied { read } for");
    assert_string_equal(rec(c, 0, "comm"), "cat");
    assert_int_equal(parse_auditd_deadline(c->p), UINT64_MAX);
}

static void
test_single_record_types(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(add(c, "type=USER_LOGIN msg=audit(1373330716.415:4063): user pid=11998 uid=0 msg='op=login acct=726F6F74 exe=\"/usr/sbin/sshd\" res=failed'"),
                     PARSE_AUDITD_COMPLETE);
    assert_string_equal(rec(c, 0, "words"), "user");
    {
        const char *recs[] = { "records", NULL };
        yajl_val a = yajl_tree_get(c->last, recs, yajl_t_array);
        const char *acct[] = { "msg", "acct", NULL };
        const char *res[] = { "msg", "res", NULL };
        yajl_val r0 = YAJL_GET_ARRAY(a)->values[0];

        assert_string_equal(str_at(r0, acct), "root");
        assert_string_equal(str_at(r0, res), "failed");
    }
    /* Numbered user-space types complete at once too. */
    assert_int_equal(add(c, "type=UNKNOWN[1107] msg=audit(1.000:2): x=y"),
                     PARSE_AUDITD_COMPLETE);
    /* Unknown kernel types wait for their EOE or the timeout. */
    assert_int_equal(add(c, "type=UNKNOWN[1329] msg=audit(1.000:3): x=y"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=BRAND_NEW msg=audit(1.000:4): x=y"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(parse_auditd_open(c->p), 2);
}

static void
test_refused_lines(void **state)
{
    static const struct {
        const char *line;
        const char *why;
    } bad[] = {
        { "", "auditd: empty line" },
        { "# a comment", "auditd: the line does not start with type=" },
        { "type=UNKNOWN[1329] msg=?",
          "auditd: no msg=audit(TIME:SERIAL) stamp after type=" },
        { "type= msg=audit(1.000:1): x", "auditd: type= is empty" },
        { "msg=audit(1.000:1): x",
          "auditd: the line does not start with type=" },
        { "type=SYSCALL msg=audit(1337845201): x",
          "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)" },
        { "type=SYSCALL msg=audit(): x",
          "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)" },
        { "type=SYSCALL msg=audit(1.0001:1): x",
          "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)" },
        { "type=SYSCALL msg=audit(1.000:1",
          "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)" },
        { "type=SYSCALL msg=audit(1.000:99999999999999999999): x",
          "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)" },
        { "type=SYSCALL msg=audit(253402300800.000:1): x",
          "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)" },
        { "type=SYSCALL msg=audit(1.000:1): comm=\"\xff\"",
          "auditd: line holds a NUL byte or is not valid UTF-8" },
        { "node= type=SYSCALL msg=audit(1.000:1):",
          "auditd: node= is empty or longer than 255 bytes" },
    };
    struct ctx *c = *state;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(add(c, bad[i].line), -EBADMSG);
        assert_string_equal(c->why, bad[i].why);
    }
    {
        const char nul[] = "type=SYSCALL msg=audit(1.000:1): a=\0b";
        struct parse_auditd_source src = { .id = 1, .input = "i",
                                           .path = "p" };
        struct parse_auditd_event *ev;
        const char *why = NULL;

        assert_int_equal(parse_auditd_add(c->p, &src, nul, sizeof(nul) - 1,
                                          0, &ev, &why), -EBADMSG);
        assert_string_equal(why,
                            "auditd: line holds a NUL byte or is not valid UTF-8");
    }
    assert_int_equal(parse_auditd_open(c->p), 0);
    assert_int_equal(c->events, 0);
}

static void
test_odd_quoting_and_values(void **state)
{
    struct ctx *c = *state;

    /* A record cut short keeps what it has; quotes inside quotes stay. */
    assert_int_equal(add(c, "type=SERVICE_START msg=audit(1.500:1): pid=1 msg='unit=rsyslog comm=\"systemd\" res=success"),
                     PARSE_AUDITD_COMPLETE);
    {
        const char *recs[] = { "records", NULL };
        const char *unit[] = { "msg", "unit", NULL };
        const char *res[] = { "msg", "res", NULL };
        yajl_val a = yajl_tree_get(c->last, recs, yajl_t_array);

        assert_string_equal(str_at(YAJL_GET_ARRAY(a)->values[0], unit),
                            "rsyslog");
        assert_string_equal(str_at(YAJL_GET_ARRAY(a)->values[0], res),
                            "success");
    }
    assert_string_equal(top(c, "time"), "1970-01-01T00:00:01.500Z");

    assert_int_equal(add(c, "type=SYSCALL msg=audit(1.5:2): a=\"x 'y' \\z\" b='p \"q\"' c=\"open d=1 e= =f g==h"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=EOE msg=audit(1.5:2):"),
                     PARSE_AUDITD_COMPLETE);
    /* One digit of milliseconds is a fraction all the same. */
    assert_string_equal(top(c, "time"), "1970-01-01T00:00:01.500Z");
    assert_string_equal(rec(c, 0, "a"), "x 'y' \\z");
    assert_string_equal(rec(c, 0, "b"), "p \"q\"");
    assert_string_equal(rec(c, 0, "c"), "open d=1 e= =f g==h");

    assert_int_equal(add(c, "type=PATH msg=audit(1.000:3): x=1 e= g==h =f name=ZZ name=00 cwd=C3 comm=6869 key=61016263"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=EOE msg=audit(1.000:3):"),
                     PARSE_AUDITD_COMPLETE);
    assert_string_equal(rec(c, 0, "e"), "");
    assert_string_equal(rec(c, 0, "g"), "=h");
    assert_string_equal(rec(c, 0, "words"), "=f");
    /* A key seen twice is kept under a numbered name. */
    assert_string_equal(rec(c, 0, "name"), "ZZ");
    /* A NUL byte decoded is not text: the hex stays. */
    assert_string_equal(rec(c, 0, "name_2"), "00");
    /* Neither is a lone UTF-8 lead byte. */
    assert_string_equal(rec(c, 0, "cwd"), "C3");
    assert_string_equal(rec(c, 0, "comm"), "hi");
    assert_string_equal(rec(c, 0, "key"), "a\001bc");
}

static void
test_duplicate_keys(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(add(c, "type=USER_CMD msg=audit(1.000:1): type=x a=1 a=2 a_2=3 a=4 words=w bare"),
                     PARSE_AUDITD_COMPLETE);
    assert_string_equal(rec(c, 0, "type"), "USER_CMD");
    assert_string_equal(rec(c, 0, "type_2"), "x");
    assert_string_equal(rec(c, 0, "a"), "1");
    assert_string_equal(rec(c, 0, "a_2"), "2");
    /* A generated name never shadows a key of the record's own. */
    assert_string_equal(rec(c, 0, "a_2_2"), "3");
    assert_string_equal(rec(c, 0, "a_3"), "4");
    assert_string_equal(rec(c, 0, "words"), "w");
    assert_string_equal(rec(c, 0, "words_2"), "bare");
}

static void
test_enriched(void **state)
{
    struct ctx *c = *state;

    assert_int_equal(add(c, "type=SYSCALL msg=audit(1.000:9): arch=c000003e syscall=59 auid=1000 comm=6C73\x1d" "ARCH=x86_64 SYSCALL=execve AUID=\"alice\" comm=6C73"),
                     PARSE_AUDITD_HELD);
    assert_int_equal(add(c, "type=EOE msg=audit(1.000:9):"),
                     PARSE_AUDITD_COMPLETE);
    assert_string_equal(rec(c, 0, "arch"), "c000003e");
    assert_string_equal(rec(c, 0, "ARCH"), "x86_64");
    assert_string_equal(rec(c, 0, "SYSCALL"), "execve");
    assert_string_equal(rec(c, 0, "AUID"), "alice");
    assert_string_equal(rec(c, 0, "comm"), "ls");
    /* The interpreted part is never decoded. */
    assert_string_equal(rec(c, 0, "comm_2"), "6C73");
}

static void
test_limits_and_undo(void **state)
{
    struct ctx *c = *state;
    struct parse_auditd_limits l = { .max_open = 2, .max_event = 150 };
    struct parse_auditd_source src = { .id = 1, .input = "i", .path = "p",
                                       .timeout_usec = SEC };
    struct parse_auditd_event *ev = NULL, *oldest;
    const char *why;

    parse_auditd_free(c->p);
    c->p = parse_auditd_new(&l);
    assert_non_null(c->p);

    assert_int_equal(add(c, "type=SYSCALL msg=audit(1.000:1): a=1"), 0);
    assert_int_equal(add(c, "type=SYSCALL msg=audit(1.000:2): a=1"), 0);
    oldest = parse_auditd_oldest(c->p);
    /* A third event must wait until the oldest is out. */
    assert_int_equal(add(c, "type=SYSCALL msg=audit(1.000:3): a=1"),
                     -ENOBUFS);
    assert_int_equal(parse_auditd_open(c->p), 2);
    assert_ptr_equal(parse_auditd_oldest(c->p), oldest);
    take(c, oldest);
    assert_int_equal(serial(c), 1);
    assert_int_equal(add(c, "type=SYSCALL msg=audit(1.000:3): a=1"), 0);

    /* Past max_event the event is emitted and the record starts anew. */
    assert_int_equal(add(c, "type=PATH msg=audit(1.000:2): name=\"/a/long/path/name/that/takes/room\" more=\"and more of it\""),
                     0);
    assert_int_equal(add(c, "type=PATH msg=audit(1.000:2): name=\"/another/long/path/name/of/the/same\""),
                     -ENOBUFS);
    assert_int_equal(parse_auditd_open(c->p), 2);

    /* Undo takes back exactly the completing record. */
    assert_int_equal(parse_auditd_add(c->p, &src,
                                      "type=EOE msg=audit(1.000:3):", 28, 0,
                                      &ev, &why), PARSE_AUDITD_COMPLETE);
    parse_auditd_undo(c->p);
    assert_int_equal(parse_auditd_open(c->p), 2);
    assert_int_equal(parse_auditd_add(c->p, &src,
                                      "type=USER_END msg=audit(1.000:4): x=1",
                                      37, 0, &ev, &why), -ENOBUFS);
    while ((ev = parse_auditd_oldest(c->p)))
        take(c, ev);
    assert_int_equal(parse_auditd_add(c->p, &src,
                                      "type=USER_END msg=audit(1.000:4): x=1",
                                      37, 0, &ev, &why),
                     PARSE_AUDITD_COMPLETE);
    parse_auditd_undo(c->p);
    assert_int_equal(parse_auditd_open(c->p), 0);
    assert_null(parse_auditd_oldest(c->p));
}

static void
test_raw(void **state)
{
    struct jbuf b = { 0 };
    const char *why = NULL;

    assert_int_equal(parse_raw_build(&b, "a \"q\" \\ \t\x01 é", 13, &why), 0);
    assert_int_equal(b.len, strlen("{\"message\":\"a \\\"q\\\" \\\\ \\t\\u0001 é\"}"));
    assert_memory_equal(b.buf, "{\"message\":\"a \\\"q\\\" \\\\ \\t\\u0001 é\"}",
                        b.len);
    assert_int_equal(parse_raw_build(&b, "", 0, &why), 0);
    assert_memory_equal(b.buf, "{\"message\":\"\"}", b.len);
    assert_int_equal(parse_raw_build(&b, "a\0b", 3, &why), -EBADMSG);
    assert_string_equal(why, "raw: line holds a NUL byte or is not valid UTF-8");
    assert_int_equal(parse_raw_build(&b, "\xc3\x28", 2, &why), -EBADMSG);
    jbuf_done(&b);
    (void)state;
}

/* Matches the corpus's own rule: msg=audit(DIGITS.DIGITS:DIGITS). */
static bool
has_stamp(const char *s)
{
    const char *p = strstr(s, "msg=audit(");
    size_t n;

    if (!p)
        return false;
    p += 10;
    n = strspn(p, "0123456789");
    if (n == 0 || p[n] != '.')
        return false;
    p += n + 1;
    n = strspn(p, "0123456789");
    if (n == 0 || p[n] != ':')
        return false;
    p += n + 1;
    n = strspn(p, "0123456789");
    return n > 0 && p[n] == ')';
}

/* Every auditd file of the corpus: one event per distinct stamp. */
static void
test_corpus(void **state)
{
    struct ctx *c = *state;
    char *row = NULL, *line = NULL;
    size_t row_cap = 0, line_cap = 0, files = 0;
    FILE *m;

    m = fopen(AAAS_SHARED_DIR "/corpus/MANIFEST.tsv", "r");
    if (!m)
        skip();
    while (getline(&row, &row_cap, m) > 0) {
        char *cols[16] = { 0 }, path[512], *t = row;
        unsigned stamped_rejects = 0, n = 0;
        struct parse_auditd_event *ev;
        ssize_t len;
        FILE *f;

        /* Empty columns count: no strtok(). */
        while (t && n < 16) {
            cols[n++] = t;
            t = strchr(t, '\t');
            if (t)
                *t++ = '\0';
        }
        if (n < 9 || strncmp(cols[0], "auditd/", 7) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/corpus/%s", AAAS_SHARED_DIR,
                 cols[0]);
        f = fopen(path, "r");
        assert_non_null(f);
        c->events = 0;
        c->id++;
        while ((len = getline(&line, &line_cap, f)) > 0) {
            int r;

            if (line[len - 1] == '\n')
                line[--len] = '\0';
            while ((r = add(c, line)) == -ENOBUFS)
                fail_msg("%s: more than 1024 events open", cols[0]);
            if (r == -EBADMSG && has_stamp(line))
                stamped_rejects++;
        }
        fclose(f);
        while ((ev = parse_auditd_oldest(c->p)))
            take(c, ev);
        /*
         * plaso's selinux.log has records with a stamp but no type on
         * purpose; they come out as rejects, which are delivered too.
         */
        if (c->events + stamped_rejects != (unsigned)atoi(cols[8]))
            fail_msg("%s: %u events and %u stamped rejects, manifest says %s",
                     cols[0], c->events, stamped_rejects, cols[8]);
        if (strcmp(cols[0], "auditd/plaso/selinux.log") != 0)
            assert_int_equal(stamped_rejects, 0);
        files++;
    }
    fclose(m);
    free(row);
    free(line);
    assert_true(files >= 29);
}

/* Spot checks of decoded fields in known corpus events. */
static void
test_corpus_spot_checks(void **state)
{
    struct ctx *c = *state;
    char *line = NULL;
    size_t cap = 0;
    bool seen = false;
    ssize_t len;
    FILE *f;

    f = fopen(AAAS_SHARED_DIR "/corpus/auditd/go-libaudit/auparse/test3.log",
              "r");
    if (!f)
        skip();
    while ((len = getline(&line, &cap, f)) > 0) {
        line[len - 1] = '\0';
        (void)add(c, line);
    }
    fclose(f);
    free(line);
    while (parse_auditd_oldest(c->p)) {
        struct parse_auditd_event *ev = parse_auditd_oldest(c->p);

        take(c, ev);
        if (serial(c) == 194435) {
            assert_string_equal(top(c, "time"), "2016-01-03T00:37:51.394Z");
            assert_string_equal(rec(c, 1, "proctitle"), "sshd: burn [priv]");
            assert_string_equal(rec(c, 0, "comm"), "sshd");
            seen = true;
        }
    }
    assert_true(seen);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_execve_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_interleaved_and_hold, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_same_stamp_other_file_or_node,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_eoe_times_out, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_single_record_types, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_refused_lines, setup, teardown),
        cmocka_unit_test_setup_teardown(test_odd_quoting_and_values, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_duplicate_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enriched, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits_and_undo, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_raw, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corpus, setup, teardown),
        cmocka_unit_test_setup_teardown(test_corpus_spot_checks, setup,
                                        teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
