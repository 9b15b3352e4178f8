/* SPDX-License-Identifier: MIT */
/*
 * Cuts spooled events into records and calls within the Firehose limits.
 * It copies the bytes it is given and knows nothing of their format, of
 * base64 or of HTTP; building the request is sink_firehose's job.
 */
#include "batch.h"

#include <assert.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

static size_t
batch_base64_len(size_t len)
{
    return (len + 2) / 3 * 4;
}

int
batch_init(struct batch *b, const struct batch_limits *limits)
{
    struct batch_limits l = { 0 };

    if (limits)
        l = *limits;
    if (l.max_records == 0)
        l.max_records = BATCH_MAX_RECORDS;
    if (l.max_call_bytes == 0)
        l.max_call_bytes = BATCH_MAX_CALL_BYTES;
    if (l.max_record_bytes == 0)
        l.max_record_bytes = BATCH_MAX_RECORD_BYTES;

    /*
     * Lower limits are fine (tests, a proxy with a smaller body limit),
     * higher ones would only earn a rejection from the service.
     */
    if (l.max_records > BATCH_MAX_RECORDS ||
        l.max_call_bytes > BATCH_MAX_CALL_BYTES ||
        l.max_record_bytes > BATCH_MAX_RECORD_BYTES ||
        l.max_record_bytes > l.max_call_bytes)
        return -EINVAL;

    *b = (struct batch){ .limits = l };

    /*
     * Both buffers are taken at their final size once, so that adding an
     * event never allocates and record offsets stay put.  The kernel only
     * backs the pages of the data buffer that are touched.
     */
    b->records = calloc(l.max_records, sizeof(*b->records));
    b->data = malloc(l.max_call_bytes);
    if (!b->records || !b->data) {
        batch_done(b);
        return -ENOMEM;
    }
    return 0;
}

void
batch_done(struct batch *b)
{
    free(b->records);
    free(b->data);
    *b = (struct batch){ 0 };
}

void
batch_reset(struct batch *b)
{
    b->n_records = 0;
    b->data_len = 0;
    b->n_events = 0;
    b->encoded_len = 0;
}

static bool
batch_can_pack(const struct batch *b, size_t len)
{
    const struct batch_record *last;

    if (!b->limits.pack || b->n_records == 0)
        return false;
    last = &b->records[b->n_records - 1];
    return last->len + len <= b->limits.max_record_bytes;
}

int
batch_add(struct batch *b, uint64_t seq, const void *data, size_t len)
{
    struct batch_record *rec;

    assert(b->records);
    assert(b->n_records == 0 ||
           seq > b->records[b->n_records - 1].last_seq);

    if (len > b->limits.max_record_bytes)
        return -EMSGSIZE;
    if (len > b->limits.max_call_bytes - b->data_len)
        return -ENOSPC;

    if (batch_can_pack(b, len)) {
        rec = &b->records[b->n_records - 1];
        b->encoded_len -= batch_base64_len(rec->len);
    } else {
        if (b->n_records == b->limits.max_records)
            return -ENOSPC;
        rec = &b->records[b->n_records++];
        *rec = (struct batch_record){
            .first_seq = seq,
            .offset = b->data_len,
        };
    }

    /* Records are contiguous in data, the last one ends at data_len. */
    if (len > 0)
        memcpy(b->data + b->data_len, data, len);
    b->data_len += len;
    rec->len += len;
    rec->last_seq = seq;
    rec->billed_unpacked += batch_billed_bytes(len);
    rec->n_events++;
    b->n_events++;
    b->encoded_len += batch_base64_len(rec->len);
    return 0;
}

uint64_t
batch_billed_bytes(size_t len)
{
    if (len == 0)
        return BATCH_BILLING_UNIT;
    return ((uint64_t)len + BATCH_BILLING_UNIT - 1) / BATCH_BILLING_UNIT *
           BATCH_BILLING_UNIT;
}

size_t
batch_n_records(const struct batch *b)
{
    return b->n_records;
}

size_t
batch_n_events(const struct batch *b)
{
    return b->n_events;
}

bool
batch_is_empty(const struct batch *b)
{
    return b->n_records == 0;
}

size_t
batch_data_len(const struct batch *b)
{
    return b->data_len;
}

size_t
batch_encoded_len(const struct batch *b)
{
    return b->encoded_len;
}

const struct batch_record *
batch_record(const struct batch *b, size_t i)
{
    assert(i < b->n_records);
    return &b->records[i];
}

const void *
batch_record_data(const struct batch *b, size_t i)
{
    assert(i < b->n_records);
    return b->data + b->records[i].offset;
}

uint64_t
batch_first_seq(const struct batch *b)
{
    return b->n_records ? b->records[0].first_seq : 0;
}

uint64_t
batch_last_seq(const struct batch *b)
{
    return b->n_records ? b->records[b->n_records - 1].last_seq : 0;
}

size_t
batch_retain_failed(struct batch *b, const bool *failed)
{
    size_t n = 0, data_len = 0, n_events = 0, encoded_len = 0;

    for (size_t i = 0; i < b->n_records; i++) {
        struct batch_record rec = b->records[i];

        if (!failed[i])
            continue;

        /*
         * Kept records only ever move towards the front, and a record's
         * new offset is never past its old one, so memmove in order is
         * safe and nothing needs a second buffer.
         */
        if (rec.offset != data_len)
            memmove(b->data + data_len, b->data + rec.offset, rec.len);
        rec.offset = data_len;
        b->records[n++] = rec;

        data_len += rec.len;
        n_events += rec.n_events;
        encoded_len += batch_base64_len(rec.len);
    }

    b->n_records = n;
    b->data_len = data_len;
    b->n_events = n_events;
    b->encoded_len = encoded_len;
    return n;
}

size_t
batch_record_room(const struct batch *b, size_t i)
{
    size_t room;

    assert(i < b->n_records);
    room = b->records[i].len + (b->limits.max_call_bytes - b->data_len);
    return room < b->limits.max_record_bytes ? room
                                             : b->limits.max_record_bytes;
}

int
batch_replace_record(struct batch *b, size_t i, const void *data, size_t len)
{
    struct batch_record *rec;
    size_t end;

    assert(i < b->n_records);
    if (len > batch_record_room(b, i))
        return -ENOSPC;

    rec = &b->records[i];
    end = rec->offset + rec->len;
    /* Records are contiguous: the ones behind move by the difference. */
    if (end < b->data_len)
        memmove(b->data + rec->offset + len, b->data + end,
                b->data_len - end);
    if (len > 0)
        memcpy(b->data + rec->offset, data, len);
    for (size_t j = i + 1; j < b->n_records; j++)
        b->records[j].offset = b->records[j].offset - rec->len + len;

    b->data_len = b->data_len - rec->len + len;
    b->encoded_len = b->encoded_len - batch_base64_len(rec->len) +
                     batch_base64_len(len);
    rec->len = len;
    rec->replaced = true;
    return 0;
}
