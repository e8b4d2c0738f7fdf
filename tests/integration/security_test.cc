// Security (docs/security.md, docs/errors.md): the admin token, the peer link's
// challenge-response authentication, and what an eavesdropper on the link sees.
#include <sys/stat.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <iterator>

#include "daemon_process.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "simarray/base/secret.h"
#include "simarray/v1/peer.grpc.pb.h"
#include "tcp_proxy.h"

namespace simarray::testing {
namespace {

constexpr char kSecret[] = "correct-horse-battery-staple-7f3a9c";

std::chrono::system_clock::time_point Soon() {
  return std::chrono::system_clock::now() + std::chrono::seconds(10);
}

grpc::Status AdminStatus(Daemon& daemon, const std::string& authorization) {
  grpc::ClientContext context;
  context.set_deadline(Soon());
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  v1::StatusReply reply;
  return daemon.admin().Status(&context, v1::StatusRequest(), &reply);
}

std::unique_ptr<v1::PeerService::Stub> PeerStub(const std::string& address) {
  return v1::PeerService::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()));
}

// The proofs exactly as docs/security.md and peer.proto spell them, computed here on their
// own rather than with the daemon's code.
std::string Joined(std::initializer_list<std::string> fields) {
  std::string out;
  for (const std::string& f : fields) {
    if (!out.empty()) out.push_back('\0');
    out += f;
  }
  return out;
}

v1::HelloRequest SignedHello(v1::PeerService::Stub& peer, const std::string& secret) {
  grpc::ClientContext context;
  context.set_deadline(Soon());
  v1::ChallengeRequest challenge;
  challenge.set_daemon_id("intruder");
  v1::ChallengeReply nonce;
  REQUIRE(peer.Challenge(&context, challenge, &nonce).ok());
  v1::HelloRequest hello;
  hello.set_daemon_id("intruder");
  hello.set_role("mirror");
  hello.set_track_size(64 << 10);
  hello.set_nonce(nonce.nonce());
  hello.set_client_nonce(std::string(32, 'c'));
  hello.set_proof(HmacSha256(
      secret, Joined({"simarray hello", hello.nonce(), hello.client_nonce(), "intruder"})));
  return hello;
}

grpc::Status SayHello(v1::PeerService::Stub& peer, const v1::HelloRequest& hello,
                      v1::HelloReply* reply) {
  grpc::ClientContext context;
  context.set_deadline(Soon());
  return peer.Hello(&context, hello, reply);
}

grpc::Status ListOwed(v1::PeerService::Stub& peer, const std::string& session) {
  grpc::ClientContext context;
  context.set_deadline(Soon());
  if (!session.empty()) context.AddMetadata("simarray-peer-session", session);
  v1::ListOwedReply reply;
  return peer.ListOwed(&context, v1::ListOwedRequest(), &reply);
}

// A mirror, a TCP proxy that records the link, and a primary shipping through the proxy;
// both daemons from `options`.
struct WiredPair {
  WiredPair(const TempDir& dir, DaemonOptions options) {
    options.role = "mirror";
    mirror = std::make_unique<Daemon>(dir.path() + "/mirror", options);
    mirror->Start();
    wire = std::make_unique<TcpProxy>(mirror->peer_address());
    options.role = "primary";
    options.peer_address = wire->address();
    primary = std::make_unique<Daemon>(dir.path() + "/primary", options);
    primary->Start();
    REQUIRE(Eventually([&] { return primary->Status().link().state() == "up"; }));
  }
  // Creates volume "vol" and writes 64 KiB of Pattern(seed) at 0, mirrored; returns it.
  std::string WriteMirrored(uint32_t seed) {
    REQUIRE(CreateVolumeCall(*primary, "vol", 1 << 20).ok());
    const std::string data = Pattern(64 << 10, seed);
    WriteOutcome w = Write(primary->host(), "vol", 0, data);
    REQUIRE(w.status.ok());
    REQUIRE(w.reply.mirrored());
    return data;
  }
  std::unique_ptr<Daemon> mirror;
  std::unique_ptr<TcpProxy> wire;
  std::unique_ptr<Daemon> primary;
};

}  // namespace

TEST_CASE("admin calls need the token: none is UNAUTHENTICATED, a wrong one PERMISSION_DENIED",
          "[integration][security]") {
  TempDir dir;
  DaemonOptions options;
  options.admin_token = true;
  Daemon daemon(dir.path() + "/primary", options);
  daemon.Start();

  // The daemon made the token itself: random, readable by its owner only.
  const std::string token = daemon.admin_token();
  CHECK(token.size() == 64);
  struct stat st {};
  REQUIRE(::stat((daemon.data_dir() + "/admin.token").c_str(), &st) == 0);
  CHECK((st.st_mode & 077) == 0);

  grpc::Status none = AdminStatus(daemon, "");
  CHECK(none.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(none.error_message(), Catch::Contains("authorization: Bearer"));
  CHECK(AdminStatus(daemon, "Bearer " + std::string(64, '0')).error_code() ==
        grpc::StatusCode::PERMISSION_DENIED);
  CHECK(AdminStatus(daemon, token).error_code() == grpc::StatusCode::PERMISSION_DENIED);
  CHECK(AdminStatus(daemon, "Bearer " + token).ok());

  // A refused call changes nothing.
  {
    grpc::ClientContext context;
    context.set_deadline(Soon());
    v1::CreateVolumeRequest request;
    request.set_name("vol");
    request.set_size(1 << 20);
    v1::VolumeInfo reply;
    CHECK(daemon.admin().CreateVolume(&context, request, &reply).error_code() ==
          grpc::StatusCode::UNAUTHENTICATED);
  }
  grpc::ClientContext context;
  context.set_deadline(Soon());
  daemon.Authorize(context);
  v1::ListVolumesReply volumes;
  REQUIRE(daemon.admin().ListVolumes(&context, v1::ListVolumesRequest(), &volumes).ok());
  CHECK(volumes.volumes_size() == 0);

  v1::StatusReply status = daemon.Status();
  CHECK(status.admin_token_required());
  CHECK(status.admin_calls_refused() == 4);

  // Health stays open to probes.
  auto health = grpc::health::v1::Health::NewStub(
      grpc::CreateChannel(daemon.admin_address(), grpc::InsecureChannelCredentials()));
  grpc::ClientContext health_context;
  health_context.set_deadline(Soon());
  grpc::health::v1::HealthCheckResponse serving;
  CHECK(health->Check(&health_context, grpc::health::v1::HealthCheckRequest(), &serving).ok());

  // simarrayctl: --token-file, or SIMARRAY_TOKEN_FILE.
  const std::string admin = "--admin " + daemon.admin_address();
  CtlResult refused = Ctl(admin + " status");
  CHECK(refused.code == 2);
  CHECK_THAT(refused.out, Catch::Contains("UNAUTHENTICATED"));
  CtlResult allowed = Ctl(admin + " --token-file " + daemon.data_dir() + "/admin.token status");
  INFO(allowed.out);
  CHECK(allowed.code == 0);
  ::setenv("SIMARRAY_TOKEN_FILE", (daemon.data_dir() + "/admin.token").c_str(), 1);
  CtlResult from_env = Ctl(admin + " volume list");
  ::unsetenv("SIMARRAY_TOKEN_FILE");
  CHECK(from_env.code == 0);
  CtlResult missing = Ctl(admin + " --token-file " + dir.path() + "/nope status");
  CHECK(missing.code == 2);
  CHECK_THAT(missing.out, Catch::Contains("nope"));
}

TEST_CASE("a pair sharing a secret links up and mirrors", "[integration][security]") {
  DaemonOptions options;
  options.peer_secret = kSecret;
  Pair pair(options, options);
  pair.CreateVolume("vol", 1 << 20);
  WriteOutcome w = Write(pair.primary->host(), "vol", 4096, Pattern(8192, 1));
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(Read(pair.mirror->host(), "vol", 4096, 8192) == Pattern(8192, 1));
  CHECK(pair.primary->Status().peer_secret_configured());
  CHECK(pair.mirror->Status().peer_calls_refused() == 0);
}

TEST_CASE("a peer with a wrong secret, or a mirror that cannot prove it, is refused",
          "[integration][security]") {
  TempDir dir;
  DaemonOptions mirror_options;
  mirror_options.role = "mirror";
  DaemonOptions primary_options;
  primary_options.peer_secret = kSecret;
  SECTION("the mirror's secret differs") { mirror_options.peer_secret = "another-secret"; }
  SECTION("the mirror has no secret: it cannot prove the reply") {
    mirror_options.peer_secret = "";
  }
  Daemon mirror(dir.path() + "/mirror", mirror_options);
  mirror.Start();
  primary_options.peer_address = mirror.peer_address();
  Daemon primary(dir.path() + "/primary", primary_options);
  primary.Start();

  REQUIRE(Eventually([&] { return primary.Status().link().auth_failures() >= 2; }));
  CHECK(primary.Status().link().state() != "up");
  CHECK(primary.Status().link().connects() == 0);
  if (!mirror_options.peer_secret.empty()) CHECK(mirror.Status().peer_calls_refused() >= 2);
  // The primary still serves its hosts (policy continue); nothing reaches the mirror.
  v1::VolumeInfo volume;
  REQUIRE(CreateVolumeCall(primary, "vol", 1 << 20, &volume).ok());
  CHECK_FALSE(volume.paired());
  WriteOutcome w = Write(primary.host(), "vol", 0, Pattern(4096, 2));
  REQUIRE(w.status.ok());
  CHECK_FALSE(w.reply.mirrored());
  CHECK(mirror.Status().records_applied() == 0);
}

TEST_CASE("Ship without Hello, a forged session and a replayed Hello are UNAUTHENTICATED",
          "[integration][security]") {
  TempDir dir;
  DaemonOptions options;
  options.role = "mirror";
  options.peer_secret = kSecret;
  Daemon mirror(dir.path() + "/mirror", options);
  mirror.Start();
  auto peer = PeerStub(mirror.peer_address());

  // Ship straight away: refused, nothing applied.
  {
    grpc::ClientContext context;
    context.set_deadline(Soon());
    auto stream = peer->Ship(&context);
    v1::ShipRequest batch;
    v1::ShipRecord* record = batch.add_records();
    record->set_record_id(1);
    record->set_sequence(1);
    record->set_volume_id(1);
    record->set_data(std::string(4096, 'x'));
    stream->Write(batch);
    stream->WritesDone();
    v1::ShipReply reply;
    CHECK_FALSE(stream->Read(&reply));
    grpc::Status s = stream->Finish();
    CHECK(s.error_code() == grpc::StatusCode::UNAUTHENTICATED);
    CHECK_THAT(s.error_message(), Catch::Contains("Hello"));
  }
  CHECK(ListOwed(*peer, "").error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK(ListOwed(*peer, std::string(32, 'a')).error_code() == grpc::StatusCode::UNAUTHENTICATED);

  // A Hello signed with another secret, and one with a nonce the daemon never gave.
  v1::HelloReply reply;
  CHECK(SayHello(*peer, SignedHello(*peer, "another-secret"), &reply).error_code() ==
        grpc::StatusCode::UNAUTHENTICATED);
  v1::HelloRequest made_up = SignedHello(*peer, kSecret);
  made_up.set_nonce(std::string(32, 'n'));
  made_up.set_proof(HmacSha256(
      kSecret, Joined({"simarray hello", made_up.nonce(), made_up.client_nonce(), "intruder"})));
  CHECK(SayHello(*peer, made_up, &reply).error_code() == grpc::StatusCode::UNAUTHENTICATED);

  // The right proof opens a session, and the daemon proves it knows the secret too.
  v1::HelloRequest hello = SignedHello(*peer, kSecret);
  REQUIRE(SayHello(*peer, hello, &reply).ok());
  REQUIRE_FALSE(reply.session().empty());
  CHECK(reply.proof() == HmacSha256(kSecret, Joined({"simarray reply", hello.client_nonce(),
                                                     hello.nonce(), reply.session()})));
  CHECK(ListOwed(*peer, reply.session()).ok());

  // The same Hello again: its nonce is spent.
  v1::HelloReply replayed;
  grpc::Status again = SayHello(*peer, hello, &replayed);
  CHECK(again.error_code() == grpc::StatusCode::UNAUTHENTICATED);
  CHECK_THAT(again.error_message(), Catch::Contains("replayed"));
  CHECK(mirror.Status().records_applied() == 0);
  CHECK(mirror.Status().peer_calls_refused() == 6);
}

TEST_CASE("the peer secret never crosses the wire", "[integration][security]") {
  TempDir dir;
  DaemonOptions options;
  options.peer_secret = kSecret;
  WiredPair pair(dir, options);
  const std::string data = pair.WriteMirrored(3);
  const std::string captured = pair.wire->Captured();
  // The capture saw the link's traffic (the data travels in clear without TLS) ...
  CHECK(captured.find(data.substr(1000, 64)) != std::string::npos);
  // ... and never the secret, raw or in hex.
  CHECK(captured.find(kSecret) == std::string::npos);
  CHECK(captured.find(Hex(kSecret)) == std::string::npos);
  CHECK(captured.find(std::string(kSecret).substr(0, 12)) == std::string::npos);
}

TEST_CASE("mutual TLS on the peer link: the data crosses encrypted, strangers are refused",
          "[integration][security][tls]") {
  TempDir dir;
  MakeTestCerts(dir.path() + "/tls", {"primary", "mirror"});
  MakeTestCerts(dir.path() + "/other", {"intruder"}, "otherca");
  DaemonOptions options;
  options.tls_dir = dir.path() + "/tls";
  WiredPair pair(dir, options);
  Daemon& mirror = *pair.mirror;
  const std::string data = pair.WriteMirrored(4);
  CHECK(Read(mirror.host(), "vol", 0, data.size()) == data);
  const std::string captured = pair.wire->Captured();
  CHECK(captured.size() > data.size());  // the data went through the proxy ...
  CHECK(captured.find(data.substr(1000, 64)) == std::string::npos);  // ... encrypted

  auto challenge = [&](std::shared_ptr<grpc::ChannelCredentials> credentials) {
    auto peer = v1::PeerService::NewStub(grpc::CreateChannel(mirror.peer_address(), credentials));
    grpc::ClientContext call;
    call.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(3));
    v1::ChallengeReply nonce;
    return peer->Challenge(&call, v1::ChallengeRequest(), &nonce);
  };
  auto pem = [&](const std::string& file) {
    std::ifstream in(file);
    return std::string(std::istreambuf_iterator<char>(in), {});
  };
  auto with_cert = [&](const std::string& key_dir, const std::string& name) {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pem(dir.path() + "/tls/ca.crt");
    options.pem_private_key = pem(key_dir + "/" + name + ".key");
    options.pem_cert_chain = pem(key_dir + "/" + name + ".crt");
    return grpc::SslCredentials(options);
  };
  CHECK_FALSE(challenge(grpc::InsecureChannelCredentials()).ok());
  CHECK_FALSE(challenge(with_cert(dir.path() + "/other", "intruder")).ok());
  CHECK(challenge(with_cert(dir.path() + "/tls", "primary")).ok());
}

}  // namespace simarray::testing
