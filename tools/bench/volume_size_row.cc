// The volume-size row: whether what a write costs depends on the size of its volume. On a fresh
// sync pair, the same 4 KiB QD32 writes at random offsets of a 64 MiB volume (written once and
// cached, like the other rows' volume) and of a 64 GiB sparse one (never written: nearly every
// write goes to a track the 256 MiB cache does not hold), compared by the pair's CPU per write
// over alternating rounds. A third run, on the big volume's first 64 MiB written once like the
// small volume, separates the volume's size from the writes' spread: it has the big volume's
// size and the small one's working set.
#include <algorithm>
#include <filesystem>
#include <vector>

#include "fmt/format.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/bench.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"
#include "tools/bench/touched_blocks.h"

namespace simarray::bench {
namespace {

constexpr int kRounds = 3;
constexpr double kTurnFraction = 0.25;  // of --duration-s, per run and round
constexpr uint64_t kSampledBlocks = 256;

}  // namespace

void Bench::VolumeSizeCost() {
  const std::string workload = "64 GiB sparse volume vs 64 MiB, sync 4 KiB QD32";
  const std::string target = fmt::format("within ±{:.0f}%", kMaxFlatDeviation * 100);
  if (!OwnPairs()) {
    Add(MakeSkippedRow(workload, "needs a pair the bench starts itself (not with --primary)",
                       target));
    return;
  }
  Say("volume size: a fresh pair with a 64 MiB volume and a 64 GiB sparse one");
  StopMeasuredPair();
  PairOptions options;
  options.simarrayd = DaemonPath();
  options.dir = scratch_;
  options.name = "size";
  auto pair = LaunchedPair::Start(options);
  if (!pair.ok()) return Fail(MakeSkippedRow(workload, "", target), pair.status().ToString());
  const DaemonAddresses primary = (*pair)->primary();
  if (absl::Status s = PrepareVolume(primary.admin, primary.host, kVolume); !s.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), s.ToString());
  }
  if (absl::Status s = EnsureVolume(primary.admin, kBigVolume, kBigVolumeSize); !s.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), s.ToString());
  }
  Say(fmt::format("writing the first {} MiB of volume {} once and flushing it", kVolumeSize >> 20,
                  kBigVolume));
  if (absl::Status s = Prefill(primary.host, kBigVolume, kVolumeSize); !s.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), s.ToString());
  }

  std::vector<Contender> runs(3);
  runs[0].name = "64 MiB volume";
  runs[0].writer = std::make_unique<HostWriter>(primary.host, kVolume, kVolumeSize, kBlock);
  runs[1].name = "64 GiB volume";
  runs[1].writer = std::make_unique<HostWriter>(primary.host, kBigVolume, kBigVolumeSize, kBlock);
  runs[2].name = "64 GiB volume, first 64 MiB";
  runs[2].writer = std::make_unique<HostWriter>(primary.host, kBigVolume, kVolumeSize, kBlock);
  for (Contender& c : runs) c.probe = (*pair)->Probe();
  RunRounds(runs, kRounds, kTurnFraction);
  const Contender& small = runs[0];
  const Contender& big = runs[1];
  const Contender& control = runs[2];

  const std::vector<double> ratios = big.RatiosTo(small);
  Row row = MakeFlatnessRow(workload, "64 GiB", big.total.PairCpuUsPerWrite(), "64 MiB",
                            small.total.PairCpuUsPerWrite(), ratios, kMaxFlatDeviation);
  row.set_note(fmt::format(
      "fresh pair; ratio = median of the rounds' 64 GiB / 64 MiB pair CPU per write; IOPS {:.0f} "
      "(64 GiB) vs {:.0f} (64 MiB); per round (µs 64 GiB/64 MiB): {}; spread {:.1f} points; "
      "primary alone {:.0f} µs vs {:.0f} µs; control, the 64 GiB volume's first 64 MiB: {:.0f} µs "
      "CPU/write ({:.2f}× the 64 MiB volume's), {:.0f} IOPS",
      big.PerSecond(), small.PerSecond(), big.RoundsAgainst(small), SpreadPoints(ratios),
      big.total.PrimaryCpuUsPerWrite(), small.total.PrimaryCpuUsPerWrite(),
      control.total.PairCpuUsPerWrite(), Median(control.RatiosTo(small)), control.PerSecond()));
  const std::string summed =
      fmt::format("{} rounds of {:.1f} s summed", kRounds, flags_.duration_s * kTurnFraction);
  std::string trouble;
  for (const Contender& c : runs) {
    *row.add_costs() =
        ToCost(c.total, "volume size: " + c.name, true, c.trouble.empty() ? summed : c.trouble);
    if (!c.trouble.empty()) trouble += (trouble.empty() ? "" : "; ") + c.name + ": " + c.trouble;
  }

  // CheckConsistency digests every track of a volume on both sides: fine for 64 MiB, but for
  // the big volume it would read 64 GiB per side. That one gets a bounded read-back instead.
  Say("checking that this pair's mirror holds what the volume-size row wrote");
  report_.add_remarks(fmt::format("after the run, the volume-size pair's volume {}: {}", kVolume,
                                  ConsistencyVerdict(primary.admin, kVolume)));
  for (const Contender* c : {&big, &control}) {
    report_.add_remarks(fmt::format(
        "after the run, the volume-size pair's volume {} ({} run): {}", kBigVolume, c->name,
        TouchedBlocksVerdict(*c->writer, primary.host, (*pair)->mirror().host, kSampledBlocks)));
  }
  runs.clear();  // the writers' channels go before the pair
  pair->reset();
  std::error_code ec;  // the big volume's touched tracks: a few GB the later rows do not need
  for (const char* side : {"primary", "mirror"}) {
    std::filesystem::remove_all(fmt::format("{}/{}-{}", scratch_, options.name, side), ec);
  }
  if (!trouble.empty()) return Fail(std::move(row), trouble);
  Add(std::move(row));
}

}  // namespace simarray::bench
