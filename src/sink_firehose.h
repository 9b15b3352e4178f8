/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "batch.h"
#include "sigv4.h"

/*
 * The Firehose PutRecordBatch call as bytes: the signed request for a
 * batch, and what a response means for each record.  No I/O: the sender
 * moves the bytes with libcurl and decides when to retry.
 */
struct sink_firehose_options {
    const char *stream;         /* DeliveryStreamName */
    const char *region;         /* "us-east-1" */
    /* NULL: https://firehose.REGION.amazonaws.com, ".com.cn" for cn-* */
    const char *endpoint;
};

struct sink_firehose;

/*
 * Returns -EINVAL, with a static reason in *reterr_reason when given, for
 * a missing stream or region, a region that is not [a-z0-9-], a stream
 * name that is not UTF-8, or an endpoint that is not
 * http[s]://HOST[:PORT][/]; -ENOMEM.
 */
int sink_firehose_new(const struct sink_firehose_options *o,
                      struct sink_firehose **ret, const char **reterr_reason);
struct sink_firehose *sink_firehose_free(struct sink_firehose *s);

/* "https://host[:port]/" and "host[:port]", for curl and for log lines. */
const char *sink_firehose_url(const struct sink_firehose *s);
const char *sink_firehose_host(const struct sink_firehose *s);

#define SINK_FIREHOSE_N_HEADERS_MAX 6

/*
 * One request in flight.  The caller embeds one per concurrent request
 * and reuses it: the buffers grow to the largest batch seen and are
 * kept, so a warm request is built without allocating.  Everything the
 * request points to is owned by it and valid until the next build or
 * sink_firehose_request_done().
 */
struct sink_firehose_request {
    const char *url;                /* owned by the sink */
    char *body;                     /* JSON, NUL-terminated */
    size_t body_len;                /* without the NUL */
    size_t body_size;               /* allocated */
    /* "Name: value" lines for curl_slist_append(), in hdr_buf */
    const char *headers[SINK_FIREHOSE_N_HEADERS_MAX];
    size_t n_headers;
    size_t n_records;               /* records in the body */
    char *hdr_buf;
    size_t hdr_size;
};

void sink_firehose_request_init(struct sink_firehose_request *r);
void sink_firehose_request_done(struct sink_firehose_request *r);

/*
 * Builds the body for all records of b and signs it for the instant now.
 * Returns 0, -EINVAL for an empty batch or incomplete credentials,
 * -ENOMEM; -ENOBUFS or -EINVAL passed on from sigv4_sign().
 */
int sink_firehose_build(const struct sink_firehose *s, const struct batch *b,
                        const struct sigv4_credentials *cred, time_t now,
                        struct sink_firehose_request *r);

enum sink_firehose_class {
    SINK_FIREHOSE_OK,           /* every record accepted */
    SINK_FIREHOSE_RETRY,        /* throttling, 5xx, a garbled response */
    SINK_FIREHOSE_AUTH,         /* refresh the credentials, then retry */
    SINK_FIREHOSE_FATAL,        /* needs an operator; retry slowly */
};

const char *sink_firehose_class_to_string(enum sink_firehose_class c);

/* Classifies an AWS error code, prefix already stripped; -1 if unknown. */
int sink_firehose_classify(const char *code);

#define SINK_FIREHOSE_CODE_MAX 64
#define SINK_FIREHOSE_MESSAGE_MAX 256

struct sink_firehose_result {
    enum sink_firehose_class class;
    size_t n_failed;                /* records flagged for a retry */
    size_t failed_put_count;        /* as the service reported it */
    /*
     * The response did not say what became of each record (not JSON, a
     * count that does not match, a missing member), so every record is
     * flagged; reason says what was wrong.
     */
    bool protocol_error;
    /*
     * Failed records whose error says that sending them again can never
     * succeed (see sink_firehose_record_permanent()); only counted for a
     * consistent 200 answer.
     */
    size_t n_rejected;
    const char *reason;             /* static text, NULL when none */
    /*
     * The first record's ErrorCode and ErrorMessage, or the __type
     * (without its "namespace#" prefix) and message of a failed call;
     * truncated, "" when the response had none.  Service text: escape
     * it before logging.
     */
    char error_code[SINK_FIREHOSE_CODE_MAX];
    char error_message[SINK_FIREHOSE_MESSAGE_MAX];
};

/*
 * Reads the response to a request that carried n_records records and
 * sets ret_failed[0 .. n_records - 1].  Every outcome is described in
 * *ret, so this only fails with -ENOMEM; a failed call flags every
 * record.  The HTTP status is the one curl reports.
 */
int sink_firehose_parse_response(long http_status, const void *body,
                                 size_t len, size_t n_records,
                                 bool *ret_failed,
                                 struct sink_firehose_result *ret);

/*
 * The member names one JSON 1.1 batch API uses in its answer, so that
 * Kinesis Data Streams' PutRecords is read by the same parser.
 */
struct sink_firehose_dialect {
    const char *failed_count;       /* "FailedPutCount" */
    const char *responses;          /* "RequestResponses" */
    const char *record_id;          /* "RecordId" */
};

extern const struct sink_firehose_dialect sink_firehose_dialect_firehose;

/*
 * InvalidArgumentException and ValidationException for one record: the
 * service will never take those bytes, however often they are sent.
 */
bool sink_firehose_record_permanent(const char *code);

/*
 * sink_firehose_parse_response() for dialect d; ret_rejected (NULL when
 * not wanted) flags the failed records that
 * sink_firehose_record_permanent() says will never be taken.
 */
int sink_firehose_parse_response_as(const struct sink_firehose_dialect *d,
                                    long http_status, const void *body,
                                    size_t len, size_t n_records,
                                    bool *ret_failed, bool *ret_rejected,
                                    struct sink_firehose_result *ret);

/*
 * The ErrorCode and ErrorMessage of entry index (from 0) of a 200
 * answer, "" for members it lacks; truncated like the result's.  For the
 * few refused records that need their own text.  Returns 0, -ENOENT when
 * the answer has no such entry, -ENOMEM.
 */
int sink_firehose_record_error(const struct sink_firehose_dialect *d,
                               const void *body, size_t len, size_t index,
                               char code[static SINK_FIREHOSE_CODE_MAX],
                               char message[static SINK_FIREHOSE_MESSAGE_MAX]);

/*
 * Shared with sink_kinesis, which speaks the same JSON 1.1 protocol to
 * another service.
 */
struct sink_firehose_api {
    const char *service;            /* signing scope: "firehose" */
    const char *target;             /* X-Amz-Target */
};

bool sink_firehose_region_valid(const char *region);

/* "https://SERVICE.REGION.amazonaws.com" (".com.cn" for cn-*), malloc'd. */
char *sink_firehose_default_url(const char *service, const char *region);

/*
 * Splits "http[s]://HOST[:PORT][/]" into the URL curl is given and the
 * Host header's value (the port only when not the scheme's default), both
 * malloc'd.  -EINVAL with a static reason, -ENOMEM.
 */
int sink_firehose_endpoint_split(const char *endpoint, char **ret_url,
                                 char **ret_host, const char **reterr_reason);

/*
 * Writes s as the inside of a JSON string to out (room for 6 bytes per
 * input byte); -EINVAL when s is not UTF-8.
 */
int sink_firehose_json_escape(const char *s, char *out, size_t *ret_len);

/* Grows *buf to at least need bytes; the old contents are not kept. */
int sink_firehose_reserve(char **buf, size_t *size, size_t need);

/* Key id and secret present, nothing that would break a header line. */
bool sink_firehose_credentials_usable(const struct sigv4_credentials *cred);

/*
 * Fills r's headers for the body already in r (Host, Content-Type,
 * X-Amz-Date, X-Amz-Target, the token, Authorization) and signs them.
 */
int sink_firehose_sign_call(const struct sink_firehose_api *api,
                            const char *host, const char *region,
                            const struct sigv4_credentials *cred, time_t now,
                            struct sink_firehose_request *r);
