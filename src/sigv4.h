/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <time.h>

/*
 * AWS Signature Version 4 for requests signed in the Authorization header.
 * The caller hands in the headers it will send; sigv4 adds nothing to the
 * wire itself and returns the Authorization value to send with them.
 */
struct sigv4_header {
    const char *name;           /* any case; sigv4 lowercases it */
    const char *value;          /* raw; sigv4 trims and folds blanks */
};

struct sigv4_request {
    const char *method;                 /* "POST" */
    const char *path;                   /* already URI-encoded, e.g. "/" */
    const char *query;                  /* raw query string or NULL */
    const struct sigv4_header *headers; /* must include host and x-amz-date */
    size_t n_headers;
    const void *payload;
    size_t payload_len;
};

struct sigv4_credentials {
    const char *access_key_id;
    const char *secret_access_key;
    const char *session_token;          /* NULL when not temporary */
};

struct sigv4_scope {
    const char *region;
    const char *service;
    time_t when;                        /* the x-amz-date instant */
};

/* "20150830T123600Z" into buf (at least 17 bytes). */
void sigv4_format_amz_date(time_t when, char buf[static 17]);

/*
 * Computes the Authorization header value into ret (NUL-terminated).
 * When the optional reterr_* pointers are given, the canonical request and
 * string to sign are written there too (for tests and debug).  Returns 0,
 * -ENOBUFS when a buffer is too small, -EINVAL on a malformed request.
 */
int sigv4_sign(const struct sigv4_request *req,
               const struct sigv4_credentials *cred,
               const struct sigv4_scope *scope,
               char *ret, size_t ret_size,
               char *ret_creq, size_t creq_size,
               char *ret_sts, size_t sts_size);
