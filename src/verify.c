/* SPDX-License-Identifier: MIT */
/*
 * aaasctl verify's engine: collects 80 bytes per delivered line and the
 * seals, then sorts by sequence number and checks links, seals, keys and
 * epochs.  Reading files is aaasctl's; the formats are chain.c's.
 */
#include "verify.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <yajl/yajl_tree.h>

#include "chain.h"
#include "chain_key.h"

#define VERIFY_MAX_LIST 20      /* seqs listed per problem in text */

enum verify_link {
    LINK_UNKNOWN,       /* no predecessor to check against */
    LINK_OK,
    LINK_BAD,           /* predecessor present, hash differs: altered */
    LINK_GAP,           /* predecessor in a declared gap: not checkable */
};

struct vline {
    uint64_t seq;
    uint8_t d[CHAIN_HASH_LEN];  /* SHA-256 of the chained bytes */
    uint8_t c[CHAIN_HASH_LEN];  /* the chain member as delivered */
    uint32_t obj;
    uint8_t link;
    uint8_t drop;               /* identical copy or losing conflict */
};

enum seal_status {
    SEAL_OK,
    SEAL_BAD_SIG,
    SEAL_UNKNOWN_KEY,
    SEAL_WRONG_EPOCH,
    SEAL_OUT_OF_EPOCH,
    SEAL_AGENT,
    SEAL_MALFORMED,
    SEAL_MISMATCH,      /* signed, but the lines do not match it */
    SEAL_CONFLICT,      /* another seal with the same seq */
};

static const char *const seal_reasons[] = {
    [SEAL_OK] = "verified",
    [SEAL_BAD_SIG] = "signature does not verify",
    [SEAL_UNKNOWN_KEY] = ("signed with a key that is neither pinned nor "
                          "announced"),
    [SEAL_WRONG_EPOCH] = "key belongs to another epoch",
    [SEAL_OUT_OF_EPOCH] = "covers lines from before its key's epoch began",
    [SEAL_AGENT] = "made by another agent",
    [SEAL_MALFORMED] = "malformed",
    [SEAL_MISMATCH] = "does not match the lines it covers",
    [SEAL_CONFLICT] = "conflicts with another seal of the same number",
};

struct vseal {
    uint64_t seq, first, last, count, epoch;
    char key_id[CHAIN_KEY_ID_LEN + 1];
    char agent[CHAIN_AGENT_MAX + 1];    /* the signed agent */
    uint8_t prev[CHAIN_HASH_LEN], chain[CHAIN_HASH_LEN];
    bool has_next;
    uint8_t next_pub[CHAIN_PUB_LEN];
    uint8_t sig[CHAIN_SIG_LEN];
    char *msg;
    size_t msg_len;
    uint32_t obj;
    enum seal_status status;
    bool drop;
};

struct vkey {
    uint8_t pub[CHAIN_PUB_LEN];
    char id[CHAIN_KEY_ID_LEN + 1];
    uint64_t epoch;
    uint64_t after_seq;         /* announced in this seal; 0: pinned */
};

struct vrange {
    uint64_t first, last;
    uint64_t epoch;
};

struct vagent {
    char id[CHAIN_AGENT_MAX + 1];
    uint8_t genesis[CHAIN_HASH_LEN];
    struct vline *lines;
    size_t n_lines, cap_lines;
    struct vseal *seals;
    size_t n_seals, cap_seals;
    struct vrange *gaps;
    size_t n_gaps, cap_gaps;
    struct vkey *keys;          /* announced for this agent */
    size_t n_keys, cap_keys;
};

struct verify {
    EVP_MD_CTX *md;
    struct vkey *roots;
    size_t n_roots;
    struct vagent *agents;
    size_t n_agents;
    size_t last_agent;          /* most lines come in runs of one agent */
    char **objects;
    size_t n_objects;
    uint64_t *obj_lines, *obj_dups;
    uint64_t lines, malformed, unchained;
    char first_bad[160];
};

static int
verify_grow(void **p, size_t *cap, size_t n, size_t size)
{
    size_t c;
    void *q;

    if (n < *cap)
        return 0;
    c = *cap ? *cap * 2 : 1024;
    q = realloc(*p, c * size);
    if (!q)
        return -ENOMEM;
    *p = q;
    *cap = c;
    return 0;
}

int
verify_new(struct verify **ret)
{
    struct verify *v = calloc(1, sizeof(*v));

    if (!v)
        return -ENOMEM;
    v->md = EVP_MD_CTX_new();
    if (!v->md) {
        free(v);
        return -ENOMEM;
    }
    *ret = v;
    return 0;
}

struct verify *
verify_free(struct verify *v)
{
    if (!v)
        return NULL;
    for (size_t i = 0; i < v->n_agents; i++) {
        struct vagent *a = &v->agents[i];

        for (size_t j = 0; j < a->n_seals; j++)
            free(a->seals[j].msg);
        free(a->lines);
        free(a->seals);
        free(a->gaps);
        free(a->keys);
    }
    for (size_t i = 0; i < v->n_objects; i++)
        free(v->objects[i]);
    free(v->objects);
    free(v->obj_lines);
    free(v->obj_dups);
    free(v->agents);
    free(v->roots);
    EVP_MD_CTX_free(v->md);
    free(v);
    return NULL;
}

int
verify_add_key(struct verify *v, const char *text)
{
    struct vkey *k;
    int r;

    k = realloc(v->roots, (v->n_roots + 1) * sizeof(*k));
    if (!k)
        return -ENOMEM;
    v->roots = k;
    k = &v->roots[v->n_roots];
    memset(k, 0, sizeof(*k));
    r = chain_key_parse_pub(text, k->pub);
    if (r < 0)
        return r;
    chain_key_id(k->pub, k->id);
    v->n_roots++;
    return 0;
}

int
verify_begin_object(struct verify *v, const char *name)
{
    size_t n = v->n_objects + 1;
    void *p;

    p = realloc(v->objects, n * sizeof(*v->objects));
    if (!p)
        return -ENOMEM;
    v->objects = p;
    p = realloc(v->obj_lines, n * sizeof(uint64_t));
    if (!p)
        return -ENOMEM;
    v->obj_lines = p;
    p = realloc(v->obj_dups, n * sizeof(uint64_t));
    if (!p)
        return -ENOMEM;
    v->obj_dups = p;
    v->objects[n - 1] = strdup(name);
    if (!v->objects[n - 1])
        return -ENOMEM;
    v->obj_lines[n - 1] = v->obj_dups[n - 1] = 0;
    v->n_objects = n;
    return 0;
}

static struct vagent *
verify_agent(struct verify *v, const char *id, size_t len)
{
    size_t last = v->last_agent;
    struct vagent *a;
    void *p;

    if (len > CHAIN_AGENT_MAX)
        return NULL;
    if (last < v->n_agents && strlen(v->agents[last].id) == len &&
        memcmp(v->agents[last].id, id, len) == 0)
        return &v->agents[last];
    for (size_t i = 0; i < v->n_agents; i++)
        if (strlen(v->agents[i].id) == len &&
            memcmp(v->agents[i].id, id, len) == 0) {
            v->last_agent = i;
            return &v->agents[i];
        }
    p = realloc(v->agents, (v->n_agents + 1) * sizeof(*a));
    if (!p)
        return NULL;
    v->agents = p;
    a = &v->agents[v->n_agents];
    memset(a, 0, sizeof(*a));
    memcpy(a->id, id, len);
    if (chain_genesis(a->id, a->genesis) < 0)
        return NULL;
    v->last_agent = v->n_agents++;
    return a;
}

/* Finds the daemon's `_aaas` member: the last one in the line is ours. */
static const char *
verify_find_meta(const char *line, size_t len)
{
    static const char key[] = "\"_aaas\":{\"agent\":\"";
    const size_t klen = sizeof(key) - 1;

    if (len < klen)
        return NULL;
    for (const char *p = line + len - klen; p >= line; p--)
        if (*p == '"' && memcmp(p, key, klen) == 0)
            return p + klen;
    return NULL;
}

static void
verify_note(struct verify *v, const char *what)
{
    if (!v->first_bad[0])
        (void)snprintf(v->first_bad, sizeof(v->first_bad), "%s in '%s'",
                       what, v->n_objects ? v->objects[v->n_objects - 1]
                                          : "-");
}

/* The numbers of a `_aaas_gap` object: "first_seq" and "last_seq". */
static int
verify_gap(struct vagent *a, const char *line, size_t len)
{
    const char *f = memmem(line, len, "\"first_seq\":", 12);
    const char *l = memmem(line, len, "\"last_seq\":", 11);
    struct vrange *g;

    if (!f || !l)
        return 0;
    if (verify_grow((void **)&a->gaps, &a->cap_gaps, a->n_gaps,
                    sizeof(*g)) < 0)
        return -ENOMEM;
    g = &a->gaps[a->n_gaps++];
    g->first = strtoull(f + 12, NULL, 10);
    g->last = strtoull(l + 11, NULL, 10);
    g->epoch = 0;
    return 0;
}

static int
verify_chained(struct verify *v, const char *line, size_t len)
{
    const char *m = verify_find_meta(line, len), *q;
    const char *end = line + len;
    struct vagent *a;
    struct vline *l;
    size_t at;
    uint8_t c[CHAIN_HASH_LEN];
    uint64_t seq = 0;
    int r;

    if (!m || !(q = memchr(m, '"', (size_t)(end - m))) ||
        end - q < 8 || memcmp(q, "\",\"seq\":", 8) != 0) {
        v->malformed++;
        verify_note(v, "a line without the daemon's member");
        return 0;
    }
    for (const char *p = q + 8; p < end && *p >= '0' && *p <= '9'; p++)
        seq = seq * 10 + (uint64_t)(*p - '0');
    a = verify_agent(v, m, (size_t)(q - m));
    if (!a)
        return -ENOMEM;
    r = chain_split(line, len, &at, c);
    if (r < 0) {
        v->unchained++;
        verify_note(v, "a line without a chain hash");
        return 0;
    }
    r = verify_grow((void **)&a->lines, &a->cap_lines, a->n_lines,
                    sizeof(*l));
    if (r < 0)
        return r;
    l = &a->lines[a->n_lines++];
    l->seq = seq;
    memcpy(l->c, c, CHAIN_HASH_LEN);
    l->obj = (uint32_t)(v->n_objects - 1);
    l->link = LINK_UNKNOWN;
    l->drop = 0;
    if (chain_md_init(v->md) != 1 ||
        EVP_DigestUpdate(v->md, line, at) != 1 ||
        EVP_DigestUpdate(v->md, line + at + CHAIN_FIELD_LEN,
                         len - at - CHAIN_FIELD_LEN) != 1 ||
        EVP_DigestFinal_ex(v->md, l->d, NULL) != 1)
        return -EIO;
    if (len > 14 && memcmp(line, "{\"_aaas_gap\":", 13) == 0)
        return verify_gap(a, line, len);
    return 0;
}

static const char *
verify_str(yajl_val o, const char *name)
{
    const char *path[] = { name, NULL };
    yajl_val x = yajl_tree_get(o, path, yajl_t_string);

    return x ? YAJL_GET_STRING(x) : NULL;
}

static bool
verify_num(yajl_val o, const char *name, uint64_t *ret)
{
    const char *path[] = { name, NULL };
    yajl_val x = yajl_tree_get(o, path, yajl_t_number);

    if (!x || !YAJL_IS_INTEGER(x) || YAJL_GET_INTEGER(x) < 0)
        return false;
    *ret = (uint64_t)YAJL_GET_INTEGER(x);
    return true;
}

static bool
verify_hash(yajl_val o, const char *name, uint8_t *out)
{
    const char *s = verify_str(o, name);

    return s && strlen(s) == CHAIN_HEX_LEN &&
           chain_unhex(s, CHAIN_HASH_LEN, out) == 0;
}

static bool
verify_b64(const char *s, uint8_t *out, size_t n)
{
    unsigned char raw[CHAIN_SIG_LEN + 4];
    size_t want = (n + 2) / 3 * 4;

    if (!s || strlen(s) != want)
        return false;
    if (EVP_DecodeBlock(raw, (const unsigned char *)s, (int)want) < (int)n)
        return false;
    memcpy(out, raw, n);
    return true;
}

static bool
verify_parse_seal(yajl_val root, struct vseal *s, const char **ret_agent,
                  uint64_t *ret_seq)
{
    const char *sp[] = { "_aaas_seal", NULL }, *mp[] = { "_aaas", NULL };
    yajl_val o = yajl_tree_get(root, sp, yajl_t_object);
    yajl_val m = yajl_tree_get(root, mp, yajl_t_object);
    const char *agent, *kid, *next;

    if (!o || !m || !verify_num(m, "seq", ret_seq))
        return false;
    *ret_agent = verify_str(m, "agent");
    agent = verify_str(o, "agent");
    kid = verify_str(o, "key_id");
    if (!*ret_agent || !agent || !kid || strlen(agent) > CHAIN_AGENT_MAX ||
        strlen(kid) != CHAIN_KEY_ID_LEN)
        return false;
    strcpy(s->agent, agent);
    strcpy(s->key_id, kid);
    if (!verify_num(o, "epoch", &s->epoch) ||
        !verify_num(o, "first_seq", &s->first) ||
        !verify_num(o, "last_seq", &s->last) ||
        !verify_num(o, "count", &s->count) ||
        !verify_hash(o, "prev_chain", s->prev) ||
        !verify_hash(o, "chain", s->chain) ||
        !verify_b64(verify_str(o, "sig"), s->sig, CHAIN_SIG_LEN))
        return false;
    next = verify_str(o, "next_key");
    s->has_next = next != NULL;
    if (next && !verify_b64(next, s->next_pub, CHAIN_PUB_LEN))
        return false;
    return true;
}

static int
verify_seal(struct verify *v, const char *line, size_t len)
{
    char err[128];
    char *text = strndup(line, len);
    struct vseal s = { 0 };
    const char *agent = NULL;
    struct vagent *a;
    yajl_val root;
    uint64_t seq = 0;
    bool ok;
    int r;

    if (!text)
        return -ENOMEM;
    root = yajl_tree_parse(text, err, sizeof(err));
    free(text);
    ok = root && verify_parse_seal(root, &s, &agent, &seq);
    a = ok ? verify_agent(v, agent, strlen(agent)) : NULL;
    yajl_tree_free(root);
    if (!ok || !a) {
        v->malformed++;
        verify_note(v, "a seal that cannot be read");
        return 0;
    }
    s.seq = seq;
    s.obj = (uint32_t)(v->n_objects - 1);
    s.msg = malloc(len + 16);
    if (!s.msg)
        return -ENOMEM;
    r = chain_seal_message(line, len, s.msg, len + 16, &s.msg_len, NULL);
    if (r < 0) {
        free(s.msg);
        v->malformed++;
        verify_note(v, "a seal without a signature");
        return 0;
    }
    r = verify_grow((void **)&a->seals, &a->cap_seals, a->n_seals,
                    sizeof(s));
    if (r < 0) {
        free(s.msg);
        return r;
    }
    a->seals[a->n_seals++] = s;
    return 0;
}

int
verify_line(struct verify *v, const char *line, size_t len)
{
    if (len > 0 && line[len - 1] == '\n')
        len--;
    if (len > 0 && line[len - 1] == '\r')
        len--;
    if (len == 0)
        return 0;
    v->lines++;
    if (v->n_objects)
        v->obj_lines[v->n_objects - 1]++;
    if (len > 15 && memcmp(line, "{\"_aaas_seal\":{", 15) == 0)
        return verify_seal(v, line, len);
    return verify_chained(v, line, len);
}

/* ---- analysis ---------------------------------------------------------- */

static int
vline_cmp(const void *x, const void *y)
{
    const struct vline *a = x, *b = y;

    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    /* Input order among copies: the first one read counts as original. */
    return a->obj < b->obj ? -1 : a->obj > b->obj;
}

static int
vseal_cmp(const void *x, const void *y)
{
    const struct vseal *a = x, *b = y;

    if (a->seq != b->seq)
        return a->seq < b->seq ? -1 : 1;
    return a->obj < b->obj ? -1 : a->obj > b->obj;
}

static int
vrange_cmp(const void *x, const void *y)
{
    const struct vrange *a = x, *b = y;

    return a->first < b->first ? -1 : a->first > b->first;
}

static void
verify_link_hash(struct verify *v, const uint8_t *prev, const uint8_t *d,
                 uint8_t *out)
{
    (void)chain_md_init(v->md);
    (void)EVP_DigestUpdate(v->md, prev, CHAIN_HASH_LEN);
    (void)EVP_DigestUpdate(v->md, d, CHAIN_HASH_LEN);
    (void)EVP_DigestFinal_ex(v->md, out, NULL);
}

static bool
verify_links(struct verify *v, const uint8_t *prev, const struct vline *l)
{
    uint8_t h[CHAIN_HASH_LEN];

    verify_link_hash(v, prev, l->d, h);
    return memcmp(h, l->c, CHAIN_HASH_LEN) == 0;
}

/* A report under construction: one agent's findings. */
struct vfind {
    struct vrange *missing, *verified, *unsealed, *gap_sealed;
    size_t n_missing, n_verified, n_unsealed, n_gap_sealed;
    size_t cap_missing, cap_verified, cap_unsealed, cap_gap_sealed;
    uint64_t *altered, *inserted, *conflicts, *restarts, *after_gap;
    size_t n_altered, n_inserted, n_conflicts, n_restarts, n_after_gap;
    size_t cap_altered, cap_inserted, cap_conflicts, cap_restarts;
    size_t cap_after_gap;
    uint64_t dups, seal_dups, lines;
    uint64_t tail_first, tail_last;
    uint64_t first_seq;         /* lowest seq seen */
    bool starts_at_genesis;
};

static int
vf_seq(uint64_t **p, size_t *n, size_t *cap, uint64_t seq)
{
    int r = verify_grow((void **)p, cap, *n, sizeof(uint64_t));

    if (r < 0)
        return r;
    (*p)[(*n)++] = seq;
    return 0;
}

static int
vf_range(struct vrange **p, size_t *n, size_t *cap, uint64_t first,
         uint64_t last, uint64_t epoch)
{
    int r;

    if (*n > 0 && (*p)[*n - 1].last + 1 >= first &&
        (*p)[*n - 1].epoch == epoch) {
        if (last > (*p)[*n - 1].last)
            (*p)[*n - 1].last = last;
        return 0;
    }
    r = verify_grow((void **)p, cap, *n, sizeof(**p));
    if (r < 0)
        return r;
    (*p)[*n].first = first;
    (*p)[*n].last = last;
    (*p)[*n].epoch = epoch;
    (*n)++;
    return 0;
}

static void
vf_free(struct vfind *f)
{
    free(f->missing);
    free(f->verified);
    free(f->unsealed);
    free(f->gap_sealed);
    free(f->after_gap);
    free(f->altered);
    free(f->inserted);
    free(f->conflicts);
    free(f->restarts);
}

/* Sorts the lines; identical copies are dropped and counted. */
static void
verify_dedupe(struct verify *v, struct vagent *a, struct vfind *f)
{
    bool sorted = true;

    for (size_t i = 1; i < a->n_lines && sorted; i++)
        sorted = vline_cmp(&a->lines[i - 1], &a->lines[i]) <= 0;
    if (!sorted)
        qsort(a->lines, a->n_lines, sizeof(*a->lines), vline_cmp);
    for (size_t i = 1; i < a->n_lines; i++) {
        struct vline *p = &a->lines[i - 1], *l = &a->lines[i];

        if (l->seq != p->seq)
            continue;
        for (size_t j = i; j-- > 0 && a->lines[j].seq == l->seq;) {
            if (a->lines[j].drop)
                continue;
            if (memcmp(a->lines[j].d, l->d, CHAIN_HASH_LEN) == 0 &&
                memcmp(a->lines[j].c, l->c, CHAIN_HASH_LEN) == 0) {
                l->drop = 1;
                f->dups++;
                v->obj_dups[l->obj]++;
                break;
            }
        }
    }
}

/* Whether a seal took this number. */
static bool
verify_is_seal(const struct vagent *a, uint64_t seq)
{
    size_t lo = 0, hi = a->n_seals;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (a->seals[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < a->n_seals && a->seals[lo].seq == seq;
}

/* Seqs taken by seals or declared gaps, so not missing. */
static bool
verify_accounted(const struct vagent *a, uint64_t seq)
{
    if (verify_is_seal(a, seq))
        return true;
    for (size_t i = 0; i < a->n_gaps; i++)
        if (seq >= a->gaps[i].first && seq <= a->gaps[i].last)
            return true;
    return false;
}

static bool
verify_in_gap(const struct vagent *a, uint64_t from, uint64_t to)
{
    if (from > to)
        return false;
    for (size_t i = 0; i < a->n_gaps; i++)
        if (a->gaps[i].first <= to && a->gaps[i].last >= from)
            return true;
    return false;
}

static int
verify_missing(struct vagent *a, struct vfind *f, uint64_t from, uint64_t to)
{
    uint64_t run = 0;
    int r;

    for (uint64_t s = from; s <= to; s++) {
        if (!verify_accounted(a, s)) {
            if (!run)
                run = s;
            continue;
        }
        if (run) {
            r = vf_range(&f->missing, &f->n_missing, &f->cap_missing, run,
                         s - 1, 0);
            if (r < 0)
                return r;
            run = 0;
        }
    }
    if (run)
        return vf_range(&f->missing, &f->n_missing, &f->cap_missing, run, to,
                        0);
    return 0;
}

/* Numbers the seals account for beyond the first and last line. */
static int
verify_edges(struct vagent *a, struct vfind *f)
{
    uint64_t lo = UINT64_MAX, hi = 0;
    uint64_t first = a->n_lines ? a->lines[0].seq : UINT64_MAX;
    uint64_t last = a->n_lines ? a->lines[a->n_lines - 1].seq : 0;
    int r = 0;

    for (size_t i = 0; i < a->n_seals; i++) {
        const struct vseal *s = &a->seals[i];

        /*
         * A seal that does not verify still shows that its numbers were
         * used: lines cut off behind it are reported missing, not
         * silently absent.
         */
        if (s->drop || s->status == SEAL_MALFORMED)
            continue;
        if (s->count && s->first < lo)
            lo = s->first;
        if (s->seq > hi)
            hi = s->seq;
    }
    if (lo < first)
        r = verify_missing(a, f, lo, first == UINT64_MAX ? hi : first - 1);
    if (r >= 0 && a->n_lines && hi > last)
        r = verify_missing(a, f, last + 1, hi);
    if (r >= 0 && f->n_missing > 1)
        qsort(f->missing, f->n_missing, sizeof(*f->missing), vrange_cmp);
    return r;
}

/* A first line of a seal range checks against the seal's prev_chain. */
static bool
verify_links_seal_start(struct verify *v, const struct vagent *a,
                        const struct vline *l)
{
    for (size_t i = 0; i < a->n_seals; i++)
        if (a->seals[i].first == l->seq &&
            a->seals[i].status == SEAL_OK &&
            verify_links(v, a->seals[i].prev, l))
            return true;
    return false;
}

/*
 * Walks the lines in order: each link checks against the nearest kept
 * line before it.  Of several different copies of one number, the one that
 * links is kept and the others are inserted; when none links, they
 * conflict.
 */
static int
verify_walk(struct verify *v, struct vagent *a, struct vfind *f)
{
    const struct vline *prev = NULL;
    size_t i = 0;
    int r;

    while (i < a->n_lines) {
        size_t j = i, kept = SIZE_MAX, n = 0;
        uint64_t seq = a->lines[i].seq;

        while (j < a->n_lines && a->lines[j].seq == seq)
            j++;
        if (prev && seq > prev->seq + 1) {
            r = verify_missing(a, f, prev->seq + 1, seq - 1);
            if (r < 0)
                return r;
        }
        for (size_t k = i; k < j; k++) {
            struct vline *l = &a->lines[k];
            bool adjacent;

            if (l->drop)
                continue;
            n++;
            /* Only seals may stand between a line and the one before. */
            adjacent = prev != NULL;
            for (uint64_t s = prev ? prev->seq + 1 : seq; adjacent && s < seq;
                 s++)
                adjacent = verify_is_seal(a, s);
            if (adjacent)
                l->link = verify_links(v, prev->c, l) ? LINK_OK : LINK_BAD;
            if (l->link != LINK_OK && verify_links(v, a->genesis, l)) {
                l->link = LINK_OK;
                if (prev)
                    (void)vf_seq(&f->restarts, &f->n_restarts,
                                 &f->cap_restarts, seq);
                else
                    f->starts_at_genesis = true;
            }
            if (l->link != LINK_OK && verify_links_seal_start(v, a, l))
                l->link = LINK_OK;
            /*
             * The line before was given up and declared: this one's own
             * bytes cannot be checked, only its chain member (by the next
             * line or a seal).  Named, not called altered.
             */
            if (l->link == LINK_UNKNOWN && prev &&
                verify_in_gap(a, prev->seq + 1, seq - 1)) {
                l->link = LINK_GAP;
                r = vf_seq(&f->after_gap, &f->n_after_gap,
                           &f->cap_after_gap, seq);
                if (r < 0)
                    return r;
            }
            if (l->link == LINK_UNKNOWN && !prev && seq > 1 &&
                verify_in_gap(a, seq - 1, seq - 1)) {
                l->link = LINK_GAP;
                r = vf_seq(&f->after_gap, &f->n_after_gap,
                           &f->cap_after_gap, seq);
                if (r < 0)
                    return r;
            }
            if (l->link == LINK_OK && kept == SIZE_MAX)
                kept = k;
        }
        if (n > 1) {
            r = vf_seq(kept == SIZE_MAX ? &f->conflicts : &f->inserted,
                       kept == SIZE_MAX ? &f->n_conflicts : &f->n_inserted,
                       kept == SIZE_MAX ? &f->cap_conflicts
                                        : &f->cap_inserted, seq);
            if (r < 0)
                return r;
        }
        if (kept == SIZE_MAX) {
            for (kept = i; kept < j && a->lines[kept].drop; kept++)
                ;
        }
        for (size_t k = i; k < j; k++)
            if (k != kept)
                a->lines[k].drop = 1;
        if (n == 1 && a->lines[kept].link == LINK_BAD) {
            r = vf_seq(&f->altered, &f->n_altered, &f->cap_altered, seq);
            if (r < 0)
                return r;
        }
        f->lines++;
        prev = &a->lines[kept];
        i = j;
    }
    return verify_edges(a, f);
}

static const struct vkey *
verify_find_key(const struct verify *v, const struct vagent *a,
                const char *id)
{
    for (size_t i = 0; i < a->n_keys; i++)
        if (strcmp(a->keys[i].id, id) == 0)
            return &a->keys[i];
    for (size_t i = 0; i < v->n_roots; i++)
        if (strcmp(v->roots[i].id, id) == 0)
            return &v->roots[i];
    return NULL;
}

static bool
verify_sig(const struct vkey *k, const struct vseal *s)
{
    EVP_PKEY *pk;
    EVP_MD_CTX *md;
    bool ok = false;

    pk = EVP_PKEY_new_raw_public_key(EVP_PKEY_ED25519, NULL, k->pub,
                                     CHAIN_PUB_LEN);
    md = EVP_MD_CTX_new();
    if (pk && md && EVP_DigestVerifyInit(md, NULL, NULL, NULL, pk) == 1)
        ok = EVP_DigestVerify(md, s->sig, CHAIN_SIG_LEN,
                              (const unsigned char *)s->msg,
                              s->msg_len) == 1;
    EVP_MD_CTX_free(md);
    EVP_PKEY_free(pk);
    return ok;
}

static enum seal_status
verify_seal_status(const struct verify *v, const struct vagent *a,
                   const struct vseal *s)
{
    const struct vkey *k;

    if (strcmp(s->agent, a->id) != 0)
        return SEAL_AGENT;
    k = verify_find_key(v, a, s->key_id);
    if (!k)
        return SEAL_UNKNOWN_KEY;
    if (!verify_sig(k, s))
        return SEAL_BAD_SIG;
    if (k->epoch != s->epoch)
        return SEAL_WRONG_EPOCH;
    if (k->after_seq && s->first <= k->after_seq)
        return SEAL_OUT_OF_EPOCH;
    if (s->last + 1 < s->first || s->count != s->last + 1 - s->first)
        return SEAL_MALFORMED;
    return SEAL_OK;
}

static int
verify_announce(struct vagent *a, const struct verify *v,
                const struct vseal *s)
{
    struct vkey nk = { .epoch = s->epoch + 1, .after_seq = s->seq };
    int r;

    memcpy(nk.pub, s->next_pub, CHAIN_PUB_LEN);
    chain_key_id(nk.pub, nk.id);
    if (verify_find_key(v, a, nk.id))
        return 0;
    r = verify_grow((void **)&a->keys, &a->cap_keys, a->n_keys, sizeof(nk));
    if (r < 0)
        return r;
    a->keys[a->n_keys++] = nk;
    return 0;
}

/*
 * Seals in order: signatures, keys and epochs, announcements.  Keys are
 * learnt in sequence order, from the pinned ones on; a seal whose key is
 * announced only later is looked at again at the end, so that a later
 * epoch's key used on an earlier range is named as such.
 */
static int
verify_seals(struct verify *v, struct vagent *a, struct vfind *f)
{
    int r;

    struct vseal *p = NULL;     /* the last seal made by this agent */

    if (a->n_seals > 1)
        qsort(a->seals, a->n_seals, sizeof(*a->seals), vseal_cmp);
    for (size_t i = 0; i < a->n_seals; i++) {
        struct vseal *s = &a->seals[i];

        /* Another agent's seal is named as such and displaces nothing. */
        if (strcmp(s->agent, a->id) != 0) {
            s->status = SEAL_AGENT;
            continue;
        }
        if (p && p->seq == s->seq) {

            if (p->msg_len == s->msg_len &&
                memcmp(p->msg, s->msg, s->msg_len) == 0 &&
                memcmp(p->sig, s->sig, CHAIN_SIG_LEN) == 0) {
                s->drop = true;
                f->seal_dups++;
                v->obj_dups[s->obj]++;
                continue;
            }
            s->status = SEAL_CONFLICT;
            continue;
        }
        p = s;
        s->status = verify_seal_status(v, a, s);
        if (s->status == SEAL_OK && s->has_next) {
            r = verify_announce(a, v, s);
            if (r < 0)
                return r;
        }
    }
    for (size_t i = 0; i < a->n_seals; i++) {
        struct vseal *s = &a->seals[i];

        if (s->status != SEAL_UNKNOWN_KEY)
            continue;
        s->status = verify_seal_status(v, a, s);
        /* Known now only because announced after it: out of its epoch. */
        if (s->status == SEAL_OK)
            s->status = SEAL_OUT_OF_EPOCH;
    }
    return 0;
}

static const struct vline *
verify_lookup(const struct vagent *a, uint64_t seq)
{
    size_t lo = 0, hi = a->n_lines;

    while (lo < hi) {
        size_t mid = (lo + hi) / 2;

        if (a->lines[mid].seq < seq)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (; lo < a->n_lines && a->lines[lo].seq == seq; lo++)
        if (!a->lines[lo].drop)
            return &a->lines[lo];
    return NULL;
}

/*
 * Whether the seal of the line numbered seq may have been given up: a
 * declared gap holds a number between it and the first verified range
 * that begins after it.
 */
static bool
verify_seal_in_gap(const struct vagent *a, const struct vfind *f,
                   uint64_t seq)
{
    uint64_t next = UINT64_MAX;

    for (size_t k = 0; k < f->n_verified; k++)
        if (f->verified[k].first > seq && f->verified[k].first < next)
            next = f->verified[k].first;
    for (size_t i = 0; i < a->n_gaps; i++)
        if (a->gaps[i].last > seq && a->gaps[i].first < next)
            return true;
    return false;
}

/*
 * A signed seal verifies its range when every line is there (or given up
 * in a declared gap) and links.
 */
static int
verify_ranges(struct verify *v, struct vagent *a, struct vfind *f)
{
    uint64_t sealed_to = 0;
    int r;

    for (size_t i = 0; i < a->n_seals; i++) {
        struct vseal *s = &a->seals[i];
        const struct vline *l = NULL;
        bool ok = true;

        if (s->drop || s->status != SEAL_OK)
            continue;
        for (uint64_t q = s->first; ok && q <= s->last; q++) {
            l = verify_lookup(a, q);
            /* Given up and declared: the lines around it still count. */
            if (!l && verify_in_gap(a, q, q))
                continue;
            ok = l && (l->link == LINK_OK || l->link == LINK_GAP);
            if (ok && q == s->first)
                ok = verify_links(v, s->prev, l);
        }
        l = verify_lookup(a, s->last);
        if (ok && s->count > 0 && l)
            ok = memcmp(l->c, s->chain, CHAIN_HASH_LEN) == 0;
        if (ok && s->count == 0) {
            const struct vline *p = verify_lookup(a, s->last);

            ok = memcmp(s->prev, s->chain, CHAIN_HASH_LEN) == 0 &&
                 (!p || memcmp(p->c, s->chain, CHAIN_HASH_LEN) == 0);
        }
        if (!ok) {
            s->status = SEAL_MISMATCH;
            continue;
        }
        r = vf_range(&f->verified, &f->n_verified, &f->cap_verified,
                     s->count ? s->first : s->seq, s->seq, s->epoch);
        if (r < 0)
            return r;
        if (s->last > sealed_to)
            sealed_to = s->last;
    }

    /* Kept lines that no verified seal covers. */
    for (size_t i = 0; i < a->n_lines; i++) {
        const struct vline *l = &a->lines[i];
        bool covered = false;

        if (l->drop)
            continue;
        for (size_t k = 0; k < f->n_verified && !covered; k++)
            covered = l->seq >= f->verified[k].first &&
                      l->seq <= f->verified[k].last;
        if (covered)
            continue;
        if (l->seq > sealed_to) {
            if (!f->tail_first)
                f->tail_first = l->seq;
            f->tail_last = l->seq;
            continue;
        }
        /* Its seal may be among the numbers given up after it. */
        if (verify_seal_in_gap(a, f, l->seq)) {
            r = vf_range(&f->gap_sealed, &f->n_gap_sealed,
                         &f->cap_gap_sealed, l->seq, l->seq, 0);
            if (r < 0)
                return r;
            continue;
        }
        r = vf_range(&f->unsealed, &f->n_unsealed, &f->cap_unsealed, l->seq,
                     l->seq, 0);
        if (r < 0)
            return r;
    }
    return 0;
}

static bool
verify_agent_ok(const struct vagent *a, const struct vfind *f)
{
    for (size_t i = 0; i < a->n_seals; i++)
        if (!a->seals[i].drop && a->seals[i].status != SEAL_OK)
            return false;
    return f->n_missing == 0 && f->n_altered == 0 && f->n_inserted == 0 &&
           f->n_conflicts == 0 && f->n_unsealed == 0 && f->tail_first == 0 &&
           f->n_restarts == 0 && f->n_verified > 0;
}

/*
 * Nothing wrong, but the agent declared a loss: gaps, and the lines next
 * to them that could not be checked as fully as the rest.
 */
static bool
verify_agent_lost(const struct vagent *a, const struct vfind *f)
{
    return a->n_gaps > 0 || f->n_after_gap > 0 || f->n_gap_sealed > 0;
}

/* ---- output -------------------------------------------------------------- */

static void
print_ranges(FILE *out, const char *what, const struct vrange *r, size_t n,
             bool epochs)
{
    if (n == 0)
        return;
    fprintf(out, "  %s:", what);
    for (size_t i = 0; i < n && i < VERIFY_MAX_LIST; i++) {
        fprintf(out, " %llu-%llu", (unsigned long long)r[i].first,
                (unsigned long long)r[i].last);
        if (epochs)
            fprintf(out, " (epoch %llu)", (unsigned long long)r[i].epoch);
    }
    if (n > VERIFY_MAX_LIST)
        fprintf(out, " and %zu more", n - VERIFY_MAX_LIST);
    fputc('\n', out);
}

static void
print_seqs(FILE *out, const char *what, const uint64_t *s, size_t n)
{
    if (n == 0)
        return;
    fprintf(out, "  %s (%zu):", what, n);
    for (size_t i = 0; i < n && i < VERIFY_MAX_LIST; i++)
        fprintf(out, " %llu", (unsigned long long)s[i]);
    if (n > VERIFY_MAX_LIST)
        fprintf(out, " and %zu more", n - VERIFY_MAX_LIST);
    fputc('\n', out);
}

static void
json_ranges(FILE *out, const char *name, const struct vrange *r, size_t n,
            bool epochs)
{
    fprintf(out, ",\"%s\":[", name);
    for (size_t i = 0; i < n; i++) {
        fprintf(out, "%s{\"first\":%llu,\"last\":%llu", i ? "," : "",
                (unsigned long long)r[i].first,
                (unsigned long long)r[i].last);
        if (epochs)
            fprintf(out, ",\"epoch\":%llu", (unsigned long long)r[i].epoch);
        fputc('}', out);
    }
    fputc(']', out);
}

static void
json_seqs(FILE *out, const char *name, const uint64_t *s, size_t n)
{
    fprintf(out, ",\"%s\":[", name);
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%s%llu", i ? "," : "", (unsigned long long)s[i]);
    fputc(']', out);
}

static void
json_string(FILE *out, const char *s)
{
    fputc('"', out);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\')
            fprintf(out, "\\%c", c);
        else if (c < 0x20)
            fprintf(out, "\\u%04x", c);
        else
            fputc(c, out);
    }
    fputc('"', out);
}

static void
verify_print_agent(struct verify *v, const struct vagent *a,
                   const struct vfind *f, FILE *out, bool json, bool first)
{
    bool lost = verify_agent_lost(a, f);
    bool ok = verify_agent_ok(a, f) && !lost;
    size_t bad = 0;

    if (json) {
        fprintf(out, "%s{\"agent\":", first ? "" : ",");
        json_string(out, a->id);
        fprintf(out, ",\"ok\":%s,\"lines\":%llu,\"duplicates\":%llu,"
                "\"seal_duplicates\":%llu,\"starts_at_genesis\":%s",
                ok ? "true" : "false", (unsigned long long)f->lines,
                (unsigned long long)f->dups,
                (unsigned long long)f->seal_dups,
                f->starts_at_genesis ? "true" : "false");
        json_ranges(out, "verified", f->verified, f->n_verified, true);
        json_ranges(out, "missing", f->missing, f->n_missing, false);
        json_ranges(out, "declared_gaps", a->gaps, a->n_gaps, false);
        fprintf(out, ",\"declared_loss\":%s", lost ? "true" : "false");
        json_seqs(out, "after_gap", f->after_gap, f->n_after_gap);
        json_ranges(out, "sealed_in_gap", f->gap_sealed, f->n_gap_sealed,
                    false);
        json_ranges(out, "unsealed", f->unsealed, f->n_unsealed, false);
        if (f->tail_first)
            fprintf(out, ",\"unsealed_tail\":{\"first\":%llu,\"last\":%llu}",
                    (unsigned long long)f->tail_first,
                    (unsigned long long)f->tail_last);
        else
            fputs(",\"unsealed_tail\":null", out);
        json_seqs(out, "altered", f->altered, f->n_altered);
        json_seqs(out, "inserted", f->inserted, f->n_inserted);
        json_seqs(out, "conflicts", f->conflicts, f->n_conflicts);
        json_seqs(out, "chain_restarts", f->restarts, f->n_restarts);
        fputs(",\"bad_seals\":[", out);
        for (size_t i = 0; i < a->n_seals; i++) {
            const struct vseal *s = &a->seals[i];

            if (s->drop || s->status == SEAL_OK)
                continue;
            fprintf(out, "%s{\"seq\":%llu,\"first\":%llu,\"last\":%llu,"
                    "\"key_id\":\"%s\",\"epoch\":%llu,\"reason\":\"%s\","
                    "\"object\":", bad++ ? "," : "",
                    (unsigned long long)s->seq,
                    (unsigned long long)s->first,
                    (unsigned long long)s->last, s->key_id,
                    (unsigned long long)s->epoch, seal_reasons[s->status]);
            json_string(out, v->objects[s->obj]);
            fputc('}', out);
        }
        fputs("]}", out);
        return;
    }

    fprintf(out, "agent %s: %s, %llu lines, %llu identical duplicates\n",
            a->id, ok ? "verified" : verify_agent_ok(a, f) && lost
                    ? "verified, with a declared loss" : "NOT VERIFIED",
            (unsigned long long)f->lines,
            (unsigned long long)(f->dups + f->seal_dups));
    print_ranges(out, "verified", f->verified, f->n_verified, true);
    print_ranges(out, "missing", f->missing, f->n_missing, false);
    print_ranges(out, "declared gaps", a->gaps, a->n_gaps, false);
    print_seqs(out, "first lines after a declared gap (own bytes not "
               "checkable)", f->after_gap, f->n_after_gap);
    print_ranges(out, "lines whose seal was given up in a declared gap",
                 f->gap_sealed, f->n_gap_sealed, false);
    print_seqs(out, "altered", f->altered, f->n_altered);
    print_seqs(out, "inserted (forged copy of a number)", f->inserted,
               f->n_inserted);
    print_seqs(out, "conflicting copies", f->conflicts, f->n_conflicts);
    print_seqs(out, "chain restarts", f->restarts, f->n_restarts);
    print_ranges(out, "not covered by a valid seal", f->unsealed,
                 f->n_unsealed, false);
    if (f->tail_first)
        fprintf(out, "  unsealed tail: %llu-%llu\n",
                (unsigned long long)f->tail_first,
                (unsigned long long)f->tail_last);
    for (size_t i = 0; i < a->n_seals; i++) {
        const struct vseal *s = &a->seals[i];

        if (s->drop || s->status == SEAL_OK)
            continue;
        if (bad++ == VERIFY_MAX_LIST)
            break;
        fprintf(out, "  bad seal %llu (%llu-%llu, key %s, epoch %llu): %s, "
                "in '%s'\n", (unsigned long long)s->seq,
                (unsigned long long)s->first, (unsigned long long)s->last,
                s->key_id, (unsigned long long)s->epoch,
                seal_reasons[s->status], v->objects[s->obj]);
    }
}

static int
verify_analyse(struct verify *v, struct vagent *a, struct vfind *f)
{
    int r;

    verify_dedupe(v, a, f);
    /* qsort() wants a real array even for no elements. */
    if (a->n_gaps > 1)
        qsort(a->gaps, a->n_gaps, sizeof(*a->gaps), vrange_cmp);
    r = verify_seals(v, a, f);
    if (r < 0)
        return r;
    r = verify_walk(v, a, f);
    if (r < 0)
        return r;
    return verify_ranges(v, a, f);
}

int
verify_report(struct verify *v, FILE *out, bool json)
{
    bool all_ok = v->n_agents > 0 && v->malformed == 0 && v->unchained == 0;
    bool lost = false;
    size_t replayed = 0;
    int r;

    if (json)
        fputs("{\"agents\":[", out);
    for (size_t i = 0; i < v->n_agents; i++) {
        struct vfind f = { 0 };

        r = verify_analyse(v, &v->agents[i], &f);
        if (r < 0) {
            vf_free(&f);
            return r;
        }
        all_ok = all_ok && verify_agent_ok(&v->agents[i], &f);
        lost = lost || verify_agent_lost(&v->agents[i], &f);
        verify_print_agent(v, &v->agents[i], &f, out, json, i == 0);
        vf_free(&f);
    }
    if (json) {
        fputs("],\"replayed_objects\":[", out);
        for (size_t i = 0; i < v->n_objects; i++)
            if (v->obj_lines[i] && v->obj_dups[i] == v->obj_lines[i]) {
                fputs(replayed++ ? "," : "", out);
                json_string(out, v->objects[i]);
            }
        fprintf(out, "],\"objects\":%zu,\"lines\":%llu,\"malformed\":%llu,"
                "\"unchained\":%llu,\"ok\":%s}\n", v->n_objects,
                (unsigned long long)v->lines,
                (unsigned long long)v->malformed,
                (unsigned long long)v->unchained,
                all_ok && !lost ? "true" : "false");
        return all_ok ? lost ? 3 : 0 : 1;
    }
    for (size_t i = 0; i < v->n_objects; i++)
        if (v->obj_lines[i] && v->obj_dups[i] == v->obj_lines[i])
            fprintf(out, "object '%s' holds only copies of lines found "
                    "elsewhere (replayed or retried)\n", v->objects[i]);
    if (v->malformed || v->unchained)
        fprintf(out, "%llu unreadable lines, %llu lines without a chain "
                "hash; first: %s\n", (unsigned long long)v->malformed,
                (unsigned long long)v->unchained, v->first_bad);
    fprintf(out, "%s: %zu objects, %llu lines, %zu agents\n",
            !all_ok ? "NOT VERIFIED" : lost ? "verified, with a declared loss"
                                            : "verified", v->n_objects,
            (unsigned long long)v->lines, v->n_agents);
    return all_ok ? lost ? 3 : 0 : 1;
}
