#pragma once
// CRC-32C (Castagnoli polynomial 0x1EDC6F41), the checksum of iSCSI
// (RFC 3720), TFRecord framing (TensorBoard event files) and kmidi
// checkpoints. Uses the SSE4.2 crc32 instruction when the CPU has it.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kmidi::hash {

/// Extends `crc` (the CRC of the bytes before) over `size` bytes. Start with 0.
uint32_t crc32c_extend(uint32_t crc, const void* data, size_t size);

inline uint32_t crc32c(std::string_view bytes) { return crc32c_extend(0, bytes.data(), bytes.size()); }

/// The table-driven path, whatever the CPU; exposed so tests check both paths.
uint32_t crc32c_extend_portable(uint32_t crc, const void* data, size_t size);

/// TFRecord's masked CRC: rotate right by 15 and add a constant, so that a
/// CRC stored inside checksummed data does not checksum to a fixed value.
inline uint32_t mask_crc32c(uint32_t crc) { return ((crc >> 15) | (crc << 17)) + 0xa282ead8u; }

}  // namespace kmidi::hash
