/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <time.h>

#include "sigv4.h"

/*
 * Where the sink gets its AWS keys.  The chain is walked the way the AWS
 * SDKs walk it; the result is cached until shortly before it expires.
 */
struct credentials;

struct credentials *credentials_new(void);
struct credentials *credentials_free(struct credentials *c);

/*
 * Fills *ret with pointers into c, valid until the next call.  Returns 0,
 * or -ENOKEY when no source in the chain has credentials or one has only
 * half of them, with a static reason in *reterr_reason; -ENOMEM.  Not
 * thread-safe: c has one owner, the thread that signs.
 */
int credentials_get(struct credentials *c, struct sigv4_credentials *ret,
                    const char **reterr_reason);

/* Drop the cache, e.g. after the service said the token expired. */
void credentials_invalidate(struct credentials *c);
