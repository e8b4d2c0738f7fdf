#pragma once
// FaultInjector: the faults an admin can arm on a running daemon (AdminService.InjectFault),
// consulted by the components they affect. Thread-safe (atomics only).

#include <atomic>
#include <cstdint>

namespace simarray {

class FaultInjector {
 public:
  // Corrupt the cached bytes of the next host write after they are staged, so validation
  // must reject it.
  void ArmCorruptNextWrite() { corrupt_next_write_.fetch_add(1); }
  // True once per armed fault; the caller corrupts the write it is validating.
  bool TakeCorruptNextWrite() {
    uint32_t n = corrupt_next_write_.load();
    while (n > 0 && !corrupt_next_write_.compare_exchange_weak(n, n - 1)) {
    }
    return n > 0;
  }

  // An async mirror kills itself (SIGKILL) halfway through applying its next cycle, so the
  // redo at restart can be watched.
  void ArmCrashMidApply() { crash_mid_apply_.store(true); }
  bool TakeCrashMidApply() { return crash_mid_apply_.exchange(false); }

  // Every record shipped to the peer is held back this long (0: none).
  void SetRecordDelayMs(uint32_t ms) { record_delay_ms_.store(ms); }
  uint32_t record_delay_ms() const { return record_delay_ms_.load(); }

 private:
  std::atomic<uint32_t> corrupt_next_write_{0};
  std::atomic<uint32_t> record_delay_ms_{0};
  std::atomic<bool> crash_mid_apply_{false};
};

}  // namespace simarray
