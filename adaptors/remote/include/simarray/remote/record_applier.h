#pragma once
// RecordApplier: how a mirror applies what its primary ships. Each record is a byte range
// of one track stamped with the primary's sequence number; it is staged into a cache slot
// and published with that sequence, so the mirror's cache follows the primary's history.
// A record older than what the track already holds is not applied (never older over newer).
// Thread-safe (applies are serialised).

#include <atomic>
#include <cstdint>
#include <span>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/volume_catalog.h"

namespace simarray::remote {

class RecordApplier {
 public:
  // Both borrowed; must outlive the applier.
  RecordApplier(cache::CacheMemory* cache, disk::VolumeCatalog* volumes)
      : cache_(cache), volumes_(volumes) {}

  // NOT_FOUND for an unknown volume, OUT_OF_RANGE for a range outside the track or volume.
  // Returns true when applied, false when skipped as older than the track's data.
  absl::StatusOr<bool> Apply(uint32_t volume_id, uint64_t track, uint32_t offset,
                             std::span<const uint8_t> data, uint64_t sequence);

  uint64_t applied_sequence() const { return applied_sequence_.load(); }
  uint64_t records_applied() const { return records_applied_.load(); }
  uint64_t records_skipped() const { return records_skipped_.load(); }

 private:
  cache::CacheMemory* const cache_;
  disk::VolumeCatalog* const volumes_;
  absl::Mutex mu_;
  std::atomic<uint64_t> applied_sequence_{0};
  std::atomic<uint64_t> records_applied_{0};
  std::atomic<uint64_t> records_skipped_{0};
};

}  // namespace simarray::remote
