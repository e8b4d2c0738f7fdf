// Fuzz target: what an NBD client sends, as the NBD host adaptor parses it. The input is a
// client's byte stream: 4 bytes of client flags, then options (16-byte header + data) fed
// to the handshake state machine, then, once it enters transmission, 28-byte requests
// through ParseRequest. Nothing may crash, hang or read out of bounds.
#include <cstdint>
#include <span>
#include <string_view>

#include "simarray/nbd/nbd_handshake.h"
#include "simarray/nbd/nbd_protocol.h"

using namespace simarray::nbd;

namespace {

const ExportCatalog& Catalog() {
  static const ExportCatalog* catalog = [] {
    auto* c = new ExportCatalog;
    c->size_of = [](const std::string& name) -> std::optional<uint64_t> {
      if (name == "vol") return uint64_t{1} << 20;
      return std::nullopt;
    };
    c->names = [] { return std::vector<std::string>{"vol"}; };
    c->accepts_writes = [](const std::string&) { return true; };
    return c;
  }();
  return *catalog;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::span<const uint8_t> in(data, size);
  if (in.size() < 4) return 0;
  Handshake handshake(&Catalog());
  if (!handshake.OnClientFlags(GetU32(in.data())).ok()) return 0;
  in = in.subspan(4);
  bool transmission = false;
  while (!transmission && in.size() >= kOptionHeaderSize) {
    OptionHeader header = ParseOptionHeader(in.first<kOptionHeaderSize>());
    in = in.subspan(kOptionHeaderSize);
    if (header.magic != kOptionMagic) return 0;      // as the connection does: it closes
    if (header.length > kMaxOptionLength) return 0;  // the connection closes here
    const size_t length = std::min<size_t>(header.length, in.size());
    const std::string_view option_data(reinterpret_cast<const char*>(in.data()), length);
    in = in.subspan(length);
    Handshake::Outcome outcome = handshake.OnOption(header.option, option_data);
    if (outcome.next == Handshake::Next::kClose) return 0;
    transmission = outcome.next == Handshake::Next::kTransmission;
  }
  if (transmission) (void)handshake.TransmissionFlags();
  while (in.size() >= kRequestSize) {
    Request request = ParseRequest(in.first<kRequestSize>());
    in = in.subspan(kRequestSize);
    if (request.magic != kRequestMagic) return 0;
    (void)CommandName(request.type);
    if (request.type == kCmdWrite) in = in.subspan(std::min<size_t>(request.length, in.size()));
  }
  return 0;
}
