#pragma once
// The raw-gRPC baseline for async sequential writes: one Echo.Stream, the client sending
// `chunk_size`-byte chunks with at most `window` of them unacknowledged, for a warm-up and
// then a measured window. Throughput counts the bytes the server acknowledged in the window.

#include <chrono>
#include <cstdint>
#include <string>

#include "absl/status/statusor.h"

namespace simarray::bench {

struct StreamOptions {
  std::string address;  // a server of Echo.Stream (TwoHopEcho::last_hop_address)
  size_t chunk_size = 128 << 10;
  int window = 16;
  std::chrono::duration<double> warmup{1.0};
  std::chrono::duration<double> duration{5.0};
};

struct StreamResult {
  uint64_t chunks_acked = 0;  // in the measured window
  double seconds = 0;
  // The bench process's CPU seconds over the window (client and server both run in it);
  // negative if the window never started.
  double cpu_seconds = -1;
  double MegabytesPerSecond(size_t chunk_size) const {
    return seconds > 0 ? chunks_acked * chunk_size / seconds / 1e6 : 0;
  }
};

// Blocks for warm-up + duration. UNAVAILABLE (or the stream's error) if it broke.
absl::StatusOr<StreamResult> RunStream(const StreamOptions& options);

}  // namespace simarray::bench
