#pragma once
// The Network Block Device wire format (the NBD project's doc/proto.md): magic numbers,
// option, command, flag, reply and errno values of the fixed newstyle handshake and the
// transmission phase, and pure functions that parse and encode its messages. Everything on
// the wire is big-endian. Stateless; thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "absl/status/status.h"

namespace simarray::nbd {

// --- handshake ---------------------------------------------------------------------------
inline constexpr uint64_t kNbdMagic = 0x4e42444d41474943ull;     // "NBDMAGIC"
inline constexpr uint64_t kOptionMagic = 0x49484156454f5054ull;  // "IHAVEOPT"
inline constexpr uint64_t kOptionReplyMagic = 0x0003e889045565a9ull;

// Handshake flags (server) and client flags.
inline constexpr uint16_t kFlagFixedNewstyle = 1 << 0;
inline constexpr uint16_t kFlagNoZeroes = 1 << 1;
inline constexpr uint32_t kClientFlagFixedNewstyle = 1 << 0;
inline constexpr uint32_t kClientFlagNoZeroes = 1 << 1;

// Options.
inline constexpr uint32_t kOptExportName = 1;
inline constexpr uint32_t kOptAbort = 2;
inline constexpr uint32_t kOptList = 3;
inline constexpr uint32_t kOptStartTls = 5;
inline constexpr uint32_t kOptInfo = 6;
inline constexpr uint32_t kOptGo = 7;
inline constexpr uint32_t kOptStructuredReply = 8;
inline constexpr uint32_t kOptListMetaContext = 9;
inline constexpr uint32_t kOptSetMetaContext = 10;

// Option reply types; errors have bit 31 set.
inline constexpr uint32_t kRepAck = 1;
inline constexpr uint32_t kRepServer = 2;
inline constexpr uint32_t kRepInfo = 3;
inline constexpr uint32_t kRepMetaContext = 4;
inline constexpr uint32_t kRepErrUnsup = 0x80000001u;
inline constexpr uint32_t kRepErrPolicy = 0x80000002u;
inline constexpr uint32_t kRepErrInvalid = 0x80000003u;
inline constexpr uint32_t kRepErrUnknown = 0x80000006u;
inline constexpr uint32_t kRepErrTooBig = 0x80000009u;

// NBD_REP_INFO types.
inline constexpr uint16_t kInfoExport = 0;
inline constexpr uint16_t kInfoName = 1;
inline constexpr uint16_t kInfoDescription = 2;
inline constexpr uint16_t kInfoBlockSize = 3;

// Transmission flags.
inline constexpr uint16_t kFlagHasFlags = 1 << 0;
inline constexpr uint16_t kFlagReadOnly = 1 << 1;
inline constexpr uint16_t kFlagSendFlush = 1 << 2;
inline constexpr uint16_t kFlagSendFua = 1 << 3;
inline constexpr uint16_t kFlagSendTrim = 1 << 5;
inline constexpr uint16_t kFlagSendWriteZeroes = 1 << 6;
inline constexpr uint16_t kFlagSendDf = 1 << 7;
inline constexpr uint16_t kFlagCanMultiConn = 1 << 8;

// The one metadata context this server knows.
inline constexpr std::string_view kBaseAllocation = "base:allocation";
inline constexpr uint32_t kBaseAllocationId = 1;

// Strings (export names, queries) longer than this are invalid (proto.md: "MUST be no
// longer than 4096 bytes").
inline constexpr size_t kMaxString = 4096;

// --- transmission ------------------------------------------------------------------------
inline constexpr uint32_t kRequestMagic = 0x25609513u;
inline constexpr uint32_t kSimpleReplyMagic = 0x67446698u;
inline constexpr uint32_t kStructuredReplyMagic = 0x668e33efu;
inline constexpr size_t kRequestSize = 28;
inline constexpr size_t kSimpleReplySize = 16;
inline constexpr size_t kChunkHeaderSize = 20;

// Commands.
inline constexpr uint16_t kCmdRead = 0;
inline constexpr uint16_t kCmdWrite = 1;
inline constexpr uint16_t kCmdDisc = 2;
inline constexpr uint16_t kCmdFlush = 3;
inline constexpr uint16_t kCmdTrim = 4;
inline constexpr uint16_t kCmdWriteZeroes = 6;
inline constexpr uint16_t kCmdBlockStatus = 7;

// Command flags.
inline constexpr uint16_t kCmdFlagFua = 1 << 0;
inline constexpr uint16_t kCmdFlagNoHole = 1 << 1;
inline constexpr uint16_t kCmdFlagDf = 1 << 2;
inline constexpr uint16_t kCmdFlagReqOne = 1 << 3;

// Structured reply flags and chunk types.
inline constexpr uint16_t kReplyFlagDone = 1 << 0;
inline constexpr uint16_t kReplyTypeNone = 0;
inline constexpr uint16_t kReplyTypeOffsetData = 1;
inline constexpr uint16_t kReplyTypeBlockStatus = 5;
inline constexpr uint16_t kReplyTypeError = 0x8001;

// base:allocation extent flags.
inline constexpr uint32_t kStateHole = 1 << 0;
inline constexpr uint32_t kStateZero = 1 << 1;

// Error values of replies.
inline constexpr uint32_t kEperm = 1;
inline constexpr uint32_t kEio = 5;
inline constexpr uint32_t kEinval = 22;
inline constexpr uint32_t kEnospc = 28;

// --- big-endian helpers ------------------------------------------------------------------
void PutU16(std::string* out, uint16_t v);
void PutU32(std::string* out, uint32_t v);
void PutU64(std::string* out, uint64_t v);
uint16_t GetU16(const uint8_t* p);
uint32_t GetU32(const uint8_t* p);
uint64_t GetU64(const uint8_t* p);

// Reads big-endian fields off the front of a byte string; every getter fails (returns false)
// instead of reading past the end.
class WireReader {
 public:
  explicit WireReader(std::string_view data) : data_(data) {}
  bool U16(uint16_t* v);
  bool U32(uint32_t* v);
  bool String(size_t length, std::string* v);
  size_t remaining() const { return data_.size() - pos_; }

 private:
  std::string_view data_;
  size_t pos_ = 0;
};

// --- messages ----------------------------------------------------------------------------

// What the server sends first: NBDMAGIC, IHAVEOPT, handshake flags (18 bytes).
std::string EncodeGreeting();

// An option header from the client: IHAVEOPT, option, length of the data that follows.
struct OptionHeader {
  uint64_t magic = 0;
  uint32_t option = 0;
  uint32_t length = 0;
};
inline constexpr size_t kOptionHeaderSize = 16;
OptionHeader ParseOptionHeader(std::span<const uint8_t, kOptionHeaderSize> bytes);

// One option reply (fixed newstyle): magic, option, type, length, data.
std::string EncodeOptionReply(uint32_t option, uint32_t type, std::string_view data = {});

// A transmission request header (the WRITE payload follows it on the wire).
struct Request {
  uint32_t magic = 0;
  uint16_t flags = 0;
  uint16_t type = 0;
  uint64_t cookie = 0;  // "handle": echoed in the reply
  uint64_t offset = 0;
  uint32_t length = 0;
};
Request ParseRequest(std::span<const uint8_t, kRequestSize> bytes);
std::string EncodeRequest(const Request& request);  // for tests and clients

std::string EncodeSimpleReply(uint32_t error, uint64_t cookie);
// A structured reply chunk header announcing `length` payload bytes.
std::string EncodeChunkHeader(uint16_t flags, uint16_t type, uint64_t cookie, uint32_t length);
// NBD_REPLY_TYPE_OFFSET_DATA header for `data_length` bytes at `offset` (the data follows).
std::string EncodeOffsetDataHeader(uint64_t cookie, uint64_t offset, uint32_t data_length,
                                   bool done);
// NBD_REPLY_TYPE_ERROR, final chunk; `message` is cut to kMaxString bytes.
std::string EncodeErrorChunk(uint64_t cookie, uint32_t error, std::string_view message);

// The NBD error value for a failed host adaptor call. WRITE and WRITE_ZEROES past the end
// (`is_write`) get ENOSPC, READ and TRIM EINVAL; a mirror-role daemon (FAILED_PRECONDITION) EPERM;
// a malformed request EINVAL; anything else EIO.
uint32_t ErrnoFor(const absl::Status& status, bool is_write);

// Name of a command for logs ("READ", ..., or the number).
std::string CommandName(uint16_t type);

}  // namespace simarray::nbd
