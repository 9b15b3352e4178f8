/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the JSON line checker.  Beyond not crashing, every
 * answer must hold up: an accepted line ends in its brace and blanks, has
 * no byte the checker promises to refuse, and a handle that has seen many
 * lines answers exactly as a fresh one does.
 */
#include "parse_json.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static bool
fuzz_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r';
}

static void
fuzz_check_accepted(const char *s, size_t len,
                    const struct parse_json_result *res)
{
    size_t i;

    assert(res->close < len);
    assert(s[res->close] == '}');
    for (i = res->close + 1; i < len; i++)
        assert(fuzz_blank(s[i]));
    for (i = 0; i < len; i++) {
        assert(s[i] != '\0' && s[i] != '\n');
        assert(s[i] != '\v' && s[i] != '\f');
    }
    for (i = 0; i < len && fuzz_blank(s[i]); i++)
        ;
    assert(i < res->close && s[i] == '{');
    /* An empty object has nothing but blanks between its braces. */
    if (res->empty)
        for (i++; i < res->close; i++)
            assert(fuzz_blank(s[i]));
    else
        assert(memchr(s + i, '"', res->close - i) != NULL);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct parse_json *warm;
    struct parse_json_limits l = { .max_depth = 16 };
    struct parse_json_result r1 = { 0 }, r2 = { 0 };
    const char *s = (const char *)data, *why1 = NULL, *why2 = NULL;
    struct parse_json *fresh;
    int a, b;

    /* The warm handle lives across inputs, as it does in the daemon. */
    if (!warm)
        warm = parse_json_new(&l);
    fresh = parse_json_new(&l);
    assert(warm && fresh);

    a = parse_json_check(warm, s, size, &r1, &why1);
    assert(a == 0 || a == -EBADMSG);
    if (a == 0) {
        fuzz_check_accepted(s, size, &r1);
    } else {
        assert(why1 && why1[0] != '\0');
        assert(strlen(why1) < 160);
    }

    b = parse_json_check(fresh, s, size, &r2, &why2);
    assert(a == b);
    if (a == 0)
        assert(r1.close == r2.close && r1.empty == r2.empty);
    else
        assert(strcmp(why1, why2) == 0);

    parse_json_free(fresh);
    return 0;
}
