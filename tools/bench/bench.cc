#include "tools/bench/bench.h"

#include <unistd.h>

#include <algorithm>
#include <thread>

#include "fmt/format.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/nbd_workload.h"
#include "tools/bench/progress.h"

namespace simarray::bench {
namespace {

// What went wrong with a loop, for the row's note ("" if nothing).
std::string Trouble(const LoopResult& result, const std::string& first_error, uint64_t unmirrored) {
  std::string out;
  if (result.failed != 0) out = fmt::format("{} requests failed: {}", result.failed, first_error);
  if (unmirrored != 0) {
    out += fmt::format("{}{} writes were acknowledged without the mirror (link down?)",
                       out.empty() ? "" : "; ", unmirrored);
  }
  return out;
}

}  // namespace

Bench::Bench(const BenchFlags& flags, std::string scratch)
    : flags_(flags), scratch_(std::move(scratch)) {}

std::string Bench::DaemonPath() const {
  if (!flags_.simarrayd.empty()) return flags_.simarrayd;
  if (access(SIMARRAYD_BUILT_PATH, X_OK) == 0) return SIMARRAYD_BUILT_PATH;
  const std::string on_path = FindTool("simarrayd");
  return on_path.empty() ? SIMARRAYD_BUILT_PATH : on_path;
}

absl::Status Bench::Prepare() {
  AdminPort mirror_admin{flags_.mirror_admin, ""};
  if (!flags_.primary_admin.empty()) {
    target_.admin.address = flags_.primary_admin;
    target_.host = flags_.primary_host;
    target_.nbd = flags_.primary_nbd;
    for (auto [file, token] : {std::pair{&flags_.primary_token_file, &target_.admin.token},
                               std::pair{&flags_.mirror_token_file, &mirror_admin.token}}) {
      if (file->empty()) continue;
      auto read = ReadToken(*file);
      if (!read.ok()) return read.status();
      *token = *read;
    }
    Say(fmt::format("measuring the pair whose primary is at {} (host adaptor {})",
                    target_.admin.address, target_.host));
    if (absl::Status s = WaitLinkUp(target_.admin, std::chrono::seconds(10)); !s.ok()) return s;
    // No pids: the CPU figures are n/a. The mirror's counters only with --mirror.
    target_.probe.primary_admin = target_.admin;
    target_.probe.primary_host = target_.host;
    target_.probe.mirror_admin = mirror_admin;
  } else {
    PairOptions options;
    options.simarrayd = DaemonPath();
    options.dir = scratch_;
    options.name = "main";
    options.nbd = true;
    Say(fmt::format("starting a primary and a mirror ({}) in {}", options.simarrayd, scratch_));
    auto pair = LaunchedPair::Start(options);
    if (!pair.ok()) return pair.status();
    target_.launched = std::move(*pair);
    target_.admin = target_.launched->primary().admin;
    target_.host = target_.launched->primary().host;
    target_.nbd = target_.launched->primary().nbd;
    target_.probe = target_.launched->Probe();
  }
  if (absl::Status s = PrepareVolume(target_.admin, target_.host, kVolume); !s.ok()) return s;
  if (!flags_.mirror_admin.empty()) {
    if (absl::Status s = CheckMirrorRole(mirror_admin, kVolume); !s.ok()) return s;
  }
  if (!target_.nbd.empty()) {
    if (absl::Status s = PrepareVolume(target_.admin, target_.host, kNbdVolume); !s.ok()) return s;
  }
  if (target_.launched != nullptr) MeasureIdle();
  return absl::OkStatus();
}

void Bench::MeasureIdle() {
  // What the pair spends doing nothing (heartbeats, timers, pollers): the part of the CPU per
  // write that grows with time, not with writes, and so weighs most at QD1.
  constexpr auto kIdle = std::chrono::seconds(1);
  Say("measuring the idle pair's CPU for 1 s");
  const pid_t pids[2] = {target_.probe.primary_pid, target_.probe.mirror_pid};
  double before[2], after[2];
  for (int i = 0; i < 2; ++i) before[i] = ProcessCpuSeconds(pids[i]);
  const auto start = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(kIdle);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  for (int i = 0; i < 2; ++i) after[i] = ProcessCpuSeconds(pids[i]);
  if (before[0] < 0 || before[1] < 0 || after[0] < 0 || after[1] < 0) return;
  report_.set_idle_primary_cpu_ms_per_s((after[0] - before[0]) / seconds * 1e3);
  report_.set_idle_mirror_cpu_ms_per_s((after[1] - before[1]) / seconds * 1e3);
  report_.add_remarks(fmt::format(
      "the sync pair idle, before the workloads ({:.1f} s): primary {:.0f} ms, mirror {:.0f} ms of "
      "CPU per second (/proc/PID/stat, 10 ms ticks)",
      seconds, report_.idle_primary_cpu_ms_per_s(), report_.idle_mirror_cpu_ms_per_s()));
}

absl::Status Bench::PrepareVolume(const AdminPort& admin, const std::string& host,
                                  const std::string& volume) {
  if (absl::Status s = EnsureVolume(admin, volume, kVolumeSize); !s.ok()) return s;
  Say(fmt::format("writing volume {} once ({} MiB) and flushing it", volume, kVolumeSize >> 20));
  return Prefill(host, volume, kVolumeSize);
}

LoopResult Bench::Loop(const std::string& label, int depth, const StartRequest& start,
                       double duration_fraction, std::function<void(uint64_t)> at_window_start) {
  LoopOptions options;
  options.label = label;
  options.depth = depth;
  options.warmup = warmup();
  options.duration = duration() * duration_fraction;
  options.at_window_start = std::move(at_window_start);
  return RunClosedLoop(options, start);
}

LoopResult Bench::CostedLoop(const std::string& label, int depth, const StartRequest& start,
                             double duration_fraction, const PairProbe& pair,
                             const std::function<std::string()>& settle, RunCost* cost) {
  CostSample before;
  LoopResult result =
      Loop(label, depth, start, duration_fraction, [&](uint64_t) { before = TakeSample(pair); });
  cost->note = settle();
  const CostSample after = TakeSample(pair);
  cost->delta = Difference(before, after);
  return result;
}

LoopResult Bench::Writes(const std::string& label, const std::string& host, int depth,
                         std::string* trouble, double duration_fraction, const PairProbe* pair,
                         RunCost* cost) {
  HostWriter writer(host, kVolume, kVolumeSize, kBlock);
  return Writes(label, writer, depth, trouble, duration_fraction, pair, cost);
}

LoopResult Bench::Writes(const std::string& label, HostWriter& writer, int depth,
                         std::string* trouble, double duration_fraction, const PairProbe* pair,
                         RunCost* cost) {
  const StartRequest start = [&](Completion done) { writer.Start(std::move(done)); };
  LoopResult result =
      pair != nullptr && cost != nullptr
          ? CostedLoop(
                label, depth, start, duration_fraction, *pair, [&] { return Settle(*pair); }, cost)
          : Loop(label, depth, start, duration_fraction);
  *trouble = Trouble(result, writer.first_error(), writer.unmirrored());
  return result;
}

std::vector<double> Bench::Contender::RatiosTo(const Contender& reference) const {
  std::vector<double> out;
  for (size_t i = 0; i < round_cpu_us.size() && i < reference.round_cpu_us.size(); ++i) {
    if (round_cpu_us[i] > 0 && reference.round_cpu_us[i] > 0) {
      out.push_back(round_cpu_us[i] / reference.round_cpu_us[i]);
    }
  }
  return out;
}

std::string Bench::Contender::RoundsAgainst(const Contender& reference) const {
  std::string rounds;
  for (size_t i = 0; i < round_cpu_us.size() && i < reference.round_cpu_us.size(); ++i) {
    rounds += fmt::format("{}{:.0f}/{:.0f}", rounds.empty() ? "" : ", ", round_cpu_us[i],
                          reference.round_cpu_us[i]);
  }
  return rounds;
}

double Bench::SpreadPoints(std::vector<double> ratios) {
  if (ratios.empty()) return 0;
  const auto [low, high] = std::minmax_element(ratios.begin(), ratios.end());
  return (*high - *low) * 100;
}

void Bench::RunRounds(std::vector<Contender>& contenders, int rounds, double turn_fraction) {
  const int n = static_cast<int>(contenders.size());
  for (int round = 0; round < rounds; ++round) {
    for (Contender& c : contenders) c.round_cpu_us.push_back(-1);
    for (int turn = 0; turn < n; ++turn) {
      Contender& c = contenders[round % 2 == 0 ? turn : n - 1 - turn];
      std::string trouble;
      RunCost cost;
      const LoopResult result = Writes(fmt::format("{}, round {}/{}", c.name, round + 1, rounds),
                                       *c.writer, 32, &trouble, turn_fraction, &c.probe, &cost);
      c.completed += result.completed;
      c.seconds += result.seconds;
      c.total += cost.delta;
      c.round_cpu_us.back() = cost.delta.PairCpuUsPerWrite();
      for (const std::string& t : {trouble, cost.note}) {
        if (!t.empty()) c.trouble += (c.trouble.empty() ? "" : "; ") + t;
      }
    }
  }
}

absl::Status Bench::StartEcho() {
  if (echo_ != nullptr) return absl::OkStatus();
  auto echo = TwoHopEcho::Start(kMaxMessage);
  if (!echo.ok()) return echo.status();
  echo_ = std::move(*echo);
  return absl::OkStatus();
}

LoopResult Bench::Echoes(const std::string& label, int depth, std::string* trouble,
                         double* cpu_us_per_call) {
  EchoClient client(echo_->entry_address(), kBlock, kMaxMessage);
  // The bench process's CPU from the window's start to the last call's end: the client and
  // both echo servers run in it, and nothing else does meanwhile.
  double cpu_at_start = -1;
  uint64_t calls_at_start = 0;
  LoopResult result = Loop(
      label, depth, [&](Completion done) { client.Start(std::move(done)); }, 1.0,
      [&](uint64_t completed_all) {
        calls_at_start = completed_all;
        cpu_at_start = SelfCpuSeconds();
      });
  if (cpu_us_per_call != nullptr) {
    const uint64_t calls = result.completed_all - calls_at_start;
    *cpu_us_per_call =
        cpu_at_start >= 0 && calls > 0 ? (SelfCpuSeconds() - cpu_at_start) / calls * 1e6 : -1;
  }
  *trouble = Trouble(result, "echo call failed", 0);
  return result;
}

void Bench::Add(Row row) { *report_.add_rows() = std::move(row); }

void Bench::Fail(Row row, const std::string& why) {
  row.set_verdict("failed");
  row.set_note(why);
  Add(std::move(row));
  failed_ = true;
}

void Bench::CheckMirror() {
  Say("checking that the mirror holds what the bench wrote");
  for (const std::string volume : {kVolume, kNbdVolume}) {
    if (volume == kNbdVolume && target_.nbd.empty()) continue;
    report_.add_remarks(fmt::format("after the run, volume {}: {}", volume,
                                    ConsistencyVerdict(target_.admin, volume)));
  }
}

}  // namespace simarray::bench
