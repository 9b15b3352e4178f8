/* SPDX-License-Identifier: MIT */
/*
 * The AWS credential chain: which source the keys come from, how long
 * they are kept, and wiping them.  Signing with them is sigv4's business,
 * and deciding to retry after an auth failure is the sender's.
 */
#include "credentials.h"

#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <openssl/crypto.h>

#include "credentials_file.h"
#include "credentials_http.h"
#include "log.h"

/*
 * Expiring credentials are fetched again this long before they run out,
 * so that a request signed just before the deadline still arrives in
 * time; the SDKs refresh five to fifteen minutes ahead.  Short-lived
 * credentials are refreshed once half their life is gone instead, so
 * that a 15-minute token is not fetched again on every call.
 */
#define CREDENTIALS_REFRESH_MARGIN (5 * 60)

/*
 * After a network source failed, the chain is not walked again for this
 * long: each walk may block the loop for seconds, and several slots ask
 * in a row.
 */
#define CREDENTIALS_RETRY_SEC 5

/*
 * Timeouts of the network sources.  The fetches block the daemon's one
 * thread (see credentials_get()), so they are short: instance metadata
 * answers in milliseconds when it is there at all (the SDKs allow 1 s),
 * and STS gets a little longer for TLS to a public endpoint.
 */
#define CREDENTIALS_IMDS_TIMEOUT_MS 1000
#define CREDENTIALS_ECS_TIMEOUT_MS 2000
#define CREDENTIALS_STS_CONNECT_MS 2000
#define CREDENTIALS_STS_TIMEOUT_MS 5000
#define CREDENTIALS_PROFILE_DEPTH 5
/* Web identity tokens are JWTs of a few KiB; STS takes up to 20000. */
#define CREDENTIALS_TOKEN_MAX (64 * 1024)
#define CREDENTIALS_FORM_TYPE "application/x-www-form-urlencoded; charset=utf-8"
#define CREDENTIALS_ECS_HOST "169.254.170.2"

struct credentials;

/*
 * A source of credentials.  It returns 0 and fills *ret, -ENOENT with a
 * reason in c->why when it has nothing (the chain goes on to the next
 * source), or another negative errno with a reason when it has something
 * broken (the chain stops there, as in the SDKs: half-set credentials are
 * a mistake to report, not a cue to look elsewhere).
 */
typedef int credentials_provider_fn(struct credentials *c,
                                    struct credentials_value *ret);

struct credentials_provider {
    const char *name;                   /* for debug and reason lines */
    credentials_provider_fn *get;
};

struct credentials {
    bool cached;
    const char *source;                 /* provider name of the cache */
    struct credentials_value value;
    time_t fetched;                     /* when value was fetched */

    char *static_id;                    /* from the config */
    char *static_secret;
    char *region;
    char *ca_file;
    char *proxy;

    bool used_network;                  /* the current walk fetched */
    time_t retry_after;                 /* no walk before, see above */
    int last_error;
    const char *why;                    /* reason of the last failure */
    char why_buf[512];
    char chain_buf[768];
};

static int
credentials_fail(struct credentials *c, int r, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

/* Sets c->why to a formatted reason and returns r. */
static int
credentials_fail(struct credentials *c, int r, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(c->why_buf, sizeof(c->why_buf), fmt, ap);
    va_end(ap);
    c->why = c->why_buf;
    return r;
}

static void
wipe_string(char **s)
{
    if (!*s)
        return;
    OPENSSL_cleanse(*s, strlen(*s));
    free(*s);
    *s = NULL;
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
provider_env(struct credentials *c, struct credentials_value *ret)
{
    const char *id = env_first("AWS_ACCESS_KEY_ID", "AWS_ACCESS_KEY");
    const char *secret = env_first("AWS_SECRET_ACCESS_KEY", "AWS_SECRET_KEY");
    const char *token = env_first("AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN");
    struct credentials_value v = { 0 };

    if (!id && !secret) {
        c->why = "no credentials: AWS_ACCESS_KEY_ID is not set";
        return -ENOENT;
    }
    if (!id) {
        c->why = "incomplete credentials in the environment: "
                         "AWS_SECRET_ACCESS_KEY is set, "
                         "AWS_ACCESS_KEY_ID is not";
        return -ENOKEY;
    }
    if (!secret) {
        c->why = "incomplete credentials in the environment: "
                         "AWS_ACCESS_KEY_ID is set, "
                         "AWS_SECRET_ACCESS_KEY is not";
        return -ENOKEY;
    }

    v.access_key_id = strdup(id);
    v.secret_access_key = strdup(secret);
    v.session_token = token ? strdup(token) : NULL;
    if (!v.access_key_id || !v.secret_access_key ||
        (token && !v.session_token)) {
        credentials_value_wipe(&v);
        c->why = "out of memory reading credentials";
        return -ENOMEM;
    }
    *ret = v;
    return 0;
}


/* Keys from the config file: the operator chose them over the chain. */
static int
provider_config(struct credentials *c, struct credentials_value *ret)
{
    struct credentials_value v = { 0 };

    if (!c->static_id) {
        c->why = "no keys in the config";
        return -ENOENT;
    }
    v.access_key_id = strdup(c->static_id);
    v.secret_access_key = strdup(c->static_secret);
    if (!v.access_key_id || !v.secret_access_key) {
        credentials_value_wipe(&v);
        c->why = "out of memory reading credentials";
        return -ENOMEM;
    }
    *ret = v;
    return 0;
}

static bool
header_safe(const char *v)
{
    for (; *v; v++)
        if ((unsigned char)*v < 0x20 || *v == 0x7f)
            return false;
    return true;
}

/*
 * A token file's contents without surrounding blanks, in a new string.
 * Web identity and container tokens are rotated by their issuer, so the
 * file is read again at every fetch.
 */
static int
read_token_file(struct credentials *c, const char *what, const char *path,
                char **ret)
{
    char *buf = NULL, *s, *e;
    size_t n;
    FILE *f;
    int r;

    f = fopen(path, "re");
    if (!f)
        return credentials_fail(c, -ENOKEY, "%s: cannot open token file "
                                "'%s': %s", what, path, strerror(errno));
    buf = malloc(CREDENTIALS_TOKEN_MAX + 1);
    if (!buf) {
        (void)fclose(f);
        return -ENOMEM;
    }
    n = fread(buf, 1, CREDENTIALS_TOKEN_MAX + 1, f);
    r = ferror(f) ? -EIO : 0;
    (void)fclose(f);
    if (r < 0 || n > CREDENTIALS_TOKEN_MAX) {
        r = credentials_fail(c, -ENOKEY, "%s: token file '%s' %s", what,
                             path, r < 0 ? "cannot be read"
                                         : "is larger than 64 KiB");
        goto out;
    }
    buf[n] = '\0';
    for (s = buf; isspace((unsigned char)*s); s++)
        ;
    for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
        ;
    *e = '\0';
    if (!*s || !header_safe(s)) {
        r = credentials_fail(c, -ENOKEY, "%s: token file '%s' is empty or "
                             "holds control characters", what, path);
        goto out;
    }
    *ret = strdup(s);
    r = *ret ? 0 : -ENOMEM;
out:
    OPENSSL_cleanse(buf, CREDENTIALS_TOKEN_MAX + 1);
    free(buf);
    return r;
}

/*
 * The STS endpoint, as the SDKs choose it: AWS_ENDPOINT_URL_STS, then
 * AWS_ENDPOINT_URL, then the regional public endpoint.
 */
static int
sts_endpoint(struct credentials *c, char *url, size_t url_size,
             char *host, size_t host_size, const char **ret_region)
{
    const char *ep = env_first("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL");
    const char *region = env_first("AWS_REGION", "AWS_DEFAULT_REGION");
    const char *h;
    size_t len;

    if (!region)
        region = c->region ? c->region : "us-east-1";
    *ret_region = region;
    if (ep)
        (void)snprintf(url, url_size, "%s", ep);
    else
        (void)snprintf(url, url_size, "https://sts.%s.amazonaws.com%s",
                       region, strncmp(region, "cn-", 3) == 0 ? ".cn" : "");

    h = strstr(url, "://");
    if (!h || (strncasecmp(url, "http://", 7) != 0 &&
               strncasecmp(url, "https://", 8) != 0))
        return credentials_fail(c, -ENOKEY, "STS endpoint '%s' is not an "
                                "http:// or https:// URL", url);
    h += 3;
    len = strcspn(h, "/?#");
    if (len == 0 || len >= host_size || (h[len] && strcmp(h + len, "/")))
        return credentials_fail(c, -ENOKEY, "STS endpoint '%s' must be "
                                "scheme://host[:port][/]", url);
    memcpy(host, h, len);
    host[len] = '\0';
    if (!h[len] && strlen(url) + 2 <= url_size)
        strcat(url, "/");
    return 0;
}

/* Signs an STS query with the source's keys into the given headers. */
static int
sts_sign(const struct credentials_value *signer, const char *region,
         const char *host, const char *form, time_t now,
         char *date_hdr, char *auth_hdr, size_t auth_size)
{
    char date[17];
    struct sigv4_header sh[4] = {
        { "host", host },
        { "content-type", CREDENTIALS_FORM_TYPE },
        { "x-amz-date", date },
        { "x-amz-security-token", signer->session_token },
    };
    const struct sigv4_request req = {
        .method = "POST",
        .path = "/",
        .headers = sh,
        .n_headers = signer->session_token ? 4 : 3,
        .payload = form,
        .payload_len = strlen(form),
    };
    const struct sigv4_credentials cred = {
        .access_key_id = signer->access_key_id,
        .secret_access_key = signer->secret_access_key,
    };
    const struct sigv4_scope scope = {
        .region = region,
        .service = "sts",
        .when = now,
    };
    size_t off = strlen("Authorization: ");

    sigv4_format_amz_date(now, date);
    (void)snprintf(date_hdr, 32, "X-Amz-Date: %s", date);
    memcpy(auth_hdr, "Authorization: ", off);
    return sigv4_sign(&req, &cred, &scope, auth_hdr + off, auth_size - off,
                      NULL, 0, NULL, 0);
}

/*
 * One STS call: AssumeRoleWithWebIdentity unsigned (signer NULL), or
 * AssumeRole signed with the source profile's keys.
 */
static int
sts_call(struct credentials *c, const char *what, const char *form,
         const struct credentials_value *signer,
         struct credentials_value *ret)
{
    struct credentials_http_request req = {
        .method = "POST",
        .body = form,
        .connect_timeout_ms = CREDENTIALS_STS_CONNECT_MS,
        .timeout_ms = CREDENTIALS_STS_TIMEOUT_MS,
        .ca_file = c->ca_file,
        .proxy = c->proxy,
    };
    struct credentials_http_response res = { 0 };
    char url[512], host[256], date_hdr[32], auth[1024], err[320];
    char *token_hdr = NULL;
    const char *region;
    int r;

    r = sts_endpoint(c, url, sizeof(url), host, sizeof(host), &region);
    if (r < 0)
        return r;
    req.url = url;
    req.headers[req.n_headers++] = "Content-Type: " CREDENTIALS_FORM_TYPE;
    req.headers[req.n_headers++] = "Accept: text/xml";
    if (signer) {
        r = sts_sign(signer, region, host, form, time(NULL), date_hdr, auth,
                     sizeof(auth));
        if (r < 0)
            return credentials_fail(c, -ENOKEY, "%s: cannot sign the STS "
                                    "call: %s", what, strerror(-r));
        req.headers[req.n_headers++] = date_hdr;
        req.headers[req.n_headers++] = auth;
        if (signer->session_token) {
            if (asprintf(&token_hdr, "X-Amz-Security-Token: %s",
                         signer->session_token) < 0)
                return -ENOMEM;
            req.headers[req.n_headers++] = token_hdr;
        }
    }

    c->used_network = true;
    r = credentials_http_fetch(&req, &res);
    if (r == -ENOMEM)
        goto out;
    if (r < 0) {
        r = credentials_fail(c, -ENOKEY, "%s: STS at '%s' did not answer: "
                             "%s", what, host, res.error);
        goto out;
    }
    r = credentials_parse_sts(res.body, res.body_len, ret, err, sizeof(err));
    if (r == -EBADMSG)
        r = credentials_fail(c, -ENOKEY, "%s: STS at '%s' refused "
                             "(HTTP %ld): %s", what, host, res.status, err);
out:
    OPENSSL_cleanse(auth, sizeof(auth));
    if (token_hdr) {
        OPENSSL_cleanse(token_hdr, strlen(token_hdr));
        free(token_hdr);
    }
    credentials_http_response_done(&res);
    return r;
}

/* The form of AssumeRole or AssumeRoleWithWebIdentity, in a new string. */
static int
sts_form(const char *action, const char *role_arn, const char *session,
         const char *external_id, const char *token, char **ret)
{
    size_t size = 256 + 3 * (strlen(role_arn) + strlen(session) +
                             (external_id ? strlen(external_id) : 0) +
                             (token ? strlen(token) : 0));
    char *form = calloc(1, size);
    int r;

    if (!form)
        return -ENOMEM;
    r = credentials_form_append(form, size, "Action", action);
    if (r >= 0)
        r = credentials_form_append(form, size, "Version", "2011-06-15");
    if (r >= 0)
        r = credentials_form_append(form, size, "RoleArn", role_arn);
    if (r >= 0)
        r = credentials_form_append(form, size, "RoleSessionName", session);
    if (r >= 0 && external_id)
        r = credentials_form_append(form, size, "ExternalId", external_id);
    if (r >= 0 && token)
        r = credentials_form_append(form, size, "WebIdentityToken", token);
    if (r < 0) {
        free(form);
        return r;
    }
    *ret = form;
    return 0;
}

static void
wipe_free(char *s)
{
    if (!s)
        return;
    OPENSSL_cleanse(s, strlen(s));
    free(s);
}

static const char *
session_name(const char *given, char *buf, size_t size)
{
    if (given)
        return given;
    (void)snprintf(buf, size, "aaasd-%lld", (long long)time(NULL));
    return buf;
}

static int
assume_role_web_identity(struct credentials *c, const char *what,
                         const char *token_file, const char *role_arn,
                         const char *session, struct credentials_value *ret)
{
    char *token = NULL, *form = NULL, name[32];
    int r;

    r = read_token_file(c, what, token_file, &token);
    if (r < 0)
        return r;
    r = sts_form("AssumeRoleWithWebIdentity", role_arn,
                 session_name(session, name, sizeof(name)), NULL, token,
                 &form);
    if (r >= 0)
        r = sts_call(c, what, form, NULL, ret);
    wipe_free(form);
    wipe_free(token);
    return r;
}

/* AWS_WEB_IDENTITY_TOKEN_FILE with AWS_ROLE_ARN: EKS (IRSA) and others. */
static int
provider_web_identity(struct credentials *c, struct credentials_value *ret)
{
    const char *file = env_first("AWS_WEB_IDENTITY_TOKEN_FILE", NULL);
    const char *arn = env_first("AWS_ROLE_ARN", NULL);

    if (!file) {
        c->why = "AWS_WEB_IDENTITY_TOKEN_FILE is not set";
        return -ENOENT;
    }
    if (!arn) {
        c->why = "incomplete web identity in the environment: "
                 "AWS_WEB_IDENTITY_TOKEN_FILE is set, AWS_ROLE_ARN is not";
        return -ENOKEY;
    }
    return assume_role_web_identity(c, "web identity", file, arn,
                                    env_first("AWS_ROLE_SESSION_NAME", NULL),
                                    ret);
}

static int provider_ecs(struct credentials *c, struct credentials_value *ret);
static int provider_imds(struct credentials *c,
                         struct credentials_value *ret);

static int resolve_profile(struct credentials *c, const char *name,
                           unsigned depth, struct credentials_value *ret);

/* role_arn: assume it with the keys of source_profile or credential_source. */
static int
profile_assume_role(struct credentials *c, const char *name,
                    const struct credentials_profile *p, unsigned depth,
                    struct credentials_value *ret)
{
    const char *arn = credentials_profile_get(p, CREDENTIALS_FILE_ROLE_ARN);
    const char *src = credentials_profile_get(p,
                                              CREDENTIALS_FILE_SOURCE_PROFILE);
    const char *cs = credentials_profile_get(p,
                                          CREDENTIALS_FILE_CREDENTIAL_SOURCE);
    const char *wi = credentials_profile_get(
            p, CREDENTIALS_FILE_WEB_IDENTITY_TOKEN_FILE);
    const char *session = credentials_profile_get(
            p, CREDENTIALS_FILE_ROLE_SESSION_NAME);
    struct credentials_value source = { 0 };
    char what[128], sname[32], *form = NULL;
    int r;

    (void)snprintf(what, sizeof(what), "profile '%s'", name);
    if (wi)
        return assume_role_web_identity(c, what, wi, arn, session, ret);

    if (src && strcmp(src, name) == 0 &&
        credentials_profile_get(p, CREDENTIALS_FILE_ACCESS_KEY_ID)) {
        /* A profile that names itself uses its own static keys. */
        r = resolve_profile(c, src, CREDENTIALS_PROFILE_DEPTH, &source);
    } else if (src) {
        r = resolve_profile(c, src, depth + 1, &source);
    } else if (cs && strcmp(cs, "Environment") == 0) {
        r = provider_env(c, &source);
    } else if (cs && strcmp(cs, "EcsContainer") == 0) {
        r = provider_ecs(c, &source);
    } else if (cs && strcmp(cs, "Ec2InstanceMetadata") == 0) {
        r = provider_imds(c, &source);
    } else {
        return credentials_fail(c, -ENOKEY, "%s has role_arn but no "
                                "source_profile, a known credential_source "
                                "or web_identity_token_file", what);
    }
    if (r == -ENOENT)
        r = credentials_fail(c, -ENOKEY, "%s: the role's source has no "
                             "credentials", what);
    if (r < 0)
        goto out;

    r = sts_form("AssumeRole", arn, session_name(session, sname,
                                                 sizeof(sname)),
                 credentials_profile_get(p, CREDENTIALS_FILE_EXTERNAL_ID),
                 NULL, &form);
    if (r >= 0)
        r = sts_call(c, what, form, &source, ret);
out:
    wipe_free(form);
    credentials_value_wipe(&source);
    return r;
}

static int
profile_static(struct credentials *c, const char *name,
               const struct credentials_profile *p,
               struct credentials_value *ret)
{
    const char *id = credentials_profile_get(p,
                                             CREDENTIALS_FILE_ACCESS_KEY_ID);
    const char *secret = credentials_profile_get(
            p, CREDENTIALS_FILE_SECRET_ACCESS_KEY);
    const char *token = credentials_profile_get(
            p, CREDENTIALS_FILE_SESSION_TOKEN);
    struct credentials_value v = { 0 };

    if (!id || !secret)
        return credentials_fail(c, -ENOKEY, "incomplete credentials in "
                                "profile '%s': %s is missing", name,
                                id ? "aws_secret_access_key"
                                   : "aws_access_key_id");
    v.access_key_id = strdup(id);
    v.secret_access_key = strdup(secret);
    v.session_token = token ? strdup(token) : NULL;
    if (!v.access_key_id || !v.secret_access_key ||
        (token && !v.session_token)) {
        credentials_value_wipe(&v);
        return -ENOMEM;
    }
    *ret = v;
    return 0;
}

static void
profile_paths(char *creds, char *config, size_t size)
{
    const char *home = getenv("HOME");
    const char *p;

    p = env_first("AWS_SHARED_CREDENTIALS_FILE", NULL);
    if (p)
        (void)snprintf(creds, size, "%s", p);
    else
        (void)snprintf(creds, size, "%s/.aws/credentials", home ? home : "");
    p = env_first("AWS_CONFIG_FILE", NULL);
    if (p)
        (void)snprintf(config, size, "%s", p);
    else
        (void)snprintf(config, size, "%s/.aws/config", home ? home : "");
}

static int
resolve_profile(struct credentials *c, const char *name, unsigned depth,
                struct credentials_value *ret)
{
    struct credentials_profile p;
    char creds[512], config[512], err[640];
    int r;

    if (depth > CREDENTIALS_PROFILE_DEPTH)
        return credentials_fail(c, -ENOKEY, "profile '%s': source_profile "
                                "chain is longer than %d or loops", name,
                                CREDENTIALS_PROFILE_DEPTH);
    profile_paths(creds, config, sizeof(creds));
    r = credentials_profile_load(creds, config, name, &p, err, sizeof(err));
    if (r == -EBADMSG) {
        r = credentials_fail(c, -ENOKEY, "%s", err);
        goto out;
    }
    if (r < 0)
        goto out;
    if (!p.found) {
        r = credentials_fail(c, depth > 0 ? -ENOKEY : -ENOENT,
                             "profile '%s' is in neither '%s' nor '%s'",
                             name, creds, config);
        goto out;
    }
    if (credentials_profile_get(&p, CREDENTIALS_FILE_ROLE_ARN) &&
        depth < CREDENTIALS_PROFILE_DEPTH)
        r = profile_assume_role(c, name, &p, depth, ret);
    else if (credentials_profile_get(&p, CREDENTIALS_FILE_ACCESS_KEY_ID) ||
             credentials_profile_get(&p, CREDENTIALS_FILE_SECRET_ACCESS_KEY))
        r = profile_static(c, name, &p, ret);
    else
        r = credentials_fail(c, depth > 0 ? -ENOKEY : -ENOENT,
                             "profile '%s' has no credentials", name);
out:
    credentials_profile_done(&p);
    return r;
}

/*
 * AWS_PROFILE (or AWS_DEFAULT_PROFILE, or "default") from the shared
 * files.  A profile named in the environment must exist: falling through
 * to another source would sign with an identity nobody asked for.
 */
static int
provider_profile(struct credentials *c, struct credentials_value *ret)
{
    const char *name = env_first("AWS_PROFILE", "AWS_DEFAULT_PROFILE");
    int r;

    r = resolve_profile(c, name ? name : "default", 0, ret);
    if (r == -ENOENT && name)
        r = -ENOKEY;
    return r;
}

/* Hosts a container credentials URI may use over plain http. */
static bool
ecs_host_allowed(const char *url)
{
    static const char *const hosts[] = {
        "http://127.", "http://localhost:", "http://localhost/",
        "http://[::1]", "http://169.254.170.2/", "http://169.254.170.2:",
        "http://169.254.170.23/", "http://169.254.170.23:",
        "http://[fd00:ec2::23]",
    };

    if (strncasecmp(url, "https://", 8) == 0)
        return true;
    for (size_t i = 0; i < sizeof(hosts) / sizeof(hosts[0]); i++)
        if (strncasecmp(url, hosts[i], strlen(hosts[i])) == 0)
            return true;
    return false;
}

int
credentials_ecs_url(char *buf, size_t size, const char **reterr_reason)
{
    const char *rel = env_first("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                                NULL);
    const char *full = env_first("AWS_CONTAINER_CREDENTIALS_FULL_URI", NULL);
    int n;

    if (rel)
        n = snprintf(buf, size, "http://%s%s%s", CREDENTIALS_ECS_HOST,
                     rel[0] == '/' ? "" : "/", rel);
    else if (full)
        n = snprintf(buf, size, "%s", full);
    else
        return -ENOENT;
    if (n < 0 || (size_t)n >= size) {
        *reterr_reason = "container credentials URI is too long";
        return -ENOKEY;
    }
    if (!header_safe(buf) || !ecs_host_allowed(buf)) {
        *reterr_reason = "AWS_CONTAINER_CREDENTIALS_FULL_URI must be https "
                         "or name a loopback or the ECS/EKS link-local host";
        return -ENOKEY;
    }
    return 0;
}

static int
ecs_auth_header(struct credentials *c, char **ret)
{
    const char *file = env_first("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE",
                                 NULL);
    const char *tok = env_first("AWS_CONTAINER_AUTHORIZATION_TOKEN", NULL);
    char *from_file = NULL;
    int r;

    *ret = NULL;
    if (file) {
        r = read_token_file(c, "container credentials", file, &from_file);
        if (r < 0)
            return r;
        tok = from_file;
    }
    if (!tok)
        return 0;
    if (!header_safe(tok)) {
        wipe_free(from_file);
        c->why = "AWS_CONTAINER_AUTHORIZATION_TOKEN holds control "
                 "characters";
        return -ENOKEY;
    }
    r = asprintf(ret, "Authorization: %s", tok) < 0 ? -ENOMEM : 0;
    wipe_free(from_file);
    return r;
}

/* The ECS (and EKS Pod Identity) container credentials endpoint. */
static int
provider_ecs(struct credentials *c, struct credentials_value *ret)
{
    struct credentials_http_request req = {
        .method = "GET",
        .connect_timeout_ms = CREDENTIALS_ECS_TIMEOUT_MS,
        .timeout_ms = CREDENTIALS_ECS_TIMEOUT_MS,
        .ca_file = c->ca_file,
        .no_proxy = true,
    };
    struct credentials_http_response res = { 0 };
    const char *why = NULL;
    char url[1024], *auth = NULL;
    int r;

    r = credentials_ecs_url(url, sizeof(url), &why);
    if (r == -ENOENT) {
        c->why = "no container credentials URI is set";
        return r;
    }
    if (r < 0) {
        c->why = why;
        return r;
    }
    r = ecs_auth_header(c, &auth);
    if (r < 0)
        return r;
    req.url = url;
    req.headers[req.n_headers++] = "Accept: application/json";
    if (auth)
        req.headers[req.n_headers++] = auth;

    c->used_network = true;
    r = credentials_http_fetch(&req, &res);
    if (r == -ENOMEM)
        goto out;
    if (r < 0) {
        r = credentials_fail(c, -ENOKEY, "container credentials at '%s' did "
                             "not answer: %s", url, res.error);
        goto out;
    }
    if (res.status != 200) {
        r = credentials_fail(c, -ENOKEY, "container credentials at '%s' "
                             "answered HTTP %ld", url, res.status);
        goto out;
    }
    r = credentials_parse_json(res.body, res.body_len, ret, &why);
    if (r == -EBADMSG)
        r = credentials_fail(c, -ENOKEY, "container credentials at '%s': %s",
                             url, why);
out:
    wipe_free(auth);
    credentials_http_response_done(&res);
    return r;
}

static void
imds_endpoint(char *buf, size_t size)
{
    const char *ep = env_first("AWS_EC2_METADATA_SERVICE_ENDPOINT", NULL);
    const char *mode = env_first("AWS_EC2_METADATA_SERVICE_ENDPOINT_MODE",
                                 NULL);
    size_t len;

    if (!ep)
        ep = mode && strcasecmp(mode, "IPv6") == 0 ? "http://[fd00:ec2::254]"
                                                   : "http://169.254.169.254";
    (void)snprintf(buf, size, "%s", ep);
    len = strlen(buf);
    while (len > 0 && buf[len - 1] == '/')
        buf[--len] = '\0';
}

static int
imds_get(struct credentials *c, const char *ep, const char *path,
         const char *token_hdr, struct credentials_http_response *res)
{
    struct credentials_http_request req = {
        .method = token_hdr ? "GET" : "PUT",
        .connect_timeout_ms = CREDENTIALS_IMDS_TIMEOUT_MS,
        .timeout_ms = CREDENTIALS_IMDS_TIMEOUT_MS,
        .no_proxy = true,
    };
    char url[640];
    int r;

    (void)snprintf(url, sizeof(url), "%s%s", ep, path);
    req.url = url;
    req.headers[req.n_headers++] = token_hdr
            ? token_hdr : "X-aws-ec2-metadata-token-ttl-seconds: 21600";
    c->used_network = true;
    r = credentials_http_fetch(&req, res);
    if (r == -ETIMEDOUT && !token_hdr)
        return credentials_fail(c, -ENOKEY, "instance metadata at '%s': the "
                                "IMDSv2 token request timed out; in a "
                                "container this is the hop limit: set the "
                                "instance's HttpPutResponseHopLimit to 2",
                                ep);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        return credentials_fail(c, -ENOENT, "instance metadata at '%s' did "
                                "not answer: %s", ep, res->error);
    if (res->status == 200)
        return 0;
    return credentials_fail(c, -ENOKEY, "instance metadata at '%s' answered "
                            "HTTP %ld to %s %s%s", ep, res->status,
                            req.method, path,
                            res->status == 404 && token_hdr
                                    ? " (no IAM role attached?)" : "");
}

/*
 * EC2 instance metadata, IMDSv2 only: a session token by PUT, then the
 * role's name and its credentials.  There is no fallback to IMDSv1: an
 * instance that refuses the token has been set up that way on purpose.
 */
static int
provider_imds(struct credentials *c, struct credentials_value *ret)
{
    static const char creds_path[] = "/latest/meta-data/iam/"
                                     "security-credentials/";
    struct credentials_http_response res = { 0 };
    const char *v = env_first("AWS_EC2_METADATA_DISABLED", NULL);
    char ep[256], path[384], *token_hdr = NULL, *role;
    const char *why = NULL;
    int r;

    if (v && strcasecmp(v, "true") == 0) {
        c->why = "instance metadata is off (AWS_EC2_METADATA_DISABLED)";
        return -ENOENT;
    }
    imds_endpoint(ep, sizeof(ep));
    r = imds_get(c, ep, "/latest/api/token", NULL, &res);
    if (r < 0)
        goto out;
    if (!header_safe(res.body) || res.body_len == 0) {
        r = credentials_fail(c, -ENOKEY, "instance metadata at '%s' gave a "
                             "malformed token", ep);
        goto out;
    }
    if (asprintf(&token_hdr, "X-aws-ec2-metadata-token: %s", res.body) < 0) {
        r = -ENOMEM;
        goto out;
    }
    credentials_http_response_done(&res);

    r = imds_get(c, ep, creds_path, token_hdr, &res);
    if (r < 0)
        goto out;
    role = res.body;
    role[strcspn(role, "\r\n")] = '\0';
    if (!*role || strlen(role) > 128 || strchr(role, '/') ||
        !header_safe(role)) {
        r = credentials_fail(c, -ENOKEY, "instance metadata at '%s' gave no "
                             "usable role name", ep);
        goto out;
    }
    (void)snprintf(path, sizeof(path), "%s%s", creds_path, role);
    credentials_http_response_done(&res);

    r = imds_get(c, ep, path, token_hdr, &res);
    if (r < 0)
        goto out;
    r = credentials_parse_json(res.body, res.body_len, ret, &why);
    if (r == -EBADMSG)
        r = credentials_fail(c, -ENOKEY, "instance metadata at '%s': %s",
                             ep, why);
out:
    wipe_free(token_hdr);
    credentials_http_response_done(&res);
    return r;
}

/* In the order the SDKs walk them, static config keys first. */
static const struct credentials_provider credentials_providers[] = {
    { "config file", provider_config },
    { "environment", provider_env },
    { "web identity", provider_web_identity },
    { "shared credentials files", provider_profile },
    { "container endpoint", provider_ecs },
    { "instance metadata", provider_imds },
};

struct credentials *
credentials_new(void)
{
    return calloc(1, sizeof(struct credentials));
}

static void
credentials_drop_options(struct credentials *c)
{
    wipe_string(&c->static_id);
    wipe_string(&c->static_secret);
    free(c->region);
    free(c->ca_file);
    free(c->proxy);
    c->region = c->ca_file = c->proxy = NULL;
}

struct credentials *
credentials_free(struct credentials *c)
{
    if (!c)
        return NULL;
    credentials_invalidate(c);
    credentials_drop_options(c);
    free(c);
    return NULL;
}

static int
dup_opt(const char *s, char **ret)
{
    *ret = NULL;
    if (!s)
        return 0;
    *ret = strdup(s);
    return *ret ? 0 : -ENOMEM;
}

int
credentials_set_options(struct credentials *c,
                        const struct credentials_options *o)
{
    int r;

    credentials_invalidate(c);
    credentials_drop_options(c);
    if (!o->access_key_id != !o->secret_access_key)
        return -EINVAL;
    r = dup_opt(o->access_key_id, &c->static_id);
    if (r >= 0)
        r = dup_opt(o->secret_access_key, &c->static_secret);
    if (r >= 0)
        r = dup_opt(o->region, &c->region);
    if (r >= 0)
        r = dup_opt(o->ca_file, &c->ca_file);
    if (r >= 0)
        r = dup_opt(o->proxy, &c->proxy);
    if (r < 0)
        credentials_drop_options(c);
    return r;
}

void
credentials_invalidate(struct credentials *c)
{
    credentials_value_wipe(&c->value);
    c->cached = false;
    c->source = NULL;
    c->fetched = 0;
    c->retry_after = 0;
}

/* Whether the cache is good and not yet due for a refresh. */
static bool
credentials_fresh(const struct credentials *c, time_t now)
{
    time_t margin = CREDENTIALS_REFRESH_MARGIN;

    if (!c->cached)
        return false;
    if (c->value.expires == 0)
        return true;
    if (c->value.expires - c->fetched < 2 * margin)
        margin = (c->value.expires - c->fetched) / 2;
    return now < c->value.expires - margin;
}

/* Still usable, though due for a refresh: not yet past its expiry. */
static bool
credentials_usable(const struct credentials *c, time_t now)
{
    return c->cached && (c->value.expires == 0 || now < c->value.expires);
}

static int
credentials_walk(struct credentials *c, time_t now)
{
    size_t n = sizeof(credentials_providers) /
               sizeof(credentials_providers[0]);
    int r = -ENOENT;

    c->used_network = false;
    c->chain_buf[0] = '\0';
    for (size_t i = 0; i < n; i++) {
        const struct credentials_provider *p = &credentials_providers[i];
        struct credentials_value v = { 0 };

        c->why = NULL;
        r = p->get(c, &v);
        if (r == -ENOENT) {
            log_debug("credentials: none in the %s: %s", p->name, c->why);
            /* The last source's reason says most, e.g. IMDS unreachable. */
            if (i + 1 == n)
                (void)snprintf(c->chain_buf, sizeof(c->chain_buf),
                               "; %s", c->why ? c->why : "nothing there");
            continue;
        }
        if (r < 0)
            break;

        credentials_value_wipe(&c->value);
        c->value = v;
        c->source = p->name;
        c->cached = true;
        c->fetched = now;
        c->retry_after = 0;
        log_debug("credentials: using the %s", p->name);
        return 0;
    }
    if (r == -ENOENT) {
        static const char head[] = "no credentials in the environment, "
                                   "web identity, shared files, container "
                                   "endpoint or instance metadata";
        size_t len = strlen(c->chain_buf);

        if (len + sizeof(head) > sizeof(c->chain_buf))
            len = sizeof(c->chain_buf) - sizeof(head);
        memmove(c->chain_buf + sizeof(head) - 1, c->chain_buf, len);
        memcpy(c->chain_buf, head, sizeof(head) - 1);
        c->chain_buf[sizeof(head) - 1 + len] = '\0';
        c->why = c->chain_buf;
        r = -ENOKEY;
    }
    if (!c->why)
        c->why = strerror(-r);
    return r;
}

int
credentials_get(struct credentials *c, struct sigv4_credentials *ret,
                const char **reterr_reason)
{
    time_t now = time(NULL);
    int r;

    if (credentials_fresh(c, now))
        goto out;
    if (now < c->retry_after) {
        if (credentials_usable(c, now))
            goto out;
        if (reterr_reason)
            *reterr_reason = c->why;
        return c->last_error;
    }

    r = credentials_walk(c, now);
    if (r < 0) {
        c->last_error = r;
        if (c->used_network)
            c->retry_after = now + CREDENTIALS_RETRY_SEC;
        /* A failed refresh leaves valid credentials in use, as the SDKs. */
        if (r != -ENOMEM && credentials_usable(c, now)) {
            log_debug("credentials: refresh failed, keeping the current "
                      "ones until they expire: %s", c->why);
            goto out;
        }
        /* expired or not, what the chain no longer vouches for goes */
        credentials_value_wipe(&c->value);
        c->cached = false;
        c->source = NULL;
        if (reterr_reason)
            *reterr_reason = c->why;
        return r;
    }
out:
    *ret = (struct sigv4_credentials) {
        .access_key_id = c->value.access_key_id,
        .secret_access_key = c->value.secret_access_key,
        .session_token = c->value.session_token,
    };
    return 0;
}

const char *
credentials_source(const struct credentials *c)
{
    return c->cached ? c->source : NULL;
}

time_t
credentials_expires(const struct credentials *c)
{
    return c->cached ? c->value.expires : 0;
}
