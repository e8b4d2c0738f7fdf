#pragma once
// Track digests (xxHash XXH3-64) used to compare what each side of a pair would return to
// a host read, and to checksum cache slot-table entries. Thread-safe (pure functions).

#include <cstdint>
#include <span>

namespace simarray {

uint64_t Digest64(std::span<const uint8_t> data);
uint32_t Digest32(std::span<const uint8_t> data);

}  // namespace simarray
