/* SPDX-License-Identifier: MIT */
/*
 * aaasctl: the operator's tool.  A table maps each command to its
 * handler; the work is in the modules (chain_key for keys, verify for
 * delivered data), this file parses arguments and reads input.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "chain_key.h"
#include "verify.h"

#define AAASCTL_DEFAULT_KEY "/etc/aaas/signing.key"
#define AAASCTL_READ_BUF (4u * 1024u * 1024u)

struct ctl_command {
    const char *name;
    const char *usage;
    int (*run)(int argc, char **argv);
};

static int ctl_keygen(int argc, char **argv);
static int ctl_verify(int argc, char **argv);

/* New commands go here; usage lines match aaasctl(8). */
static const struct ctl_command ctl_commands[] = {
    { "keygen", "keygen [-f file]", ctl_keygen },
    { "verify", "verify [--json] [--key file]... [path ...|-]", ctl_verify },
};

#define CTL_N_COMMANDS (sizeof(ctl_commands) / sizeof(ctl_commands[0]))

static void
usage(FILE *f)
{
    fprintf(f, "usage:");
    for (size_t i = 0; i < CTL_N_COMMANDS; i++)
        fprintf(f, "%s aaasctl %s\n", i ? "      " : "",
                ctl_commands[i].usage);
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

int
main(int argc, char **argv)
{
    if (argc < 2) {
        usage(stderr);
        return 2;
    }
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(stdout);
        return 0;
    }
    for (size_t i = 0; i < CTL_N_COMMANDS; i++)
        if (strcmp(argv[1], ctl_commands[i].name) == 0)
            return ctl_commands[i].run(argc - 1, argv + 1);
    fprintf(stderr, "aaasctl: unknown command '%s'\n", argv[1]);
    usage(stderr);
    return 2;
}
