/* SPDX-License-Identifier: MIT */
/*
 * Tests for the JSON line checker: every reason with its exact text, the
 * close offset, reserved names, limits, handle reuse and the shared corpus.
 */
#include "parse_json.h"

#include <dirent.h>
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cmocka.h>

#ifndef AAAS_SHARED_DIR
#error "AAAS_SHARED_DIR must name the shared test data directory"
#endif

/* A case with an explicit length, so that lines may hold NUL bytes. */
struct pj_case {
    const char *data;
    size_t len;
    const char *reason;         /* NULL when the line must be accepted */
    size_t close;
    bool empty;
};

#define OK(s, c, e)     { s, sizeof(s) - 1, NULL, c, e }
#define BAD(s, why)     { s, sizeof(s) - 1, why, 0, false }

static const struct pj_case pj_good[] = {
    OK("{}", 1, true),
    OK("{ }", 2, true),
    OK(" \t{ \t\r }\r\t ", 7, true),
    OK("  {\"a\":1}  ", 8, false),
    OK("{\"a\":1}\r", 6, false),
    OK("{\"a\":[1,2,{\"b\":[[],{}]}],\"c\":{\"d\":{\"e\":null}}}", 45, false),
    OK("{\"a\":true,\"b\":false,\"c\":null,\"d\":-0.5e+10}", 41, false),
    OK("{\"big\":123456789012345678901234567890123456789}", 46, false),
    OK("{\"neg\":-98765432109876543210987654321,\"f\":1e999}", 47, false),
    OK("{\"u\":\"\\u00e9\\u4e2d\\n\\t\\\"\\\\\\/\"}", 29, false),
    /* A surrogate pair, escaped, and the same character as raw UTF-8. */
    OK("{\"s\":\"\\ud83d\\ude00\"}", 19, false),
    OK("{\"s\":\"\xf0\x9f\x98\x80\",\"t\":\"\xc3\xa9\xe4\xb8\xad\"}",
       23, false),
    OK("{\"\xef\xbf\xbd\":\"\xf4\x8f\xbf\xbf\"}", 13, false),
    /* Reserved names are only reserved at the top level. */
    OK("{\"x\":{\"_aaas\":1,\"_aaas_seal\":2,\"_aaas_reject\":3}}", 48, false),
    OK("{\"x\":[{\"_aaas\":{}}]}", 19, false),
    OK("{\"_aaasx\":1,\"_aaa\":2,\"aaas\":3,\"_aaas_sea\":4}", 43, false),
    /* Duplicate keys are the writer's business. */
    OK("{\"a\":1,\"a\":2}", 12, false),
    OK("{\"\":\"\"}", 6, false),
};

static const struct pj_case pj_bad[] = {
    { "", 0, "empty line", 0, false },
    BAD(" \t\r ", "empty line"),

    BAD("[1,2]", "not a JSON object"),
    BAD("  \"text\"", "not a JSON object"),
    BAD("42", "not a JSON object"),
    BAD("-1.5e3  ", "not a JSON object"),
    BAD("true", "not a JSON object"),
    BAD("null", "not a JSON object"),
    BAD("[{\"a\":1}]", "not a JSON object"),

    BAD("{\"a\":x}", "invalid JSON at byte 5: invalid char in json text"),
    BAD("xyz", "invalid JSON at byte 0: invalid char in json text"),
    BAD("{\"a\" 1}", "invalid JSON at byte 6: object key and value must be "
        "separated by a colon (':')"),
    BAD("{,}", "invalid JSON at byte 2: invalid object key (must be a "
        "string)"),
    BAD("{\"a\":1,}", "invalid JSON at byte 8: invalid object key (must be "
        "a string)"),
    BAD("{\"a\":[1,]}", "invalid JSON at byte 9: unallowed token at this "
        "point in JSON text"),
    BAD("{\"a\":-}", "invalid JSON at byte 6: malformed number, a digit is "
        "required after the minus sign"),
    BAD("{\"a\":\"\\q\"}", "invalid JSON at byte 7: inside a string, '\\' "
        "occurs before a character which it may not"),
    BAD("{\"a\":\"\\u12g4\"}", "invalid JSON at byte 10: invalid (non-hex) "
        "character occurs after '\\u' inside string"),
    BAD("{\"a\":\"x\ty\"}", "invalid JSON at byte 7: invalid character "
        "inside string"),
    BAD("{\"a\":\"x\ny\"}", "invalid JSON at byte 7: invalid character "
        "inside string"),
    BAD("{'a':1}", "invalid JSON at byte 1: invalid char in json text"),
    BAD("{\"a\":1 /* c */}", "invalid JSON at byte 7: probable comment "
        "found in input text, comments are not enabled"),

    /* yajl would take these for blanks; they are not JSON whitespace. */
    BAD("{\"a\":\v1}", "invalid JSON at byte 5: control character 0x0b "
        "outside a string"),
    BAD("\f{}", "invalid JSON at byte 0: control character 0x0c outside a "
        "string"),
    BAD("{\n\"a\":1}", "invalid JSON at byte 1: control character 0x0a "
        "outside a string"),
    BAD("{\"a\":1\n", "invalid JSON at byte 6: control character 0x0a "
        "outside a string"),
    BAD("{\"a\":1\v]", "invalid JSON at byte 6: control character 0x0b "
        "outside a string"),
    BAD("{\"a\":1}\n", "trailing data after the object at byte 7"),

    /* Bytes from 0x80 up: inside a string a UTF-8 fault, outside JSON's. */
    BAD("{\"a\":\"\xc0\x80\"}", "invalid UTF-8 at byte 6"),
    BAD("{\"a\":\"ok\xed\xa0\x80\"}", "invalid UTF-8 at byte 8"),
    BAD("{\"a\":\"\xf4\x90\x80\x80\"}", "invalid UTF-8 at byte 6"),
    BAD("{\"a\":\"\xf5\x80\x80\x80\"}", "invalid UTF-8 at byte 6"),
    BAD("{\"a\":\"\xe2\x82\"}", "invalid UTF-8 at byte 6"),
    BAD("{\"a\":\"\x80\"}", "invalid UTF-8 at byte 6"),
    BAD("{\"\xff\":1}", "invalid UTF-8 at byte 2"),
    BAD("{\xc3\xa9}", "invalid JSON at byte 1: invalid char in json text"),
    BAD("{\"a\":1,\xff}", "invalid JSON at byte 7: invalid char in json "
        "text"),

    { "{\"a\":\"x\0y\"}", 11, "NUL byte at byte 7", 0, false },
    { "\0{}", 3, "NUL byte at byte 0", 0, false },
    { "{}\0", 3, "NUL byte at byte 2", 0, false },
    { "{\"a\":1,\0", 8, "NUL byte at byte 7", 0, false },

    BAD("{\"a\":1}}", "trailing data after the object at byte 7"),
    BAD("{}  x", "trailing data after the object at byte 4"),
    BAD("{} {}", "trailing data after the object at byte 3"),
    BAD("{}\xff", "trailing data after the object at byte 2"),

    BAD("{\"_aaas\":{}}", "reserved member '_aaas'"),
    BAD("{\"a\":1,\"_aaas_seal\":2}", "reserved member '_aaas_seal'"),
    BAD(" {\"_aaas_reject\":\"x\"} ", "reserved member '_aaas_reject'"),
    BAD("{\"_aaas_gap\":{\"first_seq\":1,\"last_seq\":9}}",
        "reserved member '_aaas_gap'"),
    BAD("{\"_aa\\u0061s\":1}", "reserved member '_aaas'"),
    BAD("{\"\\u005faaas_seal\":1}", "reserved member '_aaas_seal'"),
    BAD("{\"_aaas\\u005freject\":1}", "reserved member '_aaas_reject'"),

    BAD("{", "truncated JSON"),
    BAD("{\"a\"", "truncated JSON"),
    BAD("{\"a\":", "truncated JSON"),
    BAD("{\"a\":\"b", "truncated JSON"),
    BAD("{\"a\":1", "truncated JSON"),
    BAD("{\"a\":1.", "truncated JSON"),
    BAD("{\"a\":tru", "truncated JSON"),
    BAD("{\"a\":[{}", "truncated JSON"),
    BAD("{\"a\":\"\\u00", "truncated JSON"),
};

static void
pj_expect(struct parse_json *p, const struct pj_case *c)
{
    struct parse_json_result res = { .close = SIZE_MAX, .empty = false };
    const char *why = NULL;
    int r;

    r = parse_json_check(p, c->data, c->len, &res, &why);
    if (c->reason) {
        if (r != -EBADMSG || !why || strcmp(why, c->reason) != 0)
            fail_msg("line '%.*s': got %d '%s', want '%s'", (int)c->len,
                     c->data, r, why ? why : "(null)", c->reason);
        return;
    }
    if (r != 0)
        fail_msg("line '%.*s' refused: %s", (int)c->len, c->data, why);
    if (res.close != c->close || res.empty != c->empty)
        fail_msg("line '%.*s': close %zu empty %d, want %zu %d", (int)c->len,
                 c->data, res.close, res.empty, c->close, c->empty);
    assert_int_equal(c->data[res.close], '}');
}

static void
test_accepts(void **state)
{
    struct parse_json *p = parse_json_new(NULL);
    size_t i;

    (void)state;
    assert_non_null(p);
    for (i = 0; i < sizeof(pj_good) / sizeof(pj_good[0]); i++)
        pj_expect(p, &pj_good[i]);
    p = parse_json_free(p);
    assert_null(p);
}

static void
test_refuses_with_reason(void **state)
{
    struct parse_json *p = parse_json_new(NULL);
    size_t i;

    (void)state;
    assert_non_null(p);
    for (i = 0; i < sizeof(pj_bad) / sizeof(pj_bad[0]); i++)
        pj_expect(p, &pj_bad[i]);
    parse_json_free(p);
}

static void
test_reason_pointer_optional(void **state)
{
    struct parse_json *p = parse_json_new(NULL);
    struct parse_json_result res = { .close = 7, .empty = true };

    (void)state;
    assert_int_equal(parse_json_check(p, "[]", 2, &res, NULL), -EBADMSG);
    /* A refused line leaves the result alone. */
    assert_int_equal(res.close, 7);
    assert_true(res.empty);
    assert_int_equal(parse_json_check(p, "{\"a\":1}", 7, &res, NULL), 0);
    assert_int_equal(res.close, 6);
    assert_false(res.empty);
    parse_json_free(p);
    assert_null(parse_json_free(NULL));
}

static void
test_depth_limit(void **state)
{
    struct parse_json_limits l = { .max_depth = 3 };
    struct parse_json *p = parse_json_new(&l);
    struct pj_case ok = OK("{\"a\":{\"b\":[1,2]}}", 16, false);
    struct pj_case deep = BAD("{\"a\":{\"b\":[[1]]}}",
                              "nesting deeper than 3 at byte 11");
    struct pj_case deep_map = BAD("{\"a\":{\"b\":{\"c\":{}}}}",
                                  "nesting deeper than 3 at byte 15");

    (void)state;
    assert_non_null(p);
    pj_expect(p, &ok);
    pj_expect(p, &deep);
    pj_expect(p, &deep_map);
    parse_json_free(p);

    l.max_depth = 1;
    p = parse_json_new(&l);
    {
        struct pj_case flat = OK("{\"a\":1,\"b\":\"c\"}", 14, false);
        struct pj_case nested = BAD("{\"a\":[]}",
                                    "nesting deeper than 1 at byte 5");

        pj_expect(p, &flat);
        pj_expect(p, &nested);
    }
    parse_json_free(p);
}

static char *
pj_repeat(const char *head, char c, size_t n, const char *tail, size_t *ret_len)
{
    size_t h = strlen(head), t = strlen(tail);
    char *s = malloc(h + n + t + 1);

    assert_non_null(s);
    memcpy(s, head, h);
    memset(s + h, c, n);
    memcpy(s + h + n, tail, t + 1);
    *ret_len = h + n + t;
    return s;
}

static void
test_deep_nesting(void **state)
{
    struct parse_json_limits unlimited = { .max_depth = SIZE_MAX };
    struct pj_case good = OK("{\"a\":[1]}", 8, false);
    struct parse_json *p = parse_json_new(NULL);
    struct parse_json_result res;
    const char *why = NULL;
    size_t len;
    char *s;
    int r;

    (void)state;
    s = pj_repeat("", '[', 100000, "", &len);
    r = parse_json_check(p, s, len, &res, &why);
    assert_int_equal(r, -EBADMSG);
    assert_string_equal(why, "not a JSON object");
    free(s);

    s = pj_repeat("{\"a\":", '[', 100000, "", &len);
    r = parse_json_check(p, s, len, &res, &why);
    assert_int_equal(r, -EBADMSG);
    assert_string_equal(why, "nesting deeper than 64 at byte 68");
    pj_expect(p, &good);
    parse_json_free(p);

    /* Without a limit yajl's state stack outgrows the arena, and is freed. */
    p = parse_json_new(&unlimited);
    r = parse_json_check(p, s, len, &res, &why);
    assert_int_equal(r, -EBADMSG);
    assert_string_equal(why, "truncated JSON");
    pj_expect(p, &good);
    free(s);
    parse_json_free(p);
}

static void
test_large_escaped_strings(void **state)
{
    struct parse_json *p = parse_json_new(NULL);
    struct parse_json_result res;
    const char *why = NULL;
    size_t len, n = 300000, i;
    char *s;
    int r;

    (void)state;
    /* Escapes make yajl copy the string into a buffer that must grow. */
    s = pj_repeat("{\"k\":\"", 'x', n, "\"}", &len);
    for (i = 6; i + 1 < 6 + n; i += 100)
        memcpy(s + i, "\\n", 2);
    for (i = 0; i < 3; i++) {
        r = parse_json_check(p, s, len, &res, &why);
        assert_int_equal(r, 0);
        assert_int_equal(res.close, len - 1);
    }
    /* A reserved key after the big string, escaped too, is still seen. */
    free(s);
    s = pj_repeat("{\"k\":\"", 'x', n, "\\n\",\"\\u005faaas\":1}", &len);
    r = parse_json_check(p, s, len, &res, &why);
    assert_int_equal(r, -EBADMSG);
    assert_string_equal(why, "reserved member '_aaas'");
    free(s);
    parse_json_free(p);
}

/* A small deterministic generator, so a failure can be replayed. */
static uint32_t
pj_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

static void
pj_same(const char *data, size_t len, int r1, const char *why1,
        const struct parse_json_result *res1, struct parse_json *fresh)
{
    struct parse_json_result res2 = { 0 };
    const char *why2 = NULL;
    int r2;

    r2 = parse_json_check(fresh, data, len, &res2, &why2);
    if (r1 != r2)
        fail_msg("line '%.*s': reused %d, fresh %d", (int)len, data, r1, r2);
    if (r1 < 0) {
        assert_non_null(why1);
        assert_non_null(why2);
        assert_string_equal(why1, why2);
        return;
    }
    assert_int_equal(res1->close, res2.close);
    assert_int_equal(res1->empty, res2.empty);
}

static void
test_reuse_matches_fresh(void **state)
{
    const struct pj_case *all[2] = { pj_good, pj_bad };
    const size_t counts[2] = { sizeof(pj_good) / sizeof(pj_good[0]),
                               sizeof(pj_bad) / sizeof(pj_bad[0]) };
    struct parse_json *reused = parse_json_new(NULL);
    struct parse_json_result res;
    uint32_t seed = 20240601;
    char buf[256];
    size_t i, len, bad = 0;
    const char *why;
    int r;

    (void)state;
    for (i = 0; i < 10000; i++) {
        const struct pj_case *c;
        struct parse_json *fresh;
        uint32_t k = pj_rand(&seed);

        c = &all[k & 1][(k >> 1) % counts[k & 1]];
        len = c->len < sizeof(buf) ? c->len : sizeof(buf);
        memcpy(buf, c->data, len);
        /* Every third line gets one byte changed, to reach odd states. */
        if (len > 0 && i % 3 == 0)
            buf[pj_rand(&seed) % len] = (char)(pj_rand(&seed) & 0xff);

        why = NULL;
        memset(&res, 0, sizeof(res));
        r = parse_json_check(reused, buf, len, &res, &why);
        if (r < 0)
            bad++;
        fresh = parse_json_new(NULL);
        assert_non_null(fresh);
        pj_same(buf, len, r, why, &res, fresh);
        parse_json_free(fresh);
    }
    /* The mix must really hold both kinds. */
    assert_true(bad > 2000 && bad < 8000);
    parse_json_free(reused);
}

static size_t
pj_check_file(struct parse_json *p, const char *path)
{
    struct parse_json_result res;
    const char *why;
    size_t n = 0, lineno = 0;
    char *data, *line, *nl, *end;
    struct stat st;
    FILE *f;
    int r;

    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fstat(fileno(f), &st), 0);
    data = malloc((size_t)st.st_size + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)st.st_size, f),
                     (size_t)st.st_size);
    fclose(f);

    end = data + st.st_size;
    for (line = data; line < end; line = nl + 1) {
        nl = memchr(line, '\n', (size_t)(end - line));
        if (!nl)
            nl = end;
        lineno++;
        if (nl == line)
            continue;
        why = NULL;
        r = parse_json_check(p, line, (size_t)(nl - line), &res, &why);
        if (r < 0)
            fail_msg("%s:%zu refused: %s", path, lineno, why);
        assert_int_equal(line[res.close], '}');
        n++;
    }
    free(data);
    return n;
}

static size_t
pj_walk(struct parse_json *p, const char *dir, size_t *ret_files)
{
    struct dirent *de;
    size_t n = 0, l;
    char path[4096];
    struct stat st;
    DIR *d;

    d = opendir(dir);
    if (!d)
        fail_msg("cannot open '%s': %s", dir, strerror(errno));
    while ((de = readdir(d))) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        assert_true((size_t)snprintf(path, sizeof(path), "%s/%s", dir,
                                     de->d_name) < sizeof(path));
        assert_int_equal(stat(path, &st), 0);
        if (S_ISDIR(st.st_mode)) {
            n += pj_walk(p, path, ret_files);
            continue;
        }
        l = strlen(de->d_name);
        if (l > 6 && strcmp(de->d_name + l - 6, ".jsonl") == 0) {
            n += pj_check_file(p, path);
            (*ret_files)++;
        }
    }
    closedir(d);
    return n;
}

static void
test_corpus_lines_accepted(void **state)
{
    struct parse_json *p = parse_json_new(NULL);
    size_t files = 0, lines;

    (void)state;
    lines = pj_walk(p, AAAS_SHARED_DIR "/corpus", &files);
    print_message("checked %zu lines in %zu .jsonl files\n", lines, files);
    assert_true(files > 0);
    assert_true(lines > 0);
    parse_json_free(p);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts),
        cmocka_unit_test(test_refuses_with_reason),
        cmocka_unit_test(test_reason_pointer_optional),
        cmocka_unit_test(test_depth_limit),
        cmocka_unit_test(test_deep_nesting),
        cmocka_unit_test(test_large_escaped_strings),
        cmocka_unit_test(test_reuse_matches_fresh),
        cmocka_unit_test(test_corpus_lines_accepted),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
