#pragma once
// A mirror request: "copy this byte range of this track from this cache slot to the
// mirror". It references cache, it does not copy data: the remote adaptor reads the slot at
// ship time. Move-only (it pins the slot once committed).
//
// Until the commit, `slot` is the staged slot the portion sits in. The commit sets `slot` to
// the slot holding the track's image (whose mirror-owed flag the ack clears) and `data` to a
// pin on the write's own bytes at [offset, offset + length): the staged slot itself after an
// in-place commit, the new image after a copy on write (cache_memory.h).

#include <cstdint>
#include <memory>
#include <string>

#include "simarray/cache/cache_memory.h"
#include "simarray/mirror/write_ticket.h"

namespace simarray::mirror {

struct MirrorRequest {
  cache::TrackKey key;
  uint32_t slot = 0;
  uint32_t offset = 0;  // byte range inside the track
  uint32_t length = 0;
  uint64_t write_id = 0;
  uint64_t sequence = 0;  // set at commit
  cache::SlotRef data;    // pin on the write's bytes, taken at commit
  // Instead of `data`: a cycle record read back from the delta set extension, exactly the
  // bytes [offset, offset + length) (docs/async.md, "Delta set extension").
  std::shared_ptr<const std::string> spilled;
  std::shared_ptr<WriteTicket> ticket;  // sync writes only
  // Async mode: the cycle this record belongs to (0: none, applied on arrival). The cycle's
  // end marker has no data; its `sequence` is the cycle's boundary.
  uint64_t cycle = 0;
  bool cycle_end = false;
  uint64_t cycle_records = 0;     // end marker: data records in the cycle
  bool cycle_consistent = false;  // end marker: applied, the mirror is at the boundary
  // More portions of the same write follow (set at commit on all but its last).
  bool write_continues = false;
};

}  // namespace simarray::mirror
