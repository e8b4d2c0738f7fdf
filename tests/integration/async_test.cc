// Async mode (docs/async.md): dependent-write consistency of the mirror through suspends,
// link drops, a slow link, a mirror crash in the middle of a cycle, and a swap.
#include <atomic>
#include <catch2/catch.hpp>
#include <csignal>
#include <cstring>
#include <map>
#include <mutex>
#include <random>
#include <thread>

#include "async_pair.h"
#include "daemon_process.h"
#include "dependent_writes.h"

namespace simarray::testing {
namespace {

bool MirrorPartitioned(Pair& pair) {
  return Eventually([&] { return pair.mirror->Status().pair_state() == "Partitioned"; },
                    std::chrono::seconds(10));
}

// Freezes the mirror at a random moment while the pair is Consistent (suspend), reads it,
// and resumes.
void SnapshotWhileSuspended(Pair& pair, DependentWriteChecker& checker, std::mt19937& random,
                            int* taken) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 400));
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  SuspendLink(*pair.primary);
  REQUIRE(MirrorPartitioned(pair));
  if (checker.TakeSnapshot("suspended")) ++*taken;
  ResumeLink(*pair.primary);
}

// Drops the link at a random moment (often mid-cycle) and reads the mirror while it is down.
void SnapshotDuringDrop(Pair& pair, DependentWriteChecker& checker, std::mt19937& random,
                        int* taken) {
  std::this_thread::sleep_for(std::chrono::milliseconds(100 + random() % 400));
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  InjectFault(*pair.primary, v1::FAULT_DROP_LINK, 1500);
  REQUIRE(MirrorPartitioned(pair));
  if (checker.TakeSnapshot("link dropped")) ++*taken;
}

void RunChecker(Pair& pair, int suspends, int drops, uint32_t delay_ms) {
  DependentWriteChecker checker(pair);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  if (delay_ms != 0) InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, delay_ms);
  checker.StartWriters(3);
  std::mt19937 random(42);
  int suspended = 0, dropped = 0;
  for (int i = 0; i < suspends; ++i) SnapshotWhileSuspended(pair, checker, random, &suspended);
  for (int i = 0; i < drops; ++i) SnapshotDuringDrop(pair, checker, random, &dropped);
  // After the last drop the link comes back by itself: the mirror catches up to Consistent
  // while the writers go on, and is checked once more.
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  SnapshotWhileSuspended(pair, checker, random, &suspended);
  checker.StopWriters();
  if (delay_ms != 0) InjectFault(*pair.primary, v1::FAULT_DELAY_RECORDS, 0);

  INFO("writes: " << checker.writes() << ", snapshots while suspended: " << suspended
                  << ", during link drops: " << dropped);
  CHECK(checker.writes() > 100);
  CHECK(suspended >= suspends / 2 + 1);
  CHECK(dropped >= (drops + 1) / 2);
  const std::string verdict = checker.Verify();
  INFO(verdict);
  CHECK(verdict.empty());
  // Every snapshot is a cut through the running workload, not the empty volumes.
  for (const Snapshot& s : checker.snapshots()) CHECK(s.applied_sequence > 0);

  // Quiet: the last cycles drain and the mirror equals the primary.
  REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
  CHECK(checker.MirrorEqualsPrimary());
}

TEST_CASE("async: the mirror is always a cycle boundary of the primary, across suspends",
          "[async]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/6, /*drops=*/0, /*delay_ms=*/0);
}

TEST_CASE("async: after link drops mid-cycle the mirror keeps its last whole cycle and catches up",
          "[async]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/2, /*drops=*/4, /*delay_ms=*/0);
  CHECK(pair.primary->Status().link().link_losses() >= 4);
  INFO("cycles the mirror dropped unfinished: "
       << pair.mirror->Status().cycles().cycles_discarded());
}

TEST_CASE("async: a slow link (every record delayed) keeps the mirror a cycle boundary",
          "[async]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/3, /*drops=*/2, /*delay_ms=*/20);
}

TEST_CASE("async checker: 30 suspends and 30 link drops under a slow link", "[async][soak]") {
  Pair pair = AsyncPair(100);
  RunChecker(pair, /*suspends=*/30, /*drops=*/30, /*delay_ms=*/10);
}

// Arms the crash fault. The mirror may apply a cycle, and so kill itself, before its reply to
// the admin call is written: a reply lost to the kill counts as armed.
void ArmCrashMidApply(Daemon& mirror) {
  grpc::ClientContext context;
  mirror.Authorize(context);
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_CRASH_MID_APPLY);
  v1::InjectFaultReply reply;
  const grpc::Status s = mirror.admin().InjectFault(&context, request, &reply);
  INFO(s.error_message());
  REQUIRE((s.ok() || s.error_code() == grpc::StatusCode::UNAVAILABLE));
}

TEST_CASE("async: a mirror killed halfway through applying a cycle redoes it at restart",
          "[async][crash]") {
  Pair pair = AsyncPair(100);
  DependentWriteChecker checker(pair);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  checker.StartWriters(3);
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  ArmCrashMidApply(*pair.mirror);
  REQUIRE(pair.mirror->WaitExit(std::chrono::seconds(30)) == 128 + SIGKILL);
  // The primary must not reconnect yet: the restarted mirror shows what it recovered.
  SuspendLink(*pair.primary);
  pair.mirror->Start();
  const v1::StatusReply m = pair.mirror->Status();
  CHECK(m.cycles().mirror_consistent());
  CHECK(m.cycles().applied_cycle() > 0);
  const std::string log = ReadFile(pair.mirror->log_path());
  CHECK_THAT(log, Catch::Contains("killed halfway through applying cycle " +
                                  std::to_string(m.cycles().applied_cycle())));
  CHECK_THAT(log, Catch::Contains("redone from cache"));
  REQUIRE(checker.TakeSnapshot("restarted after a crash mid-apply"));

  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  std::this_thread::sleep_for(std::chrono::milliseconds(300));
  checker.StopWriters();
  const std::string verdict = checker.Verify();
  INFO(verdict);
  CHECK(verdict.empty());
  REQUIRE(MirrorCaughtUp(*pair.primary, *pair.mirror));
  CHECK(checker.MirrorEqualsPrimary());
}

TEST_CASE("async: swap while writes go on, and the new primary's cycles reach the old one",
          "[async][role]") {
  Pair pair = AsyncPair(100);
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
  pair.CreateVolume("vol", 1 << 20);
  REQUIRE(WaitPairState(a, "Consistent"));
  for (uint64_t t = 0; t < 16; ++t) {
    REQUIRE(Write(a.host(), "vol", t * kTrack + 100, Pattern(3000, 10 + t)).status.ok());
  }
  v1::RoleChangeReply swap = RoleCall(b, "swap");
  CHECK(swap.role() == "primary");
  REQUIRE(WaitPairState(b, "Consistent"));
  CHECK(a.Status().role() == "mirror");
  WriteOutcome w = Write(b.host(), "vol", 3 * kTrack, Pattern(4000, 77));
  REQUIRE(w.status.ok());
  CHECK_FALSE(w.reply.mirrored());
  REQUIRE(MirrorCaughtUp(b, a));
  CHECK(Read(a.host(), "vol", 0, 1 << 20) == Read(b.host(), "vol", 0, 1 << 20));
  CHECK(CheckConsistency(b, "vol").consistent());
}

TEST_CASE("the crash fault is refused where no cycle is applied", "[async]") {
  Pair pair;
  grpc::ClientContext context;
  pair.mirror->Authorize(context);
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_CRASH_MID_APPLY);
  v1::InjectFaultReply reply;
  const grpc::Status s = pair.mirror->admin().InjectFault(&context, request, &reply);
  CHECK(s.error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK_THAT(s.error_message(), Catch::Contains("only an async mirror applies cycles"));
}

}  // namespace
}  // namespace simarray::testing
