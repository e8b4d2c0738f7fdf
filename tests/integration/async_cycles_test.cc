// Async mode (docs/async.md): write folding, status, pull-ahead, resync beside cycles,
// and the config keys.
#include <catch2/catch.hpp>

#include "async_pair.h"
#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

TEST_CASE("async: K overwrites of one track inside one cycle ship exactly once", "[async]") {
  Pair pair = AsyncPair(1500);
  pair.CreateVolume("fold", 1 << 20);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  constexpr int kOverwrites = 20;
  bool inside_one_cycle = false;
  for (int attempt = 0; attempt < 5 && !inside_one_cycle; ++attempt) {
    const v1::CycleStatus before = pair.primary->Status().cycles();
    std::string last;
    for (int k = 0; k < kOverwrites; ++k) {
      last = Pattern(8192, 100 * attempt + k);
      WriteOutcome out = Write(pair.primary->host(), "fold", 3 * kTrack + (k % 4) * 4096, last);
      REQUIRE(out.status.ok());
      CHECK_FALSE(out.reply.mirrored());  // acked after the local commit
    }
    const v1::CycleStatus after_writes = pair.primary->Status().cycles();
    if (after_writes.capture_cycle() != before.capture_cycle()) continue;  // a switch came
    inside_one_cycle = true;
    const uint64_t cycle = before.capture_cycle();
    REQUIRE(Eventually([&] { return pair.primary->Status().cycles().applied_cycle() >= cycle; }));
    const v1::CycleStatus after = pair.primary->Status().cycles();
    CHECK(after.cycle_records_shipped() - before.cycle_records_shipped() == 1);
    CHECK(after.writes_folded() - before.writes_folded() == kOverwrites - 1);
    CHECK(after.writes_captured() - before.writes_captured() == kOverwrites);
    CHECK(after.seconds_behind() > 0);
    const uint64_t last_offset = 3 * kTrack + ((kOverwrites - 1) % 4) * 4096;
    CHECK(Read(pair.mirror->host(), "fold", last_offset, last.size()) == last);
    CHECK(Read(pair.mirror->host(), "fold", 3 * kTrack, kTrack) ==
          Read(pair.primary->host(), "fold", 3 * kTrack, kTrack));
    const v1::StatusReply m = pair.mirror->Status();
    CHECK(m.mode() == "async");
    CHECK(m.cycles().applied_cycle() >= cycle);
    CHECK(m.cycles().mirror_consistent());
    CHECK(m.pair_state() == "Consistent");
    // simarrayctl shows the cycles on both sides.
    CtlResult primary = Ctl("--admin " + pair.primary->admin_address() + " status");
    CHECK(primary.code == 0);
    CHECK_THAT(primary.out, Catch::Contains("cycling, every 1500 ms"));
    CHECK_THAT(primary.out, Catch::Contains(std::to_string(after.writes_folded()) + " folded"));
    CtlResult mirror = Ctl("--admin " + pair.mirror->admin_address() + " status");
    CHECK_THAT(mirror.out, Catch::Contains("consistent"));
  }
  CHECK(inside_one_cycle);
}

TEST_CASE("async: cycles that pin too much cache pull ahead to owed tracks and come back",
          "[async]") {
  // 16 MiB of cache: about 250 slots, of which the cycles may pin a quarter.
  Pair pair = AsyncPair(200, "16M");
  constexpr uint64_t kTracks = 100;
  pair.CreateVolume("wide", 8 << 20);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  // A slow link keeps a cycle in transit while the next one captures 100 tracks.
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 300);
  for (int round = 0; round < 3; ++round) {
    for (uint64_t t = 0; t < kTracks; ++t) {
      REQUIRE(Write(pair.primary->host(), "wide", t * kTrack + round * 4096,
                    Pattern(4096, 1000 * round + t))
                  .status.ok());
    }
  }
  REQUIRE(Eventually([&] { return pair.primary->Status().cycles().pull_aheads() >= 1; }));
  const v1::StatusReply ahead = pair.primary->Status();
  CHECK(ahead.cycles().pinned_slots() <= ahead.cycles().slot_limit());
  // Back to cycles by itself once the resync caught up, with the link still slower than a
  // cycle (each cycle takes longer than cycle_ms to arrive: the resync must still get its
  // turn).
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  CHECK(pair.primary->Status().cycles().state() == "cycling");
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 0);
  REQUIRE(Eventually([&] {
    return pair.mirror->Status().cycles().applied_sequence() >= pair.primary->Status().sequence();
  }));
  for (uint64_t half = 0; half < 2; ++half) {
    CHECK(Read(pair.mirror->host(), "wide", half << 22, 4 << 20) ==
          Read(pair.primary->host(), "wide", half << 22, 4 << 20));
  }
  const v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "wide");
  CHECK(check.consistent());
}

TEST_CASE("async: a large resync finishes beside cycles that take longer than cycle_ms",
          "[async]") {
  Pair pair = AsyncPair(100);
  constexpr uint64_t kTracks = 1000;  // more than half the cycles' slot limit: owed first
  pair.CreateVolume("big", kTracks * kTrack);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  SuspendLink(*pair.primary);
  for (uint64_t t = 0; t < kTracks; ++t) {
    REQUIRE(Write(pair.primary->host(), "big", t * kTrack, Pattern(4096, t)).status.ok());
  }
  // Every cycle record and marker now arrives 300 ms late, three cycles' worth: a cycle
  // is always in transit once cycles resume.
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 300);
  ResumeLink(*pair.primary);
  CHECK(WaitPairState(*pair.primary, "Consistent", std::chrono::seconds(40)));
  InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 0);
  const v1::StatusReply s = pair.primary->Status();
  CHECK(s.owed_tracks() == 0);
  CHECK(s.link().resync_pending() == 0);
  CHECK(CheckConsistency(*pair.primary, "big").consistent());
}

TEST_CASE("async: mode and cycle_ms are checked at start", "[async][config]") {
  TempDir dir;
  const std::string base =
      "name = \"p\"\ndata_dir = \"" + dir.path() + "/data\"\n[[host_adaptor]]\nid = \"ha0\"\n";
  ExitResult bad_mode = RunDaemonExpectingExit(dir.path(), "mode = \"semi\"\n" + base);
  CHECK(bad_mode.code != 0);
  CHECK(bad_mode.stderr_text.find("mode: expected \"sync\" or \"async\", got \"semi\"") !=
        std::string::npos);
  ExitResult bad_cycle = RunDaemonExpectingExit(dir.path(), "cycle_ms = 5\n" + base);
  CHECK(bad_cycle.code != 0);
  CHECK(bad_cycle.stderr_text.find("cycle_ms: expected 10 to 600000 (ms), got 5") !=
        std::string::npos);
}

TEST_CASE("async: a mirror with a smaller cache bounds what the cycles may pin", "[async]") {
  DaemonOptions primary = AsyncOptions("primary", 200);
  DaemonOptions mirror = AsyncOptions("mirror", 200);
  mirror.cache_size = "16M";
  Pair pair(primary, mirror);
  REQUIRE(Eventually([&] { return pair.primary->Status().link().state() == "up"; }));
  const uint64_t mirror_slots = pair.mirror->Status().cache().slots();
  const v1::StatusReply p = pair.primary->Status();
  CHECK(p.cache().slots() > mirror_slots);
  CHECK(p.cycles().slot_limit() == mirror_slots * 25 / 100);
}

TEST_CASE("async: a restarted primary numbers its cycles on from the mirror's", "[async]") {
  Pair pair = AsyncPair(50);
  pair.CreateVolume("vol", 1 << 20);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  REQUIRE(Eventually([&] { return pair.mirror->Status().cycles().applied_cycle() >= 5; }));
  REQUIRE(pair.primary->Stop() == 0);
  const uint64_t before = pair.mirror->Status().cycles().applied_cycle();
  pair.primary->Start();
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  CHECK(pair.primary->Status().cycles().capture_cycle() > before);
  CHECK(pair.mirror->Status().cycles().applied_cycle() > before);
}

}  // namespace
}  // namespace simarray::testing
