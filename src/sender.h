/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "credentials.h"
#include "http.h"
#include "spool.h"

/*
 * The delivery side: reads durable events from the spool, sends them in
 * PutRecordBatch (or Kinesis PutRecords) calls (several in flight), retries what failed with
 * backoff and acknowledges to the spool only what the service accepted.
 */
struct sender;

/* The spool acknowledged up to acked_seq (space may have been freed). */
typedef void (*sender_acked_fn)(void *userdata, uint64_t acked_seq);

struct sender_options {
    sd_event *event;
    struct spool *spool;
    struct http *http;
    struct credentials *credentials;
    const char *stream;
    const char *region;
    const char *endpoint;       /* NULL: the region's public endpoint */
    bool kinesis;               /* Kinesis Data Streams, not Firehose */
    const char *partition_key;  /* Kinesis: see sink_kinesis.h */
    const char *agent;          /* Kinesis: for {agent} in the key */
    const char *ca_file;
    unsigned max_in_flight;
    unsigned timeout_ms;
    unsigned connect_timeout_ms;    /* 0: 10 s */
    unsigned low_speed_time_ms;     /* 0: 30 s */
    const char *proxy;              /* NULL: libcurl's environment */
    bool pack;                      /* several events per record */
    unsigned max_records_per_second;    /* 0: no limit */
    uint64_t max_bytes_per_second;      /* 0: no limit */
    unsigned retry_initial_ms;
    unsigned retry_max_ms;
    sender_acked_fn acked_fn;
    void *userdata;
};

struct sender_stats {
    uint64_t delivered;         /* events the service accepted */
    uint64_t calls;
    uint64_t failed_calls;
    uint64_t failed_records;    /* records retried after FailedPutCount */
    uint64_t possible_duplicates;
    uint64_t records;           /* records the service accepted */
    /*
     * Bytes the service bills for the accepted records (each rounded up
     * to 5 KB), and what the same events would cost one record each.
     */
    uint64_t billed_bytes;
    uint64_t billed_bytes_unpacked;
    uint64_t data_bytes;        /* record bytes accepted */
    uint64_t throttled;         /* calls or records refused for the rate */
    /* Records refused for good and replaced by a reject line; events. */
    uint64_t rejected_records;
    uint64_t rejected_events;
    unsigned window;            /* calls allowed in flight right now */
    bool stalled;               /* needs an operator (access, stream, KMS) */
    char last_error[512];
};

int sender_new(const struct sender_options *o, struct sender **ret,
               const char **reterr_reason);
struct sender *sender_free(struct sender *s);

/*
 * Applies changed options (reload) without losing the sender's place:
 * calls in flight finish as they were built, retries and new calls use o.
 * The strings in o must outlive the sender or the next reconfigure.  On
 * failure nothing changes.
 */
int sender_reconfigure(struct sender *s, const struct sender_options *o,
                       const char **reterr_reason);

/* New durable events may be waiting: start calls if slots are free. */
void sender_kick(struct sender *s);

/*
 * The lowest sequence number the sender has not read from the spool:
 * everything below it is delivered, in a call or held for one.
 */
uint64_t sender_unread_seq(const struct sender *s);

/* Every durable event has been acknowledged and nothing is in flight. */
bool sender_idle(const struct sender *s);

void sender_get_stats(const struct sender *s, struct sender_stats *ret);
