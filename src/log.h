/* SPDX-License-Identifier: MIT */
#pragma once

#include <syslog.h>

/*
 * log_open() decides once whether stderr goes to the journal: when it does
 * (JOURNAL_STREAM names our stderr), each line starts with the sd-daemon
 * "<N>" priority prefix; otherwise lines are plain text with a level word.
 */
void log_open(void);
void log_set_level(int level);
int log_get_level(void);
int log_level_from_string(const char *s);

void log_write(int level, const char *fmt, ...)
        __attribute__((format(printf, 2, 3)));

#define log_err(...)     log_write(LOG_ERR, __VA_ARGS__)
#define log_warning(...) log_write(LOG_WARNING, __VA_ARGS__)
#define log_notice(...)  log_write(LOG_NOTICE, __VA_ARGS__)
#define log_info(...)    log_write(LOG_INFO, __VA_ARGS__)
#define log_debug(...)                                          \
    do {                                                        \
        if (log_get_level() >= LOG_DEBUG)                       \
            log_write(LOG_DEBUG, __VA_ARGS__);                  \
    } while (0)
