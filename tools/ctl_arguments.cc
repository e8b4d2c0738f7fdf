#include "tools/ctl_arguments.h"

#include <charconv>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "simarray/base/size.h"

namespace simarray::ctl {
namespace {

// Range check shared by the numeric validators; `what` names the expected form. On success
// `text` becomes the plain decimal value.
std::string CheckRange(const absl::StatusOr<uint64_t>& value, std::string& text,
                       absl::string_view what, uint64_t min, uint64_t max, bool sizes) {
  if (!value.ok()) return std::string(value.status().message());
  if (*value < min || *value > max) {
    auto bound = [sizes](uint64_t v) { return sizes ? FormatSize(v) : absl::StrCat(v); };
    std::string message = absl::StrCat("expected ", what);
    if (max == std::numeric_limits<uint64_t>::max()) {
      absl::StrAppend(&message, " of at least ", bound(min));
    } else {
      absl::StrAppend(&message, " from ", bound(min), " to ", bound(max));
    }
    absl::StrAppend(&message, ", got \"", text, "\"");
    if (text != absl::StrCat(*value)) absl::StrAppend(&message, " (", *value, ")");
    return message;
  }
  text = absl::StrCat(*value);
  return "";
}

}  // namespace

CLI::Validator SizeArgument(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) {
        return CheckRange(ParseSize(text), text, "a size (bytes, or with K, M, G, T)", min, max,
                          true);
      },
      "", "SIZE");
}

CLI::Validator NumberArgument(uint64_t min, uint64_t max) {
  return CLI::Validator(
      [min, max](std::string& text) {
        return CheckRange(ParseNumber(text), text, "a decimal or 0x-hex number", min, max, false);
      },
      "", "NUMBER");
}

CLI::Validator Hex32Argument() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::string_view digits = text;
        if (digits.starts_with("0x") || digits.starts_with("0X")) digits.remove_prefix(2);
        uint32_t value = 0;
        auto [end, ec] = std::from_chars(digits.data(), digits.data() + digits.size(), value, 16);
        if (digits.empty() || digits.size() > 8 || ec != std::errc() ||
            end != digits.data() + digits.size()) {
          return absl::StrCat("expected a CRC-32C as 1 to 8 hex digits (e.g. 0xe3069283), got \"",
                              text, "\"");
        }
        text = absl::StrCat(value);
        return "";
      },
      "", "HEX");
}

}  // namespace simarray::ctl
