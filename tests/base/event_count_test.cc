#include "simarray/base/event_count.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>

#include "absl/time/clock.h"

namespace simarray {
namespace {

// Generous bound on waits that only guard against a hang; no test asserts on speed.
constexpr absl::Duration kHangGuard = absl::Seconds(30);

TEST_CASE("a Notify after the token ends a wait begun later", "[base][event_count]") {
  EventCount events;
  const uint64_t token = events.Token();
  events.Notify();
  CHECK(events.WaitSince(token, absl::Now() + kHangGuard));
}

TEST_CASE("a wait with no Notify ends at its deadline", "[base][event_count]") {
  EventCount events;
  const uint64_t token = events.Token();
  const absl::Time deadline = absl::Now() + absl::Milliseconds(20);
  CHECK_FALSE(events.WaitSince(token, deadline));
  CHECK(absl::Now() >= deadline);
  CHECK_FALSE(events.Await([] { return false; }, absl::Now() + absl::Milliseconds(5)));
}

TEST_CASE("Await sees a condition another thread makes true", "[base][event_count]") {
  EventCount events;
  std::atomic<int> value{0};
  std::thread setter([&] {
    for (int i = 1; i <= 100; ++i) {
      value = i;
      events.Notify();
    }
  });
  CHECK(events.Await([&] { return value.load() == 100; }, absl::Now() + kHangGuard));
  setter.join();
}

}  // namespace
}  // namespace simarray
