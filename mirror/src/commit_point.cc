#include "simarray/mirror/commit_point.h"

namespace simarray::mirror {

namespace {

absl::Status Closed() {
  return absl::FailedPreconditionError(
      "this daemon stopped being the primary while the write was in progress; nothing of it "
      "was committed");
}

}  // namespace

absl::StatusOr<uint64_t> CommitPoint::Commit(uint64_t write_id, std::vector<Portion>& portions,
                                             HoldingPen& pen, Reservation& reservation,
                                             std::shared_ptr<WriteTicket> ticket) {
  absl::MutexLock lock(&mu_);
  if (closed_) return Closed();
  return PublishAndQueue(portions, pen.Release(write_id), reservation, std::move(ticket));
}

absl::StatusOr<uint64_t> CommitPoint::CommitUnpenned(std::vector<Portion>& portions,
                                                     std::vector<MirrorRequest> requests,
                                                     Reservation& reservation,
                                                     std::shared_ptr<WriteTicket> ticket) {
  absl::MutexLock lock(&mu_);
  if (closed_) return Closed();
  return PublishAndQueue(portions, std::move(requests), reservation, std::move(ticket));
}

absl::StatusOr<uint64_t> CommitPoint::CommitLocal(std::vector<Portion>& portions,
                                                  const std::atomic<bool>& in_group) {
  absl::MutexLock lock(&mu_);
  const uint64_t sequence = cache_->NextSequence();
  const bool joined = owed_ != nullptr && in_group.load();
  for (Portion& p : portions) {
    const cache::TrackKey key = p.staged.key();
    if (joined) owed_->MarkWritten(key, sequence);
    (void)cache_->Publish(std::move(p.staged), p.offset, p.length, sequence, joined,
                          cache::Keep::kNothing);
    if (joined) owed_->NeedResync(key);
  }
  return sequence;
}

void CommitPoint::Close() {
  absl::MutexLock lock(&mu_);
  closed_ = true;
}

void CommitPoint::Open() {
  absl::MutexLock lock(&mu_);
  closed_ = false;
}

bool CommitPoint::SwitchCycle() {
  absl::MutexLock lock(&mu_);
  return cycles_ != nullptr && cycles_->Switch(cache_->LastSequence());
}

bool CommitPoint::ResumeCycles() {
  absl::MutexLock lock(&mu_);
  return cycles_ != nullptr && cycles_->Resume();
}

uint64_t CommitPoint::PublishAndQueue(std::vector<Portion>& portions,
                                      std::vector<MirrorRequest> requests, Reservation& reservation,
                                      std::shared_ptr<WriteTicket> ticket) {
  const uint64_t sequence = cache_->NextSequence();
  if (cycles_ != nullptr) {
    // Async: the host is answered after this commit; the cycle ships the data later.
    for (Portion& p : portions) {
      const cache::TrackKey key = p.staged.key();
      owed_->MarkWritten(key, sequence);
      cache::Published published = cache_->Publish(std::move(p.staged), p.offset, p.length,
                                                   sequence, true, cache::Keep::kImage);
      cycles_->Capture(key, sequence, p.offset, p.length, std::move(published.kept));
    }
    reservation.Reset();
    return sequence;
  }
  // Requests come in portion order, one per portion.
  for (size_t i = 0; i < portions.size(); ++i) {
    Portion& p = portions[i];
    if (owed_ != nullptr) owed_->MarkWritten(p.staged.key(), sequence);
    const bool shipped = i < requests.size() && queue_ != nullptr;
    cache::Published published =
        cache_->Publish(std::move(p.staged), p.offset, p.length, sequence, queue_ != nullptr,
                        shipped ? cache::Keep::kWriteBytes : cache::Keep::kNothing);
    if (i < requests.size()) {
      requests[i].sequence = sequence;
      requests[i].ticket = ticket;
      requests[i].slot = published.image_slot;
      requests[i].data = std::move(published.kept);
    }
  }
  if (queue_ != nullptr) {
    queue_->Push(reservation, std::move(requests));
  } else {
    reservation.Reset();
  }
  return sequence;
}

}  // namespace simarray::mirror
