// The NBD host adaptor parses every request a read brings (docs/life-of-a-write.md): many
// requests of every kind in one TCP segment, a request cut across segments anywhere in its
// header or payload, and a malformed request behind valid ones. Each reply is checked by its
// handle, and every byte written is read back.
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <thread>

#include "nbd_test_tools.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kVolume = 32 * kTrack;  // 2 MiB
constexpr uint16_t kFlagFua = 1;

// Requests sent together, what each must be answered with, and the volume as it will be
// once every write in them landed (`model`). Reads must not overlap a write of the same
// burst: NBD orders nothing among requests in flight.
struct Burst {
  explicit Burst(std::string* model, uint64_t first_cookie = 1)
      : model(model), next(first_cookie) {}

  uint64_t Write(uint64_t offset, const std::string& data, uint16_t flags = 0) {
    const uint64_t cookie = next++;
    bytes +=
        RequestBytes(kCmdWrite, cookie, offset, static_cast<uint32_t>(data.size()), flags) + data;
    errors[cookie] = 0;
    model->replace(offset, data.size(), data);
    return cookie;
  }
  uint64_t Read(uint64_t offset, uint32_t length) {
    const uint64_t cookie = next++;
    bytes += RequestBytes(kCmdRead, cookie, offset, length);
    errors[cookie] = 0;
    read_lengths[cookie] = length;
    read_data[cookie] = model->substr(offset, length);
    return cookie;
  }
  // Any other request (FLUSH, or one that must fail with `error`).
  uint64_t Other(uint16_t type, uint64_t offset, uint32_t length, uint32_t error,
                 uint16_t flags = 0, const std::string& payload = "") {
    const uint64_t cookie = next++;
    bytes += RequestBytes(type, cookie, offset, length, flags) + payload;
    errors[cookie] = error;
    return cookie;
  }

  std::string* model;
  uint64_t next;
  std::string bytes;
  std::map<uint64_t, uint32_t> errors;        // cookie -> errno expected
  std::map<uint64_t, uint32_t> read_lengths;  // READ cookie -> length
  std::map<uint64_t, std::string> read_data;  // READ cookie -> bytes expected
};

// Reads one reply per request of `b`, in any order: each handle exactly once, with the
// error expected and, for a READ, its bytes.
void ExpectReplies(RawNbd& c, const Burst& b) {
  std::map<uint64_t, int> answered;
  for (size_t i = 0; i < b.errors.size(); ++i) {
    RawNbd::Reply r = c.ReadReply(b.read_lengths);
    INFO("cookie " << r.cookie);
    REQUIRE(b.errors.count(r.cookie) == 1);
    CHECK(++answered[r.cookie] == 1);
    CHECK(r.error == b.errors.at(r.cookie));
    if (auto it = b.read_data.find(r.cookie); it != b.read_data.end()) {
      CHECK(r.data == it->second);
    }
  }
  CHECK(answered.size() == b.errors.size());
}

// Sends `bytes` in pieces ending at `cuts`, pausing between them so that each piece reaches
// the daemon in a segment (and a read) of its own.
void SendCut(RawNbd& c, const std::string& bytes, const std::vector<size_t>& cuts) {
  size_t at = 0;
  for (size_t cut : cuts) {
    c.Send(bytes.substr(at, cut - at));
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    at = cut;
  }
  c.Send(bytes.substr(at));
}

// The whole volume, read through NBD and from both daemons, equals `model`.
void ExpectVolume(Pair& pair, const std::string& address, const std::string& model) {
  RawNbd c(address);
  c.Negotiate("vol");
  RawNbd::Reply read = c.Call(kCmdRead, 0, kVolume);
  REQUIRE(read.error == 0);
  CHECK(read.data == model);
  CHECK(Read(pair.primary->host(), "vol", 0, kVolume) == model);
  CHECK(Read(pair.mirror->host(), "vol", 0, kVolume) == model);
  CHECK(CheckConsistency(*pair.primary, "vol").consistent());
}

}  // namespace

TEST_CASE("requests of every kind pipelined in one segment are answered by handle",
          "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", kVolume);
  std::string model = Pattern(kVolume, 7);
  REQUIRE(Write(pair.primary->host(), "vol", 0, model).status.ok());
  const std::string address = pair.primary->nbd_address();
  RawNbd c(address);
  c.Negotiate("vol");

  // Writes of 1 byte to 16 KiB (one across a track boundary, one FUA), reads of other
  // tracks and a flush: under 64 KiB, one loopback segment.
  Burst small(&model);
  small.Write(7, Pattern(512, 11));
  small.Write(kTrack, Pattern(4096, 12));
  small.Write(3 * kTrack + 100, Pattern(4096, 13), kFlagFua);
  small.Write(4 * kTrack - 4096, Pattern(8192, 14));
  small.Read(10 * kTrack, 4096);
  small.Write(6 * kTrack + 512, Pattern(16384, 15));
  small.Read(11 * kTrack + 3, 70000);
  small.Other(kCmdFlush, 0, 0, 0);
  small.Write(8 * kTrack + 3, Pattern(1, 16));
  small.Write(9 * kTrack, Pattern(4096, 17));
  small.Read(20 * kTrack + 5, 100);
  small.Write(14 * kTrack + 1000, Pattern(3000, 18));
  REQUIRE(small.bytes.size() < 60 * 1024);
  c.Send(small.bytes);
  ExpectReplies(c, small);

  // 32 small writes around a 100 KiB one (buffered whole, several tracks) and a 300 KiB one
  // (more than the receive buffer: streamed), with reads of what the first burst wrote.
  Burst mixed(&model, 100);
  for (int i = 0; i < 32; ++i) {
    if (i == 10) mixed.Write(24 * kTrack, Pattern(100 << 10, 20));
    if (i == 20) mixed.Write(26 * kTrack + 1, Pattern(300 << 10, 21));
    if (i % 8 == 3) mixed.Read(i / 8 * 2 * kTrack, 8192);
    mixed.Write(16 * kTrack + i * 12000, Pattern(4096, 200 + i), i % 5 == 0 ? kFlagFua : 0);
  }
  mixed.Read(6 * kTrack, kTrack);
  mixed.Other(kCmdFlush, 0, 0, 0);
  c.Send(mixed.bytes);
  ExpectReplies(c, mixed);

  c.Send(RequestBytes(kCmdDisc, 9, 0, 0));
  CHECK(c.ClosedByServer());
  ExpectVolume(pair, address, model);
}

TEST_CASE("requests cut across segments anywhere are parsed whole", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", kVolume);
  std::string model = Pattern(kVolume, 8);
  REQUIRE(Write(pair.primary->host(), "vol", 0, model).status.ok());
  const std::string address = pair.primary->nbd_address();
  RawNbd c(address);
  c.Negotiate("vol");

  Burst b(&model);
  b.Write(kTrack + 10, Pattern(4096, 30));          // [0, 4124)
  b.Read(12 * kTrack, 5000);                        // [4124, 4152)
  b.Write(2 * kTrack, Pattern(100 << 10, 31));      // [4152, 106580): fits the buffer
  b.Write(5 * kTrack + 7, Pattern(300 << 10, 32));  // [106580, 413808): streamed
  b.Write(14 * kTrack, Pattern(512, 33));           // [413808, 414348)
  REQUIRE(b.bytes.size() == 414348);
  // The first header alone, its payload in three pieces (the last with the READ and 10
  // bytes of the next header), the 100 KiB payload in two, the 300 KiB one in four, and the
  // last header split in the middle.
  SendCut(c, b.bytes, {28, 1028, 3028, 4162, 4180, 50000, 106600, 200000, 300000, 413800, 413822});
  ExpectReplies(c, b);

  // Gone after part of a buffered payload: the write is cancelled, nothing of it lands.
  const uint64_t cancelled = Cancelled(NbdPen(pair.primary->Status()));
  const uint64_t dropped = pair.primary->Status().nbd(0).writes_dropped();
  c.Send(RequestBytes(kCmdWrite, 50, 20 * kTrack, 8192) + std::string(3000, 'z'));
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  c.Close();
  CHECK(Eventually([&] {
    const v1::StatusReply status = pair.primary->Status();
    return Cancelled(NbdPen(status)) > cancelled && status.nbd(0).writes_dropped() > dropped &&
           NbdPen(status).depth() == 0;
  }));
  ExpectVolume(pair, address, model);
}

TEST_CASE("a malformed request behind valid ones in one segment", "[integration][nbd]") {
  Pair pair(WithNbd(), WithNbd());
  pair.CreateVolume("vol", kVolume);
  std::string model = Pattern(kVolume, 9);
  REQUIRE(Write(pair.primary->host(), "vol", 0, model).status.ok());
  const std::string address = pair.primary->nbd_address();

  SECTION("bad commands, flags and ranges get errors, and the connection goes on") {
    RawNbd c(address);
    c.Negotiate("vol");
    Burst b(&model);
    b.Write(0, Pattern(4096, 40));
    b.Write(kTrack - 100, Pattern(300, 41));
    b.Other(0x77, 0, 4096, kEinval);
    b.Other(kCmdRead, kVolume - 512, 1024, kEinval);
    b.Other(kCmdWrite, 3 * kTrack, 4096, kEinval, 0x4000, std::string(4096, 'x'));
    b.Other(kCmdWrite, kVolume - 512, 1024, kEnospc, 0, std::string(1024, 'x'));
    b.Read(5 * kTrack, 4096);
    b.Write(2 * kTrack, Pattern(4096, 42));
    c.Send(b.bytes);
    ExpectReplies(c, b);
    RawNbd::Reply read = c.Call(kCmdRead, 0, 3 * kTrack);
    CHECK(read.error == 0);
    CHECK(read.data == model.substr(0, 3 * kTrack));
  }

  SECTION("bad magic: the requests before it are answered, then the connection closes") {
    const uint64_t errors_before = pair.primary->Status().nbd(0).protocol_errors();
    RawNbd c(address);
    c.Negotiate("vol");
    Burst b(&model);
    b.Write(0, Pattern(4096, 50));
    b.Write(kTrack - 4096, Pattern(8192, 51));  // two tracks: runs on the work pool
    b.Read(5 * kTrack, 4096);
    b.Other(kCmdFlush, 0, 0, 0);
    // Behind the bad magic: never parsed, so never written.
    const std::string after =
        RequestBytes(kCmdWrite, 99, 8 * kTrack, 4096) + std::string(4096, 'x');
    c.Send(b.bytes + std::string(28, '\x13') + after);
    ExpectReplies(c, b);
    CHECK(c.ClosedByServer());
    CHECK(pair.primary->Status().nbd(0).protocol_errors() == errors_before + 1);
  }

  ExpectVolume(pair, address, model);
}

}  // namespace simarray::testing
