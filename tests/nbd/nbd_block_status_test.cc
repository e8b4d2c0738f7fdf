// base:allocation extents at track granularity.
#include "simarray/nbd/nbd_block_status.h"

#include <catch2/catch.hpp>

#include "simarray/nbd/nbd_protocol.h"

namespace simarray::nbd {
namespace {
constexpr uint32_t kTrack = 4096;
constexpr uint32_t kHole = kStateHole | kStateZero;
}  // namespace

TEST_CASE("neighbouring tracks in the same state merge", "[nbd]") {
  auto e = AllocationExtents(0, 5 * kTrack, kTrack, {true, true, false, false, true}, false);
  CHECK(e == std::vector<Extent>{{2 * kTrack, kHole}, {2 * kTrack, 0}, {kTrack, kHole}});
}

TEST_CASE("an unaligned range is clipped to the request on both ends", "[nbd]") {
  auto e = AllocationExtents(100, 2 * kTrack, kTrack, {false, false, true}, false);
  CHECK(e == std::vector<Extent>{{2 * kTrack - 100, 0}, {100, kHole}});
  uint64_t sum = 0;
  for (const Extent& x : e) sum += x.length;
  CHECK(sum == 2 * kTrack);
}

TEST_CASE("REQ_ONE answers with the first extent only", "[nbd]") {
  auto e = AllocationExtents(0, 3 * kTrack, kTrack, {false, false, true}, true);
  CHECK(e == std::vector<Extent>{{2 * kTrack, 0}});
}

TEST_CASE("a short request inside one track is one extent of its length", "[nbd]") {
  auto e = AllocationExtents(kTrack + 10, 20, kTrack, {true}, false);
  CHECK(e == std::vector<Extent>{{20, kHole}});
}

TEST_CASE("the block status chunk carries the context id and the descriptors", "[nbd]") {
  const std::string chunk = EncodeBlockStatusChunk(5, kBaseAllocationId, {{8192, kHole}, {512, 0}});
  REQUIRE(chunk.size() == kChunkHeaderSize + 4 + 16);
  const auto* p = reinterpret_cast<const uint8_t*>(chunk.data());
  CHECK(GetU32(p) == kStructuredReplyMagic);
  CHECK(GetU16(p + 4) == kReplyFlagDone);
  CHECK(GetU16(p + 6) == kReplyTypeBlockStatus);
  CHECK(GetU64(p + 8) == 5);
  CHECK(GetU32(p + 16) == 20);
  CHECK(GetU32(p + 20) == kBaseAllocationId);
  CHECK(GetU32(p + 24) == 8192);
  CHECK(GetU32(p + 28) == kHole);
  CHECK(GetU32(p + 32) == 512);
  CHECK(GetU32(p + 36) == 0);
}

TEST_CASE("AllZero", "[nbd]") {
  std::vector<uint8_t> bytes(3 * 4096 + 17, 0);
  CHECK(AllZero(bytes));
  bytes.back() = 1;
  CHECK_FALSE(AllZero(bytes));
  bytes.back() = 0;
  bytes[5000] = 9;
  CHECK_FALSE(AllZero(bytes));
  CHECK(AllZero({}));
}

}  // namespace simarray::nbd
