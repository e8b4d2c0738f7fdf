// ShipReceiver: one Ship stream on the mirror (ship_receiver.h).
#include "ship_receiver.h"

#include "absl/strings/str_cat.h"
#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// A record that failed for one of these reasons would fail again if sent again.
bool IsPermanent(const absl::Status& s) { return absl::IsNotFound(s) || absl::IsOutOfRange(s); }

}  // namespace

ShipReceiver::ShipReceiver(std::string peer, RecordApplier* applier, WorkPool* pool,
                           Counters counters)
    : peer_(std::move(peer)),
      applier_(applier),
      pool_(pool),
      counters_(counters),
      cycles_(applier) {
  spdlog::info("peer service: Ship stream from {} opened", peer_);
  counters_.open_streams->fetch_add(1);
  StartRead(&request_);
}

void ShipReceiver::OnReadDone(bool ok) {
  if (!ok) {
    absl::MutexLock lock(&mu_);
    reads_done_ = true;
    MaybeFinishLocked();
    return;
  }
  next_ = 0;
  answer_.Clear();
  // A message that never came (a lost one on an emulated link, link_emulation.h): its
  // records were not applied, and those after it must not be acked past them. The stream
  // ends; the source counts what was in flight lost and resyncs it.
  const uint64_t number = request_.message_number();
  if (number != 0 && next_message_ != 0 && number != next_message_) {
    spdlog::warn(
        "peer service: message {} of the Ship stream from {} never came (message {} "
        "did); ending the stream",
        next_message_, peer_, number);
    absl::MutexLock lock(&mu_);
    status_ = grpc::Status(grpc::StatusCode::DATA_LOSS,
                           absl::StrCat("Ship stream: expected message ", next_message_,
                                        ", got message ", number, " (one was lost)"));
    reads_done_ = true;
    MaybeFinishLocked();
    return;
  }
  if (number != 0) next_message_ = number + 1;
  // A source that resyncs: this image mixes moments from the first of its records on.
  if (request_.source_resyncing()) applier_->SetSourceResyncing(true);
  if (ApplyFrom(/*may_wait=*/false)) {
    Applied();
    return;
  }
  // The rest may wait: on the apply thread. Posting fails only while the daemon stops.
  if (!pool_->Post([this] {
        ApplyFrom(/*may_wait=*/true);
        Applied();
      })) {
    absl::MutexLock lock(&mu_);
    status_ = grpc::Status(grpc::StatusCode::UNAVAILABLE, "the mirror is stopping");
    reads_done_ = true;
    MaybeFinishLocked();
  }
}

bool ShipReceiver::ApplyFrom(bool may_wait) {
  for (; next_ < request_.records_size(); ++next_) {
    const v1::ShipRecord& rec = request_.records(next_);
    if (Crc32c(Bytes(rec.data())) != rec.crc32c()) {
      answer_.add_refused(rec.record_id());
      counters_.records_refused->fetch_add(1);
      spdlog::warn("peer service: record {} (track {}) failed its CRC check; refused",
                   rec.record_id(), rec.track());
      continue;
    }
    if (rec.cycle() != 0) {
      if (!may_wait) return false;  // staging may wait for a slot, ending may write the journal
      absl::Status s = rec.cycle_end() ? cycles_.End(rec) : cycles_.Stage(rec);
      if (!s.ok()) {
        // The cycle cannot be completed: end the stream; the primary resyncs.
        spdlog::error("peer service: record {} of cycle {} not staged: {}", rec.record_id(),
                      rec.cycle(), std::string(s.message()));
        absl::MutexLock lock(&mu_);
        status_ = rpc::ToGrpc(s);
        return true;
      }
    } else {
      absl::StatusOr<bool> applied;
      if (may_wait) {
        applied = applier_->Apply(rec.volume_id(), rec.track(), rec.offset(), Bytes(rec.data()),
                                  rec.sequence(), rec.write_continues());
      } else {
        auto tried = applier_->TryApply(rec.volume_id(), rec.track(), rec.offset(),
                                        Bytes(rec.data()), rec.sequence(), rec.write_continues());
        if (!tried) return false;
        applied = std::move(*tried);
      }
      if (!applied.ok() && IsPermanent(applied.status())) {
        // The volume is gone, or the record does not fit it: nothing a resend could fix.
        // Acknowledged and logged.
        spdlog::warn("peer service: record {} not applied: {}", rec.record_id(),
                     std::string(applied.status().message()));
      } else if (!applied.ok()) {
        // It may apply later (no cache slot came free in time, the track could not be read):
        // never acknowledged, so the primary never calls the write mirrored. The stream ends
        // with the error; the primary counts the records on the link lost and resyncs.
        spdlog::error("peer service: record {} (track {}) not applied: {}; ending the stream",
                      rec.record_id(), rec.track(), std::string(applied.status().message()));
        absl::MutexLock lock(&mu_);
        status_ = rpc::ToGrpc(applied.status());
        return true;
      }
    }
    received_ = rec.record_id();
  }
  return true;
}

void ShipReceiver::Applied() {
  {
    absl::MutexLock lock(&mu_);
    if (!status_.ok()) {
      reads_done_ = true;  // no more reads: the stream ends with status_
      MaybeFinishLocked();
      return;
    }
    AnswerLocked();
  }
  // Every record of a message cut after the source's resync ended is in: in order again.
  if (!request_.source_resyncing()) applier_->SetSourceResyncing(false);
  StartRead(&request_);
}

void ShipReceiver::AnswerLocked() {
  const uint64_t acked = cycles_.AckThrough(received_);
  const uint64_t applied = applier_->applied_sequence();
  if (!has_pending_) {
    pending_.Clear();
    has_pending_ = true;
  }
  pending_.set_acked_through(std::max(pending_.acked_through(), acked));
  pending_.set_applied_sequence(std::max(pending_.applied_sequence(), applied));
  for (uint64_t id : answer_.refused()) pending_.add_refused(id);
  WriteLocked();
}

void ShipReceiver::WriteLocked() {
  if (writing_ || finished_ || write_failed_ || !has_pending_) return;
  on_wire_ = std::move(pending_);
  has_pending_ = false;
  writing_ = true;
  StartWrite(&on_wire_);
}

void ShipReceiver::OnWriteDone(bool ok) {
  absl::MutexLock lock(&mu_);
  writing_ = false;
  if (!ok) {
    // The primary is gone: answer nothing more. The outstanding read (or the next, once an
    // apply in progress is done) fails and finishes the call.
    write_failed_ = true;
    has_pending_ = false;
  }
  WriteLocked();
  MaybeFinishLocked();
}

void ShipReceiver::MaybeFinishLocked() {
  if (!reads_done_ || writing_ || finished_) return;
  finished_ = true;
  Finish(status_);
}

void ShipReceiver::OnDone() {
  applier_->StreamEnded();
  counters_.open_streams->fetch_sub(1);
  spdlog::info("peer service: Ship stream from {} closed", peer_);
  delete this;
}

}  // namespace simarray::remote
