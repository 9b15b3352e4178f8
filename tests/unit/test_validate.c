/* SPDX-License-Identifier: MIT */
/*
 * Tests for validation rules: each rule kind with its exact reason, rule
 * syntax errors, the order in which faults are reported, that the JSON
 * check's verdict is unchanged by a hook, and reuse across many events.
 */
#include "validate.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

struct tv {
    struct parse_json *p;
    struct validate *v;
};

static int
tv_setup(void **state)
{
    struct tv *t = calloc(1, sizeof(*t));

    if (!t)
        return -1;
    t->p = parse_json_new(NULL);
    t->v = validate_new();
    if (!t->p || !t->v)
        return -1;
    *state = t;
    return 0;
}

static int
tv_teardown(void **state)
{
    struct tv *t = *state;

    parse_json_free(t->p);
    assert_null(validate_free(t->v));
    free(t);
    return 0;
}

static void
tv_required(struct tv *t, const char *path)
{
    const char *why = NULL;
    int r;

    r = validate_add_required(t->v, path, &why);
    if (r < 0)
        fail_msg("required '%s' refused: %s", path, why);
}

static void
tv_type(struct tv *t, const char *rule)
{
    const char *why = NULL;
    int r;

    r = validate_add_type(t->v, rule, &why);
    if (r < 0)
        fail_msg("type rule '%s' refused: %s", rule, why);
}

/* Checks line; want is NULL when it must pass, or the exact reason. */
static void
tv_expect(struct tv *t, const char *line, const char *want)
{
    struct parse_json_result res = { 0 };
    const char *why = NULL;
    int r;

    r = validate_check(t->v, t->p, line, strlen(line), &res, &why);
    if (!want) {
        if (r != 0)
            fail_msg("line '%s' refused: %d '%s'", line, r,
                     why ? why : "(null)");
        assert_int_equal(line[res.close], '}');
        return;
    }
    if (r != -EBADMSG || !why || strcmp(why, want) != 0)
        fail_msg("line '%s': got %d '%s', want '%s'", line, r,
                 why ? why : "(null)", want);
}

static void
test_empty_rules(void **state)
{
    struct tv *t = *state;

    assert_true(validate_is_empty(t->v));
    tv_expect(t, "{\"a\":1}", NULL);
    tv_expect(t, "[1]", "not a JSON object");
    /* No rules at all: the plain JSON check. */
    {
        struct parse_json_result res;
        const char *why = NULL;

        assert_int_equal(validate_check(NULL, t->p, "{\"_aaas\":1}", 11,
                                        &res, &why), -EBADMSG);
        assert_string_equal(why, "reserved member '_aaas'");
        assert_int_equal(validate_check(NULL, t->p, "{}", 2, &res, &why), 0);
    }
}

static void
test_required_members(void **state)
{
    struct tv *t = *state;

    tv_required(t, "action");
    tv_required(t, "actor.id");
    tv_required(t, "  actor.name\t");
    assert_false(validate_is_empty(t->v));

    tv_expect(t, "{\"action\":\"login\",\"actor\":{\"id\":7,\"name\":\"x\"}}",
              NULL);
    /* Order of members and other members do not matter. */
    tv_expect(t, "{\"z\":[{\"id\":1}],\"actor\":{\"name\":null,\"id\":{}},"
              "\"action\":[]}", NULL);
    tv_expect(t, "{\"actor\":{\"id\":7,\"name\":\"x\"}}",
              "missing required member 'action'");
    tv_expect(t, "{\"action\":1,\"actor\":{\"name\":\"x\"}}",
              "missing required member 'actor.id'");
    tv_expect(t, "{\"action\":1,\"actor\":{\"id\":1}}",
              "missing required member 'actor.name'");
    /* The same name elsewhere is not the member. */
    tv_expect(t, "{\"action\":1,\"id\":1,\"name\":2,\"x\":{\"actor\":"
              "{\"id\":1,\"name\":2}}}", "missing required member 'actor.id'");
    tv_expect(t, "{\"action\":1,\"actor\":[{\"id\":1,\"name\":2}]}",
              "missing required member 'actor.id'");
    tv_expect(t, "{\"action\":1,\"actor\":\"id\"}",
              "missing required member 'actor.id'");
    /* The first missing one in the order the rules were added. */
    tv_expect(t, "{}", "missing required member 'action'");
    /* Keys are compared unescaped. */
    tv_expect(t, "{\"act\\u0069on\":1,\"actor\":{\"\\u0069d\":1,"
              "\"name\":1}}", NULL);
    /* Adding a rule twice changes nothing. */
    tv_required(t, "action");
    tv_expect(t, "{\"actor\":{\"id\":7,\"name\":\"x\"}}",
              "missing required member 'action'");
}

static void
test_types(void **state)
{
    struct tv *t = *state;

    tv_type(t, "s: string");
    tv_type(t, "n:number");
    tv_type(t, "i : integer");
    tv_type(t, "b: boolean");
    tv_type(t, "o: object");
    tv_type(t, "a: array");
    tv_type(t, "z: null");
    tv_type(t, "u: string | null");
    tv_type(t, "w: string|number|null");
    tv_type(t, "o.deep.x: integer");

    tv_expect(t, "{\"s\":\"x\",\"n\":1.5,\"i\":-3,\"b\":false,\"o\":{},"
              "\"a\":[1],\"z\":null,\"u\":null,\"w\":2}", NULL);
    /* Type rules alone do not require the member. */
    tv_expect(t, "{}", NULL);
    tv_expect(t, "{\"n\":12}", NULL);
    tv_expect(t, "{\"n\":-1e5}", NULL);
    tv_expect(t, "{\"n\":123456789012345678901234567890}", NULL);
    tv_expect(t, "{\"i\":123456789012345678901234567890}", NULL);

    tv_expect(t, "{\"n\":\"1\"}", "member 'n' is a string, expected number");
    tv_expect(t, "{\"s\":1}", "member 's' is a number, expected string");
    tv_expect(t, "{\"i\":1.0}", "member 'i' is a number, expected integer");
    tv_expect(t, "{\"i\":1e3}", "member 'i' is a number, expected integer");
    tv_expect(t, "{\"i\":1E3}", "member 'i' is a number, expected integer");
    tv_expect(t, "{\"b\":\"true\"}",
              "member 'b' is a string, expected boolean");
    tv_expect(t, "{\"o\":[]}", "member 'o' is an array, expected object");
    tv_expect(t, "{\"a\":{}}", "member 'a' is an object, expected array");
    tv_expect(t, "{\"z\":0}", "member 'z' is a number, expected null");
    tv_expect(t, "{\"s\":null}", "member 's' is null, expected string");
    tv_expect(t, "{\"s\":true}", "member 's' is a boolean, expected string");
    tv_expect(t, "{\"u\":1}",
              "member 'u' is a number, expected string or null");
    tv_expect(t, "{\"w\":{}}",
              "member 'w' is an object, expected string, number or null");
    tv_expect(t, "{\"o\":{\"deep\":{\"x\":\"7\"}}}",
              "member 'o.deep.x' is a string, expected integer");
    tv_expect(t, "{\"o\":{\"deep\":{\"x\":7}}}", NULL);
    /* The first fault in the line is the one reported. */
    tv_expect(t, "{\"b\":1,\"s\":1}",
              "member 'b' is a number, expected boolean");
    /* A duplicate key is checked each time it appears. */
    tv_expect(t, "{\"s\":\"x\",\"s\":2}",
              "member 's' is a number, expected string");
    /* Inside arrays nothing is matched. */
    tv_expect(t, "{\"x\":[{\"s\":1}],\"a\":[{\"s\":2}]}", NULL);
    /* Members after a nested value are still found at their own level. */
    tv_expect(t, "{\"o\":{\"s\":1,\"deep\":[{\"x\":\"no\"}]},\"s\":2}",
              "member 's' is a number, expected string");
}

static void
test_type_rule_replaced(void **state)
{
    struct tv *t = *state;

    tv_type(t, "n: number");
    tv_type(t, "n: string");
    tv_expect(t, "{\"n\":\"x\"}", NULL);
    tv_expect(t, "{\"n\":1}", "member 'n' is a number, expected string");
}

static void
test_required_and_typed(void **state)
{
    struct tv *t = *state;

    tv_required(t, "actor.id");
    tv_type(t, "actor.id: string");
    tv_type(t, "actor: object");
    tv_expect(t, "{\"actor\":{\"id\":\"u1\"}}", NULL);
    tv_expect(t, "{\"actor\":{\"id\":1}}",
              "member 'actor.id' is a number, expected string");
    tv_expect(t, "{\"actor\":[]}",
              "member 'actor' is an array, expected object");
    tv_expect(t, "{\"actor\":{}}", "missing required member 'actor.id'");
}

static void
test_escaped_names(void **state)
{
    struct tv *t = *state;

    tv_required(t, "a\\.b");
    tv_type(t, "c\\\\d.e: string");
    tv_expect(t, "{\"a.b\":1}", NULL);
    tv_expect(t, "{\"a\":{\"b\":1}}", "missing required member 'a\\.b'");
    tv_expect(t, "{\"a.b\":1,\"c\\\\d\":{\"e\":2}}",
              "member 'c\\\\d.e' is a number, expected string");
    /* A colon in a name: the path ends at the last one. */
    tv_type(t, "k:v: integer");
    tv_expect(t, "{\"a.b\":1,\"k:v\":\"x\"}",
              "member 'k:v' is a string, expected integer");
}

static void
test_size_limit(void **state)
{
    struct tv *t = *state;

    validate_set_max_bytes(t->v, 10);
    assert_false(validate_is_empty(t->v));
    tv_expect(t, "{\"a\":1234}", NULL);
    tv_expect(t, "{\"a\":12345}",
              "event of 11 bytes is over the limit of 10 bytes");
    /* The size is checked first, even on a line that is not JSON. */
    tv_expect(t, "not json at all", "event of 15 bytes is over the limit "
              "of 10 bytes");
    tv_expect(t, "[1]", "not a JSON object");
    validate_set_max_bytes(t->v, 0);
    tv_expect(t, "{\"a\":12345}", NULL);
}

static void
test_depth_limit(void **state)
{
    struct tv *t = *state;

    validate_set_max_depth(t->v, 2);
    tv_expect(t, "{\"a\":{\"b\":1},\"c\":[1,2]}", NULL);
    tv_expect(t, "{\"a\":{\"b\":[]}}", "nesting deeper than 2 at byte 10");
    tv_expect(t, "{\"a\":[{}]}", "nesting deeper than 2 at byte 6");
    validate_set_max_depth(t->v, 1);
    tv_expect(t, "{\"a\":1}", NULL);
    tv_expect(t, "{\"a\":1,\"b\":{}}", "nesting deeper than 1 at byte 11");
    /* The JSON check's own limit still applies past ours. */
    validate_set_max_depth(t->v, 0);
    tv_expect(t, "{\"a\":{\"b\":[]}}", NULL);
}

/* JSON faults win over rules, wherever they are in the line. */
static void
test_json_faults_first(void **state)
{
    struct tv *t = *state;

    tv_required(t, "id");
    tv_type(t, "n: string");
    tv_expect(t, "{\"n\":1,\"x\":}",
              "invalid JSON at byte 12: unallowed token at this point in "
              "JSON text");
    tv_expect(t, "{\"n\":1,\"_aaas\":{}}", "reserved member '_aaas'");
    tv_expect(t, "{\"n\":1", "truncated JSON");
    tv_expect(t, "{\"n\":1} x", "trailing data after the object at byte 8");
    tv_expect(t, "{\"id\":1,\"n\":\"\xff\"}", "invalid UTF-8 at byte 13");
    tv_expect(t, "{\"n\":1}", "member 'n' is a number, expected string");
    tv_expect(t, "{\"n\":\"1\"}", "missing required member 'id'");
}

static void
tv_rule_error(struct validate *v, bool required, const char *rule,
              const char *want)
{
    const char *why = NULL;
    int r;

    r = required ? validate_add_required(v, rule, &why)
                 : validate_add_type(v, rule, &why);
    if (r != -EINVAL || !why || strcmp(why, want) != 0)
        fail_msg("rule '%s': got %d '%s', want '%s'", rule, r,
                 why ? why : "(null)", want);
}

static void
test_rule_errors(void **state)
{
    struct tv *t = *state;
    char longpath[VALIDATE_PATH_MAX + 2];

    tv_rule_error(t->v, true, "", "empty member path");
    tv_rule_error(t->v, true, "   ", "empty member path");
    tv_rule_error(t->v, true, "a..b", "empty member name in path 'a..b'");
    tv_rule_error(t->v, true, ".a", "empty member name in path '.a'");
    tv_rule_error(t->v, true, "a.", "empty member name in path 'a.'");
    tv_rule_error(t->v, true, "a\\b", "in member path 'a\\b': '\\' must be "
                  "followed by '.' or '\\'");
    tv_rule_error(t->v, true, "a\\", "in member path 'a\\': '\\' must be "
                  "followed by '.' or '\\'");
    memset(longpath, 'x', sizeof(longpath) - 1);
    longpath[sizeof(longpath) - 1] = '\0';
    tv_rule_error(t->v, true, longpath,
                  "member path 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...' "
                  "is longer than 200 bytes");

    tv_rule_error(t->v, false, "n", "'n' is not PATH: TYPE");
    tv_rule_error(t->v, false, "n:", "missing type name in ''");
    tv_rule_error(t->v, false, "n: string|", "missing type name in ' string|'");
    tv_rule_error(t->v, false, "n: text",
                  "unknown type 'text' (use string, number, integer, "
                  "boolean, object, array or null)");
    tv_rule_error(t->v, false, "n: String",
                  "unknown type 'String' (use string, number, integer, "
                  "boolean, object, array or null)");
    tv_rule_error(t->v, false, ": string", "empty member path");
    tv_rule_error(t->v, false, "a..b: string",
                  "empty member name in path 'a..b'");

    /* Refused rules leave no rule behind. */
    tv_expect(t, "{}", NULL);
    tv_expect(t, "{\"n\":[]}", NULL);
}

/*
 * The hook must not change what the JSON check decides: the same lines,
 * good and bad, through validate_check() with rules that never fire and
 * through parse_json_check(), give the same answer and offsets.
 */
static void
test_same_verdict_as_json_check(void **state)
{
    static const char *const lines[] = {
        "{}", "{ \"a\" : [ 1 , { \"b\" : null } ] }", "[1]", "\"s\"", "42",
        "{\"a\":x}", "{\"a\":1,}", "{\"a\":1", "{\"a\":\"\\u00e9\"}",
        "{\"_aaas\":1}", "{\"x\":{\"_aaas\":1}}", "{} x", "true", "null",
        "{\"a\":[[[[[[1]]]]]]}", "{\"a\":\"\\q\"}", "  {\"a\":1}\r",
        "\"str\" x", "{\"a\":tru", "{\"k\":1e999,\"l\":-0.0}",
    };
    struct tv *t = *state;
    struct parse_json *plain = parse_json_new(NULL);

    tv_type(t, "never.there: string");
    assert_non_null(plain);
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct parse_json_result r1 = { 0 }, r2 = { 0 };
        const char *w1 = NULL, *w2 = NULL;
        size_t len = strlen(lines[i]);
        int a, b;

        a = parse_json_check(plain, lines[i], len, &r1, &w1);
        b = validate_check(t->v, t->p, lines[i], len, &r2, &w2);
        if (a != b)
            fail_msg("line '%s': plain %d, hooked %d", lines[i], a, b);
        if (a == 0) {
            assert_int_equal(r1.close, r2.close);
            assert_int_equal(r1.empty, r2.empty);
        } else {
            assert_string_equal(w1, w2);
        }
    }
    parse_json_free(plain);
}

/* Many events through one set: no state leaks from one to the next. */
static void
test_reuse(void **state)
{
    struct tv *t = *state;

    tv_required(t, "id");
    tv_type(t, "id: integer");
    validate_set_max_depth(t->v, 3);
    for (int i = 0; i < 20000; i++) {
        switch (i % 5) {
        case 0:
            tv_expect(t, "{\"id\":1,\"o\":{\"p\":[]}}", NULL);
            break;
        case 1:
            tv_expect(t, "{\"o\":{\"id\":1}}", "missing required member 'id'");
            break;
        case 2:
            tv_expect(t, "{\"id\":\"1\"}",
                      "member 'id' is a string, expected integer");
            break;
        case 3:
            tv_expect(t, "{\"id\":1,\"o\":{\"p\":[{}]}}",
                      "nesting deeper than 3 at byte 18");
            break;
        default:
            /* Stops mid-way, deep inside: the next event starts clean. */
            tv_expect(t, "{\"o\":{\"p\":[{\"id\":", "truncated JSON");
            break;
        }
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_empty_rules, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_required_members, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_types, tv_setup, tv_teardown),
        cmocka_unit_test_setup_teardown(test_type_rule_replaced, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_required_and_typed, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_escaped_names, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_size_limit, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_depth_limit, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_json_faults_first, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_rule_errors, tv_setup,
                                        tv_teardown),
        cmocka_unit_test_setup_teardown(test_same_verdict_as_json_check,
                                        tv_setup, tv_teardown),
        cmocka_unit_test_setup_teardown(test_reuse, tv_setup, tv_teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
