/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

struct chain;
struct spool;

/*
 * The daemon's side of the chain: its state across restarts, when a seal
 * is due, the signing key and the end of each key epoch.  The pipeline
 * appends what this hands out to the spool and reports back.  All calls
 * come from the event loop; file work (state file, epoch rollover) is
 * small and rare and done in place.
 */
struct sealer;

struct sealer_options {
    const char *agent;
    const char *key_path;       /* NULL: chain without seals */
    const char *state_dir;      /* holds the "chain" state file */
    unsigned seal_every;        /* events per seal */
    unsigned seal_interval_ms;
    unsigned epoch_sec;         /* 0: no rollover */
};

/*
 * Loads the key (refusing one that group or others may read) and
 * restores the chain from the spool's last frames or the state file.
 * reterr_why names what was wrong with the key file.
 */
int sealer_new(const struct sealer_options *o, struct spool *spool,
               struct sealer **ret, const char **reterr_why);
/* Writes the state file (synced) and wipes the keys. */
struct sealer *sealer_free(struct sealer *s);

/* For event_builder.chain. */
struct chain *sealer_chain(struct sealer *s);

/* The line built with the pending hash is in the spool as seq. */
void sealer_committed(struct sealer *s, uint64_t seq);

/* True when a signing key is loaded. */
bool sealer_signing(const struct sealer *s);

/*
 * Microseconds until the open range must be sealed: 0 when due now,
 * UINT64_MAX when there is nothing to seal.
 */
uint64_t sealer_due_in(const struct sealer *s);

/*
 * Builds the seal line for seq (the spool's next number); the line stays
 * valid until the next call.  May start an epoch rollover.
 */
int sealer_build(struct sealer *s, uint64_t seq, const struct timespec *now,
                 const char **ret_line, size_t *ret_len);
/* The seal built last is in the spool. */
void sealer_sealed(struct sealer *s, uint64_t seq);

/*
 * The spool is durable up to seq: an epoch whose successor has been
 * announced in a durable seal ends now.  Returns 1 when an epoch ended,
 * 0, or a negative errno when the key files could not be replaced (the
 * old key stays in use and the switch is tried again).
 */
int sealer_durable(struct sealer *s, uint64_t seq);

/* Epoch of the signing key in use. */
uint64_t sealer_epoch(const struct sealer *s);
