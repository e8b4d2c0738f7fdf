// The track-size rows: whether what a 4 KiB write costs depends on the track size. Three fresh
// sync pairs that differ only in track_size (16K, 64K, 256K), each with the 64 MiB volume
// written once, take the same 4 KiB QD32 writes in alternating rounds; each of 16K and 256K
// is compared with 64K (the shipped configs') by the pair's CPU per write. The write path is
// meant to make the cost independent of the track size: an in-place commit copies only the
// written range and the destage writes only the dirty 4 KiB blocks (docs/write-path.md); the
// cost table's copied and destaged KiB per write show whether it does.
#include <algorithm>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fmt/format.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/bench.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"

namespace simarray::bench {
namespace {

constexpr int kRounds = 3;
constexpr double kTurnFraction = 0.25;  // of --duration-s, per pair and round

// "16K" -> "16 KiB tracks".
std::string Tracks(const std::string& track_size) {
  return absl::StrCat(track_size.substr(0, track_size.size() - 1), " KiB tracks");
}

std::string Workload(const std::string& track_size) {
  return absl::StrCat(Tracks(track_size), " vs ", Tracks(kReferenceTrackSize), ", sync 4 KiB QD32");
}

}  // namespace

void Bench::TrackSizeCost() {
  const std::string target = fmt::format("within ±{:.0f}%", kMaxFlatDeviation * 100);
  auto skip_all = [&](const std::string& why, bool failed) {
    for (const char* size : kTrackSizes) {
      if (std::string(size) == kReferenceTrackSize) continue;
      Row row = MakeSkippedRow(Workload(size), failed ? "" : why, target);
      if (failed) {
        Fail(std::move(row), why);
      } else {
        Add(std::move(row));
      }
    }
  };
  if (!OwnPairs()) {
    return skip_all("needs the pairs the bench starts itself (not with --primary)", false);
  }
  Say("track size: three fresh pairs with track_size 16K, 64K and 256K");
  StopMeasuredPair();
  std::vector<std::unique_ptr<LaunchedPair>> pairs;
  std::vector<Contender> runs;
  size_t reference = 0;
  for (const char* size : kTrackSizes) {
    PairOptions options;
    options.simarrayd = DaemonPath();
    options.dir = scratch_;
    options.name = absl::StrCat("tracks-", size);
    options.track_size = size;
    auto pair = LaunchedPair::Start(options);
    if (!pair.ok()) return skip_all(pair.status().ToString(), true);
    const DaemonAddresses& primary = (*pair)->primary();
    if (absl::Status s = PrepareVolume(primary.admin, primary.host, kVolume); !s.ok()) {
      return skip_all(s.ToString(), true);
    }
    if (std::string(size) == kReferenceTrackSize) reference = runs.size();
    Contender& c = runs.emplace_back();
    c.name = Tracks(size);
    c.writer = std::make_unique<HostWriter>(primary.host, kVolume, kVolumeSize, kBlock);
    c.probe = (*pair)->Probe();
    pairs.push_back(std::move(*pair));
  }
  RunRounds(runs, kRounds, kTurnFraction);

  const Contender& ref = runs[reference];
  const std::string summed =
      fmt::format("{} rounds of {:.1f} s summed", kRounds, flags_.duration_s * kTurnFraction);
  auto kib = [](double bytes) { return fmt::format("{:.1f}", bytes / 1024); };
  auto bytes_note = [&](const Contender& c) {
    const CostDelta& d = c.total;
    const double w = d.writes ? static_cast<double>(d.writes) : 1;
    return fmt::format("copied {} / {} KiB, destaged {} / {} KiB per write (P / M)",
                       kib(d.primary_bytes_copied / w), kib(d.mirror_bytes_copied / w),
                       kib(d.primary_bytes_destaged / w), kib(d.mirror_bytes_destaged / w));
  };
  for (size_t i = 0; i < runs.size(); ++i) {
    if (i == reference) continue;
    const Contender& c = runs[i];
    const std::vector<double> ratios = c.RatiosTo(ref);
    Row row = MakeFlatnessRow(Workload(kTrackSizes[i]), c.name, c.total.PairCpuUsPerWrite(),
                              ref.name, ref.total.PairCpuUsPerWrite(), ratios, kMaxFlatDeviation);
    row.set_note(fmt::format(
        "fresh pairs differing in track_size only; ratio = median of the rounds' pair CPU per "
        "write, {} / {}; IOPS {:.0f} vs {:.0f}; per round (µs): {}; spread {:.1f} points; primary "
        "alone {:.0f} µs vs {:.0f} µs; {}: {}; {}: {}",
        c.name, ref.name, c.PerSecond(), ref.PerSecond(), c.RoundsAgainst(ref),
        SpreadPoints(ratios), c.total.PrimaryCpuUsPerWrite(), ref.total.PrimaryCpuUsPerWrite(),
        c.name, bytes_note(c), ref.name, bytes_note(ref)));
    *row.add_costs() =
        ToCost(c.total, "track size: " + c.name, true, c.trouble.empty() ? summed : c.trouble);
    *row.add_costs() = ToCost(ref.total, "track size: " + ref.name, true,
                              ref.trouble.empty() ? summed : ref.trouble);
    const std::string trouble =
        c.trouble + (c.trouble.empty() || ref.trouble.empty() ? "" : "; ") + ref.trouble;
    if (!trouble.empty()) {
      Fail(std::move(row), trouble);
    } else {
      Add(std::move(row));
    }
  }
  Say("checking that the track-size pairs' mirrors hold what the bench wrote");
  for (size_t i = 0; i < pairs.size(); ++i) {
    report_.add_remarks(fmt::format("after the run, the {} pair's volume {}: {}", runs[i].name,
                                    kVolume,
                                    ConsistencyVerdict(pairs[i]->primary().admin, kVolume)));
  }
  runs.clear();  // the writers' channels go before the pairs
}

}  // namespace simarray::bench
