/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include "batch.h"
#include "sigv4.h"
#include "sink_firehose.h"

/*
 * The Kinesis Data Streams PutRecords call as bytes: the signed request
 * for a batch and the reading of its answer.  The same JSON 1.1 protocol
 * as Firehose, so requests are sink_firehose_request and answers are read
 * by sink_firehose's parser; no I/O here either.
 */

/* PutRecords limits; a call's and a record's include the partition keys. */
#define SINK_KINESIS_MAX_RECORDS        500u
#define SINK_KINESIS_MAX_CALL_BYTES     (5u * 1024u * 1024u)
#define SINK_KINESIS_MAX_RECORD_BYTES   (1024u * 1024u)
/* Unicode characters in a partition key. */
#define SINK_KINESIS_KEY_MAX            256u

struct sink_kinesis_options {
    const char *stream;         /* StreamName */
    const char *region;
    /* NULL: https://kinesis.REGION.amazonaws.com, ".com.cn" for cn-* */
    const char *endpoint;
    /*
     * Text with the placeholders {agent} (the agent id) and {seq} (the
     * first event's sequence number in the record); NULL: "{agent}".
     */
    const char *partition_key;
    const char *agent;          /* for {agent}; may be NULL without it */
};

struct sink_kinesis;

/*
 * Checks a partition key template: UTF-8, no placeholder but {agent} and
 * {seq}, 1 to 256 characters once they are filled in (32 for {agent}, 20
 * for {seq} at most).  false with a static reason.
 */
bool sink_kinesis_key_valid(const char *tmpl, const char **reterr_reason);

/*
 * Returns -EINVAL with a static reason for a missing or bad stream,
 * region, endpoint or key; -ENOMEM.
 */
int sink_kinesis_new(const struct sink_kinesis_options *o,
                     struct sink_kinesis **ret, const char **reterr_reason);
struct sink_kinesis *sink_kinesis_free(struct sink_kinesis *s);

const char *sink_kinesis_url(const struct sink_kinesis *s);
const char *sink_kinesis_host(const struct sink_kinesis *s);

/*
 * Builds the body for all records of b and signs it for now.  Returns
 * 0, -EINVAL for an empty batch or unusable credentials, -E2BIG when a
 * record with its key or the call would pass the service's limits,
 * -ENOMEM.
 */
int sink_kinesis_build(const struct sink_kinesis *s, const struct batch *b,
                       const struct sigv4_credentials *cred, time_t now,
                       struct sink_firehose_request *r);

/* FailedRecordCount, Records, SequenceNumber. */
extern const struct sink_firehose_dialect sink_kinesis_dialect;
