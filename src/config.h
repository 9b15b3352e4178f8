/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/*
 * The parsed /etc/aaas.conf.  config_load() reports every mistake it
 * finds as "FILE:LINE: ..." and only then fails, so one run lists all.
 */
struct validate;

enum config_format {
    CONFIG_FORMAT_JSON,
    CONFIG_FORMAT_AUDITD,
    CONFIG_FORMAT_RAW,
};

enum config_sync {
    CONFIG_SYNC_ALWAYS,
    CONFIG_SYNC_INTERVAL,
};

/* What a full spool does: hold the inputs back, or give up old events. */
enum config_on_full {
    CONFIG_ON_FULL_BLOCK,
    CONFIG_ON_FULL_DROP_OLDEST,
};

struct config_input {
    char *name;
    char *path;                 /* glob */
    enum config_format format;
    bool start_at_end;          /* read new files from the end */
    size_t max_line;            /* bytes, longer lines are rejected */
    unsigned partial_timeout_ms;    /* a last line without '\n' is taken
                                     * as it is after this idle time */
    unsigned rotate_wait_ms;    /* a file rotated or deleted away is read
                                 * until it has not grown for this long */
    unsigned group_timeout_ms;  /* auditd: an event without EOE is
                                 * complete this long after its last
                                 * record */
    struct validate *validate;  /* the global rules and the input's own;
                                 * NULL: none */
    char *reject_file;          /* NULL: rejects are delivered */
};

struct config {
    char *file;                 /* path the config was read from */
    char *state_dir;
    char *agent_id;             /* NULL: derived from the machine id */
    int log_level;              /* LOG_ERR .. LOG_DEBUG */

    char *spool_dir;
    uint64_t spool_max_size;        /* bytes */
    uint64_t spool_segment_size;    /* bytes */
    enum config_sync spool_sync;
    unsigned spool_sync_interval_ms;
    enum config_on_full spool_on_full;

    bool socket_enabled;
    char *socket_path;
    mode_t socket_mode;
    char *socket_group;         /* NULL: leave the group alone */
    unsigned socket_max_connections;
    size_t max_event_size;      /* bytes per socket line */
    unsigned socket_idle_timeout_ms;    /* 0: never close idle writers */
    size_t socket_max_buffer;   /* bytes of unfinished lines, all writers */
    struct validate *socket_validate;   /* as config_input.validate */
    char *socket_reject_file;

    struct config_input *inputs;
    size_t n_inputs;

    /*
     * The sink: the firehose section, or the kinesis one (Kinesis Data
     * Streams) whose stream, region, endpoint and delivery options fill
     * the same firehose_* fields.
     */
    bool kinesis;
    char *kinesis_partition_key;    /* "{agent}" by default */
    char *firehose_stream;
    char *firehose_region;
    char *firehose_endpoint;    /* NULL: https://firehose.REGION.amazonaws.com */
    char *ca_file;              /* NULL: system trust store */
    unsigned firehose_max_in_flight;
    unsigned firehose_timeout_ms;
    unsigned retry_initial_ms;
    unsigned retry_max_ms;
    unsigned firehose_connect_timeout_ms;
    unsigned firehose_low_speed_time_ms;    /* stuck below 1 byte/s */
    char *firehose_proxy;       /* NULL: libcurl's environment rules */
    char *access_key_id;        /* static keys; NULL: the AWS chain */
    char *secret_access_key;
    bool firehose_pack;         /* several events per record */
    unsigned firehose_max_records_per_second;   /* 0: no limit */
    uint64_t firehose_max_bytes_per_second;     /* 0: no limit */

    char *signing_key;          /* NULL: no seals */

    bool control_enabled;       /* the aaasctl status socket */
    char *control_path;
    mode_t control_mode;
    char *control_group;        /* NULL: leave the group alone */
    unsigned seal_every;        /* events per seal */
    unsigned seal_interval_ms;  /* longest wait before a seal */
    unsigned epoch_sec;         /* key epoch length; 0: one epoch */
};

int config_load(const char *path, struct config **ret);
struct config *config_free(struct config *c);

/* "1G", "512M", "64k", "100" to bytes; -EINVAL on junk or overflow. */
int config_parse_size(const char *s, uint64_t *ret);
