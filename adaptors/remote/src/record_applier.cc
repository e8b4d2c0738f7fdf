#include "simarray/remote/record_applier.h"

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace simarray::remote {

absl::StatusOr<StagedRecord> RecordApplier::Stage(uint32_t volume_id, uint64_t track,
                                                  uint32_t offset, std::span<const uint8_t> data,
                                                  uint64_t sequence) {
  auto volume = volumes_->FindById(volume_id);
  if (volume == nullptr) return absl::NotFoundError(absl::StrCat("no volume with id ", volume_id));
  const uint32_t track_size = cache_->track_size();
  if (data.empty() || offset >= track_size || data.size() > track_size - offset ||
      (track + 1) * track_size > volume->size) {
    return absl::OutOfRangeError(absl::StrCat("record for track ", track, " [", offset, ", +",
                                              data.size(), ") is outside volume ", volume->name));
  }
  const cache::TrackKey key{volume_id, track};
  StagedRecord record;
  if (data.size() < track_size) {
    auto pin = cache_->PinTrack(key);
    if (!pin.ok()) return pin.status();
    record.pin = std::move(*pin);
  }
  auto staged = cache_->AllocateStaging(key, 0, absl::Now() + absl::Seconds(30));
  if (!staged.ok()) return staged.status();
  std::memcpy(staged->data().data() + offset, data.data(), data.size());
  record.staged = std::move(*staged);
  record.offset = offset;
  record.length = static_cast<uint32_t>(data.size());
  record.sequence = sequence;
  return record;
}

bool RecordApplier::PublishLocked(StagedRecord record) {
  cache_->ObserveSequence(record.sequence);
  const bool applied = cache_->Publish(std::move(record.staged), record.offset, record.length,
                                       record.sequence, false);
  (applied ? records_applied_ : records_skipped_).fetch_add(1);
  return applied;
}

absl::StatusOr<bool> RecordApplier::Apply(uint32_t volume_id, uint64_t track, uint32_t offset,
                                          std::span<const uint8_t> data, uint64_t sequence) {
  auto record = Stage(volume_id, track, offset, data, sequence);
  if (!record.ok()) return record.status();
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  consistent_ = false;
  const bool applied = PublishLocked(*std::move(record));
  if (sequence > applied_sequence_.load()) applied_sequence_.store(sequence);
  return applied;
}

void RecordApplier::ApplyCycle(std::vector<StagedRecord> records, uint64_t cycle, uint64_t boundary,
                               bool consistent) {
  // A cycle holds one record per track; publishing in sequence order keeps the cache's
  // contract (commits in order) all the same.
  std::sort(records.begin(), records.end(),
            [](const StagedRecord& a, const StagedRecord& b) { return a.sequence < b.sequence; });
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  for (StagedRecord& r : records) PublishLocked(std::move(r));
  cache_->ObserveSequence(boundary);
  applied_sequence_.store(boundary);
  applied_cycle_.store(cycle);
  cycles_applied_.fetch_add(1);
  consistent_ = consistent;
}

}  // namespace simarray::remote
