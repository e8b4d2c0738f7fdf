#include "simarray/mirror/mirror_queue.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace simarray::mirror {

Reservation& Reservation::operator=(Reservation&& other) noexcept {
  if (this != &other) {
    Reset();
    queue_ = std::exchange(other.queue_, nullptr);
    places_ = std::exchange(other.places_, 0);
  }
  return *this;
}

void Reservation::Reset() {
  if (queue_ != nullptr && places_ != 0) queue_->Unreserve(places_);
  queue_ = nullptr;
  places_ = 0;
}

absl::StatusOr<Reservation> MirrorQueue::Reserve(size_t places, absl::Time deadline) {
  if (places > capacity_) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a write of ", places, " portions exceeds the mirror queue's ", capacity_, " places"));
  }
  absl::MutexLock lock(&mu_);
  auto fits = [this, places]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return closed_ || queue_.size() + reserved_ + places <= capacity_;
  };
  if (!mu_.AwaitWithDeadline(absl::Condition(&fits), deadline)) {
    return absl::DeadlineExceededError(absl::StrCat("mirror queue full: ", queue_.size(),
                                                    " queued and ", reserved_, " reserved of ",
                                                    capacity_, " places"));
  }
  if (closed_) return absl::CancelledError("mirror queue closed");
  reserved_ += places;
  return Reservation(this, places);
}

void MirrorQueue::Unreserve(size_t places) {
  absl::MutexLock lock(&mu_);
  reserved_ -= places;
}

void MirrorQueue::Push(Reservation& reservation, std::vector<MirrorRequest> requests) {
  std::function<void()> hook;
  {
    absl::MutexLock lock(&mu_);
    PushLocked(reservation, std::move(requests));
    hook = pushed_hook_;
  }
  if (hook) hook();
}

void MirrorQueue::PushLocked(Reservation& reservation, std::vector<MirrorRequest> requests) {
  size_t used = std::min(requests.size(), reservation.places_);
  reserved_ -= reservation.places_;
  reservation.queue_ = nullptr;
  reservation.places_ = 0;
  // A push beyond the reservation still fits: reservations are the only way in.
  (void)used;
  for (MirrorRequest& r : requests) queue_.push_back(std::move(r));
  pushed_ += requests.size();
  peak_ = std::max<uint64_t>(peak_, queue_.size());
}

std::vector<MirrorRequest> MirrorQueue::PopBatch(size_t max, absl::Duration wait) {
  std::vector<MirrorRequest> out;
  absl::MutexLock lock(&mu_);
  auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { return closed_ || !queue_.empty(); };
  // Not even a zero wait when none is asked for: Await with a timeout blocks on the mutex's
  // slow path first, and the shipping path pops from every write's completion.
  if (wait > absl::ZeroDuration()) mu_.AwaitWithTimeout(absl::Condition(&ready), wait);
  while (!queue_.empty() && out.size() < max) {
    out.push_back(std::move(queue_.front()));
    queue_.pop_front();
  }
  return out;
}

void MirrorQueue::Close() {
  std::function<void()> hook;
  {
    absl::MutexLock lock(&mu_);
    closed_ = true;
    hook = pushed_hook_;
  }
  if (hook) hook();
}

void MirrorQueue::SetPushHook(std::function<void()> pushed) {
  absl::MutexLock lock(&mu_);
  pushed_hook_ = std::move(pushed);
}

QueueCounters MirrorQueue::Counters() {
  absl::MutexLock lock(&mu_);
  return QueueCounters{queue_.size(), peak_, reserved_, capacity_, pushed_};
}

}  // namespace simarray::mirror
