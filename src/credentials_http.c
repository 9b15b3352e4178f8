/* SPDX-License-Identifier: MIT */
/*
 * Fetching credentials over HTTP for the chain: the blocking request and
 * the formats of the answers.  Which source asks, and when, is decided in
 * credentials.c.
 */
#include "credentials_http.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <openssl/crypto.h>
#include <yajl/yajl_parse.h>

/* Credential answers are a few KiB; anything larger is not one. */
#define CREDENTIALS_HTTP_BODY_MAX (64u * 1024u)

void
credentials_value_wipe(struct credentials_value *v)
{
    char **s[] = { &v->access_key_id, &v->secret_access_key,
                   &v->session_token };

    for (size_t i = 0; i < sizeof(s) / sizeof(s[0]); i++) {
        if (!*s[i])
            continue;
        OPENSSL_cleanse(*s[i], strlen(*s[i]));
        free(*s[i]);
        *s[i] = NULL;
    }
    v->expires = 0;
}

static size_t
credentials_http_write(char *p, size_t size, size_t n, void *userdata)
{
    struct credentials_http_response *r = userdata;
    size_t len = size * n;

    if (r->body_len + len >= CREDENTIALS_HTTP_BODY_MAX)
        return 0;
    memcpy(r->body + r->body_len, p, len);
    r->body_len += len;
    r->body[r->body_len] = '\0';
    return len;
}

static void
credentials_http_setup(CURL *c, const struct credentials_http_request *req,
                       struct curl_slist *h,
                       struct credentials_http_response *ret)
{
    (void)curl_easy_setopt(c, CURLOPT_URL, req->url);
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    (void)curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, req->method);
    if (req->body) {
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, req->body);
    } else if (strcmp(req->method, "PUT") == 0) {
        /* An empty body, sent with Content-Length: 0 as IMDS wants. */
        (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, "");
    }
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, credentials_http_write);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, ret);
    (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ret->error);
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                           req->connect_timeout_ms);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, req->timeout_ms);
    (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* A redirect could carry a bearer token to another host. */
    (void)curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    if (req->ca_file)
        (void)curl_easy_setopt(c, CURLOPT_CAINFO, req->ca_file);
    if (req->no_proxy)
        (void)curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    else if (req->proxy)
        (void)curl_easy_setopt(c, CURLOPT_PROXY, req->proxy);
}

int
credentials_http_fetch(const struct credentials_http_request *req,
                       struct credentials_http_response *ret)
{
    struct curl_slist *h = NULL;
    CURLcode code;
    CURL *c = NULL;
    int r = 0;

    *ret = (struct credentials_http_response){ 0 };
    ret->body = malloc(CREDENTIALS_HTTP_BODY_MAX);
    if (!ret->body)
        return -ENOMEM;
    ret->body[0] = '\0';

    for (size_t i = 0; i < req->n_headers; i++) {
        struct curl_slist *t = curl_slist_append(h, req->headers[i]);

        if (!t) {
            r = -ENOMEM;
            goto out;
        }
        h = t;
    }
    c = curl_easy_init();
    if (!c) {
        r = -ENOMEM;
        goto out;
    }
    credentials_http_setup(c, req, h, ret);

    code = curl_easy_perform(c);
    if (code != CURLE_OK) {
        if (!ret->error[0])
            (void)snprintf(ret->error, sizeof(ret->error), "%s",
                           curl_easy_strerror(code));
        r = code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        goto out;
    }
    (void)curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &ret->status);

out:
    if (c)
        curl_easy_cleanup(c);
    /* Header lines may hold a token. */
    for (struct curl_slist *t = h; t; t = t->next)
        OPENSSL_cleanse(t->data, strlen(t->data));
    curl_slist_free_all(h);
    return r;
}

void
credentials_http_response_done(struct credentials_http_response *r)
{
    if (r->body) {
        OPENSSL_cleanse(r->body, r->body_len);
        free(r->body);
    }
    *r = (struct credentials_http_response){ 0 };
}

/* Days since 1970-01-01 of a proleptic Gregorian date. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int
credentials_parse_time(const char *s, size_t len, time_t *ret)
{
    unsigned y, mo, d, h, mi, sec;
    char buf[40];
    const char *p;
    int off = 0, n = 0;
    int64_t t;

    if (len >= sizeof(buf))
        return -EINVAL;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (sscanf(buf, "%4u-%2u-%2uT%2u:%2u:%2u%n", &y, &mo, &d, &h, &mi, &sec,
               &n) != 6 || n != 19)
        return -EINVAL;
    if (mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
        sec > 60)
        return -EINVAL;
    p = buf + n;
    if (*p == '.') {
        p++;
        while (*p >= '0' && *p <= '9')
            p++;
    }
    if ((*p == '+' || *p == '-') && strlen(p) == 6 && p[3] == ':') {
        unsigned oh, om;

        if (sscanf(p + 1, "%2u:%2u", &oh, &om) != 2)
            return -EINVAL;
        off = (int)(oh * 3600 + om * 60) * (*p == '-' ? -1 : 1);
    } else if (strcmp(p, "Z") != 0) {
        return -EINVAL;
    }

    t = days_from_civil(y, mo, d) * 86400 + h * 3600 + mi * 60 + sec - off;
    *ret = (time_t)t;
    return 0;
}

enum json_key {
    JSON_KEY_OTHER,
    JSON_KEY_ID,
    JSON_KEY_SECRET,
    JSON_KEY_TOKEN,
    JSON_KEY_EXPIRATION,
    JSON_KEY_CODE,
};

struct json_parser {
    struct credentials_value *v;
    unsigned depth;
    enum json_key key;
    bool bad_time;
    bool failed_code;           /* IMDS "Code" other than "Success" */
    bool nomem;
};

static int
json_string(void *ctx, const unsigned char *s, size_t len)
{
    struct json_parser *p = ctx;
    char **dst = NULL;

    if (p->depth != 1)
        return 1;
    switch (p->key) {
    case JSON_KEY_ID:
        dst = &p->v->access_key_id;
        break;
    case JSON_KEY_SECRET:
        dst = &p->v->secret_access_key;
        break;
    case JSON_KEY_TOKEN:
        dst = &p->v->session_token;
        break;
    case JSON_KEY_EXPIRATION:
        if (credentials_parse_time((const char *)s, len, &p->v->expires) < 0)
            p->bad_time = true;
        return 1;
    case JSON_KEY_CODE:
        p->failed_code = len != 7 || memcmp(s, "Success", 7) != 0;
        return 1;
    default:
        return 1;
    }
    if (*dst) {
        OPENSSL_cleanse(*dst, strlen(*dst));
        free(*dst);
    }
    *dst = strndup((const char *)s, len);
    if (!*dst) {
        p->nomem = true;
        return 0;
    }
    return 1;
}

static int
json_other(void *ctx)
{
    (void)ctx;
    return 1;
}

static int
json_other_bool(void *ctx, int v)
{
    (void)v;
    return json_other(ctx);
}

static int
json_other_number(void *ctx, const char *s, size_t len)
{
    (void)s;
    (void)len;
    return json_other(ctx);
}

static int
json_key(void *ctx, const unsigned char *k, size_t len)
{
    static const struct {
        const char *name;
        enum json_key key;
    } keys[] = {
        { "AccessKeyId", JSON_KEY_ID },
        { "SecretAccessKey", JSON_KEY_SECRET },
        { "Token", JSON_KEY_TOKEN },
        { "Expiration", JSON_KEY_EXPIRATION },
        { "Code", JSON_KEY_CODE },
    };
    struct json_parser *p = ctx;

    p->key = JSON_KEY_OTHER;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
        if (strlen(keys[i].name) == len && memcmp(keys[i].name, k, len) == 0)
            p->key = keys[i].key;
    return 1;
}

static int
json_open(void *ctx)
{
    ((struct json_parser *)ctx)->depth++;
    return 1;
}

static int
json_close(void *ctx)
{
    ((struct json_parser *)ctx)->depth--;
    return 1;
}

static const yajl_callbacks json_callbacks = {
    .yajl_null = json_other,
    .yajl_boolean = json_other_bool,
    .yajl_number = json_other_number,
    .yajl_string = json_string,
    .yajl_start_map = json_open,
    .yajl_map_key = json_key,
    .yajl_end_map = json_close,
    .yajl_start_array = json_open,
    .yajl_end_array = json_close,
};

int
credentials_parse_json(const char *body, size_t len,
                       struct credentials_value *ret,
                       const char **reterr_reason)
{
    struct credentials_value v = { 0 };
    struct json_parser p = { .v = &v };
    yajl_status st;
    yajl_handle h;

    h = yajl_alloc(&json_callbacks, NULL, &p);
    if (!h)
        return -ENOMEM;
    st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);

    if (p.nomem) {
        credentials_value_wipe(&v);
        return -ENOMEM;
    }
    if (st != yajl_status_ok)
        *reterr_reason = "the answer is not JSON";
    else if (p.failed_code)
        *reterr_reason = "the answer's Code is not Success";
    else if (!v.access_key_id || !v.secret_access_key)
        *reterr_reason = "the answer lacks AccessKeyId or SecretAccessKey";
    else if (p.bad_time)
        *reterr_reason = "the answer's Expiration is not an ISO 8601 time";
    else {
        *ret = v;
        return 0;
    }
    credentials_value_wipe(&v);
    return -EBADMSG;
}

/*
 * The text of the first <tag>...</tag> in body, entities decoded, into a
 * new string; NULL when absent (or out of memory, told by *nomem).
 */
static char *
xml_element(const char *body, size_t len, const char *tag, bool *nomem)
{
    char open[48], close[48];
    const char *start, *end;
    char *out, *o;

    (void)snprintf(open, sizeof(open), "<%s>", tag);
    (void)snprintf(close, sizeof(close), "</%s>", tag);
    start = memmem(body, len, open, strlen(open));
    if (!start)
        return NULL;
    start += strlen(open);
    end = memmem(start, len - (size_t)(start - body), close, strlen(close));
    if (!end)
        return NULL;

    out = malloc((size_t)(end - start) + 1);
    if (!out) {
        *nomem = true;
        return NULL;
    }
    for (o = out; start < end; start++) {
        static const struct {
            const char *ent;
            char c;
        } ents[] = {
            { "&amp;", '&' }, { "&lt;", '<' }, { "&gt;", '>' },
            { "&quot;", '"' }, { "&apos;", '\'' },
        };
        bool done = false;

        for (size_t i = 0; *start == '&' && i < 5; i++) {
            size_t n = strlen(ents[i].ent);

            if ((size_t)(end - start) >= n &&
                memcmp(start, ents[i].ent, n) == 0) {
                *o++ = ents[i].c;
                start += n - 1;
                done = true;
                break;
            }
        }
        if (!done)
            *o++ = *start;
    }
    *o = '\0';
    return out;
}

int
credentials_parse_sts(const char *body, size_t len,
                      struct credentials_value *ret,
                      char *reterr, size_t reterr_size)
{
    struct credentials_value v = { 0 };
    const char *creds;
    char *exp = NULL, *code, *msg;
    bool nomem = false;
    size_t left;
    int r = -EBADMSG;

    creds = memmem(body, len, "<Credentials>", 13);
    if (!creds) {
        code = xml_element(body, len, "Code", &nomem);
        msg = xml_element(body, len, "Message", &nomem);
        (void)snprintf(reterr, reterr_size, "%s: %s",
                       code ? code : "no Credentials in the answer",
                       msg ? msg : "(no message)");
        free(code);
        free(msg);
        return nomem ? -ENOMEM : -EBADMSG;
    }
    left = len - (size_t)(creds - body);
    v.access_key_id = xml_element(creds, left, "AccessKeyId", &nomem);
    v.secret_access_key = xml_element(creds, left, "SecretAccessKey", &nomem);
    v.session_token = xml_element(creds, left, "SessionToken", &nomem);
    exp = xml_element(creds, left, "Expiration", &nomem);
    if (nomem) {
        r = -ENOMEM;
        goto out;
    }
    if (!v.access_key_id || !v.secret_access_key || !v.session_token) {
        (void)snprintf(reterr, reterr_size, "the answer's Credentials lack "
                       "AccessKeyId, SecretAccessKey or SessionToken");
        goto out;
    }
    if (!exp || credentials_parse_time(exp, strlen(exp), &v.expires) < 0) {
        (void)snprintf(reterr, reterr_size, "the answer's Expiration is "
                       "missing or not an ISO 8601 time");
        goto out;
    }
    *ret = v;
    v = (struct credentials_value){ 0 };
    r = 0;
out:
    free(exp);
    credentials_value_wipe(&v);
    return r;
}

int
credentials_form_append(char *out, size_t size, const char *name,
                        const char *value)
{
    static const char hex[] = "0123456789ABCDEF";
    size_t o = strlen(out);

    if (o + strlen(name) + 3 > size)
        return -ENOBUFS;
    if (o > 0)
        out[o++] = '&';
    memcpy(out + o, name, strlen(name));
    o += strlen(name);
    out[o++] = '=';
    for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') ||
                     (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' ||
                     *p == '.' || *p == '~';

        if (o + 4 > size)
            return -ENOBUFS;
        if (plain) {
            out[o++] = (char)*p;
        } else {
            out[o++] = '%';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 0xf];
        }
    }
    out[o] = '\0';
    return 0;
}
