// The NBD row: fio's nbd engine, 4 KiB random writes at queue depth 32, against the pair's
// sync-mirrored NBD host adaptor and against nbdkit's memory plugin.
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "fmt/format.h"
#include "tools/bench/bench.h"
#include "tools/bench/cost.h"
#include "tools/bench/nbd_workload.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"

namespace simarray::bench {

void Bench::NbdRandomWrite() {
  const std::string workload = "NBD 4 KiB random write QD32 (fio), IOPS";
  const std::string target = AtLeastTarget(kMinNbdRatio);
  const std::string nbdkit = FindTool("nbdkit");
  std::vector<std::string> missing;
  if (FindTool("fio").empty()) missing.push_back("fio");
  if (nbdkit.empty()) missing.push_back("nbdkit");
  if (!missing.empty()) {
    return Add(MakeSkippedRow(workload,
                              absl::StrCat("not installed: ", absl::StrJoin(missing, ", "),
                                           " (scripts/install-deps.sh installs both)"),
                              target));
  }
  if (target_.nbd.empty()) {
    return Add(
        MakeSkippedRow(workload, "no NBD host adaptor to measure (give --primary-nbd)", target));
  }
  Say("NBD: fio's nbd engine against the sync-mirrored NBD host adaptor, then nbdkit memory");
  FioOptions fio;
  fio.size = kVolumeSize;
  fio.depth = 32;
  fio.warmup = warmup();
  fio.duration = duration();
  fio.label = "fio nbd randwrite 4 KiB QD32 -> simarray";
  fio.uri = fmt::format("nbd://{}/{}", target_.nbd, kNbdVolume);
  CostSample before;
  fio.at_window_start = [&] { before = TakeSample(target_.probe); };
  auto array = RunFio(fio);
  if (!array.ok()) return Fail(MakeSkippedRow(workload, "", target), array.status().ToString());
  const std::string settle_trouble = Settle(target_.probe);
  const CostDelta delta = Difference(before, TakeSample(target_.probe));
  auto memory = NbdkitMemory::Start(nbdkit, kVolumeSize);
  if (!memory.ok()) return Fail(MakeSkippedRow(workload, "", target), memory.status().ToString());
  fio.label = "fio nbd randwrite 4 KiB QD32 -> nbdkit memory";
  fio.uri = (*memory)->uri();
  // nbdkit's CPU over the same span of its run, per write fio counted in the window.
  double nbdkit_cpu_at_start = -1;
  fio.at_window_start = [&] { nbdkit_cpu_at_start = ProcessCpuSeconds((*memory)->pid()); };
  auto baseline = RunFio(fio);
  if (!baseline.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), baseline.status().ToString());
  }
  const double nbdkit_cpu = ProcessCpuSeconds((*memory)->pid());
  const double baseline_writes = baseline->iops * fio.duration.count();
  Row row = MakeThroughputRow(workload, "IOPS", array->iops, baseline->iops, kMinNbdRatio);
  Cost cost =
      ToCost(delta, "NBD 4 KiB random write QD32 (fio)", /*client_is_bench=*/false, settle_trouble);
  SetBaselineCpu(&cost,
                 nbdkit_cpu_at_start >= 0 && nbdkit_cpu >= 0 && baseline_writes > 0
                     ? (nbdkit_cpu - nbdkit_cpu_at_start) / baseline_writes * 1e6
                     : -1,
                 "nbdkit memory, per write: the server process only (not fio)");
  *row.add_costs() = std::move(cost);
  row.set_note(
      fmt::format("fio completion latency p50 {:.0f} µs vs {:.0f} µs; baseline: nbdkit "
                  "memory plugin, no mirror",
                  array->p50_us, baseline->p50_us));
  Add(std::move(row));
}

void Bench::NbdFlushWrite() {
  const std::string workload = "NBD 4 KiB random write QD1, FLUSH every 16 (fio), IOPS";
  const std::string nbdkit = FindTool("nbdkit");
  if (FindTool("fio").empty() || nbdkit.empty()) {
    return Add(MakeSkippedRow(workload, "fio or nbdkit not installed", ""));
  }
  if (target_.nbd.empty()) {
    return Add(MakeSkippedRow(workload, "no NBD host adaptor to measure (give --primary-nbd)", ""));
  }
  Say("NBD with flushes: fio, a FLUSH after every 16th write, against simarray, then nbdkit");
  FioOptions fio;
  fio.size = kVolumeSize;
  fio.depth = 1;
  fio.flush_every = 16;
  fio.warmup = warmup();
  fio.duration = duration();
  fio.label = "fio nbd randwrite 4 KiB QD1 + FLUSH -> simarray";
  fio.uri = fmt::format("nbd://{}/{}", target_.nbd, kNbdVolume);
  auto array = RunFio(fio);
  if (!array.ok()) return Fail(MakeSkippedRow(workload, "", ""), array.status().ToString());
  auto memory = NbdkitMemory::Start(nbdkit, kVolumeSize);
  if (!memory.ok()) return Fail(MakeSkippedRow(workload, "", ""), memory.status().ToString());
  fio.label = "fio nbd randwrite 4 KiB QD1 + FLUSH -> nbdkit memory";
  fio.uri = (*memory)->uri();
  auto baseline = RunFio(fio);
  if (!baseline.ok()) return Fail(MakeSkippedRow(workload, "", ""), baseline.status().ToString());
  Row row = MakeThroughputRow(workload, "IOPS", array->iops, baseline->iops, 0);
  row.set_note(fmt::format(
      "no target: a FLUSH on a persistent cache syncs the cache region only (docs/write-path.md); "
      "fio completion latency p50 {:.0f} µs vs {:.0f} µs, p99 {:.0f} µs vs {:.0f} µs; baseline: "
      "nbdkit memory plugin, no mirror",
      array->p50_us, baseline->p50_us, array->p99_us, baseline->p99_us));
  Add(std::move(row));
}

}  // namespace simarray::bench
