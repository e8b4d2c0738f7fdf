#include "tools/bench/report.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "fmt/format.h"
#include "google/protobuf/util/json_util.h"

namespace simarray::bench {
namespace {

std::string Figure(double value, const std::string& unit) {
  if (unit == "us")
    return value >= 1000 ? fmt::format("{:.2f} ms", value / 1000) : fmt::format("{:.0f} µs", value);
  if (unit == "MB/s") return fmt::format("{:.0f} MB/s", value);
  return fmt::format("{:.0f} {}", value, unit);
}

Row Base(const std::string& workload, const std::string& unit) {
  Row row;
  row.set_workload(workload);
  row.set_unit(unit);
  return row;
}

// Display width of UTF-8 text (µ and × are two bytes, one column).
size_t Width(const std::string& s) {
  return std::count_if(s.begin(), s.end(), [](char c) { return (c & 0xC0) != 0x80; });
}

std::string Pad(const std::string& s, size_t width) {
  return s + std::string(width > Width(s) ? width - Width(s) : 0, ' ');
}

// Header, a rule, and the lines, each column as wide as its widest cell.
std::string Grid(const std::vector<std::string>& header,
                 const std::vector<std::vector<std::string>>& cells) {
  std::vector<size_t> widths(header.size());
  for (size_t c = 0; c < header.size(); ++c) {
    widths[c] = Width(header[c]);
    for (const auto& line : cells) widths[c] = std::max(widths[c], Width(line[c]));
  }
  auto format_line = [&](const std::vector<std::string>& line) {
    std::string out = "|";
    for (size_t c = 0; c < line.size(); ++c) out += " " + Pad(line[c], widths[c]) + " |";
    return out + "\n";
  };
  std::string out = format_line(header);
  out += "|";
  for (size_t w : widths) out += std::string(w + 2, '-') + "|";
  out += "\n";
  for (const auto& line : cells) out += format_line(line);
  return out;
}

}  // namespace

double Median(std::vector<double> values) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t n = values.size();
  return n % 2 ? values[n / 2] : (values[n / 2 - 1] + values[n / 2]) / 2;
}

std::string AtMostTarget(double ratio) { return fmt::format("≤ {:g}×", ratio); }
std::string AtLeastTarget(double ratio) { return fmt::format("≥ {:g}×", ratio); }
std::string CostTarget(double max_cost) { return fmt::format("cost ≤ {:.0f}%", max_cost * 100); }

Row MakeLatencyRow(const std::string& workload, double simarray_us, double baseline_us,
                   double max_ratio) {
  Row row = Base(workload, "us");
  row.set_simarray_value(simarray_us);
  row.set_baseline_value(baseline_us);
  row.set_simarray(Figure(simarray_us, "us"));
  row.set_baseline(Figure(baseline_us, "us"));
  const double ratio = baseline_us > 0 ? simarray_us / baseline_us : 0;
  row.set_ratio_value(ratio);
  row.set_ratio(fmt::format("{:.2f}×", ratio));
  if (max_ratio > 0) {
    row.set_target(AtMostTarget(max_ratio));
    row.set_verdict(ratio <= max_ratio ? "met" : "missed");
  } else {
    row.set_target("—");
    row.set_verdict("no target");
  }
  return row;
}

Row MakeThroughputRow(const std::string& workload, const std::string& unit, double simarray,
                      double baseline, double min_ratio) {
  Row row = Base(workload, unit);
  row.set_simarray_value(simarray);
  row.set_baseline_value(baseline);
  row.set_simarray(Figure(simarray, unit));
  row.set_baseline(Figure(baseline, unit));
  const double ratio = baseline > 0 ? simarray / baseline : 0;
  row.set_ratio_value(ratio);
  row.set_ratio(fmt::format("{:.2f}×", ratio));
  if (min_ratio > 0) {
    row.set_target(AtLeastTarget(min_ratio));
    row.set_verdict(ratio >= min_ratio ? "met" : "missed");
  } else {
    row.set_target("—");
    row.set_verdict("no target");
  }
  return row;
}

Row MakeCostRow(const std::string& workload, double with_us, double without_us,
                const std::vector<double>& round_costs, double max_cost) {
  Row row = Base(workload, "us");
  row.set_simarray_value(with_us);
  row.set_baseline_value(without_us);
  row.set_simarray(fmt::format("{:.0f} µs CPU/write (pen)", with_us));
  row.set_baseline(fmt::format("{:.0f} µs CPU/write (bypassed)", without_us));
  row.set_target(CostTarget(max_cost));
  if (round_costs.empty()) {
    row.set_ratio("—");
    row.set_verdict("not measured");
    return row;
  }
  std::vector<double> sorted = round_costs;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = n % 2 ? sorted[n / 2] : (sorted[n / 2 - 1] + sorted[n / 2]) / 2;
  const double spread = sorted.back() - sorted.front();
  row.set_ratio_value(median);
  row.set_ratio(fmt::format("cost {:+.1f}%", median * 100));
  const bool all_within = sorted.back() <= max_cost;
  const bool all_over = sorted.front() > max_cost;
  if (spread > 2 * max_cost && !all_within && !all_over) {
    row.set_verdict(fmt::format("inconclusive (rounds {:.0f} points apart)", spread * 100));
  } else {
    row.set_verdict(median <= max_cost ? "met" : "missed");
  }
  return row;
}

Row MakeFlatnessRow(const std::string& workload, const std::string& what, double value_us,
                    const std::string& reference, double reference_us,
                    const std::vector<double>& round_ratios, double max_deviation) {
  Row row = Base(workload, "us");
  row.set_simarray_value(value_us);
  row.set_baseline_value(reference_us);
  row.set_simarray(fmt::format("{:.0f} µs CPU/write ({})", value_us, what));
  row.set_baseline(fmt::format("{:.0f} µs CPU/write ({})", reference_us, reference));
  row.set_target(fmt::format("within ±{:.0f}%", max_deviation * 100));
  if (round_ratios.empty()) {
    row.set_ratio("—");
    row.set_verdict("not measured");
    return row;
  }
  std::vector<double> sorted = round_ratios;
  std::sort(sorted.begin(), sorted.end());
  const size_t n = sorted.size();
  const double median = Median(sorted);
  const double spread = sorted.back() - sorted.front();
  auto within = [&](double r) { return std::abs(r - 1) <= max_deviation; };
  const auto inside = std::count_if(sorted.begin(), sorted.end(), within);
  row.set_ratio_value(median);
  row.set_ratio(fmt::format("{:.2f}×", median));
  if (spread > 2 * max_deviation && inside != 0 && inside != static_cast<long>(n)) {
    row.set_verdict(fmt::format("inconclusive (rounds {:.0f} points apart)", spread * 100));
  } else {
    row.set_verdict(within(median) ? "flat" : "not flat");
  }
  return row;
}

Row MakeBaselineOnlyRow(const std::string& workload, const std::string& unit, double baseline,
                        const std::string& why, const std::string& target) {
  Row row = Base(workload, unit);
  row.set_baseline_value(baseline);
  row.set_simarray("n/a (" + why + ")");
  row.set_baseline(Figure(baseline, unit));
  row.set_ratio("—");
  row.set_target(target);
  row.set_verdict("not measured");
  return row;
}

Row MakeSkippedRow(const std::string& workload, const std::string& why, const std::string& target) {
  Row row = Base(workload, "");
  row.set_simarray("skipped");
  row.set_baseline("skipped");
  row.set_ratio("—");
  row.set_target(target);
  row.set_verdict("not measured");
  row.set_note(why);
  return row;
}

std::string FormatTable(const Report& report) {
  const std::vector<std::string> header = {"workload", "simarray", "baseline",
                                           "ratio",    "target",   ""};
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> notes;
  for (const Row& row : report.rows()) {
    std::string verdict = row.verdict();
    if (!row.note().empty()) {
      notes.push_back(row.note());
      verdict += fmt::format(" [{}]", notes.size());
    }
    cells.push_back(
        {row.workload(), row.simarray(), row.baseline(), row.ratio(), row.target(), verdict});
  }
  std::string out = Grid(header, cells);
  for (size_t i = 0; i < notes.size(); ++i) out += fmt::format("[{}] {}\n", i + 1, notes[i]);
  out += FormatCostTable(report);
  for (const std::string& remark : report.remarks()) out += remark + "\n";
  return out;
}

std::string FormatCostTable(const Report& report) {
  const std::vector<std::string> header = {
      "cost per write", "writes",      "primary µs",       "mirror µs",          "pair µs",
      "client µs",      "baseline µs", "copied KiB P / M", "destaged KiB P / M", "records/msg"};
  std::vector<std::vector<std::string>> cells;
  std::vector<std::string> notes;
  // Baselines' CPU: what each covers, once, with the runs it belongs to.
  std::vector<std::pair<std::string, std::string>> covers;
  std::vector<std::string> seen;
  auto us = [](bool has, double value) { return has ? fmt::format("{:.0f}", value) : "n/a"; };
  auto kib = [](double bytes) { return fmt::format("{:.1f}", bytes / 1024); };
  for (const Row& row : report.rows()) {
    for (const Cost& cost : row.costs()) {
      if (std::find(seen.begin(), seen.end(), cost.run()) != seen.end()) continue;
      seen.push_back(cost.run());
      std::string run = cost.run();
      if (!cost.note().empty()) {
        notes.push_back(cost.note());
        run += fmt::format(" [{}]", static_cast<char>('a' + notes.size() - 1));
      }
      std::string baseline = "—";
      if (cost.has_baseline_cpu_us()) {
        auto it = std::find_if(covers.begin(), covers.end(), [&](const auto& c) {
          return c.first == cost.baseline_cpu_covers();
        });
        if (it == covers.end()) {
          covers.emplace_back(cost.baseline_cpu_covers(), cost.run());
        } else {
          it->second += ", " + cost.run();
        }
        baseline = us(true, cost.baseline_cpu_us());
      }
      if (cost.writes() == 0) {
        cells.push_back({run, "0", "—", "—", "—", "—", baseline, "—", "—", "—"});
        continue;
      }
      cells.push_back({
          run,
          fmt::format("{}", cost.writes()),
          us(cost.has_primary_cpu_us(), cost.primary_cpu_us()),
          us(cost.has_mirror_cpu_us(), cost.mirror_cpu_us()),
          us(cost.has_pair_cpu_us(), cost.pair_cpu_us()),
          cost.has_client_cpu_us() ? us(true, cost.client_cpu_us()) : "—",
          baseline,
          kib(cost.primary_bytes_copied()) + " / " +
              (cost.has_mirror_bytes_copied() ? kib(cost.mirror_bytes_copied()) : "n/a"),
          kib(cost.primary_bytes_destaged()) + " / " +
              (cost.has_mirror_bytes_destaged() ? kib(cost.mirror_bytes_destaged()) : "n/a"),
          cost.has_records_per_message() ? fmt::format("{:.2f}", cost.records_per_message()) : "—",
      });
    }
  }
  if (cells.empty()) return "";
  std::string out = "\n" + Grid(header, cells);
  out +=
      "CPU: user + system µs per write of each daemon (/proc/PID/stat; n/a for a pair the bench "
      "did not start), from the measured window's start until its writes were done and both "
      "sides flushed, gRPC and all background work included; client: the bench process.\n"
      "copied, destaged: each side's cache.bytes_copied and cache.bytes_destaged per write "
      "(primary / mirror); records/msg: the primary's Ship records per Ship message.\n";
  for (const auto& [what, runs] : covers) out += fmt::format("baseline µs ({}): {}\n", runs, what);
  for (size_t i = 0; i < notes.size(); ++i) {
    out += fmt::format("[{}] {}\n", static_cast<char>('a' + i), notes[i]);
  }
  return out;
}

std::string FormatJson(const Report& report) {
  google::protobuf::util::JsonPrintOptions options;
  options.add_whitespace = true;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  (void)google::protobuf::util::MessageToJsonString(report, &out, options);
  return out;
}

}  // namespace simarray::bench
