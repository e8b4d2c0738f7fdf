#include "simarray/cache/cache_region.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "cache_test_util.h"

namespace simarray::cache {
namespace {

using testing::EntryOffset;
using testing::FlipByte;
using testing::RegionSizeFor;
using testing::TempDir;

constexpr uint32_t kTrack = 4096;

RegionOptions FileOptions(const std::string& path, uint64_t slots, uint64_t pen_records = 0) {
  RegionOptions o;
  o.path = path;
  o.size = RegionSizeFor(slots, kTrack, pen_records);
  o.track_size = kTrack;
  o.pen_records = pen_records;
  return o;
}

std::unique_ptr<CacheRegion> MustOpen(const RegionOptions& o, bool* fresh) {
  auto region = CacheRegion::Open(o, fresh);
  INFO(region.status().ToString());
  REQUIRE(region.ok());
  return std::move(*region);
}

TEST_CASE("SlotCountFor fits the header, slot table, pen records and slots", "[cache][region]") {
  CHECK(CacheRegion::SlotCountFor(0, kTrack, 0) == 0);
  CHECK(CacheRegion::SlotCountFor(8192, kTrack, 0) == 0);
  CHECK(CacheRegion::SlotCountFor(1 << 20, 0, 0) == 0);
  CHECK(CacheRegion::SlotCountFor(RegionSizeFor(4, kTrack), kTrack, 0) == 4);
  CHECK(CacheRegion::SlotCountFor(RegionSizeFor(4, kTrack) - 1, kTrack, 0) == 3);
  CHECK(CacheRegion::SlotCountFor(RegionSizeFor(10, kTrack, 100), kTrack, 100) == 10);
  // Pen records take room from the slots.
  CHECK(CacheRegion::SlotCountFor(RegionSizeFor(10, kTrack), kTrack, 200) < 10);
}

TEST_CASE("a region too small for one slot is INVALID_ARGUMENT", "[cache][region]") {
  RegionOptions o;
  o.size = 8192;
  o.track_size = kTrack;
  bool fresh = false;
  CHECK(CacheRegion::Open(o, &fresh).status().code() == absl::StatusCode::kInvalidArgument);
}

TEST_CASE("an anonymous region is formatted and not persistent", "[cache][region]") {
  RegionOptions o;
  o.size = RegionSizeFor(3, kTrack, 2);
  o.track_size = kTrack;
  o.pen_records = 2;
  o.role = Role::kMirror;
  bool fresh = false;
  auto region = MustOpen(o, &fresh);
  CHECK(fresh);
  CHECK_FALSE(region->persistent());
  CHECK(region->slot_count() == 3);
  CHECK(region->pen_records() == 2);
  CHECK(region->header().role == static_cast<uint32_t>(Role::kMirror));
  CHECK(region->Sync().ok());
  // Every slot's data is addressable and distinct.
  for (uint64_t s = 0; s < 3; ++s) {
    std::span<uint8_t> d = region->SlotData(s);
    REQUIRE(d.size() == kTrack);
    std::memset(d.data(), static_cast<int>(s + 1), d.size());
  }
  for (uint64_t s = 0; s < 3; ++s) {
    CHECK(testing::AllEqual(region->SlotData(s), 0, kTrack, static_cast<uint8_t>(s + 1)));
  }
}

TEST_CASE("a new region file is formatted, and reopening it keeps the header", "[cache][region]") {
  TempDir dir;
  REQUIRE(dir.ok());
  RegionOptions o = FileOptions(dir.File("cache.region"), 5, 3);
  bool fresh = false;
  {
    auto region = MustOpen(o, &fresh);
    CHECK(fresh);
    CHECK(region->persistent());
    const RegionHeader& h = region->header();
    CHECK(h.magic == kRegionMagic);
    CHECK(h.format_version == kRegionFormatVersion);
    CHECK(h.track_size == kTrack);
    CHECK(h.region_size == o.size);
    CHECK(h.slot_count == 5);
    CHECK(h.pen_records == 3);
    CHECK(h.sequence_high_water == 0);
    CHECK(h.generation != 0);  // random per format
    CHECK(h.peer_generation == 0);
    CHECK(h.role == static_cast<uint32_t>(Role::kPrimary));
    region->SetSequenceHighWater(12345);
    region->SetGeneration(77);
    region->SetRole(Role::kMirror);
    std::memset(region->SlotData(4).data(), 0xC4, kTrack);
    CHECK(region->Sync().ok());
  }
  auto region = MustOpen(o, &fresh);
  CHECK_FALSE(fresh);
  CHECK(region->header().sequence_high_water == 12345);
  CHECK(region->header().generation == 77);
  CHECK(region->header().role == static_cast<uint32_t>(Role::kMirror));
  CHECK(testing::AllEqual(region->SlotData(4), 0, kTrack, 0xC4));
}

TEST_CASE("slot entries and pen records round-trip with their checksums", "[cache][region]") {
  TempDir dir;
  REQUIRE(dir.ok());
  RegionOptions o = FileOptions(dir.File("cache.region"), 4, 2);
  bool fresh = false;
  SlotEntry e{};
  e.sequence = 42;
  e.track = 9;
  e.write_id = 1001;
  e.volume_id = 3;
  e.state = static_cast<uint8_t>(SlotState::kWritePending);
  e.flags = kSlotMirrorOwed;
  PenRecord p{};
  p.write_id = 1001;
  p.track = 9;
  p.volume_id = 3;
  p.slot = 2;
  p.offset = 512;
  p.length = 1024;
  p.in_use = 1;
  {
    auto region = MustOpen(o, &fresh);
    region->WriteEntry(2, e);
    region->WritePenRecord(1, p);
  }
  auto region = MustOpen(o, &fresh);
  SlotEntry got{};
  REQUIRE(region->ReadEntry(2, &got));
  CHECK(got.sequence == 42);
  CHECK(got.track == 9);
  CHECK(got.write_id == 1001);
  CHECK(got.volume_id == 3);
  CHECK(got.state == static_cast<uint8_t>(SlotState::kWritePending));
  CHECK(got.flags == kSlotMirrorOwed);
  PenRecord pgot{};
  REQUIRE(region->ReadPenRecord(1, &pgot));
  CHECK(pgot.write_id == 1001);
  CHECK(pgot.slot == 2);
  CHECK(pgot.offset == 512);
  CHECK(pgot.length == 1024);
  CHECK(pgot.in_use == 1);
  // A region formatted by CacheRegion alone has zeroed tables: not valid entries.
  SlotEntry never{};
  CHECK_FALSE(region->ReadEntry(0, &never));
}

TEST_CASE("a flipped byte in a slot entry fails its checksum", "[cache][region]") {
  TempDir dir;
  REQUIRE(dir.ok());
  RegionOptions o = FileOptions(dir.File("cache.region"), 4);
  bool fresh = false;
  SlotEntry e{};
  e.sequence = 7;
  e.track = 1;
  e.volume_id = 1;
  e.state = static_cast<uint8_t>(SlotState::kWritePending);
  {
    auto region = MustOpen(o, &fresh);
    region->WriteEntry(1, e);
    region->WriteEntry(3, e);
  }
  // Slot 1: a byte of the track number; slot 3: a byte of the checksum itself.
  REQUIRE(FlipByte(o.path, EntryOffset(1) + offsetof(SlotEntry, track)));
  REQUIRE(FlipByte(o.path, EntryOffset(3) + offsetof(SlotEntry, checksum)));
  auto region = MustOpen(o, &fresh);
  SlotEntry got{};
  CHECK_FALSE(region->ReadEntry(1, &got));
  CHECK_FALSE(region->ReadEntry(3, &got));
}

TEST_CASE("reopening a region made differently is refused", "[cache][region]") {
  TempDir dir;
  REQUIRE(dir.ok());
  RegionOptions o = FileOptions(dir.File("cache.region"), 4, 2);
  bool fresh = false;
  MustOpen(o, &fresh).reset();

  SECTION("another track size, same file size: FAILED_PRECONDITION naming track_size") {
    RegionOptions other = o;
    other.track_size = 2 * kTrack;
    auto r = CacheRegion::Open(other, &fresh);
    CHECK(r.status().code() == absl::StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(r.status().message()), Catch::Contains("track_size"));
  }
  SECTION("another size: FAILED_PRECONDITION") {
    RegionOptions other = o;
    other.size = RegionSizeFor(5, kTrack, 2);
    CHECK(CacheRegion::Open(other, &fresh).status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SECTION("another pen area, same size: FAILED_PRECONDITION") {
    RegionOptions other = o;
    other.pen_records = 3;
    CHECK(CacheRegion::Open(other, &fresh).status().code() ==
          absl::StatusCode::kFailedPrecondition);
  }
  SECTION("the original options still open it") {
    auto r = CacheRegion::Open(o, &fresh);
    CHECK(r.ok());
    CHECK_FALSE(fresh);
  }
}

TEST_CASE("a damaged region header and shadow are DATA_LOSS, not reformatted", "[cache][region]") {
  TempDir dir;
  REQUIRE(dir.ok());
  RegionOptions o = FileOptions(dir.File("cache.region"), 4);
  bool fresh = false;
  MustOpen(o, &fresh).reset();
  SECTION("bad magic") {
    REQUIRE(FlipByte(o.path, offsetof(RegionHeader, magic) + 2));
    REQUIRE(FlipByte(o.path, kShadowHeaderOffset + offsetof(RegionHeader, magic) + 2));
  }
  SECTION("header checksum mismatch") {
    REQUIRE(FlipByte(o.path, offsetof(RegionHeader, generation)));
    REQUIRE(FlipByte(o.path, kShadowHeaderOffset + offsetof(RegionHeader, generation)));
  }
  CHECK(CacheRegion::Open(o, &fresh).status().code() == absl::StatusCode::kDataLoss);
}

TEST_CASE("a header torn by a kill in the middle of an update opens from its shadow",
          "[cache][region]") {
  TempDir dir;
  REQUIRE(dir.ok());
  RegionOptions o = FileOptions(dir.File("cache.region"), 4);
  bool fresh = false;
  uint64_t generation = 0;
  {
    auto region = MustOpen(o, &fresh);
    region->SetSequenceHighWater(77);
    generation = region->header().generation;
  }
  // The header half-written: a field changed, its checksum not yet.
  REQUIRE(FlipByte(o.path, offsetof(RegionHeader, sequence_high_water)));
  {
    auto region = MustOpen(o, &fresh);
    CHECK_FALSE(fresh);
    CHECK(region->header().sequence_high_water == 77);
    CHECK(region->header().generation == generation);
  }
  // The header was put back: it opens without the shadow too.
  REQUIRE(FlipByte(o.path, kShadowHeaderOffset + offsetof(RegionHeader, generation)));
  CHECK(MustOpen(o, &fresh)->header().sequence_high_water == 77);
}

}  // namespace
}  // namespace simarray::cache
