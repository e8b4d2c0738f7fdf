// The emulated link (docs/link-emulation.md): latency on every message, a lost message found
// by the target and recovered by a resync, the settings from the config and from simarrayctl.
// No assertion here is on speed; bandwidth is measured by the benchmark (make bench).

#include <catch2/catch.hpp>
#include <chrono>
#include <random>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

grpc::Status Emulate(Daemon& primary, const std::string& direction, double latency_ms, double loss,
                     v1::EmulateLinkReply* reply = nullptr) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  primary.Authorize(context);
  v1::EmulateLinkRequest request;
  request.set_direction(direction);
  request.mutable_emulation()->set_latency_ms(latency_ms);
  request.mutable_emulation()->set_loss(loss);
  v1::EmulateLinkReply ignored;
  return primary.admin().EmulateLink(&context, request, reply != nullptr ? reply : &ignored);
}

}  // namespace

TEST_CASE("an emulated link holds each sync write for its round trip", "[integration][link]") {
  Pair pair;
  pair.CreateVolume("vol", 4 * kTrack);
  v1::EmulateLinkReply reply;
  REQUIRE(Emulate(*pair.primary, "both", 40, 0, &reply).ok());
  CHECK(reply.out() == "40 ms, unlimited");
  CHECK(reply.back() == "40 ms, unlimited");
  CHECK(pair.primary->Status().link().emulation_out() == "40 ms, unlimited");
  // A sync write's reply waits for the record to go out and its ack to come back: at least
  // the two latencies (a lower bound; the time it takes beyond is not asserted).
  for (int i = 0; i < 3; ++i) {
    const auto start = std::chrono::steady_clock::now();
    const WriteOutcome w = Write(pair.primary->host(), "vol", i * 4096, Pattern(4096, i));
    const auto took = std::chrono::steady_clock::now() - start;
    REQUIRE(w.status.ok());
    CHECK(w.reply.mirrored());
    CHECK(took >= std::chrono::milliseconds(80));
  }
  // One direction only, then off; the target refuses, the source's settings stand.
  REQUIRE(Emulate(*pair.primary, "back", 0, 0, &reply).ok());
  CHECK(reply.out() == "40 ms, unlimited");
  CHECK(reply.back() == "off");
  CHECK(Emulate(*pair.mirror, "both", 10, 0).error_code() == grpc::StatusCode::FAILED_PRECONDITION);
  CHECK(Emulate(*pair.primary, "sideways", 10, 0).error_code() ==
        grpc::StatusCode::INVALID_ARGUMENT);
  CHECK(Emulate(*pair.primary, "both", -5, 0).error_code() == grpc::StatusCode::INVALID_ARGUMENT);
  REQUIRE(Emulate(*pair.primary, "both", 0, 0, &reply).ok());
  CHECK(reply.out() == "off");
  CHECK(pair.primary->Status().link().emulation_out() == "off");
  CHECK(Read(pair.mirror->host(), "vol", 0, 3 * 4096) ==
        Read(pair.primary->host(), "vol", 0, 3 * 4096));
}

TEST_CASE("messages lost on an emulated link end the stream, and a resync leaves the mirror equal",
          "[integration][link]") {
  DaemonOptions primary_options;
  primary_options.ack_timeout_ms = 400;  // heartbeats every 100 ms find a lost tail fast
  Pair pair(primary_options);
  pair.CreateVolume("vol", 32 * kTrack);
  REQUIRE(Emulate(*pair.primary, "both", 1, 0.05).ok());
  std::mt19937_64 random(5);
  int unmirrored = 0;
  for (int i = 0; i < 150; ++i) {
    const uint64_t offset = (random() % (32 * 16)) * 4096;
    const WriteOutcome w = Write(pair.primary->host(), "vol", offset, Pattern(4096, i));
    REQUIRE(w.status.ok());  // link.policy "continue": a lost link never fails a write
    unmirrored += w.reply.mirrored() ? 0 : 1;
  }
  const v1::StatusReply during = pair.primary->Status();
  CHECK(during.link().messages_lost() > 0);
  CHECK(during.link().link_losses() > 0);  // the mirror ended the stream at each gap
  REQUIRE(Emulate(*pair.primary, "both", 0, 0).ok());
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  const v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "vol");
  CHECK(check.consistent());
  CHECK(Read(pair.mirror->host(), "vol", 0, 32 * kTrack) ==
        Read(pair.primary->host(), "vol", 0, 32 * kTrack));
  INFO("writes the link lost under: " << unmirrored);
}

TEST_CASE("link.emulate in the config, and simarrayctl link emulate", "[integration][link][ctl]") {
  DaemonOptions primary_options;
  primary_options.admin_token = true;
  primary_options.extra =
      "[link.emulate]\nlatency_ms = 15\njitter_ms = 5\nbandwidth = \"100Mbit\"\n"
      "back = { latency_ms = 15 }\n";
  Pair pair(primary_options);
  const v1::LinkStatus link = pair.primary->Status().link();
  CHECK(link.emulation_out() == "15 ms +0-5 ms, 100 Mbit/s");
  CHECK(link.emulation_back() == "15 ms, unlimited");
  const std::string admin = "--admin " + pair.primary->admin_address() + " --token-file " +
                            pair.primary->data_dir() + "/admin.token";
  CtlResult set = Ctl(admin +
                      " link emulate --latency-ms 30 --jitter-ms 5 --bandwidth 1Gbit "
                      "--loss 0.1% --direction out");
  CHECK(set.code == 0);
  CHECK(set.out ==
        "link emulation: out 30 ms +0-5 ms, 1 Gbit/s, 0.1% loss; back 15 ms, unlimited\n");
  CtlResult bad = Ctl(admin + " link emulate --bandwidth fast");
  CHECK(bad.code == 2);
  CHECK(bad.out.find("expected a rate such as 100Mbit") != std::string::npos);
  CHECK(Ctl(admin + " link emulate --off").code == 0);
  CHECK(pair.primary->Status().link().emulation_out() == "off");
  // A config error names the key and says what was expected.
  TempDir dir;
  const ExitResult r =
      RunDaemonExpectingExit(dir.path(), "data_dir = \"" + dir.path() +
                                             "\"\npeer.address = \"127.0.0.1:1\"\n"
                                             "[link.emulate]\nbandwidth = \"lots\"\n");
  CHECK(r.code != 0);
  CHECK(r.stderr_text.find("key link.emulate.bandwidth: expected a rate") != std::string::npos);
}

}  // namespace simarray::testing

namespace simarray::testing {

TEST_CASE("resync.max_rate holds a resync to its rate", "[integration][link]") {
  DaemonOptions primary_options;
  primary_options.extra = "[resync]\nmax_rate = \"8MB\"\n";  // 64 Mbit/s
  Pair pair(primary_options);
  pair.CreateVolume("vol", 64 * kTrack);
  SuspendLink(*pair.primary);
  for (int t = 0; t < 48; ++t) {
    REQUIRE(Write(pair.primary->host(), "vol", t * kTrack, Pattern(4096, t)).status.ok());
  }
  REQUIRE(pair.primary->Status().owed_tracks() == 48);
  // 48 tracks of 64 KiB are 3 MiB; a burst of 16 goes at once, the other 2 MiB take at least
  // 2 MiB / 8 MB/s = 0.26 s (a lower bound: what the rate forbids, not how fast it runs).
  const auto start = std::chrono::steady_clock::now();
  ResumeLink(*pair.primary);
  REQUIRE(Eventually([&] { return pair.primary->Status().owed_tracks() == 0; }));
  CHECK(std::chrono::steady_clock::now() - start >= std::chrono::milliseconds(250));
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());

  TempDir dir;
  const ExitResult r = RunDaemonExpectingExit(
      dir.path(), "data_dir = \"" + dir.path() + "\"\npeer.address = \"127.0.0.1:1\"\n" +
                      "[resync]\nmax_rate = \"fast\"\n");
  CHECK(r.code != 0);
  CHECK(r.stderr_text.find("key resync.max_rate: expected a rate") != std::string::npos);
}

}  // namespace simarray::testing
