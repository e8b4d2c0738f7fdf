#include "simarray/mirror/holding_pen.h"

#include <catch2/catch.hpp>

#include "mirror_test_util.h"

namespace simarray::mirror {
namespace {

using testing::FakeBackingStore;
using testing::kTrack;
using testing::Request;

void CheckCounters(HoldingPen& pen, uint64_t depth, uint64_t buffered, uint64_t sent,
                   uint64_t deleted) {
  PenCounters c = pen.Counters();
  CHECK(c.depth == depth);
  CHECK(c.requests_buffered == buffered);
  CHECK(c.requests_sent == sent);
  CHECK(c.requests_deleted == deleted);
}

TEST_CASE("a local pen buffers, releases and deletes a write's requests all together",
          "[mirror][pen]") {
  HoldingPen pen(PenPlacement::kLocal, 16);
  CHECK(pen.placement() == PenPlacement::kLocal);
  CHECK(pen.capacity() == 16);
  CheckCounters(pen, 0, 0, 0, 0);

  // Two writes in flight, their requests interleaved.
  REQUIRE(pen.Buffer(Request(1, {1, 10}, 0, 0, kTrack)).ok());
  REQUIRE(pen.Buffer(Request(2, {1, 20}, 5, 0, 512)).ok());
  REQUIRE(pen.Buffer(Request(1, {1, 11}, 1, 0, kTrack)).ok());
  REQUIRE(pen.Buffer(Request(2, {1, 21}, 6, 0, 512)).ok());
  REQUIRE(pen.Buffer(Request(1, {1, 12}, 2, 0, 100)).ok());
  CheckCounters(pen, 5, 5, 0, 0);

  std::vector<MirrorRequest> released = pen.Release(1);
  REQUIRE(released.size() == 3);
  // In the order buffered, every field kept.
  CHECK(released[0].key == cache::TrackKey{1, 10});
  CHECK(released[1].key == cache::TrackKey{1, 11});
  CHECK(released[2].key == cache::TrackKey{1, 12});
  CHECK(released[2].slot == 2);
  CHECK(released[2].length == 100);
  for (const MirrorRequest& r : released) CHECK(r.write_id == 1);
  CheckCounters(pen, 2, 5, 3, 0);

  // Released requests are gone from the pen.
  CHECK(pen.Release(1).empty());
  CHECK(pen.Delete(1) == 0);

  CHECK(pen.Delete(2) == 2);
  CheckCounters(pen, 0, 5, 3, 2);
  CHECK(pen.Release(2).empty());
  CheckCounters(pen, 0, 5, 3, 2);
}

TEST_CASE("a full pen refuses with RESOURCE_EXHAUSTED and accepts again after a release",
          "[mirror][pen]") {
  HoldingPen pen(PenPlacement::kLocal, 2);
  REQUIRE(pen.Buffer(Request(1, {1, 0})).ok());
  REQUIRE(pen.Buffer(Request(2, {1, 1})).ok());
  absl::Status full = pen.Buffer(Request(3, {1, 2}));
  CHECK(full.code() == absl::StatusCode::kResourceExhausted);
  CheckCounters(pen, 2, 2, 0, 0);
  CHECK(pen.Release(3).empty());  // the refused request was not kept

  CHECK(pen.Release(1).size() == 1);
  CHECK(pen.Buffer(Request(3, {1, 2})).ok());
  CHECK(pen.Delete(2) == 1);
  CHECK(pen.Delete(3) == 1);
  CheckCounters(pen, 0, 3, 1, 2);
}

TEST_CASE("a pen in cache keeps a record of every buffered request in the region",
          "[mirror][pen]") {
  FakeBackingStore store;
  absl::Status status;
  auto cache = testing::OpenCache(4, /*pen_records=*/6, &store, &status);
  INFO(status.ToString());
  REQUIRE(cache != nullptr);
  cache::CacheRegion& region = cache->region();
  REQUIRE(region.pen_records() == 6);
  // Records [2, 5) belong to this pen; the others to other host adaptors.
  HoldingPen pen(PenPlacement::kCache, 3, &region, 2);
  CHECK(pen.placement() == PenPlacement::kCache);

  auto in_use = [&]() {
    std::vector<uint64_t> used;
    for (uint64_t i = 0; i < region.pen_records(); ++i) {
      cache::PenRecord r{};
      if (region.ReadPenRecord(i, &r) && r.in_use) used.push_back(i);
    }
    return used;
  };
  CHECK(in_use().empty());

  REQUIRE(pen.Buffer(Request(7, {3, 40}, 1, 256, 1024)).ok());
  REQUIRE(pen.Buffer(Request(7, {3, 41}, 2, 0, kTrack)).ok());
  std::vector<uint64_t> used = in_use();
  REQUIRE(used.size() == 2);
  for (uint64_t i : used) {
    CHECK(i >= 2);
    CHECK(i < 5);
  }
  // The records describe the requests.
  bool saw_first = false;
  for (uint64_t i : used) {
    cache::PenRecord r{};
    REQUIRE(region.ReadPenRecord(i, &r));
    CHECK(r.write_id == 7);
    CHECK(r.volume_id == 3);
    if (r.track == 40) {
      saw_first = true;
      CHECK(r.slot == 1);
      CHECK(r.offset == 256);
      CHECK(r.length == 1024);
    }
  }
  CHECK(saw_first);

  SECTION("Release clears the records") {
    CHECK(pen.Release(7).size() == 2);
    CHECK(in_use().empty());
    CheckCounters(pen, 0, 2, 2, 0);
  }
  SECTION("Delete clears the records") {
    CHECK(pen.Delete(7) == 2);
    CHECK(in_use().empty());
    CheckCounters(pen, 0, 2, 0, 2);
  }
  SECTION("the capacity bounds the records used; freed records are reused") {
    REQUIRE(pen.Buffer(Request(8, {3, 50})).ok());
    CHECK(in_use().size() == 3);
    CHECK(pen.Buffer(Request(8, {3, 51})).code() == absl::StatusCode::kResourceExhausted);
    CHECK(in_use().size() == 3);
    CHECK(pen.Release(7).size() == 2);
    REQUIRE(pen.Buffer(Request(9, {3, 60})).ok());
    REQUIRE(pen.Buffer(Request(9, {3, 61})).ok());
    used = in_use();
    CHECK(used == std::vector<uint64_t>{2, 3, 4});
    CHECK(pen.Delete(8) == 1);
    CHECK(pen.Delete(9) == 2);
    CHECK(in_use().empty());
  }
}

TEST_CASE("pen records of a write not committed before a crash are dropped at recovery",
          "[mirror][pen]") {
  testing::TempDir dir;
  REQUIRE(dir.ok());
  const std::string path = dir.File("cache.region");
  FakeBackingStore store;
  cache::CacheOptions o;
  o.path = path;
  o.size = cache::kRegionHeaderBytes + 4 * sizeof(cache::PenRecord) + 4096 +
           4 * (kTrack + sizeof(cache::SlotEntry));
  o.track_size = kTrack;
  o.pen_records = 4;
  cache::RecoveryReport report;
  {
    auto cache = cache::CacheMemory::Open(o, &report);
    REQUIRE(cache.ok());
    HoldingPen pen(PenPlacement::kCache, 4, &(*cache)->region(), 0);
    REQUIRE(pen.Buffer(Request(1, {1, 0})).ok());
    REQUIRE(pen.Buffer(Request(1, {1, 1})).ok());
    REQUIRE(pen.Buffer(Request(2, {1, 2})).ok());
    CHECK(pen.Release(2).size() == 1);  // committed: its record is cleared
    // The process dies with write 1 still in the pen.
  }
  auto cache = cache::CacheMemory::Open(o, &report);
  REQUIRE(cache.ok());
  CHECK(report.pen_records_dropped == 2);
}

}  // namespace
}  // namespace simarray::mirror
