/* SPDX-License-Identifier: MIT */
/*
 * Ed25519 key files for the seals: making, reading with a permission
 * check, replacing and erasing them.  When to rotate is the daemon's
 * decision; what is signed is chain.c's.
 */
#include "chain_key.h"

#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/pem.h>

#define CHAIN_KEY_FILE_MAX 4096

static int
chain_key_fill(struct chain_key *k)
{
    size_t n = CHAIN_PUB_LEN;

    if (EVP_PKEY_get_raw_public_key(k->pkey, k->pub, &n) != 1 ||
        n != CHAIN_PUB_LEN)
        return -EIO;
    chain_key_id(k->pub, k->id);
    return 0;
}

int
chain_key_generate(struct chain_key *k, uint64_t epoch, int64_t start)
{
    EVP_PKEY_CTX *ctx;
    int ok;

    memset(k, 0, sizeof(*k));
    ctx = EVP_PKEY_CTX_new_id(EVP_PKEY_ED25519, NULL);
    if (!ctx)
        return -ENOMEM;
    ok = EVP_PKEY_keygen_init(ctx) == 1 &&
         EVP_PKEY_keygen(ctx, &k->pkey) == 1;
    EVP_PKEY_CTX_free(ctx);
    if (!ok)
        return -EIO;
    k->epoch = epoch;
    k->epoch_start = start;
    return chain_key_fill(k);
}

void
chain_key_done(struct chain_key *k)
{
    /* Freeing an OpenSSL key cleanses its private part. */
    EVP_PKEY_free(k->pkey);
    OPENSSL_cleanse(k, sizeof(*k));
}

static int
chain_key_read_all(int fd, char *buf, size_t cap, size_t *ret_len)
{
    size_t n = 0;

    for (;;) {
        ssize_t got = read(fd, buf + n, cap - n);

        if (got < 0 && errno == EINTR)
            continue;
        if (got < 0)
            return -errno;
        if (got == 0)
            break;
        n += (size_t)got;
        if (n == cap)
            return -EFBIG;
    }
    *ret_len = n;
    return 0;
}

static int
chain_key_parse(const char *text, size_t len, struct chain_key *k,
                const char **reterr_why)
{
    unsigned long long epoch;
    long long start;
    const char *pem;
    BIO *bio;
    int r;

    if (sscanf(text, "aaas-epoch %llu %lld", &epoch, &start) != 2) {
        *reterr_why = "the first line is not 'aaas-epoch N TIME'";
        return -EBADMSG;
    }
    pem = memchr(text, '\n', len);
    if (!pem) {
        *reterr_why = "no PEM key after the first line";
        return -EBADMSG;
    }
    pem++;
    bio = BIO_new_mem_buf(pem, (int)(len - (size_t)(pem - text)));
    if (!bio)
        return -ENOMEM;
    k->pkey = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL);
    BIO_free(bio);
    if (!k->pkey || EVP_PKEY_get_id(k->pkey) != EVP_PKEY_ED25519) {
        *reterr_why = "not a PEM Ed25519 private key";
        return -EBADMSG;
    }
    k->epoch = epoch;
    k->epoch_start = start;
    r = chain_key_fill(k);
    if (r < 0)
        *reterr_why = "cannot read the public half of the key";
    return r;
}

int
chain_key_load(const char *path, struct chain_key *k,
               const char **reterr_why)
{
    char *buf = NULL;
    struct stat st;
    size_t len = 0;
    int fd = -1;
    int r;

    memset(k, 0, sizeof(*k));
    *reterr_why = NULL;
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        *reterr_why = "not a regular file";
        r = -EBADMSG;
        goto out;
    }
    if (st.st_mode & 077) {
        *reterr_why = "group or others may access it (chmod 600)";
        r = -EPERM;
        goto out;
    }
    buf = malloc(CHAIN_KEY_FILE_MAX + 1);
    if (!buf) {
        r = -ENOMEM;
        goto out;
    }
    r = chain_key_read_all(fd, buf, CHAIN_KEY_FILE_MAX, &len);
    if (r < 0)
        goto out;
    buf[len] = '\0';
    r = chain_key_parse(buf, len, k, reterr_why);
out:
    if (buf) {
        OPENSSL_cleanse(buf, CHAIN_KEY_FILE_MAX + 1);
        free(buf);
    }
    if (fd >= 0)
        (void)close(fd);
    if (r < 0 && k->pkey)
        chain_key_done(k);
    return r;
}

static int
chain_key_write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);

        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            return -errno;
        p += w;
        n -= (size_t)w;
    }
    return 0;
}

static int
chain_key_sync_dir(const char *path)
{
    char *copy = strdup(path);
    int fd, r = 0;

    if (!copy)
        return -ENOMEM;
    fd = open(dirname(copy), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    free(copy);
    if (fd < 0)
        return -errno;
    if (fsync(fd) < 0)
        r = -errno;
    (void)close(fd);
    return r;
}

/* The file's text in a BIO; the caller cleanses and frees it. */
static int
chain_key_text(const struct chain_key *k, BIO **ret)
{
    BIO *bio = BIO_new(BIO_s_mem());

    if (!bio)
        return -ENOMEM;
    if (BIO_printf(bio, "aaas-epoch %llu %lld\n",
                   (unsigned long long)k->epoch,
                   (long long)k->epoch_start) <= 0 ||
        PEM_write_bio_PrivateKey(bio, k->pkey, NULL, NULL, 0, NULL,
                                 NULL) != 1) {
        BIO_free(bio);
        return -EIO;
    }
    *ret = bio;
    return 0;
}

int
chain_key_save(const char *path, const struct chain_key *k, bool exclusive)
{
    char tmp[4096];
    bool placed = false;
    BIO *bio = NULL;
    char *data;
    long len;
    int fd = -1;
    int r;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= sizeof(tmp))
        return -ENAMETOOLONG;
    if (exclusive && access(path, F_OK) == 0)
        return -EEXIST;
    r = chain_key_text(k, &bio);
    if (r < 0)
        return r;
    len = BIO_get_mem_data(bio, &data);

    (void)unlink(tmp);
    fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0) {
        r = -errno;
        goto out;
    }
    r = chain_key_write_all(fd, data, (size_t)len);
    if (r < 0)
        goto out;
    if (fsync(fd) < 0) {
        r = -errno;
        goto out;
    }
    if (exclusive)
        r = link(tmp, path) < 0 ? -errno : 0;
    else
        r = rename(tmp, path) < 0 ? -errno : 0;
    if (r < 0)
        goto out;
    placed = true;
    r = chain_key_sync_dir(path);
out:
    if (fd >= 0)
        (void)close(fd);
    /* Once placed, tmp is the key itself (or gone): only its name goes. */
    if (!placed)
        (void)chain_key_erase_file(tmp);
    else if (exclusive)
        (void)unlink(tmp);
    OPENSSL_cleanse(data, (size_t)len);
    BIO_free(bio);
    return r;
}

int
chain_key_erase_file(const char *path)
{
    char zero[512] = { 0 };
    struct stat st;
    off_t left;
    int fd, r = 0;

    fd = open(path, O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    if (fstat(fd, &st) < 0) {
        r = -errno;
        goto out;
    }
    /*
     * Overwritten before the unlink: a hard link elsewhere or a file
     * system that keeps old blocks around would otherwise still hold it.
     */
    for (left = st.st_size; left > 0 && r == 0;) {
        size_t n = left > (off_t)sizeof(zero) ? sizeof(zero) : (size_t)left;

        r = chain_key_write_all(fd, zero, n);
        left -= (off_t)n;
    }
    if (r == 0 && fsync(fd) < 0)
        r = -errno;
    if (r == 0 && unlink(path) < 0 && errno != ENOENT)
        r = -errno;
out:
    (void)close(fd);
    return r;
}

void
chain_key_pub_text(const struct chain_key *k,
                   char ret[static CHAIN_KEY_PUB_TEXT_MAX])
{
    char b64[CHAIN_PUB_B64_LEN + 4];

    (void)EVP_EncodeBlock((unsigned char *)b64, k->pub, CHAIN_PUB_LEN);
    (void)snprintf(ret, CHAIN_KEY_PUB_TEXT_MAX, "aaas-ed25519 %s %s", b64,
                   k->id);
}

int
chain_key_parse_pub(const char *text, uint8_t ret[static CHAIN_PUB_LEN])
{
    unsigned char raw[CHAIN_PUB_LEN + 4];
    char b64[CHAIN_PUB_B64_LEN + 1];

    while (*text == ' ' || *text == '\t' || *text == '\n')
        text++;
    if (strncmp(text, "aaas-ed25519 ", 13) != 0)
        return -EBADMSG;
    text += 13;
    if (strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                     "0123456789+/=") != CHAIN_PUB_B64_LEN)
        return -EBADMSG;
    memcpy(b64, text, CHAIN_PUB_B64_LEN);
    b64[CHAIN_PUB_B64_LEN] = '\0';
    if (EVP_DecodeBlock(raw, (unsigned char *)b64, CHAIN_PUB_B64_LEN) !=
        CHAIN_PUB_LEN + 1)
        return -EBADMSG;
    memcpy(ret, raw, CHAIN_PUB_LEN);
    return 0;
}
