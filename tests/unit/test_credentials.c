/* SPDX-License-Identifier: MIT */
/*
 * The credential chain's file and answer formats: profiles in the shared
 * files, ECS/IMDS JSON, STS XML, times, forms; the container URL rules,
 * static config keys and the billing arithmetic packing relies on.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "batch.h"
#include "credentials.h"
#include "credentials_file.h"
#include "credentials_http.h"

static char tmpdir[] = "/tmp/aaas-test-credentials-XXXXXX";

static const char *
write_file(const char *name, const char *text)
{
    static char path[256];
    FILE *f;

    (void)snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
    f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
    return path;
}

static void
test_profile_merge(void **state)
{
    struct credentials_profile p;
    char creds[256], config[256], err[256] = "";

    (void)state;
    (void)snprintf(creds, sizeof(creds), "%s",
                   write_file("credentials",
                              "; comment\n[default]\n"
                              "aws_access_key_id = AKIDDEF\n"
                              "[audit]\n"
                              "  aws_access_key_id=AKIDAUDIT  \n"
                              "aws_secret_access_key = s3cr=t\n"));
    (void)snprintf(config, sizeof(config), "%s",
                   write_file("config",
                              "[default]\nregion = eu-west-1\n"
                              "[profile audit]\n"
                              "aws_access_key_id = AKIDFROMCONFIG\n"
                              "role_arn = arn:aws:iam::1:role/r\n"
                              "s3 =\n  role_arn = nested-not-ours\n"
                              "region = us-west-2\n"
                              "[sso-session audit]\nregion = no\n"));

    assert_int_equal(credentials_profile_load(creds, config, "audit", &p,
                                              err, sizeof(err)), 0);
    assert_true(p.found);
    /* the credentials file wins; '=' inside a value stays */
    assert_string_equal(credentials_profile_get(&p,
                        CREDENTIALS_FILE_ACCESS_KEY_ID), "AKIDAUDIT");
    assert_string_equal(credentials_profile_get(&p,
                        CREDENTIALS_FILE_SECRET_ACCESS_KEY), "s3cr=t");
    /* nested blocks are skipped, the key after them counts */
    assert_string_equal(credentials_profile_get(&p,
                        CREDENTIALS_FILE_ROLE_ARN), "arn:aws:iam::1:role/r");
    assert_string_equal(credentials_profile_get(&p, CREDENTIALS_FILE_REGION),
                        "us-west-2");
    credentials_profile_done(&p);

    assert_int_equal(credentials_profile_load(creds, config, "default", &p,
                                              err, sizeof(err)), 0);
    assert_true(p.found);
    assert_string_equal(credentials_profile_get(&p, CREDENTIALS_FILE_REGION),
                        "eu-west-1");
    credentials_profile_done(&p);

    assert_int_equal(credentials_profile_load(creds, config, "none", &p,
                                              err, sizeof(err)), 0);
    assert_false(p.found);
    credentials_profile_done(&p);
}

static void
test_profile_bad_line(void **state)
{
    struct credentials_profile p;
    char creds[256], err[256] = "";

    (void)state;
    (void)snprintf(creds, sizeof(creds), "%s",
                   write_file("bad", "[default]\naws_access_key_id = A\n"
                              "AKIASECRETLOOKINGLINE\n"));
    assert_int_equal(credentials_profile_load(creds, NULL, "default", &p,
                                              err, sizeof(err)), -EBADMSG);
    credentials_profile_done(&p);
    assert_non_null(strstr(err, ":3: not a [section]"));
    /* the offending text is not repeated: it may be a secret */
    assert_null(strstr(err, "AKIASECRETLOOKINGLINE"));
}

static void
test_parse_time(void **state)
{
    time_t t;

    (void)state;
    assert_int_equal(credentials_parse_time("2015-08-30T12:36:00Z", 20, &t),
                     0);
    assert_int_equal(t, 1440938160);
    assert_int_equal(credentials_parse_time("2015-08-30T12:36:00.123Z", 24,
                                            &t), 0);
    assert_int_equal(t, 1440938160);
    assert_int_equal(credentials_parse_time("2015-08-30T14:36:00+02:00", 25,
                                            &t), 0);
    assert_int_equal(t, 1440938160);
    assert_int_equal(credentials_parse_time("2015-08-30 12:36:00Z", 20, &t),
                     -EINVAL);
    assert_int_equal(credentials_parse_time("2015-13-30T12:36:00Z", 20, &t),
                     -EINVAL);
}

static void
test_parse_json(void **state)
{
    static const char ok[] = "{\"Code\":\"Success\",\"AccessKeyId\":\"ASIA1\","
                             "\"SecretAccessKey\":\"sec\\/ret\",\"Token\":"
                             "\"tok\",\"Expiration\":\"2015-08-30T12:36:00Z\","
                             "\"Nested\":{\"AccessKeyId\":\"no\"}}";
    struct credentials_value v = { 0 };
    const char *why = NULL;

    (void)state;
    assert_int_equal(credentials_parse_json(ok, strlen(ok), &v, &why), 0);
    assert_string_equal(v.access_key_id, "ASIA1");
    assert_string_equal(v.secret_access_key, "sec/ret");
    assert_string_equal(v.session_token, "tok");
    assert_int_equal(v.expires, 1440938160);
    credentials_value_wipe(&v);
    assert_null(v.access_key_id);

    assert_int_equal(credentials_parse_json("{\"Code\":\"Failure\"}", 18, &v,
                                            &why), -EBADMSG);
    assert_non_null(strstr(why, "Code"));
    assert_int_equal(credentials_parse_json("{\"AccessKeyId\":\"A\"}", 19, &v,
                                            &why), -EBADMSG);
    assert_non_null(strstr(why, "SecretAccessKey"));
    assert_int_equal(credentials_parse_json("<html>", 6, &v, &why),
                     -EBADMSG);
}

static void
test_parse_sts(void **state)
{
    static const char ok[] =
            "<AssumeRoleResponse><AssumeRoleResult><Credentials>"
            "<AccessKeyId>ASIA2</AccessKeyId>"
            "<SecretAccessKey>a&amp;b&lt;c</SecretAccessKey>"
            "<SessionToken>T0K</SessionToken>"
            "<Expiration>2015-08-30T12:36:00Z</Expiration>"
            "</Credentials></AssumeRoleResult></AssumeRoleResponse>";
    static const char bad[] =
            "<ErrorResponse><Error><Type>Sender</Type>"
            "<Code>AccessDenied</Code><Message>not allowed</Message>"
            "</Error></ErrorResponse>";
    struct credentials_value v = { 0 };
    char err[128];

    (void)state;
    assert_int_equal(credentials_parse_sts(ok, strlen(ok), &v, err,
                                           sizeof(err)), 0);
    assert_string_equal(v.access_key_id, "ASIA2");
    assert_string_equal(v.secret_access_key, "a&b<c");
    assert_string_equal(v.session_token, "T0K");
    assert_int_equal(v.expires, 1440938160);
    credentials_value_wipe(&v);

    assert_int_equal(credentials_parse_sts(bad, strlen(bad), &v, err,
                                           sizeof(err)), -EBADMSG);
    assert_string_equal(err, "AccessDenied: not allowed");
}

static void
test_form(void **state)
{
    char f[64] = "";

    (void)state;
    assert_int_equal(credentials_form_append(f, sizeof(f), "A", "x y/z"), 0);
    assert_int_equal(credentials_form_append(f, sizeof(f), "B", "~ok"), 0);
    assert_string_equal(f, "A=x%20y%2Fz&B=~ok");
    assert_int_equal(credentials_form_append(f, 20, "C", "toolong"),
                     -ENOBUFS);
}

static void
test_ecs_url(void **state)
{
    const char *why = NULL;
    char url[256];

    (void)state;
    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    assert_int_equal(credentials_ecs_url(url, sizeof(url), &why), -ENOENT);

    setenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI", "/v2/credentials/x", 1);
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://127.0.0.1:9/y", 1);
    assert_int_equal(credentials_ecs_url(url, sizeof(url), &why), 0);
    assert_string_equal(url, "http://169.254.170.2/v2/credentials/x");

    unsetenv("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    assert_int_equal(credentials_ecs_url(url, sizeof(url), &why), 0);
    assert_string_equal(url, "http://127.0.0.1:9/y");

    /* plain http elsewhere would hand the token to anyone on the path */
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "http://10.0.0.1/y", 1);
    assert_int_equal(credentials_ecs_url(url, sizeof(url), &why), -ENOKEY);
    assert_non_null(strstr(why, "https"));
    setenv("AWS_CONTAINER_CREDENTIALS_FULL_URI", "https://10.0.0.1/y", 1);
    assert_int_equal(credentials_ecs_url(url, sizeof(url), &why), 0);
    unsetenv("AWS_CONTAINER_CREDENTIALS_FULL_URI");
}

static void
test_static_keys_first(void **state)
{
    const struct credentials_options o = {
        .access_key_id = "AKIDCONFIG",
        .secret_access_key = "configsecret",
    };
    const struct credentials_options half = { .access_key_id = "A" };
    struct sigv4_credentials got;
    const char *why = NULL;
    struct credentials *c = credentials_new();

    (void)state;
    assert_non_null(c);
    setenv("AWS_ACCESS_KEY_ID", "AKIDENV", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "envsecret", 1);
    assert_int_equal(credentials_set_options(c, &o), 0);
    assert_int_equal(credentials_get(c, &got, &why), 0);
    assert_string_equal(got.access_key_id, "AKIDCONFIG");
    assert_string_equal(credentials_source(c), "config file");
    assert_int_equal(credentials_expires(c), 0);
    assert_int_equal(credentials_set_options(c, &half), -EINVAL);
    unsetenv("AWS_ACCESS_KEY_ID");
    unsetenv("AWS_SECRET_ACCESS_KEY");
    credentials_free(c);
}

static void
test_billing_units(void **state)
{
    struct batch_limits l = { .pack = true };
    struct batch b;
    char ev[400];

    (void)state;
    assert_int_equal(batch_billed_bytes(1), 5120);
    assert_int_equal(batch_billed_bytes(5120), 5120);
    assert_int_equal(batch_billed_bytes(5121), 10240);

    memset(ev, 'x', sizeof(ev));
    ev[sizeof(ev) - 1] = '\n';
    assert_int_equal(batch_init(&b, &l), 0);
    for (uint64_t seq = 1; seq <= 100; seq++)
        assert_int_equal(batch_add(&b, seq, ev, sizeof(ev)), 0);
    /* 100 events of 400 bytes: one 40000-byte record, 8 units packed */
    assert_int_equal(batch_n_records(&b), 1);
    assert_int_equal(batch_billed_bytes(batch_record(&b, 0)->len), 40960);
    assert_int_equal(batch_record(&b, 0)->billed_unpacked, 100 * 5120);
    batch_done(&b);
}

static int
setup_dir(void **state)
{
    (void)state;
    assert_non_null(mkdtemp(tmpdir));
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aaas/c", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/aaas/f", 1);
    return 0;
}

static int
teardown_dir(void **state)
{
    char cmd[300];

    (void)state;
    (void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
    return system(cmd) == 0 ? 0 : -1;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_profile_merge),
        cmocka_unit_test(test_profile_bad_line),
        cmocka_unit_test(test_parse_time),
        cmocka_unit_test(test_parse_json),
        cmocka_unit_test(test_parse_sts),
        cmocka_unit_test(test_form),
        cmocka_unit_test(test_ecs_url),
        cmocka_unit_test(test_static_keys_first),
        cmocka_unit_test(test_billing_units),
    };

    return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
