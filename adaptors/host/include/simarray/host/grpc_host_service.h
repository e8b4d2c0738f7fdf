#pragma once
// GrpcHostService: HostService (proto/simarray/v1/host.proto) on one host adaptor's gRPC
// port. Reactions never block: each call's work runs on the adaptor's work pool and the
// reaction is finished from there (or from the remote adaptor thread that saw the mirror's
// ack). Thread-safe; the adaptor and disk adaptor must outlive the server.

#include "simarray/disk/disk_adaptor.h"
#include "simarray/host/host_adaptor.h"
#include "simarray/v1/host.grpc.pb.h"

namespace simarray::host {

class GrpcHostService final : public v1::HostService::CallbackService {
 public:
  GrpcHostService(HostAdaptor* adaptor, disk::DiskAdaptor* disk) : adaptor_(adaptor), disk_(disk) {}

  grpc::ServerUnaryReactor* Write(grpc::CallbackServerContext* context,
                                  const v1::WriteRequest* request, v1::WriteReply* reply) override;
  grpc::ServerReadReactor<v1::WriteStreamRequest>* WriteStream(grpc::CallbackServerContext* context,
                                                               v1::WriteReply* reply) override;
  grpc::ServerUnaryReactor* Read(grpc::CallbackServerContext* context,
                                 const v1::ReadRequest* request, v1::ReadReply* reply) override;
  grpc::ServerUnaryReactor* Flush(grpc::CallbackServerContext* context,
                                  const v1::FlushRequest* request, v1::FlushReply* reply) override;

  // Streams the adaptor dropped because the client cancelled them.
  uint64_t streams_cancelled() const { return streams_cancelled_.load(); }

 private:
  friend class WriteStreamReactor;
  // Runs one unary write to its Finish. With Waits::kNever it returns false, having done
  // nothing, when the write would have to wait; else true (the reactor is or will be
  // finished).
  bool RunWrite(const v1::WriteRequest& request, v1::WriteReply* reply,
                grpc::ServerUnaryReactor* reactor, Waits waits);
  HostAdaptor* const adaptor_;
  disk::DiskAdaptor* const disk_;
  std::atomic<uint64_t> streams_cancelled_{0};
};

}  // namespace simarray::host
