#pragma once
// ShipStream: one PeerService.Ship call on gRPC's callback API, as the shipper's transport.
// Nothing here waits: Write starts a write and returns (one write at a time, so messages
// keep their order; the shipper batches whatever accumulates while one is on the wire);
// each reply is handed to `on_reply` on a gRPC thread as it arrives, and the next read
// starts at once; `on_write_done` runs when the link can take the next message.
//
// Life: Start once; then Cancel (idempotent) and WaitDone before destroying it. After a
// failed read or write, or a cancel, broken() is true and `on_broken` has run once.
// Handlers run on gRPC threads and must not block (remote_adaptor.h says what they do).

#include <atomic>
#include <functional>
#include <memory>
#include <string>

#include "absl/synchronization/notification.h"
#include "grpcpp/grpcpp.h"
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
  // `session` goes in the call's metadata (peer_auth.h).
  ShipStream(std::string session, ShipStreamHandlers handlers);
  ~ShipStream() override;

  // Starts the call on `stub` and the first read.
  void Start(v1::PeerService::Stub& stub);
  // Starts writing `message`; false (nothing written) when a write is still outstanding or
  // the stream is broken. Called by one thread at a time.
  bool Write(v1::ShipRequest message) override;
  // A write is outstanding.
  bool writing() const { return writing_.load(); }
  bool broken() const { return broken_.load(); }
  void Cancel();
  // Until gRPC is done with the call (every read and write completed).
  void WaitDone();

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone(const grpc::Status& status) override;

 private:
  void Break();

  grpc::ClientContext context_;
  const ShipStreamHandlers handlers_;
  v1::ShipRequest outgoing_;  // the message on the wire; untouched until OnWriteDone
  v1::ShipReply reply_;
  std::atomic<bool> writing_{false};
  std::atomic<bool> broken_{false};
  std::atomic<bool> started_{false};
  absl::Notification done_;
};

}  // namespace simarray::remote
