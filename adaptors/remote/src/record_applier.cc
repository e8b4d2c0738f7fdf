#include "simarray/remote/record_applier.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace simarray::remote {

absl::StatusOr<bool> RecordApplier::Apply(uint32_t volume_id, uint64_t track, uint32_t offset,
                                          std::span<const uint8_t> data, uint64_t sequence) {
  auto volume = volumes_->FindById(volume_id);
  if (volume == nullptr) return absl::NotFoundError(absl::StrCat("no volume with id ", volume_id));
  const uint32_t track_size = cache_->track_size();
  if (data.empty() || offset >= track_size || data.size() > track_size - offset ||
      (track + 1) * track_size > volume->size) {
    return absl::OutOfRangeError(absl::StrCat("record for track ", track, " [", offset, ", +",
                                              data.size(), ") is outside volume ", volume->name));
  }
  absl::MutexLock lock(&mu_);
  const cache::TrackKey key{volume_id, track};
  cache::TrackPin pin;
  if (data.size() < track_size) {
    auto p = cache_->PinTrack(key);
    if (!p.ok()) return p.status();
    pin = std::move(*p);
  }
  auto staged = cache_->AllocateStaging(key, 0, absl::Now() + absl::Seconds(30));
  if (!staged.ok()) return staged.status();
  std::memcpy(staged->data().data() + offset, data.data(), data.size());
  cache_->ObserveSequence(sequence);
  bool applied = cache_->Publish(std::move(*staged), offset, static_cast<uint32_t>(data.size()),
                                 sequence, false);
  if (applied) {
    records_applied_.fetch_add(1);
  } else {
    records_skipped_.fetch_add(1);
  }
  if (sequence > applied_sequence_.load()) applied_sequence_.store(sequence);
  return applied;
}

}  // namespace simarray::remote
