/* SPDX-License-Identifier: MIT */
/*
 * aaasd: wires the inputs, the spool and the sender onto one sd-event
 * loop, and owns start-up, readiness, signals and shutdown.  The modules
 * do the work; this file decides the order and what an event is worth
 * (accepted once durable, never before).
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-event.h>

#include "batch.h"
#include "config.h"
#include "credentials.h"
#include "event.h"
#include "gaps.h"
#include "http.h"
#include "jbuf.h"
#include "log.h"
#include "parse_auditd.h"
#include "parse_json.h"
#include "parse_raw.h"
#include "reject_file.h"
#include "sealer.h"
#include "sender.h"
#include "sigv4.h"
#include "socket_input.h"
#include "spool.h"
#include "status.h"
#include "tail.h"
#include "validate.h"

#define AAASD_DEFAULT_CONFIG "/etc/aaas.conf"
#define AAASD_STATUS_USEC (5ull * 1000000ull)
/* How long SIGTERM waits for the sink to take what is spooled. */
#define AAASD_FLUSH_USEC (5ull * 1000000ull)
/* A reject keeps at most this much of the raw input (see pipeline_store). */
#define AAASD_REJECT_RAW_MAX (512u * 1024u)
#define AAASD_PARSE_DEPTH 64
#define AAASD_RETRY_USEC (200ull * 1000ull)
#define AAASD_CKPT_USEC (250ull * 1000ull)

/* What applies to the events of one input, or of the socket. */
struct pipeline_scope {
    struct validate *validate;      /* from the config; NULL: no rules */
    struct reject_file *rejects;    /* NULL: rejects are delivered */
};

static const char *arg_config = AAASD_DEFAULT_CONFIG;
static int arg_check_config;

struct aaasd {
    struct config *cfg;
    sd_event *event;
    struct spool *spool;
    struct parse_json *parser;
    struct parse_auditd *auditd;    /* every auditd input's open events */
    struct jbuf raw;                /* the object of a raw input's line */
    sd_event_source *auditd_timer;  /* the next open event's timeout */
    struct event_builder builder;
    struct tail *tail;
    struct socket_input *socket;
    struct http *http;
    struct credentials *credentials;
    struct sender *sender;
    struct status *control;         /* aaasctl's socket, NULL when off */

    /* Per input, and the socket last: counts for status and metrics. */
    struct status_input *input_stats;
    size_t n_input_stats;
    time_t start_time;
    uint64_t reloads;
    uint64_t reload_failures;
    char last_error[512];           /* the sender's, for status_report */
    struct sealer *sealer;
    sd_event_source *seal_timer;    /* seals a range that grew old */

    struct pipeline_scope socket_scope;
    struct pipeline_scope *input_scopes;    /* one per config input */
    struct reject_file **reject_files;      /* each path once; owned */
    size_t n_reject_files;
    int reject_error;               /* last reject file failure, 0: fine */

    sd_event_source *commit;        /* requests a sync after appends */
    sd_event_source *sync_io;       /* the spool's sync completions */
    sd_event_source *status_timer;
    sd_event_source *flush_timer;   /* shutdown deadline */
    sd_event_source *stop_check;    /* shutdown: exits once all is sent */

    sd_event_source *retry_timer;   /* re-tries a failed spool write */
    sd_event_source *ckpt_timer;    /* writes a checkpoint left waiting */
    bool full;                      /* spool at max_size: inputs paused */
    bool held;                      /* an input holds a line until the
                                     * spool's write buffer drains */
    bool stopping;
    int sync_error;                 /* last sync failure, 0 when fine */
    char *marker_buf;               /* SPOOL_MARKER_MAX bytes, for tail */
    uint64_t retained;              /* last value given to spool_retain */
    uint64_t accepted;              /* events durable in the spool */
    uint64_t rejected;
    uint64_t rejects_kept;          /* of those, kept in a reject file */
    uint64_t appended;              /* events appended, durable or not */
    char why[160];                  /* copy of the last reject reason */
    const char *reason;             /* last stored line's reject reason,
                                     * NULL when it was accepted */
    uint64_t dropped;               /* numbers given up (on_full) */
    uint64_t n_gaps;                /* gap lines that declare them */
    struct gaps gaps;               /* declared, not yet delivered */
    char gap_buf[GAPS_OBJECT_MAX + 1];
    uint64_t gap_first, gap_last;   /* the drop being declared */
};

static void aaasd_status(struct aaasd *d);
static void pipeline_retry_later(struct aaasd *d);
static void pipeline_acked(void *userdata, uint64_t acked_seq);

static void
pipeline_pause(struct aaasd *d)
{
    if (d->tail)
        tail_pause(d->tail);
    if (d->socket)
        socket_input_pause(d->socket);
}

static void
pipeline_resume(struct aaasd *d)
{
    if (d->stopping)
        return;
    if (d->tail)
        tail_resume(d->tail);
    if (d->socket)
        socket_input_resume(d->socket);
}

/*
 * Puts the file inputs' read positions into the spool behind the lines
 * they cover, so that both reach the disk in one sync: after a crash each
 * file is read again from the first line that was not spooled.  Called
 * before anything flushes the spool's buffer to its files.
 */
static void
pipeline_mark(struct aaasd *d)
{
    size_t len = 0;
    int r;

    if (!d->tail || !d->marker_buf)
        return;
    for (;;) {
        r = tail_marker(d->tail, d->marker_buf, SPOOL_MARKER_MAX, &len);
        if (r < 0 || len == 0)
            break;
        r = spool_append_marker(d->spool, d->marker_buf, len);
        if (r < 0) {
            tail_marker_retry(d->tail);
            break;
        }
    }
    if (r < 0)
        log_debug("tail: cannot spool the read positions: %s, trying at "
                  "the next commit", strerror(-r));
}

/* Lets the spool drop markers that a saved offsets file now covers. */
static void pipeline_retry_later(struct aaasd *d);
static bool pipeline_flush_rejects(struct aaasd *d);
static void pipeline_retain(struct aaasd *d);
static void pipeline_full_check(struct aaasd *d);

static void
pipeline_arm_checkpoint(struct aaasd *d)
{
    int enabled = SD_EVENT_OFF;

    if (!d->ckpt_timer)
        return;
    (void)sd_event_source_get_enabled(d->ckpt_timer, &enabled);
    if (enabled != SD_EVENT_OFF)
        return;
    (void)sd_event_source_set_time_relative(d->ckpt_timer, AAASD_CKPT_USEC);
    (void)sd_event_source_set_enabled(d->ckpt_timer, SD_EVENT_ON);
}

/* Segments go once a checkpoint covers them: room may have come back. */
static void
pipeline_check_room(struct aaasd *d)
{
    uint64_t max = d->cfg->spool_max_size;
    uint64_t margin = max / 8 > 65536 ? max / 8 : 65536;
    bool block = d->cfg->spool_on_full == CONFIG_ON_FULL_BLOCK;

    /*
     * Blocking resumes only once a good part of the spool is free: room
     * for one frame would let the inputs read a frame's worth at a time
     * into their own buffers while the sink is down.
     */
    if (block && max > margin && spool_size(d->spool) + margin > max)
        return;
    if (d->full && !spool_is_full(d->spool)) {
        d->full = false;
        d->held = false;
        /* With drop_oldest this happens at every drop: not news. */
        if (d->cfg->spool_on_full == CONFIG_ON_FULL_BLOCK)
            log_notice("spool: '%s' has room again, resuming inputs",
                       d->cfg->spool_dir);
        pipeline_resume(d);
    }
}

static int
pipeline_synced(sd_event_source *es, int fd, uint32_t revents,
                void *userdata)
{
    struct aaasd *d = userdata;
    uint64_t durable;
    int r;

    r = spool_sync_collect(d->spool);
    if (r < 0) {
        if (r != d->sync_error)
            log_err("spool: cannot sync '%s': %s, events stay unacknowledged "
                    "and the sync is retried", d->cfg->spool_dir,
                    strerror(-r));
        if (r != d->sync_error) {
            d->sync_error = r;
            aaasd_status(d);
        }
        pipeline_retry_later(d);
        return 0;
    }
    if (d->sync_error) {
        log_notice("spool: '%s' is writable again", d->cfg->spool_dir);
        d->sync_error = 0;
        aaasd_status(d);
    }

    durable = spool_durable_seq(d->spool);
    d->accepted = durable;
    /* Room may be back; with drop_oldest a drop's files go once its gap
     * line is durable. */
    pipeline_full_check(d);
    if (d->held && !d->full) {
        d->held = false;
        pipeline_resume(d);
    }
    /*
     * A line kept in a reject file counts as held by the event spooled
     * before it, so offsets may only move once the reject file is synced.
     */
    if (d->tail && pipeline_flush_rejects(d))
        tail_durable(d->tail, durable);
    if (d->socket)
        socket_input_durable(d->socket, durable);
    pipeline_retain(d);
    if (d->sealer) {
        r = sealer_durable(d->sealer, durable);
        if (r < 0)
            log_err("chain: cannot replace the key file '%s' at the end of "
                    "epoch %llu: %s, keeping the old key and retrying",
                    d->cfg->signing_key,
                    (unsigned long long)sealer_epoch(d->sealer),
                    strerror(-r));
        else if (r > 0)
            log_notice("chain: signing epoch %llu began, the previous key "
                       "is erased", (unsigned long long)
                       sealer_epoch(d->sealer));
    }
    sender_kick(d->sender);
    return 0;
}

static void
pipeline_retain(struct aaasd *d)
{
    uint64_t seq = d->tail ? tail_saved_seq(d->tail) : UINT64_MAX;
    int r;

    if (seq == d->retained)
        return;
    d->retained = seq;
    r = spool_retain(d->spool, seq);
    if (r < 0)
        log_warning("spool: cannot delete acknowledged segments in '%s': "
                    "%s, trying again later", d->cfg->spool_dir,
                    strerror(-r));
    /* Releasing the retained segments may have made room. */
    pipeline_check_room(d);
}

/* Builds the `_aaas_gap` line for the spool's drop (spool_note_fn). */
static int
pipeline_gap_line(void *userdata, uint64_t first, uint64_t last,
                  uint64_t seq, const void **ret_data, size_t *ret_len)
{
    static const struct event_source src = { .kind = EVENT_SOURCE_DAEMON };
    struct aaasd *d = userdata;
    struct parse_json_result pr = { 0 };
    uint64_t from, count;
    struct timespec now;
    size_t n;
    int r;

    /* A drop that takes earlier gap lines declares their ranges too. */
    gaps_plan(&d->gaps, first, last, &from, &count);
    n = gaps_format(d->gap_buf, from, last, count);
    d->gap_first = first;
    d->gap_last = last;
    pr.close = n - 1;
    (void)clock_gettime(CLOCK_REALTIME, &now);
    r = event_build(&d->builder, d->gap_buf, n, &pr, seq, &src, &now);
    if (r < 0)
        return r;
    *ret_data = d->builder.buf;
    *ret_len = d->builder.len;
    return 0;
}

/*
 * on_full = drop_oldest: gives up the oldest segments the sender has not
 * read, declared by a gap line in the stream that the next seal covers.
 * The room appears once that line is durable (pipeline_synced).  Returns
 * whether a drop is under way.
 */
static bool
pipeline_drop(struct aaasd *d, uint64_t need)
{
    uint64_t seq;
    int r;

    if (d->cfg->spool_on_full != CONFIG_ON_FULL_DROP_OLDEST || !d->sender)
        return false;
    r = spool_drop_oldest(d->spool, sender_unread_seq(d->sender), need,
                          pipeline_gap_line, d, &seq);
    if (r == -EBUSY)
        return true;
    if (r == -EAGAIN) {
        /* The write buffer is full: write it out, the timer tries again. */
        pipeline_mark(d);
        (void)spool_sync_request(d->spool);
    }
    if (r <= 0) {
        if (r < 0 && r != -EAGAIN)
            log_err("spool: '%s' is full and cannot drop old events: %s, "
                    "holding inputs back and retrying", d->cfg->spool_dir,
                    strerror(-r));
        else
            log_debug("spool: '%s' is full and every old event is in a "
                      "call or not yet durable, holding inputs back",
                      d->cfg->spool_dir);
        pipeline_retry_later(d);
        return false;
    }
    if (d->sealer)
        sealer_committed(d->sealer, seq);
    r = gaps_commit(&d->gaps, d->gap_first, d->gap_last, seq);
    if (r < 0)
        log_err("spool: cannot keep the range of gap line %llu: %s, a "
                "later drop of that line may leave it undeclared",
                (unsigned long long)seq, strerror(-r));
    d->n_gaps++;
    d->dropped += d->gap_last - d->gap_first + 1;
    log_warning("spool: '%s' is full, dropped the unsent events %llu to "
                "%llu (%llu numbers) and declared them in gap line %llu; "
                "%llu dropped since start", d->cfg->spool_dir,
                (unsigned long long)d->gap_first,
                (unsigned long long)d->gap_last,
                (unsigned long long)(d->gap_last - d->gap_first + 1),
                (unsigned long long)seq, (unsigned long long)d->dropped);
    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
    return true;
}

/*
 * While inputs are held for a full spool: resume them when there is room
 * again; with drop_oldest, make room when the last drop found nothing to
 * give up or freed less than the refused line needed.
 */
static void
pipeline_full_check(struct aaasd *d)
{
    if (!d->full)
        return;
    if (!spool_is_full(d->spool))
        pipeline_acked(d, spool_acked_seq(d->spool));
    else
        (void)pipeline_drop(d, 0);
}

static int
pipeline_append_line(struct aaasd *d, const char *buf, size_t len,
                     uint64_t *ret_seq)
{
    int r;

    r = spool_append(d->spool, buf, len, ret_seq);
    if (r == -EAGAIN) {
        /* The write buffer is full: write it out, then try once more. */
        pipeline_mark(d);
        r = spool_sync_request(d->spool);
        if (r < 0) {
            /*
             * The disk failed (ENOSPC here is a full file system, not
             * max_size): hold the line; the commit reports the error and
             * retries until the disk takes the buffer again.
             */
            (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
            return -EAGAIN;
        }
        r = spool_append(d->spool, buf, len, ret_seq);
    }
    if (r == -ENOSPC && !d->full) {
        d->full = true;
        pipeline_arm_checkpoint(d);
        if (d->cfg->spool_on_full == CONFIG_ON_FULL_BLOCK)
            log_notice("spool: '%s' reached its size limit, pausing inputs "
                       "until the sink catches up", d->cfg->spool_dir);
        else
            (void)pipeline_drop(d, (uint64_t)len + 16);
    }
    return r;
}

static int
pipeline_append(struct aaasd *d, uint64_t *ret_seq)
{
    return pipeline_append_line(d, d->builder.buf, d->builder.len, ret_seq);
}

/*
 * Appends a seal for the range since the last one.  A seal the spool
 * refuses now is built again, over a longer range, at the next try.
 */
static void
pipeline_seal(struct aaasd *d, bool now_anyway)
{
    struct timespec now;
    const char *line;
    uint64_t seq, due;
    size_t len;
    int r;

    if (!d->sealer || !sealer_signing(d->sealer))
        return;
    due = sealer_due_in(d->sealer);
    if (due == 0 || (now_anyway && due != UINT64_MAX)) {
        (void)clock_gettime(CLOCK_REALTIME, &now);
        r = sealer_build(d->sealer, spool_next_seq(d->spool), &now, &line,
                         &len);
        if (r >= 0)
            r = pipeline_append_line(d, line, len, &seq);
        if (r >= 0) {
            sealer_sealed(d->sealer, seq);
            (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
        } else if (r != -EAGAIN && r != -ENOSPC) {
            log_err("chain: cannot seal events up to %llu: %s, retrying "
                    "with the next event", (unsigned long long)
                    (spool_next_seq(d->spool) - 1), strerror(-r));
        }
        due = sealer_due_in(d->sealer);
    }
    if (due != UINT64_MAX && d->seal_timer &&
        sd_event_source_set_time_relative(d->seal_timer,
                                          due ? due : 1000) >= 0)
        (void)sd_event_source_set_enabled(d->seal_timer, SD_EVENT_ONESHOT);
}

static int
pipeline_seal_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    pipeline_seal(userdata, false);
    return 0;
}

/*
 * Makes the held reject lines durable.  Runs before file offsets may
 * move (see pipeline_synced), so a line taken from a file is on disk in
 * the spool or in a reject file.  Returns false while lines stay held.
 */
static bool
pipeline_flush_rejects(struct aaasd *d)
{
    bool clean = true;
    int r;

    for (size_t i = 0; i < d->n_reject_files; i++) {
        struct reject_file *f = d->reject_files[i];

        r = reject_file_flush(f);
        if (r < 0) {
            if (r != d->reject_error)
                log_err("pipeline: cannot append to reject file '%s': %s, "
                        "holding its lines and file offsets, retrying",
                        reject_file_path(f), strerror(-r));
            d->reject_error = r;
            clean = false;
        }
    }
    if (clean && d->reject_error) {
        log_notice("pipeline: reject files are writable again");
        d->reject_error = 0;
    }
    return clean;
}

/*
 * Keeps the reject just built in its scope's file.  Returns false when
 * that cannot be done now (the file is failing and its buffer full): the
 * caller delivers the reject instead, since a reject is never dropped.
 */
static bool
pipeline_keep_reject(struct aaasd *d, struct reject_file *f)
{
    int r;

    r = reject_file_append(f, d->builder.buf, d->builder.len);
    if (r == -ENOBUFS && pipeline_flush_rejects(d))
        r = reject_file_append(f, d->builder.buf, d->builder.len);
    if (r < 0) {
        log_warning("pipeline: cannot keep a reject in '%s': %s, "
                    "delivering it instead", reject_file_path(f),
                    strerror(-r));
        return false;
    }
    d->rejected++;
    d->rejects_kept++;
    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
    return true;
}

/* For the socket's reply: our caller's reason may be on a stack. */
static void
pipeline_note_reason(struct aaasd *d, const char *reason)
{
    if (reason)
        (void)snprintf(d->why, sizeof(d->why), "%s", reason);
    d->reason = reason ? d->why : NULL;
}

/*
 * Stores one checked object (obj, with pr from parse_json_check() or a
 * parser that built it) or, with a reason, a reject record of raw: in
 * the spool, or in the scope's reject file when it has one.  Returns
 * -EAGAIN to make the input hold the line.
 */
static int
pipeline_store(struct aaasd *d, const struct pipeline_scope *sc,
               const char *obj, size_t len,
               const struct parse_json_result *pr, const char *raw,
               size_t raw_len, const char *reason,
               const struct event_source *src, uint64_t *ret_seq)
{
    char why[128];
    struct timespec now;
    uint64_t seq;
    int r;

    (void)clock_gettime(CLOCK_REALTIME, &now);
    seq = spool_next_seq(d->spool);

    if (!reason) {
        r = event_build(&d->builder, obj, len, pr, seq, src, &now);
        if (r < 0)
            return r;
        if (d->builder.len > BATCH_MAX_RECORD_BYTES) {
            (void)snprintf(why, sizeof(why),
                           "event of %zu bytes is over the Firehose "
                           "record limit of %u bytes", d->builder.len,
                           BATCH_MAX_RECORD_BYTES);
            reason = why;
        }
    }

    if (reason) {
        /*
         * The reject must fit in one record too, so very long input keeps
         * only its head; the reason says how long it was.
         */
        size_t keep = raw_len > AAASD_REJECT_RAW_MAX ? AAASD_REJECT_RAW_MAX
                                                     : raw_len;

        if (sc && sc->rejects) {
            r = event_build_reject(&d->builder, raw, keep, reason,
                                   EVENT_SEQ_NONE, src, &now);
            if (r < 0)
                return r;
            /*
             * Nothing spooled: the line counts as held by the last event
             * spooled before it, and pipeline_synced() flushes the reject
             * file before file offsets move past that event.
             */
            if (pipeline_keep_reject(d, sc->rejects)) {
                log_debug("pipeline: reject kept in '%s': %s",
                          reject_file_path(sc->rejects), reason);
                *ret_seq = seq - 1;
                pipeline_note_reason(d, reason);
                return 0;
            }
        }
        r = event_build_reject(&d->builder, raw, keep, reason, seq, src,
                               &now);
        if (r < 0)
            return r;
    }

    r = pipeline_append(d, ret_seq);
    if (r < 0) {
        /* Whatever the cause, the input holds the line until we resume. */
        d->held = true;
        return r == -ENOSPC ? -EAGAIN : r;
    }
    if (d->sealer)
        sealer_committed(d->sealer, *ret_seq);
    if (reason) {
        d->rejected++;
        log_debug("pipeline: event %llu rejected: %s",
                  (unsigned long long)*ret_seq, reason);
    }
    pipeline_note_reason(d, reason);
    d->appended++;
    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
    if (d->seal_timer &&
        sd_event_source_get_enabled(d->seal_timer, NULL) == SD_EVENT_OFF)
        pipeline_seal(d, false);
    else if (d->sealer && sealer_due_in(d->sealer) == 0)
        pipeline_seal(d, false);
    return 0;
}

/*
 * Turns one input line into a spool frame: the event in its delivered form
 * or a reject record.  Returns -EAGAIN to make the input hold the line.
 */
static int
pipeline_take(struct aaasd *d, const struct pipeline_scope *sc,
              const char *data, size_t len, bool truncated, size_t max,
              const struct event_source *src, uint64_t *ret_seq)
{
    struct parse_json_result pr = { 0 };
    const char *reason = NULL;
    char why[128];

    if (d->full || d->stopping)
        return -EAGAIN;

    if (truncated) {
        (void)snprintf(why, sizeof(why), "line longer than %zu bytes", max);
        reason = why;
    } else {
        /*
         * Out of memory is a reason too: the line is kept, not lost.  The
         * rules are checked in the JSON check's own pass.
         */
        (void)validate_check(sc->validate, d->parser, data, len, &pr,
                             &reason);
    }
    return pipeline_store(d, sc, data, len, &pr, data, len, reason, src,
                          ret_seq);
}

/*
 * The rules on an object a parser built (auditd, raw): that object is
 * good JSON, so only a rule can refuse it.  NULL when it passes.
 */
static const char *
pipeline_check_built(struct aaasd *d, const struct pipeline_scope *sc,
                     const char *obj, size_t len)
{
    struct parse_json_result pr;
    const char *reason = NULL;
    int r;

    if (!sc->validate)
        return NULL;
    r = validate_check(sc->validate, d->parser, obj, len, &pr, &reason);
    return r < 0 ? reason : NULL;
}

static int
pipeline_raw_line(struct aaasd *d, const struct tail_line *l,
                  const struct event_source *src, uint64_t *ret_seq)
{
    const struct pipeline_scope *sc = &d->input_scopes[l->input_index];
    struct parse_json_result pr = { 0 };
    const char *reason = NULL;
    int r;

    if (d->full || d->stopping)
        return -EAGAIN;
    if (l->truncated)
        return pipeline_take(d, sc, l->data, l->len, true,
                             d->cfg->inputs[l->input_index].max_line, src,
                             ret_seq);
    r = parse_raw_build(&d->raw, l->data, l->len, &reason);
    if (r == -ENOMEM)
        return r;
    if (r >= 0)
        reason = pipeline_check_built(d, sc, d->raw.buf, d->raw.len);
    pr.close = d->raw.len - 1;
    return pipeline_store(d, sc, d->raw.buf, d->raw.len, &pr, l->data,
                          l->len, reason, src, ret_seq);
}

static uint64_t
pipeline_now_usec(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/*
 * Stores one grouped audit event and forgets it; its file's lines are then
 * safe up to the next event still open there.
 */
static int
pipeline_auditd_emit(struct aaasd *d, struct parse_auditd_event *ev)
{
    struct parse_json_result pr = { 0 };
    struct event_source src = { .kind = EVENT_SOURCE_FILE };
    const char *json;
    uint64_t id, seq;
    size_t len;
    int r;

    const struct pipeline_scope *sc = NULL;
    const char *reason = NULL;

    r = parse_auditd_render(d->auditd, ev, &json, &len);
    if (r < 0)
        return r;
    parse_auditd_event_source(ev, &id, &src.input, &src.path);
    for (size_t i = 0; i < d->cfg->n_inputs && !sc; i++)
        if (strcmp(d->cfg->inputs[i].name, src.input) == 0)
            sc = &d->input_scopes[i];
    if (sc)
        reason = pipeline_check_built(d, sc, json, len);
    pr.close = len - 1;
    r = pipeline_store(d, sc, json, len, &pr, json, len, reason, &src,
                       &seq);
    if (r < 0)
        return r;
    parse_auditd_drop(d->auditd, ev);
    if (d->tail)
        tail_hold(d->tail, id, parse_auditd_hold(d->auditd, id), seq);
    return 0;
}

static void
pipeline_auditd_arm(struct aaasd *d, uint64_t usec)
{
    int enabled = SD_EVENT_OFF;
    int r;

    if (usec == UINT64_MAX)
        return;
    (void)sd_event_source_get_enabled(d->auditd_timer, &enabled);
    if (enabled != SD_EVENT_OFF)
        return;
    r = sd_event_source_set_time(d->auditd_timer, usec);
    if (r >= 0)
        r = sd_event_source_set_enabled(d->auditd_timer, SD_EVENT_ONESHOT);
    if (r < 0)
        log_err("pipeline: cannot arm the auditd event timer: %s, open "
                "events wait for more records", strerror(-r));
}

static int
pipeline_auditd_timeout(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct aaasd *d = userdata;
    struct parse_auditd_event *ev;
    uint64_t now = pipeline_now_usec();
    int r;

    while ((ev = parse_auditd_expired(d->auditd, now))) {
        r = pipeline_auditd_emit(d, ev);
        if (r < 0) {
            /* The spool is full or failing: the event stays open. */
            pipeline_auditd_arm(d, now + AAASD_RETRY_USEC);
            return 0;
        }
    }
    pipeline_auditd_arm(d, parse_auditd_deadline(d->auditd));
    return 0;
}

/* Shutdown: what is open is stored as it is, so no record waits. */
static void
pipeline_auditd_flush(struct aaasd *d)
{
    struct parse_auditd_event *ev;
    int r;

    while (d->auditd && (ev = parse_auditd_oldest(d->auditd))) {
        r = pipeline_auditd_emit(d, ev);
        if (r < 0) {
            log_warning("pipeline: cannot store %zu open audit events: %s; "
                        "their lines are read again at the next start",
                        parse_auditd_open(d->auditd), strerror(-r));
            return;
        }
    }
}

static int
pipeline_auditd_line(struct aaasd *d, const struct tail_line *l,
                     const struct event_source *src, uint64_t *ret_seq)
{
    const struct config_input *in = &d->cfg->inputs[l->input_index];
    struct parse_auditd_source ps = {
        .id = l->file_id,
        .offset = l->offset,
        .input = l->input,
        .path = l->path,
        .timeout_usec = (uint64_t)in->group_timeout_ms * 1000u,
    };
    struct parse_auditd_event *ev = NULL;
    const char *reason = NULL;
    int r;

    const struct pipeline_scope *sc = &d->input_scopes[l->input_index];

    if (d->full || d->stopping)
        return -EAGAIN;
    if (l->truncated)
        return pipeline_take(d, sc, l->data, l->len, true, in->max_line,
                             src, ret_seq);

    for (;;) {
        r = parse_auditd_add(d->auditd, &ps, l->data, l->len,
                             pipeline_now_usec(), &ev, &reason);
        if (r != -ENOBUFS)
            break;
        r = pipeline_auditd_emit(d, ev);
        if (r < 0)
            return r;
    }
    if (r == -EBADMSG)
        return pipeline_store(d, sc, NULL, 0, NULL, l->data, l->len, reason,
                              src, ret_seq);
    if (r < 0)
        return r;
    if (r == PARSE_AUDITD_COMPLETE) {
        r = pipeline_auditd_emit(d, ev);
        if (r < 0) {
            parse_auditd_undo(d->auditd);
            return r;
        }
    }
    *ret_seq = spool_next_seq(d->spool) - 1;
    tail_hold(d->tail, l->file_id, parse_auditd_hold(d->auditd, l->file_id),
              *ret_seq);
    pipeline_auditd_arm(d, parse_auditd_deadline(d->auditd));
    return 0;
}

/* idx: the input's place in the config, n_inputs for the socket. */
static void
pipeline_count(struct aaasd *d, size_t idx, uint64_t rejected_before)
{
    if (idx >= d->n_input_stats)
        return;
    d->input_stats[idx].events++;
    if (d->rejected != rejected_before)
        d->input_stats[idx].rejected++;
}

static int
pipeline_file_line(void *userdata, const struct tail_line *l,
                   uint64_t *ret_seq)
{
    struct aaasd *d = userdata;
    const struct config_input *in = &d->cfg->inputs[l->input_index];
    const struct event_source src = {
        .kind = EVENT_SOURCE_FILE,
        .input = l->input,
        .path = l->path,
    };
    uint64_t rejected = d->rejected;
    int r;

    switch (in->format) {
    case CONFIG_FORMAT_AUDITD:
        r = pipeline_auditd_line(d, l, &src, ret_seq);
        break;
    case CONFIG_FORMAT_RAW:
        r = pipeline_raw_line(d, l, &src, ret_seq);
        break;
    default:
        r = pipeline_take(d, &d->input_scopes[l->input_index], l->data,
                          l->len, l->truncated, in->max_line, &src, ret_seq);
        break;
    }
    if (r >= 0)
        pipeline_count(d, l->input_index, rejected);
    return r;
}

static int
pipeline_socket_line(void *userdata, const struct socket_line *l,
                     uint64_t *ret_seq, const char **reterr_reason)
{
    struct aaasd *d = userdata;
    const struct event_source src = {
        .kind = EVENT_SOURCE_SOCKET,
        .has_peer = true,
        .pid = l->pid,
        .uid = l->uid,
        .gid = l->gid,
        .comm = l->comm,
        .exe = l->exe,
        .unit = l->unit,
        .user_unit = l->user_unit,
    };

    uint64_t rejected = d->rejected;
    int r;

    r = pipeline_take(d, &d->socket_scope, l->data, l->len, l->truncated,
                      d->cfg->max_event_size, &src, ret_seq);
    if (r >= 0) {
        pipeline_count(d, d->cfg->n_inputs, rejected);
        *reterr_reason = d->reason;
    }
    return r;
}

static int
pipeline_retry_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct aaasd *d = userdata;

    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_ONESHOT);
    return 0;
}

/*
 * After a failed write or sync the spool keeps the bytes; try again after
 * a pause rather than spinning on a disk that is full or failing.
 */
static void
pipeline_retry_later(struct aaasd *d)
{
    int r;

    r = sd_event_source_set_time_relative(d->retry_timer,
                                          AAASD_RETRY_USEC);
    if (r >= 0)
        r = sd_event_source_set_enabled(d->retry_timer, SD_EVENT_ONESHOT);
    if (r < 0)
        log_err("spool: cannot arm the retry timer: %s", strerror(-r));
}

/* Runs once the loop has no input left to dispatch: one sync per burst. */
static int
pipeline_commit(sd_event_source *es, void *userdata)
{
    struct aaasd *d = userdata;
    int r;

    if (!pipeline_flush_rejects(d))
        pipeline_retry_later(d);
    pipeline_full_check(d);
    pipeline_mark(d);
    r = spool_sync_request(d->spool);
    if (r < 0 && r != d->sync_error) {
        log_err("spool: cannot write to '%s': %s, holding events in memory "
                "and retrying", d->cfg->spool_dir, strerror(-r));
        d->sync_error = r;
        aaasd_status(d);
    }
    if (r < 0)
        pipeline_retry_later(d);
    return 0;
}

static int
pipeline_checkpoint_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct aaasd *d = userdata;

    /*
     * While the spool is full, keep looking: room comes back when a
     * checkpoint or the tail's saved offsets release segments, and no
     * input event will arrive to notice it.
     */
    pipeline_retain(d);
    if (spool_checkpoint(d->spool) > 0 || d->full)
        (void)sd_event_source_set_time_relative(es, AAASD_CKPT_USEC);
    else
        (void)sd_event_source_set_enabled(es, SD_EVENT_OFF);
    return 0;
}

static void
pipeline_acked(void *userdata, uint64_t acked_seq)
{
    struct aaasd *d = userdata;

    gaps_delivered(&d->gaps, acked_seq);
    /*
     * The spool writes checkpoints at most every 200 ms; when the last
     * answer falls inside that window nothing else would write it, and
     * acknowledged segments would fill the spool.
     */
    if (spool_checkpoint(d->spool) > 0)
        pipeline_arm_checkpoint(d);
    pipeline_check_room(d);
}

static void
aaasd_status(struct aaasd *d)
{
    struct sender_stats st;
    char dropped[64];
    uint64_t backlog;

    sender_get_stats(d->sender, &st);
    backlog = spool_durable_seq(d->spool) - spool_acked_seq(d->spool);
    (void)snprintf(dropped, sizeof(dropped), "%llu in %llu gaps",
                   (unsigned long long)d->dropped,
                   (unsigned long long)d->n_gaps);
    (void)sd_notifyf(0, "STATUS=%saccepted %llu, delivered %llu, rejected "
                     "%llu (%llu kept locally), refused by the service "
                     "%llu, backlog %llu, billed %llu bytes (%llu unpacked)"
                     "%s%s%s%s%s%s",
                     st.stalled ? "STALLED, needs attention: " : "",
                     (unsigned long long)d->accepted,
                     (unsigned long long)st.delivered,
                     (unsigned long long)d->rejected,
                     (unsigned long long)d->rejects_kept,
                     (unsigned long long)st.rejected_events,
                     (unsigned long long)backlog,
                     (unsigned long long)st.billed_bytes,
                     (unsigned long long)st.billed_bytes_unpacked,
                     d->dropped ? ", dropped for a full spool: " : "",
                     d->dropped ? dropped : "",
                     d->sync_error ? ", spool error: " : "",
                     d->sync_error ? strerror(-d->sync_error) : "",
                     st.last_error[0] ? ", last error: " : "",
                     st.last_error);
}

static int
aaasd_status_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct aaasd *d = userdata;

    aaasd_status(d);
    pipeline_retain(d);
    (void)sd_event_source_set_time_relative(es, AAASD_STATUS_USEC);
    return 0;
}

static void
aaasd_finish(struct aaasd *d, const char *why)
{
    struct sender_stats st;

    sender_get_stats(d->sender, &st);
    /* Nothing numeric after the duplicates: tools read the number before. */
    log_notice("stopping (%s): accepted %llu, delivered %llu, rejected %llu "
               "(%llu kept locally), refused by the service %llu, %llu calls, "
               "%llu records, billed %llu bytes (%llu unpacked), %llu left in "
               "the spool, %llu possible duplicates", why,
               (unsigned long long)d->accepted,
               (unsigned long long)st.delivered,
               (unsigned long long)d->rejected,
               (unsigned long long)d->rejects_kept,
               (unsigned long long)st.rejected_events,
               (unsigned long long)st.calls,
               (unsigned long long)st.records,
               (unsigned long long)st.billed_bytes,
               (unsigned long long)st.billed_bytes_unpacked,
               (unsigned long long)(spool_durable_seq(d->spool) -
                                    spool_acked_seq(d->spool)),
               (unsigned long long)st.possible_duplicates);
    (void)sd_event_exit(d->event, 0);
}

static int
aaasd_flush_deadline(sd_event_source *es, uint64_t usec, void *userdata)
{
    aaasd_finish(userdata, "flush time is up, the rest stays spooled");
    return 0;
}

/* While stopping: checked after every event until the sender is idle. */
static int
aaasd_stop_check(sd_event_source *es, void *userdata)
{
    struct aaasd *d = userdata;

    if (spool_durable_seq(d->spool) + 1 < spool_next_seq(d->spool))
        return 0;
    if (sender_idle(d->sender))
        aaasd_finish(d, "everything delivered");
    return 0;
}

static int
aaasd_on_term(sd_event_source *es, const struct signalfd_siginfo *si,
              void *userdata)
{
    struct aaasd *d = userdata;
    int r;

    if (d->stopping)
        return 0;
    pipeline_auditd_flush(d);
    /* What writers already sent is taken while intake is still open. */
    if (d->socket)
        socket_input_drain(d->socket);
    d->stopping = true;
    (void)sd_notify(0, "STOPPING=1");
    log_notice("received %s, flushing for up to %llu s",
               strsignal((int)si->ssi_signo), AAASD_FLUSH_USEC / 1000000ull);

    /* No new input; what is already read is synced and sent. */
    d->socket = socket_input_free(d->socket);
    pipeline_pause(d);
    /* What is in the spool leaves sealed, without waiting for the timer. */
    if (d->sealer && sealer_due_in(d->sealer) != UINT64_MAX) {
        pipeline_seal(d, true);
    }
    pipeline_mark(d);
    (void)spool_sync_request(d->spool);

    r = sd_event_add_time_relative(d->event, &d->flush_timer,
                                   CLOCK_MONOTONIC, AAASD_FLUSH_USEC, 0,
                                   aaasd_flush_deadline, d);
    if (r >= 0)
        r = sd_event_add_post(d->event, &d->stop_check, aaasd_stop_check,
                              d);
    if (r < 0)
        aaasd_finish(d, "cannot wait for the flush");
    return 0;
}

static int aaasd_reload(struct aaasd *d);
static int aaasd_input_stats(struct aaasd *d, const struct config *c);
static void aaasd_setup_control(struct aaasd *d);

static int
aaasd_on_hup(sd_event_source *es, const struct signalfd_siginfo *si,
             void *userdata)
{
    struct aaasd *d = userdata;
    uint64_t now = 0;
    int r;

    if (d->stopping)
        return 0;
    (void)sd_event_now(d->event, CLOCK_MONOTONIC, &now);
    (void)sd_notifyf(0, "RELOADING=1\nMONOTONIC_USEC=%llu\n"
                     "STATUS=reloading '%s'", (unsigned long long)now,
                     arg_config);
    log_notice("received SIGHUP, reloading '%s'", arg_config);

    r = aaasd_reload(d);
    if (r < 0) {
        d->reload_failures++;
        log_err("reload: configuration '%s' not applied, the running one "
                "stays in force", arg_config);
    } else {
        d->reloads++;
    }
    (void)sd_notify(0, "READY=1");
    aaasd_status(d);
    return 0;
}

/* mkdir -p, for the state directory: its parents may be missing too. */
static int
aaasd_mkdir_p(const char *path, mode_t mode)
{
    char buf[4096];
    size_t n = strlen(path);

    if (n == 0 || n >= sizeof(buf))
        return -ENAMETOOLONG;
    memcpy(buf, path, n + 1);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0755) < 0 && errno != EEXIST)
            return -errno;
        *p = '/';
    }
    if (mkdir(buf, mode) < 0 && errno != EEXIST)
        return -errno;
    return 0;
}

/* The reject file for path, opened once however many scopes name it. */
static int
aaasd_reject_file(struct aaasd *d, const char *path,
                  struct reject_file **ret)
{
    struct reject_file **n;
    int r;

    *ret = NULL;
    if (!path)
        return 0;
    for (size_t i = 0; i < d->n_reject_files; i++)
        if (strcmp(reject_file_path(d->reject_files[i]), path) == 0) {
            *ret = d->reject_files[i];
            return 0;
        }
    n = realloc(d->reject_files, (d->n_reject_files + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    d->reject_files = n;
    r = reject_file_new(path, &n[d->n_reject_files]);
    if (r < 0) {
        log_err("pipeline: cannot open reject file '%s': %s, exiting", path,
                strerror(-r));
        return r;
    }
    *ret = n[d->n_reject_files++];
    return 0;
}

/*
 * The scopes point into c (its rule sets) and at reject files that stay
 * open until exit, so a reload builds a new set before it takes over.
 */
static int
aaasd_build_scopes(struct aaasd *d, const struct config *c,
                   struct pipeline_scope *ret_socket,
                   struct pipeline_scope **ret_inputs)
{
    struct pipeline_scope sock = { .validate = c->socket_validate };
    struct pipeline_scope *in;
    int r;

    r = aaasd_reject_file(d, c->socket_reject_file, &sock.rejects);
    if (r < 0)
        return r;
    in = calloc(c->n_inputs ? c->n_inputs : 1, sizeof(*in));
    if (!in)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_inputs; i++) {
        in[i].validate = c->inputs[i].validate;
        r = aaasd_reject_file(d, c->inputs[i].reject_file, &in[i].rejects);
        if (r < 0) {
            free(in);
            return r;
        }
    }
    *ret_socket = sock;
    *ret_inputs = in;
    return 0;
}

static int
aaasd_setup_scopes(struct aaasd *d)
{
    return aaasd_build_scopes(d, d->cfg, &d->socket_scope,
                              &d->input_scopes);
}

static int
aaasd_setup_inputs(struct aaasd *d)
{
    struct config *c = d->cfg;
    int r;

    if (c->socket_enabled) {
        struct socket_input_options so = {
            .event = d->event,
            .path = c->socket_path,
            .mode = c->socket_mode,
            .group = c->socket_group,
            .max_connections = c->socket_max_connections,
            .max_event_size = c->max_event_size,
            .idle_timeout_ms = c->socket_idle_timeout_ms,
            .max_buffer = c->socket_max_buffer,
            .line_fn = pipeline_socket_line,
            .userdata = d,
        };

        r = socket_input_new(&so, &d->socket);
        if (r == -EADDRINUSE) {
            log_err("socket: another process is listening on '%s', exiting",
                    c->socket_path);
            return r;
        }
        if (r == -ENOENT && c->socket_group && !getgrnam(c->socket_group)) {
            log_err("socket: group '%s' (socket.group in '%s') does not "
                    "exist on this host, exiting", c->socket_group, c->file);
            return r;
        }
        if (r < 0) {
            log_err("socket: cannot listen on '%s': %s, exiting",
                    c->socket_path, strerror(-r));
            return r;
        }
    }

    if (c->n_inputs > 0) {
        d->auditd = parse_auditd_new(NULL);
        if (!d->auditd)
            return -ENOMEM;
        r = sd_event_add_time(d->event, &d->auditd_timer, CLOCK_MONOTONIC,
                              UINT64_MAX, 0, pipeline_auditd_timeout, d);
        if (r < 0)
            return r;
        (void)sd_event_source_set_enabled(d->auditd_timer, SD_EVENT_OFF);

        r = aaasd_mkdir_p(c->state_dir, 0750);
        if (r < 0) {
            log_err("cannot create state directory '%s': %s, exiting",
                    c->state_dir, strerror(-r));
            return r;
        }

        struct tail_options to = {
            .event = d->event,
            .state_dir = c->state_dir,
            .inputs = c->inputs,
            .n_inputs = c->n_inputs,
            .line_fn = pipeline_file_line,
            .userdata = d,
        };

        r = tail_new(&to, &d->tail);
        if (r < 0) {
            log_err("tail: cannot start the file inputs: %s, exiting",
                    strerror(-r));
            return r;
        }
    }
    return 0;
}

static int
aaasd_apply_marker(void *userdata, uint64_t seq, const void *data,
                   size_t len)
{
    struct aaasd *d = userdata;
    int r;

    r = tail_apply_marker(d->tail, data, len);
    if (r == -ENOMEM)
        return r;
    if (r < 0)
        log_warning("tail: read positions spooled after event %llu do not "
                    "parse: %s, ignoring them", (unsigned long long)seq,
                    strerror(-r));
    return 0;
}

/*
 * Before the loop runs: the offsets file is loaded, now the positions
 * spooled since it was saved move each file to the first line that is
 * not in the spool.
 */
static int
aaasd_replay_markers(struct aaasd *d)
{
    int r;

    if (d->tail) {
        d->marker_buf = malloc(SPOOL_MARKER_MAX);
        if (!d->marker_buf)
            return -ENOMEM;
        r = spool_markers(d->spool, tail_saved_seq(d->tail),
                          aaasd_apply_marker, d);
        if (r < 0) {
            log_err("spool: cannot read the read positions in '%s': %s, "
                    "exiting", d->cfg->spool_dir, strerror(-r));
            return r;
        }
        /* Everything recovered is on disk; nothing has been read yet. */
        tail_durable(d->tail, spool_durable_seq(d->spool));
    }
    d->retained = 0;
    pipeline_retain(d);
    return 0;
}

/*
 * drop_oldest: the gap lines still in the spool, so that a drop taking
 * one of them declares its range again.  One pass over what is not yet
 * acknowledged, only when events may be dropped.
 */
static int
aaasd_find_gaps(struct aaasd *d)
{
    struct spool_cursor *c = NULL;
    const void *data;
    uint64_t seq;
    size_t len;
    int r;

    if (d->cfg->spool_on_full != CONFIG_ON_FULL_DROP_OLDEST)
        return 0;
    r = spool_cursor_new(d->spool, spool_acked_seq(d->spool) + 1, &c);
    if (r < 0)
        return r;
    while ((r = spool_cursor_next(c, &seq, &data, &len)) > 0) {
        r = gaps_note_line(&d->gaps, seq, data, len);
        if (r == -ENOMEM)
            break;
        if (r < 0)
            log_warning("spool: gap line %llu in '%s' does not parse, a "
                        "later drop of it may leave its range undeclared",
                        (unsigned long long)seq, d->cfg->spool_dir);
    }
    spool_cursor_free(c);
    if (r < 0)
        log_err("spool: cannot read '%s' for its gap lines: %s, exiting",
                d->cfg->spool_dir, strerror(-r));
    return r < 0 ? r : 0;
}

static int
aaasd_setup_chain(struct aaasd *d)
{
    struct config *c = d->cfg;
    struct sealer_options so = {
        .agent = d->builder.agent,
        .key_path = c->signing_key,
        .state_dir = c->state_dir,
        .seal_every = c->seal_every,
        .seal_interval_ms = c->seal_interval_ms,
        .epoch_sec = c->epoch_sec,
    };
    const char *why = NULL;
    int r;

    r = aaasd_mkdir_p(c->state_dir, 0750);
    if (r < 0) {
        log_err("cannot create state directory '%s': %s, exiting",
                c->state_dir, strerror(-r));
        return r;
    }
    r = sealer_new(&so, d->spool, &d->sealer, &why);
    if (r < 0) {
        if (c->signing_key && why)
            log_err("chain: refusing signing key '%s': %s, exiting",
                    c->signing_key, why);
        else
            log_err("chain: cannot set up the chain (key '%s', state in "
                    "'%s'): %s, exiting", c->signing_key ? c->signing_key
                    : "none", c->state_dir, strerror(-r));
        return r;
    }
    d->builder.chain = sealer_chain(d->sealer);

    r = sd_event_add_time(d->event, &d->seal_timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 0, pipeline_seal_cb, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->seal_timer, SD_EVENT_OFF);
    /* A range left open by the last run is sealed soon. */
    pipeline_seal(d, false);
    return 0;
}

/*
 * Recovery skips damaged frames rather than stopping the host's audit
 * trail; what they held is gone, so say exactly where and which events.
 */
static void
aaasd_report_damage(struct aaasd *d)
{
    struct spool_damage dm;
    size_t n = spool_damage_count(d->spool);

    for (size_t i = 0; i < n; i++) {
        spool_damage_get(d->spool, i, &dm);
        if (dm.seq_before && dm.seq_after && dm.seq_after > dm.seq_before + 1)
            log_err("spool: '%s/%s' is damaged at bytes %llu-%llu: events "
                    "%llu to %llu are lost, delivering the rest",
                    d->cfg->spool_dir, dm.segment,
                    (unsigned long long)dm.start, (unsigned long long)dm.end,
                    (unsigned long long)dm.seq_before + 1,
                    (unsigned long long)dm.seq_after - 1);
        else
            log_err("spool: '%s/%s' is damaged at bytes %llu-%llu: the "
                    "events stored there (after %llu) are lost, delivering "
                    "the rest", d->cfg->spool_dir, dm.segment,
                    (unsigned long long)dm.start, (unsigned long long)dm.end,
                    (unsigned long long)dm.seq_before);
    }
}

static int
aaasd_setup_spool(struct aaasd *d)
{
    struct config *c = d->cfg;
    struct spool_options so = {
        .dir = c->spool_dir,
        .max_size = c->spool_max_size,
        .segment_size = c->spool_segment_size,
        .sync = c->spool_sync == CONFIG_SYNC_INTERVAL ? SPOOL_SYNC_INTERVAL
                                                      : SPOOL_SYNC_ALWAYS,
        .sync_interval_ms = c->spool_sync_interval_ms,
    };
    int r;

    r = spool_open(&so, &d->spool);
    if (r == -EBUSY) {
        log_err("spool: '%s' is in use by another aaasd, exiting",
                c->spool_dir);
        return r;
    }
    if (r < 0) {
        log_err("spool: cannot open '%s': %s, exiting", c->spool_dir,
                strerror(-r));
        return r;
    }
    aaasd_report_damage(d);
    log_info("spool: '%s' holds events up to %llu, acknowledged up to %llu",
             c->spool_dir,
             (unsigned long long)spool_next_seq(d->spool) - 1,
             (unsigned long long)spool_acked_seq(d->spool));

    r = sd_event_add_io(d->event, &d->sync_io, spool_sync_fd(d->spool),
                        EPOLLIN, pipeline_synced, d);
    if (r < 0)
        return r;
    r = sd_event_add_defer(d->event, &d->commit, pipeline_commit, d);
    if (r < 0)
        return r;
    /* After every input source, so one sync covers the whole burst. */
    (void)sd_event_source_set_priority(d->commit, SD_EVENT_PRIORITY_IDLE);
    (void)sd_event_source_set_enabled(d->commit, SD_EVENT_OFF);

    r = sd_event_add_time(d->event, &d->retry_timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 0, pipeline_retry_cb, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->retry_timer, SD_EVENT_OFF);
    r = sd_event_add_time(d->event, &d->ckpt_timer, CLOCK_MONOTONIC,
                          UINT64_MAX, 0, pipeline_checkpoint_cb, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->ckpt_timer, SD_EVENT_OFF);
    return aaasd_setup_chain(d);
}

/* One place maps the config to the sender, for start-up and reload. */
static void
aaasd_sender_options(struct aaasd *d, const struct config *c,
                     struct sender_options *ret)
{
    *ret = (struct sender_options){
        .event = d->event,
        .spool = d->spool,
        .http = d->http,
        .credentials = d->credentials,
        .stream = c->firehose_stream,
        .region = c->firehose_region,
        .endpoint = c->firehose_endpoint,
        .kinesis = c->kinesis,
        .partition_key = c->kinesis_partition_key,
        .agent = d->builder.agent,
        .ca_file = c->ca_file,
        .max_in_flight = c->firehose_max_in_flight,
        .timeout_ms = c->firehose_timeout_ms,
        .connect_timeout_ms = c->firehose_connect_timeout_ms,
        .low_speed_time_ms = c->firehose_low_speed_time_ms,
        .proxy = c->firehose_proxy,
        .pack = c->firehose_pack,
        .max_records_per_second = c->firehose_max_records_per_second,
        .max_bytes_per_second = c->firehose_max_bytes_per_second,
        .retry_initial_ms = c->retry_initial_ms,
        .retry_max_ms = c->retry_max_ms,
        .acked_fn = pipeline_acked,
        .userdata = d,
    };
}

static int
aaasd_setup(struct aaasd *d)
{
    struct config *c = d->cfg;
    struct parse_json_limits pl = { .max_depth = AAASD_PARSE_DEPTH };
    const char *why = NULL;
    char agent[EVENT_AGENT_ID_LEN + 1];
    sigset_t ss;
    int r;

    if (c->agent_id) {
        (void)snprintf(agent, sizeof(agent), "%s", c->agent_id);
    } else {
        r = event_agent_id(agent);
        if (r < 0) {
            log_err("cannot derive the agent id from /etc/machine-id: %s; "
                    "set agent_id in '%s', exiting", strerror(-r), c->file);
            return r;
        }
    }
    r = event_builder_init(&d->builder, agent);
    if (r < 0) {
        log_err("agent id '%s' is longer than %d characters, exiting", agent,
                EVENT_AGENT_ID_LEN);
        return r;
    }
    d->parser = parse_json_new(&pl);
    if (!d->parser)
        return -ENOMEM;

    r = sd_event_default(&d->event);
    if (r < 0)
        return r;

    (void)sigemptyset(&ss);
    (void)sigaddset(&ss, SIGTERM);
    (void)sigaddset(&ss, SIGINT);
    (void)sigaddset(&ss, SIGHUP);
    (void)sigprocmask(SIG_BLOCK, &ss, NULL);
    (void)signal(SIGPIPE, SIG_IGN);
    r = sd_event_add_signal(d->event, NULL, SIGTERM, aaasd_on_term, d);
    if (r >= 0)
        r = sd_event_add_signal(d->event, NULL, SIGINT, aaasd_on_term, d);
    if (r >= 0)
        r = sd_event_add_signal(d->event, NULL, SIGHUP, aaasd_on_hup, d);
    if (r < 0)
        return r;
    (void)sd_event_set_watchdog(d->event, true);

    r = aaasd_setup_spool(d);
    if (r < 0)
        return r;

    d->credentials = credentials_new();
    if (!d->credentials)
        return -ENOMEM;
    struct credentials_options co = {
        .access_key_id = c->access_key_id,
        .secret_access_key = c->secret_access_key,
        .region = c->firehose_region,
        .ca_file = c->ca_file,
        .proxy = c->firehose_proxy,
    };
    r = credentials_set_options(d->credentials, &co);
    if (r < 0)
        return r;
    if (c->access_key_id)
        log_warning("config: '%s' holds static AWS keys (access key id "
                    "%.4s...), used before the environment and roles; keep "
                    "the file private and prefer a role", c->file,
                    c->access_key_id);
    r = http_new(d->event, &d->http);
    if (r < 0)
        return r;

    struct sender_options so;

    aaasd_sender_options(d, c, &so);
    r = sender_new(&so, &d->sender, &why);
    if (r < 0) {
        log_err("sender: cannot set up stream '%s': %s, exiting",
                c->firehose_stream, why ? why : strerror(-r));
        return r;
    }

    r = aaasd_setup_scopes(d);
    if (r < 0)
        return r;
    r = aaasd_setup_inputs(d);
    if (r < 0)
        return r;
    r = aaasd_replay_markers(d);
    if (r < 0)
        return r;
    r = aaasd_find_gaps(d);
    if (r < 0)
        return r;
    r = aaasd_input_stats(d, d->cfg);
    if (r < 0)
        return r;
    d->start_time = time(NULL);
    aaasd_setup_control(d);

    r = sd_event_add_time_relative(d->event, &d->status_timer,
                                   CLOCK_MONOTONIC, AAASD_STATUS_USEC, 0,
                                   aaasd_status_cb, d);
    if (r < 0)
        return r;
    (void)sd_event_source_set_enabled(d->status_timer, SD_EVENT_ON);

    /* Whatever the spool recovered is sent without waiting for input. */
    sender_kick(d->sender);
    return 0;
}

static void
aaasd_teardown(struct aaasd *d)
{
    int r;

    d->control = status_free(d->control);
    free(d->input_stats);
    d->socket = socket_input_free(d->socket);
    if (d->spool) {
        pipeline_mark(d);
        r = spool_sync_now(d->spool);
        if (r < 0)
            log_err("spool: final sync of '%s' failed: %s",
                    d->cfg->spool_dir, strerror(-r));
        else if (d->tail && pipeline_flush_rejects(d))
            tail_durable(d->tail, spool_durable_seq(d->spool));
    }
    if (d->tail) {
        r = tail_save(d->tail);
        if (r < 0)
            log_err("tail: cannot save offsets under '%s': %s; lines since "
                    "the last save will be read again", d->cfg->state_dir,
                    strerror(-r));
    }
    d->tail = tail_free(d->tail);
    for (size_t i = 0; i < d->n_reject_files; i++)
        reject_file_free(d->reject_files[i]);
    free(d->reject_files);
    free(d->input_scopes);
    /* Transfers go before the sender whose buffers they point into. */
    d->http = http_free(d->http);
    d->sender = sender_free(d->sender);
    d->credentials = credentials_free(d->credentials);
    /* Wipes the signing keys this thread derived. */
    sigv4_done();
    sd_event_source_disable_unref(d->commit);
    sd_event_source_disable_unref(d->sync_io);
    sd_event_source_disable_unref(d->retry_timer);
    sd_event_source_disable_unref(d->ckpt_timer);
    sd_event_source_disable_unref(d->status_timer);
    sd_event_source_disable_unref(d->flush_timer);
    sd_event_source_disable_unref(d->stop_check);
    sd_event_source_disable_unref(d->auditd_timer);
    d->auditd = parse_auditd_free(d->auditd);
    jbuf_done(&d->raw);
    sd_event_source_disable_unref(d->seal_timer);
    /* After the final sync: the state names only lines that are spooled. */
    d->sealer = sealer_free(d->sealer);
    d->spool = spool_free(d->spool);
    d->parser = parse_json_free(d->parser);
    free(d->marker_buf);
    gaps_done(&d->gaps);
    event_builder_done(&d->builder);
    d->event = sd_event_unref(d->event);
}

/*
 * Every followed file holds a descriptor, so a glob of a thousand files
 * needs more than the customary soft limit of 1024.  Nothing here uses
 * select(), so the hard limit is safe to take.
 */
static void
aaasd_raise_nofile(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) < 0 || rl.rlim_cur >= rl.rlim_max)
        return;
    rl.rlim_cur = rl.rlim_max;
    if (setrlimit(RLIMIT_NOFILE, &rl) < 0)
        log_debug("cannot raise the open file limit: %s, keeping it",
                  strerror(errno));
}

static void *
mfree(void *p)
{
    free(p);
    return NULL;
}

/* Counts per input, carried over by name when a reload changes the list. */
static int
aaasd_input_stats(struct aaasd *d, const struct config *c)
{
    struct status_input *st;

    st = calloc(c->n_inputs + 1, sizeof(*st));
    if (!st)
        return -ENOMEM;
    for (size_t i = 0; i < c->n_inputs; i++) {
        st[i].name = c->inputs[i].name;
        for (size_t j = 0; j + 1 < d->n_input_stats; j++) {
            if (strcmp(d->input_stats[j].name, st[i].name) == 0) {
                st[i].events = d->input_stats[j].events;
                st[i].rejected = d->input_stats[j].rejected;
            }
        }
    }
    st[c->n_inputs].name = "socket";
    if (d->n_input_stats > 0)
        st[c->n_inputs] = d->input_stats[d->n_input_stats - 1];
    free(d->input_stats);
    d->input_stats = st;
    d->n_input_stats = c->n_inputs + 1;
    return 0;
}

static void
aaasd_report(void *userdata, struct status_report *r)
{
    struct aaasd *d = userdata;
    struct sender_stats st;
    struct socket_input_stats ss = { 0 };
    time_t now = time(NULL);

    sender_get_stats(d->sender, &st);
    if (d->socket)
        socket_input_stats(d->socket, &ss);

    r->version = PACKAGE_VERSION;
    r->start_time = (uint64_t)d->start_time;
    r->uptime_sec = now > d->start_time ? (uint64_t)(now - d->start_time) : 0;
    r->appended = d->appended;
    r->accepted = d->accepted;
    r->rejected = d->rejected;
    r->spool_bytes = spool_size(d->spool);
    r->spool_max_bytes = d->cfg->spool_max_size;
    r->spool_backlog = spool_durable_seq(d->spool) -
                       spool_acked_seq(d->spool);
    r->spool_full = d->full;
    r->spool_error = d->sync_error;
    /* The socket's line only when it is on, so no input reads "socket". */
    r->inputs = d->input_stats;
    r->n_inputs = d->n_input_stats;
    if (r->n_inputs > 0 && !d->socket)
        r->n_inputs--;
    r->files_followed = d->tail ? tail_files(d->tail) : 0;
    r->socket_enabled = d->socket != NULL;
    r->socket_connections = ss.connections;
    r->socket_refused = ss.refused;
    r->socket_partial_lines = ss.partial_lines;
    r->socket_open = ss.open;
    r->stream = d->cfg->firehose_stream;
    r->region = d->cfg->firehose_region;
    r->delivered = st.delivered;
    r->calls = st.calls;
    r->failed_calls = st.failed_calls;
    r->failed_records = st.failed_records;
    r->possible_duplicates = st.possible_duplicates;
    r->in_flight = http_in_flight(d->http);
    /* sender_get_stats() copied it, but into our stack: keep a copy. */
    (void)snprintf(d->last_error, sizeof(d->last_error), "%s",
                   st.last_error);
    r->last_error = d->last_error;
    r->reloads = d->reloads;
    r->reload_failures = d->reload_failures;
}

/* Without the control socket the daemon still does its work: go on. */
static void
aaasd_setup_control(struct aaasd *d)
{
    struct config *c = d->cfg;
    struct status_options so = {
        .event = d->event,
        .path = c->control_path,
        .mode = c->control_mode,
        .group = c->control_group,
        .report_fn = aaasd_report,
        .userdata = d,
    };
    int r;

    if (!c->control_enabled)
        return;
    r = status_new(&so, &d->control);
    if (r == -EADDRINUSE)
        log_warning("control: another process is listening on '%s', "
                    "aaasctl will not reach this daemon", c->control_path);
    else if (r == -ENOENT && c->control_group)
        log_warning("control: cannot give '%s' to group '%s': no such "
                    "group, aaasctl will not reach this daemon",
                    c->control_path, c->control_group);
    else if (r < 0)
        log_warning("control: cannot listen on '%s': %s, aaasctl will not "
                    "reach this daemon", c->control_path, strerror(-r));
}

/*
 * Options that the running spool, socket and control socket were built
 * from: a reload names each one that changed and keeps the running value.
 * Strings are swapped, not copied, so that pointers the modules hold into
 * the config stay valid when the old config is freed.
 */
static void
aaasd_keep_str(const char *name, char **run, char **next)
{
    char *t;

    if ((*run == NULL) != (*next == NULL) ||
        (*run && strcmp(*run, *next) != 0))
        log_notice("reload: %s changed, it takes effect at the next "
                   "restart", name);
    t = *run;
    *run = *next;
    *next = t;
}

#define AAASD_KEEP(name, run, next, field)                                  \
    do {                                                                    \
        if ((run)->field != (next)->field) {                                \
            log_notice("reload: %s changed, it takes effect at the next "   \
                       "restart", name);                                    \
            (next)->field = (run)->field;                                   \
        }                                                                   \
    } while (0)

static void
aaasd_keep_restart_options(struct config *run, struct config *next)
{
    aaasd_keep_str("state_dir", &run->state_dir, &next->state_dir);
    aaasd_keep_str("agent_id", &run->agent_id, &next->agent_id);
    aaasd_keep_str("spool.dir", &run->spool_dir, &next->spool_dir);
    AAASD_KEEP("spool.max_size", run, next, spool_max_size);
    AAASD_KEEP("spool.segment_size", run, next, spool_segment_size);
    AAASD_KEEP("spool.sync", run, next, spool_sync);
    AAASD_KEEP("spool.sync_interval", run, next, spool_sync_interval_ms);
    /* The gap lines in the spool are looked for at start only. */
    AAASD_KEEP("spool.on_full", run, next, spool_on_full);
    AAASD_KEEP("socket.enabled", run, next, socket_enabled);
    aaasd_keep_str("socket.path", &run->socket_path, &next->socket_path);
    AAASD_KEEP("socket.mode", run, next, socket_mode);
    aaasd_keep_str("socket.group", &run->socket_group, &next->socket_group);
    AAASD_KEEP("socket.max_connections", run, next, socket_max_connections);
    AAASD_KEEP("socket.max_event_size", run, next, max_event_size);
    AAASD_KEEP("socket.idle_timeout", run, next, socket_idle_timeout_ms);
    AAASD_KEEP("socket.max_buffer", run, next, socket_max_buffer);
    AAASD_KEEP("control.enabled", run, next, control_enabled);
    aaasd_keep_str("control.path", &run->control_path, &next->control_path);
    AAASD_KEEP("control.mode", run, next, control_mode);
    aaasd_keep_str("control.group", &run->control_group,
                   &next->control_group);
    aaasd_keep_str("signing.key", &run->signing_key, &next->signing_key);
    /* Every slot's batch is cut to these limits when it is made. */
    AAASD_KEEP("firehose.pack", run, next, firehose_pack);
    AAASD_KEEP("firehose.max_records_per_second", run, next,
               firehose_max_records_per_second);
}

/*
 * New file inputs from c, started before the old ones go so that a
 * failure leaves the old ones running.  Everything appended is synced
 * first and its offsets saved, so the new inputs start exactly after the
 * last line taken: nothing is read twice or skipped.
 */
static int
aaasd_reload_inputs(struct aaasd *d, const struct config *c,
                    struct tail **ret)
{
    struct tail_options to = {
        .event = d->event,
        .state_dir = c->state_dir,
        .inputs = c->inputs,
        .n_inputs = c->n_inputs,
        .line_fn = pipeline_file_line,
        .userdata = d,
    };
    int r;

    *ret = NULL;
    r = spool_sync_now(d->spool);
    if (r < 0) {
        log_err("reload: cannot sync the spool '%s': %s", c->spool_dir,
                strerror(-r));
        return r;
    }
    if (d->tail) {
        tail_durable(d->tail, spool_durable_seq(d->spool));
        r = tail_save(d->tail);
        if (r < 0) {
            log_err("reload: cannot save offsets under '%s': %s",
                    c->state_dir, strerror(-r));
            return r;
        }
    }
    if (c->n_inputs == 0)
        return 0;

    r = aaasd_mkdir_p(c->state_dir, 0750);
    if (r < 0) {
        log_err("reload: cannot create state directory '%s': %s",
                c->state_dir, strerror(-r));
        return r;
    }
    r = tail_new(&to, ret);
    if (r < 0) {
        log_err("reload: cannot start the file inputs: %s", strerror(-r));
        return r;
    }
    if (d->full || d->held)
        tail_pause(*ret);
    return 0;
}

static int
aaasd_reload(struct aaasd *d)
{
    struct pipeline_scope sock_scope, *in_scopes = NULL;
    struct config *next = NULL;
    struct tail *tail = NULL;
    const char *why = NULL;
    int r;

    r = config_load(arg_config, &next);
    if (r < 0)
        return r;
    aaasd_keep_restart_options(d->cfg, next);

    r = aaasd_build_scopes(d, next, &sock_scope, &in_scopes);
    if (r < 0)
        goto out;
    r = aaasd_reload_inputs(d, next, &tail);
    if (r < 0)
        goto out;

    struct sender_options so;

    aaasd_sender_options(d, next, &so);
    r = sender_reconfigure(d->sender, &so, &why);
    if (r < 0) {
        log_err("reload: cannot set up stream '%s': %s",
                next->firehose_stream, why ? why : strerror(-r));
        goto out;
    }

    /* From here on nothing fails: the new config takes over. */
    d->tail = tail_free(d->tail);
    d->tail = tail;
    tail = NULL;
    free(d->input_scopes);
    d->input_scopes = in_scopes;
    in_scopes = NULL;
    d->socket_scope = sock_scope;
    r = aaasd_input_stats(d, next);
    if (r < 0) {
        /* The old counters name inputs of the config about to go. */
        log_warning("reload: no memory for the input counters, per-input "
                    "status is off until the next reload");
        d->input_stats = mfree(d->input_stats);
        d->n_input_stats = 0;
    }
    log_set_level(next->log_level);
    {
        struct config *old = d->cfg;

        d->cfg = next;
        next = old;
    }
    log_notice("reload: '%s' applied: stream '%s', %zu file inputs",
               arg_config, d->cfg->firehose_stream, d->cfg->n_inputs);
    r = 0;

out:
    free(in_scopes);
    tail_free(tail);
    config_free(next);
    return r;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: aaasd [-c file] [--check-config] [--version]\n"
            "  -c, --config FILE   configuration file (default %s)\n"
            "      --check-config  validate the configuration and exit\n"
            "  -h, --help          show this help\n"
            "      --version       show the version\n",
            AAASD_DEFAULT_CONFIG);
}

static int
parse_args(int argc, char **argv)
{
    enum { OPT_CHECK = 256, OPT_VERSION };
    static const struct option opts[] = {
        { "config", required_argument, NULL, 'c' },
        { "check-config", no_argument, NULL, OPT_CHECK },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, OPT_VERSION },
        { NULL, 0, NULL, 0 },
    };
    int ch;

    while ((ch = getopt_long(argc, argv, "c:h", opts, NULL)) != -1) {
        switch (ch) {
        case 'c':
            arg_config = optarg;
            break;
        case OPT_CHECK:
            arg_check_config = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        case OPT_VERSION:
            printf("aaasd %s\n", PACKAGE_VERSION);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "aaasd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct aaasd d = { 0 };
    int r;

    log_open();
    if (parse_args(argc, argv) < 0)
        return 2;

    r = config_load(arg_config, &d.cfg);
    if (r < 0) {
        log_err("configuration '%s' is not valid, exiting", arg_config);
        return 1;
    }
    if (arg_check_config) {
        printf("configuration '%s' is valid\n", arg_config);
        d.cfg = config_free(d.cfg);
        return 0;
    }
    log_set_level(d.cfg->log_level);
    aaasd_raise_nofile();

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0) {
        log_err("cannot initialise libcurl, exiting");
        d.cfg = config_free(d.cfg);
        return 1;
    }

    r = aaasd_setup(&d);
    if (r < 0) {
        log_err("start-up failed: %s, exiting", strerror(-r));
        goto out;
    }

    log_notice("aaasd %s started: stream '%s', %zu file inputs, socket %s",
               PACKAGE_VERSION, d.cfg->firehose_stream, d.cfg->n_inputs,
               d.socket ? d.cfg->socket_path : "off");
    (void)sd_notify(0, "READY=1");
    aaasd_status(&d);

    r = sd_event_loop(d.event);
    if (r < 0)
        log_err("event loop failed: %s, exiting", strerror(-r));

out:
    aaasd_teardown(&d);
    curl_global_cleanup();
    d.cfg = config_free(d.cfg);
    return r < 0 ? 1 : 0;
}
