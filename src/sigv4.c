/* SPDX-License-Identifier: MIT */
/*
 * AWS Signature Version 4 in the Authorization header: canonical request,
 * string to sign, derived key and signature.  Which headers go on the
 * wire, and where the credentials come from, is left to the callers.
 */
#include "sigv4.h"

#include <assert.h>
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#define SIGV4_ALGORITHM "AWS4-HMAC-SHA256"
#define SIGV4_TERMINATOR "aws4_request"
#define SHA256_LEN 32
#define HMAC_BLOCK 64
/* "AWS4-HMAC-SHA256\n" date "\n" scope "\n" hex: bounded by the parts */
#define STS_MAX (17 + 17 + 9 + 2 * (SIGV4_SCOPE_PART_MAX + 1) + 13 + 64 + 1)
/*
 * A daemon talks to one or two services in one region, so a handful of
 * slots keep every key warm; more would only keep stale keys in memory.
 */
#define KEY_SLOTS 4

struct sigv4_key_slot {
    bool used;
    char date[9];                       /* YYYYMMDD */
    char region[SIGV4_SCOPE_PART_MAX + 1];
    char service[SIGV4_SCOPE_PART_MAX + 1];
    /* a digest, not a copy, so the cache holds no second secret */
    unsigned char secret_hash[SHA256_LEN];
    unsigned char key[SHA256_LEN];      /* the derived signing key */
};

/*
 * Per thread, so that signing needs no lock and the digest context,
 * which OpenSSL 3 only hands out from the heap, is allocated once.
 */
struct sigv4_thread {
    EVP_MD *sha256;
    EVP_MD_CTX *md;
    struct sigv4_key_slot slots[KEY_SLOTS];
    unsigned next_slot;
};

static __thread struct sigv4_thread sigv4_thread;

/*
 * Output that is hashed, copied into a caller's buffer, or both.  Small
 * pieces are staged so that the digest is fed in blocks, not bytes.
 * Overflow of the copy is only noted; the caller turns it into -ENOBUFS.
 */
struct sigv4_out {
    EVP_MD_CTX *md;                     /* NULL: copy only */
    char *buf;                          /* NULL: hash only */
    size_t size;
    size_t len;
    bool overflow;
    bool md_failed;
    size_t staged;
    char stage[256];
};

struct sigv4_param {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* Yields the bytes of a raw query part decoded and then re-encoded. */
struct sigv4_enc {
    const char *p;
    const char *end;
    char pending[2];
    unsigned n_pending;
};

static const char hex_lower[] = "0123456789abcdef";
static const char hex_upper[] = "0123456789ABCDEF";

static void
put_digits(char *p, unsigned v, unsigned n)
{
    while (n-- > 0) {
        p[n] = (char) ('0' + v % 10);
        v /= 10;
    }
}

void
sigv4_format_amz_date(time_t when, char buf[static 17])
{
    struct tm tm;

    /* an instant no service accepts still yields a well-formed string */
    if (!gmtime_r(&when, &tm) || tm.tm_year < -1900 ||
        tm.tm_year > 9999 - 1900) {
        memcpy(buf, "00000000T000000Z", 17);
        return;
    }
    put_digits(buf, (unsigned) (tm.tm_year + 1900), 4);
    put_digits(buf + 4, (unsigned) tm.tm_mon + 1, 2);
    put_digits(buf + 6, (unsigned) tm.tm_mday, 2);
    buf[8] = 'T';
    put_digits(buf + 9, (unsigned) tm.tm_hour, 2);
    put_digits(buf + 11, (unsigned) tm.tm_min, 2);
    put_digits(buf + 13, (unsigned) tm.tm_sec, 2);
    buf[15] = 'Z';
    buf[16] = '\0';
}

static void
hex_encode(const unsigned char *p, size_t n, char *ret)
{
    for (size_t i = 0; i < n; i++) {
        ret[2 * i] = hex_lower[p[i] >> 4];
        ret[2 * i + 1] = hex_lower[p[i] & 0xf];
    }
    ret[2 * n] = '\0';
}

static int
hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static bool
is_unreserved(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || c == '-' || c == '.' || c == '_' ||
           c == '~';
}

/* RFC 9110 token characters, the only ones a header name may hold. */
static bool
is_tchar(unsigned char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
           (c >= '0' && c <= '9') || (c && strchr("!#$%&'*+-.^_`|~", c));
}

/* Blanks as the canonical form folds them; CR and LF cover obs-fold. */
static bool
is_blank(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static char
ascii_lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

static int
ascii_casecmp(const char *a, const char *b)
{
    for (;; a++, b++) {
        unsigned char x = (unsigned char) ascii_lower(*a);
        unsigned char y = (unsigned char) ascii_lower(*b);

        if (x != y || !x)
            return (int) x - (int) y;
    }
}

static int
thread_setup(struct sigv4_thread *t)
{
    if (!t->sha256) {
        t->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
        if (!t->sha256)
            return -EIO;
    }
    if (!t->md) {
        t->md = EVP_MD_CTX_new();
        if (!t->md)
            return -ENOMEM;
    }
    return 0;
}

void
sigv4_done(void)
{
    struct sigv4_thread *t = &sigv4_thread;

    OPENSSL_cleanse(t->slots, sizeof(t->slots));
    t->next_slot = 0;
    EVP_MD_CTX_free(t->md);
    t->md = NULL;
    EVP_MD_free(t->sha256);
    t->sha256 = NULL;
}

static int
digest(struct sigv4_thread *t, const void *p, size_t n,
       unsigned char ret[SHA256_LEN])
{
    if (EVP_DigestInit_ex(t->md, t->sha256, NULL) != 1 ||
        EVP_DigestUpdate(t->md, p, n) != 1 ||
        EVP_DigestFinal_ex(t->md, ret, NULL) != 1)
        return -EIO;
    return 0;
}

/*
 * HMAC-SHA256 (RFC 2104) on the thread's digest context.  EVP_MAC would
 * do the same, but per call it would allocate a MAC context, a secure
 * copy of the key and a digest context of its own; this way the only
 * allocations are the two OpenSSL makes inside EVP_DigestInit_ex().
 */
static int
hmac(struct sigv4_thread *t, const void *key, size_t key_len,
     const void *msg, size_t msg_len, unsigned char ret[SHA256_LEN])
{
    unsigned char k[HMAC_BLOCK] = { 0 }, pad[HMAC_BLOCK], inner[SHA256_LEN];
    int r;

    if (key_len > HMAC_BLOCK) {
        r = digest(t, key, key_len, k);
        if (r < 0)
            goto out;
    } else
        memcpy(k, key, key_len);

    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x36;
    r = -EIO;
    if (EVP_DigestInit_ex(t->md, t->sha256, NULL) != 1 ||
        EVP_DigestUpdate(t->md, pad, sizeof(pad)) != 1 ||
        EVP_DigestUpdate(t->md, msg, msg_len) != 1 ||
        EVP_DigestFinal_ex(t->md, inner, NULL) != 1)
        goto out;

    for (size_t i = 0; i < HMAC_BLOCK; i++)
        pad[i] = k[i] ^ 0x5c;
    if (EVP_DigestInit_ex(t->md, t->sha256, NULL) != 1 ||
        EVP_DigestUpdate(t->md, pad, sizeof(pad)) != 1 ||
        EVP_DigestUpdate(t->md, inner, sizeof(inner)) != 1 ||
        EVP_DigestFinal_ex(t->md, ret, NULL) != 1)
        goto out;
    r = 0;
out:
    OPENSSL_cleanse(k, sizeof(k));
    OPENSSL_cleanse(pad, sizeof(pad));
    OPENSSL_cleanse(inner, sizeof(inner));
    return r;
}

int
sigv4_hash_payload(const void *payload, size_t len,
                   char ret[static SIGV4_HEX_SHA256_SIZE])
{
    unsigned char h[SHA256_LEN];
    int r;

    r = thread_setup(&sigv4_thread);
    if (r < 0)
        return r;

    r = digest(&sigv4_thread, payload ? payload : "", len, h);
    if (r < 0)
        return r;

    hex_encode(h, sizeof(h), ret);
    return 0;
}

/* kSigning = HMAC(HMAC(HMAC(HMAC("AWS4" secret, date), region), ...)) */
static int
derive_key(struct sigv4_thread *t, const char *secret, const char *date,
           const struct sigv4_scope *scope, unsigned char ret[SHA256_LEN])
{
    const char *parts[] = {
        date, scope->region, scope->service, SIGV4_TERMINATOR,
    };
    size_t secret_len = strlen(secret);
    unsigned char *ksecret = NULL, k[SHA256_LEN];
    int r;

    ksecret = malloc(4 + secret_len);
    if (!ksecret)
        return -ENOMEM;
    memcpy(ksecret, "AWS4", 4);
    memcpy(ksecret + 4, secret, secret_len);

    r = hmac(t, ksecret, 4 + secret_len, parts[0], strlen(parts[0]), k);
    if (r < 0)
        goto out;
    for (size_t i = 1; i < sizeof(parts) / sizeof(parts[0]); i++) {
        r = hmac(t, k, sizeof(k), parts[i], strlen(parts[i]), k);
        if (r < 0)
            goto out;
    }
    memcpy(ret, k, sizeof(k));
out:
    OPENSSL_cleanse(ksecret, 4 + secret_len);
    free(ksecret);
    OPENSSL_cleanse(k, sizeof(k));
    return r;
}

/* Finds or makes the slot for this key; *ret_key stays in the cache. */
static int
signing_key(struct sigv4_thread *t, const char *secret, const char *date,
            const struct sigv4_scope *scope, const unsigned char **ret_key)
{
    unsigned char secret_hash[SHA256_LEN];
    struct sigv4_key_slot *s;
    int r;

    r = digest(t, secret, strlen(secret), secret_hash);
    if (r < 0)
        return r;

    for (size_t i = 0; i < KEY_SLOTS; i++) {
        s = &t->slots[i];
        if (s->used && strcmp(s->date, date) == 0 &&
            strcmp(s->region, scope->region) == 0 &&
            strcmp(s->service, scope->service) == 0 &&
            CRYPTO_memcmp(s->secret_hash, secret_hash, SHA256_LEN) == 0) {
            *ret_key = s->key;
            return 0;
        }
    }

    s = &t->slots[t->next_slot];
    t->next_slot = (t->next_slot + 1) % KEY_SLOTS;
    OPENSSL_cleanse(s, sizeof(*s));
    r = derive_key(t, secret, date, scope, s->key);
    if (r < 0)
        return r;

    /* the lengths were checked against SIGV4_SCOPE_PART_MAX */
    memcpy(s->date, date, sizeof(s->date));
    strcpy(s->region, scope->region);
    strcpy(s->service, scope->service);
    memcpy(s->secret_hash, secret_hash, SHA256_LEN);
    s->used = true;
    *ret_key = s->key;
    return 0;
}

static void
out_flush(struct sigv4_out *o)
{
    if (o->staged > 0 && !o->md_failed &&
        EVP_DigestUpdate(o->md, o->stage, o->staged) != 1)
        o->md_failed = true;
    o->staged = 0;
}

static void
out_put(struct sigv4_out *o, const char *p, size_t n)
{
    if (o->buf) {
        if (!o->overflow && n < o->size - o->len) {
            memcpy(o->buf + o->len, p, n);
            o->len += n;
            o->buf[o->len] = '\0';
        } else
            o->overflow = true;
    }
    if (!o->md)
        return;

    if (n > sizeof(o->stage) - o->staged) {
        out_flush(o);
        if (n >= sizeof(o->stage)) {
            if (!o->md_failed && EVP_DigestUpdate(o->md, p, n) != 1)
                o->md_failed = true;
            return;
        }
    }
    memcpy(o->stage + o->staged, p, n);
    o->staged += n;
}

static void
out_puts(struct sigv4_out *o, const char *s)
{
    out_put(o, s, strlen(s));
}

static void
out_putc(struct sigv4_out *o, char c)
{
    out_put(o, &c, 1);
}

static void
out_init(struct sigv4_out *o, EVP_MD_CTX *md, char *buf, size_t size)
{
    o->md = md;
    o->buf = size > 0 ? buf : NULL;
    o->size = size;
    o->len = 0;
    o->overflow = buf != NULL && size == 0;
    o->md_failed = false;
    o->staged = 0;
    if (o->buf)
        o->buf[0] = '\0';
}

static int
enc_next(struct sigv4_enc *e)
{
    unsigned char b;

    if (e->n_pending > 0) {
        b = (unsigned char) e->pending[2 - e->n_pending];
        e->n_pending--;
        return b;
    }
    if (e->p >= e->end)
        return -1;

    /* '%' is always followed by two hex digits: query_parse() checked */
    if (*e->p == '%') {
        b = (unsigned char) (hex_value(e->p[1]) << 4 | hex_value(e->p[2]));
        e->p += 3;
    } else
        b = (unsigned char) *e->p++;

    if (is_unreserved(b))
        return b;
    e->pending[0] = hex_upper[b >> 4];
    e->pending[1] = hex_upper[b & 0xf];
    e->n_pending = 2;
    return '%';
}

static void
enc_init(struct sigv4_enc *e, const char *p, size_t n)
{
    e->p = p;
    e->end = p + n;
    e->n_pending = 0;
}

static int
enc_cmp(const char *a, size_t a_len, const char *b, size_t b_len)
{
    struct sigv4_enc x, y;

    enc_init(&x, a, a_len);
    enc_init(&y, b, b_len);
    for (;;) {
        int c = enc_next(&x), d = enc_next(&y);

        if (c != d || c < 0)
            return c - d;
    }
}

static int
param_cmp(const void *a, const void *b)
{
    const struct sigv4_param *x = a, *y = b;
    int c;

    c = enc_cmp(x->name, x->name_len, y->name, y->name_len);
    if (c != 0)
        return c;
    return enc_cmp(x->value, x->value_len, y->value, y->value_len);
}

static void
out_put_encoded(struct sigv4_out *o, const char *p, size_t n)
{
    struct sigv4_enc e;
    int c;

    enc_init(&e, p, n);
    while ((c = enc_next(&e)) >= 0)
        out_putc(o, (char) c);
}

/* Splits the raw query into params[], sorted; returns their number. */
static int
query_parse(const char *q, struct sigv4_param params[SIGV4_QUERY_MAX])
{
    size_t n = 0;

    if (!q)
        return 0;
    for (size_t i = 0; q[i]; i++)
        if (q[i] == '%' && (hex_value(q[i + 1]) < 0 || hex_value(q[i + 2]) < 0))
            return -EINVAL;

    while (*q) {
        size_t len = strcspn(q, "&");
        const char *eq = memchr(q, '=', len);

        if (len > 0) {
            if (n == SIGV4_QUERY_MAX)
                return -EINVAL;
            params[n].name = q;
            params[n].name_len = eq ? (size_t) (eq - q) : len;
            params[n].value = eq ? eq + 1 : q + len;
            params[n].value_len = eq ? len - params[n].name_len - 1 : 0;
            n++;
        }
        q += len;
        if (*q == '&')
            q++;
    }
    qsort(params, n, sizeof(params[0]), param_cmp);
    return (int) n;
}

static void
out_query(struct sigv4_out *o, const struct sigv4_param *params, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            out_putc(o, '&');
        out_put_encoded(o, params[i].name, params[i].name_len);
        out_putc(o, '=');
        out_put_encoded(o, params[i].value, params[i].value_len);
    }
}

/* See sigv4.h: a path that is already in canonical form, or -EINVAL. */
static int
path_check(const char *path)
{
    const char *seg;

    if (path[0] != '/')
        return -EINVAL;
    for (const char *p = path; *p; p++)
        if (*p != '/' && !is_unreserved((unsigned char) *p))
            return -EINVAL;

    for (seg = path + 1; *seg; ) {
        size_t len = strcspn(seg, "/");

        if (len == 0 || (len == 1 && seg[0] == '.') ||
            (len == 2 && seg[0] == '.' && seg[1] == '.'))
            return -EINVAL;
        seg += len;
        if (*seg == '/')
            seg++;
    }
    return 0;
}

static int
value_check(const char *v)
{
    for (; *v; v++) {
        unsigned char c = (unsigned char) *v;

        if ((c < 0x20 && !is_blank((char) c)) || c == 0x7f)
            return -EINVAL;
    }
    return 0;
}

/* The value without leading and trailing blanks, inner runs as one space. */
static void
out_put_folded(struct sigv4_out *o, const char *v)
{
    bool first = true;

    for (;;) {
        size_t len;

        while (is_blank(*v))
            v++;
        if (!*v)
            return;
        len = 0;
        while (v[len] && !is_blank(v[len]))
            len++;
        if (!first)
            out_putc(o, ' ');
        out_put(o, v, len);
        first = false;
        v += len;
    }
}

/* True when the value equals s once trimmed of blanks. */
static bool
trimmed_equal(const char *v, const char *s)
{
    size_t n = strlen(s);

    while (is_blank(*v))
        v++;
    if (strncmp(v, s, n) != 0)
        return false;
    for (v += n; *v; v++)
        if (!is_blank(*v))
            return false;
    return true;
}

/*
 * Checks the headers and sorts their indexes by lowercased name.  The
 * sort is stable, because duplicate names are joined in the order given.
 */
static int
headers_sort(const struct sigv4_request *req, const char *amz_date,
             unsigned char idx[SIGV4_HEADERS_MAX])
{
    const struct sigv4_header *h = req->headers;
    unsigned n_host = 0, n_date = 0;

    if (req->n_headers > SIGV4_HEADERS_MAX || (req->n_headers && !h))
        return -EINVAL;

    for (size_t i = 0; i < req->n_headers; i++) {
        if (!h[i].name || !h[i].name[0] || !h[i].value)
            return -EINVAL;
        for (const char *p = h[i].name; *p; p++)
            if (!is_tchar((unsigned char) *p))
                return -EINVAL;
        if (value_check(h[i].value) < 0)
            return -EINVAL;

        if (ascii_casecmp(h[i].name, "host") == 0)
            n_host++;
        else if (ascii_casecmp(h[i].name, "x-amz-date") == 0) {
            if (!trimmed_equal(h[i].value, amz_date))
                return -EINVAL;
            n_date++;
        } else if (ascii_casecmp(h[i].name, "authorization") == 0)
            return -EINVAL;

        /* insertion sort: at most SIGV4_HEADERS_MAX entries */
        size_t j = i;
        while (j > 0 && ascii_casecmp(h[idx[j - 1]].name, h[i].name) > 0) {
            idx[j] = idx[j - 1];
            j--;
        }
        idx[j] = (unsigned char) i;
    }
    if (n_host == 0 || n_date != 1)
        return -EINVAL;
    return 0;
}

static void
out_lower(struct sigv4_out *o, const char *s)
{
    for (; *s; s++)
        out_putc(o, ascii_lower(*s));
}

static void
out_signed_headers(struct sigv4_out *o, const struct sigv4_header *h,
                   const unsigned char *idx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && ascii_casecmp(h[idx[i - 1]].name, h[idx[i]].name) == 0)
            continue;
        if (i > 0)
            out_putc(o, ';');
        out_lower(o, h[idx[i]].name);
    }
}

static void
out_canonical_headers(struct sigv4_out *o, const struct sigv4_header *h,
                      const unsigned char *idx, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        bool same = i > 0 &&
                    ascii_casecmp(h[idx[i - 1]].name, h[idx[i]].name) == 0;

        if (same)
            out_putc(o, ',');
        else {
            if (i > 0)
                out_putc(o, '\n');
            out_lower(o, h[idx[i]].name);
            out_putc(o, ':');
        }
        out_put_folded(o, h[idx[i]].value);
    }
    if (n > 0)
        out_putc(o, '\n');
}

static bool
scope_part_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > SIGV4_SCOPE_PART_MAX)
        return false;
    for (; *s; s++)
        if (*s == '/' || (unsigned char) *s <= ' ' || *s == 0x7f)
            return false;
    return true;
}

static bool
method_ok(const char *m)
{
    if (!m || !*m)
        return false;
    for (; *m; m++)
        if (*m < 'A' || *m > 'Z')
            return false;
    return true;
}

static bool
hex_sha256_ok(const char *s)
{
    size_t i;

    for (i = 0; s[i]; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return i == 2 * SHA256_LEN;
}

static int
request_check(const struct sigv4_request *req,
              const struct sigv4_credentials *cred,
              const struct sigv4_scope *scope)
{
    const char *akid = cred->access_key_id;

    if (!method_ok(req->method) || !req->path || path_check(req->path) < 0)
        return -EINVAL;
    if (req->payload_len > 0 && !req->payload)
        return -EINVAL;
    if (req->payload_sha256 && !hex_sha256_ok(req->payload_sha256))
        return -EINVAL;
    if (!scope_part_ok(scope->region) || !scope_part_ok(scope->service))
        return -EINVAL;
    if (!akid || !*akid || akid[strcspn(akid, "/, \t\r\n")])
        return -EINVAL;
    if (!cred->secret_access_key || !*cred->secret_access_key)
        return -EINVAL;
    return 0;
}

/* The canonical request, hashed into ret_hash and copied when asked. */
static int
creq_build(struct sigv4_thread *t, const struct sigv4_request *req,
           const unsigned char *idx, const struct sigv4_param *params,
           size_t n_params, char *buf, size_t size, char ret_hash[65])
{
    char payload_hex[SIGV4_HEX_SHA256_SIZE];
    unsigned char h[SHA256_LEN];
    struct sigv4_out o;
    int r;

    if (req->payload_sha256)
        memcpy(payload_hex, req->payload_sha256, sizeof(payload_hex));
    else {
        r = sigv4_hash_payload(req->payload, req->payload_len, payload_hex);
        if (r < 0)
            return r;
    }

    if (EVP_DigestInit_ex(t->md, t->sha256, NULL) != 1)
        return -EIO;
    out_init(&o, t->md, buf, size);
    out_puts(&o, req->method);
    out_putc(&o, '\n');
    out_puts(&o, req->path);
    out_putc(&o, '\n');
    out_query(&o, params, n_params);
    out_putc(&o, '\n');
    out_canonical_headers(&o, req->headers, idx, req->n_headers);
    out_putc(&o, '\n');
    out_signed_headers(&o, req->headers, idx, req->n_headers);
    out_putc(&o, '\n');
    out_puts(&o, payload_hex);
    out_flush(&o);

    if (o.md_failed || EVP_DigestFinal_ex(t->md, h, NULL) != 1)
        return -EIO;
    if (o.overflow)
        return -ENOBUFS;
    hex_encode(h, sizeof(h), ret_hash);
    return 0;
}

static int
authz_build(const struct sigv4_request *req,
            const struct sigv4_credentials *cred,
            const struct sigv4_scope *scope, const char *date,
            const unsigned char *idx, const char *signature,
            char *buf, size_t size)
{
    struct sigv4_out o;

    out_init(&o, NULL, buf, size);
    out_puts(&o, SIGV4_ALGORITHM " Credential=");
    out_puts(&o, cred->access_key_id);
    out_putc(&o, '/');
    out_puts(&o, date);
    out_putc(&o, '/');
    out_puts(&o, scope->region);
    out_putc(&o, '/');
    out_puts(&o, scope->service);
    out_puts(&o, "/" SIGV4_TERMINATOR ", SignedHeaders=");
    out_signed_headers(&o, req->headers, idx, req->n_headers);
    out_puts(&o, ", Signature=");
    out_puts(&o, signature);
    return o.overflow ? -ENOBUFS : 0;
}

static void
outputs_clear(char *ret, size_t ret_size, char *ret_creq, size_t creq_size,
              char *ret_sts, size_t sts_size)
{
    if (ret && ret_size > 0)
        ret[0] = '\0';
    if (ret_creq && creq_size > 0)
        ret_creq[0] = '\0';
    if (ret_sts && sts_size > 0)
        ret_sts[0] = '\0';
}

/* The string to sign for the canonical request's hash, and its HMAC. */
static int
sts_sign(struct sigv4_thread *t, const struct sigv4_credentials *cred,
         const struct sigv4_scope *scope, const char *amz_date,
         const char *date, const char *creq_hash, char *ret_sts,
         size_t sts_size, char ret_sig[SIGV4_HEX_SHA256_SIZE])
{
    unsigned char sig[SHA256_LEN];
    const unsigned char *key;
    char sts[STS_MAX];
    int len, r;

    len = snprintf(sts, sizeof(sts), SIGV4_ALGORITHM "\n%s\n%s/%s/%s/"
                   SIGV4_TERMINATOR "\n%s", amz_date, date, scope->region,
                   scope->service, creq_hash);
    assert(len > 0 && (size_t) len < sizeof(sts));
    if (ret_sts && (size_t) len >= sts_size)
        return -ENOBUFS;

    r = signing_key(t, cred->secret_access_key, date, scope, &key);
    if (r < 0)
        return r;

    r = hmac(t, key, SHA256_LEN, sts, (size_t) len, sig);
    if (r < 0)
        return r;

    hex_encode(sig, sizeof(sig), ret_sig);
    if (ret_sts)
        memcpy(ret_sts, sts, (size_t) len + 1);
    return 0;
}

int
sigv4_sign(const struct sigv4_request *req,
           const struct sigv4_credentials *cred,
           const struct sigv4_scope *scope,
           char *ret, size_t ret_size,
           char *ret_creq, size_t creq_size,
           char *ret_sts, size_t sts_size)
{
    struct sigv4_thread *t = &sigv4_thread;
    struct sigv4_param params[SIGV4_QUERY_MAX];
    unsigned char idx[SIGV4_HEADERS_MAX];
    char amz_date[17], date[9], creq_hash[SIGV4_HEX_SHA256_SIZE];
    char sig_hex[SIGV4_HEX_SHA256_SIZE];
    int n_params, r;

    assert(req && cred && scope && ret);
    outputs_clear(ret, ret_size, ret_creq, creq_size, ret_sts, sts_size);

    r = request_check(req, cred, scope);
    if (r < 0)
        goto out;

    sigv4_format_amz_date(scope->when, amz_date);
    memcpy(date, amz_date, 8);
    date[8] = '\0';
    r = headers_sort(req, amz_date, idx);
    if (r < 0)
        goto out;

    n_params = query_parse(req->query, params);
    if (n_params < 0) {
        r = n_params;
        goto out;
    }

    r = thread_setup(t);
    if (r < 0)
        goto out;

    r = creq_build(t, req, idx, params, (size_t) n_params, ret_creq,
                   ret_creq ? creq_size : 0, creq_hash);
    if (r < 0)
        goto out;

    r = sts_sign(t, cred, scope, amz_date, date, creq_hash, ret_sts,
                 sts_size, sig_hex);
    if (r < 0)
        goto out;

    r = authz_build(req, cred, scope, date, idx, sig_hex, ret, ret_size);
out:
    if (r < 0)
        outputs_clear(ret, ret_size, ret_creq, creq_size, ret_sts,
                      sts_size);
    return r;
}
