/* SPDX-License-Identifier: MIT */
#pragma once

#include <stddef.h>

#include "jbuf.h"

/*
 * format = raw: a line of plain text becomes {"message":"LINE"}.
 */

/*
 * Replaces out's contents with the object for [data, data + len).
 * Returns -EBADMSG with *reterr_reason set when the line holds a NUL byte
 * or is not UTF-8 (JSON cannot carry it as text), -ENOMEM otherwise.
 */
int parse_raw_build(struct jbuf *out, const char *data, size_t len,
                    const char **reterr_reason);
