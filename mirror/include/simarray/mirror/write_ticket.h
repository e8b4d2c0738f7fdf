#pragma once
// WriteTicket: how a sync host write learns that the mirror acknowledged every portion.
// Each mirror request of the write holds the ticket; the remote adaptor calls Ack once per
// acknowledged request, or Fail. `done` runs exactly once, on the thread that completes it
// (a remote adaptor thread): it must not block. Thread-safe.

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace simarray::mirror {

class WriteTicket {
 public:
  WriteTicket(uint32_t portions, std::function<void(absl::Status)> done)
      : outstanding_(portions), done_(std::move(done)) {}
  WriteTicket(const WriteTicket&) = delete;
  WriteTicket& operator=(const WriteTicket&) = delete;

  void Ack();
  void Fail(absl::Status status);
  bool finished() const { return fired_.load(); }

 private:
  void Fire(absl::Status status);
  std::atomic<uint32_t> outstanding_;
  std::atomic<bool> fired_{false};
  std::function<void(absl::Status)> done_;
};

}  // namespace simarray::mirror
