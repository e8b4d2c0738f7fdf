#include "simarray/remote/record_applier.h"

#include <signal.h>

#include <algorithm>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

RecordApplier::RecordApplier(cache::CacheMemory* cache, disk::VolumeCatalog* volumes,
                             CycleJournal* journal, FaultInjector* faults, CycleMark applied)
    : cache_(cache), volumes_(volumes), journal_(journal), faults_(faults) {
  applied_cycle_ = applied.cycle;
  applied_sequence_ = applied.sequence;
  consistent_ = applied.consistent;
}

absl::StatusOr<StagedRecord> RecordApplier::Stage(uint32_t volume_id, uint64_t track,
                                                  uint32_t offset, std::span<const uint8_t> data,
                                                  uint64_t sequence) {
  return *StageRecord(volume_id, track, offset, data, sequence, /*may_wait=*/true);
}

std::optional<absl::StatusOr<StagedRecord>> RecordApplier::StageRecord(
    uint32_t volume_id, uint64_t track, uint32_t offset, std::span<const uint8_t> data,
    uint64_t sequence, bool may_wait) {
  if (absl::Status s = CheckRecord(volume_id, track, offset, data.size()); !s.ok()) return s;
  const uint32_t track_size = cache_->track_size();
  const cache::TrackKey key{volume_id, track};
  StagedRecord record;
  if (data.size() < track_size) {
    if (may_wait) {
      auto pin = cache_->PinTrack(key);
      if (!pin.ok()) return pin.status();
      record.pin = std::move(*pin);
    } else {
      std::optional<cache::TrackPin> pin = cache_->TryPinTrack(key);
      if (!pin) return std::nullopt;  // the image is on disk only: a read
      record.pin = std::move(*pin);
    }
  }
  // Write id 0: the slot table learns the cycle's id only with the seal (ApplyCycle), so a
  // slot staged but never sealed is dropped at restart, never redone.
  auto staged = cache_->AllocateStaging(
      key, 0, may_wait ? absl::Now() + absl::Seconds(30) : absl::InfinitePast());
  if (!staged.ok()) {
    if (!may_wait && absl::IsDeadlineExceeded(staged.status())) return std::nullopt;
    return staged.status();
  }
  record.offset = offset;
  record.length = static_cast<uint32_t>(data.size());
  record.changed = cache::TrackRange{record.offset, record.length};
  std::memcpy(staged->data().data() + offset, data.data(), data.size());
  record.staged = std::move(*staged);
  record.sequence = sequence;
  return record;
}

void RecordApplier::StreamEnded() {
  bool torn = false;
  {
    absl::MutexLock lock(&mu_);
    torn = std::exchange(write_open_, false);
  }
  if (!torn) return;
  spdlog::warn(
      "record applier: the stream ended inside a write; this image is torn until the "
      "source resyncs it");
  source_resyncing_ = true;
  if (torn_) torn_();
}

bool RecordApplier::PublishLocked(StagedRecord record) {
  write_open_ = record.write_continues;
  if (forwarder_) {
    if (std::optional<bool> forwarded = forwarder_(record); forwarded.has_value()) {
      (*forwarded ? records_applied_ : records_skipped_).fetch_add(1);
      return *forwarded;
    }
  }
  cache_->ObserveSequence(record.sequence);
  const bool applied = cache_
                           ->Publish(std::move(record.staged), record.offset, record.length,
                                     record.sequence, false, cache::Keep::kNothing, record.changed)
                           .applied;
  (applied ? records_applied_ : records_skipped_).fetch_add(1);
  return applied;
}

void RecordApplier::Note(const CycleNote& note) {
  if (journal_ == nullptr) return;
  if (absl::Status s = journal_->Write(note); !s.ok()) {
    // The apply goes on; only its atomicity across a crash is lost.
    spdlog::error("record applier: {}", std::string(s.message()));
  }
}

absl::StatusOr<bool> RecordApplier::Apply(uint32_t volume_id, uint64_t track, uint32_t offset,
                                          std::span<const uint8_t> data, uint64_t sequence,
                                          bool write_continues) {
  auto record = Stage(volume_id, track, offset, data, sequence);
  if (!record.ok()) return record.status();
  record->write_continues = write_continues;
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  if (!applying_) return NotApplying();
  if (consistent_.exchange(false)) {
    // From now on the image mixes moments: a restart must not claim a boundary, and the
    // boundary it was is kept as a gold copy.
    BeginGoldLocked();
    Note(CycleNote{{}, {applied_cycle_.load(), applied_sequence_.load(), false}});
  }
  return ApplyStagedLocked(*std::move(record));
}

std::optional<absl::StatusOr<bool>> RecordApplier::TryApply(uint32_t volume_id, uint64_t track,
                                                            uint32_t offset,
                                                            std::span<const uint8_t> data,
                                                            uint64_t sequence,
                                                            bool write_continues) {
  if (consistent_.load()) return std::nullopt;  // Apply writes a journal note first
  auto record = StageRecord(volume_id, track, offset, data, sequence, /*may_wait=*/false);
  if (!record) return std::nullopt;
  if (!record->ok()) return record->status();
  (*record)->write_continues = write_continues;
  // A host read copying from the image holds it shared; its staged slot is dropped (freed)
  // if the lock is taken, and the caller applies again where waiting is allowed.
  if (!image_mu_.TryLock()) return std::nullopt;
  absl::MutexLock lock(&mu_);
  if (!applying_) {
    image_mu_.Unlock();
    return NotApplying();
  }
  if (consistent_.load() || (gold_held() && GoldNeedsReadLocked((*record)->staged.key()))) {
    image_mu_.Unlock();
    return std::nullopt;
  }
  const bool applied = ApplyStagedLocked(*std::move(*record));
  image_mu_.Unlock();
  return applied;
}

bool RecordApplier::ApplyStagedLocked(StagedRecord record) {
  const uint64_t sequence = record.sequence;
  KeepGoldLocked(record.staged.key());
  const bool applied = PublishLocked(std::move(record));
  if (sequence > applied_sequence_.load()) applied_sequence_.store(sequence);
  outside_sequence_ = std::max(outside_sequence_, sequence);
  return applied;
}

absl::Status RecordApplier::NotApplying() const {
  return absl::FailedPreconditionError(
      "this daemon was promoted: records of its old primary are no longer applied");
}

void RecordApplier::SetApplying(bool applying) {
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  applying_ = applying;
}

void RecordApplier::ForgetBoundary() {
  absl::MutexLock lock(&mu_);
  consistent_ = false;
  Note(CycleNote{{}, {applied_cycle_.load(), applied_sequence_.load(), false}});
}

bool RecordApplier::ApplyCycle(std::vector<StagedRecord> records, uint64_t cycle, uint64_t boundary,
                               bool consistent, uint64_t stream) {
  // A cycle holds one record per track; publishing in sequence order keeps the cache's
  // contract (commits in order) all the same. Among the tracks of one write (one sequence)
  // the paged-out ones go last: the same order every time, whatever the staging order.
  std::sort(records.begin(), records.end(), [](const StagedRecord& a, const StagedRecord& b) {
    return std::make_pair(a.sequence, a.chunk.has_value()) <
           std::make_pair(b.sequence, b.chunk.has_value());
  });
  absl::WriterMutexLock image(&image_mu_);
  absl::MutexLock lock(&mu_);
  if (stream != stream_epoch_.load() || !applying_) {
    cycles_discarded_.fetch_add(1);
    spdlog::warn("record applier: cycle {} {}; not applied", cycle,
                 applying_ ? "came on a stream the primary gave up on"
                           : "came from the old primary of this promoted daemon");
    DropSpilled(records);
    return false;
  }
  // A repair record newer than the boundary means the image is not that boundary.
  consistent = consistent && outside_sequence_ <= boundary;
  outside_sequence_ = 0;
  // Every record becomes a whole-track image, filled from the track's image as it is now
  // (nothing else changes it under these locks), and sealed: what a restart redoes if the
  // daemon dies before the cycle is applied whole. A paged-out record is redone from its
  // chunk instead (RedoSpilled).
  const uint32_t track_size = cache_->track_size();
  std::vector<uint32_t> chunks;
  for (StagedRecord& r : records) {
    if (r.chunk) {
      chunks.push_back(*r.chunk);
      continue;
    }
    if (r.length < track_size) {
      uint64_t unused = 0;
      cache::SlotRef current = cache_->PeekTrack(r.staged.key(), &unused);  // pinned
      if (!current.valid()) {
        auto read = cache_->ReadTrack(r.staged.key());
        if (read.ok()) current = std::move(*read);
      }
      if (current.valid()) {
        uint8_t* image = r.staged.data().data();
        const uint8_t* from = current.data().data();
        std::memcpy(image, from, r.offset);
        std::memcpy(image + r.offset + r.length, from + r.offset + r.length,
                    track_size - r.offset - r.length);
        r.offset = 0;
        r.length = track_size;
      }
    }
    if (r.length == track_size) {
      cache_->SealStaged(r.staged, r.sequence, CycleJournal::WriteIdOf(cycle));
    } else {
      // Its track could not be read: published partial, but a restart could not redo it, so
      // the cycle claims no boundary.
      consistent = false;
    }
  }
  // A cycle that leaves a consistent image a mix (closed while the primary still owed
  // tracks) begins a gold copy; every track the cycle changes is kept before the note, so
  // the redo of a cycle cut short by a crash never changes a track the copy lacks.
  if (consistent_.load() && !consistent) BeginGoldLocked();
  if (gold_held()) {
    for (const StagedRecord& r : records) KeepGoldLocked(r.chunk ? r.spilled_key : r.staged.key());
  }
  const CycleMark before{applied_cycle_.load(), applied_sequence_.load(), consistent_.load()};
  const CycleMark after{cycle, boundary, consistent};
  if (!records.empty()) Note(CycleNote{after, before});  // an empty cycle has nothing to redo
  // Taken only by a cycle with something to cut in half.
  const bool crash = records.size() >= 2 && faults_ != nullptr && faults_->TakeCrashMidApply();
  for (size_t i = 0; i < records.size(); ++i) {
    if (crash && i == records.size() / 2) {
      spdlog::critical(
          "record applier: injected fault: killed halfway through applying cycle {} ({} of {} "
          "records published)",
          cycle, i, records.size());
      ::raise(SIGKILL);
    }
    if (records[i].chunk) {
      auto back = Unspill(records[i]);
      if (!back.ok()) {
        // The track keeps its older image: the mirror is not this cycle's boundary.
        spdlog::error("record applier: cycle {}: {}; the image is not a cycle boundary", cycle,
                      std::string(back.status().message()));
        consistent = false;
        continue;
      }
      records[i] = *std::move(back);
    }
    records[i].write_continues = i + 1 < records.size();  // a cycle is shipped on whole
    PublishLocked(std::move(records[i]));
  }
  cache_->ObserveSequence(boundary);
  applied_sequence_.store(boundary);
  applied_cycle_.store(cycle);
  cycles_applied_.fetch_add(1);
  consistent_ = consistent;
  Note(CycleNote{{}, CycleMark{cycle, boundary, consistent}});
  if (consistent && gold_held()) {
    gold_->Drop(absl::StrCat("cycle ", cycle, " (sequence ", boundary,
                             ") was applied whole: the image is consistent again"));
  }
  for (const uint32_t chunk : chunks) dse_->Free(chunk);
  return true;
}

}  // namespace simarray::remote
