#pragma once
// LaunchedPair: a primary and a mirror simarrayd that the bench starts itself, on loopback,
// from configs it writes into a scratch directory (every port 0, bound addresses read back
// from --ready-file, as the integration tests do). Like the shipped configs, the pair shares
// a fresh peer secret and each daemon makes its own admin token. The mirror starts first; Start
// returns once the primary reports its link up. Both daemons get SIGTERM on destruction (and die
// with the bench if it is killed). Not thread-safe.

#include <sys/types.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "tools/bench/admin_calls.h"
#include "tools/bench/cost.h"

namespace simarray::bench {

struct PairOptions {
  std::string simarrayd;  // path of the daemon binary
  std::string dir;        // scratch directory: configs, data, logs
  std::string name;       // "pen", "bypass": names the daemons' subdirectories
  std::string holding_pen = "local";
  bool nbd = false;  // also an NBD host adaptor on the primary
  std::string mode = "sync";
  uint32_t cycle_ms = 1000;  // async mode
  uint32_t cycle_cache_percent = 25;
  std::string track_size = "64K";  // the config's track_size (power of two, 4K to 1M)
  std::string primary_extra;       // more TOML for the primary's config, appended verbatim
  std::string mirror_extra;        // and for the mirror's
};

// Where one daemon listens.
struct DaemonAddresses {
  AdminPort admin;
  std::string host;  // gRPC host adaptor "ha0"
  std::string nbd;   // NBD host adaptor "nbd0", if any
};

class LaunchedPair {
 public:
  // UNAVAILABLE naming the daemon and the tail of its log if one does not come up.
  static absl::StatusOr<std::unique_ptr<LaunchedPair>> Start(const PairOptions& options);
  ~LaunchedPair();
  LaunchedPair(const LaunchedPair&) = delete;
  LaunchedPair& operator=(const LaunchedPair&) = delete;

  const DaemonAddresses& primary() const { return primary_; }
  const DaemonAddresses& mirror() const { return mirror_; }
  pid_t primary_pid() const { return primary_process_.pid; }
  pid_t mirror_pid() const { return mirror_process_.pid; }
  // Both daemons' ports and pids, for sampling what a run costs them (cost.h).
  PairProbe Probe() const;

 private:
  LaunchedPair() = default;
  struct Process {
    pid_t pid = -1;
    std::string log;
  };
  // Starts one daemon; fills `addresses`, and `peer` with its peer port.
  absl::Status StartDaemon(const PairOptions& options, const std::string& role,
                           const std::string& peer_address, const std::string& secret,
                           Process* process, DaemonAddresses* addresses, std::string* peer);
  static void Stop(Process& process);

  Process primary_process_;
  Process mirror_process_;
  DaemonAddresses primary_;
  DaemonAddresses mirror_;
};

}  // namespace simarray::bench
