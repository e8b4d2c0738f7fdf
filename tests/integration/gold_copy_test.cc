// Gold copy (docs/async.md, "Gold copy"): while a resync overwrites an async mirror's last
// consistent image, the mirror keeps that image track by track, so a failover at any moment
// promotes the primary's image as of one point of its history, never a mix; a mirror killed
// mid-resync restarts with the copy, and the next consistent cycle drops it.
#include <catch2/catch.hpp>
#include <random>
#include <thread>

#include "async_pair.h"
#include "daemon_process.h"
#include "dependent_writes.h"

namespace simarray::testing {
namespace {

// An async pair with cycles of 200 ms over an emulated 8 Mbit/s link, so resyncing the
// checker's 32 tracks takes a couple of seconds; `mirror_extra` goes into the mirror's
// config.
Pair SlowLinkPair(const std::string& mirror_extra) {
  DaemonOptions primary = AsyncOptions("primary", 200);
  DaemonOptions mirror = AsyncOptions("mirror", 200);
  primary.extra = "[link.emulate]\nbandwidth = \"8Mbit\"\n";
  mirror.extra = mirror_extra;
  return Pair(primary, mirror);
}

// The checker's writers run while the link is suspended for a second (their tracks become
// owed), then the link comes back and the resync starts: returns once the mirror has
// applied something that is not a whole consistent cycle.
void StartResync(Pair& pair, DependentWriteChecker& checker) {
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  checker.StartWriters(2);
  REQUIRE(Eventually([&] { return pair.mirror->Status().cycles().cycles_applied() >= 3; }));
  SuspendLink(*pair.primary);
  std::this_thread::sleep_for(std::chrono::seconds(1));
  ResumeLink(*pair.primary);
  REQUIRE(Eventually([&] { return !pair.mirror->Status().cycles().mirror_consistent(); }));
}

TEST_CASE("a failover at a random moment of a resync promotes the gold image, never a mix",
          "[integration][async][gold]") {
  const bool gold = GENERATE(false, true);
  INFO((gold ? "gold_copy = auto (the default)" : "gold_copy = off: the control"));
  std::mt19937 random(Catch::rngSeed() + (gold ? 1 : 0));
  constexpr int kRounds = 3;
  int mixes = 0;
  int during_resync = 0;
  for (int round = 0; round < kRounds; ++round) {
    INFO("round " << round);
    Pair pair = SlowLinkPair(gold ? "" : "gold_copy = \"off\"\n");
    DependentWriteChecker checker(pair);
    StartResync(pair, checker);
    // The primary site is lost at a random moment of the resync, and the mirror is failed
    // over to. (With the link up a failover demotes the primary gracefully, which lets the
    // resync finish first.)
    std::this_thread::sleep_for(std::chrono::milliseconds(200 + random() % 1000));
    const bool resyncing = !pair.mirror->Status().cycles().mirror_consistent();
    pair.primary->Kill();
    checker.StopWriters();
    checker.ForgiveFailures();  // writes to the lost primary
    const v1::RoleChangeReply promoted = RoleCall(*pair.mirror, "failover");
    const std::vector<std::string> image = checker.ReadMirror();
    uint64_t prefix = 0;
    const std::string mix = checker.VerifyPrefix(image, &prefix);
    INFO("failover said: " << promoted.description());
    if (!mix.empty()) {
      ++mixes;
      UNSCOPED_INFO("round " << round << ": the promoted image is a mix: " << mix);
    }
    if (!gold) continue;
    CHECK(mix.empty());
    if (promoted.gold_tracks_restored() > 0) ++during_resync;
    if (resyncing) {
      // The daemon's own claim: the image is the primary's as of this sequence.
      CHECK(promoted.image_sequence() != 0);
      CHECK(promoted.image_sequence() >= prefix);
      Snapshot claimed{promoted.image_sequence(), "the sequence the failover reported", image};
      CHECK(checker.VerifyOne(claimed).empty());
    }
    const v1::CycleStatus c = pair.mirror->Status().cycles();
    CHECK_FALSE(c.gold_held());
    CHECK(c.gold_taken() >= 1);
    CHECK(c.gold_tracks_restored() == promoted.gold_tracks_restored());
  }
  if (gold) {
    CHECK(mixes == 0);
    CHECK(during_resync >= 1);  // at least one failover came while a copy was held
  } else {
    CHECK(mixes >= 1);  // what the gold copy is for
  }
}

TEST_CASE("a mirror killed mid-resync restarts with its gold image, and the resync completes",
          "[integration][async][gold]") {
  Pair pair = SlowLinkPair("");
  DependentWriteChecker checker(pair);
  StartResync(pair, checker);
  REQUIRE(Eventually([&] { return pair.mirror->Status().cycles().gold_tracks() >= 4; }));
  pair.mirror->Kill();
  SuspendLink(*pair.primary);  // so the restarted mirror's image holds still while it is read
  pair.mirror->Start();

  const v1::CycleStatus held = pair.mirror->Status().cycles();
  CHECK_FALSE(held.mirror_consistent());
  REQUIRE(held.gold_held());
  CHECK(held.gold_tracks() >= 4);
  CHECK(held.gold_sequence() != 0);
  // Host reads see the gold image: the primary's as of the copy's sequence.
  const std::vector<std::string> image = checker.ReadMirror();
  checker.StopWriters();
  Snapshot gold{held.gold_sequence(), "the gold image after the restart", image};
  CHECK(checker.VerifyOne(gold).empty());
  CHECK(ReadFile(pair.mirror->log_path()).find("gold copy: reloaded") != std::string::npos);

  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
  const v1::CycleStatus done = pair.mirror->Status().cycles();
  CHECK_FALSE(done.gold_held());
  CHECK(done.gold_tracks() == 0);
  CHECK(done.gold_dropped() >= 1);
  CHECK(checker.MirrorEqualsPrimary());
  CHECK(checker.Verify().empty());
}

}  // namespace
}  // namespace simarray::testing
