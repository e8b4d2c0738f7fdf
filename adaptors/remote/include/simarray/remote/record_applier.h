#pragma once
// RecordApplier: how a mirror applies what its primary ships. Each record is a byte range
// of one track stamped with the primary's sequence number; it is staged into a cache slot
// and published with that sequence, so the mirror's cache follows the primary's history.
// A record older than what the track already holds is not applied (never older over newer).
//
// Async mode: the records of a cycle are staged first (Stage) and applied together
// (ApplyCycle) under the image lock, which host reads take shared, so a reader sees the
// mirror either before or after a cycle, never in between. ApplyCycle first makes every
// record a whole-track image sealed with the cycle's write id; with a CycleJournal the apply
// is then atomic across a crash too (cycle_journal.h). A cycle larger than the mirror's
// cache share pages the records past it out to a delta set extension (StageInCycle); those
// are redone from their chunks instead of from sealed slots (docs/async.md, "Delta set
// extension").
// With a GoldCopy (gold_copy.h), the first record that makes a consistent image stop being a
// cycle boundary begins a gold copy of that boundary, every track is kept before its first
// change, and the next consistent cycle drops the copy (docs/async.md, "Gold copy").
// Thread-safe (applies are serialised).

#include <atomic>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "simarray/base/fault_injector.h"
#include "simarray/base/figures.h"
#include "simarray/cache/cache_memory.h"
#include "simarray/disk/volume_catalog.h"
#include "simarray/mirror/delta_set_extension.h"
#include "simarray/remote/cycle_journal.h"
#include "simarray/remote/gold_copy.h"

namespace simarray::remote {

// One record held in cache, not yet visible to readers. Move-only; the slot is freed if it
// is never applied.
struct StagedRecord {
  cache::StagedSlot staged;
  cache::TrackPin pin;  // partial records: the track's image stays in cache to fill from
  uint32_t offset = 0;
  uint32_t length = 0;
  uint64_t sequence = 0;
  // The bytes the record changes, kept when ApplyCycle fills it out to a whole image (which
  // then differs from the track's image only there, so only those blocks get destaged).
  cache::TrackRange changed;
  // More records of the same write follow (ShipRecord.write_continues).
  bool write_continues = false;
  // Paged out to the delta set extension (its chunk holds track and bytes): `staged` and
  // `pin` are empty until the cycle is applied.
  std::optional<uint32_t> chunk;
  cache::TrackKey spilled_key;  // a paged-out record's track
};

class RecordApplier {
 public:
  // All borrowed; must outlive the applier. `journal` and `faults` may be null (no crash
  // atomicity, no crash fault). `applied` is what the journal said at start.
  RecordApplier(cache::CacheMemory* cache, disk::VolumeCatalog* volumes,
                CycleJournal* journal = nullptr, FaultInjector* faults = nullptr,
                CycleMark applied = {});

  // Stage and apply at once (sync mode, resync, repair). NOT_FOUND for an unknown volume,
  // OUT_OF_RANGE for a range outside the track or volume, DEADLINE_EXCEEDED when no cache
  // slot frees up in time. Returns true when applied, false when skipped as older than the
  // track's data. The mirror's image is then no longer a cycle boundary (consistent()
  // turns false until the next whole cycle).
  // `write_continues`: more records of the same write follow (ShipRecord.write_continues).
  absl::StatusOr<bool> Apply(uint32_t volume_id, uint64_t track, uint32_t offset,
                             std::span<const uint8_t> data, uint64_t sequence,
                             bool write_continues = false) ABSL_LOCKS_EXCLUDED(image_mu_, mu_);

  // Apply, without waiting: nullopt (and nothing done) when it would have to wait for a
  // free cache slot, a disk read of a partial record's track, a host read holding the image
  // lock, or a journal note (the first apply after a cycle boundary). The Ship stream's
  // reaction tries this and hands the record to a thread that may wait only when it fails.
  std::optional<absl::StatusOr<bool>> TryApply(uint32_t volume_id, uint64_t track, uint32_t offset,
                                               std::span<const uint8_t> data, uint64_t sequence,
                                               bool write_continues = false)
      ABSL_LOCKS_EXCLUDED(image_mu_, mu_);

  // Copies a record into a staging slot (pinning its track when partial); the same errors
  // as Apply.
  absl::StatusOr<StagedRecord> Stage(uint32_t volume_id, uint64_t track, uint32_t offset,
                                     std::span<const uint8_t> data, uint64_t sequence);
  // Async: Stage for a record of cycle `cycle` of which `in_cache` records are staged in
  // cache already; once that is the cache share SetSpill gave, the record goes to the delta
  // set extension instead (or to cache when it is full).
  absl::StatusOr<StagedRecord> StageInCycle(uint32_t volume_id, uint64_t track, uint32_t offset,
                                            std::span<const uint8_t> data, uint64_t sequence,
                                            uint64_t cycle, uint64_t in_cache);
  // Frees the chunks of records never applied (a cycle discarded), wiping their headers so a
  // restart never takes them for a cycle being applied.
  void DropSpilled(std::vector<StagedRecord>& records);
  // Records of a cycle past `stage_slots` in cache page out to `dse` (borrowed; outlives
  // this; null: none). Before the first stream.
  void SetSpill(mirror::DeltaSetExtension* dse, uint64_t stage_slots);
  // Tracks a cycle may stage here: the cache share and the delta set extension's chunks
  // (Hello tells the source; 0 without a SetSpill).
  uint64_t stage_capacity() const;
  // At start, before any stream: cycle `cycle` was being applied when the daemon stopped;
  // its paged-out records are published again from their chunks (its sealed slots were
  // redone with the cache). Returns how many.
  absl::StatusOr<uint64_t> RedoSpilled(uint64_t cycle) ABSL_LOCKS_EXCLUDED(image_mu_, mu_);

  // Keeps a gold copy of the last consistent image in `gold` (borrowed; outlives this),
  // which Reload has already been called on. Before the first stream.
  void SetGoldCopy(GoldCopy* gold) { gold_ = gold; }
  // This daemon is promoted (failover or swap) while it holds a gold copy: under the image
  // lock, every kept track is published back through `commit` (a new write of the whole
  // image, which the caller makes owed to the old primary), the copy is dropped, and the
  // applied marks say the gold boundary. Returns the boundary, or nullopt when no copy was
  // held. On an error the tracks not yet published back keep their newer data, and the
  // copy is dropped as lost (a primary reads its live image).
  using GoldCommit =
      std::function<absl::Status(cache::TrackKey key, std::span<const uint8_t> image)>;
  struct GoldRestored {
    CycleMark mark;  // the boundary the image is now
    uint64_t tracks = 0;
  };
  absl::StatusOr<std::optional<GoldRestored>> RestoreGold(const GoldCommit& commit)
      ABSL_LOCKS_EXCLUDED(image_mu_, mu_);

  // Cascaded arrays (docs/groups.md, "Topologies"): called with every record, under the
  // applier's lock, in apply order. It may publish the record itself (a volume that groups
  // of this array ship on, CommitPoint::PublishForwarded) and return whether it was applied,
  // or return nullopt and leave the record to the applier. Set before the first apply; must
  // not call the applier.
  // Whether the source is resyncing this image (ShipRequest.source_resyncing, kept by the
  // Ship stream): until it says otherwise the image mixes moments.
  void SetSourceResyncing(bool resyncing) { source_resyncing_.store(resyncing); }
  bool source_resyncing() const { return source_resyncing_.load(); }

  using Forwarder = std::function<std::optional<bool>(StagedRecord& record)>;
  void SetForwarder(Forwarder forwarder) { forwarder_ = std::move(forwarder); }
  // The Ship stream ended. If it ended inside a write (a record said more would follow),
  // this image is torn until the source resyncs it: source_resyncing() turns true (the
  // source's next message says again) and `torn` runs (set before the first apply).
  void StreamEnded() ABSL_LOCKS_EXCLUDED(mu_);
  void SetTornHook(std::function<void()> torn) { torn_ = std::move(torn); }

  // A Ship stream opens: the number it passes to ApplyCycle. A cycle from an older stream
  // (one the primary gave up on while it was still being read) is never applied.
  uint64_t BeginStream() { return stream_epoch_.fetch_add(1) + 1; }
  // Applies every record of cycle `cycle` at once and reports `boundary` as the sequence
  // applied through. `consistent` (the primary had nothing left to resync when the cycle
  // closed): the mirror now holds the primary's image as of `boundary`, unless a record
  // newer than the boundary was applied outside the cycles since the last one. Returns
  // false (and applies nothing) for a cycle of an older stream.
  bool ApplyCycle(std::vector<StagedRecord> records, uint64_t cycle, uint64_t boundary,
                  bool consistent, uint64_t stream) ABSL_LOCKS_EXCLUDED(image_mu_, mu_);
  // This daemon becomes a primary: its image is no longer a mirror's cycle boundary.
  void ForgetBoundary() ABSL_LOCKS_EXCLUDED(mu_);
  // Whether records are applied: false from a promotion (before anything else of it) until
  // the daemon is a target again, so a record or cycle of the old primary still queued here
  // never lands on the promoted image (Apply and TryApply say FAILED_PRECONDITION,
  // ApplyCycle discards). Returns once no apply is in progress.
  void SetApplying(bool applying) ABSL_LOCKS_EXCLUDED(image_mu_, mu_);
  // A cycle was dropped unfinished (its stream ended before its end marker).
  void CycleDiscarded() { cycles_discarded_.fetch_add(1); }

  // Host reads on the mirror hold this shared while they copy.
  absl::Mutex& image_lock() { return image_mu_; }

  uint64_t applied_sequence() const { return applied_sequence_.load(); }
  uint64_t records_applied() const { return records_applied_.load(); }
  uint64_t records_skipped() const { return records_skipped_.load(); }
  uint64_t applied_cycle() const { return applied_cycle_.load(); }
  uint64_t cycles_applied() const { return cycles_applied_.load(); }
  uint64_t cycles_discarded() const { return cycles_discarded_.load(); }
  // The image is the primary's as of applied_sequence() (the last thing applied was a whole
  // cycle). False at start: unknown until the first cycle.
  bool consistent() const { return consistent_.load(); }

 private:
  // Stage; with `may_wait` false, nullopt where it would wait (TryApply).
  std::optional<absl::StatusOr<StagedRecord>> StageRecord(uint32_t volume_id, uint64_t track,
                                                          uint32_t offset,
                                                          std::span<const uint8_t> data,
                                                          uint64_t sequence, bool may_wait);
  // Publishes a staged record outside any cycle; both locks held.
  bool ApplyStagedLocked(StagedRecord record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool PublishLocked(StagedRecord record) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status NotApplying() const;
  // NOT_FOUND or OUT_OF_RANGE for a record that no volume of this array can take.
  absl::Status CheckRecord(uint32_t volume_id, uint64_t track, uint32_t offset,
                           size_t length) const;
  // A paged-out record back in a staging slot (waits for one), its chunk still held.
  absl::StatusOr<StagedRecord> Unspill(const StagedRecord& record);
  void Note(const CycleNote& note) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The gold copy (record_applier_gold.cc). Begins one standing for the image now, which
  // must be a cycle boundary; keeps `key`'s image before it changes (reading it from disk
  // when not cached); a copy that fails either is dropped, logged as lost.
  void BeginGoldLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void KeepGoldLocked(cache::TrackKey key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Whether keeping `key` would need a disk read (TryApply does not wait for one).
  bool GoldNeedsReadLocked(cache::TrackKey key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  bool gold_held() const { return gold_ != nullptr && gold_->held(); }

  cache::CacheMemory* const cache_;
  disk::VolumeCatalog* const volumes_;
  CycleJournal* const journal_;
  FaultInjector* const faults_;
  absl::Mutex image_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  std::atomic<uint64_t> applied_sequence_{0};
  Forwarder forwarder_;
  std::function<void()> torn_;
  bool write_open_ ABSL_GUARDED_BY(mu_) = false;  // the last record said more would follow
  std::atomic<bool> source_resyncing_{false};
  std::atomic<uint64_t> records_applied_{0};
  std::atomic<uint64_t> records_skipped_{0};
  std::atomic<uint64_t> applied_cycle_{0};
  std::atomic<uint64_t> cycles_applied_{0};
  std::atomic<uint64_t> cycles_discarded_{0};
  std::atomic<bool> consistent_{false};
  std::atomic<uint64_t> stream_epoch_{0};
  mirror::DeltaSetExtension* dse_ = nullptr;
  uint64_t stage_slots_ = 0;
  GoldCopy* gold_ = nullptr;
  bool applying_ ABSL_GUARDED_BY(mu_) = true;
  // Highest sequence applied outside the cycles since the last cycle.
  uint64_t outside_sequence_ ABSL_GUARDED_BY(mu_) = 0;
};

// What this daemon applied as a target, as figures (simarray/base/figures.h): records in the
// array's top section; cycles in a cycles section, where `target` adds what a target knows of
// its image (consistent, the applied cycle and sequence) and a source tells from its own.
void Describe(const RecordApplier& applier, FigureSink& sink);
void DescribeCycles(const RecordApplier& applier, bool target, FigureSink& sink);

}  // namespace simarray::remote
