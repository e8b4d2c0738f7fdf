#pragma once
// Histogram: a latency (or any non-negative value) distribution over fixed bucket bounds,
// for the Prometheus endpoint. Record() is lock-free (relaxed atomics, one per bucket) so a
// write path can call it on every request; Snapshot() reads the buckets without stopping
// writers, so a snapshot taken during recording is consistent in itself (count is the sum
// of the buckets) even if sum lags by a few values. Thread-safe.

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/time/time.h"

namespace simarray {

class Histogram {
 public:
  // `bounds`: ascending upper bounds (inclusive) of the finite buckets; a +Inf bucket
  // follows them.
  explicit Histogram(std::vector<double> bounds = LatencyBounds());
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // 10 us .. 1 s in seconds, 1-2.5-5 steps.
  static std::vector<double> LatencyBounds();

  void Record(double value);
  void Record(absl::Duration duration) { Record(absl::ToDoubleSeconds(duration)); }

  struct Snapshot {
    std::vector<double> bounds;
    std::vector<uint64_t> cumulative;  // bounds.size() + 1 entries; the last is +Inf
    double sum = 0;
    uint64_t count = 0;  // == cumulative.back()
  };
  Snapshot Read() const;

 private:
  const std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;  // not cumulative; bounds_.size() + 1
  std::atomic<double> sum_{0};
};

}  // namespace simarray
