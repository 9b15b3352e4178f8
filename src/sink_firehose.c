/* SPDX-License-Identifier: MIT */
/*
 * Firehose PutRecordBatch over JSON 1.1: the endpoint, the signed request
 * for a batch and the reading of responses into per-record outcomes.
 * Moving the bytes, retry timing and the Date header belong to the sender.
 *
 * The request body is
 *
 *     {"DeliveryStreamName":"NAME","Records":[{"Data":"BASE64"},...]}
 *
 * with the records in batch order.  A 200 response carries one entry in
 * RequestResponses per record, in the same order: {"RecordId":...} when
 * it was taken, {"ErrorCode":...,"ErrorMessage":...} when it was not.
 * Any other status failed the whole call and carries {"__type":...,
 * "message":...}.
 */
#include "sink_firehose.h"

#include <assert.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/evp.h>
#include <yajl/yajl_parse.h>

#include "sigv4.h"

#define SINK_FIREHOSE_CONTENT_TYPE "application/x-amz-json-1.1"
#define SINK_FIREHOSE_TARGET "Firehose_20150804.PutRecordBatch"
#define SINK_FIREHOSE_SERVICE "firehose"

#define STRLEN(s) (sizeof(s) - 1)

static const char body_record_open[] = "{\"Data\":\"";
static const char body_record_close[] = "\"}";
static const char body_close[] = "]}";

struct sink_firehose {
    char *region;
    char *url;                  /* "scheme://host[:port]/" */
    char *host;                 /* the Host header's value */
    char *body_prefix;          /* up to and including "Records":[ */
    size_t body_prefix_len;
};

/* Length of the UTF-8 sequence at p, or 0 when it is not well formed. */
static size_t
utf8_seq_len(const unsigned char *p, size_t left)
{
    unsigned char lo = 0x80, hi = 0xbf;
    size_t n;

    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xc2 && p[0] <= 0xdf)
        n = 2;
    else if (p[0] >= 0xe0 && p[0] <= 0xef)
        n = 3;
    else if (p[0] >= 0xf0 && p[0] <= 0xf4)
        n = 4;
    else
        return 0;
    if (n > left)
        return 0;

    /* The second byte's range rules out overlong forms and surrogates. */
    if (p[0] == 0xe0)
        lo = 0xa0;
    else if (p[0] == 0xed)
        hi = 0x9f;
    else if (p[0] == 0xf0)
        lo = 0x90;
    else if (p[0] == 0xf4)
        hi = 0x8f;
    if (p[1] < lo || p[1] > hi)
        return 0;
    for (size_t i = 2; i < n; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return n;
}

/*
 * Writes s as the inside of a JSON string to out (room for 6 bytes per
 * input byte) and returns the length, or -EINVAL when s is not UTF-8.
 */
int
sink_firehose_json_escape(const char *s, char *out, size_t *ret_len)
{
    static const char hex[] = "0123456789abcdef";
    const unsigned char *p = (const unsigned char *)s;
    size_t left = strlen(s), o = 0;

    while (left > 0) {
        size_t n = utf8_seq_len(p, left);

        if (n == 0)
            return -EINVAL;
        if (*p == '"' || *p == '\\') {
            out[o++] = '\\';
            out[o++] = (char)*p;
        } else if (*p < 0x20) {
            out[o++] = '\\';
            out[o++] = 'u';
            out[o++] = '0';
            out[o++] = '0';
            out[o++] = hex[*p >> 4];
            out[o++] = hex[*p & 0xf];
        } else {
            memcpy(out + o, p, n);
            o += n;
        }
        p += n;
        left -= n;
    }
    *ret_len = o;
    return 0;
}

/* malloc'd "a" "b" "c", or NULL when out of memory. */
static char *
sink_firehose_concat(const char *a, const char *b, size_t b_len,
                     const char *c)
{
    size_t a_len = strlen(a), c_len = strlen(c);
    char *s = malloc(a_len + b_len + c_len + 1);

    if (!s)
        return NULL;
    memcpy(s, a, a_len);
    memcpy(s + a_len, b, b_len);
    memcpy(s + a_len + b_len, c, c_len + 1);
    return s;
}

bool
sink_firehose_region_valid(const char *r)
{
    if (!*r)
        return false;
    for (; *r; r++)
        if (!((*r >= 'a' && *r <= 'z') || (*r >= '0' && *r <= '9') ||
              *r == '-'))
            return false;
    return true;
}

static bool
sink_firehose_host_char(char c, bool bracketed)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
        (c >= '0' && c <= '9') || c == '-' || c == '.')
        return true;
    return bracketed && c == ':';
}

/*
 * Finds the end of HOST in "HOST[:PORT]...": a name, an IPv4 address or
 * a bracketed IPv6 one.  NULL when there is none.
 */
static const char *
sink_firehose_skip_host(const char *p)
{
    const char *host = p;
    bool bracketed = *p == '[';

    if (bracketed)
        p++;
    while (sink_firehose_host_char(*p, bracketed))
        p++;
    if (bracketed) {
        if (*p != ']' || p == host + 1)
            return NULL;
        p++;
    }
    return p == host ? NULL : p;
}

/*
 * Reads ":PORT" at *p, if there is one, and leaves *p after it.  *ret_port
 * points at the digits without leading zeros, or is NULL when no port was
 * given or it is the scheme's default: Host is signed and must be what
 * curl and the SDKs would send.
 */
static int
sink_firehose_skip_port(const char **p, unsigned long default_port,
                        const char **ret_port)
{
    const char *digits;
    unsigned long port;
    char *end;

    *ret_port = NULL;
    if (**p != ':')
        return 0;
    digits = *p + 1;
    if (*digits < '0' || *digits > '9')
        return -EINVAL;
    port = strtoul(digits, &end, 10);
    if (port == 0 || port > 65535)
        return -EINVAL;
    *p = end;

    while (*digits == '0')
        digits++;
    if (port != default_port)
        *ret_port = digits;
    return 0;
}

int
sink_firehose_endpoint_split(const char *endpoint, char **ret_url,
                             char **ret_host, const char **reterr_reason)
{
    const char *scheme, *p, *host, *port = NULL;
    char *h;
    unsigned long default_port;
    size_t host_len, port_len;
    int r;

    if (strncasecmp(endpoint, "https://", 8) == 0) {
        scheme = "https://";
        default_port = 443;
    } else if (strncasecmp(endpoint, "http://", 7) == 0) {
        scheme = "http://";
        default_port = 80;
    } else {
        *reterr_reason = "endpoint must start with http:// or https://";
        return -EINVAL;
    }

    host = endpoint + strlen(scheme);
    p = sink_firehose_skip_host(host);
    if (!p) {
        *reterr_reason = "endpoint has no valid host";
        return -EINVAL;
    }
    host_len = (size_t)(p - host);

    r = sink_firehose_skip_port(&p, default_port, &port);
    if (r < 0) {
        *reterr_reason = "endpoint has a malformed or out of range port";
        return r;
    }
    port_len = port ? (size_t)(p - port) : 0;
    if (*p == '/')
        p++;
    if (*p != '\0') {
        *reterr_reason = "endpoint may not carry a path, query or user";
        return -EINVAL;
    }

    h = malloc(host_len + 1 + port_len + 1);
    if (!h)
        return -ENOMEM;
    memcpy(h, host, host_len);
    h[host_len] = '\0';
    if (port) {
        h[host_len] = ':';
        memcpy(h + host_len + 1, port, port_len);
        h[host_len + 1 + port_len] = '\0';
    }

    *ret_url = sink_firehose_concat(scheme, h, strlen(h), "/");
    if (!*ret_url) {
        free(h);
        return -ENOMEM;
    }
    *ret_host = h;
    return 0;
}

static int
sink_firehose_set_stream(struct sink_firehose *s, const char *stream,
                         const char **reterr_reason)
{
    static const char head[] = "{\"DeliveryStreamName\":\"";
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
        *reterr_reason = "stream name is not valid UTF-8";
        return r;
    }
    len += STRLEN(head);
    memcpy(s->body_prefix + len, tail, sizeof(tail));
    s->body_prefix_len = len + STRLEN(tail);
    return 0;
}

char *
sink_firehose_default_url(const char *service, const char *region)
{
    /* The China partition lives under its own top-level domain. */
    bool china = strncmp(region, "cn-", 3) == 0;
    char *head, *url;

    head = sink_firehose_concat("https://", service, strlen(service), ".");
    if (!head)
        return NULL;
    url = sink_firehose_concat(head, region, strlen(region),
                               china ? ".amazonaws.com.cn" : ".amazonaws.com");
    free(head);
    return url;
}

int
sink_firehose_new(const struct sink_firehose_options *o,
                  struct sink_firehose **ret, const char **reterr_reason)
{
    struct sink_firehose *s = NULL;
    const char *reason = NULL;
    char *url = NULL;
    int r;

    if (!o->stream || !*o->stream) {
        reason = "no delivery stream given";
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

    r = sink_firehose_set_stream(s, o->stream, &reason);
    if (r < 0)
        goto out;

    if (!o->endpoint) {
        url = sink_firehose_default_url(SINK_FIREHOSE_SERVICE, o->region);
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
    sink_firehose_free(s);
    return r < 0 ? r : 0;
}

struct sink_firehose *
sink_firehose_free(struct sink_firehose *s)
{
    if (!s)
        return NULL;
    free(s->region);
    free(s->url);
    free(s->host);
    free(s->body_prefix);
    free(s);
    return NULL;
}

const char *
sink_firehose_url(const struct sink_firehose *s)
{
    return s->url;
}

const char *
sink_firehose_host(const struct sink_firehose *s)
{
    return s->host;
}

void
sink_firehose_request_init(struct sink_firehose_request *r)
{
    *r = (struct sink_firehose_request){ 0 };
}

void
sink_firehose_request_done(struct sink_firehose_request *r)
{
    free(r->body);
    free(r->hdr_buf);
    *r = (struct sink_firehose_request){ 0 };
}

int
sink_firehose_reserve(char **buf, size_t *size, size_t need)
{
    char *p;

    if (*size >= need)
        return 0;

    /* Round up so that batches a little larger than the last reuse it. */
    need = (need + 0xffff) & ~(size_t)0xffff;
    p = malloc(need);
    if (!p)
        return -ENOMEM;
    free(*buf);
    *buf = p;
    *size = need;
    return 0;
}

static int
sink_firehose_build_body(const struct sink_firehose *s, const struct batch *b,
                         struct sink_firehose_request *r)
{
    size_t n = batch_n_records(b), len;
    char *p;
    int k;

    len = s->body_prefix_len + batch_encoded_len(b) +
          n * (STRLEN(body_record_open) + STRLEN(body_record_close)) +
          (n - 1) + STRLEN(body_close);

    /* +1: EVP_EncodeBlock() NUL-terminates what it writes. */
    k = sink_firehose_reserve(&r->body, &r->body_size, len + 1);
    if (k < 0)
        return k;

    p = r->body;
    memcpy(p, s->body_prefix, s->body_prefix_len);
    p += s->body_prefix_len;
    for (size_t i = 0; i < n; i++) {
        const struct batch_record *rec = batch_record(b, i);

        if (i > 0)
            *p++ = ',';
        memcpy(p, body_record_open, STRLEN(body_record_open));
        p += STRLEN(body_record_open);
        k = EVP_EncodeBlock((unsigned char *)p, batch_record_data(b, i),
                            (int)rec->len);
        p += k;
        memcpy(p, body_record_close, STRLEN(body_record_close));
        p += STRLEN(body_record_close);
    }
    memcpy(p, body_close, sizeof(body_close));
    p += STRLEN(body_close);

    assert((size_t)(p - r->body) == len);
    r->body_len = len;
    r->n_records = n;
    return 0;
}

/* Refuses what would break a header line: the values come from outside. */
static bool
sink_firehose_header_safe(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            return false;
    return true;
}

bool
sink_firehose_credentials_usable(const struct sigv4_credentials *cred)
{
    return cred->access_key_id && *cred->access_key_id &&
           cred->secret_access_key && *cred->secret_access_key &&
           sink_firehose_header_safe(cred->access_key_id) &&
           (!cred->session_token ||
            sink_firehose_header_safe(cred->session_token));
}

static const struct sink_firehose_api sink_firehose_api = {
    .service = SINK_FIREHOSE_SERVICE,
    .target = SINK_FIREHOSE_TARGET,
};

/* Appends "Name: value" at *pos and returns where the value starts. */
static char *
sink_firehose_put_header(struct sink_firehose_request *r, size_t *pos,
                         const char *name, const char *value)
{
    char *line = r->hdr_buf + *pos;
    size_t nlen = strlen(name), vlen = strlen(value);

    memcpy(line, name, nlen);
    memcpy(line + nlen, ": ", 2);
    memcpy(line + nlen + 2, value, vlen + 1);
    r->headers[r->n_headers++] = line;
    *pos += nlen + 2 + vlen + 1;
    return line + nlen + 2;
}

static int
sink_firehose_sign(const struct sink_firehose_api *api, const char *region,
                   const struct sigv4_header *sh, size_t n,
                   const struct sigv4_credentials *cred, time_t now,
                   const struct sink_firehose_request *r,
                   char *auth, size_t auth_size)
{
    const struct sigv4_request req = {
        .method = "POST",
        .path = "/",
        .headers = sh,
        .n_headers = n,
        .payload = r->body,
        .payload_len = r->body_len,
    };
    const struct sigv4_scope scope = {
        .region = region,
        .service = api->service,
        .when = now,
    };

    return sigv4_sign(&req, cred, &scope, auth, auth_size, NULL, 0, NULL, 0);
}

int
sink_firehose_sign_call(const struct sink_firehose_api *api,
                        const char *host, const char *region,
                        const struct sigv4_credentials *cred, time_t now,
                        struct sink_firehose_request *r)
{
    struct sigv4_header sh[SINK_FIREHOSE_N_HEADERS_MAX - 1];
    const char *token = cred->session_token;
    size_t pos = 0, n = 0, auth_size, need;
    char date[17], *auth;
    int k;

    if (token && !*token)
        token = NULL;

    /*
     * "AWS4-HMAC-SHA256 Credential=ID/DATE/REGION/firehose/aws4_request,
     * SignedHeaders=..., Signature=HEX" is under 300 bytes besides the
     * key id and the region; the other lines take under 200 besides the
     * host and the token.
     */
    auth_size = 384 + strlen(cred->access_key_id) + strlen(region) +
                strlen(api->service);
    need = 256 + strlen(host) + strlen(api->target) +
           (token ? strlen(token) : 0) + auth_size;
    k = sink_firehose_reserve(&r->hdr_buf, &r->hdr_size, need);
    if (k < 0)
        return k;

    sigv4_format_amz_date(now, date);
    r->n_headers = 0;
    sh[n].name = "host";
    sh[n++].value = sink_firehose_put_header(r, &pos, "Host", host);
    sh[n].name = "content-type";
    sh[n++].value = sink_firehose_put_header(r, &pos, "Content-Type",
                                             SINK_FIREHOSE_CONTENT_TYPE);
    sh[n].name = "x-amz-date";
    sh[n++].value = sink_firehose_put_header(r, &pos, "X-Amz-Date", date);
    sh[n].name = "x-amz-target";
    sh[n++].value = sink_firehose_put_header(r, &pos, "X-Amz-Target",
                                             api->target);
    /* Signed too, as the SDKs do, so that it cannot be swapped. */
    if (token) {
        sh[n].name = "x-amz-security-token";
        sh[n++].value = sink_firehose_put_header(r, &pos,
                                                 "X-Amz-Security-Token", token);
    }

    auth = sink_firehose_put_header(r, &pos, "Authorization", "");
    return sink_firehose_sign(api, region, sh, n, cred, now, r, auth,
                              auth_size);
}

int
sink_firehose_build(const struct sink_firehose *s, const struct batch *b,
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

    k = sink_firehose_build_body(s, b, r);
    if (k < 0)
        return k;

    k = sink_firehose_sign_call(&sink_firehose_api, s->host, s->region, cred,
                                now, r);
    if (k < 0) {
        r->n_headers = 0;
        return k;
    }
    return 0;
}

const char *
sink_firehose_class_to_string(enum sink_firehose_class c)
{
    switch (c) {
    case SINK_FIREHOSE_OK:
        return "ok";
    case SINK_FIREHOSE_RETRY:
        return "retry";
    case SINK_FIREHOSE_AUTH:
        return "auth";
    case SINK_FIREHOSE_FATAL:
        return "fatal";
    }
    return "unknown";
}

static const struct {
    const char *code;
    enum sink_firehose_class class;
} sink_firehose_codes[] = {
    { "ServiceUnavailableException", SINK_FIREHOSE_RETRY },
    { "ThrottlingException", SINK_FIREHOSE_RETRY },
    { "Throttling", SINK_FIREHOSE_RETRY },
    { "InternalFailure", SINK_FIREHOSE_RETRY },
    /* Throttled by KMS: nothing for an operator to fix, unlike KMS*. */
    { "KMSThrottlingException", SINK_FIREHOSE_RETRY },
    /* Kinesis Data Streams' names for a shard or account over its rate. */
    { "ProvisionedThroughputExceededException", SINK_FIREHOSE_RETRY },
    { "LimitExceededException", SINK_FIREHOSE_RETRY },
    { "ExpiredTokenException", SINK_FIREHOSE_AUTH },
    { "ExpiredToken", SINK_FIREHOSE_AUTH },
    { "InvalidSignatureException", SINK_FIREHOSE_AUTH },
    { "SignatureDoesNotMatch", SINK_FIREHOSE_AUTH },
    { "UnrecognizedClientException", SINK_FIREHOSE_AUTH },
    { "InvalidClientTokenId", SINK_FIREHOSE_AUTH },
    { "IncompleteSignature", SINK_FIREHOSE_AUTH },
    { "MissingAuthenticationToken", SINK_FIREHOSE_AUTH },
    { "RequestExpired", SINK_FIREHOSE_AUTH },
    { "ResourceNotFoundException", SINK_FIREHOSE_FATAL },
    { "AccessDeniedException", SINK_FIREHOSE_FATAL },
    { "InvalidArgumentException", SINK_FIREHOSE_FATAL },
    { "InvalidKMSResourceException", SINK_FIREHOSE_FATAL },
    { "SerializationException", SINK_FIREHOSE_FATAL },
    { "ValidationException", SINK_FIREHOSE_FATAL },
};

int
sink_firehose_classify(const char *code)
{
    for (size_t i = 0; i < sizeof(sink_firehose_codes) /
                           sizeof(sink_firehose_codes[0]); i++)
        if (strcmp(code, sink_firehose_codes[i].code) == 0)
            return (int)sink_firehose_codes[i].class;

    /* KMSAccessDeniedException, KMSDisabledException, KMSOptInRequired... */
    if (strncmp(code, "KMS", 3) == 0)
        return SINK_FIREHOSE_FATAL;
    return -1;
}

/* The class of a failed call whose __type we do not know (or lack). */
static enum sink_firehose_class
sink_firehose_classify_status(long status)
{
    if (status == 401 || status == 403)
        return SINK_FIREHOSE_AUTH;
    if (status >= 400 && status < 500 && status != 408 && status != 429)
        return SINK_FIREHOSE_FATAL;
    return SINK_FIREHOSE_RETRY;
}

/*
 * Copies a service string, cut at a character boundary when too long
 * so that what the caller logs stays UTF-8.
 */
static void
sink_firehose_copy(char *dst, size_t size, const unsigned char *src,
                   size_t len)
{
    if (len >= size) {
        len = size - 1;
        while (len > 0 && (src[len] & 0xc0) == 0x80)
            len--;
    }
    memcpy(dst, src, len);
    dst[len] = '\0';
}

/*
 * "com.amazonaws.firehose.v20150804#ResourceNotFoundException" and the
 * header form "ResourceNotFoundException:http://..." both name the code.
 */
static void
sink_firehose_copy_type(char *dst, size_t size, const unsigned char *s,
                        size_t len)
{
    const unsigned char *hash = NULL, *colon;

    for (size_t i = 0; i < len; i++)
        if (s[i] == '#')
            hash = s + i;
    if (hash) {
        len -= (size_t)(hash + 1 - s);
        s = hash + 1;
    }
    colon = memchr(s, ':', len);
    if (colon)
        len = (size_t)(colon - s);
    sink_firehose_copy(dst, size, s, len);
}

enum resp_key {
    RESP_KEY_NONE,
    RESP_KEY_OTHER,
    RESP_KEY_FAILED_PUT_COUNT,
    RESP_KEY_RESPONSES,
    RESP_KEY_TYPE,
    RESP_KEY_MESSAGE,
    RESP_KEY_RECORD_ID,
    RESP_KEY_ERROR_CODE,
    RESP_KEY_ERROR_MESSAGE,
};

/*
 * Stream parser state.  Depth 1 is the top-level object, 2 the
 * RequestResponses array, 3 one entry.  Containers we have no use for are
 * skipped whole: skip_depth is the depth inside the outermost of them.
 */
struct resp_parser {
    const struct sink_firehose_dialect *d;
    struct sink_firehose_result *res;
    bool *failed;
    bool *rejected;             /* NULL: not wanted */
    size_t n_rejected;
    /* The entry whose code and message to copy out; SIZE_MAX: none. */
    size_t want_entry;
    bool found_want;
    size_t n_records;
    size_t depth;
    size_t skip_depth;
    enum resp_key key;
    bool seen_count;
    bool seen_responses;
    bool in_responses;
    uint64_t failed_put_count;
    size_t n_entries;
    size_t n_failed;
    bool entry_id;
    bool entry_error;
    bool have_first_error;
    char entry_code[SINK_FIREHOSE_CODE_MAX];
    char entry_message[SINK_FIREHOSE_MESSAGE_MAX];
    char type[SINK_FIREHOSE_CODE_MAX];          /* of a failed call */
    char message[SINK_FIREHOSE_MESSAGE_MAX];
    const char *reason;
};

static int
resp_fail(struct resp_parser *p, const char *reason)
{
    if (!p->reason)
        p->reason = reason;
    return 0;
}

static int
resp_top_scalar(struct resp_parser *p, const unsigned char *str, size_t len,
                bool is_string, bool is_number)
{
    char num[24];
    char *end;

    switch (p->key) {
    case RESP_KEY_FAILED_PUT_COUNT:
        if (!is_number || len == 0 || len >= sizeof(num) ||
            memchr(str, '-', len) || memchr(str, '.', len) ||
            memchr(str, 'e', len) || memchr(str, 'E', len))
            return resp_fail(p, "FailedPutCount is not a count");
        memcpy(num, str, len);
        num[len] = '\0';
        errno = 0;
        p->failed_put_count = strtoull(num, &end, 10);
        if (errno != 0 || *end != '\0')
            return resp_fail(p, "FailedPutCount is not a count");
        return 1;
    case RESP_KEY_RESPONSES:
        return resp_fail(p, "RequestResponses is not an array");
    case RESP_KEY_TYPE:
        if (is_string)
            sink_firehose_copy_type(p->type, sizeof(p->type), str, len);
        return 1;
    case RESP_KEY_MESSAGE:
        if (is_string)
            sink_firehose_copy(p->message, sizeof(p->message), str, len);
        return 1;
    default:
        return 1;
    }
}

static int
resp_entry_scalar(struct resp_parser *p, const unsigned char *str,
                  size_t len, bool is_string)
{
    if (!is_string)
        return 1;
    switch (p->key) {
    case RESP_KEY_RECORD_ID:
        p->entry_id = true;
        return 1;
    case RESP_KEY_ERROR_CODE:
        if (len > 0) {
            p->entry_error = true;
            sink_firehose_copy(p->entry_code, sizeof(p->entry_code), str, len);
        }
        return 1;
    case RESP_KEY_ERROR_MESSAGE:
        sink_firehose_copy(p->entry_message, sizeof(p->entry_message), str,
                           len);
        return 1;
    default:
        return 1;
    }
}

static int
resp_scalar(struct resp_parser *p, const unsigned char *str, size_t len,
            bool is_string, bool is_number)
{
    int k = 1;

    if (p->skip_depth)
        return 1;
    if (p->depth == 0)
        return resp_fail(p, "response is not a JSON object");
    if (p->depth == 1)
        k = resp_top_scalar(p, str, len, is_string, is_number);
    else if (p->depth == 2)
        k = resp_fail(p, "a RequestResponses entry is not an object");
    else if (p->depth == 3)
        k = resp_entry_scalar(p, str, len, is_string);
    p->key = RESP_KEY_NONE;
    return k;
}

static int
resp_null(void *ctx)
{
    return resp_scalar(ctx, NULL, 0, false, false);
}

static int
resp_boolean(void *ctx, int v)
{
    (void)v;
    return resp_scalar(ctx, NULL, 0, false, false);
}

static int
resp_number(void *ctx, const char *s, size_t len)
{
    return resp_scalar(ctx, (const unsigned char *)s, len, false, true);
}

static int
resp_string(void *ctx, const unsigned char *s, size_t len)
{
    return resp_scalar(ctx, s, len, true, false);
}

static bool
resp_key_is(const unsigned char *key, size_t len, const char *name)
{
    return len == strlen(name) && memcmp(key, name, len) == 0;
}

static int
resp_map_key(void *ctx, const unsigned char *key, size_t len)
{
    struct resp_parser *p = ctx;

    if (p->skip_depth)
        return 1;
    p->key = RESP_KEY_OTHER;
    if (p->depth == 1) {
        if (resp_key_is(key, len, p->d->failed_count)) {
            if (p->seen_count)
                return resp_fail(p, "FailedPutCount appears twice");
            p->seen_count = true;
            p->key = RESP_KEY_FAILED_PUT_COUNT;
        } else if (resp_key_is(key, len, p->d->responses)) {
            if (p->seen_responses)
                return resp_fail(p, "RequestResponses appears twice");
            p->seen_responses = true;
            p->key = RESP_KEY_RESPONSES;
        } else if (resp_key_is(key, len, "__type")) {
            p->key = RESP_KEY_TYPE;
        } else if (resp_key_is(key, len, "message") ||
                   resp_key_is(key, len, "Message")) {
            p->key = RESP_KEY_MESSAGE;
        }
    } else if (p->depth == 3) {
        if (resp_key_is(key, len, p->d->record_id))
            p->key = RESP_KEY_RECORD_ID;
        else if (resp_key_is(key, len, "ErrorCode"))
            p->key = RESP_KEY_ERROR_CODE;
        else if (resp_key_is(key, len, "ErrorMessage"))
            p->key = RESP_KEY_ERROR_MESSAGE;
    }
    return 1;
}

/* Opens a container; returns 0 to stop at a shape we cannot accept. */
static int
resp_open(struct resp_parser *p, bool is_array)
{
    if (p->skip_depth) {
        p->depth++;
        return 1;
    }

    if (p->depth == 0 && is_array)
        return resp_fail(p, "response is not a JSON object");
    if (p->depth == 1) {
        if (p->key == RESP_KEY_FAILED_PUT_COUNT)
            return resp_fail(p, "FailedPutCount is not a count");
        if (p->key == RESP_KEY_RESPONSES && !is_array)
            return resp_fail(p, "RequestResponses is not an array");
        if (p->key == RESP_KEY_RESPONSES)
            p->in_responses = true;
        else
            p->skip_depth = p->depth + 1;
    } else if (p->depth == 2) {
        if (is_array)
            return resp_fail(p, "a RequestResponses entry is not an object");
        p->n_entries++;
        p->entry_id = false;
        p->entry_error = false;
        p->entry_code[0] = '\0';
        p->entry_message[0] = '\0';
    } else if (p->depth == 3) {
        p->skip_depth = p->depth + 1;
    }
    p->depth++;
    p->key = RESP_KEY_NONE;
    return 1;
}

static void
resp_entry_done(struct resp_parser *p)
{
    struct sink_firehose_result *res = p->res;
    size_t i = p->n_entries - 1;
    bool ok = p->entry_id && !p->entry_error;

    /* Surplus entries are counted for the mismatch check, not stored. */
    if (i < p->n_records)
        p->failed[i] = !ok;
    if (i == p->want_entry) {
        p->found_want = true;
        memcpy(res->error_code, p->entry_code, sizeof(res->error_code));
        memcpy(res->error_message, p->entry_message,
               sizeof(res->error_message));
    }
    if (ok)
        return;

    if (p->entry_error && sink_firehose_record_permanent(p->entry_code)) {
        p->n_rejected++;
        if (p->rejected && i < p->n_records)
            p->rejected[i] = true;
    }
    if (p->want_entry != SIZE_MAX)
        return;

    p->n_failed++;
    if (p->entry_error && !p->have_first_error) {
        p->have_first_error = true;
        memcpy(res->error_code, p->entry_code, sizeof(res->error_code));
        memcpy(res->error_message, p->entry_message,
               sizeof(res->error_message));
    }
}

static int
resp_close(struct resp_parser *p)
{
    assert(p->depth > 0);
    if (p->skip_depth) {
        p->depth--;
        if (p->depth < p->skip_depth)
            p->skip_depth = 0;
        return 1;
    }

    if (p->depth == 3)
        resp_entry_done(p);
    else if (p->depth == 2)
        p->in_responses = false;
    p->depth--;
    p->key = RESP_KEY_NONE;
    return 1;
}

static int
resp_start_map(void *ctx)
{
    return resp_open(ctx, false);
}

static int
resp_start_array(void *ctx)
{
    return resp_open(ctx, true);
}

static int
resp_end(void *ctx)
{
    return resp_close(ctx);
}

static const yajl_callbacks resp_callbacks = {
    .yajl_null = resp_null,
    .yajl_boolean = resp_boolean,
    .yajl_number = resp_number,
    .yajl_string = resp_string,
    .yajl_start_map = resp_start_map,
    .yajl_map_key = resp_map_key,
    .yajl_end_map = resp_end,
    .yajl_start_array = resp_start_array,
    .yajl_end_array = resp_end,
};

/* Runs the parser; false when the text is not JSON or had the wrong shape. */
static int
resp_run(struct resp_parser *p, const void *body, size_t len, bool *ret_ok)
{
    yajl_handle h;
    yajl_status st;

    h = yajl_alloc(&resp_callbacks, NULL, p);
    if (!h)
        return -ENOMEM;

    st = yajl_parse(h, body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    yajl_free(h);

    if (st != yajl_status_ok && !p->reason)
        p->reason = "response is not valid JSON";
    *ret_ok = st == yajl_status_ok && !p->reason;
    return 0;
}

/* Checks that a 200 response accounts for exactly the records sent. */
static const char *
resp_check_success(const struct resp_parser *p)
{
    if (!p->seen_responses)
        return "response has no RequestResponses";
    if (!p->seen_count)
        return "response has no FailedPutCount";
    if (p->n_entries != p->n_records)
        return "RequestResponses does not match the records sent";
    if (p->failed_put_count != p->n_failed)
        return "FailedPutCount does not match RequestResponses";
    return NULL;
}

/*
 * A 200 response: true when it accounts for every record, and *res then
 * holds the outcome.  Otherwise p->reason says what was wrong.
 */
static bool
resp_finish_success(struct resp_parser *p, bool parsed,
                    struct sink_firehose_result *res)
{
    int c;

    if (!parsed)
        return false;
    p->reason = resp_check_success(p);
    if (p->reason)
        return false;

    res->failed_put_count = p->failed_put_count;
    res->n_failed = p->n_failed;
    c = sink_firehose_classify(res->error_code);
    if (p->n_failed == 0)
        res->class = SINK_FIREHOSE_OK;
    else if (c < 0)
        res->class = SINK_FIREHOSE_RETRY;
    else
        res->class = (enum sink_firehose_class)c;
    return true;
}

const struct sink_firehose_dialect sink_firehose_dialect_firehose = {
    .failed_count = "FailedPutCount",
    .responses = "RequestResponses",
    .record_id = "RecordId",
};

/* Permanent per-record refusals: sending the same bytes again cannot help. */
bool
sink_firehose_record_permanent(const char *code)
{
    return strcmp(code, "InvalidArgumentException") == 0 ||
           strcmp(code, "ValidationException") == 0;
}

int
sink_firehose_parse_response(long http_status, const void *body,
                             size_t len, size_t n_records,
                             bool *ret_failed,
                             struct sink_firehose_result *ret)
{
    return sink_firehose_parse_response_as(&sink_firehose_dialect_firehose,
                                           http_status, body, len, n_records,
                                           ret_failed, NULL, ret);
}

int
sink_firehose_record_error(const struct sink_firehose_dialect *d,
                           const void *body, size_t len, size_t index,
                           char code[static SINK_FIREHOSE_CODE_MAX],
                           char message[static SINK_FIREHOSE_MESSAGE_MAX])
{
    struct sink_firehose_result res = { 0 };
    struct resp_parser p = {
        .d = d,
        .res = &res,
        .want_entry = index,
    };
    bool parsed;
    int k;

    /* failed[] is only written for i < n_records, so none is needed. */
    k = resp_run(&p, body, len, &parsed);
    if (k < 0)
        return k;
    if (!p.found_want)
        return -ENOENT;
    memcpy(code, res.error_code, SINK_FIREHOSE_CODE_MAX);
    memcpy(message, res.error_message, SINK_FIREHOSE_MESSAGE_MAX);
    return 0;
}

int
sink_firehose_parse_response_as(const struct sink_firehose_dialect *d,
                                long http_status, const void *body,
                                size_t len, size_t n_records,
                                bool *ret_failed, bool *ret_rejected,
                                struct sink_firehose_result *ret)
{
    struct sink_firehose_result res = { 0 };
    struct resp_parser p = {
        .d = d,
        .res = &res,
        .failed = ret_failed,
        .rejected = ret_rejected,
        .n_records = n_records,
        .want_entry = SIZE_MAX,
    };
    bool parsed;
    int k, c;

    for (size_t i = 0; i < n_records; i++) {
        ret_failed[i] = true;
        if (ret_rejected)
            ret_rejected[i] = false;
    }

    k = resp_run(&p, body, len, &parsed);
    if (k < 0)
        return k;

    if (http_status == 200 && resp_finish_success(&p, parsed, &res)) {
        res.n_rejected = p.n_rejected;
        *ret = res;
        return 0;
    }

    /* Only a whole, consistent answer may mark a record for good. */
    for (size_t i = 0; ret_rejected && i < n_records; i++)
        ret_rejected[i] = false;

    if (http_status == 200) {
        /*
         * Nothing in the body can be trusted to say which records were
         * taken, so all go again: a duplicate is better than a loss.
         */
        res = (struct sink_firehose_result){
            .failed_put_count = p.failed_put_count,
            .protocol_error = true,
        };
    } else if (parsed) {
        memcpy(res.error_code, p.type, sizeof(res.error_code));
        memcpy(res.error_message, p.message, sizeof(res.error_message));
    }

    for (size_t i = 0; i < n_records; i++)
        ret_failed[i] = true;
    res.n_failed = n_records;
    res.reason = p.reason;

    c = res.error_code[0] ? sink_firehose_classify(res.error_code) : -1;
    if (!parsed || res.protocol_error)
        res.class = SINK_FIREHOSE_RETRY;
    else if (c >= 0)
        res.class = (enum sink_firehose_class)c;
    else
        res.class = sink_firehose_classify_status(http_status);
    *ret = res;
    return 0;
}
