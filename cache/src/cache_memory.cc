#include "simarray/cache/cache_memory.h"

#include <algorithm>
#include <cstring>
#include <map>

#include "absl/strings/str_cat.h"

namespace simarray::cache {
namespace {
// Sequence numbers are reserved in the region header this many at a time, so that a
// restart never hands out a number it handed out before, without a header write per write.
constexpr uint64_t kSequenceBlock = 1 << 16;
}  // namespace

// --- RAII handles -------------------------------------------------------------------------

SlotRef& SlotRef::operator=(SlotRef&& other) noexcept {
  if (this != &other) {
    Reset();
    cache_ = std::exchange(other.cache_, nullptr);
    slot_ = other.slot_;
  }
  return *this;
}

void SlotRef::Reset() {
  if (cache_ != nullptr) std::exchange(cache_, nullptr)->Unref(slot_);
}

std::span<const uint8_t> SlotRef::data() const { return cache_->Data(slot_); }

StagedSlot& StagedSlot::operator=(StagedSlot&& other) noexcept {
  if (this != &other) {
    Drop();
    cache_ = std::exchange(other.cache_, nullptr);
    slot_ = other.slot_;
    key_ = other.key_;
  }
  return *this;
}

void StagedSlot::Drop() {
  if (cache_ != nullptr) std::exchange(cache_, nullptr)->FreeStaged(slot_);
}

std::span<uint8_t> StagedSlot::data() { return cache_->Data(slot_); }

TrackPin& TrackPin::operator=(TrackPin&& other) noexcept {
  if (this != &other) {
    Reset();
    cache_ = std::exchange(other.cache_, nullptr);
    key_ = other.key_;
  }
  return *this;
}

void TrackPin::Reset() {
  if (cache_ != nullptr) std::exchange(cache_, nullptr)->Unpin(key_);
}

// --- CacheMemory --------------------------------------------------------------------------

void CacheMemory::WriteEntryLocked(uint32_t slot, uint64_t write_id) {
  const SlotMeta& m = slots_[slot];
  SlotEntry e{};
  e.sequence = m.sequence;
  e.track = m.key.track;
  e.volume_id = m.key.volume_id;
  e.write_id = write_id;
  e.state = static_cast<uint8_t>(m.state);
  e.flags = m.flags;
  region_->WriteEntry(slot, e);
}

void CacheMemory::FreeSlotLocked(uint32_t slot) {
  slots_[slot] = SlotMeta();
  WriteEntryLocked(slot);
  free_.push_back(slot);
  slot_freed_.SignalAll();
}

int64_t CacheMemory::TakeSlotLocked() {
  if (!free_.empty()) {
    uint32_t s = free_.back();
    free_.pop_back();
    return s;
  }
  // Clock sweep over clean images nobody pins.
  for (uint64_t n = 0; n < slot_count_; ++n) {
    uint32_t s = clock_hand_;
    clock_hand_ = (clock_hand_ + 1) % slot_count_;
    SlotMeta& m = slots_[s];
    if (m.state != SlotState::kClean || m.refs != 0 || m.superseded) continue;
    auto it = directory_.find(m.key);
    if (it != directory_.end()) {
      if (it->second.pins != 0) continue;
      directory_.erase(it);
    }
    slots_[s] = SlotMeta();
    return s;
  }
  return -1;
}

absl::StatusOr<StagedSlot> CacheMemory::AllocateStaging(TrackKey key, uint64_t write_id,
                                                        absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  int64_t s;
  while ((s = TakeSlotLocked()) < 0) {
    if (slot_freed_.WaitWithDeadline(&mu_, deadline) && absl::Now() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "cache full: no free slot among ", slot_count_, " (every slot write-pending or in use)"));
    }
  }
  SlotMeta& m = slots_[s];
  m.state = SlotState::kStaging;
  m.key = key;
  WriteEntryLocked(s, write_id);
  return StagedSlot(this, static_cast<uint32_t>(s), key);
}

void CacheMemory::SealStaged(const StagedSlot& staged, uint64_t sequence, uint64_t write_id) {
  absl::MutexLock lock(&mu_);
  slots_[staged.slot()].sequence = sequence;
  WriteEntryLocked(staged.slot(), write_id);
}

void CacheMemory::FreeStaged(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  FreeSlotLocked(slot);
}

absl::StatusOr<TrackPin> CacheMemory::PinTrack(TrackKey key) {
  {
    absl::MutexLock lock(&mu_);
    TrackEntry& e = directory_[key];
    ++e.pins;
    while (e.live < 0 && e.loading) track_loaded_.Wait(&mu_);
    if (e.live >= 0) return TrackPin(this, key);
    e.loading = true;
  }
  TrackPin pin(this, key);  // gives the pin back on every error path
  auto staged = AllocateStaging(key, 0, absl::Now() + absl::Seconds(30));
  absl::Status read = staged.ok() ? backing_->ReadTrack(key, staged->data()) : staged.status();
  absl::MutexLock lock(&mu_);
  TrackEntry& e = directory_[key];
  e.loading = false;
  track_loaded_.SignalAll();
  if (!read.ok()) return read;
  if (e.live < 0) {
    uint32_t s = staged->slot();
    staged->Release();
    SlotMeta& m = slots_[s];
    m.state = SlotState::kClean;
    m.sequence = 0;
    WriteEntryLocked(s);
    e.live = s;
  } else {
    FreeSlotLocked(staged->slot());
    staged->Release();
  }
  return pin;
}

void CacheMemory::Unpin(TrackKey key) {
  absl::MutexLock lock(&mu_);
  auto it = directory_.find(key);
  if (it == directory_.end()) return;
  if (--it->second.pins == 0) {
    MaybeDropEntryLocked(key);
    slot_freed_.SignalAll();  // its clean image became evictable
  }
}

void CacheMemory::MaybeDropEntryLocked(TrackKey key) {
  auto it = directory_.find(key);
  if (it != directory_.end() && it->second.live < 0 && it->second.pins == 0 &&
      !it->second.loading) {
    directory_.erase(it);
  }
}

bool CacheMemory::Publish(StagedSlot staged, uint32_t offset, uint32_t length, uint64_t sequence,
                          bool mirror_owed, SlotRef* ref) {
  const TrackKey key = staged.key();
  const uint32_t s = staged.slot();
  std::span<uint8_t> data = Data(s);
  absl::MutexLock lock(&mu_);
  TrackEntry& e = directory_[key];
  const int64_t old = e.live;
  if (old >= 0 && slots_[old].sequence > sequence) {
    staged.Release();
    FreeSlotLocked(s);
    MaybeDropEntryLocked(key);
    return false;
  }
  if (length < track_size_) {
    if (old >= 0) {
      std::span<const uint8_t> prev = Data(old);
      std::memcpy(data.data(), prev.data(), offset);
      std::memcpy(data.data() + offset + length, prev.data() + offset + length,
                  track_size_ - offset - length);
    } else {
      // Unpinned partial write to an uncached track: read under the lock (callers pin first
      // to keep disk reads out of the commit).
      std::vector<uint8_t> prev(track_size_);
      if (!backing_->ReadTrack(key, prev).ok()) std::fill(prev.begin(), prev.end(), 0);
      std::memcpy(data.data(), prev.data(), offset);
      std::memcpy(data.data() + offset + length, prev.data() + offset + length,
                  track_size_ - offset - length);
    }
  }
  staged.Release();
  SlotMeta& m = slots_[s];
  m.state = SlotState::kWritePending;
  m.flags = mirror_owed ? kSlotMirrorOwed : 0;
  m.sequence = sequence;
  m.key = key;
  WriteEntryLocked(s);
  e.live = s;
  ++write_pending_;
  dirty_.emplace_back(s, sequence);
  if (ref != nullptr) {
    ++m.refs;
    *ref = SlotRef(this, s);
  }
  if (old >= 0) {
    SlotMeta& o = slots_[old];
    if (o.state == SlotState::kWritePending) --write_pending_;
    o.superseded = true;
    if (o.refs == 0) FreeSlotLocked(old);
  }
  return true;
}

absl::StatusOr<SlotRef> CacheMemory::ReadTrack(TrackKey key) {
  uint64_t unused;
  SlotRef ref = PeekTrack(key, &unused);
  if (ref.valid()) return ref;
  auto pin = PinTrack(key);
  if (!pin.ok()) return pin.status();
  return PeekTrack(key, &unused);
}

SlotRef CacheMemory::PeekTrack(TrackKey key, uint64_t* sequence) {
  absl::MutexLock lock(&mu_);
  auto it = directory_.find(key);
  if (it == directory_.end() || it->second.live < 0) return SlotRef();
  SlotMeta& m = slots_[it->second.live];
  ++m.refs;
  *sequence = m.sequence;
  return SlotRef(this, static_cast<uint32_t>(it->second.live));
}

SlotRef CacheMemory::AddRef(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  ++slots_[slot].refs;
  return SlotRef(this, slot);
}

void CacheMemory::Unref(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  SlotMeta& m = slots_[slot];
  if (--m.refs != 0) return;
  if (m.superseded) {
    FreeSlotLocked(slot);
  } else if (m.state == SlotState::kClean) {
    slot_freed_.SignalAll();
  }
}

std::vector<DirtyTrack> CacheMemory::TakeDirty(size_t max) {
  std::vector<DirtyTrack> out;
  absl::MutexLock lock(&mu_);
  while (!dirty_.empty() && out.size() < max) {
    auto [s, seq] = dirty_.front();
    dirty_.pop_front();
    SlotMeta& m = slots_[s];
    if (m.state != SlotState::kWritePending || m.sequence != seq || m.superseded) continue;
    ++m.refs;
    destaging_.emplace_back(s, seq);
    out.push_back(DirtyTrack{m.key, seq, SlotRef(this, s)});
  }
  return out;
}

void CacheMemory::EndDestageLocked(uint32_t slot, uint64_t sequence) {
  auto it = std::find(destaging_.begin(), destaging_.end(), std::make_pair(slot, sequence));
  if (it != destaging_.end()) destaging_.erase(it);
  all_clean_.SignalAll();
}

void CacheMemory::MarkClean(uint32_t slot, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  EndDestageLocked(slot, sequence);
  SlotMeta& m = slots_[slot];
  if (m.state != SlotState::kWritePending || m.sequence != sequence || m.superseded) return;
  m.state = SlotState::kClean;
  WriteEntryLocked(slot);
  --write_pending_;
  all_clean_.SignalAll();  // WaitClean and WaitDestaged re-check
  slot_freed_.SignalAll();
}

void CacheMemory::Redirty(uint32_t slot, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  EndDestageLocked(slot, sequence);
  dirty_.emplace_back(slot, sequence);
}

void CacheMemory::ClearMirrorOwed(uint32_t slot, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  SlotMeta& m = slots_[slot];
  if (m.sequence != sequence || !(m.flags & kSlotMirrorOwed) || m.superseded) return;
  m.flags &= ~kSlotMirrorOwed;
  WriteEntryLocked(slot);
}

size_t CacheMemory::DirtyCount() {
  absl::MutexLock lock(&mu_);
  return write_pending_;
}

bool CacheMemory::WaitClean(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  while (write_pending_ != 0) {
    if (all_clean_.WaitWithDeadline(&mu_, deadline) && absl::Now() >= deadline) break;
  }
  return write_pending_ == 0;
}

bool CacheMemory::WaitDestaged(uint64_t sequence, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto pending = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto [s, seq] : destaging_) {
      if (seq <= sequence) return true;
    }
    for (auto [s, seq] : dirty_) {
      const SlotMeta& m = slots_[s];
      if (seq <= sequence && m.state == SlotState::kWritePending && m.sequence == seq &&
          !m.superseded) {
        return true;
      }
    }
    return false;
  };
  while (pending()) {
    if (all_clean_.WaitWithDeadline(&mu_, deadline) && absl::Now() >= deadline) return false;
  }
  return true;
}

absl::Status CacheMemory::DropTrack(TrackKey key) {
  absl::MutexLock lock(&mu_);
  auto it = directory_.find(key);
  if (it == directory_.end() || it->second.live < 0) return absl::OkStatus();
  uint32_t s = it->second.live;
  SlotMeta& m = slots_[s];
  if (m.state == SlotState::kWritePending) {
    return absl::FailedPreconditionError(
        absl::StrCat("track ", key.track, " is write-pending; destage it first"));
  }
  it->second.live = -1;
  m.superseded = true;
  if (m.refs == 0) FreeSlotLocked(s);
  MaybeDropEntryLocked(key);
  return absl::OkStatus();
}

void CacheMemory::DropVolume(uint32_t volume_id) {
  absl::MutexLock lock(&mu_);
  for (uint32_t s = 0; s < slot_count_; ++s) {
    SlotMeta& m = slots_[s];
    if (m.key.volume_id != volume_id || m.superseded) continue;
    if (m.state != SlotState::kClean && m.state != SlotState::kWritePending) continue;
    if (m.state == SlotState::kWritePending && --write_pending_ == 0) all_clean_.SignalAll();
    m.superseded = true;
    if (m.refs == 0) FreeSlotLocked(s);
  }
  for (auto it = directory_.begin(); it != directory_.end();) {
    if (it->first.volume_id == volume_id && it->second.pins == 0) {
      it = directory_.erase(it);
    } else {
      if (it->first.volume_id == volume_id) it->second.live = -1;
      ++it;
    }
  }
}

uint64_t CacheMemory::NextSequence() {
  absl::MutexLock lock(&mu_);
  ++sequence_;
  if (sequence_ >= region_->header().sequence_high_water) {
    region_->SetSequenceHighWater(sequence_ + kSequenceBlock);
  }
  return sequence_;
}

uint64_t CacheMemory::LastSequence() {
  absl::MutexLock lock(&mu_);
  return sequence_;
}

void CacheMemory::ObserveSequence(uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  if (sequence <= sequence_) return;
  sequence_ = sequence;
  if (sequence_ >= region_->header().sequence_high_water) {
    region_->SetSequenceHighWater(sequence_ + kSequenceBlock);
  }
}

SlotCounts CacheMemory::Counts() {
  SlotCounts c;
  absl::MutexLock lock(&mu_);
  c.total = slot_count_;
  for (const SlotMeta& m : slots_) {
    switch (m.state) {
      case SlotState::kFree:
        ++c.free;
        break;
      case SlotState::kClean:
        ++c.clean;
        break;
      case SlotState::kWritePending:
        ++c.write_pending;
        break;
      case SlotState::kStaging:
        ++c.staging;
        break;
    }
  }
  return c;
}

uint64_t CacheMemory::generation() {
  absl::MutexLock lock(&mu_);
  return region_->header().generation;
}

uint64_t CacheMemory::peer_generation() {
  absl::MutexLock lock(&mu_);
  return region_->header().peer_generation;
}

void CacheMemory::SetRole(Role role) {
  absl::MutexLock lock(&mu_);
  region_->SetRole(role);
}

void CacheMemory::SetPeerGeneration(uint64_t generation) {
  absl::MutexLock lock(&mu_);
  region_->SetPeerGeneration(generation);
}

}  // namespace simarray::cache
