// RecordApplier's delta set extension (docs/async.md, "Delta set extension"): the records of
// a cycle past the mirror's cache share wait in chunks of a file until the cycle is applied,
// and a cycle being applied when the daemon stopped is redone from them.
#include <algorithm>

#include "absl/strings/str_cat.h"
#include "simarray/remote/record_applier.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

absl::Status RecordApplier::CheckRecord(uint32_t volume_id, uint64_t track, uint32_t offset,
                                        size_t length) const {
  auto volume = volumes_->FindById(volume_id);
  if (volume == nullptr) return absl::NotFoundError(absl::StrCat("no volume with id ", volume_id));
  const uint32_t track_size = cache_->track_size();
  if (length == 0 || offset >= track_size || length > track_size - offset ||
      (track + 1) * track_size > volume->size) {
    return absl::OutOfRangeError(absl::StrCat("record for track ", track, " [", offset, ", +",
                                              length, ") is outside volume ", volume->name));
  }
  return absl::OkStatus();
}

void RecordApplier::SetSpill(mirror::DeltaSetExtension* dse, uint64_t stage_slots) {
  dse_ = dse;
  stage_slots_ = stage_slots;
}

uint64_t RecordApplier::stage_capacity() const {
  return dse_ != nullptr ? stage_slots_ + dse_->chunks() : 0;
}

absl::StatusOr<StagedRecord> RecordApplier::StageInCycle(uint32_t volume_id, uint64_t track,
                                                         uint32_t offset,
                                                         std::span<const uint8_t> data,
                                                         uint64_t sequence, uint64_t cycle,
                                                         uint64_t in_cache) {
  if (dse_ != nullptr && in_cache >= stage_slots_) {
    if (absl::Status s = CheckRecord(volume_id, track, offset, data.size()); !s.ok()) return s;
    const mirror::SpillHeader header{cycle, cache::TrackKey{volume_id, track}, offset,
                                     static_cast<uint32_t>(data.size()), sequence};
    if (std::optional<uint32_t> chunk = dse_->Put(header, data); chunk.has_value()) {
      StagedRecord record;
      record.offset = offset;
      record.length = static_cast<uint32_t>(data.size());
      record.sequence = sequence;
      record.chunk = chunk;
      record.spilled_key = header.key;
      return record;
    }
    // Full: the record takes a cache slot after all (the source counted on fewer chunks).
  }
  return Stage(volume_id, track, offset, data, sequence);
}

void RecordApplier::DropSpilled(std::vector<StagedRecord>& records) {
  for (StagedRecord& r : records) {
    if (r.chunk) dse_->Free(*std::exchange(r.chunk, std::nullopt), /*forget=*/true);
  }
}

absl::StatusOr<StagedRecord> RecordApplier::Unspill(const StagedRecord& record) {
  mirror::SpillHeader header;
  std::string bytes;
  if (absl::Status s = dse_->Get(*record.chunk, &header, &bytes); !s.ok()) return s;
  const std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size());
  return Stage(header.key.volume_id, header.key.track, header.offset, data, header.sequence);
}

absl::StatusOr<uint64_t> RecordApplier::RedoSpilled(uint64_t cycle) {
  if (dse_ == nullptr) return 0;
  std::vector<StagedRecord> records;
  for (const uint32_t chunk : dse_->ChunksOf(cycle)) {
    StagedRecord r;
    r.chunk = chunk;
    auto back = Unspill(r);
    if (!back.ok()) return back.status();
    records.push_back(*std::move(back));
  }
  std::sort(records.begin(), records.end(),
            [](const StagedRecord& a, const StagedRecord& b) { return a.sequence < b.sequence; });
  const uint64_t redone = records.size();
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  for (StagedRecord& r : records) {
    KeepGoldLocked(r.staged.key());  // kept before the stop; a copy begun since keeps them now
    PublishLocked(std::move(r));
  }
  return redone;
}

}  // namespace simarray::remote
