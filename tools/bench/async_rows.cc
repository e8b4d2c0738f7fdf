// The async rows: a fresh pair in async mode (cycles of cycle_ms) takes 128 KiB sequential
// writes, 16 in flight, measured against one raw gRPC bidi stream of 128 KiB chunks; and
// 4 KiB writes one at a time, whose latency has no peer round trip in it, beside the
// two-hop echo.
#include <chrono>
#include <thread>

#include "fmt/format.h"
#include "tools/bench/bench.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"
#include "tools/bench/stream_baseline.h"

namespace simarray::bench {
namespace {

constexpr uint32_t kCycleMs = 1000;

// Waits until the mirror applied every write the primary committed; the seconds it took, or
// a negative number after `limit`.
double CatchUpSeconds(const DaemonAddresses& primary, const DaemonAddresses& mirror,
                      std::chrono::seconds limit) {
  const auto start = std::chrono::steady_clock::now();
  auto p = GetStatus(primary.admin);
  if (!p.ok()) return -1;
  const uint64_t last = p->sequence();
  while (std::chrono::steady_clock::now() - start < limit) {
    auto m = GetStatus(mirror.admin);
    if (m.ok() && m->cycles().mirror_consistent() && m->cycles().applied_sequence() >= last) {
      return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return -1;
}

}  // namespace

void Bench::AsyncSequential() {
  const std::string workload = "async 128 KiB sequential write, MB/s";
  const std::string target = AtLeastTarget(kMinAsyncRatio);
  if (target_.launched == nullptr) {
    Add(MakeSkippedRow(workload, "needs an async pair the bench starts itself (not with --primary)",
                       target));
    return;
  }
  Say("async mode: 128 KiB sequential writes, 16 in flight, against one raw gRPC stream");
  if (absl::Status s = StartEcho(); !s.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), s.ToString());
  }
  StreamOptions stream_options;
  stream_options.address = echo_->last_hop_address();
  stream_options.chunk_size = kStreamChunk;
  stream_options.window = kStreamWindow;
  stream_options.warmup = warmup();
  stream_options.duration = duration();
  auto stream = RunStream(stream_options);
  if (!stream.ok()) return Fail(MakeSkippedRow(workload, "", target), stream.status().ToString());

  PairOptions options;
  options.simarrayd = DaemonPath();
  options.dir = scratch_;
  options.name = "async";
  options.mode = "async";
  options.cycle_ms = kCycleMs;
  // The capture and transmit cycles may pin 60% of the 256 MiB cache: more than twice the
  // 64 MiB volume, so the sequential writes fold into cycles and never pull ahead.
  options.cycle_cache_percent = 60;
  auto pair = LaunchedPair::Start(options);
  if (!pair.ok()) return Fail(MakeSkippedRow(workload, "", target), pair.status().ToString());
  const DaemonAddresses& primary = (*pair)->primary();
  if (absl::Status s = PrepareVolume(primary.admin, primary.host, kVolume); !s.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), s.ToString());
  }
  // Let the prefill drain so the run starts with the pair consistent.
  CatchUpSeconds(primary, (*pair)->mirror(), std::chrono::seconds(60));
  auto before = GetStatus(primary.admin);

  // The cost window closes once the mirror has applied every write and both sides flushed:
  // in async mode the mirror's share of the work comes after the host's acks.
  const PairProbe probe = (*pair)->Probe();
  absl::StatusOr<v1::StatusReply> after = absl::UnknownError("not sampled");
  double catch_up = -1;
  auto catch_up_and_settle = [&] {
    after = GetStatus(primary.admin);
    catch_up = CatchUpSeconds(primary, (*pair)->mirror(), std::chrono::seconds(60));
    std::string trouble = Settle(probe);
    if (catch_up < 0) trouble += (trouble.empty() ? "" : "; ") + std::string("no catch-up in 60 s");
    return trouble;
  };
  auto settled_note = [&](const std::string& trouble) {
    return trouble.empty() ? fmt::format(
                                 "closed after the mirror caught up ({:.1f} s later) and "
                                 "both sides flushed",
                                 catch_up)
                           : trouble;
  };
  HostWriter writer(primary.host, kVolume, kVolumeSize, kStreamChunk, /*sequential=*/true);
  RunCost run_cost;
  const LoopResult array = CostedLoop(
      "simarray async write 128 KiB sequential QD16", kStreamWindow,
      [&](Completion done) { writer.Start(std::move(done)); }, 1.0, probe, catch_up_and_settle,
      &run_cost);
  const double mb_per_s = array.PerSecond() * kStreamChunk / 1e6;
  Row row = MakeThroughputRow(workload, "MB/s", mb_per_s, stream->MegabytesPerSecond(kStreamChunk),
                              kMinAsyncRatio);
  Cost cost = ToCost(run_cost.delta, "async 128 KiB sequential write QD16", true,
                     settled_note(run_cost.note));
  SetBaselineCpu(&cost,
                 stream->cpu_seconds >= 0 && stream->chunks_acked > 0
                     ? stream->cpu_seconds / stream->chunks_acked * 1e6
                     : -1,
                 "raw stream, per 128 KiB chunk: client and server (both in the bench process)");
  *row.add_costs() = std::move(cost);
  std::string cycles = "cycle figures unavailable";
  if (before.ok() && after.ok()) {
    const v1::CycleStatus& b = before->cycles();
    const v1::CycleStatus& a = after->cycles();
    cycles = fmt::format(
        "{} cycles of {} ms, {} writes folded, {} pull-aheads, mirror {:.1f} s behind at the end",
        a.cycles_switched() - b.cycles_switched(), kCycleMs, a.writes_folded() - b.writes_folded(),
        a.pull_aheads() - b.pull_aheads(), a.seconds_behind());
  }
  row.set_note(fmt::format(
      "fresh async pair; host acked after the local commit; baseline: one raw gRPC bidi stream of "
      "128 KiB chunks, 16 unacknowledged; {}; {}",
      cycles,
      catch_up >= 0
          ? fmt::format("the mirror was consistent with every write {:.1f} s later", catch_up)
          : std::string("the mirror had NOT caught up 60 s later")));
  const std::string trouble =
      array.failed != 0 ? fmt::format("{} writes failed: {}", array.failed, writer.first_error())
                        : "";
  if (!trouble.empty()) return Fail(std::move(row), trouble);
  Add(std::move(row));

  // The host's wait in async mode: the local commit, no peer round trip.
  std::string qd1_trouble, echo_trouble;
  HostWriter small(primary.host, kVolume, kVolumeSize, kBlock);
  RunCost qd1_cost;
  const LoopResult qd1 = CostedLoop(
      "simarray async write 4 KiB QD1", 1, [&](Completion done) { small.Start(std::move(done)); },
      0.5, probe, catch_up_and_settle, &qd1_cost);
  double echo_cpu_us = -1;
  const LoopResult echo =
      Echoes("two-hop gRPC echo 4 KiB QD1 (again)", 1, &echo_trouble, &echo_cpu_us);
  Row latency = MakeLatencyRow("async 4 KiB write QD1, p50 latency", qd1.PercentileUs(50),
                               echo.PercentileUs(50), 0);
  Cost small_cost =
      ToCost(qd1_cost.delta, "async 4 KiB write QD1", true, settled_note(qd1_cost.note));
  SetBaselineCpu(&small_cost, echo_cpu_us, kEchoCpuCovers);
  *latency.add_costs() = std::move(small_cost);
  latency.set_note(fmt::format(
      "no target: shows the host's wait holds no peer round trip (p99 {:.0f} µs vs {:.0f} µs)",
      qd1.PercentileUs(99), echo.PercentileUs(99)));
  if (qd1.failed != 0) qd1_trouble = fmt::format("{} writes failed", qd1.failed);
  if (!(qd1_trouble + echo_trouble).empty()) {
    return Fail(std::move(latency), qd1_trouble + echo_trouble);
  }
  Add(std::move(latency));
  report_.add_remarks(fmt::format("after the run, the async pair's volume {}: {}", kVolume,
                                  ConsistencyVerdict(primary.admin, kVolume)));
}

}  // namespace simarray::bench
