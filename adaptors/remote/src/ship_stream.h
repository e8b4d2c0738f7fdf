#pragma once
// ShipStream: one PeerService.Ship call on gRPC's callback API, as the shipper's transport.
// Nothing here waits: Write starts a write and returns (one write at a time, so messages
// keep their order; the shipper batches whatever accumulates while one is on the wire);
// each reply is handed to `on_reply` as it arrives, and the next read starts at once;
// `on_write_done` runs when the link can take the next message. Every message is numbered
// (ShipRequest.message_number) so the receiver notices one that never came.
//
// An emulated link (link_emulation.h): from the first message written while the group's
// LinkEmulator is on, the stream runs a DelayLine. A message then goes onto the emulated wire
// once the one before it is off (`on_write_done` runs at that moment, so the next can wait
// its turn), reaches gRPC at its arrival time (or never, if lost), and replies are handed on
// after the way back's delay. Once emulated, a
// stream stays so (settings of zero pass messages straight through the line).
//
// Life: Start once; then Cancel (idempotent) and WaitDone before destroying it. After a
// failed read or write, or a cancel, broken() is true and `on_broken` has run once.
// Handlers run on gRPC threads or the delay line's, never two at once of the same kind,
// and must not block (remote_adaptor.h says what they do).

#include <atomic>
#include <deque>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
#include "simarray/base/delay_line.h"
#include "simarray/remote/link_emulation.h"
#include "simarray/remote/shipper.h"
#include "simarray/v1/peer.grpc.pb.h"

namespace simarray::remote {

struct ShipStreamHandlers {
  std::function<void(const v1::ShipReply&)> on_reply;
  std::function<void()> on_write_done;
  std::function<void()> on_broken;
};

class ShipStream final : public grpc::ClientBidiReactor<v1::ShipRequest, v1::ShipReply>,
                         public ShipTransport {
 public:
  // `session` goes in the call's metadata (peer_auth.h). `emulator` (borrowed, may be null:
  // never emulated) must outlive the stream.
  ShipStream(std::string session, ShipStreamHandlers handlers, LinkEmulator* emulator = nullptr);
  ~ShipStream() override;

  // Starts the call on `stub` and the first read.
  void Start(v1::PeerService::Stub& stub);
  // Starts writing `message`; false (nothing written) when a write is still outstanding or
  // the stream is broken. Called by one thread at a time.
  bool Write(v1::ShipRequest message) override;
  bool broken() const { return broken_.load(); }
  void Cancel();
  // Until gRPC is done with the call (every read and write completed).
  void WaitDone();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void Break();
  // The emulated path: the message reaches gRPC (on the delay line), and the next arrived
  // message goes out once the one on gRPC's wire is done.
  void Arrive(v1::ShipRequest message) ABSL_LOCKS_EXCLUDED(mu_);
  void WriteNextArrived() ABSL_LOCKS_EXCLUDED(mu_);

  grpc::ClientContext context_;
  const ShipStreamHandlers handlers_;
  LinkEmulator* const emulator_;
  v1::ShipRequest outgoing_;  // the message on gRPC's wire; untouched until OnWriteDone
  v1::ShipReply reply_;
  std::atomic<bool> writing_{false};  // the (emulated) wire holds a message
  std::atomic<bool> broken_{false};
  std::atomic<bool> started_{false};
  std::atomic<bool> cancelled_{false};
  uint64_t numbered_ = 0;  // messages written; by the writing thread only
  absl::Notification done_;

  // Set once, by Write, before `emulated_` turns true; stopped by Cancel, freed with the
  // stream. out_ is the writer's, back_ the reader's.
  std::unique_ptr<DelayLine> line_;
  std::atomic<bool> emulated_{false};
  LinkModel out_{0x5eed};
  LinkModel back_{0xbac};
  absl::Mutex mu_;
  std::deque<v1::ShipRequest> arrived_ ABSL_GUARDED_BY(mu_);  // waiting for gRPC's wire
  bool on_grpc_wire_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace simarray::remote
