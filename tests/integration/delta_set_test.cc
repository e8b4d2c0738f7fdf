// Delta set extension (docs/async.md, "Delta set extension"): cycles larger than their cache
// share page track images out to a file on both sides instead of pulling ahead, the pair
// stays Consistent through the burst, and a mirror killed while it applies such a cycle
// redoes the paged-out part from the file.
#include <signal.h>

#include <catch2/catch.hpp>
#include <thread>

#include "async_pair.h"
#include "daemon_process.h"
#include "dependent_writes.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kBurstTracks = 192;  // three times the cycles' share of a 16 MiB cache

// An async pair with 16 MiB of cache each (about 250 slots, of which the cycles may pin a
// quarter) over an emulated 16 Mbit/s link; `dse` is appended to both configs.
Pair SmallCachePair(const std::string& dse, uint32_t cycle_ms) {
  DaemonOptions primary = AsyncOptions("primary", cycle_ms);
  DaemonOptions mirror = AsyncOptions("mirror", cycle_ms);
  primary.cache_size = mirror.cache_size = "16M";
  primary.extra = dse + "[link.emulate]\nbandwidth = \"16Mbit\"\n";
  mirror.extra = dse;
  return Pair(primary, mirror);
}

// Writes 4 KiB to each of kBurstTracks tracks of `volume`, as three 4 MiB writes would
// change them: one write per 64 tracks, so each lands in one cycle whole.
void Burst(Daemon& primary, const std::string& volume, uint32_t seed) {
  for (uint64_t part = 0; part < kBurstTracks / 64; ++part) {
    std::string data(64 * kTrack, '\0');
    for (uint64_t t = 0; t < 64; ++t) {
      const std::string p = Pattern(4096, seed + part * 64 + t);
      data.replace(t * kTrack, p.size(), p);
    }
    REQUIRE(Write(primary.host(), volume, part * 64 * kTrack, data).status.ok());
  }
}

bool VolumesEqual(Daemon& a, Daemon& b, const std::string& volume, uint64_t size) {
  for (uint64_t at = 0; at < size; at += 32 * kTrack) {
    if (Read(a.host(), volume, at, 32 * kTrack) != Read(b.host(), volume, at, 32 * kTrack)) {
      return false;
    }
  }
  return true;
}

TEST_CASE("a burst larger than the cycles' cache share pages out instead of pulling ahead",
          "[integration][async][dse]") {
  const bool with_dse = GENERATE(false, true);
  INFO((with_dse ? "dse.max_size = 32M on both sides" : "no delta set extension"));
  Pair pair = SmallCachePair(with_dse ? "dse.max_size = \"32M\"\n" : "", 300);
  DependentWriteChecker checker(pair);
  pair.CreateVolume("burst", kBurstTracks * kTrack);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  checker.StartWriters(2);
  for (int round = 0; round < 2; ++round) {
    Burst(*pair.primary, "burst", 1000 * round);
    for (int i = 0; i < 20; ++i) {
      checker.TakeSnapshot("during burst " + std::to_string(round));
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  checker.StopWriters();
  // Without the extension, a resync of whole tracks over the slow link comes first.
  REQUIRE(WaitPairState(*pair.primary, "Consistent", std::chrono::seconds(60)));
  REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
  checker.TakeSnapshot("after the bursts");
  const v1::CycleStatus p = pair.primary->Status().cycles();
  const v1::CycleStatus m = pair.mirror->Status().cycles();
  if (!with_dse) {
    CHECK(p.pull_aheads() >= 1);  // what the extension is for
    CHECK(p.dse_capacity() == 0);
  } else {
    CHECK(p.pull_aheads() == 0);
    CHECK(p.dse_capacity() > kBurstTracks);
    CHECK(p.dse_bytes_spilled() > 0);
    CHECK(p.dse_tracks() == 0);        // everything shipped: nothing held any more
    CHECK(m.dse_bytes_spilled() > 0);  // the mirror staged the cycles past its share there
    CHECK(m.dse_tracks() == 0);
    CHECK(m.mirror_consistent());
    CHECK(checker.snapshots().size() >= 10);
    CtlResult status = Ctl("--admin " + pair.primary->admin_address() + " status");
    CHECK_THAT(status.out, Catch::Contains("paged out (DSE):"));
  }
  const std::string verdict = checker.Verify();
  INFO(verdict);
  CHECK(verdict.empty());
  CHECK(checker.MirrorEqualsPrimary());
  CHECK(VolumesEqual(*pair.primary, *pair.mirror, "burst", kBurstTracks * kTrack));
}

TEST_CASE("a mirror killed while applying a paged-out cycle redoes it from the extension",
          "[integration][async][dse][crash]") {
  // The restarted mirror may have lost its dse.max_size: the file is redone from all the same.
  const bool setting_kept = GENERATE(true, false);
  INFO((setting_kept ? "restarted with dse.max_size" : "restarted without dse.max_size"));
  // 32 MiB of cache (about 500 slots, a share of 125) and one write of 192 tracks: one cycle
  // the mirror stages partly in cache, partly in its extension.
  DaemonOptions primary = AsyncOptions("primary", 1000);
  DaemonOptions mirror = AsyncOptions("mirror", 1000);
  primary.cache_size = mirror.cache_size = "32M";
  primary.max_write = mirror.max_write = "12M";
  primary.extra = mirror.extra = "dse.max_size = \"32M\"\n";
  Pair pair(primary, mirror);
  pair.CreateVolume("burst", kBurstTracks * kTrack);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  InjectFault(*pair.mirror, v1::FAULT_CRASH_MID_APPLY);  // the next cycle's apply
  std::string data(kBurstTracks * kTrack, '\0');
  for (uint64_t t = 0; t < kBurstTracks; ++t) data.replace(t * kTrack, 4096, Pattern(4096, t));
  REQUIRE(Write(pair.primary->host(), "burst", 0, data).status.ok());
  REQUIRE(pair.mirror->WaitExit(std::chrono::seconds(30)) == 128 + SIGKILL);
  SuspendLink(*pair.primary);  // the restarted mirror shows what it recovered by itself
  if (!setting_kept) pair.mirror->options().extra = "";
  pair.mirror->Start();
  const std::string log = ReadFile(pair.mirror->log_path());
  CHECK_THAT(log, Catch::Contains("killed halfway through applying cycle"));
  CHECK_THAT(log, Catch::Contains("paged-out tracks redone from the delta set extension"));
  const v1::StatusReply m = pair.mirror->Status();
  CHECK(m.cycles().mirror_consistent());
  CHECK(m.cycles().applied_sequence() == pair.primary->Status().sequence());
  CHECK(VolumesEqual(*pair.primary, *pair.mirror, "burst", kBurstTracks * kTrack));
  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  CHECK(CheckConsistency(*pair.primary, "burst").consistent());
}

TEST_CASE("dse.max_size is checked at start", "[integration][async][dse][config]") {
  TempDir dir;
  const std::string base = "name = \"p\"\ndata_dir = \"" + dir.path() + "/data\"\n";
  ExitResult sync = RunDaemonExpectingExit(dir.path(), base + "dse.max_size = \"1G\"\n");
  CHECK(sync.code != 0);
  CHECK_THAT(sync.stderr_text, Catch::Contains("key dse.max_size: a delta set extension is for "
                                               "async groups"));
  ExitResult tiny = RunDaemonExpectingExit(
      dir.path(), base + "mode = \"async\"\nrole = \"mirror\"\ndse.max_size = \"4K\"\n");
  CHECK(tiny.code != 0);
  CHECK_THAT(tiny.stderr_text, Catch::Contains("dse.max_size"));
  CHECK_THAT(tiny.stderr_text, Catch::Contains("holds no track"));
}

}  // namespace
}  // namespace simarray::testing
