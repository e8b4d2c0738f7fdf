// Link loss and resync (docs/pair.md): suspend, drop, policies, initial copy.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <filesystem>
#include <random>
#include <set>
#include <thread>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

// A host-side model of a volume: what every acknowledged write left.
struct Model {
  explicit Model(uint64_t size) : bytes(size, '\0') {}
  void Apply(uint64_t offset, const std::string& data) { bytes.replace(offset, data.size(), data); }
  std::string bytes;
};

struct Workload {
  uint64_t writes = 0;
  uint64_t unmirrored = 0;
  std::set<uint64_t> tracks_unmirrored;
  std::set<uint64_t> tracks;
};

// Random writes of 1..3 KiB inside `tracks` tracks, each applied to `model` when acked.
Workload RandomWrites(v1::HostService::Stub& host, Model& model, uint64_t tracks, int count,
                      uint32_t seed) {
  std::mt19937_64 random(seed);
  Workload w;
  for (int i = 0; i < count; ++i) {
    const uint64_t length = 1024 + random() % 2048;
    const uint64_t offset = random() % (tracks * kTrack - length);
    const std::string data = Pattern(length, seed * 1000 + i);
    WriteOutcome out = Write(host, "vol", offset, data);
    INFO(out.status.error_message());
    REQUIRE(out.status.ok());
    model.Apply(offset, data);
    ++w.writes;
    for (uint64_t t = offset / kTrack; t <= (offset + length - 1) / kTrack; ++t) {
      w.tracks.insert(t);
      if (!out.reply.mirrored()) w.tracks_unmirrored.insert(t);
    }
    w.unmirrored += !out.reply.mirrored();
  }
  return w;
}

}  // namespace

TEST_CASE("after SuspendLink and ResumeLink exactly the tracks written meanwhile are resent",
          "[integration][link]") {
  Pair pair;
  pair.CreateVolume("vol", 64 * kTrack);
  Model model(64 * kTrack);
  RandomWrites(pair.primary->host(), model, 64, 20, 1);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  const uint64_t resent_before = pair.primary->Status().link().tracks_resynced();

  SuspendLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Suspended"));
  Workload w = RandomWrites(pair.primary->host(), model, 40, 150, 2);
  CHECK(w.unmirrored == w.writes);  // writes keep succeeding, not mirrored
  v1::StatusReply suspended = pair.primary->Status();
  CHECK(suspended.owed_tracks() == w.tracks.size());
  CHECK(Read(pair.mirror->host(), "vol", 0, 64 * kTrack) != model.bytes);

  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  v1::StatusReply after = pair.primary->Status();
  CHECK(after.link().tracks_resynced() - resent_before == w.tracks.size());
  CHECK(after.owed_tracks() == 0);
  CHECK(Read(pair.mirror->host(), "vol", 0, 64 * kTrack) == model.bytes);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("a link dropped mid-workload resends what was written while down, no more",
          "[integration][link]") {
  Pair pair;
  pair.CreateVolume("vol", 64 * kTrack);
  Model model(64 * kTrack);
  RandomWrites(pair.primary->host(), model, 64, 30, 3);
  const uint64_t resent_before = pair.primary->Status().link().tracks_resynced();
  InjectFault(*pair.primary, v1::FAULT_DROP_LINK, 400);
  Workload w = RandomWrites(pair.primary->host(), model, 64, 300, 4);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  const uint64_t resent = pair.primary->Status().link().tracks_resynced() - resent_before;
  INFO("writes " << w.writes << ", unmirrored " << w.unmirrored
                 << ", distinct tracks written "
                    "while down "
                 << w.tracks_unmirrored.size() << ", tracks resent " << resent);
  CHECK(w.unmirrored > 0);
  CHECK(resent >= w.tracks_unmirrored.size());
  CHECK(resent <= w.tracks_unmirrored.size() + w.unmirrored);
  CHECK(Read(pair.mirror->host(), "vol", 0, 64 * kTrack) == model.bytes);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("link.policy fail refuses writes while the link is down and accepts them after resync",
          "[integration][link]") {
  DaemonOptions options;
  options.link_policy = "fail";
  Pair pair(options);
  pair.CreateVolume("vol", 8 * kTrack);
  REQUIRE(Write(pair.primary->host(), "vol", 0, Pattern(5000, 1)).status.ok());
  SuspendLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Suspended"));
  WriteOutcome refused = Write(pair.primary->host(), "vol", 0, Pattern(5000, 2));
  CHECK(refused.status.error_code() == grpc::StatusCode::UNAVAILABLE);
  CHECK_THAT(refused.status.error_message(), Catch::Contains("link.policy"));
  CHECK(Read(pair.primary->host(), "vol", 0, 5000) == Pattern(5000, 1));
  ResumeLink(*pair.primary);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  WriteOutcome accepted = Write(pair.primary->host(), "vol", 0, Pattern(5000, 3));
  REQUIRE(accepted.status.ok());
  CHECK(accepted.reply.mirrored());
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("kill -9 of the mirror mid-workload: it catches up after restart",
          "[integration][link][restart]") {
  Pair pair;
  pair.CreateVolume("vol", 64 * kTrack);
  Model model(64 * kTrack);
  RandomWrites(pair.primary->host(), model, 64, 50, 5);
  pair.mirror->Kill(SIGKILL);
  Workload down = RandomWrites(pair.primary->host(), model, 64, 100, 6);
  CHECK(down.unmirrored > 0);
  pair.mirror->Start();  // same data_dir and peer port
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(Read(pair.primary->host(), "vol", 0, 64 * kTrack) == model.bytes);
  CHECK(Read(pair.mirror->host(), "vol", 0, 64 * kTrack) == model.bytes);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

}  // namespace simarray::testing

namespace simarray::testing {

TEST_CASE(
    "kill -9 of the primary mid-workload loses no acknowledged write, and the mirror catches up",
    "[integration][link][restart]") {
  Pair pair;
  pair.CreateVolume("vol", 64 * kTrack);
  // Each write goes to its own 16 KiB slot, so a write whose outcome the kill hides cannot
  // blur the others.
  std::vector<std::string> acked(256);
  std::atomic<bool> stop{false};
  std::atomic<int> next{0};
  auto& host = pair.primary->host();
  std::thread writer([&] {
    while (!stop) {
      const int i = next.fetch_add(1);
      if (i >= 256) break;
      std::string data = Pattern(16 << 10, 700 + i);
      if (Write(host, "vol", i * (16 << 10), data).status.ok()) acked[i] = data;
    }
  });
  REQUIRE(Eventually([&] { return next.load() > 60; }));
  pair.primary->Kill(SIGKILL);
  stop = true;
  writer.join();
  pair.primary->Start();
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  const std::string on_primary = Read(pair.primary->host(), "vol", 0, 64 * kTrack);
  const std::string on_mirror = Read(pair.mirror->host(), "vol", 0, 64 * kTrack);
  int checked = 0;
  for (int i = 0; i < 256; ++i) {
    if (acked[i].empty()) continue;
    CHECK(on_primary.substr(i * (16 << 10), 16 << 10) == acked[i]);
    ++checked;
  }
  CHECK(checked > 0);
  CHECK(on_mirror == on_primary);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("writes made while degraded, before and after a primary restart, are all resynced",
          "[integration][link][restart]") {
  Pair pair;
  pair.CreateVolume("vol", 64 * kTrack);
  Model model(64 * kTrack);
  RandomWrites(pair.primary->host(), model, 64, 20, 8);
  pair.mirror->Kill(SIGKILL);
  Workload before = RandomWrites(pair.primary->host(), model, 32, 60, 9);
  CHECK(before.unmirrored == before.writes);
  pair.primary->Kill(SIGKILL);
  pair.primary->Start();
  CHECK(pair.primary->Status().owed_tracks() >= before.tracks.size());
  Workload after = RandomWrites(pair.primary->host(), model, 64, 60, 10);
  CHECK(after.unmirrored == after.writes);
  pair.mirror->Start();
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(Read(pair.primary->host(), "vol", 0, 64 * kTrack) == model.bytes);
  CHECK(Read(pair.mirror->host(), "vol", 0, 64 * kTrack) == model.bytes);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("a mirror that lost its data gets an initial copy of the tracks that hold data",
          "[integration][link]") {
  constexpr uint64_t kTracks = 4096;  // 256 MiB
  DaemonOptions options;
  options.cache_size = "128M";
  Pair pair(options, options);
  pair.CreateVolume("vol", kTracks * kTrack);
  pair.mirror->Kill(SIGKILL);
  std::filesystem::remove_all(pair.mirror->data_dir());
  // 25% of the tracks get data, every fourth one.
  std::set<uint64_t> written;
  for (uint64_t t = 0; t < kTracks; t += 4) {
    REQUIRE(Write(pair.primary->host(), "vol", t * kTrack + (t % 7) * 512, Pattern(4096, t))
                .status.ok());
    written.insert(t);
  }
  const uint64_t resent_before = pair.primary->Status().link().tracks_resynced();
  pair.mirror->Start();  // a new, empty mirror: new data generation, no volume
  // While the copy runs, Status says how far it is, how fast, and how long to go.
  bool saw_progress = false;
  REQUIRE(Eventually(
      [&] {
        v1::StatusReply s = pair.primary->Status();
        if (s.pair_state() == "SyncInProg" && s.link().resync_pending() > 0 &&
            s.link().resync_tracks_per_second() > 0 && s.link().resync_seconds_left() > 0) {
          saw_progress = true;
        }
        return s.pair_state() == "Synchronized";
      },
      std::chrono::seconds(120)));
  CHECK(saw_progress);
  const uint64_t copied = pair.primary->Status().link().tracks_resynced() - resent_before;
  CHECK(copied == written.size());
  v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "vol");
  CHECK(check.consistent());
  CHECK(check.tracks_compared() == kTracks);
}

}  // namespace simarray::testing
