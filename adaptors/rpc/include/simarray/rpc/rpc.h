#pragma once
// The one place where absl::Status becomes grpc::Status (and back), and where the settings
// every channel and server of simarray needs are made (message limits that fit max_write,
// reconnect back-off in seconds rather than gRPC's default two minutes).

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/status.h"
#include "grpcpp/grpcpp.h"

namespace simarray::rpc {

grpc::Status ToGrpc(const absl::Status& status);
absl::Status FromGrpc(const grpc::Status& status);

// Largest message a simarray peer or client sends: max_write plus framing.
int MessageLimit(uint64_t max_write);

// Mutual TLS for one side of the peer link: PEM contents, not file names. Empty `ca`:
// plain TCP.
struct TlsConfig {
  std::string cert;  // this daemon's certificate chain
  std::string key;   // its private key
  std::string ca;    // the CA that signed the other side's certificate
  // The name the other side's certificate must carry (default: the host of its address).
  std::string server_name;
  bool enabled() const { return !ca.empty(); }
};

// A channel to `address` with simarray's limits and back-off; over mutual TLS when `tls`
// is enabled.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, uint64_t max_write,
                                           const TlsConfig& tls = {});

// Server credentials: mutual TLS that requires and verifies a client certificate signed by
// tls.ca, or plain TCP when `tls` is not enabled.
std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsConfig& tls);

// Limits every simarray gRPC server applies (docs/security.md):
inline constexpr int kMaxStreamsPerConnection = 128;  // calls in flight on one connection
inline constexpr int kHandshakeTimeoutMs = 10000;     // to finish connecting
inline constexpr int kKeepaliveMs = 10000;            // ping an idle connection; close if silent
inline constexpr int kMaxServerThreads = 64;          // for synchronous services' calls

// Applies the message limit (MessageLimit), the limits above and no SO_REUSEPORT to a
// server builder.
void ConfigureServer(grpc::ServerBuilder& builder, uint64_t max_write);

}  // namespace simarray::rpc
