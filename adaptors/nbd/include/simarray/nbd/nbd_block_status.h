#pragma once
// The base:allocation answer to NBD_CMD_BLOCK_STATUS. The array reports allocation at track
// granularity: a track that reads as all zeros (never written, or zeroed) is a hole that
// reads as zeros (NBD_STATE_HOLE | NBD_STATE_ZERO), any other track is allocated data (0).
// Copy tools use it to skip unwritten tracks. Pure functions; thread-safe.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

namespace simarray::nbd {

struct Extent {
  uint32_t length = 0;
  uint32_t flags = 0;  // kStateHole | kStateZero, or 0
  bool operator==(const Extent&) const = default;
};

// Extents covering [offset, offset + length), where zero_tracks[i] says whether track
// offset / track_size + i reads as all zeros; `zero_tracks` must cover the whole range.
// Neighbouring tracks in the same state merge into one extent; no extent reaches past
// offset + length. With `req_one` (NBD_CMD_FLAG_REQ_ONE) only the first extent is returned.
std::vector<Extent> AllocationExtents(uint64_t offset, uint64_t length, uint32_t track_size,
                                      const std::vector<bool>& zero_tracks, bool req_one);

// A final NBD_REPLY_TYPE_BLOCK_STATUS chunk for one metadata context.
std::string EncodeBlockStatusChunk(uint64_t cookie, uint32_t context_id,
                                   const std::vector<Extent>& extents);

// True when every byte is zero.
bool AllZero(std::span<const uint8_t> bytes);

}  // namespace simarray::nbd
