/* SPDX-License-Identifier: MIT */
/*
 * The local reject file: holds reject lines until the pipeline flushes
 * them, then appends and syncs.  Which rejects come here, and when a flush
 * happens, is the pipeline's decision.
 */
#include "reject_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Past this the buffer is given back after a flush: idle memory stays low. */
#define REJECT_FILE_KEEP (64u * 1024u)

struct reject_file {
    char *path;
    char *buf;                  /* held lines */
    size_t len;                 /* bytes held */
    size_t done;                /* of those, already written */
    size_t cap;
    size_t lines;               /* lines held */
    uint64_t durable;           /* lines synced since start */
};

static int
reject_file_open(const char *path, int *ret)
{
    int fd;

    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC | O_NOCTTY,
              0640);
    if (fd < 0)
        return -errno;
    *ret = fd;
    return 0;
}

int
reject_file_new(const char *path, struct reject_file **ret)
{
    struct reject_file *f;
    int fd = -1, r;

    r = reject_file_open(path, &fd);
    if (r < 0)
        return r;
    (void)close(fd);

    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return -ENOMEM;
    }
    *ret = f;
    return 0;
}

struct reject_file *
reject_file_free(struct reject_file *f)
{
    if (!f)
        return NULL;
    free(f->path);
    free(f->buf);
    free(f);
    return NULL;
}

const char *
reject_file_path(const struct reject_file *f)
{
    return f->path;
}

int
reject_file_append(struct reject_file *f, const char *line, size_t len)
{
    size_t cap;
    char *p;

    if (f->len > 0 && f->len + len > REJECT_FILE_BUFFER_MAX)
        return -ENOBUFS;
    if (f->len + len > f->cap) {
        cap = f->cap ? f->cap : 4096;
        while (cap < f->len + len)
            cap *= 2;
        p = realloc(f->buf, cap);
        if (!p)
            return -ENOMEM;
        f->buf = p;
        f->cap = cap;
    }
    memcpy(f->buf + f->len, line, len);
    f->len += len;
    f->lines++;
    return 0;
}

bool
reject_file_pending(const struct reject_file *f)
{
    return f->len > 0;
}

/*
 * Why a sync per flush and not per line: rejects come rarely, but a
 * writer sending nothing but bad lines could make them come in floods,
 * and a flush covers every line of a burst.  Why a sync at all: the
 * pipeline lets file offsets move past a rejected line only after the
 * flush, so a line that was taken from its file is on disk somewhere.
 */
int
reject_file_flush(struct reject_file *f)
{
    ssize_t n;
    int fd = -1, r;

    if (f->len == 0)
        return 0;
    r = reject_file_open(f->path, &fd);
    if (r < 0)
        return r;

    while (f->done < f->len) {
        n = write(fd, f->buf + f->done, f->len - f->done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto out;
        }
        f->done += (size_t)n;
    }
    if (fdatasync(fd) < 0) {
        r = -errno;
        goto out;
    }

    f->durable += f->lines;
    f->lines = 0;
    f->len = f->done = 0;
    if (f->cap > REJECT_FILE_KEEP) {
        free(f->buf);
        f->buf = NULL;
        f->cap = 0;
    }
    r = 0;

out:
    (void)close(fd);
    return r;
}

uint64_t
reject_file_lines(const struct reject_file *f)
{
    return f->durable;
}
