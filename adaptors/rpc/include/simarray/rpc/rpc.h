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

// A channel to `address` with simarray's limits and back-off.
std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, uint64_t max_write);

// Limits every simarray gRPC server applies (docs/security.md):
inline constexpr int kMaxStreamsPerConnection = 128;  // calls in flight on one connection
inline constexpr int kHandshakeTimeoutMs = 10000;     // to finish connecting
inline constexpr int kKeepaliveMs = 10000;            // ping an idle connection; close if silent
inline constexpr int kMaxServerThreads = 64;          // for synchronous services' calls

// Applies the message limit (MessageLimit), the limits above and no SO_REUSEPORT to a
// server builder.
void ConfigureServer(grpc::ServerBuilder& builder, uint64_t max_write);

}  // namespace simarray::rpc
