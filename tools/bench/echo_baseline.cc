#include "tools/bench/echo_baseline.h"

#include "absl/strings/str_cat.h"
#include "grpcpp/grpcpp.h"

namespace simarray::bench {
namespace {

grpc::ChannelArguments ChannelLimits(int max_message) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(max_message);
  args.SetMaxSendMessageSize(max_message);
  return args;
}

std::unique_ptr<Echo::Stub> NewStub(const std::string& address, int max_message) {
  return Echo::NewStub(grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(),
                                                 ChannelLimits(max_message)));
}

// Echo.Stream on the server: every chunk read is acknowledged; while one acknowledgement is
// being written (a reactor allows one write at a time) the next one waits and then covers
// every chunk read meanwhile.
class StreamSink : public grpc::ServerBidiReactor<Chunk, ChunkAck> {
 public:
  StreamSink() { StartRead(&chunk_); }

  void OnReadDone(bool ok) override {
    std::lock_guard lock(mu_);
    if (!ok) {
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    ++received_;
    MaybeWriteLocked();
    StartRead(&chunk_);
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard lock(mu_);
    writing_ = false;
    if (!ok) reads_done_ = true;  // the client is gone
    MaybeWriteLocked();
    MaybeFinishLocked();
  }

  void OnDone() override { delete this; }

 private:
  void MaybeWriteLocked() {
    if (writing_ || finished_ || ack_.chunks() == received_) return;
    writing_ = true;
    ack_.set_chunks(received_);
    StartWrite(&ack_);
  }
  void MaybeFinishLocked() {
    if (!reads_done_ || writing_ || finished_) return;
    finished_ = true;
    Finish(grpc::Status::OK);
  }

  std::mutex mu_;
  Chunk chunk_;
  ChunkAck ack_;
  uint64_t received_ = 0;
  bool writing_ = false;
  bool reads_done_ = false;
  bool finished_ = false;
};

}  // namespace

// One echo server: answers Relay itself (B) or passes it on to `next` (A).
class TwoHopEcho::Service final : public Echo::CallbackService {
 public:
  explicit Service(std::unique_ptr<Echo::Stub> next) : next_(std::move(next)) {}

  grpc::ServerUnaryReactor* Relay(grpc::CallbackServerContext* context, const RelayRequest* request,
                                  RelayReply* reply) override {
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    if (next_ == nullptr) {
      reply->set_bytes(request->payload().size());
      reactor->Finish(grpc::Status::OK);
      return reactor;
    }
    // The onward call writes straight into our reply; its context lives until it completes.
    auto* onward = new grpc::ClientContext;
    next_->async()->Relay(onward, request, reply, [reactor, onward](grpc::Status status) {
      delete onward;
      reactor->Finish(status);
    });
    return reactor;
  }

  grpc::ServerBidiReactor<Chunk, ChunkAck>* Stream(grpc::CallbackServerContext*) override {
    return new StreamSink;
  }

 private:
  const std::unique_ptr<Echo::Stub> next_;
};

namespace {

std::unique_ptr<grpc::Server> Serve(grpc::Service* service, int max_message, std::string* bound) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(), &port);
  builder.SetMaxReceiveMessageSize(max_message);
  builder.SetMaxSendMessageSize(max_message);
  builder.RegisterService(service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) return nullptr;
  *bound = absl::StrCat("127.0.0.1:", port);
  return server;
}

}  // namespace

absl::StatusOr<std::unique_ptr<TwoHopEcho>> TwoHopEcho::Start(int max_message) {
  std::unique_ptr<TwoHopEcho> echo(new TwoHopEcho);
  echo->b_service_ = std::make_unique<Service>(nullptr);
  echo->b_server_ = Serve(echo->b_service_.get(), max_message, &echo->b_address_);
  if (echo->b_server_ == nullptr) return absl::UnavailableError("echo server B cannot listen");
  echo->a_service_ = std::make_unique<Service>(NewStub(echo->b_address_, max_message));
  echo->a_server_ = Serve(echo->a_service_.get(), max_message, &echo->a_address_);
  if (echo->a_server_ == nullptr) return absl::UnavailableError("echo server A cannot listen");
  return echo;
}

TwoHopEcho::~TwoHopEcho() {
  // A first: its calls wait on B.
  if (a_server_) a_server_->Shutdown();
  if (b_server_) b_server_->Shutdown();
}

EchoClient::EchoClient(const std::string& address, size_t payload_size, int max_message)
    : stub_(NewStub(address, max_message)), payload_(payload_size, 'e') {}

namespace {
struct RelayCall {
  grpc::ClientContext context;
  RelayRequest request;
  RelayReply reply;
};
}  // namespace

void EchoClient::Start(Completion done) {
  auto* call = new RelayCall;
  call->request.set_payload(payload_);
  stub_->async()->Relay(&call->context, &call->request, &call->reply,
                        [call, done = std::move(done)](grpc::Status status) {
                          delete call;
                          done(status.ok());
                        });
}

}  // namespace simarray::bench
