#pragma once
// CacheMemory: the one cache shared by every adaptor of the array. It hands out track-sized
// slots, keeps the track directory (which slot holds the current image of each track) and
// records every slot's state in the region's slot table so that a restart can recover it.
//
// A write's life in cache (docs/life-of-a-write.md):
//  - Staging. A host write stages each portion into a slot of its own (kStaging) holding only
//    the portion's bytes at their place in the track; readers never see it.
//  - Publish, called by the one commit point in sequence order, makes the portion part of
//    the track's image. Normally in place: the staged slot's entry is sealed (it names the
//    range, the sequence and the image slot), only the written range is copied into the
//    image, the image's entry takes the new sequence, and the seal is lifted. A kill anywhere
//    in between leaves a seal that recovery redoes, so each write's range is wholly old or
//    wholly new after a restart. An image somebody pins (a reader, the destage, an async
//    cycle) is never written: Publish then copies the image into the staged slot around the
//    range and the staged slot becomes the image (copy on write).
//  - The mirror request of a sync write keeps the staged slot, which holds exactly the
//    write's bytes, until the mirror acknowledges it; nothing copies it again before the
//    remote adaptor serialises it.
//  - Each image tracks which 4 KiB blocks differ from the backing file; the destage writes
//    only those.
//
// Thread-safe: one mutex guards the directory, slot states and slot-table entries. Publish
// copies the written range (not the track) under it, so readers, which pin an image under
// the same mutex, see a whole write or none of it. Other slot data is read and written
// outside the lock by whoever holds the slot (a StagedSlot or SlotRef).

#include <atomic>
#include <bitset>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <unordered_map>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/base/figures.h"
#include "simarray/cache/cache_region.h"

namespace simarray::cache {

struct TrackKey {
  uint32_t volume_id = 0;
  uint64_t track = 0;
  bool operator==(const TrackKey&) const = default;
};

struct TrackKeyHash {
  size_t operator()(const TrackKey& k) const {
    return k.track * 0x9E3779B97F4A7C15ull ^ k.volume_id;
  }
};

// Where tracks missing from cache are staged from (the disk adaptor). Called without the
// cache lock held; must be thread-safe.
class BackingStore {
 public:
  virtual ~BackingStore() = default;
  virtual absl::Status ReadTrack(TrackKey key, std::span<uint8_t> out) = 0;
};

struct CacheOptions {
  std::string path;  // region file; empty: anonymous memory (tests)
  uint64_t size = 0;
  uint32_t track_size = 0;
  uint64_t pen_records = 0;
  bool persistent = true;
  Role role = Role::kPrimary;
  // Recovery publishes, instead of dropping, the staged slots sealed (SealStaged) with this
  // write id: a write whose commit was under way when the daemon died and must be redone
  // (an async mirror's cycle, docs/async.md). 0: none.
  uint64_t redo_write_id = 0;
};

struct RecoveryReport {
  bool fresh = true;
  uint64_t write_pending = 0;         // committed, not yet destaged: kept and destaged again
  uint64_t clean = 0;                 // kept as clean cache
  uint64_t superseded = 0;            // older images of a track with a newer one: freed
  uint64_t staging_dropped = 0;       // portions of uncommitted writes: dropped
  uint64_t torn_entries = 0;          // entries whose checksum failed: never trusted
  uint64_t pen_records_dropped = 0;   // mirror requests of uncommitted writes (pen in cache)
  uint64_t redone = 0;                // sealed staged slots of redo_write_id: published
  std::vector<TrackKey> mirror_owed;  // committed tracks the mirror had not acknowledged
};

struct SlotCounts {
  uint64_t total = 0, free = 0, clean = 0, write_pending = 0, staging = 0;
  // Staged slots published in place and kept for their mirror request (the write's bytes).
  uint64_t shipping = 0;
};

// Dirty ranges are kept per block of this size (a track is 4 KiB to 1 MiB: 1 to 256 blocks).
inline constexpr uint32_t kDirtyBlockBytes = 4096;
inline constexpr uint32_t kMaxDirtyBlocks = (1u << 20) / kDirtyBlockBytes;
using DirtyBlocks = std::bitset<kMaxDirtyBlocks>;

// A byte range inside a track.
struct TrackRange {
  uint32_t offset = 0;
  uint32_t length = 0;
};

// The steps of an in-place Publish, in order, for a test hook (SetCommitStepHook) that
// stands in for a kill at each of them.
enum class CommitStep {
  kSealed,      // the staged entry names range, sequence and image slot; nothing copied
  kMidCopy,     // half of the range copied into the image
  kCopied,      // the range copied; the image's entry still names the old sequence
  kImageEntry,  // the image's entry names the new sequence; the seal is still there
  kUnsealed,    // done
};

// What Publish keeps pinned for its caller.
enum class Keep {
  kNothing,     // a mirror applying a record, or a primary without a mirror
  kWriteBytes,  // the write's own bytes at its range: a sync mirror request ships them
  kImage,       // the track's whole image as of this write: an async cycle ships it later
};

class CacheMemory;

// A pin on a slot's current contents; the slot is not freed or reused while it lives.
// Move-only; the CacheMemory must outlive it.
class SlotRef {
 public:
  SlotRef() = default;
  SlotRef(CacheMemory* cache, uint32_t slot) : cache_(cache), slot_(slot) {}
  SlotRef(SlotRef&& other) noexcept { *this = std::move(other); }
  SlotRef& operator=(SlotRef&& other) noexcept;
  ~SlotRef() { Reset(); }
  void Reset();
  bool valid() const { return cache_ != nullptr; }
  uint32_t slot() const { return slot_; }
  std::span<const uint8_t> data() const;

 private:
  CacheMemory* cache_ = nullptr;
  uint32_t slot_ = 0;
};

// A slot taken for one portion of a write that is not committed yet. Freed on destruction
// unless published. Move-only; the CacheMemory must outlive it.
class StagedSlot {
 public:
  StagedSlot() = default;
  StagedSlot(CacheMemory* cache, uint32_t slot, TrackKey key)
      : cache_(cache), slot_(slot), key_(key) {}
  StagedSlot(StagedSlot&& other) noexcept { *this = std::move(other); }
  StagedSlot& operator=(StagedSlot&& other) noexcept;
  ~StagedSlot() { Drop(); }
  void Drop();
  bool valid() const { return cache_ != nullptr; }
  uint32_t slot() const { return slot_; }
  TrackKey key() const { return key_; }
  std::span<uint8_t> data();
  // Gives up ownership (the slot was published).
  void Release() { cache_ = nullptr; }

 private:
  CacheMemory* cache_ = nullptr;
  uint32_t slot_ = 0;
  TrackKey key_;
};

// Keeps a track's directory entry (and so its current image) in cache while alive.
class TrackPin {
 public:
  TrackPin() = default;
  TrackPin(CacheMemory* cache, TrackKey key) : cache_(cache), key_(key) {}
  TrackPin(TrackPin&& other) noexcept { *this = std::move(other); }
  TrackPin& operator=(TrackPin&& other) noexcept;
  ~TrackPin() { Reset(); }
  void Reset();

 private:
  CacheMemory* cache_ = nullptr;
  TrackKey key_;
};

struct Published {
  bool applied = false;     // false: the track already holds a newer sequence; nothing changed
  uint32_t image_slot = 0;  // the slot holding the track's image now (ClearMirrorOwed takes it)
  bool in_place = false;    // the range was copied into the image (no copy on write)
  SlotRef kept;             // what Keep asked for (invalid for kNothing)
  explicit operator bool() const { return applied; }
};

// A committed track image waiting to be destaged: only `blocks` (of kDirtyBlockBytes each)
// differ from the backing file. The pin keeps the image unchanged while it is written out.
struct DirtyTrack {
  TrackKey key;
  uint64_t sequence = 0;
  SlotRef slot;
  DirtyBlocks blocks;
  // The dirty blocks as byte ranges of the track, adjacent blocks merged, in order.
  std::vector<TrackRange> Ranges(uint32_t track_size) const;
};

class CacheMemory {
 public:
  static absl::StatusOr<std::unique_ptr<CacheMemory>> Open(const CacheOptions& options,
                                                           RecoveryReport* report);
  ~CacheMemory();
  CacheMemory(const CacheMemory&) = delete;
  CacheMemory& operator=(const CacheMemory&) = delete;

  // Borrowed; must outlive every call that misses. Set once before use.
  void SetBackingStore(BackingStore* store) { backing_ = store; }

  uint32_t track_size() const { return track_size_; }
  uint64_t slot_count() const { return slot_count_; }
  // False: write-through; nothing in the slots is trusted at restart.
  bool persistent() const { return persistent_; }
  CacheRegion& region() { return *region_; }

  // Takes a free slot (evicting a clean one if needed) for a portion of `key` belonging to
  // `write_id`. Waits while every slot is write-pending or in use; DEADLINE_EXCEEDED
  // ("cache full") once `deadline` passes. While the destage is failing (SetDestageError), a
  // full cache cannot empty: RESOURCE_EXHAUSTED at once, naming the failure.
  absl::StatusOr<StagedSlot> AllocateStaging(TrackKey key, uint64_t write_id, absl::Time deadline);

  // Records in the slot table that `staged` holds the whole image of its track as of
  // `sequence` (> 0) for write `write_id`, so that a recovery asked to redo that write can
  // publish it. Call once the slot's data is complete; allocate the slot with write id 0, so
  // a slot the process died filling is never mistaken for a sealed one.
  void SealStaged(const StagedSlot& staged, uint64_t sequence, uint64_t write_id);

  // Keeps `key`'s current image in cache, staging it from the backing store when absent, so
  // that Publish of a partial portion can fill from memory.
  absl::StatusOr<TrackPin> PinTrack(TrackKey key);
  // PinTrack for a track whose image is in cache now; nullopt (nothing done) otherwise.
  std::optional<TrackPin> TryPinTrack(TrackKey key);

  // Makes [offset, offset + length) of `staged` part of its track's image as of `sequence`
  // (in place, or by copy on write when the image is pinned; see the top of this file).
  // Bytes outside the range come from the previous image (or the backing store when the
  // track is not cached; callers pin partial tracks first to keep disk reads out of the
  // commit). Not applied (and the staged slot dropped) when the track already holds a newer
  // sequence: a mirror uses this to never apply an older record over newer data.
  // The caller serialises Publish calls in sequence order.
  // `changed`, when given, is where the staged bytes differ from the track's current image
  // (a whole image filled out from it): only those blocks are marked dirty.
  Published Publish(StagedSlot staged, uint32_t offset, uint32_t length, uint64_t sequence,
                    bool mirror_owed, Keep keep = Keep::kNothing,
                    std::optional<TrackRange> changed = std::nullopt);

  // Pins the current image of `key`, staging it from the backing store on a miss.
  absl::StatusOr<SlotRef> ReadTrack(TrackKey key);
  // Current image of `key` if cached; the sequence it holds goes to `sequence`.
  SlotRef PeekTrack(TrackKey key, uint64_t* sequence);
  // A new pin on a slot the caller already pins.
  SlotRef AddRef(uint32_t slot);

  // Up to `max` write-pending track images, oldest first, each pinned, with their dirty
  // blocks. An image is given out once until MarkClean or Redirty.
  std::vector<DirtyTrack> TakeDirty(size_t max);
  // Blocks until an image is write-pending and not being destaged, then gathers for up to
  // `gather` more (so that rewrites fold and one fdatasync covers more), cut short when a
  // flush waits (WaitDestaged, WaitClean) or the batch reaches `batch` images. Returns false
  // at once, or as soon as, StopDirtyWaits was called.
  bool WaitDirty(absl::Duration gather, size_t batch);
  // Wakes WaitDirty for good (the destager is stopping).
  void StopDirtyWaits();
  // The destager wrote these images' dirty blocks to the backing files and no longer reads
  // them (their fdatasync is still to come): from now until MarkClean or Redirty a Publish
  // may write into them in place instead of copying them on write, and the blocks it writes
  // stay dirty. Without this, every write to a track whose destage waits on fdatasync would
  // copy the whole image.
  void DestageWritten(std::span<const DirtyTrack> batch);
  // Marks the slot clean if it still holds `sequence` (it was destaged and synced). If it was
  // written in place since DestageWritten, only the blocks those writes touched stay dirty,
  // and the image goes back in line.
  void MarkClean(uint32_t slot, uint64_t sequence);
  // Puts a track image TakeDirty gave out back in line (its destage failed).
  void Redirty(uint32_t slot);
  // Clears the mirror-owed flag of a slot if it still holds `sequence`.
  void ClearMirrorOwed(uint32_t slot, uint64_t sequence);
  size_t DirtyCount();
  // Blocks until no track image is write-pending or `deadline` passes.
  bool WaitClean(absl::Time deadline);
  // Blocks until no current track image with a sequence <= `sequence` is write-pending (what
  // was committed by then is destaged): OK. DEADLINE_EXCEEDED once `deadline` passes; the
  // destage error (SetDestageError) as soon as one is set while something it covers is still
  // write-pending. Newer writes do not hold it up.
  absl::Status WaitDestaged(uint64_t sequence, absl::Time deadline);
  // Write-pending track images of one volume.
  uint64_t WritePendingOf(uint32_t volume_id);

  // The destager's verdict on the backing store (docs/storage-faults.md): not OK while a
  // backing file fails its writes or syncs, with the status to give a flush (UNAVAILABLE,
  // or RESOURCE_EXHAUSTED for a full disk); OK once every failing file took a destage again.
  // Write-pending images are never evicted, so nothing is lost meanwhile: they stay in
  // line and the destager retries them.
  void SetDestageError(absl::Status error);
  absl::Status destage_error();

  // Forgets the cached image of `key` (it must be clean); FAILED_PRECONDITION if it is
  // write-pending.
  absl::Status DropTrack(TrackKey key);
  // Forgets every slot of a deleted volume.
  void DropVolume(uint32_t volume_id);

  // Test seam: called under the cache lock at each step of an in-place Publish.
  void SetCommitStepHook(std::function<void(CommitStep)> hook) { step_hook_ = std::move(hook); }
  // Bytes Publish copied into slots (ranges in place, fills on copy on write): the cost the
  // benchmark reports per write.
  uint64_t bytes_copied() const { return bytes_copied_.load(std::memory_order_relaxed); }

  // Next sequence number; strictly increasing across restarts. Caller serialises.
  uint64_t NextSequence();
  uint64_t LastSequence();
  // Raises the counter so the next sequence is above `sequence` (the mirror follows the
  // primary's numbering).
  void ObserveSequence(uint64_t sequence);

  SlotCounts Counts();

  // Region header fields other components keep (serialised with sequence updates).
  uint64_t generation();
  uint64_t peer_generation();
  void SetPeerGeneration(uint64_t generation);
  void SetRole(Role role);

 private:
  friend class SlotRef;
  friend class StagedSlot;
  friend class TrackPin;

  struct SlotMeta {
    SlotState state = SlotState::kFree;
    uint8_t flags = 0;
    bool superseded = false;       // no longer its track's image; freed when refs reach 0
    bool destaging = false;        // given out by TakeDirty, not yet MarkClean'd or Redirty'd
    bool destage_written = false;  // destaging, and its blocks are written (DestageWritten)
    uint32_t refs = 0;
    TrackKey key;
    uint64_t sequence = 0;
    // Write-pending images: the blocks that differ from the backing file, and the oldest
    // write among them (what WaitDestaged compares with; it is also the dirty_ entry's key).
    DirtyBlocks dirty;
    uint64_t dirty_since = 0;
    // While destaging: the blocks written in place since TakeDirty gave the image out.
    DirtyBlocks redirtied;
  };
  struct TrackEntry {
    int64_t live = -1;
    uint32_t pins = 0;
    bool loading = false;
  };

  CacheMemory(std::unique_ptr<CacheRegion> region, bool persistent);
  // Called by Open with mu_ held, before the cache is shared.
  void Recover(uint64_t redo_write_id, RecoveryReport* report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Unref(uint32_t slot);
  void FreeStaged(uint32_t slot);
  void Unpin(TrackKey key);
  std::span<uint8_t> Data(uint32_t slot) { return region_->SlotData(slot); }
  // Whether Publish may copy a range straight into `image` (see DestageWritten).
  bool WritableInPlaceLocked(uint32_t image) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Takes a free or evictable slot; -1 if none.
  int64_t TakeSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void FreeSlotLocked(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteEntryLocked(uint32_t slot, uint64_t write_id = 0) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeDropEntryLocked(TrackKey key) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EndDestageLocked(uint32_t slot) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The two ways Publish changes an image (cache_publish.cc).
  void WriteInPlaceLocked(StagedSlot staged, uint32_t image, TrackRange range, uint64_t sequence,
                          bool mirror_owed, Keep keep, Published* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CopyOnWriteLocked(StagedSlot staged, int64_t old, TrackRange range, TrackRange changed,
                         uint64_t sequence, bool mirror_owed, Keep keep, Published* out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Adds `blocks` to a write-pending image's dirty set; `since` is the oldest write they hold.
  void AddDirtyLocked(uint32_t slot, const DirtyBlocks& blocks, uint64_t since)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  DirtyBlocks BlocksOf(TrackRange range) const;
  void Step(CommitStep step) {
    if (step_hook_) step_hook_(step);
  }
  // Recovery of in-place commits a kill interrupted (cache_recovery.cc).
  void RedoSealsLocked(std::vector<uint32_t> sealed,
                       std::unordered_map<TrackKey, uint32_t, TrackKeyHash>* best,
                       RecoveryReport* report) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  std::unique_ptr<CacheRegion> region_;
  const bool persistent_;
  const uint32_t track_size_;
  const uint64_t slot_count_;
  BackingStore* backing_ = nullptr;

  absl::Mutex mu_;
  std::vector<SlotMeta> slots_ ABSL_GUARDED_BY(mu_);
  std::vector<uint32_t> free_ ABSL_GUARDED_BY(mu_);
  std::unordered_map<TrackKey, TrackEntry, TrackKeyHash> directory_ ABSL_GUARDED_BY(mu_);
  // Write-pending images in line for the destage, as (slot, dirty_since); an entry whose slot
  // no longer has that dirty_since (superseded, cleaned, reused) is skipped.
  std::deque<std::pair<uint32_t, uint64_t>> dirty_ ABSL_GUARDED_BY(mu_);
  // Given out by TakeDirty, not yet MarkClean'd or Redirty'd: (slot, dirty_since).
  std::vector<std::pair<uint32_t, uint64_t>> destaging_ ABSL_GUARDED_BY(mu_);
  uint64_t flush_waiters_ ABSL_GUARDED_BY(mu_) = 0;
  bool stop_dirty_waits_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status destage_error_ ABSL_GUARDED_BY(mu_);
  std::function<void(CommitStep)> step_hook_;
  std::atomic<uint64_t> bytes_copied_{0};
  uint64_t write_pending_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t clock_hand_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t sequence_ ABSL_GUARDED_BY(mu_) = 0;
  absl::CondVar slot_freed_;
  absl::CondVar track_loaded_;
  absl::CondVar all_clean_;
};

// The cache's figures (simarray/base/figures.h), in the cache section: `slots` as counted by
// Counts() (zeros when the caller skips the scan) and the bytes commits copied.
void Describe(const CacheMemory& cache, const SlotCounts& slots, FigureSink& sink);

}  // namespace simarray::cache
