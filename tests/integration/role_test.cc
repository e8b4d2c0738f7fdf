// Failover, failback, swap and split brain (docs/pair.md).
#include <signal.h>

#include <catch2/catch.hpp>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kTracks = 32;

void WriteTrack(Daemon& d, uint64_t track, uint32_t seed) {
  WriteOutcome w = Write(d.host(), "vol", track * kTrack + 100, Pattern(3000, seed));
  INFO(w.status.error_message());
  REQUIRE(w.status.ok());
}

}  // namespace

TEST_CASE("failover, writes on the new primary, failback: exactly the copy-back set is copied",
          "[integration][role]") {
  Pair pair;
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
  pair.CreateVolume("vol", kTracks * kTrack);
  for (uint64_t t = 0; t < kTracks; t += 3) WriteTrack(a, t, 1 + t);
  REQUIRE(WaitPairState(a, "Synchronized"));

  // The old primary owes tracks 1 and 2 at the split.
  SuspendLink(a);
  REQUIRE(WaitPairState(a, "Suspended"));
  WriteTrack(a, 1, 100);
  WriteTrack(a, 2, 101);
  CHECK(a.Status().owed_tracks() == 2);

  v1::RoleChangeReply failover = RoleCall(b, "failover");
  CHECK(failover.role() == "primary");
  CHECK(failover.pair_state() == "FailedOver");
  // The promoted mirror takes writes; they are recorded, not shipped.
  for (uint64_t t : {5, 6, 7}) WriteTrack(b, t, 200 + t);
  CHECK(b.Status().owed_tracks() == 3);
  // A crash of the promoted side changes nothing: it comes back failed over, still recording.
  b.Kill(SIGKILL);
  b.Start();
  CHECK(b.Status().pair_state() == "FailedOver");
  CHECK(b.Status().owed_tracks() == 3);

  v1::RoleChangeReply failback = RoleCall(b, "failback");
  CHECK(failback.tracks_copied() == 5);  // {5, 6, 7} changed OR {1, 2} owed at the split
  CHECK(failback.role() == "mirror");
  REQUIRE(WaitPairState(a, "Synchronized"));
  CHECK(a.Status().role() == "primary");
  CHECK(b.Status().role() == "mirror");
  const std::string on_a = Read(a.host(), "vol", 0, kTracks * kTrack);
  CHECK(Read(b.host(), "vol", 0, kTracks * kTrack) == on_a);
  CHECK(on_a.substr(5 * kTrack + 100, 3000) == Pattern(3000, 205));
  CHECK(CheckConsistency(a, "vol").consistent());
  // The pair works as before.
  WriteOutcome w = Write(a.host(), "vol", 0, Pattern(500, 9));
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
}

TEST_CASE("swap exchanges the roles for good and leaves the pair Synchronized",
          "[integration][role]") {
  Pair pair;
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
  pair.CreateVolume("vol", kTracks * kTrack);
  for (uint64_t t = 0; t < kTracks; t += 2) WriteTrack(a, t, 10 + t);
  v1::RoleChangeReply swap = RoleCall(b, "swap");
  CHECK(swap.role() == "primary");
  REQUIRE(WaitPairState(b, "Synchronized"));
  CHECK(a.Status().role() == "mirror");
  WriteOutcome w = Write(b.host(), "vol", 3 * kTrack, Pattern(4000, 77));
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(Write(a.host(), "vol", 0, "x").status.error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(Read(a.host(), "vol", 0, kTracks * kTrack) == Read(b.host(), "vol", 0, kTracks * kTrack));
  CHECK(CheckConsistency(b, "vol").consistent());
}

TEST_CASE("both sides written while apart: SplitBrain, nothing overwritten until forced",
          "[integration][role]") {
  Pair pair;
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
  pair.CreateVolume("vol", kTracks * kTrack);
  WriteTrack(a, 0, 1);
  SuspendLink(a);
  REQUIRE(WaitPairState(a, "Suspended"));
  RoleCall(b, "failover");  // the link is down: the old primary stays primary
  WriteTrack(a, 4, 40);     // both sides write while apart
  WriteTrack(b, 8, 80);
  ResumeLink(a);
  REQUIRE(WaitPairState(a, "SplitBrain"));
  REQUIRE(WaitPairState(b, "SplitBrain"));
  RoleCall(b, "failback", /*force=*/false, grpc::StatusCode::ABORTED);
  // Nothing was overwritten on either side.
  CHECK(Read(a.host(), "vol", 4 * kTrack + 100, 3000) == Pattern(3000, 40));
  CHECK(Read(b.host(), "vol", 8 * kTrack + 100, 3000) == Pattern(3000, 80));
  CHECK(Read(b.host(), "vol", 4 * kTrack + 100, 3000) != Pattern(3000, 40));
  // The admin decides: keep the failed-over side, discard the old primary's changes.
  v1::RoleChangeReply forced = RoleCall(b, "failback", /*force=*/true);
  CHECK(forced.tracks_copied() >= 2);
  REQUIRE(WaitPairState(a, "Synchronized"));
  CHECK(Read(a.host(), "vol", 0, kTracks * kTrack) == Read(b.host(), "vol", 0, kTracks * kTrack));
  CHECK(Read(a.host(), "vol", 8 * kTrack + 100, 3000) == Pattern(3000, 80));
  CHECK(CheckConsistency(a, "vol").consistent());
}

}  // namespace simarray::testing

namespace simarray::testing {

// A daemon whose peer port binds every interface (as in a container) tells its peer the
// address in peer.advertise, and a swap ships back to it.
TEST_CASE("peer.advertise is the address the peer learns and ships back to after a swap",
          "[integration][role]") {
  TempDir dir;
  DaemonOptions mirror_options;
  mirror_options.role = "mirror";
  Daemon b(dir.path() + "/mirror", mirror_options);
  b.Start();
  DaemonOptions primary_options;
  primary_options.bind_ip = "0.0.0.0";
  primary_options.peer_address = b.peer_address();
  Daemon a(dir.path() + "/primary", primary_options);
  const std::string bound = a.PickPeerAddress();
  const std::string advertised = "localhost" + bound.substr(bound.rfind(':'));
  a.options().peer_advertise = advertised;
  a.Start();
  REQUIRE(Eventually([&] { return a.Status().link().state() == "up"; }));
  REQUIRE(b.Status().groups_size() == 1);
  CHECK(b.Status().groups(0).peer() == advertised);

  v1::VolumeInfo info;
  REQUIRE(CreateVolumeCall(a, "vol", kTracks * kTrack, &info).ok());
  WriteTrack(a, 1, 5);
  CHECK(RoleCall(b, "swap").role() == "primary");
  REQUIRE(WaitPairState(b, "Synchronized"));
  WriteOutcome w = Write(b.host(), "vol", 2 * kTrack, Pattern(4000, 9));
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(Read(a.host(), "vol", 2 * kTrack, 4000) == Pattern(4000, 9));
}

}  // namespace simarray::testing
