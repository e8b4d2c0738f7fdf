// Hostile input on every port a daemon listens on (host gRPC, host NBD, admin, peer,
// metrics): garbage bytes, messages over the size limit, and slow connections that open and
// then stall. The daemon must answer with the status of docs/errors.md where there is a call
// to answer, close what never becomes one, keep serving everyone else and lose nothing.
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>

#include "daemon_process.h"
#include "raw_socket.h"
#include "simarray/v1/peer.grpc.pb.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

std::chrono::system_clock::time_point Soon() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

struct Port {
  const char* name;
  std::string address;
};

std::vector<Port> EveryPort(Daemon& d) {
  return {{"host gRPC", d.host_address()},
          {"host NBD", d.nbd_address()},
          {"admin", d.admin_address()},
          {"peer", d.peer_address()},
          {"metrics", d.metrics_address()}};
}

// The daemon still does its job: a write reads back, status and metrics answer.
void CheckServing(Daemon& d, const std::string& data) {
  REQUIRE(Write(d.host(), "vol", kTrack, data).status.ok());
  CHECK(Read(d.host(), "vol", kTrack, data.size()) == data);
  CHECK(d.Status().role() == "primary");
  CHECK(HttpGet(d.metrics_address(), "/metrics").status == 200);
}

}  // namespace

TEST_CASE("hostile input on every port: garbage, oversize messages, stalled connections",
          "[integration][errors][hostile]") {
  TempDir dir;
  DaemonOptions options;
  options.nbd_adaptors = 1;
  options.metrics = true;
  Daemon d(dir.path() + "/solo", options);  // max_write 4M: messages up to 5M
  d.Start();
  REQUIRE(CreateVolumeCall(d, "vol", 8 * kTrack).ok());
  const std::string old_bytes = Pattern(8 * kTrack, 21);
  REQUIRE(Write(d.host(), "vol", 0, old_bytes).status.ok());

  SECTION("garbage bytes, and garbage after a valid opening, on every port") {
    const std::string garbage = Pattern(100000, 22);
    for (const Port& port : EveryPort(d)) {
      INFO(port.name);
      SendGarbage(port.address, garbage);
      SendGarbage(port.address, "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + garbage);
      SendGarbage(port.address, "GET /metrics HTTP/1.1\r\nHost: x\r\n" + garbage);
      SendGarbage(port.address, std::string("NBDMAGICIHAVEOPT") + garbage);
    }
    CheckServing(d, Pattern(4096, 23));
    // The NBD port counted what it closed (Status and /metrics).
    v1::StatusReply status = d.Status();
    REQUIRE(status.nbd_size() == 1);
    CHECK(status.nbd(0).host_adaptor() == "nbd0");
    CHECK(status.nbd(0).connections_accepted() >= 4);
    CHECK(status.nbd(0).protocol_errors() >= 1);
    CHECK(status.nbd(0).connections_open() == 0);
    CHECK_THAT(HttpGet(d.metrics_address(), "/metrics").body,
               Catch::Contains("simarray_nbd_connection_events_total{adaptor=\"nbd0\","
                               "event=\"protocol_error\"}"));
  }
  SECTION("messages over the limit: RESOURCE_EXHAUSTED, nothing changed") {
    const std::string big((6 << 20), 'x');
    WriteOutcome w = Write(d.host(), "vol", 0, big);
    CHECK(w.status.error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(CreateVolumeCall(d, big, 1 << 20).error_code() == grpc::StatusCode::RESOURCE_EXHAUSTED);
    auto peer = v1::PeerService::NewStub(
        grpc::CreateChannel(d.peer_address(), grpc::InsecureChannelCredentials()));
    grpc::ClientContext context;
    context.set_deadline(Soon());
    v1::ChallengeRequest challenge;
    challenge.set_daemon_id(big);
    v1::ChallengeReply nonce;
    CHECK(peer->Challenge(&context, challenge, &nonce).error_code() ==
          grpc::StatusCode::RESOURCE_EXHAUSTED);
    CHECK(Pen(d.Status()).depth() == 0);
    CheckServing(d, Pattern(4096, 24));
  }
  SECTION("connections that open and stall are closed, and nobody else waits for them") {
    // Each port gets a few connections that send the start of what it speaks, or nothing.
    std::vector<std::pair<const char*, int>> stalled;
    for (const Port& port : EveryPort(d)) {
      for (const std::string opening : {"", "PRI * HTTP", "GET /metr"}) {
        for (int i = 0; i < 4; ++i) {
          const int fd = ConnectTcp(port.address);
          if (!opening.empty()) (void)!send(fd, opening.data(), opening.size(), MSG_NOSIGNAL);
          stalled.emplace_back(port.name, fd);
        }
      }
    }
    CheckServing(d, Pattern(4096, 25));
    // Handshake and idle limits are about 10 s (docs/security.md); a minute is plenty.
    for (const auto& [name, fd] : stalled) {
      INFO(name << " kept a stalled connection open");
      CHECK(ClosedByPeer(fd, 60000));
      close(fd);
    }
    CheckServing(d, Pattern(4096, 26));
  }
  CHECK(Read(d.host(), "vol", 0, kTrack) == old_bytes.substr(0, kTrack));
  CHECK(Pen(d.Status()).depth() == 0);
}

}  // namespace simarray::testing
