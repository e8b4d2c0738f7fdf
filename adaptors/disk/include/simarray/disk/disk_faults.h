#pragma once
// DiskFaults: backing-store failures an admin arms on purpose (AdminService.InjectFault,
// kinds disk-error and disk-full; docs/storage-faults.md). The disk adaptor asks before each
// write, sync or read of a volume's backing file whether it must fail, and with which errno,
// instead of doing it. Thread-safe; one relaxed atomic load when nothing is armed.

#include <atomic>
#include <cstdint>
#include <map>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"

namespace simarray::disk {

enum class DiskOp { kWrite, kSync, kRead };

// "write", "sync", "read".
const char* DiskOpName(DiskOp op);

class DiskFaults {
 public:
  // The next `count` `op`s on volume `volume_id`'s backing file fail with `error` (an errno);
  // count 0: every one until Clear. Replaces what was armed for that volume and op.
  void Arm(uint32_t volume_id, DiskOp op, int error, uint32_t count);
  // Disarms every fault of the volume; returns how many were armed.
  size_t Clear(uint32_t volume_id);
  // 0: do the `op`. Otherwise the errno it must fail with (one armed failure used up).
  int Take(uint32_t volume_id, DiskOp op);

 private:
  struct Armed {
    int error = 0;
    uint32_t left = 0;  // 0: until cleared
  };
  absl::Mutex mu_;
  std::map<std::pair<uint32_t, DiskOp>, Armed> armed_ ABSL_GUARDED_BY(mu_);
  std::atomic<bool> any_{false};  // armed_ is not empty
};

}  // namespace simarray::disk
