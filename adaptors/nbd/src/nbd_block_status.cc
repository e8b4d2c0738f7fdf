#include "simarray/nbd/nbd_block_status.h"

#include <algorithm>
#include <cstring>

#include "simarray/nbd/nbd_protocol.h"

namespace simarray::nbd {

std::vector<Extent> AllocationExtents(uint64_t offset, uint64_t length, uint32_t track_size,
                                      const std::vector<bool>& zero_tracks, bool req_one) {
  std::vector<Extent> extents;
  const uint64_t end = offset + length;
  uint64_t pos = offset;
  for (size_t i = 0; pos < end && i < zero_tracks.size(); ++i) {
    const uint64_t track_end = (pos / track_size + 1) * track_size;
    const auto n = static_cast<uint32_t>(std::min(end, track_end) - pos);
    const uint32_t flags = zero_tracks[i] ? (kStateHole | kStateZero) : 0;
    if (!extents.empty() && extents.back().flags == flags) {
      extents.back().length += n;
    } else {
      if (req_one && !extents.empty()) break;
      extents.push_back(Extent{n, flags});
    }
    pos += n;
  }
  return extents;
}

std::string EncodeBlockStatusChunk(uint64_t cookie, uint32_t context_id,
                                   const std::vector<Extent>& extents) {
  std::string out = EncodeChunkHeader(kReplyFlagDone, kReplyTypeBlockStatus, cookie,
                                      static_cast<uint32_t>(4 + 8 * extents.size()));
  PutU32(&out, context_id);
  for (const Extent& e : extents) {
    PutU32(&out, e.length);
    PutU32(&out, e.flags);
  }
  return out;
}

bool AllZero(std::span<const uint8_t> bytes) {
  // 4 KiB at a time against a block of zeros, then the tail.
  static constexpr uint8_t kZeros[4096] = {};
  while (bytes.size() >= sizeof(kZeros)) {
    if (std::memcmp(bytes.data(), kZeros, sizeof(kZeros)) != 0) return false;
    bytes = bytes.subspan(sizeof(kZeros));
  }
  return bytes.empty() || std::memcmp(bytes.data(), kZeros, bytes.size()) == 0;
}

}  // namespace simarray::nbd
