/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <systemd/sd-event.h>

#include "config.h"

/*
 * File inputs: follows the files matched by each input's glob, hands
 * complete lines to the pipeline and remembers, per file identity, the
 * offset up to which every line is durable in the spool.
 */
struct tail;

struct tail_line {
    const char *input;          /* input name from the config */
    const char *path;           /* file the line was read from */
    const char *data;           /* line bytes, without the '\n' */
    size_t len;
    uint64_t offset;            /* file offset of the line's first byte */
    uint64_t file_id;           /* names the file in tail_hold(); a file
                                 * read again from 0 gets a new one */
    size_t input_index;         /* into tail_options.inputs */
    bool truncated;             /* longer than max_line: data holds the
                                 * first max_line bytes, the rest is
                                 * skipped up to the next '\n' */
};

/*
 * Called for every line read.  Returns 0 and the spool sequence number
 * now holding the line (or its reject record), or -EAGAIN when the
 * pipeline cannot take it now: tail stops reading and offers the same line
 * again after tail_resume().  Any other error is logged by the callee and
 * treated like -EAGAIN.
 */
typedef int (*tail_line_fn)(void *userdata, const struct tail_line *line,
                            uint64_t *ret_seq);

#define TAIL_HOLD_NONE UINT64_MAX

/*
 * For pipelines that keep lines back (auditd records wait for the rest of
 * their event): from offset hold on, the lines of file_id handed over are
 * not in the spool yet (TAIL_HOLD_NONE: all of them are), and every line
 * before hold is in the spool at a sequence number <= seq.  The file's
 * offset never moves past hold, so a restart reads those lines again; a
 * file closed with lines held stays known until they are released.  May
 * be called from inside line_fn, where a line's ret_seq counts only up to
 * the hold, and at any other time (a timeout); an unknown file_id is
 * ignored.
 */
void tail_hold(struct tail *t, uint64_t file_id, uint64_t hold, uint64_t seq);

struct tail_options {
    sd_event *event;
    const char *state_dir;      /* offsets are kept in STATE_DIR/offsets */
    const struct config_input *inputs;
    size_t n_inputs;
    tail_line_fn line_fn;
    void *userdata;
    unsigned rescan_interval_ms;    /* glob and fstat period; 0: 2000 */
};

int tail_new(const struct tail_options *o, struct tail **ret);
struct tail *tail_free(struct tail *t);

/*
 * Everything with a sequence number <= durable_seq is on stable storage:
 * offsets of the lines it covers may advance and be persisted.
 */
void tail_durable(struct tail *t, uint64_t durable_seq);

/* Stop and restart reading (back-pressure from the spool). */
void tail_pause(struct tail *t);
void tail_resume(struct tail *t);

/* Writes the offsets file now (atomically); used at shutdown. */
int tail_save(struct tail *t);

/*
 * Encodes into buf the read position of every file that moved since the
 * last marker (see the top of tail.c), for the caller to append to the
 * spool right behind the lines it covers.  *ret_len is 0 when nothing
 * moved.  Files that do not fit stay for the next call, so call again
 * until *ret_len is 0.  -ENOBUFS when not even one file fits in cap.
 */
int tail_marker(struct tail *t, void *buf, size_t cap, size_t *ret_len);

/* A marker from tail_marker() was not stored: put every file in the next. */
void tail_marker_retry(struct tail *t);

/*
 * Applies one marker at start-up, after tail_new() and before the loop
 * runs (nothing may have been read yet).  Markers go in spool order, all
 * those numbered above tail_saved_seq().  -EBADMSG for a marker that does
 * not parse; the records before the bad one are applied.
 */
int tail_apply_marker(struct tail *t, const void *data, size_t len);

/*
 * The spool sequence number the offsets file on disk is exact for: the
 * markers above it are still needed at the next start.
 */
uint64_t tail_saved_seq(struct tail *t);

/* Number of files currently followed, for status. */
size_t tail_files(const struct tail *t);
