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
    if (!destage_error_.ok()) {
      // Every slot is write-pending or in use, and the destage cannot clean any: waiting would
      // only run into the deadline.
      return absl::ResourceExhaustedError(absl::StrCat(
          "cache full: no free slot among ", slot_count_, " (", write_pending_,
          " write-pending tracks cannot be destaged: ", destage_error_.message(), ")"));
    }
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

std::optional<TrackPin> CacheMemory::TryPinTrack(TrackKey key) {
  absl::MutexLock lock(&mu_);
  auto it = directory_.find(key);
  if (it == directory_.end() || it->second.live < 0) return std::nullopt;
  ++it->second.pins;
  return TrackPin(this, key);
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

void CacheMemory::ClearMirrorOwed(uint32_t slot, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  SlotMeta& m = slots_[slot];
  if (m.sequence != sequence || !(m.flags & kSlotMirrorOwed) || m.superseded) return;
  m.flags &= ~kSlotMirrorOwed;
  WriteEntryLocked(slot);
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
    if (m.state == SlotState::kWritePending) --write_pending_;
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
  all_clean_.SignalAll();  // a flush waiting on the volume's images waits no more
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
        ++(m.superseded ? c.shipping : c.staging);
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
