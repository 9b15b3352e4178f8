/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "service_reject.h"

static const char line[] =
        "{\"user\":\"alice\",\"note\":\"has \\\"_aaas\\\":{ inside\","
        "\"_aaas\":{\"agent\":\"0123456789abcdef0123456789abcdef\","
        "\"seq\":41,\"time\":\"2026-12-04T16:38:58.123456Z\","
        "\"source\":\"socket\",\"peer\":{\"pid\":1,\"uid\":2,\"gid\":3}}}\n";

static const char meta[] =
        ",\"_aaas\":{\"agent\":\"0123456789abcdef0123456789abcdef\","
        "\"seq\":41,\"time\":\"2026-12-04T16:38:58.123456Z\","
        "\"source\":\"socket\",\"peer\":{\"pid\":1,\"uid\":2,\"gid\":3}}}\n";

static void
test_whole_line(void **state)
{
    struct service_reject rj = {
        .record = line,
        .record_len = strlen(line),
        .first_seq = 41,
        .last_seq = 41,
        .n_events = 1,
        .error_code = "InvalidArgumentException",
        .error_message = "too \"odd\"",
    };
    char *out = NULL;
    size_t len = 0;

    (void)state;
    assert_int_equal(service_reject_build(&rj, 4096, &out, &len), 0);
    assert_int_equal(strlen(out), len);
    assert_non_null(strstr(out, "{\"_aaas_reject\":{\"reason\":\"refused by "
                                "the service for good\",\"error_code\":"
                                "\"InvalidArgumentException\","
                                "\"error_message\":\"too \\\"odd\\\"\","
                                "\"first_seq\":41,\"last_seq\":41,"
                                "\"events\":1,\"bytes\":"));
    /* The raw head is escaped, newline included, and complete. */
    assert_non_null(strstr(out, "\"raw\":\"{\\\"user\\\":\\\"alice\\\""));
    assert_non_null(strstr(out, "}}}\\u000a\",\"raw_truncated\":false}"));
    /* The first event's own _aaas closes the line. */
    assert_true(len > strlen(meta));
    assert_string_equal(out + len - strlen(meta), meta);
    free(out);
}

static void
test_truncated_and_squeezed(void **state)
{
    char rec[2048], *out = NULL;
    size_t len = 0, small;
    struct service_reject rj = {
        .record = rec,
        .first_seq = 7,
        .last_seq = 9,
        .n_events = 3,
        .error_code = "InvalidArgumentException",
        .error_message = "nope",
    };

    (void)state;
    /* "é" (2 bytes) throughout, so the cut must fall between characters. */
    memset(rec, 0, sizeof(rec));
    rec[0] = '{';
    for (size_t i = 1; i + 1 < 1500; i += 2) {
        rec[i] = (char)0xc3;
        rec[i + 1] = (char)0xa9;
    }
    memcpy(rec + 1499, line + 1, strlen(line) - 1);
    rj.record_len = 1499 + strlen(line) - 1;

    assert_int_equal(service_reject_build(&rj, 1u << 20, &out, &len), 0);
    assert_non_null(strstr(out, "\"raw_truncated\":true}"));
    assert_non_null(strstr(out, "\"first_seq\":7,\"last_seq\":9,"
                                "\"events\":3"));
    /* 511 bytes: '{' and 255 whole characters, not half of one. */
    assert_non_null(strstr(out, "\"raw\":\"{"));
    assert_null(strstr(out, "\\u00c3"));
    assert_string_equal(out + len - strlen(meta), meta);
    free(out);

    /* Less room: the raw head goes first, then the message. */
    assert_int_equal(service_reject_build(&rj, 600, &out, &len), 0);
    assert_true(len <= 600);
    assert_non_null(strstr(out, "\"raw\":\"\",\"raw_truncated\":true"));
    assert_non_null(strstr(out, "\"error_message\":\"nope\""));
    small = len;
    free(out);

    assert_int_equal(service_reject_build(&rj, small - 1, &out, &len), 0);
    assert_non_null(strstr(out, "\"error_message\":\"\""));
    free(out);

    out = NULL;
    assert_int_equal(service_reject_build(&rj, 100, &out, &len), -ENOSPC);
    assert_null(out);
}

static void
test_no_meta(void **state)
{
    struct service_reject rj = {
        .record = "plain bytes\n",
        .record_len = 12,
        .first_seq = 5,
        .last_seq = 5,
        .n_events = 1,
        .error_code = "",
        .error_message = "",
    };
    char *out;
    size_t len;

    (void)state;
    assert_int_equal(service_reject_build(&rj, 4096, &out, &len), 0);
    assert_string_equal(out + len - strlen(",\"_aaas\":{\"seq\":5}}\n"),
                        ",\"_aaas\":{\"seq\":5}}\n");
    free(out);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_whole_line),
        cmocka_unit_test(test_truncated_and_squeezed),
        cmocka_unit_test(test_no_meta),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
