#pragma once
// OwedTracks: which tracks the mirror may not have. Two views:
//
//  - the durable bitmap, one bit per track per volume in `owed-<volume id>.bitmap` under
//    data_dir, memory-mapped so a set bit survives kill -9. A track's bit is set when a
//    write to it commits (before its request reaches the mirror queue) and cleared only when
//    the mirror acknowledged data at least as new as the track's latest commit. After a
//    crash, every set bit is a track to resync;
//  - the resync set: tracks the remote adaptor must ship whole because their requests were
//    dropped (link loss, suspend, queue overflow), the daemon restarted, or an initial copy
//    began. It is always a subset of the bitmap.
//
// Thread-safe (one mutex).

#include <cstdint>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "simarray/base/event_count.h"
#include "simarray/base/figures.h"
#include "simarray/cache/cache_memory.h"

namespace simarray::mirror {

class OwedTracks {
 public:
  explicit OwedTracks(std::string data_dir) : data_dir_(std::move(data_dir)) {}
  ~OwedTracks();
  OwedTracks(const OwedTracks&) = delete;
  OwedTracks& operator=(const OwedTracks&) = delete;

  // Maps (creating if needed) the bitmap of a volume of `tracks` tracks. Tracks whose bits
  // are set join the resync set (they were owed when the daemon stopped).
  absl::Status AddVolume(uint32_t volume_id, uint64_t tracks);
  // Forgets a deleted volume and removes its bitmap.
  void DropVolume(uint32_t volume_id);

  // A write with `sequence` committed to `key`.
  void MarkWritten(cache::TrackKey key, uint64_t sequence);
  // The mirror acknowledged `key`'s data as of `sequence`: the bit clears when no later
  // write is pending. `resync` says it was a whole-track resync record: it leaves the
  // resync set unless NeedResync marked it again after it was taken (a later write that
  // will not ship otherwise); a later write that ships by itself (queue or cycle) keeps
  // only the bit.
  void Acked(cache::TrackKey key, uint64_t sequence, bool resync);
  // The track's request will not be shipped: it must be resynced.
  void NeedResync(cache::TrackKey key);
  // Every track of the volume whose bit is set, or `all`, joins the resync set (initial
  // copy: the caller passes the tracks that hold data).
  void NeedResyncAll(uint32_t volume_id, const std::vector<uint64_t>& tracks);

  // Up to `max` tracks of the resync set not already taken, oldest volume first; they stay
  // in the set (marked taken) until Acked or Untake.
  std::vector<cache::TrackKey> TakeResync(size_t max);
  // Taken tracks whose records were lost (link down again): they can be taken again.
  void UntakeAll();

  // `changed` (may be null: none) is notified, under this object's lock, whenever the
  // resync set changes: tracks join or leave it or become takeable again (the remote
  // adaptor's sender and those waiting for the resync to end wait on it). It must outlive
  // this object or be unset first.
  void SetResyncEvent(EventCount* changed);

  // Every track whose bit is set (what this side owes its peer).
  std::vector<cache::TrackKey> ListOwed();
  // Forgets everything owed (the peer was made identical by other means).
  void ClearAll();

  uint64_t owed() ABSL_LOCKS_EXCLUDED(mu_);
  uint64_t owed(uint32_t volume_id);
  uint64_t resync_pending();
  bool resyncing();
  uint64_t tracks_resynced();

 private:
  struct Bitmap {
    uint8_t* bits = nullptr;
    size_t bytes = 0;
    uint64_t tracks = 0;
    uint64_t set = 0;
  };
  bool TestLocked(cache::TrackKey key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void SetLocked(cache::TrackKey key, bool value) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  std::string PathFor(uint32_t volume_id) const;

  const std::string data_dir_;
  absl::Mutex mu_;
  std::map<uint32_t, Bitmap> volumes_ ABSL_GUARDED_BY(mu_);
  // Latest committed sequence of each owed track (absent after a restart: unknown, so any
  // resync read after the restart covers it).
  std::unordered_map<cache::TrackKey, uint64_t, cache::TrackKeyHash> latest_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<uint32_t, uint64_t>> resync_ ABSL_GUARDED_BY(mu_);
  std::set<std::pair<uint32_t, uint64_t>> taken_ ABSL_GUARDED_BY(mu_);
  // Taken tracks marked for resync again since: shipped once more.
  std::set<std::pair<uint32_t, uint64_t>> again_ ABSL_GUARDED_BY(mu_);
  uint64_t tracks_resynced_ ABSL_GUARDED_BY(mu_) = 0;
  void ResyncChangedLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  EventCount* resync_event_ ABSL_GUARDED_BY(mu_) = nullptr;
};

// Owed and resync figures (simarray/base/figures.h), in the array's top section (the resync
// ones in its link section).
void Describe(OwedTracks& owed, FigureSink& sink);

}  // namespace simarray::mirror
