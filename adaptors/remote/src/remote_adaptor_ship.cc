// RemoteAdaptor: shipping — the sender loop (what goes into the shipper next, when the
// link must go down) and the receiver of the mirror's acks.
#include <algorithm>
#include <random>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "ship_stream.h"
#include "simarray/remote/remote_adaptor.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {

absl::Duration Jitter(absl::Duration d) {
  static thread_local std::mt19937 random{std::random_device{}()};
  return d * std::uniform_real_distribution<double>(0.5, 1.5)(random);
}

}  // namespace

void RemoteAdaptor::HandleReply(const v1::ShipReply& reply) {
  std::vector<ShippedRecord> acked = shipper_.OnReply(reply);
  const absl::Time now = absl::Now();
  for (ShippedRecord& s : acked) {
    mirror::MirrorRequest& r = s.request;
    if (s.sent != absl::InfinitePast()) ship_latency_.Record(now - s.sent);
    if (r.cycle != 0) {
      if (r.cycle_end) cycles_->Applied(r.cycle);
      continue;
    }
    const bool resync = s.origin == Origin::kResync;
    owed_->Acked(r.key, r.sequence, resync);
    cache_->ClearMirrorOwed(r.slot, r.sequence);
    if (r.ticket) r.ticket->Ack();
  }
  // After the acks took effect everywhere: WaitApplied may be satisfied, the pair may be
  // idle; the window has room again (Kick ships, or wakes the sender outside the steady
  // state: the resync window, a cycle applied and the next switch).
  events_.Notify();
  Kick();
}

void RemoteAdaptor::OnPush() { Kick(); }

void RemoteAdaptor::Kick() {
  for (;;) {
    if (!steady_) {
      wake_.Notify();  // the sender's work
      return;
    }
    if (!send_mu_.TryLock()) return;  // the holder looks again once it lets go
    if (steady_ && stream_ != nullptr) {
      FillFromQueue();
      if (SendLocked() == Shipper::Sent::kBroken) {
        stream_broken_ = true;
        wake_.Notify();
      }
    }
    send_mu_.Unlock();
    // With a message on the wire, its completion looks again. Else look again if records
    // came while the lock was held (whoever pushed them found it taken).
    if (on_wire_) return;
    if (!shipper_.HasDue() && (queue_->Counters().depth == 0 || shipper_.Room() == 0)) return;
  }
}

Shipper::Sent RemoteAdaptor::SendLocked() {
  if (stream_ == nullptr || on_wire_) return Shipper::Sent::kNothing;
  on_wire_ = true;  // cleared by the write's completion (Connect sets up the stream)
  const Shipper::Sent sent = shipper_.SendDue(*stream_);
  if (sent == Shipper::Sent::kNothing || sent == Shipper::Sent::kBroken) on_wire_ = false;
  return sent;
}

Shipper::Sent RemoteAdaptor::Pump(bool resyncing) {
  Shipper::Sent sent;
  {
    absl::MutexLock lock(&send_mu_);
    steady_ = cycles_ == nullptr && !resyncing;
    if (cycles_ != nullptr) {
      FillAsync(resyncing);
    } else if (resyncing) {
      FillResync();
    } else {
      FillFromQueue();
    }
    sent = SendLocked();
  }
  if (steady_) Kick();  // records pushed while the lock was held
  return sent;
}

void RemoteAdaptor::DrainQueueDegraded() {
  absl::MutexLock send_lock(&send_mu_);  // nobody fills the shipper meanwhile
  std::vector<mirror::MirrorRequest> dropped = queue_->PopBatch(4096, absl::ZeroDuration());
  const size_t from_queue = dropped.size();
  // Resync and cycle records stay: their tracks are in the resync set or a cycle already
  // (a link loss hands them over in TearDown).
  std::vector<ShippedRecord> unsent =
      shipper_.TakeQueued([](const ShippedRecord& s) { return s.origin == Origin::kQueue; });
  for (ShippedRecord& s : unsent) dropped.push_back(std::move(s.request));
  if (dropped.empty()) return;
  for (auto& r : dropped) Degrade(r);
  {
    absl::MutexLock lock(&mu_);
    counters_.records_degraded += dropped.size();
    queue_taken_ += from_queue;
  }
  shipper_.Released(unsent.size());
  Changed();
}

size_t RemoteAdaptor::Fill(const Source& source, Origin origin) {
  // Without room: acks make some (HandleReply).
  const size_t room = std::min(shipper_.Room(), options_.batch_records);
  if (room == 0) return 0;
  std::vector<mirror::MirrorRequest> popped = source(room);
  const size_t n = popped.size();
  // The delay fault holds records back without serialising them.
  const absl::Duration delay = absl::Milliseconds(faults_->record_delay_ms());
  shipper_.Queue(std::move(popped), origin, delay);
  // Held back by the delay fault: only the sender's timer sends them once due.
  if (n > 0 && delay > absl::ZeroDuration()) wake_.Notify();
  if (origin == Origin::kQueue) {
    absl::MutexLock lock(&mu_);
    queue_taken_ += n;  // after the shipper holds them (Idle reads in that order)
  }
  return n;
}

size_t RemoteAdaptor::FillFromQueue() {
  return Fill([this](size_t max) { return queue_->PopBatch(max, absl::ZeroDuration()); },
              Origin::kQueue);
}

size_t RemoteAdaptor::FillResync() {
  return Fill([this](size_t max) { return TakeResyncRecords(max); }, Origin::kResync);
}

std::vector<mirror::MirrorRequest> RemoteAdaptor::TakeResyncRecords(size_t max) {
  const size_t held = shipper_.ResyncHeld();
  std::vector<mirror::MirrorRequest> batch;
  if (held >= options_.resync_window) return batch;
  // A quarter of the window at a time, so a message is a quarter of it: four are in flight
  // and the link streams instead of waiting for each message's ack (a window the size of
  // one message is stop-and-wait: a round trip of idle link per window).
  const size_t room = ResyncAllowance(std::min(
      {max, options_.resync_window - held, std::max<size_t>(1, options_.resync_window / 4)}));
  if (room == 0) return batch;
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

size_t RemoteAdaptor::ResyncAllowance(size_t wanted) {
  if (options_.resync_max_rate == 0 || wanted == 0) return wanted;
  const double bytes_per_second = options_.resync_max_rate / 8.0;
  const double track = cache_->track_size();
  const double burst = std::max<double>(1, options_.resync_window / 4) * track;
  const absl::Time now = absl::Now();
  absl::MutexLock lock(&rate_mu_);
  if (resync_refilled_ == absl::InfinitePast()) resync_tokens_ = burst;
  resync_tokens_ = std::min(
      burst, resync_tokens_ + absl::ToDoubleSeconds(now - resync_refilled_) * bytes_per_second);
  resync_refilled_ = now;
  const size_t allowed = std::min(wanted, static_cast<size_t>(resync_tokens_ / track));
  resync_tokens_ -= static_cast<double>(allowed) * track;
  resync_due_ns_ =
      allowed > 0
          ? 0
          : absl::ToUnixNanos(now + absl::Seconds((track - resync_tokens_) / bytes_per_second));
  return allowed;
}

absl::Time RemoteAdaptor::NextDeadline() {
  // A message on the wire: its completion wakes the sender or ships (Kick); until then
  // only the timeouts matter.
  const bool on_wire = on_wire_;
  absl::Time next = shipper_.NextDeadline(/*can_send=*/!on_wire);
  if (cycles_ != nullptr) next = std::min(next, cycles_->NextSwitch());
  // resync.max_rate held the resync back: look again when it allows a track. A time that
  // has passed is looked at once and forgotten: the resync may have ended meanwhile (a
  // resync still held back sets a new one), and a stale one must not wake the sender for
  // ever.
  if (int64_t due = resync_due_ns_.load(); due != 0) {
    const absl::Time at = absl::FromUnixNanos(due);
    if (at <= absl::Now()) resync_due_ns_.compare_exchange_strong(due, 0);
    next = std::min(next, at);
  }
  // The write's completion clears on_wire_ without waking the sender (in the steady state it
  // ships itself, Kick). If it was on the wire just now, what falls due meanwhile (a
  // heartbeat, a record the delay fault held) is looked at again within a heartbeat period,
  // never left waiting for an unrelated wake-up.
  if (on_wire) next = std::min(next, absl::Now() + shipper_.heartbeat());
  return next;
}

void RemoteAdaptor::SenderLoop() {
  absl::Duration backoff = absl::Milliseconds(100);
  for (;;) {
    // Taken before looking at anything: a change notified from here on ends the wait below.
    const uint64_t seen = wake_.Token();
    if (stop_) break;
    if (LinkHeld()) {
      if (LinkOpen()) TearDown("held down by the admin or a fault");
      bool suspended;
      {
        absl::MutexLock lock(&mu_);
        suspended = suspended_;
      }
      // Reported only now that nothing can be shipped any more.
      SetState(suspended ? LinkState::kSuspended : LinkState::kDown);
      DrainQueueDegraded();
      // Waits for: the hold to end (Resume, or the drop fault's time), Stop, or the queue
      // gaining records (turned into owed tracks at once).
      wake_.WaitSince(seen, HeldUntil());
      continue;
    }
    if (!LinkOpen()) {
      {
        absl::MutexLock lock(&mu_);
        if (state_ != LinkState::kDown) state_ = LinkState::kConnecting;
      }
      state_changes_.Notify();
      if (!Connect()) {
        SetState(LinkState::kDown);
        if (++failed_connects_ % kConnectsBeforeNewChannel == 0) RenewChannel();
        // Writes must not wait for the next attempt: keep turning them into owed tracks.
        const absl::Time retry = absl::Now() + Jitter(backoff);
        for (;;) {
          const uint64_t waited = wake_.Token();
          if (stop_ || absl::Now() >= retry) break;
          DrainQueueDegraded();
          // Waits for: the retry time, Stop, or the queue gaining records.
          wake_.WaitSince(waited, retry);
        }
        backoff = std::min(backoff * 2, absl::Seconds(2));
        continue;
      }
      backoff = absl::Milliseconds(100);
      failed_connects_ = 0;
    }
    if (stream_broken_) {
      TearDown("the Ship stream broke");
      continue;
    }
    if (shipper_.CheckOverdue() != Shipper::Overdue::kNo) {
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
      state_changes_.Notify();
    }
    shipper_.SetResyncing(resyncing);
    if (cycles_ == nullptr && resyncing) DrainQueueDegraded();  // their tracks join the resync
    // Records due, else a heartbeat if one is due (the mirror answers every message).
    const Shipper::Sent sent = Pump(resyncing);
    if (sent == Shipper::Sent::kBroken) {
      stream_broken_ = true;
    } else if (sent == Shipper::Sent::kNothing) {
      // Nothing to send, or a message on the wire. Waits for: records to ship outside the
      // steady state (the queue or the resync set gaining some), room in the send or
      // resync window or a cycle applied (acks), the stream breaking, a hold, Stop, or the
      // next deadline (heartbeat, ack timeout, delayed record, cycle switch). In the steady
      // state, Kick ships (see remote_adaptor.h).
      wake_.WaitSince(seen, NextDeadline());
    }
  }
  if (LinkOpen()) TearDown("daemon stopping");
  DrainQueueDegraded();
  if (cycles_ != nullptr) cycles_->LinkLost();
}

}  // namespace simarray::remote
