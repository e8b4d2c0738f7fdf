#pragma once
// Helpers shared by the mirror tests: an in-memory BackingStore (the disk adaptor's seam)
// and an anonymous cache memory to stage and publish into.

#include <stdlib.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <memory>
#include <span>
#include <string>

#include "absl/status/status.h"
#include "common/scratch_dir.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/mirror/mirror_request.h"

namespace simarray::mirror::testing {

inline constexpr uint32_t kTrack = 4096;

// Every track reads as a fill byte derived from its number. Thread-safe (stateless).
class FakeBackingStore : public cache::BackingStore {
 public:
  static uint8_t FillFor(cache::TrackKey key) {
    return static_cast<uint8_t>(0xB0 + (key.volume_id * 7 + key.track) % 0x40);
  }
  absl::Status ReadTrack(cache::TrackKey key, std::span<uint8_t> out) override {
    std::fill(out.begin(), out.end(), FillFor(key));
    return absl::OkStatus();
  }
};

// An anonymous cache of `slots` slots (and `pen_records` pen records), or null with the
// error in `status`.
inline std::unique_ptr<cache::CacheMemory> OpenCache(uint64_t slots, uint64_t pen_records,
                                                     cache::BackingStore* store,
                                                     absl::Status* status) {
  cache::CacheOptions o;
  o.size = cache::kRegionHeaderBytes + pen_records * sizeof(cache::PenRecord) + 4096 +
           slots * (kTrack + sizeof(cache::SlotEntry));
  o.track_size = kTrack;
  o.pen_records = pen_records;
  o.persistent = false;
  cache::RecoveryReport report;
  auto cache = cache::CacheMemory::Open(o, &report);
  *status = cache.status();
  if (!cache.ok()) return nullptr;
  (*cache)->SetBackingStore(store);
  return std::move(*cache);
}

// A fresh scratch directory, removed with everything in it.
class TempDir : public simarray::testing::ScratchDir {
 public:
  TempDir() : ScratchDir("simarray-mirror-test") {}
};

inline MirrorRequest Request(uint64_t write_id, cache::TrackKey key, uint32_t slot = 0,
                             uint32_t offset = 0, uint32_t length = kTrack) {
  MirrorRequest r;
  r.key = key;
  r.slot = slot;
  r.offset = offset;
  r.length = length;
  r.write_id = write_id;
  return r;
}

}  // namespace simarray::mirror::testing
