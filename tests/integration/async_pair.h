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

}  // namespace simarray::testing
