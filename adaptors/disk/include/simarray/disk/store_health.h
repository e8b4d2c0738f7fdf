#pragma once
// StoreHealth: which volumes' backing files are failing, and since when
// (docs/storage-faults.md). The destager reports every write and sync it did per volume; a
// failure puts the volume in the failed state until a later destage of it writes and syncs
// again. Status, /metrics and flushes read it. Thread-safe.

#include <atomic>
#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "simarray/disk/disk_faults.h"

namespace simarray::disk {

struct StoreFailure {
  uint32_t volume_id = 0;
  std::string volume;
  DiskOp op = DiskOp::kWrite;  // the last operation that failed
  int error = 0;               // and its errno
  uint64_t failures = 0;       // failed attempts since the volume failed
  absl::Time since;            // the first of them
};

// What a flush or a write-through ack waiting on a failed volume gets: RESOURCE_EXHAUSTED
// for a full file system (ENOSPC, EDQUOT), UNAVAILABLE for anything else (EIO: the data is
// still in cache and the destage retries it, so nothing is lost and the call may be
// retried). The message names the volume, the operation and the error.
absl::Status FailureStatus(const StoreFailure& failure);

class StoreHealth {
 public:
  // A write or sync of the volume failed with `error`. The volume's failure as it stands
  // now (`failures` is 1 when the volume was healthy).
  StoreFailure Failed(uint32_t volume_id, const std::string& volume, DiskOp op, int error);
  // A destage of the volume wrote and synced. The failure it ends, if it was failed. One
  // relaxed atomic load when no volume is failed (every destage batch calls it).
  std::optional<StoreFailure> Recovered(uint32_t volume_id);
  // Forgets failures of volumes for which `exists` is false (deleted while failed); true if
  // it forgot any.
  template <typename Exists>
  bool Prune(Exists exists) {
    absl::MutexLock lock(&mu_);
    const size_t before = failed_.size();
    for (auto it = failed_.begin(); it != failed_.end();) {
      it = exists(it->first) ? std::next(it) : failed_.erase(it);
    }
    failed_count_.store(failed_.size(), std::memory_order_relaxed);
    return failed_.size() != before;
  }
  // Every failed volume, in id order.
  std::vector<StoreFailure> Failures();
  // OK when no volume is failed; else FailureStatus of the one that failed first.
  absl::Status Verdict();
  // Failed writes and syncs since start, over every volume.
  uint64_t errors() const { return errors_.load(std::memory_order_relaxed); }
  uint64_t recoveries() const { return recoveries_.load(std::memory_order_relaxed); }

 private:
  absl::Mutex mu_;
  std::map<uint32_t, StoreFailure> failed_ ABSL_GUARDED_BY(mu_);
  std::atomic<size_t> failed_count_{0};  // failed_.size()
  std::atomic<uint64_t> errors_{0};
  std::atomic<uint64_t> recoveries_{0};
};

}  // namespace simarray::disk
