#pragma once
// CLI11 validators for simarrayctl's arguments. Each one checks the text as typed and, when it
// is good, rewrites it as a plain decimal number, so the option can be bound straight to an
// integer; when it is bad the error says what was expected and what came.

#include <cstdint>
#include <limits>

#include "CLI/CLI.hpp"

namespace simarray::ctl {

// A byte size as simarray::ParseSize reads it ("4096", "64K", "1M", "1G"), in [min, max].
CLI::Validator SizeArgument(uint64_t min = 0, uint64_t max = std::numeric_limits<uint64_t>::max());

// A decimal or 0x-hex number (simarray::ParseNumber) in [min, max].
CLI::Validator NumberArgument(uint64_t min = 0,
                              uint64_t max = std::numeric_limits<uint64_t>::max());

// A 32-bit value in hex, with or without 0x ("e3069283", "0xE3069283").
CLI::Validator Hex32Argument();

}  // namespace simarray::ctl
