#include "simarray/mirror/write_ticket.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace simarray::mirror {
namespace {

TEST_CASE("a ticket fires once, with OK, when every portion is acknowledged", "[mirror][ticket]") {
  int fired = 0;
  absl::Status got = absl::UnknownError("not fired");
  WriteTicket ticket(3, [&](absl::Status s) {
    ++fired;
    got = s;
  });
  ticket.Ack();
  ticket.Ack();
  CHECK(fired == 0);
  CHECK_FALSE(ticket.finished());
  ticket.Ack();
  CHECK(fired == 1);
  CHECK(got.ok());
  CHECK(ticket.finished());
  ticket.Ack();  // a duplicate ack
  ticket.Fail(absl::UnavailableError("late"));
  CHECK(fired == 1);
  CHECK(got.ok());
}

TEST_CASE("a failed ticket fires once with the failure and later acks do nothing",
          "[mirror][ticket]") {
  int fired = 0;
  absl::Status got;
  WriteTicket ticket(2, [&](absl::Status s) {
    ++fired;
    got = s;
  });
  ticket.Ack();
  ticket.Fail(absl::UnavailableError("link down"));
  CHECK(fired == 1);
  CHECK(got.code() == absl::StatusCode::kUnavailable);
  CHECK(ticket.finished());
  ticket.Ack();
  ticket.Fail(absl::DeadlineExceededError("again"));
  CHECK(fired == 1);
  CHECK(got.code() == absl::StatusCode::kUnavailable);
}

TEST_CASE("acks racing on several threads fire the ticket exactly once", "[mirror][ticket]") {
  constexpr int kThreads = 4;
  constexpr int kAcksEach = 250;
  std::atomic<int> fired{0};
  WriteTicket ticket(kThreads * kAcksEach, [&](absl::Status) { fired.fetch_add(1); });
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < kAcksEach; ++i) ticket.Ack();
    });
  }
  for (std::thread& th : threads) th.join();
  CHECK(fired.load() == 1);
  CHECK(ticket.finished());
}

}  // namespace
}  // namespace simarray::mirror
