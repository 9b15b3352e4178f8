/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * A local file of reject lines, for rejects the config keeps on the host
 * instead of delivering.  Lines are gathered in memory and appended with
 * one write and one fdatasync per flush.
 */
struct reject_file;

/* What is held in memory before reject_file_append() asks for a flush. */
#define REJECT_FILE_BUFFER_MAX (1024u * 1024u)

/*
 * Opens path once, creating it (mode 0640) if needed, so that a file that
 * cannot be written is found at start-up; *ret is set only on success.
 */
int reject_file_new(const char *path, struct reject_file **ret);
struct reject_file *reject_file_free(struct reject_file *f);

const char *reject_file_path(const struct reject_file *f);

/*
 * Takes a copy of one line (with its '\n').  Returns -ENOBUFS, taking
 * nothing, when the lines held already reach REJECT_FILE_BUFFER_MAX: flush
 * first.  A line alone is always taken.
 */
int reject_file_append(struct reject_file *f, const char *line, size_t len);

/* True while lines are held that a flush has not made durable. */
bool reject_file_pending(const struct reject_file *f);

/*
 * Appends the held lines to the file and fdatasyncs it.  The file is
 * opened by its path each time, so a file that logrotate renamed or
 * deleted is replaced by a new one without a signal.  On failure the
 * lines not yet written stay held, and the next flush goes on from there.
 * Blocks for the sync.
 */
int reject_file_flush(struct reject_file *f);

/* Lines made durable since start. */
uint64_t reject_file_lines(const struct reject_file *f);
