#include "simarray/base/digest.h"

#include <xxhash.h>

namespace simarray {

uint64_t Digest64(std::span<const uint8_t> data) { return XXH3_64bits(data.data(), data.size()); }

uint32_t Digest32(std::span<const uint8_t> data) { return XXH32(data.data(), data.size(), 0); }

}  // namespace simarray
