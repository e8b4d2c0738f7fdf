#pragma once
// EventLog: what the array did, one event per state change, in a bounded ring
// (docs/events.md). Each event has a monotonically increasing id (the first is 1), a time,
// a kind ("pair_state", "link", "resync", "fault", ...), a subject (what changed: the pair,
// a volume, a host adaptor), for a state change the new and the previous state, and a
// detail line. Readers resume from the last id they saw; an
// id older than the ring holds is OUT_OF_RANGE, naming the oldest kept. Thread-safe.

#include <cstdint>
#include <deque>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace simarray {

struct Event {
  uint64_t id = 0;  // set by Publish
  absl::Time time;  // set by Publish
  std::string kind;
  std::string subject;
  std::string value;     // a state change's new state
  std::string previous;  // and the one before
  std::string detail;
};

class EventLog {
 public:
  // Keeps the last `capacity` (>= 1) events.
  explicit EventLog(size_t capacity = 4096);

  // Appends `event` with the next id and the current time; returns the id. Wakes every
  // WaitAfter.
  uint64_t Publish(Event event);

  // Up to `max` events with an id above `after`, oldest first (none when `after` is the last
  // id). OUT_OF_RANGE when some of them were already dropped from the ring.
  absl::StatusOr<std::vector<Event>> After(uint64_t after, size_t max);

  // Blocks until an event with an id above `after` exists (true), or `deadline` passes or
  // Close() was called (false).
  bool WaitAfter(uint64_t after, absl::Time deadline);

  // Ends every wait for good (the daemon is stopping).
  void Close();
  bool closed();

  uint64_t last_id();

 private:
  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<Event> ring_ ABSL_GUARDED_BY(mu_);
  uint64_t last_id_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace simarray
