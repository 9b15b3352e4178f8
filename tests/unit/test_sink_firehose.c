/* SPDX-License-Identifier: MIT */
/*
 * batch limits and record bookkeeping; the Firehose request body, headers
 * and signature; and the reading of responses into per-record outcomes.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "batch.h"
#include "sigv4.h"
#include "sink_firehose.h"

#define TEST_ENDPOINT "http://127.0.0.1:4573"
#define TEST_WHEN 1440938160        /* 2015-08-30T12:36:00Z */

static const struct sigv4_credentials test_cred = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

static const struct sigv4_credentials test_cred_token = {
    .access_key_id = "ASIAEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
    .session_token = "IQoJb3JpZ2luX2VjEXAMPLETOKEN//+=",
};

static unsigned char *
test_pattern(size_t len, unsigned seed)
{
    unsigned char *p = malloc(len ? len : 1);

    assert_non_null(p);
    for (size_t i = 0; i < len; i++)
        p[i] = (unsigned char)((i * 31 + seed * 7 + (i >> 8)) & 0xff);
    return p;
}

static void
test_batch_init_default(struct batch *b, bool pack)
{
    struct batch_limits l = { .pack = pack };

    assert_int_equal(batch_init(b, &l), 0);
}

static void
test_batch_max_records(void **state)
{
    struct batch b;

    (void)state;
    test_batch_init_default(&b, false);
    for (uint64_t seq = 1; seq <= BATCH_MAX_RECORDS; seq++)
        assert_int_equal(batch_add(&b, seq, "x\n", 2), 0);
    assert_int_equal(batch_n_records(&b), 500);

    /* The 501st is refused and leaves the batch as it was. */
    assert_int_equal(batch_add(&b, 501, "x\n", 2), -ENOSPC);
    assert_int_equal(batch_n_records(&b), 500);
    assert_int_equal(batch_n_events(&b), 500);
    assert_int_equal(batch_data_len(&b), 1000);
    assert_int_equal(batch_first_seq(&b), 1);
    assert_int_equal(batch_last_seq(&b), 500);

    batch_reset(&b);
    assert_true(batch_is_empty(&b));
    assert_int_equal(batch_add(&b, 501, "x\n", 2), 0);
    assert_int_equal(batch_first_seq(&b), 501);
    batch_done(&b);
}

static void
test_batch_max_call_bytes(void **state)
{
    unsigned char *big = test_pattern(BATCH_MAX_RECORD_BYTES, 1);
    size_t rest = BATCH_MAX_CALL_BYTES - 4 * BATCH_MAX_RECORD_BYTES;
    struct batch b;

    (void)state;
    test_batch_init_default(&b, false);
    for (uint64_t seq = 1; seq <= 4; seq++)
        assert_int_equal(batch_add(&b, seq, big, BATCH_MAX_RECORD_BYTES), 0);

    /* One byte more than what is left is refused, exactly 4 MiB is not. */
    assert_int_equal(batch_add(&b, 5, big, rest + 1), -ENOSPC);
    assert_int_equal(batch_add(&b, 5, big, rest), 0);
    assert_int_equal(batch_data_len(&b), 4 * 1024 * 1024);
    assert_int_equal(batch_add(&b, 6, big, 1), -ENOSPC);
    assert_int_equal(batch_n_records(&b), 5);
    assert_memory_equal(batch_record_data(&b, 4), big, rest);
    batch_done(&b);
    free(big);
}

static void
test_batch_max_record_bytes(void **state)
{
    unsigned char *big = test_pattern(BATCH_MAX_RECORD_BYTES + 1, 2);
    struct batch b;

    (void)state;
    test_batch_init_default(&b, false);
    assert_int_equal(batch_add(&b, 1, big, BATCH_MAX_RECORD_BYTES + 1),
                     -EMSGSIZE);
    assert_true(batch_is_empty(&b));
    assert_int_equal(batch_add(&b, 1, big, BATCH_MAX_RECORD_BYTES), 0);
    assert_int_equal(batch_record(&b, 0)->len, 1024000);
    assert_memory_equal(batch_record_data(&b, 0), big, 1024000);
    batch_done(&b);
    free(big);
}

static void
test_batch_pack(void **state)
{
    unsigned char *ev = test_pattern(500, 3);
    const struct batch_record *rec;
    struct batch b;

    (void)state;
    test_batch_init_default(&b, true);

    /* 2048 events of 500 bytes fill one record to exactly 1,024,000. */
    for (uint64_t seq = 10; seq < 10 + 2048; seq++)
        assert_int_equal(batch_add(&b, seq, ev, 500), 0);
    assert_int_equal(batch_n_records(&b), 1);
    rec = batch_record(&b, 0);
    assert_int_equal(rec->first_seq, 10);
    assert_int_equal(rec->last_seq, 10 + 2047);
    assert_int_equal(rec->n_events, 2048);
    assert_int_equal(rec->len, BATCH_MAX_RECORD_BYTES);
    assert_int_equal(batch_encoded_len(&b), (1024000 + 2) / 3 * 4);

    assert_int_equal(batch_add(&b, 10 + 2048, ev, 500), 0);
    assert_int_equal(batch_n_records(&b), 2);
    rec = batch_record(&b, 1);
    assert_int_equal(rec->first_seq, 10 + 2048);
    assert_int_equal(rec->last_seq, 10 + 2048);
    assert_int_equal(rec->offset, BATCH_MAX_RECORD_BYTES);
    assert_memory_equal(batch_record_data(&b, 1), ev, 500);
    assert_int_equal(batch_n_events(&b), 2049);
    assert_int_equal(batch_encoded_len(&b),
                     (1024000 + 2) / 3 * 4 + (500 + 2) / 3 * 4);
    batch_done(&b);
    free(ev);
}

static void
test_batch_bad_limits(void **state)
{
    struct batch b;

    (void)state;
    assert_int_equal(batch_init(&b, &(struct batch_limits){
                         .max_records = 501 }), -EINVAL);
    assert_int_equal(batch_init(&b, &(struct batch_limits){
                         .max_call_bytes = 1000,
                         .max_record_bytes = 1001 }), -EINVAL);
    assert_int_equal(batch_init(&b, &(struct batch_limits){
                         .max_record_bytes = BATCH_MAX_RECORD_BYTES + 1 }),
                     -EINVAL);

    /* Smaller limits are honoured. */
    assert_int_equal(batch_init(&b, &(struct batch_limits){
                         .max_records = 2, .max_call_bytes = 10,
                         .max_record_bytes = 6 }), 0);
    assert_int_equal(batch_add(&b, 1, "1234567", 7), -EMSGSIZE);
    assert_int_equal(batch_add(&b, 1, "123456", 6), 0);
    assert_int_equal(batch_add(&b, 2, "12345", 5), -ENOSPC);
    assert_int_equal(batch_add(&b, 2, "1234", 4), 0);
    assert_int_equal(batch_add(&b, 3, "", 0), -ENOSPC);
    batch_done(&b);
}

static void
test_batch_replace_record(void **state)
{
    struct batch_limits l = { .max_call_bytes = 64, .max_record_bytes = 32 };
    struct batch b;

    (void)state;
    assert_int_equal(batch_init(&b, &l), 0);
    assert_int_equal(batch_add(&b, 1, "aaaa\n", 5), 0);
    assert_int_equal(batch_add(&b, 2, "bbbbbbbbbb\n", 11), 0);
    assert_int_equal(batch_add(&b, 3, "cc\n", 3), 0);

    /* Growing the middle record moves the last one behind it. */
    assert_int_equal(batch_replace_record(&b, 1, "REJECT-LINE-FOR-2\n", 18),
                     0);
    assert_true(batch_record(&b, 1)->replaced);
    assert_false(batch_record(&b, 0)->replaced);
    assert_int_equal(batch_record(&b, 1)->first_seq, 2);
    assert_int_equal(batch_record(&b, 1)->n_events, 1);
    assert_memory_equal(batch_record_data(&b, 0), "aaaa\n", 5);
    assert_memory_equal(batch_record_data(&b, 1), "REJECT-LINE-FOR-2\n", 18);
    assert_memory_equal(batch_record_data(&b, 2), "cc\n", 3);
    assert_int_equal(batch_data_len(&b), 26);
    assert_int_equal(batch_encoded_len(&b), 8 + 24 + 4);

    /* The record limit and the call limit both bound the room. */
    assert_int_equal(batch_record_room(&b, 1), 32);
    assert_int_equal(batch_replace_record(&b, 0, "0123456789012345678901234"
                                          "567890123", 33), -ENOSPC);
    assert_memory_equal(batch_record_data(&b, 0), "aaaa\n", 5);

    /* Shrinking works too. */
    assert_int_equal(batch_replace_record(&b, 1, "r\n", 2), 0);
    assert_memory_equal(batch_record_data(&b, 2), "cc\n", 3);
    assert_int_equal(batch_data_len(&b), 10);
    batch_done(&b);
}

static void
test_batch_retain_failed(void **state)
{
    const bool failed[5] = { true, false, true, false, true };
    const bool none[3] = { false, false, false };
    char ev[5][16];
    struct batch b;
    unsigned char *data;

    (void)state;
    test_batch_init_default(&b, false);
    for (int i = 0; i < 5; i++) {
        int n = snprintf(ev[i], sizeof(ev[i]), "event-%d%s\n", i,
                         i == 2 ? "-longer" : "");

        assert_int_equal(batch_add(&b, 100 + (uint64_t)i, ev[i], (size_t)n),
                         0);
    }
    data = b.data;

    assert_int_equal(batch_retain_failed(&b, failed), 3);
    assert_int_equal(batch_n_records(&b), 3);
    assert_int_equal(batch_n_events(&b), 3);
    for (size_t i = 0; i < 3; i++) {
        const struct batch_record *rec = batch_record(&b, i);

        assert_int_equal(rec->first_seq, 100 + 2 * i);
        assert_int_equal(rec->last_seq, 100 + 2 * i);
        assert_int_equal(rec->len, strlen(ev[2 * i]));
        assert_memory_equal(batch_record_data(&b, i), ev[2 * i], rec->len);
    }
    assert_int_equal(batch_data_len(&b),
                     strlen(ev[0]) + strlen(ev[2]) + strlen(ev[4]));
    assert_int_equal(batch_encoded_len(&b),
                     (strlen(ev[0]) + 2) / 3 * 4 + (strlen(ev[2]) + 2) / 3 * 4 +
                     (strlen(ev[4]) + 2) / 3 * 4);
    assert_int_equal(batch_first_seq(&b), 100);
    assert_int_equal(batch_last_seq(&b), 104);

    /* New events go after the kept ones. */
    assert_int_equal(batch_add(&b, 105, "tail\n", 5), 0);
    assert_memory_equal(batch_record_data(&b, 3), "tail\n", 5);
    assert_memory_equal(batch_record_data(&b, 2), ev[4], strlen(ev[4]));

    /* Nothing failed: nothing kept, and the memory is still the same. */
    assert_int_equal(batch_retain_failed(&b, (bool[4]){ false }), 0);
    assert_true(batch_is_empty(&b));
    assert_int_equal(batch_data_len(&b), 0);
    assert_ptr_equal(b.data, data);
    (void)none;
    batch_done(&b);
}

static struct sink_firehose *
test_sink(const char *stream, const char *endpoint)
{
    struct sink_firehose_options o = {
        .stream = stream,
        .region = "us-east-1",
        .endpoint = endpoint,
    };
    struct sink_firehose *s = NULL;
    const char *why = NULL;

    assert_int_equal(sink_firehose_new(&o, &s, &why), 0);
    assert_non_null(s);
    return s;
}

/* Decodes standard base64 with padding; returns the length. */
static size_t
test_unbase64(const char *in, unsigned char *out)
{
    size_t len = strlen(in), pad = 0;
    int n;

    assert_int_equal(len % 4, 0);
    if (len == 0)
        return 0;
    if (in[len - 1] == '=')
        pad++;
    if (in[len - 2] == '=')
        pad++;
    n = EVP_DecodeBlock(out, (const unsigned char *)in, (int)len);
    assert_true(n >= 0);
    return (size_t)n - pad;
}

static yajl_val
test_parse_body(const struct sink_firehose_request *r)
{
    char err[256];
    yajl_val v;

    assert_int_equal(strlen(r->body), r->body_len);
    v = yajl_tree_parse(r->body, err, sizeof(err));
    if (!v)
        fail_msg("body is not JSON: %s", err);
    return v;
}

static void
test_body_roundtrip(void **state)
{
    static const char *path_name[] = { "DeliveryStreamName", NULL };
    static const char *path_records[] = { "Records", NULL };
    static const char *path_data[] = { "Data", NULL };
    const size_t lens[] = { 0, 1, 2, 3, 500, 4097 };
    const size_t n = sizeof(lens) / sizeof(lens[0]);
    struct sink_firehose_request r;
    unsigned char *ev[6], out[8192];
    struct sink_firehose *s;
    yajl_val v, recs;
    struct batch b;

    (void)state;
    s = test_sink("audit-events", TEST_ENDPOINT);
    test_batch_init_default(&b, false);
    sink_firehose_request_init(&r);
    for (size_t i = 0; i < n; i++) {
        ev[i] = test_pattern(lens[i], (unsigned)i);
        assert_int_equal(batch_add(&b, i + 1, ev[i], lens[i]), 0);
    }

    assert_int_equal(sink_firehose_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    assert_string_equal(r.url, "http://127.0.0.1:4573/");
    assert_int_equal(r.n_records, n);

    v = test_parse_body(&r);
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, path_name,
                                                      yajl_t_string)),
                        "audit-events");
    recs = yajl_tree_get(v, path_records, yajl_t_array);
    assert_non_null(recs);
    assert_int_equal(YAJL_GET_ARRAY(recs)->len, n);
    for (size_t i = 0; i < n; i++) {
        yajl_val d = yajl_tree_get(YAJL_GET_ARRAY(recs)->values[i],
                                   path_data, yajl_t_string);

        assert_non_null(d);
        assert_int_equal(YAJL_GET_OBJECT(YAJL_GET_ARRAY(recs)->values[i])->len,
                         1);
        assert_int_equal(test_unbase64(YAJL_GET_STRING(d), out), lens[i]);
        assert_memory_equal(out, ev[i], lens[i]);
        free(ev[i]);
    }
    yajl_tree_free(v);

    sink_firehose_request_done(&r);
    batch_done(&b);
    sink_firehose_free(s);
}

static void
test_body_reuse(void **state)
{
    unsigned char *ev = test_pattern(500, 9);
    struct sink_firehose_request r;
    struct sink_firehose *s;
    struct batch b;
    char *body, *hdr;

    (void)state;
    s = test_sink("audit-events", TEST_ENDPOINT);
    test_batch_init_default(&b, false);
    sink_firehose_request_init(&r);
    for (uint64_t seq = 1; seq <= 500; seq++)
        assert_int_equal(batch_add(&b, seq, ev, 500), 0);
    assert_int_equal(sink_firehose_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    body = r.body;
    hdr = r.hdr_buf;

    /* A batch no larger than the last one is built in the same memory. */
    batch_reset(&b);
    for (uint64_t seq = 501; seq <= 900; seq++)
        assert_int_equal(batch_add(&b, seq, ev, 500), 0);
    assert_int_equal(sink_firehose_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    assert_ptr_equal(r.body, body);
    assert_ptr_equal(r.hdr_buf, hdr);
    assert_int_equal(r.n_records, 400);
    yajl_tree_free(test_parse_body(&r));

    /* Nothing to send is a caller's mistake. */
    batch_reset(&b);
    assert_int_equal(sink_firehose_build(s, &b, &test_cred, TEST_WHEN, &r),
                     -EINVAL);

    sink_firehose_request_done(&r);
    batch_done(&b);
    sink_firehose_free(s);
    free(ev);
}

static void
test_stream_escaping(void **state)
{
    static const char *path_name[] = { "DeliveryStreamName", NULL };
    const char *name = "a\"b\\c\nd\x01\xc3\xa9/e";
    struct sink_firehose_options o = {
        .region = "us-east-1",
        .endpoint = TEST_ENDPOINT,
    };
    struct sink_firehose_request r;
    struct sink_firehose *s;
    const char *why = NULL;
    struct batch b;
    yajl_val v;

    (void)state;
    s = test_sink(name, TEST_ENDPOINT);
    test_batch_init_default(&b, false);
    sink_firehose_request_init(&r);
    assert_int_equal(batch_add(&b, 1, "{}\n", 3), 0);
    assert_int_equal(sink_firehose_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    assert_non_null(strstr(r.body, "a\\\"b\\\\c\\u000ad\\u0001\xc3\xa9/e"));
    v = test_parse_body(&r);
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, path_name,
                                                      yajl_t_string)),
                        name);
    yajl_tree_free(v);
    sink_firehose_request_done(&r);
    batch_done(&b);
    sink_firehose_free(s);

    /* Not UTF-8: a lone continuation byte, an overlong '/', a surrogate. */
    const char *bad[] = { "ab\x80", "\xc0\xaf", "\xed\xa0\x80", "\xc3" };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = NULL;
        o.stream = bad[i];
        assert_int_equal(sink_firehose_new(&o, &s, &why), -EINVAL);
        assert_null(s);
        assert_non_null(why);
    }
    o.stream = "";
    assert_int_equal(sink_firehose_new(&o, &s, &why), -EINVAL);
}

static void
test_endpoint(void **state)
{
    static const struct {
        const char *endpoint, *url, *host;
    } good[] = {
        { "http://127.0.0.1:4573", "http://127.0.0.1:4573/",
          "127.0.0.1:4573" },
        { "http://127.0.0.1:80/", "http://127.0.0.1/", "127.0.0.1" },
        { "HTTPS://127.0.0.1", "https://127.0.0.1/", "127.0.0.1" },
        { "https://127.0.0.1:443", "https://127.0.0.1/", "127.0.0.1" },
        { "https://127.0.0.1:80", "https://127.0.0.1:80/", "127.0.0.1:80" },
        { "http://127.0.0.1:04573", "http://127.0.0.1:4573/",
          "127.0.0.1:4573" },
        { "http://[::1]:8080", "http://[::1]:8080/", "[::1]:8080" },
        { "http://localhost", "http://localhost/", "localhost" },
    };
    static const char *const bad[] = {
        "ftp://127.0.0.1", "127.0.0.1:4573", "http://", "http://:80",
        "http://127.0.0.1:", "http://127.0.0.1:0", "http://127.0.0.1:65536",
        "http://127.0.0.1:12a", "http://127.0.0.1/firehose",
        "http://u@127.0.0.1", "http://127.0.0.1?x=1", "http://[::1",
        "http://[]:80", "http://127.0.0.1 ",
    };
    struct sink_firehose_options o = {
        .stream = "s",
        .region = "us-east-1",
    };
    struct sink_firehose *s;
    const char *why;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        s = test_sink("s", good[i].endpoint);
        assert_string_equal(sink_firehose_url(s), good[i].url);
        assert_string_equal(sink_firehose_host(s), good[i].host);
        sink_firehose_free(s);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        s = NULL;
        why = NULL;
        o.endpoint = bad[i];
        if (sink_firehose_new(&o, &s, &why) != -EINVAL)
            fail_msg("endpoint '%s' was accepted", bad[i]);
        assert_null(s);
        assert_non_null(why);
    }

    /* Only the string is built here; nothing connects anywhere. */
    o.endpoint = NULL;
    assert_int_equal(sink_firehose_new(&o, &s, &why), 0);
    assert_string_equal(sink_firehose_url(s),
                        "https://firehose.us-east-1.amazonaws.com/");
    assert_string_equal(sink_firehose_host(s),
                        "firehose.us-east-1.amazonaws.com");
    sink_firehose_free(s);

    o.region = "us-East-1";
    assert_int_equal(sink_firehose_new(&o, &s, &why), -EINVAL);
    o.region = NULL;
    assert_int_equal(sink_firehose_new(&o, &s, &why), -EINVAL);
}

static const char *
test_header(const struct sink_firehose_request *r, const char *name)
{
    size_t len = strlen(name);

    for (size_t i = 0; i < r->n_headers; i++)
        if (strncmp(r->headers[i], name, len) == 0 &&
            strncmp(r->headers[i] + len, ": ", 2) == 0)
            return r->headers[i] + len + 2;
    return NULL;
}

/*
 * Signs the request again from its parts, as a receiver would, with the
 * headers in another order and case, and compares.
 */
static bool
test_check_signature(const struct sink_firehose_request *r,
                     const struct sigv4_credentials *cred)
{
    struct sigv4_header h[5];
    char auth[1024];
    size_t n = 0;

    h[n++] = (struct sigv4_header){ "X-AMZ-TARGET",
                                    test_header(r, "X-Amz-Target") };
    h[n++] = (struct sigv4_header){ "x-amz-date",
                                    test_header(r, "X-Amz-Date") };
    if (cred->session_token)
        h[n++] = (struct sigv4_header){ "X-Amz-Security-Token",
                                        cred->session_token };
    h[n++] = (struct sigv4_header){ "content-type",
                                    "application/x-amz-json-1.1" };
    h[n++] = (struct sigv4_header){ "HOST", "127.0.0.1:4573" };

    assert_int_equal(sigv4_sign(&(struct sigv4_request){
                                    .method = "POST",
                                    .path = "/",
                                    .headers = h,
                                    .n_headers = n,
                                    .payload = r->body,
                                    .payload_len = r->body_len,
                                },
                                cred,
                                &(struct sigv4_scope){
                                    .region = "us-east-1",
                                    .service = "firehose",
                                    .when = TEST_WHEN,
                                },
                                auth, sizeof(auth), NULL, 0, NULL, 0), 0);
    return strcmp(test_header(r, "Authorization"), auth) == 0;
}

static void
test_headers(void **state)
{
    struct sink_firehose_request r;
    struct sink_firehose *s;
    const char *auth;
    struct batch b;
    char body0;

    (void)state;
    s = test_sink("audit-events", TEST_ENDPOINT);
    test_batch_init_default(&b, false);
    sink_firehose_request_init(&r);
    assert_int_equal(batch_add(&b, 1, "{\"a\":1}\n", 8), 0);

    assert_int_equal(sink_firehose_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    assert_int_equal(r.n_headers, 5);
    assert_string_equal(test_header(&r, "Host"), "127.0.0.1:4573");
    assert_string_equal(test_header(&r, "Content-Type"),
                        "application/x-amz-json-1.1");
    assert_string_equal(test_header(&r, "X-Amz-Target"),
                        "Firehose_20150804.PutRecordBatch");
    assert_string_equal(test_header(&r, "X-Amz-Date"), "20150830T123600Z");
    assert_null(test_header(&r, "X-Amz-Security-Token"));
    auth = test_header(&r, "Authorization");
    assert_non_null(auth);
    assert_non_null(strstr(auth, "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/"
                                 "20150830/us-east-1/firehose/aws4_request"));
    assert_non_null(strstr(auth, "SignedHeaders=content-type;host;"
                                 "x-amz-date;x-amz-target, "));
    assert_true(test_check_signature(&r, &test_cred));

    /* The body is signed: a changed one no longer verifies. */
    body0 = r.body[0];
    r.body[0] = ' ';
    assert_false(test_check_signature(&r, &test_cred));
    r.body[0] = body0;
    assert_true(test_check_signature(&r, &test_cred));

    /* With a session token it is sent and signed. */
    assert_int_equal(sink_firehose_build(s, &b, &test_cred_token, TEST_WHEN,
                                         &r), 0);
    assert_int_equal(r.n_headers, 6);
    assert_string_equal(test_header(&r, "X-Amz-Security-Token"),
                        test_cred_token.session_token);
    assert_non_null(strstr(test_header(&r, "Authorization"),
                           "SignedHeaders=content-type;host;x-amz-date;"
                           "x-amz-security-token;x-amz-target, "));
    assert_true(test_check_signature(&r, &test_cred_token));
    assert_false(test_check_signature(&r, &test_cred));

    /* An empty token is no token. */
    assert_int_equal(sink_firehose_build(s, &b, &(struct sigv4_credentials){
                         .access_key_id = "AKIDEXAMPLE",
                         .secret_access_key = "secret",
                         .session_token = "" }, TEST_WHEN, &r), 0);
    assert_int_equal(r.n_headers, 5);
    assert_null(test_header(&r, "X-Amz-Security-Token"));

    /* A token that would split the header line is refused. */
    assert_int_equal(sink_firehose_build(s, &b, &(struct sigv4_credentials){
                         .access_key_id = "AKIDEXAMPLE",
                         .secret_access_key = "secret",
                         .session_token = "abc\r\nX-Evil: 1" }, TEST_WHEN,
                         &r), -EINVAL);
    assert_int_equal(sink_firehose_build(s, &b, &(struct sigv4_credentials){
                         .access_key_id = "AKIDEXAMPLE" }, TEST_WHEN, &r),
                     -EINVAL);

    sink_firehose_request_done(&r);
    batch_done(&b);
    sink_firehose_free(s);
}

static void
test_parse(long status, const char *body, size_t n, bool *failed,
           struct sink_firehose_result *res)
{
    assert_int_equal(sink_firehose_parse_response(status, body, strlen(body),
                                                  n, failed, res), 0);
}

static void
test_response_ok(void **state)
{
    struct sink_firehose_result res;
    bool failed[3];

    (void)state;
    test_parse(200, "{\"FailedPutCount\":0,\"Encrypted\":false,"
               "\"RequestResponses\":[{\"RecordId\":\"a\"},"
               "{\"RecordId\":\"b\",\"Extra\":{\"x\":[1,{\"y\":null}]}},"
               "{\"RecordId\":\"c\"}],\"Other\":[[{}]]}", 3, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_OK);
    assert_int_equal(res.n_failed, 0);
    assert_int_equal(res.failed_put_count, 0);
    assert_false(res.protocol_error);
    assert_null(res.reason);
    for (int i = 0; i < 3; i++)
        assert_false(failed[i]);
    assert_string_equal(res.error_code, "");
}

static void
test_response_rejected(void **state)
{
    static const char body[] =
            "{\"FailedPutCount\":3,\"RequestResponses\":["
            "{\"RecordId\":\"a\"},"
            "{\"ErrorCode\":\"InvalidArgumentException\","
            "\"ErrorMessage\":\"Record is too \\\"big\\\"\"},"
            "{\"ErrorCode\":\"ServiceUnavailableException\","
            "\"ErrorMessage\":\"Slow down.\"},"
            "{\"ErrorMessage\":\"bad\",\"ErrorCode\":\"ValidationException\"}]}";
    char code[SINK_FIREHOSE_CODE_MAX], message[SINK_FIREHOSE_MESSAGE_MAX];
    struct sink_firehose_result res;
    bool failed[4], rejected[4];

    (void)state;
    assert_int_equal(sink_firehose_parse_response_as(
                         &sink_firehose_dialect_firehose, 200, body,
                         strlen(body), 4, failed, rejected, &res), 0);
    assert_false(res.protocol_error);
    assert_int_equal(res.n_failed, 3);
    assert_int_equal(res.n_rejected, 2);
    assert_false(failed[0]);
    assert_false(rejected[0]);
    assert_true(failed[1]);
    assert_true(rejected[1]);
    assert_true(failed[2]);
    assert_false(rejected[2]);
    assert_true(failed[3]);
    assert_true(rejected[3]);

    assert_int_equal(sink_firehose_record_error(
                         &sink_firehose_dialect_firehose, body, strlen(body),
                         1, code, message), 0);
    assert_string_equal(code, "InvalidArgumentException");
    assert_string_equal(message, "Record is too \"big\"");
    assert_int_equal(sink_firehose_record_error(
                         &sink_firehose_dialect_firehose, body, strlen(body),
                         3, code, message), 0);
    assert_string_equal(code, "ValidationException");
    assert_string_equal(message, "bad");
    assert_int_equal(sink_firehose_record_error(
                         &sink_firehose_dialect_firehose, body, strlen(body),
                         4, code, message), -ENOENT);

    /* An answer that does not add up marks nothing for good. */
    assert_int_equal(sink_firehose_parse_response_as(
                         &sink_firehose_dialect_firehose, 200, body,
                         strlen(body), 3, failed, rejected, &res), 0);
    assert_true(res.protocol_error);
    assert_int_equal(res.n_rejected, 0);
    for (int i = 0; i < 3; i++) {
        assert_true(failed[i]);
        assert_false(rejected[i]);
    }

    assert_true(sink_firehose_record_permanent("InvalidArgumentException"));
    assert_false(sink_firehose_record_permanent("InternalFailure"));
    assert_false(sink_firehose_record_permanent("KMSDisabledException"));
}

static void
test_response_partial(void **state)
{
    struct sink_firehose_result res;
    bool failed[4];

    (void)state;
    test_parse(200, "{\"RequestResponses\":["
               "{\"RecordId\":\"a\"},"
               "{\"ErrorMessage\":\"Slow down.\","
               "\"ErrorCode\":\"ServiceUnavailableException\"},"
               "{\"RecordId\":\"c\",\"ErrorCode\":null},"
               "{\"ErrorCode\":\"InternalFailure\",\"ErrorMessage\":\"x\"}],"
               "\"FailedPutCount\":2,\"Encrypted\":false}", 4, failed, &res);
    assert_false(res.protocol_error);
    assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
    assert_int_equal(res.n_failed, 2);
    assert_int_equal(res.failed_put_count, 2);
    assert_false(failed[0]);
    assert_true(failed[1]);
    assert_false(failed[2]);
    assert_true(failed[3]);
    assert_string_equal(res.error_code, "ServiceUnavailableException");
    assert_string_equal(res.error_message, "Slow down.");

    /* A per-record KMS problem is for an operator. */
    test_parse(200, "{\"FailedPutCount\":1,\"RequestResponses\":["
               "{\"ErrorCode\":\"KMSDisabledException\"},"
               "{\"RecordId\":\"b\"}]}", 2, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_FATAL);
    assert_true(failed[0]);
    assert_false(failed[1]);
    assert_string_equal(res.error_code, "KMSDisabledException");
    assert_string_equal(res.error_message, "");
}

static void
test_response_mismatch(void **state)
{
    static const char *const bodies[] = {
        /* fewer entries than records */
        "{\"FailedPutCount\":0,\"RequestResponses\":"
        "[{\"RecordId\":\"a\"},{\"RecordId\":\"b\"}]}",
        /* more entries than records */
        "{\"FailedPutCount\":0,\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{\"RecordId\":\"b\"},{\"RecordId\":\"c\"},{\"RecordId\":\"d\"}]}",
        /* the count disagrees with the entries */
        "{\"FailedPutCount\":1,\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{\"RecordId\":\"b\"},{\"RecordId\":\"c\"}]}",
        /* no count */
        "{\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{\"RecordId\":\"b\"},{\"RecordId\":\"c\"}]}",
        /* an entry that says nothing */
        "{\"FailedPutCount\":0,\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{},{\"RecordId\":\"c\"}]}",
        /* entries that are not objects */
        "{\"FailedPutCount\":0,\"RequestResponses\":[\"a\",\"b\",\"c\"]}",
        "{\"FailedPutCount\":0,\"RequestResponses\":[[],[],[]]}",
        "{\"FailedPutCount\":0,\"RequestResponses\":{}}",
        "{\"FailedPutCount\":-1,\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{\"RecordId\":\"b\"},{\"RecordId\":\"c\"}]}",
        "{\"FailedPutCount\":\"0\",\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{\"RecordId\":\"b\"},{\"RecordId\":\"c\"}]}",
        "{\"FailedPutCount\":0,\"FailedPutCount\":0,\"RequestResponses\":["
        "{\"RecordId\":\"a\"},{\"RecordId\":\"b\"},{\"RecordId\":\"c\"}]}",
        /* garbage */
        "", "not json", "[]", "null", "{\"FailedPutCount\":0,",
        "{\"FailedPutCount\":0,\"RequestResponses\":[{\"RecordId\":\"a\"},"
        "{\"RecordId\":\"b\"},{\"RecordId\":\"c\"}]} trailing",
        "{\"RequestResponses\":[{\"RecordId\":\"\xff\"}]}",
    };
    struct sink_firehose_result res;
    bool failed[3];

    (void)state;
    for (size_t i = 0; i < sizeof(bodies) / sizeof(bodies[0]); i++) {
        test_parse(200, bodies[i], 3, failed, &res);
        if (!res.protocol_error)
            fail_msg("body %zu was taken: %s", i, bodies[i]);
        assert_non_null(res.reason);
        assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
        assert_int_equal(res.n_failed, 3);
        for (int k = 0; k < 3; k++)
            assert_true(failed[k]);
    }
}

static void
test_response_errors(void **state)
{
    static const struct {
        const char *type;
        enum sink_firehose_class class;
    } types[] = {
        { "ServiceUnavailableException", SINK_FIREHOSE_RETRY },
        { "ThrottlingException", SINK_FIREHOSE_RETRY },
        { "InternalFailure", SINK_FIREHOSE_RETRY },
        { "ExpiredTokenException", SINK_FIREHOSE_AUTH },
        { "ExpiredToken", SINK_FIREHOSE_AUTH },
        { "InvalidSignatureException", SINK_FIREHOSE_AUTH },
        { "SignatureDoesNotMatch", SINK_FIREHOSE_AUTH },
        { "UnrecognizedClientException", SINK_FIREHOSE_AUTH },
        { "IncompleteSignature", SINK_FIREHOSE_AUTH },
        { "MissingAuthenticationToken", SINK_FIREHOSE_AUTH },
        { "ResourceNotFoundException", SINK_FIREHOSE_FATAL },
        { "AccessDeniedException", SINK_FIREHOSE_FATAL },
        { "InvalidArgumentException", SINK_FIREHOSE_FATAL },
        { "KMSAccessDeniedException", SINK_FIREHOSE_FATAL },
        { "KMSNotFoundException", SINK_FIREHOSE_FATAL },
        { "KMSInvalidStateException", SINK_FIREHOSE_FATAL },
        { "InvalidKMSResourceException", SINK_FIREHOSE_FATAL },
    };
    static const char *const prefixes[] = {
        "", "com.amazonaws.firehose.v20150804#", "aws#",
    };
    struct sink_firehose_result res;
    bool failed[2];
    char body[512];

    (void)state;
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        for (size_t p = 0; p < 3; p++) {
            /* 400 would say FATAL and 503 RETRY: the type must win. */
            long status = types[i].class == SINK_FIREHOSE_FATAL ? 503 : 400;

            snprintf(body, sizeof(body),
                     "{\"__type\":\"%s%s\",\"%s\":\"why %zu\"}", prefixes[p],
                     types[i].type, p == 1 ? "Message" : "message", i);
            test_parse(status, body, 2, failed, &res);
            if (res.class != types[i].class)
                fail_msg("'%s' gave %s", body,
                         sink_firehose_class_to_string(res.class));
            assert_string_equal(res.error_code, types[i].type);
            snprintf(body, sizeof(body), "why %zu", i);
            assert_string_equal(res.error_message, body);
            assert_false(res.protocol_error);
            assert_int_equal(res.n_failed, 2);
            assert_true(failed[0] && failed[1]);
        }
    }

    /* The header form of the type carries a suffix. */
    test_parse(400, "{\"__type\":\"ResourceNotFoundException:http://x/\"}",
               2, failed, &res);
    assert_string_equal(res.error_code, "ResourceNotFoundException");
    assert_int_equal(res.class, SINK_FIREHOSE_FATAL);
}

static void
test_response_error_fallback(void **state)
{
    struct sink_firehose_result res;
    bool failed[1];

    (void)state;
    test_parse(500, "{\"__type\":\"SomethingNew\"}", 1, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
    assert_string_equal(res.error_code, "SomethingNew");
    test_parse(400, "{\"__type\":\"SomethingNew\"}", 1, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_FATAL);
    test_parse(429, "{}", 1, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
    test_parse(403, "{}", 1, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_AUTH);
    assert_true(failed[0]);

    /* A proxy's HTML page is no answer from the service. */
    test_parse(403, "<html>denied</html>", 1, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
    assert_non_null(res.reason);
    assert_string_equal(res.error_code, "");
    test_parse(502, "", 1, failed, &res);
    assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
    assert_true(failed[0]);

    /* Long service text is cut at a character boundary. */
    {
        char body[1024] = "{\"__type\":\"X\",\"message\":\"";
        size_t len = strlen(body);

        for (size_t i = 0; i < 300; i++) {
            body[len++] = '\xc3';
            body[len++] = '\xa9';
        }
        memcpy(body + len, "\"}", 3);
        test_parse(400, body, 1, failed, &res);
        assert_int_equal(strlen(res.error_message), 254);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batch_max_records),
        cmocka_unit_test(test_batch_max_call_bytes),
        cmocka_unit_test(test_batch_max_record_bytes),
        cmocka_unit_test(test_batch_pack),
        cmocka_unit_test(test_batch_bad_limits),
        cmocka_unit_test(test_batch_retain_failed),
        cmocka_unit_test(test_batch_replace_record),
        cmocka_unit_test(test_body_roundtrip),
        cmocka_unit_test(test_body_reuse),
        cmocka_unit_test(test_stream_escaping),
        cmocka_unit_test(test_endpoint),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_response_ok),
        cmocka_unit_test(test_response_partial),
        cmocka_unit_test(test_response_rejected),
        cmocka_unit_test(test_response_mismatch),
        cmocka_unit_test(test_response_errors),
        cmocka_unit_test(test_response_error_fallback),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
