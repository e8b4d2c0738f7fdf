#pragma once
// CRC-32C (Castagnoli), the checksum hosts send with every write and the peer link puts on
// every record. Backed by ISA-L's crc32_iscsi. Thread-safe (pure functions).

#include <cstddef>
#include <cstdint>
#include <span>

namespace simarray {

// The standard CRC-32C of `data` ("123456789" -> 0xE3069283).
uint32_t Crc32c(std::span<const uint8_t> data);

// Incremental form: start with kCrc32cInit, feed pieces in order through Crc32cExtend, then
// Crc32cFinish gives the same value Crc32c would for the concatenation.
inline constexpr uint32_t kCrc32cInit = 0xFFFFFFFFu;
uint32_t Crc32cExtend(uint32_t state, std::span<const uint8_t> data);
inline uint32_t Crc32cFinish(uint32_t state) { return state ^ 0xFFFFFFFFu; }

}  // namespace simarray
