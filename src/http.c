/* SPDX-License-Identifier: MIT */
/*
 * Glue between libcurl's multi-socket API and sd-event.  It moves bytes
 * and reports outcomes; what a request means and whether to retry it is
 * the sink's decision.  Easy handles are kept for reuse so that
 * connections and TLS sessions stay warm between calls.
 */
#include "http.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* Responses past this size are cut: Firehose answers are a few KiB. */
#define HTTP_BODY_MAX (4u * 1024u * 1024u)
#define HTTP_POOL_MAX 16

struct http_xfer {
    struct http *owner;
    struct http_xfer *next;     /* free list, or the active list */
    struct http_xfer *prev;     /* active list only */
    CURL *easy;
    char errbuf[CURL_ERROR_SIZE];
    char *body;
    size_t body_len;
    size_t body_cap;
    time_t date;
    char request_id[80];
    http_done_fn done;
    void *userdata;
};

struct http {
    sd_event *event;
    CURLM *multi;
    sd_event_source *timer;
    struct http_xfer *pool;     /* idle transfers */
    struct http_xfer *active;   /* transfers in the multi handle */
    unsigned n_pool;
    unsigned in_flight;
};

static size_t
http_write_cb(char *p, size_t size, size_t n, void *userdata)
{
    struct http_xfer *x = userdata;
    size_t len = size * n;

    if (x->body_len + len + 1 > x->body_cap) {
        size_t cap = x->body_cap ? x->body_cap : 4096;
        char *q;

        if (x->body_len + len + 1 > HTTP_BODY_MAX)
            return 0;       /* makes curl fail the transfer */
        while (cap < x->body_len + len + 1)
            cap *= 2;
        q = realloc(x->body, cap);
        if (!q)
            return 0;
        x->body = q;
        x->body_cap = cap;
    }
    memcpy(x->body + x->body_len, p, len);
    x->body_len += len;
    x->body[x->body_len] = '\0';
    return len;
}

/* Keeps the two headers the sink needs: Date (clock skew), request id. */
static size_t
http_header_cb(char *p, size_t size, size_t n, void *userdata)
{
    struct http_xfer *x = userdata;
    size_t len = size * n;
    char line[256];
    char *v;

    if (len >= sizeof(line))
        return len;
    memcpy(line, p, len);
    line[len] = '\0';
    line[strcspn(line, "\r\n")] = '\0';
    v = strchr(line, ':');
    if (!v)
        return len;
    *v++ = '\0';
    v += strspn(v, " \t");

    if (strcasecmp(line, "date") == 0) {
        time_t t = curl_getdate(v, NULL);

        x->date = t > 0 ? t : 0;
    } else if (strcasecmp(line, "x-amzn-requestid") == 0) {
        (void)snprintf(x->request_id, sizeof(x->request_id), "%s", v);
    }
    return len;
}

static struct http_xfer *
http_xfer_get(struct http *h)
{
    struct http_xfer *x = h->pool;

    if (x) {
        h->pool = x->next;
        h->n_pool--;
        curl_easy_reset(x->easy);
        x->body_len = 0;
        return x;
    }
    x = calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    x->easy = curl_easy_init();
    if (!x->easy) {
        free(x);
        return NULL;
    }
    x->owner = h;
    return x;
}

static void
http_xfer_free(struct http_xfer *x)
{
    curl_easy_cleanup(x->easy);
    free(x->body);
    free(x);
}

static void
http_xfer_put(struct http *h, struct http_xfer *x)
{
    if (h->n_pool >= HTTP_POOL_MAX) {
        http_xfer_free(x);
        return;
    }
    x->next = h->pool;
    h->pool = x;
    h->n_pool++;
}

static void
http_unlink(struct http *h, struct http_xfer *x)
{
    if (x->prev)
        x->prev->next = x->next;
    else
        h->active = x->next;
    if (x->next)
        x->next->prev = x->prev;
    x->next = x->prev = NULL;
    h->in_flight--;
}

static void
http_finish(struct http *h, CURL *easy, CURLcode code)
{
    struct http_result res = { 0 };
    struct http_xfer *x = NULL;

    (void)curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
    (void)curl_multi_remove_handle(h->multi, easy);
    http_unlink(h, x);

    if (code != CURLE_OK) {
        res.error = code == CURLE_OPERATION_TIMEDOUT ? -ETIMEDOUT : -EIO;
        res.unsent = code == CURLE_COULDNT_CONNECT ||
                     code == CURLE_COULDNT_RESOLVE_HOST ||
                     code == CURLE_COULDNT_RESOLVE_PROXY;
        res.error_text = x->errbuf[0] ? x->errbuf : curl_easy_strerror(code);
    }
    (void)curl_easy_getinfo(easy, CURLINFO_RESPONSE_CODE, &res.status);
    res.body = x->body ? x->body : "";
    res.body_len = x->body_len;
    res.date = x->date;
    res.request_id = x->request_id;

    x->done(x->userdata, &res);
    http_xfer_put(h, x);
}

/* Hands every finished transfer to its owner. */
static void
http_check_done(struct http *h)
{
    CURLMsg *m;
    int left;

    while ((m = curl_multi_info_read(h->multi, &left)))
        if (m->msg == CURLMSG_DONE)
            http_finish(h, m->easy_handle, m->data.result);
}

static int
http_io_cb(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
    struct http *h = userdata;
    int action = 0, running;

    if (revents & (EPOLLIN | EPOLLHUP))
        action |= CURL_CSELECT_IN;
    if (revents & EPOLLOUT)
        action |= CURL_CSELECT_OUT;
    if (revents & EPOLLERR)
        action |= CURL_CSELECT_ERR;

    (void)curl_multi_socket_action(h->multi, fd, action, &running);
    http_check_done(h);
    return 0;
}

static int
http_timer_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct http *h = userdata;
    int running;

    (void)curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0,
                                   &running);
    http_check_done(h);
    return 0;
}

static int
http_socket_cb(CURL *easy, curl_socket_t fd, int what, void *userdata,
               void *socketp)
{
    struct http *h = userdata;
    sd_event_source *io = socketp;
    uint32_t events = 0;
    int r;

    if (what == CURL_POLL_REMOVE) {
        if (io) {
            sd_event_source_disable_unref(io);
            (void)curl_multi_assign(h->multi, fd, NULL);
        }
        return 0;
    }

    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT)
        events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT)
        events |= EPOLLOUT;

    if (io) {
        r = sd_event_source_set_io_events(io, events);
        if (r >= 0)
            r = sd_event_source_set_enabled(io, SD_EVENT_ON);
    } else {
        r = sd_event_add_io(h->event, &io, fd, events, http_io_cb, h);
        if (r >= 0)
            (void)curl_multi_assign(h->multi, fd, io);
    }
    if (r < 0) {
        log_err("http: cannot watch socket %d: %s", fd, strerror(-r));
        return -1;
    }
    return 0;
}

static int
http_timerfunc_cb(CURLM *multi, long timeout_ms, void *userdata)
{
    struct http *h = userdata;
    uint64_t usec;
    int r;

    if (timeout_ms < 0)
        return sd_event_source_set_enabled(h->timer, SD_EVENT_OFF) < 0 ? -1
                                                                       : 0;

    r = sd_event_now(h->event, CLOCK_MONOTONIC, &usec);
    if (r < 0)
        return -1;
    usec += (uint64_t)timeout_ms * 1000;
    r = sd_event_source_set_time(h->timer, usec);
    if (r >= 0)
        r = sd_event_source_set_enabled(h->timer, SD_EVENT_ONESHOT);
    return r < 0 ? -1 : 0;
}

int
http_new(sd_event *e, struct http **ret)
{
    struct http *h;
    int r;

    h = calloc(1, sizeof(*h));
    if (!h)
        return -ENOMEM;
    h->event = e;
    h->multi = curl_multi_init();
    if (!h->multi) {
        free(h);
        return -ENOMEM;
    }

    r = sd_event_add_time(e, &h->timer, CLOCK_MONOTONIC, UINT64_MAX, 0,
                          http_timer_cb, h);
    if (r < 0) {
        http_free(h);
        return r;
    }
    (void)sd_event_source_set_enabled(h->timer, SD_EVENT_OFF);

    (void)curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION,
                            http_socket_cb);
    (void)curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    (void)curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION,
                            http_timerfunc_cb);
    (void)curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    *ret = h;
    return 0;
}

struct http *
http_free(struct http *h)
{
    struct http_xfer *x;

    if (!h)
        return NULL;

    /* Transfers still running are abandoned: their owners are gone too. */
    while ((x = h->active)) {
        (void)curl_multi_remove_handle(h->multi, x->easy);
        http_unlink(h, x);
        http_xfer_free(x);
    }

    while ((x = h->pool)) {
        h->pool = x->next;
        http_xfer_free(x);
    }
    sd_event_source_disable_unref(h->timer);
    (void)curl_multi_cleanup(h->multi);
    free(h);
    return NULL;
}

int
http_post(struct http *h, const struct http_call *call)
{
    struct http_xfer *x;
    CURL *c;

    x = http_xfer_get(h);
    if (!x)
        return -ENOMEM;
    c = x->easy;
    x->errbuf[0] = '\0';
    x->date = 0;
    x->request_id[0] = '\0';
    x->done = call->done;
    x->userdata = call->userdata;

    (void)curl_easy_setopt(c, CURLOPT_URL, call->url);
    (void)curl_easy_setopt(c, CURLOPT_HTTPHEADER, call->headers);
    (void)curl_easy_setopt(c, CURLOPT_POST, 1L);
    (void)curl_easy_setopt(c, CURLOPT_POSTFIELDS, call->body);
    (void)curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE,
                           (curl_off_t)call->body_len);
    (void)curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, http_write_cb);
    (void)curl_easy_setopt(c, CURLOPT_WRITEDATA, x);
    (void)curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, http_header_cb);
    (void)curl_easy_setopt(c, CURLOPT_HEADERDATA, x);
    (void)curl_easy_setopt(c, CURLOPT_ERRORBUFFER, x->errbuf);
    (void)curl_easy_setopt(c, CURLOPT_PRIVATE, x);
    (void)curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    (void)curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS,
                           call->connect_timeout_ms);
    (void)curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, call->timeout_ms);
    /* A call that trickles below 1 byte/s for 30 s is stuck, not slow. */
    (void)curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1L);
    (void)curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME,
                           call->low_speed_time_ms > 0
                                   ? (call->low_speed_time_ms + 999) / 1000
                                   : 30L);
    (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    (void)curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    (void)curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    /* Avoid the 1 s "Expect: 100-continue" stall on large bodies. */
    (void)curl_easy_setopt(c, CURLOPT_EXPECT_100_TIMEOUT_MS, 0L);
    if (call->ca_file)
        (void)curl_easy_setopt(c, CURLOPT_CAINFO, call->ca_file);
    if (call->proxy)
        (void)curl_easy_setopt(c, CURLOPT_PROXY, call->proxy);

    if (curl_multi_add_handle(h->multi, c) != CURLM_OK) {
        http_xfer_put(h, x);
        return -EIO;
    }
    x->prev = NULL;
    x->next = h->active;
    if (h->active)
        h->active->prev = x;
    h->active = x;
    h->in_flight++;
    return 0;
}

unsigned
http_in_flight(const struct http *h)
{
    return h->in_flight;
}
