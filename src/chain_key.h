/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "chain.h"

/*
 * Signing key files: made by `aaasctl keygen`, read by the daemon, and
 * replaced by the daemon when an epoch ends.  A key file is
 *
 *     aaas-epoch <epoch> <unix seconds the epoch began>
 *     -----BEGIN PRIVATE KEY-----
 *     (PKCS#8 Ed25519, PEM)
 *     -----END PRIVATE KEY-----
 *
 * and must be a regular file that neither group nor others can read.
 * A public key is one line: `aaas-ed25519 <base64 of 32 bytes> <key id>`.
 */

#define CHAIN_KEY_PUB_TEXT_MAX 96

int chain_key_generate(struct chain_key *k, uint64_t epoch, int64_t start);
void chain_key_done(struct chain_key *k);

/*
 * Loads path into k.  -EPERM when group or others may read the file,
 * -EBADMSG when it is not a key file; reterr_why says which.
 */
int chain_key_load(const char *path, struct chain_key *k,
                   const char **reterr_why);

/*
 * Writes k to path atomically (temporary file, fsync, rename, fsync of
 * the directory), mode 0600.  With exclusive, an existing path is
 * -EEXIST and left alone.
 */
int chain_key_save(const char *path, const struct chain_key *k,
                   bool exclusive);

/* Overwrites path with zeros, syncs and unlinks it; -ENOENT is fine. */
int chain_key_erase_file(const char *path);

void chain_key_pub_text(const struct chain_key *k,
                        char ret[static CHAIN_KEY_PUB_TEXT_MAX]);
/* Reads the public key line (leading blanks and a trailing id allowed). */
int chain_key_parse_pub(const char *text, uint8_t ret[static CHAIN_PUB_LEN]);
