#include "simarray/base/work_pool.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace simarray {
namespace {

// Generous bound on waits that only guard against a hang; no test asserts on speed.
constexpr absl::Duration kHangGuard = absl::Seconds(30);

TEST_CASE("one worker runs posted jobs in FIFO order", "[base][work_pool]") {
  std::mutex mu;
  std::vector<int> order;
  {
    WorkPool pool(1, 1000);
    for (int i = 0; i < 100; ++i) {
      REQUIRE(pool.Post([&mu, &order, i] {
        std::lock_guard<std::mutex> lock(mu);
        order.push_back(i);
      }));
    }
    pool.Stop();
  }
  REQUIRE(order.size() == 100);
  for (int i = 0; i < 100; ++i) CHECK(order[i] == i);
}

TEST_CASE("Stop runs every job already posted before joining", "[base][work_pool]") {
  std::atomic<int> ran{0};
  WorkPool pool(2, 1000);
  absl::Notification gate;
  // Hold both workers so that the rest are still pending when Stop is called.
  for (int i = 0; i < 2; ++i) {
    REQUIRE(pool.Post([&] {
      gate.WaitForNotificationWithTimeout(kHangGuard);
      ran.fetch_add(1);
    }));
  }
  for (int i = 0; i < 50; ++i) REQUIRE(pool.Post([&] { ran.fetch_add(1); }));
  gate.Notify();
  pool.Stop();
  CHECK(ran.load() == 52);
}

TEST_CASE("the destructor drains and joins like Stop", "[base][work_pool]") {
  std::atomic<int> ran{0};
  {
    WorkPool pool(2, 100);
    for (int i = 0; i < 20; ++i) REQUIRE(pool.Post([&] { ran.fetch_add(1); }));
  }
  CHECK(ran.load() == 20);
}

TEST_CASE("Post refuses past max_pending jobs and accepts again once one is taken",
          "[base][work_pool]") {
  WorkPool pool(1, 3);
  absl::Notification started, release, first_taken, release_first;
  REQUIRE(pool.Post([&] {
    started.Notify();
    release.WaitForNotificationWithTimeout(kHangGuard);
  }));
  // The blocking job has left the pending list; the worker is busy with it.
  REQUIRE(started.WaitForNotificationWithTimeout(kHangGuard));
  std::atomic<int> ran{0};
  CHECK(pool.Post([&] {
    first_taken.Notify();
    release_first.WaitForNotificationWithTimeout(kHangGuard);
    ran.fetch_add(1);
  }));
  CHECK(pool.Post([&] { ran.fetch_add(1); }));
  CHECK(pool.Post([&] { ran.fetch_add(1); }));
  CHECK_FALSE(pool.Post([&] { ran.fetch_add(100); }));

  release.Notify();
  // Once the worker has taken the first queued job, two are pending: room for one more.
  REQUIRE(first_taken.WaitForNotificationWithTimeout(kHangGuard));
  CHECK(pool.Post([&] { ran.fetch_add(1); }));
  CHECK_FALSE(pool.Post([&] { ran.fetch_add(100); }));
  release_first.Notify();
  pool.Stop();
  CHECK(ran.load() == 4);
}

TEST_CASE("Post after Stop is refused and the job never runs", "[base][work_pool]") {
  std::atomic<bool> ran{false};
  WorkPool pool(2, 10);
  pool.Stop();
  CHECK_FALSE(pool.Post([&] { ran = true; }));
  pool.Stop();  // a second Stop is harmless
  CHECK_FALSE(ran.load());
}

TEST_CASE("several workers run jobs concurrently", "[base][work_pool]") {
  WorkPool pool(2, 10);
  absl::Notification a_started, b_started;
  std::atomic<bool> a_saw_b{false}, b_saw_a{false};
  // Each job waits for the other to start: both finish only if they run at the same time.
  REQUIRE(pool.Post([&] {
    a_started.Notify();
    a_saw_b = b_started.WaitForNotificationWithTimeout(kHangGuard);
  }));
  REQUIRE(pool.Post([&] {
    b_started.Notify();
    b_saw_a = a_started.WaitForNotificationWithTimeout(kHangGuard);
  }));
  pool.Stop();
  CHECK(a_saw_b.load());
  CHECK(b_saw_a.load());
}

}  // namespace
}  // namespace simarray
