// The event stream (docs/events.md): a link suspended and resumed, a resync, a fault and the
// invalid write it causes, and a volume created each show as events, in order, with the new
// and previous state; a client resumes after an id it saw; simarrayctl prints them and waits
// for a pair state.
#include <catch2/catch.hpp>
#include <future>
#include <string>
#include <vector>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

// The events of `d` after `after` (no follow).
std::vector<v1::Event> Events(Daemon& d, uint64_t after) {
  grpc::ClientContext context;
  d.Authorize(context);
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
  v1::WatchEventsRequest request;
  request.set_after_id(after);
  auto reader = d.admin().WatchEvents(&context, request);
  std::vector<v1::Event> out;
  v1::Event e;
  while (reader->Read(&e)) out.push_back(e);
  grpc::Status s = reader->Finish();
  INFO(s.error_message());
  REQUIRE(s.ok());
  return out;
}

// Index of the first event at or after `from` with this kind and value; -1 if none.
int Find(const std::vector<v1::Event>& events, size_t from, const std::string& kind,
         const std::string& value) {
  for (size_t i = from; i < events.size(); ++i) {
    if (events[i].kind() == kind && events[i].value() == value) return static_cast<int>(i);
  }
  return -1;
}

}  // namespace

TEST_CASE("state changes of a pair show as events in order and a client resumes after an id",
          "[integration][events]") {
  Pair pair;
  const std::string admin = "--admin " + pair.primary->admin_address();
  CtlResult synced = Ctl(admin + " wait Synchronized --timeout 30");
  INFO(synced.out);
  REQUIRE(synced.code == 0);
  CHECK(synced.out.find("Synchronized") != std::string::npos);

  const uint64_t start = pair.primary->Status().last_event_id();
  pair.CreateVolume("vol", 8 * kTrack);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  SuspendLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Suspended"));
  // States are sampled every 20 ms (docs/events.md): let this one be seen before it ends.
  REQUIRE(Eventually(
      [&] { return Find(Events(*pair.primary, start), 0, "pair_state", "Suspended") >= 0; }));
  REQUIRE(Write(pair.primary->host(), "vol", 0, Pattern(2 * kTrack, 1)).status.ok());
  // A follower started now sees the resync and the return to Synchronized as they happen.
  auto follower = std::async(std::launch::async,
                             [&] { return Ctl(admin + " wait Synchronized --timeout 30"); });
  ResumeLink(*pair.primary);
  CtlResult waited = follower.get();
  INFO(waited.out);
  CHECK(waited.code == 0);
  InjectFault(*pair.primary, v1::FAULT_CORRUPT_NEXT_WRITE);
  CHECK_FALSE(Write(pair.primary->host(), "vol", 0, Pattern(4096, 2)).status.ok());
  REQUIRE(Eventually([&] {
    std::vector<v1::Event> e = Events(*pair.primary, start);
    return Find(e, 0, "invalid_write", "injected_corruption") >= 0;
  }));

  const std::vector<v1::Event> events = Events(*pair.primary, start);
  for (size_t i = 1; i < events.size(); ++i) CHECK(events[i].id() == events[i - 1].id() + 1);
  REQUIRE_FALSE(events.empty());
  CHECK(events.front().id() == start + 1);
  const int created = Find(events, 0, "volume", "created");
  REQUIRE(created >= 0);
  CHECK(events[created].subject() == "vol");
  const int suspended = Find(events, created, "pair_state", "Suspended");
  REQUIRE(suspended >= 0);
  // The suspend tears the link down first: the pair may pass through Partitioned for a moment
  // (docs/events.md).
  CHECK((events[suspended].previous() == "Synchronized" ||
         events[suspended].previous() == "Partitioned"));
  CHECK(Find(events, created, "link", "suspended") >= 0);
  const int resync = Find(events, suspended, "resync", "running");
  REQUIRE(resync >= 0);
  const int whole = Find(events, resync, "pair_state", "Synchronized");
  REQUIRE(whole >= 0);
  const int fault = Find(events, whole, "fault", "FAULT_CORRUPT_NEXT_WRITE");
  REQUIRE(fault >= 0);
  const int refused = Find(events, fault, "invalid_write", "injected_corruption");
  REQUIRE(refused >= 0);
  CHECK(events[refused].subject() == "ha0");

  // Resuming after an id gives exactly the events after it.
  const std::vector<v1::Event> rest = Events(*pair.primary, events[whole].id());
  REQUIRE(rest.size() >= 2);
  CHECK(rest.front().id() == events[whole].id() + 1);

  // simarrayctl prints one line per event, JSON lines with --json.
  CtlResult lines = Ctl(admin + " events --after " + std::to_string(start));
  REQUIRE(lines.code == 0);
  CHECK(lines.out.find("pair_state pair: " + events[suspended].previous() + " -> Suspended") !=
        std::string::npos);
  CtlResult json = Ctl(admin + " --json events --after " + std::to_string(events[fault].id() - 1));
  REQUIRE(json.code == 0);
  CHECK(json.out.rfind("{\"id\":\"" + std::to_string(events[fault].id()) + "\"", 0) == 0);
  CHECK(json.out.find("\"kind\":\"fault\"") != std::string::npos);

  // A state the pair does not reach: exit 1 when the timeout passes.
  CtlResult never = Ctl(admin + " wait Partitioned --timeout 1");
  CHECK(never.code == 1);
  CHECK(never.out.find("did not reach Partitioned") != std::string::npos);
}

}  // namespace simarray::testing
