/* SPDX-License-Identifier: MIT */
/*
 * The AWS credential chain: which source the keys come from, how long
 * they are kept, and wiping them.  Signing with them is sigv4's business,
 * and deciding to retry after an auth failure is the sender's.
 */
#include "credentials.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "log.h"

/*
 * Expiring credentials are fetched again this long before they run out,
 * so that a request signed just before the deadline still arrives in
 * time; the SDKs refresh five to fifteen minutes ahead.
 */
#define CREDENTIALS_REFRESH_MARGIN (5 * 60)

/* What one source hands back; owned strings, wiped before they are freed. */
struct credentials_value {
    char *access_key_id;
    char *secret_access_key;
    char *session_token;                /* NULL when not temporary */
    time_t expires;                     /* 0: until invalidated */
};

/*
 * A source of credentials.  It returns 0 and fills *ret, -ENOENT with a
 * static reason when it has nothing (the chain goes on to the next
 * source), or another negative errno with a reason when it has something
 * broken (the chain stops there, as in the SDKs: half-set credentials are
 * a mistake to report, not a cue to look elsewhere).
 */
typedef int credentials_provider_fn(struct credentials_value *ret,
                                    const char **reterr_reason);

struct credentials_provider {
    const char *name;                   /* for debug lines */
    credentials_provider_fn *get;
};

struct credentials {
    bool cached;
    const char *source;                 /* provider name of the cache */
    struct credentials_value value;
};

static void
wipe_string(char **s)
{
    if (!*s)
        return;
    OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
}

static void
value_wipe(struct credentials_value *v)
{
    wipe_string(&v->access_key_id);
    wipe_string(&v->secret_access_key);
    wipe_string(&v->session_token);
    v->expires = 0;
}

/* The variable's value, or NULL when unset or empty, as the SDKs read it. */
static const char *
env_first(const char *name, const char *alias)
{
    const char *v = getenv(name);

    if ((!v || !*v) && alias)
        v = getenv(alias);
    return v && *v ? v : NULL;
}

/*
 * AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_SESSION_TOKEN; the
 * older names some SDKs still read (AWS_ACCESS_KEY, AWS_SECRET_KEY,
 * AWS_SECURITY_TOKEN) count when the current ones are unset.
 */
static int
provider_env(struct credentials_value *ret, const char **reterr_reason)
{
    const char *id = env_first("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY");
    const char *secret = env_first("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY");
    const char *token = env_first("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN");
    struct credentials_value v = { 0 };

    if (!id && !secret) {
        *reterr_reason = "no credentials: AWS_ACCESS_KEY_ID is not set";
        return -ENOENT;
    }
    if (!id) {
        *reterr_reason = "incomplete credentials in the environment: "
                         "AWS_SECRET_ACCESS_KEY is set, "
                         "AWS_ACCESS_KEY_ID is not";
        return -ENOKEY;
    }
    if (!secret) {
        *reterr_reason = "incomplete credentials in the environment: "
                         "AWS_ACCESS_KEY_ID is set, "
                         "AWS_SECRET_ACCESS_KEY is not";
        return -ENOKEY;
    }

    v.access_key_id = strdup(id);
    v.secret_access_key = strdup(secret);
    v.session_token = token ? strdup(token) : NULL;
    if (!v.access_key_id || !v.secret_access_key ||
        (token && !v.session_token)) {
        value_wipe(&v);
        *reterr_reason = "out of memory reading credentials";
        return -ENOMEM;
    }
    *ret = v;
    return 0;
}

/*
 * In the order the SDKs walk them.  Sources still to come, each a
 * function of the same type: web identity (AWS_WEB_IDENTITY_TOKEN_FILE),
 * the shared credentials and config files, the ECS container endpoint
 * and EC2 instance metadata.  The last two talk to the network and get
 * their own timeouts before they are added.
 */
static const struct credentials_provider credentials_providers[] = {
    { "environment", provider_env },
};

struct credentials *
credentials_new(void)
{
    return calloc(1, sizeof(struct credentials));
}

struct credentials *
credentials_free(struct credentials *c)
{
    if (!c)
        return NULL;
    credentials_invalidate(c);
    free(c);
    return NULL;
}

void
credentials_invalidate(struct credentials *c)
{
    value_wipe(&c->value);
    c->cached = false;
    c->source = NULL;
}

static bool
credentials_fresh(const struct credentials *c, time_t now)
{
    return c->cached && (c->value.expires == 0 ||
                         now < c->value.expires - CREDENTIALS_REFRESH_MARGIN);
}

static int
credentials_walk(struct credentials *c, const char **reterr_reason)
{
    size_t n = sizeof(credentials_providers) /
               sizeof(credentials_providers[0]);
    const char *reason = "no credentials";
    int r = -ENOENT;

    for (size_t i = 0; i < n; i++) {
        const struct credentials_provider *p = &credentials_providers[i];
        struct credentials_value v = { 0 };

        r = p->get(&v, &reason);
        if (r == -ENOENT) {
            log_debug("credentials: none in the %s", p->name);
            continue;
        }
        if (r < 0)
            break;

        credentials_invalidate(c);
        c->value = v;
        c->source = p->name;
        c->cached = true;
        log_debug("credentials: using the %s", p->name);
        return 0;
    }
    /* expired or not, what the chain no longer vouches for goes */
    credentials_invalidate(c);
    if (reterr_reason)
        *reterr_reason = reason;
    return r == -ENOENT ? -ENOKEY : r;
}

int
credentials_get(struct credentials *c, struct sigv4_credentials *ret,
                const char **reterr_reason)
{
    int r;

    if (!credentials_fresh(c, time(NULL))) {
        r = credentials_walk(c, reterr_reason);
        if (r < 0)
            return r;
    }
    *ret = (struct sigv4_credentials) {
        .access_key_id = c->value.access_key_id,
        .secret_access_key = c->value.secret_access_key,
        .session_token = c->value.session_token,
    };
    return 0;
}
