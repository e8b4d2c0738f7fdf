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
