#include "simarray/mirror/mirror_queue.h"

#include <catch2/catch.hpp>
#include <optional>
#include <thread>

#include "mirror_test_util.h"

namespace simarray::mirror {
namespace {

using testing::Request;

// Long enough never to be reached by a test that expects success; only guards a hang.
constexpr absl::Duration kHangGuard = absl::Seconds(60);

Reservation MustReserve(MirrorQueue& queue, size_t places) {
  auto r = queue.Reserve(places, absl::Now() + kHangGuard);
  INFO(r.status().ToString());
  REQUIRE(r.ok());
  REQUIRE(r->places() == places);
  return std::move(*r);
}

std::vector<MirrorRequest> Requests(uint64_t write_id, uint64_t sequence, size_t n) {
  std::vector<MirrorRequest> out;
  for (size_t i = 0; i < n; ++i) {
    MirrorRequest r = Request(write_id, {1, write_id * 100 + i});
    r.sequence = sequence;
    out.push_back(std::move(r));
  }
  return out;
}

TEST_CASE("the queue hands requests out in the order pushed", "[mirror][queue]") {
  MirrorQueue queue(10);
  CHECK(queue.capacity() == 10);
  Reservation a = MustReserve(queue, 3);
  Reservation b = MustReserve(queue, 2);
  queue.Push(a, Requests(1, 1, 3));
  queue.Push(b, Requests(2, 2, 2));
  QueueCounters c = queue.Counters();
  CHECK(c.depth == 5);
  CHECK(c.pushed == 5);
  CHECK(c.peak == 5);
  CHECK(c.reserved == 0);
  CHECK(c.capacity == 10);
  CHECK(a.places() == 0);  // consumed by Push

  std::vector<MirrorRequest> first = queue.PopBatch(4, absl::ZeroDuration());
  REQUIRE(first.size() == 4);
  std::vector<MirrorRequest> rest = queue.PopBatch(4, absl::ZeroDuration());
  REQUIRE(rest.size() == 1);
  const uint64_t expect_track[] = {100, 101, 102, 200};
  for (size_t i = 0; i < 4; ++i) CHECK(first[i].key.track == expect_track[i]);
  CHECK(rest[0].key.track == 201);
  CHECK(rest[0].sequence == 2);
  CHECK(queue.PopBatch(4, absl::ZeroDuration()).empty());
  c = queue.Counters();
  CHECK(c.depth == 0);
  CHECK(c.peak == 5);
  CHECK(c.pushed == 5);
}

TEST_CASE("Reserve past the bound times out with DEADLINE_EXCEEDED", "[mirror][queue]") {
  MirrorQueue queue(4);
  Reservation held = MustReserve(queue, 3);

  SECTION("reserved places count against the bound") {
    const absl::Time deadline = absl::Now() + absl::Milliseconds(50);
    auto r = queue.Reserve(2, deadline);
    CHECK(r.status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(absl::Now() >= deadline);  // it waited for its deadline
    CHECK(queue.Reserve(1, absl::Now()).ok());
    CHECK(queue.Counters().reserved == 3);
  }
  SECTION("queued requests count against the bound until popped") {
    queue.Push(held, Requests(1, 1, 3));
    CHECK(queue.Reserve(2, absl::Now()).status().code() == absl::StatusCode::kDeadlineExceeded);
    CHECK(queue.PopBatch(1, absl::ZeroDuration()).size() == 1);
    CHECK(queue.Reserve(2, absl::Now()).ok());
  }
}

TEST_CASE("Reserve of more places than the capacity is INVALID_ARGUMENT", "[mirror][queue]") {
  MirrorQueue queue(4);
  CHECK(queue.Reserve(5, absl::Now() + kHangGuard).status().code() ==
        absl::StatusCode::kInvalidArgument);
  CHECK(queue.Reserve(4, absl::Now()).ok());
}

TEST_CASE("a dropped Reservation gives its places back", "[mirror][queue]") {
  MirrorQueue queue(4);
  {
    Reservation r = MustReserve(queue, 4);
    CHECK(queue.Counters().reserved == 4);
  }
  CHECK(queue.Counters().reserved == 0);

  // Moving a reservation moves its places; they are given back once.
  Reservation a = MustReserve(queue, 3);
  Reservation b = std::move(a);
  CHECK(a.places() == 0);
  CHECK(queue.Counters().reserved == 3);
  b.Reset();
  CHECK(queue.Counters().reserved == 0);
  a.Reset();
  CHECK(queue.Counters().reserved == 0);
  CHECK(queue.Reserve(4, absl::Now()).ok());
}

TEST_CASE("Push of fewer requests than reserved gives the rest back", "[mirror][queue]") {
  MirrorQueue queue(4);
  Reservation r = MustReserve(queue, 3);
  queue.Push(r, Requests(1, 1, 1));
  QueueCounters c = queue.Counters();
  CHECK(c.reserved == 0);
  CHECK(c.depth == 1);
  CHECK(queue.Reserve(3, absl::Now()).ok());
}

TEST_CASE("a waiting Reserve succeeds once places are given back", "[mirror][queue]") {
  MirrorQueue queue(4);
  std::optional<Reservation> held(MustReserve(queue, 4));
  absl::Status result = absl::UnknownError("not run");
  size_t places = 0;
  std::thread waiter([&] {
    auto r = queue.Reserve(2, absl::Now() + kHangGuard);
    result = r.status();
    if (r.ok()) places = r->places();
  });
  absl::SleepFor(absl::Milliseconds(20));  // let it wait; the outcome does not depend on it
  held.reset();
  waiter.join();
  INFO(result.ToString());
  CHECK(result.ok());
  CHECK(places == 2);
  CHECK(queue.Counters().reserved == 0);  // the waiter's reservation died with its thread
}

TEST_CASE("a waiting Reserve succeeds once requests are popped", "[mirror][queue]") {
  MirrorQueue queue(4);
  Reservation r = MustReserve(queue, 4);
  queue.Push(r, Requests(1, 1, 4));
  absl::Status result = absl::UnknownError("not run");
  std::thread waiter([&] { result = queue.Reserve(3, absl::Now() + kHangGuard).status(); });
  absl::SleepFor(absl::Milliseconds(20));
  CHECK(queue.PopBatch(3, absl::ZeroDuration()).size() == 3);
  waiter.join();
  INFO(result.ToString());
  CHECK(result.ok());
}

TEST_CASE("Close wakes waiters and refuses later reservations", "[mirror][queue]") {
  MirrorQueue queue(2);
  Reservation r = MustReserve(queue, 2);
  absl::Status reserve_result = absl::UnknownError("not run");
  size_t popped = 99;
  std::thread reserver(
      [&] { reserve_result = queue.Reserve(1, absl::Now() + kHangGuard).status(); });
  std::thread popper([&] { popped = queue.PopBatch(10, kHangGuard).size(); });
  absl::SleepFor(absl::Milliseconds(20));  // let them wait; the outcome does not depend on it
  queue.Close();
  reserver.join();
  popper.join();
  INFO(reserve_result.ToString());
  CHECK(reserve_result.code() == absl::StatusCode::kCancelled);
  CHECK(popped == 0);
  CHECK(queue.Reserve(1, absl::Now() + kHangGuard).status().code() == absl::StatusCode::kCancelled);
}

TEST_CASE("after Close, PopBatch still returns what is left", "[mirror][queue]") {
  MirrorQueue queue(4);
  Reservation r = MustReserve(queue, 2);
  queue.Push(r, Requests(1, 1, 2));
  queue.Close();
  CHECK(queue.PopBatch(10, kHangGuard).size() == 2);
  CHECK(queue.PopBatch(10, kHangGuard).empty());
}

TEST_CASE("a waiting PopBatch gets a request pushed by another thread", "[mirror][queue]") {
  MirrorQueue queue(4);
  std::vector<MirrorRequest> got;
  std::thread popper([&] { got = queue.PopBatch(10, kHangGuard); });
  absl::SleepFor(absl::Milliseconds(20));
  Reservation r = MustReserve(queue, 1);
  queue.Push(r, Requests(5, 9, 1));
  popper.join();
  REQUIRE(got.size() == 1);
  CHECK(got[0].write_id == 5);
  CHECK(got[0].sequence == 9);
}

}  // namespace
}  // namespace simarray::mirror
