#include "simarray/base/size.h"

#include <cctype>
#include <charconv>
#include <limits>

#include "absl/strings/str_cat.h"

namespace simarray {

absl::StatusOr<uint64_t> ParseNumber(std::string_view text) {
  int base = 10;
  std::string_view digits = text;
  if (digits.size() > 2 && digits[0] == '0' && (digits[1] == 'x' || digits[1] == 'X')) {
    base = 16;
    digits.remove_prefix(2);
  }
  uint64_t value = 0;
  auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, base);
  if (digits.empty() || ec != std::errc() || end != digits.data() + digits.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a decimal or 0x-hex number, got \"", std::string(text), "\""));
  }
  return value;
}

absl::StatusOr<uint64_t> ParseSize(std::string_view text) {
  std::string_view rest = text;
  size_t i = 0;
  while (i < rest.size() && std::isdigit(static_cast<unsigned char>(rest[i]))) ++i;
  if (i == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a size like 4096, 64K, 1M or 2G, got \"", std::string(text), "\""));
  }
  uint64_t value = 0;
  if (std::from_chars(rest.data(), rest.data() + i, value).ec != std::errc()) {
    return absl::InvalidArgumentError(
        absl::StrCat("size \"", std::string(text), "\" overflows 64 bits"));
  }
  std::string_view suffix = rest.substr(i);
  if (suffix.ends_with("iB")) suffix.remove_suffix(2);
  if (suffix.size() == 2 && (suffix[1] == 'B' || suffix[1] == 'b')) suffix.remove_suffix(1);
  int shift = 0;
  if (suffix.size() == 1) {
    switch (std::toupper(static_cast<unsigned char>(suffix[0]))) {
      case 'B':
        shift = 0;
        break;
      case 'K':
        shift = 10;
        break;
      case 'M':
        shift = 20;
        break;
      case 'G':
        shift = 30;
        break;
      case 'T':
        shift = 40;
        break;
      default:
        shift = -1;
    }
  } else if (!suffix.empty()) {
    shift = -1;
  }
  if (shift < 0) {
    return absl::InvalidArgumentError(absl::StrCat("expected a size suffix K, M, G or T, got \"",
                                                   std::string(suffix), "\" in \"",
                                                   std::string(text), "\""));
  }
  if (shift > 0 && value > (std::numeric_limits<uint64_t>::max() >> shift)) {
    return absl::InvalidArgumentError(
        absl::StrCat("size \"", std::string(text), "\" overflows 64 bits"));
  }
  return value << shift;
}

std::string FormatSize(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"", "K", "M", "G", "T"};
  int unit = 0;
  while (unit < 4 && bytes != 0 && bytes % 1024 == 0) {
    bytes /= 1024;
    ++unit;
  }
  return absl::StrCat(bytes, kUnits[unit]);
}

}  // namespace simarray
