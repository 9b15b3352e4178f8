/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <openssl/evp.h>

/*
 * The hash chain over delivered lines and the Ed25519 seals over ranges
 * of it.  The formats are documented at the top of chain.c; verification
 * (aaasctl verify) uses the same helpers to take lines apart.
 */

#define CHAIN_HASH_LEN 32
#define CHAIN_HEX_LEN (2 * CHAIN_HASH_LEN)
/* `,"chain":"` + 64 hex + `"` */
#define CHAIN_FIELD_LEN (10 + CHAIN_HEX_LEN + 1)
#define CHAIN_KEY_ID_LEN 16         /* hex characters */
#define CHAIN_PUB_LEN 32
#define CHAIN_SIG_LEN 64
#define CHAIN_SIG_B64_LEN 88
#define CHAIN_PUB_B64_LEN 44
/* `,"sig":"` + 88 base64 + `"` */
#define CHAIN_SIG_FIELD_LEN (8 + CHAIN_SIG_B64_LEN + 1)
/* Largest seal line, next-key announcement included. */
#define CHAIN_SEAL_MAX 1024
#define CHAIN_AGENT_MAX 64

struct chain {
    EVP_MD_CTX *md;             /* reused for every line */
    char agent[CHAIN_AGENT_MAX + 1];
    uint8_t last[CHAIN_HASH_LEN];       /* hash of the last committed line */
    uint64_t last_seq;                  /* 0: nothing chained yet */
    uint8_t pending[CHAIN_HASH_LEN];    /* from chain_link(), not committed */

    /* The range since the last seal: lines (range_first, last_seq]. */
    uint64_t range_first;               /* 0: no line since the last seal */
    uint64_t range_count;
    uint8_t range_prev[CHAIN_HASH_LEN]; /* the hash before range_first */
    struct timespec range_start;        /* CLOCK_MONOTONIC, first line */
};

/*
 * An Ed25519 signing key and its epoch.  The private key is held only
 * here; chain_key_done() frees it, which wipes it (OpenSSL cleanses
 * private key material when the key is freed).
 */
struct chain_key {
    EVP_PKEY *pkey;
    uint8_t pub[CHAIN_PUB_LEN];
    char id[CHAIN_KEY_ID_LEN + 1];
    uint64_t epoch;
    int64_t epoch_start;                /* unix seconds */
};

/* SHA-256 of the domain string and the agent id: the chain's start. */
int chain_genesis(const char *agent, uint8_t ret[static CHAIN_HASH_LEN]);

int chain_init(struct chain *c, const char *agent);
void chain_done(struct chain *c);

/*
 * Inserts `,"chain":"..."` into the line in buf (which ends `}}` plus
 * optional blanks and '\n'; cap bytes are writable) and hashes it.  The
 * new hash is pending until chain_commit(): a line the spool refused is
 * built and linked again with the same sequence number.
 */
int chain_link(struct chain *c, char *buf, size_t *len, size_t cap);
void chain_commit(struct chain *c, uint64_t seq);

/*
 * Restores the state from the last line found in the spool, or from a
 * state file: the next line chains to hash, and the open range began
 * after range_first - 1 with prev as its previous hash.
 */
void chain_restore(struct chain *c, uint64_t last_seq,
                   const uint8_t hash[static CHAIN_HASH_LEN],
                   uint64_t range_first, uint64_t range_count,
                   const uint8_t prev[static CHAIN_HASH_LEN]);

/*
 * Builds the seal line for the open range (which may be empty when only
 * next is announced) in buf (CHAIN_SEAL_MAX bytes).  seq is the seal's
 * own sequence number; next, when not NULL, is the next epoch's key.
 */
int chain_seal(struct chain *c, const struct chain_key *k,
               const struct chain_key *next, uint64_t seq,
               const struct timespec *now, char *buf, size_t *ret_len);
/* The seal built last is in the spool: a new range begins. */
void chain_seal_commit(struct chain *c);

/* The message a seal signs: the line without its sig member. */
int chain_seal_message(const char *line, size_t len, char *buf, size_t cap,
                       size_t *ret_len, const char **ret_sig);

/*
 * Taking a delivered line apart.  chain_split() finds the chain field:
 * ret_at is its offset, ret_hash its value.  -EBADMSG when the line has
 * none.
 */
int chain_split(const char *line, size_t len, size_t *ret_at,
                uint8_t ret_hash[static CHAIN_HASH_LEN]);

/* EVP_DigestInit for SHA-256 on a reused context; 1 on success. */
int chain_md_init(EVP_MD_CTX *md);

/* hash = SHA-256(prev || SHA-256(line without its chain field)). */
int chain_hash_line(EVP_MD_CTX *md, const uint8_t prev[static CHAIN_HASH_LEN],
                    const char *line, size_t len, size_t at,
                    uint8_t ret[static CHAIN_HASH_LEN]);

void chain_hex(const uint8_t *p, size_t n, char *out);
int chain_unhex(const char *s, size_t n, uint8_t *out);

/* Key id: the first 8 bytes of SHA-256 of the raw public key, in hex. */
void chain_key_id(const uint8_t pub[static CHAIN_PUB_LEN],
                  char ret[static CHAIN_KEY_ID_LEN + 1]);
