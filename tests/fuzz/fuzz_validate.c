/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for validation rules on top of the JSON check.  The
 * hook must never change the check's verdict: a line the plain check
 * refuses is refused with the same reason, and a line it accepts is
 * accepted with the same offsets or refused by a rule with a reason that
 * names one.
 */
#include "validate.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct validate *
fuzz_rules(void)
{
    static const char *const required[] = { "a", "b.c", "b.d.e" };
    static const char *const types[] = {
        "a: string | null", "b: object", "b.c: integer", "b.d: object",
        "b.d.e: array", "n: number", "t: boolean",
    };
    struct validate *v = validate_new();
    const char *why;

    assert(v);
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); i++)
        assert(validate_add_required(v, required[i], &why) == 0);
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        assert(validate_add_type(v, types[i], &why) == 0);
    validate_set_max_depth(v, 5);
    return v;
}

static bool
fuzz_rule_reason(const char *why)
{
    return strncmp(why, "missing required member '", 25) == 0 ||
           strncmp(why, "member '", 8) == 0 ||
           strncmp(why, "nesting deeper than 5 at byte ", 30) == 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct parse_json *plain, *hooked;
    static struct validate *v;
    struct parse_json_result r1 = { 0 }, r2 = { 0 };
    const char *s = (const char *)data, *why1 = NULL, *why2 = NULL;
    int a, b;

    if (!v) {
        v = fuzz_rules();
        plain = parse_json_new(NULL);
        hooked = parse_json_new(NULL);
        assert(plain && hooked);
    }

    a = parse_json_check(plain, s, size, &r1, &why1);
    b = validate_check(v, hooked, s, size, &r2, &why2);
    assert(a == 0 || a == -EBADMSG);
    assert(b == 0 || b == -EBADMSG);
    if (a < 0) {
        assert(b == a);
        assert(strcmp(why1, why2) == 0);
        return 0;
    }
    assert(r1.close == r2.close && r1.empty == r2.empty);
    if (b < 0)
        assert(fuzz_rule_reason(why2));
    return 0;
}
