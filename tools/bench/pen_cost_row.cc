// The holding pen's own cost: the same sync 4 KiB QD32 writes on two fresh pairs that differ
// only in holding_pen ("local" against the benchmark-only "bypass"), compared by the pair's
// CPU time per write over alternating rounds.
#include <algorithm>
#include <vector>

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
  if (!OwnPairs()) {
    Add(MakeSkippedRow(workload, "needs the two pairs the bench starts itself (not with --primary)",
                       target));
    return;
  }
  // Two fresh pairs that differ in holding_pen only, each written once; the measured pair
  // stops first so that neither runs beside a third.
  Say("the holding pen's cost: two fresh pairs, holding_pen = \"local\" and \"bypass\"");
  StopMeasuredPair();
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
  // Short rounds, each running both pairs one after the other, the order swapped every round
  // (pen, bypass, bypass, pen, pen, bypass, ...): a change in what else the machine runs hits
  // both sides alike, and a steady drift cancels over each two rounds. What is compared is the
  // pair's CPU per write (primary + mirror, /proc/PID/stat), which depends less on the
  // scheduler than throughput does; each turn ends with both sides flushed, so that the
  // destage of its writes is counted.
  constexpr int kRounds = 6;
  constexpr double kTurnFraction = 0.25;  // of --duration-s, per pair and round
  uint64_t ops[2] = {0, 0};
  double seconds[2] = {0, 0};
  CostDelta totals[2];
  std::vector<double> round_costs;
  std::string trouble, cost_trouble;
  std::string round_list;
  for (int round = 0; round < kRounds; ++round) {
    double cpu_per_write[2] = {-1, -1};
    for (int turn = 0; turn < 2; ++turn) {
      const int i = (round % 2 == 0) ? turn : 1 - turn;
      std::string t;
      const PairProbe probe = pairs[i]->Probe();
      RunCost cost;
      const LoopResult result =
          Writes(fmt::format("holding_pen = {}, round {}/{}", placements[i], round + 1, kRounds),
                 pairs[i]->primary().host, 32, &t, kTurnFraction, &probe, &cost);
      ops[i] += result.completed;
      seconds[i] += result.seconds;
      totals[i] += cost.delta;
      cpu_per_write[i] = cost.delta.PairCpuUsPerWrite();
      trouble += t;
      if (!cost.note.empty()) cost_trouble += (cost_trouble.empty() ? "" : "; ") + cost.note;
    }
    if (cpu_per_write[0] > 0 && cpu_per_write[1] > 0) {
      const double cost = cpu_per_write[0] / cpu_per_write[1] - 1;
      round_costs.push_back(cost);
      round_list += fmt::format("{}{:+.1f}% ({:.0f}/{:.0f})", round_list.empty() ? "" : ", ",
                                cost * 100, cpu_per_write[0], cpu_per_write[1]);
    }
  }
  Row row = MakeCostRow(workload, totals[0].PairCpuUsPerWrite(), totals[1].PairCpuUsPerWrite(),
                        round_costs, kMaxPenCost);
  auto per_second = [&](int i) { return seconds[i] > 0 ? ops[i] / seconds[i] : 0; };
  auto primary_us = [&](int i) {
    return totals[i].writes ? totals[i].primary_cpu_s / totals[i].writes * 1e6 : 0;
  };
  std::vector<double> sorted = round_costs;
  std::sort(sorted.begin(), sorted.end());
  row.set_note(fmt::format(
      "pen: holding_pen = \"local\"; bypassed: holding_pen = \"bypass\" (benchmark only: no "
      "pen, no CRC-32C validation); two fresh pairs, {} rounds in swapped order; cost = median of "
      "the rounds' (pen / bypassed - 1) of pair CPU per write; per round (µs pen/bypassed): {}; "
      "spread {:.1f} points (the noise floor); primary alone {:.0f} µs vs {:.0f} µs; throughput "
      "{:.0f} vs {:.0f} IOPS",
      kRounds, round_list.empty() ? "none measured" : round_list,
      sorted.empty() ? 0.0 : (sorted.back() - sorted.front()) * 100, primary_us(0), primary_us(1),
      per_second(0), per_second(1)));
  const std::string rounds_note =
      fmt::format("{} rounds of {:.1f} s summed", kRounds, flags_.duration_s * kTurnFraction);
  *row.add_costs() = ToCost(totals[0], "pen cost: holding_pen local", true,
                            cost_trouble.empty() ? rounds_note : cost_trouble);
  *row.add_costs() = ToCost(totals[1], "pen cost: holding_pen bypass", true,
                            cost_trouble.empty() ? rounds_note : cost_trouble);
  report_.add_remarks(fmt::format("after the run, the pen-bypassed pair's volume {}: {}", kVolume,
                                  ConsistencyVerdict(pairs[1]->primary().admin, kVolume)));
  if (!trouble.empty()) return Fail(std::move(row), trouble);
  Add(std::move(row));
}

}  // namespace simarray::bench
