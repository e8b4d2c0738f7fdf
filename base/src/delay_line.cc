#include "simarray/base/delay_line.h"

namespace simarray {

DelayLine::DelayLine(AtStop at_stop) : at_stop_(at_stop), thread_([this] { Run(); }) {}

DelayLine::~DelayLine() { Stop(); }

bool DelayLine::At(absl::Time at, std::function<void()> action) {
  absl::MutexLock lock(&mu_);
  if (stopping_) return false;
  auto it = actions_.emplace(std::make_pair(at, next_++), std::move(action)).first;
  if (it == actions_.begin()) changed_.Signal();  // the thread waits for a later time
  return true;
}

void DelayLine::Stop() {
  decltype(actions_) left;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    left.swap(actions_);
    changed_.Signal();
  }
  if (thread_.joinable()) thread_.join();
  if (at_stop_ == AtStop::kRun) {
    for (auto& [when, action] : left) action();
  }
}

void DelayLine::Run() {
  absl::MutexLock lock(&mu_);
  while (!stopping_) {
    if (actions_.empty()) {
      changed_.Wait(&mu_);
      continue;
    }
    const absl::Time due = actions_.begin()->first.first;
    if (absl::Now() < due) {
      changed_.WaitWithDeadline(&mu_, due);  // or earlier: a new first action, a stop
      continue;
    }
    std::function<void()> action = std::move(actions_.begin()->second);
    actions_.erase(actions_.begin());
    mu_.Unlock();
    action();
    mu_.Lock();
  }
}

}  // namespace simarray
