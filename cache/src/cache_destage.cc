// CacheMemory: the destage side. Write-pending images wait in line (dirty_) with the blocks
// that differ from the backing file; the disk adaptor takes them in batches, writes those
// blocks out, syncs, and marks them clean. Flushes wait here for what they cover.
#include <algorithm>

#include "simarray/cache/cache_memory.h"

namespace simarray::cache {

std::vector<TrackRange> DirtyTrack::Ranges(uint32_t track_size) const {
  std::vector<TrackRange> out;
  const uint32_t block = std::min(kDirtyBlockBytes, track_size);
  const uint32_t blocks = track_size / block;
  for (uint32_t b = 0; b < blocks; ++b) {
    if (!this->blocks.test(b)) continue;
    if (!out.empty() && out.back().offset + out.back().length == b * block) {
      out.back().length += block;
    } else {
      out.push_back(TrackRange{b * block, block});
    }
  }
  return out;
}

std::vector<DirtyTrack> CacheMemory::TakeDirty(size_t max) {
  std::vector<DirtyTrack> out;
  absl::MutexLock lock(&mu_);
  while (!dirty_.empty() && out.size() < max) {
    auto [s, since] = dirty_.front();
    dirty_.pop_front();
    SlotMeta& m = slots_[s];
    if (m.state != SlotState::kWritePending || m.superseded || m.destaging ||
        m.dirty_since != since) {
      continue;  // cleaned, superseded or reused since it was queued
    }
    // The pin keeps Publish from writing into the image while it is written out.
    ++m.refs;
    m.destaging = true;
    m.destage_written = false;
    m.redirtied.reset();
    destaging_.emplace_back(s, since);
    out.push_back(DirtyTrack{m.key, m.sequence, SlotRef(this, s), m.dirty});
  }
  return out;
}

bool CacheMemory::WaitDirty(absl::Duration gather, size_t batch) {
  absl::MutexLock lock(&mu_);
  auto queued = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_dirty_waits_ || !dirty_.empty();
  };
  mu_.Await(absl::Condition(&queued));
  if (stop_dirty_waits_) return false;
  // Gather: more writes to the same tracks fold into one destage, more tracks share one
  // fdatasync. A waiting flush, or a full batch, ends it early.
  const absl::Time until = absl::Now() + gather;
  auto enough = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    return stop_dirty_waits_ || flush_waiters_ != 0 || dirty_.size() >= batch;
  };
  mu_.AwaitWithDeadline(absl::Condition(&enough), until);
  return !stop_dirty_waits_;
}

void CacheMemory::StopDirtyWaits() {
  absl::MutexLock lock(&mu_);
  stop_dirty_waits_ = true;
}

void CacheMemory::EndDestageLocked(uint32_t slot) {
  auto it = std::find_if(destaging_.begin(), destaging_.end(),
                         [&](const auto& d) { return d.first == slot; });
  if (it != destaging_.end()) destaging_.erase(it);
  slots_[slot].destaging = false;
  slots_[slot].destage_written = false;
  all_clean_.SignalAll();
}

void CacheMemory::DestageWritten(std::span<const DirtyTrack> batch) {
  absl::MutexLock lock(&mu_);
  for (const DirtyTrack& d : batch) {
    SlotMeta& m = slots_[d.slot.slot()];
    if (m.destaging) m.destage_written = true;
  }
}

void CacheMemory::MarkClean(uint32_t slot, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  SlotMeta& m = slots_[slot];
  const bool written_out = m.destaging && m.destage_written;
  EndDestageLocked(slot);
  if (m.superseded && m.state == SlotState::kWritePending && m.sequence == sequence) {
    // Copied on write while it was written out: its successor kept its dirty blocks (in
    // case this destage failed), but every write up to `sequence` is on disk now, so a flush
    // need not wait for the successor on their account. Without this, a track written
    // faster than it destages would hold a flush forever.
    auto it = directory_.find(m.key);
    if (it != directory_.end() && it->second.live >= 0) {
      SlotMeta& next = slots_[it->second.live];
      if (next.state == SlotState::kWritePending && next.dirty_since <= sequence) {
        next.dirty_since = sequence + 1;
        if (!next.destaging) dirty_.emplace_back(it->second.live, next.dirty_since);
      }
    }
    return;
  }
  if (m.state != SlotState::kWritePending || m.superseded) return;
  if (m.sequence != sequence) {
    if (!written_out || m.sequence < sequence) return;  // not the image that was destaged
    // Written in place after its blocks went out: what was destaged is clean, what those
    // writes touched is not. Every write up to `sequence` is on disk.
    m.dirty = m.redirtied;
    m.dirty_since = sequence + 1;
    dirty_.emplace_back(slot, m.dirty_since);
    return;
  }
  m.state = SlotState::kClean;
  m.dirty.reset();
  m.dirty_since = 0;
  WriteEntryLocked(slot);
  --write_pending_;
  all_clean_.SignalAll();  // WaitClean and WaitDestaged re-check
  slot_freed_.SignalAll();
}

void CacheMemory::Redirty(uint32_t slot) {
  absl::MutexLock lock(&mu_);
  EndDestageLocked(slot);
  const SlotMeta& m = slots_[slot];
  // Written in place since or not, its dirty blocks still include every block of this batch.
  if (m.state != SlotState::kWritePending || m.superseded) return;
  dirty_.emplace_back(slot, m.dirty_since);
}

size_t CacheMemory::DirtyCount() {
  absl::MutexLock lock(&mu_);
  return write_pending_;
}

bool CacheMemory::WaitClean(absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  ++flush_waiters_;
  while (write_pending_ != 0) {
    if (all_clean_.WaitWithDeadline(&mu_, deadline) && absl::Now() >= deadline) break;
  }
  --flush_waiters_;
  return write_pending_ == 0;
}

absl::Status CacheMemory::WaitDestaged(uint64_t sequence, absl::Time deadline) {
  absl::MutexLock lock(&mu_);
  auto pending = [&]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    for (auto [s, since] : destaging_) {
      if (since <= sequence) return true;
    }
    for (auto [s, since] : dirty_) {
      const SlotMeta& m = slots_[s];
      if (since <= sequence && m.state == SlotState::kWritePending && m.dirty_since == since &&
          !m.superseded) {
        return true;
      }
    }
    return false;
  };
  ++flush_waiters_;
  absl::Status result;
  while (pending()) {
    if (!destage_error_.ok()) {
      result = destage_error_;
      break;
    }
    if (all_clean_.WaitWithDeadline(&mu_, deadline) && absl::Now() >= deadline) {
      if (pending()) {
        result = absl::DeadlineExceededError("write-pending tracks did not destage in time");
      }
      break;
    }
  }
  --flush_waiters_;
  return result;
}

uint64_t CacheMemory::WritePendingOf(uint32_t volume_id) {
  absl::MutexLock lock(&mu_);
  uint64_t n = 0;
  for (const SlotMeta& m : slots_) {
    if (m.state == SlotState::kWritePending && !m.superseded && m.key.volume_id == volume_id) ++n;
  }
  return n;
}

void CacheMemory::SetDestageError(absl::Status error) {
  absl::MutexLock lock(&mu_);
  destage_error_ = std::move(error);
  // Flushes and slot waits re-check: they fail now, or may go on.
  all_clean_.SignalAll();
  slot_freed_.SignalAll();
}

absl::Status CacheMemory::destage_error() {
  absl::MutexLock lock(&mu_);
  return destage_error_;
}

}  // namespace simarray::cache
