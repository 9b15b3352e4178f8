/* SPDX-License-Identifier: MIT */
/*
 * aaasctl: the operator's tool.  One table maps each command to its
 * handler; the commands that ask the daemon send one line over the
 * control socket and copy the answer to standard output.
 */
#include <errno.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#define AAASCTL_DEFAULT_SOCKET "/run/aaas/control.sock"

static const char *arg_socket = AAASCTL_DEFAULT_SOCKET;

struct aaasctl_command {
    const char *name;
    int (*run)(int argc, char **argv);
    const char *usage;
};

static int
aaasctl_connect(void)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, r;

    if (strlen(arg_socket) >= sizeof(sa.sun_path)) {
        fprintf(stderr, "aaasctl: socket path '%s' is too long\n",
                arg_socket);
        return -ENAMETOOLONG;
    }
    memcpy(sa.sun_path, arg_socket, strlen(arg_socket) + 1);

    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        r = -errno;
        fprintf(stderr, "aaasctl: cannot make a socket: %s\n",
                strerror(-r));
        return r;
    }
    if (connect(fd, (const struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        fprintf(stderr, "aaasctl: cannot connect to '%s': %s (is aaasd "
                "running, and are you root or in its group?)\n",
                arg_socket, strerror(-r));
        close(fd);
        return r;
    }
    return fd;
}

/* Sends one command line and copies the answer; 0, 1 on any failure. */
static int
aaasctl_ask(const char *cmd)
{
    char buf[8192];
    size_t got = 0;
    bool error = false;
    ssize_t n;
    int fd, rc = 0;

    fd = aaasctl_connect();
    if (fd < 0)
        return 1;
    (void)snprintf(buf, sizeof(buf), "%s\n", cmd);
    if (send(fd, buf, strlen(buf), MSG_NOSIGNAL) < 0) {
        fprintf(stderr, "aaasctl: cannot send to '%s': %s\n", arg_socket,
                strerror(errno));
        rc = 1;
        goto out;
    }

    while ((n = read(fd, buf, sizeof(buf))) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            fprintf(stderr, "aaasctl: cannot read from '%s': %s\n",
                    arg_socket, strerror(errno));
            rc = 1;
            goto out;
        }
        if (got == 0 && (size_t)n >= 7 && memcmp(buf, "error: ", 7) == 0)
            error = true;
        got += (size_t)n;
        (void)fwrite(buf, 1, (size_t)n, error ? stderr : stdout);
    }
    if (got == 0) {
        fprintf(stderr, "aaasctl: '%s' closed without an answer\n",
                arg_socket);
        rc = 1;
    }
    if (error)
        rc = 1;
    if (fflush(stdout) != 0) {
        fprintf(stderr, "aaasctl: cannot write the answer: %s\n",
                strerror(errno));
        rc = 1;
    }

out:
    close(fd);
    return rc;
}

static int
aaasctl_status(int argc, char **argv)
{
    if (argc == 1)
        return aaasctl_ask("status");
    if (argc == 2 && strcmp(argv[1], "--json") == 0)
        return aaasctl_ask("status json");
    fprintf(stderr, "usage: aaasctl status [--json]\n");
    return 2;
}

static int
aaasctl_metrics(int argc, char **argv)
{
    if (argc != 1) {
        fprintf(stderr, "usage: aaasctl metrics\n");
        return 2;
    }
    return aaasctl_ask("metrics");
}

/* One line per command, in the order usage() lists them. */
static const struct aaasctl_command aaasctl_commands[] = {
    { "status", aaasctl_status, "status [--json]" },
    { "metrics", aaasctl_metrics, "metrics" },
};

static void
usage(FILE *f)
{
    fprintf(f, "usage: aaasctl [-s socket] command [argument ...]\n"
               "commands:\n");
    for (size_t i = 0; i < sizeof(aaasctl_commands) /
                           sizeof(aaasctl_commands[0]); i++)
        fprintf(f, "  %s\n", aaasctl_commands[i].usage);
}

int
main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "socket", required_argument, NULL, 's' },
        { "help", no_argument, NULL, 'h' },
        { "version", no_argument, NULL, 'V' },
        { NULL, 0, NULL, 0 },
    };
    int ch;

    /* "+": options after the command belong to the command. */
    while ((ch = getopt_long(argc, argv, "+s:h", opts, NULL)) != -1) {
        switch (ch) {
        case 's':
            arg_socket = optarg;
            break;
        case 'h':
            usage(stdout);
            return 0;
        case 'V':
            printf("aaasctl %s\n", PACKAGE_VERSION);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (optind >= argc) {
        usage(stderr);
        return 2;
    }

    for (size_t i = 0; i < sizeof(aaasctl_commands) /
                           sizeof(aaasctl_commands[0]); i++)
        if (strcmp(argv[optind], aaasctl_commands[i].name) == 0)
            return aaasctl_commands[i].run(argc - optind, argv + optind);

    fprintf(stderr, "aaasctl: unknown command '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
}
