#include "tools/bench/rpo_study.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <thread>
#include <vector>

#include "absl/time/clock.h"
#include "fmt/format.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/closed_loop.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/pair_launcher.h"

namespace simarray::bench {
namespace {

constexpr char kStudyVolume[] = "rpo";
constexpr uint64_t kStudyVolumeSize = uint64_t{1} << 30;
constexpr uint32_t kWrite = 128 << 10;
constexpr int kDepth = 16;  // the host's queue depth: what pacing's delay holds back

struct Link {
  const char* name;
  double bits;
  const char* toml;
};
constexpr Link kLinks[] = {
    {"100 Mbit/s, 20 ms", 100e6,
     "[link.emulate]\nlatency_ms = 20\nbandwidth = \"100Mbit\"\nback = { latency_ms = 20 }\n"},
    {"1 Gbit/s, 20 ms", 1e9,
     "[link.emulate]\nlatency_ms = 20\nbandwidth = \"1Gbit\"\nback = { latency_ms = 20 }\n"},
};

struct Setup {
  const char* name;
  const char* both;     // TOML for both daemons
  const char* primary;  // and for the primary alone
};
constexpr Setup kSetups[] = {
    {"cycles only", "", ""},
    {"DSE 2 GiB", "[dse]\nmax_size = \"2G\"\n", ""},
    {"pacing", "", "[pacing]\nmode = \"on\"\nmax_delay_us = 500000\n"},
};
constexpr double kRates[] = {0.5, 0.9, 1.5};  // of the link's bandwidth

struct Point {
  double offered = 0, achieved = 0;  // MB/s
  double rpo_p50 = 0, rpo_max = 0;   // seconds
  uint64_t pull_aheads = 0;
  double consistent = 0;  // share of the samples the primary said Consistent
  double paced_ms = 0;    // mean delay of a paced write
  uint64_t failed = 0;
};

// Writes of kWrite bytes, sequential over the study volume, started at `rate` bytes a second
// with at most kDepth outstanding (a host whose queue is full waits: that is where pacing
// acts), for `seconds`, while the primary's Status is sampled every 100 ms.
Point RunRate(const DaemonAddresses& primary, double rate, double seconds) {
  HostWriter writer(primary.host, kStudyVolume, kStudyVolumeSize, kWrite, /*sequential=*/true);
  std::atomic<int> outstanding{0};
  std::atomic<uint64_t> completed{0}, failed{0};
  std::atomic<bool> stop{false};
  std::thread issuer([&] {
    const auto interval = std::chrono::duration<double>(kWrite / rate);
    auto next = std::chrono::steady_clock::now();
    while (!stop) {
      next += std::chrono::duration_cast<std::chrono::steady_clock::duration>(interval);
      std::this_thread::sleep_until(next);
      while (outstanding.load() >= kDepth && !stop) {
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
      if (stop) break;
      ++outstanding;
      writer.Start([&](bool ok) {
        ++(ok ? completed : failed);
        --outstanding;
      });
    }
  });
  Point p;
  p.offered = rate / 1e6;
  auto first = GetStatus(primary.admin);
  std::vector<double> rpo;
  uint64_t consistent = 0, samples = 0;
  const absl::Time start = absl::Now();
  while (absl::Now() - start < absl::Seconds(seconds)) {
    absl::SleepFor(absl::Milliseconds(100));
    auto s = GetStatus(primary.admin);
    if (!s.ok()) continue;
    if (absl::Now() - start > absl::Seconds(1)) rpo.push_back(s->cycles().seconds_behind());
    consistent += s->pair_state() == "Consistent";
    ++samples;
  }
  const uint64_t done = completed.load();
  const double elapsed = absl::ToDoubleSeconds(absl::Now() - start);
  stop = true;
  issuer.join();
  while (outstanding.load() != 0) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  auto last = GetStatus(primary.admin);
  p.achieved = done * double{kWrite} / elapsed / 1e6;
  p.failed = failed.load();
  std::sort(rpo.begin(), rpo.end());
  if (!rpo.empty()) {
    p.rpo_p50 = rpo[rpo.size() / 2];
    p.rpo_max = rpo.back();
  }
  if (samples != 0) p.consistent = double(consistent) / samples;
  if (first.ok() && last.ok()) {
    p.pull_aheads = last->cycles().pull_aheads() - first->cycles().pull_aheads();
    const uint64_t paced = last->cycles().writes_paced() - first->cycles().writes_paced();
    if (paced != 0) {
      p.paced_ms =
          (last->cycles().pacing_seconds() - first->cycles().pacing_seconds()) * 1e3 / paced;
    }
  }
  return p;
}

// Waits (up to `limit`) until the primary says Consistent again after a run.
bool Settle(const DaemonAddresses& primary, absl::Duration limit) {
  const absl::Time end = absl::Now() + limit;
  while (absl::Now() < end) {
    auto s = GetStatus(primary.admin);
    if (s.ok() && s->pair_state() == "Consistent" && s->owed_tracks() == 0) return true;
    absl::SleepFor(absl::Milliseconds(200));
  }
  return false;
}

// Writes the whole study volume with the link suspended, resumes it and times the resync.
std::string ResyncWholeVolume(const DaemonAddresses& primary) {
  if (absl::Status s = SetLink(primary.admin, true); !s.ok()) return s.ToString();
  HostWriter writer(primary.host, kStudyVolume, kStudyVolumeSize, kWrite, /*sequential=*/true);
  const uint64_t writes = kStudyVolumeSize / kWrite;
  std::atomic<uint64_t> issued{0};
  LoopOptions loop;
  loop.label = "write 1 GiB, link suspended";
  loop.depth = kDepth;
  loop.warmup = std::chrono::duration<double>(0);
  loop.duration = std::chrono::duration<double>(600);
  // Each lane stops (a "failed" request ends it) once the volume is written whole.
  RunClosedLoop(loop, [&](Completion done) {
    if (issued.fetch_add(1) >= writes) return done(false);
    writer.Start(std::move(done));
  });
  auto before = GetStatus(primary.admin);
  if (!before.ok()) return before.status().ToString();
  const absl::Time start = absl::Now();
  if (absl::Status s = SetLink(primary.admin, false); !s.ok()) return s.ToString();
  while (absl::Now() - start < absl::Seconds(900)) {
    auto s = GetStatus(primary.admin);
    if (s.ok() && s->owed_tracks() == 0 &&
        s->link().resyncs_completed() > before->link().resyncs_completed()) {
      return fmt::format("{} tracks ({:.0f} MiB) in {:.1f} s", before->owed_tracks(),
                         before->owed_tracks() * 64.0 / 1024,
                         absl::ToDoubleSeconds(absl::Now() - start));
    }
    absl::SleepFor(absl::Milliseconds(50));
  }
  return "not done in 900 s";
}

}  // namespace

int RunRpoStudy(const std::string& simarrayd, const std::string& scratch, double seconds) {
  std::printf(
      "| link | setup | offered MB/s | written MB/s | RPO p50 | RPO max | pull-aheads | "
      "Consistent | paced write |\n| --- | --- | --- | --- | --- | --- | --- | --- | --- |\n");
  std::vector<std::string> resyncs;
  int code = 0;
  int n = 0;
  for (const Link& link : kLinks) {
    for (const Setup& setup : kSetups) {
      PairOptions options;
      options.simarrayd = simarrayd;
      options.dir = scratch;
      options.name = fmt::format("rpo{}", n++);
      options.mode = "async";
      options.primary_extra = std::string(setup.both) + setup.primary + link.toml;
      options.mirror_extra = setup.both;
      auto pair = LaunchedPair::Start(options);
      if (!pair.ok()) {
        std::fprintf(stderr, "rpo study: %s\n", pair.status().ToString().c_str());
        return 1;
      }
      const DaemonAddresses& primary = (*pair)->primary();
      if (absl::Status s = EnsureVolume(primary.admin, kStudyVolume, kStudyVolumeSize); !s.ok()) {
        std::fprintf(stderr, "rpo study: %s\n", s.ToString().c_str());
        return 1;
      }
      for (const double share : kRates) {
        std::fprintf(stderr, "rpo study: %s, %s, %.0f%% of the link\n", link.name, setup.name,
                     share * 100);
        Settle(primary, absl::Seconds(120));
        const Point p = RunRate(primary, share * link.bits / 8, seconds);
        if (p.failed != 0) code = 1;
        std::printf("| %s | %s | %.1f | %.1f | %.2f s | %.2f s | %llu | %.0f%% | %s |\n", link.name,
                    setup.name, p.offered, p.achieved, p.rpo_p50, p.rpo_max,
                    static_cast<unsigned long long>(p.pull_aheads), p.consistent * 100,
                    p.paced_ms > 0 ? fmt::format("{:.1f} ms", p.paced_ms).c_str() : "-");
        std::fflush(stdout);
      }
      if (&setup == &kSetups[0]) {
        Settle(primary, absl::Seconds(120));
        std::fprintf(stderr, "rpo study: resync of 1 GiB over %s\n", link.name);
        resyncs.push_back(fmt::format("- {}: resync of {}", link.name, ResyncWholeVolume(primary)));
      }
    }
  }
  std::printf("\n");
  for (const std::string& r : resyncs) std::printf("%s\n", r.c_str());
  return code;
}

}  // namespace simarray::bench
