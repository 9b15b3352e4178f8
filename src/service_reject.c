/* SPDX-License-Identifier: MIT */
/*
 * Builds the stand-in line for a record the service will never take.  It
 * owns that line's format only; deciding which records need one and
 * putting it in the batch is the sender's job.
 */
#include "service_reject.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "event.h"

#define SERVICE_REJECT_REASON "refused by the service for good"

struct rj_buf {
    char *p;
    size_t len;
};

static void
rj_put(struct rj_buf *b, const void *s, size_t n)
{
    memcpy(b->p + b->len, s, n);
    b->len += n;
}

static void
rj_puts(struct rj_buf *b, const char *s)
{
    rj_put(b, s, strlen(s));
}

/* Needs 6 * n + 2 bytes of room: every byte may become \u00XX. */
static void
rj_put_string(struct rj_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    char *o = b->p + b->len;

    *o++ = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c >= 0x20 && c != '"' && c != '\\' && c != 0x7f) {
            *o++ = (char)c;
            continue;
        }
        *o++ = '\\';
        if (c == '"' || c == '\\') {
            *o++ = (char)c;
            continue;
        }
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = hex[c >> 4];
        *o++ = hex[c & 15];
    }
    *o++ = '"';
    b->len = (size_t)(o - b->p);
}

/*
 * The first event's `_aaas` object in the record: the daemon appends it
 * last, so it runs from the line's last `"_aaas":` to the brace before
 * the event's closing one.  A writer's string cannot hold that text
 * unescaped.  *ret_len 0 when the line has no such member.
 */
static const char *
rj_find_meta(const char *rec, size_t len, size_t *ret_len)
{
    static const char key[] = "\"_aaas\":{";
    const char *nl = memchr(rec, '\n', len);
    size_t line = nl ? (size_t)(nl - rec) : len;
    const char *at = NULL, *close = NULL;

    *ret_len = 0;
    for (size_t i = 0; i + sizeof(key) - 1 <= line; i++)
        if (memcmp(rec + i, key, sizeof(key) - 1) == 0)
            at = rec + i;
    if (!at)
        return NULL;
    for (size_t i = line; i > 0; i--)
        if (rec[i - 1] == '}') {
            close = rec + i - 1;
            break;
        }
    at += sizeof(key) - 2;          /* at the object's opening brace */
    if (!close || close <= at + 1)
        return NULL;
    *ret_len = (size_t)(close - at);
    return at;
}

/* Cuts n back to a UTF-8 character boundary of s. */
static size_t
rj_utf8_cut(const char *s, size_t n, size_t full)
{
    if (n >= full)
        return full;
    while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
        n--;
    return n;
}

static size_t
rj_room(const struct service_reject *rj, size_t raw, size_t msg,
        size_t meta)
{
    return 512 + strlen(SERVICE_REJECT_REASON) +
           6 * strlen(rj->error_code) + 2 + 6 * msg + 2 +
           6 * raw + 2 + meta + 1;
}

static void
rj_write(struct rj_buf *b, const struct service_reject *rj, size_t raw,
         bool raw_utf8, size_t msg, const char *meta, size_t meta_len)
{
    char num[160];

    rj_puts(b, "{\"_aaas_reject\":{\"reason\":");
    rj_put_string(b, SERVICE_REJECT_REASON, strlen(SERVICE_REJECT_REASON));
    rj_puts(b, ",\"error_code\":");
    rj_put_string(b, rj->error_code, strlen(rj->error_code));
    rj_puts(b, ",\"error_message\":");
    rj_put_string(b, rj->error_message, msg);
    (void)snprintf(num, sizeof(num),
                   ",\"first_seq\":%llu,\"last_seq\":%llu,\"events\":%zu,"
                   "\"bytes\":%zu",
                   (unsigned long long)rj->first_seq,
                   (unsigned long long)rj->last_seq, rj->n_events,
                   rj->record_len);
    rj_puts(b, num);
    if (raw_utf8) {
        rj_puts(b, ",\"raw\":");
        rj_put_string(b, rj->record, raw);
    } else {
        /* JSON strings cannot carry arbitrary bytes; base64 keeps them. */
        rj_puts(b, ",\"raw_base64\":\"");
        b->len += (size_t)EVP_EncodeBlock((unsigned char *)b->p + b->len,
                                          rj->record, (int)raw);
        rj_puts(b, "\"");
    }
    rj_puts(b, raw < rj->record_len ? ",\"raw_truncated\":true}"
                                    : ",\"raw_truncated\":false}");
    if (meta_len > 0) {
        rj_puts(b, ",\"_aaas\":");
        rj_put(b, meta, meta_len);
    } else {
        /* Not one of our lines: still say which events it stands for. */
        (void)snprintf(num, sizeof(num), ",\"_aaas\":{\"seq\":%llu}",
                       (unsigned long long)rj->first_seq);
        rj_puts(b, num);
    }
    rj_puts(b, "}\n");
    b->p[b->len] = '\0';
}

int
service_reject_build(const struct service_reject *rj, size_t max_len,
                     char **ret, size_t *ret_len)
{
    const char *rec = rj->record;
    size_t meta_len, raw, msg, full_msg = strlen(rj->error_message);
    const char *meta = rj_find_meta(rec, rj->record_len, &meta_len);
    struct rj_buf b = { 0 };
    bool utf8;

    raw = rj_utf8_cut(rec, SERVICE_REJECT_RAW_MAX, rj->record_len);
    utf8 = event_utf8_valid(rec, raw);
    msg = event_utf8_valid(rj->error_message, full_msg) ? full_msg : 0;

    b.p = malloc(rj_room(rj, raw, msg, meta_len));
    if (!b.p)
        return -ENOMEM;

    /* Drop what matters least first: the raw head, then the message. */
    for (int pass = 0; pass < 3; pass++) {
        if (pass == 1)
            raw = 0;
        if (pass == 2)
            msg = 0;
        b.len = 0;
        rj_write(&b, rj, raw, utf8, msg, meta, meta_len);
        if (b.len <= max_len) {
            *ret = b.p;
            *ret_len = b.len;
            return 0;
        }
    }
    free(b.p);
    return -ENOSPC;
}
