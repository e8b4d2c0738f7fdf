// holding_pen = "bypass" exists only so the benchmark can measure what the holding pen and
// validation cost. These cases pin down what it does, unsafe part included: writes are still
// mirrored in sequence order, but no request waits in a pen and a wrong CRC-32C is accepted.
#include <catch2/catch.hpp>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

}  // namespace

TEST_CASE("with the pen bypassed, writes skip the pen and are still mirrored",
          "[integration][pen]") {
  DaemonOptions options;
  options.holding_pen = "bypass";
  Pair pair(options);
  pair.CreateVolume("vol", 8 * kTrack);
  const std::string data = Pattern(2 * kTrack + 300, 11);
  WriteOutcome w = Write(pair.primary->host(), "vol", 500, data);
  REQUIRE(w.status.ok());
  CHECK(w.reply.mirrored());
  CHECK(w.reply.portions() == 3);
  CHECK(Read(pair.mirror->host(), "vol", 500, data.size()) == data);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());

  const v1::StatusReply status = pair.primary->Status();
  const v1::PenStatus& pen = Pen(status);
  CHECK(pen.placement() == "bypass");
  CHECK(pen.requests_buffered() == 0);
  CHECK(pen.writes_committed() == 1);
}

TEST_CASE("with the pen bypassed, a wrong CRC-32C is not caught (why it is benchmark-only)",
          "[integration][pen]") {
  DaemonOptions options;
  options.holding_pen = "bypass";
  Pair pair(options);
  pair.CreateVolume("vol", 4 * kTrack);
  const std::string data = Pattern(4096, 12);
  WriteOutcome w = WriteWithCrc(pair.primary->host(), "vol", 0, data, Crc(data) ^ 0x1);
  CHECK(w.status.ok());
  CHECK(Read(pair.mirror->host(), "vol", 0, data.size()) == data);
}

}  // namespace simarray::testing
