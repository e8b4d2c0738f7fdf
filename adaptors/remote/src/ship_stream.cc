// ShipStream: the Ship call on the callback API (ship_stream.h).
#include "ship_stream.h"

#include "simarray/remote/peer_auth.h"

namespace simarray::remote {

ShipStream::ShipStream(std::string session, ShipStreamHandlers handlers, LinkEmulator* emulator)
    : handlers_(std::move(handlers)), emulator_(emulator) {
  context_.AddMetadata(kSessionMetadata, session);
}

ShipStream::~ShipStream() {
  Cancel();
  WaitDone();
}

void ShipStream::Start(v1::PeerService::Stub& stub) {
  stub.async()->Ship(&context_, this);
  // Writes start outside the reactions (the sender, the delay line): the hold keeps OnDone
  // back until Cancel says none will.
  AddHold();
  StartRead(&reply_);
  StartCall();
  started_ = true;
}

bool ShipStream::Write(v1::ShipRequest message) {
  if (broken_ || writing_.exchange(true)) return false;
  message.set_message_number(++numbered_);
  if (!emulated_ && emulator_ != nullptr && emulator_->on()) {
    line_ = std::make_unique<DelayLine>();
    emulated_.store(true, std::memory_order_release);
  }
  if (!emulated_) {
    outgoing_ = std::move(message);
    StartWrite(&outgoing_);
    return true;
  }
  const LinkModel::Fate fate = out_.Send(emulator_->Get().out, message.ByteSizeLong(), absl::Now());
  line_->At(fate.starts, [this] {
    writing_ = false;
    handlers_.on_write_done();
  });
  if (fate.lost) {
    emulator_->CountLost();  // the receiver finds the gap in the message numbers
  } else {
    line_->At(fate.arrives, [this, m = std::move(message)]() mutable { Arrive(std::move(m)); });
  }
  return true;
}

void ShipStream::Arrive(v1::ShipRequest message) {
  {
    absl::MutexLock lock(&mu_);
    arrived_.push_back(std::move(message));
  }
  WriteNextArrived();
}

void ShipStream::WriteNextArrived() {
  {
    absl::MutexLock lock(&mu_);
    if (on_grpc_wire_ || arrived_.empty() || broken_) return;
    on_grpc_wire_ = true;
    outgoing_ = std::move(arrived_.front());
    arrived_.pop_front();
  }
  StartWrite(&outgoing_);
}

void ShipStream::Cancel() {
  context_.TryCancel();
  if (cancelled_.exchange(true)) return;
  if (emulated_) line_->Stop();  // nothing is written or handed on from here
  if (started_) RemoveHold();
}

void ShipStream::WaitDone() {
  if (started_) done_.WaitForNotification();
}

void ShipStream::OnReadDone(bool ok) {
  if (!ok) {
    Break();
    return;
  }
  if (emulated_.load(std::memory_order_acquire)) {
    const LinkModel::Fate fate =
        back_.Send(emulator_->Get().back, reply_.ByteSizeLong(), absl::Now());
    if (fate.lost) {
      emulator_->CountLost();  // a later reply acknowledges through it
    } else {
      line_->At(fate.arrives, [this, r = reply_] { handlers_.on_reply(r); });
    }
  } else {
    handlers_.on_reply(reply_);
  }
  StartRead(&reply_);
}

void ShipStream::OnWriteDone(bool ok) {
  if (!emulated_) writing_ = false;
  if (!ok) {
    Break();
    return;
  }
  if (emulated_) {
    {
      absl::MutexLock lock(&mu_);
      on_grpc_wire_ = false;
    }
    WriteNextArrived();
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
