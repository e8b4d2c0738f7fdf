// Crash safety: kill -9 of the primary loses no acknowledged write, and nothing of a write
// that was not committed is visible after restart (pen entries found at recovery are dropped,
// docs/write-path.md, "The cache region").
#include <signal.h>

#include <catch2/catch.hpp>
#include <fstream>
#include <sstream>
#include <string>

#include "daemon_process.h"

namespace simarray::testing {
namespace {
constexpr uint64_t kTrack = 64 << 10;

std::string Log(const Daemon& d) {
  std::ifstream in(d.dir() + "/daemon.log");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

TEST_CASE("kill -9 of the primary mid-stream: the open write vanishes, acked writes stay",
          "[integration][restart]") {
  DaemonOptions options;
  options.holding_pen = "cache";
  Pair pair(options);
  pair.CreateVolume("vol", 16 * kTrack);
  std::vector<std::string> acked;
  for (uint32_t i = 0; i < 8; ++i) {
    acked.push_back(Pattern(kTrack + 100, 20 + i));
    REQUIRE(Write(pair.primary->host(), "vol", i * 2 * kTrack, acked.back()).status.ok());
  }
  {
    // The pen is where the config put it, and each write (two tracks) pushed two requests.
    v1::StatusReply status = pair.primary->Status();
    CHECK(Pen(status).placement() == "cache");
    CHECK(status.queue_pushed() == 2 * acked.size());
    CHECK(status.cache().pen_records_dropped() == 0);  // a fresh region: nothing recovered
  }
  // Track 1 holds the tail of write 0; the stream covers tracks 0..3 from an offset.
  const std::string before = Read(pair.primary->host(), "vol", 0, 16 * kTrack);
  const std::string streamed = Pattern(3 * kTrack, 99);
  grpc::ClientContext context;
  v1::WriteReply reply;
  auto writer = pair.primary->host().WriteStream(&context, &reply);
  v1::WriteStreamRequest header;
  header.mutable_header()->set_volume("vol");
  header.mutable_header()->set_offset(kTrack / 2);
  header.mutable_header()->set_length(streamed.size());
  header.mutable_header()->set_crc32c(Crc(streamed));
  REQUIRE(writer->Write(header));
  v1::WriteStreamRequest chunk;
  chunk.set_chunk(streamed.substr(0, 2 * kTrack));
  REQUIRE(writer->Write(chunk));
  REQUIRE(Eventually([&] { return Pen(pair.primary->Status()).depth() >= 2; }));
  // The open write's requests wait in the pen, each in a pen record of the cache region.
  const uint64_t held = Pen(pair.primary->Status()).depth();

  pair.primary->Kill(SIGKILL);
  context.TryCancel();
  pair.primary->Start();

  CHECK_THAT(Log(*pair.primary), Catch::Contains("pen records of uncommitted writes"));
  const std::string after = Read(pair.primary->host(), "vol", 0, 16 * kTrack);
  CHECK(after == before);
  for (uint32_t i = 0; i < acked.size(); ++i) {
    CHECK(after.substr(i * 2 * kTrack, acked[i].size()) == acked[i]);
  }
  v1::StatusReply status = pair.primary->Status();
  CHECK(status.cache().staging() == 0);
  CHECK(Pen(status).depth() == 0);
  CHECK(Pen(status).placement() == "cache");
  // Recovery found the open write's pen records and dropped every one of them.
  CHECK(status.cache().pen_records_dropped() == held);
  CtlResult shown = Ctl("--admin " + pair.primary->admin_address() + " status");
  INFO(shown.out);
  CHECK_THAT(shown.out, Catch::Contains("dropped " + std::to_string(held) + " pen records"));
  CHECK(Read(pair.mirror->host(), "vol", 0, 16 * kTrack) == before);

  // The pair works again after the restart, and sequence numbers keep growing.
  REQUIRE(Eventually([&] { return pair.primary->Status().link().state() == "up"; }));
  WriteOutcome w = Write(pair.primary->host(), "vol", 0, Pattern(5000, 55));
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("acknowledged writes survive kill -9 with a persistent cache and write-through",
          "[integration][restart]") {
  const bool persistent = GENERATE(true, false);
  INFO("cache.persistent = " << persistent);
  TempDir dir;
  DaemonOptions options;
  options.persistent = persistent;
  Daemon d(dir.path() + "/solo", options);
  d.Start();
  {
    grpc::ClientContext context;
    v1::CreateVolumeRequest request;
    request.set_name("vol");
    request.set_size(64 * kTrack);
    v1::VolumeInfo info;
    REQUIRE(d.admin().CreateVolume(&context, request, &info).ok());
  }
  std::string expected(64 * kTrack, '\0');
  for (uint32_t i = 0; i < 40; ++i) {
    const uint64_t offset = (i * 7919) % (60 * kTrack);
    std::string data = Pattern(3000 + i * 100, 300 + i);
    REQUIRE(Write(d.host(), "vol", offset, data).status.ok());
    expected.replace(offset, data.size(), data);
  }
  d.Kill(SIGKILL);
  d.Start();
  CHECK(Read(d.host(), "vol", 0, expected.size()) == expected);
  CHECK(d.Status().sequence() >= 40);
}

}  // namespace simarray::testing
