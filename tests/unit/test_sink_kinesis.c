/* SPDX-License-Identifier: MIT */
/*
 * The Kinesis PutRecords body, partition keys from their template, the
 * headers and signing scope, and its answers read in Kinesis' dialect.
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
#include "sink_kinesis.h"

#define TEST_WHEN 1440938160        /* 2015-08-30T12:36:00Z */
#define TEST_AGENT "0123456789abcdef0123456789abcdef"

static const struct sigv4_credentials test_cred = {
    .access_key_id = "AKIDEXAMPLE",
    .secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
};

static struct sink_kinesis *
test_sink(const char *key, const char *endpoint)
{
    struct sink_kinesis_options o = {
        .stream = "audit-stream",
        .region = "us-east-1",
        .endpoint = endpoint,
        .partition_key = key,
        .agent = TEST_AGENT,
    };
    struct sink_kinesis *s = NULL;
    const char *why = NULL;

    assert_int_equal(sink_kinesis_new(&o, &s, &why), 0);
    assert_non_null(s);
    return s;
}

static const char *
test_header(const struct sink_firehose_request *r, const char *name)
{
    size_t n = strlen(name);

    for (size_t i = 0; i < r->n_headers; i++)
        if (strncmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':')
            return r->headers[i] + n + 2;
    return NULL;
}

static void
test_body_and_keys(void **state)
{
    static const char *path_name[] = { "StreamName", NULL };
    static const char *path_records[] = { "Records", NULL };
    static const char *path_data[] = { "Data", NULL };
    static const char *path_key[] = { "PartitionKey", NULL };
    static const char *const lines[] = { "{\"a\":1}\n", "{\"b\":\"\\\"\"}\n",
                                         "x\n" };
    struct sink_firehose_request r;
    struct sink_kinesis *s;
    unsigned char out[64];
    char err[256], want[96];
    yajl_val v, recs;
    struct batch b;

    (void)state;
    s = test_sink("h\"/{agent}/{seq}", "http://127.0.0.1:4567");
    assert_string_equal(sink_kinesis_url(s), "http://127.0.0.1:4567/");
    assert_string_equal(sink_kinesis_host(s), "127.0.0.1:4567");
    assert_int_equal(batch_init(&b, NULL), 0);
    for (size_t i = 0; i < 3; i++)
        assert_int_equal(batch_add(&b, 41 + i, lines[i], strlen(lines[i])),
                         0);
    sink_firehose_request_init(&r);
    assert_int_equal(sink_kinesis_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    assert_int_equal(r.n_records, 3);
    assert_int_equal(strlen(r.body), r.body_len);

    v = yajl_tree_parse(r.body, err, sizeof(err));
    assert_non_null(v);
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(v, path_name,
                                                      yajl_t_string)),
                        "audit-stream");
    recs = yajl_tree_get(v, path_records, yajl_t_array);
    assert_non_null(recs);
    assert_int_equal(YAJL_GET_ARRAY(recs)->len, 3);
    for (size_t i = 0; i < 3; i++) {
        yajl_val rec = YAJL_GET_ARRAY(recs)->values[i];
        const char *d = YAJL_GET_STRING(yajl_tree_get(rec, path_data,
                                                      yajl_t_string));
        int n = EVP_DecodeBlock(out, (const unsigned char *)d,
                                (int)strlen(d));

        assert_true(n >= (int)strlen(lines[i]));
        assert_memory_equal(out, lines[i], strlen(lines[i]));
        (void)snprintf(want, sizeof(want), "h\"/%s/%zu", TEST_AGENT, 41 + i);
        assert_string_equal(YAJL_GET_STRING(yajl_tree_get(rec, path_key,
                                                          yajl_t_string)),
                            want);
    }
    yajl_tree_free(v);

    assert_string_equal(test_header(&r, "X-Amz-Target"),
                        "Kinesis_20131202.PutRecords");
    assert_string_equal(test_header(&r, "Content-Type"),
                        "application/x-amz-json-1.1");
    assert_string_equal(test_header(&r, "Host"), "127.0.0.1:4567");
    assert_non_null(strstr(test_header(&r, "Authorization"),
                           "Credential=AKIDEXAMPLE/20150830/us-east-1/"
                           "kinesis/aws4_request"));

    /* Refused like Firehose's: nothing to send, or no usable keys. */
    assert_int_equal(sink_kinesis_build(s, &b, &(struct sigv4_credentials){
                         .access_key_id = "AKIDEXAMPLE" }, TEST_WHEN, &r),
                     -EINVAL);
    batch_reset(&b);
    assert_int_equal(sink_kinesis_build(s, &b, &test_cred, TEST_WHEN, &r),
                     -EINVAL);

    sink_firehose_request_done(&r);
    batch_done(&b);
    sink_kinesis_free(s);
}

static void
test_default_key_and_endpoint(void **state)
{
    static const char *path_key[] = { "PartitionKey", NULL };
    struct sink_firehose_request r;
    struct sink_kinesis *s;
    char err[256];
    yajl_val v;
    struct batch b;

    (void)state;
    s = test_sink(NULL, NULL);
    assert_string_equal(sink_kinesis_url(s),
                        "https://kinesis.us-east-1.amazonaws.com/");
    assert_int_equal(batch_init(&b, NULL), 0);
    assert_int_equal(batch_add(&b, 7, "e\n", 2), 0);
    sink_firehose_request_init(&r);
    assert_int_equal(sink_kinesis_build(s, &b, &test_cred, TEST_WHEN, &r), 0);
    v = yajl_tree_parse(r.body, err, sizeof(err));
    assert_non_null(v);
    assert_string_equal(YAJL_GET_STRING(yajl_tree_get(
                            YAJL_GET_ARRAY(yajl_tree_get(v,
                                (const char *[]){ "Records", NULL },
                                yajl_t_array))->values[0],
                            path_key, yajl_t_string)), TEST_AGENT);
    yajl_tree_free(v);
    sink_firehose_request_done(&r);
    batch_done(&b);
    sink_kinesis_free(s);
}

static void
test_key_templates(void **state)
{
    struct sink_kinesis_options o = {
        .stream = "s",
        .region = "us-east-1",
        .partition_key = "{agent}",
    };
    struct sink_kinesis *s = NULL;
    const char *why = NULL;
    char long_key[300];

    (void)state;
    assert_true(sink_kinesis_key_valid("fixed", &why));
    assert_true(sink_kinesis_key_valid("{seq}", &why));
    assert_true(sink_kinesis_key_valid("caf\xc3\xa9-{agent}-{seq}", &why));
    assert_false(sink_kinesis_key_valid("", &why));
    assert_string_equal(why, "partition key is empty");
    assert_false(sink_kinesis_key_valid("{host}", &why));
    assert_false(sink_kinesis_key_valid("a{", &why));
    assert_false(sink_kinesis_key_valid("\xff", &why));
    assert_string_equal(why, "partition key is not valid UTF-8");

    /* 256 characters, é counting once, is the limit. */
    memset(long_key, 'k', 236);
    memcpy(long_key + 236, "{seq}", 6);
    assert_true(sink_kinesis_key_valid(long_key, &why));
    memset(long_key, 'k', 237);
    memcpy(long_key + 237, "{seq}", 6);
    assert_false(sink_kinesis_key_valid(long_key, &why));

    /* {agent} without an agent id, and bad streams and regions. */
    assert_int_equal(sink_kinesis_new(&o, &s, &why), -EINVAL);
    assert_null(s);
    o.agent = TEST_AGENT;
    o.region = "US_EAST";
    assert_int_equal(sink_kinesis_new(&o, &s, &why), -EINVAL);
    o.region = "us-east-1";
    o.stream = "";
    assert_int_equal(sink_kinesis_new(&o, &s, &why), -EINVAL);
    o.stream = "s";
    o.endpoint = "ftp://x";
    assert_int_equal(sink_kinesis_new(&o, &s, &why), -EINVAL);
    assert_null(s);
}

static void
test_answers(void **state)
{
    static const char ok[] =
            "{\"FailedRecordCount\":1,\"EncryptionType\":\"NONE\","
            "\"Records\":[{\"SequenceNumber\":\"4959\",\"ShardId\":\"s-0\"},"
            "{\"ErrorCode\":\"ProvisionedThroughputExceededException\","
            "\"ErrorMessage\":\"Rate exceeded for shard s-0\"},"
            "{\"SequenceNumber\":\"4960\",\"ShardId\":\"s-1\"}]}";
    static const char missing[] =
            "{\"__type\":\"ResourceNotFoundException\","
            "\"message\":\"Stream s under account 0 not found.\"}";
    struct sink_firehose_result res;
    bool failed[3], rejected[3];

    (void)state;
    assert_int_equal(sink_firehose_parse_response_as(
                         &sink_kinesis_dialect, 200, ok, strlen(ok), 3,
                         failed, rejected, &res), 0);
    assert_false(res.protocol_error);
    assert_int_equal(res.class, SINK_FIREHOSE_RETRY);
    assert_int_equal(res.n_failed, 1);
    assert_int_equal(res.n_rejected, 0);
    assert_false(failed[0]);
    assert_true(failed[1]);
    assert_false(failed[2]);
    assert_string_equal(res.error_code,
                        "ProvisionedThroughputExceededException");

    /* Firehose's member names are not Kinesis': nothing is trusted. */
    assert_int_equal(sink_firehose_parse_response_as(
                         &sink_firehose_dialect_firehose, 200, ok,
                         strlen(ok), 3, failed, rejected, &res), 0);
    assert_true(res.protocol_error);
    for (int i = 0; i < 3; i++)
        assert_true(failed[i]);

    assert_int_equal(sink_firehose_parse_response_as(
                         &sink_kinesis_dialect, 400, missing,
                         strlen(missing), 3, failed, rejected, &res), 0);
    assert_int_equal(res.class, SINK_FIREHOSE_FATAL);
    assert_string_equal(res.error_code, "ResourceNotFoundException");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_body_and_keys),
        cmocka_unit_test(test_default_key_and_endpoint),
        cmocka_unit_test(test_key_templates),
        cmocka_unit_test(test_answers),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
