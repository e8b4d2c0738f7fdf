#pragma once
// How simarrayctl prints: human text on stdout, one JSON object per command with --json, and
// RPC errors on stderr as "simarrayctl: <command>: <CODE>: <message>". Pure formatting, no
// RPCs. Thread-compatible (simarrayctl is single-threaded).

#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "google/protobuf/message.h"
#include "grpcpp/grpcpp.h"
#include "simarray/base/json.h"
#include "simarray/v1/admin.pb.h"

namespace simarray::ctl {

// Exit codes of simarrayctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitNotConsistent = 1;
inline constexpr int kExitError = 2;

// "NOT_FOUND", "DATA_LOSS", ... as gRPC's documentation spells the code.
const char* StatusCodeName(grpc::StatusCode code);

// Prints "simarrayctl: <command>: <CODE>: <message>" on stderr and returns kExitError.
int ReportRpcError(absl::string_view command, const grpc::Status& status);

// Prints "simarrayctl: <command>: <message>" on stderr and returns kExitError.
int ReportError(absl::string_view command, absl::string_view message);

// A reply as one line of JSON, proto field names kept, zero values printed.
std::string ReplyJson(const google::protobuf::Message& reply);

// 0x-prefixed, 8 hex digits: "0xe3069283".
std::string Hex32(uint32_t value);

// Classic hex dump of `data`, offsets counted from `base`, 16 bytes a line with ASCII.
std::string HexDump(std::string_view data, uint64_t base);

// The multi-line human form of AdminService.Status.
std::string FormatStatus(const v1::StatusReply& status);
// The groups of `simarrayctl group list`: a row per group, then a row per volume pair.
std::string FormatGroups(const v1::ListGroupsReply& reply);

// Columns padded to their widest cell; columns flagged in `right` are right-aligned.
std::string FormatTable(const std::vector<std::vector<std::string>>& rows,
                        const std::vector<bool>& right);

}  // namespace simarray::ctl
