#pragma once
// CycleReceiver: the mirror's end of async mode for one Ship stream (docs/async.md). The
// data records of a cycle are staged in cache slots, invisible to readers. When the cycle's
// end marker has come and every record it announces is staged, the whole cycle is applied
// at once (RecordApplier::ApplyCycle). A stream that ends mid-cycle discards what it
// staged, so the mirror keeps the last whole cycle.
//
// Acknowledgements: a marker, and anything received after it, is acknowledged only once its
// cycle is applied; the primary learns "applied", not merely "received". A record resent
// after a CRC refusal may arrive after its cycle's marker; the cycle waits for it.
//
// Not thread-safe: one per Ship stream, used by the stream's thread.

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "simarray/remote/record_applier.h"
#include "simarray/v1/peer.pb.h"

namespace simarray::remote {

class CycleReceiver {
 public:
  // `applier` is borrowed and must outlive this.
  explicit CycleReceiver(RecordApplier* applier)
      : applier_(applier), stream_(applier->BeginStream()) {}
  // Discards a cycle not applied yet.
  ~CycleReceiver();
  CycleReceiver(const CycleReceiver&) = delete;
  CycleReceiver& operator=(const CycleReceiver&) = delete;

  // A data record (cycle != 0) whose CRC was checked. A record of a newer cycle drops an
  // unfinished older one. A record no resend could fix (its volume is gone, its range is
  // outside it) is logged and counted as done, as in sync mode; other errors (cache full)
  // are returned: the stream should end, and the primary resyncs.
  absl::Status Stage(const v1::ShipRecord& record);
  // The cycle's end marker. INVALID_ARGUMENT when it announces fewer records than were
  // staged for its cycle.
  absl::Status End(const v1::ShipRecord& marker);
  // The highest record id that may be acknowledged once records up to `received` were
  // handled: everything before a marker whose cycle is not applied yet.
  uint64_t AckThrough(uint64_t received) const;

 private:
  void Discard();
  void ApplyIfComplete();

  RecordApplier* const applier_;
  const uint64_t stream_;
  uint64_t cycle_ = 0;
  std::vector<StagedRecord> staged_;
  uint64_t in_cache_ = 0;  // of staged_, those in cache slots (the rest are paged out)
  uint64_t skipped_ = 0;   // records of cycle_ that cannot be applied
  bool marker_ = false;    // the marker of cycle_ came; the cycle is not applied yet
  uint64_t marker_id_ = 0;
  uint64_t boundary_ = 0;
  uint64_t expected_ = 0;
  bool consistent_ = false;
};

}  // namespace simarray::remote
