#pragma once
// Bench: the workloads of docs/performance.md, run one after another against one pair, each adding
// its row to one Report (report.h). The pair is one the bench starts itself (pair_launcher.h)
// or an existing one named on the command line. Not thread-safe: bench_main.cc drives it.

#include <algorithm>
#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench.pb.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/closed_loop.h"
#include "tools/bench/cost.h"
#include "tools/bench/echo_baseline.h"
#include "tools/bench/host_workload.h"
#include "tools/bench/pair_launcher.h"

namespace simarray::bench {

// What the command line asks for.
struct BenchFlags {
  double duration_s = 8;  // measured seconds per workload
  double warmup_s = 1;    // unmeasured seconds before each
  bool json = false;
  std::string simarrayd;  // empty: the one built beside the bench
  // An existing pair (empty: the bench starts its own).
  std::string primary_admin;
  std::string primary_host;
  std::string primary_nbd;
  std::string mirror_admin;
  std::string primary_token_file;  // admin tokens of an existing pair, if it has them
  std::string mirror_token_file;
  // Rows to run ("qd1", "qd32", "async", "nbd", "flush", "size", "tracks", "pen"); empty: all
  // of them.
  std::vector<std::string> only;

  bool Wants(const std::string& row) const {
    return only.empty() || std::find(only.begin(), only.end(), row) != only.end();
  }
};

// The workloads' shape.
inline constexpr uint32_t kBlock = 4 << 10;
// Small enough to stay in cache whole: the bench measures the write path, not a disk.
inline constexpr uint64_t kVolumeSize = 64 << 20;
inline constexpr size_t kStreamChunk = 128 << 10;
inline constexpr int kStreamWindow = 16;
inline constexpr int kMaxMessage = 4 << 20;
inline constexpr char kVolume[] = "bench";
inline constexpr char kNbdVolume[] = "bench-nbd";
// The volume-size row's big volume: sparse (the daemon's volume files are ftruncated), written
// at random offsets over all of it and never prefilled, so it stays mostly holes.
inline constexpr uint64_t kBigVolumeSize = uint64_t{64} << 30;
inline constexpr char kBigVolume[] = "bench-64g";
// The track-size rows' track sizes (the config's track_size), and the one they are compared
// with: the shipped configs' 64K.
inline constexpr const char* kTrackSizes[] = {"16K", "64K", "256K"};
inline constexpr char kReferenceTrackSize[] = "64K";

// The targets the project set (docs/performance.md).
inline constexpr double kMaxQd1LatencyRatio = 1.3;
inline constexpr double kMinQd32IopsRatio = 1.0;
inline constexpr double kMinAsyncRatio = 0.75;
inline constexpr double kMaxPenCost = 0.05;
inline constexpr double kMinNbdRatio = 0.5;
// The volume-size and track-size rows: "flat" when the pair's CPU per write is within this
// fraction of the reference run's (docs/performance.md).
inline constexpr double kMaxFlatDeviation = 0.15;

class Bench {
 public:
  // Launched pairs keep their configs, data and logs under `scratch`, which must outlive this.
  Bench(const BenchFlags& flags, std::string scratch);

  // Starts (or reaches) the pair to measure and writes the bench volumes on it once. An error
  // here means there is nothing to measure.
  absl::Status Prepare();

  // Each adds its row(s); a workload that fails adds a row saying so and marks the run failed.
  void SyncQd1();   // grpc_rows.cc
  void SyncQd32();  // grpc_rows.cc
  // async_rows.cc: on a fresh async pair, 128 KiB sequential writes against one raw stream,
  // and 4 KiB QD1 latency (no peer round trip) beside the two-hop echo.
  void AsyncSequential();
  // link_row.cc: on a fresh async pair whose link is emulated at 100 Mbit/s with 20 ms each
  // way (docs/link-emulation.md), 128 KiB sequential writes as fast as the host takes them:
  // the rate the link ships at against the emulated bandwidth.
  void EmulatedLink();
  // Then, on that pair: the whole volume written while the link is suspended, and the
  // resync's rate from ResumeLink to nothing owed.
  void ResyncOverLink(const DaemonAddresses& primary, double bits);
  void NbdRandomWrite();  // nbd_row.cc
  // nbd_row.cc: 4 KiB random writes at QD1 with a FLUSH after every 16th, beside nbdkit
  // doing the same (no target: shows what a flush costs on a persistent cache).
  void NbdFlushWrite();
  // Adds a remark per volume: is the mirror consistent with what the bench wrote?
  void CheckMirror();
  // volume_size_row.cc: on a fresh pair, sync 4 KiB QD32 writes on a 64 MiB volume against
  // the same on a 64 GiB sparse volume (random over all of it), compared by pair CPU per
  // write. Stops the pair the rows above measured (like PenCost), so it runs after them.
  void VolumeSizeCost();
  // track_size_rows.cc: on three fresh pairs with track_size 16K, 64K and 256K, sync 4 KiB
  // QD32 writes on a 64 MiB volume, compared by pair CPU per write with the 64K pair. Also
  // stops the pair the rows above measured.
  void TrackSizeCost();
  // pen_cost_row.cc. Stops the pair the first rows measured, so it runs after them.
  void PenCost();

  Report& report() { return report_; }
  bool failed() const { return failed_; }
  // The daemon the bench starts: --simarrayd, else the one built beside it, else on PATH.
  std::string DaemonPath() const;

 private:
  std::chrono::duration<double> warmup() const {
    return std::chrono::duration<double>(flags_.warmup_s);
  }
  std::chrono::duration<double> duration() const {
    return std::chrono::duration<double>(flags_.duration_s);
  }
  // The bench starts its own pairs (no --primary): the rows that need fresh pairs can run.
  bool OwnPairs() const { return flags_.primary_admin.empty(); }
  // Stops the pair the first rows measured (once they and CheckMirror are done), so that the
  // rows with pairs of their own do not run beside it.
  void StopMeasuredPair() { target_.launched.reset(); }
  // Creates `volume` and writes it once (Prefill), so that every pair starts alike.
  absl::Status PrepareVolume(const AdminPort& admin, const std::string& host,
                             const std::string& volume);
  absl::Status StartEcho();
  // Samples the launched pair's CPU while it is idle, into the report.
  void MeasureIdle();
  // What one measured run cost a pair (cost.h): the difference between the samples, and
  // what went wrong while taking them ("" if nothing).
  struct RunCost {
    CostDelta delta;
    std::string note;
  };
  // Closed loops at `depth` for warm-up + duration * `duration_fraction`; `trouble` gets
  // what went wrong ("" if nothing). With `pair` and `cost`, also what the measured window
  // cost that pair (sampled as it starts, and after Settle once it is over).
  LoopResult Writes(const std::string& label, const std::string& host, int depth,
                    std::string* trouble, double duration_fraction = 1.0,
                    const PairProbe* pair = nullptr, RunCost* cost = nullptr);
  // The same with the caller's writer (another volume, or offsets it checks afterwards).
  LoopResult Writes(const std::string& label, HostWriter& writer, int depth, std::string* trouble,
                    double duration_fraction, const PairProbe* pair, RunCost* cost);
  // One of the runs that a row compares in alternating rounds (RunRounds): its writer and
  // pair, and what its turns added up to.
  struct Contender {
    std::string name;  // "64 MiB volume", "16 KiB tracks": progress labels and notes
    std::unique_ptr<HostWriter> writer;
    PairProbe probe;
    CostDelta total;                   // every turn's cost, summed
    uint64_t completed = 0;            // writes in the measured windows
    double seconds = 0;                // length of the measured windows
    std::vector<double> round_cpu_us;  // pair CPU µs per write of each round (-1: unknown)
    std::string trouble;               // failed writes or a failed flush, "" if none
    double PerSecond() const { return seconds > 0 ? completed / seconds : 0; }
    // Each round's pair CPU per write over `reference`'s in the same round, for the rounds
    // that measured both.
    std::vector<double> RatiosTo(const Contender& reference) const;
    // "a/b, a/b, ...": each round's CPU per write here and in `reference`, for a row's note.
    std::string RoundsAgainst(const Contender& reference) const;
  };
  // Points between the highest and the lowest of `ratios` (0 when empty).
  static double SpreadPoints(std::vector<double> ratios);
  // `rounds` rounds of one turn per contender, QD32 writes for `turn_fraction` of
  // --duration-s after a warm-up, each turn closed by Settle; forward order in even rounds,
  // reversed in odd ones, so that a drift in what else the machine runs hits all alike.
  void RunRounds(std::vector<Contender>& contenders, int rounds, double turn_fraction);
  // `cpu_us_per_call`, if given, gets the bench process's CPU per echo call over the
  // measured window: the client and both echo servers (negative if not sampled).
  LoopResult Echoes(const std::string& label, int depth, std::string* trouble,
                    double* cpu_us_per_call = nullptr);
  LoopResult Loop(const std::string& label, int depth, const StartRequest& start,
                  double duration_fraction,
                  std::function<void(uint64_t)> at_window_start = nullptr);
  // Loop, sampling `pair` as the measured window starts and again after `settle` has made
  // the window's work finish (it returns what went wrong, "" if nothing).
  LoopResult CostedLoop(const std::string& label, int depth, const StartRequest& start,
                        double duration_fraction, const PairProbe& pair,
                        const std::function<std::string()>& settle, RunCost* cost);
  void Add(Row row);
  void Fail(Row row, const std::string& why);

  // The pair being measured; `launched` is null for an existing pair.
  struct Target {
    std::unique_ptr<LaunchedPair> launched;
    AdminPort admin;
    std::string host;
    std::string nbd;  // empty: no NBD host adaptor to measure
    PairProbe probe;  // for the cost per write; no pids for an existing pair
  };

  const BenchFlags& flags_;
  const std::string scratch_;
  Target target_;
  std::unique_ptr<TwoHopEcho> echo_;
  Report report_;
  bool failed_ = false;
};

}  // namespace simarray::bench
