// RemoteAdaptor: shipping — the sender loop (resync or normal batches, heartbeats,
// timeouts) and the receiver of the mirror's acks.
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "simarray/base/crc32c.h"
#include "simarray/remote/remote_adaptor.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {

absl::Duration HeartbeatInterval(absl::Duration ack_timeout) {
  return std::clamp(ack_timeout / 4, absl::Milliseconds(20), absl::Seconds(1));
}

absl::Duration Jitter(absl::Duration d) {
  static thread_local std::mt19937 random{std::random_device{}()};
  return d * std::uniform_real_distribution<double>(0.5, 1.5)(random);
}

}  // namespace

void RemoteAdaptor::ReceiverLoop(Stream* stream) {
  v1::ShipReply reply;
  while (stream->Read(&reply)) HandleReply(reply);
  stream_broken_ = true;
  events_.Notify();  // the sender tears the link down
}

void RemoteAdaptor::HandleReply(const v1::ShipReply& reply) {
  std::vector<InFlight> acked;
  {
    absl::MutexLock lock(&mu_);
    heartbeat_outstanding_ = false;
    for (uint64_t id : reply.refused()) {
      auto it = in_flight_.find(id);
      if (it == in_flight_.end()) continue;
      // Failed its CRC on the way: sent again, first.
      delay_line_.push_front(
          Pending{std::move(it->second.request), absl::InfinitePast(), it->second.resync});
      in_flight_.erase(it);
      ++counters_.records_refused;
    }
    while (!in_flight_.empty() && in_flight_.begin()->first <= reply.acked_through()) {
      InFlight& f = in_flight_.begin()->second;
      // A cycle's data record is only staged on the mirror; its marker's ack means applied.
      const bool staged_only = f.request.cycle != 0 && !f.request.cycle_end;
      if (!f.resync && !staged_only) {
        last_acked_sequence_ = std::max(last_acked_sequence_, f.request.sequence);
      }
      acked.push_back(std::move(f));
      in_flight_.erase(in_flight_.begin());
    }
    counters_.records_acked += acked.size();
  }
  const absl::Time now = absl::Now();
  for (InFlight& f : acked) {
    if (f.sent != absl::InfinitePast()) ship_latency_.Record(now - f.sent);
    if (f.request.cycle != 0) {
      if (f.request.cycle_end) cycles_->Applied(f.request.cycle);
      continue;
    }
    owed_->Acked(f.request.key, f.request.sequence, f.resync);
    cache_->ClearMirrorOwed(f.request.slot, f.request.sequence);
    if (f.request.ticket) f.request.ticket->Ack();
  }
  // After the acks took effect everywhere: the send and resync windows have room, a cycle
  // may have applied (the next switch, cycles resuming), WaitApplied may be satisfied.
  events_.Notify();
}

void RemoteAdaptor::DrainQueueDegraded() {
  std::vector<mirror::MirrorRequest> dropped = queue_->PopBatch(4096, absl::ZeroDuration());
  const size_t from_queue = dropped.size();
  {
    absl::MutexLock lock(&mu_);
    // Resync and cycle records stay: their tracks are in the resync set or a cycle already
    // (a link loss hands them over in TearDown).
    std::deque<Pending> kept;
    for (auto& p : delay_line_) {
      if (p.resync || p.request.cycle != 0) {
        kept.push_back(std::move(p));
      } else {
        dropped.push_back(std::move(p.request));
      }
    }
    delay_line_ = std::move(kept);
    in_hand_ += dropped.size() - from_queue;  // until they are owed tracks
    counters_.records_degraded += dropped.size();
  }
  if (dropped.empty()) return;
  for (auto& r : dropped) Degrade(r);
  {
    absl::MutexLock lock(&mu_);
    in_hand_ -= dropped.size() - from_queue;
    queue_taken_ += from_queue;
  }
  events_.Notify();
}

std::vector<RemoteAdaptor::Outgoing> RemoteAdaptor::TakeResyncBatch() {
  return TakeNormalBatch([this](size_t max) { return TakeResyncRecords(max); }, Origin::kResync);
}

std::vector<mirror::MirrorRequest> RemoteAdaptor::TakeResyncRecords(size_t max) {
  size_t in_flight = 0;
  {
    absl::MutexLock lock(&mu_);
    for (const auto& [id, f] : in_flight_) in_flight += f.resync;
    for (const Pending& p : delay_line_) in_flight += p.resync;
  }
  std::vector<mirror::MirrorRequest> batch;
  if (in_flight >= options_.resync_window) return batch;
  const size_t room = std::min(max, options_.resync_window - in_flight);
  for (const cache::TrackKey& key : owed_->TakeResync(room)) {
    // Stamped before the read, so the image is at least as new as its stamp; the mirror
    // never applies it over newer data, and a write after the stamp keeps the track owed.
    const uint64_t stamp = cache_->LastSequence();
    auto slot = cache_->ReadTrack(key);
    if (!slot.ok()) {
      spdlog::warn("remote adaptor: resync of track {} of volume {} skipped: {}", key.track,
                   key.volume_id, std::string(slot.status().message()));
      owed_->Acked(key, UINT64_MAX, true);  // e.g. the volume was deleted
      continue;
    }
    mirror::MirrorRequest r;
    r.key = key;
    r.slot = slot->slot();
    r.length = cache_->track_size();
    r.sequence = stamp;
    r.data = std::move(*slot);
    batch.push_back(std::move(r));
  }
  return batch;
}

std::vector<RemoteAdaptor::Outgoing> RemoteAdaptor::TakeQueueBatch() {
  return TakeNormalBatch([this](size_t max) { return queue_->PopBatch(max, absl::ZeroDuration()); },
                         Origin::kQueue);
}

std::vector<RemoteAdaptor::Outgoing> RemoteAdaptor::TakeNormalBatch(const Source& source,
                                                                    Origin origin) {
  const bool resync = origin == Origin::kResync;
  size_t room;
  {
    absl::MutexLock lock(&mu_);
    const size_t held = in_flight_.size() + delay_line_.size();
    room = held < options_.max_in_flight ? options_.max_in_flight - held : 0;
  }
  // Without room the sender waits for acks (HandleReply notifies events_).
  std::vector<mirror::MirrorRequest> popped;
  if (room > 0) popped = source(std::min(room, options_.batch_records));
  const absl::Time now = absl::Now();
  const absl::Duration delay = absl::Milliseconds(faults_->record_delay_ms());
  std::vector<Outgoing> batch;
  absl::MutexLock lock(&mu_);
  if (origin == Origin::kQueue) queue_taken_ += popped.size();
  // The delay fault holds records back without serialising them.
  for (auto& r : popped) delay_line_.push_back(Pending{std::move(r), now + delay, resync});
  size_t bytes = 0;
  while (batch.size() < options_.batch_records && bytes < options_.batch_bytes &&
         !delay_line_.empty() && delay_line_.front().due <= now) {
    bytes += delay_line_.front().request.length;
    batch.push_back(Outgoing{std::move(delay_line_.front().request), delay_line_.front().resync});
    delay_line_.pop_front();
  }
  in_hand_ += batch.size();  // until Send puts them in flight
  return batch;
}

void RemoteAdaptor::Send(std::vector<Outgoing> batch) {
  v1::ShipRequest message;
  uint64_t bytes = 0;
  const uint64_t first_id = next_record_id_;
  for (const Outgoing& o : batch) {
    const mirror::MirrorRequest& r = o.request;
    // The bytes are read from the cache slot now, at ship time (a cycle's end marker has
    // none).
    std::span<const uint8_t> data;
    if (r.data.valid()) data = r.data.data().subspan(r.offset, r.length);
    v1::ShipRecord* rec = message.add_records();
    rec->set_cycle(r.cycle);
    rec->set_cycle_end(r.cycle_end);
    rec->set_cycle_records(r.cycle_records);
    rec->set_cycle_consistent(r.cycle_consistent);
    rec->set_record_id(next_record_id_++);
    rec->set_sequence(r.sequence);
    rec->set_volume_id(r.key.volume_id);
    rec->set_track(r.key.track);
    rec->set_offset(r.offset);
    rec->set_data(data.data(), data.size());
    rec->set_crc32c(Crc32c(data));
    bytes += data.size();
  }
  const absl::Time now = absl::Now();
  {
    absl::MutexLock lock(&mu_);
    const absl::Time deadline = now + options_.ack_timeout;
    for (size_t i = 0; i < batch.size(); ++i) {
      in_flight_.emplace(first_id + i,
                         InFlight{std::move(batch[i].request), deadline, batch[i].resync, now});
    }
    in_hand_ -= batch.size();
    counters_.records_shipped += batch.size();
    ++counters_.messages_shipped;
    counters_.bytes_shipped += bytes;
    counters_.in_flight_peak =
        std::max<uint64_t>(counters_.in_flight_peak, in_flight_.size() + delay_line_.size());
    if (!heartbeat_outstanding_) {
      heartbeat_outstanding_ = true;
      heartbeat_sent_ = now;
    }
  }
  last_sent_ = now;
  if (!stream_->Write(message)) stream_broken_ = true;
}

absl::Time RemoteAdaptor::NextDeadline(absl::Duration heartbeat) {
  absl::Time next = last_sent_ + heartbeat;                              // a heartbeat is due
  if (cycles_ != nullptr) next = std::min(next, cycles_->NextSwitch());  // the cycle switch
  absl::MutexLock lock(&mu_);
  // A delayed record falls due.
  if (!delay_line_.empty()) next = std::min(next, delay_line_.front().due);
  // The oldest record in flight or the outstanding heartbeat is overdue (Overdue).
  if (!in_flight_.empty()) next = std::min(next, in_flight_.begin()->second.deadline);
  if (heartbeat_outstanding_) next = std::min(next, heartbeat_sent_ + options_.ack_timeout);
  return next;
}

bool RemoteAdaptor::Overdue() {
  absl::MutexLock lock(&mu_);
  const absl::Time now = absl::Now();
  counters_.in_flight_peak =
      std::max<uint64_t>(counters_.in_flight_peak, in_flight_.size() + delay_line_.size());
  if (!in_flight_.empty() && in_flight_.begin()->second.deadline < now) {
    ++counters_.ack_timeouts;
    return true;
  }
  if (heartbeat_outstanding_ && now - heartbeat_sent_ > options_.ack_timeout) {
    ++counters_.heartbeat_timeouts;
    return true;
  }
  return false;
}

void RemoteAdaptor::SenderLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  const absl::Duration heartbeat = HeartbeatInterval(options_.ack_timeout);
  for (;;) {
    // Taken before looking at anything: a change notified from here on ends the wait below.
    const uint64_t seen = events_.Token();
    if (stop_) break;
    if (LinkHeld()) {
      if (stream_) TearDown("held down by the admin or a fault");
      bool changed;
      {
        // Reported only now that nothing can be shipped any more.
        absl::MutexLock lock(&mu_);
        const char* state = suspended_ ? "suspended" : "down";
        changed = counters_.state != state;
        counters_.state = state;
      }
      if (changed) events_.Notify();
      DrainQueueDegraded();
      // Waits for: the hold to end (Resume, or the drop fault's time), Stop, or the queue
      // gaining records (turned into owed tracks at once).
      events_.WaitSince(seen, HeldUntil());
      continue;
    }
    if (!stream_) {
      {
        absl::MutexLock lock(&mu_);
        if (counters_.state != "down") counters_.state = "connecting";
      }
      if (!Connect()) {
        {
          absl::MutexLock lock(&mu_);
          counters_.state = "down";
        }
        events_.Notify();
        // Writes must not wait for the next attempt: keep turning them into owed tracks.
        const absl::Time retry = absl::Now() + Jitter(backoff);
        for (;;) {
          const uint64_t waited = events_.Token();
          if (stop_ || absl::Now() >= retry) break;
          DrainQueueDegraded();
          // Waits for: the retry time, Stop, or the queue gaining records.
          events_.WaitSince(waited, retry);
        }
        backoff = std::min(backoff * 2, absl::Seconds(2));
        continue;
      }
      backoff = absl::Milliseconds(100);
    }
    if (stream_broken_) {
      TearDown("the Ship stream broke");
      continue;
    }
    if (Overdue()) {
      TearDown(absl::StrCat("no acknowledgement within ack_timeout_ms=",
                            absl::ToInt64Milliseconds(options_.ack_timeout)));
      continue;
    }
    const bool resyncing = owed_->resyncing();
    if (resyncing != was_resyncing_) {
      absl::MutexLock lock(&mu_);
      if (resyncing) {
        ++counters_.resyncs_started;
        resync_started_ = absl::Now();
        resynced_at_start_ = owed_->tracks_resynced();
        spdlog::info("remote adaptor: resync started: {} tracks to ship whole",
                     owed_->resync_pending());
      } else {
        ++counters_.resyncs_completed;
        spdlog::info("remote adaptor: resync complete ({} tracks so far); normal shipping",
                     owed_->tracks_resynced());
      }
      was_resyncing_ = resyncing;
    }
    std::vector<Outgoing> batch;
    if (cycles_ != nullptr) {
      batch = TakeAsyncBatch(resyncing);
    } else if (resyncing) {
      DrainQueueDegraded();  // their tracks join the resync
      batch = TakeResyncBatch();
    } else {
      batch = TakeQueueBatch();
    }
    if (!batch.empty()) {
      Send(std::move(batch));
    } else if (absl::Now() - last_sent_ >= heartbeat) {
      Send({});  // heartbeat: the mirror answers every message
    } else {
      // Nothing to send. Waits for: records to ship (the queue or the resync set gaining
      // some), room in the send or resync window or a cycle applied (acks), the stream
      // breaking, a hold, Stop, or the next deadline (heartbeat, ack timeout, delayed
      // record, cycle switch).
      events_.WaitSince(seen, NextDeadline(heartbeat));
    }
  }
  if (stream_) TearDown("daemon stopping");
  DrainQueueDegraded();
  if (cycles_ != nullptr) cycles_->LinkLost();
}

}  // namespace simarray::remote
