/* SPDX-License-Identifier: MIT */
/* Declared gaps: parsing gap lines, folding dropped ones into a new one. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../src/gaps.h"

static void
test_format_and_parse(void **state)
{
    char obj[GAPS_OBJECT_MAX + 1], line[512];
    struct gaps g;
    size_t n;

    (void)state;
    gaps_init(&g);
    n = gaps_format(obj, 10, 20, 11);
    assert_string_equal(obj, "{\"_aaas_gap\":{\"first_seq\":10,"
                        "\"last_seq\":20,\"count\":11,"
                        "\"reason\":\"spool full\"}}");
    assert_int_equal(n, strlen(obj));
    /* The largest numbers fit. */
    n = gaps_format(obj, UINT64_MAX - 1, UINT64_MAX - 1, UINT64_MAX);
    assert_int_equal(n, strlen(obj));
    assert_true(n <= GAPS_OBJECT_MAX);

    /* As spooled: `_aaas` inserted before the closing brace. */
    (void)snprintf(line, sizeof(line), "%.*s,\"_aaas\":{\"agent\":\"a\","
                   "\"seq\":30,\"count\":99}}\n", 77,
                   "{\"_aaas_gap\":{\"first_seq\":10,\"last_seq\":20,"
                   "\"count\":11,\"reason\":\"spool full\"}");
    assert_int_equal(gaps_note_line(&g, 30, line, strlen(line)), 1);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].first, 10);
    assert_int_equal(g.v[0].last, 20);
    assert_int_equal(g.v[0].count, 11);
    assert_int_equal(g.v[0].line_seq, 30);

    assert_int_equal(gaps_note_line(&g, 31, "{\"a\":1}", 7), 0);
    assert_int_equal(gaps_note_line(&g, 32, "{\"_aaas_gap\":{\"first_seq\":"
                                    "x}}", 30), -EBADMSG);
    /* A gap line declares numbers below its own. */
    n = gaps_format(obj, 10, 40, 31);
    assert_int_equal(gaps_note_line(&g, 40, obj, n), -EBADMSG);
    assert_int_equal(g.n, 1);
    gaps_done(&g);
}

static void
test_fold(void **state)
{
    uint64_t first, count;
    struct gaps g;

    (void)state;
    gaps_init(&g);
    /* 100..199 dropped, declared by line 500. */
    assert_int_equal(gaps_commit(&g, 100, 199, 500), 0);
    /* A drop that does not take line 500 declares only itself. */
    gaps_plan(&g, 200, 299, &first, &count);
    assert_int_equal(first, 200);
    assert_int_equal(count, 100);
    assert_int_equal(gaps_commit(&g, 200, 299, 600), 0);
    assert_int_equal(g.n, 2);
    /* One that takes both lines declares all of it. */
    gaps_plan(&g, 450, 650, &first, &count);
    assert_int_equal(first, 100);
    assert_int_equal(count, 201 + 100 + 100);
    assert_int_equal(gaps_commit(&g, 450, 650, 700), 0);
    assert_int_equal(g.n, 1);
    assert_int_equal(g.v[0].first, 100);
    assert_int_equal(g.v[0].last, 650);
    assert_int_equal(g.v[0].count, 401);

    /* Delivered lines are no longer needed. */
    gaps_delivered(&g, 699);
    assert_int_equal(g.n, 1);
    gaps_delivered(&g, 700);
    assert_int_equal(g.n, 0);
    gaps_plan(&g, 800, 899, &first, &count);
    assert_int_equal(first, 800);
    assert_int_equal(count, 100);
    gaps_done(&g);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_and_parse),
        cmocka_unit_test(test_fold),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
