// The NBD wire format: field order, byte order and lengths of every message the server
// parses or sends, and the mapping of host adaptor errors to NBD errno values.
#include "simarray/nbd/nbd_protocol.h"

#include <catch2/catch.hpp>

namespace simarray::nbd {
namespace {

std::string Hex(const std::string& bytes) {
  static const char* kDigits = "0123456789abcdef";
  std::string out;
  for (unsigned char c : bytes) {
    out += kDigits[c >> 4];
    out += kDigits[c & 15];
  }
  return out;
}

std::span<const uint8_t> Bytes(const std::string& s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

TEST_CASE("the greeting is NBDMAGIC, IHAVEOPT and fixed newstyle + no zeroes", "[nbd]") {
  CHECK(Hex(EncodeGreeting()) ==
        "4e42444d41474943"
        "49484156454f5054"
        "0003");
}

TEST_CASE("an option header parses big-endian", "[nbd]") {
  std::string bytes;
  PutU64(&bytes, kOptionMagic);
  PutU32(&bytes, kOptGo);
  PutU32(&bytes, 0x01020304);
  OptionHeader h = ParseOptionHeader(Bytes(bytes).first<kOptionHeaderSize>());
  CHECK(h.magic == kOptionMagic);
  CHECK(h.option == kOptGo);
  CHECK(h.length == 0x01020304);
}

TEST_CASE("an option reply is magic, option, type, length, data", "[nbd]") {
  CHECK(Hex(EncodeOptionReply(kOptList, kRepAck)) ==
        "0003e889045565a9"
        "00000003"
        "00000001"
        "00000000");
  CHECK(Hex(EncodeOptionReply(kOptGo, kRepErrUnknown, "ab")) ==
        "0003e889045565a9"
        "00000007"
        "80000006"
        "00000002"
        "6162");
}

TEST_CASE("a request header round-trips and names its fields", "[nbd]") {
  Request r;
  r.magic = kRequestMagic;
  r.flags = kCmdFlagFua;
  r.type = kCmdWrite;
  r.cookie = 0x1122334455667788ull;
  r.offset = 0x0000000100000200ull;
  r.length = 4096;
  const std::string wire = EncodeRequest(r);
  REQUIRE(wire.size() == kRequestSize);
  CHECK(Hex(wire) ==
        "25609513"
        "0001"
        "0001"
        "1122334455667788"
        "0000000100000200"
        "00001000");
  Request back = ParseRequest(Bytes(wire).first<kRequestSize>());
  CHECK(back.magic == r.magic);
  CHECK(back.flags == r.flags);
  CHECK(back.type == r.type);
  CHECK(back.cookie == r.cookie);
  CHECK(back.offset == r.offset);
  CHECK(back.length == r.length);
}

TEST_CASE("simple and structured replies", "[nbd]") {
  CHECK(Hex(EncodeSimpleReply(kEnospc, 7)) ==
        "67446698"
        "0000001c"
        "0000000000000007");
  // OFFSET_DATA: the chunk length counts the 8-byte offset and the data that follows.
  CHECK(Hex(EncodeOffsetDataHeader(9, 0x10000, 512, true)) ==
        "668e33ef"
        "0001"
        "0001"
        "0000000000000009"
        "00000208"
        "0000000000010000");
  CHECK(Hex(EncodeChunkHeader(0, kReplyTypeNone, 1, 0)) ==
        "668e33ef"
        "0000"
        "0000"
        "0000000000000001"
        "00000000");
  // ERROR: errno, message length, message; always the final chunk.
  CHECK(Hex(EncodeErrorChunk(2, kEinval, "no")) ==
        "668e33ef"
        "0001"
        "8001"
        "0000000000000002"
        "00000008"
        "00000016"
        "0002"
        "6e6f");
  // An over-long message is cut to the protocol's string limit.
  CHECK(EncodeErrorChunk(2, kEio, std::string(10000, 'x')).size() ==
        kChunkHeaderSize + 6 + kMaxString);
}

TEST_CASE("WireReader never reads past the end", "[nbd]") {
  std::string data;
  PutU32(&data, 3);
  data += "ab";
  WireReader reader(data);
  uint32_t n = 0;
  REQUIRE(reader.U32(&n));
  CHECK(n == 3);
  std::string s;
  CHECK_FALSE(reader.String(n, &s));
  CHECK(reader.String(2, &s));
  CHECK(s == "ab");
  uint16_t v = 0;
  CHECK_FALSE(reader.U16(&v));
  CHECK(reader.remaining() == 0);
}

TEST_CASE("host adaptor errors map to NBD errno values", "[nbd]") {
  CHECK(ErrnoFor(absl::OkStatus(), true) == 0);
  CHECK(ErrnoFor(absl::FailedPreconditionError("mirror"), true) == kEperm);
  CHECK(ErrnoFor(absl::OutOfRangeError("past the end"), true) == kEnospc);
  CHECK(ErrnoFor(absl::OutOfRangeError("past the end"), false) == kEinval);
  CHECK(ErrnoFor(absl::InvalidArgumentError("length 0"), true) == kEinval);
  CHECK(ErrnoFor(absl::DataLossError("crc32c mismatch"), true) == kEio);
  CHECK(ErrnoFor(absl::DeadlineExceededError("cache full"), true) == kEio);
  CHECK(ErrnoFor(absl::UnavailableError("link down"), true) == kEio);
  CHECK(ErrnoFor(absl::NotFoundError("no volume"), false) == kEio);
}

}  // namespace simarray::nbd
