/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>
#include <stdint.h>

/*
 * The gaps declared but not yet delivered.  A gap line sits in the spool
 * above the numbers it declares, so a later drop may take the line with
 * it; the new gap line then has to declare the old range too, or that
 * loss would go unrecorded.  This keeps the ranges until their lines are
 * acknowledged and folds them into the next drop that takes their lines.
 */
struct gap_entry {
    uint64_t line_seq;          /* the gap line's own number */
    uint64_t first, last;       /* what it declares */
    uint64_t count;             /* numbers in [first, last] given up */
};

struct gaps {
    struct gap_entry *v;
    size_t n, cap;
};

/* The longest gap object gaps_format() writes, without its NUL. */
#define GAPS_OBJECT_MAX 160

void gaps_init(struct gaps *g);
void gaps_done(struct gaps *g);

/*
 * A spooled line read at start-up: when it is a gap line, its range is
 * kept.  Returns 1 for a gap line, 0 for any other, -EBADMSG for a gap
 * line whose numbers do not parse, -ENOMEM.
 */
int gaps_note_line(struct gaps *g, uint64_t seq, const void *data,
                   size_t len);

/*
 * What the gap line for a drop of first..last must declare: the range
 * widened by every kept gap whose line is in first..last, and the count
 * of all numbers given up in it.  Changes nothing; see gaps_commit().
 */
void gaps_plan(const struct gaps *g, uint64_t first, uint64_t last,
               uint64_t *ret_first, uint64_t *ret_count);

/* The gap line planned for first..last is spooled as line_seq. */
int gaps_commit(struct gaps *g, uint64_t first, uint64_t last,
                uint64_t line_seq);

/* The sink acknowledged everything up to seq: those lines are out. */
void gaps_delivered(struct gaps *g, uint64_t seq);

/*
 * Writes the `{"_aaas_gap":{...}}` object into buf (at least
 * GAPS_OBJECT_MAX + 1 bytes) and returns its length.
 */
size_t gaps_format(char *buf, uint64_t first, uint64_t last, uint64_t count);
