#include "simarray/host/grpc_host_service.h"

#include "absl/strings/str_cat.h"
#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"

namespace simarray::host {
namespace {

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

// Completes a write's reply from whichever thread the write finished on.
WriteDone ReplyWith(grpc::ServerUnaryReactor* reactor, v1::WriteReply* reply) {
  return [reactor, reply](absl::StatusOr<WriteResult> result) {
    if (result.ok()) {
      reply->set_sequence(result->sequence);
      reply->set_mirrored(result->mirrored);
      reply->set_portions(result->portions);
    }
    reactor->Finish(rpc::ToGrpc(result.status()));
  };
}

grpc::Status Overloaded() {
  return grpc::Status(grpc::StatusCode::RESOURCE_EXHAUSTED, "host adaptor work queue full");
}

}  // namespace

grpc::ServerUnaryReactor* GrpcHostService::Write(grpc::CallbackServerContext* context,
                                                 const v1::WriteRequest* request,
                                                 v1::WriteReply* reply) {
  auto* reactor = context->DefaultReactor();
  // On this reaction's thread when nothing has to wait (the usual case), else on the pool.
  if (RunWrite(*request, reply, reactor, Waits::kNever)) return reactor;
  bool posted = adaptor_->pool().Post(
      [this, request, reply, reactor] { RunWrite(*request, reply, reactor, Waits::kAllowed); });
  if (!posted) reactor->Finish(Overloaded());
  return reactor;
}

bool GrpcHostService::RunWrite(const v1::WriteRequest& request, v1::WriteReply* reply,
                               grpc::ServerUnaryReactor* reactor, Waits waits) {
  auto write = adaptor_->BeginWrite(request.volume(), request.offset(), request.data().size(),
                                    request.crc32c(), waits);
  if (!write.ok()) {
    if (IsWouldWait(write.status())) return false;
    reactor->Finish(rpc::ToGrpc(write.status()));
    return true;
  }
  if (absl::Status s = (*write)->Append(Bytes(request.data())); !s.ok()) {
    if (IsWouldWait(s)) {
      (*write)->Abandon();
      return false;
    }
    (*write)->Cancel();
    reactor->Finish(rpc::ToGrpc(s));
    return true;
  }
  (*write)->Finish(ReplyWith(reactor, reply));
  return true;
}

// One WriteStream call: a header, then chunks, each handled on the work pool before the
// next read is started, so a stream holds at most one message in memory.
class WriteStreamReactor : public grpc::ServerReadReactor<v1::WriteStreamRequest> {
 public:
  WriteStreamReactor(GrpcHostService* service, grpc::CallbackServerContext* context,
                     v1::WriteReply* reply)
      : service_(service), context_(context), reply_(reply) {
    StartRead(&message_);
  }

  void OnReadDone(bool ok) override {
    bool posted = service_->adaptor_->pool().Post([this, ok] { ok ? Consume() : End(); });
    if (!posted) {
      if (write_) write_->Cancel();
      Finish(Overloaded());
    }
  }

  void OnDone() override { delete this; }

 private:
  void Consume() {
    if (message_.has_header()) {
      if (write_ || failed_) {
        Fail(absl::InvalidArgumentError("WriteStream: a second header after the first"));
        StartRead(&message_);  // Drain: End() reports the error once the client half-closes.
        return;
      }
      const v1::WriteStreamHeader& h = message_.header();
      auto write = service_->adaptor_->BeginWrite(h.volume(), h.offset(), h.length(), h.crc32c());
      if (write.ok()) {
        write_ = std::move(*write);
      } else {
        Fail(write.status());
      }
    } else if (!write_) {
      if (!failed_) {
        Fail(absl::InvalidArgumentError(
            "WriteStream: the first message must carry the header (volume, offset, length, "
            "crc32c), got a data chunk"));
      }
    } else if (absl::Status s = write_->Append(Bytes(message_.chunk())); !s.ok()) {
      Fail(s);
    }
    StartRead(&message_);
  }

  // Remembers the first error; the stream is drained so the client sees it at its end.
  void Fail(absl::Status status) {
    if (write_) write_->Cancel();
    write_.reset();
    if (!failed_) error_ = status;
    failed_ = true;
  }

  void End() {
    if (context_->IsCancelled()) {
      if (write_) {
        write_->Cancel();
        service_->streams_cancelled_.fetch_add(1);
      }
      write_.reset();
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "client cancelled the stream"));
      return;
    }
    if (failed_) {
      Finish(rpc::ToGrpc(error_));
      return;
    }
    if (!write_) {
      Finish(grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                          "WriteStream: the stream ended without a header"));
      return;
    }
    std::unique_ptr<HostWrite> write = std::move(write_);
    write->Finish([this](absl::StatusOr<WriteResult> result) {
      if (result.ok()) {
        reply_->set_sequence(result->sequence);
        reply_->set_mirrored(result->mirrored);
        reply_->set_portions(result->portions);
      }
      Finish(rpc::ToGrpc(result.status()));
    });
  }

  GrpcHostService* const service_;
  grpc::CallbackServerContext* const context_;
  v1::WriteReply* const reply_;
  v1::WriteStreamRequest message_;
  std::unique_ptr<HostWrite> write_;
  bool failed_ = false;
  absl::Status error_;
};

grpc::ServerReadReactor<v1::WriteStreamRequest>* GrpcHostService::WriteStream(
    grpc::CallbackServerContext* context, v1::WriteReply* reply) {
  return new WriteStreamReactor(this, context, reply);
}

grpc::ServerUnaryReactor* GrpcHostService::Read(grpc::CallbackServerContext* context,
                                                const v1::ReadRequest* request,
                                                v1::ReadReply* reply) {
  auto* reactor = context->DefaultReactor();
  bool posted = adaptor_->pool().Post([this, request, reply, reactor] {
    std::string* data = reply->mutable_data();
    absl::Status s = adaptor_->Read(request->volume(), request->offset(), request->length(), data);
    if (s.ok()) reply->set_crc32c(Crc32c(Bytes(*data)));
    reactor->Finish(rpc::ToGrpc(s));
  });
  if (!posted) reactor->Finish(Overloaded());
  return reactor;
}

grpc::ServerUnaryReactor* GrpcHostService::Flush(grpc::CallbackServerContext* context,
                                                 const v1::FlushRequest* request,
                                                 v1::FlushReply* reply) {
  auto* reactor = context->DefaultReactor();
  bool posted = adaptor_->pool().Post([this, reply, reactor] {
    auto destaged = disk_->Flush();
    if (destaged.ok()) reply->set_tracks_destaged(*destaged);
    reactor->Finish(rpc::ToGrpc(destaged.status()));
  });
  if (!posted) reactor->Finish(Overloaded());
  return reactor;
}

}  // namespace simarray::host
