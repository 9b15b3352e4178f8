/* SPDX-License-Identifier: MIT */
/* Tests for event.c: the delivered form of accepted and rejected lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "event.h"
#include "parse_json.h"

static const struct timespec when = { .tv_sec = 1796402338,
                                      .tv_nsec = 123456789 };

static const struct event_source sock = {
    .kind = EVENT_SOURCE_SOCKET,
    .has_peer = true,
    .pid = 4242,
    .uid = 1000,
    .gid = 100,
};

static char *
build(struct event_builder *b, const char *line, uint64_t seq,
      const struct event_source *src)
{
    struct parse_json_limits l = { .max_depth = 64 };
    struct parse_json *p = parse_json_new(&l);
    struct parse_json_result pr;
    const char *why = NULL;
    char *out;

    assert_non_null(p);
    assert_int_equal(parse_json_check(p, line, strlen(line), &pr, &why), 0);
    assert_int_equal(event_build(b, line, strlen(line), &pr, seq, src,
                                 &when), 0);
    out = strndup(b->buf, b->len);
    parse_json_free(p);
    return out;
}

static void
test_socket_event(void **state)
{
    struct event_builder b;
    char *out;

    assert_int_equal(event_builder_init(&b, "0123456789abcdef0123456789abcdef"),
                     0);
    out = build(&b, "{\"actor\":\"alice\",\"n\":1}", 7, &sock);
    assert_string_equal(out,
        "{\"actor\":\"alice\",\"n\":1,\"_aaas\":{\"agent\":"
        "\"0123456789abcdef0123456789abcdef\",\"seq\":7,"
        "\"time\":\"2026-12-04T16:38:58.123456Z\",\"source\":\"socket\","
        "\"peer\":{\"pid\":4242,\"uid\":1000,\"gid\":100}}}\n");
    free(out);
    event_builder_done(&b);
}

/* Names found from the pid are escaped; the ones not found are left out. */
static void
test_socket_peer_names(void **state)
{
    const struct event_source src = {
        .kind = EVENT_SOURCE_SOCKET,
        .has_peer = true,
        .pid = 77,
        .uid = 0,
        .gid = 0,
        .comm = "a\"b\\c\n",
        .exe = "/usr/bin/app",
        .unit = NULL,
        .user_unit = "app@1.service",
    };
    struct event_builder b;
    char *out;

    assert_int_equal(event_builder_init(&b, "0123456789abcdef0123456789abcdef"),
                     0);
    out = build(&b, "{}", 8, &src);
    assert_string_equal(out,
        "{\"_aaas\":{\"agent\":"
        "\"0123456789abcdef0123456789abcdef\",\"seq\":8,"
        "\"time\":\"2026-12-04T16:38:58.123456Z\",\"source\":\"socket\","
        "\"peer\":{\"pid\":77,\"uid\":0,\"gid\":0,"
        "\"comm\":\"a\\\"b\\\\c\\n\",\"exe\":\"/usr/bin/app\","
        "\"user_unit\":\"app@1.service\"}}}\n");
    free(out);
    event_builder_done(&b);
}

static void
test_empty_object_and_blanks(void **state)
{
    struct event_builder b;
    char *out;

    assert_int_equal(event_builder_init(&b, "a"), 0);
    out = build(&b, " { } \t", 1, &sock);
    /* Everything around the member is the writer's, blanks included. */
    assert_string_equal(out,
        " { \"_aaas\":{\"agent\":\"a\",\"seq\":1,"
        "\"time\":\"2026-12-04T16:38:58.123456Z\",\"source\":\"socket\","
        "\"peer\":{\"pid\":4242,\"uid\":1000,\"gid\":100}}} \t\n");
    free(out);
    event_builder_done(&b);
}

static void
test_file_event_escapes_path(void **state)
{
    const struct event_source file = {
        .kind = EVENT_SOURCE_FILE,
        .input = "app",
        .path = "/var/log/a\"b\\c\n.log",
    };
    struct event_builder b;
    char *out;

    assert_int_equal(event_builder_init(&b, "a"), 0);
    out = build(&b, "{\"x\":[1,{\"y\":null}]}", 99, &file);
    assert_string_equal(out,
        "{\"x\":[1,{\"y\":null}],\"_aaas\":{\"agent\":\"a\",\"seq\":99,"
        "\"time\":\"2026-12-04T16:38:58.123456Z\",\"source\":\"file\","
        "\"input\":\"app\",\"path\":\"/var/log/a\\\"b\\\\c\\n.log\"}}\n");
    free(out);
    event_builder_done(&b);
}

static void
test_reject_utf8_and_binary(void **state)
{
    static const char bad[] = "not json \x01 \"q\"";
    static const char bin[] = "{\"a\":\"\xff\xfe\"}";
    struct event_builder b;

    assert_int_equal(event_builder_init(&b, "a"), 0);
    assert_int_equal(event_build_reject(&b, bad, strlen(bad),
                                        "invalid JSON at byte 0", 3, &sock,
                                        &when), 0);
    assert_memory_equal(b.buf,
        "{\"_aaas_reject\":{\"reason\":\"invalid JSON at byte 0\","
        "\"raw\":\"not json \\u0001 \\\"q\\\"\"},\"_aaas\":{", 80);
    assert_int_equal(b.buf[b.len - 1], '\n');

    assert_int_equal(event_build_reject(&b, bin, strlen(bin),
                                        "invalid UTF-8 at byte 6", 4, &sock,
                                        &when), 0);
    /* base64 of {"a":"\xff\xfe"} */
    assert_non_null(strstr(b.buf, "\"raw_base64\":\"eyJhIjoi//4ifQ==\""));
    event_builder_done(&b);
}

/* A reject kept on the host has no spool sequence number. */
static void
test_reject_without_seq(void **state)
{
    struct event_builder b;

    assert_int_equal(event_builder_init(&b, "a"), 0);
    assert_int_equal(event_build_reject(&b, "{\"n\":1}", 7,
                                        "member 'n' is a number, expected "
                                        "string", EVENT_SEQ_NONE, &sock,
                                        &when), 0);
    assert_true(b.len < b.cap);
    b.buf[b.len] = '\0';
    assert_string_equal(b.buf,
        "{\"_aaas_reject\":{\"reason\":\"member 'n' is a number, expected "
        "string\",\"raw\":\"{\\\"n\\\":1}\"},\"_aaas\":{\"agent\":\"a\","
        "\"time\":\"2026-12-04T16:38:58.123456Z\",\"source\":\"socket\","
        "\"peer\":{\"pid\":4242,\"uid\":1000,\"gid\":100}}}\n");
    event_builder_done(&b);
}

static void
test_utf8_validator(void **state)
{
    assert_true(event_utf8_valid("plain", 5));
    assert_true(event_utf8_valid("\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80", 9));
    assert_false(event_utf8_valid("\xc0\xaf", 2));          /* overlong */
    assert_false(event_utf8_valid("\xed\xa0\x80", 3));      /* surrogate */
    assert_false(event_utf8_valid("\xf4\x90\x80\x80", 4));  /* > U+10FFFF */
    assert_false(event_utf8_valid("\xe2\x82", 2));          /* cut short */
    assert_false(event_utf8_valid("a\0b", 3));              /* NUL */
}

static void
test_agent_id(void **state)
{
    char id[EVENT_AGENT_ID_LEN + 1], again[EVENT_AGENT_ID_LEN + 1];

    /* Containers without /etc/machine-id cannot derive one: skip there. */
    if (event_agent_id(id) < 0)
        skip();
    assert_int_equal(strlen(id), 32);
    assert_int_equal(strspn(id, "0123456789abcdef"), 32);
    assert_int_equal(event_agent_id(again), 0);
    assert_string_equal(id, again);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_socket_event),
        cmocka_unit_test(test_socket_peer_names),
        cmocka_unit_test(test_empty_object_and_blanks),
        cmocka_unit_test(test_file_event_escapes_path),
        cmocka_unit_test(test_reject_utf8_and_binary),
        cmocka_unit_test(test_reject_without_seq),
        cmocka_unit_test(test_utf8_validator),
        cmocka_unit_test(test_agent_id),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
