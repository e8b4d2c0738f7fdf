#include "simarray/cache/cache_memory.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <thread>

#include "cache_test_util.h"

namespace simarray::cache {
namespace {

using testing::AllEqual;
using testing::Bytes;
using testing::FakeBackingStore;
using testing::RegionSizeFor;

constexpr uint32_t kTrack = 4096;
// Long enough never to be reached by a test that expects success; only guards a hang.
constexpr absl::Duration kHangGuard = absl::Seconds(60);

// An anonymous (non-persistent) cache of `slots` slots reading misses from `store`.
std::unique_ptr<CacheMemory> OpenCache(uint64_t slots, FakeBackingStore* store) {
  CacheOptions o;
  o.size = RegionSizeFor(slots, kTrack);
  o.track_size = kTrack;
  o.persistent = false;
  RecoveryReport report;
  auto cache = CacheMemory::Open(o, &report);
  INFO(cache.status().ToString());
  REQUIRE(cache.ok());
  REQUIRE((*cache)->slot_count() == slots);
  CHECK(report.fresh);
  (*cache)->SetBackingStore(store);
  return std::move(*cache);
}

StagedSlot Stage(CacheMemory& cache, TrackKey key, uint32_t offset, uint32_t length, uint8_t value,
                 uint64_t write_id = 1) {
  auto staged = cache.AllocateStaging(key, write_id, absl::Now() + kHangGuard);
  INFO(staged.status().ToString());
  REQUIRE(staged.ok());
  std::memset(staged->data().data() + offset, value, length);
  return std::move(*staged);
}

// Stages and publishes [offset, offset + length) of `key` filled with `value`.
void Write(CacheMemory& cache, TrackKey key, uint32_t offset, uint32_t length, uint8_t value,
           uint64_t sequence) {
  REQUIRE(cache.Publish(Stage(cache, key, offset, length, value), offset, length, sequence,
                        /*mirror_owed=*/false));
}

std::vector<uint8_t> Current(CacheMemory& cache, TrackKey key, uint64_t* sequence = nullptr) {
  uint64_t seq = 0;
  SlotRef ref = cache.PeekTrack(key, &seq);
  REQUIRE(ref.valid());
  if (sequence != nullptr) *sequence = seq;
  return Bytes(ref.data());
}

TEST_CASE("staged bytes are invisible to readers until Publish", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  const TrackKey cached{1, 3}, uncached{1, 4};
  const uint8_t disk = FakeBackingStore::FillFor(cached);
  {
    auto ref = cache->ReadTrack(cached);  // brings the track into cache as clean
    REQUIRE(ref.ok());
  }

  StagedSlot a = Stage(*cache, cached, 0, kTrack, 0xAA);
  StagedSlot b = Stage(*cache, uncached, 100, 200, 0xBB);
  CHECK(cache->Counts().staging == 2);

  uint64_t seq = 99;
  CHECK(AllEqual(Current(*cache, cached, &seq), 0, kTrack, disk));
  CHECK(seq == 0);
  CHECK_FALSE(cache->PeekTrack(uncached, &seq).valid());
  {
    auto read = cache->ReadTrack(cached);
    REQUIRE(read.ok());
    CHECK(AllEqual(read->data(), 0, kTrack, disk));
  }

  REQUIRE(cache->Publish(std::move(a), 0, kTrack, 1, false));
  REQUIRE(cache->Publish(std::move(b), 100, 200, 2, false));
  CHECK(AllEqual(Current(*cache, cached, &seq), 0, kTrack, 0xAA));
  CHECK(seq == 1);
  std::vector<uint8_t> now = Current(*cache, uncached, &seq);
  CHECK(seq == 2);
  CHECK(AllEqual(now, 100, 300, 0xBB));
  CHECK(cache->Counts().staging == 0);
}

TEST_CASE("a dropped staged slot changes nothing and goes back to the pool", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(4, &store);
  const TrackKey key{1, 0};
  Write(*cache, key, 0, kTrack, 0x11, 1);
  {
    StagedSlot s = Stage(*cache, key, 0, kTrack, 0x22);
    CHECK(cache->Counts().staging == 1);
  }
  SlotCounts c = cache->Counts();
  CHECK(c.staging == 0);
  CHECK(c.free == 3);
  uint64_t seq = 0;
  CHECK(AllEqual(Current(*cache, key, &seq), 0, kTrack, 0x11));
  CHECK(seq == 1);
}

TEST_CASE("Publish of a partial portion fills the rest from the previous image",
          "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  const TrackKey key{2, 5};
  Write(*cache, key, 0, kTrack, 0xA1, 1);
  Write(*cache, key, 100, 200, 0xB2, 2);
  uint64_t seq = 0;
  std::vector<uint8_t> now = Current(*cache, key, &seq);
  CHECK(seq == 2);
  CHECK(AllEqual(now, 0, 100, 0xA1));
  CHECK(AllEqual(now, 100, 300, 0xB2));
  CHECK(AllEqual(now, 300, kTrack, 0xA1));
  CHECK(store.reads() == 0);  // the previous image was in memory
}

TEST_CASE("Publish of a partial portion to an uncached track fills from the backing store",
          "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  const TrackKey key{2, 6};
  std::vector<uint8_t> disk(kTrack);
  for (uint32_t i = 0; i < kTrack; ++i) disk[i] = static_cast<uint8_t>(i * 13);
  store.Set(key, disk);

  SECTION("without a pin: Publish reads the track itself") {
    Write(*cache, key, 1000, 96, 0xEE, 1);
    CHECK(store.reads() == 1);
  }
  SECTION("with a pin taken first (the commit path): filled from memory") {
    auto pin = cache->PinTrack(key);
    REQUIRE(pin.ok());
    CHECK(store.reads() == 1);
    Write(*cache, key, 1000, 96, 0xEE, 1);
    CHECK(store.reads() == 1);
  }
  std::vector<uint8_t> expect = disk;
  std::fill(expect.begin() + 1000, expect.begin() + 1096, 0xEE);
  uint64_t seq = 0;
  CHECK(Current(*cache, key, &seq) == expect);
  CHECK(seq == 1);
}

TEST_CASE("two partial writes to different ranges of one track both survive", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  const TrackKey key{3, 1};
  const uint8_t disk = FakeBackingStore::FillFor(key);
  // Both staged before either commits, as two host writes in flight at once.
  StagedSlot first = Stage(*cache, key, 0, 512, 0x01, /*write_id=*/1);
  StagedSlot second = Stage(*cache, key, 2048, 1024, 0x02, /*write_id=*/2);
  REQUIRE(cache->Publish(std::move(first), 0, 512, 1, true));
  REQUIRE(cache->Publish(std::move(second), 2048, 1024, 2, true));
  uint64_t seq = 0;
  std::vector<uint8_t> now = Current(*cache, key, &seq);
  CHECK(seq == 2);
  CHECK(AllEqual(now, 0, 512, 0x01));
  CHECK(AllEqual(now, 512, 2048, disk));
  CHECK(AllEqual(now, 2048, 3072, 0x02));
  CHECK(AllEqual(now, 3072, kTrack, disk));
  // The older image was superseded and freed: one image per track.
  CHECK(cache->Counts().write_pending == 1);
  CHECK(cache->DirtyCount() == 1);
}

TEST_CASE("a pinned image is never written in place: the pin keeps its bytes", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  const TrackKey key{3, 2};
  Published first =
      cache->Publish(Stage(*cache, key, 0, kTrack, 0x10), 0, kTrack, 1, true, Keep::kImage);
  REQUIRE(first);
  SlotRef old_ref = std::move(first.kept);
  REQUIRE(old_ref.valid());
  Write(*cache, key, 0, 100, 0x20, 2);
  CHECK(AllEqual(old_ref.data(), 0, kTrack, 0x10));
  std::vector<uint8_t> now = Current(*cache, key);
  CHECK(AllEqual(now, 0, 100, 0x20));
  CHECK(AllEqual(now, 100, kTrack, 0x10));
  // The superseded slot is freed once its last pin goes.
  const uint64_t free_before = cache->Counts().free;
  old_ref.Reset();
  CHECK(cache->Counts().free == free_before + 1);
}

TEST_CASE("Publish with a lower sequence than the track holds is refused", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(4, &store);
  const TrackKey key{4, 0};
  Write(*cache, key, 0, kTrack, 0x55, 5);
  CHECK_FALSE(cache->Publish(Stage(*cache, key, 0, kTrack, 0x44), 0, kTrack, 4, false));
  CHECK_FALSE(cache->Publish(Stage(*cache, key, 10, 10, 0x44), 10, 10, 1, false));
  uint64_t seq = 0;
  CHECK(AllEqual(Current(*cache, key, &seq), 0, kTrack, 0x55));
  CHECK(seq == 5);
  SlotCounts c = cache->Counts();
  CHECK(c.staging == 0);  // the refused staged slots were dropped
  CHECK(c.write_pending == 1);
  CHECK(c.free == 3);
  CHECK(cache->DirtyCount() == 1);
}

TEST_CASE("clean slots are evicted when the cache is full", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(4, &store);
  for (uint64_t t = 0; t < 4; ++t) REQUIRE(cache->ReadTrack({1, t}).ok());
  SlotCounts c = cache->Counts();
  CHECK(c.clean == 4);
  CHECK(c.free == 0);

  SECTION("an unpinned clean image makes room at once") {
    // Keep three of the four images pinned: only the fourth may go.
    uint64_t seq = 0;
    SlotRef r0 = cache->PeekTrack({1, 0}, &seq);
    SlotRef r1 = cache->PeekTrack({1, 1}, &seq);
    SlotRef r3 = cache->PeekTrack({1, 3}, &seq);
    auto staged = cache->AllocateStaging({1, 9}, 1, absl::Now());
    INFO(staged.status().ToString());
    REQUIRE(staged.ok());
    CHECK(cache->PeekTrack({1, 0}, &seq).valid());
    CHECK(cache->PeekTrack({1, 1}, &seq).valid());
    CHECK_FALSE(cache->PeekTrack({1, 2}, &seq).valid());
    CHECK(cache->PeekTrack({1, 3}, &seq).valid());
    c = cache->Counts();
    CHECK(c.clean == 3);
    CHECK(c.staging == 1);
  }
  SECTION("pinned clean images are not evicted") {
    std::vector<SlotRef> refs;
    uint64_t seq = 0;
    for (uint64_t t = 0; t < 4; ++t) refs.push_back(cache->PeekTrack({1, t}, &seq));
    auto staged = cache->AllocateStaging({1, 9}, 1, absl::Now());
    CHECK(staged.status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(cache->Counts().clean == 4);
  }
  SECTION("a track pinned with PinTrack is not evicted") {
    auto pin = cache->PinTrack({1, 2});
    REQUIRE(pin.ok());
    std::vector<StagedSlot> staged;
    for (int i = 0; i < 3; ++i) {
      auto s = cache->AllocateStaging({2, static_cast<uint64_t>(i)}, 1, absl::Now());
      REQUIRE(s.ok());
      staged.push_back(std::move(*s));
    }
    uint64_t seq = 0;
    CHECK(cache->PeekTrack({1, 2}, &seq).valid());
    CHECK(cache->AllocateStaging({2, 3}, 1, absl::Now()).status().code() ==
          absl::StatusCode::kDeadlineExceeded);
  }
}

TEST_CASE("AllocateStaging returns DEADLINE_EXCEEDED when every slot is write-pending",
          "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(3, &store);
  for (uint64_t t = 0; t < 3; ++t) Write(*cache, {1, t}, 0, kTrack, 0x30, t + 1);
  const absl::Time deadline = absl::Now() + absl::Milliseconds(50);
  auto staged = cache->AllocateStaging({1, 7}, 9, deadline);
  CHECK(staged.status().code() == absl::StatusCode::kDeadlineExceeded);
  CHECK_THAT(std::string(staged.status().message()), Catch::Contains("cache full"));
  // It waited for its deadline rather than giving up early.
  CHECK(absl::Now() >= deadline);
  CHECK(cache->Counts().write_pending == 3);
}

TEST_CASE("AllocateStaging waits for a slot and gets one when another thread cleans one",
          "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(3, &store);
  for (uint64_t t = 0; t < 3; ++t) Write(*cache, {1, t}, 0, kTrack, 0x30, t + 1);
  std::vector<DirtyTrack> dirty = cache->TakeDirty(3);
  REQUIRE(dirty.size() == 3);

  absl::Status result = absl::UnknownError("not run");
  uint32_t got_slot = 0;
  std::thread waiter([&] {
    auto staged = cache->AllocateStaging({1, 8}, 5, absl::Now() + kHangGuard);
    result = staged.status();
    if (staged.ok()) got_slot = staged->slot();
  });
  // Give the waiter a chance to block first; the outcome does not depend on it.
  absl::SleepFor(absl::Milliseconds(20));
  // The destager: the image is on disk, so it is clean; dropping the pin makes it evictable.
  const uint32_t cleaned = dirty[1].slot.slot();
  cache->MarkClean(cleaned, dirty[1].sequence);
  dirty[1].slot.Reset();
  waiter.join();

  INFO(result.ToString());
  CHECK(result.ok());
  CHECK(got_slot == cleaned);
  uint64_t seq = 0;
  CHECK_FALSE(cache->PeekTrack(dirty[1].key, &seq).valid());  // its clean image was evicted
  CHECK(cache->PeekTrack(dirty[0].key, &seq).valid());
  CHECK(cache->PeekTrack(dirty[2].key, &seq).valid());
}

TEST_CASE(
    "TakeDirty hands out write-pending images oldest first, MarkClean and WaitClean track them",
    "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  Write(*cache, {1, 0}, 0, kTrack, 0x01, 1);
  Write(*cache, {1, 1}, 0, kTrack, 0x02, 2);
  Write(*cache, {1, 2}, 0, kTrack, 0x03, 3);
  // Written into track 0's write-pending image: it keeps its place in line (its oldest write
  // is still not destaged) and now holds the newer sequence.
  Write(*cache, {1, 0}, 0, 10, 0x04, 4);
  CHECK(cache->DirtyCount() == 3);
  CHECK_FALSE(cache->WaitClean(absl::Now()));

  std::vector<DirtyTrack> taken = cache->TakeDirty(2);
  REQUIRE(taken.size() == 2);
  CHECK(taken[0].key == TrackKey{1, 0});
  CHECK(taken[0].sequence == 4);
  CHECK(AllEqual(taken[0].slot.data(), 0, 10, 0x04));
  CHECK(AllEqual(taken[0].slot.data(), 10, kTrack, 0x01));
  CHECK(taken[0].Ranges(kTrack).size() == 1);  // every block: the whole-track write
  CHECK(taken[1].key == TrackKey{1, 1});
  CHECK(taken[1].sequence == 2);
  CHECK(AllEqual(taken[1].slot.data(), 0, kTrack, 0x02));
  std::vector<DirtyTrack> rest = cache->TakeDirty(10);
  REQUIRE(rest.size() == 1);
  CHECK(rest[0].key == TrackKey{1, 2});
  CHECK(rest[0].sequence == 3);
  CHECK(cache->TakeDirty(10).empty());
  std::vector<DirtyTrack> first = std::move(taken);

  // A MarkClean for a sequence the slot does not hold is ignored.
  cache->MarkClean(first[0].slot.slot(), first[0].sequence + 100);
  CHECK(cache->DirtyCount() == 3);

  // A failed destage puts the image back in line.
  cache->Redirty(rest[0].slot.slot());
  std::vector<DirtyTrack> again = cache->TakeDirty(10);
  REQUIRE(again.size() == 1);
  CHECK(again[0].slot.slot() == rest[0].slot.slot());

  // Write-pending data may not be dropped.
  CHECK(cache->DropTrack({1, 1}).code() == absl::StatusCode::kFailedPrecondition);

  for (DirtyTrack& d : first) cache->MarkClean(d.slot.slot(), d.sequence);
  CHECK(cache->DirtyCount() == 1);

  bool clean = false;
  std::thread waiter([&] { clean = cache->WaitClean(absl::Now() + kHangGuard); });
  cache->MarkClean(rest[0].slot.slot(), rest[0].sequence);
  waiter.join();
  CHECK(clean);
  CHECK(cache->DirtyCount() == 0);
  CHECK(cache->WaitClean(absl::Now()));
  SlotCounts c = cache->Counts();
  CHECK(c.write_pending == 0);
  CHECK(c.clean == 3);

  // Clean now: it may be dropped, and the next read stages it from the backing store.
  first.clear();
  CHECK(cache->DropTrack({1, 1}).ok());
  uint64_t seq = 0;
  CHECK_FALSE(cache->PeekTrack({1, 1}, &seq).valid());
  auto read = cache->ReadTrack({1, 1});
  REQUIRE(read.ok());
  CHECK(AllEqual(read->data(), 0, kTrack, FakeBackingStore::FillFor({1, 1})));
}

TEST_CASE("DropVolume forgets every image of the volume only", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(8, &store);
  Write(*cache, {1, 0}, 0, kTrack, 0x01, 1);
  Write(*cache, {2, 0}, 0, kTrack, 0x02, 2);
  REQUIRE(cache->ReadTrack({1, 1}).ok());
  cache->DropVolume(1);
  uint64_t seq = 0;
  CHECK_FALSE(cache->PeekTrack({1, 0}, &seq).valid());
  CHECK_FALSE(cache->PeekTrack({1, 1}, &seq).valid());
  CHECK(cache->PeekTrack({2, 0}, &seq).valid());
  CHECK(cache->DirtyCount() == 1);
  SlotCounts c = cache->Counts();
  CHECK(c.free == 7);
  CHECK(c.write_pending == 1);
}

TEST_CASE("NextSequence is strictly increasing and ObserveSequence raises it", "[cache][memory]") {
  FakeBackingStore store;
  auto cache = OpenCache(2, &store);
  CHECK(cache->LastSequence() == 0);
  uint64_t prev = 0;
  for (int i = 0; i < 1000; ++i) {
    uint64_t s = cache->NextSequence();
    REQUIRE(s > prev);
    prev = s;
  }
  CHECK(cache->LastSequence() == prev);
  cache->ObserveSequence(prev + 500);
  CHECK(cache->NextSequence() == prev + 501);
  cache->ObserveSequence(3);  // lower: no effect
  CHECK(cache->NextSequence() == prev + 502);
}

}  // namespace
}  // namespace simarray::cache
