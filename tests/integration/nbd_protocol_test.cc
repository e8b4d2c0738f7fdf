// The NBD host adaptor on a raw socket: many requests in flight on one connection, and
// hostile bytes (bad magic, lengths, flags and offsets, cut-off payloads) that must never
// crash the daemon nor change a volume.
#include <signal.h>

#include <catch2/catch.hpp>
#include <map>

#include "nbd_test_tools.h"

namespace simarray::testing {

TEST_CASE("many requests in flight on one connection are all answered", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", 16 * kTrack);
  RawNbd c(pair.primary->nbd_address());
  c.Negotiate("vol");
  constexpr int kWrites = 48;
  std::string burst;
  for (int i = 0; i < kWrites; ++i) {
    burst += RequestBytes(kCmdWrite, 1 + i, i * 20000, 4096) + Pattern(4096, 100 + i);
  }
  c.Send(burst);
  std::map<uint64_t, uint32_t> errors;
  for (int i = 0; i < kWrites; ++i) {
    RawNbd::Reply r = c.ReadReply();
    errors[r.cookie] = r.error;
  }
  REQUIRE(errors.size() == kWrites);
  for (const auto& [cookie, error] : errors) CHECK(error == 0);
  burst.clear();
  std::map<uint64_t, uint32_t> lengths;
  for (int i = 0; i < kWrites; ++i) {
    burst += RequestBytes(kCmdRead, 100 + i, i * 20000, 4096);
    lengths[100 + i] = 4096;
  }
  c.Send(burst);
  for (int i = 0; i < kWrites; ++i) {
    RawNbd::Reply r = c.ReadReply(lengths);
    REQUIRE(r.error == 0);
    CHECK(r.data == Pattern(4096, 100 + static_cast<uint32_t>(r.cookie - 100)));
  }
  CHECK(c.Call(kCmdFlush, 0, 0).error == 0);
  c.Send(RequestBytes(kCmdDisc, 9, 0, 0));
  CHECK(c.ClosedByServer());
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("32 requests arriving in one TCP segment are each answered once", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", 16 * kTrack);
  RawNbd c(pair.primary->nbd_address());
  c.Negotiate("vol");
  // 32 writes of 256 bytes, some sharing a track: about 9 KiB in one send, well under a
  // loopback segment, so the adaptor finds many requests (and payloads) in one read.
  constexpr int kWrites = 32;
  std::string burst;
  std::map<uint64_t, std::string> expect;  // cookie -> bytes written
  for (int i = 0; i < kWrites; ++i) {
    const std::string data = Pattern(256, 300 + i);
    burst += RequestBytes(kCmdWrite, 1 + i, i * 20000 + 7, 256) + data;
    expect[1 + i] = data;
  }
  REQUIRE(burst.size() < 16 * 1024);
  c.Send(burst);
  std::map<uint64_t, int> answered;
  for (int i = 0; i < kWrites; ++i) {
    RawNbd::Reply r = c.ReadReply();
    CHECK(r.error == 0);
    ++answered[r.cookie];
  }
  CHECK(answered.size() == kWrites);
  for (const auto& [cookie, n] : answered) CHECK(n == 1);
  // NBD orders nothing among requests in flight: read back once all were answered.
  for (const auto& [cookie, data] : expect) {
    RawNbd::Reply r = c.Call(kCmdRead, (cookie - 1) * 20000 + 7, 256);
    REQUIRE(r.error == 0);
    CHECK(r.data == data);
  }
  c.Send(RequestBytes(kCmdDisc, 9, 0, 0));
  CHECK(c.ClosedByServer());
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

TEST_CASE("hostile NBD bytes never crash the daemon nor change a volume", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  constexpr uint64_t kSize = 16 * kTrack;  // 1 MiB
  pair.CreateVolume("vol", kSize);
  const std::string original = Pattern(kSize, 5);
  REQUIRE(Write(pair.primary->host(), "vol", 0, original).status.ok());
  const std::string address = pair.primary->nbd_address();
  const uint64_t cancelled_before = Cancelled(NbdPen(pair.primary->Status()));
  std::string flags;
  Put32(&flags, 1);

  {  // Connect and hang up, before and after the greeting.
    RawNbd a(address);
    a.Close();
    RawNbd b(address);
    b.Greeting();
  }
  {  // Unknown client flags: the server hangs up.
    RawNbd c(address);
    c.Greeting();
    c.Send(std::string("\xff\xff\xff\xff", 4));
    CHECK(c.ClosedByServer());
  }
  {  // Truncated client flags, then gone.
    RawNbd c(address);
    c.Greeting();
    c.Send(std::string("\x00\x00", 2));
  }
  {  // Bad option magic.
    RawNbd c(address);
    c.Greeting();
    c.Send(flags + std::string(16, '\x5a'));
    CHECK(c.ClosedByServer());
  }
  {  // An option claiming 4 GiB of data.
    RawNbd c(address);
    c.Greeting();
    std::string huge;
    Put64(&huge, kOptMagic);
    Put32(&huge, kOptGo);
    Put32(&huge, 0xffffffffu);
    c.Send(flags + huge + "vol");
    CHECK(c.ClosedByServer());
  }
  {  // A truncated option, then gone.
    RawNbd c(address);
    c.Greeting();
    std::string header;
    Put64(&header, kOptMagic);
    Put32(&header, kOptGo);
    Put32(&header, 100);
    c.Send(flags + header + "0123456789");
  }
  {  // Unknown options, unknown exports and malformed GO are answered; negotiation goes on.
    RawNbd c(address);
    c.Greeting();
    c.Send(flags + Option(0x4242, "whatever"));
    CHECK(c.ReadOptionReply().type == kRepErrUnsup);
    c.Send(Option(kOptGo, GoData("nope")));
    CHECK(c.ReadOptionReply().type == kRepErrUnknown);
    std::string lying;
    Put32(&lying, 5000);
    c.Send(Option(kOptGo, lying + "vol"));
    CHECK(c.ReadOptionReply().type == kRepErrInvalid);
    c.Send(Option(kOptGo, GoData("vol")));
    RawNbd::OptionReply r;
    do {
      r = c.ReadOptionReply();
    } while (r.type == kRepInfo);
    REQUIRE(r.type == kRepAck);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 4096);
    CHECK(read.error == 0);
    CHECK(read.data == original.substr(0, 4096));
  }
  {  // Bad requests get errors, and the connection goes on.
    RawNbd c(address);
    c.Negotiate("vol");
    CHECK(c.Call(0x77, 0, 4096).error == kEinval);                  // unknown command
    CHECK(c.Call(kCmdRead, kSize - 512, 1024).error == kEinval);    // read past the end
    CHECK(c.Call(kCmdRead, 0, 0).error == kEinval);                 // length 0
    CHECK(c.Call(kCmdRead, 0, kMaxWrite + 4096).error == kEinval);  // over max_write
    CHECK(c.Call(kCmdTrim, kSize, 4096).error == kEinval);          // trim past the end
    CHECK(c.Call(kCmdBlockStatus, 0, 4096).error == kEinval);       // no meta context
    CHECK(c.Call(kCmdFlush, 0, 0, "", 0x4000).error == kEinval);    // unknown flag
    CHECK(c.Call(kCmdWrite, kSize - 512, 1024, std::string(1024, 'x')).error == kEnospc);
    CHECK(c.Call(kCmdWrite, ~0ull - 511, 1024, std::string(1024, 'x')).error == kEnospc);
    CHECK(c.Call(kCmdWrite, 0, 4096, std::string(4096, 'x'), 0x4000).error == kEinval);
    // Past the end (and over max_write): the payload is drained, nothing is written.
    CHECK(c.Call(kCmdWrite, 0, kMaxWrite + 4096, std::string(kMaxWrite + 4096, 'x')).error ==
          kEnospc);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 8192);
    CHECK(read.error == 0);
    CHECK(read.data == original.substr(0, 8192));
  }
  {  // Over max_write inside the volume: EINVAL, the payload drained, nothing written.
    pair.CreateVolume("big", 2 * kMaxWrite);
    RawNbd c(address);
    c.Negotiate("big");
    CHECK(c.Call(kCmdWrite, 0, kMaxWrite + 4096, std::string(kMaxWrite + 4096, 'x')).error ==
          kEinval);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 4096);
    CHECK(read.error == 0);
    CHECK(read.data == std::string(4096, '\0'));
  }
  {  // A write payload of 4 GiB announced: refused, then the server hangs up.
    RawNbd c(address);
    c.Negotiate("vol");
    c.Send(RequestBytes(kCmdWrite, 1, 0, 0xffffffffu));
    RawNbd::Reply r = c.ReadReply();
    CHECK(r.error == kEinval);
    CHECK(c.ClosedByServer());
  }
  {  // Bad request magic.
    RawNbd c(address);
    c.Negotiate("vol");
    c.Send(std::string(28, '\x13'));
    CHECK(c.ClosedByServer());
  }
  {  // Half a write payload, then gone: the write is cancelled, nothing of it lands.
    RawNbd c(address);
    c.Negotiate("vol");
    c.Send(RequestBytes(kCmdWrite, 1, 0, 1 << 20) + std::string(700 << 10, 'z'));
    c.Close();
  }
  {  // Garbage, in the handshake and in transmission.
    RawNbd c(address);
    c.Greeting();
    c.Send(flags + Pattern(65536, 99));
    CHECK(c.ClosedByServer());
    RawNbd d(address);
    d.Negotiate("vol");
    d.Send(Pattern(65536, 98));
    CHECK(d.ClosedByServer());
  }
  {  // More connections than the limit: the extra ones are closed at once.
    std::vector<std::unique_ptr<RawNbd>> many;
    for (int i = 0; i < 70; ++i) many.push_back(std::make_unique<RawNbd>(address));
    int closed = 0;
    for (auto& c : many) {
      if (c->Recv(18, 2000).size() < 18 && c->ClosedByServer(2000)) ++closed;
    }
    CHECK(closed >= 6);
  }
  {  // The mirror is read-only: writes and trims get EPERM.
    RawNbd m(pair.mirror->nbd_address());
    CHECK((m.Negotiate("vol") & kFlagReadOnly) != 0);
    CHECK(m.Call(kCmdWrite, 0, 4096, std::string(4096, 'w')).error == kEperm);
    CHECK(m.Call(kCmdTrim, 0, 4096).error == kEperm);
    RawNbd::Reply read = m.Call(kCmdRead, 0, 4096);
    CHECK(read.error == 0);
    CHECK(read.data == original.substr(0, 4096));
  }

  // Both daemons are alive, the cancelled write was counted and dropped, and nothing changed.
  CHECK(Eventually([&] {
    const v1::StatusReply status = pair.primary->Status();
    const v1::PenStatus& pen = NbdPen(status);
    return Cancelled(pen) > cancelled_before && pen.depth() == 0;
  }));
  CHECK(pair.primary->running());
  CHECK(pair.mirror->running());
  CHECK(kill(pair.primary->pid(), 0) == 0);
  CHECK(kill(pair.mirror->pid(), 0) == 0);
  CHECK(Read(pair.primary->host(), "vol", 0, kSize) == original);
  CHECK(Read(pair.mirror->host(), "vol", 0, kSize) == original);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
  RawNbd after(address);
  after.Negotiate("vol");
  RawNbd::Reply read = after.Call(kCmdRead, 0, kSize);
  CHECK(read.error == 0);
  CHECK(read.data == original);
}

}  // namespace simarray::testing
