/* SPDX-License-Identifier: MIT */
/*
 * Kinesis Data Streams PutRecords over JSON 1.1: the endpoint, partition
 * keys, the signed request for a batch and the dialect of its answer.
 * Signing, escaping and the answer's parser are sink_firehose's.
 *
 * The request body is
 *
 *     {"StreamName":"NAME","Records":[{"Data":"BASE64",
 *      "PartitionKey":"KEY"},...]}
 *
 * and a 200 answer {"FailedRecordCount":N,"Records":[...]} holds, per
 * record and in order, {"SequenceNumber":...,"ShardId":...} or
 * {"ErrorCode":...,"ErrorMessage":...}.
 */
#include "sink_kinesis.h"

#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#define SINK_KINESIS_SERVICE "kinesis"
#define SINK_KINESIS_TARGET "Kinesis_20131202.PutRecords"
#define SINK_KINESIS_DEFAULT_KEY "{agent}"
#define SINK_KINESIS_AGENT_MAX 32u      /* characters of an agent id */
#define SINK_KINESIS_SEQ_MAX 20u        /* digits of a uint64_t */

#define STRLEN(s) (sizeof(s) - 1)

static const char body_record_open[] = "{\"Data\":\"";
static const char body_record_key[] = "\",\"PartitionKey\":\"";
static const char body_record_close[] = "\"}";
static const char body_close[] = "]}";

static const struct sink_firehose_api sink_kinesis_api = {
    .service = SINK_KINESIS_SERVICE,
    .target = SINK_KINESIS_TARGET,
};

const struct sink_firehose_dialect sink_kinesis_dialect = {
    .failed_count = "FailedRecordCount",
    .responses = "Records",
    .record_id = "SequenceNumber",
};

struct sink_kinesis {
    char *region;
    char *url;
    char *host;
    char *body_prefix;          /* up to and including "Records":[ */
    size_t body_prefix_len;
    char *key;                  /* the template, JSON-escaped */
    size_t key_len;
    size_t key_fixed_bytes;     /* raw bytes besides the placeholders */
    size_t n_agent;             /* {agent} placeholders */
    size_t n_seq;               /* {seq} placeholders */
    char *agent;                /* JSON-escaped */
    size_t agent_len;
};

enum key_part {
    KEY_TEXT,
    KEY_AGENT,
    KEY_SEQ,
    KEY_BAD,
};

/* What the template holds at p: a placeholder (with its length) or text. */
static enum key_part
sink_kinesis_key_part(const char *p, size_t *ret_len)
{
    if (*p != '{') {
        *ret_len = 1;
        return KEY_TEXT;
    }
    if (strncmp(p, "{agent}", 7) == 0) {
        *ret_len = 7;
        return KEY_AGENT;
    }
    if (strncmp(p, "{seq}", 5) == 0) {
        *ret_len = 5;
        return KEY_SEQ;
    }
    *ret_len = 1;
    return KEY_BAD;
}

bool
sink_kinesis_key_valid(const char *tmpl, const char **reterr_reason)
{
    size_t chars = 0, n, escaped;
    char *tmp;
    int r;

    tmp = malloc(6 * strlen(tmpl) + 1);
    if (!tmp) {
        *reterr_reason = "out of memory";
        return false;
    }
    r = sink_firehose_json_escape(tmpl, tmp, &escaped);
    free(tmp);
    if (r < 0) {
        *reterr_reason = "partition key is not valid UTF-8";
        return false;
    }

    for (const char *p = tmpl; *p; p += n) {
        switch (sink_kinesis_key_part(p, &n)) {
        case KEY_AGENT:
            chars += SINK_KINESIS_AGENT_MAX;
            break;
        case KEY_SEQ:
            chars += SINK_KINESIS_SEQ_MAX;
            break;
        case KEY_BAD:
            *reterr_reason = "'{' starts no known placeholder ({agent} or "
                             "{seq})";
            return false;
        case KEY_TEXT:
            /* Continuation bytes do not start a character. */
            if (((unsigned char)*p & 0xc0) != 0x80)
                chars++;
            break;
        }
    }
    if (chars == 0) {
        *reterr_reason = "partition key is empty";
        return false;
    }
    if (chars > SINK_KINESIS_KEY_MAX) {
        *reterr_reason = "partition key may be longer than 256 characters "
                         "({agent} counts 32, {seq} 20)";
        return false;
    }
    return true;
}

static char *
sink_kinesis_escape(const char *s, size_t *ret_len)
{
    char *out = malloc(6 * strlen(s) + 1);

    if (!out)
        return NULL;
    if (sink_firehose_json_escape(s, out, ret_len) < 0) {
        free(out);
        return NULL;
    }
    out[*ret_len] = '\0';
    return out;
}

static int
sink_kinesis_set_key(struct sink_kinesis *s, const char *tmpl,
                     const char *agent, const char **reason)
{
    size_t n;

    if (!sink_kinesis_key_valid(tmpl, reason))
        return -EINVAL;
    for (const char *p = tmpl; *p; p += n) {
        enum key_part k = sink_kinesis_key_part(p, &n);

        if (k == KEY_AGENT)
            s->n_agent++;
        else if (k == KEY_SEQ)
            s->n_seq++;
        else
            s->key_fixed_bytes++;
    }
    if (s->n_agent > 0) {
        if (!agent || !*agent || strlen(agent) > SINK_KINESIS_AGENT_MAX) {
            *reason = "{agent} needs an agent id of 1 to 32 characters";
            return -EINVAL;
        }
        s->agent = sink_kinesis_escape(agent, &s->agent_len);
        if (!s->agent) {
            *reason = "agent id is not valid UTF-8";
            return -EINVAL;
        }
    }
    s->key = sink_kinesis_escape(tmpl, &s->key_len);
    return s->key ? 0 : -ENOMEM;
}

static int
sink_kinesis_set_stream(struct sink_kinesis *s, const char *stream,
                        const char **reason)
{
    static const char head[] = "{\"StreamName\":\"";
    static const char tail[] = "\",\"Records\":[";
    size_t len;
    int r;

    s->body_prefix = malloc(STRLEN(head) + 6 * strlen(stream) +
                            STRLEN(tail) + 1);
    if (!s->body_prefix)
        return -ENOMEM;
    memcpy(s->body_prefix, head, STRLEN(head));
    r = sink_firehose_json_escape(stream, s->body_prefix + STRLEN(head),
                                  &len);
    if (r < 0) {
        *reason = "stream name is not valid UTF-8";
        return r;
    }
    len += STRLEN(head);
    memcpy(s->body_prefix + len, tail, sizeof(tail));
    s->body_prefix_len = len + STRLEN(tail);
    return 0;
}

int
sink_kinesis_new(const struct sink_kinesis_options *o,
                 struct sink_kinesis **ret, const char **reterr_reason)
{
    struct sink_kinesis *s = NULL;
    const char *reason = NULL;
    char *url = NULL;
    int r;

    if (!o->stream || !*o->stream) {
        reason = "no stream given";
        r = -EINVAL;
        goto out;
    }
    if (!o->region || !sink_firehose_region_valid(o->region)) {
        reason = "region must be a non-empty [a-z0-9-] name";
        r = -EINVAL;
        goto out;
    }

    s = calloc(1, sizeof(*s));
    if (!s) {
        r = -ENOMEM;
        goto out;
    }
    s->region = strdup(o->region);
    if (!s->region) {
        r = -ENOMEM;
        goto out;
    }
    r = sink_kinesis_set_stream(s, o->stream, &reason);
    if (r < 0)
        goto out;
    r = sink_kinesis_set_key(s, o->partition_key ? o->partition_key
                                                 : SINK_KINESIS_DEFAULT_KEY,
                             o->agent, &reason);
    if (r < 0)
        goto out;

    if (!o->endpoint) {
        url = sink_firehose_default_url(SINK_KINESIS_SERVICE, o->region);
        if (!url) {
            r = -ENOMEM;
            goto out;
        }
    }
    r = sink_firehose_endpoint_split(url ? url : o->endpoint, &s->url,
                                     &s->host, &reason);
    if (r < 0)
        goto out;

    *ret = s;
    s = NULL;
out:
    if (r < 0 && reason && reterr_reason)
        *reterr_reason = reason;
    free(url);
    sink_kinesis_free(s);
    return r < 0 ? r : 0;
}

struct sink_kinesis *
sink_kinesis_free(struct sink_kinesis *s)
{
    if (!s)
        return NULL;
    free(s->region);
    free(s->url);
    free(s->host);
    free(s->body_prefix);
    free(s->key);
    free(s->agent);
    free(s);
    return NULL;
}

const char *
sink_kinesis_url(const struct sink_kinesis *s)
{
    return s->url;
}

const char *
sink_kinesis_host(const struct sink_kinesis *s)
{
    return s->host;
}

/* Writes the key for a record starting at seq; returns its raw bytes. */
static size_t
sink_kinesis_put_key(const struct sink_kinesis *s, uint64_t seq, char **pp)
{
    char *p = *pp, digits[SINK_KINESIS_SEQ_MAX + 1];
    size_t raw = s->key_fixed_bytes, n;
    int dn = snprintf(digits, sizeof(digits), "%" PRIu64, seq);

    for (const char *k = s->key; *k; k += n) {
        switch (sink_kinesis_key_part(k, &n)) {
        case KEY_AGENT:
            memcpy(p, s->agent, s->agent_len);
            p += s->agent_len;
            raw += s->agent_len;
            break;
        case KEY_SEQ:
            memcpy(p, digits, (size_t)dn);
            p += dn;
            raw += (size_t)dn;
            break;
        default:
            *p++ = *k;
            break;
        }
    }
    *pp = p;
    return raw;
}

static int
sink_kinesis_build_body(const struct sink_kinesis *s, const struct batch *b,
                        struct sink_firehose_request *r)
{
    size_t n = batch_n_records(b), room, key_room, call_bytes = 0;
    char *p;
    int k;

    if (n > SINK_KINESIS_MAX_RECORDS)
        return -E2BIG;
    key_room = s->key_len + s->n_agent * s->agent_len +
               s->n_seq * SINK_KINESIS_SEQ_MAX;
    room = s->body_prefix_len + batch_encoded_len(b) +
           n * (STRLEN(body_record_open) + STRLEN(body_record_key) +
                key_room + STRLEN(body_record_close) + 1) +
           STRLEN(body_close) + 1;
    k = sink_firehose_reserve(&r->body, &r->body_size, room);
    if (k < 0)
        return k;

    p = r->body;
    memcpy(p, s->body_prefix, s->body_prefix_len);
    p += s->body_prefix_len;
    for (size_t i = 0; i < n; i++) {
        const struct batch_record *rec = batch_record(b, i);
        size_t key_bytes;

        if (i > 0)
            *p++ = ',';
        memcpy(p, body_record_open, STRLEN(body_record_open));
        p += STRLEN(body_record_open);
        p += EVP_EncodeBlock((unsigned char *)p, batch_record_data(b, i),
                             (int)rec->len);
        memcpy(p, body_record_key, STRLEN(body_record_key));
        p += STRLEN(body_record_key);
        key_bytes = sink_kinesis_put_key(s, rec->first_seq, &p);
        memcpy(p, body_record_close, STRLEN(body_record_close));
        p += STRLEN(body_record_close);

        /* The service counts the key against both limits. */
        if (rec->len + key_bytes > SINK_KINESIS_MAX_RECORD_BYTES)
            return -E2BIG;
        call_bytes += rec->len + key_bytes;
    }
    if (call_bytes > SINK_KINESIS_MAX_CALL_BYTES)
        return -E2BIG;
    memcpy(p, body_close, sizeof(body_close));
    p += STRLEN(body_close);

    r->body_len = (size_t)(p - r->body);
    r->n_records = n;
    return 0;
}

int
sink_kinesis_build(const struct sink_kinesis *s, const struct batch *b,
                   const struct sigv4_credentials *cred, time_t now,
                   struct sink_firehose_request *r)
{
    int k;

    if (batch_is_empty(b) || !sink_firehose_credentials_usable(cred))
        return -EINVAL;

    r->url = s->url;
    r->n_headers = 0;
    r->n_records = 0;
    r->body_len = 0;

    k = sink_kinesis_build_body(s, b, r);
    if (k < 0) {
        r->body_len = 0;
        return k;
    }
    k = sink_firehose_sign_call(&sink_kinesis_api, s->host, s->region, cred,
                                now, r);
    if (k < 0) {
        r->n_headers = 0;
        return k;
    }
    return 0;
}
