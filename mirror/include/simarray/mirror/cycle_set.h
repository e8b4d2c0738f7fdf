#pragma once
// CycleSet: the cycles of asynchronous mode on the primary (docs/async.md; SRDF/A's delta
// sets). Every committed write joins the *capture* cycle. At a cycle switch the capture
// cycle closes at a boundary sequence, becomes the *transmit* cycle the remote adaptor
// ships, and a new capture cycle opens. Cycles are daemon-wide, across every volume (one
// consistency group).
//
// A cycle keeps one entry per track it touched: a pin on the track's latest published slot,
// that write's sequence, and the byte range the cycle changed. K writes to one track inside
// a cycle therefore ship once, with the latest data (write folding). Slots are copy-on-write,
// so a write to a track whose slot the transmit cycle pins takes a new slot and shipping
// never sees data newer than the cycle's boundary.
//
// States:
//  - cycling: as above. Cycles keep flowing while a resync runs (new writes go to cycles,
//    so the resync only shrinks); a cycle closed while nothing was left to resync is
//    *consistent*: once the mirror applies it, it holds the primary's image as of the
//    cycle's boundary;
//  - owed: the link is down, or the cycles pinned more than `slot_limit` cache slots
//    (pull-ahead; with a delta set extension, only once it is full too: until then the
//    tracks past the limit are paged out to it, docs/async.md "Delta set extension"). A commit then
//    only marks its track for resync, as a sync pair does with its link down. Resume returns to
//    cycling once the link is up and at most half of `slot_limit` tracks are left to resync, so
//    memory stays bounded however long the link is slow or gone.
//
// The commit point calls Capture, Switch and Resume under its own lock: that makes a switch
// atomic with sequence assignment, so every write with a sequence at or below a cycle's
// boundary is in that cycle or an earlier one. Thread-safe (one mutex).

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/figures.h"
#include "simarray/base/histogram.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/mirror/delta_set_extension.h"
#include "simarray/mirror/mirror_request.h"
#include "simarray/mirror/owed_tracks.h"
#include "simarray/mirror/write_pacing.h"

namespace simarray::mirror {

struct CycleCounters {
  bool cycling = false;
  bool consistent = false;  // the mirror holds a cycle boundary captured while cycling
  uint64_t capture_cycle = 0;
  uint64_t transmit_cycle = 0;  // 0: none
  uint64_t applied_cycle = 0;
  uint64_t applied_sequence = 0;
  double seconds_behind = 0;  // since the applied cycle's switch; 0 before the first
  uint64_t capture_tracks = 0, capture_bytes = 0;
  uint64_t transmit_tracks = 0, transmit_bytes = 0;
  uint64_t writes_captured = 0;
  uint64_t writes_folded = 0;
  uint64_t cycles_switched = 0;
  uint64_t cycles_applied = 0;
  uint64_t cycle_records_shipped = 0;
  uint64_t pull_aheads = 0;
  uint64_t pinned_slots = 0;
  uint64_t slot_limit = 0;
  // Write pacing (write_pacing.h): the tracks held it starts above (0: off), the delay a write
  // gets now, and the writes it delayed and by how long in all.
  uint64_t pacing_threshold = 0;
  uint64_t pacing_delay_us = 0;
  uint64_t writes_paced = 0;
  double pacing_seconds = 0;
  SpillCounters dse;  // the delta set extension's (all 0: none)
};
// Figures a target describes too, from what it applied (RecordApplier).
inline constexpr Figure kMirrorConsistentFigure{
    "simarray_mirror_consistent", FigureKind::kGauge,
    "1 while the mirror's image is the primary's as of a cycle boundary (on the primary: as its "
    "acks tell).",
    "mirror_consistent"};
inline constexpr std::string_view kCycleNumber = "simarray_cycle_number";
inline constexpr std::string_view kCycleNumberHelp =
    "Async cycle numbers: capture (open), transmit (in transit, 0: none), applied (the mirror's "
    "last whole cycle).";
inline constexpr Figure kAppliedCycleFigure{
    kCycleNumber, FigureKind::kGauge, kCycleNumberHelp, "applied_cycle", "cycle", "applied"};
inline constexpr Figure kCycleAppliedSequenceFigure{
    "simarray_cycle_applied_sequence", FigureKind::kGauge,
    "Last sequence of the cycle the mirror applied last (on the primary: as its acks tell).",
    "applied_sequence"};
// A source's cycles as figures (simarray/base/figures.h), in a cycles section.
void Describe(const CycleCounters& counters, FigureSink& sink);

class CycleSet {
 public:
  // Both borrowed; must outlive this. `slot_limit`: most cache slots the capture and
  // transmit cycles may pin before they fall back to owed tracks. Starts in state owed
  // (whatever is owed from before is resynced first).
  CycleSet(cache::CacheMemory* cache, OwedTracks* owed, absl::Duration cycle_time,
           uint64_t slot_limit);
  CycleSet(const CycleSet&) = delete;
  CycleSet& operator=(const CycleSet&) = delete;

  // Commit point (its lock held): write `sequence` published `slot` as the image of `key`,
  // changing [offset, offset + length). The track must already be marked written in the
  // owed tracks.
  void Capture(cache::TrackKey key, uint64_t sequence, uint32_t offset, uint32_t length,
               cache::SlotRef slot);
  // Commit point (its lock held), `boundary` = the last sequence assigned. While cycling,
  // with no transmit cycle outstanding and the capture cycle open for at least the cycle
  // time, closes it at `boundary` and makes it the transmit cycle. Empty cycles switch too,
  // so the mirror's boundary keeps moving. Returns whether it switched.
  bool Switch(uint64_t boundary) { return Switch(boundary, /*on_time=*/true, true); }
  // The same; `on_time` false switches whatever the capture cycle's age (a cycle switched
  // with the others of a multi-group set, CommitPoint::SwitchTogether); `may_be_consistent`
  // false closes it not consistent whatever else holds (a cascaded route whose boundary is
  // not known to cover this array's image yet, CommitPoint::NumberByPassage).
  bool Switch(uint64_t boundary, bool on_time, bool may_be_consistent);
  // Whether Switch(boundary, false) would switch now: cycling, no transmit cycle pending.
  bool CanSwitch();
  // A cascaded array (docs/groups.md, "Topologies") ships on what it receives: `upstream`
  // says whether its own source is resyncing it, and while it does the cycles close not
  // consistent (this array's image mixes moments). Set before the first switch.
  void SetUpstream(std::function<bool()> resyncing) { upstream_resyncing_ = std::move(resyncing); }
  // Commit point (its lock held, so no commit is half done), link up: in state owed, with at
  // most slot_limit / 2 tracks left to resync, opens a capture cycle; every later write
  // joins it. Returns whether it is cycling.
  bool Resume();
  // When Switch will next close the capture cycle (the remote adaptor waits until then):
  // the capture cycle's opening plus the cycle time while cycling with no transmit cycle
  // outstanding, else InfiniteFuture (an Applied, Resume or LinkLost changes it).
  absl::Time NextSwitch();

  // Remote adaptor. Up to `max` records of the transmit cycle not taken yet, then (once
  // all are taken) its end marker. Each record pins its slot and covers the bytes the cycle
  // changed; its sequence is the track's latest write in the cycle.
  std::vector<MirrorRequest> TakeTransmit(size_t max);
  // The transmit cycle has records or its marker left to take.
  bool TransmitPending();
  // A transmit cycle is in progress (switched, not yet applied by the mirror).
  bool TransmitOutstanding();
  // ... and it was closed consistent: until the mirror applies it, no resync record may be
  // shipped (one applied first would be newer than the boundary the cycle claims).
  bool ConsistentTransmitOutstanding();
  // Records shipped outside the cycles (an admin repair): the transmit cycle no longer
  // makes the pair Consistent when it applies.
  void Taint();
  // The mirror applied cycle `cycle` whole: its tracks are acknowledged (owed bits clear
  // unless a newer write is pending) and the next switch may happen.
  void Applied(uint64_t cycle);
  // The link went down (or the adaptor stopped): the mirror discards the cycle it was
  // receiving. Every track of the transmit and capture cycles is marked for resync and
  // the state becomes owed.
  void LinkLost();

  // The mirror stages a whole cycle in its own cache (and its delta set extension): the
  // cycles hold at most `tracks` (what it told in Hello).
  void LimitToPeer(uint64_t tracks);
  // Pages track images past the slot limit out to `dse` (borrowed, outlives this) instead of
  // pulling ahead. Before the first capture.
  void SetSpill(DeltaSetExtension* dse);
  // The mirror last applied cycle `cycle`: later cycles are numbered above it.
  void NumberAfter(uint64_t cycle);

  // Write pacing (write_pacing.h); off until set. At start or at run time.
  void SetPacing(const PacingSettings& settings) ABSL_LOCKS_EXCLUDED(mu_);
  // The delay pacing gives a write committed now (lock-free: one atomic load while it is 0),
  // counted as a paced write when not 0.
  absl::Duration TakePacingDelay() ABSL_LOCKS_EXCLUDED(mu_);
  // The delays TakePacingDelay gave, in seconds.
  const Histogram& pacing_delays() const { return pacing_delays_; }

  bool cycling();
  uint64_t pull_aheads();
  // Nothing captured or in transit.
  bool Idle();
  CycleCounters Counters();

 private:
  struct Track {
    cache::SlotRef slot;            // not valid while spilled
    uint32_t image_slot = 0;        // the slot the write published (its mirror-owed flag)
    std::optional<uint32_t> chunk;  // paged out to the delta set extension
    uint64_t sequence = 0;
    uint32_t begin = 0, end = 0;  // bytes of the track changed in the cycle
  };
  struct Shipped {
    cache::TrackKey key;
    uint32_t slot = 0;
    uint64_t sequence = 0;
  };
  struct Cycle {
    uint64_t number = 0;
    uint64_t boundary = 0;
    absl::Time opened;
    absl::Time switched;
    std::unordered_map<cache::TrackKey, Track, cache::TrackKeyHash> tracks;
    uint64_t bytes = 0;
    uint64_t spilled = 0;  // tracks paged out to the delta set extension
    // Transmit only: what was taken for shipping, acknowledged when the cycle applies.
    std::vector<Shipped> shipped;
    bool marker_taken = false;
    bool active = false;
    bool consistent = false;  // nothing was left to resync when it closed (its marker says so)
    bool tainted = false;     // a pull-ahead or a repair since: the pair is not Consistent
  };
  void ToOwedLocked(Cycle& cycle) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void OpenCaptureLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t SlotLimitLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Tracks in the capture and transmit cycles, those of them in cache, and how many they
  // may hold in all (cache share plus delta set extension, at most what the mirror stages).
  uint64_t TracksLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t PinnedLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  uint64_t CapacityLocked() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Pages `track` of the capture cycle out; false when there is no room (or no DSE).
  bool SpillLocked(const cache::TrackKey& key, Track& track) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void UnspillLocked(Cycle& cycle, Track& track) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Works out the pacing delay again: after every capture, and whenever the tracks held or
  // the limits change.
  void PaceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  cache::CacheMemory* const cache_;
  OwedTracks* const owed_;
  const absl::Duration cycle_time_;
  const uint64_t slot_limit_;
  uint64_t peer_slot_limit_ ABSL_GUARDED_BY(mu_) = UINT64_MAX;
  DeltaSetExtension* dse_ ABSL_GUARDED_BY(mu_) = nullptr;
  absl::Mutex mu_;
  bool cycling_ ABSL_GUARDED_BY(mu_) = false;
  bool consistent_ ABSL_GUARDED_BY(mu_) = false;
  std::function<bool()> upstream_resyncing_;
  uint64_t next_cycle_ ABSL_GUARDED_BY(mu_) = 1;
  Cycle capture_ ABSL_GUARDED_BY(mu_);
  Cycle transmit_ ABSL_GUARDED_BY(mu_);
  uint64_t applied_cycle_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t applied_sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::Time applied_switched_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  CycleCounters counters_ ABSL_GUARDED_BY(mu_);
  PacingSettings pacing_ ABSL_GUARDED_BY(mu_);
  std::atomic<int64_t> pacing_delay_ns_{0};  // what PaceLocked worked out last
  Histogram pacing_delays_{Histogram::LatencyBounds()};
};

}  // namespace simarray::mirror
