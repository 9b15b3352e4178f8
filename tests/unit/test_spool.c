/* SPDX-License-Identifier: MIT */
/*
 * Tests for the spool and its CRC-32C: round trips, recovery from damage
 * each test builds itself in a fresh directory, and injected write faults.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "crc32c.h"
#include "spool.h"

#define HDR 16

/* ---- helpers ---------------------------------------------------------- */

static char *
make_dir(void)
{
    char *d = strdup("/tmp/test_spool.XXXXXX");

    assert_non_null(d);
    assert_non_null(mkdtemp(d));
    return d;
}

static int
rm_one(const char *path, const struct stat *st, int flag, struct FTW *f)
{
    (void)st;
    (void)flag;
    (void)f;
    return remove(path);
}

static void
rm_dir(char *d)
{
    (void)nftw(d, rm_one, 8, FTW_DEPTH | FTW_PHYS);
    free(d);
}

/* The payload of frame seq: its number, then a pattern of varying length. */
static size_t
payload(uint64_t seq, char *buf, size_t size)
{
    size_t len = 24 + (size_t)(seq * 37 % 300);
    int n = snprintf(buf, size, "frame %llu:", (unsigned long long)seq);

    assert_true(len < size);
    for (size_t i = (size_t)n; i < len; i++)
        buf[i] = (char)('a' + (seq + i) % 26);
    return len;
}

static size_t
frame_size(uint64_t seq)
{
    char buf[512];

    return HDR + payload(seq, buf, sizeof(buf));
}

static struct spool *
open_spool(const char *dir, uint64_t seg_size, uint64_t max_size,
           const struct spool_io *io)
{
    struct spool_options o = {
        .dir = dir, .segment_size = seg_size, .max_size = max_size,
        .sync = SPOOL_SYNC_ALWAYS, .io = io,
    };
    struct spool *s = NULL;
    int r;

    r = spool_open(&o, &s);
    assert_int_equal(r, 0);
    return s;
}

/* Appends frames until seq last, checking the numbers handed out. */
static void
append_to(struct spool *s, uint64_t last)
{
    char buf[512];

    while (spool_next_seq(s) <= last) {
        uint64_t want = spool_next_seq(s), seq = 0;
        size_t len = payload(want, buf, sizeof(buf));
        int r;

        r = spool_append(s, buf, len, &seq);
        assert_int_equal(r, 0);
        assert_int_equal(seq, want);
    }
}

/*
 * Reads everything from `from` and checks each payload; returns how many
 * frames came back and stores their numbers in seqs (if not NULL).
 */
static size_t
read_all(struct spool *s, uint64_t from, uint64_t *seqs, size_t max)
{
    struct spool_cursor *c = NULL;
    uint64_t prev = 0;
    size_t n = 0;
    int r;

    r = spool_cursor_new(s, from, &c);
    assert_int_equal(r, 0);
    for (;;) {
        const void *data;
        char want[512];
        uint64_t seq;
        size_t len;

        r = spool_cursor_next(c, &seq, &data, &len);
        assert_true(r >= 0);
        if (r == 0)
            break;
        assert_true(seq > prev);
        assert_true(seq >= from);
        assert_true(seq <= spool_durable_seq(s));
        assert_int_equal(len, payload(seq, want, sizeof(want)));
        assert_memory_equal(data, want, len);
        if (seqs) {
            assert_true(n < max);
            seqs[n] = seq;
        }
        prev = seq;
        n++;
    }
    spool_cursor_free(c);
    return n;
}

static int
count_files(const char *dir, const char *suffix)
{
    struct dirent *de;
    DIR *d = opendir(dir);
    int n = 0;

    assert_non_null(d);
    while ((de = readdir(d))) {
        size_t l = strlen(de->d_name), k = strlen(suffix);

        if (l > k && strcmp(de->d_name + l - k, suffix) == 0)
            n++;
    }
    closedir(d);
    return n;
}

static char *
seg_path(const char *dir, uint64_t first)
{
    char *p = NULL;

    assert_true(asprintf(&p, "%s/%016llx.seg", dir,
                         (unsigned long long)first) > 0);
    return p;
}

static off_t
file_size(const char *path)
{
    struct stat st;

    if (stat(path, &st) < 0)
        return -1;
    return st.st_size;
}

static uint8_t *
read_file(const char *path, size_t *ret_len)
{
    off_t size = file_size(path);
    uint8_t *b;
    int fd;

    assert_true(size >= 0);
    b = malloc((size_t)size + 1);
    assert_non_null(b);
    fd = open(path, O_RDONLY);
    assert_true(fd >= 0);
    assert_int_equal(read(fd, b, (size_t)size), size);
    close(fd);
    *ret_len = (size_t)size;
    return b;
}

static void
write_file(const char *path, const void *b, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

    assert_true(fd >= 0);
    assert_int_equal(write(fd, b, len), (ssize_t)len);
    close(fd);
}

/* Waits for the helper thread and collects its result. */
static int
wait_sync(struct spool *s)
{
    struct pollfd p = { .fd = spool_sync_fd(s), .events = POLLIN };

    assert_int_equal(poll(&p, 1, 10000), 1);
    return spool_sync_collect(s);
}

/* Builds frames 1..n in one segment and returns the segment's path. */
static char *
build_one_segment(const char *dir, uint64_t n)
{
    struct spool *s = open_spool(dir, 0, 0, NULL);

    append_to(s, n);
    assert_int_equal(spool_sync_now(s), 0);
    spool_free(s);
    assert_int_equal(count_files(dir, ".seg"), 1);
    return seg_path(dir, 1);
}

static uint64_t
frame_offset(uint64_t seq)
{
    uint64_t off = 0;

    for (uint64_t k = 1; k < seq; k++)
        off += frame_size(k);
    return off;
}

/* ---- crc32c ----------------------------------------------------------- */

static void
test_crc32c_vectors(void **state)
{
    uint8_t zeros[32] = { 0 }, ones[32], inc[32];

    (void)state;
    memset(ones, 0xff, sizeof(ones));
    for (int i = 0; i < 32; i++)
        inc[i] = (uint8_t)i;

    /* "123456789" is the usual check value; the rest are from RFC 3720. */
    assert_int_equal(crc32c(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(crc32c_sw(0, "123456789", 9), 0xe3069283u);
    assert_int_equal(crc32c(0, zeros, 32), 0x8a9136aau);
    assert_int_equal(crc32c(0, ones, 32), 0x62a8ab43u);
    assert_int_equal(crc32c(0, inc, 32), 0x46dd794eu);
    assert_int_equal(crc32c_sw(0, inc, 32), 0x46dd794eu);
    assert_int_equal(crc32c(0, "", 0), 0);
    assert_int_equal(crc32c(crc32c(0, "1234", 4), "56789", 5), 0xe3069283u);
}

static void
test_crc32c_paths_agree(void **state)
{
    uint8_t buf[4096 + 16];

    (void)state;
    srand(7);
    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)rand();
    for (size_t start = 0; start < 9; start++)
        for (size_t len = 0; len < 300; len += 1 + len / 8)
            assert_int_equal(crc32c(0, buf + start, len),
                             crc32c_sw(0, buf + start, len));
    assert_int_equal(crc32c(0x12345678u, buf, sizeof(buf)),
                     crc32c_sw(0x12345678u, buf, sizeof(buf)));
    print_message("crc32c: %s\n",
                  crc32c_hw_available() ? "sse4.2" : "software");
}

/* ---- round trips ------------------------------------------------------ */

static void
test_round_trip_segments(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 4096, 0, NULL);
    uint64_t seqs[400];

    (void)state;
    assert_int_equal(spool_next_seq(s), 1);
    assert_int_equal(spool_durable_seq(s), 0);
    append_to(s, 300);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_durable_seq(s), 300);
    assert_true(count_files(dir, ".seg") > 5);

    assert_int_equal(read_all(s, 1, seqs, 400), 300);
    for (int i = 0; i < 300; i++)
        assert_int_equal(seqs[i], (uint64_t)i + 1);
    /* From the middle of a middle segment. */
    assert_int_equal(read_all(s, 123, seqs, 400), 178);
    assert_int_equal(seqs[0], 123);

    /* Every frame is in a segment no larger than the limit. */
    for (uint64_t first = 1; first <= 300;) {
        char *p = seg_path(dir, first);
        off_t size = file_size(p);
        uint64_t used = 0;

        assert_true(size > 0 && size <= 4096);
        while (used < (uint64_t)size)
            used += frame_size(first++);
        assert_int_equal(used, size);
        free(p);
    }
    spool_free(s);
    rm_dir(dir);
}

static void
test_async_sync_and_durable_only(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 8192, 0, NULL);
    struct spool_cursor *c = NULL;
    const void *data;
    uint64_t seq;
    size_t len, n = 0;
    int r;

    (void)state;
    append_to(s, 10);
    assert_int_equal(spool_sync_now(s), 0);
    append_to(s, 40);

    /* Written to the file but not synced: the cursor stops at 10. */
    assert_int_equal(spool_sync_request(s), 0);
    r = spool_cursor_new(s, 1, &c);
    assert_int_equal(r, 0);
    while ((r = spool_cursor_next(c, &seq, &data, &len)) == 1)
        n++;
    assert_int_equal(r, 0);
    assert_true(spool_durable_seq(s) < 40 || n == spool_durable_seq(s));
    assert_int_equal(n, spool_durable_seq(s) < 10 ? 10 :
                     spool_durable_seq(s));

    while (spool_durable_seq(s) < 40)
        assert_int_equal(wait_sync(s), 0);
    while ((r = spool_cursor_next(c, &seq, &data, &len)) == 1)
        n++;
    assert_int_equal(r, 0);
    assert_int_equal(n, 40);
    spool_cursor_free(c);

    /* Appended, not even written: invisible too. */
    append_to(s, 45);
    assert_int_equal(read_all(s, 1, NULL, 0), 40);
    spool_free(s);
    rm_dir(dir);
}

static void
test_restart_continues(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 2048, 0, NULL);

    (void)state;
    append_to(s, 30);
    spool_free(s);

    s = open_spool(dir, 2048, 0, NULL);
    assert_int_equal(spool_next_seq(s), 31);
    assert_int_equal(spool_durable_seq(s), 30);
    assert_int_equal(read_all(s, 1, NULL, 0), 30);
    append_to(s, 50);
    assert_int_equal(spool_ack(s, 50), -EINVAL);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_ack(s, 50), 0);
    spool_free(s);

    /* Everything acknowledged and deleted: the numbers still go on. */
    s = open_spool(dir, 2048, 0, NULL);
    assert_int_equal(count_files(dir, ".seg"), 0);
    assert_int_equal(spool_acked_seq(s), 50);
    assert_int_equal(spool_next_seq(s), 51);
    assert_int_equal(read_all(s, 51, NULL, 0), 0);
    append_to(s, 52);
    spool_free(s);

    s = open_spool(dir, 2048, 0, NULL);
    assert_int_equal(read_all(s, 51, NULL, 0), 2);
    spool_free(s);
    rm_dir(dir);
}

/* ---- recovery --------------------------------------------------------- */

static void
test_torn_tail_every_offset(void **state)
{
    char *src = make_dir();
    char *seg = build_one_segment(src, 5);
    uint64_t start = frame_offset(5);
    size_t len;
    uint8_t *img = read_file(seg, &len);

    (void)state;
    assert_int_equal(len, start + frame_size(5));
    for (size_t cut = start; cut < len; cut++) {
        char *dir = make_dir();
        char *p = seg_path(dir, 1);
        struct spool *s;

        write_file(p, img, cut);
        s = open_spool(dir, 0, 0, NULL);
        assert_int_equal(file_size(p), start);
        assert_int_equal(spool_next_seq(s), 5);
        assert_int_equal(read_all(s, 1, NULL, 0), 4);
        append_to(s, 5);
        assert_int_equal(spool_sync_now(s), 0);
        assert_int_equal(read_all(s, 1, NULL, 0), 5);
        spool_free(s);

        s = open_spool(dir, 0, 0, NULL);
        assert_int_equal(read_all(s, 1, NULL, 0), 5);
        assert_int_equal(spool_next_seq(s), 6);
        spool_free(s);
        free(p);
        rm_dir(dir);
    }
    free(img);
    free(seg);
    rm_dir(src);
}

/* Damages one segment of frames 1..10 and checks which frames survive. */
/*
 * The damage the spool reports brackets the frames that are gone: the
 * operator is told which events were lost, never left to guess.
 */
static void
check_damage_report(struct spool *s, const uint64_t *want, size_t nwant)
{
    struct spool_damage dm;
    uint64_t first_lost = 0;
    size_t i;

    for (i = 0; i < nwant; i++)
        if (want[i] != i + 1) {
            first_lost = i + 1;
            break;
        }
    if (nwant == 10) {
        assert_int_equal(spool_damage_count(s), 0);
        return;
    }
    if (!first_lost)
        first_lost = nwant + 1;
    assert_int_equal(spool_damage_count(s), 1);
    spool_damage_get(s, 0, &dm);
    assert_string_equal(dm.segment, "0000000000000001.seg");
    assert_true(dm.start < dm.end);
    assert_int_equal(dm.seq_before, first_lost - 1);
    assert_int_equal(dm.seq_after, i < nwant ? want[i] : 0);
}

static void
check_damage(size_t off, size_t n, int how, const uint64_t *want,
             size_t nwant)
{
    char *dir = make_dir();
    char *seg = build_one_segment(dir, 10);
    uint64_t got[16];
    struct spool *s;
    size_t len;
    uint8_t *img = read_file(seg, &len);

    assert_true(off + n <= len);
    for (size_t i = 0; i < n; i++)
        img[off + i] = how == 0 ? 0 : img[off + i] ^ (uint8_t)how;
    write_file(seg, img, len);

    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_next_seq(s), 11);
    assert_int_equal(read_all(s, 1, got, 16), nwant);
    assert_memory_equal(got, want, nwant * sizeof(want[0]));
    check_damage_report(s, want, nwant);
    append_to(s, 12);
    assert_int_equal(spool_sync_now(s), 0);
    spool_free(s);

    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(read_all(s, 1, NULL, 0), nwant + 2);
    spool_free(s);
    free(img);
    free(seg);
    rm_dir(dir);
}

static void
test_flipped_bit_middle(void **state)
{
    static const uint64_t all_but_5[] = { 1, 2, 3, 4, 6, 7, 8, 9, 10 };
    uint64_t f5 = frame_offset(5);

    (void)state;
    /* In the payload, in the checksum, in the length, in the seq. */
    check_damage(f5 + HDR + 3, 1, 0x10, all_but_5, 9);
    check_damage(f5 + 1, 1, 0x01, all_but_5, 9);
    check_damage(f5 + 4, 1, 0x04, all_but_5, 9);
    check_damage(f5 + 7, 1, 0x80, all_but_5, 9);
    check_damage(f5 + 9, 1, 0x02, all_but_5, 9);
}

static void
test_zero_filled(void **state)
{
    static const uint64_t survivors[] = { 1, 2, 3, 7, 8, 9, 10 };
    static const uint64_t first_gone[] = { 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    uint64_t a = frame_offset(4) + 5, b = frame_offset(7) - 3;
    char *dir = make_dir();
    char *seg = build_one_segment(dir, 10);
    off_t good = file_size(seg);
    uint8_t zeros[4096] = { 0 };
    struct spool *s;
    int fd;

    (void)state;
    /* Zeros from inside frame 4 to inside frame 6. */
    check_damage(a, b - a, 0, survivors, 7);
    check_damage(0, 10, 0, first_gone, 9);

    /* Zeros after the last frame, as after a crash on some file systems. */
    fd = open(seg, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, zeros, sizeof(zeros)), sizeof(zeros));
    close(fd);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(file_size(seg), good);
    assert_int_equal(read_all(s, 1, NULL, 0), 10);
    spool_free(s);
    free(seg);
    rm_dir(dir);
}

static void
test_empty_segment(void **state)
{
    char *dir = make_dir();
    char *seg = build_one_segment(dir, 10);
    char *empty = seg_path(dir, 11), *far = seg_path(dir, 0x40);
    struct spool *s;

    (void)state;
    write_file(empty, "", 0);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(file_size(empty), -1);
    assert_int_equal(spool_next_seq(s), 11);
    assert_int_equal(read_all(s, 1, NULL, 0), 10);
    spool_free(s);

    /* A number once handed out is not handed out again. */
    write_file(far, "", 0);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_next_seq(s), 0x40);
    assert_int_equal(read_all(s, 1, NULL, 0), 10);
    spool_free(s);
    free(seg);
    free(empty);
    free(far);
    rm_dir(dir);
}

static void
test_missing_checkpoint(void **state)
{
    char *dir = make_dir();
    char *ckpt = NULL;
    struct spool *s = open_spool(dir, 0, 0, NULL);

    (void)state;
    assert_true(asprintf(&ckpt, "%s/checkpoint", dir) > 0);
    append_to(s, 10);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_ack(s, 6), 0);
    spool_free(s);
    assert_int_equal(file_size(ckpt), 12);

    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_acked_seq(s), 6);
    spool_free(s);

    /* Without it, everything is sent again; nothing is lost. */
    assert_int_equal(unlink(ckpt), 0);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_acked_seq(s), 0);
    assert_int_equal(spool_next_seq(s), 11);
    assert_int_equal(read_all(s, spool_acked_seq(s) + 1, NULL, 0), 10);
    spool_free(s);

    /* A damaged one counts as missing. */
    write_file(ckpt, "\x05\0\0\0\0\0\0\0\0\0\0\0", 12);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_acked_seq(s), 0);
    spool_free(s);
    free(ckpt);
    rm_dir(dir);
}

static void
test_stale_checkpoint(void **state)
{
    char *dir = make_dir();
    char *ckpt = NULL;
    struct spool *s = open_spool(dir, 0, 0, NULL);
    uint8_t *old;
    size_t len;
    uint64_t got[64];

    (void)state;
    assert_true(asprintf(&ckpt, "%s/checkpoint", dir) > 0);
    append_to(s, 40);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_ack(s, 3), 0);
    assert_int_equal(spool_sync_now(s), 0);
    old = read_file(ckpt, &len);
    assert_int_equal(spool_ack(s, 20), 0);
    spool_free(s);

    /*
     * The segment being written is kept, so the ack of 20 left frames
     * behind; with the older checkpoint back, 4..40 come back.
     */
    write_file(ckpt, old, len);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_acked_seq(s), 3);
    assert_int_equal(spool_next_seq(s), 41);
    assert_int_equal(read_all(s, 4, got, 64), 37);
    assert_int_equal(got[0], 4);
    assert_int_equal(spool_ack(s, 40), 0);
    spool_free(s);
    assert_int_equal(count_files(dir, ".seg"), 0);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_next_seq(s), 41);
    spool_free(s);
    free(old);

    /* A checkpoint ahead of all frames: they go, the numbers go on. */
    old = read_file(ckpt, &len);
    rm_dir(dir);
    dir = make_dir();
    free(build_one_segment(dir, 10));
    free(ckpt);
    assert_true(asprintf(&ckpt, "%s/checkpoint", dir) > 0);
    write_file(ckpt, old, len);
    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(count_files(dir, ".seg"), 0);
    assert_int_equal(spool_acked_seq(s), 40);
    assert_int_equal(spool_next_seq(s), 41);
    assert_int_equal(read_all(s, 1, NULL, 0), 0);
    spool_free(s);
    free(old);
    free(ckpt);
    rm_dir(dir);
}

/* ---- acknowledgements, limits, locking -------------------------------- */

static void
test_ack_deletes_segments(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 1024, 0, NULL);
    uint64_t before, got[200];
    int segs;

    (void)state;
    append_to(s, 100);
    assert_int_equal(spool_sync_now(s), 0);
    segs = count_files(dir, ".seg");
    before = spool_size(s);
    assert_true(segs > 10);

    assert_int_equal(spool_ack(s, 50), 0);
    assert_int_equal(spool_acked_seq(s), 50);
    /* The helper thread writes the checkpoint; deletion follows it. */
    for (int i = 0; i < 100 && count_files(dir, ".seg") == segs; i++) {
        usleep(10 * 1000);
        assert_int_equal(spool_sync_request(s), 0);
        assert_int_equal(spool_sync_collect(s), 0);
    }
    assert_true(count_files(dir, ".seg") < segs);
    assert_true(spool_size(s) < before);
    assert_int_equal(read_all(s, 51, got, 200), 50);
    assert_int_equal(got[0], 51);
    /* Reading from before the first kept frame starts at the first. */
    assert_true(read_all(s, 1, got, 200) >= 50);

    assert_int_equal(spool_ack(s, 100), 0);
    assert_int_equal(spool_sync_now(s), 0);
    /* The segment being written is kept; it holds no unacked frame. */
    assert_int_equal(count_files(dir, ".seg"), 1);
    spool_free(s);
    rm_dir(dir);
}

static void
test_second_open_busy(void **state)
{
    char *dir = make_dir();
    struct spool_options o = { .dir = dir };
    struct spool *s = open_spool(dir, 0, 0, NULL), *t = NULL;

    (void)state;
    assert_int_equal(spool_open(&o, &t), -EBUSY);
    assert_null(t);
    s = spool_free(s);
    assert_null(s);
    assert_null(spool_free(NULL));
    assert_int_equal(spool_open(&o, &t), 0);
    spool_free(t);
    rm_dir(dir);
}

static void
test_limits(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 4096, 20000, NULL);
    static uint8_t big[SPOOL_FRAME_MAX + 1];
    uint64_t seq;
    int r, n = 0;

    (void)state;
    assert_int_equal(spool_append(s, big, sizeof(big), &seq), -EMSGSIZE);
    for (;;) {
        char buf[512];
        size_t len = payload(spool_next_seq(s), buf, sizeof(buf));

        r = spool_append(s, buf, len, &seq);
        if (r < 0)
            break;
        n++;
    }
    assert_int_equal(r, -ENOSPC);
    assert_true(spool_size(s) <= 20000);
    assert_true(spool_is_full(s) || spool_size(s) > 19000);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_ack(s, (uint64_t)n), 0);
    assert_int_equal(spool_sync_now(s), 0);
    assert_false(spool_is_full(s));
    append_to(s, (uint64_t)n + 5);
    spool_free(s);

    /* The write buffer fills before a flush is needed. */
    s = open_spool(dir, 0, 0, NULL);
    for (n = 0; (r = spool_append(s, big, SPOOL_FRAME_MAX, &seq)) == 0; n++)
        ;
    assert_int_equal(r, -EAGAIN);
    assert_true(n >= 1);
    assert_int_equal(spool_sync_request(s), 0);
    /* Written bytes stay buffered until synced, for a rewrite. */
    while (spool_durable_seq(s) < spool_next_seq(s) - 1)
        assert_int_equal(wait_sync(s), 0);
    assert_int_equal(spool_append(s, big, SPOOL_FRAME_MAX, &seq), 0);
    spool_free(s);
    rm_dir(dir);
}

static void
test_mark_sent(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 0, 0, NULL);

    (void)state;
    assert_int_equal(spool_sent_seq_at_open(s), 0);
    append_to(s, 10);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_mark_sent(s, 7), 0);
    assert_int_equal(spool_mark_sent(s, 5), 0);
    spool_free(s);

    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(spool_sent_seq_at_open(s), 7);
    spool_free(s);
    rm_dir(dir);
}

static void
test_interval_mode(void **state)
{
    char *dir = make_dir();
    struct spool_options o = {
        .dir = dir, .segment_size = 2048, .sync = SPOOL_SYNC_INTERVAL,
        .sync_interval_ms = 50,
    };
    struct spool *s = NULL;

    (void)state;
    assert_int_equal(spool_open(&o, &s), 0);
    append_to(s, 20);
    assert_int_equal(spool_sync_request(s), 0);
    /* Counted as durable once written, in this mode. */
    assert_int_equal(spool_durable_seq(s), 20);
    assert_int_equal(wait_sync(s), 0);
    append_to(s, 60);
    assert_int_equal(spool_sync_request(s), 0);
    assert_int_equal(wait_sync(s), 0);
    assert_int_equal(read_all(s, 1, NULL, 0), 60);
    spool_free(s);
    s = NULL;

    assert_int_equal(spool_open(&o, &s), 0);
    assert_int_equal(read_all(s, 1, NULL, 0), 60);
    spool_free(s);
    rm_dir(dir);
}

/* ---- injected faults -------------------------------------------------- */

static int fault_errno;         /* pwrite fails with this */
static size_t fault_short;      /* next pwrite writes at most this */
static int fault_sync_errno;    /* the next fdatasync fails with this */
static off_t synced_size[1024]; /* per fd, size at the last good sync */

static ssize_t
fake_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (fault_short > 0) {
        size_t n = len < fault_short ? len : fault_short;

        fault_short = 0;
        return pwrite(fd, buf, n, off);
    }
    if (fault_errno) {
        errno = fault_errno;
        return -1;
    }
    return pwrite(fd, buf, len, off);
}

/*
 * A failed sync also throws away what was not yet on disk, the way Linux
 * may drop dirty pages after a writeback error.
 */
static int
fake_fdatasync(int fd)
{
    struct stat st;
    int e = __atomic_exchange_n(&fault_sync_errno, 0, __ATOMIC_SEQ_CST);

    assert_true(fd >= 0 && fd < 1024);
    if (e) {
        (void)!ftruncate(fd, synced_size[fd]);
        errno = e;
        return -1;
    }
    if (fdatasync(fd) < 0)
        return -1;
    if (fstat(fd, &st) == 0)
        synced_size[fd] = st.st_size;
    return 0;
}

static const struct spool_io fake_io = {
    .pwrite = fake_pwrite, .fdatasync = fake_fdatasync,
};

/* Frames 1..n are all in the files, each once, with nothing in between. */
static void
check_reopen(const char *dir, uint64_t n)
{
    struct spool *s = open_spool(dir, 2048, 0, NULL);
    uint64_t total = 0, got[512];
    size_t k;

    assert_int_equal(spool_next_seq(s), n + 1);
    k = read_all(s, 1, got, 512);
    assert_int_equal(k, n);
    for (uint64_t i = 1; i <= n; i++)
        total += frame_size(i);
    assert_int_equal(spool_size(s), total);
    spool_free(s);
}

static void
test_write_faults(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 2048, 0, &fake_io);

    (void)state;
    append_to(s, 10);
    assert_int_equal(spool_sync_now(s), 0);

    /* ENOSPC: kept in memory, retried, nothing durable in between. */
    append_to(s, 40);
    fault_errno = ENOSPC;
    assert_int_equal(spool_sync_request(s), -ENOSPC);
    assert_int_equal(spool_sync_now(s), -ENOSPC);
    assert_int_equal(spool_durable_seq(s), 10);
    assert_int_equal(read_all(s, 1, NULL, 0), 10);
    fault_errno = 0;
    assert_int_equal(spool_sync_request(s), 0);
    while (spool_durable_seq(s) < 40)
        assert_int_equal(wait_sync(s), 0);
    assert_int_equal(read_all(s, 1, NULL, 0), 40);

    /* A short write, then EIO: the partial frame is cut back. */
    append_to(s, 45);
    fault_short = 30;
    fault_errno = EIO;
    assert_int_equal(spool_sync_now(s), -EIO);
    fault_errno = 0;
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(read_all(s, 1, NULL, 0), 45);

    /* A short write alone is completed. */
    append_to(s, 60);
    fault_short = 7;
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(read_all(s, 1, NULL, 0), 60);

    /* A failed fdatasync that lost the dirty pages: written again. */
    append_to(s, 80);
    fault_sync_errno = EIO;
    assert_int_equal(spool_sync_request(s), 0);
    assert_int_equal(wait_sync(s), -EIO);
    assert_int_equal(spool_durable_seq(s), 60);
    assert_int_equal(spool_sync_request(s), 0);
    while (spool_durable_seq(s) < 80)
        assert_int_equal(wait_sync(s), 0);
    assert_int_equal(read_all(s, 1, NULL, 0), 80);
    spool_free(s);
    check_reopen(dir, 80);
    rm_dir(dir);
}

static void
test_fault_then_free(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 2048, 0, &fake_io);

    (void)state;
    append_to(s, 25);
    fault_errno = EIO;
    assert_int_equal(spool_sync_request(s), -EIO);
    fault_errno = 0;
    /* spool_free() flushes what the failed request left in memory. */
    spool_free(s);
    check_reopen(dir, 25);
    rm_dir(dir);
}

/*
 * Crash simulation: files remember how much of them the last successful
 * fdatasync covered (by inode, since fd numbers are reused).  At the
 * chosen sync the "machine" stops: every later write and sync fails, and
 * what was never synced is then dropped or garbled on disk before the
 * spool is opened again.
 */
static struct {
    ino_t ino;
    off_t size;
} crash_synced[256];
static int crash_nsynced;
static int crash_at;            /* fail from this fdatasync on; 0: never */
static int crash_syncs;
static bool crashed;

static void
crash_note_synced(int fd)
{
    struct stat st;

    if (fstat(fd, &st) < 0)
        return;
    for (int i = 0; i < crash_nsynced; i++)
        if (crash_synced[i].ino == st.st_ino) {
            crash_synced[i].size = st.st_size;
            return;
        }
    assert_true(crash_nsynced < 256);
    crash_synced[crash_nsynced].ino = st.st_ino;
    crash_synced[crash_nsynced++].size = st.st_size;
}

static ssize_t
crash_pwrite(int fd, const void *buf, size_t len, off_t off)
{
    if (__atomic_load_n(&crashed, __ATOMIC_SEQ_CST)) {
        errno = EIO;
        return -1;
    }
    return pwrite(fd, buf, len, off);
}

static int
crash_fdatasync(int fd)
{
    if (__atomic_add_fetch(&crash_syncs, 1, __ATOMIC_SEQ_CST) >= crash_at)
        __atomic_store_n(&crashed, true, __ATOMIC_SEQ_CST);
    if (__atomic_load_n(&crashed, __ATOMIC_SEQ_CST)) {
        errno = EIO;
        return -1;
    }
    if (fdatasync(fd) < 0)
        return -1;
    crash_note_synced(fd);
    return 0;
}

static const struct spool_io crash_io = {
    .pwrite = crash_pwrite, .fdatasync = crash_fdatasync,
};

/* Drops (garble == false) or garbles what no sync covered. */
static void
crash_apply(const char *dir, bool garble)
{
    struct dirent *de;
    DIR *d = opendir(dir);

    assert_non_null(d);
    while ((de = readdir(d))) {
        off_t keep = 0, size;
        struct stat st;
        char *p = NULL;

        if (!strstr(de->d_name, ".seg"))
            continue;
        assert_true(asprintf(&p, "%s/%s", dir, de->d_name) > 0);
        assert_int_equal(stat(p, &st), 0);
        for (int i = 0; i < crash_nsynced; i++)
            if (crash_synced[i].ino == st.st_ino)
                keep = crash_synced[i].size;
        size = st.st_size;
        if (garble && size > keep) {
            int fd = open(p, O_WRONLY);
            uint8_t junk[256];

            memset(junk, 0xa5, sizeof(junk));
            assert_true(fd >= 0);
            for (off_t o = keep; o < size; o += (off_t)sizeof(junk))
                assert_true(pwrite(fd, junk, sizeof(junk), o) > 0);
            close(fd);
        } else if (size > keep) {
            assert_int_equal(truncate(p, keep), 0);
        }
        free(p);
    }
    closedir(d);
}

static void
crash_run(int at, bool garble)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 3000, 0, &crash_io);
    uint64_t durable = 0, acked = 0, got[1024];
    size_t n;

    crash_nsynced = 0;
    crash_syncs = 0;
    crash_at = at;
    crashed = false;
    while (!__atomic_load_n(&crashed, __ATOMIC_SEQ_CST)) {
        append_to(s, spool_next_seq(s) + 7);
        if (spool_sync_request(s) == 0)
            (void)wait_sync(s);
        /* What the spool claims, whether or not the last step failed. */
        durable = spool_durable_seq(s);
        if (durable > 20 && spool_ack(s, durable - 20) == 0)
            acked = durable - 20;
    }
    (void)spool_sync_collect(s);
    durable = spool_durable_seq(s);
    /* What the dying process still does cannot reach the disk. */
    spool_free(s);
    crash_apply(dir, garble);

    s = open_spool(dir, 3000, 0, NULL);
    assert_true(spool_next_seq(s) > durable);
    assert_true(spool_acked_seq(s) <= acked);
    n = read_all(s, spool_acked_seq(s) + 1, got, 1024);
    /* Every frame reported durable and not acknowledged is there. */
    for (uint64_t seq = acked + 1; seq <= durable; seq++) {
        bool found = false;

        for (size_t i = 0; i < n && !found; i++)
            found = got[i] == seq;
        assert_true(found);
    }
    spool_free(s);
    rm_dir(dir);
}

static void
test_crash_at_each_sync(void **state)
{
    (void)state;
    for (int at = 1; at <= 40; at++) {
        crash_run(at, false);
        crash_run(at, true);
    }
}

/* ---- markers ---------------------------------------------------------- */

struct seen_markers {
    uint64_t seq[16];
    char text[16][32];
    size_t n;
};

static int
collect_marker(void *userdata, uint64_t seq, const void *data, size_t len)
{
    struct seen_markers *m = userdata;

    assert_true(m->n < 16);
    assert_true(len < sizeof(m->text[0]));
    m->seq[m->n] = seq;
    memcpy(m->text[m->n], data, len);
    m->text[m->n][len] = '\0';
    m->n++;
    return 0;
}

static void
append_marker(struct spool *s, const char *text)
{
    assert_int_equal(spool_append_marker(s, text, strlen(text)), 0);
}

static struct seen_markers
markers_after(struct spool *s, uint64_t after)
{
    struct seen_markers m = { .n = 0 };

    assert_int_equal(spool_markers(s, after, collect_marker, &m), 0);
    return m;
}

/*
 * Markers share the number of the event before them, are skipped by
 * cursors, come back in order after a restart, and outlive the
 * acknowledgement of their segment until spool_retain() lets them go.
 */
static void
test_markers(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 1024, 0, NULL);
    struct seen_markers m;
    uint64_t got[100];
    char big[SPOOL_MARKER_MAX + 1];

    (void)state;
    /* Nothing of this process to follow yet. */
    assert_int_equal(spool_append_marker(s, "m0", 2), -EAGAIN);
    append_to(s, 10);
    append_marker(s, "m10");
    append_to(s, 30);
    append_marker(s, "m30a");
    append_marker(s, "m30b");
    append_to(s, 60);
    append_marker(s, "m60");
    memset(big, 'x', sizeof(big));
    assert_int_equal(spool_append_marker(s, big, sizeof(big)), -EMSGSIZE);
    assert_int_equal(spool_next_seq(s), 61);
    assert_int_equal(spool_sync_now(s), 0);
    assert_true(count_files(dir, ".seg") > 5);

    /* read_all() checks every payload: a marker would fail it. */
    assert_int_equal(read_all(s, 1, got, 100), 60);
    for (size_t i = 0; i < 60; i++)
        assert_int_equal(got[i], i + 1);
    m = markers_after(s, 0);
    assert_int_equal(m.n, 4);
    assert_int_equal(m.seq[0], 10);
    assert_string_equal(m.text[0], "m10");
    assert_int_equal(m.seq[1], 30);
    assert_string_equal(m.text[1], "m30a");
    assert_int_equal(m.seq[2], 30);
    assert_string_equal(m.text[2], "m30b");
    assert_int_equal(m.seq[3], 60);
    assert_string_equal(m.text[3], "m60");

    /* Recovery keeps them, and the numbers go on after the last event. */
    spool_free(s);
    s = open_spool(dir, 1024, 0, NULL);
    assert_int_equal(spool_next_seq(s), 61);
    assert_int_equal(read_all(s, 1, got, 100), 60);
    m = markers_after(s, 29);
    assert_int_equal(m.n, 3);
    assert_string_equal(m.text[0], "m30a");
    assert_string_equal(m.text[2], "m60");
    m = markers_after(s, 30);
    assert_int_equal(m.n, 1);
    assert_string_equal(m.text[0], "m60");

    /* Acknowledged, but nobody said the markers may go. */
    assert_int_equal(spool_ack(s, 60), 0);
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(markers_after(s, 0).n, 4);
    assert_int_equal(read_all(s, 61, got, 100), 0);

    /* Retaining from 30: whatever holds a marker above 30 stays. */
    assert_int_equal(spool_retain(s, 30), 0);
    m = markers_after(s, 0);
    assert_true(m.n >= 1 && m.n < 4);
    assert_string_equal(m.text[m.n - 1], "m60");
    if (m.n > 1)
        assert_int_equal(m.seq[0], 30);

    /* A restart must not drop them either, before retain is called. */
    spool_free(s);
    s = open_spool(dir, 1024, 0, NULL);
    assert_int_equal(markers_after(s, 30).n, 1);
    assert_int_equal(spool_retain(s, UINT64_MAX), 0);
    assert_int_equal(markers_after(s, 0).n, 0);
    assert_int_equal(count_files(dir, ".seg"), 0);

    /* A marker after a fresh event goes behind it, in its segment. */
    append_to(s, 61);
    append_marker(s, "m61");
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(count_files(dir, ".seg"), 1);
    spool_free(s);
    s = open_spool(dir, 1024, 0, NULL);
    m = markers_after(s, 60);
    assert_int_equal(m.n, 1);
    assert_int_equal(m.seq[0], 61);
    assert_int_equal(read_all(s, 61, got, 100), 1);
    spool_free(s);
    rm_dir(dir);
}

/* A marker cut short by a crash is a torn tail like any frame. */
static void
test_marker_torn(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 0, 0, NULL);
    uint64_t got[20];
    char *path;
    off_t size;

    (void)state;
    append_to(s, 5);
    append_marker(s, "positions after five");
    assert_int_equal(spool_sync_now(s), 0);
    spool_free(s);
    path = seg_path(dir, 1);
    size = file_size(path);
    assert_int_equal(truncate(path, size - 3), 0);

    s = open_spool(dir, 0, 0, NULL);
    assert_int_equal(markers_after(s, 0).n, 0);
    assert_int_equal(read_all(s, 1, got, 20), 5);
    assert_int_equal(spool_next_seq(s), 6);
    assert_int_equal(file_size(path), frame_offset(6));
    spool_free(s);
    free(path);
    rm_dir(dir);
}

/* ---- drop_oldest ------------------------------------------------------ */

static char note_buf[512];

/* The record of a drop: the usual payload of its number, so read_all()
 * checks it like any frame. */
static int
note_fn(void *userdata, uint64_t first, uint64_t last, uint64_t seq,
        const void **ret_data, size_t *ret_len)
{
    uint64_t *range = userdata;

    range[0] = first;
    range[1] = last;
    *ret_len = payload(seq, note_buf, sizeof(note_buf));
    *ret_data = note_buf;
    return 0;
}

static void
test_drop_oldest(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 1024, 8192, &fake_io);
    uint64_t range[2] = { 0, 0 }, seq = 0, note = 0, got[200], size, top;
    char buf[512], *first_seg;
    size_t n;
    int r;

    (void)state;
    /* Fill it up to the cap. */
    for (;;) {
        n = payload(spool_next_seq(s), buf, sizeof(buf));
        r = spool_append(s, buf, n, &seq);
        if (r == -ENOSPC)
            break;
        assert_int_equal(r, 0);
    }
    top = seq;
    assert_int_equal(spool_sync_now(s), 0);
    size = spool_size(s);

    /* Nothing the caller has read (floor) may go. */
    assert_int_equal(spool_drop_oldest(s, top + 1, 0, note_fn, range, &note),
                     0);
    /* The first segment holds read events: the drop starts after it. */
    assert_int_equal(spool_drop_oldest(s, 2, 0, note_fn, range, &note), 1);
    assert_true(range[0] > 2);
    assert_true(range[1] >= range[0] && range[1] < top);
    assert_int_equal(note, top + 1);
    /* The record goes in although the spool is full; a second waits. */
    assert_int_equal(spool_drop_oldest(s, 2, 0, note_fn, range, &note),
                     -EBUSY);

    /* Until the record is durable the files stay and still count. */
    first_seg = seg_path(dir, range[0]);
    fault_errno = EIO;
    assert_int_equal(spool_sync_now(s), -EIO);
    fault_errno = 0;
    assert_true(file_size(first_seg) > 0);
    assert_int_equal(spool_size(s), size + frame_size(note));
    /* Readers skip the given-up numbers at once. */
    n = read_all(s, 1, got, 200);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] < range[0] || got[i] > range[1]);
    /* Acknowledged past them, the checkpoint still stays below. */
    assert_int_equal(spool_ack(s, top), 0);

    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(file_size(first_seg), -1);
    assert_true(spool_size(s) < size);
    assert_false(spool_is_full(s));
    assert_int_equal(read_all(s, top + 1, got, 200), 1);
    assert_int_equal(got[0], note);
    spool_free(s);

    /* After a restart the numbers stay given up and the record stays. */
    s = open_spool(dir, 1024, 8192, NULL);
    assert_int_equal(spool_acked_seq(s), top);
    assert_int_equal(spool_next_seq(s), note + 1);
    n = read_all(s, 1, got, 200);
    for (size_t i = 0; i < n; i++)
        assert_true(got[i] < range[0] || got[i] > range[1]);
    assert_int_equal(got[n - 1], note);
    spool_free(s);
    free(first_seg);
    rm_dir(dir);
}

/* A crash after the drop but before its record is durable loses nothing. */
static void
test_drop_oldest_crash(void **state)
{
    char *dir = make_dir();
    struct spool *s = open_spool(dir, 1024, 8192, &fake_io);
    uint64_t range[2], seq = 0, note = 0, got[200], top;
    char buf[512];
    size_t n;
    int r;

    (void)state;
    for (;;) {
        n = payload(spool_next_seq(s), buf, sizeof(buf));
        r = spool_append(s, buf, n, &seq);
        if (r == -ENOSPC)
            break;
        assert_int_equal(r, 0);
    }
    top = seq;
    assert_int_equal(spool_sync_now(s), 0);
    assert_int_equal(spool_drop_oldest(s, 1, 0, note_fn, range, &note), 1);
    assert_int_equal(range[0], 1);
    assert_int_equal(spool_ack(s, top), 0);
    /* The record never reaches the disk: the process dies. */
    fault_errno = EIO;
    assert_int_equal(spool_sync_now(s), -EIO);
    spool_free(s);
    fault_errno = 0;

    s = open_spool(dir, 1024, 8192, NULL);
    assert_true(spool_acked_seq(s) < range[0]);
    assert_int_equal(read_all(s, 1, got, 200), top);
    spool_free(s);
    rm_dir(dir);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_crc32c_vectors),
        cmocka_unit_test(test_crc32c_paths_agree),
        cmocka_unit_test(test_round_trip_segments),
        cmocka_unit_test(test_async_sync_and_durable_only),
        cmocka_unit_test(test_restart_continues),
        cmocka_unit_test(test_torn_tail_every_offset),
        cmocka_unit_test(test_flipped_bit_middle),
        cmocka_unit_test(test_zero_filled),
        cmocka_unit_test(test_empty_segment),
        cmocka_unit_test(test_missing_checkpoint),
        cmocka_unit_test(test_stale_checkpoint),
        cmocka_unit_test(test_ack_deletes_segments),
        cmocka_unit_test(test_second_open_busy),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_mark_sent),
        cmocka_unit_test(test_interval_mode),
        cmocka_unit_test(test_write_faults),
        cmocka_unit_test(test_fault_then_free),
        cmocka_unit_test(test_crash_at_each_sync),
        cmocka_unit_test(test_markers),
        cmocka_unit_test(test_marker_torn),
        cmocka_unit_test(test_drop_oldest),
        cmocka_unit_test(test_drop_oldest_crash),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
