/* SPDX-License-Identifier: MIT */
/*
 * Load generator for the event socket: N events of a given size over C
 * connections, written in large chunks so that the generator itself
 * costs little next to the daemon it measures.
 *
 *   loadgen SOCKET EVENTS CONNECTIONS SIZE
 */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

struct job {
    const char *path;
    unsigned id;
    unsigned long events;
    unsigned size;
};

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

static void *
loadgen_run(void *arg)
{
    struct job *j = arg;
    size_t cap = 256 * 1024, len = 0;
    char *buf = malloc(cap + 4096);
    int fd = loadgen_connect(j->path);

    if (fd < 0 || !buf) {
        fprintf(stderr, "loadgen: connect '%s': %s\n", j->path,
                strerror(fd < 0 ? -fd : ENOMEM));
        exit(1);
    }
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
        if (len >= cap || i + 1 == j->events) {
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
            len = 0;
        }
    }
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

    if (argc != 5) {
        fprintf(stderr, "usage: loadgen SOCKET EVENTS CONNECTIONS SIZE\n");
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
        jobs[i] = (struct job){ argv[1], i, events / conns +
                                (i < events % conns), size };
        if (pthread_create(&th[i], NULL, loadgen_run, &jobs[i]) != 0) {
            fprintf(stderr, "loadgen: cannot start thread\n");
            return 1;
        }
    }
    for (unsigned i = 0; i < conns; i++)
        (void)pthread_join(th[i], NULL);
    (void)clock_gettime(CLOCK_MONOTONIC, &t1);
    printf("wrote %lu events of %u bytes over %u connections in %.3f s\n",
           events, size, conns,
           (double)(t1.tv_sec - t0.tv_sec) +
                   (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    free(th);
    free(jobs);
    return 0;
}
