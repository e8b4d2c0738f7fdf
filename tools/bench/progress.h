#pragma once
// ProgressLine: the live line simarray-bench keeps on stderr while a workload runs
// ("[label] 3.5/8.0 s  17234 ops  4923 IOPS"). On a terminal it is redrawn in place; on
// anything else only the final state is printed, one line per workload. Thread-safe.

#include <chrono>
#include <mutex>
#include <string>

namespace simarray::bench {

class ProgressLine {
 public:
  // `planned` is how long the workload is meant to run (warm-up included).
  ProgressLine(std::string label, std::chrono::duration<double> planned);
  // Prints the final state on its own line if Done was not called.
  ~ProgressLine();
  ProgressLine(const ProgressLine&) = delete;
  ProgressLine& operator=(const ProgressLine&) = delete;

  // The figures so far (e.g. "17234 ops  4923 IOPS"); redrawn at most every 200 ms.
  void Update(const std::string& figures);
  // The final figures; ends the line.
  void Done(const std::string& figures);

 private:
  void Draw(const std::string& figures, bool final);

  const std::string label_;
  const std::chrono::duration<double> planned_;
  const std::chrono::steady_clock::time_point started_;
  const bool terminal_;
  std::mutex mu_;
  std::chrono::steady_clock::time_point last_draw_;
  std::string last_figures_;
  bool done_ = false;
};

// A line on stderr that is not a progress line ("starting the pair ..."), ended properly
// even when a progress line was being redrawn.
void Say(const std::string& message);

}  // namespace simarray::bench
