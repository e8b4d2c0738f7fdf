#include "simarray/nbd/nbd_protocol.h"

#include "absl/strings/str_cat.h"

namespace simarray::nbd {

void PutU16(std::string* out, uint16_t v) {
  out->push_back(static_cast<char>(v >> 8));
  out->push_back(static_cast<char>(v));
}

void PutU32(std::string* out, uint32_t v) {
  PutU16(out, static_cast<uint16_t>(v >> 16));
  PutU16(out, static_cast<uint16_t>(v));
}

void PutU64(std::string* out, uint64_t v) {
  PutU32(out, static_cast<uint32_t>(v >> 32));
  PutU32(out, static_cast<uint32_t>(v));
}

uint16_t GetU16(const uint8_t* p) { return static_cast<uint16_t>((p[0] << 8) | p[1]); }

uint32_t GetU32(const uint8_t* p) {
  return (static_cast<uint32_t>(GetU16(p)) << 16) | GetU16(p + 2);
}

uint64_t GetU64(const uint8_t* p) {
  return (static_cast<uint64_t>(GetU32(p)) << 32) | GetU32(p + 4);
}

bool WireReader::U16(uint16_t* v) {
  if (remaining() < 2) return false;
  *v = GetU16(reinterpret_cast<const uint8_t*>(data_.data() + pos_));
  pos_ += 2;
  return true;
}

bool WireReader::U32(uint32_t* v) {
  if (remaining() < 4) return false;
  *v = GetU32(reinterpret_cast<const uint8_t*>(data_.data() + pos_));
  pos_ += 4;
  return true;
}

bool WireReader::String(size_t length, std::string* v) {
  if (remaining() < length) return false;
  v->assign(data_.substr(pos_, length));
  pos_ += length;
  return true;
}

std::string EncodeGreeting() {
  std::string out;
  PutU64(&out, kNbdMagic);
  PutU64(&out, kOptionMagic);
  PutU16(&out, kFlagFixedNewstyle | kFlagNoZeroes);
  return out;
}

OptionHeader ParseOptionHeader(std::span<const uint8_t, kOptionHeaderSize> bytes) {
  OptionHeader h;
  h.magic = GetU64(bytes.data());
  h.option = GetU32(bytes.data() + 8);
  h.length = GetU32(bytes.data() + 12);
  return h;
}

std::string EncodeOptionReply(uint32_t option, uint32_t type, std::string_view data) {
  std::string out;
  out.reserve(20 + data.size());
  PutU64(&out, kOptionReplyMagic);
  PutU32(&out, option);
  PutU32(&out, type);
  PutU32(&out, static_cast<uint32_t>(data.size()));
  out.append(data);
  return out;
}

Request ParseRequest(std::span<const uint8_t, kRequestSize> bytes) {
  Request r;
  r.magic = GetU32(bytes.data());
  r.flags = GetU16(bytes.data() + 4);
  r.type = GetU16(bytes.data() + 6);
  r.cookie = GetU64(bytes.data() + 8);
  r.offset = GetU64(bytes.data() + 16);
  r.length = GetU32(bytes.data() + 24);
  return r;
}

std::string EncodeRequest(const Request& request) {
  std::string out;
  PutU32(&out, request.magic);
  PutU16(&out, request.flags);
  PutU16(&out, request.type);
  PutU64(&out, request.cookie);
  PutU64(&out, request.offset);
  PutU32(&out, request.length);
  return out;
}

std::string EncodeSimpleReply(uint32_t error, uint64_t cookie) {
  std::string out;
  PutU32(&out, kSimpleReplyMagic);
  PutU32(&out, error);
  PutU64(&out, cookie);
  return out;
}

std::string EncodeChunkHeader(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length) {
  std::string out;
  PutU32(&out, kStructuredReplyMagic);
  PutU16(&out, flags);
  PutU16(&out, type);
  PutU64(&out, cookie);
  PutU32(&out, length);
  return out;
}

std::string EncodeOffsetDataHeader(uint64_t cookie, uint64_t offset, uint32_t data_length,
                                   bool done) {
  std::string out =
      EncodeChunkHeader(done ? kReplyFlagDone : 0, kReplyTypeOffsetData, cookie, 8 + data_length);
  PutU64(&out, offset);
  return out;
}

std::string EncodeErrorChunk(uint64_t cookie, uint32_t error, std::string_view message) {
  message = message.substr(0, kMaxString);
  std::string out = EncodeChunkHeader(kReplyFlagDone, kReplyTypeError, cookie,
                                      static_cast<uint32_t>(6 + message.size()));
  PutU32(&out, error);
  PutU16(&out, static_cast<uint16_t>(message.size()));
  out.append(message);
  return out;
}

uint32_t ErrnoFor(const absl::Status& status, bool is_write) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 0;
    case absl::StatusCode::kFailedPrecondition:
      return kEperm;
    case absl::StatusCode::kOutOfRange:
      return is_write ? kEnospc : kEinval;
    case absl::StatusCode::kInvalidArgument:
      return kEinval;
    default:
      return kEio;
  }
}

std::string CommandName(uint16_t type) {
  switch (type) {
    case kCmdRead:
      return "READ";
    case kCmdWrite:
      return "WRITE";
    case kCmdDisc:
      return "DISC";
    case kCmdFlush:
      return "FLUSH";
    case kCmdTrim:
      return "TRIM";
    case kCmdWriteZeroes:
      return "WRITE_ZEROES";
    case kCmdBlockStatus:
      return "BLOCK_STATUS";
  }
  return absl::StrCat("command ", type);
}

}  // namespace simarray::nbd
