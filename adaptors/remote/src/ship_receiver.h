#pragma once
// ShipReceiver: the mirror's end of one PeerService.Ship stream, on gRPC's callback API.
//
// Each message is handled in OnReadDone: every record's CRC-32C is checked (a record that
// fails is refused, never applied, and the primary sends it again), then the records are
// applied in the order they came. A sync-mode record is applied right there when that
// needs no waiting (RecordApplier::TryApply); the first record that would wait (no free
// cache slot, its track on disk only, a host read holding the image) and every async-cycle
// record is handed, with the rest of the message, to the peer service's apply thread,
// which may wait. The next message is read only once this one is applied, so a mirror
// whose cache is full pushes back on its primary through gRPC flow control, and no gRPC
// thread ever waits for it.
//
// The answer (cumulative ack, refused ids, applied sequence) is written as soon as the
// message is applied; while one answer is on the wire, later ones merge into the next.
// A record no resend could fix (its volume is gone, or it does not fit the volume) is
// acknowledged and logged. A record that failed for a reason that may pass (no cache slot
// in time, a track that could not be read), or a cycle that cannot be staged, ends the
// stream with that error and is never acknowledged: the primary counts the records on the
// link lost and resyncs their tracks, and never calls their writes mirrored. Deletes itself
// when gRPC is done.

#include <atomic>
#include <cstdint>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/grpcpp.h"
#include "simarray/base/work_pool.h"
#include "simarray/remote/cycle_receiver.h"
#include "simarray/remote/record_applier.h"
#include "simarray/v1/peer.pb.h"

namespace simarray::remote {

class ShipReceiver final : public grpc::ServerBidiReactor<v1::ShipRequest, v1::ShipReply> {
 public:
  struct Counters {
    std::atomic<uint64_t>* records_refused;
    std::atomic<int>* open_streams;
  };
  // `applier` and `pool` (one thread: the applies of a stream stay in order) must outlive
  // the call; gRPC's server shutdown waits for it.
  ShipReceiver(std::string peer, RecordApplier* applier, WorkPool* pool, Counters counters);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override;

 private:
  // Applies request_'s records from next_ on. With `may_wait` false it stops at the first
  // that would wait and returns false. Sets status_ when the stream must end.
  bool ApplyFrom(bool may_wait) ABSL_LOCKS_EXCLUDED(mu_);
  // The message is applied: answer it, then read the next (or finish).
  void Applied() ABSL_LOCKS_EXCLUDED(mu_);
  // Merges this message's answer into the next one to write, and writes if none is on the wire.
  void AnswerLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void WriteLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void MaybeFinishLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const std::string peer_;
  RecordApplier* const applier_;
  WorkPool* const pool_;
  const Counters counters_;
  CycleReceiver cycles_;  // async mode; discards an unfinished cycle when the stream ends

  // The message being applied: used by one thread at a time (the reaction, then the apply
  // thread), never while a read is outstanding.
  v1::ShipRequest request_;
  int next_ = 0;
  uint64_t received_ = 0;      // the last record id handled
  uint64_t next_message_ = 0;  // the message number due next (0: none seen yet)
  v1::ShipReply answer_;       // refused ids of this message

  absl::Mutex mu_;
  grpc::Status status_ ABSL_GUARDED_BY(mu_);
  v1::ShipReply on_wire_ ABSL_GUARDED_BY(mu_);  // untouched until OnWriteDone
  v1::ShipReply pending_ ABSL_GUARDED_BY(mu_);  // answers merged while one is on the wire
  bool has_pending_ ABSL_GUARDED_BY(mu_) = false;
  bool writing_ ABSL_GUARDED_BY(mu_) = false;
  bool write_failed_ ABSL_GUARDED_BY(mu_) = false;
  bool reads_done_ ABSL_GUARDED_BY(mu_) = false;
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

// Answers a Ship call that is refused outright (authentication, a primary asked to apply).
class RefusedShip final : public grpc::ServerBidiReactor<v1::ShipRequest, v1::ShipReply> {
 public:
  explicit RefusedShip(grpc::Status status) { Finish(std::move(status)); }
  void OnDone() override { delete this; }
};

}  // namespace simarray::remote
