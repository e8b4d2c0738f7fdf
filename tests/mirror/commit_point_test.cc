#include "simarray/mirror/commit_point.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <cstring>
#include <map>
#include <thread>

#include "mirror_test_util.h"

namespace simarray::mirror {
namespace {

using testing::FakeBackingStore;
using testing::kTrack;
using testing::Request;

constexpr absl::Duration kHangGuard = absl::Seconds(60);

struct PortionSpec {
  cache::TrackKey key;
  uint32_t offset = 0;
  uint32_t length = kTrack;
  uint8_t value = 0;
};

// Steps 2 and 3 of the write path for one write: stage every portion (pinning the track of a
// partial one) and buffer its mirror request in `pen`.
absl::Status StageWrite(cache::CacheMemory& cache, HoldingPen& pen, uint64_t write_id,
                        const std::vector<PortionSpec>& specs, std::vector<Portion>* portions) {
  for (const PortionSpec& spec : specs) {
    Portion p;
    if (spec.length < kTrack) {
      auto pin = cache.PinTrack(spec.key);
      if (!pin.ok()) return pin.status();
      p.pin = std::move(*pin);
    }
    auto staged = cache.AllocateStaging(spec.key, write_id, absl::Now() + kHangGuard);
    if (!staged.ok()) return staged.status();
    std::memset(staged->data().data() + spec.offset, spec.value, spec.length);
    absl::Status buffered =
        pen.Buffer(Request(write_id, spec.key, staged->slot(), spec.offset, spec.length));
    if (!buffered.ok()) return buffered;
    p.staged = std::move(*staged);
    p.offset = spec.offset;
    p.length = spec.length;
    portions->push_back(std::move(p));
  }
  return absl::OkStatus();
}

std::unique_ptr<cache::CacheMemory> MustOpenCache(uint64_t slots, cache::BackingStore* store) {
  absl::Status status;
  auto cache = testing::OpenCache(slots, 0, store, &status);
  INFO(status.ToString());
  REQUIRE(cache != nullptr);
  return cache;
}

bool AllEqual(std::span<const uint8_t> data, size_t begin, size_t end, uint8_t value) {
  for (size_t i = begin; i < end; ++i) {
    if (data[i] != value) return false;
  }
  return true;
}

cache::SlotEntry EntryOf(cache::CacheMemory& cache, uint32_t slot) {
  cache::SlotEntry e{};
  REQUIRE(cache.region().ReadEntry(slot, &e));
  return e;
}

TEST_CASE("Commit moves all of a write's requests to the queue in one step, published",
          "[mirror][commit]") {
  FakeBackingStore store;
  auto cache = MustOpenCache(16, &store);
  MirrorQueue queue(16);
  HoldingPen pen(PenPlacement::kLocal, 16);
  CommitPoint commit(cache.get(), &queue);
  CHECK(commit.waits_for_mirror());

  auto reservation = queue.Reserve(3, absl::Now() + kHangGuard);
  REQUIRE(reservation.ok());
  std::vector<Portion> portions;
  REQUIRE(
      StageWrite(*cache, pen, 1,
                 {{{1, 0}, 0, kTrack, 0x11}, {{1, 1}, 100, 200, 0x12}, {{1, 2}, 0, kTrack, 0x13}},
                 &portions)
          .ok());
  // Another write of this host adaptor, not validated yet.
  REQUIRE(pen.Buffer(Request(2, {1, 9})).ok());
  std::vector<uint32_t> slots;
  for (Portion& p : portions) slots.push_back(p.staged.slot());

  // Before the commit: nothing visible, nothing queued.
  uint64_t seq = 0;
  CHECK_FALSE(cache->PeekTrack({1, 0}, &seq).valid());
  CHECK(queue.Counters().depth == 0);
  CHECK(pen.Counters().depth == 4);

  int fired = 0;
  auto ticket = std::make_shared<WriteTicket>(3, [&](absl::Status) { ++fired; });
  const uint64_t sequence = commit.Commit(1, portions, pen, *reservation, ticket).value();
  CHECK(sequence > 0);
  CHECK(cache->LastSequence() == sequence);

  // The pen gave up exactly this write's requests.
  PenCounters pc = pen.Counters();
  CHECK(pc.depth == 1);
  CHECK(pc.requests_sent == 3);
  CHECK(pc.requests_deleted == 0);
  // The queue took them all, consuming the reservation.
  QueueCounters qc = queue.Counters();
  CHECK(qc.depth == 3);
  CHECK(qc.pushed == 3);
  CHECK(qc.reserved == 0);

  // The cache shows the write, each track's image write-pending and mirror-owed: whole-track
  // portions became the image, the partial one was copied into the image staged from disk.
  const uint8_t disk = FakeBackingStore::FillFor({1, 1});
  std::vector<uint32_t> images;
  for (size_t i = 0; i < 3; ++i) {
    INFO("portion " << i);
    cache::SlotRef ref = cache->PeekTrack({1, i}, &seq);
    REQUIRE(ref.valid());
    CHECK(seq == sequence);
    CHECK((ref.slot() == slots[i]) == (i != 1));
    images.push_back(ref.slot());
    cache::SlotEntry e = EntryOf(*cache, ref.slot());
    CHECK(e.state == static_cast<uint8_t>(cache::SlotState::kWritePending));
    CHECK(e.flags == cache::kSlotMirrorOwed);
    CHECK(e.sequence == sequence);
  }
  CHECK(cache->DirtyCount() == 3);
  {
    cache::SlotRef image = cache->PeekTrack({1, 1}, &seq);
    CHECK(AllEqual(image.data(), 0, 100, disk));
    CHECK(AllEqual(image.data(), 100, 300, 0x12));
    CHECK(AllEqual(image.data(), 300, kTrack, disk));
  }

  std::vector<MirrorRequest> queued = queue.PopBatch(10, absl::ZeroDuration());
  REQUIRE(queued.size() == 3);
  for (size_t i = 0; i < 3; ++i) {
    INFO("request " << i);
    const MirrorRequest& r = queued[i];
    CHECK(r.key == cache::TrackKey{1, i});
    CHECK(r.write_id == 1);
    CHECK(r.sequence == sequence);
    CHECK(r.slot == images[i]);  // whose mirror-owed flag the ack clears
    CHECK(r.ticket == ticket);
    REQUIRE(r.data.valid());
    CHECK(r.data.slot() == slots[i]);  // the write's own bytes, copied nowhere else
  }
  CHECK(AllEqual(queued[0].data.data(), 0, kTrack, 0x11));
  CHECK(AllEqual(queued[1].data.data(), 100, 300, 0x12));
  CHECK(AllEqual(queued[2].data.data(), 0, kTrack, 0x13));
  // The partial portion's slot is held for shipping only, not as an image.
  CHECK(cache->Counts().shipping == 1);
  CHECK(queued[1].offset == 100);
  CHECK(queued[1].length == 200);
  CHECK(fired == 0);  // only the mirror's acks complete the ticket

  // The uncommitted write is still in the pen, and only it.
  CHECK(pen.Delete(2) == 1);
}

TEST_CASE("CommitUnpenned (the benchmark's pen bypass) publishes and queues like Commit",
          "[mirror][commit]") {
  FakeBackingStore store;
  auto cache = MustOpenCache(16, &store);
  MirrorQueue queue(16);
  CommitPoint commit(cache.get(), &queue);

  auto reservation = queue.Reserve(2, absl::Now() + kHangGuard);
  REQUIRE(reservation.ok());
  std::vector<Portion> portions;
  HoldingPen scratch(PenPlacement::kLocal, 8);  // only to reuse StageWrite
  REQUIRE(
      StageWrite(*cache, scratch, 5, {{{1, 0}, 0, kTrack, 0x51}, {{1, 1}, 8, 64, 0x52}}, &portions)
          .ok());
  std::vector<MirrorRequest> requests = scratch.Release(5);
  REQUIRE(requests.size() == 2);

  const uint64_t sequence =
      commit.CommitUnpenned(portions, std::move(requests), *reservation, nullptr).value();
  CHECK(sequence == cache->LastSequence());
  CHECK(queue.Counters().reserved == 0);
  std::vector<MirrorRequest> queued = queue.PopBatch(10, absl::ZeroDuration());
  REQUIRE(queued.size() == 2);
  for (const MirrorRequest& r : queued) {
    CHECK(r.write_id == 5);
    CHECK(r.sequence == sequence);
    REQUIRE(r.data.valid());
  }
  CHECK(AllEqual(queued[0].data.data(), 0, kTrack, 0x51));
  CHECK(AllEqual(queued[1].data.data(), 8, 72, 0x52));
  uint64_t seq = 0;
  CHECK(cache->PeekTrack({1, 1}, &seq).valid());
  CHECK(seq == sequence);
}

TEST_CASE("two writes commit in sequence order and reach the queue write by write",
          "[mirror][commit]") {
  FakeBackingStore store;
  auto cache = MustOpenCache(16, &store);
  MirrorQueue queue(16);
  HoldingPen pen_a(PenPlacement::kLocal, 8), pen_b(PenPlacement::kLocal, 8);
  CommitPoint commit(cache.get(), &queue);

  // Both writes staged before either commits; B overlaps A on track 1.
  auto res_a = queue.Reserve(2, absl::Now() + kHangGuard);
  auto res_b = queue.Reserve(2, absl::Now() + kHangGuard);
  REQUIRE(res_a.ok());
  REQUIRE(res_b.ok());
  std::vector<Portion> a, b;
  REQUIRE(StageWrite(*cache, pen_a, 10, {{{1, 0}, 0, kTrack, 0xA0}, {{1, 1}, 0, kTrack, 0xA1}}, &a)
              .ok());
  REQUIRE(
      StageWrite(*cache, pen_b, 20, {{{1, 1}, 0, 16, 0xB1}, {{1, 2}, 0, kTrack, 0xB2}}, &b).ok());

  const uint64_t seq_a = commit.Commit(10, a, pen_a, *res_a, nullptr).value();
  const uint64_t seq_b = commit.Commit(20, b, pen_b, *res_b, nullptr).value();
  CHECK(seq_b > seq_a);

  std::vector<MirrorRequest> queued = queue.PopBatch(10, absl::ZeroDuration());
  REQUIRE(queued.size() == 4);
  CHECK(queued[0].write_id == 10);
  CHECK(queued[1].write_id == 10);
  CHECK(queued[2].write_id == 20);
  CHECK(queued[3].write_id == 20);
  CHECK(queued[0].sequence == seq_a);
  CHECK(queued[1].sequence == seq_a);
  CHECK(queued[2].sequence == seq_b);
  CHECK(queued[3].sequence == seq_b);

  // Track 1 ends as B over A; A's request still ships A's image of it, unchanged.
  uint64_t seq = 0;
  cache::SlotRef now = cache->PeekTrack({1, 1}, &seq);
  REQUIRE(now.valid());
  CHECK(seq == seq_b);
  CHECK(AllEqual(now.data(), 0, 16, 0xB1));
  CHECK(AllEqual(now.data(), 16, kTrack, 0xA1));
  CHECK(AllEqual(queued[1].data.data(), 0, kTrack, 0xA1));
  CHECK(AllEqual(queued[2].data.data(), 0, 16, 0xB1));
  CHECK(AllEqual(queued[2].data.data(), 16, kTrack, 0xA1));
}

TEST_CASE("a closed gate commits nothing and takes nothing, and reopened, the write commits",
          "[mirror][commit]") {
  FakeBackingStore store;
  auto cache = MustOpenCache(8, &store);
  MirrorQueue queue(4);
  HoldingPen pen(PenPlacement::kLocal, 8);
  CommitPoint commit(cache.get(), &queue);
  auto reservation = queue.Reserve(1, absl::Now() + kHangGuard);
  REQUIRE(reservation.ok());
  std::vector<Portion> portions;
  REQUIRE(StageWrite(*cache, pen, 4, {{{1, 3}, 0, kTrack, 0x44}}, &portions).ok());
  const uint64_t before = cache->LastSequence();

  commit.Close();
  absl::StatusOr<uint64_t> refused = commit.Commit(4, portions, pen, *reservation, nullptr);
  CHECK(refused.status().code() == absl::StatusCode::kFailedPrecondition);
  CHECK(cache->LastSequence() == before);
  uint64_t seq = 0;
  CHECK_FALSE(cache->PeekTrack({1, 3}, &seq).valid());
  CHECK(pen.Counters().depth == 1);  // still the caller's to delete or retry
  CHECK(queue.Counters().depth == 0);
  CHECK(portions.size() == 1);

  commit.Open();
  const uint64_t sequence = commit.Commit(4, portions, pen, *reservation, nullptr).value();
  CHECK(sequence == before + 1);
  CHECK(queue.Counters().depth == 1);
  CHECK(pen.Counters().depth == 0);
}

TEST_CASE("without a queue the commit publishes, empties the pen and owes nothing",
          "[mirror][commit]") {
  FakeBackingStore store;
  auto cache = MustOpenCache(8, &store);
  MirrorQueue other(4);  // only the reservation comes from a queue here
  HoldingPen pen(PenPlacement::kLocal, 8);
  CommitPoint commit(cache.get(), nullptr);
  CHECK_FALSE(commit.waits_for_mirror());

  auto reservation = other.Reserve(1, absl::Now() + kHangGuard);
  REQUIRE(reservation.ok());
  std::vector<Portion> portions;
  REQUIRE(StageWrite(*cache, pen, 3, {{{2, 7}, 0, kTrack, 0x77}}, &portions).ok());
  const uint32_t slot = portions[0].staged.slot();
  const uint64_t sequence = commit.Commit(3, portions, pen, *reservation, nullptr).value();

  CHECK(other.Counters().reserved == 0);
  CHECK(pen.Counters().depth == 0);
  uint64_t seq = 0;
  cache::SlotRef ref = cache->PeekTrack({2, 7}, &seq);
  REQUIRE(ref.valid());
  CHECK(seq == sequence);
  CHECK(AllEqual(ref.data(), 0, kTrack, 0x77));
  cache::SlotEntry e = EntryOf(*cache, slot);
  CHECK(e.state == static_cast<uint8_t>(cache::SlotState::kWritePending));
  CHECK(e.flags == 0);
}

TEST_CASE("concurrent commits keep the queue in sequence order, each write's requests together",
          "[mirror][commit]") {
  constexpr int kThreads = 2;
  constexpr int kWritesPerThread = 40;
  constexpr int kPortions = 3;
  constexpr size_t kRequests = kThreads * kWritesPerThread * kPortions;
  FakeBackingStore store;
  // Every queued request pins its published slot until popped.
  auto cache = MustOpenCache(kRequests + 16, &store);
  MirrorQueue queue(kRequests);
  CommitPoint commit(cache.get(), &queue);

  struct Outcome {
    absl::Status status;
    std::vector<std::pair<uint64_t, uint64_t>> committed;  // (write id, sequence)
  };
  std::vector<Outcome> outcomes(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      HoldingPen pen(PenPlacement::kLocal, kPortions);  // one host adaptor each
      Outcome& out = outcomes[t];
      for (int w = 0; w < kWritesPerThread && out.status.ok(); ++w) {
        const uint64_t write_id = static_cast<uint64_t>(t + 1) * 100 + w;
        auto reservation = queue.Reserve(kPortions, absl::Now() + kHangGuard);
        if (!reservation.ok()) {
          out.status = reservation.status();
          break;
        }
        // Every write covers the same three tracks with its own byte.
        std::vector<PortionSpec> specs;
        for (uint64_t i = 0; i < kPortions; ++i) {
          specs.push_back({{1, i}, 0, kTrack, static_cast<uint8_t>(write_id)});
        }
        std::vector<Portion> portions;
        out.status = StageWrite(*cache, pen, write_id, specs, &portions);
        if (!out.status.ok()) break;
        out.committed.emplace_back(
            write_id, commit.Commit(write_id, portions, pen, *reservation, nullptr).value());
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (const Outcome& out : outcomes) {
    INFO(out.status.ToString());
    REQUIRE(out.status.ok());
    REQUIRE(out.committed.size() == kWritesPerThread);
  }

  std::vector<MirrorRequest> queued = queue.PopBatch(kRequests + 1, absl::ZeroDuration());
  REQUIRE(queued.size() == kRequests);
  uint64_t last_write = 0, last_sequence = 0;
  for (size_t i = 0; i < queued.size(); i += kPortions) {
    INFO("group at " << i);
    const MirrorRequest& head = queued[i];
    CHECK(head.sequence > last_sequence);
    CHECK(head.write_id != last_write);
    for (size_t k = 0; k < kPortions; ++k) {
      CHECK(queued[i + k].write_id == head.write_id);
      CHECK(queued[i + k].sequence == head.sequence);
      CHECK(queued[i + k].key.track == k);
      CHECK(AllEqual(queued[i + k].data.data(), 0, kTrack, static_cast<uint8_t>(head.write_id)));
    }
    last_write = head.write_id;
    last_sequence = head.sequence;
  }
  // Every byte ends equal to the highest-sequence write covering it.
  const uint64_t last_write_id = queued.back().write_id;
  for (uint64_t i = 0; i < kPortions; ++i) {
    uint64_t seq = 0;
    cache::SlotRef ref = cache->PeekTrack({1, i}, &seq);
    REQUIRE(ref.valid());
    CHECK(seq == last_sequence);
    CHECK(AllEqual(ref.data(), 0, kTrack, static_cast<uint8_t>(last_write_id)));
  }
}

// docs/write-path.md, step 5: a write's requests reach the mirror queue in one step, so a
// consumer never ships part of a write. Two consumers pop here: the push hook, the way the
// remote adaptor ships at once on the pushing thread (it sees the queue right after every
// Push, so a write pushed request by request is caught every time), and a thread popping
// whatever is queued whenever it looks. Both take every queued request: a smaller batch
// limit may cut a write by itself.
TEST_CASE("a consumer popping while multi-portion writes commit never sees part of a write",
          "[mirror][commit]") {
  constexpr int kThreads = 2;
  constexpr int kWritesPerThread = 60;
  constexpr size_t kMaxPortions = 4;
  constexpr size_t kMaxRequests = kThreads * kWritesPerThread * kMaxPortions;
  FakeBackingStore store;
  auto cache = MustOpenCache(kMaxRequests + 16, &store);
  MirrorQueue queue(kMaxRequests);
  CommitPoint commit(cache.get(), &queue);

  // Every batch popped, as (sequence, write id) per request, in the batch's order.
  absl::Mutex mu;
  std::vector<std::vector<std::pair<uint64_t, uint64_t>>> batches;
  auto pop = [&](size_t max, absl::Duration wait) {
    std::vector<MirrorRequest> popped = queue.PopBatch(max, wait);
    if (popped.empty()) return;
    std::vector<std::pair<uint64_t, uint64_t>> batch;
    for (const MirrorRequest& r : popped) batch.emplace_back(r.sequence, r.write_id);
    absl::MutexLock lock(&mu);
    batches.push_back(std::move(batch));
  };
  queue.SetPushHook([&] { pop(kMaxRequests, absl::ZeroDuration()); });
  std::atomic<bool> done{false};
  std::thread consumer([&] {
    while (!done.load()) pop(kMaxRequests, absl::Milliseconds(1));
  });

  struct Outcome {
    absl::Status status;
    std::map<uint64_t, size_t> portions;  // by sequence
  };
  std::vector<Outcome> outcomes(kThreads);
  std::vector<std::thread> writers;
  for (int t = 0; t < kThreads; ++t) {
    writers.emplace_back([&, t] {
      HoldingPen pen(PenPlacement::kLocal, kMaxPortions);
      Outcome& out = outcomes[t];
      for (int w = 0; w < kWritesPerThread && out.status.ok(); ++w) {
        const uint64_t write_id = static_cast<uint64_t>(t + 1) * 1000 + w;
        const size_t n = 2 + w % (kMaxPortions - 1);  // 2, 3 or 4 portions
        auto reservation = queue.Reserve(n, absl::Now() + kHangGuard);
        if (!reservation.ok()) {
          out.status = reservation.status();
          break;
        }
        std::vector<PortionSpec> specs;
        for (uint64_t i = 0; i < n; ++i) {
          specs.push_back(
              {{static_cast<uint32_t>(t + 1), i}, 0, kTrack, static_cast<uint8_t>(write_id)});
        }
        std::vector<Portion> portions;
        out.status = StageWrite(*cache, pen, write_id, specs, &portions);
        if (!out.status.ok()) break;
        absl::StatusOr<uint64_t> sequence =
            commit.Commit(write_id, portions, pen, *reservation, nullptr);
        if (!sequence.ok()) {
          out.status = sequence.status();
          break;
        }
        out.portions[*sequence] = n;
      }
    });
  }
  for (std::thread& th : writers) th.join();
  done = true;
  consumer.join();
  queue.SetPushHook(nullptr);
  pop(kMaxRequests, absl::ZeroDuration());

  std::map<uint64_t, size_t> expected;  // portions by sequence
  for (const Outcome& out : outcomes) {
    INFO(out.status.ToString());
    REQUIRE(out.status.ok());
    REQUIRE(out.portions.size() == kWritesPerThread);
    expected.insert(out.portions.begin(), out.portions.end());
  }
  // Where each write's requests were popped: one batch, all of them, in sequence order.
  std::map<uint64_t, size_t> batch_of, popped;
  for (size_t b = 0; b < batches.size(); ++b) {
    uint64_t last = 0;
    for (const auto& [sequence, write_id] : batches[b]) {
      INFO("batch " << b << ", sequence " << sequence << ", write " << write_id);
      CHECK(sequence >= last);
      last = sequence;
      CHECK(batch_of.emplace(sequence, b).first->second == b);  // else split across batches
      ++popped[sequence];
    }
  }
  CHECK(popped == expected);
}

}  // namespace
}  // namespace simarray::mirror
