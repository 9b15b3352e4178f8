/* SPDX-License-Identifier: MIT */
/*
 * The Linux audit log as file input: parses each record line, groups the
 * records of one audit event and writes the event as one JSON object.
 * Where events go (the spool) and how far a file is safe is the caller's.
 *
 * Input.  One record per line, as auditd writes them:
 *
 *     [node=NODE ]type=TYPE msg=audit(SEC.MSEC:SERIAL): FIELDS[\x1dENRICHED]
 *
 * FIELDS are KEY=VALUE pairs separated by blanks.  A VALUE in double
 * quotes is literal text; one in single quotes is literal too, except that
 * msg='...' (user-space records) holds KEY=VALUE pairs of its own and
 * becomes a nested object.  auditd writes untrusted strings (paths, command
 * names, proctitle, execve arguments, ...) unquoted as upper-case hex when
 * they hold blanks, quotes or control bytes; those are decoded.  Words
 * without '=' (the "avc:  denied  { read } for" of AVC records) are kept,
 * joined by single blanks, in the member "words".  ENRICHED logs add,
 * after a 0x1D byte, the values auditd interpreted (UID="root"); they are
 * members of the same record under their upper-case names, never decoded.
 *
 * Output.  One object per event:
 *
 *     {"time":"2017-04-12T22:48:11.036Z","serial":59,"node":"web-01",
 *      "records":[{"type":"SYSCALL","arch":"c000003e",...},
 *                 {"type":"EXECVE","argc":"3","a0":"grep",...}]}
 *
 * "node" only when the records carry one.  Every value is a string, as in
 * the log.  A key that appears twice in one record is kept as KEY_2 (then
 * KEY_3, ...), because JSON readers such as Athena refuse duplicate keys.
 *
 * Grouping.  Records with the same file, node and stamp are one event;
 * records of different events may interleave.  An event is complete at
 * its EOE record (not itself stored), at once when its type is one the
 * kernel never follows with more records (user-space and daemon
 * messages), or timeout_usec after its last record.  When max_open events
 * are open the oldest is completed early, and one whose records pass
 * max_event bytes is split, so memory stays bounded; the parts then share
 * the stamp.
 */
#include "parse_auditd.h"

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "event.h"
#include "jbuf.h"

#define PA_MAX_OPEN_DEFAULT     1024u
#define PA_MAX_EVENT_DEFAULT    (512u * 1024u)
#define PA_NODE_MAX             255u
#define PA_HASH_SIZE            4096u       /* power of two */
/* Latest second RFC 3339 can write with four year digits. */
#define PA_SEC_MAX              253402300799ull
#define PA_SEP                  '\x1d'

struct pa_group {
    struct pa_group *prev;      /* open list, oldest first */
    struct pa_group *next;      /* ... or the free list */
    struct pa_group *hnext;     /* hash chain */
    uint64_t id;                /* source file */
    uint64_t sec;
    unsigned msec;
    uint64_t serial;
    char node[PA_NODE_MAX + 1];
    size_t node_len;
    uint64_t first_offset;
    uint64_t deadline;          /* CLOCK_MONOTONIC usec */
    size_t n_records;
    struct jbuf recs;           /* record objects joined by ',' */
    struct jbuf where;          /* "INPUT\0PATH\0" */
};

/* Keys of one object so far, for the duplicate check. */
struct pa_keys {
    uint64_t bloom;
    struct jbuf names;          /* copies, back to back */
    struct pa_key {
        size_t off;
        size_t len;
        uint32_t hash;
    } *v;
    size_t n;
    size_t cap;
};

struct parse_auditd {
    size_t max_open;
    size_t max_event;
    struct pa_group *head, *tail;       /* open, oldest first */
    struct pa_group *free_list;
    size_t n_open;
    struct pa_group *hash[PA_HASH_SIZE];

    struct pa_keys keys[2];     /* record level, nested msg='' level */
    struct jbuf words[2];
    struct jbuf scratch;        /* a decoded hex value */
    struct jbuf out;            /* the rendered event */

    /* What the last COMPLETE add changed, for parse_auditd_undo(). */
    struct pa_group *undo_group;
    bool undo_created;
    size_t undo_len;
    size_t undo_records;
    uint64_t undo_deadline;

    time_t time_sec;            /* second whose text is cached below */
    char time_text[24];
};

/* Record types that are an event of their own (audit.h user-space and
 * daemon ranges 1100-1299 and 2100-2999).  Sorted for bsearch. */
static const char *const pa_single_types[] = {
    "ACCT_LOCK", "ACCT_UNLOCK", "ADD_GROUP", "ADD_USER",
    "ANOM_ABEND_USER", "ANOM_ACCESS_FS", "ANOM_ADD_ACCT", "ANOM_AMTU_FAIL",
    "ANOM_CRYPTO_FAIL", "ANOM_DEL_ACCT", "ANOM_EXEC", "ANOM_LOGIN_ACCT",
    "ANOM_LOGIN_FAILURES", "ANOM_LOGIN_LOCATION", "ANOM_LOGIN_SERVICE",
    "ANOM_LOGIN_SESSIONS", "ANOM_LOGIN_TIME", "ANOM_MAX_DAC", "ANOM_MAX_MAC",
    "ANOM_MK_EXEC", "ANOM_MOD_ACCT", "ANOM_ORIGIN_FAILURES",
    "ANOM_RBAC_FAIL", "ANOM_RBAC_INTEGRITY_FAIL", "ANOM_ROOT_TRANS",
    "AUDIT_DEV_ALLOC", "CHGRP_ID", "CHUSER_ID", "CRED_ACQ", "CRED_DISP",
    "CRED_REFR", "CRYPTO_FAILURE_USER", "CRYPTO_IKE_SA", "CRYPTO_IPSEC_SA",
    "CRYPTO_KEY_USER", "CRYPTO_LOGIN", "CRYPTO_LOGOUT", "CRYPTO_PARAM_CHANGE_USER",
    "CRYPTO_REPLAY_USER", "CRYPTO_SESSION", "CRYPTO_TEST_USER", "DAC_CHECK",
    "DAEMON_ABORT", "DAEMON_ACCEPT", "DAEMON_CLOSE", "DAEMON_CONFIG",
    "DAEMON_END", "DAEMON_ERR", "DAEMON_RECONFIG", "DAEMON_RESUME",
    "DAEMON_ROTATE", "DAEMON_START", "DEL_GROUP", "DEL_USER", "DEV_ALLOC",
    "DEV_DEALLOC", "FS_RELABEL", "GRP_AUTH", "GRP_CHAUTHTOK", "GRP_MGMT",
    "LABEL_LEVEL_CHANGE", "LABEL_OVERRIDE", "MAC_CHECK", "RESP_ACCT_LOCK",
    "RESP_ACCT_LOCK_TIMED", "RESP_ACCT_REMOTE", "RESP_ACCT_UNLOCK_TIMED",
    "RESP_ALERT", "RESP_ANOMALY", "RESP_EXEC", "RESP_HALT", "RESP_KILL_PROC",
    "RESP_SEBOOL", "RESP_SINGLE", "RESP_TERM_ACCESS", "RESP_TERM_LOCK",
    "ROLE_ASSIGN", "ROLE_MODIFY", "ROLE_REMOVE", "SERVICE_START",
    "SERVICE_STOP", "SOFTWARE_UPDATE", "SYSTEM_BOOT", "SYSTEM_RUNLEVEL",
    "SYSTEM_SHUTDOWN", "TEST", "TRUSTED_APP", "USER", "USER_ACCT",
    "USER_AUTH", "USER_AVC", "USER_CHAUTHTOK", "USER_CMD", "USER_DEVICE",
    "USER_END", "USER_ERR", "USER_LABELED_EXPORT", "USER_LOGIN",
    "USER_LOGOUT", "USER_MAC_CONFIG_CHANGE", "USER_MAC_POLICY_LOAD",
    "USER_MGMT", "USER_ROLE_CHANGE", "USER_SELINUX_ERR", "USER_START",
    "USER_TTY", "USER_UNLABELED_EXPORT", "USYS_CONFIG", "VIRT_CONTROL",
    "VIRT_CREATE", "VIRT_DESTROY", "VIRT_INTEGRITY_CHECK", "VIRT_MACHINE_ID",
    "VIRT_MIGRATE_IN", "VIRT_MIGRATE_OUT", "VIRT_RESOURCE",
};

/* Fields auditd writes as hex when their text needs it.  Sorted. */
static const char *const pa_hex_keys[] = {
    "acct", "cmd", "comm", "cwd", "data", "dir", "exe", "file", "key",
    "name", "new-disk", "ocomm", "old-disk", "path", "proctitle", "vm",
    "watch",
};

static int
pa_cmp_word(const void *k, const void *e)
{
    const struct { const char *s; size_t n; } *key = k;
    const char *w = *(const char *const *)e;
    int c = strncmp(key->s, w, key->n);

    if (c != 0)
        return c;
    return w[key->n] == '\0' ? 0 : -1;
}

static bool
pa_in_list(const char *const *list, size_t n, const char *s, size_t len)
{
    struct { const char *s; size_t n; } key = { s, len };

    return bsearch(&key, list, n, sizeof(list[0]), pa_cmp_word) != NULL;
}

/* "UNKNOWN[1107]": the number audit.h gives, when the name is not known. */
static bool
pa_single_number(const char *s, size_t len)
{
    unsigned long n = 0;
    size_t i = sizeof("UNKNOWN[") - 1;

    if (len <= i + 1 || memcmp(s, "UNKNOWN[", i) != 0 || s[len - 1] != ']')
        return false;
    for (; i < len - 1; i++) {
        if (s[i] < '0' || s[i] > '9' || n > 100000)
            return false;
        n = n * 10 + (unsigned long)(s[i] - '0');
    }
    return (n >= 1100 && n <= 1299) || (n >= 2100 && n <= 2999);
}

static bool
pa_single(const char *type, size_t len)
{
    return pa_in_list(pa_single_types,
                      sizeof(pa_single_types) / sizeof(pa_single_types[0]),
                      type, len) ||
           pa_single_number(type, len);
}

/* a0, a12, a1[3]: execve arguments and the parts of long ones. */
static bool
pa_execve_arg(const char *k, size_t n)
{
    size_t i = 1;

    if (n < 2 || k[0] != 'a')
        return false;
    while (i < n && k[i] >= '0' && k[i] <= '9')
        i++;
    if (i == 1)
        return false;
    if (i == n)
        return true;
    if (k[i] != '[' || k[n - 1] != ']' || i + 2 >= n)
        return false;
    for (i++; i < n - 1; i++)
        if (k[i] < '0' || k[i] > '9')
            return false;
    return true;
}

static bool
pa_is_hex(const char *v, size_t n)
{
    if (n < 2 || n % 2)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((v[i] >= '0' && v[i] <= '9') || (v[i] >= 'A' && v[i] <= 'F')))
            return false;
    return true;
}

static unsigned
pa_hexval(char c)
{
    return c <= '9' ? (unsigned)(c - '0') : (unsigned)(c - 'A' + 10);
}

/*
 * Decodes hex v into p->scratch.  proctitle separates the arguments with
 * NUL bytes, which become blanks as auditd shows them.  Returns false when
 * the bytes are no text JSON can carry: the hex is then kept as it is.
 */
static int
pa_decode(struct parse_auditd *p, const char *v, size_t n, bool proctitle,
          bool *ret_ok)
{
    size_t m = n / 2;
    char *o;
    int r;

    p->scratch.len = 0;
    r = jbuf_reserve(&p->scratch, m);
    if (r < 0)
        return r;
    o = p->scratch.buf;
    for (size_t i = 0; i < m; i++)
        o[i] = (char)(pa_hexval(v[2 * i]) << 4 | pa_hexval(v[2 * i + 1]));
    if (proctitle) {
        while (m > 0 && o[m - 1] == '\0')
            m--;
        for (size_t i = 0; i < m; i++)
            if (o[i] == '\0')
                o[i] = ' ';
    }
    p->scratch.len = m;
    *ret_ok = event_utf8_valid(o, m);
    return 0;
}

static uint32_t
pa_hash(const char *s, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ (unsigned char)s[i]) * 16777619u;
    return h;
}

static void
pa_keys_reset(struct pa_keys *k)
{
    k->bloom = 0;
    k->n = 0;
    k->names.len = 0;
}

static bool
pa_keys_has(const struct pa_keys *k, const char *s, size_t n, uint32_t h)
{
    if (!(k->bloom & (1ull << (h & 63))))
        return false;
    for (size_t i = 0; i < k->n; i++)
        if (k->v[i].hash == h && k->v[i].len == n &&
            memcmp(k->names.buf + k->v[i].off, s, n) == 0)
            return true;
    return false;
}

static int
pa_keys_add(struct pa_keys *k, const char *s, size_t n, uint32_t h)
{
    int r;

    if (k->n == k->cap) {
        size_t cap = k->cap ? 2 * k->cap : 64;
        struct pa_key *v = realloc(k->v, cap * sizeof(*v));

        if (!v)
            return -ENOMEM;
        k->v = v;
        k->cap = cap;
    }
    k->v[k->n].off = k->names.len;
    k->v[k->n].len = n;
    k->v[k->n].hash = h;
    r = jbuf_put(&k->names, s, n);
    if (r < 0)
        return r;
    k->n++;
    k->bloom |= 1ull << (h & 63);
    return 0;
}

/* Writes `,"KEY":` with KEY made unique within the object. */
static int
pa_put_key(struct jbuf *o, struct pa_keys *k, const char *s, size_t n,
           bool first)
{
    char alt[96];
    uint32_t h = pa_hash(s, n);
    int r;

    if (!first) {
        r = jbuf_put(o, ",", 1);
        if (r < 0)
            return r;
    }
    if (pa_keys_has(k, s, n, h)) {
        size_t base = n < sizeof(alt) - 24 ? n : sizeof(alt) - 24;
        int len = 0;

        for (unsigned i = 2;; i++) {
            memcpy(alt, s, base);
            len = (int)base + snprintf(alt + base, sizeof(alt) - base, "_%u",
                                       i);
            h = pa_hash(alt, (size_t)len);
            if (!pa_keys_has(k, alt, (size_t)len, h))
                break;
        }
        s = alt;
        n = (size_t)len;
    }
    r = pa_keys_add(k, s, n, h);
    if (r < 0)
        return r;
    r = jbuf_put_string(o, s, n);
    if (r < 0)
        return r;
    return jbuf_put(o, ":", 1);
}

struct pa_ctx {
    bool decode;                /* hex fields are decoded (raw part) */
    bool execve;                /* an EXECVE record: aN are hex too */
    int level;                  /* 0: record, 1: inside msg='' */
};

static int pa_put_fields(struct parse_auditd *p, struct jbuf *o,
                         const struct pa_ctx *cx, const char *s,
                         const char *e, bool *first);

static int
pa_put_value(struct parse_auditd *p, struct jbuf *o, const struct pa_ctx *cx,
             const char *k, size_t kn, const char *v, size_t vn)
{
    bool ok = false;
    int r;

    if (cx->decode && pa_is_hex(v, vn) &&
        (pa_in_list(pa_hex_keys, sizeof(pa_hex_keys) / sizeof(pa_hex_keys[0]),
                    k, kn) ||
         (cx->execve && pa_execve_arg(k, kn)))) {
        r = pa_decode(p, v, vn, kn == 9 && memcmp(k, "proctitle", 9) == 0,
                      &ok);
        if (r < 0)
            return r;
        if (ok)
            return jbuf_put_string(o, p->scratch.buf, p->scratch.len);
    }
    return jbuf_put_string(o, v, vn);
}

static int
pa_put_word(struct jbuf *w, const char *s, size_t n)
{
    int r;

    if (w->len > 0) {
        r = jbuf_put(w, " ", 1);
        if (r < 0)
            return r;
    }
    return jbuf_put(w, s, n);
}

/* One KEY=VALUE at *sp; moves *sp past it. */
static int
pa_put_pair(struct parse_auditd *p, struct jbuf *o, const struct pa_ctx *cx,
            const char **sp, const char *e, const char *eq, bool *first)
{
    const char *k = *sp, *v = eq + 1, *ve, *close;
    size_t kn = (size_t)(eq - k);
    int r;

    if (v < e && (*v == '"' || *v == '\'')) {
        /* auditd always closes its quotes; a record cut short (as some
         * test data is) keeps what it has up to its end. */
        close = memchr(v + 1, *v, (size_t)(e - v - 1));
        if (!close)
            close = e;
        *sp = close < e ? close + 1 : e;
        r = pa_put_key(o, &p->keys[cx->level], k, kn, *first);
        if (r < 0)
            return r;
        *first = false;
        if (*v == '\'' && cx->decode && cx->level == 0 && kn == 3 &&
            memcmp(k, "msg", 3) == 0) {
            struct pa_ctx in = { .decode = true, .level = 1 };
            bool in_first = true;

            r = jbuf_put(o, "{", 1);
            if (r < 0)
                return r;
            r = pa_put_fields(p, o, &in, v + 1, close, &in_first);
            if (r < 0)
                return r;
            return jbuf_put(o, "}", 1);
        }
        return jbuf_put_string(o, v + 1, (size_t)(close - v - 1));
    }

    ve = v;
    while (ve < e && *ve != ' ')
        ve++;
    *sp = ve;
    r = pa_put_key(o, &p->keys[cx->level], k, kn, *first);
    if (r < 0)
        return r;
    *first = false;
    return pa_put_value(p, o, cx, k, kn, v, (size_t)(ve - v));
}

/* The members for the fields in [s, e), appended to an open object. */
static int
pa_put_fields(struct parse_auditd *p, struct jbuf *o, const struct pa_ctx *cx,
              const char *s, const char *e, bool *first)
{
    struct jbuf *words = &p->words[cx->level];
    const char *t, *eq;
    int r;

    if (cx->level == 1) {
        pa_keys_reset(&p->keys[1]);
        words->len = 0;
    }
    while (s < e) {
        if (*s == ' ') {
            s++;
            continue;
        }
        t = s;
        while (t < e && *t != ' ' && *t != '=')
            t++;
        if (t == e || *t == ' ' || t == s) {
            /* A word without a key: "=" alone counts as one too. */
            while (t < e && *t != ' ')
                t++;
            r = pa_put_word(words, s, (size_t)(t - s));
            if (r < 0)
                return r;
            s = t;
            continue;
        }
        eq = t;
        r = pa_put_pair(p, o, cx, &s, e, eq, first);
        if (r < 0)
            return r;
    }
    if (cx->level == 1 && words->len > 0) {
        r = pa_put_key(o, &p->keys[1], "words", 5, *first);
        if (r < 0)
            return r;
        *first = false;
        return jbuf_put_string(o, words->buf, words->len);
    }
    return 0;
}

struct pa_head {
    const char *node;
    size_t node_len;
    const char *type;
    size_t type_len;
    uint64_t sec;
    unsigned msec;
    uint64_t serial;
    const char *body;           /* after "):" */
};

static bool
pa_digits(const char **sp, const char *e, uint64_t max, uint64_t *ret)
{
    const char *s = *sp;
    uint64_t v = 0;

    if (s >= e || *s < '0' || *s > '9')
        return false;
    for (; s < e && *s >= '0' && *s <= '9'; s++) {
        if (v > (max - (uint64_t)(*s - '0')) / 10)
            return false;
        v = v * 10 + (uint64_t)(*s - '0');
    }
    *sp = s;
    *ret = v;
    return true;
}

/* SEC.MSEC:SERIAL) at *sp; moves *sp past the ')'. */
static bool
pa_parse_stamp(const char **sp, const char *e, struct pa_head *h)
{
    const char *s = *sp, *t;
    uint64_t msec;

    if (!pa_digits(&s, e, PA_SEC_MAX, &h->sec) || s >= e || *s++ != '.')
        return false;
    /* auditd writes three digits; fewer are a decimal fraction all the
     * same ("1.5" is 1.500), more would be a precision it does not have. */
    t = s;
    if (!pa_digits(&s, e, 999, &msec) || s - t > 3)
        return false;
    for (ptrdiff_t i = s - t; i < 3; i++)
        msec *= 10;
    if (s >= e || *s++ != ':' || !pa_digits(&s, e, UINT64_MAX, &h->serial) ||
        s >= e || *s++ != ')')
        return false;
    h->msec = (unsigned)msec;
    *sp = s;
    return true;
}

static int
pa_parse_head(const char *s, const char *e, struct pa_head *h,
              const char **reterr_reason)
{
    const char *t;

    memset(h, 0, sizeof(*h));
    if (s == e) {
        *reterr_reason = "auditd: empty line";
        return -EBADMSG;
    }
    if (e - s > 5 && memcmp(s, "node=", 5) == 0) {
        s += 5;
        for (t = s; t < e && *t != ' '; t++)
            ;
        h->node = s;
        h->node_len = (size_t)(t - s);
        if (h->node_len == 0 || h->node_len > PA_NODE_MAX) {
            *reterr_reason = "auditd: node= is empty or longer than 255 bytes";
            return -EBADMSG;
        }
        s = t;
        while (s < e && *s == ' ')
            s++;
    }
    if (e - s < 5 || memcmp(s, "type=", 5) != 0) {
        *reterr_reason = "auditd: the line does not start with type=";
        return -EBADMSG;
    }
    s += 5;
    for (t = s; t < e && *t != ' '; t++)
        ;
    h->type = s;
    h->type_len = (size_t)(t - s);
    if (h->type_len == 0) {
        *reterr_reason = "auditd: type= is empty";
        return -EBADMSG;
    }
    s = t;
    while (s < e && *s == ' ')
        s++;
    if (e - s < 10 || memcmp(s, "msg=audit(", 10) != 0) {
        *reterr_reason = "auditd: no msg=audit(TIME:SERIAL) stamp after type=";
        return -EBADMSG;
    }
    s += 10;
    if (!pa_parse_stamp(&s, e, h)) {
        *reterr_reason = "auditd: malformed stamp, want msg=audit(SECONDS.MILLISECONDS:SERIAL)";
        return -EBADMSG;
    }
    if (s < e && *s == ':')
        s++;
    h->body = s;
    return 0;
}

static uint32_t
pa_bucket(uint64_t serial, uint64_t sec)
{
    return (uint32_t)(((serial ^ (sec << 20)) * 0x9e3779b97f4a7c15ull) >> 52) &
           (PA_HASH_SIZE - 1);
}

static struct pa_group *
pa_find(struct parse_auditd *p, uint64_t id, const struct pa_head *h)
{
    struct pa_group *g = p->hash[pa_bucket(h->serial, h->sec)];

    for (; g; g = g->hnext)
        if (g->serial == h->serial && g->sec == h->sec &&
            g->msec == h->msec && g->id == id &&
            g->node_len == h->node_len &&
            (h->node_len == 0 || memcmp(g->node, h->node, h->node_len) == 0))
            return g;
    return NULL;
}

static void
pa_unhash(struct parse_auditd *p, struct pa_group *g)
{
    struct pa_group **pp = &p->hash[pa_bucket(g->serial, g->sec)];

    for (; *pp; pp = &(*pp)->hnext)
        if (*pp == g) {
            *pp = g->hnext;
            return;
        }
}

static void
pa_unlink(struct parse_auditd *p, struct pa_group *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        p->head = g->next;
    if (g->next)
        g->next->prev = g->prev;
    else
        p->tail = g->prev;
    pa_unhash(p, g);
    p->n_open--;
    g->prev = NULL;
    g->next = p->free_list;
    p->free_list = g;
}

static int
pa_open(struct parse_auditd *p, const struct parse_auditd_source *src,
        const struct pa_head *h, struct pa_group **ret)
{
    size_t in_len = strlen(src->input), path_len = strlen(src->path);
    struct pa_group *g = p->free_list;
    uint32_t b;
    int r;

    if (!g) {
        g = calloc(1, sizeof(*g));
        if (!g)
            return -ENOMEM;
    } else {
        p->free_list = g->next;
    }
    g->where.len = 0;
    r = jbuf_reserve(&g->where, in_len + path_len + 2);
    if (r < 0) {
        g->next = p->free_list;
        p->free_list = g;
        return r;
    }
    memcpy(g->where.buf, src->input, in_len + 1);
    memcpy(g->where.buf + in_len + 1, src->path, path_len + 1);
    g->where.len = in_len + path_len + 2;

    g->id = src->id;
    g->sec = h->sec;
    g->msec = h->msec;
    g->serial = h->serial;
    if (h->node_len > 0)
        memcpy(g->node, h->node, h->node_len);
    g->node_len = h->node_len;
    g->first_offset = src->offset;
    g->n_records = 0;
    g->recs.len = 0;

    b = pa_bucket(h->serial, h->sec);
    g->hnext = p->hash[b];
    p->hash[b] = g;
    g->next = NULL;
    g->prev = p->tail;
    if (p->tail)
        p->tail->next = g;
    else
        p->head = g;
    p->tail = g;
    p->n_open++;
    *ret = g;
    return 0;
}

/* Appends the record object for the line to g->recs. */
static int
pa_put_record(struct parse_auditd *p, struct pa_group *g,
              const struct pa_head *h, const char *e)
{
    const char *sep = memchr(h->body, PA_SEP, (size_t)(e - h->body));
    const char *raw_end = sep ? sep : e;
    struct pa_ctx cx = {
        .decode = true,
        .execve = h->type_len == 6 && memcmp(h->type, "EXECVE", 6) == 0,
    };
    struct jbuf *o = &g->recs;
    bool first = false;
    int r;

    pa_keys_reset(&p->keys[0]);
    p->words[0].len = 0;
    if (g->n_records > 0) {
        r = jbuf_put(o, ",", 1);
        if (r < 0)
            return r;
    }
    r = jbuf_puts(o, "{\"type\":");
    if (r < 0)
        return r;
    r = jbuf_put_string(o, h->type, h->type_len);
    if (r < 0)
        return r;
    r = pa_keys_add(&p->keys[0], "type", 4, pa_hash("type", 4));
    if (r < 0)
        return r;

    r = pa_put_fields(p, o, &cx, h->body, raw_end, &first);
    if (r < 0)
        return r;
    if (sep) {
        cx.decode = false;
        r = pa_put_fields(p, o, &cx, sep + 1, e, &first);
        if (r < 0)
            return r;
    }
    if (p->words[0].len > 0) {
        r = pa_put_key(o, &p->keys[0], "words", 5, false);
        if (r < 0)
            return r;
        r = jbuf_put_string(o, p->words[0].buf, p->words[0].len);
        if (r < 0)
            return r;
    }
    return jbuf_put(o, "}", 1);
}

int
parse_auditd_add(struct parse_auditd *p,
                 const struct parse_auditd_source *src, const char *data,
                 size_t len, uint64_t now_usec,
                 struct parse_auditd_event **ret, const char **reterr_reason)
{
    const char *e = data + len;
    struct pa_head h;
    struct pa_group *g;
    bool created = false, eoe;
    size_t old_len;
    int r;

    p->undo_group = NULL;
    if (!event_utf8_valid(data, len)) {
        *reterr_reason = "auditd: line holds a NUL byte or is not valid UTF-8";
        return -EBADMSG;
    }
    r = pa_parse_head(data, e, &h, reterr_reason);
    if (r < 0)
        return r;

    eoe = h.type_len == 3 && memcmp(h.type, "EOE", 3) == 0;
    g = pa_find(p, src->id, &h);
    if (eoe) {
        if (!g)
            return PARSE_AUDITD_HELD;
        p->undo_group = g;
        p->undo_created = false;
        p->undo_len = g->recs.len;
        p->undo_records = g->n_records;
        p->undo_deadline = g->deadline;
        *ret = (struct parse_auditd_event *)g;
        return PARSE_AUDITD_COMPLETE;
    }
    if (!g && p->n_open >= p->max_open) {
        *ret = (struct parse_auditd_event *)p->head;
        return -ENOBUFS;
    }
    if (!g) {
        r = pa_open(p, src, &h, &g);
        if (r < 0)
            return r;
        created = true;
    }

    old_len = g->recs.len;
    r = pa_put_record(p, g, &h, e);
    if (r >= 0 && !created && g->recs.len > p->max_event) {
        /* Too big to grow further: the caller emits it, then we retry. */
        g->recs.len = old_len;
        *ret = (struct parse_auditd_event *)g;
        return -ENOBUFS;
    }
    if (r < 0) {
        g->recs.len = old_len;
        if (created)
            pa_unlink(p, g);
        return r;
    }

    p->undo_group = g;
    p->undo_created = created;
    p->undo_len = old_len;
    p->undo_records = g->n_records;
    p->undo_deadline = g->deadline;
    g->n_records++;
    g->deadline = now_usec + src->timeout_usec;
    if (pa_single(h.type, h.type_len)) {
        *ret = (struct parse_auditd_event *)g;
        return PARSE_AUDITD_COMPLETE;
    }
    p->undo_group = NULL;
    return PARSE_AUDITD_HELD;
}

void
parse_auditd_undo(struct parse_auditd *p)
{
    struct pa_group *g = p->undo_group;

    if (!g)
        return;
    p->undo_group = NULL;
    if (p->undo_created) {
        pa_unlink(p, g);
        return;
    }
    g->recs.len = p->undo_len;
    g->n_records = p->undo_records;
    g->deadline = p->undo_deadline;
}

/* RFC 3339 in UTC with the log's milliseconds; cached per second. */
static int
pa_put_time(struct parse_auditd *p, uint64_t sec, unsigned msec)
{
    char frac[6];

    if ((time_t)sec != p->time_sec) {
        time_t t = (time_t)sec;
        struct tm tm;

        if (!gmtime_r(&t, &tm))
            return -EINVAL;
        (void)strftime(p->time_text, sizeof(p->time_text),
                       "%Y-%m-%dT%H:%M:%S", &tm);
        p->time_sec = (time_t)sec;
    }
    frac[0] = '.';
    frac[1] = (char)('0' + msec / 100);
    frac[2] = (char)('0' + msec / 10 % 10);
    frac[3] = (char)('0' + msec % 10);
    frac[4] = 'Z';
    frac[5] = '"';
    if (jbuf_puts(&p->out, p->time_text) < 0)
        return -ENOMEM;
    return jbuf_put(&p->out, frac, sizeof(frac));
}

int
parse_auditd_render(struct parse_auditd *p, struct parse_auditd_event *ev,
                    const char **ret_json, size_t *ret_len)
{
    struct pa_group *g = (struct pa_group *)ev;
    struct jbuf *o = &p->out;
    int r;

    o->len = 0;
    r = jbuf_puts(o, "{\"time\":\"");
    if (r >= 0)
        r = pa_put_time(p, g->sec, g->msec);
    if (r >= 0)
        r = jbuf_puts(o, ",\"serial\":");
    if (r >= 0)
        r = jbuf_put_u64(o, g->serial);
    if (r >= 0 && g->node_len > 0) {
        r = jbuf_puts(o, ",\"node\":");
        if (r >= 0)
            r = jbuf_put_string(o, g->node, g->node_len);
    }
    if (r >= 0)
        r = jbuf_puts(o, ",\"records\":[");
    if (r >= 0)
        r = jbuf_put(o, g->recs.buf, g->recs.len);
    if (r >= 0)
        r = jbuf_put(o, "]}", 2);
    if (r < 0)
        return r;
    *ret_json = o->buf;
    *ret_len = o->len;
    return 0;
}

void
parse_auditd_drop(struct parse_auditd *p, struct parse_auditd_event *ev)
{
    struct pa_group *g = (struct pa_group *)ev;

    if (p->undo_group == g)
        p->undo_group = NULL;
    pa_unlink(p, g);
}

struct parse_auditd_event *
parse_auditd_oldest(struct parse_auditd *p)
{
    return (struct parse_auditd_event *)p->head;
}

struct parse_auditd_event *
parse_auditd_expired(struct parse_auditd *p, uint64_t now_usec)
{
    for (struct pa_group *g = p->head; g; g = g->next)
        if (g->deadline <= now_usec)
            return (struct parse_auditd_event *)g;
    return NULL;
}

uint64_t
parse_auditd_deadline(const struct parse_auditd *p)
{
    uint64_t d = UINT64_MAX;

    for (const struct pa_group *g = p->head; g; g = g->next)
        if (g->deadline < d)
            d = g->deadline;
    return d;
}

uint64_t
parse_auditd_hold(const struct parse_auditd *p, uint64_t id)
{
    for (const struct pa_group *g = p->head; g; g = g->next)
        if (g->id == id)
            return g->first_offset;
    return UINT64_MAX;
}

void
parse_auditd_event_source(const struct parse_auditd_event *ev,
                          uint64_t *ret_id, const char **ret_input,
                          const char **ret_path)
{
    const struct pa_group *g = (const struct pa_group *)ev;

    *ret_id = g->id;
    *ret_input = g->where.buf;
    *ret_path = g->where.buf + strlen(g->where.buf) + 1;
}

size_t
parse_auditd_open(const struct parse_auditd *p)
{
    return p->n_open;
}

struct parse_auditd *
parse_auditd_new(const struct parse_auditd_limits *l)
{
    struct parse_auditd *p = calloc(1, sizeof(*p));

    if (!p)
        return NULL;
    p->max_open = l && l->max_open ? l->max_open : PA_MAX_OPEN_DEFAULT;
    p->max_event = l && l->max_event ? l->max_event : PA_MAX_EVENT_DEFAULT;
    p->time_sec = -1;
    return p;
}

static void
pa_group_free(struct pa_group *g)
{
    jbuf_done(&g->recs);
    jbuf_done(&g->where);
    free(g);
}

struct parse_auditd *
parse_auditd_free(struct parse_auditd *p)
{
    struct pa_group *g, *next;

    if (!p)
        return NULL;
    for (g = p->head; g; g = next) {
        next = g->next;
        pa_group_free(g);
    }
    for (g = p->free_list; g; g = next) {
        next = g->next;
        pa_group_free(g);
    }
    for (int i = 0; i < 2; i++) {
        jbuf_done(&p->keys[i].names);
        free(p->keys[i].v);
        jbuf_done(&p->words[i]);
    }
    jbuf_done(&p->scratch);
    jbuf_done(&p->out);
    free(p);
    return NULL;
}
