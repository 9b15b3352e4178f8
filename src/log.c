/* SPDX-License-Identifier: MIT */
/*
 * The daemon's own log: one line per call on stderr.  Under systemd the
 * journal reads the "<N>" prefix as the priority; on a terminal the level
 * is spelled out.  Formatting and secrecy are the callers' business.
 */
#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

static int log_level = LOG_INFO;
static int log_prefix;

static const char *const log_names[] = {
    "emerg", "alert", "crit", "error", "warning", "notice", "info", "debug",
};

/* JOURNAL_STREAM is "DEVICE:INODE" of the stream systemd connected to us. */
static int
log_stderr_is_journal(void)
{
    const char *e = getenv("JOURNAL_STREAM");
    unsigned long long dev, ino;
    struct stat st;

    if (!e || sscanf(e, "%llu:%llu", &dev, &ino) != 2)
        return 0;
    if (fstat(STDERR_FILENO, &st) < 0)
        return 0;
    return st.st_dev == dev && st.st_ino == ino;
}

void
log_open(void)
{
    log_prefix = log_stderr_is_journal();
}

void
log_set_level(int level)
{
    log_level = level;
}

int
log_get_level(void)
{
    return log_level;
}

int
log_level_from_string(const char *s)
{
    for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
        if (strcasecmp(s, log_names[i]) == 0)
            return (int)i;
    if (strcasecmp(s, "err") == 0)
        return LOG_ERR;
    return -1;
}

void
log_write(int level, const char *fmt, ...)
{
    char line[2048];
    va_list ap;
    int n;

    if (level > log_level)
        return;

    if (log_prefix)
        n = snprintf(line, sizeof(line), "<%d>", level);
    else
        n = snprintf(line, sizeof(line), "aaasd: %s: ", log_names[level & 7]);

    va_start(ap, fmt);
    n += vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
    va_end(ap);
    if (n > (int)sizeof(line) - 2)
        n = (int)sizeof(line) - 2;
    line[n++] = '\n';

    /* One write per line, so lines from concurrent writers do not mix. */
    (void)!write(STDERR_FILENO, line, (size_t)n);
}
