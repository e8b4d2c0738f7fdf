// The holding pen keeps an invalid write away from the mirror (claims 1, 5, 8, 9): for
// every kind of invalid write, in both pen placements, the write is refused, both sides read
// the old bytes, every buffered request is deleted and none reaches the mirror queue.
#include <catch2/catch.hpp>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kOffset = 1000;
constexpr uint64_t kLength = 2 * kTrack + 1000;  // tracks 0, 1 and 2: three portions
constexpr uint64_t kPortions = 3;

struct Counters {
  uint64_t buffered, sent, deleted, depth, shipped, cancelled_writes;
  explicit Counters(const v1::StatusReply& s)
      : buffered(Pen(s).requests_buffered()),
        sent(Pen(s).requests_sent()),
        deleted(Pen(s).requests_deleted()),
        depth(Pen(s).depth()),
        shipped(s.link().records_shipped()),
        cancelled_writes(Pen(s).invalid_writes().at("cancelled")) {}
};

void InjectCorruptNextWrite(Daemon& primary) {
  grpc::ClientContext context;
  v1::InjectFaultRequest fault;
  fault.set_kind(v1::FAULT_CORRUPT_NEXT_WRITE);
  v1::InjectFaultReply reply;
  REQUIRE(primary.admin().InjectFault(&context, fault, &reply).ok());
}

}  // namespace

TEST_CASE("every kind of invalid write is refused and never reaches the mirror",
          "[integration][pen]") {
  const std::string placement = GENERATE("local", "cache");
  DaemonOptions options;
  options.holding_pen = placement;
  Pair pair(options);
  pair.CreateVolume("vol", 8 * kTrack);
  const std::string old_bytes = Pattern(4 * kTrack, 7);
  REQUIRE(Write(pair.primary->host(), "vol", 0, old_bytes).status.ok());
  const std::string data = Pattern(kLength, 8);
  auto& host = pair.primary->host();

  const std::string kind =
      GENERATE("crc_mismatch", "short_stream", "long_stream", "cancelled", "injected_corruption");
  INFO("placement " << placement << ", invalid kind " << kind);
  const Counters before(pair.primary->Status());

  if (kind == "crc_mismatch") {
    WriteOutcome w = WriteWithCrc(host, "vol", kOffset, data, Crc(data) ^ 0x1);
    CHECK(w.status.error_code() == grpc::StatusCode::DATA_LOSS);
    CHECK_THAT(w.status.error_message(), Catch::Contains("crc32c mismatch"));
  } else if (kind == "short_stream") {
    WriteOutcome w = StreamWrite(host, "vol", kOffset, data, 20000, kLength + 1000);
    CHECK(w.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(w.status.error_message(), Catch::Contains("declared"));
  } else if (kind == "long_stream") {
    WriteOutcome w = StreamWrite(host, "vol", kOffset, data, 20000, kLength - 500);
    CHECK(w.status.error_code() == grpc::StatusCode::INVALID_ARGUMENT);
    CHECK_THAT(w.status.error_message(), Catch::Contains("declared"));
  } else if (kind == "cancelled") {
    grpc::ClientContext context;
    v1::WriteReply reply;
    auto writer = host.WriteStream(&context, &reply);
    v1::WriteStreamRequest header;
    header.mutable_header()->set_volume("vol");
    header.mutable_header()->set_offset(kOffset);
    header.mutable_header()->set_length(kLength);
    header.mutable_header()->set_crc32c(Crc(data));
    REQUIRE(writer->Write(header));
    v1::WriteStreamRequest chunk;
    chunk.set_chunk(data.substr(0, kLength - 10));
    REQUIRE(writer->Write(chunk));
    REQUIRE(Eventually([&] { return Pen(pair.primary->Status()).depth() == kPortions; }));
    context.TryCancel();
    writer->Finish();
    // The client sees its own CANCELLED; the server's counter is what proves the drop.
    REQUIRE(Eventually([&] {
      return Counters(pair.primary->Status()).cancelled_writes == before.cancelled_writes + 1;
    }));
    CHECK(pair.primary->Status().writes_cancelled() >= 1);
  } else {
    InjectCorruptNextWrite(*pair.primary);
    WriteOutcome w = Write(host, "vol", kOffset, data);
    CHECK(w.status.error_code() == grpc::StatusCode::DATA_LOSS);
    CHECK_THAT(w.status.error_message(), Catch::Contains("injected"));
  }

  const v1::StatusReply status = pair.primary->Status();
  const Counters after(status);
  CHECK(after.buffered - before.buffered == kPortions);
  CHECK(after.deleted - before.deleted == kPortions);
  CHECK(after.sent == before.sent);
  CHECK(after.shipped == before.shipped);
  CHECK(after.depth == 0);
  CHECK(status.queue_depth() == 0);
  CHECK(Pen(status).invalid_writes().at(kind) >= 1);
  CHECK(status.cache().staging() == 0);
  CHECK(Read(host, "vol", 0, old_bytes.size()) == old_bytes);
  CHECK(Read(pair.mirror->host(), "vol", 0, old_bytes.size()) == old_bytes);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

}  // namespace simarray::testing

namespace simarray::testing {

TEST_CASE(
    "a write that finds the cache full of held writes fails within host_wait_ms as "
    "resource_exhausted and changes nothing",
    "[integration][pen][cache]") {
  TempDir dir;
  DaemonOptions options;
  options.max_write = "64K";
  options.cache_size = "1600K";  // 24 slots of 64 KiB
  options.extra = "host_wait_ms = 300";
  Daemon d(dir.path() + "/solo", options);
  d.Start();
  REQUIRE(CreateVolumeCall(d, "vol", 64 * kTrack).ok());
  const uint64_t slots = d.Status().cache().slots();
  REQUIRE(slots >= 8);
  // One stream per slot, each sending a whole track and never finishing: each write holds
  // its staging slot (and its pen request) while it waits to be found valid.
  struct Held {
    grpc::ClientContext context;
    v1::WriteReply reply;
    std::unique_ptr<grpc::ClientWriter<v1::WriteStreamRequest>> writer;
    std::string data;
  };
  std::vector<std::unique_ptr<Held>> held;
  for (uint64_t i = 0; i < slots; ++i) {
    auto h = std::make_unique<Held>();
    d.Authorize(h->context);
    h->data = Pattern(kTrack, 20 + i);
    h->writer = d.host().WriteStream(&h->context, &h->reply);
    v1::WriteStreamRequest header;
    header.mutable_header()->set_volume("vol");
    header.mutable_header()->set_offset(i * kTrack);
    header.mutable_header()->set_length(kTrack);
    header.mutable_header()->set_crc32c(Crc(h->data));
    REQUIRE(h->writer->Write(header));
    v1::WriteStreamRequest chunk;
    chunk.set_chunk(h->data);
    REQUIRE(h->writer->Write(chunk));
    held.push_back(std::move(h));
  }
  REQUIRE(Eventually([&] {
    const v1::CacheStatus c = d.Status().cache();
    return c.free() == 0 && c.clean() == 0;
  }));
  const v1::StatusReply before = d.Status();

  // A whole-track write needs a slot of its own: none comes within host_wait_ms.
  const std::string late = Pattern(kTrack, 99);
  WriteOutcome refused = Write(d.host(), "vol", 40 * kTrack, late);
  CHECK(refused.status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED);
  CHECK_THAT(refused.status.error_message(), Catch::Contains("cache"));
  const v1::StatusReply after = d.Status();
  CHECK(Pen(after).invalid_writes().at("resource_exhausted") ==
        Pen(before).invalid_writes().at("resource_exhausted") + 1);
  CHECK(Pen(after).invalid_writes().at("cancelled") ==
        Pen(before).invalid_writes().at("cancelled"));
  CHECK(Pen(after).depth() == Pen(before).depth());  // its request went with it

  // The held writes complete, and then the refused one goes through.
  for (auto& h : held) {
    h->writer->WritesDone();
    CHECK(h->writer->Finish().ok());
  }
  CHECK(Read(d.host(), "vol", 40 * kTrack, kTrack) == std::string(kTrack, '\0'));
  CHECK(Write(d.host(), "vol", 40 * kTrack, late).status.ok());
  CHECK(Read(d.host(), "vol", 40 * kTrack, kTrack) == late);
  CHECK(Read(d.host(), "vol", 3 * kTrack, kTrack) == held[3]->data);
}

}  // namespace simarray::testing
