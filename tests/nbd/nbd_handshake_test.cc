// The option haggling of the fixed newstyle handshake, fed option by option without a
// socket: what each option answers and when the connection moves on or closes.
#include "simarray/nbd/nbd_handshake.h"

#include <catch2/catch.hpp>
#include <map>

#include "simarray/nbd/nbd_protocol.h"

namespace simarray::nbd {
namespace {

constexpr uint32_t kTrack = 64 << 10;
constexpr uint32_t kMaxWrite = 4 << 20;

struct Fixture {
  std::map<std::string, uint64_t> volumes{{"vol", 8 * kTrack}, {"other", 2 * kTrack}};
  bool primary = true;
  ExportCatalog catalog;
  Fixture() {
    catalog.size_of = [this](const std::string& name) -> std::optional<uint64_t> {
      auto it = volumes.find(name);
      if (it == volumes.end()) return std::nullopt;
      return it->second;
    };
    catalog.names = [this] {
      std::vector<std::string> names;
      for (const auto& [name, size] : volumes) names.push_back(name);
      return names;
    };
    catalog.accepts_writes = [this](const std::string&) { return primary; };
    catalog.track_size = kTrack;
    catalog.max_payload = kMaxWrite;
  }
};

struct OptionReply {
  uint32_t option = 0;
  uint32_t type = 0;
  std::string data;
};

// Splits the bytes a handshake answered into option replies; fails on a malformed one.
std::vector<OptionReply> Replies(const std::string& bytes) {
  std::vector<OptionReply> out;
  size_t pos = 0;
  while (pos < bytes.size()) {
    REQUIRE(bytes.size() - pos >= 20);
    const auto* p = reinterpret_cast<const uint8_t*>(bytes.data() + pos);
    REQUIRE(GetU64(p) == kOptionReplyMagic);
    OptionReply r;
    r.option = GetU32(p + 8);
    r.type = GetU32(p + 12);
    const uint32_t length = GetU32(p + 16);
    REQUIRE(bytes.size() - pos - 20 >= length);
    r.data = bytes.substr(pos + 20, length);
    out.push_back(r);
    pos += 20 + length;
  }
  return out;
}

std::string InfoRequest(const std::string& name, std::vector<uint16_t> infos) {
  std::string data;
  PutU32(&data, static_cast<uint32_t>(name.size()));
  data += name;
  PutU16(&data, static_cast<uint16_t>(infos.size()));
  for (uint16_t i : infos) PutU16(&data, i);
  return data;
}

std::string MetaRequest(const std::string& name, std::vector<std::string> queries) {
  std::string data;
  PutU32(&data, static_cast<uint32_t>(name.size()));
  data += name;
  PutU32(&data, static_cast<uint32_t>(queries.size()));
  for (const std::string& q : queries) {
    PutU32(&data, static_cast<uint32_t>(q.size()));
    data += q;
  }
  return data;
}

const uint8_t* U8(const std::string& s) { return reinterpret_cast<const uint8_t*>(s.data()); }

}  // namespace

TEST_CASE("client flags: known ones pass, unknown ones close", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  CHECK(h.OnClientFlags(kClientFlagFixedNewstyle | kClientFlagNoZeroes).ok());
  Handshake h2(&f.catalog);
  CHECK_FALSE(h2.OnClientFlags(0x80).ok());
}

TEST_CASE("NBD_OPT_GO on a volume: export info, block sizes, then transmission", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  REQUIRE(h.OnClientFlags(kClientFlagFixedNewstyle).ok());
  auto out = h.OnOption(kOptGo, InfoRequest("vol", {kInfoBlockSize, kInfoName}));
  CHECK(out.next == Handshake::Next::kTransmission);
  auto replies = Replies(out.reply);
  REQUIRE(replies.size() == 4);
  // NBD_INFO_EXPORT: size and transmission flags.
  REQUIRE(replies[0].type == kRepInfo);
  REQUIRE(replies[0].data.size() == 12);
  CHECK(GetU16(U8(replies[0].data)) == kInfoExport);
  CHECK(GetU64(U8(replies[0].data) + 2) == 8 * kTrack);
  const uint16_t flags = GetU16(U8(replies[0].data) + 10);
  CHECK((flags & kFlagHasFlags) != 0);
  CHECK((flags & kFlagSendFlush) != 0);
  CHECK((flags & kFlagSendFua) != 0);
  CHECK((flags & kFlagSendTrim) != 0);
  CHECK((flags & kFlagSendWriteZeroes) != 0);
  CHECK((flags & kFlagCanMultiConn) != 0);
  CHECK((flags & kFlagReadOnly) == 0);
  CHECK((flags & kFlagSendDf) == 0);  // no structured replies negotiated
  // NBD_INFO_NAME, as asked.
  CHECK(replies[1].type == kRepInfo);
  CHECK(GetU16(U8(replies[1].data)) == kInfoName);
  CHECK(replies[1].data.substr(2) == "vol");
  // NBD_INFO_BLOCK_SIZE: minimum 1, preferred = track size, maximum = max_write.
  REQUIRE(replies[2].data.size() == 14);
  CHECK(GetU16(U8(replies[2].data)) == kInfoBlockSize);
  CHECK(GetU32(U8(replies[2].data) + 2) == 1);
  CHECK(GetU32(U8(replies[2].data) + 6) == kTrack);
  CHECK(GetU32(U8(replies[2].data) + 10) == kMaxWrite);
  CHECK(replies[3].type == kRepAck);
  for (const auto& r : replies) CHECK(r.option == kOptGo);
  CHECK(h.session().export_name == "vol");
  CHECK(h.session().size == 8 * kTrack);
  CHECK(h.session().flags == flags);
  CHECK_FALSE(h.session().structured);
}

TEST_CASE("NBD_OPT_INFO answers like GO but stays in the handshake", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  auto out = h.OnOption(kOptInfo, InfoRequest("other", {}));
  CHECK(out.next == Handshake::Next::kContinue);
  auto replies = Replies(out.reply);
  REQUIRE(replies.size() == 3);  // export, block size, ack
  CHECK(GetU64(U8(replies[0].data) + 2) == 2 * kTrack);
  CHECK(replies.back().type == kRepAck);
}

TEST_CASE("an unknown export is NBD_REP_ERR_UNKNOWN and negotiation goes on", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  auto out = h.OnOption(kOptGo, InfoRequest("nope", {}));
  CHECK(out.next == Handshake::Next::kContinue);
  auto replies = Replies(out.reply);
  REQUIRE(replies.size() == 1);
  CHECK(replies[0].type == kRepErrUnknown);
  CHECK_THAT(replies[0].data, Catch::Contains("nope"));
  CHECK(h.OnOption(kOptGo, InfoRequest("vol", {})).next == Handshake::Next::kTransmission);
}

TEST_CASE("unknown options are NBD_REP_ERR_UNSUP and negotiation goes on", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  for (uint32_t option : {kOptStartTls, 4u, 11u, 0x1234u, 0xffffffffu}) {
    auto out = h.OnOption(option, "whatever");
    CHECK(out.next == Handshake::Next::kContinue);
    auto replies = Replies(out.reply);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].option == option);
    CHECK(replies[0].type == kRepErrUnsup);
  }
}

TEST_CASE("malformed GO data is NBD_REP_ERR_INVALID", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  std::string longer_name;
  PutU32(&longer_name, 1000);
  longer_name += "vol";
  std::string bad_count = InfoRequest("vol", {kInfoBlockSize});
  bad_count.pop_back();
  std::string huge_name;
  PutU32(&huge_name, 0xffffffff);
  for (const std::string& data :
       {std::string(), std::string("\x00\x00", 2), longer_name, bad_count, huge_name}) {
    auto replies = Replies(h.OnOption(kOptGo, data).reply);
    REQUIRE(replies.size() == 1);
    CHECK(replies[0].type == kRepErrInvalid);
  }
}

TEST_CASE("NBD_OPT_LIST names every volume", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  auto replies = Replies(h.OnOption(kOptList, "").reply);
  REQUIRE(replies.size() == 3);
  std::vector<std::string> names;
  for (size_t i = 0; i < 2; ++i) {
    REQUIRE(replies[i].type == kRepServer);
    REQUIRE(GetU32(U8(replies[i].data)) == replies[i].data.size() - 4);
    names.push_back(replies[i].data.substr(4));
  }
  CHECK(names == std::vector<std::string>{"other", "vol"});
  CHECK(replies[2].type == kRepAck);
  CHECK(Replies(h.OnOption(kOptList, "x").reply)[0].type == kRepErrInvalid);
}

TEST_CASE("NBD_OPT_ABORT is acknowledged and closes", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  auto out = h.OnOption(kOptAbort, "");
  CHECK(out.next == Handshake::Next::kClose);
  CHECK(Replies(out.reply)[0].type == kRepAck);
}

TEST_CASE("NBD_OPT_EXPORT_NAME: size, flags and zero padding, or a close", "[nbd]") {
  Fixture f;
  {
    Handshake h(&f.catalog);
    REQUIRE(h.OnClientFlags(kClientFlagFixedNewstyle).ok());
    auto out = h.OnOption(kOptExportName, "vol");
    CHECK(out.next == Handshake::Next::kTransmission);
    REQUIRE(out.reply.size() == 8 + 2 + 124);
    CHECK(GetU64(U8(out.reply)) == 8 * kTrack);
    CHECK(GetU16(U8(out.reply) + 8) == h.session().flags);
    CHECK(out.reply.substr(10) == std::string(124, '\0'));
  }
  {
    Handshake h(&f.catalog);
    REQUIRE(h.OnClientFlags(kClientFlagFixedNewstyle | kClientFlagNoZeroes).ok());
    CHECK(h.OnOption(kOptExportName, "vol").reply.size() == 10);
  }
  {
    // An unknown export cannot be answered with an error: the session ends.
    Handshake h(&f.catalog);
    auto out = h.OnOption(kOptExportName, "nope");
    CHECK(out.next == Handshake::Next::kClose);
    CHECK(out.reply.empty());
  }
}

TEST_CASE("structured replies and base:allocation", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  // SET_META_CONTEXT needs structured replies first.
  CHECK(Replies(h.OnOption(kOptSetMetaContext, MetaRequest("vol", {"base:allocation"})).reply)[0]
            .type == kRepErrInvalid);
  CHECK(Replies(h.OnOption(kOptStructuredReply, "x").reply)[0].type == kRepErrInvalid);
  CHECK(Replies(h.OnOption(kOptStructuredReply, "").reply)[0].type == kRepAck);

  // LIST: no query, or "base:", lists base:allocation; other namespaces are ignored.
  for (const auto& queries : std::vector<std::vector<std::string>>{{}, {"base:"}, {"x-foo:bar"}}) {
    auto replies = Replies(h.OnOption(kOptListMetaContext, MetaRequest("vol", queries)).reply);
    if (queries.size() == 1 && queries[0] == "x-foo:bar") {
      REQUIRE(replies.size() == 1);
      CHECK(replies[0].type == kRepAck);
      continue;
    }
    REQUIRE(replies.size() == 2);
    CHECK(replies[0].type == kRepMetaContext);
    CHECK(replies[0].data.substr(4) == "base:allocation");
    CHECK(replies[1].type == kRepAck);
  }
  CHECK(Replies(h.OnOption(kOptListMetaContext, MetaRequest("nope", {})).reply)[0].type ==
        kRepErrUnknown);
  std::string truncated = MetaRequest("vol", {"base:allocation"});
  truncated.resize(truncated.size() - 3);
  CHECK(Replies(h.OnOption(kOptListMetaContext, truncated).reply)[0].type == kRepErrInvalid);

  // SET selects it with a non-zero id.
  auto replies = Replies(
      h.OnOption(kOptSetMetaContext, MetaRequest("vol", {"base:allocation", "qemu:x"})).reply);
  REQUIRE(replies.size() == 2);
  CHECK(replies[0].type == kRepMetaContext);
  CHECK(GetU32(U8(replies[0].data)) == kBaseAllocationId);
  CHECK(replies[0].data.substr(4) == "base:allocation");
  CHECK(replies[1].type == kRepAck);

  auto go = h.OnOption(kOptGo, InfoRequest("vol", {}));
  REQUIRE(go.next == Handshake::Next::kTransmission);
  CHECK(h.session().structured);
  CHECK(h.session().base_allocation);
  CHECK((h.session().flags & kFlagSendDf) != 0);
}

TEST_CASE("base:allocation applies only to the export it was set for", "[nbd]") {
  Fixture f;
  Handshake h(&f.catalog);
  h.OnOption(kOptStructuredReply, "");
  h.OnOption(kOptSetMetaContext, MetaRequest("other", {"base:allocation"}));
  REQUIRE(h.OnOption(kOptGo, InfoRequest("vol", {})).next == Handshake::Next::kTransmission);
  CHECK_FALSE(h.session().base_allocation);
}

TEST_CASE("a mirror-role daemon advertises read-only exports", "[nbd]") {
  Fixture f;
  f.primary = false;
  Handshake h(&f.catalog);
  auto replies = Replies(h.OnOption(kOptGo, InfoRequest("vol", {})).reply);
  CHECK((GetU16(U8(replies[0].data) + 10) & kFlagReadOnly) != 0);
}

}  // namespace simarray::nbd
