/* SPDX-License-Identifier: MIT */
/*
 * format = raw: wraps a text line as the string member "message".  The
 * line is checked, not interpreted; enrichment and spooling are the
 * pipeline's.
 */
#include "parse_raw.h"

#include <errno.h>

#include "event.h"

int
parse_raw_build(struct jbuf *out, const char *data, size_t len,
                const char **reterr_reason)
{
    int r;

    if (!event_utf8_valid(data, len)) {
        *reterr_reason = "raw: line holds a NUL byte or is not valid UTF-8";
        return -EBADMSG;
    }
    out->len = 0;
    r = jbuf_puts(out, "{\"message\":");
    if (r < 0)
        return r;
    r = jbuf_put_string(out, data, len);
    if (r < 0)
        return r;
    return jbuf_put(out, "}", 1);
}
