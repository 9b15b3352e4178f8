/* SPDX-License-Identifier: MIT */
/*
 * The hash chain over every delivered line and the seals that sign ranges
 * of it.  Building the lines is event's job, keeping the key file
 * chain_key's, and deciding when to seal the pipeline's.
 */

/*
 * THE CHAIN
 *
 * Every line the daemon spools, except seals, carries the chain hash as
 * the last member of its `_aaas` object:
 *
 *     {...writer's members...,"_aaas":{"agent":"..",...,"chain":"<hex>"}}
 *
 * The chained bytes of a line are the line as delivered, without its
 * final '\n' and without the 75 bytes `,"chain":"<64 lowercase hex>"`.
 * The field sits right before the two closing braces, so a reader finds it
 * from the end of the line: skip blanks, then `}}`, then the field.
 *
 *     genesis  = SHA-256("aaas-chain-v1" NUL agent)
 *     chain[n] = SHA-256(chain[n-1] || SHA-256(chained bytes of line n))
 *
 * where line n-1 is the previous chained line of the same agent in
 * sequence order (seal lines are not chained) and chain[0] is the genesis
 * value.  Hashing the line first costs one extra 64-byte block per line
 * and lets a verifier keep 64 bytes per line instead of the line itself,
 * so lines can be checked in whatever order the objects arrive in.
 *
 * THE SEAL LINE covers the chained lines [first_seq, last_seq] since the
 * previous seal:
 *
 *     {"_aaas_seal":{"agent":"A","key_id":"K","epoch":E,
 *      "first_seq":F,"last_seq":L,"count":N,"prev_chain":"<hex>",
 *      "chain":"<hex>"[,"next_key":"<base64>","next_key_id":"K2"],
 *      "sig":"<base64>"},"_aaas":{"agent":"A","seq":S,"time":"T"}}
 *
 * (one line, no blanks).  prev_chain is the hash before F, chain the
 * hash of L; N = L - F + 1.  An empty range (N = 0, F = L + 1) is allowed
 * for a seal that only announces the next key.  S is the seal's own spool
 * sequence number: seals take numbers from the same counter as events,
 * so a verifier accounts for every number.
 *
 * The signature is Ed25519 over "aaas-seal-v1" NUL followed by the whole
 * line without its '\n' and without the 97 bytes `,"sig":"<88 base64>"`.
 * The line is made once, when it is spooled, and sent as spooled: a
 * retried batch carries the very same bytes.
 *
 * EPOCHS.  A seal with next_key announces the public key of epoch E + 1,
 * signed by the key of epoch E.  Seals after it are signed with the new
 * key once the announcement is durable, and the old key is erased.
 */
#include "chain.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#define CHAIN_GENESIS_DOMAIN "aaas-chain-v1"
#define CHAIN_SEAL_DOMAIN "aaas-seal-v1"

static const char chain_hexdigits[] = "0123456789abcdef";

void
chain_hex(const uint8_t *p, size_t n, char *out)
{
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = chain_hexdigits[p[i] >> 4];
        out[2 * i + 1] = chain_hexdigits[p[i] & 15];
    }
    out[2 * n] = '\0';
}

static int
chain_nibble(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

int
chain_unhex(const char *s, size_t n, uint8_t *out)
{
    for (size_t i = 0; i < n; i++) {
        int hi = chain_nibble(s[2 * i]);
        int lo = chain_nibble(s[2 * i + 1]);

        if (hi < 0 || lo < 0)
            return -EBADMSG;
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return 0;
}

void
chain_key_id(const uint8_t pub[static CHAIN_PUB_LEN],
             char ret[static CHAIN_KEY_ID_LEN + 1])
{
    uint8_t h[CHAIN_HASH_LEN];

    (void)EVP_Digest(pub, CHAIN_PUB_LEN, h, NULL, EVP_sha256(), NULL);
    chain_hex(h, CHAIN_KEY_ID_LEN / 2, ret);
}

int
chain_genesis(const char *agent, uint8_t ret[static CHAIN_HASH_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok;

    if (!md)
        return -ENOMEM;
    ok = EVP_DigestInit_ex(md, EVP_sha256(), NULL) &&
         EVP_DigestUpdate(md, CHAIN_GENESIS_DOMAIN,
                          sizeof(CHAIN_GENESIS_DOMAIN)) &&
         EVP_DigestUpdate(md, agent, strlen(agent)) &&
         EVP_DigestFinal_ex(md, ret, NULL);
    EVP_MD_CTX_free(md);
    return ok ? 0 : -EIO;
}

int
chain_init(struct chain *c, const char *agent)
{
    int r;

    memset(c, 0, sizeof(*c));
    if (strlen(agent) > CHAIN_AGENT_MAX)
        return -EINVAL;
    strcpy(c->agent, agent);
    c->md = EVP_MD_CTX_new();
    if (!c->md)
        return -ENOMEM;
    r = chain_genesis(agent, c->last);
    if (r < 0)
        return r;
    memcpy(c->range_prev, c->last, CHAIN_HASH_LEN);
    return 0;
}

void
chain_done(struct chain *c)
{
    EVP_MD_CTX_free(c->md);
    c->md = NULL;
}

/* Offset of the two closing braces, or -EBADMSG. */
static int
chain_find_close(const char *line, size_t len, size_t *ret)
{
    size_t e = len;

    if (e > 0 && line[e - 1] == '\n')
        e--;
    while (e > 0 && (line[e - 1] == ' ' || line[e - 1] == '\t' ||
                     line[e - 1] == '\r'))
        e--;
    if (e < 2 || line[e - 1] != '}' || line[e - 2] != '}')
        return -EBADMSG;
    *ret = e - 2;
    return 0;
}

/*
 * Starts a SHA-256 on a context that is reused: after the first time the
 * digest it holds is kept, which spares OpenSSL 3 a provider lookup per
 * call (a sixth of the cost of hashing a 500-byte line).
 */
int
chain_md_init(EVP_MD_CTX *md)
{
    if (EVP_MD_CTX_get0_md(md))
        return EVP_DigestInit_ex2(md, NULL, NULL);
    return EVP_DigestInit_ex(md, EVP_sha256(), NULL);
}

int
chain_hash_line(EVP_MD_CTX *md, const uint8_t prev[static CHAIN_HASH_LEN],
                const char *line, size_t len, size_t at,
                uint8_t ret[static CHAIN_HASH_LEN])
{
    uint8_t d[CHAIN_HASH_LEN];
    size_t rest = at + CHAIN_FIELD_LEN;
    size_t end = len;
    int ok;

    if (end > 0 && line[end - 1] == '\n')
        end--;
    ok = chain_md_init(md) &&
         EVP_DigestUpdate(md, line, at) &&
         EVP_DigestUpdate(md, line + rest, end - rest) &&
         EVP_DigestFinal_ex(md, d, NULL) &&
         chain_md_init(md) &&
         EVP_DigestUpdate(md, prev, CHAIN_HASH_LEN) &&
         EVP_DigestUpdate(md, d, sizeof(d)) &&
         EVP_DigestFinal_ex(md, ret, NULL);
    return ok ? 0 : -EIO;
}

int
chain_link(struct chain *c, char *buf, size_t *len, size_t cap)
{
    char field[CHAIN_FIELD_LEN + 1];
    size_t at;
    int r;

    r = chain_find_close(buf, *len, &at);
    if (r < 0)
        return r;
    if (*len + CHAIN_FIELD_LEN > cap)
        return -ENOBUFS;

    /* Only the closing braces and blanks move; the line stays put. */
    memmove(buf + at + CHAIN_FIELD_LEN, buf + at, *len - at);
    *len += CHAIN_FIELD_LEN;
    memset(buf + at, ' ', CHAIN_FIELD_LEN);
    r = chain_hash_line(c->md, c->last, buf, *len, at, c->pending);
    if (r < 0)
        return r;
    memcpy(field, ",\"chain\":\"", 10);
    chain_hex(c->pending, CHAIN_HASH_LEN, field + 10);
    field[10 + CHAIN_HEX_LEN] = '"';
    memcpy(buf + at, field, CHAIN_FIELD_LEN);
    return 0;
}

void
chain_commit(struct chain *c, uint64_t seq)
{
    if (c->range_first == 0) {
        c->range_first = seq;
        c->range_count = 0;
        memcpy(c->range_prev, c->last, CHAIN_HASH_LEN);
        (void)clock_gettime(CLOCK_MONOTONIC, &c->range_start);
    }
    c->range_count++;
    memcpy(c->last, c->pending, CHAIN_HASH_LEN);
    c->last_seq = seq;
}

void
chain_restore(struct chain *c, uint64_t last_seq,
              const uint8_t hash[static CHAIN_HASH_LEN],
              uint64_t range_first, uint64_t range_count,
              const uint8_t prev[static CHAIN_HASH_LEN])
{
    memcpy(c->last, hash, CHAIN_HASH_LEN);
    c->last_seq = last_seq;
    c->range_first = range_first;
    c->range_count = range_count;
    memcpy(c->range_prev, range_first ? prev : hash, CHAIN_HASH_LEN);
    (void)clock_gettime(CLOCK_MONOTONIC, &c->range_start);
}

int
chain_split(const char *line, size_t len, size_t *ret_at,
            uint8_t ret_hash[static CHAIN_HASH_LEN])
{
    size_t close, at;
    int r;

    r = chain_find_close(line, len, &close);
    if (r < 0)
        return r;
    if (close < CHAIN_FIELD_LEN)
        return -EBADMSG;
    at = close - CHAIN_FIELD_LEN;
    if (memcmp(line + at, ",\"chain\":\"", 10) != 0 ||
        line[close - 1] != '"')
        return -EBADMSG;
    r = chain_unhex(line + at + 10, CHAIN_HASH_LEN, ret_hash);
    if (r < 0)
        return r;
    *ret_at = at;
    return 0;
}

static size_t
chain_put_time(char *out, size_t cap, const struct timespec *now)
{
    struct tm tm;
    char date[24];

    (void)gmtime_r(&now->tv_sec, &tm);
    (void)strftime(date, sizeof(date), "%Y-%m-%dT%H:%M:%S", &tm);
    return (size_t)snprintf(out, cap, "%s.%06luZ", date,
                            (unsigned long)now->tv_nsec / 1000 % 1000000);
}

int
chain_seal_message(const char *line, size_t len, char *buf, size_t cap,
                   size_t *ret_len, const char **ret_sig)
{
    const char *sig, *end;
    size_t head, tail;

    if (len > 0 && line[len - 1] == '\n')
        len--;
    /* The sig member is last in `_aaas_seal`, which the `_aaas` follows. */
    sig = memmem(line, len, ",\"sig\":\"", 8);
    if (!sig || (size_t)(sig - line) + CHAIN_SIG_FIELD_LEN + 1 > len)
        return -EBADMSG;
    end = sig + CHAIN_SIG_FIELD_LEN;
    if (end[-1] != '"' || end[0] != '}')
        return -EBADMSG;
    head = (size_t)(sig - line);
    tail = len - (size_t)(end - line);
    if (sizeof(CHAIN_SEAL_DOMAIN) + head + tail > cap)
        return -ENOBUFS;
    memcpy(buf, CHAIN_SEAL_DOMAIN, sizeof(CHAIN_SEAL_DOMAIN));
    memcpy(buf + sizeof(CHAIN_SEAL_DOMAIN), line, head);
    memcpy(buf + sizeof(CHAIN_SEAL_DOMAIN) + head, end, tail);
    *ret_len = sizeof(CHAIN_SEAL_DOMAIN) + head + tail;
    if (ret_sig)
        *ret_sig = sig + 8;
    return 0;
}

static int
chain_sign(const struct chain_key *k, const char *msg, size_t len,
           uint8_t sig[static CHAIN_SIG_LEN])
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    size_t n = CHAIN_SIG_LEN;
    int ok;

    if (!md)
        return -ENOMEM;
    ok = EVP_DigestSignInit(md, NULL, NULL, NULL, k->pkey) == 1 &&
         EVP_DigestSign(md, sig, &n, (const unsigned char *)msg, len) == 1;
    EVP_MD_CTX_free(md);
    return ok && n == CHAIN_SIG_LEN ? 0 : -EIO;
}

int
chain_seal(struct chain *c, const struct chain_key *k,
           const struct chain_key *next, uint64_t seq,
           const struct timespec *now, char *buf, size_t *ret_len)
{
    char prev[CHAIN_HEX_LEN + 1], last[CHAIN_HEX_LEN + 1];
    char msg[CHAIN_SEAL_MAX + 16], when[40];
    char b64[CHAIN_SIG_B64_LEN + 4];
    uint8_t sig[CHAIN_SIG_LEN];
    uint64_t first = c->range_first ? c->range_first : c->last_seq + 1;
    size_t n, mlen;
    int r;

    chain_hex(c->range_first ? c->range_prev : c->last, CHAIN_HASH_LEN,
              prev);
    chain_hex(c->last, CHAIN_HASH_LEN, last);
    (void)chain_put_time(when, sizeof(when), now);

    n = (size_t)snprintf(buf, CHAIN_SEAL_MAX,
                         "{\"_aaas_seal\":{\"agent\":\"%s\",\"key_id\":\"%s\","
                         "\"epoch\":%llu,\"first_seq\":%llu,\"last_seq\":%llu,"
                         "\"count\":%llu,\"prev_chain\":\"%s\","
                         "\"chain\":\"%s\"",
                         c->agent, k->id, (unsigned long long)k->epoch,
                         (unsigned long long)first,
                         (unsigned long long)c->last_seq,
                         (unsigned long long)(c->range_first ?
                                              c->range_count : 0),
                         prev, last);
    if (next) {
        char pub[CHAIN_PUB_B64_LEN + 4];

        (void)EVP_EncodeBlock((unsigned char *)pub, next->pub,
                              CHAIN_PUB_LEN);
        n += (size_t)snprintf(buf + n, CHAIN_SEAL_MAX - n,
                              ",\"next_key\":\"%s\",\"next_key_id\":\"%s\"",
                              pub, next->id);
    }
    n += (size_t)snprintf(buf + n, CHAIN_SEAL_MAX - n,
                          ",\"sig\":\"%-88s\"},\"_aaas\":{\"agent\":\"%s\","
                          "\"seq\":%llu,\"time\":\"%s\"}}\n",
                          "", c->agent, (unsigned long long)seq, when);
    if (n >= CHAIN_SEAL_MAX)
        return -ENOBUFS;

    r = chain_seal_message(buf, n, msg, sizeof(msg), &mlen, NULL);
    if (r < 0)
        return r;
    r = chain_sign(k, msg, mlen, sig);
    if (r < 0)
        return r;
    (void)EVP_EncodeBlock((unsigned char *)b64, sig, CHAIN_SIG_LEN);
    memcpy((char *)memmem(buf, n, ",\"sig\":\"", 8) + 8, b64,
           CHAIN_SIG_B64_LEN);
    *ret_len = n;
    return 0;
}

void
chain_seal_commit(struct chain *c)
{
    c->range_first = 0;
    c->range_count = 0;
    memcpy(c->range_prev, c->last, CHAIN_HASH_LEN);
}
