// State files under kill -9 and on a data_dir that refuses them (docs/reliability.md, "State
// files"): a daemon killed at any point of a role change restarts in a role it had, with
// every state file whole, and a role change whose file cannot be persisted is refused.
#include "simarray/base/state_file.h"

#include <signal.h>

#include <algorithm>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <regex>
#include <string>
#include <thread>
#include <vector>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kTracks = 16;
constexpr char kMarkerText[] = "failed over: changes are recorded, nothing is shipped\n";

DaemonOptions SmallDaemon() {
  DaemonOptions options;
  options.cache_size = "16M";  // a quick restart
  return options;
}

// What a daemon is, as far as roles go: the mirror, a failed-over primary (records changes,
// ships nothing) or a primary that ships.
enum class Side { kMirror, kFailedOver, kPrimary };

const char* NameOf(Side side) {
  switch (side) {
    case Side::kMirror:
      return "mirror";
    case Side::kFailedOver:
      return "failed-over primary";
    case Side::kPrimary:
      return "primary";
  }
  return "?";
}

Side SideOf(Daemon& d) {
  const v1::StatusReply status = d.Status();
  if (status.role() == "mirror") return Side::kMirror;
  INFO(d.dir() << " is a primary in pair state " << status.pair_state());
  REQUIRE(status.pair_state() != "SplitBrain");  // the sequence never lets two primaries meet
  return status.pair_state() == "FailedOver" ? Side::kFailedOver : Side::kPrimary;
}

// Failover, Failback or Swap without judging the outcome.
grpc::Status RoleChange(Daemon& d, const std::string& what) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
  d.Authorize(context);
  v1::RoleChangeRequest request;
  v1::RoleChangeReply reply;
  return what == "failover"   ? d.admin().Failover(&context, request, &reply)
         : what == "failback" ? d.admin().Failback(&context, request, &reply)
                              : d.admin().Swap(&context, request, &reply);
}

// Every state file in `data_dir` is absent or whole: never empty, never cut short.
void CheckStateFiles(const std::string& data_dir) {
  namespace fs = std::filesystem;
  const std::string marker = data_dir + "/failed_over";
  if (fs::exists(marker)) CHECK(ReadFile(marker) == kMarkerText);
  const std::string peer = data_dir + "/peer.address";
  if (fs::exists(peer)) {
    const std::string text = ReadFile(peer);
    INFO(peer << ": \"" << text << "\"");
    CHECK(std::regex_match(text, std::regex(R"([0-9.]+:[0-9]+ [0-9]+\n)")));
  }
  const std::string catalog = ReadFile(data_dir + "/volumes.tsv");
  CHECK(catalog == "1\tvol\t" + std::to_string(kTracks * kTrack) + "\t1\n");
}

// Temporary files of state file writes in `data_dir` (a restart removes them).
int TempFiles(const std::string& data_dir) {
  int n = 0;
  for (const auto& entry : std::filesystem::directory_iterator(data_dir)) {
    n += IsStateTempFileName(entry.path().filename().string()) ? 1 : 0;
  }
  return n;
}

uint32_t Seed() {
  if (const char* given = std::getenv("SIMARRAY_KILL_SEED"); given != nullptr && *given != '\0') {
    return static_cast<uint32_t>(std::strtoul(given, nullptr, 10));
  }
  return std::random_device{}();
}

}  // namespace

TEST_CASE(
    "kill -9 at random points of failover and failback 50 times: the daemon restarts in "
    "a role it had with every state file whole",
    "[integration][role][state_files]") {
  constexpr int kRounds = 50;
  Pair pair(SmallDaemon(), SmallDaemon());
  Daemon& a = *pair.primary;  // the original primary
  Daemon& b = *pair.mirror;   // the original mirror
  pair.CreateVolume("vol", kTracks * kTrack);
  const uint32_t seed = Seed();
  std::printf("state files under kill -9: seed %u (SIMARRAY_KILL_SEED=%u repeats the delays)\n",
              seed, seed);
  std::mt19937 random(seed);
  std::string history;
  int cut_short = 0;
  std::map<std::string, int64_t> usual_duration_us = {
      {"failover", 10000}, {"failback", 20000}, {"swap", 20000}};
  for (int round = 0; round < kRounds; ++round) {
    INFO("seed " << seed << "; rounds so far:\n" << history);
    const Side side_a = SideOf(a);
    const Side side_b = SideOf(b);
    REQUIRE((side_a == Side::kMirror || side_b == Side::kMirror));
    // The next step of failover / failback from wherever the last kill left the pair; swap
    // brings the primary role home when a failback was cut after its copy-back began.
    std::string what = "failover";
    Side done_side = Side::kFailedOver;
    std::vector<Side> had = {Side::kMirror, Side::kFailedOver};
    if (side_b == Side::kFailedOver) {
      what = "failback";
      done_side = Side::kMirror;
      had = {Side::kFailedOver, Side::kPrimary, Side::kMirror};
    } else if (side_b == Side::kPrimary) {
      what = "swap";
      done_side = Side::kPrimary;
      had = {Side::kMirror, Side::kPrimary};
    }
    Daemon& target = what == "swap" ? a : b;
    // A primary must have its Ship stream open to be demoted; a new one opens at once, an
    // old one reconnects after its back-off.
    if (what == "failover" && side_a != Side::kMirror) REQUIRE(WaitPairState(b, "Synchronized"));
    if (what == "swap") REQUIRE(WaitPairState(a, "Synchronized"));
    const Side before = SideOf(target);

    // The kill lands anywhere in the call's usual duration: how long the last call of the
    // kind took when it finished (a few milliseconds on an idle machine, more under load).
    int64_t& usual_us = usual_duration_us[what];
    const int64_t delay_us = std::uniform_int_distribution<int64_t>(0, usual_us)(random);
    grpc::Status result;
    int64_t took_us = 0;
    std::thread call([&] {
      const auto start = std::chrono::steady_clock::now();
      result = RoleChange(target, what);
      took_us = std::chrono::duration_cast<std::chrono::microseconds>(
                    std::chrono::steady_clock::now() - start)
                    .count();
    });
    std::this_thread::sleep_for(std::chrono::microseconds(delay_us));
    target.Kill(SIGKILL);
    call.join();
    if (result.ok()) usual_us = std::max<int64_t>(1000, (usual_us + took_us) / 2);
    CheckStateFiles(target.data_dir());
    target.Start();
    const Side after = SideOf(target);
    const bool finished = result.ok();
    cut_short += finished ? 0 : 1;
    history += std::to_string(round) + ": " + what + " on the " +
               (&target == &a ? "original primary" : "original mirror") + ", kill after " +
               std::to_string(delay_us) + " us (" +
               (finished ? std::string("finished") : "cut short: " + result.error_message()) +
               "): " + NameOf(before) + " -> " + NameOf(after) + "\n";
    INFO("round " << round << ": " << what << " -> " << NameOf(after));
    // A role it had during the change; the role it acknowledged, if it did.
    CHECK(std::find(had.begin(), had.end(), after) != had.end());
    if (finished) CHECK(after == done_side);
    // The marker says failed over exactly when the daemon is.
    CHECK(std::filesystem::exists(target.data_dir() + "/failed_over") ==
          (after == Side::kFailedOver));
    CHECK(TempFiles(target.data_dir()) == 0);
    CheckStateFiles(target.data_dir());
  }
  std::printf("state files under kill -9: %d rounds, %d role changes cut short\n%s", kRounds,
              cut_short, history.c_str());
  // Some kills must land inside a role change, or the test tried nothing.
  CHECK(cut_short >= kRounds / 5);
}

TEST_CASE(
    "a role change whose failed-over marker cannot be written or removed is refused "
    "UNAVAILABLE and changes no role",
    "[integration][role][state_files]") {
  Pair pair(SmallDaemon(), SmallDaemon());
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
  pair.CreateVolume("vol", kTracks * kTrack);
  REQUIRE(WaitPairState(b, "Synchronized"));
  const std::string marker = b.data_dir() + "/failed_over";

  // A directory where the marker goes (the test runs as root, so permissions would not
  // stop it): rename(2) cannot put a file over it.
  std::filesystem::create_directory(marker);
  std::ofstream(marker + "/in-the-way") << "x";
  grpc::Status refused = RoleChange(b, "failover");
  INFO(refused.error_message());
  CHECK(refused.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(refused.error_message(), Catch::Contains("failover refused"));
  CHECK_THAT(refused.error_message(), Catch::Contains(marker));
  CHECK_THAT(refused.error_message(), Catch::Contains("Is a directory"));
  // Nothing changed on either side: the old primary was not demoted and still mirrors.
  CHECK(b.Status().role() == "mirror");
  CHECK(a.Status().role() == "primary");
  WriteOutcome w = Write(a.host(), "vol", 0, Pattern(4000, 1));
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(TempFiles(b.data_dir()) == 0);

  std::filesystem::remove_all(marker);
  RoleCall(b, "failover");
  CHECK(ReadFile(marker) == kMarkerText);
  CHECK(b.Status().pair_state() == "FailedOver");

  // The marker cannot be removed: failback is refused and the promoted side stays failed
  // over (its peer stays the demoted mirror), still taking writes.
  std::filesystem::remove(marker);
  std::filesystem::create_directory(marker);
  std::ofstream(marker + "/in-the-way") << "x";
  refused = RoleChange(b, "failback");
  INFO(refused.error_message());
  CHECK(refused.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(refused.error_message(), Catch::Contains("failback refused"));
  CHECK_THAT(refused.error_message(), Catch::Contains(marker));
  CHECK_THAT(refused.error_message(), Catch::Contains("unlink"));
  CHECK(b.Status().role() == "primary");
  CHECK(b.Status().pair_state() == "FailedOver");
  CHECK(a.Status().role() == "mirror");
  REQUIRE(Write(b.host(), "vol", kTrack, Pattern(4000, 2)).status.ok());

  // Put right, failback goes through and the pair is as it began.
  std::filesystem::remove_all(marker);
  std::ofstream(marker) << kMarkerText;
  v1::RoleChangeReply back = RoleCall(b, "failback");
  CHECK(back.role() == "mirror");
  CHECK(!std::filesystem::exists(marker));
  REQUIRE(WaitPairState(a, "Synchronized"));
  CHECK(Read(a.host(), "vol", kTrack, 4000) == Pattern(4000, 2));
}

}  // namespace simarray::testing
