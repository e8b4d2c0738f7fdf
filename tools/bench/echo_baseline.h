#pragma once
// The raw-gRPC baseline for simarray's sync writes: two echo servers in this process, A and
// B, on loopback ports of their own. A client's Relay goes to A, A makes the same unary call
// on B, and B's small answer travels back through A: client -> A -> B -> back, the shape of a
// sync write (host -> primary -> mirror -> back) with none of the array's work. B also
// serves Echo.Stream for the streaming baseline (stream_baseline.h).

#include <atomic>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "bench.grpc.pb.h"
#include "tools/bench/closed_loop.h"

namespace simarray::bench {

// Both servers; stopped (drained) on destruction. Thread-safe.
class TwoHopEcho {
 public:
  // UNAVAILABLE if a server cannot listen. `max_message` bounds one request.
  static absl::StatusOr<std::unique_ptr<TwoHopEcho>> Start(int max_message);
  ~TwoHopEcho();
  TwoHopEcho(const TwoHopEcho&) = delete;
  TwoHopEcho& operator=(const TwoHopEcho&) = delete;

  // Where clients call: server A, which relays to B.
  const std::string& entry_address() const { return a_address_; }
  // Server B on its own (one hop), for the streaming baseline.
  const std::string& last_hop_address() const { return b_address_; }

 private:
  TwoHopEcho() = default;
  class Service;
  std::unique_ptr<Service> b_service_;
  std::unique_ptr<grpc::Server> b_server_;
  std::unique_ptr<Service> a_service_;
  std::unique_ptr<grpc::Server> a_server_;
  std::string a_address_;
  std::string b_address_;
};

// Relay calls of `payload_size` bytes to `address`; Start is a StartRequest for
// RunClosedLoop. Thread-safe; must outlive every request it started.
class EchoClient {
 public:
  EchoClient(const std::string& address, size_t payload_size, int max_message);
  void Start(Completion done);

 private:
  std::unique_ptr<Echo::Stub> stub_;
  const std::string payload_;
};

}  // namespace simarray::bench
