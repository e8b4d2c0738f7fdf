#include "simarray/base/digest.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <vector>

namespace simarray {
namespace {

TEST_CASE("Digest64 and Digest32 are xxHash XXH3-64 and XXH32 (seed 0)", "[base][digest]") {
  CHECK(Digest64({}) == 0x2D06800538D394C2ull);
  CHECK(Digest32({}) == 0x02CC5D05u);
}

TEST_CASE("Digests are deterministic and see a one-byte change", "[base][digest]") {
  std::vector<uint8_t> a(65536, 0x11);
  std::vector<uint8_t> b = a;
  CHECK(Digest64(a) == Digest64(b));
  CHECK(Digest32(a) == Digest32(b));
  b[40000] = 0x12;
  CHECK(Digest64(a) != Digest64(b));
  CHECK(Digest32(a) != Digest32(b));
}

}  // namespace
}  // namespace simarray
