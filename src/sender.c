/* SPDX-License-Identifier: MIT */
/*
 * Moves durable events from the spool to Firehose (or Kinesis Data
 * Streams).  Request bytes and the meaning of answers belong to
 * sink_firehose and sink_kinesis; the transport to http.  This
 * file owns the order of things: which events are in which call, when a
 * call is retried, and how far the spool may forget.
 *
 * The spool may only forget a prefix of the sequence, while calls finish
 * in any order and partly.  So the acknowledged position is the lowest
 * sequence number still held by any slot, minus one; a slot keeps its
 * failed records and sends them again after a backoff, while other slots
 * go on with newer events, so one bad stretch does not stall the rest.
 *
 * Order and fairness: events leave in sequence order, oldest first, and
 * every call carries the oldest events not yet in flight, so a backlog
 * drains in order at the full window and new events queue behind it
 * instead of overtaking it (Athena sees them in arrival order per host).
 * A slot waiting to retry does not hold the others: they keep sending
 * newer events, so a few refused records never block the stream.
 *
 * Rate: throttling answers halve the calls allowed in flight (down to
 * one) and each call taken whole lets one more back, up to max_in_flight,
 * as TCP does; the optional records/s and bytes/s limits pace the start
 * of calls on top of that.
 */
#include "sender.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "batch.h"
#include "log.h"
#include "service_reject.h"
#include "sink_firehose.h"
#include "sink_kinesis.h"

#define SENDER_SLOTS_MAX 16
#define SENDER_CONNECT_TIMEOUT_MS 10000
/* Repeats of the same failure are logged at most this often. */
#define SENDER_LOG_INTERVAL_USEC (30ull * 1000000ull)

enum slot_state {
    SLOT_IDLE,
    SLOT_BUSY,                  /* a call is in flight */
    SLOT_WAIT,                  /* failed, waiting for its retry timer */
};

struct sender_slot {
    struct sender *owner;
    enum slot_state state;
    struct batch batch;
    struct sink_firehose_request req;
    struct curl_slist *headers;
    bool failed[BATCH_MAX_RECORDS];
    bool rejected[BATCH_MAX_RECORDS];   /* refused for good, see below */
    /* After batch_retain_failed(): the answer's index of kept record j. */
    uint16_t kept_from[BATCH_MAX_RECORDS];
    unsigned attempt;           /* failed attempts in a row */
    sd_event_source *timer;
};

struct sender {
    struct sender_options opts;
    unsigned window;            /* calls allowed in flight, see above */
    struct batch_limits limits; /* for every slot's batch */
    uint64_t next_send_usec;    /* rate limit: no call starts before */
    sd_event_source *rate_timer;
    struct sink_firehose *sink;
    struct sink_kinesis *kinesis;   /* instead of sink for Kinesis */
    struct spool_cursor *cursor;
    struct sender_slot slots[SENDER_SLOTS_MAX];
    unsigned n_slots;

    /* An event read from the cursor that did not fit the last batch. */
    unsigned char *held;
    size_t held_len;
    uint64_t held_seq;
    bool has_held;

    unsigned max_busy;          /* slots that take new events; slots past
                                 * it only finish what they hold */

    uint64_t next_seq;          /* first sequence number not yet read */
    uint64_t acked;             /* last value given to spool_ack() */
    uint64_t resend_upto;       /* events <= this may already be there */
    time_t skew;                /* service clock minus ours, seconds */

    struct sender_stats stats;
    char last_logged[SINK_FIREHOSE_CODE_MAX + 32];
    uint64_t last_log_usec;
    unsigned suppressed;
};

static void sender_fill(struct sender *s);

/* The two sinks speak one protocol; only these three things differ. */
static const char *
sender_host(const struct sender *s)
{
    return s->kinesis ? sink_kinesis_host(s->kinesis)
                      : sink_firehose_host(s->sink);
}

static const struct sink_firehose_dialect *
sender_dialect(const struct sender *s)
{
    return s->kinesis ? &sink_kinesis_dialect
                      : &sink_firehose_dialect_firehose;
}

static int
sender_build(struct sender *s, struct sender_slot *sl,
             const struct sigv4_credentials *cred, time_t now)
{
    if (s->kinesis)
        return sink_kinesis_build(s->kinesis, &sl->batch, cred, now,
                                  &sl->req);
    return sink_firehose_build(s->sink, &sl->batch, cred, now, &sl->req);
}

static uint64_t
sender_now_usec(const struct sender *s)
{
    uint64_t usec = 0;

    (void)sd_event_now(s->opts.event, CLOCK_MONOTONIC, &usec);
    return usec;
}

/*
 * Logs a failure, but the same one again only every 30 s, with a count of
 * the repeats in between: a stream that is down for an hour must not
 * write a line per call.
 */
static void
sender_log_failure(struct sender *s, const char *key, const char *fmt, ...)
        __attribute__((format(printf, 3, 4)));

static void
sender_log_failure(struct sender *s, const char *key, const char *fmt, ...)
{
    uint64_t now = sender_now_usec(s);
    char line[512];
    va_list ap;

    va_start(ap, fmt);
    (void)vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    (void)snprintf(s->stats.last_error, sizeof(s->stats.last_error), "%s",
                   line);

    if (strcmp(key, s->last_logged) == 0 &&
        now - s->last_log_usec < SENDER_LOG_INTERVAL_USEC) {
        s->suppressed++;
        return;
    }
    /* A stream that needs an operator is an error, not a hiccup. */
    if (s->suppressed > 0)
        log_write(s->stats.stalled ? LOG_ERR : LOG_WARNING,
                  "%s (%u similar failures not logged)", line, s->suppressed);
    else
        log_write(s->stats.stalled ? LOG_ERR : LOG_WARNING, "%s", line);
    (void)snprintf(s->last_logged, sizeof(s->last_logged), "%s", key);
    s->last_log_usec = now;
    s->suppressed = 0;
}

static void
sender_update_ack(struct sender *s)
{
    uint64_t upto = s->has_held ? s->held_seq - 1 : s->next_seq - 1;
    int r;

    for (unsigned i = 0; i < s->n_slots; i++) {
        struct sender_slot *sl = &s->slots[i];

        if (sl->state != SLOT_IDLE && !batch_is_empty(&sl->batch) &&
            batch_first_seq(&sl->batch) - 1 < upto)
            upto = batch_first_seq(&sl->batch) - 1;
    }
    if (upto <= s->acked)
        return;

    r = spool_ack(s->opts.spool, upto);
    if (r < 0) {
        log_warning("sender: cannot acknowledge up to %llu in the spool: "
                    "%s, retrying with the next answer",
                    (unsigned long long)upto, strerror(-r));
        return;
    }
    s->acked = upto;
    if (s->opts.acked_fn)
        s->opts.acked_fn(s->opts.userdata, upto);
}

/* Full jitter over an exponential ceiling, at least 1/4 of it. */
static uint64_t
sender_backoff_usec(const struct sender *s, unsigned attempt, bool slow)
{
    uint64_t ceiling = (uint64_t)s->opts.retry_initial_ms * 1000;
    uint64_t max = (uint64_t)s->opts.retry_max_ms * 1000;

    for (unsigned i = 1; i < attempt && ceiling < max; i++)
        ceiling *= 2;
    if (slow)
        ceiling = max;
    if (ceiling > max)
        ceiling = max;
    if (ceiling < 4)
        return ceiling;
    return ceiling / 4 + (uint64_t)random() % (ceiling - ceiling / 4);
}

static int
sender_retry_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct sender_slot *sl = userdata;

    sl->state = SLOT_IDLE;
    sender_fill(sl->owner);
    return 0;
}

static void
sender_schedule_retry(struct sender_slot *sl, bool slow)
{
    struct sender *s = sl->owner;
    uint64_t delay = sender_backoff_usec(s, sl->attempt, slow);
    int r;

    sl->state = SLOT_WAIT;
    r = sd_event_source_set_time_relative(sl->timer, delay);
    if (r >= 0)
        r = sd_event_source_set_enabled(sl->timer, SD_EVENT_ONESHOT);
    if (r < 0) {
        /* Without a timer the slot would wait for ever: retry now. */
        log_warning("sender: cannot arm retry timer: %s, retrying at once",
                    strerror(-r));
        sl->state = SLOT_IDLE;
    }
}

/* Adds the records of b that failed[] does not flag to the billing. */
static void
sender_account(struct sender *s, const struct batch *b, const bool *failed)
{
    for (size_t i = 0; i < batch_n_records(b); i++) {
        const struct batch_record *rec = batch_record(b, i);

        if (failed && failed[i])
            continue;
        s->stats.records++;
        s->stats.data_bytes += rec->len;
        s->stats.billed_bytes += batch_billed_bytes(rec->len);
        s->stats.billed_bytes_unpacked += rec->billed_unpacked;
    }
}

static bool
sender_is_throttle(long status, const char *code)
{
    static const char *const codes[] = {
        "ServiceUnavailableException", "ThrottlingException", "Throttling",
        "KMSThrottlingException", "LimitExceededException",
        "ProvisionedThroughputExceededException", "SlowDown",
    };

    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); i++)
        if (strcmp(code, codes[i]) == 0)
            return true;
    return status == 429 || status == 503;
}

/* Multiplicative decrease on throttling, additive increase on success. */
static void
sender_window(struct sender *s, bool throttled)
{
    if (throttled) {
        s->stats.throttled++;
        s->window = s->window > 1 ? s->window / 2 : 1;
    } else if (s->window < s->n_slots) {
        s->window++;
    }
    s->stats.window = s->window;
}

/* A copy of service text fit for one log line: control bytes become '?'. */
static void
sender_log_text(char *dst, size_t size, const char *src)
{
    size_t i;

    for (i = 0; src[i] && i + 1 < size; i++) {
        unsigned char c = (unsigned char)src[i];

        dst[i] = c < 0x20 || c == 0x7f ? '?' : (char)c;
    }
    dst[i] = '\0';
}

/*
 * Records the service refused for good (InvalidArgumentException for that
 * record) would be refused for ever and hold the spool back, so each is
 * replaced by a short reject line that names its events and the reason,
 * and goes out with the retried records.  Runs after
 * batch_retain_failed(); kept_from[] maps back to the answer.  A reject
 * line refused again is kept and retried slowly: nothing is dropped.
 * Returns whether such a refused reject line is in the batch.
 */
static bool
sender_replace_rejects(struct sender *s, struct sender_slot *sl,
                       const struct http_result *res)
{
    char code[SINK_FIREHOSE_CODE_MAX], message[SINK_FIREHOSE_MESSAGE_MAX];
    char log_code[SINK_FIREHOSE_CODE_MAX];
    char log_message[SINK_FIREHOSE_MESSAGE_MAX];
    bool stuck = false;
    int r;

    for (size_t j = 0; j < batch_n_records(&sl->batch); j++) {
        const struct batch_record *rec = batch_record(&sl->batch, j);
        size_t from = sl->kept_from[j], len;
        struct service_reject rj;
        char *line;

        if (!sl->rejected[from])
            continue;
        r = sink_firehose_record_error(sender_dialect(s), res->body,
                                       res->body_len, from, code, message);
        if (r < 0) {
            code[0] = '\0';
            message[0] = '\0';
        }
        sender_log_text(log_code, sizeof(log_code), code);
        sender_log_text(log_message, sizeof(log_message), message);
        if (rec->replaced) {
            stuck = true;
            sender_log_failure(s, "reject-refused",
                               "sender: stream '%s' refused even the "
                               "reject line for events %llu..%llu (%s: %s), "
                               "keeping it and retrying slowly",
                               s->opts.stream,
                               (unsigned long long)rec->first_seq,
                               (unsigned long long)rec->last_seq, log_code,
                               log_message);
            continue;
        }

        rj = (struct service_reject){
            .record = batch_record_data(&sl->batch, j),
            .record_len = rec->len,
            .first_seq = rec->first_seq,
            .last_seq = rec->last_seq,
            .n_events = rec->n_events,
            .error_code = code,
            .error_message = message,
        };
        r = service_reject_build(&rj, batch_record_room(&sl->batch, j),
                                 &line, &len);
        if (r >= 0) {
            r = batch_replace_record(&sl->batch, j, line, len);
            free(line);
        }
        if (r < 0) {
            /* Kept as it is: retried, and replaced when there is room. */
            sender_log_failure(s, "reject-build",
                               "sender: cannot build the reject line for "
                               "events %llu..%llu: %s, retrying them",
                               (unsigned long long)rec->first_seq,
                               (unsigned long long)rec->last_seq,
                               strerror(-r));
            continue;
        }
        s->stats.rejected_records++;
        s->stats.rejected_events += rec->n_events;
        log_err("sender: stream '%s' refused events %llu..%llu for good "
                "(%s: %s), delivering a reject line in their place",
                s->opts.stream, (unsigned long long)rec->first_seq,
                (unsigned long long)rec->last_seq, log_code, log_message);
    }
    return stuck;
}

static void
sender_call_done(void *userdata, const struct http_result *res)
{
    struct sender_slot *sl = userdata;
    struct sender *s = sl->owner;
    struct sink_firehose_result fr;
    size_t n = batch_n_records(&sl->batch);
    size_t kept, events_before;
    bool stuck;
    int r;

    curl_slist_free_all(sl->headers);
    sl->headers = NULL;

    if (res->error < 0) {
        /*
         * The call may have reached the service before the connection
         * broke, so what is sent again may be there twice.
         */
        s->stats.failed_calls++;
        /* Without a connection nothing can have reached the service. */
        if (!res->unsent)
            s->stats.possible_duplicates += batch_n_events(&sl->batch);
        sl->attempt++;
        sender_log_failure(s, "transport",
                           "sender: call to '%s' failed: %s, retrying %zu "
                           "events%s", sender_host(s), res->error_text,
                           batch_n_events(&sl->batch),
                           res->unsent ? "" : " (possible duplicates)");
        sender_schedule_retry(sl, false);
        goto out;
    }

    r = sink_firehose_parse_response_as(sender_dialect(s),
                                        res->status, res->body,
                                        res->body_len, n, sl->failed,
                                        sl->rejected, &fr);
    if (r < 0) {
        sl->attempt++;
        sender_schedule_retry(sl, false);
        goto out;
    }

    if (fr.class == SINK_FIREHOSE_OK) {
        sender_account(s, &sl->batch, NULL);
        sender_window(s, false);
        s->stats.stalled = false;
        s->stats.delivered += batch_n_events(&sl->batch);
        sl->attempt = 0;
        batch_reset(&sl->batch);
        sl->state = SLOT_IDLE;
        goto out;
    }

    if ((fr.n_failed < n || fr.n_rejected > 0) && fr.failed_put_count > 0 &&
        !fr.protocol_error) {
        /*
         * Part of the call went through, or records were refused one by
         * one: keep only the failed records.
         */
        sender_account(s, &sl->batch, sl->failed);
        sender_window(s, fr.n_rejected < fr.n_failed &&
                         sender_is_throttle(0, fr.error_code));
        s->stats.stalled = false;
        events_before = batch_n_events(&sl->batch);
        for (size_t i = 0, j = 0; i < n; i++)
            if (sl->failed[i])
                sl->kept_from[j++] = (uint16_t)i;
        kept = batch_retain_failed(&sl->batch, sl->failed);
        s->stats.delivered += events_before - batch_n_events(&sl->batch);
        s->stats.failed_records += kept;
        sl->attempt++;
        stuck = fr.n_rejected > 0 && sender_replace_rejects(s, sl, res);
        if (fr.n_rejected < fr.n_failed)
            sender_log_failure(s, fr.error_code,
                               "sender: stream '%s' refused %zu of %zu "
                               "records (%s: %s), retrying them",
                               s->opts.stream, kept, n, fr.error_code,
                               fr.error_message);
        sender_schedule_retry(sl, stuck);
        goto out;
    }

    s->stats.failed_calls++;
    sl->attempt++;
    if (fr.class == SINK_FIREHOSE_RETRY)
        sender_window(s, sender_is_throttle(res->status, fr.error_code));
    if (fr.class == SINK_FIREHOSE_FATAL)
        s->stats.stalled = true;
    if (fr.class == SINK_FIREHOSE_AUTH) {
        credentials_invalidate(s->opts.credentials);
        /* A signature refused for its age: learn the service's clock. */
        if (res->date > 0) {
            time_t skew = res->date - time(NULL);

            if (skew > 60 || skew < -60)
                s->skew = skew;
        }
    }
    sender_log_failure(s, fr.error_code,
                       "sender: stream '%s' at '%s' refused a call: HTTP %ld "
                       "%s: %s%s%s, %s %zu events",
                       s->opts.stream, sender_host(s),
                       res->status,
                       fr.error_code[0] ? fr.error_code : "(no error code)",
                       fr.error_message[0] ? fr.error_message
                                           : (fr.reason ? fr.reason : ""),
                       res->request_id[0] ? ", request id " : "",
                       res->request_id,
                       fr.class == SINK_FIREHOSE_FATAL
                               ? "needs attention, keeping"
                               : "retrying",
                       batch_n_events(&sl->batch));
    sender_schedule_retry(sl, fr.class == SINK_FIREHOSE_FATAL);

out:
    sender_update_ack(s);
    sender_fill(s);
}

static int
sender_submit(struct sender_slot *sl)
{
    struct sender *s = sl->owner;
    struct sigv4_credentials cred;
    struct curl_slist *h = NULL;
    const char *why = NULL;
    struct http_call call;
    int r;

    r = credentials_get(s->opts.credentials, &cred, &why);
    if (r < 0) {
        sender_log_failure(s, "credentials",
                           "sender: no AWS credentials for stream '%s': %s, "
                           "keeping %zu events", s->opts.stream,
                           why ? why : strerror(-r),
                           batch_n_events(&sl->batch));
        return r;
    }

    r = sender_build(s, sl, &cred, time(NULL) + s->skew);
    if (r < 0) {
        sender_log_failure(s, "build",
                           "sender: cannot build a call for stream '%s': %s",
                           s->opts.stream, strerror(-r));
        return r;
    }

    for (size_t i = 0; i < sl->req.n_headers; i++) {
        struct curl_slist *t = curl_slist_append(h, sl->req.headers[i]);

        if (!t)
            goto nomem;
        h = t;
    }
    /* curl would otherwise wait for "100 Continue" on large bodies. */
    {
        struct curl_slist *t = curl_slist_append(h, "Expect:");

        if (!t)
            goto nomem;
        h = t;
    }
    sl->headers = h;

    r = spool_mark_sent(s->opts.spool, batch_last_seq(&sl->batch));
    if (r < 0)
        log_debug("sender: cannot note the sent position: %s",
                  strerror(-r));

    call = (struct http_call){
        .url = sl->req.url,
        .headers = h,
        .body = sl->req.body,
        .body_len = sl->req.body_len,
        .connect_timeout_ms = s->opts.connect_timeout_ms
                ? s->opts.connect_timeout_ms : SENDER_CONNECT_TIMEOUT_MS,
        .timeout_ms = s->opts.timeout_ms,
        .low_speed_time_ms = s->opts.low_speed_time_ms,
        .ca_file = s->opts.ca_file,
        .proxy = s->opts.proxy,
        .done = sender_call_done,
        .userdata = sl,
    };
    r = http_post(s->opts.http, &call);
    if (r < 0) {
        curl_slist_free_all(h);
        sl->headers = NULL;
        return r;
    }
    s->stats.calls++;
    sl->state = SLOT_BUSY;
    return 0;

nomem:
    curl_slist_free_all(h);
    return -ENOMEM;
}

/* Tops up the slot's batch from the cursor.  Returns events added. */
static size_t
sender_load(struct sender *s, struct sender_slot *sl)
{
    size_t added = 0;
    const void *data;
    uint64_t seq;
    size_t len;
    int r;

    if (s->has_held) {
        r = batch_add(&sl->batch, s->held_seq, s->held, s->held_len);
        if (r == -ENOSPC)
            return 0;
        if (r == 0) {
            s->has_held = false;
            s->next_seq = s->held_seq + 1;
            added++;
        } else {
            log_err("sender: event %llu does not fit in a Firehose record "
                    "(%zu bytes), it stays in the spool",
                    (unsigned long long)s->held_seq, s->held_len);
            return 0;
        }
    }

    for (;;) {
        r = spool_cursor_next(s->cursor, &seq, &data, &len);
        if (r < 0) {
            sender_log_failure(s, "spool",
                               "sender: cannot read the spool: %s, "
                               "retrying later", strerror(-r));
            break;
        }
        if (r == 0)
            break;

        r = batch_add(&sl->batch, seq, data, len);
        if (r == 0) {
            s->next_seq = seq + 1;
            added++;
            continue;
        }

        /* The cursor's data is only valid until its next call: keep it. */
        memcpy(s->held, data, len < SPOOL_FRAME_MAX ? len : SPOOL_FRAME_MAX);
        s->held_len = len;
        s->held_seq = seq;
        s->has_held = true;
        if (r != -ENOSPC)
            log_err("sender: event %llu does not fit in a Firehose record "
                    "(%zu bytes), it stays in the spool",
                    (unsigned long long)seq, len);
        break;
    }

    if (added > 0 && s->resend_upto >= batch_first_seq(&sl->batch)) {
        uint64_t hi = batch_last_seq(&sl->batch);
        uint64_t lo = batch_first_seq(&sl->batch);

        if (hi > s->resend_upto)
            hi = s->resend_upto;
        s->stats.possible_duplicates += hi - lo + 1;
    }
    return added;
}

static unsigned
sender_busy(const struct sender *s)
{
    unsigned n = 0;

    for (unsigned i = 0; i < s->n_slots; i++)
        n += s->slots[i].state == SLOT_BUSY;
    return n;
}

/*
 * Whether the rate limit lets a call start now; if not, the rate timer
 * is armed to try again when it does.
 */
static bool
sender_rate_allows(struct sender *s)
{
    uint64_t now;

    if (!s->opts.max_records_per_second && !s->opts.max_bytes_per_second)
        return true;
    now = sender_now_usec(s);
    if (now >= s->next_send_usec)
        return true;
    if (sd_event_source_set_time(s->rate_timer, s->next_send_usec) < 0 ||
        sd_event_source_set_enabled(s->rate_timer, SD_EVENT_ONESHOT) < 0)
        return true;    /* without a timer nothing would wake us: go on */
    return false;
}

/* Moves the earliest start of the next call by this call's cost. */
static void
sender_rate_charge(struct sender *s, const struct batch *b)
{
    uint64_t now = sender_now_usec(s), cost = 0, c;

    if (s->opts.max_records_per_second)
        cost = (uint64_t)batch_n_records(b) * 1000000 /
               s->opts.max_records_per_second;
    if (s->opts.max_bytes_per_second) {
        c = (uint64_t)batch_data_len(b) * 1000000 /
            s->opts.max_bytes_per_second;
        if (c > cost)
            cost = c;
    }
    /* Unused time is not saved up beyond a burst of one second. */
    if (s->next_send_usec + 1000000 < now)
        s->next_send_usec = now - 1000000;
    s->next_send_usec += cost;
}

static int
sender_rate_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    sender_fill(userdata);
    return 0;
}

static void
sender_fill(struct sender *s)
{
    unsigned busy = sender_busy(s);

    for (unsigned i = 0; i < s->n_slots && busy < s->window; i++) {
        struct sender_slot *sl = &s->slots[i];

        if (sl->state != SLOT_IDLE)
            continue;
        if (!sender_rate_allows(s))
            return;
        /* A slot with failed records left sends those, topped up. */
        if (i < s->max_busy)
            (void)sender_load(s, sl);
        /* Not break: a later slot may hold failed records due now. */
        if (batch_is_empty(&sl->batch))
            continue;
        if (sender_submit(sl) < 0) {
            sl->attempt++;
            sender_schedule_retry(sl, true);
            continue;
        }
        busy++;
        sender_rate_charge(s, &sl->batch);
    }
}

void
sender_kick(struct sender *s)
{
    sender_fill(s);
}

uint64_t
sender_unread_seq(const struct sender *s)
{
    return s->has_held ? s->held_seq + 1 : s->next_seq;
}

bool
sender_idle(const struct sender *s)
{
    if (s->has_held)
        return false;
    for (unsigned i = 0; i < s->n_slots; i++)
        if (s->slots[i].state != SLOT_IDLE ||
            !batch_is_empty(&s->slots[i].batch))
            return false;
    return s->next_seq > spool_durable_seq(s->opts.spool);
}

void
sender_get_stats(const struct sender *s, struct sender_stats *ret)
{
    *ret = s->stats;
}

static int
sender_slot_init(struct sender *s, struct sender_slot *sl)
{
    int r;

    sl->owner = s;
    sink_firehose_request_init(&sl->req);
    r = batch_init(&sl->batch, &s->limits);
    if (r < 0)
        return r;
    r = sd_event_add_time(s->opts.event, &sl->timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 0, sender_retry_cb, sl);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(sl->timer, SD_EVENT_OFF);
    return 0;
}

static unsigned
sender_slots_for(unsigned max_in_flight)
{
    if (max_in_flight < 1)
        return 1;
    if (max_in_flight > SENDER_SLOTS_MAX)
        return SENDER_SLOTS_MAX;
    return max_in_flight;
}

/* The sink of the service o names; the other pointer stays NULL. */
static int
sender_make_sink(const struct sender_options *o, struct sink_firehose **ret,
                 struct sink_kinesis **ret_kinesis,
                 const char **reterr_reason)
{
    struct sink_firehose_options so = {
        .stream = o->stream,
        .region = o->region,
        .endpoint = o->endpoint,
    };
    struct sink_kinesis_options ko = {
        .stream = o->stream,
        .region = o->region,
        .endpoint = o->endpoint,
        .partition_key = o->partition_key,
        .agent = o->agent,
    };

    if (o->kinesis)
        return sink_kinesis_new(&ko, ret_kinesis, reterr_reason);
    return sink_firehose_new(&so, ret, reterr_reason);
}

int
sender_new(const struct sender_options *o, struct sender **ret,
           const char **reterr_reason)
{
    uint64_t sent;
    struct sender *s;
    int r;

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->opts = *o;
    s->n_slots = sender_slots_for(o->max_in_flight);
    s->window = s->n_slots;
    s->stats.window = s->window;
    s->limits.pack = o->pack;
    /* A call may not hold more records than a second's worth. */
    if (o->max_records_per_second &&
        o->max_records_per_second < BATCH_MAX_RECORDS)
        s->limits.max_records = o->max_records_per_second;

    r = sd_event_add_time(o->event, &s->rate_timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 0, sender_rate_cb, s);
    if (r < 0)
        goto fail;
    (void)sd_event_source_set_enabled(s->rate_timer, SD_EVENT_OFF);

    r = sender_make_sink(o, &s->sink, &s->kinesis, reterr_reason);
    if (r < 0)
        goto fail;

    s->held = malloc(SPOOL_FRAME_MAX);
    if (!s->held) {
        r = -ENOMEM;
        goto fail;
    }

    for (unsigned i = 0; i < s->n_slots; i++) {
        r = sender_slot_init(s, &s->slots[i]);
        if (r < 0)
            goto fail;
    }
    s->max_busy = s->n_slots;

    s->acked = spool_acked_seq(o->spool);
    s->next_seq = s->acked + 1;
    r = spool_cursor_new(o->spool, s->next_seq, &s->cursor);
    if (r < 0)
        goto fail;

    sent = spool_sent_seq_at_open(o->spool);
    if (sent > s->acked) {
        s->resend_upto = sent;
        log_notice("sender: events %llu to %llu were sent before the last "
                   "stop without an answer on record; sending them again "
                   "(%llu possible duplicates)",
                   (unsigned long long)s->acked + 1,
                   (unsigned long long)sent,
                   (unsigned long long)(sent - s->acked));
    }

    srandom((unsigned)time(NULL) ^ (unsigned)getpid());
    *ret = s;
    return 0;

fail:
    sender_free(s);
    return r;
}

/*
 * The slots, the cursor and the acknowledged position stay as they are, so
 * nothing is read twice or skipped.  A request built for the old sink is
 * self-contained (its URL, headers and body belong to the slot), so the
 * old sink can go at once.  Fewer slots: the surplus ones stop taking new
 * events but still finish and retry what they hold.
 */
int
sender_reconfigure(struct sender *s, const struct sender_options *o,
                   const char **reterr_reason)
{
    struct sink_firehose *sink = NULL;
    struct sink_kinesis *kinesis = NULL;
    unsigned want = sender_slots_for(o->max_in_flight);
    int r;

    /* The new config may name the other service. */
    r = sender_make_sink(o, &sink, &kinesis, reterr_reason);
    if (r < 0)
        return r;

    s->opts.event = o->event;
    for (unsigned i = s->n_slots; i < want; i++) {
        r = sender_slot_init(s, &s->slots[i]);
        if (r < 0) {
            /* The half-made slot is cleaned up by sender_free(). */
            s->n_slots = i + 1;
            sink_firehose_free(sink);
            sink_kinesis_free(kinesis);
            return r;
        }
        s->n_slots = i + 1;
    }

    sink_firehose_free(s->sink);
    sink_kinesis_free(s->kinesis);
    s->sink = sink;
    s->kinesis = kinesis;
    s->opts = *o;
    s->max_busy = want;
    /* A new endpoint deserves a fresh log line for the same failure. */
    s->last_logged[0] = '\0';
    sender_fill(s);
    return 0;
}

struct sender *
sender_free(struct sender *s)
{
    if (!s)
        return NULL;
    for (unsigned i = 0; i < s->n_slots; i++) {
        struct sender_slot *sl = &s->slots[i];

        sd_event_source_disable_unref(sl->timer);
        curl_slist_free_all(sl->headers);
        sink_firehose_request_done(&sl->req);
        batch_done(&sl->batch);
    }
    sd_event_source_disable_unref(s->rate_timer);
    spool_cursor_free(s->cursor);
    sink_firehose_free(s->sink);
    sink_kinesis_free(s->kinesis);
    free(s->held);
    free(s);
    return NULL;
}
