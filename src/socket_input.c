/* SPDX-License-Identifier: MIT */
/*
 * /run/auditd.sock: the listening socket, one connection per writer, the
 * split of each byte stream into lines and the optional reply stream.
 * What a line means is the pipeline's business; this file only frames
 * it, says who wrote it and, when asked, tells the writer what became of it.
 *
 * Protocol: a writer connects to the stream socket and sends JSON objects,
 * one per line, each ended by '\n'.  The daemon reads as fast as the spool
 * takes events.  A line longer than max_event_size is handed on truncated
 * (it becomes a reject) and the rest of it is skipped up to the next '\n';
 * bytes after the last '\n' when the writer hangs up are a partial line,
 * counted and dropped, since the writer never finished that event.  Who
 * wrote a line is what the kernel says (SO_PEERCRED) at connect time;
 * nothing in the stream can change it.
 *
 * Acknowledgements are opt-in.  A writer that wants them sends, as its
 * very first line, exactly
 *
 *     {"_aaas_hello":{"ack":true}}
 *
 * and the daemon answers at once with {"_aaas_hello":{"ack":true,
 * "version":1}}.  From then on it writes one reply line per event, in the
 * order the events were sent, each only once the spool has synced it:
 *
 *     {"_aaas_ack":{"seq":17,"status":"accepted"}}
 *     {"_aaas_ack":{"seq":18,"status":"rejected","reason":"..."}}
 *
 * A rejected event is spooled and delivered as a reject record too, so a
 * rejection carries a sequence number as well.  A first line whose first
 * member is "_aaas_hello" but that is not the line above gets
 * {"_aaas_hello":{"error":"..."}} and the connection is closed: a writer
 * that asked for replies must not be left waiting for ones it will never
 * get.  Writers that do not say hello are never written to.  Replies wait
 * in a small buffer per connection; when the writer does not read them
 * and the buffer fills, the daemon stops reading from that writer, which
 * then blocks in the kernel, rather than queueing without bound.  Once a
 * writer has shut down its sending side, the connection stays until its
 * last reply is written.  An event whose reply never came (the daemon
 * stopped first) may or may not be spooled: send it again.
 */
#include "socket_input.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/un.h>
#include <unistd.h>

#include <linux/sockios.h>
#include <systemd/sd-daemon.h>
#include <systemd/sd-login.h>

#include "event.h"
#include "log.h"

/* Linux 6.5; older kernels refuse it and the names go unchecked. */
#ifndef SO_PEERPIDFD
#define SO_PEERPIDFD 77
#endif

/*
 * One read per wake-up per connection, so a busy writer cannot starve
 * the others: level-triggered epoll brings us back for the rest.  It is
 * also the most a connection can add to the held bytes past max_buffer.
 */
#define SOCKET_READ_SIZE (64u * 1024u)

/*
 * Over max_buffer, a writer holding a line of SOCKET_HOLD_MIN bytes or
 * more is not read until memory frees, and the others read at most
 * SOCKET_SMALL_READ at a time: together that keeps what the writers hold
 * below max_buffer plus about 16 KiB per connection, while writers of
 * ordinary small events go on as before.
 */
#define SOCKET_HOLD_MIN (8u * 1024u)
#define SOCKET_SMALL_READ (4u * 1024u)

/*
 * Replies per connection.  A sync covers a whole burst, so a few hundred
 * outstanding events keep a pipelining writer busy; past that it waits.
 */
#define SOCKET_ACK_BUF (16u * 1024u)
#define SOCKET_ACK_MAX 512u
/* A reason is cut to this many bytes, and may grow 6-fold escaped. */
#define SOCKET_REASON_MAX 160u
#define SOCKET_REPLY_MAX (96u + 6u * SOCKET_REASON_MAX)

#define SOCKET_HELLO "{\"_aaas_hello\":{\"ack\":true}}"
#define SOCKET_HELLO_PREFIX "{\"_aaas_hello\":"
#define SOCKET_HELLO_REPLY "{\"_aaas_hello\":{\"ack\":true,\"version\":1}}\n"

struct socket_ack {
    uint64_t seq;
    size_t end;                 /* offset in buf just past its reply */
};

/* Reply lines: [0, ready) may be written, [ready, len) wait for a sync. */
struct socket_acks {
    char buf[SOCKET_ACK_BUF];
    size_t len;
    size_t ready;
    struct socket_ack ring[SOCKET_ACK_MAX];     /* not yet durable */
    unsigned head;
    unsigned count;
};

struct socket_conn {
    struct socket_input *owner;
    struct socket_conn *prev, *next;
    sd_event_source *io;
    int fd;
    struct ucred cred;
    char *comm, *exe, *unit, *user_unit;    /* NULL when not found */
    char *pending;              /* bytes of an unfinished line, and after
                                 * back-pressure lines not yet taken */
    size_t pending_len;
    size_t pending_cap;
    uint64_t last_line_usec;    /* CLOCK_MONOTONIC of the last line */
    struct socket_acks *acks;   /* NULL unless the writer said hello */
    bool greeted;               /* past the first line */
    bool discarding;            /* skipping the rest of an over-long line */
    bool blocked;               /* the pipeline said -EAGAIN, or no room
                                 * for the reply */
    bool ack_full;              /* blocked for want of reply room */
    bool starved;               /* over max_buffer: not read for now */
    bool hup;                   /* writer hung up: read to the end */
    bool want_out;              /* replies wait for the socket to drain */
    bool eof;                   /* writer shut down; replies still due */
};

struct socket_input {
    struct socket_input_options opts;
    char *path;
    char *group;
    sd_event_source *listen_io;
    sd_event_source *idle_timer;
    int listen_fd;
    bool owns_path;             /* we created the file and remove it */
    bool paused;
    bool draining;
    struct socket_conn *conns;
    unsigned n_conns;
    unsigned n_starved;
    size_t buffered;            /* sum of pending_cap */
    char *rbuf;                 /* shared read buffer */
    struct socket_input_stats stats;
};

static int socket_conn_io(sd_event_source *es, int fd, uint32_t revents,
                          void *userdata);
static void socket_wake_starved(struct socket_input *s);

static uint64_t
socket_now(const struct socket_input *s)
{
    uint64_t now = 0;

    (void)sd_event_now(s->opts.event, CLOCK_MONOTONIC, &now);
    return now;
}

static void
socket_conn_free(struct socket_conn *c)
{
    struct socket_input *s = c->owner;

    if (c->pending_len > 0 && !c->discarding) {
        s->stats.partial_lines++;
        log_info("socket: writer pid %ld uid %lu hung up in the middle of "
                 "a line, dropping %zu bytes", (long)c->cred.pid,
                 (unsigned long)c->cred.uid, c->pending_len);
    }
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    s->n_conns--;
    if (c->starved)
        s->n_starved--;
    s->buffered -= c->pending_cap;

    sd_event_source_disable_unref(c->io);
    if (c->fd >= 0)
        close(c->fd);
    free(c->pending);
    free(c->acks);
    free(c->comm);
    free(c->exe);
    free(c->unit);
    free(c->user_unit);
    free(c);
    socket_wake_starved(s);
}

/* Replaces c's pending buffer, keeping the budget's count right. */
static void
socket_conn_set_pending(struct socket_conn *c, char *buf, size_t len,
                        size_t cap)
{
    c->owner->buffered -= c->pending_cap;
    c->pending = buf;
    c->pending_len = len;
    c->pending_cap = cap;
    c->owner->buffered += cap;
}

static int
socket_conn_keep(struct socket_conn *c, const char *p, size_t n)
{
    size_t need = c->pending_len + n;

    if (need > c->pending_cap) {
        size_t cap = c->pending_cap ? c->pending_cap : 1024;
        char *q;

        while (cap < need)
            cap *= 2;
        q = realloc(c->pending, cap);
        if (!q)
            return -ENOMEM;
        socket_conn_set_pending(c, q, c->pending_len, cap);
    }
    memcpy(c->pending + c->pending_len, p, n);
    c->pending_len = need;
    return 0;
}

/* JSON string body of a reason: ASCII only, so a cut cannot split a
 * UTF-8 sequence, and control characters escaped. */
static size_t
socket_put_reason(char *o, const char *reason)
{
    static const char hex[] = "0123456789abcdef";
    char *start = o;

    for (size_t i = 0; reason[i] && i < SOCKET_REASON_MAX; i++) {
        unsigned char ch = (unsigned char)reason[i];

        if (ch >= 0x80) {
            *o++ = '?';
        } else if (ch == '"' || ch == '\\') {
            *o++ = '\\';
            *o++ = (char)ch;
        } else if (ch < 0x20) {
            memcpy(o, "\\u00", 4);
            o[4] = hex[ch >> 4];
            o[5] = hex[ch & 15];
            o += 6;
        } else {
            *o++ = (char)ch;
        }
    }
    return (size_t)(o - start);
}

static bool
socket_acks_room(const struct socket_acks *a)
{
    return a->count < SOCKET_ACK_MAX &&
           SOCKET_ACK_BUF - a->len >= SOCKET_REPLY_MAX;
}

static void
socket_acks_push(struct socket_acks *a, uint64_t seq, const char *reason)
{
    char *o = a->buf + a->len;
    int n;

    n = snprintf(o, SOCKET_REPLY_MAX, "{\"_aaas_ack\":{\"seq\":%llu,"
                 "\"status\":\"%s\"", (unsigned long long)seq,
                 reason ? "rejected" : "accepted");
    o += n;
    if (reason) {
        memcpy(o, ",\"reason\":\"", 11);
        o += 11;
        o += socket_put_reason(o, reason);
        *o++ = '"';
    }
    memcpy(o, "}}\n", 3);
    o += 3;
    a->len = (size_t)(o - a->buf);
    a->ring[(a->head + a->count) % SOCKET_ACK_MAX] =
            (struct socket_ack){ .seq = seq, .end = a->len };
    a->count++;
}

static void
socket_acks_put_ready(struct socket_acks *a, const char *text, size_t n)
{
    memcpy(a->buf + a->len, text, n);
    a->len += n;
    if (a->count == 0)
        a->ready = a->len;
}

static void
socket_conn_update(struct socket_conn *c)
{
    struct socket_input *s = c->owner;
    bool in = !s->paused && !c->blocked && !c->starved && !c->eof;
    uint32_t events = (in ? EPOLLIN : 0) | (c->want_out ? EPOLLOUT : 0);

    /* A starved writer that hangs up must still be noticed. */
    if (c->starved && !s->paused && !c->blocked)
        events |= EPOLLRDHUP;

    if (events)
        (void)sd_event_source_set_io_events(c->io, events);
    (void)sd_event_source_set_enabled(c->io,
                                      events ? SD_EVENT_ON : SD_EVENT_OFF);
}

/*
 * The first line of a connection: a hello turns replies on.  Returns 1
 * when the line was a hello (consumed), 0 for an ordinary line, or
 * -EPROTO for a hello we do not understand.
 */
static int
socket_conn_hello(struct socket_conn *c, const char *p, size_t n)
{
    static const char bad[] = "{\"_aaas_hello\":{\"error\":\"expected "
                              "{\\\"_aaas_hello\\\":{\\\"ack\\\":true}}\"}}\n";
    size_t plen = sizeof(SOCKET_HELLO_PREFIX) - 1;

    c->greeted = true;
    if (n < plen || memcmp(p, SOCKET_HELLO_PREFIX, plen) != 0)
        return 0;
    while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t' || p[n - 1] == '\r'))
        n--;
    if (n != sizeof(SOCKET_HELLO) - 1 || memcmp(p, SOCKET_HELLO, n) != 0) {
        /* Best effort: the connection closes whether or not it arrives. */
        (void)send(c->fd, bad, sizeof(bad) - 1, MSG_DONTWAIT | MSG_NOSIGNAL);
        return -EPROTO;
    }
    c->acks = calloc(1, sizeof(*c->acks));
    if (!c->acks)
        return -ENOMEM;
    socket_acks_put_ready(c->acks, SOCKET_HELLO_REPLY,
                          sizeof(SOCKET_HELLO_REPLY) - 1);
    c->want_out = true;
    return 1;
}

static int
socket_emit(struct socket_conn *c, const char *p, size_t n, bool truncated)
{
    struct socket_input *s = c->owner;
    struct socket_line l = {
        .data = p,
        .len = n,
        .truncated = truncated,
        .pid = c->cred.pid,
        .uid = c->cred.uid,
        .gid = c->cred.gid,
        .comm = c->comm,
        .exe = c->exe,
        .unit = c->unit,
        .user_unit = c->user_unit,
    };
    const char *reason = NULL;
    uint64_t seq;
    int r;

    if (!c->greeted && !truncated) {
        r = socket_conn_hello(c, p, n);
        if (r != 0)
            return r;
    }
    c->greeted = true;
    if (c->acks && !socket_acks_room(c->acks)) {
        c->ack_full = true;
        return -EAGAIN;
    }

    r = s->opts.line_fn(s->opts.userdata, &l, &seq, &reason);
    if (r < 0)
        return r;
    c->last_line_usec = socket_now(s);
    if (c->acks)
        socket_acks_push(c->acks, seq, reason);
    return 0;
}

/*
 * Frames [p, p + n) into lines.  Returns the number of bytes consumed; on
 * back-pressure that is short of n and c->blocked is set.  Bytes of an
 * unfinished line at the end are consumed into c->pending.  A negative
 * errno other than -EAGAIN means the connection must be closed.
 */
static ssize_t
socket_conn_frame(struct socket_conn *c, const char *p, size_t n)
{
    size_t max = c->owner->opts.max_event_size;
    size_t done = 0;
    int r;

    while (done < n) {
        const char *start = p + done;
        size_t left = n - done;
        const char *nl = memchr(start, '\n', left);
        size_t len = nl ? (size_t)(nl - start) : left;

        if (c->discarding) {
            if (!nl)
                return (ssize_t)n;
            c->discarding = false;
            done += len + 1;
            continue;
        }

        if (!nl) {
            if (len > max) {
                r = socket_emit(c, start, max, true);
                if (r < 0)
                    goto blocked;
                c->discarding = true;
                return (ssize_t)n;
            }
            r = socket_conn_keep(c, start, len);
            if (r < 0)
                return r;
            return (ssize_t)n;
        }

        r = len > max ? socket_emit(c, start, max, true)
                      : socket_emit(c, start, len, false);
        if (r < 0)
            goto blocked;
        done += len + 1;
    }
    return (ssize_t)done;

blocked:
    if (r == -EPROTO || r == -ENOMEM)
        return r;
    c->blocked = true;
    return (ssize_t)done;
}

/*
 * Offers the pending bytes (an unfinished line plus, after back-pressure,
 * lines not yet taken) again.  Returns 0 when they are all taken, -EAGAIN
 * when blocked again, another negative errno to close the connection.
 */
static int
socket_conn_drain(struct socket_conn *c)
{
    ssize_t used;

    c->blocked = false;
    if (c->pending_len == 0)
        return 0;

    /*
     * Frame from a private copy: socket_conn_frame() may append a new
     * partial line to c->pending while it runs.
     */
    char *buf = c->pending;
    size_t len = c->pending_len;
    size_t cap = c->pending_cap;

    c->owner->buffered -= cap;
    c->pending = NULL;
    c->pending_len = c->pending_cap = 0;
    used = socket_conn_frame(c, buf, len);
    if (used < 0) {
        free(buf);
        return (int)used;
    }
    if (c->blocked) {
        /* Put back what was not taken, ahead of anything framed since. */
        size_t rest_len = len - (size_t)used;

        memmove(buf, buf + used, rest_len);
        c->owner->buffered += cap;
        free(c->pending);
        c->owner->buffered -= c->pending_cap;
        c->pending = buf;
        c->pending_len = rest_len;
        c->pending_cap = cap;
        return -EAGAIN;
    }
    free(buf);
    socket_wake_starved(c->owner);
    return 0;
}

/* Re-offers held lines after a block is lifted; false if c was freed. */
static bool
socket_conn_unblock(struct socket_conn *c)
{
    int r;

    c->ack_full = false;
    r = socket_conn_drain(c);
    if (r < 0 && r != -EAGAIN) {
        socket_conn_free(c);
        return false;
    }
    socket_conn_update(c);
    return true;
}

/* Writes the replies that are ready.  Returns false if c was freed. */
static bool
socket_conn_flush(struct socket_conn *c)
{
    struct socket_acks *a = c->acks;
    ssize_t n;

    while (a->ready > 0) {
        n = send(c->fd, a->buf, a->ready, MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && errno == EAGAIN)
            break;
        if (n < 0) {
            log_debug("socket: cannot reply to writer pid %ld: %s, closing "
                      "connection", (long)c->cred.pid, strerror(errno));
            socket_conn_free(c);
            return false;
        }
        memmove(a->buf, a->buf + n, a->len - (size_t)n);
        a->len -= (size_t)n;
        a->ready -= (size_t)n;
        for (unsigned i = 0; i < a->count; i++)
            a->ring[(a->head + i) % SOCKET_ACK_MAX].end -= (size_t)n;
    }
    c->want_out = a->ready > 0;

    if (c->eof && a->len == 0) {
        socket_conn_free(c);
        return false;
    }
    if (c->ack_full && socket_acks_room(a) && !c->owner->paused)
        return socket_conn_unblock(c);
    socket_conn_update(c);
    return true;
}

static void
socket_conn_ack(struct socket_conn *c, uint64_t durable)
{
    struct socket_acks *a = c->acks;

    while (a->count > 0 && a->ring[a->head].seq <= durable) {
        a->ready = a->ring[a->head].end;
        a->head = (a->head + 1) % SOCKET_ACK_MAX;
        a->count--;
        c->owner->stats.acks_sent++;
    }
    if (a->ready > 0 || c->ack_full)
        (void)socket_conn_flush(c);
}

/*
 * Reads once and frames what came.  Returns 1 when more may follow, 0
 * when the connection has nothing more for now, -1 when c was freed.
 */
static int
socket_conn_read(struct socket_conn *c)
{
    struct socket_input *s = c->owner;
    bool over = s->buffered >= s->opts.max_buffer;
    ssize_t used;
    ssize_t n;

    if (over && c->pending_len >= SOCKET_HOLD_MIN && !c->hup) {
        if (!c->starved) {
            c->starved = true;
            s->n_starved++;
        }
        socket_conn_update(c);
        return 0;
    }

    n = read(c->fd, s->rbuf, over ? SOCKET_SMALL_READ : SOCKET_READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        log_info("socket: read from writer pid %ld failed: %s, closing "
                 "connection", (long)c->cred.pid, strerror(errno));
        socket_conn_free(c);
        return -1;
    }
    if (n == 0) {
        if (c->acks && c->acks->len > 0) {
            c->eof = true;
            socket_conn_update(c);
            return 0;
        }
        socket_conn_free(c);
        return -1;
    }

    if (c->pending_len > 0) {
        /* Part of a line is waiting: join it, then frame the whole. */
        used = socket_conn_keep(c, s->rbuf, (size_t)n);
        if (used >= 0)
            used = socket_conn_drain(c);
        if (used == -EAGAIN)
            used = 0;
    } else {
        used = socket_conn_frame(c, s->rbuf, (size_t)n);
        if (used >= 0 && c->blocked)
            used = socket_conn_keep(c, s->rbuf + used, (size_t)(n - used));
    }
    if (used < 0) {
        if (used == -ENOMEM)
            log_err("socket: out of memory for writer pid %ld, closing "
                    "connection", (long)c->cred.pid);
        else
            log_info("socket: writer pid %ld sent a hello that is not "
                     "understood, closing connection", (long)c->cred.pid);
        socket_conn_free(c);
        return -1;
    }
    if (c->acks && c->acks->ready > 0 && !socket_conn_flush(c))
        return -1;
    socket_conn_update(c);
    return c->blocked ? 0 : 1;
}

static int
socket_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
    struct socket_conn *c = userdata;

    if ((revents & (EPOLLOUT | EPOLLHUP | EPOLLERR)) && c->acks &&
        !socket_conn_flush(c))
        return 0;
    if ((revents & (EPOLLRDHUP | EPOLLHUP)) && c->starved) {
        /* What is left is bounded by the socket buffer: take it. */
        c->hup = true;
        c->starved = false;
        c->owner->n_starved--;
    }
    if (revents & (EPOLLIN | EPOLLHUP | EPOLLERR | EPOLLRDHUP) &&
        !c->blocked && !c->starved && !c->eof && !c->owner->paused)
        (void)socket_conn_read(c);
    return 0;
}

/* Called whenever held bytes shrink: lets starved readers try again. */
static void
socket_wake_starved(struct socket_input *s)
{
    if (s->n_starved == 0 || s->buffered >= s->opts.max_buffer)
        return;
    for (struct socket_conn *c = s->conns; c; c = c->next) {
        if (!c->starved)
            continue;
        c->starved = false;
        s->n_starved--;
        socket_conn_update(c);
    }
}

/* Reads a small /proc file into a string without its trailing newline. */
static char *
socket_read_proc(const char *path)
{
    char buf[256];
    ssize_t n;
    int fd;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return NULL;
    n = read(fd, buf, sizeof(buf) - 1);
    close(fd);
    if (n <= 0)
        return NULL;
    while (n > 0 && buf[n - 1] == '\n')
        n--;
    buf[n] = '\0';
    return strdup(buf);
}

/* Names end up in JSON: anything that is not UTF-8 is masked. */
static char *
socket_clean_name(char *s)
{
    if (s && !event_utf8_valid(s, strlen(s)))
        for (char *p = s; *p; p++)
            if ((unsigned char)*p >= 0x80)
                *p = '?';
    return s;
}

/*
 * Looks up what the pid leads to.  The kernel's pid is only a number: the
 * writer may have exited and the pid been reused before we look.  A pidfd
 * from the same connection pins the process, so when it is still alive
 * after the lookups they describe the writer; when it is gone the names
 * are dropped, and the event carries pid, uid and gid alone.
 */
static void
socket_conn_lookup(struct socket_conn *c)
{
    char path[64], exe[PATH_MAX];
    pid_t pid = c->cred.pid;
    socklen_t len = sizeof(int);
    int pidfd = -1;
    ssize_t n;

    if (pid <= 0)
        return;
    if (getsockopt(c->fd, SOL_SOCKET, SO_PEERPIDFD, &pidfd, &len) < 0)
        pidfd = -1;

    (void)snprintf(path, sizeof(path), "/proc/%ld/comm", (long)pid);
    c->comm = socket_clean_name(socket_read_proc(path));
    (void)snprintf(path, sizeof(path), "/proc/%ld/exe", (long)pid);
    n = readlink(path, exe, sizeof(exe) - 1);
    if (n > 0) {
        exe[n] = '\0';
        c->exe = socket_clean_name(strdup(exe));
    }
    if (sd_pid_get_unit(pid, &c->unit) < 0)
        c->unit = NULL;
    if (sd_pid_get_user_unit(pid, &c->user_unit) < 0)
        c->user_unit = NULL;
    (void)socket_clean_name(c->unit);
    (void)socket_clean_name(c->user_unit);

    if (pidfd >= 0) {
        if (syscall(SYS_pidfd_send_signal, pidfd, 0, NULL, 0) < 0 &&
            errno == ESRCH) {
            log_debug("socket: writer pid %ld exited before its names were "
                      "read, recording its ids only", (long)pid);
            free(c->comm);
            free(c->exe);
            free(c->unit);
            free(c->user_unit);
            c->comm = c->exe = c->unit = c->user_unit = NULL;
        }
        close(pidfd);
    }
}

static int
socket_accept_io(sd_event_source *es, int fd, uint32_t revents,
                 void *userdata)
{
    struct socket_input *s = userdata;
    struct socket_conn *c;
    socklen_t len;
    int cfd, r;

    cfd = accept4(fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
    if (cfd < 0) {
        if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
            log_warning("socket: accept on '%s' failed: %s, ignoring",
                        s->path, strerror(errno));
        return 0;
    }

    if (s->n_conns >= s->opts.max_connections) {
        s->stats.refused++;
        log_warning("socket: %u connections open on '%s', refusing a new "
                    "one", s->n_conns, s->path);
        close(cfd);
        return 0;
    }

    c = calloc(1, sizeof(*c));
    if (!c) {
        close(cfd);
        return 0;
    }
    c->owner = s;
    c->fd = cfd;

    len = sizeof(c->cred);
    if (getsockopt(cfd, SOL_SOCKET, SO_PEERCRED, &c->cred, &len) < 0) {
        log_warning("socket: cannot read peer credentials on '%s': %s, "
                    "closing connection", s->path, strerror(errno));
        close(cfd);
        free(c);
        return 0;
    }

    r = sd_event_add_io(s->opts.event, &c->io, cfd, EPOLLIN,
                        socket_conn_io, c);
    if (r < 0) {
        log_warning("socket: cannot watch connection from pid %ld: %s, "
                    "closing it", (long)c->cred.pid, strerror(-r));
        close(cfd);
        free(c);
        return 0;
    }
    socket_conn_lookup(c);
    c->last_line_usec = socket_now(s);

    c->next = s->conns;
    if (s->conns)
        s->conns->prev = c;
    s->conns = c;
    s->n_conns++;
    s->stats.connections++;
    socket_conn_update(c);
    log_debug("socket: writer pid %ld uid %lu gid %lu connected",
              (long)c->cred.pid, (unsigned long)c->cred.uid,
              (unsigned long)c->cred.gid);
    return 0;
}

/*
 * Closes writers that sent no complete line for idle_timeout.  Writers
 * the daemon is not reading (paused, blocked, waiting for replies) are
 * not idle by their own doing and are left alone.
 */
static int
socket_idle_cb(sd_event_source *es, uint64_t usec, void *userdata)
{
    struct socket_input *s = userdata;
    uint64_t limit = (uint64_t)s->opts.idle_timeout_ms * 1000u;
    struct socket_conn *c, *next;

    for (c = s->conns; c && !s->paused; c = next) {
        next = c->next;
        if (c->blocked || c->eof || (c->acks && c->acks->len > 0))
            continue;
        if (usec - c->last_line_usec < limit)
            continue;
        s->stats.idle_closed++;
        log_info("socket: writer pid %ld uid %lu sent no complete line for "
                 "%u ms, closing connection", (long)c->cred.pid,
                 (unsigned long)c->cred.uid, s->opts.idle_timeout_ms);
        socket_conn_free(c);
    }
    (void)sd_event_source_set_time(es, usec + limit / 4);
    return 0;
}

/* A listening socket systemd passed us for our path, or -1. */
static int
socket_from_systemd(const char *path)
{
    int n = sd_listen_fds(0);

    for (int i = 0; i < n; i++) {
        int fd = SD_LISTEN_FDS_START + i;

        if (sd_is_socket_unix(fd, SOCK_STREAM, 1, path, 0) > 0)
            return fd;
    }
    return -1;
}

static int
socket_bind(struct socket_input *s, const struct sockaddr_un *sa)
{
    int fd, r;

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;

    /*
     * A socket file that nobody listens on is left over from a daemon
     * that died: replace it.  One that answers belongs to a live daemon.
     */
    if (connect(fd, (const struct sockaddr *)sa, sizeof(*sa)) == 0) {
        close(fd);
        return -EADDRINUSE;
    }
    if (errno == ECONNREFUSED) {
        struct stat st;

        if (lstat(s->path, &st) == 0 && S_ISSOCK(st.st_mode))
            (void)unlink(s->path);
    }
    close(fd);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (bind(fd, (const struct sockaddr *)sa, sizeof(*sa)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    s->owns_path = true;
    if (listen(fd, SOMAXCONN) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

static int
socket_set_owner(struct socket_input *s)
{
    if (chmod(s->path, s->opts.mode) < 0)
        return -errno;
    if (s->group) {
        struct group *gr = getgrnam(s->group);

        if (!gr)
            return -ENOENT;
        if (chown(s->path, (uid_t)-1, gr->gr_gid) < 0)
            return -errno;
    }
    return 0;
}

int
socket_input_new(const struct socket_input_options *o,
                 struct socket_input **ret)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    struct socket_input *s;
    int r;

    if (strlen(o->path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, o->path);

    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->opts = *o;
    s->listen_fd = -1;
    s->path = strdup(o->path);
    s->group = o->group ? strdup(o->group) : NULL;
    s->rbuf = malloc(SOCKET_READ_SIZE);
    if (!s->path || (o->group && !s->group) || !s->rbuf) {
        r = -ENOMEM;
        goto fail;
    }
    s->opts.path = s->path;
    s->opts.group = s->group;

    s->listen_fd = socket_from_systemd(s->path);
    if (s->listen_fd < 0) {
        r = socket_bind(s, &sa);
        if (r < 0)
            goto fail;
        s->listen_fd = r;
        r = socket_set_owner(s);
        if (r < 0)
            goto fail;
    }

    r = sd_event_add_io(o->event, &s->listen_io, s->listen_fd, EPOLLIN,
                        socket_accept_io, s);
    if (r < 0)
        goto fail;

    if (o->idle_timeout_ms > 0) {
        uint64_t quarter = (uint64_t)o->idle_timeout_ms * 250u;

        r = sd_event_add_time_relative(o->event, &s->idle_timer,
                                       CLOCK_MONOTONIC, quarter, quarter / 4,
                                       socket_idle_cb, s);
        if (r < 0)
            goto fail;
        (void)sd_event_source_set_enabled(s->idle_timer, SD_EVENT_ON);
    }

    *ret = s;
    return 0;

fail:
    socket_input_free(s);
    return r;
}

struct socket_input *
socket_input_free(struct socket_input *s)
{
    if (!s)
        return NULL;
    while (s->conns)
        socket_conn_free(s->conns);
    sd_event_source_disable_unref(s->listen_io);
    sd_event_source_disable_unref(s->idle_timer);
    if (s->listen_fd >= 0)
        close(s->listen_fd);
    if (s->owns_path)
        (void)unlink(s->path);
    free(s->rbuf);
    free(s->path);
    free(s->group);
    free(s);
    return NULL;
}

void
socket_input_pause(struct socket_input *s)
{
    if (s->paused)
        return;
    s->paused = true;
    (void)sd_event_source_set_enabled(s->listen_io, SD_EVENT_OFF);
    for (struct socket_conn *c = s->conns; c; c = c->next)
        socket_conn_update(c);
}

void
socket_input_resume(struct socket_input *s)
{
    struct socket_conn *c, *next;

    uint64_t now = socket_now(s);

    s->paused = false;
    if (!s->draining)
        (void)sd_event_source_set_enabled(s->listen_io, SD_EVENT_ON);
    for (c = s->conns; c; c = next) {
        next = c->next;
        /* Time spent paused was ours, not the writer's. */
        c->last_line_usec = now;
        if (c->blocked)
            (void)socket_conn_unblock(c);
        else
            socket_conn_update(c);
    }
}

void
socket_input_durable(struct socket_input *s, uint64_t seq)
{
    struct socket_conn *c, *next;

    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->acks)
            socket_conn_ack(c, seq);
    }
}

/* Reads up to what was queued when called; false if c was freed. */
static bool
socket_conn_drain_queued(struct socket_conn *c)
{
    int queued = 0;
    int r;

    if (ioctl(c->fd, SIOCINQ, &queued) < 0)
        return true;
    /*
     * Each read takes at most SOCKET_READ_SIZE; the count bounds the work
     * for a writer that keeps writing while we stop.
     */
    for (int reads = queued / (int)SOCKET_READ_SIZE + 2; reads > 0; reads--) {
        if (c->blocked || c->eof)
            return true;
        r = socket_conn_read(c);
        if (r < 0)
            return false;
        if (r == 0)
            return true;
    }
    return true;
}

void
socket_input_drain(struct socket_input *s)
{
    struct socket_conn *c, *next;

    s->draining = true;
    (void)sd_event_source_set_enabled(s->listen_io, SD_EVENT_OFF);
    /* Holding memory no longer matters: everything is let in once. */
    s->opts.max_buffer = SIZE_MAX;
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->starved) {
            c->starved = false;
            s->n_starved--;
        }
        if (!s->paused)
            (void)socket_conn_drain_queued(c);
    }
}

void
socket_input_stats(const struct socket_input *s,
                   struct socket_input_stats *ret)
{
    *ret = s->stats;
    ret->open = s->n_conns;
    ret->buffered = s->buffered;
}
