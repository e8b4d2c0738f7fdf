// The sync rows measured against raw gRPC: 4 KiB writes at queue depth 1 and 32 beside the
// two-hop echo.
#include "fmt/format.h"
#include "tools/bench/bench.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"

namespace simarray::bench {

void Bench::SyncQd1() {
  Say("sync 4 KiB writes, one at a time, against the two-hop echo");
  std::string trouble, echo_trouble;
  RunCost run_cost;
  const LoopResult array = Writes("simarray sync write 4 KiB QD1", target_.host, 1, &trouble, 1.0,
                                  &target_.probe, &run_cost);
  if (absl::Status s = StartEcho(); !s.ok()) {
    return Fail(MakeSkippedRow("sync 4 KiB write QD1", "", AtMostTarget(kMaxQd1LatencyRatio)),
                s.ToString());
  }
  double echo_cpu_us = -1;
  const LoopResult echo = Echoes("two-hop gRPC echo 4 KiB QD1", 1, &echo_trouble, &echo_cpu_us);
  const std::string problems = trouble + echo_trouble;
  Row p50 = MakeLatencyRow("sync 4 KiB write QD1, p50 latency", array.PercentileUs(50),
                           echo.PercentileUs(50), kMaxQd1LatencyRatio);
  Row p99 = MakeLatencyRow("sync 4 KiB write QD1, p99 latency", array.PercentileUs(99),
                           echo.PercentileUs(99), 0);
  Cost cost = ToCost(run_cost.delta, "sync 4 KiB write QD1", true, run_cost.note);
  SetBaselineCpu(&cost, echo_cpu_us, kEchoCpuCovers);
  *p50.add_costs() = cost;
  *p99.add_costs() = cost;
  if (!problems.empty()) return Fail(std::move(p50), problems);
  Add(std::move(p50));
  Add(std::move(p99));
}

void Bench::SyncQd32() {
  Say("sync 4 KiB writes, 32 in flight, against the two-hop echo");
  std::string trouble, echo_trouble;
  RunCost run_cost;
  const LoopResult array = Writes("simarray sync write 4 KiB QD32", target_.host, 32, &trouble, 1.0,
                                  &target_.probe, &run_cost);
  if (absl::Status s = StartEcho(); !s.ok()) {
    return Fail(MakeSkippedRow("sync 4 KiB write QD32, IOPS", "", AtLeastTarget(kMinQd32IopsRatio)),
                s.ToString());
  }
  double echo_cpu_us = -1;
  const LoopResult echo = Echoes("two-hop gRPC echo 4 KiB QD32", 32, &echo_trouble, &echo_cpu_us);
  Row row = MakeThroughputRow("sync 4 KiB write QD32, IOPS", "IOPS", array.PerSecond(),
                              echo.PerSecond(), kMinQd32IopsRatio);
  Cost cost = ToCost(run_cost.delta, "sync 4 KiB write QD32", true, run_cost.note);
  SetBaselineCpu(&cost, echo_cpu_us, kEchoCpuCovers);
  *row.add_costs() = std::move(cost);
  row.set_note(fmt::format("p50 {:.0f} µs vs {:.0f} µs, p99 {:.0f} µs vs {:.0f} µs",
                           array.PercentileUs(50), echo.PercentileUs(50), array.PercentileUs(99),
                           echo.PercentileUs(99)));
  if (!(trouble + echo_trouble).empty()) return Fail(std::move(row), trouble + echo_trouble);
  Add(std::move(row));
}

}  // namespace simarray::bench
