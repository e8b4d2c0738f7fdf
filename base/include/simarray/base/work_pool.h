#pragma once
// WorkPool: a fixed set of threads running posted jobs in FIFO order. gRPC reactions post
// here whatever may wait (queue places, cache slots, disk reads) so that a reaction never
// blocks. Bounded: Post refuses (returns false) past `max_pending` jobs. Thread-safe;
// Stop() (or the destructor) runs what was posted, then joins.

#include <cstddef>
#include <deque>
#include <functional>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace simarray {

class WorkPool {
 public:
  WorkPool(size_t threads, size_t max_pending);
  ~WorkPool();
  WorkPool(const WorkPool&) = delete;
  WorkPool& operator=(const WorkPool&) = delete;

  bool Post(std::function<void()> job) ABSL_LOCKS_EXCLUDED(mu_);
  // Joins the threads: never from a job.
  void Stop() ABSL_LOCKS_EXCLUDED(mu_);

 private:
  void Run() ABSL_LOCKS_EXCLUDED(mu_);
  const size_t max_pending_;
  absl::Mutex mu_;
  std::deque<std::function<void()>> jobs_ ABSL_GUARDED_BY(mu_);
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace simarray
