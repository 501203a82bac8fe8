/*
 * crc32c.h - CRC-32C (Castagnoli), the checksum on every stored record.
 *
 * The store checks each record it reads back (seglog.h), so the checksum
 * runs at least once per message stored and once per message delivered
 * from the store.  CRC-32C because x86-64 computes it in hardware (SSE 4.2's
 * crc32 instruction, 8 bytes per instruction, about 20 GB/s here) and
 * because it is what iSCSI, ext4 metadata and LevelDB's log use: its
 * error-detection properties are known.  Where the CPU lacks the
 * instruction, a slicing-by-8 table version gives the same result at about
 * 1 GB/s.
 *
 * The value is the standard one: crc32c("123456789") == 0xe3069283.
 */
#ifndef PIGEON_CRC32C_H
#define PIGEON_CRC32C_H

#include <stddef.h>
#include <stdint.h>

/*
 * Extends CRC (0 to start) over DATA[0..LEN): crc32c(crc32c(0, a), b) is
 * the CRC of a followed by b.  Thread-safe.
 */
uint32_t crc32c(uint32_t crc, const void *data, size_t len);

/* The portable table version, whatever the CPU has (for tests). */
uint32_t crc32c_sw(uint32_t crc, const void *data, size_t len);

#endif
