/* SPDX-License-Identifier: MIT */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * CRC-32C (Castagnoli, reflected polynomial 0x82F63B78).  Pass 0 to start
 * and the previous result to continue: crc32c(crc32c(0, a), b) is the
 * checksum of a followed by b.  Thread-safe; the first call sets up the
 * tables and picks the implementation.
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable slicing-by-8 path, whatever the CPU offers (for tests). */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

/* Whether crc32c() runs on the CPU's own CRC32 instruction. */
bool crc32c_hw_available(void);
