// ReceiveBuffer: reads append, parsing consumes from the front, and the unparsed rest moves
// to the front before the next read so that a request of up to the capacity always fits.
#include "simarray/nbd/nbd_receive_buffer.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <string>

namespace simarray::nbd {
namespace {

void Fill(ReceiveBuffer& b, const std::string& bytes) {
  std::span<uint8_t> space = b.Space();
  REQUIRE(space.size() >= bytes.size());
  std::memcpy(space.data(), bytes.data(), bytes.size());
  b.Filled(bytes.size());
}

std::string Held(const ReceiveBuffer& b) {
  return {reinterpret_cast<const char*>(b.Data().data()), b.Data().size()};
}

}  // namespace

TEST_CASE("receive buffer: append, consume, and room for a whole request", "[nbd]") {
  ReceiveBuffer b(16);
  CHECK(b.size() == 0);
  CHECK(b.Space().size() == 16);
  Fill(b, "abcdefghij");
  CHECK(Held(b) == "abcdefghij");
  CHECK(b.Space().size() == 6);
  b.Consume(7);
  CHECK(Held(b) == "hij");
  // The three unparsed bytes move to the front: 13 bytes of room.
  CHECK(b.Space().size() == 13);
  CHECK(Held(b) == "hij");
  Fill(b, "klmnopqrstuvw");
  CHECK(Held(b) == "hijklmnopqrstuvw");
  CHECK(b.Space().empty());
  b.Consume(16);
  CHECK(b.size() == 0);
  CHECK(b.Space().size() == 16);
}

}  // namespace simarray::nbd
