// RecordApplier's gold copy (docs/async.md, "Gold copy"): the last consistent image, kept
// track by track as a resync (or any apply that is not a whole consistent cycle) first
// overwrites it, and published back when the mirror is promoted before it is consistent
// again.
#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "simarray/remote/record_applier.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

void RecordApplier::BeginGoldLocked() {
  if (gold_ == nullptr || gold_->held()) return;
  uint64_t capacity = 0;
  for (const disk::VolumeInfo& v : volumes_->List()) capacity += v.size / cache_->track_size();
  const CycleMark mark{applied_cycle_.load(), applied_sequence_.load(), true};
  if (absl::Status s = gold_->Begin(mark, capacity); !s.ok()) {
    gold_->CountLost();
    spdlog::error(
        "gold copy: cannot be taken ({}); until the next consistent cycle the mirror's image "
        "is a mix of moments that no failover can undo",
        std::string(s.message()));
  }
}

void RecordApplier::KeepGoldLocked(cache::TrackKey key) {
  if (!gold_held() || gold_->Holds(key)) return;
  uint64_t unused = 0;
  cache::SlotRef current = cache_->PeekTrack(key, &unused);
  absl::Status kept;
  if (!current.valid()) {
    auto read = cache_->ReadTrack(key);
    if (read.ok()) {
      current = *std::move(read);
    } else {
      kept = read.status();
    }
  }
  if (current.valid()) kept = gold_->Keep(key, current.data());
  if (kept.ok()) return;
  gold_->CountLost();
  gold_->Drop(absl::StrCat("LOST: ", kept.message(),
                           "; until the next consistent cycle the mirror's image is a mix of "
                           "moments that no failover can undo"));
}

bool RecordApplier::GoldNeedsReadLocked(cache::TrackKey key) {
  if (gold_->Holds(key)) return false;
  uint64_t unused = 0;
  return !cache_->PeekTrack(key, &unused).valid();
}

absl::StatusOr<std::optional<RecordApplier::GoldRestored>> RecordApplier::RestoreGold(
    const GoldCommit& commit) {
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  if (!gold_held()) return std::nullopt;
  const CycleMark mark = gold_->mark();
  std::vector<cache::TrackKey> keys = gold_->Tracks();
  std::sort(keys.begin(), keys.end(), [](const cache::TrackKey& a, const cache::TrackKey& b) {
    return std::make_pair(a.volume_id, a.track) < std::make_pair(b.volume_id, b.track);
  });
  std::vector<uint8_t> track(cache_->track_size());
  for (const cache::TrackKey& key : keys) {
    absl::StatusOr<bool> read = gold_->Read(key, track);
    absl::Status s = read.ok() ? commit(key, track) : read.status();
    if (!s.ok()) {
      // A primary's reads and writes go to its live image from now on: a copy it could not
      // publish back whole stands for nothing.
      s = absl::Status(s.code(), absl::StrCat("gold copy: track ", key.track, " of volume ",
                                              key.volume_id, " not published back: ", s.message()));
      gold_->CountLost();
      gold_->Drop(absl::StrCat("LOST: ", s.message()));
      return s;
    }
  }
  gold_->Drop(absl::StrCat("published back at the promotion (", keys.size(),
                           " tracks): the image is the primary's as of sequence ", mark.sequence),
              keys.size());
  applied_cycle_.store(mark.cycle);
  applied_sequence_.store(mark.sequence);
  consistent_ = false;  // a primary's image from now on
  Note(CycleNote{{}, {mark.cycle, mark.sequence, false}});
  return GoldRestored{mark, keys.size()};
}

}  // namespace simarray::remote
