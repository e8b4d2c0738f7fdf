#pragma once
// MirrorQueue: the ordered queue of validated mirror requests waiting for the remote
// adaptor (claims 10, 13). Bounded at `capacity` requests. A host write reserves its places
// before it stages anything (docs/write-path.md, step 1), so a validated write never finds the
// queue full; when places are short, Reserve waits (sync back-pressure).
//
// Order: requests are pushed by the commit point in sequence order, so the queue is in
// sequence order. Thread-safe.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <functional>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/figures.h"
#include "simarray/mirror/mirror_request.h"

namespace simarray::mirror {

class MirrorQueue;

// Places reserved in the queue; given back on destruction unless consumed by Push.
// Move-only; the queue must outlive it.
class Reservation {
 public:
  Reservation() = default;
  Reservation(MirrorQueue* queue, size_t places) : queue_(queue), places_(places) {}
  Reservation(Reservation&& other) noexcept { *this = std::move(other); }
  Reservation& operator=(Reservation&& other) noexcept;
  ~Reservation() { Reset(); }
  void Reset();
  size_t places() const { return places_; }

 private:
  friend class MirrorQueue;
  MirrorQueue* queue_ = nullptr;
  size_t places_ = 0;
};

struct QueueCounters {
  uint64_t depth = 0;
  uint64_t peak = 0;
  uint64_t reserved = 0;
  uint64_t capacity = 0;
  uint64_t pushed = 0;
};
// The counters as figures (simarray/base/figures.h), in the array's top section.
void Describe(const QueueCounters& counters, FigureSink& sink);

class MirrorQueue {
 public:
  explicit MirrorQueue(size_t capacity) : capacity_(capacity) {}
  MirrorQueue(const MirrorQueue&) = delete;
  MirrorQueue& operator=(const MirrorQueue&) = delete;

  size_t capacity() const { return capacity_; }

  // Waits until `places` are free. INVALID_ARGUMENT if places > capacity;
  // DEADLINE_EXCEEDED at `deadline`; CANCELLED once the queue is closed.
  absl::StatusOr<Reservation> Reserve(size_t places, absl::Time deadline);

  // Appends `requests` in one step, consuming up to requests.size() places of `reservation`
  // (the rest are given back).
  void Push(Reservation& reservation, std::vector<MirrorRequest> requests) ABSL_LOCKS_EXCLUDED(mu_);

  // Up to `max` requests in queue order; waits up to `wait` for the first. Empty when none
  // came or the queue is closed.
  std::vector<MirrorRequest> PopBatch(size_t max, absl::Duration wait);

  // Wakes every waiter; later Reserve calls fail and PopBatch returns what is left.
  void Close() ABSL_LOCKS_EXCLUDED(mu_);

  // `pushed` (may be empty: none) is called after each Push and at Close, on the pushing
  // thread, with no lock held (it may pop), so the consumer (the remote adaptor) can ship
  // at once or wake its sender. It must stay callable until the last Push returned: unset
  // it only once nothing pushes any more.
  void SetPushHook(std::function<void()> pushed) ABSL_LOCKS_EXCLUDED(mu_);

  QueueCounters Counters();

 private:
  friend class Reservation;
  void Unreserve(size_t places);
  void PushLocked(Reservation& reservation, std::vector<MirrorRequest> requests)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const size_t capacity_;
  absl::Mutex mu_;
  std::deque<MirrorRequest> queue_ ABSL_GUARDED_BY(mu_);
  size_t reserved_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t peak_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t pushed_ ABSL_GUARDED_BY(mu_) = 0;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  std::function<void()> pushed_hook_ ABSL_GUARDED_BY(mu_);
};

}  // namespace simarray::mirror
