#pragma once
// Test helpers for async mode: a pair of daemons in async mode on loopback.

#include <string>

#include "daemon_process.h"

namespace simarray::testing {

inline DaemonOptions AsyncOptions(const std::string& role, uint32_t cycle_ms) {
  DaemonOptions o;
  o.role = role;
  o.mode = "async";
  o.cycle_ms = cycle_ms;
  return o;
}

// A primary and a mirror in async mode with cycles of `cycle_ms`, each with `cache_size`
// of cache memory.
inline Pair AsyncPair(uint32_t cycle_ms, const std::string& cache_size = "64M") {
  DaemonOptions primary = AsyncOptions("primary", cycle_ms);
  DaemonOptions mirror = AsyncOptions("mirror", cycle_ms);
  primary.cache_size = mirror.cache_size = cache_size;
  return Pair(primary, mirror);
}

// Waits until `mirror` applied, as a consistent cycle, everything `primary` had committed
// when called; whether it did.
inline bool MirrorCaughtUp(Daemon& primary, Daemon& mirror) {
  const uint64_t last = primary.Status().sequence();
  return Eventually([&] {
    const v1::StatusReply m = mirror.Status();
    return m.cycles().mirror_consistent() && m.cycles().applied_sequence() >= last;
  });
}

}  // namespace simarray::testing
