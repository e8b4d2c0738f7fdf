// CycleSet through the commit point (async mode): capture, folding, copy on write at the
// switch, the end marker, acknowledgement, link loss and pull-ahead; and the owed-tracks
// rule a resync relies on.
#include "simarray/mirror/cycle_set.h"

#include <catch2/catch.hpp>
#include <cstring>

#include "mirror_test_util.h"
#include "simarray/mirror/commit_point.h"

namespace simarray::mirror {
namespace {

using testing::FakeBackingStore;
using testing::kTrack;

// A cache, owed tracks, cycles and a commit point wired as an async primary.
struct AsyncPrimary {
  explicit AsyncPrimary(uint64_t slot_limit = 64, absl::Duration cycle = absl::ZeroDuration())
      : owed(dir.path()) {
    absl::Status status;
    cache = testing::OpenCache(64, 0, &store, &status);
    REQUIRE(cache != nullptr);
    REQUIRE(owed.AddVolume(1, 16).ok());
    cycles = std::make_unique<CycleSet>(cache.get(), &owed, cycle, slot_limit);
    commit = std::make_unique<CommitPoint>(cache.get(), &queue, &owed, cycles.get());
  }

  // One host write of `length` bytes of `value` at `offset` in `track`: staged, penned,
  // committed. Returns its sequence.
  uint64_t Write(uint64_t track, uint32_t offset, uint32_t length, uint8_t value) {
    static uint64_t next_write = 1;
    const uint64_t write_id = next_write++;
    const cache::TrackKey key{1, track};
    Portion p;
    if (length < kTrack) {
      auto pin = cache->PinTrack(key);
      REQUIRE(pin.ok());
      p.pin = std::move(*pin);
    }
    auto staged = cache->AllocateStaging(key, write_id, absl::Now() + absl::Seconds(10));
    REQUIRE(staged.ok());
    std::memset(staged->data().data() + offset, value, length);
    REQUIRE(pen.Buffer(testing::Request(write_id, key, staged->slot(), offset, length)).ok());
    p.staged = std::move(*staged);
    p.offset = offset;
    p.length = length;
    std::vector<Portion> portions;
    portions.push_back(std::move(p));
    Reservation none;
    auto sequence = commit->Commit(write_id, portions, pen, none, nullptr);
    REQUIRE(sequence.ok());
    return *sequence;
  }

  FakeBackingStore store;
  testing::TempDir dir;
  std::unique_ptr<cache::CacheMemory> cache;
  OwedTracks owed;
  MirrorQueue queue{64};
  HoldingPen pen{PenPlacement::kLocal, 64};
  std::unique_ptr<CycleSet> cycles;
  std::unique_ptr<CommitPoint> commit;
};

TEST_CASE("async commits join the capture cycle, never the queue, and are folded per track",
          "[mirror][cycles]") {
  AsyncPrimary p;
  REQUIRE(p.commit->ResumeCycles());
  CHECK_FALSE(p.commit->waits_for_mirror());
  p.Write(2, 0, 512, 0x11);
  p.Write(2, 1024, 512, 0x22);
  const uint64_t last = p.Write(2, 256, 512, 0x33);
  p.Write(5, 0, kTrack, 0x44);
  CHECK(p.queue.Counters().depth == 0);
  CHECK(p.pen.Counters().depth == 0);
  CycleCounters c = p.cycles->Counters();
  CHECK(c.writes_captured == 4);
  CHECK(c.writes_folded == 2);
  CHECK(c.capture_tracks == 2);
  CHECK(c.capture_bytes == 1536 + kTrack);  // track 2: [0, 1536), track 5: whole
  CHECK(p.owed.owed() == 2);

  REQUIRE(p.commit->SwitchCycle());
  std::vector<MirrorRequest> records = p.cycles->TakeTransmit(16);
  REQUIRE(records.size() == 3);  // two tracks, then the marker
  const MirrorRequest* track2 = records[0].key.track == 2 ? &records[0] : &records[1];
  CHECK(track2->sequence == last);
  CHECK(track2->offset == 0);
  CHECK(track2->length == 1536);
  const auto data = track2->data.data();
  CHECK(data[0] == 0x11);
  CHECK(data[300] == 0x33);
  CHECK(data[1100] == 0x22);
  const MirrorRequest& marker = records[2];
  CHECK(marker.cycle_end);
  CHECK(marker.cycle == track2->cycle);
  CHECK(marker.cycle_records == 2);
  CHECK(marker.sequence == p.cache->LastSequence());
  CHECK(marker.cycle_consistent);
  CHECK(p.cycles->Counters().cycle_records_shipped == 2);
}

TEST_CASE("a write after the switch takes a new slot: the transmit cycle keeps its data",
          "[mirror][cycles]") {
  AsyncPrimary p;
  REQUIRE(p.commit->ResumeCycles());
  p.Write(1, 0, kTrack, 0xAA);
  REQUIRE(p.commit->SwitchCycle());
  CHECK_FALSE(p.commit->SwitchCycle());  // one transmit cycle at a time
  p.Write(1, 0, kTrack, 0xBB);           // into the new capture cycle
  std::vector<MirrorRequest> records = p.cycles->TakeTransmit(16);
  REQUIRE(records.size() == 2);
  CHECK(records[0].data.data()[100] == 0xAA);
  uint64_t sequence = 0;
  cache::SlotRef now = p.cache->PeekTrack(cache::TrackKey{1, 1}, &sequence);
  REQUIRE(now.valid());
  CHECK(now.data()[100] == 0xBB);
  CHECK(now.slot() != records[0].slot);
}

TEST_CASE("the mirror's ack of the marker acknowledges the cycle's tracks", "[mirror][cycles]") {
  AsyncPrimary p;
  REQUIRE(p.commit->ResumeCycles());
  p.Write(3, 0, kTrack, 1);
  p.Write(4, 0, kTrack, 2);
  REQUIRE(p.commit->SwitchCycle());
  p.Write(4, 0, kTrack, 3);  // newer than the transmit cycle: stays owed
  std::vector<MirrorRequest> records = p.cycles->TakeTransmit(16);
  REQUIRE(records.back().cycle_end);
  CHECK(p.cycles->TransmitOutstanding());
  CHECK_FALSE(p.cycles->TransmitPending());
  p.cycles->Applied(records.back().cycle);
  CHECK_FALSE(p.cycles->TransmitOutstanding());
  CHECK(p.owed.owed() == 1);  // track 4, written again after the switch
  CycleCounters c = p.cycles->Counters();
  CHECK(c.applied_cycle == records.back().cycle);
  CHECK(c.applied_sequence == records.back().sequence);
  CHECK(c.consistent);
  CHECK(c.cycles_applied == 1);
}

TEST_CASE("link loss turns both cycles into owed tracks, and commits then only mark resync",
          "[mirror][cycles]") {
  AsyncPrimary p;
  REQUIRE(p.commit->ResumeCycles());
  p.Write(1, 0, kTrack, 1);
  REQUIRE(p.commit->SwitchCycle());
  (void)p.cycles->TakeTransmit(1);  // one record in flight
  p.Write(2, 0, kTrack, 2);
  p.cycles->LinkLost();
  CHECK_FALSE(p.cycles->cycling());
  CHECK_FALSE(p.cycles->TransmitOutstanding());
  CHECK(p.owed.resync_pending() == 2);
  p.Write(3, 0, kTrack, 3);
  CHECK(p.owed.resync_pending() == 3);
  CHECK(p.cycles->Counters().capture_tracks == 0);
  // Cycles resume only once little is left to resync (half of the slot limit).
  AsyncPrimary tight(/*slot_limit=*/4);
  for (uint64_t t = 0; t < 3; ++t) tight.Write(t, 0, kTrack, 9);  // not cycling yet: owed
  CHECK(tight.owed.resync_pending() == 3);
  CHECK_FALSE(tight.commit->ResumeCycles());
  for (const cache::TrackKey& key : tight.owed.TakeResync(8)) {
    tight.owed.Acked(key, tight.cache->LastSequence(), /*resync=*/true);
  }
  CHECK(tight.commit->ResumeCycles());
}

TEST_CASE("cycles pinning more than the slot limit pull ahead to owed tracks", "[mirror][cycles]") {
  AsyncPrimary p(/*slot_limit=*/3);
  REQUIRE(p.commit->ResumeCycles());
  for (uint64_t t = 0; t < 3; ++t) p.Write(t, 0, kTrack, 7);
  CHECK(p.cycles->cycling());
  p.Write(3, 0, kTrack, 7);
  CHECK_FALSE(p.cycles->cycling());
  CycleCounters c = p.cycles->Counters();
  CHECK(c.pull_aheads == 1);
  CHECK(c.pinned_slots == 0);
  CHECK(p.owed.resync_pending() == 4);
}

TEST_CASE(
    "a pull-ahead or a repair while a consistent cycle is in transit keeps the pair from "
    "Consistent",
    "[mirror][cycles]") {
  for (bool repair : {false, true}) {
    AsyncPrimary p(/*slot_limit=*/2);
    REQUIRE(p.commit->ResumeCycles());
    p.Write(1, 0, kTrack, 1);
    REQUIRE(p.commit->SwitchCycle());
    std::vector<MirrorRequest> records = p.cycles->TakeTransmit(16);
    REQUIRE(records.back().cycle_consistent);
    CHECK(p.cycles->ConsistentTransmitOutstanding());  // no resync record may go out now
    if (repair) {
      p.cycles->Taint();
    } else {
      for (uint64_t t = 2; t < 5; ++t) p.Write(t, 0, kTrack, 2);  // pulls ahead
      REQUIRE(p.cycles->Counters().pull_aheads == 1);
      p.owed.UntakeAll();
      for (const cache::TrackKey& key : p.owed.TakeResync(8)) {
        p.owed.Acked(key, p.cache->LastSequence(), /*resync=*/true);
      }
      REQUIRE(p.commit->ResumeCycles());
    }
    p.cycles->Applied(records.back().cycle);
    CHECK_FALSE(p.cycles->Counters().consistent);
  }
}

TEST_CASE("a cycle closed while tracks are left to resync is not consistent", "[mirror][cycles]") {
  AsyncPrimary p;
  p.owed.NeedResync(cache::TrackKey{1, 9});
  REQUIRE(p.commit->ResumeCycles());  // 1 left to resync: within half the limit
  p.Write(1, 0, kTrack, 1);
  REQUIRE(p.commit->SwitchCycle());
  std::vector<MirrorRequest> records = p.cycles->TakeTransmit(16);
  CHECK_FALSE(records.back().cycle_consistent);
  p.cycles->Applied(records.back().cycle);
  CHECK_FALSE(p.cycles->Counters().consistent);
}

TEST_CASE("a resync ack ends a track's resync unless it was marked again while in flight",
          "[mirror][owed]") {
  testing::TempDir dir;
  OwedTracks owed(dir.path());
  REQUIRE(owed.AddVolume(1, 8).ok());
  const cache::TrackKey key{1, 2};
  owed.MarkWritten(key, 10);
  owed.NeedResync(key);
  REQUIRE(owed.TakeResync(4).size() == 1);
  owed.NeedResync(key);  // written again, while owed: the image in flight may miss it
  owed.Acked(key, 11, /*resync=*/true);
  CHECK(owed.resync_pending() == 1);
  REQUIRE(owed.TakeResync(4).size() == 1);
  // A write that ships by itself (queue or cycle) keeps only the bit.
  owed.MarkWritten(key, 20);
  owed.Acked(key, 12, /*resync=*/true);
  CHECK(owed.resync_pending() == 0);
  CHECK(owed.owed() == 1);
  owed.Acked(key, 20, /*resync=*/false);
  CHECK(owed.owed() == 0);
}

}  // namespace
}  // namespace simarray::mirror
