/* SPDX-License-Identifier: MIT */
/*
 * LD_PRELOAD shim for the spool fault tests: makes pwrite() and
 * fdatasync() on spool segment files fail the way a sick disk does, as
 * told by the file named in AAAS_FAULTS.  Other files are left alone.
 *
 * The file holds one word, re-read at every call so a test can change it
 * while the daemon runs: "enospc" or "eio" fail pwrite, "short" makes
 * every pwrite write at most 100 bytes, "sync-eio" fails fdatasync; an
 * empty or missing file injects nothing.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

ssize_t pwrite(int fd, const void *buf, size_t len, off_t off);
int fdatasync(int fd);

static void
faults_mode(char *buf, size_t size)
{
    const char *path = getenv("AAAS_FAULTS");
    ssize_t n = -1;
    int saved = errno, fd;

    buf[0] = '\0';
    if (path) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd >= 0) {
            n = read(fd, buf, size - 1);
            close(fd);
        }
    }
    buf[n > 0 ? n : 0] = '\0';
    buf[strcspn(buf, " \n")] = '\0';
    errno = saved;
}

static int
faults_is_segment(int fd)
{
    char link[64], target[4096];
    ssize_t n;

    (void)snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
    n = readlink(link, target, sizeof(target) - 1);
    if (n < 4)
        return 0;
    target[n] = '\0';
    return strcmp(target + n - 4, ".seg") == 0;
}

ssize_t
pwrite(int fd, const void *buf, size_t len, off_t off)
{
    static ssize_t (*real)(int, const void *, size_t, off_t);
    char mode[32];

    if (!real)
        real = (ssize_t (*)(int, const void *, size_t, off_t))
                dlsym(RTLD_NEXT, "pwrite");
    if (faults_is_segment(fd)) {
        faults_mode(mode, sizeof(mode));
        if (strcmp(mode, "enospc") == 0) {
            errno = ENOSPC;
            return -1;
        }
        if (strcmp(mode, "eio") == 0) {
            errno = EIO;
            return -1;
        }
        if (strcmp(mode, "short") == 0 && len > 100)
            len = 100;
    }
    return real(fd, buf, len, off);
}

int
fdatasync(int fd)
{
    static int (*real)(int);
    char mode[32];

    if (!real)
        real = (int (*)(int))dlsym(RTLD_NEXT, "fdatasync");
    if (faults_is_segment(fd)) {
        faults_mode(mode, sizeof(mode));
        if (strcmp(mode, "sync-eio") == 0) {
            errno = EIO;
            return -1;
        }
    }
    return real(fd);
}
