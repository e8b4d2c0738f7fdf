#include "tools/ctl_write_source.h"

#include <sys/stat.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <span>

#include "absl/strings/str_cat.h"
#include "simarray/base/crc32c.h"

namespace simarray::ctl {
namespace {

std::span<const uint8_t> Bytes(std::string_view s) {
  return {reinterpret_cast<const uint8_t*>(s.data()), s.size()};
}

}  // namespace

absl::StatusOr<WriteSource> WriteSource::FromFile(const std::string& path) {
  struct stat st;
  if (::stat(path.c_str(), &st) != 0) {
    const int error = errno;
    std::string message = absl::StrCat("cannot open ", path, ": ", std::strerror(error));
    return error == ENOENT ? absl::NotFoundError(message) : absl::InvalidArgumentError(message);
  }
  if (!S_ISREG(st.st_mode)) {
    return absl::InvalidArgumentError(absl::StrCat(path, " is not a regular file"));
  }
  return WriteSource(path, 0, static_cast<uint64_t>(st.st_size));
}

WriteSource WriteSource::Pattern(uint8_t byte, uint64_t length) {
  return WriteSource("", byte, length);
}

absl::Status WriteSource::ForEachPiece(uint64_t chunk,
                                       const std::function<bool(std::string_view)>& piece) const {
  if (chunk == 0) return absl::InvalidArgumentError("piece size 0");
  if (path_.empty()) {
    const std::string buffer(std::min(chunk, length_), static_cast<char>(byte_));
    for (uint64_t done = 0; done < length_;) {
      const uint64_t n = std::min<uint64_t>(buffer.size(), length_ - done);
      if (!piece(std::string_view(buffer.data(), n))) return absl::OkStatus();
      done += n;
    }
    return absl::OkStatus();
  }
  std::ifstream in(path_, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot open ", path_));
  std::string buffer(std::min(chunk, length_), '\0');
  for (uint64_t done = 0; done < length_;) {
    const uint64_t want = std::min<uint64_t>(buffer.size(), length_ - done);
    in.read(buffer.data(), static_cast<std::streamsize>(want));
    if (static_cast<uint64_t>(in.gcount()) != want) {
      return absl::DataLossError(absl::StrCat(path_, " shrank while being read: expected ", length_,
                                              " bytes, got ", done + in.gcount()));
    }
    if (!piece(std::string_view(buffer.data(), want))) return absl::OkStatus();
    done += want;
  }
  return absl::OkStatus();
}

absl::StatusOr<uint32_t> WriteSource::Crc32c() const {
  uint32_t state = kCrc32cInit;
  absl::Status s = ForEachPiece(4 << 20, [&state](std::string_view piece) {
    state = Crc32cExtend(state, Bytes(piece));
    return true;
  });
  if (!s.ok()) return s;
  return Crc32cFinish(state);
}

absl::StatusOr<std::string> WriteSource::ReadAll() const {
  std::string all;
  all.reserve(length_);
  absl::Status s = ForEachPiece(4 << 20, [&all](std::string_view piece) {
    all.append(piece);
    return true;
  });
  if (!s.ok()) return s;
  return all;
}

}  // namespace simarray::ctl
