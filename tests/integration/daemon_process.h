#pragma once
// Test harness: a real simarrayd process started from a generated config on loopback
// (every port 0, addresses read back from --ready-file), with stubs for its services.
// Not thread-safe; one test thread drives it.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "grpcpp/grpcpp.h"
#include "simarray/v1/admin.grpc.pb.h"
#include "simarray/v1/host.grpc.pb.h"

namespace simarray::testing {

// One [[rdf_group]] of DaemonOptions::groups.
struct GroupOptions {
  std::string name;
  uint32_t number = 1;
  std::string role = "R1";  // "R1" (source: needs peer_address) or "R2"
  std::string peer_address;
  std::string mode = "sync";
  uint32_t cycle_ms = 1000;
};

struct DaemonOptions {
  std::string role = "primary";
  std::string holding_pen = "local";
  std::string peer_address;  // primary: the mirror's peer port
  int host_adaptors = 1;
  int nbd_adaptors = 0;  // more host adaptors, speaking NBD: "nbd0", ... after the gRPC ones
  std::string track_size = "64K";
  std::string max_write = "4M";
  std::string cache_size = "64M";
  bool persistent = true;
  uint32_t ack_timeout_ms = 5000;
  std::string link_policy = "continue";
  std::string mode = "sync";  // "async": cycles of cycle_ms
  uint32_t cycle_ms = 1000;
  bool metrics = false;  // [metrics] listen on a free port; see Daemon::metrics_address
  std::string extra;     // more TOML, appended verbatim
  // Not empty: mode, cycle_ms, the peer address and the link settings go into one
  // [[rdf_group]] of this name (number 7) instead of the single-peer form's top-level keys.
  std::string group;
  // Not empty: these [[rdf_group]] tables (several groups per array), and no single-peer
  // keys; `group`, `mode` and `peer_address` are not used.
  std::vector<GroupOptions> groups;
  std::string extra_group_keys;       // more TOML, appended verbatim to every one of `groups`
  std::string bind_ip = "127.0.0.1";  // every listener binds here
  std::string peer_advertise;         // peer.advertise (empty: the key is not written)
  std::string netns;                  // run inside this network namespace (ip netns exec)
  // Security: the peer link's shared secret (written to a file the config names; empty:
  // none), and whether admin calls need the token the daemon creates in its data_dir.
  // Every pair runs authenticated unless a test says otherwise.
  std::string peer_secret = "integration-test-peer-secret";
  bool admin_token = false;
  // Mutual TLS on the peer link: a directory with ca.crt and <role>.crt/.key (MakeTestCerts).
  std::string tls_dir;
};

// Writes a throw-away CA (ca.crt) and, signed by it, a certificate and key for each name
// (<name>.crt, <name>.key, valid for IP 127.0.0.1) into `dir`, with the openssl tool.
void MakeTestCerts(const std::string& dir, const std::vector<std::string>& names,
                   const std::string& ca_name = "ca");

// A fresh directory under /tmp, removed on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

class Daemon {
 public:
  Daemon(std::string dir, DaemonOptions options);
  ~Daemon();

  // Starts the process and waits for its ready file; fails the test if it does not come.
  void Start();
  // The peer port the daemon will listen on, picked now if not yet (so that two daemons can
  // name each other in their configs before either starts).
  const std::string& PickPeerAddress();
  // Read at every Start: change it between restarts, or before the first.
  DaemonOptions& options() { return options_; }
  // SIGKILL (or `signal`) and reap.
  void Kill(int signal = 9);
  // SIGTERM and reap; returns the exit status.
  int Stop();
  // Waits for the process to end by itself and reaps it: its exit code, or 128 + the signal
  // that killed it; -1 if it still runs after `limit`.
  int WaitExit(std::chrono::milliseconds limit);
  // Where the daemon writes its log.
  std::string log_path() const { return dir_ + "/daemon.log"; }
  bool running() const { return pid_ > 0; }
  pid_t pid() const { return pid_; }

  v1::HostService::Stub& host(int index = 0) { return *hosts_.at(index); }
  v1::AdminService::Stub& admin() { return *admin_; }
  const std::string& peer_address() const { return peer_; }
  const std::string& admin_address() const { return admin_address_; }
  // host:port of GET /metrics (DaemonOptions::metrics), else empty.
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& host_address(int index = 0) const { return host_addresses_.at(index); }
  // host:port of NBD host adaptor `index`; its pen is Pen(status, host_adaptors + index).
  const std::string& nbd_address(int index = 0) const { return nbd_addresses_.at(index); }
  const std::string& dir() const { return dir_; }
  std::string config_path() const { return dir_ + "/config.toml"; }
  std::string data_dir() const { return dir_ + "/data"; }

  v1::StatusReply Status();
  // The admin token the daemon created (DaemonOptions::admin_token), else empty.
  std::string admin_token() const;
  // Adds the admin token to a call, when the daemon has one.
  void Authorize(grpc::ClientContext& context) const;

 private:
  void WriteConfig();
  std::string dir_;
  DaemonOptions options_;
  pid_t pid_ = -1;
  std::string peer_;
  std::string admin_address_;
  std::string metrics_address_;
  std::vector<std::string> host_addresses_;
  std::vector<std::string> nbd_addresses_;
  std::vector<std::unique_ptr<v1::HostService::Stub>> hosts_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
};

// A primary and a mirror, started mirror first.
struct Pair {
  explicit Pair(DaemonOptions primary_options = {}, DaemonOptions mirror_options = {});
  TempDir dir;
  std::unique_ptr<Daemon> mirror;
  std::unique_ptr<Daemon> primary;
  pid_t mirror_pid() const { return mirror->pid(); }
  // Creates a volume on the primary (and so its twin); fails the test on error.
  void CreateVolume(const std::string& name, uint64_t size);
};

// CreateVolume on `daemon` with its admin token (if it has one); the reply goes to `info`.
grpc::Status CreateVolumeCall(Daemon& daemon, const std::string& name, uint64_t size,
                              v1::VolumeInfo* info = nullptr);

// Runs a simarrayd with `config_text` and returns its exit code and stderr (for config
// errors: it must exit by itself).
struct ExitResult {
  int code;
  std::string stderr_text;
};
ExitResult RunDaemonExpectingExit(const std::string& dir, const std::string& config_text);

// --- calls -------------------------------------------------------------------------------
// (daemon_calls.cc)

std::string Pattern(size_t length, uint32_t seed);
// The whole file ("" if it cannot be read).
std::string ReadFile(const std::string& path);
uint32_t Crc(const std::string& data);

struct WriteOutcome {
  grpc::Status status;
  v1::WriteReply reply;
};
WriteOutcome Write(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                   const std::string& data);
WriteOutcome WriteWithCrc(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                          const std::string& data, uint32_t crc);
// A WriteStream of `data` in `chunk`-byte messages, declaring `declared` bytes
// (default: data.size()).
WriteOutcome StreamWrite(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                         const std::string& data, size_t chunk, int64_t declared = -1);
std::string Read(v1::HostService::Stub& host, const std::string& volume, uint64_t offset,
                 uint64_t length);
v1::CheckConsistencyReply CheckConsistency(Daemon& primary, const std::string& volume,
                                           bool repair = false, uint32_t wait_ms = 10000);

// Polls `condition` every 10 ms until it holds or `limit` passes; returns whether it held.
bool Eventually(const std::function<bool()>& condition,
                std::chrono::milliseconds limit = std::chrono::seconds(20));

// Admin calls that must succeed (`group` empty: the first).
void SuspendLink(Daemon& primary, const std::string& group = "");
void ResumeLink(Daemon& primary, const std::string& group = "");
v1::ListGroupsReply Groups(Daemon& d);
// The SRDF state of `d`'s group `group` ("" if it has no such group).
std::string GroupStateOf(Daemon& d, const std::string& group);
// CreateVolume in RDF group `group` (or, `local`, in none).
grpc::Status CreateVolumeIn(Daemon& d, const std::string& name, uint64_t size,
                            const std::string& group, bool local, v1::VolumeInfo* info = nullptr);
// The volumes `d` lists, by name.
std::map<std::string, v1::VolumeInfo> VolumesOf(Daemon& d);
void InjectFault(Daemon& daemon, v1::FaultKind kind, uint32_t duration_ms = 0,
                 const std::string& volume = "", uint64_t track = 0);
// Arms (or, with kind FAULT_DISK_HEAL, disarms) a disk fault on `volume` of `d`: the next
// `count` operations `op` ("write", "sync" or "read") of its backing file fail; 0: every one
// until healed (docs/storage-faults.md). Faults are not persistent: a restart heals them.
void DiskFault(Daemon& d, v1::FaultKind kind, const std::string& volume,
               const std::string& op = "write", uint32_t count = 0);
// The id of `volume` on `d` (its backing file is data_dir/vol-<id>.img).
uint32_t VolumeId(Daemon& d, const std::string& volume);
// The first `length` bytes of volume `id`'s backing file in `d`'s data_dir (zeros past the
// end of a sparse file).
std::string BackingFile(Daemon& d, uint32_t id, uint64_t length);
// Failover, Failback, Swap, Split, Establish or Restore (`what`) on `d`; fails the test
// unless it ends with `expect`.
v1::RoleChangeReply RoleCall(Daemon& d, const std::string& what, bool force = false,
                             grpc::StatusCode expect = grpc::StatusCode::OK);
// The same for RDF group `group` ("" : the first).
v1::RoleChangeReply GroupRoleCall(Daemon& d, const std::string& what, const std::string& group,
                                  grpc::StatusCode expect = grpc::StatusCode::OK,
                                  bool force = false);
// Waits until the primary reports `state` (e.g. "Synchronized").
bool WaitPairState(Daemon& primary, const std::string& state,
                   std::chrono::milliseconds limit = std::chrono::seconds(60));

// Runs simarrayctl with `args` (a shell-quoted string), capturing stdout and stderr.
struct CtlResult {
  int code;
  std::string out;
};
CtlResult Ctl(const std::string& args);

// Pen counters of host adaptor `index`.
const v1::PenStatus& Pen(const v1::StatusReply& status, int index = 0);

// A daemon alone, with its HTTP port (metrics and console), started; for the tests of that
// port.
struct SoloWithHttp {
  static DaemonOptions Options() {
    DaemonOptions options;
    options.metrics = true;
    return options;
  }
  TempDir dir;
  Daemon daemon{dir.path() + "/solo", Options()};
  SoloWithHttp() { daemon.Start(); }
};

}  // namespace simarray::testing
