#include "simarray/base/event_log.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace simarray {

EventLog::EventLog(size_t capacity) : capacity_(std::max<size_t>(capacity, 1)) {}

uint64_t EventLog::Publish(Event event) {
  absl::MutexLock lock(&mu_);
  if (ring_.size() == capacity_) ring_.pop_front();
  event.id = ++last_id_;
  event.time = absl::Now();
  ring_.push_back(std::move(event));
  return last_id_;
}

absl::StatusOr<std::vector<Event>> EventLog::After(uint64_t after, size_t max) {
  absl::MutexLock lock(&mu_);
  std::vector<Event> out;
  if (after >= last_id_) return out;
  const uint64_t oldest = ring_.front().id;
  if (after + 1 < oldest) {
    return absl::OutOfRangeError(absl::StrCat(
        "events ", after + 1, " to ", oldest - 1, " were dropped (the log keeps the last ",
        capacity_, "); take a snapshot with Status and resume after event ", oldest - 1));
  }
  for (auto it = ring_.begin() + static_cast<ptrdiff_t>(after + 1 - oldest);
       it != ring_.end() && out.size() < max; ++it) {
    out.push_back(*it);
  }
  return out;
}

bool EventLog::WaitAfter(uint64_t after, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto ready = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || last_id_ > after; };
  mu_.AwaitWithDeadline(absl::Condition(&ready), deadline);
  return !closed_ && last_id_ > after;
}

void EventLog::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

bool EventLog::closed() {
  absl::MutexLock lock(&mu_);
  return closed_;
}

uint64_t EventLog::last_id() {
  absl::MutexLock lock(&mu_);
  return last_id_;
}

}  // namespace simarray
