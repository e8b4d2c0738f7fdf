#pragma once
// HoldingPen: where one host adaptor buffers the mirror requests of writes that are not yet
// validated (claims 1, 3, 6, 10). A valid write's requests are Released all together (to
// the mirror queue, by the commit point); an invalid write's are Deleted all together
// (claims 5, 8, 9), so nothing of it reaches the mirror.
//
// Placement: kLocal keeps the pen in the host adaptor's own memory (claim 11); kCache keeps
// a record of every buffered request in a reserved area of the cache region (claim 12),
// which recovery finds and drops. Bounded: `capacity` requests; Buffer fails
// RESOURCE_EXHAUSTED past it (the mirror-queue reservation taken first keeps this from
// happening when capacity >= queue capacity). Thread-safe.

#include <cstdint>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "simarray/base/figures.h"
#include "simarray/cache/cache_region.h"
#include "simarray/mirror/mirror_request.h"

namespace simarray::mirror {

enum class PenPlacement { kLocal, kCache };

struct PenCounters {
  uint64_t depth = 0;
  uint64_t requests_buffered = 0;
  uint64_t requests_sent = 0;
  uint64_t requests_deleted = 0;
};
// The counters as figures (simarray/base/figures.h), in a host adaptor's section.
void Describe(const PenCounters& counters, FigureSink& sink);

class HoldingPen {
 public:
  // For kCache, `region` (borrowed, must outlive the pen) provides records
  // [first_record, first_record + capacity).
  HoldingPen(PenPlacement placement, size_t capacity, cache::CacheRegion* region = nullptr,
             uint64_t first_record = 0);
  HoldingPen(const HoldingPen&) = delete;
  HoldingPen& operator=(const HoldingPen&) = delete;

  PenPlacement placement() const { return placement_; }
  size_t capacity() const { return capacity_; }

  absl::Status Buffer(MirrorRequest request);
  // Every request of `write_id`, in the order buffered; the pen forgets them.
  std::vector<MirrorRequest> Release(uint64_t write_id);
  // Deletes every request of `write_id`; returns how many there were.
  size_t Delete(uint64_t write_id);

  PenCounters Counters();

 private:
  struct Held {
    MirrorRequest request;
    int64_t record = -1;  // index into the region's pen records (kCache)
  };
  std::vector<MirrorRequest> TakeLocked(uint64_t write_id) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const PenPlacement placement_;
  const size_t capacity_;
  cache::CacheRegion* const region_;
  const uint64_t first_record_;

  absl::Mutex mu_;
  std::unordered_map<uint64_t, std::vector<Held>> writes_ ABSL_GUARDED_BY(mu_);
  std::vector<uint64_t> free_records_ ABSL_GUARDED_BY(mu_);
  uint64_t depth_ ABSL_GUARDED_BY(mu_) = 0;
  PenCounters counters_ ABSL_GUARDED_BY(mu_);
};

}  // namespace simarray::mirror
