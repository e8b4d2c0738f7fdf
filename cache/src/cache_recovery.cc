// CacheMemory: opening the region and recovering what the last run left in it (a crash
// included): which slot entries to trust, the track directory, the dirty list and the
// sequence to go on from. The rest of CacheMemory is in cache_memory.cc.
#include <algorithm>
#include <cstring>

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
  std::vector<uint32_t> sealed;  // in-place commits a kill interrupted: redone below
  std::vector<uint32_t> torn;
  uint64_t max_sequence = 0;
  for (uint32_t s = 0; s < slot_count_; ++s) {
    SlotEntry e;
    if (!region_->ReadEntry(s, &e)) {
      // A seal names its image slot: that image is rebuilt from the seal (RedoSealsLocked).
      ++report->torn_entries;
      torn.push_back(s);
      continue;
    }
    auto state = static_cast<SlotState>(e.state);
    if (state == SlotState::kStaging && (e.flags & kSlotSealedInPlace) && e.sequence != 0) {
      sealed.push_back(s);
      max_sequence = std::max(max_sequence, e.sequence);
      continue;
    }
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
  RedoSealsLocked(std::move(sealed), &best, report);
  for (uint32_t s : torn) {
    if (slots_[s].state == SlotState::kFree) FreeSlotLocked(s);  // no seal rebuilt it
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
      // Which blocks the last run had destaged is not kept: all of them go out again.
      m.dirty = BlocksOf(TrackRange{0, track_size_});
      m.dirty_since = m.sequence;
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

void CacheMemory::RedoSealsLocked(std::vector<uint32_t> sealed,
                                  std::unordered_map<TrackKey, uint32_t, TrackKeyHash>* best,
                                  RecoveryReport* report) {
  struct Seal {
    uint32_t slot;
    SlotEntry entry;
  };
  std::vector<Seal> seals;
  for (uint32_t s : sealed) {
    seals.push_back(Seal{s, {}});
    region_->ReadEntry(s, &seals.back().entry);  // read (and checked) by Recover already
  }
  std::sort(seals.begin(), seals.end(),
            [](const Seal& a, const Seal& b) { return a.entry.sequence < b.entry.sequence; });
  for (const Seal& seal : seals) {
    const uint32_t s = seal.slot;
    const SlotEntry& e = seal.entry;
    const uint64_t sequence = e.sequence;
    const TrackKey key{e.volume_id, e.track};
    const uint32_t offset = SealedOffset(e), length = SealedLength(e);
    const uint32_t image = e.seal_image;
    if (image >= slot_count_ || image == s || length == 0 || offset + length > track_size_) {
      ++report->staging_dropped;  // not a seal this code wrote: never trusted
      FreeSlotLocked(s);
      continue;
    }
    SlotMeta& m = slots_[image];
    SlotEntry ie;
    const bool image_torn = !region_->ReadEntry(image, &ie);
    auto it = best->find(key);
    const bool is_image = it != best->end() && it->second == image;
    if (!is_image && !image_torn) {
      // The image moved on (a newer image of the track won) or went: nothing to redo.
      ++report->staging_dropped;
      FreeSlotLocked(s);
      continue;
    }
    if (is_image && m.sequence >= sequence) {
      ++report->staging_dropped;  // the commit had finished; only the seal was left
      FreeSlotLocked(s);
      continue;
    }
    if (image_torn) {
      // Killed while the image's own entry was being written: the seal says what it is.
      if (it != best->end()) {
        if (slots_[it->second].sequence >= sequence) {
          ++report->staging_dropped;  // a newer image of the track won: keep that one
          FreeSlotLocked(s);
          continue;
        }
        // An older copy (the image was the live one when sealed): the rebuilt image wins.
        ++report->superseded;
        FreeSlotLocked(it->second);
        best->erase(it);
      }
      --report->torn_entries;
      m = SlotMeta();
      m.key = key;
      (*best)[key] = image;
    }
    std::memcpy(Data(image).data() + offset, Data(s).data() + offset, length);
    m.state = SlotState::kWritePending;
    m.sequence = sequence;
    m.flags |= e.flags & kSlotMirrorOwed;
    WriteEntryLocked(image);
    ++report->redone;
    FreeSlotLocked(s);
  }
}

}  // namespace simarray::cache
