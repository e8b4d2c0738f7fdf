#include "tools/bench/bench.h"

#include <unistd.h>

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
  }
  if (absl::Status s = PrepareVolume(target_.admin, target_.host, kVolume); !s.ok()) return s;
  if (!flags_.mirror_admin.empty()) {
    if (absl::Status s = CheckMirrorRole(mirror_admin, kVolume); !s.ok()) return s;
  }
  if (!target_.nbd.empty()) {
    if (absl::Status s = PrepareVolume(target_.admin, target_.host, kNbdVolume); !s.ok()) return s;
  }
  return absl::OkStatus();
}

absl::Status Bench::PrepareVolume(const AdminPort& admin, const std::string& host,
                                  const std::string& volume) {
  if (absl::Status s = EnsureVolume(admin, volume, kVolumeSize); !s.ok()) return s;
  Say(fmt::format("writing volume {} once ({} MiB) and flushing it", volume, kVolumeSize >> 20));
  return Prefill(host, volume, kVolumeSize);
}

LoopResult Bench::Loop(const std::string& label, int depth, const StartRequest& start,
                       double duration_fraction) {
  LoopOptions options;
  options.label = label;
  options.depth = depth;
  options.warmup = warmup();
  options.duration = duration() * duration_fraction;
  return RunClosedLoop(options, start);
}

LoopResult Bench::Writes(const std::string& label, const std::string& host, int depth,
                         std::string* trouble, double duration_fraction) {
  HostWriter writer(host, kVolume, kVolumeSize, kBlock);
  LoopResult result = Loop(
      label, depth, [&](Completion done) { writer.Start(std::move(done)); }, duration_fraction);
  *trouble = Trouble(result, writer.first_error(), writer.unmirrored());
  return result;
}

absl::Status Bench::StartEcho() {
  if (echo_ != nullptr) return absl::OkStatus();
  auto echo = TwoHopEcho::Start(kMaxMessage);
  if (!echo.ok()) return echo.status();
  echo_ = std::move(*echo);
  return absl::OkStatus();
}

LoopResult Bench::Echoes(const std::string& label, int depth, std::string* trouble) {
  EchoClient client(echo_->entry_address(), kBlock, kMaxMessage);
  LoopResult result = Loop(
      label, depth, [&](Completion done) { client.Start(std::move(done)); }, 1.0);
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
