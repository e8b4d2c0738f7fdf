#include "simarray/disk/disk_faults.h"

namespace simarray::disk {

const char* DiskOpName(DiskOp op) {
  switch (op) {
    case DiskOp::kWrite:
      return "write";
    case DiskOp::kSync:
      return "sync";
    case DiskOp::kRead:
      return "read";
  }
  return "?";
}

void DiskFaults::Arm(uint32_t volume_id, DiskOp op, int error, uint32_t count) {
  absl::MutexLock lock(&mu_);
  armed_[{volume_id, op}] = Armed{error, count};
  any_.store(true, std::memory_order_relaxed);
}

size_t DiskFaults::Clear(uint32_t volume_id) {
  absl::MutexLock lock(&mu_);
  size_t cleared = 0;
  for (auto it = armed_.begin(); it != armed_.end();) {
    if (it->first.first == volume_id) {
      it = armed_.erase(it);
      ++cleared;
    } else {
      ++it;
    }
  }
  any_.store(!armed_.empty(), std::memory_order_relaxed);
  return cleared;
}

int DiskFaults::Take(uint32_t volume_id, DiskOp op) {
  if (!any_.load(std::memory_order_relaxed)) return 0;
  absl::MutexLock lock(&mu_);
  auto it = armed_.find({volume_id, op});
  if (it == armed_.end()) return 0;
  const int error = it->second.error;
  if (it->second.left != 0 && --it->second.left == 0) {
    armed_.erase(it);
    any_.store(!armed_.empty(), std::memory_order_relaxed);
  }
  return error;
}

}  // namespace simarray::disk
