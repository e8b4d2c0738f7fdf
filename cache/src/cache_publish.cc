// CacheMemory: Publish, the commit of a staged portion into its track's image, in place or by
// copy on write, and the dirty blocks each image keeps for the destage. The contract is at
// the top of cache_memory.h; the kill-safety argument is in docs/life-of-a-write.md.
#include <cstring>

#include "simarray/cache/cache_memory.h"

namespace simarray::cache {

DirtyBlocks CacheMemory::BlocksOf(TrackRange range) const {
  DirtyBlocks blocks;
  if (range.length == 0) return blocks;
  const uint32_t block = std::min(kDirtyBlockBytes, track_size_);
  const uint32_t first = range.offset / block;
  const uint32_t last = (range.offset + range.length - 1) / block;
  for (uint32_t b = first; b <= last; ++b) blocks.set(b);
  return blocks;
}

void CacheMemory::AddDirtyLocked(uint32_t slot, const DirtyBlocks& blocks, uint64_t since) {
  SlotMeta& m = slots_[slot];
  m.dirty |= blocks;
  if (m.destaging) m.redirtied |= blocks;
  if (m.dirty_since == 0 || since < m.dirty_since) {
    // Not in line yet under this key: queue it (an entry under an older key is skipped).
    m.dirty_since = since;
    if (!m.destaging) {
      dirty_.emplace_back(slot, since);
    }
  }
}

Published CacheMemory::Publish(StagedSlot staged, uint32_t offset, uint32_t length,
                               uint64_t sequence, bool mirror_owed, Keep keep,
                               std::optional<TrackRange> changed) {
  const TrackKey key = staged.key();
  const TrackRange range{offset, length};
  Published out;
  absl::MutexLock lock(&mu_);
  TrackEntry& e = directory_[key];
  const int64_t old = e.live;
  if (old >= 0 && slots_[old].sequence > sequence) {
    const uint32_t s = staged.slot();
    staged.Release();
    FreeSlotLocked(s);
    MaybeDropEntryLocked(key);
    return out;
  }
  out.applied = true;
  if (old >= 0 && length < track_size_ && !slots_[old].superseded && WritableInPlaceLocked(old)) {
    WriteInPlaceLocked(std::move(staged), static_cast<uint32_t>(old), range, sequence, mirror_owed,
                       keep, &out);
  } else {
    CopyOnWriteLocked(std::move(staged), old, range, changed.value_or(range), sequence, mirror_owed,
                      keep, &out);
  }
  return out;
}

bool CacheMemory::WritableInPlaceLocked(uint32_t image) const {
  const SlotMeta& m = slots_[image];
  // Nobody reads it, or only the destager, which is done reading (DestageWritten).
  return m.refs == 0 || (m.refs == 1 && m.destaging && m.destage_written);
}

void CacheMemory::WriteInPlaceLocked(StagedSlot staged, uint32_t image, TrackRange range,
                                     uint64_t sequence, bool mirror_owed, Keep keep,
                                     Published* out) {
  const uint32_t s = staged.slot();
  staged.Release();
  SlotMeta& st = slots_[s];
  SlotMeta& m = slots_[image];

  // 1. Seal: from here until step 4 a restart redoes the copy (cache_recovery.cc).
  SlotEntry seal{};
  seal.sequence = sequence;
  seal.track = st.key.track;
  seal.volume_id = st.key.volume_id;
  seal.write_id = PackSealedRange(range.offset, range.length);
  seal.state = static_cast<uint8_t>(SlotState::kStaging);
  seal.flags = kSlotSealedInPlace | (mirror_owed ? kSlotMirrorOwed : 0);
  seal.seal_image = image;
  region_->WriteEntry(s, seal);
  Step(CommitStep::kSealed);

  // 2. Copy the range only; the rest of the image is already right.
  uint8_t* to = Data(image).data() + range.offset;
  const uint8_t* from = Data(s).data() + range.offset;
  const uint32_t half = range.length / 2;
  std::memcpy(to, from, half);
  Step(CommitStep::kMidCopy);
  std::memcpy(to + half, from + half, range.length - half);
  bytes_copied_.fetch_add(range.length, std::memory_order_relaxed);
  Step(CommitStep::kCopied);

  // 3. The image's entry takes the sequence.
  if (m.state != SlotState::kWritePending) {
    m.state = SlotState::kWritePending;
    ++write_pending_;
  }
  m.sequence = sequence;
  if (mirror_owed) m.flags |= kSlotMirrorOwed;
  WriteEntryLocked(image);
  AddDirtyLocked(image, BlocksOf(range), sequence);
  Step(CommitStep::kImageEntry);

  // 4. Lift the seal: the staged slot is now only the write's own bytes, kept for its mirror
  // request (freed with its last pin) or freed now.
  if (keep == Keep::kWriteBytes) {
    st.superseded = true;
    ++st.refs;
    WriteEntryLocked(s);
    out->kept = SlotRef(this, s);
  } else {
    FreeSlotLocked(s);
  }
  Step(CommitStep::kUnsealed);
  if (keep == Keep::kImage) {
    ++m.refs;
    out->kept = SlotRef(this, image);
  }
  out->image_slot = image;
  out->in_place = true;
}

void CacheMemory::CopyOnWriteLocked(StagedSlot staged, int64_t old, TrackRange range,
                                    TrackRange changed, uint64_t sequence, bool mirror_owed,
                                    Keep keep, Published* out) {
  const TrackKey key = staged.key();
  const uint32_t s = staged.slot();
  std::span<uint8_t> data = Data(s);
  const uint32_t end = range.offset + range.length;
  // A staged whole image filled from the current one differs from it only at `changed`; an
  // image that replaces no cached one is dirty wherever it was written.
  DirtyBlocks dirty = BlocksOf(old >= 0 ? changed : range);
  uint64_t since = sequence;
  if (range.length < track_size_) {
    if (old >= 0) {
      std::span<const uint8_t> prev = Data(old);
      std::memcpy(data.data(), prev.data(), range.offset);
      std::memcpy(data.data() + end, prev.data() + end, track_size_ - end);
    } else {
      // Unpinned partial write to an uncached track: read under the lock (callers pin first
      // to keep disk reads out of the commit).
      std::vector<uint8_t> prev(track_size_);
      if (!backing_->ReadTrack(key, prev).ok()) std::fill(prev.begin(), prev.end(), 0);
      // What was read (or zeros, if the read failed) goes back to disk whole, so that the
      // cache and the backing file never disagree outside the range.
      dirty = BlocksOf(TrackRange{0, track_size_});
      std::memcpy(data.data(), prev.data(), range.offset);
      std::memcpy(data.data() + end, prev.data() + end, track_size_ - end);
    }
    bytes_copied_.fetch_add(track_size_ - range.length, std::memory_order_relaxed);
  }
  if (old >= 0 && slots_[old].state == SlotState::kWritePending) {
    // What the old image had not destaged yet is in the new one too.
    dirty |= slots_[old].dirty;
    since = std::min(since, slots_[old].dirty_since);
  }
  staged.Release();
  SlotMeta& m = slots_[s];
  m.state = SlotState::kWritePending;
  m.flags = mirror_owed ? kSlotMirrorOwed : 0;
  m.sequence = sequence;
  m.key = key;
  m.dirty.reset();
  m.dirty_since = 0;
  WriteEntryLocked(s);
  TrackEntry& e = directory_[key];
  e.live = s;
  ++write_pending_;
  AddDirtyLocked(s, dirty, since);
  if (keep != Keep::kNothing) {
    // The new image holds the write's bytes as well as the track's: either pin is this one.
    ++m.refs;
    out->kept = SlotRef(this, s);
  }
  if (old >= 0) {
    SlotMeta& o = slots_[old];
    if (o.state == SlotState::kWritePending) --write_pending_;
    o.superseded = true;
    if (o.refs == 0) {
      FreeSlotLocked(old);
    } else {
      // Still pinned, but no longer an image: its entry goes now (after the new image's), so
      // that a restart never weighs it against the new image, whose own entry a later kill
      // may tear (the seal then rebuilds the new image, and nothing older may win).
      region_->WriteEntry(old, SlotEntry{});
    }
  }
  out->image_slot = s;
}

}  // namespace simarray::cache
