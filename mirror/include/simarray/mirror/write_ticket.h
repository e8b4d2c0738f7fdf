#pragma once
// WriteTicket: how a sync host write learns what became of its mirror requests. Each
// request of the write holds the ticket; the remote adaptor reports every request once:
// Ack (the mirror has it), Unmirrored (it will be resynced later: the write succeeds with
// mirrored = false), or Fail (the write fails, e.g. link policy "fail"). `done` runs exactly
// once, on the thread that completes the ticket (a remote adaptor thread): it must not block.
// Thread-safe.

#include <atomic>
#include <cstdint>
#include <functional>

#include "absl/status/status.h"

namespace simarray::mirror {

class WriteTicket {
 public:
  using Done = std::function<void(absl::Status status, bool mirrored)>;
  WriteTicket(uint32_t portions, Done done) : outstanding_(portions), done_(std::move(done)) {}
  WriteTicket(uint32_t portions, std::function<void(absl::Status)> done)
      : outstanding_(portions),
        done_([done = std::move(done)](absl::Status s, bool) { done(std::move(s)); }) {}
  WriteTicket(const WriteTicket&) = delete;
  WriteTicket& operator=(const WriteTicket&) = delete;

  void Ack();
  void Unmirrored();
  void Fail(absl::Status status);
  bool finished() const { return fired_.load(); }

 private:
  void Fire(absl::Status status);
  std::atomic<uint32_t> outstanding_;
  std::atomic<bool> mirrored_{true};
  std::atomic<bool> fired_{false};
  Done done_;
};

}  // namespace simarray::mirror
