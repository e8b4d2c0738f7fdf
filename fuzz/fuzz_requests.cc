// Fuzz target: the request validation of every host, admin and peer call, on real arrays.
// Two arrays run in this process for the whole session, on loopback ports: a primary (host
// and admin calls) and a mirror (peer calls, on a session opened by Challenge and Hello).
// Input: byte 0 picks the call (low 4 bits) and whether to fix up the data's CRC-32C (bit
// 7, so writes get past the check and into the pen and cache); the rest is the request
// message in protobuf wire format. Every call must come back with a status (a deadline
// counts as a hang) and the daemons must survive. Role changes (Failover, Failback, Swap,
// Demote, Promote) are not fuzzed: they change what every later input would meet.
//
// SIMARRAY_FUZZ_WRITE_SEEDS=DIR: write one valid request of each kind to DIR and exit
// (how fuzz/corpus/fuzz_requests was made). SIMARRAY_FUZZ_VERBOSE: print each call's status.
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>

#include "daemon/array.h"
#include "daemon/config.h"
#include "simarray/base/crc32c.h"
#include "simarray/v1/admin.grpc.pb.h"
#include "simarray/v1/host.grpc.pb.h"
#include "simarray/v1/peer.grpc.pb.h"
#include "spdlog/spdlog.h"

namespace simarray::fuzz {
namespace {

enum Call : uint8_t {
  kWrite,
  kRead,
  kWriteStream,
  kFlush,
  kStatus,
  kCreateVolume,
  kDeleteVolume,
  kCheckConsistency,
  kInjectFault,
  kChallenge,
  kHello,
  kShip,
  kTrackDigests,
  kPeerCreateVolume,
  kPeerDeleteVolume,
  kListOwed,
  kCalls
};
constexpr uint8_t kFixCrc = 0x80;

struct Arrays {
  std::filesystem::path dir;
  std::unique_ptr<daemon::Array> primary, mirror;
  std::unique_ptr<v1::HostService::Stub> host;
  std::unique_ptr<v1::AdminService::Stub> admin;
  std::unique_ptr<v1::PeerService::Stub> peer;
  std::string session;
};

std::unique_ptr<daemon::Array> StartArray(const std::filesystem::path& dir, const char* role,
                                          daemon::BoundAddresses* bound) {
  const std::string text = std::string("name = \"") + role + "\"\nrole = \"" + role +
                           "\"\ndata_dir = \"" + dir.string() +
                           "\"\nmax_write = \"1M\"\n[cache]\nsize = \"16M\"\n"
                           "[mirror_queue]\ncapacity = 256\n";
  auto config = daemon::ParseConfig(text, "fuzz.toml", "");
  if (!config.ok()) std::abort();
  auto array = std::make_unique<daemon::Array>(*config);
  auto started = array->Start();
  if (!started.ok()) {
    std::fprintf(stderr, "fuzz: %s\n", std::string(started.status().message()).c_str());
    std::abort();
  }
  *bound = *started;
  return array;
}

template <typename Service>
std::unique_ptr<typename Service::Stub> Connect(const std::string& address) {
  grpc::ChannelArguments args;
  args.SetMaxSendMessageSize(64 << 20);
  args.SetMaxReceiveMessageSize(64 << 20);
  return Service::NewStub(
      grpc::CreateCustomChannel(address, grpc::InsecureChannelCredentials(), args));
}

void Ready(grpc::ClientContext& context, const std::string& session = "") {
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(20));
  if (!session.empty()) context.AddMetadata("simarray-peer-session", session);
}

void Check(const grpc::Status& status) {
  static const bool verbose = std::getenv("SIMARRAY_FUZZ_VERBOSE") != nullptr;
  if (verbose)
    std::fprintf(stderr, "fuzz: %d %s\n", status.error_code(), status.error_message().c_str());
  // A deadline means the daemon hung on this input.
  if (status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED ||
      status.error_code() == grpc::StatusCode::UNAVAILABLE) {
    std::fprintf(stderr, "fuzz: call failed with %d: %s\n", status.error_code(),
                 status.error_message().c_str());
    std::abort();
  }
}

Arrays& Get() {
  static Arrays* arrays = [] {
    spdlog::set_level(spdlog::level::off);
    auto* a = new Arrays;
    char pattern[] = "/tmp/simarray-fuzz-XXXXXX";
    a->dir = ::mkdtemp(pattern);
    daemon::BoundAddresses p, m;
    a->primary = StartArray(a->dir / "primary", "primary", &p);
    a->mirror = StartArray(a->dir / "mirror", "mirror", &m);
    a->host = Connect<v1::HostService>(p.host_adaptors.begin()->second);
    a->admin = Connect<v1::AdminService>(p.admin);
    a->peer = Connect<v1::PeerService>(m.peer);
    grpc::ClientContext create;
    Ready(create);
    v1::CreateVolumeRequest volume;
    volume.set_name("vol");
    volume.set_size(4 << 20);
    v1::VolumeInfo info;
    Check(a->admin->CreateVolume(&create, volume, &info));
    // A session on the mirror (no secret configured: Hello needs no proof), and the twin.
    grpc::ClientContext hello_context;
    Ready(hello_context);
    v1::HelloRequest hello;
    hello.set_daemon_id("fuzzer");
    hello.set_track_size(64 << 10);
    v1::HelloReply reply;
    Check(a->peer->Hello(&hello_context, hello, &reply));
    a->session = reply.session();
    grpc::ClientContext twin_context;
    Ready(twin_context, a->session);
    v1::PeerVolume twin;
    twin.set_name("vol");
    twin.set_id(info.id());
    twin.set_size(info.size());
    v1::PeerVolumeReply twin_reply;
    Check(a->peer->CreateVolume(&twin_context, twin, &twin_reply));
    std::atexit([] {
      std::error_code ec;
      std::filesystem::remove_all(Get().dir, ec);
    });
    return a;
  }();
  return *arrays;
}

template <typename Message>
bool Parse(std::string_view bytes, Message* message) {
  return message->ParseFromArray(bytes.data(), static_cast<int>(bytes.size()));
}

uint32_t CrcOf(const std::string& data) {
  return Crc32c({reinterpret_cast<const uint8_t*>(data.data()), data.size()});
}

void Run(uint8_t selector, std::string_view body) {
  Arrays& a = Get();
  const bool fix_crc = selector & kFixCrc;
  grpc::ClientContext context;
  switch (static_cast<Call>((selector & 0x7f) % kCalls)) {
    case kWrite: {
      v1::WriteRequest request;
      if (!Parse(body, &request)) return;
      if (fix_crc) request.set_crc32c(CrcOf(request.data()));
      Ready(context);
      v1::WriteReply reply;
      return Check(a.host->Write(&context, request, &reply));
    }
    case kRead: {
      v1::ReadRequest request;
      if (!Parse(body, &request)) return;
      Ready(context);
      v1::ReadReply reply;
      return Check(a.host->Read(&context, request, &reply));
    }
    case kWriteStream: {
      // The header, then its declared bytes (at most 1 MiB) in 64 KiB chunks.
      v1::WriteStreamRequest request;
      if (!Parse(body, &request)) return;
      Ready(context);
      v1::WriteReply reply;
      auto stream = a.host->WriteStream(&context, &reply);
      if (request.has_header()) {
        const std::string data(std::min<uint64_t>(request.header().length(), 1 << 20), 'f');
        if (fix_crc) request.mutable_header()->set_crc32c(CrcOf(data));
        stream->Write(request);
        for (size_t at = 0; at < data.size(); at += 64 << 10) {
          v1::WriteStreamRequest chunk;
          chunk.set_chunk(data.substr(at, 64 << 10));
          if (!stream->Write(chunk)) break;
        }
      } else {
        stream->Write(request);
      }
      stream->WritesDone();
      return Check(stream->Finish());
    }
    case kFlush: {
      v1::FlushRequest request;
      if (!Parse(body, &request)) return;
      Ready(context);
      v1::FlushReply reply;
      return Check(a.host->Flush(&context, request, &reply));
    }
    case kStatus: {
      Ready(context);
      v1::StatusReply reply;
      return Check(a.admin->Status(&context, v1::StatusRequest(), &reply));
    }
    case kCreateVolume: {
      v1::CreateVolumeRequest request;
      if (!Parse(body, &request)) return;
      request.set_size(std::min<uint64_t>(request.size(), 64 << 20));  // disk space
      Ready(context);
      v1::VolumeInfo reply;
      return Check(a.admin->CreateVolume(&context, request, &reply));
    }
    case kDeleteVolume: {
      v1::DeleteVolumeRequest request;
      if (!Parse(body, &request) || request.name() == "vol") return;
      Ready(context);
      v1::DeleteVolumeReply reply;
      return Check(a.admin->DeleteVolume(&context, request, &reply));
    }
    case kCheckConsistency: {
      v1::CheckConsistencyRequest request;
      if (!Parse(body, &request)) return;
      request.set_wait_ms(std::min<uint32_t>(request.wait_ms(), 10));
      Ready(context);
      v1::CheckConsistencyReply reply;
      return Check(a.admin->CheckConsistency(&context, request, &reply));
    }
    case kInjectFault: {
      v1::InjectFaultRequest request;
      if (!Parse(body, &request)) return;
      request.set_duration_ms(std::min<uint32_t>(request.duration_ms(), 10));
      Ready(context);
      v1::InjectFaultReply reply;
      return Check(a.admin->InjectFault(&context, request, &reply));
    }
    case kChallenge: {
      v1::ChallengeRequest request;
      if (!Parse(body, &request)) return;
      Ready(context);
      v1::ChallengeReply reply;
      return Check(a.peer->Challenge(&context, request, &reply));
    }
    case kHello: {
      v1::HelloRequest request;
      if (!Parse(body, &request)) return;
      Ready(context);
      v1::HelloReply reply;
      return Check(a.peer->Hello(&context, request, &reply));
    }
    case kShip: {
      v1::ShipRequest request;
      if (!Parse(body, &request)) return;
      if (fix_crc) {
        for (auto& record : *request.mutable_records()) record.set_crc32c(CrcOf(record.data()));
      }
      Ready(context, a.session);
      auto stream = a.peer->Ship(&context);
      stream->Write(request);
      stream->WritesDone();
      v1::ShipReply reply;
      while (stream->Read(&reply)) {
      }
      return Check(stream->Finish());
    }
    case kTrackDigests: {
      v1::TrackDigestsRequest request;
      if (!Parse(body, &request)) return;
      Ready(context, a.session);
      v1::TrackDigestsReply reply;
      return Check(a.peer->TrackDigests(&context, request, &reply));
    }
    case kPeerCreateVolume: {
      v1::PeerVolume request;
      if (!Parse(body, &request)) return;
      request.set_size(std::min<uint64_t>(request.size(), 64 << 20));
      Ready(context, a.session);
      v1::PeerVolumeReply reply;
      return Check(a.peer->CreateVolume(&context, request, &reply));
    }
    case kPeerDeleteVolume: {
      v1::PeerVolume request;
      if (!Parse(body, &request) || request.name() == "vol") return;
      Ready(context, a.session);
      v1::PeerVolumeReply reply;
      return Check(a.peer->DeleteVolume(&context, request, &reply));
    }
    case kListOwed: {
      Ready(context, a.session);
      v1::ListOwedReply reply;
      return Check(a.peer->ListOwed(&context, v1::ListOwedRequest(), &reply));
    }
    case kCalls:
      return;
  }
}

// One valid request of each kind, as seeds.
void WriteSeeds(const std::filesystem::path& dir) {
  std::filesystem::create_directories(dir);
  auto seed = [&](const char* name, uint8_t selector, const google::protobuf::Message& m) {
    std::ofstream out(dir / name, std::ios::binary);
    out.put(static_cast<char>(selector));
    out << m.SerializeAsString();
  };
  v1::WriteRequest write;
  write.set_volume("vol");
  write.set_offset(65000);
  write.set_data(std::string(5000, 'w'));
  seed("write", kWrite | kFixCrc, write);
  write.set_crc32c(1);
  seed("write-bad-crc", kWrite, write);
  v1::ReadRequest read;
  read.set_volume("vol");
  read.set_offset(100);
  read.set_length(70000);
  seed("read", kRead, read);
  v1::WriteStreamRequest stream;
  stream.mutable_header()->set_volume("vol");
  stream.mutable_header()->set_offset(4096);
  stream.mutable_header()->set_length(200000);
  seed("write-stream", kWriteStream | kFixCrc, stream);
  v1::FlushRequest flush;
  flush.set_volume("vol");
  seed("flush", kFlush, flush);
  seed("status", kStatus, v1::StatusRequest());
  v1::CreateVolumeRequest create;
  create.set_name("other");
  create.set_size(1 << 20);
  seed("create-volume", kCreateVolume, create);
  v1::DeleteVolumeRequest del;
  del.set_name("other");
  seed("delete-volume", kDeleteVolume, del);
  v1::CheckConsistencyRequest consistency;
  consistency.set_volume("vol");
  seed("consistency", kCheckConsistency, consistency);
  v1::InjectFaultRequest fault;
  fault.set_kind(v1::FAULT_CORRUPT_NEXT_WRITE);
  seed("fault", kInjectFault, fault);
  v1::ChallengeRequest challenge;
  challenge.set_daemon_id("peer");
  seed("challenge", kChallenge, challenge);
  v1::HelloRequest hello;
  hello.set_daemon_id("peer");
  hello.set_role("primary");
  hello.set_track_size(64 << 10);
  hello.add_volumes()->set_name("vol");
  seed("hello", kHello, hello);
  v1::ShipRequest ship;
  v1::ShipRecord* record = ship.add_records();
  record->set_record_id(1);
  record->set_sequence(1);
  record->set_volume_id(1);
  record->set_track(0);
  record->set_offset(512);
  record->set_data(std::string(1024, 's'));
  seed("ship", kShip | kFixCrc, ship);
  // An async cycle: a partial and a whole record, then the end marker (staged, then applied).
  v1::ShipRequest cycle;
  for (uint64_t i = 0; i < 2; ++i) {
    v1::ShipRecord* r = cycle.add_records();
    r->set_record_id(i + 1);
    r->set_sequence(10 + i);
    r->set_volume_id(1);
    r->set_track(i);
    r->set_offset(i == 0 ? 4096 : 0);
    r->set_data(std::string(i == 0 ? 4096 : 64 << 10, static_cast<char>('c' + i)));
    r->set_cycle(5);
  }
  v1::ShipRecord* marker = cycle.add_records();
  marker->set_record_id(3);
  marker->set_sequence(12);
  marker->set_cycle(5);
  marker->set_cycle_end(true);
  marker->set_cycle_records(2);
  marker->set_cycle_consistent(true);
  seed("ship-cycle", kShip | kFixCrc, cycle);
  v1::TrackDigestsRequest digests;
  digests.set_volume_id(1);
  digests.set_count(8);
  seed("track-digests", kTrackDigests, digests);
  v1::PeerVolume twin;
  twin.set_name("twin");
  twin.set_id(7);
  twin.set_size(1 << 20);
  seed("peer-create-volume", kPeerCreateVolume, twin);
  seed("peer-delete-volume", kPeerDeleteVolume, twin);
  seed("list-owed", kListOwed, v1::ListOwedRequest());
}

}  // namespace
}  // namespace simarray::fuzz

extern "C" int LLVMFuzzerInitialize(int* argc, char*** argv) {
  if (const char* dir = std::getenv("SIMARRAY_FUZZ_WRITE_SEEDS")) {
    simarray::fuzz::WriteSeeds(dir);
    std::exit(0);
  }
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  simarray::fuzz::Run(data[0], std::string_view(reinterpret_cast<const char*>(data) + 1, size - 1));
  return 0;
}
