// Shipper: queued -> sent -> acked | refused | lost (shipper.h).
#include "simarray/remote/shipper.h"

#include <algorithm>

#include "simarray/base/crc32c.h"

namespace simarray::remote {

Shipper::Shipper(ShipperOptions options, Clock clock)
    : options_(options), clock_(std::move(clock)) {}

void Shipper::Queue(std::vector<mirror::MirrorRequest> records, Origin origin,
                    absl::Duration delay) {
  if (records.empty()) return;
  const absl::Time due = clock_() + delay;
  absl::MutexLock lock(&mu_);
  for (auto& r : records) line_.push_back(Queued{ShippedRecord{std::move(r), origin}, due});
  NotePeakLocked();
}

void Shipper::QueueFirst(std::vector<mirror::MirrorRequest> records, Origin origin) {
  absl::MutexLock lock(&mu_);
  for (auto it = records.rbegin(); it != records.rend(); ++it) {
    line_.push_front(Queued{ShippedRecord{std::move(*it), origin}, absl::InfinitePast()});
  }
  NotePeakLocked();
}

size_t Shipper::Room() {
  absl::MutexLock lock(&mu_);
  const size_t held = in_flight_.size() + line_.size();
  return held < options_.max_in_flight ? options_.max_in_flight - held : 0;
}

size_t Shipper::ResyncHeld() {
  absl::MutexLock lock(&mu_);
  size_t n = 0;
  for (const auto& [id, f] : in_flight_) n += f.record.origin == Origin::kResync;
  for (const Queued& q : line_) n += q.record.origin == Origin::kResync;
  return n;
}

std::vector<ShippedRecord> Shipper::TakeDueLocked(absl::Time now) {
  std::vector<ShippedRecord> batch;
  size_t bytes = 0;
  // A record that would take the message past batch_bytes waits for the next one (a single
  // record may be bigger: it goes alone).
  while (batch.size() < options_.batch_records && !line_.empty() && line_.front().due <= now &&
         (batch.empty() || bytes + line_.front().record.request.length <= options_.batch_bytes)) {
    bytes += line_.front().record.request.length;
    batch.push_back(std::move(line_.front().record));
    line_.pop_front();
  }
  handed_out_ += batch.size();
  return batch;
}

Shipper::Sent Shipper::SendDue(ShipTransport& transport) {
  const absl::Time now = clock_();
  std::vector<ShippedRecord> batch;
  uint64_t first_id;
  {
    absl::MutexLock lock(&mu_);
    batch = TakeDueLocked(now);
    if (batch.empty() && now - last_sent_ < options_.heartbeat) return Sent::kNothing;
    first_id = next_record_id_;
    next_record_id_ += batch.size();
  }
  // The message is built without the lock: the bytes are read from the cache slots now, at
  // ship time (a cycle's end marker has none). No answer can come for ids not yet sent.
  v1::ShipRequest message;
  message.set_source_resyncing(resyncing_.load(std::memory_order_relaxed));
  uint64_t bytes = 0;
  uint64_t id = first_id;
  for (const ShippedRecord& s : batch) {
    const mirror::MirrorRequest& r = s.request;
    std::span<const uint8_t> data;
    if (r.data.valid()) {
      data = r.data.data().subspan(r.offset, r.length);
    } else if (r.spilled) {
      data = {reinterpret_cast<const uint8_t*>(r.spilled->data()), r.spilled->size()};
    }
    v1::ShipRecord* rec = message.add_records();
    rec->set_cycle(r.cycle);
    rec->set_cycle_end(r.cycle_end);
    rec->set_cycle_records(r.cycle_records);
    rec->set_cycle_consistent(r.cycle_consistent);
    rec->set_write_continues(r.write_continues);
    rec->set_record_id(id++);
    rec->set_sequence(r.sequence);
    rec->set_volume_id(r.key.volume_id);
    rec->set_track(r.key.track);
    rec->set_offset(r.offset);
    rec->set_data(data.data(), data.size());
    rec->set_crc32c(Crc32c(data));
    bytes += data.size();
  }
  const size_t records = batch.size();
  {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = now + options_.ack_timeout;
    id = first_id;
    for (ShippedRecord& s : batch) {
      s.sent = now;
      in_flight_.emplace(id++, InFlight{std::move(s), deadline});
    }
    handed_out_ -= records;
    counters_.records_shipped += records;
    ++counters_.messages_shipped;
    counters_.bytes_shipped += bytes;
    NotePeakLocked();
    if (answer_due_ == absl::InfiniteFuture()) answer_due_ = deadline;
    last_sent_ = now;
  }
  if (!transport.Write(std::move(message))) return Sent::kBroken;
  return records != 0 ? Sent::kRecords : Sent::kHeartbeat;
}

bool Shipper::HasDue() {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  return !line_.empty() && line_.front().due <= now;
}

std::vector<ShippedRecord> Shipper::OnReply(const v1::ShipReply& reply) {
  std::vector<ShippedRecord> acked;
  absl::MutexLock lock(&mu_);
  answer_due_ = absl::InfiniteFuture();
  // Refused (failed its CRC on the way): sent again, first, in the order they were sent.
  for (auto id = reply.refused().rbegin(); id != reply.refused().rend(); ++id) {
    auto it = in_flight_.find(*id);
    if (it == in_flight_.end()) continue;
    line_.push_front(Queued{std::move(it->second.record), absl::InfinitePast()});
    in_flight_.erase(it);
    ++counters_.records_refused;
  }
  while (!in_flight_.empty() && in_flight_.begin()->first <= reply.acked_through()) {
    ShippedRecord& s = in_flight_.begin()->second.record;
    // A cycle's data record is only staged on the mirror; its marker's ack means applied.
    // A resync record's stamp says nothing about the writes before it.
    const bool staged_only = s.request.cycle != 0 && !s.request.cycle_end;
    if (s.origin != Origin::kResync && !staged_only) {
      last_acked_sequence_ = std::max(last_acked_sequence_, s.request.sequence);
    }
    acked.push_back(std::move(s));
    in_flight_.erase(in_flight_.begin());
  }
  counters_.records_acked += acked.size();
  return acked;
}

Shipper::Overdue Shipper::CheckOverdue() {
  const absl::Time now = clock_();
  absl::MutexLock lock(&mu_);
  if (!in_flight_.empty() && in_flight_.begin()->second.deadline < now) {
    ++counters_.ack_timeouts;
    return Overdue::kAck;
  }
  if (answer_due_ < now) {
    ++counters_.heartbeat_timeouts;
    return Overdue::kHeartbeat;
  }
  return Overdue::kNo;
}

absl::Time Shipper::NextDeadline(bool can_send) {
  absl::MutexLock lock(&mu_);
  absl::Time next = answer_due_;
  if (can_send) next = std::min(next, last_sent_ + options_.heartbeat);
  if (can_send && !line_.empty()) next = std::min(next, line_.front().due);
  if (!in_flight_.empty()) next = std::min(next, in_flight_.begin()->second.deadline);
  return next;
}

std::vector<ShippedRecord> Shipper::LoseAll() {
  std::vector<ShippedRecord> lost;
  absl::MutexLock lock(&mu_);
  for (auto& [id, f] : in_flight_) lost.push_back(std::move(f.record));
  in_flight_.clear();
  for (Queued& q : line_) lost.push_back(std::move(q.record));
  line_.clear();
  handed_out_ += lost.size();
  answer_due_ = absl::InfiniteFuture();
  return lost;
}

std::vector<ShippedRecord> Shipper::TakeQueued(
    const std::function<bool(const ShippedRecord&)>& take) {
  std::vector<ShippedRecord> taken;
  absl::MutexLock lock(&mu_);
  std::deque<Queued> kept;
  for (Queued& q : line_) {
    if (take(q.record)) {
      taken.push_back(std::move(q.record));
    } else {
      kept.push_back(std::move(q));
    }
  }
  line_ = std::move(kept);
  handed_out_ += taken.size();
  return taken;
}

void Shipper::Released(size_t n) {
  absl::MutexLock lock(&mu_);
  handed_out_ -= std::min(n, handed_out_);
}

size_t Shipper::held() {
  absl::MutexLock lock(&mu_);
  return line_.size() + in_flight_.size() + handed_out_;
}

uint64_t Shipper::AppliedSequence() {
  absl::MutexLock lock(&mu_);
  uint64_t applied = last_acked_sequence_;
  auto below = [&applied](const ShippedRecord& s) {
    if (s.origin != Origin::kResync && s.request.sequence != 0) {
      applied = std::min(applied, s.request.sequence - 1);
    }
  };
  for (const auto& [id, f] : in_flight_) below(f.record);
  for (const Queued& q : line_) below(q.record);
  return applied;
}

void Shipper::Reset() {
  absl::MutexLock lock(&mu_);
  answer_due_ = absl::InfiniteFuture();
}

ShipperCounters Shipper::Counters() {
  absl::MutexLock lock(&mu_);
  ShipperCounters c = counters_;
  c.in_flight = in_flight_.size() + line_.size();
  return c;
}

void Shipper::NotePeakLocked() {
  counters_.in_flight_peak =
      std::max<uint64_t>(counters_.in_flight_peak, in_flight_.size() + line_.size());
}

}  // namespace simarray::remote
