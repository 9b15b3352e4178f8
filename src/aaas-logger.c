/* SPDX-License-Identifier: MIT */
/*
 * aaas-logger: builds audit events from the command line or stdin and
 * hands them to the aaasd event socket, optionally waiting until the
 * daemon says they are durable.  The wire protocol is socket_input.c's.
 */
#include <errno.h>
#include <getopt.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <yajl/yajl_gen.h>
#include <yajl/yajl_parse.h>
#include <yajl/yajl_tree.h>

#define LOGGER_DEFAULT_SOCKET "/run/auditd.sock"
#define LOGGER_HELLO "{\"_aaas_hello\":{\"ack\":true}}\n"
#define LOGGER_MAX_FIELDS 256

/* Exit statuses, as the man page lists them. */
#define LOGGER_EXIT_REFUSED 1
#define LOGGER_EXIT_USAGE 2
#define LOGGER_EXIT_FAILED 3

static const char *arg_socket = LOGGER_DEFAULT_SOCKET;
static const char *arg_actor;
static const char *arg_action;
static const char *arg_json;
static const char *arg_fields[LOGGER_MAX_FIELDS];
static unsigned arg_n_fields;
static bool arg_ack;
static bool arg_verbose;
static double arg_timeout = 10.0;

/* The events to send, '\n'-separated, and how many there are. */
struct logger_out {
    char *buf;
    size_t len;
    size_t cap;
    unsigned events;
};

static int
logger_append(struct logger_out *o, const void *p, size_t n)
{
    if (o->len + n > o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 4096;
        char *q;

        while (cap < o->len + n)
            cap *= 2;
        q = realloc(o->buf, cap);
        if (!q)
            return -ENOMEM;
        o->buf = q;
        o->cap = cap;
    }
    memcpy(o->buf + o->len, p, n);
    o->len += n;
    return 0;
}

static void
logger_gen_str(yajl_gen g, const char *s)
{
    (void)yajl_gen_string(g, (const unsigned char *)s, strlen(s));
}

/* The members that come from options, added to every event. */
static void
logger_gen_options(yajl_gen g)
{
    if (arg_actor) {
        logger_gen_str(g, "actor");
        logger_gen_str(g, arg_actor);
    }
    if (arg_action) {
        logger_gen_str(g, "action");
        logger_gen_str(g, arg_action);
    }
    for (unsigned i = 0; i < arg_n_fields; i++) {
        const char *eq = strchr(arg_fields[i], '=');

        (void)yajl_gen_string(g, (const unsigned char *)arg_fields[i],
                              (size_t)(eq - arg_fields[i]));
        logger_gen_str(g, eq + 1);
    }
}

/*
 * --json input is parsed and written again through yajl_gen: the result
 * is compact (one line, as the socket needs), checked, and the option
 * members are added before each top-level object closes.
 */
struct logger_copy {
    yajl_gen gen;
    struct logger_out *out;
    unsigned depth;
    bool not_object;
};

/* A scalar at the top level is not an event. */
static bool
logger_copy_scalar(struct logger_copy *c)
{
    if (c->depth == 0)
        c->not_object = true;
    return c->depth > 0;
}

static int
logger_cb_string(void *ctx, const unsigned char *s, size_t n)
{
    struct logger_copy *c = ctx;

    return logger_copy_scalar(c) &&
           yajl_gen_string(c->gen, s, n) == yajl_gen_status_ok;
}

/* Keys are never at the top level. */
static int
logger_cb_key(void *ctx, const unsigned char *s, size_t n)
{
    struct logger_copy *c = ctx;

    return yajl_gen_string(c->gen, s, n) == yajl_gen_status_ok;
}

static int
logger_cb_null(void *ctx)
{
    struct logger_copy *c = ctx;

    return logger_copy_scalar(c) && yajl_gen_null(c->gen) == yajl_gen_status_ok;
}

static int
logger_cb_bool(void *ctx, int v)
{
    struct logger_copy *c = ctx;

    return logger_copy_scalar(c) && yajl_gen_bool(c->gen, v) == yajl_gen_status_ok;
}

static int
logger_cb_number(void *ctx, const char *s, size_t n)
{
    struct logger_copy *c = ctx;

    return logger_copy_scalar(c) && yajl_gen_number(c->gen, s, n) == yajl_gen_status_ok;
}

static int
logger_cb_start_map(void *ctx)
{
    struct logger_copy *c = ctx;

    c->depth++;
    return yajl_gen_map_open(c->gen) == yajl_gen_status_ok;
}

/* At depth 0 a value is complete: one event, flushed as one line. */
static int
logger_copy_done(struct logger_copy *c)
{
    const unsigned char *p;
    size_t n;

    if (c->depth > 0)
        return 1;
    (void)yajl_gen_get_buf(c->gen, &p, &n);
    if (logger_append(c->out, p, n) < 0 || logger_append(c->out, "\n", 1) < 0)
        return 0;
    yajl_gen_clear(c->gen);
    /* A new top-level value needs a fresh generator state. */
    yajl_gen_reset(c->gen, NULL);
    c->out->events++;
    return 1;
}

static int
logger_cb_end_map(void *ctx)
{
    struct logger_copy *c = ctx;

    if (c->depth == 1)
        logger_gen_options(c->gen);
    c->depth--;
    if (yajl_gen_map_close(c->gen) != yajl_gen_status_ok)
        return 0;
    return logger_copy_done(c);
}

static int
logger_cb_start_array(void *ctx)
{
    struct logger_copy *c = ctx;

    if (c->depth == 0) {
        c->not_object = true;
        return 0;
    }
    c->depth++;
    return yajl_gen_array_open(c->gen) == yajl_gen_status_ok;
}

static int
logger_cb_end_array(void *ctx)
{
    struct logger_copy *c = ctx;

    c->depth--;
    return yajl_gen_array_close(c->gen) == yajl_gen_status_ok;
}

static const yajl_callbacks logger_copy_callbacks = {
    .yajl_null = logger_cb_null,
    .yajl_boolean = logger_cb_bool,
    .yajl_number = logger_cb_number,
    .yajl_string = logger_cb_string,
    .yajl_start_map = logger_cb_start_map,
    .yajl_map_key = logger_cb_key,
    .yajl_end_map = logger_cb_end_map,
    .yajl_start_array = logger_cb_start_array,
    .yajl_end_array = logger_cb_end_array,
};

/* Reads all of stdin; --json - takes one or more objects from it. */
static char *
logger_read_stdin(size_t *ret_len)
{
    struct logger_out in = { 0 };
    char chunk[65536];
    size_t n;

    while ((n = fread(chunk, 1, sizeof(chunk), stdin)) > 0)
        if (logger_append(&in, chunk, n) < 0) {
            free(in.buf);
            return NULL;
        }
    if (ferror(stdin) || logger_append(&in, "", 1) < 0) {
        free(in.buf);
        return NULL;
    }
    *ret_len = in.len - 1;
    return in.buf;
}

static int
logger_build_json(const char *text, size_t len, struct logger_out *out)
{
    struct logger_copy c = { .out = out };
    yajl_handle h = NULL;
    yajl_status st;
    int r = -EBADMSG;

    c.gen = yajl_gen_alloc(NULL);
    if (!c.gen)
        return -ENOMEM;
    (void)yajl_gen_config(c.gen, yajl_gen_validate_utf8, 1);
    h = yajl_alloc(&logger_copy_callbacks, NULL, &c);
    if (!h)
        goto out;
    (void)yajl_config(h, yajl_allow_multiple_values, 1);

    st = yajl_parse(h, (const unsigned char *)text, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    if (st != yajl_status_ok) {
        if (c.not_object) {
            fprintf(stderr, "aaas-logger: --json: each event must be a "
                    "JSON object\n");
        } else {
            unsigned char *e = yajl_get_error(h, 1,
                                              (const unsigned char *)text,
                                              len);

            fprintf(stderr, "aaas-logger: --json: %s", (const char *)e);
            yajl_free_error(h, e);
        }
        goto out;
    }
    if (out->events == 0) {
        fprintf(stderr, "aaas-logger: --json: no event in the input\n");
        goto out;
    }
    r = 0;

out:
    if (h)
        yajl_free(h);
    yajl_gen_free(c.gen);
    return r;
}

/* An event from the options alone, with the words left as "message". */
static int
logger_build_options(int argc, char **argv, struct logger_out *out)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *p;
    size_t n;
    int r;

    if (!g)
        return -ENOMEM;
    (void)yajl_gen_config(g, yajl_gen_validate_utf8, 1);
    (void)yajl_gen_map_open(g);
    logger_gen_options(g);
    if (argc > 0) {
        struct logger_out msg = { 0 };

        for (int i = 0; i < argc; i++)
            if ((i > 0 && logger_append(&msg, " ", 1) < 0) ||
                logger_append(&msg, argv[i], strlen(argv[i])) < 0) {
                free(msg.buf);
                yajl_gen_free(g);
                return -ENOMEM;
            }
        logger_gen_str(g, "message");
        (void)yajl_gen_string(g, (const unsigned char *)msg.buf, msg.len);
        free(msg.buf);
    }
    if (yajl_gen_map_close(g) != yajl_gen_status_ok) {
        fprintf(stderr, "aaas-logger: an option value is not valid "
                "UTF-8\n");
        yajl_gen_free(g);
        return -EBADMSG;
    }
    (void)yajl_gen_get_buf(g, &p, &n);
    r = logger_append(out, p, n);
    if (r >= 0)
        r = logger_append(out, "\n", 1);
    out->events = 1;
    yajl_gen_free(g);
    return r;
}

static double
logger_now(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Waits for events on fd until the deadline; -ETIMEDOUT past it. */
static int
logger_wait(int fd, short events, double deadline)
{
    struct pollfd pfd = { .fd = fd, .events = events };
    double left = deadline - logger_now();
    int n;

    if (left <= 0)
        return -ETIMEDOUT;
    n = poll(&pfd, 1, (int)(left * 1000.0) + 1);
    if (n < 0)
        return errno == EINTR ? 0 : -errno;
    return n == 0 ? -ETIMEDOUT : 0;
}

static int
logger_send(int fd, const char *p, size_t n, double deadline)
{
    while (n > 0) {
        ssize_t w = send(fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        int r;

        if (w < 0 && errno != EAGAIN && errno != EINTR)
            return -errno;
        if (w > 0) {
            p += w;
            n -= (size_t)w;
            continue;
        }
        r = logger_wait(fd, POLLOUT, deadline);
        if (r < 0)
            return r;
    }
    return 0;
}

/* Reads one reply line into buf (NUL-terminated, without '\n'). */
static int
logger_read_line(int fd, char *buf, size_t cap, size_t *have, double deadline,
                 char **ret_line)
{
    static size_t start;
    char *nl;
    int r;

    for (;;) {
        nl = memchr(buf + start, '\n', *have - start);
        if (nl) {
            *nl = '\0';
            *ret_line = buf + start;
            start = (size_t)(nl - buf) + 1;
            return 0;
        }
        if (start > 0) {
            memmove(buf, buf + start, *have - start);
            *have -= start;
            start = 0;
        }
        if (*have == cap)
            return -EMSGSIZE;
        ssize_t n = recv(fd, buf + *have, cap - *have, MSG_DONTWAIT);

        if (n == 0)
            return -ECONNRESET;
        if (n > 0) {
            *have += (size_t)n;
            continue;
        }
        if (errno != EAGAIN && errno != EINTR)
            return -errno;
        r = logger_wait(fd, POLLIN, deadline);
        if (r < 0)
            return r;
    }
}

/*
 * Checks one reply: 0 accepted, 1 rejected (reason printed), -EPROTO for
 * anything else.
 */
static int
logger_check_reply(const char *line, unsigned n)
{
    static const char *status_path[] = { "_aaas_ack", "status", NULL };
    static const char *seq_path[] = { "_aaas_ack", "seq", NULL };
    static const char *reason_path[] = { "_aaas_ack", "reason", NULL };
    yajl_val v = yajl_tree_parse(line, NULL, 0);
    yajl_val st, seq, why;
    int r = -EPROTO;

    if (!v)
        return -EPROTO;
    st = yajl_tree_get(v, status_path, yajl_t_string);
    seq = yajl_tree_get(v, seq_path, yajl_t_number);
    why = yajl_tree_get(v, reason_path, yajl_t_string);
    if (st && seq && strcmp(st->u.string, "accepted") == 0) {
        if (arg_verbose)
            fprintf(stderr, "aaas-logger: event %u accepted as seq %s\n", n,
                    seq->u.number.r);
        r = 0;
    } else if (st && seq && strcmp(st->u.string, "rejected") == 0) {
        fprintf(stderr, "aaas-logger: event %u rejected (seq %s): %s\n", n,
                seq->u.number.r, why ? why->u.string : "?");
        r = 1;
    }
    yajl_tree_free(v);
    return r;
}

static int
logger_connect(const char *path)
{
    struct sockaddr_un sa = { .sun_family = AF_UNIX };
    int fd, r;

    if (strlen(path) >= sizeof(sa.sun_path))
        return -ENAMETOOLONG;
    strcpy(sa.sun_path, path);
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
        r = -errno;
        close(fd);
        return r;
    }
    return fd;
}

/*
 * Without --ack: waits, up to the deadline, for the daemon to read to the
 * end and close.  The daemon names a writer by looking up its pid, which
 * only works while the writer lives; and a reset instead of a close means
 * the daemon dropped bytes it had not read.  Running out of time is not
 * an error: the event is in the socket, which is all a writer without
 * acknowledgements is promised.
 */
static int
logger_linger(int fd, double deadline)
{
    char buf[256];
    ssize_t n;

    if (shutdown(fd, SHUT_WR) < 0)
        return 0;
    for (;;) {
        n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
        if (n == 0)
            return 0;
        if (n < 0 && errno == ECONNRESET) {
            fprintf(stderr, "aaas-logger: '%s' closed the connection before "
                    "reading everything, the events may or may not be "
                    "stored\n", arg_socket);
            return LOGGER_EXIT_FAILED;
        }
        if (n < 0 && errno != EAGAIN && errno != EINTR)
            return 0;
        if (logger_wait(fd, POLLIN, deadline) == -ETIMEDOUT)
            return 0;
    }
}

/* Sends the events and, with --ack, waits for every reply. */
static int
logger_run(const struct logger_out *out)
{
    double deadline = logger_now() + arg_timeout;
    char buf[8192];
    size_t have = 0;
    unsigned refused = 0;
    char *line;
    int fd, r;

    fd = logger_connect(arg_socket);
    if (fd < 0) {
        fprintf(stderr, "aaas-logger: cannot connect to '%s': %s\n",
                arg_socket, strerror(-fd));
        return LOGGER_EXIT_FAILED;
    }
    if (arg_ack) {
        r = logger_send(fd, LOGGER_HELLO, sizeof(LOGGER_HELLO) - 1, deadline);
        if (r >= 0)
            r = logger_read_line(fd, buf, sizeof(buf), &have, deadline,
                                 &line);
        if (r >= 0 && !strstr(line, "\"ack\":true")) {
            fprintf(stderr, "aaas-logger: '%s' does not offer "
                    "acknowledgements: %s\n", arg_socket, line);
            close(fd);
            return LOGGER_EXIT_FAILED;
        }
        if (r < 0)
            goto fail;
    }
    r = logger_send(fd, out->buf, out->len, deadline);
    if (r < 0)
        goto fail;
    if (!arg_ack) {
        r = logger_linger(fd, deadline);
        close(fd);
        return r;
    }

    for (unsigned i = 0; arg_ack && i < out->events; i++) {
        r = logger_read_line(fd, buf, sizeof(buf), &have, deadline, &line);
        if (r < 0)
            goto fail;
        r = logger_check_reply(line, i + 1);
        if (r < 0) {
            fprintf(stderr, "aaas-logger: unexpected reply from '%s': %s\n",
                    arg_socket, line);
            close(fd);
            return LOGGER_EXIT_FAILED;
        }
        refused += (unsigned)r;
    }
    close(fd);
    return refused ? LOGGER_EXIT_REFUSED : 0;

fail:
    if (r == -ETIMEDOUT)
        fprintf(stderr, "aaas-logger: no acknowledgement from '%s' within "
                "%g s, the events may or may not be stored\n", arg_socket,
                arg_timeout);
    else
        fprintf(stderr, "aaas-logger: '%s': %s, the events may or may not "
                "be stored\n", arg_socket, strerror(-r));
    close(fd);
    return LOGGER_EXIT_FAILED;
}

static void
usage(FILE *f)
{
    fprintf(f,
            "usage: aaas-logger [--ack] [--timeout seconds] [--socket path]\n"
            "                   [--actor name] [--action verb]\n"
            "                   [--field key=value ...] "
            "[--json text | --json - | message ...]\n"
            "  -a, --actor NAME       who acted (\"actor\" member)\n"
            "  -A, --action VERB      what was done (\"action\" member)\n"
            "  -f, --field KEY=VALUE  add a string member (repeatable)\n"
            "  -j, --json TEXT        the event as a JSON object; '-' reads "
            "objects from stdin\n"
            "  -s, --socket PATH      event socket (default %s)\n"
            "  -k, --ack              wait until the daemon has stored "
            "each event\n"
            "  -t, --timeout SECONDS  give up after this long (default 10)\n"
            "  -v, --verbose          report each acknowledged sequence "
            "number\n"
            "  -h, --help             show this help\n",
            LOGGER_DEFAULT_SOCKET);
}

static int
parse_args(int argc, char **argv)
{
    static const struct option opts[] = {
        { "actor", required_argument, NULL, 'a' },
        { "action", required_argument, NULL, 'A' },
        { "field", required_argument, NULL, 'f' },
        { "json", required_argument, NULL, 'j' },
        { "socket", required_argument, NULL, 's' },
        { "ack", no_argument, NULL, 'k' },
        { "timeout", required_argument, NULL, 't' },
        { "verbose", no_argument, NULL, 'v' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    char *end;
    int ch;

    while ((ch = getopt_long(argc, argv, "a:A:f:j:s:kt:vh", opts,
                             NULL)) != -1) {
        switch (ch) {
        case 'a':
            arg_actor = optarg;
            break;
        case 'A':
            arg_action = optarg;
            break;
        case 'f':
            if (!strchr(optarg, '=') || optarg[0] == '=') {
                fprintf(stderr, "aaas-logger: --field '%s': expected "
                        "key=value\n", optarg);
                return -EINVAL;
            }
            if (arg_n_fields == LOGGER_MAX_FIELDS) {
                fprintf(stderr, "aaas-logger: at most %d --field options\n",
                        LOGGER_MAX_FIELDS);
                return -EINVAL;
            }
            arg_fields[arg_n_fields++] = optarg;
            break;
        case 'j':
            arg_json = optarg;
            break;
        case 's':
            arg_socket = optarg;
            break;
        case 'k':
            arg_ack = true;
            break;
        case 't':
            errno = 0;
            arg_timeout = strtod(optarg, &end);
            if (errno || *end || end == optarg || !(arg_timeout > 0)) {
                fprintf(stderr, "aaas-logger: --timeout '%s': expected a "
                        "positive number of seconds\n", optarg);
                return -EINVAL;
            }
            break;
        case 'v':
            arg_verbose = true;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -EINVAL;
        }
    }
    if (arg_json && optind < argc) {
        fprintf(stderr, "aaas-logger: give either --json or a message, "
                "not both\n");
        return -EINVAL;
    }
    if (!arg_json && optind == argc && !arg_actor && !arg_action &&
        arg_n_fields == 0) {
        fprintf(stderr, "aaas-logger: nothing to send\n");
        usage(stderr);
        return -EINVAL;
    }
    return 0;
}

int
main(int argc, char **argv)
{
    struct logger_out out = { 0 };
    char *in = NULL;
    size_t in_len;
    int r;

    if (parse_args(argc, argv) < 0)
        return LOGGER_EXIT_USAGE;

    if (arg_json && strcmp(arg_json, "-") == 0) {
        in = logger_read_stdin(&in_len);
        if (!in) {
            fprintf(stderr, "aaas-logger: cannot read stdin\n");
            return LOGGER_EXIT_FAILED;
        }
        r = logger_build_json(in, in_len, &out);
    } else if (arg_json) {
        r = logger_build_json(arg_json, strlen(arg_json), &out);
    } else {
        r = logger_build_options(argc - optind, argv + optind, &out);
    }
    free(in);
    if (r < 0) {
        free(out.buf);
        return r == -ENOMEM ? LOGGER_EXIT_FAILED : LOGGER_EXIT_USAGE;
    }

    r = logger_run(&out);
    free(out.buf);
    return r;
}
