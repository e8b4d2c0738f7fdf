#pragma once
// What a measured run costs the pair: the daemons' CPU time (/proc/PID/stat, for a pair the
// bench started) and their own counters (admin Status: bytes commits copied, bytes and tracks
// destaged, Ship records and messages), sampled as the measured window starts and again once
// its writes are done and both sides flushed, and turned into figures per write (bench.proto's
// Cost). Also the bench process's own CPU, for the client and the in-process baselines.
// Thread-compatible; TakeSample and Settle make blocking admin and host calls.

#include <sys/types.h>

#include <chrono>
#include <cstdint>
#include <string>

#include "bench.pb.h"
#include "tools/bench/admin_calls.h"

namespace simarray::bench {

// CPU seconds (user + system, every thread) that process `pid` has used so far, from
// /proc/PID/stat; negative when unknown (pid <= 0, or no such process).
double ProcessCpuSeconds(pid_t pid);
// The bench process's own CPU seconds so far (getrusage(RUSAGE_SELF)).
double SelfCpuSeconds();

// What the bench knows of a pair, to sample it.
struct PairProbe {
  AdminPort primary_admin;
  std::string primary_host;  // the primary's gRPC host adaptor, for Flush
  pid_t primary_pid = -1;    // -1: a pair the bench did not start (CPU n/a)
  AdminPort mirror_admin;    // address "": the mirror is not known (its figures n/a)
  std::string mirror_host;   // "": not known (Settle waits for its destage instead)
  pid_t mirror_pid = -1;
};

// One daemon's figures at one moment.
struct SideSample {
  bool status_ok = false;         // the counters below came from its Status
  double cpu_s = -1;              // negative: unknown
  uint64_t writes_committed = 0;  // summed over its host adaptors
  uint64_t bytes_copied = 0;
  uint64_t tracks_destaged = 0;
  uint64_t bytes_destaged = 0;
  uint64_t records_shipped = 0;
  uint64_t messages_shipped = 0;
};

struct CostSample {
  bool taken = false;
  std::chrono::steady_clock::time_point at;
  double self_cpu_s = 0;
  SideSample primary;
  SideSample mirror;
};

// Reads the bench's CPU, both daemons' CPU, then both Status replies (in that order).
CostSample TakeSample(const PairProbe& pair);

// Makes the destage of every write so far happen before the closing sample: the host
// Flush on each side's host adaptor (it returns once everything committed is destaged and
// synced), or, for a mirror whose host adaptor is not known, waiting up to 10 s for its
// write-pending tracks to reach zero. What went wrong, as text ("" if nothing).
std::string Settle(const PairProbe& pair);

// The difference between two samples. Additive, so rounds of one pair can be summed.
struct CostDelta {
  bool empty = true;   // nothing added yet (a default CostDelta)
  bool valid = false;  // both samples taken, the primary's Status in both (in every round)
  uint64_t writes = 0;
  double seconds = 0;
  bool primary_cpu_known = false;
  bool mirror_cpu_known = false;
  bool mirror_known = false;  // the mirror's Status in both samples
  double primary_cpu_s = 0;
  double mirror_cpu_s = 0;
  double self_cpu_s = 0;
  uint64_t primary_bytes_copied = 0;
  uint64_t primary_bytes_destaged = 0;
  uint64_t primary_tracks_destaged = 0;
  uint64_t mirror_bytes_copied = 0;
  uint64_t mirror_bytes_destaged = 0;
  uint64_t mirror_tracks_destaged = 0;
  uint64_t records_shipped = 0;
  uint64_t messages_shipped = 0;

  CostDelta& operator+=(const CostDelta& other);
  // Pair CPU per write in µs; negative when unknown.
  double PairCpuUsPerWrite() const;
  // The primary's alone; negative when unknown.
  double PrimaryCpuUsPerWrite() const;
};

CostDelta Difference(const CostSample& before, const CostSample& after);

// The Cost message for the report. `client_is_bench`: the bench process was the client, so
// its CPU per write is reported (not for fio).
Cost ToCost(const CostDelta& delta, const std::string& run, bool client_is_bench,
            const std::string& note);
// Adds the baseline's CPU per operation to `cost` (nothing when `us` is negative: not measured).
void SetBaselineCpu(Cost* cost, double us, const std::string& covers);

// What the echo's CPU figure covers, for SetBaselineCpu.
inline constexpr char kEchoCpuCovers[] =
    "two-hop echo, per call: client and both servers (all in the bench process)";

}  // namespace simarray::bench
