/* SPDX-License-Identifier: MIT */
/*
 * Enrichment: turns an accepted line into its delivered form and a failed
 * one into a reject record.  Parsing is parse_json's job; where the line
 * goes next (the spool) is the caller's.
 */
#include "event.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <systemd/sd-id128.h>

#include "chain.h"

/*
 * Fixed application id for sd_id128_get_machine_app_specific(): the agent
 * id is a keyed hash of the machine id, so the raw machine id (which
 * systemd asks applications not to publish) never leaves the host.
 */
#define EVENT_APP_ID SD_ID128_MAKE(5e,0c,3a,41,9d,27,4b,b8,a6,13,f2,70,c4,e9,58,1d)

/* Room for the `_aaas` member apart from escaped strings. */
#define EVENT_META_MAX (384 + CHAIN_FIELD_LEN)

int
event_agent_id(char ret[static EVENT_AGENT_ID_LEN + 1])
{
    sd_id128_t id;
    int r;

    r = sd_id128_get_machine_app_specific(EVENT_APP_ID, &id);
    if (r < 0)
        return r;
    (void)sd_id128_to_string(id, ret);
    return 0;
}

int
event_builder_init(struct event_builder *b, const char *agent)
{
    memset(b, 0, sizeof(*b));
    if (strlen(agent) > EVENT_AGENT_ID_LEN)
        return -EINVAL;
    strcpy(b->agent, agent);
    b->time_sec = -1;
    return 0;
}

void
event_builder_done(struct event_builder *b)
{
    free(b->buf);
    b->buf = NULL;
    b->len = b->cap = 0;
}

static int
event_reserve(struct event_builder *b, size_t need)
{
    size_t cap;
    char *p;

    if (need <= b->cap)
        return 0;
    cap = b->cap ? b->cap : 4096;
    while (cap < need)
        cap *= 2;
    p = realloc(b->buf, cap);
    if (!p)
        return -ENOMEM;
    b->buf = p;
    b->cap = cap;
    return 0;
}

static void
event_put(struct event_builder *b, const void *p, size_t n)
{
    memcpy(b->buf + b->len, p, n);
    b->len += n;
}

static void
event_puts(struct event_builder *b, const char *s)
{
    event_put(b, s, strlen(s));
}

/*
 * Appends s as a JSON string.  The caller reserved 6 bytes per input byte
 * plus the quotes, the worst case (every byte a control character).
 */
static void
event_put_json_string(struct event_builder *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *o = b->buf + b->len;

    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        switch (c) {
        case '"':  *o++ = '"'; break;
        case '\\': *o++ = '\\'; break;
        case '\n': *o++ = 'n'; break;
        case '\r': *o++ = 'r'; break;
        case '\t': *o++ = 't'; break;
        default:
            *o++ = 'u';
            *o++ = '0';
            *o++ = '0';
            *o++ = hex[c >> 4];
            *o++ = hex[c & 15];
        }
    }
    *o++ = '"';
    b->len = (size_t)(o - b->buf);
}

static size_t
event_str_room(const char *s)
{
    return s ? strlen(s) * 6 + 2 : 0;
}

bool
event_utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    const unsigned char *end = p + len;

    while (p < end) {
        unsigned char c = *p;
        uint32_t cp;
        size_t n;

        if (c == 0)
            return false;
        if (c < 0x80) {
            p++;
            continue;
        }
        if (c >= 0xc2 && c <= 0xdf) {
            n = 1;
            cp = c & 0x1f;
        } else if (c >= 0xe0 && c <= 0xef) {
            n = 2;
            cp = c & 0x0f;
        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 3;
            cp = c & 0x07;
        } else {
            return false;
        }
        if ((size_t)(end - p) <= n)
            return false;
        for (size_t i = 1; i <= n; i++) {
            if ((p[i] & 0xc0) != 0x80)
                return false;
            cp = (cp << 6) | (p[i] & 0x3f);
        }
        /* Overlong forms, surrogates and values past U+10FFFF. */
        if ((n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
            return false;
        p += n + 1;
    }
    return true;
}

/* RFC 3339 in UTC with microseconds; the date part is cached per second. */
static void
event_put_time(struct event_builder *b, const struct timespec *now)
{
    unsigned long usec = (unsigned long)now->tv_nsec / 1000 % 1000000;
    char frac[9];

    if (now->tv_sec != b->time_sec) {
        struct tm tm;

        (void)gmtime_r(&now->tv_sec, &tm);
        (void)strftime(b->time_text, sizeof(b->time_text),
                       "%Y-%m-%dT%H:%M:%S", &tm);
        b->time_sec = now->tv_sec;
    }
    event_puts(b, b->time_text);
    frac[0] = '.';
    for (int i = 6; i >= 1; i--) {
        frac[i] = (char)('0' + usec % 10);
        usec /= 10;
    }
    frac[7] = 'Z';
    event_put(b, frac, 8);
}

static void
event_put_peer_string(struct event_builder *b, const char *key,
                      const char *value)
{
    if (!value)
        return;
    event_puts(b, key);
    event_put_json_string(b, value, strlen(value));
}

/*
 * The writer's credentials as the kernel gave them, and what the pid led
 * to; a name that could not be found is left out rather than guessed.
 */
static void
event_put_peer(struct event_builder *b, const struct event_source *src)
{
    char num[96];

    (void)snprintf(num, sizeof(num),
                   ",\"peer\":{\"pid\":%ld,\"uid\":%lu,\"gid\":%lu",
                   (long)src->pid, (unsigned long)src->uid,
                   (unsigned long)src->gid);
    event_puts(b, num);
    event_put_peer_string(b, ",\"comm\":", src->comm);
    event_put_peer_string(b, ",\"exe\":", src->exe);
    event_put_peer_string(b, ",\"unit\":", src->unit);
    event_put_peer_string(b, ",\"user_unit\":", src->user_unit);
    event_put(b, "}", 1);
}

/* Writes `"_aaas":{...}` (no leading comma, no closing brace of the event). */
static void
event_put_meta(struct event_builder *b, uint64_t seq,
               const struct event_source *src, const struct timespec *now)
{
    char num[96];

    event_puts(b, "\"_aaas\":{\"agent\":\"");
    event_puts(b, b->agent);
    if (seq == EVENT_SEQ_NONE) {
        event_puts(b, "\",\"time\":\"");
    } else {
        (void)snprintf(num, sizeof(num), "\",\"seq\":%llu,\"time\":\"",
                       (unsigned long long)seq);
        event_puts(b, num);
    }
    event_put_time(b, now);
    if (src->kind == EVENT_SOURCE_FILE) {
        event_puts(b, "\",\"source\":\"file\",\"input\":");
        event_put_json_string(b, src->input, strlen(src->input));
        event_puts(b, ",\"path\":");
        event_put_json_string(b, src->path, strlen(src->path));
    } else if (src->kind == EVENT_SOURCE_DAEMON) {
        event_puts(b, "\",\"source\":\"daemon\"");
    } else {
        event_puts(b, "\",\"source\":\"socket\"");
    }
    if (src->has_peer)
        event_put_peer(b, src);
    event_put(b, "}", 1);
}

/* The chain member goes last into `_aaas`, hashed over the line as built. */
static int
event_chain(struct event_builder *b)
{
    if (!b->chain)
        return 0;
    return chain_link(b->chain, b->buf, &b->len, b->cap);
}

static size_t
event_meta_room(const struct event_source *src)
{
    return EVENT_META_MAX + event_str_room(src->input) +
           event_str_room(src->path) + event_str_room(src->comm) +
           event_str_room(src->exe) + event_str_room(src->unit) +
           event_str_room(src->user_unit);
}

int
event_build(struct event_builder *b, const char *data, size_t len,
            const struct parse_json_result *pr, uint64_t seq,
            const struct event_source *src, const struct timespec *now)
{
    int r;

    if (pr->close >= len || data[pr->close] != '}')
        return -EINVAL;

    r = event_reserve(b, len + event_meta_room(src) + 2);
    if (r < 0)
        return r;

    /*
     * The writer's bytes stay exactly as written, blanks after the closing
     * brace included: cutting our member out again gives back the line.
     */
    b->len = 0;
    event_put(b, data, pr->close);
    if (!pr->empty)
        event_put(b, ",", 1);
    event_put_meta(b, seq, src, now);
    event_put(b, data + pr->close, len - pr->close);
    event_put(b, "\n", 1);
    return event_chain(b);
}

int
event_build_reject(struct event_builder *b, const char *data, size_t len,
                   const char *reason, uint64_t seq,
                   const struct event_source *src, const struct timespec *now)
{
    bool utf8 = event_utf8_valid(data, len);
    size_t raw_room = utf8 ? len * 6 + 2 : (len + 2) / 3 * 4 + 3;
    int r;

    r = event_reserve(b, raw_room + event_str_room(reason) +
                      event_meta_room(src) + 64);
    if (r < 0)
        return r;

    b->len = 0;
    event_puts(b, "{\"_aaas_reject\":{\"reason\":");
    event_put_json_string(b, reason, strlen(reason));
    if (utf8) {
        event_puts(b, ",\"raw\":");
        event_put_json_string(b, data, len);
    } else {
        /* JSON strings cannot carry arbitrary bytes; base64 keeps them. */
        event_puts(b, ",\"raw_base64\":\"");
        b->len += (size_t)EVP_EncodeBlock((unsigned char *)b->buf + b->len,
                                          (const unsigned char *)data,
                                          (int)len);
        event_put(b, "\"", 1);
    }
    event_puts(b, "},");
    event_put_meta(b, seq, src, now);
    event_puts(b, "}\n");
    return event_chain(b);
}
