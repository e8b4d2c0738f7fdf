#pragma once
// BatchWriter: writes the runs of one destage batch (each a file offset and the slot ranges
// that go there) and reports which ones failed. With io_uring, every run of the batch is
// submitted with one system call, so the block layer dispatches them as one batch: a virtual
// disk is notified once per batch instead of once per run, and that notification (a VM exit)
// was the largest single cost of a small write (docs/performance.md, "What limits each
// row"). Where io_uring is refused (an old kernel, a container's seccomp profile) each run
// is one pwritev, as before. Not thread-safe: the destage thread owns it.

#include <sys/uio.h>

#include <cstddef>
#include <span>
#include <vector>

struct io_uring;

namespace simarray::disk {

struct WriteRun {
  int fd = -1;           // where it goes first (the O_DIRECT descriptor when there is one)
  int fallback_fd = -1;  // tried, synchronously, when `fd` refuses it; -1: none
  off_t at = 0;
  std::vector<iovec> iov;
  size_t bytes = 0;  // the sum of iov lengths
  // Set by Write: 0 when every byte reached the file, else the errno of the failure.
  int error = 0;
};

class BatchWriter {
 public:
  // `try_io_uring` false: one pwritev per run (what a machine without io_uring does).
  explicit BatchWriter(bool try_io_uring = true);
  ~BatchWriter();
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  // Writes every run, resuming short writes; sets each run's `error`. Returns when all are
  // done (written or failed); nothing is left in flight.
  void Write(std::span<WriteRun> runs);

  bool uses_io_uring() const { return ring_ != nullptr; }

 private:
  // One run with pwritev, from `done` bytes on; 0 or the errno.
  static int WriteSync(int fd, const WriteRun& run, size_t done);
  void WriteRing(std::span<WriteRun> runs);

  io_uring* ring_ = nullptr;
};

}  // namespace simarray::disk
