/* SPDX-License-Identifier: MIT */
/*
 * Keeps the chain going across restarts, decides when a seal is due and
 * ends key epochs.  The formats are chain.c's; the spool and the loop are
 * the pipeline's.
 */

/*
 * WHERE THE CHAIN STATE LIVES.  The spool is the authority: its frames are
 * the very lines that will be delivered, so at start the state is read
 * back from them.  The scan begins after the last seal recorded in the
 * state file (about seal_every frames), or at the first frame when the
 * file is missing or ahead of the spool.  The state file only matters when
 * the spool holds no frame after that point because everything was
 * acknowledged and deleted; it is
 *
 *     aaas-chain 1 <last seq> <last hash> <range first> <range count>
 *         <range prev hash>\n          (one line)
 *
 * rewritten in place after every seal without a sync, like the spool's
 * sent file, and synced at shutdown.  A sync per seal would put an
 * fdatasync into the loop once a second; the file is read only when the
 * spool has been drained, which takes at least a send round trip after the
 * write.  When it is lost as well (a power failure in that window), the
 * chain starts again from the genesis value and verification reports the
 * break at that sequence number.
 *
 * EPOCH ROLLOVER.  When the epoch is over, the next key is written to
 * "<key>.next", announced in the next seal and, once the spool reports
 * that seal durable, moved over the key file; the old file's blocks are
 * overwritten with zeros first and the old key is freed, which cleanses
 * it.  A crash in between leaves "<key>.next", which is announced again
 * at the next start: a verifier sees the same next key twice.
 */
#include "sealer.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chain.h"
#include "chain_key.h"
#include "spool.h"

#define SEALER_STATE_NAME "chain"
#define SEALER_STATE_LEN (11 + 2 + 20 + 1 + CHAIN_HEX_LEN + 1 + 20 + 1 + 20 + \
                          1 + CHAIN_HEX_LEN + 1)

struct sealer {
    struct chain chain;
    bool signing;
    struct chain_key key;
    bool have_next;
    struct chain_key next;      /* announced or about to be */
    uint64_t announce_seq;      /* seal carrying next; 0: not yet spooled */
    uint64_t built_announce;    /* the seal just built announces next */
    char *key_path;
    char *next_path;
    char *state_path;
    int state_fd;
    unsigned seal_every;
    uint64_t interval_usec;
    unsigned epoch_sec;
    char line[CHAIN_SEAL_MAX];
};

struct chain *
sealer_chain(struct sealer *s)
{
    return &s->chain;
}

bool
sealer_signing(const struct sealer *s)
{
    return s->signing;
}

uint64_t
sealer_epoch(const struct sealer *s)
{
    return s->key.epoch;
}

static int
sealer_state_write(struct sealer *s, bool sync)
{
    const struct chain *c = &s->chain;
    char last[CHAIN_HEX_LEN + 1], prev[CHAIN_HEX_LEN + 1];
    char buf[SEALER_STATE_LEN + 1];
    ssize_t got;
    int n;

    if (s->state_fd < 0)
        return 0;
    chain_hex(c->last, CHAIN_HASH_LEN, last);
    chain_hex(c->range_prev, CHAIN_HASH_LEN, prev);
    /* Fixed width, so a rewrite in place never leaves an old tail. */
    n = snprintf(buf, sizeof(buf), "aaas-chain 1 %020llu %s %020llu %020llu "
                 "%s\n", (unsigned long long)c->last_seq, last,
                 (unsigned long long)c->range_first,
                 (unsigned long long)c->range_count, prev);
    got = pwrite(s->state_fd, buf, (size_t)n, 0);
    if (got < 0)
        return -errno;
    if (got != n)
        return -EIO;
    if (sync && fdatasync(s->state_fd) < 0)
        return -errno;
    return 0;
}

struct sealer_state {
    uint64_t last_seq;
    uint8_t last[CHAIN_HASH_LEN];
    uint64_t range_first;
    uint64_t range_count;
    uint8_t prev[CHAIN_HASH_LEN];
};

static bool
sealer_state_read(struct sealer *s, struct sealer_state *st)
{
    char buf[SEALER_STATE_LEN + 1];
    char last[CHAIN_HEX_LEN + 1], prev[CHAIN_HEX_LEN + 1];
    unsigned long long a, b, n;
    ssize_t got;

    got = pread(s->state_fd, buf, SEALER_STATE_LEN, 0);
    if (got != SEALER_STATE_LEN)
        return false;
    buf[got] = '\0';
    if (sscanf(buf, "aaas-chain 1 %llu %64s %llu %llu %64s", &a, last, &b,
               &n, prev) != 5)
        return false;
    if (strlen(last) != CHAIN_HEX_LEN || strlen(prev) != CHAIN_HEX_LEN ||
        chain_unhex(last, CHAIN_HASH_LEN, st->last) < 0 ||
        chain_unhex(prev, CHAIN_HASH_LEN, st->prev) < 0)
        return false;
    st->last_seq = a;
    st->range_first = b;
    st->range_count = n;
    return true;
}

/* The `"name":N` number in a seal line, 0 when missing. */
static uint64_t
sealer_seal_number(const char *line, size_t len, const char *name)
{
    char key[32];
    const char *p;
    int n;

    n = snprintf(key, sizeof(key), "\"%s\":", name);
    p = memmem(line, len, key, (size_t)n);
    if (!p)
        return 0;
    return strtoull(p + n, NULL, 10);
}

/* Replays the frames after the state file's position onto the chain. */
static int
sealer_replay(struct sealer *s, struct spool *spool, uint64_t from)
{
    struct spool_cursor *cur = NULL;
    struct chain *c = &s->chain;
    const void *data;
    size_t len, at;
    uint64_t seq;
    int r;

    r = spool_cursor_new(spool, from, &cur);
    if (r < 0)
        return r;
    for (;;) {
        uint8_t h[CHAIN_HASH_LEN];

        r = spool_cursor_next(cur, &seq, &data, &len);
        if (r <= 0)
            break;
        if (len > 14 && memcmp(data, "{\"_aaas_seal\":", 14) == 0) {
            if (sealer_seal_number(data, len, "last_seq") == c->last_seq)
                chain_seal_commit(c);
            continue;
        }
        if (chain_split(data, len, &at, h) < 0)
            continue;   /* a line from before the chain existed */
        memcpy(c->pending, h, CHAIN_HASH_LEN);
        chain_commit(c, seq);
    }
    (void)spool_cursor_free(cur);
    return r;
}

static int
sealer_restore(struct sealer *s, struct spool *spool)
{
    struct sealer_state st;
    uint64_t top = spool_next_seq(spool) - 1;
    uint64_t from = 1;

    if (sealer_state_read(s, &st) && st.last_seq <= top) {
        chain_restore(&s->chain, st.last_seq, st.last, st.range_first,
                      st.range_count, st.prev);
        from = st.last_seq + 1;
    }
    return sealer_replay(s, spool, from);
}

static int
sealer_paths(struct sealer *s, const struct sealer_options *o)
{
    if (asprintf(&s->state_path, "%s/" SEALER_STATE_NAME, o->state_dir) < 0)
        return -ENOMEM;
    if (!o->key_path)
        return 0;
    s->key_path = strdup(o->key_path);
    if (!s->key_path || asprintf(&s->next_path, "%s.next", o->key_path) < 0)
        return -ENOMEM;
    return 0;
}

static int
sealer_load_keys(struct sealer *s, const char **reterr_why)
{
    const char *why = NULL;
    int r;

    r = chain_key_load(s->key_path, &s->key, reterr_why);
    if (r < 0)
        return r;
    s->signing = true;

    /* An unfinished rollover: announce the same next key again. */
    r = chain_key_load(s->next_path, &s->next, &why);
    if (r == 0 && s->next.epoch == s->key.epoch + 1) {
        s->have_next = true;
        return 0;
    }
    if (r == 0)
        chain_key_done(&s->next);
    if (r != -ENOENT)
        (void)chain_key_erase_file(s->next_path);
    return 0;
}

int
sealer_new(const struct sealer_options *o, struct spool *spool,
           struct sealer **ret, const char **reterr_why)
{
    struct sealer *s;
    int r;

    *reterr_why = NULL;
    s = calloc(1, sizeof(*s));
    if (!s)
        return -ENOMEM;
    s->state_fd = -1;
    s->seal_every = o->seal_every ? o->seal_every : 1000;
    s->interval_usec = (uint64_t)(o->seal_interval_ms ? o->seal_interval_ms
                                                       : 1000) * 1000;
    s->epoch_sec = o->epoch_sec;

    r = chain_init(&s->chain, o->agent);
    if (r < 0)
        goto out;
    r = sealer_paths(s, o);
    if (r < 0)
        goto out;
    if (s->key_path) {
        r = sealer_load_keys(s, reterr_why);
        if (r < 0)
            goto out;
    }
    s->state_fd = open(s->state_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    if (s->state_fd < 0) {
        r = -errno;
        goto out;
    }
    r = sealer_restore(s, spool);
    if (r < 0)
        goto out;
    *ret = s;
    return 0;
out:
    (void)sealer_free(s);
    return r;
}

struct sealer *
sealer_free(struct sealer *s)
{
    if (!s)
        return NULL;
    (void)sealer_state_write(s, true);
    if (s->state_fd >= 0)
        (void)close(s->state_fd);
    chain_done(&s->chain);
    if (s->signing)
        chain_key_done(&s->key);
    if (s->have_next)
        chain_key_done(&s->next);
    free(s->key_path);
    free(s->next_path);
    free(s->state_path);
    free(s);
    return NULL;
}

void
sealer_committed(struct sealer *s, uint64_t seq)
{
    chain_commit(&s->chain, seq);
}

static bool
sealer_epoch_over(const struct sealer *s, const struct timespec *now)
{
    return s->epoch_sec > 0 &&
           now->tv_sec - s->key.epoch_start >= (int64_t)s->epoch_sec;
}

uint64_t
sealer_due_in(const struct sealer *s)
{
    const struct chain *c = &s->chain;
    struct timespec now;
    uint64_t age;

    if (!s->signing)
        return UINT64_MAX;
    if (s->have_next && s->announce_seq == 0)
        return 0;
    if (c->range_first == 0)
        return UINT64_MAX;
    if (c->range_count >= s->seal_every)
        return 0;
    (void)clock_gettime(CLOCK_MONOTONIC, &now);
    age = (uint64_t)(now.tv_sec - c->range_start.tv_sec) * 1000000 +
          (uint64_t)(now.tv_nsec - c->range_start.tv_nsec) / 1000;
    if (now.tv_nsec < c->range_start.tv_nsec)
        age = (uint64_t)(now.tv_sec - c->range_start.tv_sec - 1) * 1000000 +
              (uint64_t)(1000000000 + now.tv_nsec - c->range_start.tv_nsec) /
              1000;
    return age >= s->interval_usec ? 0 : s->interval_usec - age;
}

/* Makes the next epoch's key and stores it before it is announced. */
static int
sealer_prepare_next(struct sealer *s, const struct timespec *now)
{
    int r;

    r = chain_key_generate(&s->next, s->key.epoch + 1, now->tv_sec);
    if (r < 0)
        return r;
    r = chain_key_save(s->next_path, &s->next, false);
    if (r < 0) {
        chain_key_done(&s->next);
        return r;
    }
    s->have_next = true;
    s->announce_seq = 0;
    return 0;
}

int
sealer_build(struct sealer *s, uint64_t seq, const struct timespec *now,
             const char **ret_line, size_t *ret_len)
{
    const struct chain_key *next = NULL;
    int r;

    if (!s->signing)
        return -ENOKEY;
    if (!s->have_next && sealer_epoch_over(s, now)) {
        r = sealer_prepare_next(s, now);
        if (r < 0)
            return r;
    }
    s->built_announce = 0;
    if (s->have_next && s->announce_seq == 0) {
        next = &s->next;
        s->built_announce = seq;
    }
    r = chain_seal(&s->chain, &s->key, next, seq, now, s->line, ret_len);
    if (r < 0)
        return r;
    *ret_line = s->line;
    return 0;
}

void
sealer_sealed(struct sealer *s, uint64_t seq)
{
    if (s->built_announce)
        s->announce_seq = seq;
    s->built_announce = 0;
    chain_seal_commit(&s->chain);
    (void)sealer_state_write(s, false);
}

/*
 * Ends the epoch: the next key replaces the key file, and the old file's
 * blocks are zeroed through a descriptor kept across the rename.
 */
static int
sealer_switch(struct sealer *s)
{
    char zero[512] = { 0 };
    off_t size;
    int fd, r = 0;

    fd = open(s->key_path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return -errno;
    size = lseek(fd, 0, SEEK_END);
    if (rename(s->next_path, s->key_path) < 0) {
        r = -errno;
        (void)close(fd);
        return r;
    }
    for (off_t off = 0; size > 0 && off < size; off += (off_t)sizeof(zero))
        if (pwrite(fd, zero, sizeof(zero), off) < 0) {
            r = -errno;
            break;
        }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    (void)close(fd);

    chain_key_done(&s->key);
    s->key = s->next;
    memset(&s->next, 0, sizeof(s->next));
    s->have_next = false;
    s->announce_seq = 0;
    return r < 0 ? r : 1;
}

int
sealer_durable(struct sealer *s, uint64_t seq)
{
    if (!s->have_next || s->announce_seq == 0 || seq < s->announce_seq)
        return 0;
    return sealer_switch(s);
}
