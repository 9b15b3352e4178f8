/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

/*
 * The network side of the credential chain: one blocking HTTP request
 * with short timeouts, and reading the answers of the ECS container
 * endpoint, EC2 instance metadata (JSON) and STS (XML).
 */

/* What a source hands back; owned strings, wiped when freed. */
struct credentials_value {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;                /* NULL when not temporary */
    time_t expires;                     /* 0: until invalidated */
};

void credentials_value_wipe(struct credentials_value *v);

#define CREDENTIALS_HTTP_HEADERS_MAX 6

struct credentials_http_request {
    const char *method;                 /* "GET", "PUT", "POST" */
    const char *url;
    const char *headers[CREDENTIALS_HTTP_HEADERS_MAX];  /* "Name: value" */
    size_t n_headers;
    const char *body;                   /* NULL: none */
    long connect_timeout_ms;
    long timeout_ms;
    const char *ca_file;                /* NULL: the system store */
    const char *proxy;                  /* NULL: libcurl's environment */
    bool no_proxy;                      /* link-local and loopback hosts */
};

/*
 * The answer, NUL-terminated; the body may hold secrets, so it is wiped
 * by credentials_http_response_done().
 */
struct credentials_http_response {
    long status;                        /* 0: no answer */
    char *body;
    size_t body_len;
    char error[256];                    /* transport failure, or "" */
};

/*
 * Runs the request to its end.  Returns 0 with any HTTP status, -ETIMEDOUT
 * or -EIO (with curl's text in ret->error) when no answer came, -ENOMEM.
 */
int credentials_http_fetch(const struct credentials_http_request *req,
                           struct credentials_http_response *ret);
void credentials_http_response_done(struct credentials_http_response *r);

/* "2024-05-01T12:00:00Z" (fractions and offsets allowed); -EINVAL. */
int credentials_parse_time(const char *s, size_t len, time_t *ret);

/*
 * The ECS and EC2 answer {"AccessKeyId":..,"SecretAccessKey":..,
 * "Token":..,"Expiration":..}.  Returns 0, -EBADMSG with a static
 * reason when it is not that, -ENOMEM.
 */
int credentials_parse_json(const char *body, size_t len,
                           struct credentials_value *ret,
                           const char **reterr_reason);

/*
 * STS AssumeRole and AssumeRoleWithWebIdentity answers: the Credentials
 * element on success; otherwise -EBADMSG, with the service's Error Code
 * and Message (or a static reason) copied into reterr.
 */
int credentials_parse_sts(const char *body, size_t len,
                          struct credentials_value *ret,
                          char *reterr, size_t reterr_size);

/* application/x-www-form-urlencoded value of s appended to out; -ENOBUFS. */
int credentials_form_append(char *out, size_t size, const char *name,
                            const char *value);
