// CheckConsistency: cache-over-disk digests on both sides, the cut sequence, and repair.
#include <catch2/catch.hpp>

#include "daemon_process.h"

namespace simarray::testing {
namespace {
constexpr uint64_t kTrack = 64 << 10;

void Inject(Daemon& d, const v1::InjectFaultRequest& fault) {
  grpc::ClientContext context;
  v1::InjectFaultReply reply;
  grpc::Status s = d.admin().InjectFault(&context, fault, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
}
}  // namespace

TEST_CASE("the checker finds exactly the corrupted track and repair fixes it",
          "[integration][consistency]") {
  DaemonOptions two;
  two.host_adaptors = 2;
  Pair pair(two);
  pair.CreateVolume("vol", 32 * kTrack);
  // A mixed workload: unaligned unary writes on two adaptors, a streamed multi-track write,
  // overwrites.
  for (uint32_t i = 0; i < 30; ++i) {
    auto& host = pair.primary->host(i % 2);
    REQUIRE(
        Write(host, "vol", (i * 40009) % (30 * kTrack), Pattern(1000 + i * 300, i)).status.ok());
  }
  REQUIRE(StreamWrite(pair.primary->host(), "vol", 5 * kTrack + 17, Pattern(4 * kTrack, 77), 30000)
              .status.ok());
  v1::CheckConsistencyReply clean = CheckConsistency(*pair.primary, "vol");
  CHECK(clean.consistent());
  CHECK(clean.tracks_compared() == 32);
  CHECK(clean.mismatched_tracks_size() == 0);
  CHECK(clean.mirror_applied_sequence() >= clean.cut_sequence());

  // Corrupt three tracks on the mirror's disk (the pair is quiesced).
  for (uint64_t track : {6, 17, 30}) {
    v1::InjectFaultRequest fault;
    fault.set_kind(v1::FAULT_CORRUPT_TRACK);
    fault.set_volume("vol");
    fault.set_track(track);
    Inject(*pair.mirror, fault);
  }

  v1::CheckConsistencyReply found = CheckConsistency(*pair.primary, "vol");
  CHECK_FALSE(found.consistent());
  REQUIRE(found.mismatched_tracks_size() == 3);  // exactly those: no false mismatches
  CHECK(found.mismatched_tracks(0) == 6);
  CHECK(found.mismatched_tracks(1) == 17);
  CHECK(found.mismatched_tracks(2) == 30);

  v1::CheckConsistencyReply repaired = CheckConsistency(*pair.primary, "vol", true);
  CHECK(repaired.consistent());
  CHECK(repaired.tracks_repaired() == 3);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
  CHECK(Read(pair.mirror->host(), "vol", 6 * kTrack, kTrack) ==
        Read(pair.primary->host(), "vol", 6 * kTrack, kTrack));
}

TEST_CASE("a corrupted track on the primary's own disk is seen too", "[integration][consistency]") {
  Pair pair;
  pair.CreateVolume("vol", 8 * kTrack);
  REQUIRE(Write(pair.primary->host(), "vol", 0, Pattern(8 * kTrack, 3)).status.ok());
  v1::InjectFaultRequest fault;
  fault.set_kind(v1::FAULT_CORRUPT_TRACK);
  fault.set_volume("vol");
  fault.set_track(3);
  Inject(*pair.primary, fault);
  v1::CheckConsistencyReply r = CheckConsistency(*pair.primary, "vol");
  CHECK_FALSE(r.consistent());
  REQUIRE(r.mismatched_tracks_size() == 1);
  CHECK(r.mismatched_tracks(0) == 3);
}

}  // namespace simarray::testing
