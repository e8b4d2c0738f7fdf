#pragma once
// EventCount: waiting for a condition over state that other mutexes or atomics guard,
// without polling and without missing a change. A waiter takes a Token, checks its
// condition, and if it does not hold waits for a Notify after that token (or a deadline);
// a notifier changes the state first and then calls Notify. A change made after the token
// was taken therefore always ends the wait, even if it came before the wait began.
//
// Its mutex is a leaf (nothing is locked while it is held), so Notify may be called with
// any other lock held. Thread-safe.

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace simarray {

class EventCount {
 public:
  EventCount() = default;
  EventCount(const EventCount&) = delete;
  EventCount& operator=(const EventCount&) = delete;

  uint64_t Token();
  // Wakes every waiter.
  void Notify();
  // Waits until Notify is called after `token` was taken; false if `deadline` came first.
  bool WaitSince(uint64_t token, absl::Time deadline);

  // Waits until `condition()` holds, checking it again after each Notify; returns whether
  // it held (false: `deadline` came first). `condition` runs without this mutex held.
  template <typename Condition>
  bool Await(Condition condition, absl::Time deadline) {
    for (;;) {
      const uint64_t token = Token();
      if (condition()) return true;
      if (!WaitSince(token, deadline)) return condition();
    }
  }

 private:
  absl::Mutex mu_;
  absl::CondVar changed_;
  uint64_t count_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace simarray
