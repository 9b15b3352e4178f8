/* SPDX-License-Identifier: MIT */
/*
 * aaasctl: the operator's tool.  One table maps each command to its
 * handler.  status and metrics send one line over the daemon's control
 * socket and copy the answer; keygen and verify do their work in the
 * modules (chain_key for keys, verify for delivered data) and only parse
 * arguments and read input here.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chain_key.h"
#include "verify.h"

#define AAASCTL_DEFAULT_KEY "/etc/aaas/signing.key"
#define AAASCTL_READ_BUF (4u * 1024u * 1024u)
#define AAASCTL_DEFAULT_SOCKET "/run/aaas/control.sock"

static void usage(FILE *f);

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

static int
ctl_keygen(int argc, char **argv)
{
    const char *path = AAASCTL_DEFAULT_KEY;
    char pub[CHAIN_KEY_PUB_TEXT_MAX];
    struct chain_key k;
    int ch, r;

    while ((ch = getopt(argc, argv, "f:")) != -1) {
        if (ch != 'f') {
            usage(stderr);
            return 2;
        }
        path = optarg;
    }
    if (optind < argc) {
        usage(stderr);
        return 2;
    }

    r = chain_key_generate(&k, 0, (int64_t)time(NULL));
    if (r < 0) {
        fprintf(stderr, "aaasctl: cannot generate an Ed25519 key: %s\n",
                strerror(-r));
        return 1;
    }
    r = chain_key_save(path, &k, true);
    if (r < 0) {
        fprintf(stderr, "aaasctl: cannot write '%s': %s%s\n", path,
                strerror(-r), r == -EEXIST ? " (not replacing a key)" : "");
        chain_key_done(&k);
        return 1;
    }
    chain_key_pub_text(&k, pub);
    printf("%s\n", pub);
    chain_key_done(&k);
    return 0;
}

/* Lines of one stream into the verifier; a last line without '\n' too. */
static int
ctl_feed(struct verify *v, int fd, char *buf, size_t cap)
{
    size_t have = 0;
    int r;

    for (;;) {
        ssize_t got = read(fd, buf + have, cap - have);
        size_t start = 0;

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            break;
        have += (size_t)got;
        for (;;) {
            char *nl = memchr(buf + start, '\n', have - start);

            if (!nl)
                break;
            r = verify_line(v, buf + start, (size_t)(nl - buf) - start + 1);
            if (r < 0)
                return r;
            start = (size_t)(nl - buf) + 1;
        }
        memmove(buf, buf + start, have - start);
        have -= start;
        if (have == cap)
            return -E2BIG;
    }
    if (have > 0)
        return verify_line(v, buf, have);
    return 0;
}

/*
 * gzip'd objects are read through `gzip -dc`: every system that has our
 * dependencies has gzip, and linking zlib for this one reader would add
 * a library to the daemon's package.
 */
static int
ctl_feed_gzip(struct verify *v, const char *path, char *buf, size_t cap)
{
    int p[2], status, r;
    pid_t pid;

    if (pipe2(p, O_CLOEXEC) < 0)
        return -errno;
    pid = fork();
    if (pid < 0) {
        r = -errno;
        (void)close(p[0]);
        (void)close(p[1]);
        return r;
    }
    if (pid == 0) {
        (void)dup2(p[1], STDOUT_FILENO);
        execlp("gzip", "gzip", "-dc", "--", path, (char *)NULL);
        _exit(127);
    }
    (void)close(p[1]);
    r = ctl_feed(v, p[0], buf, cap);
    (void)close(p[0]);
    if (waitpid(pid, &status, 0) < 0 && r >= 0)
        r = -errno;
    if (r >= 0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0))
        r = -EBADMSG;
    return r;
}

static int
ctl_verify_file(struct verify *v, const char *path, char *buf, size_t cap)
{
    unsigned char magic[2];
    int fd, r;

    r = verify_begin_object(v, path);
    if (r < 0)
        return r;
    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (pread(fd, magic, 2, 0) == 2 && magic[0] == 0x1f && magic[1] == 0x8b) {
        (void)close(fd);
        return ctl_feed_gzip(v, path, buf, cap);
    }
    r = ctl_feed(v, fd, buf, cap);
    (void)close(fd);
    return r;
}

static int
ctl_name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* A folder tree in name order, as Firehose names objects by time. */
static int
ctl_verify_path(struct verify *v, const char *path, char *buf, size_t cap)
{
    struct dirent *de;
    char **names = NULL;
    size_t n = 0;
    struct stat st;
    DIR *d;
    int r = 0;

    if (stat(path, &st) < 0)
        return -errno;
    if (!S_ISDIR(st.st_mode))
        return ctl_verify_file(v, path, buf, cap);
    d = opendir(path);
    if (!d)
        return -errno;
    while ((de = readdir(d))) {
        char **p;

        if (de->d_name[0] == '.')
            continue;
        p = realloc(names, (n + 1) * sizeof(*names));
        if (!p) {
            r = -ENOMEM;
            break;
        }
        names = p;
        if (asprintf(&names[n], "%s/%s", path, de->d_name) < 0) {
            r = -ENOMEM;
            break;
        }
        n++;
    }
    (void)closedir(d);
    qsort(names, n, sizeof(*names), ctl_name_cmp);
    for (size_t i = 0; i < n && r >= 0; i++) {
        r = ctl_verify_path(v, names[i], buf, cap);
        if (r < 0)
            fprintf(stderr, "aaasctl: cannot read '%s': %s\n", names[i],
                    strerror(-r));
    }
    for (size_t i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return r;
}

static int
ctl_load_key(struct verify *v, const char *path)
{
    char text[256];
    FILE *f = fopen(path, "re");
    size_t n;
    int r;

    if (!f) {
        r = -errno;
        fprintf(stderr, "aaasctl: cannot open key '%s': %s\n", path,
                strerror(-r));
        return r;
    }
    n = fread(text, 1, sizeof(text) - 1, f);
    (void)fclose(f);
    text[n] = '\0';
    r = verify_add_key(v, text);
    if (r < 0)
        fprintf(stderr, "aaasctl: '%s' is not a public key line "
                "'aaas-ed25519 BASE64 ID'\n", path);
    return r;
}

static int
ctl_verify(int argc, char **argv)
{
    enum { OPT_JSON = 256 };
    static const struct option opts[] = {
        { "json", no_argument, NULL, OPT_JSON },
        { "key", required_argument, NULL, 'k' },
        { NULL, 0, NULL, 0 },
    };
    struct verify *v = NULL;
    bool json = false;
    char *buf = NULL;
    int ch, r, rc = 2;

    r = verify_new(&v);
    if (r < 0)
        goto out;
    while ((ch = getopt_long(argc, argv, "k:", opts, NULL)) != -1) {
        switch (ch) {
        case OPT_JSON:
            json = true;
            break;
        case 'k':
            if (ctl_load_key(v, optarg) < 0)
                goto out;
            break;
        default:
            usage(stderr);
            goto out;
        }
    }
    buf = malloc(AAASCTL_READ_BUF);
    if (!buf) {
        r = -ENOMEM;
        goto out;
    }
    if (optind == argc || (optind + 1 == argc &&
                           strcmp(argv[optind], "-") == 0)) {
        r = verify_begin_object(v, "-");
        if (r >= 0)
            r = ctl_feed(v, STDIN_FILENO, buf, AAASCTL_READ_BUF);
        if (r < 0) {
            fprintf(stderr, "aaasctl: cannot read standard input: %s\n",
                    strerror(-r));
            goto out;
        }
    }
    for (int i = optind; i < argc && strcmp(argv[i], "-") != 0; i++) {
        r = ctl_verify_path(v, argv[i], buf, AAASCTL_READ_BUF);
        if (r < 0) {
            fprintf(stderr, "aaasctl: cannot verify '%s': %s\n", argv[i],
                    strerror(-r));
            goto out;
        }
    }
    r = verify_report(v, stdout, json);
    if (r < 0) {
        fprintf(stderr, "aaasctl: cannot finish the report: %s\n",
                strerror(-r));
        goto out;
    }
    rc = r;
out:
    free(buf);
    (void)verify_free(v);
    return rc;
}

/* One line per command, in the order usage() lists them. */
static const struct aaasctl_command aaasctl_commands[] = {
    { "status", aaasctl_status, "status [--json]" },
    { "metrics", aaasctl_metrics, "metrics" },
    { "keygen", ctl_keygen, "keygen [-f file]" },
    { "verify", ctl_verify, "verify [--json] [--key file]... [path ...|-]" },
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
                           sizeof(aaasctl_commands[0]); i++) {
        if (strcmp(argv[optind], aaasctl_commands[i].name) != 0)
            continue;
        argc -= optind;
        argv += optind;
        /* Commands parse their own options: restart getopt for them. */
        optind = 0;
        return aaasctl_commands[i].run(argc, argv);
    }

    fprintf(stderr, "aaasctl: unknown command '%s'\n", argv[optind]);
    usage(stderr);
    return 2;
}
