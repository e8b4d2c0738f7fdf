#pragma once
// RunClosedLoop: keeps `depth` requests in flight for a warm-up and then a measured window,
// starting the next request of a lane as soon as its previous one completes (a closed loop,
// like a host with a fixed queue depth). It records every latency of the measured window and
// shows progress on stderr. What a request is, is the caller's business (a simarray write,
// a two-hop echo).

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace simarray::bench {

// Called once per request, from any thread, when it completed; `ok` false if it failed.
using Completion = std::function<void(bool ok)>;
// Starts one request and returns at once; `done` runs when it completes (possibly inline).
// Must be safe to call from several threads at a time.
using StartRequest = std::function<void(Completion done)>;

struct LoopOptions {
  std::string label;  // for the progress line
  int depth = 1;      // requests in flight
  std::chrono::duration<double> warmup{1.0};
  std::chrono::duration<double> duration{5.0};  // the measured window
  // Called once, from the thread that waits in RunClosedLoop, as the measured window starts,
  // with the count of requests completed so far (warm-up included): where a caller samples
  // what the window costs. The lanes keep running meanwhile.
  std::function<void(uint64_t completed_all)> at_window_start;
};

struct LoopResult {
  uint64_t completed = 0;            // requests that completed inside the measured window
  uint64_t completed_all = 0;        // all requests that completed, warm-up included
  uint64_t failed = 0;               // over the whole run; a failed request ends its lane
  double seconds = 0;                // length of the measured window
  std::vector<double> latencies_us;  // of `completed`, sorted

  double PerSecond() const { return seconds > 0 ? completed / seconds : 0; }
  // The p-th percentile (0 < p <= 100) of latencies_us; 0 when there are none.
  double PercentileUs(double p) const;
};

// Blocks until every lane stopped: at the end of the window, or at its first failure.
LoopResult RunClosedLoop(const LoopOptions& options, const StartRequest& start);

}  // namespace simarray::bench
