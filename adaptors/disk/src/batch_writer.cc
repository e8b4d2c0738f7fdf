// BatchWriter: one destage batch's writes, submitted together (batch_writer.h).
#include "simarray/disk/batch_writer.h"

#include <liburing.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>

#include "spdlog/spdlog.h"

namespace simarray::disk {
namespace {

// Submission queue entries: a batch of more runs goes in several submissions.
constexpr unsigned kRingEntries = 256;

}  // namespace

BatchWriter::BatchWriter(bool try_io_uring) {
  if (!try_io_uring) return;
  auto* ring = new io_uring;
  if (int r = io_uring_queue_init(kRingEntries, ring, 0); r < 0) {
    spdlog::info("disk adaptor: io_uring not available ({}); destaging with one pwritev per run",
                 strerror(-r));
    delete ring;
    return;
  }
  ring_ = ring;
}

BatchWriter::~BatchWriter() {
  if (ring_ == nullptr) return;
  io_uring_queue_exit(ring_);
  delete ring_;
}

namespace {

// Moves `first` and the iovec it points at past `n` bytes.
void Advance(std::vector<iovec>& iov, size_t& first, size_t n) {
  while (n > 0 && first < iov.size()) {
    iovec& v = iov[first];
    const size_t used = std::min(n, v.iov_len);
    v.iov_base = static_cast<uint8_t*>(v.iov_base) + used;
    v.iov_len -= used;
    n -= used;
    if (v.iov_len == 0) ++first;
  }
}

}  // namespace

int BatchWriter::WriteSync(int fd, const WriteRun& run, size_t done) {
  std::vector<iovec> iov = run.iov;
  size_t first = 0;
  Advance(iov, first, done);  // what a short write already wrote
  off_t at = run.at + static_cast<off_t>(done);
  while (first < iov.size()) {
    const int count = static_cast<int>(std::min<size_t>(iov.size() - first, IOV_MAX));
    const ssize_t n = pwritev(fd, iov.data() + first, count, at);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno;
    if (n == 0) return EIO;
    at += n;
    Advance(iov, first, static_cast<size_t>(n));
  }
  return 0;
}

void BatchWriter::Write(std::span<WriteRun> runs) {
  if (ring_ != nullptr) {
    WriteRing(runs);
  } else {
    for (WriteRun& run : runs) run.error = WriteSync(run.fd, run, 0);
  }
  // Whatever the first descriptor refused (O_DIRECT on a file system that will not take
  // it), the buffered one may still write.
  for (WriteRun& run : runs) {
    if (run.error != 0 && run.fallback_fd >= 0) run.error = WriteSync(run.fallback_fd, run, 0);
  }
}

void BatchWriter::WriteRing(std::span<WriteRun> runs) {
  constexpr int kPending = -1;
  for (size_t start = 0; start < runs.size() && ring_ != nullptr; start += kRingEntries) {
    const size_t end = std::min(runs.size(), start + kRingEntries);
    unsigned queued = 0;
    for (size_t i = start; i < end; ++i) {
      WriteRun& run = runs[i];
      io_uring_sqe* sqe = run.iov.size() <= IOV_MAX ? io_uring_get_sqe(ring_) : nullptr;
      if (sqe == nullptr) {  // too many ranges for one request: written on its own
        run.error = WriteSync(run.fd, run, 0);
        continue;
      }
      io_uring_prep_writev(sqe, run.fd, run.iov.data(), static_cast<unsigned>(run.iov.size()),
                           static_cast<uint64_t>(run.at));
      io_uring_sqe_set_data64(sqe, i);
      run.error = kPending;
      ++queued;
    }
    unsigned in_flight = 0;
    int failure = 0;
    for (int tries = 0; in_flight < queued && tries < 8; ++tries) {
      const int n = io_uring_submit(ring_);
      if (n == -EINTR || n == -EAGAIN) continue;
      if (n < 0) {
        failure = -n;
        break;
      }
      in_flight += static_cast<unsigned>(n);
    }
    while (in_flight > 0) {
      io_uring_cqe* cqe = nullptr;
      const int r = io_uring_wait_cqe_nr(ring_, &cqe, in_flight);
      if (r == -EINTR) continue;
      if (r < 0) {
        failure = -r;
        break;
      }
      unsigned head = 0, seen = 0;
      io_uring_for_each_cqe(ring_, head, cqe) {
        WriteRun& run = runs[io_uring_cqe_get_data64(cqe)];
        if (cqe->res < 0) {
          run.error = -cqe->res;
        } else if (static_cast<size_t>(cqe->res) < run.bytes) {
          run.error = WriteSync(run.fd, run, static_cast<size_t>(cqe->res));  // a short write
        } else {
          run.error = 0;
        }
        ++seen;
      }
      io_uring_cq_advance(ring_, seen);
      in_flight -= seen;
    }
    if (in_flight != 0 || failure != 0 ||
        std::any_of(runs.begin() + start, runs.begin() + end,
                    [](const WriteRun& r) { return r.error == kPending; })) {
      // The ring failed us: never use it again. A request it still holds may yet complete,
      // so the ring is left open (not reused); what it did not write goes out one by one.
      spdlog::warn("disk adaptor: io_uring failed ({}); destaging with one pwritev per run",
                   strerror(failure != 0 ? failure : EIO));
      ring_ = nullptr;  // leaked on purpose: see above
      for (size_t i = start; i < runs.size(); ++i) {
        if (i >= end || runs[i].error == kPending)
          runs[i].error = WriteSync(runs[i].fd, runs[i], 0);
      }
      return;
    }
  }
}

}  // namespace simarray::disk
