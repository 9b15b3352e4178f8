/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "sigv4.h"

/*
 * Where the sink gets its AWS keys.  The chain is walked the way the AWS
 * SDKs walk it; the result is cached until shortly before it expires.
 */
struct credentials;

struct credentials_options {
    /* Static keys from the config; both or neither.  They come first. */
    const char *access_key_id;
    const char *secret_access_key;
    const char *region;         /* STS region when the environment has none */
    const char *ca_file;        /* for STS and an https container URI */
    const char *proxy;          /* for STS; NULL: libcurl's environment */
};

struct credentials *credentials_new(void);
struct credentials *credentials_free(struct credentials *c);

/* Copies o's strings; -ENOMEM.  Drops anything cached. */
int credentials_set_options(struct credentials *c,
                            const struct credentials_options *o);

/*
 * Fills *ret with pointers into c, valid until the next call.  Returns 0,
 * or -ENOKEY when no source in the chain has credentials or one has only
 * half of them or cannot be read, with a reason in *reterr_reason (valid
 * until the next call; it names the source, a file and line or an
 * endpoint, never a secret); -ENOMEM.  Network sources block for at most
 * a few seconds (see credentials.c); after such a source failed, the
 * next walk waits CREDENTIALS_RETRY_SEC and the failure is given again
 * meanwhile.  Not thread-safe: c has one owner, the thread that signs.
 */
int credentials_get(struct credentials *c, struct sigv4_credentials *ret,
                    const char **reterr_reason);

/* Drop the cache, e.g. after the service said the token expired. */
void credentials_invalidate(struct credentials *c);

/* The source of the cached credentials ("environment", ...) or NULL. */
const char *credentials_source(const struct credentials *c);

/* When the cached credentials expire; 0 when they do not. */
time_t credentials_expires(const struct credentials *c);

/*
 * The container credentials URL from AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 * (on 169.254.170.2) or _FULL_URI into buf.  -ENOENT when neither is set,
 * -ENOKEY with a static reason when the URI is refused (plain http to a
 * host other than loopback or the ECS/EKS link-local ones).
 */
int credentials_ecs_url(char *buf, size_t size, const char **reterr_reason);
