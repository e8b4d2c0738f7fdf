#pragma once
// The bytes `simarrayctl write` sends: a file's contents or N copies of one byte, produced
// in pieces so a large write never sits in memory whole. Not thread-safe.

#include <cstdint>
#include <functional>
#include <string>
#include <string_view>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace simarray::ctl {

class WriteSource {
 public:
  // The file's current size is the write's length. NOT_FOUND / INVALID_ARGUMENT naming the
  // path when it cannot be opened or is not a regular file.
  static absl::StatusOr<WriteSource> FromFile(const std::string& path);
  static WriteSource Pattern(uint8_t byte, uint64_t length);

  uint64_t length() const { return length_; }

  // Calls `piece` with consecutive pieces of at most `chunk` bytes (chunk > 0) covering the
  // whole source, until it returns false. Each call may read the file again; DATA_LOSS when
  // the file no longer has length() bytes.
  absl::Status ForEachPiece(uint64_t chunk,
                            const std::function<bool(std::string_view)>& piece) const;

  // CRC-32C of the whole source (one pass).
  absl::StatusOr<uint32_t> Crc32c() const;

  // The whole source in memory (for unary writes).
  absl::StatusOr<std::string> ReadAll() const;

 private:
  WriteSource(std::string path, uint8_t byte, uint64_t length)
      : path_(std::move(path)), byte_(byte), length_(length) {}

  std::string path_;  // Empty for a pattern.
  uint8_t byte_ = 0;
  uint64_t length_ = 0;
};

}  // namespace simarray::ctl
