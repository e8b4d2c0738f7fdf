#pragma once
// The bench's table: workload | simarray | baseline | ratio | target, plus a verdict per row
// and notes under the table, and under it what each run cost per write (CPU, bytes copied and
// destaged, records per Ship message); or the same rows as JSON (bench.proto's Report).
// Rows are built by the Make* functions from measured numbers, so the ratio and verdict of
// every row follow one rule per kind. Pure formatting; thread-compatible.

#include <string>
#include <vector>

#include "bench.pb.h"

namespace simarray::bench {

// The median of `values` (0 when empty).
double Median(std::vector<double> values);

// Targets as the table prints them: "≤ 1.3×", "≥ 0.5×", "cost ≤ 5%".
std::string AtMostTarget(double ratio);
std::string AtLeastTarget(double ratio);
std::string CostTarget(double max_cost);

// Latency: ratio = simarray / baseline; met when ratio <= `max_ratio` (0: no target).
Row MakeLatencyRow(const std::string& workload, double simarray_us, double baseline_us,
                   double max_ratio);
// Throughput (`unit` "IOPS" or "MB/s"): ratio = simarray / baseline; met when >= `min_ratio`
// (0: no target).
Row MakeThroughputRow(const std::string& workload, const std::string& unit, double simarray,
                      double baseline, double min_ratio);
// The holding pen's cost in CPU: `with_us` and `without_us` are the pair's CPU µs per write
// with the pen and with it bypassed, over all rounds; `round_costs` holds each round's own
// cost, (with - without) / without as a fraction. The row's cost is their median; met when it
// is <= `max_cost`. When the rounds' costs are more than twice `max_cost` apart (their spread,
// max - min) and do not all fall on one side of `max_cost`, the verdict is "inconclusive",
// naming that spread: the machine's noise then hides the answer.
Row MakeCostRow(const std::string& workload, double with_us, double without_us,
                const std::vector<double>& round_costs, double max_cost);
// Whether a cost stays flat: `value_us` and `reference_us` are the pair's CPU µs per write of
// the run under test and of the reference run, over all rounds (`what` and `reference` name
// them in the cells: "64 GiB volume", "64 MiB volume"); `round_ratios` holds each round's own
// value / reference. The row's ratio is their median; "flat" when it is within
// `max_deviation` of 1, "not flat" otherwise. When the rounds' ratios are more than twice
// `max_deviation` apart and some fall inside the band and some outside, the verdict is
// "inconclusive (rounds N points apart)": the machine's noise then hides the answer.
Row MakeFlatnessRow(const std::string& workload, const std::string& what, double value_us,
                    const std::string& reference, double reference_us,
                    const std::vector<double>& round_ratios, double max_deviation);
// A row whose simarray figure cannot be measured (`why`), with the baseline that was.
Row MakeBaselineOnlyRow(const std::string& workload, const std::string& unit, double baseline,
                        const std::string& why, const std::string& target);
// A row not measured at all (tool missing, workload failed).
Row MakeSkippedRow(const std::string& workload, const std::string& why, const std::string& target);

// The table with its verdict column and a numbered note per row that has one, then the
// cost per write table (FormatCostTable), then the remarks.
std::string FormatTable(const Report& report);
// One line per measured run that has a Cost (rows of one run share it), with a legend and
// a lettered note per run that has one; "" when no row has a cost.
std::string FormatCostTable(const Report& report);
std::string FormatJson(const Report& report);

}  // namespace simarray::bench
