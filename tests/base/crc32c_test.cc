#include "simarray/base/crc32c.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string_view>
#include <vector>

namespace simarray {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

TEST_CASE("Crc32c matches the standard check values", "[base][crc32c]") {
  CHECK(Crc32c(Bytes("123456789")) == 0xE3069283u);
  CHECK(Crc32c({}) == 0u);
  std::vector<uint8_t> zeros(32, 0x00);
  CHECK(Crc32c(zeros) == 0x8A9136AAu);
  std::vector<uint8_t> ones(32, 0xFF);
  CHECK(Crc32c(ones) == 0x62A8AB43u);
}

TEST_CASE("Crc32cExtend over pieces equals the one-shot Crc32c", "[base][crc32c]") {
  std::vector<uint8_t> data(10000);
  for (size_t i = 0; i < data.size(); ++i) data[i] = static_cast<uint8_t>(i * 31 + 7);
  const uint32_t whole = Crc32c(data);

  // Every split point of a short buffer, including empty pieces at either end.
  std::span<const uint8_t> check = Bytes("123456789");
  for (size_t cut = 0; cut <= check.size(); ++cut) {
    uint32_t state = Crc32cExtend(kCrc32cInit, check.first(cut));
    state = Crc32cExtend(state, check.subspan(cut));
    CHECK(Crc32cFinish(state) == 0xE3069283u);
  }

  // Uneven pieces of a larger buffer.
  const size_t pieces[] = {1, 3, 64, 1000, 4096, 7};
  uint32_t state = kCrc32cInit;
  size_t at = 0;
  for (size_t i = 0; at < data.size(); ++i) {
    size_t n = std::min(pieces[i % std::size(pieces)], data.size() - at);
    state = Crc32cExtend(state, std::span<const uint8_t>(data).subspan(at, n));
    at += n;
  }
  CHECK(Crc32cFinish(state) == whole);

  // Nothing fed: the CRC of nothing.
  CHECK(Crc32cFinish(kCrc32cInit) == Crc32c({}));
}

TEST_CASE("Crc32c detects a single flipped bit", "[base][crc32c]") {
  std::vector<uint8_t> data(4096, 0x5A);
  const uint32_t before = Crc32c(data);
  data[2048] ^= 0x01;
  CHECK(Crc32c(data) != before);
}

}  // namespace
}  // namespace simarray
