#pragma once
// HostWriter: writes through simarray's HostService.Write (proto/simarray/v1/host.proto),
// each of one block at a block-aligned pseudo-random offset of a volume (or the next one,
// sequential), with the block's CRC-32C as a host sends it. Its Start method is a StartRequest for
// RunClosedLoop. Thread-safe; must outlive every request it started.

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>

#include "absl/status/status.h"
#include "simarray/v1/host.grpc.pb.h"
#include "tools/bench/closed_loop.h"

namespace simarray::bench {

// Writes the whole volume once (1 MiB sync writes) and flushes it, so that every pair starts
// the workloads with the same volume state: holding data, every track cached and clean.
absl::Status Prefill(const std::string& address, const std::string& volume, uint64_t size);

class HostWriter {
 public:
  // Writes go to the host adaptor at `address` (a primary's gRPC host adaptor).
  HostWriter(const std::string& address, std::string volume, uint64_t volume_size,
             uint32_t block_size, bool sequential = false);

  void Start(Completion done);

  // Writes started so far; write n (0-based) went to OffsetOf(n) and carried payload(), the
  // same bytes for every write. With these a check can find every block the writer touched.
  uint64_t started() const { return counter_.load(); }
  uint64_t OffsetOf(uint64_t n) const;
  const std::string& payload() const { return payload_; }
  const std::string& volume() const { return volume_; }

  // Writes the array acknowledged without the mirror's ack (reply.mirrored false): in sync
  // mode these mean the link was down and the figures do not measure mirroring.
  uint64_t unmirrored() const { return unmirrored_.load(); }
  // The first failure, for the report ("" if none).
  std::string first_error() const;

 private:
  std::unique_ptr<v1::HostService::Stub> stub_;
  const std::string volume_;
  const uint64_t blocks_;
  const uint32_t block_size_;
  const bool sequential_;
  const std::string payload_;
  const uint32_t crc32c_;
  std::atomic<uint64_t> counter_{0};
  std::atomic<uint64_t> unmirrored_{0};
  mutable std::mutex mu_;
  std::string first_error_;
};

}  // namespace simarray::bench
