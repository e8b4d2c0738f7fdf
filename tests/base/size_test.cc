#include "simarray/base/size.h"

#include <catch2/catch.hpp>
#include <cstdint>
#include <string>

namespace simarray {
namespace {

uint64_t SizeOf(std::string_view text) {
  auto v = ParseSize(text);
  INFO("ParseSize(\"" << std::string(text) << "\"): " << v.status().ToString());
  REQUIRE(v.ok());
  return *v;
}

uint64_t NumberOf(std::string_view text) {
  auto v = ParseNumber(text);
  INFO("ParseNumber(\"" << std::string(text) << "\"): " << v.status().ToString());
  REQUIRE(v.ok());
  return *v;
}

TEST_CASE("ParseSize reads plain numbers and binary suffixes", "[base][size]") {
  CHECK(SizeOf("0") == 0);
  CHECK(SizeOf("4096") == 4096);
  CHECK(SizeOf("512B") == 512);
  CHECK(SizeOf("64K") == 64 * 1024);
  CHECK(SizeOf("64k") == 64 * 1024);
  CHECK(SizeOf("64KB") == 64 * 1024);
  CHECK(SizeOf("64KiB") == 64 * 1024);
  CHECK(SizeOf("1M") == 1024 * 1024);
  CHECK(SizeOf("1MiB") == 1024 * 1024);
  CHECK(SizeOf("2G") == 2ull << 30);
  CHECK(SizeOf("1T") == 1ull << 40);
  CHECK(SizeOf("18446744073709551615") == UINT64_MAX);
  CHECK(SizeOf("16777215T") == (16777215ull << 40));
}

TEST_CASE("ParseSize rejects what is not a size with INVALID_ARGUMENT", "[base][size]") {
  for (std::string_view bad : {"", "K", "-1", " 1", "1 K", "1.5M", "12X", "1KX", "1P", "0x10",
                               "16777216T", "18446744073709551616", "99999999999999999999K"}) {
    auto v = ParseSize(bad);
    INFO("ParseSize(\"" << std::string(bad) << "\")");
    CHECK(v.status().code() == absl::StatusCode::kInvalidArgument);
  }
}

TEST_CASE("ParseSize errors name the text", "[base][size]") {
  auto v = ParseSize("12X");
  REQUIRE_FALSE(v.ok());
  CHECK_THAT(std::string(v.status().message()), Catch::Contains("12X"));
}

TEST_CASE("ParseNumber reads decimal and 0x-hex", "[base][size]") {
  CHECK(NumberOf("0") == 0);
  CHECK(NumberOf("255") == 255);
  CHECK(NumberOf("0xff") == 255);
  CHECK(NumberOf("0XFF") == 255);
  CHECK(NumberOf("0x10") == 16);
  CHECK(NumberOf("18446744073709551615") == UINT64_MAX);
  CHECK(NumberOf("0xffffffffffffffff") == UINT64_MAX);
}

TEST_CASE("ParseNumber rejects everything else with INVALID_ARGUMENT", "[base][size]") {
  for (std::string_view bad : {"", "0x", "x10", "-1", "+1", "12a", "0xfg", "1K", " 1", "1 ",
                               "18446744073709551616", "0x10000000000000000"}) {
    auto v = ParseNumber(bad);
    INFO("ParseNumber(\"" << std::string(bad) << "\")");
    CHECK(v.status().code() == absl::StatusCode::kInvalidArgument);
  }
  auto v = ParseNumber("12a");
  CHECK_THAT(std::string(v.status().message()), Catch::Contains("12a"));
}

TEST_CASE("FormatSize gives the shortest exact form", "[base][size]") {
  CHECK(FormatSize(0) == "0");
  CHECK(FormatSize(1000) == "1000");
  CHECK(FormatSize(1536) == "1536");
  CHECK(FormatSize(1024) == "1K");
  CHECK(FormatSize(65536) == "64K");
  CHECK(FormatSize(1ull << 20) == "1M");
  CHECK(FormatSize(3ull << 30) == "3G");
  CHECK(FormatSize(1ull << 40) == "1T");
  CHECK(FormatSize(1ull << 50) == "1024T");
}

TEST_CASE("FormatSize output parses back to the same size", "[base][size]") {
  for (uint64_t bytes :
       std::initializer_list<uint64_t>{0ull, 1ull, 1000ull, 4096ull, 65536ull, 1ull << 20,
                                       5ull << 30, (1ull << 40) + 1024, 7ull << 40, UINT64_MAX}) {
    INFO(bytes);
    CHECK(SizeOf(FormatSize(bytes)) == bytes);
  }
}

}  // namespace
}  // namespace simarray
