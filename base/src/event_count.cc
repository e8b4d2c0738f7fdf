#include "simarray/base/event_count.h"

namespace simarray {

uint64_t EventCount::Token() {
  absl::MutexLock lock(&mu_);
  return count_;
}

void EventCount::Notify() {
  absl::MutexLock lock(&mu_);
  ++count_;
  changed_.SignalAll();
}

bool EventCount::WaitSince(uint64_t token, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  // Waits for: a Notify after `token` (count_ moved on).
  while (count_ == token) {
    if (changed_.WaitWithDeadline(&mu_, deadline)) return count_ != token;
  }
  return true;
}

}  // namespace simarray
