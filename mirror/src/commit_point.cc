#include "simarray/mirror/commit_point.h"

namespace simarray::mirror {

uint64_t CommitPoint::Commit(uint64_t write_id, std::vector<Portion>& portions, HoldingPen& pen,
                             Reservation& reservation, std::shared_ptr<WriteTicket> ticket) {
  absl::MutexLock lock(&mu_);
  const uint64_t sequence = cache_->NextSequence();
  std::vector<MirrorRequest> requests = pen.Release(write_id);
  // Requests were buffered in portion order, one per portion.
  for (size_t i = 0; i < portions.size(); ++i) {
    Portion& p = portions[i];
    if (owed_ != nullptr) owed_->MarkWritten(p.staged.key(), sequence);
    cache::SlotRef* ref = i < requests.size() && queue_ != nullptr ? &requests[i].data : nullptr;
    cache_->Publish(std::move(p.staged), p.offset, p.length, sequence, queue_ != nullptr, ref);
    if (i < requests.size()) {
      requests[i].sequence = sequence;
      requests[i].ticket = ticket;
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
