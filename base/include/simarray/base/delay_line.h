#pragma once
// DelayLine: a thread that runs each action at its time, earliest first (actions of the same
// time in the order they came). The emulated link (simarray/remote/link_emulation.h) uses it
// to free the wire, deliver a message and hand on a reply at the moments its LinkModel works
// out; write pacing (simarray/mirror/write_pacing.h) to answer a paced host write late.
//
// Thread-safe. Actions run on the line's thread, one at a time, and must not call Stop.
// After Stop returns no action runs again.

#include <cstdint>
#include <functional>
#include <map>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace simarray {

class DelayLine {
 public:
  // What Stop does with the actions still waiting: drop them (a message on an emulated wire
  // is lost with the link), or run them at once (a host's reply must still be given).
  enum class AtStop { kDrop, kRun };
  explicit DelayLine(AtStop at_stop = AtStop::kDrop);
  ~DelayLine();
  DelayLine(const DelayLine&) = delete;
  DelayLine& operator=(const DelayLine&) = delete;

  // Runs `action` at `at` (at once if that has passed). False once stopped.
  bool At(absl::Time at, std::function<void()> action) ABSL_LOCKS_EXCLUDED(mu_);
  // Drops (or runs, AtStop::kRun) what waits, waits for a running action and ends the
  // thread. Idempotent.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run();

  const AtStop at_stop_;
  absl::Mutex mu_;
  std::map<std::pair<absl::Time, uint64_t>, std::function<void()>> actions_ ABSL_GUARDED_BY(mu_);
  uint64_t next_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  absl::CondVar changed_;  // a new first action, or a stop
  std::thread thread_;
};

}  // namespace simarray
