#pragma once
// Byte sizes as people write them in configs and on the command line: "4096", "64K",
// "1M", "2G", "1T" (binary multiples; an optional trailing "iB" or "B" is accepted).

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace simarray {

// INVALID_ARGUMENT naming the text when it is not a size or overflows 64 bits.
absl::StatusOr<uint64_t> ParseSize(std::string_view text);

// Shortest exact form: 65536 -> "64K", 1000 -> "1000".
std::string FormatSize(uint64_t bytes);

// Accepts decimal or 0x-prefixed hex ("255", "0xff"); INVALID_ARGUMENT otherwise.
absl::StatusOr<uint64_t> ParseNumber(std::string_view text);

}  // namespace simarray
