/* SPDX-License-Identifier: MIT */
/*
 * /run/auditd.sock: the listening socket, one connection per writer, and
 * the split of each byte stream into lines.  What a line means is the
 * pipeline's business; this file only frames it and says who wrote it.
 *
 * Protocol: a writer connects to the stream socket and sends JSON objects,
 * one per line, each ended by '\n'.  The daemon reads as fast as the spool
 * takes events and never writes back.  A line longer than max_event_size is
 * handed on truncated (it becomes a reject) and the rest of it is skipped
 * up to the next '\n'; bytes after the last '\n' when the writer hangs up
 * are a partial line, counted and dropped, since the writer never finished
 * that event.  Who wrote a line is what the kernel says (SO_PEERCRED) at
 * connect time; nothing in the stream can change it.
 */
#include "socket_input.h"

#include <errno.h>
#include <grp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <systemd/sd-daemon.h>

#include "log.h"

/* One read per wake-up per connection, so a busy writer cannot starve
 * the others: level-triggered epoll brings us back for the rest. */
#define SOCKET_READ_SIZE (256u * 1024u)

struct socket_conn {
    struct socket_input *owner;
    struct socket_conn *prev, *next;
    sd_event_source *io;
    int fd;
    struct ucred cred;
    char *pending;              /* bytes of an unfinished line */
    size_t pending_len;
    size_t pending_cap;
    bool discarding;            /* skipping the rest of an over-long line */
    bool blocked;               /* the pipeline said -EAGAIN */
};

struct socket_input {
    struct socket_input_options opts;
    char *path;
    char *group;
    sd_event_source *listen_io;
    int listen_fd;
    bool owns_path;             /* we created the file and remove it */
    bool paused;
    struct socket_conn *conns;
    unsigned n_conns;
    char *rbuf;                 /* shared read buffer */
    struct socket_input_stats stats;
};

static int socket_conn_io(sd_event_source *es, int fd, uint32_t revents,
                          void *userdata);

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

    sd_event_source_disable_unref(c->io);
    if (c->fd >= 0)
        close(c->fd);
    free(c->pending);
    free(c);
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
        c->pending = q;
        c->pending_cap = cap;
    }
    memcpy(c->pending + c->pending_len, p, n);
    c->pending_len = need;
    return 0;
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
    };
    uint64_t seq;

    return s->opts.line_fn(s->opts.userdata, &l, &seq);
}

/*
 * Frames [p, p + n) into lines.  Returns the number of bytes consumed; on
 * back-pressure that is short of n and c->blocked is set.  Bytes of an
 * unfinished line at the end are consumed into c->pending.
 */
static size_t
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
                return n;
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
                return n;
            }
            r = socket_conn_keep(c, start, len);
            if (r < 0)
                goto blocked;
            return n;
        }

        r = len > max ? socket_emit(c, start, max, true)
                      : socket_emit(c, start, len, false);
        if (r < 0)
            goto blocked;
        done += len + 1;
    }
    return done;

blocked:
    c->blocked = true;
    return done;
}

/*
 * Offers the pending bytes (an unfinished line plus, after back-pressure,
 * lines not yet taken) again.  Returns 0 when they are all taken.
 */
static int
socket_conn_drain(struct socket_conn *c)
{
    size_t used;

    if (c->pending_len == 0)
        return 0;

    /*
     * Frame from a private copy: socket_conn_frame() may append a new
     * partial line to c->pending while it runs.
     */
    char *buf = c->pending;
    size_t len = c->pending_len;

    c->pending = NULL;
    c->pending_len = c->pending_cap = 0;
    c->blocked = false;
    used = socket_conn_frame(c, buf, len);
    if (c->blocked) {
        /* Put back what was not taken, ahead of anything framed since. */
        char *rest = buf;
        size_t rest_len = len - used;

        memmove(rest, buf + used, rest_len);
        if (c->pending_len > 0) {
            free(c->pending);
            c->pending = NULL;
            c->pending_len = c->pending_cap = 0;
        }
        c->pending = rest;
        c->pending_len = rest_len;
        c->pending_cap = len;
        return -EAGAIN;
    }
    free(buf);
    return 0;
}

static void
socket_conn_update(struct socket_conn *c)
{
    bool on = !c->owner->paused && !c->blocked;

    (void)sd_event_source_set_enabled(c->io, on ? SD_EVENT_ON : SD_EVENT_OFF);
}

static int
socket_conn_io(sd_event_source *es, int fd, uint32_t revents, void *userdata)
{
    struct socket_conn *c = userdata;
    struct socket_input *s = c->owner;
    size_t used;
    ssize_t n;

    n = read(fd, s->rbuf, SOCKET_READ_SIZE);
    if (n < 0) {
        if (errno == EAGAIN || errno == EINTR)
            return 0;
        log_info("socket: read from writer pid %ld failed: %s, closing "
                 "connection", (long)c->cred.pid, strerror(errno));
        socket_conn_free(c);
        return 0;
    }
    if (n == 0) {
        socket_conn_free(c);
        return 0;
    }

    if (c->pending_len > 0) {
        /* Part of a line is waiting: join it, then frame the whole. */
        if (socket_conn_keep(c, s->rbuf, (size_t)n) < 0) {
            log_err("socket: out of memory for writer pid %ld, closing "
                    "connection", (long)c->cred.pid);
            socket_conn_free(c);
            return 0;
        }
        (void)socket_conn_drain(c);
        socket_conn_update(c);
        return 0;
    }

    used = socket_conn_frame(c, s->rbuf, (size_t)n);
    if (c->blocked && socket_conn_keep(c, s->rbuf + used,
                                       (size_t)n - used) < 0) {
        log_err("socket: out of memory for writer pid %ld, closing "
                "connection", (long)c->cred.pid);
        socket_conn_free(c);
        return 0;
    }
    socket_conn_update(c);
    return 0;
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

    s->paused = false;
    (void)sd_event_source_set_enabled(s->listen_io, SD_EVENT_ON);
    for (c = s->conns; c; c = next) {
        next = c->next;
        if (c->blocked && socket_conn_drain(c) < 0)
            continue;
        c->blocked = false;
        socket_conn_update(c);
    }
}

void
socket_input_stats(const struct socket_input *s,
                   struct socket_input_stats *ret)
{
    *ret = s->stats;
    ret->open = s->n_conns;
}
