/* SPDX-License-Identifier: MIT */
/*
 * CRC-32C for the spool's frames and checkpoint.  Owns the software tables
 * and the choice, made once per process, between them and SSE4.2.
 */
#include "crc32c.h"

#include <pthread.h>
#include <string.h>

#define CRC32C_POLY 0x82f63b78u

/*
 * crc32c_table[k][b] is the CRC of byte b followed by k zero bytes, so one
 * step can fold eight input bytes with eight independent lookups.
 */
static uint32_t crc32c_table[8][256];
static pthread_once_t crc32c_once = PTHREAD_ONCE_INIT;
static bool crc32c_use_hw;

static void
crc32c_init(void)
{
    for (unsigned i = 0; i < 256; i++) {
        uint32_t c = i;

        for (int k = 0; k < 8; k++)
            c = (c & 1) ? (c >> 1) ^ CRC32C_POLY : c >> 1;
        crc32c_table[0][i] = c;
    }
    for (unsigned i = 0; i < 256; i++)
        for (int k = 1; k < 8; k++) {
            uint32_t prev = crc32c_table[k - 1][i];

            crc32c_table[k][i] = (prev >> 8) ^ crc32c_table[0][prev & 0xff];
        }

#if defined(__x86_64__)
    crc32c_use_hw = __builtin_cpu_supports("sse4.2");
#endif
}

/* The raw loops work on the inverted register; the wrappers invert. */
static uint32_t
crc32c_sw_raw(uint32_t c, const uint8_t *p, size_t len)
{
    const uint32_t (*t)[256] = crc32c_table;

    while (len >= 8) {
        uint32_t lo = c ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 |
                           (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24);
        uint32_t hi = (uint32_t)p[4] | (uint32_t)p[5] << 8 |
                      (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;

        c = t[7][lo & 0xff] ^ t[6][(lo >> 8) & 0xff] ^
            t[5][(lo >> 16) & 0xff] ^ t[4][lo >> 24] ^
            t[3][hi & 0xff] ^ t[2][(hi >> 8) & 0xff] ^
            t[1][(hi >> 16) & 0xff] ^ t[0][hi >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        c = t[0][(c ^ *p++) & 0xff] ^ (c >> 8);
    return c;
}

#if defined(__x86_64__)
/*
 * One crc32 instruction per 8 bytes.  A single dependency chain runs at
 * about 8 bytes per 3 cycles, far more than a 500-byte frame needs, so the
 * three-way interleaving used for bulk checksumming is not worth its code.
 */
__attribute__((target("sse4.2")))
static uint32_t
crc32c_hw_raw(uint32_t c, const uint8_t *p, size_t len)
{
    uint64_t c64;

    while (len > 0 && ((uintptr_t)p & 7)) {
        c = __builtin_ia32_crc32qi(c, *p++);
        len--;
    }
    c64 = c;
    while (len >= 8) {
        uint64_t w;

        memcpy(&w, p, sizeof(w));
        c64 = __builtin_ia32_crc32di(c64, w);
        p += 8;
        len -= 8;
    }
    c = (uint32_t)c64;
    while (len--)
        c = __builtin_ia32_crc32qi(c, *p++);
    return c;
}
#endif

uint32_t
crc32c_sw(uint32_t crc, const void *data, size_t len)
{
    (void)pthread_once(&crc32c_once, crc32c_init);
    return ~crc32c_sw_raw(~crc, data, len);
}

uint32_t
crc32c(uint32_t crc, const void *data, size_t len)
{
    (void)pthread_once(&crc32c_once, crc32c_init);
#if defined(__x86_64__)
    if (crc32c_use_hw)
        return ~crc32c_hw_raw(~crc, data, len);
#endif
    return ~crc32c_sw_raw(~crc, data, len);
}

bool
crc32c_hw_available(void)
{
    (void)pthread_once(&crc32c_once, crc32c_init);
    return crc32c_use_hw;
}
