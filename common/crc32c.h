/*  common/crc32c.h - CRC-32C (Castagnoli), the checksum of stored records.
 *
 *  The broker's store (broker/state/store.h) seals every record with a CRC-32C
 *  of its database, key and value, so a damaged page or a flipped bit is
 *  found when the record is read instead of being handed to a worker. The
 *  Castagnoli polynomial is the one iSCSI, ext4 and Btrfs use: it detects
 *  every burst error up to 32 bits, and x86-64 computes it in hardware
 *  (SSE 4.2), which is used when the CPU has it; elsewhere a table-driven
 *  version ("slicing by 8") runs. Both give the same values. Thread-safe:
 *  the tables are built once, under pthread_once.
 */
#ifndef TW_CRC32C_H
#define TW_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/* Extend `crc` (0 to start) over `len` bytes at `p` and return it, so
 * tw_crc32c(tw_crc32c(0, a, n), b, m) is the CRC of a followed by b.
 * tw_crc32c(0, "123456789", 9) is 0xe3069283. */
uint32_t tw_crc32c(uint32_t crc, const void *p, size_t len);

/* The table-driven version alone, whatever the CPU (for the unit test,
 * which checks that both agree). */
uint32_t tw__crc32c_soft(uint32_t crc, const void *p, size_t len);

#endif /* TW_CRC32C_H */
