#pragma once
// Write pacing (docs/async.md, "Write pacing"; SRDF/A's group-level pacing): when an async
// group's cycles fill their cache share faster than the link drains them, the host's write
// replies are held back a little, so a host with a bounded queue depth slows to the link's
// pace instead of driving the cycles into a pull-ahead. The delay grows with the share of
// what the cycles may hold (their cache share, plus a delta set extension's chunks) that they
// hold, from 0 at the threshold to `max_delay` at the pull-ahead limit; a write is
// committed (and in its cycle) before its delay starts, so pacing changes when the host
// hears back, never what the mirror gets.

#include <cstdint>

#include "absl/time/time.h"

namespace simarray::mirror {

struct PacingSettings {
  bool on = false;
  // Of the tracks the cycles may hold (the pull-ahead point): pacing starts above this share.
  uint32_t threshold_percent = 60;
  absl::Duration max_delay = absl::Milliseconds(50);
};

// The delay a write gets while the cycles hold `pinned` of `limit` tracks: 0 when pacing is
// off, the limit is 0 or the cycles pin at most the threshold; else in proportion to how far
// past the threshold they are, up to max_delay at the limit.
absl::Duration PacingDelay(const PacingSettings& settings, uint64_t pinned, uint64_t limit);

// The track count pacing starts above (0: off).
uint64_t PacingThreshold(const PacingSettings& settings, uint64_t limit);

}  // namespace simarray::mirror
