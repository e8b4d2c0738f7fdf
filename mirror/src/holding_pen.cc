#include "simarray/mirror/holding_pen.h"

#include "absl/strings/str_cat.h"

namespace simarray::mirror {

HoldingPen::HoldingPen(PenPlacement placement, size_t capacity, cache::CacheRegion* region,
                       uint64_t first_record)
    : placement_(placement), capacity_(capacity), region_(region), first_record_(first_record) {
  if (placement_ == PenPlacement::kCache) {
    for (uint64_t i = capacity_; i-- > 0;) free_records_.push_back(first_record_ + i);
  }
}

absl::Status HoldingPen::Buffer(MirrorRequest request) {
  absl::MutexLock lock(&mu_);
  if (depth_ >= capacity_) {
    return absl::ResourceExhaustedError(
        absl::StrCat("holding pen full: ", depth_, " of ", capacity_, " requests"));
  }
  Held held{std::move(request)};
  if (placement_ == PenPlacement::kCache) {
    held.record = static_cast<int64_t>(free_records_.back());
    free_records_.pop_back();
    const MirrorRequest& r = held.request;
    cache::PenRecord rec{};
    rec.write_id = r.write_id;
    rec.track = r.key.track;
    rec.volume_id = r.key.volume_id;
    rec.slot = r.slot;
    rec.offset = r.offset;
    rec.length = r.length;
    rec.in_use = 1;
    region_->WritePenRecord(held.record, rec);
  }
  writes_[held.request.write_id].push_back(std::move(held));
  ++depth_;
  ++counters_.requests_buffered;
  return absl::OkStatus();
}

std::vector<MirrorRequest> HoldingPen::TakeLocked(uint64_t write_id) {
  std::vector<MirrorRequest> out;
  auto it = writes_.find(write_id);
  if (it == writes_.end()) return out;
  for (Held& h : it->second) {
    if (h.record >= 0) {
      region_->WritePenRecord(h.record, cache::PenRecord{});
      free_records_.push_back(h.record);
    }
    out.push_back(std::move(h.request));
  }
  writes_.erase(it);
  depth_ -= out.size();
  return out;
}

std::vector<MirrorRequest> HoldingPen::Release(uint64_t write_id) {
  absl::MutexLock lock(&mu_);
  auto out = TakeLocked(write_id);
  counters_.requests_sent += out.size();
  return out;
}

size_t HoldingPen::Delete(uint64_t write_id) {
  absl::MutexLock lock(&mu_);
  size_t n = TakeLocked(write_id).size();
  counters_.requests_deleted += n;
  return n;
}

PenCounters HoldingPen::Counters() {
  absl::MutexLock lock(&mu_);
  PenCounters c = counters_;
  c.depth = depth_;
  return c;
}

}  // namespace simarray::mirror
