/* SPDX-License-Identifier: MIT */
/*
 * sigv4 against AWS's own vectors, read as data from both suites, plus
 * the cases the vectors do not cover: buffer sizes, the key cache and
 * the requests sigv4 refuses.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <openssl/evp.h>

#include "sigv4.h"
#ifdef TEST_SIGV4_WITH_CREDENTIALS
#include "credentials.h"
#endif

#define SUITE_DIR AAAS_SHARED_DIR "/sigv4-test-suite"
#define CLASSIC_DIR SUITE_DIR "/aws-sig-v4-test-suite"
#define V4_DIR SUITE_DIR "/aws-signing-test-suite/v4"

/* The classic suite keeps these in its documentation, not in files. */
#define CLASSIC_AKID "AKIDEXAMPLE"
#define CLASSIC_SECRET "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"
#define CLASSIC_REGION "us-east-1"
#define CLASSIC_SERVICE "service"

#define OUT_MAX 4096

/*
 * Vectors not run, and why.  Names match a case directory in either
 * suite, or a folder of cases in the classic one.
 *
 * - Path normalisation ("." and ".." segments, repeated slashes) and
 *   path percent-encoding (spaces, UTF-8): sigv4 takes the path in its
 *   canonical form and refuses any other with -EINVAL; the daemon only
 *   sends "/".  test_refused_paths checks the refusal.
 * - Query-string signing (presigned URLs, the v4 suite's query-*.txt):
 *   sigv4 only signs in the Authorization header.
 *
 * Every other case runs, GET ones included: their header and query rules
 * are the same for the POSTs the daemon sends.
 */
static const char *const skipped[] = {
    "normalize-path",                   /* classic: a folder of cases */
    "get-utf8",
    "get-space-normalized",
    "get-space-unnormalized",
    "get-relative-normalized",
    "get-relative-unnormalized",
    "get-relative-relative-normalized",
    "get-relative-relative-unnormalized",
    "get-slash-normalized",
    "get-slash-unnormalized",
    "get-slash-dot-slash-normalized",
    "get-slash-dot-slash-unnormalized",
    "get-slash-pointless-dot-normalized",
    "get-slash-pointless-dot-unnormalized",
    "get-slashes-normalized",
    "get-slashes-unnormalized",
};

enum suite {
    SUITE_CLASSIC,
    SUITE_V4,
};

struct vector {
    enum suite suite;
    char name[2 * NAME_MAX];            /* test name: suite/case */
    char dir[PATH_MAX];
    char base[NAME_MAX + 1];            /* file stem in the classic suite */
};

/* A request file cut up in place: strings point into text. */
struct parsed_request {
    char *text;
    char *method;
    char *path;
    char *query;
    struct sigv4_header headers[SIGV4_HEADERS_MAX];
    size_t n_headers;
    const char *body;
    size_t body_len;
};

static bool
is_skipped(const char *name)
{
    for (size_t i = 0; i < sizeof(skipped) / sizeof(skipped[0]); i++)
        if (strcmp(name, skipped[i]) == 0)
            return true;
    return false;
}

static char *
read_text(const char *dir, const char *file)
{
    char path[PATH_MAX * 2];
    char *buf = NULL;
    size_t n = 0, size = 0;
    FILE *f;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, file);
    f = fopen(path, "re");
    if (!f)
        fail_msg("cannot open '%s': %s", path, strerror(errno));
    for (;;) {
        if (size - n < 4096) {
            size = size * 2 + 4096;
            buf = realloc(buf, size);
            assert_non_null(buf);
        }
        size_t got = fread(buf + n, 1, size - n - 1, f);
        n += got;
        if (got == 0)
            break;
    }
    assert_false(ferror(f));
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* The expected files differ in whether they end with a newline. */
static void
chomp(char *s)
{
    size_t n = strlen(s);

    while (n > 0 && s[n - 1] == '\n')
        s[--n] = '\0';
}

static void
add_header(struct parsed_request *p, const char *name, const char *value)
{
    assert_true(p->n_headers < SIGV4_HEADERS_MAX);
    p->headers[p->n_headers].name = name;
    p->headers[p->n_headers].value = value;
    p->n_headers++;
}

/*
 * "METHOD target HTTP/1.1", header lines, a blank line, the body.  The
 * suites read a line that starts with a blank differently.  The classic
 * one, written before RFC 7230, takes it as one more value of the header
 * above (joined with ","); the v4 one takes it as obs-fold, part of the
 * value, which sigv4 folds to a space.  So the classic reading makes a
 * header of its own and the v4 reading keeps the newline in the value.
 */
static void
parse_request(char *text, enum suite suite, struct parsed_request *p)
{
    char *line = text, *next, *sp;

    memset(p, 0, sizeof(*p));
    p->text = text;

    next = strchr(line, '\n');
    if (next)
        *next++ = '\0';
    sp = strchr(line, ' ');
    assert_non_null(sp);
    *sp = '\0';
    p->method = line;
    p->path = sp + 1;
    sp = strrchr(p->path, ' ');
    assert_non_null(sp);
    *sp = '\0';
    sp = strchr(p->path, '?');
    if (sp) {
        *sp = '\0';
        p->query = sp + 1;
    }

    while (next && *next && *next != '\n') {
        char *colon;

        line = next;
        if (*line == ' ' || *line == '\t') {
            assert_true(p->n_headers > 0);
            if (suite == SUITE_CLASSIC) {
                next = strchr(line, '\n');
                if (next)
                    *next++ = '\0';
                add_header(p, p->headers[p->n_headers - 1].name, line);
                continue;
            }
            fail_msg("continuation line not joined: '%s'", line);
        }

        colon = strchr(line, ':');
        assert_non_null(colon);
        *colon = '\0';
        next = strchr(colon + 1, '\n');
        /* v4: the value runs on over continuation lines */
        while (suite == SUITE_V4 && next && (next[1] == ' ' || next[1] == '\t'))
            next = strchr(next + 1, '\n');
        if (next)
            *next++ = '\0';
        add_header(p, line, colon + 1);
    }
    if (next && *next == '\n')
        next++;
    p->body = next ? next : "";
    p->body_len = strlen(p->body);
}

/* Only what context.json holds, and only flat "key": value members. */
static bool
json_find(const char *json, const char *key, char *ret, size_t size)
{
    char quoted[64];
    const char *p, *end;

    (void) snprintf(quoted, sizeof(quoted), "\"%s\"", key);
    p = strstr(json, quoted);
    if (!p)
        return false;
    p += strlen(quoted);
    p += strspn(p, " \t\n");
    assert_true(*p == ':');
    p++;
    p += strspn(p, " \t\n");
    if (*p == '"') {
        p++;
        end = strchr(p, '"');
    } else
        end = p + strcspn(p, ",} \t\n");
    assert_non_null(end);
    assert_true((size_t) (end - p) < size);
    memcpy(ret, p, (size_t) (end - p));
    ret[end - p] = '\0';
    return true;
}

static time_t
parse_iso8601(const char *s)
{
    struct tm tm = { 0 };

    assert_int_equal(sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2dZ", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec), 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static time_t
parse_amz_date(const char *s)
{
    struct tm tm = { 0 };

    while (*s == ' ')
        s++;
    assert_int_equal(sscanf(s, "%4d%2d%2dT%2d%2d%2dZ", &tm.tm_year,
                            &tm.tm_mon, &tm.tm_mday, &tm.tm_hour,
                            &tm.tm_min, &tm.tm_sec), 6);
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return timegm(&tm);
}

static void
sign_and_compare(const struct parsed_request *p,
                 const struct sigv4_credentials *cred,
                 const struct sigv4_scope *scope, const char *want_creq,
                 const char *want_sts, const char *want_authz)
{
    static char authz[OUT_MAX], creq[OUT_MAX], sts[OUT_MAX];
    const struct sigv4_request req = {
        .method = p->method,
        .path = p->path,
        .query = p->query,
        .headers = p->headers,
        .n_headers = p->n_headers,
        .payload = p->body,
        .payload_len = p->body_len,
    };
    int r;

    r = sigv4_sign(&req, cred, scope, authz, sizeof(authz), creq,
                   sizeof(creq), sts, sizeof(sts));
    assert_int_equal(r, 0);
    assert_string_equal(creq, want_creq);
    assert_string_equal(sts, want_sts);
    assert_string_equal(authz, want_authz);
}

static void
run_classic(const struct vector *v)
{
    char file[NAME_MAX + 8], *req_text, *creq, *sts, *authz;
    struct parsed_request p;
    struct sigv4_credentials cred = {
        .access_key_id = CLASSIC_AKID,
        .secret_access_key = CLASSIC_SECRET,
    };
    struct sigv4_scope scope = {
        .region = CLASSIC_REGION,
        .service = CLASSIC_SERVICE,
        .when = (time_t) -1,
    };

    (void) snprintf(file, sizeof(file), "%s.req", v->base);
    req_text = read_text(v->dir, file);
    (void) snprintf(file, sizeof(file), "%s.creq", v->base);
    creq = read_text(v->dir, file);
    (void) snprintf(file, sizeof(file), "%s.sts", v->base);
    sts = read_text(v->dir, file);
    (void) snprintf(file, sizeof(file), "%s.authz", v->base);
    authz = read_text(v->dir, file);
    chomp(creq);
    chomp(sts);
    chomp(authz);

    parse_request(req_text, SUITE_CLASSIC, &p);
    /* the classic cases carry their instant in the request itself */
    for (size_t i = 0; i < p.n_headers; i++)
        if (strcasecmp(p.headers[i].name, "x-amz-date") == 0)
            scope.when = parse_amz_date(p.headers[i].value);
    assert_true(scope.when != (time_t) -1);

    sign_and_compare(&p, &cred, &scope, creq, sts, authz);
    free(req_text);
    free(creq);
    free(sts);
    free(authz);
}

/* The v4 suite leaves the headers a signer adds to the signer. */
static void
run_v4(const struct vector *v)
{
    char akid[64], secret[128], token[1024], region[64], service[64];
    char stamp[64], flag[16], amz_date[17], body_hash[65];
    char *ctx, *req_text, *creq, *sts, *signed_req, *authz, *sig, *sigfile;
    struct parsed_request p;
    struct sigv4_credentials cred = { 0 };
    struct sigv4_scope scope = { 0 };
    bool have_token;

    ctx = read_text(v->dir, "context.json");
    assert_true(json_find(ctx, "access_key_id", akid, sizeof(akid)));
    assert_true(json_find(ctx, "secret_access_key", secret, sizeof(secret)));
    assert_true(json_find(ctx, "region", region, sizeof(region)));
    assert_true(json_find(ctx, "service", service, sizeof(service)));
    assert_true(json_find(ctx, "timestamp", stamp, sizeof(stamp)));
    have_token = json_find(ctx, "token", token, sizeof(token));
    cred.access_key_id = akid;
    cred.secret_access_key = secret;
    cred.session_token = have_token ? token : NULL;
    scope.region = region;
    scope.service = service;
    scope.when = parse_iso8601(stamp);

    req_text = read_text(v->dir, "request.txt");
    parse_request(req_text, SUITE_V4, &p);

    sigv4_format_amz_date(scope.when, amz_date);
    add_header(&p, "X-Amz-Date", amz_date);
    if (json_find(ctx, "sign_body", flag, sizeof(flag)) &&
        strcmp(flag, "true") == 0) {
        assert_int_equal(sigv4_hash_payload(p.body, p.body_len, body_hash),
                         0);
        add_header(&p, "x-amz-content-sha256", body_hash);
    }
    /* "omit_session_token": sent, but added after signing */
    if (have_token && !(json_find(ctx, "omit_session_token", flag,
                                  sizeof(flag)) && strcmp(flag, "true") == 0))
        add_header(&p, "X-Amz-Security-Token", token);

    creq = read_text(v->dir, "header-canonical-request.txt");
    sts = read_text(v->dir, "header-string-to-sign.txt");
    sigfile = read_text(v->dir, "header-signature.txt");
    signed_req = read_text(v->dir, "header-signed-request.txt");
    chomp(creq);
    chomp(sts);
    chomp(sigfile);
    authz = strstr(signed_req, "\nAuthorization:");
    assert_non_null(authz);
    authz += strlen("\nAuthorization:");
    authz[strcspn(authz, "\n")] = '\0';
    sig = strstr(authz, "Signature=");
    assert_non_null(sig);
    assert_string_equal(sig + strlen("Signature="), sigfile);

    sign_and_compare(&p, &cred, &scope, creq, sts, authz);
    free(ctx);
    free(req_text);
    free(creq);
    free(sts);
    free(sigfile);
    free(signed_req);
}

static void
test_vector(void **state)
{
    const struct vector *v = *state;

    if (v->suite == SUITE_CLASSIC)
        run_classic(v);
    else
        run_v4(v);
}

static void
test_skipped_vector(void **state)
{
    (void) state;
    skip();
}

static bool
file_exists(const char *dir, const char *file)
{
    char path[PATH_MAX * 2];
    struct stat st;

    (void) snprintf(path, sizeof(path), "%s/%s", dir, file);
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

struct vector_list {
    struct vector *v;
    size_t n;
    size_t size;
    size_t n_run[2];                    /* per suite */
};

static void
list_add(struct vector_list *l, enum suite suite, const char *dir,
         const char *name, const char *base)
{
    struct vector *v;

    if (l->n == l->size) {
        l->size = l->size * 2 + 32;
        l->v = realloc(l->v, l->size * sizeof(l->v[0]));
        if (!l->v)
            abort();
    }
    v = &l->v[l->n++];
    memset(v, 0, sizeof(*v));
    v->suite = suite;
    (void) snprintf(v->name, sizeof(v->name), "%s/%s",
                    suite == SUITE_CLASSIC ? "aws-sig-v4-test-suite" : "v4",
                    name);
    (void) snprintf(v->dir, sizeof(v->dir), "%s", dir);
    (void) snprintf(v->base, sizeof(v->base), "%s", base);
}

/*
 * A classic case is a directory D holding D.req; a directory without
 * one (post-sts-token, normalize-path) holds cases one level down.
 */
static void
scan(struct vector_list *l, enum suite suite, const char *root,
     const char *prefix, int depth)
{
    struct dirent *de;
    DIR *d;

    d = opendir(root);
    if (!d)
        return;
    while ((de = readdir(d))) {
        char dir[PATH_MAX], name[NAME_MAX + 1], req[NAME_MAX + 5];
        bool is_case;

        if (de->d_name[0] == '.')
            continue;
        (void) snprintf(dir, sizeof(dir), "%s/%s", root, de->d_name);
        (void) snprintf(name, sizeof(name), "%s%s", prefix, de->d_name);
        (void) snprintf(req, sizeof(req), "%s.req", de->d_name);
        is_case = suite == SUITE_V4 ? file_exists(dir, "request.txt")
                                    : file_exists(dir, req);
        if (!is_case) {
            struct stat st;
            char sub[NAME_MAX + 2];

            if (suite == SUITE_CLASSIC && depth == 0 &&
                stat(dir, &st) == 0 && S_ISDIR(st.st_mode)) {
                if (is_skipped(de->d_name))
                    list_add(l, suite, dir, name, "");
                else {
                    (void) snprintf(sub, sizeof(sub), "%s/", name);
                    scan(l, suite, dir, sub, depth + 1);
                }
            }
            continue;
        }
        list_add(l, suite, dir, name, de->d_name);
        if (!is_skipped(de->d_name))
            l->n_run[suite]++;
    }
    closedir(d);
}

static int
vector_cmp(const void *a, const void *b)
{
    const struct vector *x = a, *y = b;

    return strcmp(x->name, y->name);
}

static struct vector_list vectors;

/* A suite that is missing or yields nothing to run is a failure. */
static void
test_inventory(void **state)
{
    (void) state;

    if (vectors.n_run[SUITE_CLASSIC] == 0)
        fail_msg("no runnable vectors under '%s'", CLASSIC_DIR);
    if (vectors.n_run[SUITE_V4] == 0)
        fail_msg("no runnable vectors under '%s'", V4_DIR);
    /* the cases the daemon's requests depend on must be among them */
    static const char *const needed[] = {
        "aws-sig-v4-test-suite/post-vanilla",
        "aws-sig-v4-test-suite/post-sts-token/post-sts-header-before",
        "aws-sig-v4-test-suite/post-sts-token/post-sts-header-after",
        "aws-sig-v4-test-suite/post-x-www-form-urlencoded",
        "v4/post-vanilla",
        "v4/post-sts-header-before",
        "v4/post-sts-header-after",
        "v4/get-header-value-multiline",
    };
    for (size_t i = 0; i < sizeof(needed) / sizeof(needed[0]); i++) {
        bool found = false;

        for (size_t j = 0; j < vectors.n; j++)
            found = found || strcmp(vectors.v[j].name, needed[i]) == 0;
        if (!found)
            fail_msg("vector '%s' not found", needed[i]);
    }
}

/* The request the direct tests vary. */
struct fixture {
    char amz_date[17];
    struct sigv4_header headers[3];
    struct sigv4_request req;
    struct sigv4_credentials cred;
    struct sigv4_scope scope;
};

static void
fixture_init(struct fixture *f, time_t when)
{
    static const char body[] = "{\"DeliveryStreamName\":\"s\",\"Records\":[]}";

    memset(f, 0, sizeof(*f));
    sigv4_format_amz_date(when, f->amz_date);
    f->headers[0] = (struct sigv4_header) { "Host", "firehose.test" };
    f->headers[1] = (struct sigv4_header) { "X-Amz-Date", f->amz_date };
    f->headers[2] = (struct sigv4_header) {
        "X-Amz-Target", "Firehose_20150804.PutRecordBatch",
    };
    f->req = (struct sigv4_request) {
        .method = "POST",
        .path = "/",
        .headers = f->headers,
        .n_headers = 3,
        .payload = body,
        .payload_len = sizeof(body) - 1,
    };
    f->cred = (struct sigv4_credentials) {
        .access_key_id = CLASSIC_AKID,
        .secret_access_key = CLASSIC_SECRET,
    };
    f->scope = (struct sigv4_scope) {
        .region = "eu-west-1",
        .service = "firehose",
        .when = when,
    };
}

#define T0 ((time_t) 1440938160)        /* 2015-08-30T12:36:00Z */

static int
sign(const struct fixture *f, char *authz, size_t size)
{
    return sigv4_sign(&f->req, &f->cred, &f->scope, authz, size,
                      NULL, 0, NULL, 0);
}

static void
test_format_amz_date(void **state)
{
    char buf[17];

    (void) state;
    sigv4_format_amz_date(T0, buf);
    assert_string_equal(buf, "20150830T123600Z");
    sigv4_format_amz_date(0, buf);
    assert_string_equal(buf, "19700101T000000Z");
    sigv4_format_amz_date((time_t) 951782400, buf);   /* a leap day */
    assert_string_equal(buf, "20000229T000000Z");
}

static void
test_buffer_too_small(void **state)
{
    char authz[OUT_MAX], creq[OUT_MAX], sts[OUT_MAX], small[OUT_MAX];
    struct fixture f;
    size_t authz_len, creq_len, sts_len;

    (void) state;
    fixture_init(&f, T0);
    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, authz,
                                sizeof(authz), creq, sizeof(creq), sts,
                                sizeof(sts)), 0);
    authz_len = strlen(authz);
    creq_len = strlen(creq);
    sts_len = strlen(sts);

    /* exactly enough room for the value and its NUL, then one less */
    assert_int_equal(sign(&f, small, authz_len + 1), 0);
    assert_string_equal(small, authz);
    memset(small, 'x', sizeof(small));
    assert_int_equal(sign(&f, small, authz_len), -ENOBUFS);
    assert_string_equal(small, "");
    assert_int_equal(sign(&f, small, 0), -ENOBUFS);

    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, authz,
                                sizeof(authz), small, creq_len + 1, NULL,
                                0), 0);
    assert_string_equal(small, creq);
    memset(authz, 'x', sizeof(authz));
    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, authz,
                                sizeof(authz), small, creq_len, NULL, 0),
                     -ENOBUFS);
    assert_string_equal(small, "");
    assert_string_equal(authz, "");

    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, authz,
                                sizeof(authz), NULL, 0, small, sts_len),
                     -ENOBUFS);
    assert_string_equal(small, "");
    assert_string_equal(authz, "");
}

static void
test_same_request_twice(void **state)
{
    char a[OUT_MAX], b[OUT_MAX], creq_a[OUT_MAX], creq_b[OUT_MAX];
    struct fixture f;

    (void) state;
    fixture_init(&f, T0);
    sigv4_done();                       /* first call derives the key */
    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, a, sizeof(a),
                                creq_a, sizeof(creq_a), NULL, 0), 0);
    /* second from the cache */
    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, b, sizeof(b),
                                creq_b, sizeof(creq_b), NULL, 0), 0);
    assert_string_equal(a, b);
    assert_string_equal(creq_a, creq_b);
}

/* Signature= of an Authorization value, checked for form. */
static const char *
signature_of(const char *authz)
{
    const char *s = strstr(authz, ", Signature=");

    assert_non_null(s);
    s += strlen(", Signature=");
    assert_int_equal(strlen(s), 64);
    return s;
}

static void
openssl_hmac(const void *key, size_t key_len, const char *msg,
             unsigned char ret[32])
{
    size_t len = 0;

    assert_non_null(EVP_Q_mac(NULL, "HMAC", NULL, "SHA256", NULL, key,
                              key_len, (const unsigned char *) msg,
                              strlen(msg), ret, 32, &len));
    assert_int_equal(len, 32);
}

/*
 * The signature recomputed from the string to sign with OpenSSL's own
 * HMAC, so that the cached and the derived keys are both checked against
 * an implementation that is not ours.
 */
static void
assert_signature_independent(const struct fixture *f)
{
    char authz[OUT_MAX], sts[OUT_MAX], ksecret[128], hex[65];
    unsigned char k[32];
    const char *parts[] = { NULL, f->scope.region, f->scope.service,
                            "aws4_request" };
    char date[9];

    assert_int_equal(sigv4_sign(&f->req, &f->cred, &f->scope, authz,
                                sizeof(authz), NULL, 0, sts, sizeof(sts)),
                     0);
    memcpy(date, f->amz_date, 8);
    date[8] = '\0';
    parts[0] = date;

    (void) snprintf(ksecret, sizeof(ksecret), "AWS4%s",
                    f->cred.secret_access_key);
    openssl_hmac(ksecret, strlen(ksecret), parts[0], k);
    for (size_t i = 1; i < 4; i++)
        openssl_hmac(k, sizeof(k), parts[i], k);
    openssl_hmac(k, sizeof(k), sts, k);
    for (size_t i = 0; i < 32; i++)
        (void) snprintf(hex + 2 * i, 3, "%02x", k[i]);
    assert_string_equal(signature_of(authz), hex);
}

static void
test_date_changes_key(void **state)
{
    char day1[OUT_MAX], day2[OUT_MAX], again[OUT_MAX], fresh[OUT_MAX];
    struct fixture f, g;

    (void) state;
    fixture_init(&f, T0);
    /* next day, same time: only the date in the scope moves */
    fixture_init(&g, T0 + 86400);
    sigv4_done();
    assert_int_equal(sign(&f, day1, sizeof(day1)), 0);
    assert_int_equal(sign(&g, day2, sizeof(day2)), 0);
    assert_string_not_equal(signature_of(day1), signature_of(day2));
    assert_non_null(strstr(day2, "/20150831/eu-west-1/firehose/"));

    /* back to the first day: the cache must not hand out day 2's key */
    assert_int_equal(sign(&f, again, sizeof(again)), 0);
    assert_string_equal(day1, again);
    sigv4_done();
    assert_int_equal(sign(&g, fresh, sizeof(fresh)), 0);
    assert_string_equal(day2, fresh);

    assert_signature_independent(&f);
    assert_signature_independent(&g);
}

/* The cache is keyed on the secret, region and service too. */
static void
test_cache_keys(void **state)
{
    char a[OUT_MAX], b[OUT_MAX];
    struct fixture f;

    (void) state;
    fixture_init(&f, T0);
    assert_int_equal(sign(&f, a, sizeof(a)), 0);
    f.cred.secret_access_key = "another-secret-of-the-same-length-000000";
    assert_int_equal(sign(&f, b, sizeof(b)), 0);
    assert_string_not_equal(signature_of(a), signature_of(b));
    assert_signature_independent(&f);

    f.cred.secret_access_key = CLASSIC_SECRET;
    f.scope.region = "us-east-1";
    assert_signature_independent(&f);
    f.scope.service = "kinesis";
    assert_signature_independent(&f);

    /* more distinct scopes than slots, then the first again */
    const char *regions[] = { "r1", "r2", "r3", "r4", "r5", "r6" };
    for (size_t i = 0; i < sizeof(regions) / sizeof(regions[0]); i++) {
        f.scope.region = regions[i];
        assert_signature_independent(&f);
    }
    f.scope.region = regions[0];
    assert_signature_independent(&f);
}

static void
test_payload_hash_given(void **state)
{
    char a[OUT_MAX], b[OUT_MAX], hash[SIGV4_HEX_SHA256_SIZE];
    struct fixture f;

    (void) state;
    fixture_init(&f, T0);
    assert_int_equal(sign(&f, a, sizeof(a)), 0);
    assert_int_equal(sigv4_hash_payload(f.req.payload, f.req.payload_len,
                                        hash), 0);
    f.req.payload_sha256 = hash;
    assert_int_equal(sign(&f, b, sizeof(b)), 0);
    assert_string_equal(a, b);

    /* a different payload hash must change the signature */
    hash[0] = hash[0] == '0' ? '1' : '0';
    assert_int_equal(sign(&f, b, sizeof(b)), 0);
    assert_string_not_equal(a, b);

    hash[0] = 'A';                      /* upper case is not canonical */
    assert_int_equal(sign(&f, b, sizeof(b)), -EINVAL);
    f.req.payload_sha256 = "abc";
    assert_int_equal(sign(&f, b, sizeof(b)), -EINVAL);

    assert_int_equal(sigv4_hash_payload("", 0, hash), 0);
    assert_string_equal(hash, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b"
                              "934ca495991b7852b855");
}

static void
assert_refused(struct fixture *f)
{
    char authz[OUT_MAX];

    memset(authz, 'x', sizeof(authz));
    assert_int_equal(sign(f, authz, sizeof(authz)), -EINVAL);
    assert_string_equal(authz, "");
}

static void
test_refused_paths(void **state)
{
    static const char *const bad_paths[] = {
        "", "relative", "//", "/a//b", "/./", "/a/../b", "/a/.", "/a b",
        "/%2F", "/\xe1\x88\xb4",
    };
    char authz[OUT_MAX];
    struct fixture f;

    (void) state;
    for (size_t i = 0; i < sizeof(bad_paths) / sizeof(bad_paths[0]); i++) {
        fixture_init(&f, T0);
        f.req.path = bad_paths[i];
        assert_refused(&f);
    }
    fixture_init(&f, T0);
    f.req.path = "/a/b-c_d.e~f/";
    assert_int_equal(sign(&f, authz, sizeof(authz)), 0);
}

static void
test_refused_headers(void **state)
{
    struct sigv4_header many[SIGV4_HEADERS_MAX + 1];
    char authz[OUT_MAX];
    struct fixture f;

    (void) state;
    fixture_init(&f, T0);
    f.headers[0].name = "Hos t";
    assert_refused(&f);
    fixture_init(&f, T0);
    f.headers[0].name = "X-Other";      /* no host left */
    assert_refused(&f);
    fixture_init(&f, T0);
    f.headers[2].value = "a\001b";
    assert_refused(&f);
    fixture_init(&f, T0);
    f.headers[2].name = "Authorization";
    assert_refused(&f);

    /* the x-amz-date header must be there once and match the scope */
    fixture_init(&f, T0);
    f.scope.when = T0 + 1;
    assert_refused(&f);
    fixture_init(&f, T0);
    f.headers[2] = f.headers[1];
    assert_refused(&f);
    fixture_init(&f, T0);
    f.req.n_headers = 1;
    assert_refused(&f);

    fixture_init(&f, T0);
    for (size_t i = 0; i < SIGV4_HEADERS_MAX + 1; i++)
        many[i] = f.headers[i < 3 ? i : 2];
    f.req.headers = many;
    f.req.n_headers = SIGV4_HEADERS_MAX;
    assert_int_equal(sign(&f, authz, sizeof(authz)), 0);
    f.req.n_headers = SIGV4_HEADERS_MAX + 1;
    assert_refused(&f);
}

static void
test_refused_scope(void **state)
{
    struct fixture f;

    (void) state;
    fixture_init(&f, T0);
    f.req.query = "a=%G1";
    assert_refused(&f);
    f.req.query = "a=%4";
    assert_refused(&f);
    fixture_init(&f, T0);
    f.scope.region = "us/east";
    assert_refused(&f);
    fixture_init(&f, T0);
    f.cred.access_key_id = "AKID/X";
    assert_refused(&f);
    fixture_init(&f, T0);
    f.cred.secret_access_key = "";
    assert_refused(&f);
    fixture_init(&f, T0);
    f.req.method = "post";
    assert_refused(&f);
}

/*
 * Query canonicalisation beyond the vectors: encoded and raw forms of
 * the same byte sort and print alike; empty parameters are dropped.
 */
static void
test_query_forms(void **state)
{
    char creq_a[OUT_MAX], creq_b[OUT_MAX], authz[OUT_MAX];
    struct fixture f;

    (void) state;
    fixture_init(&f, T0);
    f.req.query = "b=%7e&a=x y&&c";
    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, authz,
                                sizeof(authz), creq_a, sizeof(creq_a),
                                NULL, 0), 0);
    assert_non_null(strstr(creq_a, "\n/\na=x%20y&b=~&c=\n"));
    f.req.query = "c=&b=~&a=x%20y";
    assert_int_equal(sigv4_sign(&f.req, &f.cred, &f.scope, authz,
                                sizeof(authz), creq_b, sizeof(creq_b),
                                NULL, 0), 0);
    assert_string_equal(creq_a, creq_b);
}

/*
 * credentials.c is tested here because its one source today is the
 * environment; the test links it only when built with this defined.
 */
#ifdef TEST_SIGV4_WITH_CREDENTIALS
static const char *const env_names[] = {
    "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN",
    "AWS_ACCESS_KEY", "AWS_SECRET_KEY", "AWS_SECURITY_TOKEN",
    "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN", "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
};

/* The rest of the chain finds nothing: no files, no instance metadata. */
static int
env_clear(void **state)
{
    (void) state;
    for (size_t i = 0; i < sizeof(env_names) / sizeof(env_names[0]); i++)
        assert_int_equal(unsetenv(env_names[i]), 0);
    setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent/aaas/credentials", 1);
    setenv("AWS_CONFIG_FILE", "/nonexistent/aaas/config", 1);
    setenv("AWS_EC2_METADATA_DISABLED", "true", 1);
    return 0;
}

static void
test_credentials_absent(void **state)
{
    struct sigv4_credentials got = { "untouched", NULL, NULL };
    const char *reason = NULL;
    struct credentials *c;

    (void) state;
    c = credentials_new();
    assert_non_null(c);
    assert_int_equal(credentials_get(c, &got, &reason), -ENOKEY);
    assert_non_null(strstr(reason, "no credentials in the environment"));
    assert_non_null(strstr(reason, "AWS_EC2_METADATA_DISABLED"));
    assert_string_equal(got.access_key_id, "untouched");

    /* empty counts as unset, as in the SDKs */
    setenv("AWS_ACCESS_KEY_ID", "", 1);
    assert_int_equal(credentials_get(c, &got, &reason), -ENOKEY);
    assert_null(credentials_free(c));
    assert_null(credentials_free(NULL));
}

static void
test_credentials_half_set(void **state)
{
    struct sigv4_credentials got;
    const char *reason = NULL;
    struct credentials *c;

    (void) state;
    c = credentials_new();
    assert_non_null(c);
    setenv("AWS_ACCESS_KEY_ID", "AKIDONLY", 1);
    assert_int_equal(credentials_get(c, &got, &reason), -ENOKEY);
    assert_non_null(strstr(reason, "AWS_SECRET_ACCESS_KEY is not"));

    env_clear(NULL);
    setenv("AWS_SECRET_ACCESS_KEY", "secret", 1);
    assert_int_equal(credentials_get(c, &got, &reason), -ENOKEY);
    assert_non_null(strstr(reason, "AWS_ACCESS_KEY_ID is not"));
    credentials_free(c);
}

static void
test_credentials_env(void **state)
{
    struct sigv4_credentials got;
    const char *reason = NULL;
    struct credentials *c;

    (void) state;
    c = credentials_new();
    assert_non_null(c);
    setenv("AWS_ACCESS_KEY_ID", "AKID1", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secret1", 1);
    assert_int_equal(credentials_get(c, &got, &reason), 0);
    assert_string_equal(got.access_key_id, "AKID1");
    assert_string_equal(got.secret_access_key, "secret1");
    assert_null(got.session_token);

    /* cached: the environment is read again only after invalidation */
    setenv("AWS_ACCESS_KEY_ID", "AKID2", 1);
    setenv("AWS_SESSION_TOKEN", "token2", 1);
    assert_int_equal(credentials_get(c, &got, &reason), 0);
    assert_string_equal(got.access_key_id, "AKID1");
    credentials_invalidate(c);
    assert_int_equal(credentials_get(c, &got, &reason), 0);
    assert_string_equal(got.access_key_id, "AKID2");
    assert_string_equal(got.session_token, "token2");

    /* a copy, not the environment's own string */
    assert_ptr_not_equal(got.secret_access_key,
                         getenv("AWS_SECRET_ACCESS_KEY"));
    credentials_free(c);
}

static void
test_credentials_aliases(void **state)
{
    struct sigv4_credentials got;
    const char *reason = NULL;
    struct credentials *c;

    (void) state;
    c = credentials_new();
    assert_non_null(c);
    setenv("AWS_ACCESS_KEY", "AKIDOLD", 1);
    setenv("AWS_SECRET_KEY", "secretold", 1);
    setenv("AWS_SECURITY_TOKEN", "tokenold", 1);
    assert_int_equal(credentials_get(c, &got, &reason), 0);
    assert_string_equal(got.access_key_id, "AKIDOLD");
    assert_string_equal(got.secret_access_key, "secretold");
    assert_string_equal(got.session_token, "tokenold");

    /* the current names win */
    setenv("AWS_ACCESS_KEY_ID", "AKIDNEW", 1);
    setenv("AWS_SECRET_ACCESS_KEY", "secretnew", 1);
    credentials_invalidate(c);
    assert_int_equal(credentials_get(c, &got, &reason), 0);
    assert_string_equal(got.access_key_id, "AKIDNEW");
    assert_string_equal(got.secret_access_key, "secretnew");

    /* gone from the environment: invalidation drops them for good */
    env_clear(NULL);
    credentials_invalidate(c);
    assert_int_equal(credentials_get(c, &got, &reason), -ENOKEY);
    credentials_free(c);
}
#endif

int
main(void)
{
    static const struct CMUnitTest direct[] = {
        cmocka_unit_test(test_inventory),
        cmocka_unit_test(test_format_amz_date),
        cmocka_unit_test(test_buffer_too_small),
        cmocka_unit_test(test_same_request_twice),
        cmocka_unit_test(test_date_changes_key),
        cmocka_unit_test(test_cache_keys),
        cmocka_unit_test(test_payload_hash_given),
        cmocka_unit_test(test_refused_paths),
        cmocka_unit_test(test_refused_headers),
        cmocka_unit_test(test_refused_scope),
        cmocka_unit_test(test_query_forms),
#ifdef TEST_SIGV4_WITH_CREDENTIALS
        cmocka_unit_test_setup(test_credentials_absent, env_clear),
        cmocka_unit_test_setup(test_credentials_half_set, env_clear),
        cmocka_unit_test_setup(test_credentials_env, env_clear),
        cmocka_unit_test_setup(test_credentials_aliases, env_clear),
#endif
    };
    struct CMUnitTest *tests;
    size_t n_direct = sizeof(direct) / sizeof(direct[0]);
    int failed;

    scan(&vectors, SUITE_CLASSIC, CLASSIC_DIR, "", 0);
    scan(&vectors, SUITE_V4, V4_DIR, "", 0);
    if (vectors.n > 0)
        qsort(vectors.v, vectors.n, sizeof(vectors.v[0]), vector_cmp);

    tests = calloc(n_direct + vectors.n, sizeof(tests[0]));
    if (!tests)
        return 1;
    memcpy(tests, direct, sizeof(direct));
    for (size_t i = 0; i < vectors.n; i++) {
        struct CMUnitTest *t = &tests[n_direct + i];
        const char *leaf = strrchr(vectors.v[i].name, '/') + 1;

        t->name = vectors.v[i].name;
        t->test_func = is_skipped(leaf) ? test_skipped_vector : test_vector;
        t->initial_state = &vectors.v[i];
    }

    failed = _cmocka_run_group_tests("sigv4", tests, n_direct + vectors.n,
                                     NULL, NULL);
    sigv4_done();
    free(tests);
    free(vectors.v);
    return failed;
}
