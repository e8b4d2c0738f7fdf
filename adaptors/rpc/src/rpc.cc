#include "simarray/rpc/rpc.h"

#include <algorithm>
#include <limits>

namespace simarray::rpc {

grpc::Status ToGrpc(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  // absl and gRPC share the canonical code numbers.
  return grpc::Status(static_cast<grpc::StatusCode>(status.code()), std::string(status.message()));
}

absl::Status FromGrpc(const grpc::Status& status) {
  if (status.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(status.error_code()), status.error_message());
}

int MessageLimit(uint64_t max_write) {
  uint64_t limit = max_write + (1 << 20);
  return static_cast<int>(std::min<uint64_t>(limit, std::numeric_limits<int>::max()));
}

std::shared_ptr<grpc::Channel> MakeChannel(const std::string& address, uint64_t max_write,
                                           const TlsConfig& tls) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(MessageLimit(max_write));
  args.SetMaxSendMessageSize(MessageLimit(max_write));
  args.SetInt(GRPC_ARG_INITIAL_RECONNECT_BACKOFF_MS, 100);
  // gRPC also takes this as the time one connection attempt (TCP, TLS, HTTP/2 settings)
  // may last: 100 ms failed connections on a loaded machine; 1 s does not.
  args.SetInt(GRPC_ARG_MIN_RECONNECT_BACKOFF_MS, 1000);
  args.SetInt(GRPC_ARG_MAX_RECONNECT_BACKOFF_MS, 2000);
  // A peer named by host name may come back at another address (a container reconnected to
  // its network, a host moved): after a failed connection gRPC resolves the name again, but
  // by default not sooner than 30 s after the last resolution. One second keeps a
  // reconnect within the link's own backoff (docs/containers.md).
  args.SetInt(GRPC_ARG_DNS_MIN_TIME_BETWEEN_RESOLUTIONS_MS, 1000);
  if (!tls.enabled()) {
    return grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args);
  }
  if (!tls.server_name.empty()) args.SetSslTargetNameOverride(tls.server_name);
  grpc::SslCredentialsOptions options;
  options.pem_root_certs = tls.ca;
  options.pem_private_key = tls.key;
  options.pem_cert_chain = tls.cert;
  return grpc::CreateCustomChannel(address, grpc::SslCredentials(options), args);
}

std::shared_ptr<grpc::ServerCredentials> ServerCredentials(const TlsConfig& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.ca;
  options.pem_key_cert_pairs.push_back({tls.key, tls.cert});
  return grpc::SslServerCredentials(options);
}

void ConfigureServer(grpc::ServerBuilder& builder, uint64_t max_write) {
  // Two daemons must never share a port: a second one fails to bind instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.SetMaxReceiveMessageSize(MessageLimit(max_write));
  builder.SetMaxSendMessageSize(MessageLimit(max_write));
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, kMaxStreamsPerConnection);
  // A connection that never finishes its handshake, or stops answering pings, is closed.
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS, kHandshakeTimeoutMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, kKeepaliveMs);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, kKeepaliveMs);
  // Synchronous services (admin, peer) take a thread per call: bounded.
  grpc::ResourceQuota quota("simarray-server");
  quota.SetMaxThreads(kMaxServerThreads);
  builder.SetResourceQuota(quota);
}

}  // namespace simarray::rpc
