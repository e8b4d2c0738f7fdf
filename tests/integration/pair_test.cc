// The pair in sync mode: what a host writes to the primary is on the mirror when acked.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <condition_variable>
#include <mutex>

#include "daemon_process.h"
#include "simarray/v1/admin.grpc.pb.h"

namespace simarray::testing {
namespace {
constexpr uint64_t kTrack = 64 << 10;
}

TEST_CASE("an acknowledged sync write is readable from the mirror", "[integration][pair]") {
  Pair pair;
  pair.CreateVolume("vol", 16 * kTrack);
  const std::string data = Pattern(4096, 1);
  WriteOutcome w = Write(pair.primary->host(), "vol", 8192, data);
  INFO(w.status.error_message());
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(w.reply.portions() == 1);
  CHECK(w.reply.sequence() > 0);
  CHECK(Read(pair.primary->host(), "vol", 8192, 4096) == data);
  CHECK(Read(pair.mirror->host(), "vol", 8192, 4096) == data);
  // Bytes around the write stay zero on both sides.
  CHECK(Read(pair.mirror->host(), "vol", 0, 8192) == std::string(8192, '\0'));
}

TEST_CASE("a streamed write over several tracks at an unaligned offset is mirrored whole",
          "[integration][pair]") {
  Pair pair;
  pair.CreateVolume("vol", 16 * kTrack);
  const std::string before = Pattern(6 * kTrack, 2);
  REQUIRE(Write(pair.primary->host(), "vol", 0, before).status.ok());
  const uint64_t offset = kTrack - 1000;
  const std::string data = Pattern(3 * kTrack + 5000, 3);  // touches 5 tracks
  WriteOutcome w = StreamWrite(pair.primary->host(), "vol", offset, data, 10000);
  INFO(w.status.error_message());
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(w.reply.portions() == 5);
  std::string expected = before;
  expected.replace(offset, data.size(), data);
  CHECK(Read(pair.primary->host(), "vol", 0, expected.size()) == expected);
  CHECK(Read(pair.mirror->host(), "vol", 0, expected.size()) == expected);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("a commit to another range of a track is not lost while a stream stages in it",
          "[integration][pair]") {
  DaemonOptions two_adaptors;
  two_adaptors.host_adaptors = 2;
  Pair pair(two_adaptors);
  pair.CreateVolume("vol", 4 * kTrack);
  const uint64_t track_base = kTrack;  // track 1

  // ha0: a stream over the first half of track 1, held open after its first chunk.
  const std::string streamed = Pattern(kTrack / 2, 4);
  grpc::ClientContext context;
  v1::WriteReply stream_reply;
  auto writer = pair.primary->host(0).WriteStream(&context, &stream_reply);
  v1::WriteStreamRequest header;
  header.mutable_header()->set_volume("vol");
  header.mutable_header()->set_offset(track_base);
  header.mutable_header()->set_length(streamed.size());
  header.mutable_header()->set_crc32c(Crc(streamed));
  REQUIRE(writer->Write(header));
  v1::WriteStreamRequest first;
  first.set_chunk(streamed.substr(0, 1000));
  REQUIRE(writer->Write(first));
  REQUIRE(Eventually([&] { return Pen(pair.primary->Status(), 0).depth() == 1; }));

  // ha1: a write to the second half of track 1 commits and is acked meanwhile.
  const std::string other = Pattern(kTrack / 4, 5);
  WriteOutcome w = Write(pair.primary->host(1), "vol", track_base + kTrack / 2 + 100, other);
  REQUIRE(w.status.ok());
  REQUIRE(w.reply.mirrored());

  v1::WriteStreamRequest rest;
  rest.set_chunk(streamed.substr(1000));
  REQUIRE(writer->Write(rest));
  writer->WritesDone();
  grpc::Status s = writer->Finish();
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(stream_reply.sequence() > w.reply.sequence());

  std::string expected(kTrack, '\0');
  expected.replace(kTrack / 2 + 100, other.size(), other);
  expected.replace(0, streamed.size(), streamed);
  CHECK(Read(pair.primary->host(0), "vol", track_base, kTrack) == expected);
  CHECK(Read(pair.mirror->host(), "vol", track_base, kTrack) == expected);
}

TEST_CASE("later writes to the same bytes win on both sides", "[integration][pair]") {
  Pair pair;
  pair.CreateVolume("vol", 4 * kTrack);
  std::string last;
  for (uint32_t i = 0; i < 20; ++i) {
    last = Pattern(3000, 100 + i);
    REQUIRE(Write(pair.primary->host(), "vol", 500 + i * 7, last).status.ok());
  }
  CHECK(Read(pair.primary->host(), "vol", 500 + 19 * 7, 3000) == last);
  CHECK(Read(pair.mirror->host(), "vol", 500 + 19 * 7, 3000) == last);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("256 concurrent sync writes under a 200 ms link delay all complete, many in flight",
          "[integration][pair]") {
  Pair pair;
  pair.CreateVolume("vol", 512 * kTrack);
  {
    grpc::ClientContext context;
    v1::InjectFaultRequest fault;
    fault.set_kind(v1::FAULT_DELAY_RECORDS);
    fault.set_duration_ms(200);
    v1::InjectFaultReply reply;
    REQUIRE(pair.primary->admin().InjectFault(&context, fault, &reply).ok());
  }
  constexpr int kWrites = 256;
  struct Call {
    grpc::ClientContext context;
    v1::WriteRequest request;
    v1::WriteReply reply;
    grpc::Status status;
  };
  std::vector<Call> calls(kWrites);
  std::mutex mu;
  std::condition_variable cv;
  int done = 0;
  for (int i = 0; i < kWrites; ++i) {
    Call& c = calls[i];
    c.context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
    c.request.set_volume("vol");
    c.request.set_offset(i * kTrack * 2);
    c.request.set_data(Pattern(4096, 1000 + i));
    c.request.set_crc32c(Crc(c.request.data()));
    pair.primary->host().async()->Write(&c.context, &c.request, &c.reply, [&, i](grpc::Status s) {
      std::lock_guard<std::mutex> lock(mu);
      calls[i].status = s;
      ++done;
      cv.notify_all();
    });
  }
  {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [&] { return done == kWrites; });
  }
  int ok = 0, mirrored = 0;
  for (const Call& c : calls) {
    ok += c.status.ok();
    mirrored += c.reply.mirrored();
  }
  CHECK(ok == kWrites);
  CHECK(mirrored == kWrites);
  v1::StatusReply status = pair.primary->Status();
  CHECK(status.link().in_flight_peak() >= 16);
  CHECK(status.link().records_acked() == kWrites);
  CHECK(Read(pair.mirror->host(), "vol", 255 * kTrack * 2, 4096) == Pattern(4096, 1000 + 255));
}

}  // namespace simarray::testing

namespace simarray::testing {

TEST_CASE("a mirror that stops answering is declared lost within ack_timeout",
          "[integration][pair][link]") {
  const std::string policy = GENERATE("continue", "fail");
  INFO("link.policy = " << policy);
  DaemonOptions options;
  options.ack_timeout_ms = 500;
  options.link_policy = policy;
  Pair pair(options);
  pair.CreateVolume("vol", 4 * 65536);
  REQUIRE(Write(pair.primary->host(), "vol", 0, Pattern(100, 1)).status.ok());
  pair.mirror->Kill(SIGSTOP);  // the mirror stops answering; its socket stays open
  WriteOutcome w = Write(pair.primary->host(), "vol", 0, Pattern(100, 2));
  const v1::StatusReply during = pair.primary->Status();
  kill(pair.mirror_pid(), SIGCONT);
  if (policy == "continue") {
    // docs/pair.md: writes go on locally, not mirrored; the track becomes owed.
    REQUIRE(w.status.ok());
    CHECK_FALSE(w.reply.mirrored());
  } else {
    CHECK(w.status.error_code() == grpc::StatusCode::UNAVAILABLE);
    CHECK_THAT(w.status.error_message(), Catch::Contains("link.policy"));
  }
  CHECK(during.link().ack_timeouts() + during.link().heartbeat_timeouts() >= 1);
  // Either way the write is committed on the primary: reads see it there.
  CHECK(Read(pair.primary->host(), "vol", 0, 100) == Pattern(100, 2));
  // The link comes back by itself and the owed track is resynced.
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(Read(pair.mirror->host(), "vol", 0, 100) == Pattern(100, 2));
  WriteOutcome again = Write(pair.primary->host(), "vol", 65536, Pattern(100, 3));
  REQUIRE(again.status.ok());
  CHECK(again.reply.mirrored());
  v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "vol");
  CHECK(check.consistent());
  CHECK(check.owed_tracks() == 0);
}

TEST_CASE("volumes: twins on the mirror, listing, and delete refused while paired",
          "[integration][pair][volumes]") {
  Pair pair;
  pair.CreateVolume("alpha", 4 * 65536);
  auto list = [](Daemon& d) {
    grpc::ClientContext context;
    v1::ListVolumesReply reply;
    REQUIRE(d.admin().ListVolumes(&context, v1::ListVolumesRequest(), &reply).ok());
    return reply;
  };
  v1::ListVolumesReply on_primary = list(*pair.primary);
  v1::ListVolumesReply on_mirror = list(*pair.mirror);
  REQUIRE(on_primary.volumes_size() == 1);
  REQUIRE(on_mirror.volumes_size() == 1);
  CHECK(on_mirror.volumes(0).name() == "alpha");
  CHECK(on_mirror.volumes(0).id() == on_primary.volumes(0).id());
  CHECK(on_mirror.volumes(0).size() == on_primary.volumes(0).size());

  auto create = [&](const std::string& name, uint64_t size) {
    grpc::ClientContext context;
    v1::CreateVolumeRequest request;
    request.set_name(name);
    request.set_size(size);
    v1::VolumeInfo reply;
    return pair.primary->admin().CreateVolume(&context, request, &reply);
  };
  CHECK(create("alpha", 65536).error_code() == grpc::StatusCode::ALREADY_EXISTS);
  CHECK(create("Bad Name", 65536).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(create("odd", 65536 + 1).error_code() == grpc::StatusCode::INVALID_ARGUMENT);

  auto remove = [&](bool force) {
    grpc::ClientContext context;
    v1::DeleteVolumeRequest request;
    request.set_name("alpha");
    request.set_force(force);
    v1::DeleteVolumeReply reply;
    return pair.primary->admin().DeleteVolume(&context, request, &reply);
  };
  CHECK(remove(false).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(remove(true).ok());
  CHECK(list(*pair.primary).volumes_size() == 0);
  CHECK(list(*pair.mirror).volumes_size() == 0);
  CHECK(Write(pair.primary->host(), "alpha", 0, "x").status.error_code() ==
        grpc::StatusCode::NOT_FOUND);
}

}  // namespace simarray::testing
