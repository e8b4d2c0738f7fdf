// ShipStream: the Ship call on the callback API (ship_stream.h).
#include "ship_stream.h"

#include "simarray/remote/peer_auth.h"

namespace simarray::remote {

ShipStream::ShipStream(std::string session, ShipStreamHandlers handlers)
    : handlers_(std::move(handlers)) {
  context_.AddMetadata(kSessionMetadata, session);
}

ShipStream::~ShipStream() {
  Cancel();
  WaitDone();
}

void ShipStream::Start(v1::PeerService::Stub& stub) {
  stub.async()->Ship(&context_, this);
  StartRead(&reply_);
  StartCall();
  started_ = true;
}

bool ShipStream::Write(v1::ShipRequest message) {
  if (broken_ || writing_.exchange(true)) return false;
  outgoing_ = std::move(message);
  StartWrite(&outgoing_);
  return true;
}

void ShipStream::Cancel() { context_.TryCancel(); }

void ShipStream::WaitDone() {
  if (started_) done_.WaitForNotification();
}

void ShipStream::OnReadDone(bool ok) {
  if (!ok) {
    Break();
    return;
  }
  handlers_.on_reply(reply_);
  StartRead(&reply_);
}

void ShipStream::OnWriteDone(bool ok) {
  writing_ = false;
  if (!ok) {
    Break();
    return;
  }
  handlers_.on_write_done();
}

void ShipStream::OnDone(const grpc::Status&) {
  Break();
  done_.Notify();
}

void ShipStream::Break() {
  if (!broken_.exchange(true)) handlers_.on_broken();
}

}  // namespace simarray::remote
