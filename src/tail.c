/* SPDX-License-Identifier: MIT */
/*
 * File inputs: which files each input's glob matches, who they are (device,
 * inode, fingerprint), reading them line by line inside the event loop, and
 * the offsets file.  What a line means and where it is stored is the
 * pipeline's business; tail only learns, through tail_durable(), how far
 * each file is safe.
 *
 * Offsets file (STATE_DIR/offsets).  Text, one record per line:
 *
 *     aaas-tail-offsets 2
 *     seq SEQ
 *     INPUT DEV INO FPLEN FP OFFSET PATH
 *
 * INPUT is the input's name, DEV and INO the file's st_dev and st_ino in
 * decimal, FP the SHA-256 (64 lowercase hex digits) of the file's first
 * FPLEN bytes, OFFSET the byte offset up to which every line is in the
 * spool on stable storage (always the end of a line), PATH where the file
 * was last seen, for people reading the file; it plays no part in
 * matching.  INPUT and PATH escape every byte <= 0x20, >= 0x7f and '%' as
 * %XX.  Lines that do not parse are skipped with a warning: the worst
 * outcome of losing a record is that the file is read again from the
 * start, which duplicates events but loses none.  SEQ is the spool
 * sequence number the records are exact for: every line with a number up
 * to SEQ is inside its file's OFFSET.  Version 1 files have no seq line
 * and read as SEQ 0.
 *
 * The file is replaced atomically (write a temporary file, fsync, rename,
 * fsync the directory), at most once a second and on tail_save().  The
 * periodic write runs on a helper thread so the loop never waits for the
 * disk.
 *
 * Markers.  A second of lines between two saves would be read again after
 * a crash, and spooled again under new numbers, so the positions also go
 * into the spool, as marker frames written right behind the lines they
 * cover and synced with them.  tail_marker() encodes, for every file that
 * moved since the last marker, the end of the last line handed to
 * line_fn:
 *
 *     aaas-tail-marker 1
 *     INPUT DEV INO FPLEN FP OFFSET PATH
 *
 * with records as in the offsets file.  At start-up the caller loads the
 * offsets file (tail_new), then hands every marker numbered above
 * tail_saved_seq() to tail_apply_marker() in spool order; the last word
 * on each file wins.  The caller keeps those markers until a saved
 * offsets file covers them.
 *
 * Identity.  A file is known when input, device and inode agree with a
 * record and the SHA-256 of the file's first FPLEN bytes equals FP.  FPLEN
 * is min(size, 256) when the fingerprint was taken; while a file is shorter
 * than 256 bytes its fingerprint is retaken as it grows, so a record of a
 * short file still matches the same file grown longer, while a reused
 * inode with other first bytes does not.  A file shorter than FPLEN cannot
 * be the recorded one.  A record of an empty file (FPLEN 0) matches any
 * file at that device and inode, which is harmless: its offset is 0.
 *
 * Where reading starts.  A known file resumes at its recorded offset (or
 * at 0 if it is now shorter than that).  A file found at start-up that is
 * not known starts at 0, or with start_at_end after its last complete
 * line.  A file that appears while we run is read from 0 even with
 * start_at_end: everything in it was written after we started watching.
 *
 * Rotation.  A file that is renamed out of the glob, deleted, or no longer
 * the target of a matched symlink is read on until it has not grown for
 * rotate_wait, since its writer may not have reopened yet; then its last
 * partial line is taken and it is closed, which frees a deleted file's
 * space.  A truncated file (copytruncate, or truncation to zero) is read
 * again from 0; lines written between logrotate's copy and its truncate
 * are lost, a window copytruncate itself leaves.  A record whose file is
 * found by no glob at start-up is looked for in the directory it was last
 * seen in (by device, inode and fingerprint): a file rotated while we were
 * stopped is read to its end before any file of its input that is new.
 * Such a file, like one found again under another name, "drains": the
 * other files of its input wait until it has been read to its end once.
 */
#include "tail.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "log.h"

#define TAIL_BUF_INITIAL    (64u * 1024u)
/* Bytes read from one file per loop iteration before the others (and the
 * rest of the daemon) get their turn. */
#define TAIL_READ_BUDGET    (256u * 1024u)
#define TAIL_FP_MAX         256u
#define TAIL_FP_HASH        32u
/* Delivered-but-not-durable marks kept per file; see file_mark(). */
#define TAIL_MARKS_MAX      64u
#define TAIL_RESCAN_USEC    (2 * 1000000ull)
#define TAIL_SAVE_USEC      (1 * 1000000ull)
/* Delay after a directory event before globbing, so a burst of creations
 * costs one rescan. */
#define TAIL_RESCAN_SOON_USEC (20 * 1000ull)
#define TAIL_OFFSETS_MAGIC  "aaas-tail-offsets 2"
#define TAIL_OFFSETS_MAGIC_V1 "aaas-tail-offsets 1"
#define TAIL_MARKER_MAGIC   "aaas-tail-marker 1\n"
/* Timers here measure idle time and intervals a user configures in
 * milliseconds; the default 250 ms slack would swamp them. */
#define TAIL_TIMER_ACCURACY (1000ull)

struct tail_input {
    struct tail *tail;
    char *name;
    char *pattern;
    char *dir;                  /* parent of pattern if it has no wildcard */
    bool start_at_end;
    size_t max_line;
    uint64_t partial_usec;      /* 0: never take a partial line */
    uint64_t rotate_usec;       /* grace for a file rotated away */
    size_t index;               /* in tail_options.inputs */
    size_t n_draining;          /* files read to their end before others */
    sd_event_source *dir_watch;
};

/* A delivered line's sequence number and the offset just past it. */
struct tail_mark {
    uint64_t seq;
    uint64_t end;
};

struct tail_file {
    struct tail *tail;
    struct tail_input *input;
    struct tail_file *next;
    char *path;
    int fd;                     /* -1 once closed; kept until drained */
    dev_t dev;
    ino_t ino;
    uint8_t fp[TAIL_FP_HASH];
    size_t fp_len;
    sd_event_source *watch;
    sd_event_source *partial_timer;
    uint64_t id;                /* see tail_line.file_id */
    uint64_t grown_usec;        /* last growth seen once gone */
    uint64_t held_from;         /* see tail_hold(); TAIL_HOLD_NONE */
    uint64_t taken_end;         /* end of the last line line_fn took */
    bool draining;              /* see "Rotation" at the top */

    char *buf;                  /* undelivered bytes from buf_off on */
    size_t buf_size;
    size_t buf_len;
    uint64_t buf_off;
    uint64_t read_off;          /* next byte to read: buf_off + buf_len */

    bool skipping;              /* dropping the rest of an over-long line */
    uint64_t skip_seq;          /* seq of the truncated line being skipped */
    bool want_read;
    bool at_eof;                /* the last read found no data */
    bool partial_due;           /* take a final line without '\n' */
    bool gone;                  /* deleted or renamed away */
    bool seen;                  /* matched by the current rescan */
    bool read_failed;           /* warned once, retry on rescan */

    uint64_t durable_off;
    uint64_t durable_mark_seq;  /* seq of the mark durable_off came from */
    uint64_t handed_off;        /* end of the last line handed on */
    bool marker_dirty;          /* handed_off moved since the last marker */
    struct tail_mark marks[TAIL_MARKS_MAX];
    size_t n_marks;
    uint64_t stride;            /* seqs between marks, see file_mark() */
};

/* A record from the offsets file not yet claimed by an open file. */
struct tail_saved {
    struct tail_saved *next;
    char *input;
    char *path;
    dev_t dev;
    ino_t ino;
    size_t fp_len;
    uint8_t fp[TAIL_FP_HASH];
    uint64_t offset;
    bool seen;
};

/* A path we could not open, remembered so it is warned about once. */
struct tail_failed {
    struct tail_failed *next;
    char *path;
    int error;
    bool seen;
};

struct tail_saver {
    pthread_t thread;
    pthread_mutex_t lock;       /* guards the fields below */
    pthread_cond_t cond;
    char *pending;              /* newest snapshot not yet written */
    size_t pending_len;
    uint64_t pending_gen;
    uint64_t pending_seq;       /* the seq that snapshot covers */
    uint64_t saved_seq;         /* the seq the file on disk covers */
    bool stop;
    bool running;
    pthread_mutex_t write_lock; /* one writer of the file at a time */
    uint64_t written_gen;       /* under write_lock */
};

struct tail {
    sd_event *event;
    char *state_dir;
    tail_line_fn line_fn;
    void *userdata;
    struct tail_input *inputs;
    size_t n_inputs;
    uint64_t rescan_usec;

    struct tail_file *files;
    size_t n_open;
    struct tail_saved *saved;
    struct tail_failed *failed;

    sd_event_source *work;
    sd_event_source *rescan;
    sd_event_source *save_timer;
    bool rescan_soon;
    bool starting;              /* the first scan, for start_at_end */
    bool paused;
    bool blocked;               /* line_fn refused a line */
    bool dirty;                 /* offsets changed since the last save */
    uint64_t durable_seq;       /* highest seq reported durable */
    uint64_t save_gen;
    uint64_t next_id;
    struct tail_file *hold_cache;   /* last file tail_hold() found */

    struct tail_saver saver;
};

static void tail_mark_dirty(struct tail *t);
static void tail_rescan_soon(struct tail *t);
static int file_partial_fired(sd_event_source *s, uint64_t usec,
                              void *userdata);

static bool
tail_running(const struct tail *t)
{
    return !t->paused && !t->blocked;
}

static void
tail_kick(struct tail *t)
{
    if (tail_running(t))
        (void)sd_event_source_set_enabled(t->work, SD_EVENT_ONESHOT);
}

/* Hashes the first min(limit, size) bytes of fd; a short read shortens
 * the fingerprint rather than failing, since the file may be growing. */
static int
tail_fingerprint(int fd, size_t limit, uint8_t *ret_fp, size_t *ret_len)
{
    char b[TAIL_FP_MAX];
    unsigned int mdlen = 0;
    size_t got = 0;
    ssize_t n;

    assert(limit <= sizeof(b));
    while (got < limit) {
        n = pread(fd, b + got, limit - got, (off_t)got);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        got += (size_t)n;
    }
    if (EVP_Digest(b, got, ret_fp, &mdlen, EVP_sha256(), NULL) != 1)
        return -EIO;
    *ret_len = got;
    return 0;
}

/* Offset just past the last '\n' in the file, so start_at_end does not
 * hand on the tail of a line being written as a line of its own. */
static uint64_t
tail_last_line_end(int fd, uint64_t size)
{
    char b[4096];
    uint64_t pos = size;
    size_t want;
    ssize_t n;

    while (pos > 0 && size - pos < TAIL_BUF_INITIAL) {
        want = pos < sizeof(b) ? (size_t)pos : sizeof(b);
        n = pread(fd, b, want, (off_t)(pos - want));
        if (n != (ssize_t)want)
            return size;
        for (size_t i = want; i > 0; i--)
            if (b[i - 1] == '\n')
                return pos - want + i;
        pos -= want;
    }
    return pos == 0 ? 0 : size;
}

/*
 * Records that line seq ends at end.  Lines arrive with increasing seq, so
 * the array stays sorted.  Its size is fixed: marks are kept about stride
 * lines apart, the newest one always exact, and when the array fills up
 * every second mark goes and the stride doubles.  Merging two neighbours
 * into the later one only delays the offset until the later line is
 * durable, never moves it past a line that is not, and keeps the memory
 * per file fixed however many lines wait for one fsync.
 */
static void
file_mark(struct tail_file *f, uint64_t seq, uint64_t end)
{
    struct tail_mark *last = f->n_marks ? &f->marks[f->n_marks - 1] : NULL;

    if (end > f->taken_end)
        f->taken_end = end;
    /* Lines from held_from on are not in the spool, whatever seq says. */
    if (end > f->held_from)
        end = f->held_from;
    /* A marker may name only what the spool holds: held lines are not. */
    if (end > f->handed_off) {
        f->handed_off = end;
        f->marker_dirty = true;
    }
    if (end <= f->durable_off && !last)
        return;
    if (last && end < last->end)
        end = last->end;
    if (!last && seq <= f->tail->durable_seq) {
        /* Already durable: the callee synced inside line_fn. */
        f->durable_mark_seq = seq;
        if (end != f->durable_off) {
            f->durable_off = end;
            tail_mark_dirty(f->tail);
        }
        return;
    }
    if (last && (last->seq == seq ||
                 (f->n_marks >= 2 && last[-1].seq + f->stride > last->seq))) {
        last->seq = seq;
        last->end = end;
        return;
    }
    if (f->n_marks == TAIL_MARKS_MAX) {
        for (size_t i = 0; i < TAIL_MARKS_MAX / 2; i++)
            f->marks[i] = f->marks[2 * i + 1];
        f->n_marks = TAIL_MARKS_MAX / 2;
        f->stride *= 2;
    }
    f->marks[f->n_marks].seq = seq;
    f->marks[f->n_marks].end = end;
    f->n_marks++;
}

static bool
file_advance(struct tail_file *f, uint64_t durable_seq)
{
    size_t k = 0;

    while (k < f->n_marks && f->marks[k].seq <= durable_seq)
        k++;
    if (k == 0)
        return false;

    f->durable_off = f->marks[k - 1].end;
    f->durable_mark_seq = f->marks[k - 1].seq;
    memmove(f->marks, f->marks + k, (f->n_marks - k) * sizeof(f->marks[0]));
    f->n_marks -= k;
    /* The backlog shrank: record finer again. */
    if (f->n_marks < TAIL_MARKS_MAX / 4 && f->stride > 1)
        f->stride /= 2;
    return true;
}

static uint64_t
tail_now(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000u + (uint64_t)ts.tv_nsec / 1000u;
}

/* The file was read to its end once: the others of its input may go. */
static void
file_drained(struct tail_file *f)
{
    if (!f->draining)
        return;
    f->draining = false;
    if (--f->input->n_draining == 0)
        for (struct tail_file *o = f->tail->files; o; o = o->next)
            if (o->input == f->input && o->fd >= 0)
                o->want_read = true;
    tail_kick(f->tail);
}

/* Deleted, renamed out of the glob or no longer a symlink's target. */
static void
file_gone(struct tail_file *f)
{
    if (f->gone)
        return;
    f->gone = true;
    f->grown_usec = tail_now();
    if (f->input->rotate_usec == 0)
        f->partial_due = true;
}

static bool
file_grace_over(const struct tail_file *f)
{
    return f->gone && tail_now() - f->grown_usec >= f->input->rotate_usec;
}

/* Nothing of the file is waiting: no fd, no marks, no held lines. */
static bool
file_done(const struct tail_file *f)
{
    return f->fd < 0 && f->n_marks == 0 && f->held_from == TAIL_HOLD_NONE;
}

static void
file_close(struct tail_file *f)
{
    file_drained(f);
    f->watch = sd_event_source_disable_unref(f->watch);
    f->partial_timer = sd_event_source_disable_unref(f->partial_timer);
    if (f->fd >= 0) {
        (void)close(f->fd);
        f->fd = -1;
        f->tail->n_open--;
    }
    free(f->buf);
    f->buf = NULL;
    f->buf_size = f->buf_len = 0;
    f->want_read = false;
}

static void
file_free(struct tail_file *f)
{
    struct tail_file **p;

    for (p = &f->tail->files; *p; p = &(*p)->next)
        if (*p == f) {
            *p = f->next;
            break;
        }
    if (f->tail->hold_cache == f)
        f->tail->hold_cache = NULL;
    file_close(f);
    free(f->path);
    free(f);
}

static void
file_schedule(struct tail_file *f)
{
    if (f->fd < 0)
        return;
    f->want_read = true;
    tail_kick(f->tail);
}

/* The file now holds other bytes than those we read: start over. */
static void
file_restart(struct tail_file *f, const char *why)
{
    log_info("tail: '%s' %s, reading it again from the start",
             f->path, why);
    f->buf_len = 0;
    f->buf_off = f->read_off = 0;
    f->skipping = false;
    f->partial_due = false;
    f->at_eof = false;
    /* Marks point into the old contents, which are gone either way. */
    f->n_marks = 0;
    f->stride = 1;
    f->durable_off = f->handed_off = 0;
    /* What a pipeline still holds of the old contents is not ours. */
    f->id = ++f->tail->next_id;
    f->held_from = TAIL_HOLD_NONE;
    f->taken_end = 0;
    f->durable_mark_seq = f->tail->durable_seq;
    f->marker_dirty = true;
    if (f->partial_timer)
        (void)sd_event_source_set_enabled(f->partial_timer, SD_EVENT_OFF);
    (void)tail_fingerprint(f->fd, TAIL_FP_MAX, f->fp, &f->fp_len);
    tail_mark_dirty(f->tail);
}

static int
file_emit(struct tail_file *f, size_t pos, size_t len, bool truncated,
          uint64_t *ret_seq)
{
    struct tail *t = f->tail;
    struct tail_line line = {
        .input = f->input->name,
        .path = f->path,
        .data = f->buf + pos,
        .len = len,
        .offset = f->buf_off + pos,
        .file_id = f->id,
        .input_index = f->input->index,
        .truncated = truncated,
    };
    uint64_t seq = 0;
    int r;

    r = t->line_fn(t->userdata, &line, &seq);
    if (r < 0) {
        log_debug("tail: '%s' line at %" PRIu64 " refused: %s, waiting",
                  f->path, line.offset, strerror(-r));
        t->blocked = true;
        return r;
    }
    *ret_seq = seq;
    return 0;
}

/*
 * The bytes from pos on hold no '\n'.  An over-long line is cut now and
 * the rest of it skipped; a partial line is taken once it is due; else
 * the bytes wait for more.  Returns the new pos or a negative errno.
 */
static ssize_t
file_deliver_rest(struct tail_file *f, size_t pos)
{
    size_t rest = f->buf_len - pos, max_line = f->input->max_line;
    bool due = f->partial_due && f->at_eof;
    uint64_t seq;
    int r;

    if (f->skipping) {
        if (due) {
            /* Idle in the middle of an over-long line: it ends here. */
            f->skipping = false;
            f->partial_due = false;
            file_mark(f, f->skip_seq, f->buf_off + f->buf_len);
        }
        return (ssize_t)f->buf_len;
    }
    if (rest > max_line) {
        /* Its end is not in sight yet: the mark waits for the '\n', so a
         * restart before then offers the line again. */
        r = file_emit(f, pos, max_line, true, &seq);
        if (r < 0)
            return r;
        f->skipping = true;
        f->skip_seq = seq;
        return (ssize_t)f->buf_len;
    }
    if (rest > 0 && due) {
        r = file_emit(f, pos, rest, false, &seq);
        if (r < 0)
            return r;
        f->partial_due = false;
        file_mark(f, seq, f->buf_off + f->buf_len);
        return (ssize_t)f->buf_len;
    }
    return (ssize_t)pos;
}

/*
 * Hands on every complete line in the buffer, then drops what was handed
 * on.  A line is kept in the buffer until line_fn takes it, so a refused
 * line is offered again as it was.  Returns -EAGAIN when refused or paused.
 */
static int
file_deliver(struct tail_file *f)
{
    size_t max_line = f->input->max_line;
    size_t pos = 0, end, len;
    ssize_t n;
    uint64_t seq;
    char *nl;
    int r = 0;

    while (pos < f->buf_len) {
        if (!tail_running(f->tail)) {
            r = -EAGAIN;
            goto out;
        }
        nl = memchr(f->buf + pos, '\n', f->buf_len - pos);
        if (!nl)
            break;
        end = (size_t)(nl - f->buf) + 1;

        if (f->skipping) {
            f->skipping = false;
            file_mark(f, f->skip_seq, f->buf_off + end);
            pos = end;
            continue;
        }
        len = end - 1 - pos;
        r = file_emit(f, pos, len > max_line ? max_line : len,
                      len > max_line, &seq);
        if (r < 0)
            goto out;
        pos = end;
        file_mark(f, seq, f->buf_off + pos);
    }

    if (!tail_running(f->tail)) {
        r = -EAGAIN;
        goto out;
    }
    n = file_deliver_rest(f, pos);
    if (n < 0)
        r = (int)n;
    else
        pos = (size_t)n;

out:
    if (pos > 0) {
        memmove(f->buf, f->buf + pos, f->buf_len - pos);
        f->buf_len -= pos;
        f->buf_off += pos;
    }
    return r;
}

static int
file_grow(struct tail_file *f)
{
    size_t limit = f->input->max_line + 1, size;
    char *b;

    if (f->buf_len < f->buf_size)
        return 0;
    if (f->buf_size == 0)
        size = TAIL_BUF_INITIAL;
    else
        size = f->buf_size * 2;
    if (f->buf_size != 0 && size > limit)
        size = limit > f->buf_size ? limit : f->buf_size;
    if (size == f->buf_size)
        return 0;

    b = realloc(f->buf, size);
    if (!b)
        return -ENOMEM;
    f->buf = b;
    f->buf_size = size;
    return 0;
}

/* Reads once into the buffer; returns bytes read, 0 at end of file. */
static ssize_t
file_read(struct tail_file *f, size_t budget)
{
    size_t want;
    ssize_t n;
    int r;

    r = file_grow(f);
    if (r < 0)
        return r;
    want = f->buf_size - f->buf_len;
    if (want > budget)
        want = budget;
    if (want == 0)
        return -ENOBUFS;

    do
        n = pread(f->fd, f->buf + f->buf_len, want, (off_t)f->read_off);
    while (n < 0 && errno == EINTR);
    if (n < 0)
        return -errno;

    f->buf_len += (size_t)n;
    f->read_off += (uint64_t)n;
    return n;
}

/* At end of file: was it truncated, deleted, or is a line left waiting? */
static void
file_at_eof(struct tail_file *f)
{
    struct stat st;

    if (fstat(f->fd, &st) == 0) {
        if ((uint64_t)st.st_size < f->read_off) {
            file_restart(f, "was truncated");
            return;
        }
        if (st.st_nlink == 0)
            file_gone(f);
    }
}

static void
file_arm_partial(struct tail_file *f)
{
    uint64_t usec = f->input->partial_usec;
    int enabled = SD_EVENT_OFF;
    int r;

    if (usec == 0 || f->gone || (f->buf_len == 0 && !f->skipping))
        return;
    if (f->partial_timer) {
        (void)sd_event_source_get_enabled(f->partial_timer, &enabled);
        if (enabled != SD_EVENT_OFF)
            return;
        r = sd_event_source_set_time_relative(f->partial_timer, usec);
        if (r >= 0)
            r = sd_event_source_set_enabled(f->partial_timer,
                                            SD_EVENT_ONESHOT);
    } else {
        r = sd_event_add_time_relative(f->tail->event, &f->partial_timer,
                                       CLOCK_MONOTONIC, usec,
                                       TAIL_TIMER_ACCURACY,
                                       file_partial_fired, f);
    }
    if (r < 0)
        log_debug("tail: '%s' cannot arm partial line timer: %s",
                  f->path, strerror(-r));
}

static int
file_partial_fired(sd_event_source *s, uint64_t usec, void *userdata)
{
    struct tail_file *f = userdata;

    /* The pump reads once more first: only if that finds nothing is the
     * file idle and the line taken as it is. */
    f->partial_due = true;
    file_schedule(f);
    return 0;
}

static void
file_read_failed(struct tail_file *f, int r)
{
    if (!f->read_failed)
        log_warning("tail: cannot read '%s': %s, retrying at the next rescan",
                    f->path, strerror(-r));
    f->read_failed = true;
    f->want_read = false;
}

/*
 * Reads and delivers up to budget bytes.  Returns true when the budget ran
 * out with more to read, so the caller comes back in the next iteration.
 */
static bool
file_pump(struct tail_file *f, size_t budget)
{
    ssize_t n;
    int r;

    f->at_eof = false;
    if (file_grace_over(f))
        f->partial_due = true;
    for (;;) {
        r = file_deliver(f);
        if (r < 0)
            return false;       /* want_read stays set for tail_resume() */
        if (f->at_eof)
            break;
        if (budget == 0)
            return true;

        n = file_read(f, budget);
        if (n < 0) {
            file_read_failed(f, (int)n);
            return false;
        }
        if (n == 0) {
            f->at_eof = true;
            file_at_eof(f);
            continue;
        }
        budget -= (size_t)n;
        f->read_failed = false;
        if (f->gone)
            f->grown_usec = tail_now();
        if (!file_grace_over(f))
            f->partial_due = false;
        if (f->partial_timer)
            (void)sd_event_source_set_enabled(f->partial_timer, SD_EVENT_OFF);
    }

    f->want_read = false;
    if (f->buf_len == 0 && !f->skipping)
        file_drained(f);
    if (file_grace_over(f) && f->buf_len == 0 && !f->skipping) {
        log_info("tail: '%s' is gone and read to its end, closing it",
                 f->path);
        file_close(f);
        return false;
    }
    file_arm_partial(f);
    return false;
}

static int
file_changed(sd_event_source *s, const struct inotify_event *ev,
             void *userdata)
{
    struct tail_file *f = userdata;

    if (ev->mask & IN_MOVE_SELF)
        tail_rescan_soon(f->tail);
    if (ev->mask & (IN_DELETE_SELF | IN_IGNORED))
        file_gone(f);
    /* IN_ATTRIB covers unlink (the link count drops); the pump's fstat
     * at end of file tells. */
    file_schedule(f);
    return 0;
}

static int
tail_work(sd_event_source *s, void *userdata)
{
    struct tail *t = userdata;
    struct tail_file *f, *next;
    bool more = false;

    for (f = t->files; f && tail_running(t); f = next) {
        next = f->next;
        /* A drained file's input-mates wait; want_read stays set. */
        if (f->want_read && !f->draining && f->input->n_draining > 0)
            continue;
        if (f->want_read && file_pump(f, TAIL_READ_BUDGET))
            more = true;
        if (file_done(f)) {
            file_free(f);
            tail_mark_dirty(t);
        }
    }
    if (more)
        tail_kick(t);
    return 0;
}

static struct tail_file *
tail_find(struct tail *t, const struct tail_input *in, dev_t dev, ino_t ino)
{
    for (struct tail_file *f = t->files; f; f = f->next)
        if (f->fd >= 0 && f->input == in && f->dev == dev && f->ino == ino)
            return f;
    return NULL;
}

/* Takes the record for this file out of the saved list, if any. */
static struct tail_saved *
tail_saved_take(struct tail *t, const struct tail_input *in, dev_t dev,
                ino_t ino)
{
    struct tail_saved **p, *s;

    for (p = &t->saved; (s = *p); p = &s->next)
        if (s->dev == dev && s->ino == ino && strcmp(s->input, in->name) == 0) {
            *p = s->next;
            return s;
        }
    return NULL;
}

static void
tail_saved_free(struct tail_saved *s)
{
    free(s->input);
    free(s->path);
    free(s);
}

static uint64_t
file_start_offset(struct tail_file *f, uint64_t size, bool *ret_moved)
{
    struct tail *t = f->tail;
    struct tail_saved *s;
    uint8_t fp[TAIL_FP_HASH];
    uint64_t off = 0;
    bool match = false;
    size_t len = 0;
    int r;

    s = tail_saved_take(t, f->input, f->dev, f->ino);
    if (s) {
        r = tail_fingerprint(f->fd, s->fp_len, fp, &len);
        match = r >= 0 && len == s->fp_len &&
                memcmp(fp, s->fp, TAIL_FP_HASH) == 0;
        off = s->offset;
        /* Found under another name with lines left: it was rotated. */
        *ret_moved = match && off < size && strcmp(s->path, f->path) != 0;
        tail_saved_free(s);
        if (match && off <= size) {
            log_debug("tail: '%s' is known, resuming at %" PRIu64,
                      f->path, off);
            return off;
        }
        if (match) {
            log_info("tail: '%s' is shorter than its saved offset, reading it from 0",
                     f->path);
            return 0;
        }
        log_info("tail: '%s' is not the file saved at its inode, reading it as new",
                 f->path);
    }
    if (t->starting && f->input->start_at_end)
        return tail_last_line_end(f->fd, size);
    return 0;
}

/* Warns about a path that cannot be opened once, not at every rescan. */
static void
tail_open_failed(struct tail *t, const char *path, int error)
{
    struct tail_failed *e;

    for (e = t->failed; e; e = e->next)
        if (strcmp(e->path, path) == 0)
            break;
    if (e && e->error == error) {
        e->seen = true;
        return;
    }
    log_warning("tail: cannot open '%s': %s, retrying at the next rescan",
                path, strerror(-error));
    if (!e) {
        e = calloc(1, sizeof(*e));
        if (!e)
            return;
        e->path = strdup(path);
        if (!e->path) {
            free(e);
            return;
        }
        e->next = t->failed;
        t->failed = e;
    }
    e->error = error;
    e->seen = true;
}

/* Takes over fd (a regular file) with its fingerprint as a followed file. */
static int
file_new(struct tail *t, struct tail_input *in, const char *path, int fd,
         const struct stat *st, const uint8_t *fp, size_t fp_len,
         bool rotated)
{
    struct tail_file *f;
    bool moved = false;
    int r;

    f = calloc(1, sizeof(*f));
    if (!f)
        return -ENOMEM;
    f->path = strdup(path);
    if (!f->path) {
        free(f);
        return -ENOMEM;
    }
    f->tail = t;
    f->input = in;
    f->fd = fd;
    f->stride = 1;
    f->id = ++t->next_id;
    f->held_from = TAIL_HOLD_NONE;
    f->dev = st->st_dev;
    f->ino = st->st_ino;
    memcpy(f->fp, fp, sizeof(f->fp));
    f->fp_len = fp_len;
    f->read_off = f->buf_off = f->durable_off = f->taken_end =
            f->handed_off = file_start_offset(f, (uint64_t)st->st_size,
                                              &moved);
    f->durable_mark_seq = t->durable_seq;
    f->marker_dirty = true;
    if (moved || rotated) {
        f->draining = true;
        in->n_draining++;
    }
    if (rotated)
        file_gone(f);

    /* Without a watch the rescan's fstat still finds new data, only
     * later; inotify watches are a limited resource. */
    r = sd_event_add_inotify_fd(t->event, &f->watch, fd,
                                IN_MODIFY | IN_ATTRIB | IN_MOVE_SELF |
                                IN_DELETE_SELF, file_changed, f);
    if (r < 0)
        log_debug("tail: cannot watch '%s': %s, polling it",
                  path, strerror(-r));

    log_info("tail: following '%s' for input '%s' from offset %" PRIu64,
             path, in->name, f->read_off);
    f->seen = true;
    f->next = t->files;
    t->files = f;
    t->n_open++;
    tail_mark_dirty(t);
    file_schedule(f);
    return 0;
}

/* rotated: found outside the glob, read to its end and closed. */
static int
tail_open(struct tail *t, struct tail_input *in, const char *path,
          bool rotated)
{
    uint8_t fp[TAIL_FP_HASH];
    size_t fp_len = 0;
    struct stat st;
    int fd = -1;
    int r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0) {
        r = -errno;
        tail_open_failed(t, path, r);
        goto out;
    }
    /* The path may have been replaced since the glob: trust the fd. */
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode) || tail_find(t, in, st.st_dev, st.st_ino)) {
        r = 0;
        goto out;
    }
    r = tail_fingerprint(fd, TAIL_FP_MAX, fp, &fp_len);
    if (r < 0) {
        tail_open_failed(t, path, r);
        goto out;
    }

    r = file_new(t, in, path, fd, &st, fp, fp_len, rotated);
    if (r < 0)
        goto out;
    return 0;

out:
    if (fd >= 0)
        (void)close(fd);
    return r;
}

/*
 * Periodic look at a followed file, for what inotify may not tell: data
 * appended while watches were exhausted, a truncation followed by a
 * rewrite past our offset (caught by the first bytes changing), and a
 * fingerprint still shorter than TAIL_FP_MAX.
 */
static void
file_check(struct tail_file *f)
{
    uint8_t fp[TAIL_FP_HASH], old[TAIL_FP_HASH];
    size_t len = 0, old_len = 0;
    struct stat st;
    int r;

    if (fstat(f->fd, &st) < 0)
        return;
    if (st.st_nlink == 0)
        file_gone(f);
    if (f->gone || f->read_failed || (uint64_t)st.st_size != f->read_off)
        file_schedule(f);

    r = tail_fingerprint(f->fd, TAIL_FP_MAX, fp, &len);
    if (r < 0)
        return;
    if (len == f->fp_len) {
        if (memcmp(fp, f->fp, TAIL_FP_HASH) != 0)
            file_restart(f, "has other first bytes now");
        return;
    }
    if (len < f->fp_len) {
        file_restart(f, "was truncated");
        return;
    }
    r = tail_fingerprint(f->fd, f->fp_len, old, &old_len);
    if (r < 0)
        return;
    if (old_len != f->fp_len || memcmp(old, f->fp, TAIL_FP_HASH) != 0) {
        file_restart(f, "has other first bytes now");
        return;
    }
    memcpy(f->fp, fp, sizeof(fp));
    f->fp_len = len;
    tail_mark_dirty(f->tail);
}

static int
tail_dir_changed(sd_event_source *s, const struct inotify_event *ev,
                 void *userdata)
{
    struct tail_input *in = userdata;

    /* The directory itself went away: watch it again once it is back. */
    if (ev->mask & (IN_DELETE_SELF | IN_MOVE_SELF | IN_IGNORED))
        in->dir_watch = sd_event_source_disable_unref(in->dir_watch);
    tail_rescan_soon(in->tail);
    return 0;
}

static void
tail_watch_dir(struct tail *t, struct tail_input *in)
{
    int r;

    if (!in->dir || in->dir_watch)
        return;
    r = sd_event_add_inotify(t->event, &in->dir_watch, in->dir,
                             IN_CREATE | IN_MOVED_TO | IN_MOVED_FROM |
                             IN_DELETE | IN_DELETE_SELF | IN_MOVE_SELF |
                             IN_ONLYDIR, tail_dir_changed, in);
    if (r < 0)
        log_debug("tail: cannot watch directory '%s': %s, relying on rescans",
                  in->dir, strerror(-r));
}

/* Returns false when the glob failed, so nothing can be called gone. */
static bool
tail_scan_input(struct tail *t, struct tail_input *in)
{
    struct tail_file *f;
    struct tail_saved *s;
    struct stat st;
    glob_t g;
    int r;

    r = glob(in->pattern, 0, NULL, &g);
    if (r == GLOB_NOMATCH)
        return true;
    if (r != 0) {
        log_debug("tail: glob '%s' failed (%d), trying again later",
                  in->pattern, r);
        globfree(&g);
        return false;
    }

    for (size_t i = 0; i < g.gl_pathc; i++) {
        const char *path = g.gl_pathv[i];

        if (stat(path, &st) < 0 || !S_ISREG(st.st_mode))
            continue;
        for (s = t->saved; s; s = s->next)
            if (s->dev == st.st_dev && s->ino == st.st_ino &&
                strcmp(s->input, in->name) == 0)
                s->seen = true;

        f = tail_find(t, in, st.st_dev, st.st_ino);
        if (!f) {
            (void)tail_open(t, in, path, false);
            continue;
        }
        f->seen = true;
        if (strcmp(f->path, path) != 0) {
            char *p = strdup(path);

            if (p) {
                log_info("tail: '%s' is now '%s'", f->path, p);
                free(f->path);
                f->path = p;
            }
        }
    }
    globfree(&g);
    return true;
}

static void
tail_drop_stale(struct tail *t, bool complete)
{
    struct tail_saved **sp, *s;
    struct tail_failed **ep, *e;

    /* A record is kept while some matched path still has its inode (the
     * file may only be unreadable for now); otherwise it is stale. */
    for (sp = &t->saved; complete && (s = *sp);) {
        if (s->seen) {
            sp = &s->next;
            continue;
        }
        *sp = s->next;
        tail_saved_free(s);
        tail_mark_dirty(t);
    }
    for (ep = &t->failed; (e = *ep);) {
        if (e->seen) {
            ep = &e->next;
            continue;
        }
        *ep = e->next;
        free(e->path);
        free(e);
    }
}

static bool
tail_saved_matches(const struct tail_saved *s, const char *path)
{
    uint8_t fp[TAIL_FP_HASH];
    size_t len = 0;
    int fd, r;

    fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY);
    if (fd < 0)
        return false;
    r = tail_fingerprint(fd, s->fp_len, fp, &len);
    (void)close(fd);
    return r >= 0 && len == s->fp_len && memcmp(fp, s->fp, sizeof(fp)) == 0;
}

/*
 * A record no glob matched at start-up: is its file still in the directory
 * it was last seen in, under another name (rotated while we were stopped)?
 * Compressed copies are other files and cannot be found.
 */
static void
tail_find_saved(struct tail *t, struct tail_input *in, struct tail_saved *s)
{
    char *dir = NULL, *path = NULL, *slash;
    struct dirent *de;
    struct stat st;
    DIR *d = NULL;

    slash = strrchr(s->path, '/');
    if (!slash)
        return;
    dir = strndup(s->path, slash == s->path ? 1 : (size_t)(slash - s->path));
    if (!dir)
        return;
    d = opendir(dir);
    if (!d)
        goto out;
    while ((de = readdir(d))) {
        if (de->d_ino != s->ino)
            continue;
        if (fstatat(dirfd(d), de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
            !S_ISREG(st.st_mode) || st.st_dev != s->dev ||
            st.st_ino != s->ino)
            continue;
        if (asprintf(&path, "%s/%s", strcmp(dir, "/") ? dir : "",
                     de->d_name) < 0) {
            path = NULL;
            goto out;
        }
        /* A reused inode holds other bytes: that is not our file. */
        if (!tail_saved_matches(s, path))
            break;
        log_info("tail: '%s' was rotated to '%s' while we were stopped, reading it to its end",
                 s->path, path);
        s->seen = true;
        (void)tail_open(t, in, path, true);
        break;
    }

out:
    if (d)
        (void)closedir(d);
    free(path);
    free(dir);
}

static void
tail_find_rotated(struct tail *t)
{
    struct tail_saved *s, *next;

    for (s = t->saved; s; s = next) {
        next = s->next;
        if (s->seen)
            continue;
        for (size_t i = 0; i < t->n_inputs; i++)
            if (strcmp(t->inputs[i].name, s->input) == 0) {
                /* tail_open() takes s off the list and frees it. */
                tail_find_saved(t, &t->inputs[i], s);
                break;
            }
    }
}

static void
tail_rescan(struct tail *t)
{
    struct tail_saved *s;
    struct tail_failed *e;
    struct tail_file *f;
    bool complete = true;

    for (f = t->files; f; f = f->next)
        f->seen = false;
    for (s = t->saved; s; s = s->next)
        s->seen = false;
    for (e = t->failed; e; e = e->next)
        e->seen = false;

    for (size_t i = 0; i < t->n_inputs; i++) {
        struct tail_input *in = &t->inputs[i];

        tail_watch_dir(t, in);
        if (!tail_scan_input(t, in)) {
            complete = false;
            continue;
        }
        for (f = t->files; f; f = f->next)
            if (f->input == in && f->fd >= 0 && !f->seen && !f->gone) {
                log_info("tail: '%s' no longer matches '%s', reading it to its end",
                         f->path, in->pattern);
                file_gone(f);
            }
    }
    if (t->starting)
        tail_find_rotated(t);

    for (f = t->files; f; f = f->next)
        if (f->fd >= 0)
            file_check(f);
    tail_drop_stale(t, complete);
}

static int
tail_rescan_fired(sd_event_source *s, uint64_t usec, void *userdata)
{
    struct tail *t = userdata;

    t->rescan_soon = false;
    tail_rescan(t);
    (void)sd_event_source_set_time_relative(s, t->rescan_usec);
    (void)sd_event_source_set_enabled(s, SD_EVENT_ONESHOT);
    return 0;
}

static void
tail_rescan_soon(struct tail *t)
{
    if (t->rescan_soon)
        return;
    t->rescan_soon = true;
    (void)sd_event_source_set_time_relative(t->rescan, TAIL_RESCAN_SOON_USEC);
    (void)sd_event_source_set_enabled(t->rescan, SD_EVENT_ONESHOT);
}

static void
offsets_put_escaped(FILE *mf, const char *s)
{
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f || *p == '%')
            fprintf(mf, "%%%02X", *p);
        else
            fputc(*p, mf);
}

static int
offsets_unescape(char *s)
{
    char *w = s;
    unsigned v;

    for (char *p = s; *p; p++) {
        if (*p != '%') {
            *w++ = *p;
            continue;
        }
        if (sscanf(p + 1, "%2x", &v) != 1 || v == 0)
            return -EINVAL;
        *w++ = (char)v;
        p += 2;
    }
    *w = '\0';
    return 0;
}

static void
offsets_put(FILE *mf, const char *input, dev_t dev, ino_t ino,
            const uint8_t *fp, size_t fp_len, uint64_t off, const char *path)
{
    offsets_put_escaped(mf, input);
    fprintf(mf, " %ju %ju %zu ", (uintmax_t)dev, (uintmax_t)ino, fp_len);
    for (size_t i = 0; i < TAIL_FP_HASH; i++)
        fprintf(mf, "%02x", fp[i]);
    fprintf(mf, " %" PRIu64 " ", off);
    offsets_put_escaped(mf, path);
    fputc('\n', mf);
}

/*
 * The sequence number the current offsets are exact for.  A file with
 * lines still waiting may have durable lines past its offset when marks
 * were merged (see file_mark()), so it is exact only up to the mark its
 * offset came from; a lower number only means more markers replayed.
 */
static uint64_t
tail_covered_seq(const struct tail *t)
{
    uint64_t seq = t->durable_seq;

    for (const struct tail_file *f = t->files; f; f = f->next)
        if (f->n_marks > 0 && f->durable_mark_seq < seq)
            seq = f->durable_mark_seq;
    return seq;
}

/* The offsets file's text for the current state (see the top). */
static int
tail_serialize(struct tail *t, char **ret, size_t *ret_len,
               uint64_t *ret_seq)
{
    uint64_t seq = tail_covered_seq(t);
    char *data = NULL;
    size_t len = 0;
    FILE *mf;

    mf = open_memstream(&data, &len);
    if (!mf)
        return -errno;
    fprintf(mf, "%s\nseq %" PRIu64 "\n", TAIL_OFFSETS_MAGIC, seq);
    for (struct tail_file *f = t->files; f; f = f->next)
        offsets_put(mf, f->input->name, f->dev, f->ino, f->fp, f->fp_len,
                    f->durable_off, f->path);
    for (struct tail_saved *s = t->saved; s; s = s->next)
        offsets_put(mf, s->input, s->dev, s->ino, s->fp, s->fp_len,
                    s->offset, s->path);
    if (ferror(mf)) {
        (void)fclose(mf);
        free(data);
        return -ENOMEM;
    }
    if (fclose(mf) != 0) {
        free(data);
        return -ENOMEM;
    }
    *ret = data;
    *ret_len = len;
    *ret_seq = seq;
    return 0;
}

static int
offsets_write(const char *dir, const char *data, size_t len)
{
    int dfd = -1, fd = -1;
    size_t done = 0;
    ssize_t n;
    int r;

    dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd < 0) {
        r = -errno;
        goto out;
    }
    fd = openat(dfd, "offsets.tmp", O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
                0600);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    while (done < len) {
        n = write(fd, data + done, len - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            r = -errno;
            goto out;
        }
        done += (size_t)n;
    }
    if (fsync(fd) < 0) {
        r = -errno;
        goto out;
    }
    r = close(fd);
    fd = -1;
    if (r < 0) {
        r = -errno;
        goto out;
    }
    if (renameat(dfd, "offsets.tmp", dfd, "offsets") < 0) {
        r = -errno;
        goto out;
    }
    /* Without this the rename itself may not survive a crash. */
    r = fsync(dfd) < 0 ? -errno : 0;

out:
    if (fd >= 0)
        (void)close(fd);
    if (dfd >= 0)
        (void)close(dfd);
    return r;
}

/* Writes snapshot gen unless a newer one is already on disk. */
static int
tail_saver_write(struct tail *t, const char *data, size_t len, uint64_t gen,
                 uint64_t seq)
{
    struct tail_saver *sv = &t->saver;
    int r = 0;

    pthread_mutex_lock(&sv->write_lock);
    if (gen > sv->written_gen) {
        r = offsets_write(t->state_dir, data, len);
        if (r >= 0) {
            sv->written_gen = gen;
            pthread_mutex_lock(&sv->lock);
            sv->saved_seq = seq;
            pthread_mutex_unlock(&sv->lock);
        }
    }
    pthread_mutex_unlock(&sv->write_lock);
    return r;
}

/*
 * The helper thread.  It touches only the saver fields and state_dir,
 * which does not change after tail_new().  Before it exits it writes the
 * last snapshot it was given.
 */
static void *
tail_saver_main(void *userdata)
{
    struct tail *t = userdata;
    struct tail_saver *sv = &t->saver;
    uint64_t gen, seq;
    size_t len;
    char *data;
    int r;

    for (;;) {
        pthread_mutex_lock(&sv->lock);
        while (!sv->pending && !sv->stop)
            pthread_cond_wait(&sv->cond, &sv->lock);
        data = sv->pending;
        len = sv->pending_len;
        gen = sv->pending_gen;
        seq = sv->pending_seq;
        sv->pending = NULL;
        pthread_mutex_unlock(&sv->lock);
        if (!data)
            break;

        r = tail_saver_write(t, data, len, gen, seq);
        if (r < 0)
            log_warning("tail: cannot write '%s/offsets': %s, trying again at the next change",
                        t->state_dir, strerror(-r));
        free(data);
    }
    return NULL;
}

static int
tail_save_fired(sd_event_source *s, uint64_t usec, void *userdata)
{
    struct tail *t = userdata;
    struct tail_saver *sv = &t->saver;
    uint64_t seq = 0;
    size_t len = 0;
    char *data;
    int r;

    r = tail_serialize(t, &data, &len, &seq);
    if (r < 0) {
        log_warning("tail: cannot build the offsets file: %s, trying again in 1s",
                    strerror(-r));
        tail_mark_dirty(t);
        return 0;
    }
    t->dirty = false;
    if (!sv->running) {
        r = tail_saver_write(t, data, len, ++t->save_gen, seq);
        if (r < 0)
            log_warning("tail: cannot write '%s/offsets': %s, trying again at the next change",
                        t->state_dir, strerror(-r));
        free(data);
        return 0;
    }

    pthread_mutex_lock(&sv->lock);
    free(sv->pending);
    sv->pending = data;
    sv->pending_len = len;
    sv->pending_gen = ++t->save_gen;
    sv->pending_seq = seq;
    pthread_cond_signal(&sv->cond);
    pthread_mutex_unlock(&sv->lock);
    return 0;
}

static void
tail_mark_dirty(struct tail *t)
{
    int enabled = SD_EVENT_OFF;

    t->dirty = true;
    if (!t->save_timer)
        return;
    (void)sd_event_source_get_enabled(t->save_timer, &enabled);
    if (enabled != SD_EVENT_OFF)
        return;
    (void)sd_event_source_set_time_relative(t->save_timer, TAIL_SAVE_USEC);
    (void)sd_event_source_set_enabled(t->save_timer, SD_EVENT_ONESHOT);
}

static int
offsets_parse_line(char *line, struct tail_saved **ret)
{
    unsigned long long dev, ino, off;
    char *input = NULL, *path = NULL;
    struct tail_saved *s = NULL;
    char hex[TAIL_FP_HASH * 2 + 1];
    size_t fp_len;
    int r;

    if (sscanf(line, "%ms %llu %llu %zu %64[0-9a-f] %llu %ms", &input, &dev,
               &ino, &fp_len, hex, &off, &path) != 7 ||
        strlen(hex) != TAIL_FP_HASH * 2 || fp_len > TAIL_FP_MAX) {
        r = -EBADMSG;
        goto out;
    }
    r = offsets_unescape(input);
    if (r < 0)
        goto out;
    r = offsets_unescape(path);
    if (r < 0)
        goto out;

    s = calloc(1, sizeof(*s));
    if (!s) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < TAIL_FP_HASH; i++) {
        unsigned v;

        (void)sscanf(hex + 2 * i, "%2x", &v);
        s->fp[i] = (uint8_t)v;
    }
    s->input = input;
    s->path = path;
    s->dev = (dev_t)dev;
    s->ino = (ino_t)ino;
    s->fp_len = fp_len;
    s->offset = off;
    input = path = NULL;
    *ret = s;
    r = 0;

out:
    free(input);
    free(path);
    return r;
}

static int
tail_load(struct tail *t)
{
    char *path = NULL, *line = NULL;
    struct tail_saved *s;
    size_t size = 0;
    unsigned lineno = 1;
    ssize_t n;
    FILE *fp = NULL;
    int r;

    path = malloc(strlen(t->state_dir) + sizeof("/offsets"));
    if (!path)
        return -ENOMEM;
    strcpy(stpcpy(path, t->state_dir), "/offsets");
    fp = fopen(path, "re");
    if (!fp) {
        r = errno == ENOENT ? 0 : -errno;
        goto out;
    }

    n = getline(&line, &size, fp);
    if (n > 0 && strcmp(line, TAIL_OFFSETS_MAGIC "\n") == 0) {
        unsigned long long seq;

        n = getline(&line, &size, fp);
        lineno++;
        if (n <= 0 || sscanf(line, "seq %llu", &seq) != 1) {
            log_warning("tail: %s:%u: no seq line, ignoring the file, reading files from 0",
                        path, lineno);
            r = 0;
            goto out;
        }
        t->saver.saved_seq = seq;
    } else if (n <= 0 || strcmp(line, TAIL_OFFSETS_MAGIC_V1 "\n") != 0) {
        log_warning("tail: '%s' is not an offsets file, ignoring it, reading files from 0",
                    path);
        r = 0;
        goto out;
    }
    while ((n = getline(&line, &size, fp)) > 0) {
        lineno++;
        r = offsets_parse_line(line, &s);
        if (r == -ENOMEM)
            goto out;
        if (r < 0) {
            log_warning("tail: %s:%u: malformed record, ignoring it",
                        path, lineno);
            continue;
        }
        s->next = t->saved;
        t->saved = s;
    }
    r = ferror(fp) ? -EIO : 0;

out:
    if (fp)
        (void)fclose(fp);
    free(line);
    free(path);
    return r;
}

static bool
tail_has_wildcard(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strchr("*?[\\", s[i]))
            return true;
    return false;
}

static int
tail_input_init(struct tail *t, struct tail_input *in,
                const struct config_input *c)
{
    const char *slash;

    if (!c->name || !c->path || c->max_line == 0)
        return -EINVAL;
    in->tail = t;
    in->name = strdup(c->name);
    in->pattern = strdup(c->path);
    if (!in->name || !in->pattern)
        return -ENOMEM;
    in->start_at_end = c->start_at_end;
    in->max_line = c->max_line;
    in->partial_usec = (uint64_t)c->partial_timeout_ms * 1000;
    in->rotate_usec = (uint64_t)c->rotate_wait_ms * 1000;

    slash = strrchr(c->path, '/');
    if (slash && !tail_has_wildcard(c->path, (size_t)(slash - c->path))) {
        size_t n = slash == c->path ? 1 : (size_t)(slash - c->path);

        in->dir = strndup(c->path, n);
        if (!in->dir)
            return -ENOMEM;
    }
    return 0;
}

static int
tail_add_sources(struct tail *t)
{
    int r;

    /* Off until a file has something to read. */
    r = sd_event_add_defer(t->event, &t->work, tail_work, t);
    if (r < 0)
        return r;
    r = sd_event_source_set_enabled(t->work, SD_EVENT_OFF);
    if (r < 0)
        return r;
    r = sd_event_add_time_relative(t->event, &t->rescan, CLOCK_MONOTONIC,
                                   t->rescan_usec, TAIL_TIMER_ACCURACY,
                                   tail_rescan_fired, t);
    if (r < 0)
        return r;
    /* Off until something changes. */
    r = sd_event_add_time_relative(t->event, &t->save_timer,
                                   CLOCK_MONOTONIC, TAIL_SAVE_USEC,
                                   TAIL_TIMER_ACCURACY, tail_save_fired, t);
    if (r < 0)
        return r;
    return sd_event_source_set_enabled(t->save_timer, SD_EVENT_OFF);
}

int
tail_new(const struct tail_options *o, struct tail **ret)
{
    struct tail *t;
    int r;

    if (!o->event || !o->state_dir || !o->line_fn ||
        (o->n_inputs > 0 && !o->inputs))
        return -EINVAL;

    t = calloc(1, sizeof(*t));
    if (!t)
        return -ENOMEM;
    pthread_mutex_init(&t->saver.lock, NULL);
    pthread_mutex_init(&t->saver.write_lock, NULL);
    pthread_cond_init(&t->saver.cond, NULL);
    t->event = sd_event_ref(o->event);
    t->line_fn = o->line_fn;
    t->userdata = o->userdata;
    t->rescan_usec = o->rescan_interval_ms > 0 ?
            (uint64_t)o->rescan_interval_ms * 1000 : TAIL_RESCAN_USEC;
    t->state_dir = strdup(o->state_dir);
    t->inputs = calloc(o->n_inputs ? o->n_inputs : 1, sizeof(*t->inputs));
    if (!t->state_dir || !t->inputs) {
        r = -ENOMEM;
        goto out;
    }
    for (size_t i = 0; i < o->n_inputs; i++) {
        t->n_inputs++;
        t->inputs[i].index = i;
        r = tail_input_init(t, &t->inputs[i], &o->inputs[i]);
        if (r < 0)
            goto out;
    }

    r = tail_load(t);
    if (r < 0)
        goto out;

    r = tail_add_sources(t);
    if (r < 0)
        goto out;

    r = -pthread_create(&t->saver.thread, NULL, tail_saver_main, t);
    if (r < 0)
        goto out;
    t->saver.running = true;

    t->starting = true;
    tail_rescan(t);
    t->starting = false;

    *ret = t;
    return 0;

out:
    tail_free(t);
    return r;
}

struct tail *
tail_free(struct tail *t)
{
    struct tail_saver *sv;

    if (!t)
        return NULL;
    sv = &t->saver;
    if (sv->running) {
        pthread_mutex_lock(&sv->lock);
        sv->stop = true;
        pthread_cond_signal(&sv->cond);
        pthread_mutex_unlock(&sv->lock);
        (void)pthread_join(sv->thread, NULL);
    }
    free(sv->pending);
    pthread_cond_destroy(&sv->cond);
    pthread_mutex_destroy(&sv->write_lock);
    pthread_mutex_destroy(&sv->lock);

    while (t->files)
        file_free(t->files);
    while (t->saved) {
        struct tail_saved *s = t->saved;

        t->saved = s->next;
        tail_saved_free(s);
    }
    while (t->failed) {
        struct tail_failed *e = t->failed;

        t->failed = e->next;
        free(e->path);
        free(e);
    }
    for (size_t i = 0; i < t->n_inputs; i++) {
        sd_event_source_disable_unref(t->inputs[i].dir_watch);
        free(t->inputs[i].name);
        free(t->inputs[i].pattern);
        free(t->inputs[i].dir);
    }
    free(t->inputs);
    sd_event_source_disable_unref(t->work);
    sd_event_source_disable_unref(t->rescan);
    sd_event_source_disable_unref(t->save_timer);
    sd_event_unref(t->event);
    free(t->state_dir);
    free(t);
    return NULL;
}

void
tail_durable(struct tail *t, uint64_t durable_seq)
{
    struct tail_file *f, *next;

    if (durable_seq > t->durable_seq)
        t->durable_seq = durable_seq;
    for (f = t->files; f; f = next) {
        next = f->next;
        if (file_advance(f, durable_seq))
            tail_mark_dirty(t);
        if (file_done(f)) {
            file_free(f);
            tail_mark_dirty(t);
        }
    }
}

void
tail_hold(struct tail *t, uint64_t file_id, uint64_t hold, uint64_t seq)
{
    struct tail_file *f = t->hold_cache;

    if (!f || f->id != file_id)
        for (f = t->files; f && f->id != file_id; f = f->next)
            ;
    if (!f)
        return;
    t->hold_cache = f;
    f->held_from = hold;
    /* Up to hold (or all that was taken) is spooled at seq or before. */
    file_mark(f, seq, f->taken_end);
}

void
tail_pause(struct tail *t)
{
    t->paused = true;
    (void)sd_event_source_set_enabled(t->work, SD_EVENT_OFF);
}

void
tail_resume(struct tail *t)
{
    t->paused = false;
    t->blocked = false;
    tail_kick(t);
}

int
tail_save(struct tail *t)
{
    struct tail_saver *sv = &t->saver;
    uint64_t gen, seq = 0;
    size_t len = 0;
    char *data;
    int r;

    r = tail_serialize(t, &data, &len, &seq);
    if (r < 0)
        return r;
    gen = ++t->save_gen;

    /* What the helper holds is older than this: drop it. */
    pthread_mutex_lock(&sv->lock);
    free(sv->pending);
    sv->pending = NULL;
    pthread_mutex_unlock(&sv->lock);

    r = tail_saver_write(t, data, len, gen, seq);
    free(data);
    if (r < 0)
        return r;
    t->dirty = false;
    (void)sd_event_source_set_enabled(t->save_timer, SD_EVENT_OFF);
    return 0;
}

size_t
tail_files(const struct tail *t)
{
    return t->n_open;
}

/* A bounded text buffer: len keeps counting past cap, which tells. */
struct tail_out {
    char *p;
    size_t cap;
    size_t len;
};

static void
out_put(struct tail_out *o, const char *s, size_t n)
{
    if (o->len + n <= o->cap)
        memcpy(o->p + o->len, s, n);
    o->len += n;
}

static void
out_put_escaped(struct tail_out *o, const char *s)
{
    char hex[4];

    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        if (*p > 0x20 && *p < 0x7f && *p != '%') {
            out_put(o, (const char *)p, 1);
            continue;
        }
        (void)snprintf(hex, sizeof(hex), "%%%02X", *p);
        out_put(o, hex, 3);
    }
}

/* One record in the offsets file's layout, for a marker. */
static void
out_put_record(struct tail_out *o, const struct tail_file *f)
{
    char num[128];
    int n;

    out_put_escaped(o, f->input->name);
    n = snprintf(num, sizeof(num), " %ju %ju %zu ", (uintmax_t)f->dev,
                 (uintmax_t)f->ino, f->fp_len);
    out_put(o, num, (size_t)n);
    for (size_t i = 0; i < TAIL_FP_HASH; i++) {
        (void)snprintf(num, sizeof(num), "%02x", f->fp[i]);
        out_put(o, num, 2);
    }
    n = snprintf(num, sizeof(num), " %" PRIu64 " ", f->handed_off);
    out_put(o, num, (size_t)n);
    out_put_escaped(o, f->path);
    out_put(o, "\n", 1);
}

int
tail_marker(struct tail *t, void *buf, size_t cap, size_t *ret_len)
{
    struct tail_out o = { .p = buf, .cap = cap };
    size_t records = 0;

    for (struct tail_file *f = t->files; f; f = f->next) {
        size_t before = o.len;

        if (!f->marker_dirty)
            continue;
        if (records == 0)
            out_put(&o, TAIL_MARKER_MAGIC, strlen(TAIL_MARKER_MAGIC));
        out_put_record(&o, f);
        if (o.len > o.cap) {
            /* The rest goes into the next marker. */
            o.len = before;
            if (records == 0)
                return -ENOBUFS;
            break;
        }
        f->marker_dirty = false;
        records++;
    }
    *ret_len = records > 0 ? o.len : 0;
    return 0;
}

void
tail_marker_retry(struct tail *t)
{
    for (struct tail_file *f = t->files; f; f = f->next)
        f->marker_dirty = true;
}

/* Moves a file nothing has been read from yet to a position. */
static void
file_reposition(struct tail_file *f, uint64_t off)
{
    struct stat st;

    if (fstat(f->fd, &st) == 0 && (uint64_t)st.st_size < off) {
        log_info("tail: '%s' is shorter than its position in the spool, reading it from 0",
                 f->path);
        off = 0;
    }
    log_debug("tail: '%s' resumes at %" PRIu64 " from the spool", f->path,
              off);
    f->buf_len = 0;
    f->buf_off = f->read_off = f->durable_off = f->handed_off = off;
    f->n_marks = 0;
    f->skipping = false;
    f->at_eof = false;
    tail_mark_dirty(f->tail);
}

/* Takes s over: the newest word on its file. */
static void
tail_apply_record(struct tail *t, struct tail_saved *s)
{
    struct tail_saved **p, *old;
    uint8_t fp[TAIL_FP_HASH];
    size_t fp_len = 0;
    int r;

    for (struct tail_file *f = t->files; f; f = f->next) {
        if (f->fd < 0 || f->dev != s->dev || f->ino != s->ino ||
            strcmp(f->input->name, s->input) != 0)
            continue;
        /* Another file at that inode now: the position is not its. */
        r = tail_fingerprint(f->fd, s->fp_len, fp, &fp_len);
        if (r >= 0 && fp_len == s->fp_len &&
            memcmp(fp, s->fp, TAIL_FP_HASH) == 0)
            file_reposition(f, s->offset);
        tail_saved_free(s);
        return;
    }

    for (p = &t->saved; (old = *p); p = &old->next)
        if (old->dev == s->dev && old->ino == s->ino &&
            strcmp(old->input, s->input) == 0) {
            *p = old->next;
            tail_saved_free(old);
            break;
        }
    s->next = t->saved;
    t->saved = s;
    tail_mark_dirty(t);
}

int
tail_apply_marker(struct tail *t, const void *data, size_t len)
{
    size_t magic = strlen(TAIL_MARKER_MAGIC);
    struct tail_saved *s;
    char *text, *line, *next;
    int r = 0;

    if (len < magic || memcmp(data, TAIL_MARKER_MAGIC, magic) != 0 ||
        memchr(data, '\0', len))
        return -EBADMSG;
    text = malloc(len + 1);
    if (!text)
        return -ENOMEM;
    memcpy(text, data, len);
    text[len] = '\0';

    for (line = text + magic; *line; line = next) {
        next = strchr(line, '\n');
        if (!next) {
            r = -EBADMSG;
            break;
        }
        *next++ = '\0';
        r = offsets_parse_line(line, &s);
        if (r < 0)
            break;
        tail_apply_record(t, s);
    }
    free(text);
    return r;
}

uint64_t
tail_saved_seq(struct tail *t)
{
    uint64_t seq;

    pthread_mutex_lock(&t->saver.lock);
    seq = t->saver.saved_seq;
    pthread_mutex_unlock(&t->saver.lock);
    return seq;
}
