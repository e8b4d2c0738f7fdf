// Group operations (docs/groups.md, "Operations"): split, establish and restore with the
// states before and after, the data on both sides and the exact number of tracks copied;
// repeats that do nothing, one operation at a time, and an unknown group.
#include <catch2/catch.hpp>
#include <future>
#include <set>
#include <string>
#include <thread>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kTracks = 16;

void WriteTrack(Daemon& d, uint64_t track, uint32_t seed) {
  WriteOutcome w = Write(d.host(), "vol", track * kTrack, Pattern(kTrack, seed));
  INFO(w.status.error_message());
  REQUIRE(w.status.ok());
}

std::string GroupState(Daemon& d, std::string* role = nullptr) {
  const v1::StatusReply s = d.Status();
  REQUIRE(s.groups_size() == 1);
  if (role != nullptr) *role = s.groups(0).role();
  return s.groups(0).state();
}

// A pair with "vol" written whole on the primary and mirrored.
struct WrittenPair {
  WrittenPair() {
    pair.CreateVolume("vol", kTracks * kTrack);
    for (uint64_t t = 0; t < kTracks; ++t) WriteTrack(*pair.primary, t, 100 + t);
    REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  }
  Pair pair;
  Daemon& a = *pair.primary;
  Daemon& b = *pair.mirror;
};

TEST_CASE("group operations: split lets both sides write and establish copies what changed to R2",
          "[integration][groups][operations]") {
  WrittenPair p;
  Daemon& a = p.a;
  Daemon& b = p.b;
  RoleCall(b, "split", false, grpc::StatusCode::FAILED_PRECONDITION);  // asked of R1
  v1::RoleChangeReply split = RoleCall(a, "split");
  CHECK(split.pair_state() == "Split");
  std::string role;
  CHECK(GroupState(a, &role) == "Split");
  CHECK(role == "R1");
  CHECK(GroupState(b, &role) == "Split");
  CHECK(role == "R2");
  CHECK_THAT(RoleCall(a, "split").description(), Catch::Contains("nothing to do"));
  // simarrayctl wait takes a group's SRDF state.
  const std::string ctl_b = "--admin " + b.admin_address();
  CtlResult waited = Ctl(ctl_b + " wait Split --group default --timeout 10");
  CHECK(waited.code == 0);
  CHECK_THAT(waited.out, Catch::Contains("Split"));
  CHECK(Ctl(ctl_b + " wait Synchronized --group default --timeout 1").code == 1);
  CHECK(Ctl(ctl_b + " wait Split --group west --timeout 1").code == 2);
  // The event stream says so, by SRDF's name.
  CHECK(Eventually([&] {
    return Ctl("--admin " + b.admin_address() + " events")
               .out.find("group_state default: RDF group default (R2) is Split") !=
           std::string::npos;
  }));

  // Both sides take host writes; each records what it changed.
  const std::set<uint64_t> on_a = {0, 1, 2};
  const std::set<uint64_t> on_b = {2, 3, 4, 5};
  for (uint64_t t : on_a) WriteTrack(a, t, 200 + t);
  for (uint64_t t : on_b) WriteTrack(b, t, 300 + t);
  CHECK(Read(b.host(), "vol", 3 * kTrack, kTrack) == Pattern(kTrack, 303));
  grpc::ClientContext context;
  a.Authorize(context);
  v1::ResumeLinkReply resumed;
  CHECK(a.admin().ResumeLink(&context, v1::ResumeLinkRequest(), &resumed).error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);  // a split ends by establish or restore
  RoleCall(b, "establish", false, grpc::StatusCode::FAILED_PRECONDITION);

  // Both sides stay split across a restart.
  b.Kill();
  b.Start();
  CHECK(GroupState(b) == "Split");
  CHECK(Write(b.host(), "vol", 6 * kTrack, Pattern(512, 7)).status.ok());

  v1::RoleChangeReply established = RoleCall(a, "establish");
  CHECK(established.tracks_copied() == 7);  // {0,1,2} | {2,3,4,5} | {6}
  CHECK(established.pair_state() == "Synchronized");
  CHECK(GroupState(a) == "Synchronized");
  CHECK(Eventually([&] { return GroupState(b, &role) == "Synchronized"; }));
  CHECK(role == "R2");
  CHECK(b.Status().role() == "mirror");
  // R1's data everywhere: what R2 wrote while split is gone.
  const std::string all_a = Read(a.host(), "vol", 0, kTracks * kTrack);
  CHECK(Read(a.host(), "vol", 3 * kTrack, kTrack) == Pattern(kTrack, 103));
  CHECK(Read(b.host(), "vol", 0, kTracks * kTrack) == all_a);
  CHECK(CheckConsistency(a, "vol").consistent());
  CHECK(Write(b.host(), "vol", 0, "x").status.error_code() ==
        grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(Write(a.host(), "vol", 9 * kTrack, Pattern(512, 9)).reply.mirrored());

  v1::RoleChangeReply again = RoleCall(a, "establish");
  CHECK(again.tracks_copied() == 0);
  CHECK_THAT(again.description(), Catch::Contains("nothing to do"));
}

TEST_CASE("group operations: restore copies what either side changed from R2 to R1",
          "[integration][groups][operations]") {
  WrittenPair p;
  Daemon& a = p.a;
  Daemon& b = p.b;
  RoleCall(a, "split");
  const std::set<uint64_t> on_a = {0, 1};
  const std::set<uint64_t> on_b = {1, 7, 8};
  for (uint64_t t : on_a) WriteTrack(a, t, 400 + t);
  for (uint64_t t : on_b) WriteTrack(b, t, 500 + t);
  const std::string all_b = Read(b.host(), "vol", 0, kTracks * kTrack);
  RoleCall(a, "restore", false, grpc::StatusCode::FAILED_PRECONDITION);  // asked of R2

  v1::RoleChangeReply restored = RoleCall(b, "restore");
  CHECK(restored.tracks_copied() == 4);  // {0,1} | {1,7,8}
  CHECK(restored.role() == "mirror");
  REQUIRE(WaitPairState(a, "Synchronized"));
  CHECK(a.Status().role() == "primary");
  CHECK(GroupState(a) == "Synchronized");
  // R2's data everywhere, track 0 included (R1's change to it is undone).
  CHECK(Read(a.host(), "vol", 0, kTracks * kTrack) == all_b);
  CHECK(Read(a.host(), "vol", 0, kTrack) == Pattern(kTrack, 100));
  CHECK(CheckConsistency(a, "vol").consistent());
  CHECK(Write(a.host(), "vol", 2 * kTrack, Pattern(512, 2)).reply.mirrored());
  CHECK_THAT(RoleCall(b, "restore").description(), Catch::Contains("nothing to do"));
}

TEST_CASE("group operations: a repeat does nothing and one runs at a time",
          "[integration][groups][operations]") {
  WrittenPair p;
  Daemon& a = p.a;
  Daemon& b = p.b;
  RoleCall(b, "failover");
  CHECK_THAT(RoleCall(b, "failover").description(), Catch::Contains("nothing to do"));
  for (uint64_t t = 0; t < kTracks; ++t) WriteTrack(b, t, 600 + t);

  // A slow failback (every record held back) is running: another operation is ABORTED.
  InjectFault(b, v1::FAULT_DELAY_RECORDS, 1500);
  auto failback = std::async(std::launch::async, [&] { return RoleCall(b, "failback"); });
  std::this_thread::sleep_for(std::chrono::milliseconds(500));
  RoleCall(b, "split", false, grpc::StatusCode::ABORTED);
  RoleCall(b, "failover", false, grpc::StatusCode::ABORTED);
  InjectFault(b, v1::FAULT_DELAY_RECORDS, 0);
  CHECK(failback.get().tracks_copied() == kTracks);
  // Failback asked of a mirror is refused, as ever: it cannot tell a repeat from a mistake.
  RoleCall(b, "failback", false, grpc::StatusCode::FAILED_PRECONDITION);
  REQUIRE(WaitPairState(a, "Synchronized"));

  // An operation on a group the array does not have.
  grpc::ClientContext context;
  a.Authorize(context);
  v1::RoleChangeRequest request;
  request.set_group("west");
  v1::RoleChangeReply reply;
  grpc::Status s = a.admin().Split(&context, request, &reply);
  CHECK(s.error_code() == grpc::StatusCode::NOT_FOUND);
  CHECK_THAT(s.error_message(), Catch::Contains("no RDF group \"west\""));
}

}  // namespace
}  // namespace simarray::testing
