#pragma once
// The NBD workload: fio's nbd engine (libnbd inside fio) doing 4 KiB random writes at a
// fixed queue depth against an NBD export, and nbdkit's memory plugin as the baseline export.
// Both tools are Debian packages (fio, nbdkit); FindTool says whether one is installed.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace simarray::bench {

// The path of `name` on PATH, or "" when it is not installed.
std::string FindTool(const std::string& name);

struct FioOptions {
  std::string label;         // for the progress line
  std::string uri;           // nbd://host:port/export
  uint64_t size = 64 << 20;  // bytes of the export fio spreads its writes over
  int depth = 32;
  // fio's --fsync: a FLUSH after every this many writes (0: none).
  int flush_every = 0;
  std::chrono::duration<double> warmup{1.0};  // fio's ramp_time
  std::chrono::duration<double> duration{5.0};
  // Called once, from another thread, `warmup` after fio was started: about when fio's
  // measured runtime begins (fio's own start-up makes it a little early).
  std::function<void()> at_window_start;
};

struct FioResult {
  double iops = 0;
  double p50_us = 0;
  double p99_us = 0;
};

// Runs fio and reads its JSON output. INTERNAL with fio's stderr if it failed.
absl::StatusOr<FioResult> RunFio(const FioOptions& options);

// `nbdkit memory SIZE` serving on a loopback port the bench bound itself (handed over by
// socket activation, so there is no port race); stopped on destruction. Not thread-safe.
class NbdkitMemory {
 public:
  static absl::StatusOr<std::unique_ptr<NbdkitMemory>> Start(const std::string& nbdkit,
                                                             uint64_t size);
  ~NbdkitMemory();
  NbdkitMemory(const NbdkitMemory&) = delete;
  NbdkitMemory& operator=(const NbdkitMemory&) = delete;

  const std::string& uri() const { return uri_; }
  pid_t pid() const { return pid_; }

 private:
  NbdkitMemory() = default;
  pid_t pid_ = -1;
  std::string uri_;
};

}  // namespace simarray::bench
