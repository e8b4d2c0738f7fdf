#include "tools/bench/closed_loop.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>

#include "fmt/format.h"
#include "tools/bench/progress.h"

namespace simarray::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Shared by the lanes of one run. Lives until the last lane stopped (RunClosedLoop waits).
struct Run {
  Clock::time_point window_start;
  Clock::time_point window_end;
  std::atomic<uint64_t> completed{0};
  std::atomic<uint64_t> completed_all{0};
  std::atomic<uint64_t> failed{0};
  std::mutex mu;
  std::condition_variable lane_stopped;
  int lanes_running = 0;
};

// One request slot. Only the request in flight touches its lane, so no lock is needed.
struct Lane {
  Run* run = nullptr;
  const StartRequest* start = nullptr;
  Clock::time_point issued;
  std::vector<double> latencies_us;

  void Issue() {
    issued = Clock::now();
    (*start)([this](bool ok) { OnDone(ok); });
  }

  void OnDone(bool ok) {
    const Clock::time_point now = Clock::now();
    if (!ok) {
      run->failed.fetch_add(1);
      return Stop();
    }
    run->completed_all.fetch_add(1, std::memory_order_relaxed);
    if (now >= run->window_start && now < run->window_end) {
      latencies_us.push_back(std::chrono::duration<double, std::micro>(now - issued).count());
      run->completed.fetch_add(1, std::memory_order_relaxed);
    }
    if (now >= run->window_end) return Stop();
    Issue();
  }

  void Stop() {
    std::lock_guard lock(run->mu);
    if (--run->lanes_running == 0) run->lane_stopped.notify_all();
  }
};

}  // namespace

double LoopResult::PercentileUs(double p) const {
  if (latencies_us.empty()) return 0;
  // Nearest rank.
  const auto rank = static_cast<size_t>(std::ceil(p / 100.0 * latencies_us.size()));
  return latencies_us[std::clamp<size_t>(rank, 1, latencies_us.size()) - 1];
}

LoopResult RunClosedLoop(const LoopOptions& options, const StartRequest& start) {
  Run run;
  const Clock::time_point begin = Clock::now();
  run.window_start = begin + std::chrono::duration_cast<Clock::duration>(options.warmup);
  run.window_end = run.window_start + std::chrono::duration_cast<Clock::duration>(options.duration);
  run.lanes_running = options.depth;
  std::vector<std::unique_ptr<Lane>> lanes;
  for (int i = 0; i < options.depth; ++i) {
    lanes.push_back(std::make_unique<Lane>());
    lanes.back()->run = &run;
    lanes.back()->start = &start;
  }
  ProgressLine progress(options.label, options.warmup + options.duration);
  for (auto& lane : lanes) lane->Issue();

  auto figures = [&](Clock::time_point now) {
    if (now < run.window_start) return std::string("warming up");
    const double seconds =
        std::chrono::duration<double>(std::min(now, run.window_end) - run.window_start).count();
    const uint64_t done = run.completed.load();
    return fmt::format("{} requests  {:.0f}/s{}", done, seconds > 0 ? done / seconds : 0.0,
                       run.failed.load() ? fmt::format("  {} FAILED", run.failed.load()) : "");
  };
  {
    bool window_hook_due = static_cast<bool>(options.at_window_start);
    std::unique_lock lock(run.mu);
    while (run.lanes_running > 0) {
      // Wake at the window's start when a hook waits for it, else every 100 ms.
      Clock::time_point wake = Clock::now() + std::chrono::milliseconds(100);
      if (window_hook_due) wake = std::min(wake, run.window_start);
      run.lane_stopped.wait_until(lock, wake);
      const Clock::time_point now = Clock::now();
      if (window_hook_due && now >= run.window_start) {
        window_hook_due = false;
        const uint64_t completed_all = run.completed_all.load();
        lock.unlock();  // the hook may take a while; lanes that stop meanwhile must not wait
        options.at_window_start(completed_all);
        lock.lock();
      }
      progress.Update(figures(now));
    }
  }
  const Clock::time_point stopped = Clock::now();
  progress.Done(figures(stopped));

  LoopResult result;
  result.completed = run.completed.load();
  result.completed_all = run.completed_all.load();
  result.failed = run.failed.load();
  result.seconds =
      std::chrono::duration<double>(std::min(stopped, run.window_end) - run.window_start).count();
  for (auto& lane : lanes) {
    result.latencies_us.insert(result.latencies_us.end(), lane->latencies_us.begin(),
                               lane->latencies_us.end());
  }
  std::sort(result.latencies_us.begin(), result.latencies_us.end());
  return result;
}

}  // namespace simarray::bench
