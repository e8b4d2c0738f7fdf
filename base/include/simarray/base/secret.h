#pragma once
// Shared secrets and the little cryptography the array needs (OpenSSL underneath): the
// admin token and the peer link's secret are read from files, compared in constant time,
// and the peer secret is only ever used as an HMAC key, never sent.

#include <string>
#include <string_view>

#include "absl/status/statusor.h"

namespace simarray {

// HMAC-SHA256 of `message` under `key`: 32 raw bytes.
std::string HmacSha256(std::string_view key, std::string_view message);

// `bytes` bytes from the operating system's random source (OpenSSL RAND_bytes).
std::string RandomBytes(size_t bytes);

// Lower-case hex of raw bytes.
std::string Hex(std::string_view raw);

// Equal contents, in time that depends only on the lengths.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

// A secret file: its contents without trailing white space. Errors name the file: missing,
// unreadable, empty, or longer than 4 KiB. Sets `*world_readable` when others than the
// owner may read it (the caller warns).
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, bool* loose_permissions);

}  // namespace simarray
