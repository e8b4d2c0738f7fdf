// The in-place commit: a kill at each of its steps (the region file copied aside at that
// step is what a kill -9 leaves), the dirty blocks the destage writes, readers that never see
// half a write, and what Publish copies.
#include <algorithm>
#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "cache_test_util.h"
#include "simarray/cache/cache_memory.h"

namespace simarray::cache {
namespace {

using testing::AllEqual;
using testing::FakeBackingStore;
using testing::TempDir;

constexpr uint32_t kTrack = 16384;
constexpr uint64_t kSlots = 8;
constexpr absl::Duration kHangGuard = absl::Seconds(60);
const TrackKey kKey{1, 2};

using testing::MustOpen;

CacheOptions FileOptions(const std::string& path) {
  return testing::OptionsFor(kSlots, kTrack, path);
}

// A cache in anonymous memory (not persistent) with kKey's image staged from `store`.
std::unique_ptr<CacheMemory> OpenWithTrack(FakeBackingStore* store) {
  RecoveryReport report;
  auto cache = MustOpen(testing::OptionsFor(kSlots, kTrack), store, &report);
  REQUIRE(cache->ReadTrack(kKey).ok());  // clean: the same as the backing file
  return cache;
}

StagedSlot Stage(CacheMemory& cache, TrackKey key, TrackRange r, uint8_t value) {
  auto staged = cache.AllocateStaging(key, 1, absl::Now() + kHangGuard);
  REQUIRE(staged.ok());
  std::memset(staged->data().data() + r.offset, value, r.length);
  return std::move(*staged);
}

Published Write(CacheMemory& cache, TrackKey key, TrackRange r, uint8_t value, uint64_t sequence,
                Keep keep = Keep::kNothing) {
  Published p = cache.Publish(Stage(cache, key, r, value), r.offset, r.length, sequence,
                              /*mirror_owed=*/true, keep);
  REQUIRE(p);
  return p;
}

std::vector<uint8_t> Image(CacheMemory& cache, TrackKey key, uint64_t* sequence) {
  SlotRef ref = cache.PeekTrack(key, sequence);
  REQUIRE(ref.valid());
  return testing::Bytes(ref.data());
}

const char* StepName(CommitStep step) {
  switch (step) {
    case CommitStep::kSealed:
      return "after the seal";
    case CommitStep::kMidCopy:
      return "halfway through the copy";
    case CommitStep::kCopied:
      return "after the copy";
    case CommitStep::kImageEntry:
      return "after the image's entry";
    case CommitStep::kUnsealed:
      return "after the seal is lifted";
  }
  return "?";
}

// The first write [4096, 8192) = 0x11 is committed; the second [6000, 10000) = 0x22 is the
// one killed. Its range must be wholly old or wholly new, and the first write intact.
void CheckFirstWrite(const std::vector<uint8_t>& image, uint8_t disk) {
  CHECK(AllEqual(image, 0, 4096, disk));
  CHECK(AllEqual(image, 4096, 6000, 0x11));
  CHECK(AllEqual(image, 10000, kTrack, disk));
}

TEST_CASE("an in-place commit killed at any step recovers its range wholly old or wholly new",
          "[cache][in-place]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const uint8_t disk = FakeBackingStore::FillFor(kKey);
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  CacheOptions killed = o;
  killed.path = dir.File("killed.region");
  const TrackRange second{6000, 4000};

  for (CommitStep step : {CommitStep::kSealed, CommitStep::kMidCopy, CommitStep::kCopied,
                          CommitStep::kImageEntry, CommitStep::kUnsealed}) {
    INFO("killed " << StepName(step));
    std::filesystem::remove(o.path);
    {
      RecoveryReport report;
      auto cache = MustOpen(o, &store, &report);
      REQUIRE(cache->ReadTrack(kKey).ok());  // a clean image to write into
      REQUIRE(Write(*cache, kKey, {4096, 4096}, 0x11, 1).in_place);
      bool snapped = false;
      cache->SetCommitStepHook([&](CommitStep now) {
        if (now == step) snapped = testing::SnapshotFile(o.path, killed.path);
      });
      REQUIRE(Write(*cache, kKey, second, 0x22, 2, Keep::kWriteBytes).in_place);
      REQUIRE(snapped);
    }
    RecoveryReport report;
    auto cache = MustOpen(killed, &store, &report);
    uint64_t seq = 0;
    std::vector<uint8_t> image = Image(*cache, kKey, &seq);
    CheckFirstWrite(image, disk);
    // Once sealed, the write is redone: new bytes and its sequence.
    CHECK(AllEqual(image, 6000, 10000, 0x22));
    CHECK(seq == 2);
    CHECK(report.torn_entries == 0);
    CHECK(report.write_pending == 1);
    CHECK(cache->DirtyCount() == 1);  // and it will be destaged
    CHECK(report.redone == (step <= CommitStep::kCopied ? 1 : 0));
    CHECK(cache->Counts().free == kSlots - 1);  // seals and staged slots are freed
    CHECK(std::find(report.mirror_owed.begin(), report.mirror_owed.end(), kKey) !=
          report.mirror_owed.end());
  }
}

TEST_CASE("a commit killed before its seal leaves its range wholly old", "[cache][in-place]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const uint8_t disk = FakeBackingStore::FillFor(kKey);
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  CacheOptions killed = o;
  killed.path = dir.File("killed.region");
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    REQUIRE(cache->ReadTrack(kKey).ok());
    Write(*cache, kKey, {4096, 4096}, 0x11, 1);
    // Staged and validated, not yet committed: its bytes sit in a staging slot.
    StagedSlot staged = Stage(*cache, kKey, {6000, 4000}, 0x22);
    REQUIRE(testing::SnapshotFile(o.path, killed.path));
  }
  RecoveryReport report;
  auto cache = MustOpen(killed, &store, &report);
  uint64_t seq = 0;
  std::vector<uint8_t> image = Image(*cache, kKey, &seq);
  CheckFirstWrite(image, disk);
  CHECK(AllEqual(image, 6000, 8192, 0x11));
  CHECK(AllEqual(image, 8192, 10000, disk));
  CHECK(seq == 1);
  CHECK(report.staging_dropped == 1);
  CHECK(report.redone == 0);
}

TEST_CASE("a kill that tears the image's entry is repaired from the seal", "[cache][in-place]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const uint8_t disk = FakeBackingStore::FillFor(kKey);
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  CacheOptions killed = o;
  killed.path = dir.File("killed.region");
  uint32_t image_slot = 0;
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    REQUIRE(cache->ReadTrack(kKey).ok());
    image_slot = Write(*cache, kKey, {4096, 4096}, 0x11, 1).image_slot;
    cache->SetCommitStepHook([&](CommitStep now) {
      if (now == CommitStep::kCopied) REQUIRE(testing::SnapshotFile(o.path, killed.path));
    });
    Write(*cache, kKey, {6000, 4000}, 0x22, 2);
  }
  // Half of the image's entry written when the kill came: its checksum fails.
  REQUIRE(testing::FlipByte(killed.path,
                            testing::EntryOffset(image_slot) + offsetof(SlotEntry, sequence)));
  RecoveryReport report;
  auto cache = MustOpen(killed, &store, &report);
  uint64_t seq = 0;
  std::vector<uint8_t> image = Image(*cache, kKey, &seq);
  CheckFirstWrite(image, disk);
  CHECK(AllEqual(image, 6000, 10000, 0x22));
  CHECK(seq == 2);
  CHECK(report.redone == 1);
  CHECK(report.torn_entries == 0);
  CHECK(cache->DirtyCount() == 1);
}

TEST_CASE("an image copied on write while pinned never wins over the new one at a restart",
          "[cache][in-place]") {
  TempDir dir;
  REQUIRE(dir.ok());
  FakeBackingStore store;
  const CacheOptions o = FileOptions(dir.File("cache.region"));
  CacheOptions killed = o;
  killed.path = dir.File("killed.region");
  uint32_t image_slot = 0;
  {
    RecoveryReport report;
    auto cache = MustOpen(o, &store, &report);
    REQUIRE(cache->ReadTrack(kKey).ok());
    Write(*cache, kKey, {0, 4096}, 0x10, 1);
    // A reader (or the destage) pins the image: the next write copies it on write.
    uint64_t seq = 0;
    SlotRef reader = cache->PeekTrack(kKey, &seq);
    Published cow = Write(*cache, kKey, {4096, 4096}, 0x11, 2);
    REQUIRE_FALSE(cow.in_place);
    image_slot = cow.image_slot;
    // Then a write in place into the new image, killed after its copy.
    cache->SetCommitStepHook([&](CommitStep now) {
      if (now == CommitStep::kCopied) REQUIRE(testing::SnapshotFile(o.path, killed.path));
    });
    REQUIRE(Write(*cache, kKey, {8192, 4096}, 0x12, 3).in_place);
  }
  // The kill tore the new image's entry as it was being written.
  REQUIRE(testing::FlipByte(killed.path,
                            testing::EntryOffset(image_slot) + offsetof(SlotEntry, sequence)));
  RecoveryReport report;
  auto cache = MustOpen(killed, &store, &report);
  uint64_t seq = 0;
  std::vector<uint8_t> image = Image(*cache, kKey, &seq);
  CHECK(seq == 3);
  CHECK(AllEqual(image, 0, 4096, 0x10));
  CHECK(AllEqual(image, 4096, 8192, 0x11));  // the acknowledged write 2 is not lost
  CHECK(AllEqual(image, 8192, 12288, 0x12));
  CHECK(AllEqual(image, 12288, kTrack, FakeBackingStore::FillFor(kKey)));
  CHECK(report.redone == 1);
  CHECK(cache->Counts().free == kSlots - 1);
}

TEST_CASE("the destage is given only the blocks a write changed", "[cache][in-place]") {
  FakeBackingStore store;
  auto opened = OpenWithTrack(&store);
  CacheMemory& cache = *opened;

  // Block 1 whole, then 200 bytes of block 3: two ranges of whole blocks.
  const uint64_t copied_before = cache.bytes_copied();
  Write(cache, kKey, {4096, 4096}, 0x11, 1);
  CHECK(cache.bytes_copied() - copied_before == 4096);  // the range, not the track
  Write(cache, kKey, {13000, 200}, 0x22, 2);
  std::vector<DirtyTrack> taken = cache.TakeDirty(8);
  REQUIRE(taken.size() == 1);
  std::vector<TrackRange> ranges = taken[0].Ranges(kTrack);
  REQUIRE(ranges.size() == 2);
  CHECK(ranges[0].offset == 4096);
  CHECK(ranges[0].length == 4096);
  CHECK(ranges[1].offset == 12288);
  CHECK(ranges[1].length == 4096);

  SECTION("a write while the image is being destaged copies it and keeps every range dirty") {
    Published cow = Write(cache, kKey, {0, 100}, 0x33, 3);
    CHECK_FALSE(cow.in_place);  // the destage pins the image it writes out
    cache.MarkClean(taken[0].slot.slot(), taken[0].sequence);  // superseded: no effect
    taken.clear();
    CHECK(cache.DirtyCount() == 1);
    std::vector<DirtyTrack> again = cache.TakeDirty(8);
    REQUIRE(again.size() == 1);
    CHECK(again[0].sequence == 3);
    // Its own block 0, and blocks 1 and 3 the old image had not destaged yet.
    std::vector<TrackRange> all = again[0].Ranges(kTrack);
    REQUIRE(all.size() == 2);
    CHECK(all[0].offset == 0);
    CHECK(all[0].length == 8192);
    CHECK(all[1].offset == 12288);
    CHECK(all[1].length == 4096);
  }
  SECTION("once the pinned image is destaged, a flush up to it waits for no newer write") {
    REQUIRE_FALSE(Write(cache, kKey, {0, 100}, 0x33, 3).in_place);
    CHECK_FALSE(cache.WaitDestaged(2, absl::Now()).ok());  // writes 1 and 2 are still going out
    cache.MarkClean(taken[0].slot.slot(), taken[0].sequence);
    taken.clear();
    CHECK(cache.WaitDestaged(2, absl::Now()).ok());        // on disk with the old image
    CHECK_FALSE(cache.WaitDestaged(3, absl::Now()).ok());  // write 3 is not
    std::vector<DirtyTrack> again = cache.TakeDirty(8);
    REQUIRE(again.size() == 1);
    CHECK(again[0].sequence == 3);
  }
  SECTION("a write while the destaged image waits for its sync lands in place") {
    cache.DestageWritten(taken);
    const uint64_t copied = cache.bytes_copied();
    CHECK(Write(cache, kKey, {0, 100}, 0x33, 3).in_place);  // no copy of the image
    CHECK(cache.bytes_copied() - copied == 100);
    CHECK_FALSE(cache.WaitDestaged(2, absl::Now()).ok());  // not synced yet
    cache.MarkClean(taken[0].slot.slot(), taken[0].sequence);
    taken.clear();
    CHECK(cache.WaitDestaged(2, absl::Now()).ok());        // writes 1 and 2 are on disk
    CHECK_FALSE(cache.WaitDestaged(3, absl::Now()).ok());  // write 3 is not
    CHECK(cache.DirtyCount() == 1);
    std::vector<DirtyTrack> again = cache.TakeDirty(8);
    REQUIRE(again.size() == 1);
    CHECK(again[0].sequence == 3);
    std::vector<TrackRange> one = again[0].Ranges(kTrack);  // blocks 1 and 3 are clean now
    REQUIRE(one.size() == 1);
    CHECK(one[0].offset == 0);
    CHECK(one[0].length == 4096);
    cache.MarkClean(again[0].slot.slot(), again[0].sequence);
    CHECK(cache.DirtyCount() == 0);
  }
  SECTION("a failed destage of an image written in place since keeps every block dirty") {
    cache.DestageWritten(taken);
    REQUIRE(Write(cache, kKey, {0, 100}, 0x33, 3).in_place);
    cache.Redirty(taken[0].slot.slot());
    taken.clear();
    std::vector<DirtyTrack> again = cache.TakeDirty(8);
    REQUIRE(again.size() == 1);
    std::vector<TrackRange> all = again[0].Ranges(kTrack);
    REQUIRE(all.size() == 2);
    CHECK(all[0].offset == 0);
    CHECK(all[0].length == 8192);
    CHECK(all[1].offset == 12288);
  }
  SECTION("after the destage, a new write dirties its own block only") {
    cache.MarkClean(taken[0].slot.slot(), taken[0].sequence);
    taken.clear();
    CHECK(cache.DirtyCount() == 0);
    REQUIRE(Write(cache, kKey, {0, 100}, 0x33, 3).in_place);
    std::vector<DirtyTrack> again = cache.TakeDirty(8);
    REQUIRE(again.size() == 1);
    std::vector<TrackRange> one = again[0].Ranges(kTrack);
    REQUIRE(one.size() == 1);
    CHECK(one[0].offset == 0);
    CHECK(one[0].length == 4096);
  }
}

TEST_CASE("a whole image filled out from the current one is dirty only where it changed",
          "[cache][in-place]") {
  FakeBackingStore store;
  auto opened = OpenWithTrack(&store);
  CacheMemory& cache = *opened;
  // As an async mirror applies a cycle record: the record's 100 bytes, filled out to the
  // whole track from the current image, published as one image.
  StagedSlot staged = Stage(cache, kKey, {0, kTrack}, FakeBackingStore::FillFor(kKey));
  std::memset(staged.data().data() + 9000, 0x5E, 100);
  REQUIRE(
      cache.Publish(std::move(staged), 0, kTrack, 1, false, Keep::kNothing, TrackRange{9000, 100}));
  std::vector<DirtyTrack> taken = cache.TakeDirty(8);
  REQUIRE(taken.size() == 1);
  std::vector<TrackRange> ranges = taken[0].Ranges(kTrack);
  REQUIRE(ranges.size() == 1);
  CHECK(ranges[0].offset == 8192);
  CHECK(ranges[0].length == 4096);
}

TEST_CASE("readers never see part of a write that lands in place", "[cache][in-place]") {
  FakeBackingStore store;
  auto opened = OpenWithTrack(&store);
  CacheMemory& cache = *opened;
  auto pin = cache.PinTrack(kKey);
  REQUIRE(pin.ok());

  // Every write covers [1000, 15000) with one byte value; a reader that pinned the image
  // must see one value there, whatever the writer is doing.
  constexpr int kWrites = 3000, kReads = 3000, kMaxWrites = 2000000;
  std::atomic<bool> done{false};
  std::atomic<int> torn{0}, reads{0};
  std::vector<std::thread> readers;
  for (int r = 0; r < 2; ++r) {
    readers.emplace_back([&] {
      while (!done.load()) {
        uint64_t seq = 0;
        SlotRef ref = cache.PeekTrack(kKey, &seq);
        if (!ref.valid()) continue;
        std::span<const uint8_t> d = ref.data();
        if (!AllEqual(d, 1000, 15000, d[1000])) ++torn;
        ++reads;
      }
    });
  }
  uint64_t in_place = 0;
  for (int i = 1; i <= kMaxWrites && (i <= kWrites || reads.load() < kReads); ++i) {
    Published p = Write(cache, kKey, {1000, 14000}, static_cast<uint8_t>(i), i);
    in_place += p.in_place ? 1 : 0;
    // Keep the destage's share of the slots in check, as the disk adaptor would.
    for (DirtyTrack& d : cache.TakeDirty(8)) cache.MarkClean(d.slot.slot(), d.sequence);
  }
  done = true;
  for (auto& t : readers) t.join();
  CHECK(torn.load() == 0);
  CHECK(reads.load() >= kReads);
  CHECK(in_place > 0);
}

}  // namespace
}  // namespace simarray::cache
