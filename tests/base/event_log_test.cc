// EventLog (docs/events.md): ids increase from 1, readers resume after an id, an id the ring
// no longer covers is OUT_OF_RANGE naming the oldest kept, and a waiter wakes on a new event
// or on Close.
#include "simarray/base/event_log.h"

#include <catch2/catch.hpp>
#include <thread>

#include "absl/time/clock.h"

namespace simarray {
namespace {

Event Named(const std::string& subject) {
  Event e;
  e.kind = "test";
  e.subject = subject;
  return e;
}

}  // namespace

TEST_CASE("event log: ids increase and a reader resumes after the last it saw") {
  EventLog log(8);
  CHECK(log.last_id() == 0);
  CHECK(log.After(0, 10)->empty());
  for (int i = 1; i <= 5; ++i) CHECK(log.Publish(Named(std::to_string(i))) == uint64_t(i));
  auto all = log.After(0, 10);
  REQUIRE(all.ok());
  REQUIRE(all->size() == 5);
  CHECK(all->front().id == 1);
  CHECK(all->back().subject == "5");
  auto rest = log.After(3, 10);
  REQUIRE(rest.ok());
  REQUIRE(rest->size() == 2);
  CHECK((*rest)[0].id == 4);
  CHECK(log.After(3, 1)->size() == 1);  // at most max
  CHECK(log.After(5, 10)->empty());
}

TEST_CASE("event log: an id older than the ring keeps is OUT_OF_RANGE naming the oldest") {
  EventLog log(4);
  for (int i = 0; i < 10; ++i) log.Publish(Named("x"));
  auto kept = log.After(6, 10);  // events 7..10 are kept
  REQUIRE(kept.ok());
  CHECK(kept->size() == 4);
  auto lost = log.After(5, 10);
  CHECK(absl::IsOutOfRange(lost.status()));
  CHECK(lost.status().message().find("after event 6") != std::string::npos);
  CHECK(absl::IsOutOfRange(log.After(0, 10).status()));
}

TEST_CASE("event log: a waiter wakes on a new event, and for good on Close") {
  EventLog log;
  CHECK_FALSE(log.WaitAfter(0, absl::Now() + absl::Milliseconds(10)));
  std::thread publisher([&] {
    absl::SleepFor(absl::Milliseconds(20));
    log.Publish(Named("late"));
  });
  CHECK(log.WaitAfter(0, absl::Now() + absl::Seconds(60)));
  publisher.join();
  std::thread closer([&] {
    absl::SleepFor(absl::Milliseconds(20));
    log.Close();
  });
  CHECK_FALSE(log.WaitAfter(1, absl::Now() + absl::Seconds(60)));
  closer.join();
  CHECK(log.closed());
}

}  // namespace simarray
