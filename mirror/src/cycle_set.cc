#include "simarray/mirror/cycle_set.h"

#include <algorithm>

#include "absl/time/clock.h"
#include "spdlog/spdlog.h"

namespace simarray::mirror {

CycleSet::CycleSet(cache::CacheMemory* cache, OwedTracks* owed, absl::Duration cycle_time,
                   uint64_t slot_limit)
    : cache_(cache), owed_(owed), cycle_time_(cycle_time), slot_limit_(slot_limit) {}

void CycleSet::OpenCaptureLocked() {
  capture_ = Cycle{};
  capture_.number = next_cycle_++;
  capture_.opened = absl::Now();
}

void CycleSet::ToOwedLocked(Cycle& cycle) {
  for (auto& [key, track] : cycle.tracks) {
    owed_->NeedResync(key);
    UnspillLocked(cycle, track);
  }
  for (const Shipped& s : cycle.shipped) owed_->NeedResync(s.key);
  const uint64_t number = cycle.number;
  cycle = Cycle{};
  cycle.number = number;
}

void CycleSet::Capture(cache::TrackKey key, uint64_t sequence, uint32_t offset, uint32_t length,
                       cache::SlotRef slot) {
  absl::MutexLock lock(&mu_);
  ++counters_.writes_captured;
  if (!cycling_) {
    owed_->NeedResync(key);
    return;
  }
  auto [it, fresh] = capture_.tracks.try_emplace(key);
  Track& t = it->second;
  if (fresh) {
    t.begin = offset;
    t.end = offset + length;
  } else {
    ++counters_.writes_folded;
    UnspillLocked(capture_, t);  // the new image holds the older bytes too
    capture_.bytes -= t.end - t.begin;
    t.begin = std::min(t.begin, offset);
    t.end = std::max(t.end, offset + length);
  }
  capture_.bytes += t.end - t.begin;
  t.image_slot = slot.slot();
  t.slot = std::move(slot);  // the older image of the track is no longer pinned
  t.sequence = sequence;
  if (TracksLocked() > CapacityLocked() || (PinnedLocked() > slot_limit_ && !SpillLocked(key, t))) {
    // Pull-ahead: the cycles cannot drain fast enough, and the delta set extension (if any)
    // is full too. Fall back to owed tracks (a resync after the transmit cycle) rather than
    // pin ever more cache.
    ++counters_.pull_aheads;
    ToOwedLocked(capture_);
    transmit_.tainted = true;  // a resync follows it
    cycling_ = false;
    consistent_ = false;
  }
  PaceLocked();
}

bool CycleSet::CanSwitch() {
  absl::MutexLock lock(&mu_);
  return cycling_ && !transmit_.active;
}

bool CycleSet::Switch(uint64_t boundary, bool on_time, bool may_be_consistent) {
  absl::MutexLock lock(&mu_);
  if (!cycling_ || transmit_.active) return false;
  const absl::Time now = absl::Now();
  if (on_time && now - capture_.opened < cycle_time_) return false;
  transmit_ = std::move(capture_);
  transmit_.boundary = boundary;
  transmit_.switched = now;
  transmit_.active = true;
  transmit_.consistent =
      may_be_consistent && !owed_->resyncing() && !(upstream_resyncing_ && upstream_resyncing_());
  ++counters_.cycles_switched;
  OpenCaptureLocked();
  return true;
}

bool CycleSet::Resume() {
  absl::MutexLock lock(&mu_);
  if (cycling_) return true;
  if (owed_->resync_pending() > SlotLimitLocked() / 2) return false;
  // Every write so far is owed (resynced); every later one goes to a cycle.
  cycling_ = true;
  consistent_ = false;  // until a consistent cycle is applied
  OpenCaptureLocked();
  return true;
}

absl::Time CycleSet::NextSwitch() {
  absl::MutexLock lock(&mu_);
  if (!cycling_ || transmit_.active) return absl::InfiniteFuture();
  return capture_.opened + cycle_time_;
}

std::vector<MirrorRequest> CycleSet::TakeTransmit(size_t max) {
  std::vector<MirrorRequest> out;
  absl::MutexLock lock(&mu_);
  if (!transmit_.active) return out;
  while (out.size() < max && !transmit_.tracks.empty()) {
    auto node = transmit_.tracks.extract(transmit_.tracks.begin());
    Track& t = node.mapped();
    MirrorRequest r;
    r.key = node.key();
    r.slot = t.image_slot;
    r.offset = t.begin;
    r.length = t.end - t.begin;
    r.sequence = t.sequence;
    if (t.chunk) {
      // Paged out: read back now (the chunk is free again once the bytes are in memory).
      SpillHeader header;
      auto bytes = std::make_shared<std::string>();
      const absl::Status read = dse_->Get(*t.chunk, &header, bytes.get());
      UnspillLocked(transmit_, t);
      if (!read.ok() || bytes->size() != r.length) {
        // The cycle can no longer carry this track: it goes to the resync, and the cycle
        // does not claim to be a boundary.
        spdlog::error("cycles: {}; track {} of volume {} is resynced instead",
                      std::string(read.message()), r.key.track, r.key.volume_id);
        owed_->NeedResync(r.key);
        transmit_.consistent = false;
        continue;
      }
      r.spilled = std::move(bytes);
    } else {
      r.data = std::move(t.slot);
    }
    r.cycle = transmit_.number;
    transmit_.shipped.push_back(Shipped{r.key, r.slot, r.sequence});
    ++counters_.cycle_records_shipped;
    out.push_back(std::move(r));
  }
  if (transmit_.tracks.empty() && !transmit_.marker_taken && out.size() < max) {
    MirrorRequest end;
    end.cycle = transmit_.number;
    end.cycle_end = true;
    end.sequence = transmit_.boundary;
    end.cycle_records = transmit_.shipped.size();
    end.cycle_consistent = transmit_.consistent;
    transmit_.marker_taken = true;
    out.push_back(std::move(end));
  }
  return out;
}

bool CycleSet::TransmitPending() {
  absl::MutexLock lock(&mu_);
  return transmit_.active && (!transmit_.tracks.empty() || !transmit_.marker_taken);
}

bool CycleSet::TransmitOutstanding() {
  absl::MutexLock lock(&mu_);
  return transmit_.active;
}

bool CycleSet::ConsistentTransmitOutstanding() {
  absl::MutexLock lock(&mu_);
  return transmit_.active && transmit_.consistent;
}

void CycleSet::Taint() {
  absl::MutexLock lock(&mu_);
  transmit_.tainted = true;
  consistent_ = false;
}

void CycleSet::Applied(uint64_t cycle) {
  std::vector<Shipped> shipped;
  {
    absl::MutexLock lock(&mu_);
    if (!transmit_.active || transmit_.number != cycle) return;
    shipped = std::move(transmit_.shipped);
    applied_cycle_ = cycle;
    applied_sequence_ = transmit_.boundary;
    applied_switched_ = transmit_.switched;
    // After a pull-ahead the mirror still holds this boundary, but a resync follows.
    consistent_ = cycling_ && transmit_.consistent && !transmit_.tainted;
    ++counters_.cycles_applied;
    transmit_ = Cycle{};
    PaceLocked();
  }
  for (const Shipped& s : shipped) {
    owed_->Acked(s.key, s.sequence, /*resync=*/false);
    cache_->ClearMirrorOwed(s.slot, s.sequence);
  }
}

void CycleSet::LinkLost() {
  absl::MutexLock lock(&mu_);
  ToOwedLocked(transmit_);
  ToOwedLocked(capture_);
  cycling_ = false;
  consistent_ = false;
  PaceLocked();
}

void CycleSet::LimitToPeer(uint64_t tracks) {
  absl::MutexLock lock(&mu_);
  peer_slot_limit_ = std::max<uint64_t>(1, tracks);
  PaceLocked();
}

void CycleSet::SetSpill(DeltaSetExtension* dse) {
  absl::MutexLock lock(&mu_);
  dse_ = dse;
  PaceLocked();
}

bool CycleSet::SpillLocked(const cache::TrackKey& key, Track& t) {
  if (dse_ == nullptr || !t.slot.valid()) return false;
  const std::span<const uint8_t> bytes = t.slot.data().subspan(t.begin, t.end - t.begin);
  const std::optional<uint32_t> chunk =
      dse_->Put(SpillHeader{capture_.number, key, t.begin, t.end - t.begin, t.sequence}, bytes);
  if (!chunk) return false;
  t.chunk = chunk;
  t.slot = cache::SlotRef();  // the image's slot may be written in place or evicted now
  ++capture_.spilled;
  return true;
}

void CycleSet::UnspillLocked(Cycle& cycle, Track& t) {
  if (!t.chunk) return;
  dse_->Free(*t.chunk);
  t.chunk.reset();
  --cycle.spilled;
}

void CycleSet::SetPacing(const PacingSettings& settings) {
  absl::MutexLock lock(&mu_);
  pacing_ = settings;
  PaceLocked();
}

void CycleSet::PaceLocked() {
  const absl::Duration delay = PacingDelay(pacing_, TracksLocked(), CapacityLocked());
  pacing_delay_ns_.store(absl::ToInt64Nanoseconds(delay), std::memory_order_relaxed);
}

absl::Duration CycleSet::TakePacingDelay() {
  if (pacing_delay_ns_.load(std::memory_order_relaxed) == 0) return absl::ZeroDuration();
  absl::MutexLock lock(&mu_);
  const absl::Duration delay = absl::Nanoseconds(pacing_delay_ns_.load(std::memory_order_relaxed));
  if (delay == absl::ZeroDuration()) return delay;
  ++counters_.writes_paced;
  counters_.pacing_seconds += absl::ToDoubleSeconds(delay);
  pacing_delays_.Record(delay);
  return delay;
}

void CycleSet::NumberAfter(uint64_t cycle) {
  absl::MutexLock lock(&mu_);
  next_cycle_ = std::max(next_cycle_, cycle + 1);
}

uint64_t CycleSet::SlotLimitLocked() const { return std::min(slot_limit_, peer_slot_limit_); }

uint64_t CycleSet::TracksLocked() const {
  return capture_.tracks.size() + transmit_.tracks.size() + transmit_.shipped.size();
}

uint64_t CycleSet::PinnedLocked() const {
  return TracksLocked() - capture_.spilled - transmit_.spilled;
}

uint64_t CycleSet::CapacityLocked() const {
  const uint64_t spill = dse_ != nullptr ? dse_->chunks() : 0;
  return std::min(slot_limit_ + spill, peer_slot_limit_);
}

bool CycleSet::cycling() {
  absl::MutexLock lock(&mu_);
  return cycling_;
}

uint64_t CycleSet::pull_aheads() {
  absl::MutexLock lock(&mu_);
  return counters_.pull_aheads;
}

bool CycleSet::Idle() {
  absl::MutexLock lock(&mu_);
  return capture_.tracks.empty() && transmit_.tracks.empty() && transmit_.shipped.empty();
}

CycleCounters CycleSet::Counters() {
  absl::MutexLock lock(&mu_);
  CycleCounters c = counters_;
  c.cycling = cycling_;
  c.consistent = consistent_;
  c.capture_cycle = cycling_ ? capture_.number : 0;
  c.transmit_cycle = transmit_.active ? transmit_.number : 0;
  c.applied_cycle = applied_cycle_;
  c.applied_sequence = applied_sequence_;
  if (applied_switched_ != absl::InfinitePast()) {
    c.seconds_behind = absl::ToDoubleSeconds(absl::Now() - applied_switched_);
  }
  c.capture_tracks = capture_.tracks.size();
  c.capture_bytes = capture_.bytes;
  c.transmit_tracks = transmit_.tracks.size() + transmit_.shipped.size();
  c.transmit_bytes = transmit_.bytes;
  c.pinned_slots = PinnedLocked();
  c.slot_limit = SlotLimitLocked();
  c.pacing_threshold = PacingThreshold(pacing_, CapacityLocked());
  if (dse_ != nullptr) c.dse = dse_->Counters();
  c.pacing_delay_us = pacing_delay_ns_.load(std::memory_order_relaxed) / 1000;
  return c;
}

}  // namespace simarray::mirror
