/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The durable queue between the inputs and the sink.  One thread (the
 * event loop) appends, reads and acknowledges; fdatasync runs on a helper
 * thread owned by the spool, and its completion is reported through
 * spool_sync_fd() so the loop never blocks on the disk.
 */
struct spool;

enum spool_sync_mode {
    SPOOL_SYNC_ALWAYS,      /* durable before accepted (group commit) */
    SPOOL_SYNC_INTERVAL,    /* fdatasync every sync_interval_ms */
};

/*
 * The calls that move frame data to the disk.  Tests replace them to
 * inject ENOSPC, EIO, short writes and failed syncs; the daemon leaves
 * spool_options.io NULL, which means the C library.  The fdatasync hook
 * runs on the helper thread as well as in the caller.
 */
struct spool_io {
    ssize_t (*pwrite)(int fd, const void *buf, size_t len, off_t off);
    int (*fdatasync)(int fd);
};

struct spool_options {
    const char *dir;            /* created (one level) when missing */
    uint64_t max_size;          /* bytes on disk, all segments; 0: no cap */
    uint64_t segment_size;      /* bytes per segment; 0: 64 MiB */
    enum spool_sync_mode sync;
    unsigned sync_interval_ms;  /* SPOOL_SYNC_INTERVAL only; 0: 1000 */
    const struct spool_io *io;  /* NULL outside tests */
};

#define SPOOL_FRAME_MAX (1024u * 1024u)     /* largest payload, bytes */
#define SPOOL_MARKER_MAX (64u * 1024u)      /* largest marker payload */

/* Takes an exclusive lock on the directory and recovers it. */
int spool_open(const struct spool_options *o, struct spool **ret);
struct spool *spool_free(struct spool *s);

/* Sequence number the next spool_append() will assign (never 0). */
uint64_t spool_next_seq(const struct spool *s);

/*
 * Appends one frame to the write buffer and returns its sequence number.
 * Not durable until a later sync covers it.  -ENOSPC when the spool is at
 * max_size, -EMSGSIZE when len > SPOOL_FRAME_MAX, -EAGAIN when the write
 * buffer is full and must be flushed first.  In SPOOL_SYNC_ALWAYS, written
 * bytes stay in the buffer until their sync has completed (so that a
 * failed fdatasync can be repaired), so -EAGAIN clears only after
 * spool_sync_collect() has seen that sync.
 */
int spool_append(struct spool *s, const void *data, size_t len,
                 uint64_t *ret_seq);

/*
 * Builds the caller's record of a drop: events first..last are given up,
 * and the record itself will be frame seq.  The bytes must stay valid
 * until the spool has copied them, right after the call.
 */
typedef int (*spool_note_fn)(void *userdata, uint64_t first, uint64_t last,
                             uint64_t seq, const void **ret_data,
                             size_t *ret_len);

/*
 * Makes room when the spool is full by giving up whole segments, oldest
 * first, that hold only events numbered floor or higher (the ones the
 * caller has not read yet), until need more bytes fit under max_size; at
 * least one segment.  A segment still being written or synced, or holding
 * markers above spool_retain(), is not given up, and the run ends at the
 * first such one, so what goes is one range of numbers.  note_fn builds
 * the record of it, which is appended as an event (not held to max_size)
 * in the same step; *ret_seq is its number.  The segments leave the queue
 * at once (cursors skip them) but stay on disk and count against
 * max_size, and the checkpoint stays below them, until that record is
 * durable: a crash before that gives up nothing.
 *
 * Returns 1 after a drop, 0 when no segment may go, -EBUSY while the last
 * drop waits for its record to be durable, -EAGAIN when the write buffer
 * must be flushed first, or the error of note_fn (nothing is dropped then).
 */
int spool_drop_oldest(struct spool *s, uint64_t floor, uint64_t need,
                      spool_note_fn note_fn, void *userdata,
                      uint64_t *ret_seq);

/*
 * Appends a marker: a frame that is no event but the caller's note about
 * the events appended before it (the file inputs' read positions), made
 * durable by the same sync as they are.  It carries the sequence number
 * of the last event appended (spool_next_seq() - 1) and takes none of its
 * own; cursors skip it.  Not held to max_size.  -EMSGSIZE when len >
 * SPOOL_MARKER_MAX; -EAGAIN until an event has been appended since
 * spool_open() (a marker always follows an event of this process, and
 * one that only repeats what the spool already holds is not needed), or
 * when the write buffer must be flushed first (a room at its end is kept
 * for markers, so that is rare).
 */
int spool_append_marker(struct spool *s, const void *data, size_t len);

/*
 * Calls fn, in spool order, for every marker still on disk whose sequence
 * number is above after_seq.  Meant for start-up, before anything is
 * appended.  Stops at the first negative return of fn and returns it.
 */
typedef int (*spool_marker_fn)(void *userdata, uint64_t seq,
                               const void *data, size_t len);
int spool_markers(struct spool *s, uint64_t after_seq, spool_marker_fn fn,
                  void *userdata);

/*
 * The caller still needs the markers above seq: a segment that holds a
 * marker is not deleted, even when acknowledged, until its last frame is
 * at or below seq.  Until the first call, every segment with a marker is
 * kept.  A caller that writes no markers passes UINT64_MAX.  Returns an
 * error from deleting segments that became free.
 */
int spool_retain(struct spool *s, uint64_t seq);

/*
 * Writes the buffer to the segment and asks the helper thread for an
 * fdatasync of everything written so far.  Cheap to call often: while one
 * sync runs, later requests are merged into the next one.  When nothing
 * new was written, no sync is started.  On a write error the bytes stay
 * buffered and the next call writes them again.
 */
int spool_sync_request(struct spool *s);

/* An eventfd that becomes readable when a requested sync has finished. */
int spool_sync_fd(const struct spool *s);

/*
 * Called by the loop when spool_sync_fd() is readable: drains the eventfd,
 * and returns 0 or the negative errno of the failed sync.  Afterwards
 * spool_durable_seq() reports the new durable position.
 */
int spool_sync_collect(struct spool *s);

/* Blocking write + fdatasync in the calling thread (startup, shutdown). */
int spool_sync_now(struct spool *s);

/* Highest sequence number known to be on stable storage, 0 if none. */
uint64_t spool_durable_seq(const struct spool *s);

/*
 * Reading: a cursor walks durable frames in sequence order.  data stays
 * valid until the next call on that cursor.  Returns 1 with a frame, 0 when
 * it has caught up with spool_durable_seq(), negative errno on failure.
 */
struct spool_cursor;
int spool_cursor_new(struct spool *s, uint64_t from_seq,
                     struct spool_cursor **ret);
struct spool_cursor *spool_cursor_free(struct spool_cursor *c);
int spool_cursor_next(struct spool_cursor *c, uint64_t *ret_seq,
                      const void **ret_data, size_t *ret_len);

/*
 * Everything up to and including seq has been acknowledged by the sink.
 * The checkpoint is written lazily (atomically, via the helper thread)
 * and segments that hold only acknowledged frames are deleted.  At most
 * one checkpoint per 200 ms is started, from spool_ack(),
 * spool_sync_request() or spool_sync_collect(); spool_sync_now() and
 * spool_free() write it at once.  -EINVAL for seq > spool_durable_seq().
 */
int spool_ack(struct spool *s, uint64_t seq);
uint64_t spool_acked_seq(const struct spool *s);

/*
 * Starts the checkpoint write for the acknowledgements so far when the
 * last one is old enough.  Returns 1 while an acknowledgement still waits
 * for its checkpoint: the caller calls again later, since segments are
 * only deleted behind a checkpoint and a quiet sink brings no new acks.
 */
int spool_checkpoint(struct spool *s);

/*
 * Highest sequence number that may have reached the sink before the last
 * stop.  Frames in (acked, sent] that are sent again after a restart are
 * possible duplicates.  spool_mark_sent() is called before each send.
 */
int spool_mark_sent(struct spool *s, uint64_t seq);
uint64_t spool_sent_seq_at_open(const struct spool *s);

/*
 * Damage that recovery skipped over: a byte range of a segment whose
 * frames are lost.  seq_before and seq_after are the good frames around
 * it (0 when there is none in that segment), so the lost events lie
 * between them.  The caller reports it; the spool only remembers.
 */
struct spool_damage {
    char segment[32];           /* file name in the spool directory */
    uint64_t start, end;        /* byte offsets, end exclusive */
    uint64_t seq_before;
    uint64_t seq_after;
};

size_t spool_damage_count(const struct spool *s);
void spool_damage_get(const struct spool *s, size_t i,
                      struct spool_damage *ret);

/* Bytes on disk, for status and back-pressure. */
uint64_t spool_size(const struct spool *s);
bool spool_is_full(const struct spool *s);
