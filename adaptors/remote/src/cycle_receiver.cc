#include "simarray/remote/cycle_receiver.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {
std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}
}  // namespace

CycleReceiver::~CycleReceiver() {
  if (!staged_.empty() || marker_ || skipped_ != 0) Discard();
}

void CycleReceiver::Discard() {
  spdlog::warn(
      "peer service: cycle {} discarded unfinished ({} records staged{}); the mirror keeps "
      "cycle {}",
      cycle_, staged_.size(), marker_ ? ", marker received" : "", applier_->applied_cycle());
  applier_->CycleDiscarded();
  applier_->DropSpilled(staged_);
  staged_.clear();  // the staged slots are freed
  in_cache_ = 0;
  skipped_ = 0;
  marker_ = false;
}

absl::Status CycleReceiver::Stage(const v1::ShipRecord& record) {
  if (record.cycle() != cycle_) {
    if (!staged_.empty() || marker_ || skipped_ != 0) Discard();
    cycle_ = record.cycle();
  }
  auto staged = applier_->StageInCycle(record.volume_id(), record.track(), record.offset(),
                                       Bytes(record.data()), record.sequence(), cycle_, in_cache_);
  if (!staged.ok()) {
    const absl::StatusCode code = staged.status().code();
    if (code != absl::StatusCode::kNotFound && code != absl::StatusCode::kOutOfRange) {
      return staged.status();
    }
    spdlog::warn("peer service: record {} of cycle {} cannot be applied: {}", record.record_id(),
                 record.cycle(), std::string(staged.status().message()));
    ++skipped_;
    ApplyIfComplete();
    return absl::OkStatus();
  }
  if (!staged->chunk) ++in_cache_;
  staged_.push_back(*std::move(staged));
  ApplyIfComplete();
  return absl::OkStatus();
}

absl::Status CycleReceiver::End(const v1::ShipRecord& marker) {
  if (marker.cycle() != cycle_) {
    if (!staged_.empty() || marker_ || skipped_ != 0) Discard();
    cycle_ = marker.cycle();
  }
  if (marker.cycle_records() < staged_.size() + skipped_) {
    return absl::InvalidArgumentError(absl::StrCat("cycle ", cycle_, " announces ",
                                                   marker.cycle_records(), " records, ",
                                                   staged_.size(), " were staged"));
  }
  marker_ = true;
  marker_id_ = marker.record_id();
  boundary_ = marker.sequence();
  expected_ = marker.cycle_records();
  consistent_ = marker.cycle_consistent();
  ApplyIfComplete();
  return absl::OkStatus();
}

void CycleReceiver::ApplyIfComplete() {
  if (!marker_ || staged_.size() + skipped_ < expected_) return;
  const size_t records = staged_.size();
  applier_->ApplyCycle(std::move(staged_), cycle_, boundary_, consistent_, stream_);
  staged_.clear();
  in_cache_ = 0;
  skipped_ = 0;
  marker_ = false;
  spdlog::debug("peer service: cycle {} applied: {} tracks, boundary sequence {}", cycle_, records,
                boundary_);
}

uint64_t CycleReceiver::AckThrough(uint64_t received) const {
  return marker_ ? std::min(received, marker_id_ - 1) : received;
}

}  // namespace simarray::remote
