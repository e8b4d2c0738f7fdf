#pragma once
// Helpers shared by the cache tests: an in-memory BackingStore (the disk adaptor's seam), a
// scratch directory, region sizing and byte-level access to a region file.

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "common/scratch_dir.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/cache/region_format.h"

namespace simarray::cache::testing {

// Tracks never written read as a fill byte derived from the track number, so a test can tell
// "came from the backing store" from anything it wrote. Thread-safe.
class FakeBackingStore : public BackingStore {
 public:
  static uint8_t FillFor(TrackKey key) {
    return static_cast<uint8_t>(0xB0 + (key.volume_id * 7 + key.track) % 0x40);
  }

  absl::Status ReadTrack(TrackKey key, std::span<uint8_t> out) override {
    std::lock_guard<std::mutex> lock(mu_);
    ++reads_;
    auto it = tracks_.find({key.volume_id, key.track});
    if (it == tracks_.end()) {
      std::fill(out.begin(), out.end(), FillFor(key));
    } else {
      std::copy(it->second.begin(), it->second.end(), out.begin());
    }
    return absl::OkStatus();
  }

  void Set(TrackKey key, std::vector<uint8_t> data) {
    std::lock_guard<std::mutex> lock(mu_);
    tracks_[{key.volume_id, key.track}] = std::move(data);
  }

  uint64_t reads() {
    std::lock_guard<std::mutex> lock(mu_);
    return reads_;
  }

 private:
  std::mutex mu_;
  std::map<std::pair<uint32_t, uint64_t>, std::vector<uint8_t>> tracks_;
  uint64_t reads_ = 0;
};

// A fresh scratch directory, removed with everything in it.
class TempDir : public simarray::testing::ScratchDir {
 public:
  TempDir() : ScratchDir("simarray-cache-test") {}
};

// The region size that gives exactly `slots` slots (see CacheRegion::SlotCountFor).
inline uint64_t RegionSizeFor(uint64_t slots, uint32_t track_size, uint64_t pen_records = 0) {
  return kRegionHeaderBytes + pen_records * sizeof(PenRecord) + 4096 +
         slots * (track_size + sizeof(SlotEntry));
}

// Options for a cache of exactly `slots` slots: persistent in the region file `path`, or
// anonymous memory (not persistent) when `path` is empty.
inline CacheOptions OptionsFor(uint64_t slots, uint32_t track_size, const std::string& path = "",
                               uint64_t pen_records = 0) {
  CacheOptions o;
  o.path = path;
  o.size = RegionSizeFor(slots, track_size, pen_records);
  o.track_size = track_size;
  o.pen_records = pen_records;
  o.persistent = !path.empty();
  return o;
}

// Opens (or recovers) the cache, reading misses from `store`; fails the test on error.
inline std::unique_ptr<CacheMemory> MustOpen(const CacheOptions& o, BackingStore* store,
                                             RecoveryReport* report) {
  auto cache = CacheMemory::Open(o, report);
  INFO(cache.status().ToString());
  REQUIRE(cache.ok());
  (*cache)->SetBackingStore(store);
  return std::move(*cache);
}

// Byte offset of a slot's entry in the region file (header, then the slot table).
inline uint64_t EntryOffset(uint64_t slot) { return kRegionHeaderBytes + slot * sizeof(SlotEntry); }

inline bool FlipByte(const std::string& path, uint64_t offset) {
  std::fstream f(path, std::ios::in | std::ios::out | std::ios::binary);
  if (!f) return false;
  f.seekg(static_cast<std::streamoff>(offset));
  char c = 0;
  if (!f.get(c)) return false;
  f.seekp(static_cast<std::streamoff>(offset));
  f.put(static_cast<char>(c ^ 0x5A));
  return static_cast<bool>(f.flush());
}

// What a kill -9 leaves behind: the region file as it is now (the mapping is MAP_SHARED, so
// the file shows every store made so far), copied aside while the cache stays open.
inline bool SnapshotFile(const std::string& from, const std::string& to) {
  std::error_code ec;
  return std::filesystem::copy_file(from, to, std::filesystem::copy_options::overwrite_existing,
                                    ec);
}

inline std::vector<uint8_t> Bytes(std::span<const uint8_t> s) { return {s.begin(), s.end()}; }

// True when every byte of `data` in [begin, end) is `value`.
inline bool AllEqual(std::span<const uint8_t> data, size_t begin, size_t end, uint8_t value) {
  for (size_t i = begin; i < end; ++i) {
    if (data[i] != value) return false;
  }
  return true;
}

}  // namespace simarray::cache::testing
