#include "simarray/nbd/nbd_handshake.h"

#include <algorithm>
#include <bit>

#include "absl/strings/str_cat.h"
#include "simarray/nbd/nbd_protocol.h"

namespace simarray::nbd {
namespace {

using Outcome = Handshake::Outcome;

Outcome Reply(uint32_t option, uint32_t type, std::string_view data = {}) {
  return Outcome{Handshake::Next::kContinue, EncodeOptionReply(option, type, data)};
}

// A string of `length` bytes that the protocol allows (at most kMaxString, no NUL).
bool ReadString(WireReader* reader, uint32_t length, std::string* out) {
  if (length > kMaxString || !reader->String(length, out)) return false;
  return out->find('\0') == std::string::npos;
}

// The data of LIST_META_CONTEXT and SET_META_CONTEXT: export name, then queries.
struct MetaRequest {
  std::string export_name;
  std::vector<std::string> queries;
};

bool ParseMetaRequest(std::string_view data, MetaRequest* out) {
  WireReader reader(data);
  uint32_t name_length = 0, count = 0;
  if (!reader.U32(&name_length) || !ReadString(&reader, name_length, &out->export_name) ||
      !reader.U32(&count)) {
    return false;
  }
  // Each query takes at least its 4-byte length: a count beyond that is a lie.
  if (count > reader.remaining() / 4) return false;
  for (uint32_t i = 0; i < count; ++i) {
    uint32_t length = 0;
    std::string query;
    if (!reader.U32(&length) || !ReadString(&reader, length, &query)) return false;
    out->queries.push_back(std::move(query));
  }
  return reader.remaining() == 0;
}

}  // namespace

absl::Status Handshake::OnClientFlags(uint32_t flags) {
  if ((flags & ~(kClientFlagFixedNewstyle | kClientFlagNoZeroes)) != 0) {
    return absl::InvalidArgumentError(absl::StrCat("unknown client flags 0x", absl::Hex(flags)));
  }
  no_zeroes_ = (flags & kClientFlagNoZeroes) != 0;
  return absl::OkStatus();
}

uint16_t Handshake::TransmissionFlags() const {
  uint16_t flags = kFlagHasFlags | kFlagSendFlush | kFlagSendFua | kFlagSendTrim |
                   kFlagSendWriteZeroes | kFlagCanMultiConn;
  // A read is always answered in one content chunk, so "don't fragment" costs nothing.
  if (structured_) flags |= kFlagSendDf;
  if (catalog_->accepts_writes && !catalog_->accepts_writes(session_.export_name)) {
    flags |= kFlagReadOnly;
  }
  return flags;
}

void Handshake::Choose(const std::string& name, uint64_t size) {
  session_.export_name = name;
  session_.size = size;
  session_.flags = TransmissionFlags();
  session_.structured = structured_;
  session_.base_allocation = structured_ && allocation_export_ == name;
}

Outcome Handshake::OnOption(uint32_t option, std::string_view data) {
  switch (option) {
    case kOptExportName:
      return ExportName(data);
    case kOptAbort:
      return Outcome{Next::kClose, EncodeOptionReply(option, kRepAck)};
    case kOptList:
      return List(data);
    case kOptInfo:
    case kOptGo:
      return InfoOrGo(option, data);
    case kOptStructuredReply:
      if (!data.empty()) {
        return Reply(option, kRepErrInvalid, "NBD_OPT_STRUCTURED_REPLY takes no data");
      }
      structured_ = true;
      return Reply(option, kRepAck);
    case kOptListMetaContext:
    case kOptSetMetaContext:
      return MetaContext(option, data);
    default:
      return Reply(option, kRepErrUnsup, absl::StrCat("option ", option, " is not supported"));
  }
}

Outcome Handshake::ExportName(std::string_view data) {
  const std::string name(data);
  std::optional<uint64_t> size;
  if (data.size() <= kMaxString) size = catalog_->size_of(name);
  // EXPORT_NAME cannot answer an error: an unknown export ends the session.
  if (!size) return Outcome{Next::kClose, ""};
  Choose(name, *size);
  Outcome out{Next::kTransmission, ""};
  PutU64(&out.reply, session_.size);
  PutU16(&out.reply, session_.flags);
  if (!no_zeroes_) out.reply.append(124, '\0');
  return out;
}

Outcome Handshake::List(std::string_view data) {
  if (!data.empty()) return Reply(kOptList, kRepErrInvalid, "NBD_OPT_LIST takes no data");
  Outcome out;
  for (const std::string& name : catalog_->names()) {
    std::string entry;
    PutU32(&entry, static_cast<uint32_t>(name.size()));
    entry += name;
    out.reply += EncodeOptionReply(kOptList, kRepServer, entry);
  }
  out.reply += EncodeOptionReply(kOptList, kRepAck);
  return out;
}

Outcome Handshake::InfoOrGo(uint32_t option, std::string_view data) {
  WireReader reader(data);
  uint32_t name_length = 0;
  uint16_t count = 0;
  std::string name;
  std::vector<uint16_t> requests;
  bool ok = reader.U32(&name_length) && ReadString(&reader, name_length, &name) &&
            reader.U16(&count) && reader.remaining() == 2u * count;
  for (uint16_t i = 0; ok && i < count; ++i) {
    uint16_t r = 0;
    ok = reader.U16(&r);
    requests.push_back(r);
  }
  if (!ok) {
    return Reply(option, kRepErrInvalid,
                 "malformed NBD_OPT_INFO/GO: name length, name, count, info requests");
  }
  std::optional<uint64_t> size = catalog_->size_of(name);
  if (!size) {
    return Reply(option, kRepErrUnknown, absl::StrCat("no volume named \"", name, "\""));
  }
  Choose(name, *size);
  Outcome out;
  std::string info;
  PutU16(&info, kInfoExport);
  PutU64(&info, session_.size);
  PutU16(&info, session_.flags);
  out.reply += EncodeOptionReply(option, kRepInfo, info);
  auto requested = [&](uint16_t type) {
    return std::find(requests.begin(), requests.end(), type) != requests.end();
  };
  if (requested(kInfoName)) {
    info.clear();
    PutU16(&info, kInfoName);
    info += name;
    out.reply += EncodeOptionReply(option, kRepInfo, info);
  }
  if (requested(kInfoDescription)) {
    info.clear();
    PutU16(&info, kInfoDescription);
    info += absl::StrCat("simarray volume ", name);
    out.reply += EncodeOptionReply(option, kRepInfo, info);
  }
  // Always sent: any byte offset works (minimum 1), whole tracks are what the cache and the
  // mirror move (preferred), and max_write bounds one request (maximum).
  const uint32_t maximum = catalog_->max_payload;
  uint32_t preferred = catalog_->track_size;
  if (preferred > maximum) preferred = std::max<uint32_t>(512, std::bit_floor(maximum));
  info.clear();
  PutU16(&info, kInfoBlockSize);
  PutU32(&info, 1);
  PutU32(&info, preferred);
  PutU32(&info, maximum);
  out.reply += EncodeOptionReply(option, kRepInfo, info);
  out.reply += EncodeOptionReply(option, kRepAck);
  if (option == kOptGo) out.next = Next::kTransmission;
  return out;
}

Outcome Handshake::MetaContext(uint32_t option, std::string_view data) {
  const bool set = option == kOptSetMetaContext;
  // SET replaces the selection even when it fails.
  if (set) allocation_export_.reset();
  if (set && !structured_) {
    return Reply(option, kRepErrInvalid,
                 "NBD_OPT_SET_META_CONTEXT needs NBD_OPT_STRUCTURED_REPLY first");
  }
  MetaRequest request;
  if (!ParseMetaRequest(data, &request)) {
    return Reply(option, kRepErrInvalid,
                 "malformed meta context request: export name, query count, queries");
  }
  if (!catalog_->size_of(request.export_name)) {
    return Reply(option, kRepErrUnknown,
                 absl::StrCat("no volume named \"", request.export_name, "\""));
  }
  bool match = false;
  if (set) {
    for (const std::string& q : request.queries) match = match || q == kBaseAllocation;
  } else {
    match = request.queries.empty();
    for (const std::string& q : request.queries) {
      match = match || q == kBaseAllocation || q == "base:";
    }
  }
  Outcome out;
  if (match) {
    std::string context;
    PutU32(&context, set ? kBaseAllocationId : 0);
    context += kBaseAllocation;
    out.reply += EncodeOptionReply(option, kRepMetaContext, context);
    if (set) allocation_export_ = request.export_name;
  }
  out.reply += EncodeOptionReply(option, kRepAck);
  return out;
}

}  // namespace simarray::nbd
