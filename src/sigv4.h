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
    /*
     * Optional: the payload's SHA-256 as 64 lowercase hex digits, e.g.
     * from sigv4_hash_payload(), so that a batch re-signed for a retry
     * is not hashed again.  NULL: sigv4 hashes payload itself.
     */
    const char *payload_sha256;
};

/* More than these many headers or query parameters give -EINVAL. */
#define SIGV4_HEADERS_MAX 32
#define SIGV4_QUERY_MAX 32
/* Longest region or service name accepted. */
#define SIGV4_SCOPE_PART_MAX 63
/* Bytes needed for a hex SHA-256 with its NUL. */
#define SIGV4_HEX_SHA256_SIZE 65

/*
 * sigv4_sign() reads only the key id and the secret.  With temporary
 * credentials the caller adds "x-amz-security-token: <session_token>" to
 * the request's headers, and it is then signed like any other header;
 * sigv4 never adds it on its own, because some services want the token
 * left out of the signature (sent, but added after signing).
 */
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
 * When the optional ret_creq/ret_sts buffers are given, the canonical
 * request and string to sign are written there too (for tests and
 * debug; the string to sign is safe to log, the Authorization value is
 * not).  Returns 0, -ENOBUFS when a buffer is too small, -EINVAL on a
 * malformed request, -ENOMEM or -EIO when OpenSSL fails.  On failure
 * every buffer given holds "", never a partial or stale value.
 *
 * The request must carry exactly one x-amz-date header, equal to
 * sigv4_format_amz_date(scope->when), and a host header.  The path must
 * be absolute and need neither normalising nor percent-encoding (only
 * unreserved characters and "/", no empty, "." or ".." segments): the
 * daemon sends "/", and signing any other path as given would produce a
 * signature the service rejects.  The query is canonicalised: split on
 * "&", decoded, re-encoded per RFC 3986, sorted by name then value.
 *
 * The derived signing key is cached per thread for each date, region,
 * service and secret, so the four key HMACs run once a day.  Once its
 * thread has signed before, a call allocates nothing itself; OpenSSL 3.0
 * still allocates one small block per digest started (five per call).
 */
int sigv4_sign(const struct sigv4_request *req,
               const struct sigv4_credentials *cred,
               const struct sigv4_scope *scope,
               char *ret, size_t ret_size,
               char *ret_creq, size_t creq_size,
               char *ret_sts, size_t sts_size);

/* Hex SHA-256 of a payload, for req->payload_sha256.  0 or -EIO/-ENOMEM. */
int sigv4_hash_payload(const void *payload, size_t len,
                       char ret[static SIGV4_HEX_SHA256_SIZE]);

/*
 * Wipes the calling thread's cached signing keys and frees its hashing
 * state.  Call it when the credentials change for good and before a
 * signing thread exits; a later sigv4_sign() starts afresh.
 */
void sigv4_done(void);
