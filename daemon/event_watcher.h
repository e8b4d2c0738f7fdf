#pragma once
// EventWatcher: turns the array's state into events (docs/events.md). Every 20 ms, and at
// once when the remote adaptor says its link, suspension or resync changed, it takes the
// same status the admin Status call returns and publishes one event per change it finds:
// role, pair state, link state, a resync starting, progressing (every tenth of it, or every
// second) and ending, async cycles switched and applied, pull-aheads, invalid writes by
// reason, backing stores failing and recovering. Changes faster than a sample (a link that
// drops and comes back within 20 ms) still show, through the counters they move. Events
// that happen at one call (volumes, faults, role changes) are published where they happen.
// Owns one thread, from Start() to Stop() or destruction.

#include <atomic>
#include <functional>
#include <thread>

#include "absl/synchronization/notification.h"
#include "simarray/base/event_count.h"
#include "simarray/base/event_log.h"
#include "simarray/v1/admin.pb.h"

namespace simarray::daemon {

class EventWatcher {
 public:
  // `sample` fills a status (FillStatus, status_report.h); `changes` (may be null: no peer
  // link) is notified at state changes. All borrowed and thread-safe.
  EventWatcher(std::function<void(v1::StatusReply*)> sample, EventLog* log, EventCount* changes);
  ~EventWatcher();
  EventWatcher(const EventWatcher&) = delete;
  EventWatcher& operator=(const EventWatcher&) = delete;

  void Start();
  void Stop();

 private:
  void Run();
  // Publishes what changed from `before` to `now`.
  void Compare(const v1::StatusReply& before, const v1::StatusReply& now);
  void State(const char* kind, const std::string& subject, const std::string& previous,
             const std::string& value, std::string detail = "");

  std::function<void(v1::StatusReply*)> sample_;
  EventLog* const log_;
  EventCount* const changes_;
  absl::Notification stop_;
  std::thread thread_;
  absl::Time resync_reported_;  // the watcher thread's
};

}  // namespace simarray::daemon
