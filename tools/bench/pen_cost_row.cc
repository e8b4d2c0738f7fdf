// The holding pen's own cost: the same sync 4 KiB QD32 writes on two fresh pairs that differ
// only in holding_pen ("local" against the benchmark-only "bypass").
#include <algorithm>

#include "fmt/format.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/bench.h"
#include "tools/bench/cost.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"

namespace simarray::bench {

void Bench::PenCost() {
  const std::string workload = "holding pen cost, sync 4 KiB QD32";
  const std::string target = CostTarget(kMaxPenCost);
  if (target_.launched == nullptr) {
    Add(MakeSkippedRow(workload, "needs the two pairs the bench starts itself (not with --primary)",
                       target));
    return;
  }
  // Two fresh pairs that differ in holding_pen only, each written once; the measured pair
  // stops first so that neither runs beside a third.
  Say("the holding pen's cost: two fresh pairs, holding_pen = \"local\" and \"bypass\"");
  target_.launched.reset();
  std::unique_ptr<LaunchedPair> pairs[2];
  const char* placements[2] = {"local", "bypass"};
  for (int i = 0; i < 2; ++i) {
    PairOptions options;
    options.simarrayd = DaemonPath();
    options.dir = scratch_;
    options.name = std::string("pen-") + placements[i];
    options.holding_pen = placements[i];
    auto pair = LaunchedPair::Start(options);
    if (!pair.ok()) return Fail(MakeSkippedRow(workload, "", target), pair.status().ToString());
    pairs[i] = std::move(*pair);
    const DaemonAddresses& primary = pairs[i]->primary();
    if (absl::Status s = PrepareVolume(primary.admin, primary.host, kVolume); !s.ok()) {
      return Fail(MakeSkippedRow(workload, "", target), s.ToString());
    }
  }
  // Short rounds in A B B A order, so that a change in what else the machine runs hits
  // both sides alike.
  constexpr int kRounds = 4;
  uint64_t ops[2] = {0, 0};
  double seconds[2] = {0, 0};
  // The primary's CPU time per write: less at the mercy of the scheduler than throughput.
  uint64_t all_ops[2] = {0, 0};
  double cpu_seconds[2] = {0, 0};
  std::string trouble;
  std::string round_costs;
  double lowest_cost = 1, highest_cost = -1;
  for (int round = 0; round < kRounds; ++round) {
    double rate[2] = {0, 0};
    for (int turn = 0; turn < 2; ++turn) {
      const int i = (round % 2 == 0) ? turn : 1 - turn;
      std::string t;
      const double cpu_before = ProcessCpuSeconds(pairs[i]->primary_pid());
      const LoopResult result =
          Writes(fmt::format("holding_pen = {}, round {}/{}", placements[i], round + 1, kRounds),
                 pairs[i]->primary().host, 32, &t, 1.0 / kRounds);
      ops[i] += result.completed;
      seconds[i] += result.seconds;
      rate[i] = result.PerSecond();
      all_ops[i] += result.completed_all;
      cpu_seconds[i] += ProcessCpuSeconds(pairs[i]->primary_pid()) - cpu_before;
      trouble += t;
    }
    const double cost = rate[1] > 0 ? 1 - rate[0] / rate[1] : 0;
    lowest_cost = std::min(lowest_cost, cost);
    highest_cost = std::max(highest_cost, cost);
    round_costs += fmt::format("{}{:+.1f}%", round == 0 ? "" : ", ", cost * 100);
  }
  Row row = MakeCostRow(workload, seconds[0] > 0 ? ops[0] / seconds[0] : 0,
                        seconds[1] > 0 ? ops[1] / seconds[1] : 0, kMaxPenCost,
                        highest_cost - lowest_cost);
  auto cpu_per_write = [&](int i) { return all_ops[i] ? cpu_seconds[i] / all_ops[i] * 1e6 : 0; };
  row.set_note(fmt::format(
      "pen: holding_pen = \"local\"; bypassed: holding_pen = \"bypass\" (benchmark only: no "
      "pen, no CRC-32C validation); two fresh pairs, {} alternating rounds; cost per round: {} "
      "(how far apart they are is the noise floor); primary CPU per write {:.0f} µs with the pen, "
      "{:.0f} µs "
      "bypassed",
      kRounds, round_costs, cpu_per_write(0), cpu_per_write(1)));
  report_.add_remarks(fmt::format("after the run, the pen-bypassed pair's volume {}: {}", kVolume,
                                  ConsistencyVerdict(pairs[1]->primary().admin, kVolume)));
  if (!trouble.empty()) return Fail(std::move(row), trouble);
  Add(std::move(row));
}

}  // namespace simarray::bench
