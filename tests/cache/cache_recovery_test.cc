// Recovery of a persistent cache region: what CacheMemory::Open brings back from a region
// file left by an earlier run or a crash (docs/write-path.md: highest valid sequence per track,
// staging and pen entries dropped, torn entries never trusted).

#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>

#include "cache_test_util.h"
#include "simarray/cache/cache_memory.h"

namespace simarray::cache {
namespace {

using testing::AllEqual;
using testing::Bytes;
using testing::EntryOffset;
using testing::FakeBackingStore;
using testing::FlipByte;
using testing::RegionSizeFor;
using testing::TempDir;

constexpr uint32_t kTrack = 4096;
constexpr uint64_t kSlots = 8;
constexpr absl::Duration kHangGuard = absl::Seconds(60);

using testing::MustOpen;

CacheOptions FileOptions(const std::string& path, uint64_t pen_records = 0) {
  return testing::OptionsFor(kSlots, kTrack, path, pen_records);
}

// Publishes [offset, offset + length) of `key` filled with `value`; returns the slot used.
uint32_t Write(CacheMemory& cache, TrackKey key, uint32_t offset, uint32_t length, uint8_t value,
               uint64_t sequence, bool mirror_owed = true) {
  auto staged = cache.AllocateStaging(key, sequence, absl::Now() + kHangGuard);
  REQUIRE(staged.ok());
  std::memset(staged->data().data() + offset, value, length);
  Published published =
      cache.Publish(std::move(*staged), offset, length, sequence, mirror_owed, Keep::kImage);
  REQUIRE(published);
  return published.image_slot;
}

std::vector<uint8_t> Current(CacheMemory& cache, TrackKey key, uint64_t* sequence) {
  SlotRef ref = cache.PeekTrack(key, sequence);
  REQUIRE(ref.valid());
  return Bytes(ref.data());
}

bool Cached(CacheMemory& cache, TrackKey key) {
  uint64_t seq = 0;
  return cache.PeekTrack(key, &seq).valid();
}

TEST_CASE("a new region file reports a fresh cache", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  RecoveryReport report;
  auto cache = MustOpen(FileOptions(dir.File("cache.region")), &store, &report);
  CHECK(report.fresh);
  CHECK(cache->persistent());
  CHECK(cache->Counts().free == kSlots);
}

TEST_CASE("committed tracks come back after reopen: write-pending with data, clean as clean",
          "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  uint64_t s1 = 0, s2 = 0, s3 = 0;
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    s1 = cache->NextSequence();
    Write(*cache, {1, 0}, 0, kTrack, 0x01, s1, /*mirror_owed=*/true);
    s2 = cache->NextSequence();
    Write(*cache, {1, 1}, 0, 100, 0x02, s2, /*mirror_owed=*/false);
    REQUIRE(cache->ReadTrack({1, 2}).ok());  // clean, staged from disk
    s3 = cache->NextSequence();
    const uint32_t slot3 = Write(*cache, {1, 3}, 0, kTrack, 0x03, s3, /*mirror_owed=*/true);
    cache->MarkClean(slot3, s3);  // destaged, but the mirror has not acknowledged it
  }
  RecoveryReport report;
  auto cache = MustOpen(o, &store, &report);
  CHECK_FALSE(report.fresh);
  CHECK(report.write_pending == 2);
  CHECK(report.clean == 2);
  CHECK(report.superseded == 0);
  CHECK(report.staging_dropped == 0);
  CHECK(report.torn_entries == 0);
  CHECK(report.pen_records_dropped == 0);
  // Owed to the mirror whether or not destaged; order is not part of the contract.
  std::vector<uint64_t> owed;
  for (const TrackKey& k : report.mirror_owed) {
    CHECK(k.volume_id == 1);
    owed.push_back(k.track);
  }
  std::sort(owed.begin(), owed.end());
  CHECK(owed == std::vector<uint64_t>{0, 3});

  uint64_t seq = 0;
  CHECK(AllEqual(Current(*cache, {1, 0}, &seq), 0, kTrack, 0x01));
  CHECK(seq == s1);
  std::vector<uint8_t> t1 = Current(*cache, {1, 1}, &seq);
  CHECK(seq == s2);
  CHECK(AllEqual(t1, 0, 100, 0x02));
  CHECK(AllEqual(t1, 100, kTrack, FakeBackingStore::FillFor({1, 1})));
  CHECK(AllEqual(Current(*cache, {1, 2}, &seq), 0, kTrack, FakeBackingStore::FillFor({1, 2})));
  CHECK(seq == 0);
  CHECK(AllEqual(Current(*cache, {1, 3}, &seq), 0, kTrack, 0x03));
  CHECK(seq == s3);

  SlotCounts c = cache->Counts();
  CHECK(c.write_pending == 2);
  CHECK(c.clean == 2);
  CHECK(c.free == kSlots - 4);
  // The recovered write-pending images are destaged again, in sequence order.
  CHECK(cache->DirtyCount() == 2);
  std::vector<DirtyTrack> dirty = cache->TakeDirty(10);
  REQUIRE(dirty.size() == 2);
  CHECK(dirty[0].key == TrackKey{1, 0});
  CHECK(dirty[0].sequence == s1);
  CHECK(dirty[1].key == TrackKey{1, 1});
  CHECK(dirty[1].sequence == s2);
}

TEST_CASE("a crash between two images of one track recovers the highest sequence",
          "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  CacheOptions crashed = o;
  crashed.path = dir.File("crashed.region");
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    // The remote adaptor still pins the first image when the second is committed: the
    // second is a copy on write, and the first, though still pinned, has left the slot table.
    auto staged = cache->AllocateStaging({1, 4}, 1, absl::Now() + kHangGuard);
    REQUIRE(staged.ok());
    std::memset(staged->data().data(), 0x0A, kTrack);
    Published shipping = cache->Publish(std::move(*staged), 0, kTrack, 10, true, Keep::kWriteBytes);
    REQUIRE(shipping);
    Write(*cache, {1, 4}, 0, 64, 0x0B, 11);
    REQUIRE(testing::SnapshotFile(o.path, crashed.path));
  }
  RecoveryReport report;
  auto cache = MustOpen(crashed, &store, &report);
  CHECK(report.superseded == 0);
  CHECK(report.write_pending == 1);
  uint64_t seq = 0;
  std::vector<uint8_t> now = Current(*cache, {1, 4}, &seq);
  CHECK(seq == 11);
  CHECK(AllEqual(now, 0, 64, 0x0B));
  CHECK(AllEqual(now, 64, kTrack, 0x0A));
  CHECK(cache->Counts().write_pending == 1);
  CHECK(cache->Counts().free == kSlots - 1);
  CHECK(cache->DirtyCount() == 1);
}

TEST_CASE("recovery keeps the highest sequence whichever slot holds it", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  {
    RecoveryReport report;
    MustOpen(o, &store, &report).reset();  // formats every entry
  }
  uint64_t newer_slot = 0, older_slot = 0;
  SECTION("newer image in the later slot") {
    older_slot = 2;
    newer_slot = 5;
  }
  SECTION("newer image in the earlier slot") {
    older_slot = 5;
    newer_slot = 2;
  }
  {
    // Lay the two images down directly in the region, as a crash would leave them.
    RegionOptions ro{o.path, o.size, o.track_size, o.pen_records, o.role};
    bool fresh = true;
    auto region = CacheRegion::Open(ro, &fresh);
    REQUIRE(region.ok());
    REQUIRE_FALSE(fresh);
    auto put = [&](uint64_t slot, uint64_t sequence, uint8_t value) {
      std::memset((*region)->SlotData(slot).data(), value, kTrack);
      SlotEntry e{};
      e.sequence = sequence;
      e.track = 6;
      e.volume_id = 2;
      e.state = static_cast<uint8_t>(SlotState::kWritePending);
      (*region)->WriteEntry(slot, e);
    };
    put(older_slot, 3, 0x33);
    put(newer_slot, 9, 0x99);
  }
  RecoveryReport report;
  auto cache = MustOpen(o, &store, &report);
  CHECK(report.superseded == 1);
  CHECK(report.write_pending == 1);
  uint64_t seq = 0;
  CHECK(AllEqual(Current(*cache, {2, 6}, &seq), 0, kTrack, 0x99));
  CHECK(seq == 9);
  CHECK(cache->Counts().free == kSlots - 1);
  // The sequence counter is above every recovered image.
  CHECK(cache->NextSequence() > 9);
}

TEST_CASE("staging entries of uncommitted writes are dropped at recovery", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    Write(*cache, {1, 0}, 0, kTrack, 0x01, 1);
    for (uint64_t t : {0, 1}) {
      auto staged = cache->AllocateStaging({1, t}, 77, absl::Now() + kHangGuard);
      REQUIRE(staged.ok());
      std::memset(staged->data().data(), 0xEE, kTrack);
      staged->Release();  // the process dies before the write commits or is dropped
    }
    CHECK(cache->Counts().staging == 2);
  }
  RecoveryReport report;
  auto cache = MustOpen(o, &store, &report);
  CHECK(report.staging_dropped == 2);
  CHECK(report.write_pending == 1);
  uint64_t seq = 0;
  CHECK(AllEqual(Current(*cache, {1, 0}, &seq), 0, kTrack, 0x01));
  CHECK(seq == 1);
  CHECK_FALSE(Cached(*cache, {1, 1}));
  SlotCounts c = cache->Counts();
  CHECK(c.staging == 0);
  CHECK(c.free == kSlots - 1);
}

TEST_CASE("sealed staging slots of the write to redo are published at recovery, others dropped",
          "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  CacheOptions o = FileOptions(dir.File("cache.region"));
  constexpr uint64_t kRedo = (uint64_t{1} << 63) | 7;
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    Write(*cache, {1, 0}, 0, kTrack, 0x01, 1);
    Write(*cache, {1, 1}, 0, kTrack, 0x02, 5);  // newer than the redo's image of track 1
    // Sealed for the write to redo: tracks 0, 1 and 2; track 3 sealed for another write,
    // track 4 staged but never sealed.
    const std::pair<uint64_t, uint64_t> sealed[] = {{0, 3}, {1, 4}, {2, 3}, {3, 3}};
    for (auto [track, sequence] : sealed) {
      const uint64_t write_id = track == 3 ? kRedo + 1 : kRedo;
      auto staged = cache->AllocateStaging({1, track}, write_id, absl::Now() + kHangGuard);
      REQUIRE(staged.ok());
      std::memset(staged->data().data(), 0xA0 + track, kTrack);
      cache->SealStaged(*staged, sequence, write_id);
      staged->Release();  // the process dies in the middle of the redo's commit
    }
    auto unsealed = cache->AllocateStaging({1, 4}, kRedo, absl::Now() + kHangGuard);
    REQUIRE(unsealed.ok());
    unsealed->Release();
  }
  o.redo_write_id = kRedo;
  RecoveryReport report;
  auto cache = MustOpen(o, &store, &report);
  CHECK(report.redone == 3);
  CHECK(report.staging_dropped == 2);  // the other write's, and the unsealed one (sequence 0)
  uint64_t seq = 0;
  CHECK(AllEqual(Current(*cache, {1, 0}, &seq), 0, kTrack, 0xA0));  // redone over sequence 1
  CHECK(seq == 3);
  CHECK(AllEqual(Current(*cache, {1, 1}, &seq), 0, kTrack, 0x02));  // newer image kept
  CHECK(seq == 5);
  CHECK(AllEqual(Current(*cache, {1, 2}, &seq), 0, kTrack, 0xA2));
  CHECK_FALSE(Cached(*cache, {1, 3}));
  CHECK(cache->Counts().staging == 0);
  // Reopened once more, with nothing to redo: the redone images are ordinary write-pending.
  cache.reset();
  o.redo_write_id = 0;
  RecoveryReport again;
  cache = MustOpen(o, &store, &again);
  CHECK(again.redone == 0);
  CHECK(again.staging_dropped == 0);
  CHECK(AllEqual(Current(*cache, {1, 2}, &seq), 0, kTrack, 0xA2));
}

TEST_CASE("a torn slot entry is counted and never trusted", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  uint32_t torn_slot = 0;
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    torn_slot = Write(*cache, {1, 0}, 0, kTrack, 0x01, 1);
    Write(*cache, {1, 1}, 0, kTrack, 0x02, 2);
  }
  // A byte of the entry's track number: the entry would name track 0x5A if trusted.
  REQUIRE(FlipByte(o.path, EntryOffset(torn_slot) + offsetof(SlotEntry, track)));
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    CHECK(report.torn_entries == 1);
    CHECK(report.write_pending == 1);
    CHECK_FALSE(Cached(*cache, {1, 0}));
    CHECK_FALSE(Cached(*cache, {1, 0x5A}));
    CHECK(Cached(*cache, {1, 1}));
    CHECK(cache->Counts().free == kSlots - 1);
    CHECK(cache->DirtyCount() == 1);
    // A read of the track goes to the backing store, not to the torn slot's bytes.
    auto read = cache->ReadTrack({1, 0});
    REQUIRE(read.ok());
    CHECK(AllEqual(read->data(), 0, kTrack, FakeBackingStore::FillFor({1, 0})));
  }
  // Recovery rewrote the torn entry: the next reopen finds nothing torn.
  RecoveryReport report;
  auto cache = MustOpen(o, &store, &report);
  CHECK(report.torn_entries == 0);
}

TEST_CASE("pen records in use at reopen are counted and cleared", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"), /*pen_records=*/4);
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    REQUIRE(cache->region().pen_records() == 4);
    for (uint64_t i : {0, 2}) {
      PenRecord r{};
      r.write_id = 50 + i;
      r.track = i;
      r.volume_id = 1;
      r.length = kTrack;
      r.in_use = 1;
      cache->region().WritePenRecord(i, r);
    }
    PenRecord released{};  // a record whose write was released: not in use
    released.write_id = 49;
    cache->region().WritePenRecord(1, released);
  }
  RecoveryReport report;
  auto cache = MustOpen(o, &store, &report);
  CHECK(report.pen_records_dropped == 2);
  for (uint64_t i = 0; i < 4; ++i) {
    PenRecord r{};
    INFO("record " << i);
    CHECK(cache->region().ReadPenRecord(i, &r));
    CHECK(r.in_use == 0);
  }
  // Nothing of those writes reached the cache.
  CHECK(cache->DirtyCount() == 0);
}

TEST_CASE("NextSequence keeps increasing across reopen", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  uint64_t last = 0;
  for (int run = 0; run < 3; ++run) {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    INFO("run " << run);
    for (int i = 0; i < 5; ++i) {
      uint64_t s = cache->NextSequence();
      REQUIRE(s > last);
      last = s;
    }
  }
  SECTION("after ObserveSequence of a peer's number") {
    {
      RecoveryReport report;
      auto cache = MustOpen(o, &store, &report);
      cache->ObserveSequence(last + 1000000);
      last += 1000000;
    }
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    CHECK(cache->NextSequence() > last);
  }
  SECTION("after publishing a sequence above the reserved block") {
    const uint64_t high = last + 5000000;
    {
      RecoveryReport report;
      auto cache = MustOpen(o, &store, &report);
      Write(*cache, {1, 0}, 0, kTrack, 0x01, high);
    }
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    CHECK(cache->NextSequence() > high);
  }
}

TEST_CASE("reopening with a different track size fails FAILED_PRECONDITION", "[cache][recovery]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    Write(*cache, {1, 0}, 0, kTrack, 0x01, 1);
  }
  CacheOptions other = o;  // same file size, other track size
  other.track_size = 2 * kTrack;
  RecoveryReport report;
  auto cache = CacheMemory::Open(other, &report);
  CHECK(cache.status().code() == absl::StatusCode::kFailedPrecondition);
  // The refusal left the region intact.
  auto again = MustOpen(o, &store, &report);
  CHECK(report.write_pending == 1);
}

}  // namespace
}  // namespace simarray::cache
