#pragma once
// GoldCopy (docs/async.md, "Gold copy"): an async mirror's point-in-time copy of its last
// consistent image, kept while that image is being overwritten by something that is not a
// whole cycle (a resync, a cycle closed while the primary still owed tracks, a repair).
// Before the first such record is applied, the gold copy begins, standing for the cycle
// boundary the mirror held; from then on the first change to each track keeps the track's
// image as it was (copy on first write). Host reads on the mirror and a failover see the
// gold image; the next consistent cycle drops it.
//
// Storage: data_dir/gold/gold.state names the boundary (written like every state file,
// WriteFileAtomically) and data_dir/gold/gold.chunks holds the kept images, one track per
// chunk behind a header with a CRC-32C (the delta set extension's format,
// mirror/delta_set_extension.h). A chunk is written before the track changes; like the cache
// region, nothing is fsynced beyond the state file, so a kill -9 keeps the copy (a power
// cut is not modelled). A daemon that restarts while its image is not consistent reloads
// the copy from these two files.
//
// Thread-safe: the record applier keeps images under its locks, host reads look them up
// concurrently.

#include <atomic>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/figures.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/mirror/delta_set_extension.h"
#include "simarray/remote/cycle_journal.h"

namespace simarray::remote {

struct GoldCounters {
  bool on = false;      // gold_copy = "auto"
  bool held = false;    // a gold copy stands now
  CycleMark mark;       // the boundary it stands for (while held)
  absl::Time since;     // when it began (while held)
  uint64_t tracks = 0;  // tracks kept now
  uint64_t taken = 0;   // gold copies begun, ever
  // Gold copies ended, ever: dropped when the image was consistent again, published back
  // at a promotion, or lost.
  uint64_t dropped = 0;
  uint64_t restored = 0;  // tracks published back at a promotion, ever
  uint64_t lost = 0;      // gold copies lost (a track could not be kept), ever
};

// The counters as figures (simarray/base/figures.h), in a target's cycles section.
void Describe(const GoldCounters& counters, FigureSink& sink);

class GoldCopy {
 public:
  // `dir` is created if missing; nothing is read yet (Reload).
  GoldCopy(std::string dir, uint32_t track_size);
  ~GoldCopy();
  GoldCopy(const GoldCopy&) = delete;
  GoldCopy& operator=(const GoldCopy&) = delete;

  // At start, before any apply. `consistent`: the cycle journal says the image is a cycle
  // boundary, so a copy left from before is not needed and is dropped. Otherwise a copy left
  // from before is loaded (`capacity`: the tracks of every volume now). Returns whether one
  // is held. DATA_LOSS naming the file when the state file is malformed; INTERNAL on I/O.
  absl::StatusOr<bool> Reload(bool consistent, uint64_t capacity);

  // A gold copy begins, standing for `mark` (the boundary the image holds now), with room
  // for `capacity` tracks. The state file is durable before this returns OK; on error no
  // copy is held and nothing changed.
  absl::Status Begin(CycleMark mark, uint64_t capacity) ABSL_LOCKS_EXCLUDED(mu_);
  // Keeps `image` (a whole track) as the gold image of `key` unless one is kept already.
  // Call before the track changes, while held. An error (the chunk file is full or cannot
  // be written) means the copy can no longer stand for its boundary: the caller drops it.
  absl::Status Keep(cache::TrackKey key, std::span<const uint8_t> image) ABSL_LOCKS_EXCLUDED(mu_);
  // Whether an image of `key` is kept (false when no copy is held).
  bool Holds(cache::TrackKey key) const ABSL_LOCKS_EXCLUDED(mu_);
  // The gold image of `key` into `out` (a whole track): true; false when none is kept for
  // it. DATA_LOSS when its chunk fails its check.
  absl::StatusOr<bool> Read(cache::TrackKey key, std::span<uint8_t> out) const
      ABSL_LOCKS_EXCLUDED(mu_);
  // The tracks kept, in no order.
  std::vector<cache::TrackKey> Tracks() const ABSL_LOCKS_EXCLUDED(mu_);
  // Drops the copy: the state file goes first (durably), then the chunks. `why` is logged;
  // `restored`: tracks published back (a promotion) to count.
  void Drop(std::string_view why, uint64_t restored = 0) ABSL_LOCKS_EXCLUDED(mu_);
  // Counts a copy dropped because a track could not be kept.
  void CountLost();

  // One relaxed load: whether a copy is held.
  bool held() const { return held_.load(std::memory_order_acquire); }
  CycleMark mark() const ABSL_LOCKS_EXCLUDED(mu_);
  GoldCounters Counters() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  absl::Status OpenChunks(uint64_t capacity, bool keep) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string StatePath() const { return dir_ + "/gold.state"; }
  std::string ChunksPath() const { return dir_ + "/gold.chunks"; }

  const std::string dir_;
  const uint32_t track_size_;
  std::atomic<bool> held_{false};
  mutable absl::Mutex mu_;
  std::unique_ptr<mirror::DeltaSetExtension> chunks_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<cache::TrackKey, uint32_t, cache::TrackKeyHash> kept_ ABSL_GUARDED_BY(mu_);
  CycleMark mark_ ABSL_GUARDED_BY(mu_);
  absl::Time since_ ABSL_GUARDED_BY(mu_);
  uint64_t taken_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t restored_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t lost_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace simarray::remote
