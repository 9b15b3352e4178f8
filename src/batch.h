/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * One PutRecordBatch call's worth of spooled events, cut into records.
 * A record covers the events [first_seq, last_seq]; with pack set, later
 * events are appended to the current record while it fits, so the caller
 * hands in newline-terminated lines.  The struct is embedded by the
 * sender and its buffers are kept across batch_reset().
 */

/* Kinesis Data Firehose PutRecordBatch service limits. */
#define BATCH_MAX_RECORDS       500u
#define BATCH_MAX_CALL_BYTES    (4u * 1024u * 1024u)   /* before base64 */
#define BATCH_MAX_RECORD_BYTES  1024000u               /* before base64 */

struct batch_limits {
    size_t max_records;         /* per call; 0: BATCH_MAX_RECORDS */
    size_t max_call_bytes;      /* record bytes per call; 0: the default */
    size_t max_record_bytes;    /* bytes per record; 0: the default */
    bool pack;                  /* several events per record */
};

struct batch_record {
    uint64_t first_seq;
    uint64_t last_seq;
    size_t n_events;
    size_t offset;              /* into the batch's data buffer */
    size_t len;                 /* bytes, as the service counts them */
    /* What the events would be billed one record each (5 KB rounding). */
    uint64_t billed_unpacked;
    /* The bytes were swapped for a reject line by batch_replace_record(). */
    bool replaced;
};

/* Firehose bills each record rounded up to the next 5 KB. */
#define BATCH_BILLING_UNIT 5120u

/* len rounded up to the billing unit (one unit for an empty record). */
uint64_t batch_billed_bytes(size_t len);

/* Fields are the module's; use the functions below to read them. */
struct batch {
    struct batch_limits limits;
    struct batch_record *records;   /* limits.max_records entries */
    size_t n_records;
    unsigned char *data;            /* limits.max_call_bytes bytes */
    size_t data_len;
    size_t n_events;
    size_t encoded_len;             /* sum of the records' base64 lengths */
};

/*
 * limits may be NULL for the Firehose limits.  Returns -EINVAL when the
 * limits are inconsistent (a record larger than a call, or above the
 * service limits), -ENOMEM.
 */
int batch_init(struct batch *b, const struct batch_limits *limits);
void batch_done(struct batch *b);

/* Empties the batch and keeps its memory. */
void batch_reset(struct batch *b);

/*
 * Appends one event; seq must be higher than any seq already in the batch.
 * Returns 0, -ENOSPC when the batch is full (send it, reset, add again) or
 * -EMSGSIZE when the event alone exceeds the record limit.  The batch is
 * unchanged on failure.
 */
int batch_add(struct batch *b, uint64_t seq, const void *data, size_t len);

size_t batch_n_records(const struct batch *b);
size_t batch_n_events(const struct batch *b);
bool batch_is_empty(const struct batch *b);

/* Sum of the records' lengths: what the service counts against a call. */
size_t batch_data_len(const struct batch *b);

/* Sum of the records' base64 lengths, for sizing a request body. */
size_t batch_encoded_len(const struct batch *b);

/* i < batch_n_records(); pointers stay valid until the batch changes. */
const struct batch_record *batch_record(const struct batch *b, size_t i);
const void *batch_record_data(const struct batch *b, size_t i);

/*
 * Lowest first_seq and highest last_seq in the batch; 0 when it is empty.
 */
uint64_t batch_first_seq(const struct batch *b);
uint64_t batch_last_seq(const struct batch *b);

/*
 * After a partly failed call: failed[i] tells whether record i must be
 * sent again.  Acknowledged records are dropped, the failed ones keep
 * their order and move to the front.  Returns the number of records kept.
 */
size_t batch_retain_failed(struct batch *b, const bool *failed);

/*
 * Puts len bytes in place of record i's data, keeping its sequence range
 * and event count, and marks it replaced: for a record the service will
 * never take, whose reject line goes in its place.  Returns 0, -ENOSPC
 * when the call or record limit would be exceeded (nothing changes).
 */
int batch_replace_record(struct batch *b, size_t i, const void *data,
                         size_t len);

/* Bytes record i could grow to without breaking a limit. */
size_t batch_record_room(const struct batch *b, size_t i);
