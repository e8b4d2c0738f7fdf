#pragma once
// TouchedBlocksVerdict: a bounded check that the mirror holds what a HostWriter wrote, for a
// volume too big for CheckConsistency, which digests every track of the volume on both sides
// (for the bench's 64 GiB sparse volume: 64 GiB read and hashed per side, most of it holes).
// It reads back a sample of the blocks the writer touched, spread evenly over its writes, from
// the primary's and the mirror's host adaptors (a mirror serves reads), and compares both with
// the writer's payload, which every write carried. Blocking; call it once the writes are
// done and acknowledged (in sync mode the mirror then holds every one of them).

#include <cstdint>
#include <string>

#include "tools/bench/host_workload.h"

namespace simarray::bench {

// A one-line verdict for the report, e.g. "mirror holds the written bytes at all 512 sampled
// blocks of 41234 writes (reads from both sides)". At most `max_samples` blocks are read.
std::string TouchedBlocksVerdict(const HostWriter& writer, const std::string& primary_host,
                                 const std::string& mirror_host, uint64_t max_samples);

}  // namespace simarray::bench
