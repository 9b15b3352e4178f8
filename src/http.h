/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#include <curl/curl.h>
#include <systemd/sd-event.h>

/*
 * libcurl's multi interface on the daemon's sd-event loop: one io source
 * per socket curl opens, one timer, and a completion callback per call.
 */
struct http;

struct http_result {
    int error;                  /* 0, or -EIO / -ETIMEDOUT for transport */
    const char *error_text;     /* curl's message when error != 0 */
    bool unsent;                /* failed before a byte of the request
                                 * left: no connection was made */
    long status;                /* HTTP status, 0 without an answer */
    const char *body;           /* response body (NUL-terminated) */
    size_t body_len;
    time_t date;                /* the Date header, 0 when absent */
    const char *request_id;     /* x-amzn-RequestId, "" when absent */
};

typedef void (*http_done_fn)(void *userdata, const struct http_result *res);

struct http_call {
    const char *url;
    const struct curl_slist *headers;
    const void *body;           /* must stay valid until done runs */
    size_t body_len;
    long connect_timeout_ms;
    long timeout_ms;
    long low_speed_time_ms;     /* below 1 byte/s this long: 0 means 30 s */
    const char *ca_file;        /* NULL: the system store */
    const char *proxy;          /* NULL: libcurl's environment rules */
    http_done_fn done;
    void *userdata;
};

int http_new(sd_event *e, struct http **ret);
struct http *http_free(struct http *h);

/* Starts a POST; done runs later from the loop, exactly once. */
int http_post(struct http *h, const struct http_call *call);

/* Calls in flight. */
unsigned http_in_flight(const struct http *h);
