/* SPDX-License-Identifier: MIT */
/*
 * The chain member, seals, key files and the verifier on lines built
 * here: every hash is recomputed with plain SHA-256 calls, not through
 * the code under test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "chain.h"
#include "chain_key.h"
#include "verify.h"

#define AGENT "0123456789abcdef0123456789abcdef"

static void
sha256(const void *a, size_t an, const void *b, size_t bn, uint8_t *out)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();

    assert_non_null(md);
    assert_int_equal(EVP_DigestInit_ex(md, EVP_sha256(), NULL), 1);
    assert_int_equal(EVP_DigestUpdate(md, a, an), 1);
    if (bn)
        assert_int_equal(EVP_DigestUpdate(md, b, bn), 1);
    assert_int_equal(EVP_DigestFinal_ex(md, out, NULL), 1);
    EVP_MD_CTX_free(md);
}

/* Builds `{"x":N,"_aaas":{"agent":..,"seq":N}}` plus its chain member. */
static size_t
make_line(struct chain *c, uint64_t seq, char *buf, size_t cap)
{
    size_t len;

    len = (size_t)snprintf(buf, cap, "{\"x\":%llu,\"_aaas\":{\"agent\":\""
                           AGENT "\",\"seq\":%llu}}\n",
                           (unsigned long long)seq, (unsigned long long)seq);
    assert_int_equal(chain_link(c, buf, &len, cap), 0);
    chain_commit(c, seq);
    return len;
}

static void
test_chain_member_and_hash(void **state)
{
    char buf[512], plain[512], hex[CHAIN_HEX_LEN + 1];
    uint8_t genesis[CHAIN_HASH_LEN], d[CHAIN_HASH_LEN], want[CHAIN_HASH_LEN];
    uint8_t got[CHAIN_HASH_LEN];
    struct chain c;
    size_t len, at, plen;

    (void)state;
    assert_int_equal(chain_init(&c, AGENT), 0);
    len = make_line(&c, 1, buf, sizeof(buf));

    /* The member is the last one in _aaas, and the line still ends "}}\n". */
    assert_int_equal(chain_split(buf, len, &at, got), 0);
    assert_memory_equal(buf + at, ",\"chain\":\"", 10);
    assert_int_equal(len, at + CHAIN_FIELD_LEN + 3);
    assert_memory_equal(buf + at + CHAIN_FIELD_LEN, "}}\n", 3);

    /* chain[1] = SHA-256(genesis || SHA-256(line without member and \n)). */
    sha256("aaas-chain-v1", sizeof("aaas-chain-v1"), AGENT, strlen(AGENT),
           genesis);
    plen = (size_t)snprintf(plain, sizeof(plain), "{\"x\":1,\"_aaas\":"
                            "{\"agent\":\"" AGENT "\",\"seq\":1}}");
    sha256(plain, plen, NULL, 0, d);
    sha256(genesis, sizeof(genesis), d, sizeof(d), want);
    assert_memory_equal(got, want, CHAIN_HASH_LEN);
    chain_hex(want, CHAIN_HASH_LEN, hex);
    assert_memory_equal(buf + at + 10, hex, CHAIN_HEX_LEN);

    /* The next line chains to it. */
    len = make_line(&c, 2, buf, sizeof(buf));
    assert_int_equal(chain_split(buf, len, &at, got), 0);
    plen = (size_t)snprintf(plain, sizeof(plain), "{\"x\":2,\"_aaas\":"
                            "{\"agent\":\"" AGENT "\",\"seq\":2}}");
    sha256(plain, plen, NULL, 0, d);
    sha256(want, sizeof(want), d, sizeof(d), want);
    assert_memory_equal(got, want, CHAIN_HASH_LEN);
    chain_done(&c);
}

static void
test_chain_link_keeps_trailing_blanks(void **state)
{
    char buf[256] = "{\"a\":1,\"_aaas\":{\"seq\":3}}  \n";
    size_t len = strlen(buf), at;
    uint8_t h[CHAIN_HASH_LEN];
    struct chain c;

    (void)state;
    assert_int_equal(chain_init(&c, AGENT), 0);
    assert_int_equal(chain_link(&c, buf, &len, sizeof(buf)), 0);
    buf[len] = '\0';
    assert_int_equal(len, strlen(buf));
    assert_string_equal(buf + len - 5, "}}  \n");
    assert_int_equal(chain_split(buf, len, &at, h), 0);
    assert_memory_equal(h, c.pending, CHAIN_HASH_LEN);

    /* No room, or no closing braces: refused, line untouched. */
    len = strlen(buf);
    assert_int_equal(chain_link(&c, buf, &len, len + 10), -ENOBUFS);
    strcpy(buf, "{\"a\":1}\n");
    len = strlen(buf);
    assert_int_equal(chain_link(&c, buf, &len, sizeof(buf)), -EBADMSG);
    assert_string_equal(buf, "{\"a\":1}\n");
    chain_done(&c);
}

static void
test_key_file_mode_and_round_trip(void **state)
{
    char dir[] = "/tmp/test_chain.XXXXXX", path[128];
    struct chain_key k, back;
    const char *why = NULL;

    (void)state;
    assert_non_null(mkdtemp(dir));
    (void)snprintf(path, sizeof(path), "%s/signing.key", dir);
    assert_int_equal(chain_key_generate(&k, 3, 1700000000), 0);
    assert_int_equal(chain_key_save(path, &k, true), 0);
    assert_int_equal(chain_key_save(path, &k, true), -EEXIST);

    assert_int_equal(chain_key_load(path, &back, &why), 0);
    assert_memory_equal(back.pub, k.pub, CHAIN_PUB_LEN);
    assert_string_equal(back.id, k.id);
    assert_int_equal(back.epoch, 3);
    assert_int_equal(back.epoch_start, 1700000000);
    chain_key_done(&back);

    assert_int_equal(chmod(path, 0640), 0);
    assert_int_equal(chain_key_load(path, &back, &why), -EPERM);
    assert_non_null(strstr(why, "group or others"));

    assert_int_equal(chain_key_erase_file(path), 0);
    assert_int_equal(access(path, F_OK), -1);
    chain_key_done(&k);
    assert_int_equal(rmdir(dir), 0);
}

/* A verifier fed n chained lines and a seal per `every` lines. */
static int
run_verify(int n, int every, int tamper_seq, bool drop_last_seal)
{
    char buf[1024], seal[CHAIN_SEAL_MAX], pub[CHAIN_KEY_PUB_TEXT_MAX];
    struct timespec now = { .tv_sec = 1700000000 };
    struct verify *v;
    struct chain_key k;
    struct chain c;
    uint64_t seq = 1;
    size_t len;
    int r;

    assert_int_equal(chain_init(&c, AGENT), 0);
    assert_int_equal(chain_key_generate(&k, 0, 0), 0);
    chain_key_pub_text(&k, pub);
    assert_int_equal(verify_new(&v), 0);
    assert_int_equal(verify_add_key(v, pub), 0);
    assert_int_equal(verify_begin_object(v, "unit"), 0);
    for (int i = 1; i <= n; i++) {
        len = make_line(&c, seq, buf, sizeof(buf));
        if ((int)seq == tamper_seq)
            buf[2] = 'y';
        assert_int_equal(verify_line(v, buf, len), 0);
        seq++;
        if (i % every == 0 || i == n) {
            assert_int_equal(chain_seal(&c, &k, NULL, seq, &now, seal, &len),
                             0);
            chain_seal_commit(&c);
            if (!(drop_last_seal && i == n))
                assert_int_equal(verify_line(v, seal, len), 0);
            seq++;
        }
    }
    {
        FILE *devnull = fopen("/dev/null", "w");

        r = verify_report(v, devnull, true);
        (void)fclose(devnull);
    }
    (void)verify_free(v);
    chain_key_done(&k);
    chain_done(&c);
    return r;
}

static void
test_verify_clean_and_tampered(void **state)
{
    (void)state;
    assert_int_equal(run_verify(100, 10, 0, false), 0);
    assert_int_equal(run_verify(100, 10, 37, false), 1);
    assert_int_equal(run_verify(100, 10, 0, true), 1);
}

static void
test_seal_is_deterministic_and_signed(void **state)
{
    char a[CHAIN_SEAL_MAX], b[CHAIN_SEAL_MAX], msg[CHAIN_SEAL_MAX + 16];
    struct timespec now = { .tv_sec = 1700000000, .tv_nsec = 5000 };
    char line[512];
    struct chain_key k;
    struct chain c;
    size_t la, lb, lm;
    const char *sig;

    (void)state;
    assert_int_equal(chain_init(&c, AGENT), 0);
    assert_int_equal(chain_key_generate(&k, 0, 0), 0);
    (void)make_line(&c, 1, line, sizeof(line));
    (void)make_line(&c, 2, line, sizeof(line));
    assert_int_equal(chain_seal(&c, &k, NULL, 3, &now, a, &la), 0);
    assert_int_equal(chain_seal(&c, &k, NULL, 3, &now, b, &lb), 0);
    /* Ed25519 is deterministic: the same range gives the same bytes. */
    assert_int_equal(la, lb);
    assert_memory_equal(a, b, la);
    assert_non_null(strstr(a, "\"first_seq\":1,\"last_seq\":2,\"count\":2,"));
    assert_non_null(strstr(a, "\"_aaas\":{\"agent\":\"" AGENT "\","
                              "\"seq\":3,\"time\":\"2023-11-14T22:13:20."
                              "000005Z\"}}\n"));

    assert_int_equal(chain_seal_message(a, la, msg, sizeof(msg), &lm, &sig),
                     0);
    assert_memory_equal(msg, "aaas-seal-v1", 13);
    assert_null(memmem(msg, lm, "\"sig\"", 5));
    assert_int_equal(lm, 13 + la - 1 - CHAIN_SIG_FIELD_LEN);
    chain_key_done(&k);
    chain_done(&c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_member_and_hash),
        cmocka_unit_test(test_chain_link_keeps_trailing_blanks),
        cmocka_unit_test(test_key_file_mode_and_round_trip),
        cmocka_unit_test(test_seal_is_deterministic_and_signed),
        cmocka_unit_test(test_verify_clean_and_tampered),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
