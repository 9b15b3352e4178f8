/* SPDX-License-Identifier: MIT */
/*
 * Load generator for the event socket: N events of a given size over C
 * connections, written in large chunks so that the generator itself
 * costs little next to the daemon it measures.  With --ack each
 * connection asks for acknowledgements and keeps at most ACK_WINDOW
 * events unacknowledged, and the run ends when every event is durable.
 *
 *   loadgen [--ack] SOCKET EVENTS CONNECTIONS SIZE
 */
#include <errno.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

/* Half the daemon's per-connection reply room, so writes never stall. */
#define ACK_WINDOW 256ul
#define ACK_HELLO "{\"_aaas_hello\":{\"ack\":true}}\n"

struct job {
    const char *path;
    unsigned id;
    unsigned long events;
    unsigned size;
    bool ack;
    char rbuf[65536];
    size_t rlen;
};

static int arg_ack;

static int
loadgen_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd;

    fd = socket(AF_UNIX, SOCK_STREAM, 0);
    if (fd < 0)
        return -errno;
    (void)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        int r = -errno;

        close(fd);
        return r;
    }
    return fd;
}

static void
loadgen_write(int fd, const char *buf, size_t len)
{
    size_t off = 0;

    while (off < len) {
        ssize_t w = write(fd, buf + off, len - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            perror("loadgen: write");
            exit(1);
        }
        off += (size_t)w;
    }
}

/* Reads reply lines until n acknowledgements came; returns how many. */
static unsigned long
loadgen_read_acks(struct job *j, int fd, unsigned long n)
{
    unsigned long got = 0;

    while (got < n) {
        ssize_t r = read(fd, j->rbuf + j->rlen, sizeof(j->rbuf) - j->rlen);
        char *p = j->rbuf, *nl;

        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            fprintf(stderr, "loadgen: connection closed before all "
                    "acknowledgements\n");
            exit(1);
        }
        j->rlen += (size_t)r;
        while ((nl = memchr(p, '\n', j->rlen - (size_t)(p - j->rbuf)))) {
            if (memmem(p, (size_t)(nl - p), "\"_aaas_ack\"", 11)) {
                if (!memmem(p, (size_t)(nl - p), "\"accepted\"", 10)) {
                    fprintf(stderr, "loadgen: event refused: %.*s\n",
                            (int)(nl - p), p);
                    exit(1);
                }
                got++;
            }
            p = nl + 1;
        }
        j->rlen -= (size_t)(p - j->rbuf);
        memmove(j->rbuf, p, j->rlen);
    }
    return got;
}

static void *
loadgen_run(void *arg)
{
    struct job *j = arg;
    size_t cap = 256 * 1024, len = 0;
    char *buf = malloc(cap + 4096);
    int fd = loadgen_connect(j->path);
    unsigned long outstanding = 0, batch = 0;

    if (fd < 0 || !buf) {
        fprintf(stderr, "loadgen: connect '%s': %s\n", j->path,
                strerror(fd < 0 ? -fd : ENOMEM));
        exit(1);
    }
    if (j->ack)
        loadgen_write(fd, ACK_HELLO, sizeof(ACK_HELLO) - 1);
    for (unsigned long i = 0; i < j->events; i++) {
        int n = snprintf(buf + len, 4096,
                         "{\"actor\":\"user%u\",\"action\":\"read\","
                         "\"resource\":\"patient/%lu\",\"conn\":%u,"
                         "\"n\":%lu,\"pad\":\"", j->id, i, j->id, i);
        size_t pad = j->size > (unsigned)n + 3 ? j->size - (unsigned)n - 3
                                               : 0;

        memset(buf + len + n, 'x', pad);
        memcpy(buf + len + n + pad, "\"}\n", 3);
        len += (size_t)n + pad + 3;
        batch++;
        if (len >= cap || i + 1 == j->events ||
            (j->ack && outstanding + batch >= ACK_WINDOW)) {
            loadgen_write(fd, buf, len);
            len = 0;
            outstanding += batch;
            batch = 0;
        }
        if (j->ack && outstanding >= ACK_WINDOW)
            outstanding -= loadgen_read_acks(j, fd, outstanding / 2);
    }
    if (j->ack)
        (void)loadgen_read_acks(j, fd, outstanding);
    close(fd);
    free(buf);
    return NULL;
}

int
main(int argc, char **argv)
{
    unsigned long events;
    unsigned conns, size;
    struct timespec t0, t1;
    pthread_t *th;
    struct job *jobs;

    if (argc > 1 && strcmp(argv[1], "--ack") == 0) {
        arg_ack = 1;
        argv++;
        argc--;
    }
    if (argc != 5) {
        fprintf(stderr, "usage: loadgen [--ack] SOCKET EVENTS CONNECTIONS "
                "SIZE\n");
        return 2;
    }
    events = strtoul(argv[2], NULL, 10);
    conns = (unsigned)strtoul(argv[3], NULL, 10);
    size = (unsigned)strtoul(argv[4], NULL, 10);
    if (conns == 0 || size < 100) {
        fprintf(stderr, "loadgen: need at least 1 connection, size >= 100\n");
        return 2;
    }

    th = calloc(conns, sizeof(*th));
    jobs = calloc(conns, sizeof(*jobs));
    (void)clock_gettime(CLOCK_MONOTONIC, &t0);
    for (unsigned i = 0; i < conns; i++) {
        jobs[i].path = argv[1];
        jobs[i].id = i;
        jobs[i].events = events / conns + (i < events % conns);
        jobs[i].size = size;
        jobs[i].ack = arg_ack;
        if (pthread_create(&th[i], NULL, loadgen_run, &jobs[i]) != 0) {
            fprintf(stderr, "loadgen: cannot start thread\n");
            return 1;
        }
    }
    for (unsigned i = 0; i < conns; i++)
        (void)pthread_join(th[i], NULL);
    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("wrote %lu events of %u bytes over %u connections%s in %.3f s\n",
           events, size, conns, arg_ack ? ", all acknowledged" : "",
           (double)(t1.tv_sec - t0.tv_sec) +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(th);
    free(jobs);
    return 0;
}
