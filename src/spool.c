/* SPDX-License-Identifier: MIT */
/*
 * The durable queue: segment files, framing, checksums, recovery, the
 * fdatasync helper thread, the checkpoint and the size cap.  What goes into
 * a frame, and when to append, read or acknowledge, is the caller's.
 */

/*
 * ON-DISK FORMAT
 *
 * A spool directory holds:
 *
 *     lock                  empty; flock()ed for as long as a spool is open
 *     checkpoint            the acknowledged position (below)
 *     checkpoint.tmp        a checkpoint being written; ignored when found
 *     sent                  the highest sequence number handed to the sink
 *     XXXXXXXXXXXXXXXX.seg  segments, named by the sequence number of their
 *                           first frame in 16 lowercase hex digits, so that
 *                           a sorted listing is the order of the queue
 *
 * A segment is a plain concatenation of frames, without a file header.
 * Each frame is a 16-byte header followed by the payload:
 *
 *     0   4  CRC-32C of bytes 4..15 of this header, then of the payload
 *     4   4  payload length, at most SPOOL_FRAME_MAX; the top bit set
 *            marks a marker frame (below)
 *     8   8  sequence number, never 0
 *    16   n  payload
 *
 * Integers are little-endian.  Frames are not padded.  Sequence numbers
 * rise by one from event frame to event frame across all segments; gaps
 * appear only where recovery set damaged bytes aside.  Segments are only
 * ever appended to by the process that created them: after a restart the
 * first write opens a new segment, so a recovered segment never changes
 * again except for the truncation below.
 *
 * A MARKER is a frame that holds no event but a note from the caller about
 * the events before it (the daemon writes the file inputs' read positions,
 * so that they become durable in the same fdatasync as the lines they
 * cover).  It carries the sequence number of the last event appended
 * before it, so it shares that number and takes none of its own; cursors
 * skip markers and spool_markers() replays them.  A marker never starts a
 * segment: it follows an event in the same one, so that segment names stay
 * distinct and a name is still the number of the first event in it.
 *
 * A frame is valid when its length is in range, the whole frame lies inside
 * the file, the checksum matches and its sequence number is above that of
 * the previous valid frame in the segment (for the first frame: at least
 * the number in the file name); a marker's may also equal it.  There is no
 * magic number; the checksum over the length and sequence number is what
 * tells a frame from garbage, including the zeros a file system may leave
 * after a crash (the CRC-32C of twelve zero bytes is not zero).
 *
 * RECOVERY reads every segment once, front to back, through a large buffer.
 * At the first bytes that are not a valid frame it looks, byte by byte, for
 * a later valid frame with a plausible sequence number (above the last good
 * one, and not further above it than the file could hold frames).
 *
 *   - If there is one, the bytes in between are damage in the middle: they
 *     are left in place, remembered as a hole that readers jump over, and
 *     reported at debug level.  The frames in the hole are lost; everything
 *     around it is kept.  Resynchronising was chosen over setting the rest
 *     of the segment aside because it loses the least: one damaged sector
 *     costs the frames it touches and no more.
 *
 *   - If there is none, the bytes are a torn tail (a write that a crash cut
 *     short, or zeros past the last write) and the file is truncated to the
 *     end of the last valid frame and synced.  This applies to every
 *     segment, not only the last one, because a crash may hit after a new
 *     segment was created but before the previous one reached the disk.
 *
 * Segments left empty are removed.  Frames found at recovery are synced
 * before they count as durable, since a process crash leaves them in the
 * page cache only.  A fully acknowledged segment that holds a marker is
 * kept until spool_retain() lets it go, because the markers in it may be
 * needed by the caller at this very start.
 *
 * THE CHECKPOINT is 12 bytes: the highest acknowledged sequence number (8)
 * and the CRC-32C of those 8 bytes (4).  Everything up to and including it
 * has been accepted by the sink and may be deleted; it is replaced with
 * write, fsync, rename, fsync of the directory, so it is either the old or
 * the new value.  Segments are deleted only after a checkpoint covering
 * them is on disk, and, if they hold markers, only once spool_retain() has
 * moved past their last frame.  A missing or damaged checkpoint reads as 0:
 * frames are sent again (duplicates), never lost.
 *
 * THE SENT FILE has the same 12-byte layout and is rewritten in place with
 * pwrite and no sync.  It only bounds the duplicates a restart can cause;
 * when it cannot be read, every frame present is counted as possibly sent.
 *
 * The next sequence number after a restart is one above the largest of:
 * the last valid frame, the checkpoint, the sent file and (name - 1) of
 * every segment, so numbers keep growing even when all segments are gone.
 *
 * DROPPING.  spool_drop_oldest() gives up whole segments of events that
 * were never read, oldest first, when the caller would rather lose old
 * events than hold its inputs back.  The segments leave the queue at once
 * but their files are deleted only when the frame appended after the drop
 * (the caller's record of the loss) is durable, and until then the
 * checkpoint does not move past them, so a crash in between finds them
 * again and nothing is lost without a record.  Their bytes count against
 * max_size until the files are gone.
 *
 * SYNC POLICY.  Appends go to a write buffer.  spool_sync_request() writes
 * it with pwrite in the caller and hands "fdatasync these files" to the
 * helper thread; requests made while a sync runs are merged into the next.
 * In SPOOL_SYNC_ALWAYS, a frame is durable when the fdatasync of its file
 * (and, for a new segment, of the directory) has returned, and the written
 * bytes stay in the buffer until then: if the sync fails, the kernel may
 * already have dropped the dirty pages and cleared the error, so the bytes
 * are written again from memory before another sync may count.  In
 * SPOOL_SYNC_INTERVAL, a frame counts as durable once write() has put it in
 * the page cache and fdatasync runs at most every sync_interval_ms: a
 * process crash loses nothing, a power failure or kernel crash may lose
 * what was written in the last interval, and a failed sync is reported but
 * cannot be repaired.  The fsyncs are cheaper in exchange.
 */
#include "spool.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"

#define SPOOL_HDR 16u
#define SPOOL_MARKER_FLAG 0x80000000u
/*
 * Room at the end of the write buffer that only markers may use, so that
 * the marker covering a buffer full of events always fits behind them.
 */
#define SPOOL_MARKER_RESERVE (4u * SPOOL_MARKER_MAX)
#define SPOOL_WBUF_SIZE (4u * 1024u * 1024u)
#define SPOOL_RBUF_SIZE (2u * 1024u * 1024u)   /* holds the largest frame */
#define SPOOL_SCAN_BUF_SIZE (4u * 1024u * 1024u)
#define SPOOL_SEGMENT_DEFAULT (64ull * 1024u * 1024u)
#define SPOOL_INTERVAL_DEFAULT_MS 1000u
#define SPOOL_CKPT_INTERVAL_NS (200ll * 1000 * 1000)
/*
 * Files written but not yet synced, and write chunks kept for a rewrite.
 * Only tiny segments can reach this within one buffer; the flush then stops
 * early and carries on after the next sync.
 */
#define SPOOL_MAX_FILES 64
#define SPOOL_MAX_CHUNKS 64

#define SPOOL_CKPT_NAME "checkpoint"
#define SPOOL_CKPT_TMP_NAME "checkpoint.tmp"
#define SPOOL_SENT_NAME "sent"
#define SPOOL_LOCK_NAME "lock"
#define SPOOL_POS_SIZE 12

struct spool_seg {
    uint64_t first_seq;         /* from the file name */
    uint64_t last_seq;          /* 0 while it holds no frame */
    uint64_t size;              /* bytes of valid frames (and holes) */
    bool has_marker;            /* kept for spool_retain() */
};

/* Damaged bytes found at recovery, skipped by cursors. */
struct spool_hole {
    uint64_t seg_first;
    uint64_t start, end;        /* file offsets, end exclusive */
    uint64_t seq_before;        /* last good frame before it, 0: none */
    uint64_t seq_after;         /* first good frame after it, 0: none */
};

/* A segment file open for writing that may hold unsynced data. */
struct spool_wfile {
    int fd;
    uint64_t last_wgen;         /* write number of the last chunk in it */
};

/* Bytes at the front of the write buffer already written, not yet synced. */
struct spool_chunk {
    int fd;
    uint64_t off;               /* file offset */
    size_t len;
    uint64_t wgen;              /* its write number, see spool.wgen */
};

/* Sequential reading of one file through a large buffer. */
struct spool_reader {
    int fd;
    uint8_t *buf;
    size_t cap;
    uint64_t base;              /* file offset of buf[0] */
    size_t len;                 /* bytes in buf */
    size_t pos;                 /* read position in buf */
};

/* What the loop asks the helper thread to do. */
struct spool_work {
    bool pending;
    uint64_t seq;               /* highest seq covered by the fds below */
    uint64_t wgen;              /* highest write number covered */
    int fds[SPOOL_MAX_FILES];
    int nfds;
    bool dir;                   /* fsync the directory too */
    bool ckpt;
    uint64_t ckpt_seq;
    unsigned gen;               /* failures the loop has seen */
};

struct spool {
    char *dir;
    int dir_fd;
    int lock_fd;
    int sent_fd;
    int event_fd;
    uint64_t max_size;
    uint64_t segment_size;
    enum spool_sync_mode sync;
    int64_t interval_ns;
    struct spool_io io;

    struct spool_seg *segs;     /* sorted by first_seq */
    size_t nsegs, segs_cap;
    struct spool_hole *holes;
    size_t nholes;
    uint64_t disk_size;         /* bytes in all segment files */

    uint64_t next_seq;
    uint64_t open_next_seq;     /* next_seq when the spool was opened */
    uint64_t written_seq;       /* last event handed to pwrite */
    uint64_t synced_seq;        /* last event covered by fdatasync */
    /*
     * Every pwrite of a run of frames gets the next write number.  Sync
     * bookkeeping counts in these rather than in sequence numbers because
     * a marker shares the number of the event before it: a marker written
     * after a sync was requested must not count as covered by it.
     */
    uint64_t wgen;              /* last write number handed out */
    uint64_t synced_wgen;       /* last one covered by fdatasync */
    uint64_t posted_wgen;       /* wgen of the last sync request */
    uint64_t retain_seq;        /* segments with markers above it stay */
    /*
     * Segments given up by spool_drop_oldest(), out of the queue, whose
     * files go once doom_seq is durable; none are acknowledged past the
     * first of them before that.  drop_gen tells cursors to look again.
     */
    struct spool_seg *doomed;
    size_t ndoomed;
    uint64_t doom_seq;
    unsigned drop_gen;
    uint64_t durable_seq;
    uint64_t acked_seq;
    uint64_t ckpt_posted;       /* acked seq last handed to the thread */
    uint64_t ckpt_disk;         /* acked seq known to be in the checkpoint */
    int64_t ckpt_time;          /* CLOCK_MONOTONIC ns of the last post */
    int64_t sync_time;          /* same, of the last interval-mode sync */
    uint64_t sent_seq;
    uint64_t sent_at_open;

    /* Write buffer: [0, w_off) written (chunks), [w_off, used) not yet. */
    uint8_t *wbuf;
    size_t used, w_off;
    struct spool_chunk chunks[SPOOL_MAX_CHUNKS];
    int nchunks;
    bool rewrite;               /* a sync failed: write the chunks again */
    struct spool_wfile wfiles[SPOOL_MAX_FILES];
    int nwfiles;                /* the last one is the current segment */
    int cur_fd;
    uint64_t cur_size;
    bool dir_dirty;
    bool flush_blocked;         /* the last flush left bytes unwritten */
    unsigned gen;               /* thread failures already dealt with */

    /* Shared with the helper thread, under mutex. */
    pthread_t thread;
    bool thread_started;
    pthread_mutex_t mutex;
    pthread_cond_t work_cond;
    pthread_cond_t idle_cond;
    bool stop;
    bool busy;
    struct spool_work req;      /* next request */
    struct spool_work work;     /* the one running (fds read by the loop) */
    unsigned fail_gen;
    uint64_t done_seq;
    uint64_t done_wgen;
    int done_err;
    uint64_t ckpt_done;
    int ckpt_err;
};

struct spool_cursor {
    struct spool *spool;
    struct spool_reader rd;
    uint64_t seg_first;         /* segment open in rd */
    uint64_t want;              /* next sequence number to return */
    bool markers;               /* return markers instead of events */
    unsigned drop_gen;          /* spool.drop_gen when rd was opened */
};

static void
put_le32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static void
put_le64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t
get_le32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
           (uint32_t)p[3] << 24;
}

static uint64_t
get_le64(const uint8_t *p)
{
    return (uint64_t)get_le32(p) | (uint64_t)get_le32(p + 4) << 32;
}

static int64_t
now_ns(void)
{
    struct timespec ts;

    (void)clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void
seg_name(char *buf, size_t size, uint64_t first_seq)
{
    (void)snprintf(buf, size, "%016llx.seg", (unsigned long long)first_seq);
}

/* Returns the first sequence number a segment file name stands for, or 0. */
static uint64_t
seg_parse_name(const char *name)
{
    uint64_t v = 0;

    if (strlen(name) != 20 || strcmp(name + 16, ".seg") != 0)
        return 0;
    for (int i = 0; i < 16; i++) {
        char c = name[i];

        if (c >= '0' && c <= '9')
            v = v << 4 | (uint64_t)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v = v << 4 | (uint64_t)(c - 'a' + 10);
        else
            return 0;
    }
    return v;
}

/* Payload length of the frame whose header is at hdr. */
static uint32_t
frame_len(const uint8_t *hdr)
{
    return get_le32(hdr + 4) & ~SPOOL_MARKER_FLAG;
}

static bool
frame_is_marker(const uint8_t *hdr)
{
    return (get_le32(hdr + 4) & SPOOL_MARKER_FLAG) != 0;
}

/*
 * Whether a frame with this sequence number may follow one numbered last:
 * an event needs a higher number, a marker repeats that of its event.
 */
static bool
frame_seq_follows(bool marker, uint64_t seq, uint64_t last)
{
    return marker ? seq >= last : seq > last;
}

static uint32_t
frame_crc(const uint8_t *hdr, const void *payload, size_t len)
{
    return crc32c(crc32c(0, hdr + 4, SPOOL_HDR - 4), payload, len);
}

/*
 * Reads ahead so that at least want bytes follow the read position, if the
 * file has them.  Returns the bytes available (fewer at end of file) or a
 * negative errno.  Pointers into the buffer are invalid afterwards.
 */
static ssize_t
reader_fill(struct spool_reader *rd, size_t want)
{
    if (rd->len - rd->pos >= want)
        return (ssize_t)(rd->len - rd->pos);

    if (rd->pos > 0) {
        memmove(rd->buf, rd->buf + rd->pos, rd->len - rd->pos);
        rd->base += rd->pos;
        rd->len -= rd->pos;
        rd->pos = 0;
    }
    while (rd->len < want) {
        ssize_t n = pread(rd->fd, rd->buf + rd->len, rd->cap - rd->len,
                          (off_t)(rd->base + rd->len));
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            break;
        rd->len += (size_t)n;
    }
    return (ssize_t)(rd->len - rd->pos);
}

static void
reader_seek(struct spool_reader *rd, uint64_t off)
{
    if (off >= rd->base && off <= rd->base + rd->len) {
        rd->pos = (size_t)(off - rd->base);
        return;
    }
    rd->base = off;
    rd->len = 0;
    rd->pos = 0;
}

static uint64_t
reader_offset(const struct spool_reader *rd)
{
    return rd->base + rd->pos;
}

/*
 * Checks the frame at the read position.  Returns 1 for a valid frame
 * (left unconsumed), 0 when the file ends inside it or right here, and
 * -EBADMSG for bytes that are no frame.  *ret_avail tells the two kinds of
 * 0 apart: nothing left, or an incomplete frame.
 */
static int
reader_frame(struct spool_reader *rd, uint64_t *ret_seq, uint32_t *ret_len,
             bool *ret_marker, size_t *ret_avail)
{
    const uint8_t *p;
    uint32_t len;
    ssize_t n;

    n = reader_fill(rd, SPOOL_HDR);
    if (n < 0)
        return (int)n;
    *ret_avail = (size_t)n;
    if ((size_t)n < SPOOL_HDR)
        return 0;

    len = frame_len(rd->buf + rd->pos);
    if (len > SPOOL_FRAME_MAX)
        return -EBADMSG;
    n = reader_fill(rd, SPOOL_HDR + len);
    if (n < 0)
        return (int)n;
    *ret_avail = (size_t)n;
    if ((size_t)n < SPOOL_HDR + len)
        return 0;

    p = rd->buf + rd->pos;
    if (get_le32(p) != frame_crc(p, p + SPOOL_HDR, len))
        return -EBADMSG;
    *ret_seq = get_le64(p + 8);
    *ret_len = len;
    *ret_marker = frame_is_marker(p);
    return *ret_seq == 0 ? -EBADMSG : 1;
}

static int
segs_grow(struct spool *s)
{
    struct spool_seg *n;
    size_t cap;

    if (s->nsegs < s->segs_cap)
        return 0;
    cap = s->segs_cap ? s->segs_cap * 2 : 16;
    n = realloc(s->segs, cap * sizeof(*n));
    if (!n)
        return -ENOMEM;
    s->segs = n;
    s->segs_cap = cap;
    return 0;
}

static void
segs_remove(struct spool *s, size_t i)
{
    memmove(&s->segs[i], &s->segs[i + 1],
            (s->nsegs - i - 1) * sizeof(s->segs[0]));
    s->nsegs--;
}

/* Index of the last segment starting at or before seq, else the first. */
static size_t
segs_find(const struct spool *s, uint64_t seq)
{
    size_t lo = 0, hi = s->nsegs;

    while (hi - lo > 1) {
        size_t mid = lo + (hi - lo) / 2;

        if (s->segs[mid].first_seq <= seq)
            lo = mid;
        else
            hi = mid;
    }
    return lo;
}

static int
spool_add_hole(struct spool *s, uint64_t seg_first, uint64_t start,
               uint64_t end, uint64_t seq_before)
{
    struct spool_hole *n;

    n = realloc(s->holes, (s->nholes + 1) * sizeof(*n));
    if (!n)
        return -ENOMEM;
    s->holes = n;
    s->holes[s->nholes++] = (struct spool_hole) {
        .seg_first = seg_first, .start = start, .end = end,
        .seq_before = seq_before,
    };
    return 0;
}

static const struct spool_hole *
spool_find_hole(const struct spool *s, uint64_t seg_first, uint64_t off)
{
    for (size_t i = 0; i < s->nholes; i++)
        if (s->holes[i].seg_first == seg_first && s->holes[i].start == off)
            return &s->holes[i];
    return NULL;
}

/* Reads a 12-byte position file; 0 when it is missing. */
static int
pos_read(int fd, uint64_t *ret_seq)
{
    uint8_t b[SPOOL_POS_SIZE];
    ssize_t n;

    n = pread(fd, b, sizeof(b), 0);
    if (n < 0)
        return -errno;
    if (n != (ssize_t)sizeof(b) || get_le32(b + 8) != crc32c(0, b, 8))
        return -EBADMSG;
    *ret_seq = get_le64(b);
    return 0;
}

static void
pos_encode(uint8_t *b, uint64_t seq)
{
    put_le64(b, seq);
    put_le32(b + 8, crc32c(0, b, 8));
}

static int
spool_read_checkpoint(struct spool *s)
{
    int fd, r;

    fd = openat(s->dir_fd, SPOOL_CKPT_NAME, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT)
        return 0;
    if (fd < 0)
        return -errno;
    r = pos_read(fd, &s->acked_seq);
    (void)close(fd);
    if (r == -EBADMSG) {
        log_debug("spool: checkpoint in '%s' is damaged, resending all",
                  s->dir);
        s->acked_seq = 0;
        return 0;
    }
    return r;
}

/* Atomic replacement; called on the helper thread or with it idle. */
static int
spool_write_checkpoint(int dir_fd, uint64_t seq)
{
    uint8_t b[SPOOL_POS_SIZE];
    ssize_t n;
    int fd, r = 0;

    pos_encode(b, seq);
    fd = openat(dir_fd, SPOOL_CKPT_TMP_NAME,
                O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -errno;
    n = write(fd, b, sizeof(b));
    if (n < 0)
        r = -errno;
    else if (n != (ssize_t)sizeof(b))
        r = -EIO;
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (close(fd) < 0 && r == 0)
        r = -errno;
    if (r < 0)
        goto out;

    if (renameat(dir_fd, SPOOL_CKPT_TMP_NAME, dir_fd, SPOOL_CKPT_NAME) < 0) {
        r = -errno;
        goto out;
    }
    if (fsync(dir_fd) < 0)
        r = -errno;
out:
    return r;
}

/*
 * Looks for the next valid frame at or after off with a sequence number
 * above after.  Returns 1 and its offset, 0 if there is none, or a negative
 * errno.  The plausibility checks come first so that garbage and zeros
 * cost a few compares per byte, not a checksum.
 */
static int
recover_resync(struct spool_reader *rd, uint64_t off, uint64_t fsize,
               uint64_t after, uint64_t *ret_off)
{
    uint64_t room = fsize / SPOOL_HDR + 1;

    for (; off + SPOOL_HDR <= fsize; off++) {
        const uint8_t *p;
        uint64_t seq;
        uint32_t len;
        bool marker;
        size_t avail;
        ssize_t n;
        int k;

        reader_seek(rd, off);
        n = reader_fill(rd, SPOOL_HDR);
        if (n < 0)
            return (int)n;
        if ((size_t)n < SPOOL_HDR)
            break;
        p = rd->buf + rd->pos;
        len = frame_len(p);
        seq = get_le64(p + 8);
        if (len > SPOOL_FRAME_MAX || seq < after || seq - after > room)
            continue;

        k = reader_frame(rd, &seq, &len, &marker, &avail);
        if (k < 0 && k != -EBADMSG)
            return k;
        if (k == 1 && frame_seq_follows(marker, seq, after)) {
            *ret_off = off;
            return 1;
        }
    }
    return 0;
}

/*
 * Validates one segment, records its holes, cuts its torn tail and syncs
 * it.  The caller removes it when it ends up without frames.
 */
static int
recover_segment(struct spool *s, struct spool_reader *rd,
                struct spool_seg *seg)
{
    uint64_t good_end = 0, last = seg->first_seq - 1;
    struct stat st;
    char name[32];
    int r;

    seg_name(name, sizeof(name), seg->first_seq);
    rd->fd = openat(s->dir_fd, name, O_RDWR | O_CLOEXEC);
    if (rd->fd < 0)
        return -errno;
    if (fstat(rd->fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    rd->base = rd->len = rd->pos = 0;

    for (;;) {
        uint64_t seq = 0, off = reader_offset(rd), next = 0;
        uint32_t len = 0;
        bool marker = false;
        size_t avail;

        r = reader_frame(rd, &seq, &len, &marker, &avail);
        if (r < 0 && r != -EBADMSG)
            goto out;
        if (r == 1 && frame_seq_follows(marker, seq, last)) {
            struct spool_hole *h = s->nholes ? &s->holes[s->nholes - 1]
                                             : NULL;

            /* The first event after a hole bounds what it swallowed. */
            if (!marker && h && h->seg_first == seg->first_seq &&
                h->seq_after == 0)
                h->seq_after = seq;
            seg->has_marker |= marker;
            last = seq;
            rd->pos += SPOOL_HDR + len;
            good_end = reader_offset(rd);
            continue;
        }
        if (r == 0 && avail == 0)
            break;

        r = recover_resync(rd, off + 1, (uint64_t)st.st_size, last, &next);
        if (r < 0)
            goto out;
        if (r == 0)
            break;
        log_debug("spool: '%s' damaged at bytes %llu-%llu, skipping them",
                  name, (unsigned long long)off, (unsigned long long)next);
        r = spool_add_hole(s, seg->first_seq, off, next,
                           last >= seg->first_seq ? last : 0);
        if (r < 0)
            goto out;
        reader_seek(rd, next);
    }

    if ((uint64_t)st.st_size > good_end) {
        log_debug("spool: cutting torn tail of '%s' at %llu of %llu bytes",
                  name, (unsigned long long)good_end,
                  (unsigned long long)st.st_size);
        if (ftruncate(rd->fd, (off_t)good_end) < 0) {
            r = -errno;
            goto out;
        }
    }
    r = 0;
    if (good_end > 0 && fdatasync(rd->fd) < 0)
        r = -errno;
    seg->last_seq = good_end > 0 ? last : 0;
    seg->has_marker &= good_end > 0;
    seg->size = good_end;
out:
    (void)close(rd->fd);
    rd->fd = -1;
    return r;
}

static int
seg_cmp(const void *a, const void *b)
{
    const struct spool_seg *x = a, *y = b;

    return x->first_seq < y->first_seq ? -1 : x->first_seq > y->first_seq;
}

static int
spool_list_segments(struct spool *s)
{
    struct dirent *de;
    DIR *d;
    int fd, r = 0;

    fd = dup(s->dir_fd);
    if (fd < 0)
        return -errno;
    d = fdopendir(fd);
    if (!d) {
        r = -errno;
        (void)close(fd);
        return r;
    }
    rewinddir(d);
    while ((de = readdir(d))) {
        uint64_t first = seg_parse_name(de->d_name);

        if (first == 0)
            continue;
        r = segs_grow(s);
        if (r < 0)
            break;
        s->segs[s->nsegs++] = (struct spool_seg) { .first_seq = first };
    }
    (void)closedir(d);
    if (r == 0 && s->nsegs > 1)
        qsort(s->segs, s->nsegs, sizeof(s->segs[0]), seg_cmp);
    return r;
}

static uint64_t
max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static int
spool_unlink_seg(struct spool *s, size_t i)
{
    char name[32];

    seg_name(name, sizeof(name), s->segs[i].first_seq);
    if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT)
        return -errno;
    s->disk_size -= s->segs[i].size;
    segs_remove(s, i);
    return 0;
}

/* Validates all segments and drops the empty and the acknowledged ones. */
static int
spool_recover(struct spool *s)
{
    struct spool_reader rd = { .fd = -1, .cap = SPOOL_SCAN_BUF_SIZE };
    uint64_t top = 0;
    int r;

    r = spool_list_segments(s);
    if (r < 0)
        return r;
    rd.buf = malloc(rd.cap);
    if (!rd.buf)
        return -ENOMEM;

    for (size_t i = 0; i < s->nsegs; i++) {
        r = recover_segment(s, &rd, &s->segs[i]);
        if (r < 0)
            goto out;
        top = max_u64(top, max_u64(s->segs[i].last_seq,
                                   s->segs[i].first_seq - 1));
        s->disk_size += s->segs[i].size;
    }
    for (size_t i = 0; i < s->nsegs;) {
        const struct spool_seg *g = &s->segs[i];

        /* Markers may be needed before anyone can call spool_retain(). */
        if (g->last_seq != 0 && (g->last_seq > s->acked_seq || g->has_marker)) {
            i++;
            continue;
        }
        r = spool_unlink_seg(s, i);
        if (r < 0)
            goto out;
    }
    s->next_seq = max_u64(top, s->acked_seq) + 1;
    r = 0;
out:
    free(rd.buf);
    return r;
}

static int
spool_open_sent(struct spool *s)
{
    uint64_t seq = 0;
    int r;

    s->sent_fd = openat(s->dir_fd, SPOOL_SENT_NAME,
                        O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->sent_fd < 0)
        return -errno;
    r = pos_read(s->sent_fd, &seq);
    if (r < 0 && r != -EBADMSG)
        return r;
    /* Unreadable means unknown: count everything present as sent. */
    if (r == -EBADMSG)
        seq = s->next_seq - 1;
    s->next_seq = max_u64(s->next_seq, seq + 1);
    s->sent_at_open = max_u64(seq, s->acked_seq);
    s->sent_seq = s->sent_at_open;
    return 0;
}

static int
spool_lock(struct spool *s)
{
    s->lock_fd = openat(s->dir_fd, SPOOL_LOCK_NAME,
                        O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->lock_fd < 0)
        return -errno;
    if (flock(s->lock_fd, LOCK_EX | LOCK_NB) < 0)
        return errno == EWOULDBLOCK ? -EBUSY : -errno;
    return 0;
}

static int
sys_fdatasync(int fd)
{
    return fdatasync(fd);
}

/* Syncs the files of one request; the fds stay open until the loop sees
 * the result, because it closes them only when no request names them. */
static int
spool_do_sync(struct spool *s, const struct spool_work *w)
{
    for (int i = 0; i < w->nfds; i++)
        if (s->io.fdatasync(w->fds[i]) < 0)
            return -errno;
    if (w->dir && fsync(s->dir_fd) < 0)
        return -errno;
    return 0;
}

static void *
spool_thread(void *arg)
{
    struct spool *s = arg;

    (void)pthread_mutex_lock(&s->mutex);
    for (;;) {
        uint64_t one = 1;
        int err, ckpt_err = 0;

        while (!s->req.pending && !s->stop)
            (void)pthread_cond_wait(&s->work_cond, &s->mutex);
        if (!s->req.pending)
            break;
        s->work = s->req;
        s->req.pending = false;
        s->req.dir = false;
        s->req.ckpt = false;
        s->busy = true;
        (void)pthread_mutex_unlock(&s->mutex);

        err = spool_do_sync(s, &s->work);
        if (s->work.ckpt)
            ckpt_err = spool_write_checkpoint(s->dir_fd, s->work.ckpt_seq);

        (void)pthread_mutex_lock(&s->mutex);
        /*
         * After a failure, later syncs prove nothing about the failed
         * bytes until the loop has written them again; it says so by
         * sending the new failure count along.
         */
        if (err < 0) {
            s->fail_gen++;
            s->done_err = err;
        } else if (s->work.gen == s->fail_gen) {
            s->done_seq = max_u64(s->done_seq, s->work.seq);
            s->done_wgen = max_u64(s->done_wgen, s->work.wgen);
        }
        if (s->work.ckpt && ckpt_err < 0)
            s->ckpt_err = ckpt_err;
        else if (s->work.ckpt)
            s->ckpt_done = max_u64(s->ckpt_done, s->work.ckpt_seq);
        s->busy = false;
        s->work.nfds = 0;
        (void)pthread_cond_broadcast(&s->idle_cond);
        (void)pthread_mutex_unlock(&s->mutex);
        (void)!write(s->event_fd, &one, sizeof(one));
        (void)pthread_mutex_lock(&s->mutex);
    }
    (void)pthread_mutex_unlock(&s->mutex);
    return NULL;
}

static int
spool_start(struct spool *s)
{
    int r;

    s->wbuf = malloc(SPOOL_WBUF_SIZE);
    if (!s->wbuf)
        return -ENOMEM;
    s->event_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (s->event_fd < 0)
        return -errno;
    r = pthread_create(&s->thread, NULL, spool_thread, s);
    if (r != 0)
        return -r;
    s->thread_started = true;
    return 0;
}

static void spool_destroy(struct spool *s);

int
spool_open(const struct spool_options *o, struct spool **ret)
{
    struct spool *s;
    int r;

    if (!o || !o->dir || !ret)
        return -EINVAL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->dir_fd = s->lock_fd = s->sent_fd = s->event_fd = s->cur_fd = -1;
    (void)pthread_mutex_init(&s->mutex, NULL);
    (void)pthread_cond_init(&s->work_cond, NULL);
    (void)pthread_cond_init(&s->idle_cond, NULL);
    s->max_size = o->max_size;
    s->segment_size = o->segment_size ? o->segment_size : SPOOL_SEGMENT_DEFAULT;
    s->sync = o->sync;
    s->interval_ns = (int64_t)(o->sync_interval_ms ? o->sync_interval_ms
                               : SPOOL_INTERVAL_DEFAULT_MS) * 1000000;
    s->io.pwrite = o->io && o->io->pwrite ? o->io->pwrite : pwrite;
    s->io.fdatasync = o->io && o->io->fdatasync ? o->io->fdatasync
                                                 : sys_fdatasync;
    s->dir = strdup(o->dir);
    if (!s->dir) {
        r = -ENOMEM;
        goto out;
    }

    if (mkdir(s->dir, 0700) < 0 && errno != EEXIST) {
        r = -errno;
        goto out;
    }
    s->dir_fd = open(s->dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (s->dir_fd < 0) {
        r = -errno;
        goto out;
    }
    r = spool_lock(s);
    if (r < 0)
        goto out;
    r = spool_read_checkpoint(s);
    if (r < 0)
        goto out;
    s->ckpt_disk = s->ckpt_posted = s->acked_seq;
    r = spool_recover(s);
    if (r < 0)
        goto out;
    r = spool_open_sent(s);
    if (r < 0)
        goto out;
    s->written_seq = s->synced_seq = s->durable_seq = s->next_seq - 1;
    s->open_next_seq = s->next_seq;
    s->done_seq = s->synced_seq;
    r = spool_start(s);
    if (r < 0)
        goto out;

    *ret = s;
    s = NULL;
out:
    spool_destroy(s);
    return r;
}

/* Writes all of buf at off, resuming after short writes. */
static int
spool_write_all(struct spool *s, int fd, const uint8_t *buf, size_t len,
                uint64_t off)
{
    while (len > 0) {
        ssize_t n = s->io.pwrite(fd, buf, len, (off_t)off);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            return -errno;
        if (n == 0)
            return -EIO;
        buf += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

/* Starts the segment whose first frame is first_seq.  0: too many open. */
static int
spool_rotate(struct spool *s, uint64_t first_seq)
{
    char name[32];
    int fd, r;

    if (s->nwfiles == SPOOL_MAX_FILES)
        return 0;
    r = segs_grow(s);
    if (r < 0)
        return r;
    seg_name(name, sizeof(name), first_seq);
    fd = openat(s->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
                0600);
    if (fd < 0)
        return -errno;

    s->segs[s->nsegs++] = (struct spool_seg) { .first_seq = first_seq };
    s->wfiles[s->nwfiles++] = (struct spool_wfile) { .fd = fd };
    s->cur_fd = fd;
    s->cur_size = 0;
    s->dir_dirty = true;
    return 1;
}

static uint32_t
wbuf_frame_size(const struct spool *s, size_t off)
{
    return SPOOL_HDR + frame_len(s->wbuf + off);
}

/*
 * Whether the buffered frame at off has to go into a new segment.  A
 * marker never starts one (it may push a segment past segment_size): a
 * segment it started would have to be named like the segment of the next
 * event.  spool_append_marker() sees to it that an event of this process
 * comes first, so a marker always finds its segment open.
 */
static bool
wbuf_needs_segment(const struct spool *s, size_t off, size_t run)
{
    if (s->cur_fd < 0)
        return true;
    if (frame_is_marker(s->wbuf + off))
        return false;
    return s->cur_size + run > 0 &&
           s->cur_size + run + wbuf_frame_size(s, off) > s->segment_size;
}

/*
 * Writes the next run of unwritten frames that belongs in one segment.
 * Returns 1 after progress, 0 when it must wait for a sync first, or a
 * negative errno with the bytes still in the buffer and the file cut back
 * to where it was, so that no torn frame stays behind.
 */
static int
spool_write_chunk(struct spool *s)
{
    size_t start = s->w_off, end = s->w_off;
    bool marker = false;
    uint64_t last = 0;
    int r;

    if (s->sync == SPOOL_SYNC_ALWAYS && s->nchunks == SPOOL_MAX_CHUNKS)
        return 0;
    if (wbuf_needs_segment(s, start, 0)) {
        assert(!frame_is_marker(s->wbuf + start));
        r = spool_rotate(s, get_le64(s->wbuf + start + 8));
        if (r <= 0)
            return r;
    }
    while (end < s->used) {
        uint32_t fs = wbuf_frame_size(s, end);

        if (end > start && wbuf_needs_segment(s, end, end - start))
            break;
        last = get_le64(s->wbuf + end + 8);
        marker |= frame_is_marker(s->wbuf + end);
        end += fs;
    }

    r = spool_write_all(s, s->cur_fd, s->wbuf + start, end - start,
                        s->cur_size);
    if (r < 0) {
        (void)!ftruncate(s->cur_fd, (off_t)s->cur_size);
        return r;
    }
    s->wgen++;
    if (s->sync == SPOOL_SYNC_ALWAYS)
        s->chunks[s->nchunks++] = (struct spool_chunk) {
            .fd = s->cur_fd, .off = s->cur_size, .len = end - start,
            .wgen = s->wgen,
        };
    s->cur_size += end - start;
    s->disk_size += end - start;
    s->segs[s->nsegs - 1].last_seq = last;
    s->segs[s->nsegs - 1].size = s->cur_size;
    s->segs[s->nsegs - 1].has_marker |= marker;
    s->wfiles[s->nwfiles - 1].last_wgen = s->wgen;
    s->w_off = end;
    s->written_seq = last;
    return 1;
}

/* After a failed sync: the same bytes again, at the same places. */
static int
spool_rewrite(struct spool *s)
{
    size_t off = 0;
    int r;

    for (int i = 0; i < s->nchunks; i++) {
        const struct spool_chunk *c = &s->chunks[i];

        r = spool_write_all(s, c->fd, s->wbuf + off, c->len, c->off);
        if (r < 0)
            return r;
        off += c->len;
    }
    s->rewrite = false;
    return 0;
}

static int spool_unlink_doomed(struct spool *s);

/*
 * Writes out as much of the buffer as may go now.  In interval mode the
 * bytes are dropped as soon as the kernel has them, which is the point of
 * that mode.
 */
static int
spool_flush(struct spool *s)
{
    int r = 0;

    if (s->rewrite) {
        r = spool_rewrite(s);
        if (r < 0)
            return r;
    }
    while (s->w_off < s->used) {
        r = spool_write_chunk(s);
        if (r <= 0)
            break;
    }
    s->flush_blocked = r == 0 && s->w_off < s->used;

    if (s->sync == SPOOL_SYNC_INTERVAL && s->w_off > 0) {
        memmove(s->wbuf, s->wbuf + s->w_off, s->used - s->w_off);
        s->used -= s->w_off;
        s->w_off = 0;
        s->durable_seq = s->written_seq;
    }
    if (r >= 0)
        r = spool_unlink_doomed(s);
    return r < 0 ? r : 0;
}

/* Hands every file that may hold unsynced frames to the helper thread. */
static void
spool_post_sync(struct spool *s)
{
    (void)pthread_mutex_lock(&s->mutex);
    s->req.seq = s->written_seq;
    s->req.wgen = s->wgen;
    s->req.gen = s->gen;
    s->req.nfds = 0;
    for (int i = 0; i < s->nwfiles; i++)
        s->req.fds[s->req.nfds++] = s->wfiles[i].fd;
    s->req.dir |= s->dir_dirty;
    s->req.pending = true;
    (void)pthread_cond_signal(&s->work_cond);
    (void)pthread_mutex_unlock(&s->mutex);
    s->dir_dirty = false;
    s->posted_wgen = s->wgen;
}

/*
 * Asks for a new checkpoint when acknowledgements have moved and the last
 * one is old enough.  The limit keeps a fast sink from turning every ack
 * into two fsyncs; what it costs is at most 200 ms of acknowledgements
 * that a crash would make the sink see again.
 */
/*
 * What the checkpoint may say: the acknowledged position, but below the
 * segments given up and not yet deleted (see DROPPING above), since at
 * the next start a checkpoint past them would delete them unrecorded.
 */
static uint64_t
spool_ckpt_target(const struct spool *s)
{
    uint64_t seq = s->acked_seq;

    for (size_t i = 0; i < s->ndoomed; i++)
        if (s->doomed[i].first_seq - 1 < seq)
            seq = s->doomed[i].first_seq - 1;
    return seq;
}

static void
spool_maybe_checkpoint(struct spool *s)
{
    uint64_t target = spool_ckpt_target(s);
    int64_t now;

    if (target <= s->ckpt_posted)
        return;
    now = now_ns();
    if (now - s->ckpt_time < SPOOL_CKPT_INTERVAL_NS)
        return;
    s->ckpt_time = now;
    s->ckpt_posted = target;

    (void)pthread_mutex_lock(&s->mutex);
    s->req.ckpt = true;
    s->req.ckpt_seq = target;
    s->req.pending = true;
    (void)pthread_cond_signal(&s->work_cond);
    (void)pthread_mutex_unlock(&s->mutex);
}

static bool
work_has_fd(const struct spool_work *w, int fd)
{
    for (int i = 0; i < w->nfds; i++)
        if (w->fds[i] == fd)
            return true;
    return false;
}

static void
work_drop_fd(struct spool_work *w, int fd)
{
    for (int i = 0; i < w->nfds; i++)
        if (w->fds[i] == fd) {
            w->fds[i] = w->fds[--w->nfds];
            return;
        }
}

/*
 * Closes finished segments whose frames are all synced.  A request the
 * thread took before this result arrived may still name the fd; such a
 * file waits for the next round, so that the thread never syncs a number
 * that has meanwhile been reused for another file.
 */
static void
spool_close_synced(struct spool *s)
{
    int i = 0;

    (void)pthread_mutex_lock(&s->mutex);
    while (i < s->nwfiles - 1) {
        struct spool_wfile *f = &s->wfiles[i];

        if (f->last_wgen > s->synced_wgen || work_has_fd(&s->work, f->fd)) {
            i++;
            continue;
        }
        work_drop_fd(&s->req, f->fd);
        (void)close(f->fd);
        memmove(f, f + 1, (size_t)(s->nwfiles - i - 1) * sizeof(*f));
        s->nwfiles--;
    }
    (void)pthread_mutex_unlock(&s->mutex);
}

/* Every write up to wgen, and so every event up to seq, is on disk. */
static void
spool_synced(struct spool *s, uint64_t seq, uint64_t wgen)
{
    size_t drop = 0;
    int n = 0;

    s->synced_seq = max_u64(s->synced_seq, seq);
    s->synced_wgen = wgen;
    if (s->sync == SPOOL_SYNC_ALWAYS)
        s->durable_seq = max_u64(s->durable_seq, seq);

    while (n < s->nchunks && s->chunks[n].wgen <= wgen)
        drop += s->chunks[n++].len;
    if (n > 0) {
        memmove(s->chunks, s->chunks + n,
                (size_t)(s->nchunks - n) * sizeof(s->chunks[0]));
        s->nchunks -= n;
        memmove(s->wbuf, s->wbuf + drop, s->used - drop);
        s->used -= drop;
        s->w_off -= drop;
    }
    spool_close_synced(s);
}

/*
 * Deletes the files of given-up segments once the record of the loss
 * appended after them is durable.  A file that cannot be deleted now is
 * tried again at the next call; until then it still counts as spooled.
 */
static int
spool_unlink_doomed(struct spool *s)
{
    size_t keep = 0;
    int r = 0;

    if (s->ndoomed == 0 || s->durable_seq < s->doom_seq)
        return 0;
    for (size_t i = 0; i < s->ndoomed; i++) {
        char name[32];

        seg_name(name, sizeof(name), s->doomed[i].first_seq);
        if (unlinkat(s->dir_fd, name, 0) < 0 && errno != ENOENT) {
            r = -errno;
            s->doomed[keep++] = s->doomed[i];
            continue;
        }
        s->disk_size -= s->doomed[i].size;
    }
    s->ndoomed = keep;
    if (keep == 0) {
        free(s->doomed);
        s->doomed = NULL;
    }
    return r;
}

/* Deletes the oldest segments while the checkpoint on disk covers them. */
static int
spool_delete_acked(struct spool *s)
{
    int r = 0;

    while (s->nsegs > 0) {
        const struct spool_seg *g = &s->segs[0];

        if (g->last_seq == 0 || g->last_seq > s->ckpt_disk)
            break;
        if (g->has_marker && g->last_seq > s->retain_seq)
            break;
        /* The segment being written stays, even when fully acked. */
        if (s->cur_fd >= 0 && s->nsegs == 1)
            break;
        r = spool_unlink_seg(s, 0);
        if (r < 0)
            break;
    }
    return r;
}

/* Takes in what the helper thread finished; returns the error it hit. */
static int
spool_absorb(struct spool *s)
{
    uint64_t done, done_wgen, ckpt;
    int err, ckpt_err, r = 0;

    (void)pthread_mutex_lock(&s->mutex);
    done = s->done_seq;
    done_wgen = s->done_wgen;
    ckpt = s->ckpt_done;
    err = s->done_err;
    ckpt_err = s->ckpt_err;
    s->done_err = s->ckpt_err = 0;
    s->gen = s->fail_gen;
    (void)pthread_mutex_unlock(&s->mutex);

    if (done_wgen > s->synced_wgen)
        spool_synced(s, done, done_wgen);
    if (err < 0) {
        s->rewrite = s->nchunks > 0;
        s->dir_dirty = true;
        s->posted_wgen = s->synced_wgen;
    }
    if (ckpt_err < 0)
        s->ckpt_posted = s->ckpt_disk;
    if (ckpt > s->ckpt_disk) {
        s->ckpt_disk = ckpt;
        r = spool_delete_acked(s);
    }
    if (r == 0)
        r = spool_unlink_doomed(s);
    if (err < 0)
        return err;
    return ckpt_err < 0 ? ckpt_err : r;
}

/*
 * Interval mode: the frames count once written; fdatasync goes to the
 * thread at most once per interval.  The caller has to call in at least
 * that often for the interval to hold.  When no sync is started, the
 * eventfd is signalled here so that the caller's collect step runs the
 * same way in both modes.
 */
static int
spool_request_interval(struct spool *s)
{
    int64_t now = now_ns();
    uint64_t one = 1;

    if ((s->wgen > s->posted_wgen || s->dir_dirty) &&
        now - s->sync_time >= s->interval_ns) {
        s->sync_time = now;
        spool_post_sync(s);
        return 0;
    }
    if (write(s->event_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
        return -errno;
    return 0;
}

int
spool_sync_request(struct spool *s)
{
    int r;

    r = spool_flush(s);
    if (r < 0)
        return r;

    spool_maybe_checkpoint(s);
    if (s->sync == SPOOL_SYNC_INTERVAL)
        return spool_request_interval(s);
    if (s->wgen > s->posted_wgen || s->dir_dirty)
        spool_post_sync(s);
    return 0;
}

int
spool_sync_fd(const struct spool *s)
{
    return s->event_fd;
}

int
spool_sync_collect(struct spool *s)
{
    uint64_t v;
    int r;

    if (read(s->event_fd, &v, sizeof(v)) < 0 && errno != EAGAIN)
        return -errno;
    r = spool_absorb(s);
    if (r < 0)
        return r;
    /* The last flush stopped at the open-file limit: carry on. */
    if (s->flush_blocked)
        return spool_sync_request(s);
    spool_maybe_checkpoint(s);
    return 0;
}

/* Caller-side sync of every file that may hold unsynced frames. */
static int
spool_sync_files(struct spool *s)
{
    for (int i = 0; i < s->nwfiles; i++)
        if (s->io.fdatasync(s->wfiles[i].fd) < 0)
            return -errno;
    if (s->dir_dirty && fsync(s->dir_fd) < 0)
        return -errno;
    s->dir_dirty = false;
    return 0;
}

int
spool_sync_now(struct spool *s)
{
    int r;

    /* The thread must not write the checkpoint at the same time. */
    (void)pthread_mutex_lock(&s->mutex);
    while (s->req.pending || s->busy)
        (void)pthread_cond_wait(&s->idle_cond, &s->mutex);
    (void)pthread_mutex_unlock(&s->mutex);
    /* Whatever failed there is redone below. */
    (void)spool_absorb(s);

    do {
        r = spool_flush(s);
        if (r < 0)
            return r;
        r = spool_sync_files(s);
        if (r < 0) {
            s->rewrite = s->nchunks > 0;
            s->dir_dirty = true;
            return r;
        }
        s->posted_wgen = s->wgen;
        spool_synced(s, s->written_seq, s->wgen);
    } while (s->w_off < s->used);

    r = spool_unlink_doomed(s);
    if (r < 0)
        return r;
    if (spool_ckpt_target(s) > s->ckpt_disk) {
        uint64_t target = spool_ckpt_target(s);

        r = spool_write_checkpoint(s->dir_fd, target);
        if (r < 0)
            return r;
        s->ckpt_disk = s->ckpt_posted = target;
    }
    return spool_delete_acked(s);
}

uint64_t
spool_next_seq(const struct spool *s)
{
    return s->next_seq;
}

uint64_t
spool_durable_seq(const struct spool *s)
{
    return s->durable_seq;
}

uint64_t
spool_size(const struct spool *s)
{
    return s->disk_size + (s->used - s->w_off);
}

bool
spool_is_full(const struct spool *s)
{
    return s->max_size > 0 && spool_size(s) + SPOOL_HDR > s->max_size;
}

static void
spool_put_frame(struct spool *s, uint32_t flags, uint64_t seq,
                const void *data, size_t len)
{
    uint8_t *p = s->wbuf + s->used;

    put_le32(p + 4, (uint32_t)len | flags);
    put_le64(p + 8, seq);
    if (len > 0)
        memcpy(p + SPOOL_HDR, data, len);
    put_le32(p, frame_crc(p, p + SPOOL_HDR, len));
    s->used += SPOOL_HDR + len;
}

int
spool_append(struct spool *s, const void *data, size_t len,
             uint64_t *ret_seq)
{
    size_t fs = SPOOL_HDR + len;

    if (len > SPOOL_FRAME_MAX)
        return -EMSGSIZE;
    if (s->max_size > 0 && spool_size(s) + fs > s->max_size)
        return -ENOSPC;
    if (s->used + fs > SPOOL_WBUF_SIZE - SPOOL_MARKER_RESERVE)
        return -EAGAIN;

    spool_put_frame(s, 0, s->next_seq, data, len);
    if (ret_seq)
        *ret_seq = s->next_seq;
    s->next_seq++;
    return 0;
}

/* Whether segment i may be given up (see spool_drop_oldest()). */
static bool
spool_droppable(const struct spool *s, size_t i, uint64_t floor)
{
    const struct spool_seg *g = &s->segs[i];

    if (g->first_seq < floor || g->last_seq == 0 ||
        g->last_seq > s->durable_seq || g->last_seq > s->synced_seq)
        return false;
    if (g->has_marker && g->last_seq > s->retain_seq)
        return false;
    /* The segment being written; in interval mode it may be unsynced. */
    if (s->cur_fd >= 0 && i == s->nsegs - 1)
        return false;
    return true;
}

int
spool_drop_oldest(struct spool *s, uint64_t floor, uint64_t need,
                  spool_note_fn note_fn, void *userdata, uint64_t *ret_seq)
{
    uint64_t size = spool_size(s), freed = 0;
    size_t i = 0, n = 0, len = 0;
    const void *note = NULL;
    struct spool_seg *d;
    int r;

    if (s->ndoomed > 0)
        return -EBUSY;
    while (i < s->nsegs && !spool_droppable(s, i, floor))
        i++;
    while (i + n < s->nsegs && spool_droppable(s, i + n, floor) &&
           (n == 0 || size - freed + need > s->max_size)) {
        freed += s->segs[i + n].size;
        n++;
    }
    if (n == 0)
        return 0;

    r = note_fn(userdata, s->segs[i].first_seq, s->segs[i + n - 1].last_seq,
                s->next_seq, &note, &len);
    if (r < 0)
        return r;
    if (len > SPOOL_FRAME_MAX)
        return -EMSGSIZE;
    if (s->used + SPOOL_HDR + len > SPOOL_WBUF_SIZE - SPOOL_MARKER_RESERVE)
        return -EAGAIN;
    d = malloc(n * sizeof(*d));
    if (!d)
        return -ENOMEM;

    /* The record is the frame whose durability lets the files go. */
    s->doom_seq = s->next_seq;
    spool_put_frame(s, 0, s->next_seq, note, len);
    *ret_seq = s->next_seq++;
    memcpy(d, s->segs + i, n * sizeof(*d));
    s->doomed = d;
    s->ndoomed = n;
    memmove(&s->segs[i], &s->segs[i + n],
            (s->nsegs - i - n) * sizeof(s->segs[0]));
    s->nsegs -= n;
    s->drop_gen++;
    return 1;
}

/*
 * Markers are not held to max_size: they are small, and refusing one
 * would leave the events before it without the note that covers them.
 */
int
spool_append_marker(struct spool *s, const void *data, size_t len)
{
    if (len > SPOOL_MARKER_MAX)
        return -EMSGSIZE;
    /* See wbuf_needs_segment(). */
    if (s->next_seq == s->open_next_seq)
        return -EAGAIN;
    if (SPOOL_WBUF_SIZE - s->used < SPOOL_HDR + len)
        return -EAGAIN;

    spool_put_frame(s, SPOOL_MARKER_FLAG, s->next_seq - 1, data, len);
    return 0;
}

int
spool_retain(struct spool *s, uint64_t seq)
{
    s->retain_seq = seq;
    return spool_delete_acked(s);
}

size_t
spool_damage_count(const struct spool *s)
{
    return s->nholes;
}

void
spool_damage_get(const struct spool *s, size_t i, struct spool_damage *ret)
{
    const struct spool_hole *h = &s->holes[i];

    seg_name(ret->segment, sizeof(ret->segment), h->seg_first);
    ret->start = h->start;
    ret->end = h->end;
    ret->seq_before = h->seq_before;
    ret->seq_after = h->seq_after;
}

int
spool_checkpoint(struct spool *s)
{
    spool_maybe_checkpoint(s);
    return s->acked_seq > s->ckpt_posted ? 1 : 0;
}

int
spool_ack(struct spool *s, uint64_t seq)
{
    if (seq > s->durable_seq)
        return -EINVAL;
    if (seq <= s->acked_seq)
        return 0;
    s->acked_seq = seq;
    spool_maybe_checkpoint(s);
    return 0;
}

uint64_t
spool_acked_seq(const struct spool *s)
{
    return s->acked_seq;
}

int
spool_mark_sent(struct spool *s, uint64_t seq)
{
    uint8_t b[SPOOL_POS_SIZE];
    ssize_t n;

    if (seq <= s->sent_seq)
        return 0;
    pos_encode(b, seq);
    n = pwrite(s->sent_fd, b, sizeof(b), 0);
    if (n < 0)
        return -errno;
    if (n != (ssize_t)sizeof(b))
        return -EIO;
    s->sent_seq = seq;
    return 0;
}

uint64_t
spool_sent_seq_at_open(const struct spool *s)
{
    return s->sent_at_open;
}

int
spool_cursor_new(struct spool *s, uint64_t from_seq,
                 struct spool_cursor **ret)
{
    struct spool_cursor *c;

    c = calloc(1, sizeof(*c));
    if (!c)
        return -ENOMEM;
    c->rd.cap = SPOOL_RBUF_SIZE;
    c->rd.buf = malloc(c->rd.cap);
    if (!c->rd.buf) {
        free(c);
        return -ENOMEM;
    }
    c->rd.fd = -1;
    c->spool = s;
    c->want = from_seq > 0 ? from_seq : 1;
    *ret = c;
    return 0;
}

struct spool_cursor *
spool_cursor_free(struct spool_cursor *c)
{
    if (!c)
        return NULL;
    if (c->rd.fd >= 0)
        (void)close(c->rd.fd);
    free(c->rd.buf);
    free(c);
    return NULL;
}

static int
cursor_open(struct spool_cursor *c, uint64_t first_seq)
{
    char name[32];
    int fd;

    seg_name(name, sizeof(name), first_seq);
    fd = openat(c->spool->dir_fd, name, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    if (c->rd.fd >= 0)
        (void)close(c->rd.fd);
    c->rd.fd = fd;
    c->rd.base = c->rd.len = c->rd.pos = 0;
    c->seg_first = first_seq;
    return 0;
}

/* Index of the first segment starting after seq, or nsegs. */
static size_t
segs_after(const struct spool *s, uint64_t seq)
{
    size_t i = segs_find(s, seq);

    while (i < s->nsegs && s->segs[i].first_seq <= seq)
        i++;
    return i;
}

/*
 * Segments are read front to back; the end of one that has a successor is
 * final, since a segment is never written again once the next exists.
 */
int
spool_cursor_next(struct spool_cursor *c, uint64_t *ret_seq,
                  const void **ret_data, size_t *ret_len)
{
    struct spool *s = c->spool;
    int r;

    for (;;) {
        const struct spool_hole *h;
        const uint8_t *p;
        uint64_t seq = 0;
        uint32_t len = 0;
        bool marker = false;
        size_t avail, i;

        if (c->drop_gen != s->drop_gen && c->rd.fd >= 0 &&
            (s->nsegs == 0 ||
             s->segs[segs_find(s, c->seg_first)].first_seq != c->seg_first)) {
            /* Its segment was given up: go on from the queue as it is. */
            (void)close(c->rd.fd);
            c->rd.fd = -1;
        }
        c->drop_gen = s->drop_gen;
        if (c->want > s->durable_seq || s->nsegs == 0)
            return 0;
        if (c->rd.fd < 0) {
            r = cursor_open(c, s->segs[segs_find(s, c->want)].first_seq);
            if (r < 0)
                return r;
        }

        r = reader_frame(&c->rd, &seq, &len, &marker, &avail);
        if (r < 0 && r != -EBADMSG)
            return r;
        if (r == 1) {
            if (seq > s->durable_seq)
                return 0;
            p = c->rd.buf + c->rd.pos;
            c->rd.pos += SPOOL_HDR + len;
            if (seq < c->want || marker != c->markers)
                continue;
            /* Markers may share a number; events never do. */
            if (!marker)
                c->want = seq + 1;
            *ret_seq = seq;
            *ret_data = p + SPOOL_HDR;
            *ret_len = len;
            return 1;
        }

        h = spool_find_hole(s, c->seg_first, reader_offset(&c->rd));
        if (h) {
            reader_seek(&c->rd, h->end);
            continue;
        }
        if (r == -EBADMSG)
            return r;
        i = segs_after(s, c->seg_first);
        if (i == s->nsegs)
            return 0;
        r = cursor_open(c, s->segs[i].first_seq);
        if (r < 0)
            return r;
    }
}

int
spool_markers(struct spool *s, uint64_t after_seq, spool_marker_fn fn,
              void *userdata)
{
    struct spool_cursor *c = NULL;
    const void *data;
    uint64_t seq;
    size_t len;
    int r;

    r = spool_cursor_new(s, after_seq + 1, &c);
    if (r < 0)
        return r;
    c->markers = true;
    for (;;) {
        r = spool_cursor_next(c, &seq, &data, &len);
        if (r <= 0)
            break;
        r = fn(userdata, seq, data, len);
        if (r < 0)
            break;
    }
    spool_cursor_free(c);
    return r;
}

static void
spool_stop_thread(struct spool *s)
{
    if (!s->thread_started)
        return;
    (void)pthread_mutex_lock(&s->mutex);
    s->stop = true;
    (void)pthread_cond_signal(&s->work_cond);
    (void)pthread_mutex_unlock(&s->mutex);
    (void)pthread_join(s->thread, NULL);
    s->thread_started = false;
}

/* Releases everything, also for a spool that spool_open() left half set up. */
static void
spool_destroy(struct spool *s)
{
    if (!s)
        return;
    spool_stop_thread(s);
    for (int i = 0; i < s->nwfiles; i++)
        (void)close(s->wfiles[i].fd);
    if (s->event_fd >= 0)
        (void)close(s->event_fd);
    if (s->sent_fd >= 0)
        (void)close(s->sent_fd);
    if (s->lock_fd >= 0)
        (void)close(s->lock_fd);
    if (s->dir_fd >= 0)
        (void)close(s->dir_fd);
    (void)pthread_cond_destroy(&s->idle_cond);
    (void)pthread_cond_destroy(&s->work_cond);
    (void)pthread_mutex_destroy(&s->mutex);
    free(s->wbuf);
    free(s->segs);
    free(s->doomed);
    free(s->holes);
    free(s->dir);
    free(s);
}

/*
 * The final sync's error cannot be returned here; a caller that needs to
 * know calls spool_sync_now() first.
 */
struct spool *
spool_free(struct spool *s)
{
    if (!s)
        return NULL;
    spool_stop_thread(s);
    (void)spool_sync_now(s);
    spool_destroy(s);
    return NULL;
}
