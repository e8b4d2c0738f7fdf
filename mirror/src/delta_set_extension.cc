#include "simarray/mirror/delta_set_extension.h"

#include <fcntl.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "simarray/base/crc32c.h"
#include "spdlog/spdlog.h"

namespace simarray::mirror {
namespace {

constexpr uint64_t kMagic = 0x31455344'79617261ull;  // "arayDSE1"

// The header as it sits in front of a chunk's bytes.
struct OnDisk {
  uint64_t magic;
  uint64_t cycle;
  uint64_t sequence;
  uint64_t track;
  uint32_t volume_id;
  uint32_t offset;
  uint32_t length;
  uint32_t crc32c;  // over the header (this field 0) and the bytes
};
constexpr uint64_t kHeaderBytes = 64;
static_assert(sizeof(OnDisk) <= kHeaderBytes);

std::span<const uint8_t> AsBytes(const OnDisk& h) {
  return {reinterpret_cast<const uint8_t*>(&h), sizeof(h)};
}

uint32_t CrcOf(OnDisk h, std::span<const uint8_t> bytes) {
  h.crc32c = 0;
  return Crc32cFinish(Crc32cExtend(Crc32cExtend(kCrc32cInit, AsBytes(h)), bytes));
}

absl::Status Errno(const std::string& what, const std::string& path) {
  return absl::InternalError(
      absl::StrCat("delta set extension ", path, ": ", what, ": ", std::strerror(errno)));
}

}  // namespace

absl::StatusOr<std::unique_ptr<DeltaSetExtension>> DeltaSetExtension::Open(const std::string& path,
                                                                           uint64_t max_size,
                                                                           uint32_t track_size,
                                                                           bool keep) {
  const uint64_t chunks = max_size / (kHeaderBytes + track_size);
  if (chunks == 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("delta set extension ", path, ": max_size ", max_size, " holds no track of ",
                     track_size, " bytes (each needs ", kHeaderBytes + track_size, ")"));
  }
  const int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600);
  if (fd < 0) return Errno("open", path);
  if (!keep && ::ftruncate(fd, 0) != 0) {
    absl::Status s = Errno("truncate", path);
    ::close(fd);
    return s;
  }
  return std::unique_ptr<DeltaSetExtension>(
      new DeltaSetExtension(path, fd, std::min<uint64_t>(chunks, UINT32_MAX), track_size));
}

DeltaSetExtension::DeltaSetExtension(std::string path, int fd, uint64_t chunks, uint32_t track_size)
    : path_(std::move(path)),
      fd_(fd),
      chunks_(chunks),
      track_size_(track_size),
      chunk_size_(kHeaderBytes + track_size) {
  free_.reserve(chunks_);
  for (uint64_t c = chunks_; c > 0; --c) free_.push_back(static_cast<uint32_t>(c - 1));
  bytes_.assign(chunks_, 0);
  counters_.chunks = chunks_;
}

DeltaSetExtension::~DeltaSetExtension() { ::close(fd_); }

std::optional<uint32_t> DeltaSetExtension::Put(const SpillHeader& header,
                                               std::span<const uint8_t> bytes) {
  uint32_t chunk = 0;
  {
    absl::MutexLock lock(&mu_);
    if (free_.empty()) return std::nullopt;
    chunk = free_.back();
    free_.pop_back();
  }
  OnDisk h{kMagic,
           header.cycle,
           header.sequence,
           header.key.track,
           header.key.volume_id,
           header.offset,
           static_cast<uint32_t>(bytes.size()),
           0};
  h.crc32c = CrcOf(h, bytes);
  std::string image(kHeaderBytes + bytes.size(), '\0');
  std::memcpy(image.data(), &h, sizeof(h));
  std::memcpy(image.data() + kHeaderBytes, bytes.data(), bytes.size());
  const ssize_t n =
      ::pwrite(fd_, image.data(), image.size(), static_cast<off_t>(ChunkOffset(chunk)));
  absl::MutexLock lock(&mu_);
  if (n != static_cast<ssize_t>(image.size())) {
    spdlog::error("{}", std::string(Errno("write", path_).message()));
    free_.push_back(chunk);
    return std::nullopt;
  }
  bytes_[chunk] = static_cast<uint32_t>(bytes.size());
  ++counters_.chunks_used;
  counters_.bytes_held += bytes.size();
  counters_.bytes_spilled += bytes.size();
  return chunk;
}

absl::Status DeltaSetExtension::Get(uint32_t chunk, SpillHeader* header, std::string* bytes) const {
  std::string image(chunk_size_, '\0');
  const ssize_t n =
      ::pread(fd_, image.data(), image.size(), static_cast<off_t>(ChunkOffset(chunk)));
  if (n < static_cast<ssize_t>(kHeaderBytes)) {
    if (n < 0) return Errno(absl::StrCat("read chunk ", chunk), path_);
    return absl::DataLossError(
        absl::StrCat("delta set extension ", path_, ": chunk ", chunk, " is cut short"));
  }
  OnDisk h;
  std::memcpy(&h, image.data(), sizeof(h));
  const bool sized = h.length <= track_size_ && kHeaderBytes + h.length <= static_cast<uint64_t>(n);
  const std::span<const uint8_t> data(reinterpret_cast<const uint8_t*>(image.data()) + kHeaderBytes,
                                      sized ? h.length : 0);
  if (h.magic != kMagic || !sized || CrcOf(h, data) != h.crc32c) {
    return absl::DataLossError(absl::StrCat("delta set extension ", path_, ": chunk ", chunk,
                                            " fails its check (header or CRC-32C)"));
  }
  *header =
      SpillHeader{h.cycle, cache::TrackKey{h.volume_id, h.track}, h.offset, h.length, h.sequence};
  bytes->assign(reinterpret_cast<const char*>(data.data()), data.size());
  return absl::OkStatus();
}

void DeltaSetExtension::Free(uint32_t chunk, bool forget) {
  if (forget) {
    const std::string zeros(kHeaderBytes, '\0');
    if (::pwrite(fd_, zeros.data(), zeros.size(), static_cast<off_t>(ChunkOffset(chunk))) !=
        static_cast<ssize_t>(zeros.size())) {
      spdlog::error("{}", std::string(Errno("wipe", path_).message()));
    }
  }
  absl::MutexLock lock(&mu_);
  if (chunk >= chunks_ || bytes_[chunk] == 0) return;  // not held
  counters_.bytes_held -= bytes_[chunk];
  --counters_.chunks_used;
  bytes_[chunk] = 0;
  free_.push_back(chunk);
}

std::vector<uint32_t> DeltaSetExtension::ChunksOf(uint64_t cycle,
                                                  std::vector<SpillHeader>* headers) const {
  std::vector<uint32_t> found;
  for (uint64_t c = 0; c < chunks_; ++c) {
    OnDisk h;
    const ssize_t n = ::pread(fd_, &h, sizeof(h), static_cast<off_t>(ChunkOffset(c)));
    if (n != static_cast<ssize_t>(sizeof(h))) break;  // past the end of the file
    if (h.magic != kMagic || h.cycle != cycle) continue;
    SpillHeader header;
    std::string bytes;
    if (!Get(static_cast<uint32_t>(c), &header, &bytes).ok()) continue;
    found.push_back(static_cast<uint32_t>(c));
    if (headers != nullptr) headers->push_back(header);
  }
  return found;
}

std::vector<uint32_t> DeltaSetExtension::Hold(uint64_t cycle, std::vector<SpillHeader>* headers) {
  std::vector<uint32_t> held = ChunksOf(cycle, headers);
  absl::MutexLock lock(&mu_);
  for (const uint32_t chunk : held) {
    bytes_[chunk] = track_size_;
    ++counters_.chunks_used;
    counters_.bytes_held += track_size_;
  }
  std::vector<uint32_t> still_free;
  for (const uint32_t chunk : free_) {
    if (bytes_[chunk] == 0) still_free.push_back(chunk);
  }
  free_ = std::move(still_free);
  return held;
}

void DeltaSetExtension::Clear() {
  absl::MutexLock lock(&mu_);
  if (::ftruncate(fd_, 0) != 0)
    spdlog::error("{}", std::string(Errno("truncate", path_).message()));
  free_.clear();
  for (uint64_t c = chunks_; c > 0; --c) free_.push_back(static_cast<uint32_t>(c - 1));
  bytes_.assign(chunks_, 0);
  counters_.chunks_used = 0;
  counters_.bytes_held = 0;
}

SpillCounters DeltaSetExtension::Counters() {
  absl::MutexLock lock(&mu_);
  return counters_;
}

}  // namespace simarray::mirror
