// The emulated link's row (docs/link-emulation.md): a fresh async pair whose link carries
// 100 Mbit/s with 20 ms each way takes 128 KiB sequential writes as fast as the host sends
// them, far more than the link carries; the cycles pull ahead and the resync ships owed
// tracks, so the link is busy all the window. What it shipped in the window (record data,
// from the primary's Status) against the emulated bandwidth: within 10% either way.
#include <chrono>

#include "absl/time/clock.h"
#include "fmt/format.h"
#include "tools/bench/bench.h"
#include "tools/bench/closed_loop.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/progress.h"
#include "tools/bench/report.h"

namespace simarray::bench {

void Bench::EmulatedLink() {
  constexpr double kBits = 100e6;
  const std::string workload = "async shipping over an emulated 100 Mbit/s link, Mbit/s";
  const std::string target = "0.9× to 1.1×";
  if (!OwnPairs()) {
    Add(MakeSkippedRow(workload, "needs a pair the bench starts itself (not with --primary)",
                       target));
    return;
  }
  Say("async mode over an emulated link: 100 Mbit/s, 20 ms each way");
  PairOptions options;
  options.simarrayd = DaemonPath();
  options.dir = scratch_;
  options.name = "link";
  options.mode = "async";
  options.primary_extra =
      "[link.emulate]\nlatency_ms = 20\nbandwidth = \"100Mbit\"\nback = { latency_ms = 20 }\n";
  auto pair = LaunchedPair::Start(options);
  if (!pair.ok()) return Fail(MakeSkippedRow(workload, "", target), pair.status().ToString());
  const DaemonAddresses& primary = (*pair)->primary();
  if (absl::Status s = PrepareVolume(primary.admin, primary.host, kVolume); !s.ok()) {
    return Fail(MakeSkippedRow(workload, "", target), s.ToString());
  }
  HostWriter writer(primary.host, kVolume, kVolumeSize, kStreamChunk, /*sequential=*/true);
  uint64_t shipped_before = 0;
  absl::Time window_start;
  LoopOptions loop;
  loop.label = "simarray async write 128 KiB sequential QD16, link 100 Mbit/s";
  loop.depth = kStreamWindow;
  loop.warmup = warmup();
  loop.duration = duration();
  loop.at_window_start = [&](uint64_t) {
    auto s = GetStatus(primary.admin);
    shipped_before = s.ok() ? s->link().bytes_shipped() : 0;
    window_start = absl::Now();
  };
  const LoopResult result =
      RunClosedLoop(loop, [&](Completion done) { writer.Start(std::move(done)); });
  auto after = GetStatus(primary.admin);
  const double seconds = absl::ToDoubleSeconds(absl::Now() - window_start);
  if (!after.ok() || seconds <= 0) {
    return Fail(MakeSkippedRow(workload, "", target), "no status after the run");
  }
  const double mbit = (after->link().bytes_shipped() - shipped_before) * 8 / seconds / 1e6;
  Row row = MakeThroughputRow(workload, "Mbit/s", mbit, kBits / 1e6, 0.9);
  const double ratio = mbit * 1e6 / kBits;
  row.set_note(fmt::format(
      "baseline: the emulated bandwidth; host writes {:.0f} MB/s; link state {}, {} pull-aheads, "
      "{} messages lost; {}",
      result.PerSecond() * kStreamChunk / 1e6, after->link().state(), after->cycles().pull_aheads(),
      after->link().messages_lost(),
      ratio > 1.1 ? "MORE than the emulated bandwidth: the emulation leaks" : "within the link"));
  if (result.failed != 0) {
    return Fail(std::move(row),
                fmt::format("{} writes failed: {}", result.failed, writer.first_error()));
  }
  if (ratio > 1.1) return Fail(std::move(row), "shipped faster than the emulated link");
  Add(std::move(row));
  ResyncOverLink(primary, kBits);
}

void Bench::ResyncOverLink(const DaemonAddresses& primary, double bits) {
  const std::string workload = "resync of 64 MiB over the emulated link, Mbit/s";
  Say("resync over the emulated link: every track of the volume written while suspended");
  auto fail = [&](const std::string& why) {
    Fail(MakeSkippedRow(workload, "", "0.9× to 1.1×"), why);
  };
  if (absl::Status s = SetLink(primary.admin, /*suspend=*/true); !s.ok()) return fail(s.ToString());
  HostWriter writer(primary.host, kVolume, kVolumeSize, kStreamChunk, /*sequential=*/true);
  LoopOptions loop;
  loop.label = "write the whole volume, link suspended";
  loop.depth = 4;
  loop.warmup = std::chrono::duration<double>(0);
  loop.duration = std::chrono::duration<double>(1.5);
  RunClosedLoop(loop, [&](Completion done) { writer.Start(std::move(done)); });
  auto before = GetStatus(primary.admin);
  if (!before.ok()) return fail(before.status().ToString());
  const uint64_t owed = before->owed_tracks();
  const absl::Time start = absl::Now();
  if (absl::Status s = SetLink(primary.admin, /*suspend=*/false); !s.ok()) {
    return fail(s.ToString());
  }
  absl::StatusOr<v1::StatusReply> after = before;
  while (absl::Now() - start < absl::Seconds(120)) {
    after = GetStatus(primary.admin);
    if (after.ok() && after->link().resyncs_completed() > before->link().resyncs_completed() &&
        after->owed_tracks() == 0) {
      break;
    }
    absl::SleepFor(absl::Milliseconds(10));
  }
  const double seconds = absl::ToDoubleSeconds(absl::Now() - start);
  if (!after.ok() || after->owed_tracks() != 0) return fail("the resync did not end in 120 s");
  const double shipped = after->link().tracks_resynced() - before->link().tracks_resynced();
  const double mbit = shipped * (64 << 10) * 8 / seconds / 1e6;
  Row row = MakeThroughputRow(workload, "Mbit/s", mbit, bits / 1e6, 0.9);
  row.set_note(
      fmt::format("{} tracks owed, {:.0f} resynced in {:.2f} s from ResumeLink (Hello "
                  "and the first round trips included)",
                  owed, shipped, seconds));
  if (mbit * 1e6 > bits * 1.1) return Fail(std::move(row), "shipped faster than the emulated link");
  Add(std::move(row));
}

}  // namespace simarray::bench
