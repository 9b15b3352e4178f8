/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for parse_auditd: the input is split into lines, each
 * added as a record from one of two files; every event that comes out
 * must render as one JSON object that yajl accepts.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <yajl/yajl_tree.h>

#include "parse_auditd.h"

static struct parse_auditd *parser;

static void
check_event(struct parse_auditd_event *ev)
{
    char err[128], *text;
    const char *json;
    yajl_val v;
    size_t len;

    if (parse_auditd_render(parser, ev, &json, &len) < 0)
        abort();
    if (len < 2 || json[0] != '{' || json[len - 1] != '}')
        abort();
    text = malloc(len + 1);
    if (!text)
        abort();
    memcpy(text, json, len);
    text[len] = '\0';
    v = yajl_tree_parse(text, err, sizeof(err));
    if (!v || !YAJL_IS_OBJECT(v))
        abort();
    yajl_tree_free(v);
    free(text);
    parse_auditd_drop(parser, ev);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *s = (const char *)data, *end = s + size, *nl;
    struct parse_auditd_event *ev;
    struct parse_auditd_source src = {
        .input = "fuzz",
        .path = "/fuzz.log",
        .timeout_usec = 1000,
    };
    const char *why;
    uint64_t now = 0;
    int r;

    if (!parser) {
        struct parse_auditd_limits l = { .max_open = 8, .max_event = 4096 };

        parser = parse_auditd_new(&l);
        if (!parser)
            abort();
    }
    while (s < end) {
        nl = memchr(s, '\n', (size_t)(end - s));
        if (!nl)
            nl = end;
        src.id = (uint64_t)(s - (const char *)data) & 1;
        src.offset = (uint64_t)(s - (const char *)data);
        for (;;) {
            r = parse_auditd_add(parser, &src, s, (size_t)(nl - s), now++,
                                 &ev, &why);
            if (r != -ENOBUFS)
                break;
            check_event(ev);
        }
        if (r == PARSE_AUDITD_COMPLETE)
            check_event(ev);
        else if (r == -EBADMSG && (!why || strncmp(why, "auditd: ", 8)))
            abort();
        while ((ev = parse_auditd_expired(parser, now > 500 ? now - 500 : 0)))
            check_event(ev);
        s = nl + 1;
    }
    while ((ev = parse_auditd_oldest(parser)))
        check_event(ev);
    return 0;
}
