// CacheMemory: opening the region and recovering what the last run left in it (a crash
// included): which slot entries to trust, the track directory, the dirty list and the
// sequence to go on from. The rest of CacheMemory is in cache_memory.cc.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "simarray/cache/cache_memory.h"

namespace simarray::cache {

absl::StatusOr<std::unique_ptr<CacheMemory>> CacheMemory::Open(const CacheOptions& options,
                                                               RecoveryReport* report) {
  RegionOptions ro;
  // Without persistence the region file still carries the header (sequence high-water,
  // generation, role) across restarts; its slots are never trusted.
  ro.path = options.path;
  ro.size = options.size;
  ro.track_size = options.track_size;
  ro.pen_records = options.pen_records;
  ro.role = options.role;
  bool fresh = true;
  auto region = CacheRegion::Open(ro, &fresh);
  if (!region.ok()) return region.status();
  std::unique_ptr<CacheMemory> cache(new CacheMemory(std::move(*region), options.persistent));
  *report = RecoveryReport();
  report->fresh = fresh;
  absl::MutexLock lock(&cache->mu_);
  if (fresh || !options.persistent) {
    for (uint64_t s = 0; s < cache->slot_count_; ++s) cache->WriteEntryLocked(s);
    for (uint64_t s = cache->slot_count_; s-- > 0;) cache->free_.push_back(s);
  } else {
    cache->Recover(options.redo_write_id, report);
  }
  return cache;
}

CacheMemory::CacheMemory(std::unique_ptr<CacheRegion> region, bool persistent)
    : region_(std::move(region)),
      persistent_(persistent),
      track_size_(region_->track_size()),
      slot_count_(region_->slot_count()),
      slots_(slot_count_) {
  sequence_ = region_->header().sequence_high_water;
}

CacheMemory::~CacheMemory() = default;

void CacheMemory::Recover(uint64_t redo_write_id, RecoveryReport* report) {
  std::unordered_map<TrackKey, uint32_t, TrackKeyHash> best;
  uint64_t max_sequence = 0;
  for (uint32_t s = 0; s < slot_count_; ++s) {
    SlotEntry e;
    if (!region_->ReadEntry(s, &e)) {
      ++report->torn_entries;
      FreeSlotLocked(s);
      continue;
    }
    auto state = static_cast<SlotState>(e.state);
    if (state == SlotState::kStaging && redo_write_id != 0 && e.write_id == redo_write_id &&
        e.sequence != 0) {
      // A sealed whole-track image of the write to redo: published as if its commit had
      // finished (the newest sequence of a track still wins below).
      state = SlotState::kWritePending;
      ++report->redone;
    } else if (state == SlotState::kStaging) {
      ++report->staging_dropped;
    }
    if (state != SlotState::kClean && state != SlotState::kWritePending) {
      FreeSlotLocked(s);
      continue;
    }
    TrackKey key{e.volume_id, e.track};
    SlotMeta& m = slots_[s];
    m.state = state;
    m.flags = e.flags;
    m.key = key;
    m.sequence = e.sequence;
    if (e.state == static_cast<uint8_t>(SlotState::kStaging)) WriteEntryLocked(s);  // redone
    max_sequence = std::max(max_sequence, e.sequence);
    auto [it, inserted] = best.try_emplace(key, s);
    if (!inserted) {
      uint32_t loser = s;
      if (slots_[it->second].sequence < e.sequence) std::swap(loser, it->second);
      ++report->superseded;
      FreeSlotLocked(loser);
    }
  }
  for (uint64_t i = 0; i < region_->pen_records(); ++i) {
    PenRecord rec;
    if (region_->ReadPenRecord(i, &rec) && rec.in_use) ++report->pen_records_dropped;
    region_->WritePenRecord(i, PenRecord{});
  }
  std::vector<std::pair<uint64_t, uint32_t>> pending;
  for (auto& [key, s] : best) {
    SlotMeta& m = slots_[s];
    directory_[key].live = s;
    if (m.state == SlotState::kWritePending) {
      ++report->write_pending;
      pending.emplace_back(m.sequence, s);
    } else {
      ++report->clean;
    }
    if (m.flags & kSlotMirrorOwed) report->mirror_owed.push_back(key);
  }
  std::sort(pending.begin(), pending.end());
  for (auto [seq, s] : pending) dirty_.emplace_back(s, seq);
  write_pending_ = pending.size();
  sequence_ = std::max(region_->header().sequence_high_water, max_sequence);
}

}  // namespace simarray::cache
