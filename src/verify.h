/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/*
 * Checks delivered objects against the hash chain and the seals: lines
 * are fed in any order, the report is made at the end.
 */
struct verify;

int verify_new(struct verify **ret);
struct verify *verify_free(struct verify *v);

/* A pinned public key (the line `aaasctl keygen` printed). */
int verify_add_key(struct verify *v, const char *text);

/* Starts a new input object; name is kept for the report. */
int verify_begin_object(struct verify *v, const char *name);
/* One line, without or with its '\n'. */
int verify_line(struct verify *v, const char *line, size_t len);

/*
 * Works out the report and writes it (text or JSON) to out.  Returns 0
 * when everything is verified, 1 when anything is not, and 3 when nothing
 * is wrong but an agent declared a loss (`_aaas_gap`): the gaps, and the
 * lines next to them that could only be checked in part, are listed.
 */
int verify_report(struct verify *v, FILE *out, bool json);
