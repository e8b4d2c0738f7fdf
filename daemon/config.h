#pragma once
// DaemonConfig: one daemon's TOML config file (configs/primary.toml shows every key).
// LoadConfig checks every value; an error names the file, the key and the reason, and the
// daemon exits non-zero with it.

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace simarray::daemon {

struct HostAdaptorConfig {
  std::string id;
  std::string listen;
  std::string protocol = "grpc";  // "grpc" | "nbd"
};

struct VolumeConfig {
  std::string name;
  uint64_t size = 0;
};

struct DaemonConfig {
  std::string path;
  std::string name;              // daemon id in logs and Hello
  std::string role = "primary";  // "primary" | "mirror" (first start only)
  std::string mode = "sync";
  std::string data_dir;
  uint32_t track_size = 64 << 10;
  uint64_t max_write = 32 << 20;
  uint64_t cache_size = 256 << 20;
  bool cache_persistent = true;
  std::string holding_pen = "local";  // "local" | "cache"
  uint64_t queue_capacity = 4096;     // mirror queue places
  uint64_t host_workers = 4;
  std::vector<HostAdaptorConfig> host_adaptors;
  std::string admin_listen = "127.0.0.1:0";
  std::string admin_token_file;
  std::string metrics_listen;
  std::string peer_listen = "127.0.0.1:0";
  std::string peer_address;  // the other daemon's peer port; empty: not paired
  std::string link_policy = "continue";
  uint32_t ack_timeout_ms = 5000;
  std::string log_level = "info";
  std::vector<VolumeConfig> volumes;
};

// `data_dir_override`, when not empty, replaces the file's data_dir.
absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path,
                                        const std::string& data_dir_override);

}  // namespace simarray::daemon
