#include "simarray/base/crc32c.h"

#include <isa-l/crc.h>

namespace simarray {

uint32_t Crc32cExtend(uint32_t state, std::span<const uint8_t> data) {
  // crc32_iscsi takes a non-const pointer but does not write through it.
  return crc32_iscsi(const_cast<uint8_t*>(data.data()), static_cast<int>(data.size()), state);
}

uint32_t Crc32c(std::span<const uint8_t> data) {
  return Crc32cFinish(Crc32cExtend(kCrc32cInit, data));
}

}  // namespace simarray
