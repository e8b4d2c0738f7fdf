#pragma once
// The commands of simarrayctl, one function each. A command makes its RPCs with a deadline of
// GlobalOptions::timeout_ms, prints its result (human text, or one JSON object with --json) on
// stdout and returns the process exit code: kExitOk, kExitNotConsistent (consistency only) or
// kExitError after printing the error on stderr. Command-line syntax is checked before a
// command runs (see simarrayctl.cc). Not thread-safe; simarrayctl runs one command.

#include <cstdint>
#include <optional>
#include <string>

#include "grpcpp/grpcpp.h"
#include "simarray/v1/admin.pb.h"

namespace simarray::ctl {

// Largest message the client sends or accepts.
inline constexpr uint64_t kClientMaxWrite = 256ull << 20;
// Writes up to this size go as one unary Write unless --stream is given.
inline constexpr uint64_t kUnaryWriteLimit = 4ull << 20;
// Reads up to this size carry their data in the JSON output.
inline constexpr uint64_t kJsonDataLimit = 4096;

struct GlobalOptions {
  std::string admin = "127.0.0.1:7100";
  bool json = false;
  int64_t timeout_ms = 30000;
  std::string token;  // the admin token (--token-file or SIMARRAY_TOKEN_FILE); may be empty
};

// Readies one call: deadline now + timeout_ms + extra_ms, and the admin token as metadata
// "authorization: Bearer <token>" when there is one.
void PrepareCall(grpc::ClientContext& context, const GlobalOptions& global, int64_t extra_ms = 0);

int RunStatus(const GlobalOptions& global);

// health [ADDR]: grpc.health.v1.Health/Check of ADDR (default: the admin address), which
// needs no token. Prints SERVING (exit 0) or the status the server gave (exit 2): the
// container image's HEALTHCHECK.
int RunHealth(const GlobalOptions& global, const std::string& address);

struct VolumeCreateOptions {
  std::string name;
  uint64_t size = 0;
  std::string group;   // empty: the array's group
  bool local = false;  // in no RDF group
};
int RunVolumeCreate(const GlobalOptions& global, const VolumeCreateOptions& options);
// AdminService.PairVolume: a local volume joins RDF group `group` (empty: the array's).
int RunVolumePair(const GlobalOptions& global, const std::string& name, const std::string& group);
int RunVolumeList(const GlobalOptions& global);
// AdminService.ListGroups: one row per group, then one per volume pair (docs/groups.md).
int RunGroupList(const GlobalOptions& global);
int RunGroupCreate(const GlobalOptions& global, const v1::CreateGroupRequest& request);
int RunGroupDelete(const GlobalOptions& global, const std::string& name);
int RunVolumeDelete(const GlobalOptions& global, const std::string& name, bool force);

struct ConsistencyOptions {
  std::string volume;
  uint32_t wait_ms = 0;
  bool repair = false;
};
int RunConsistency(const GlobalOptions& global, const ConsistencyOptions& options);

int RunFaultCorruptNextWrite(const GlobalOptions& global);
int RunFaultCorruptTrack(const GlobalOptions& global, const std::string& volume, uint64_t track);
int RunFaultDelayRecords(const GlobalOptions& global, uint32_t delay_ms);
int RunFaultCrashMidApply(const GlobalOptions& global);
int RunFaultDropLink(const GlobalOptions& global, uint32_t duration_ms);
// events [--after ID] [--follow]: the daemon's event log (docs/events.md).
int RunEvents(const GlobalOptions& global, uint64_t after, bool follow);
// wait STATE [--timeout S] [--group G]: returns kExitOk once the pair state (or RDF group
// G's SRDF state, docs/groups.md) is STATE, or kExitNotConsistent (1) when `timeout_s`
// passes first.
int RunWait(const GlobalOptions& global, const std::string& state, uint32_t timeout_s,
            const std::string& group);
// fault disk-error|disk-full|disk-heal VOLUME (`kind`); `op` and `count` for the first two.
int RunFaultDisk(const GlobalOptions& global, const std::string& kind, const std::string& volume,
                 const std::string& op, uint32_t count);

// failover | failback [--force] | swap.
// failover, failback, swap, split, establish or restore (`what`) on RDF group `group`.
int RunRoleChange(const GlobalOptions& global, const std::string& what, bool force,
                  const std::string& group);
// link suspend | link resume.
int RunLink(const GlobalOptions& global, bool suspend, const std::string& group);
// link emulate (docs/link-emulation.md).
struct LinkEmulateOptions {
  std::string group;
  std::string direction = "both";
  double latency_ms = 0;
  double jitter_ms = 0;
  std::string bandwidth;  // "100Mbit"; empty: unlimited
  std::string loss;       // "0.1%"; empty: none
  bool off = false;
};
int RunLinkEmulate(const GlobalOptions& global, const LinkEmulateOptions& options);
// Prints a line each time the pair state (or role, link state, owed tracks) changes;
// stops after `count` lines when count > 0.
int RunWatch(const GlobalOptions& global, uint32_t interval_ms, uint32_t count);

struct WriteOptions {
  std::string host;
  std::string volume;
  uint64_t offset = 0;
  // Exactly one source: a file, or `length` copies of `pattern`.
  std::string file;
  std::optional<uint8_t> pattern;
  uint64_t length = 0;
  // Sent instead of the data's CRC-32C when set.
  std::optional<uint32_t> crc32c;
  bool stream = false;
  uint64_t chunk = 1ull << 20;
};
int RunWrite(const GlobalOptions& global, const WriteOptions& options);

struct ReadOptions {
  std::string host;
  std::string volume;
  uint64_t offset = 0;
  uint64_t length = 0;
  std::string out;  // Empty: print a hex dump (human) or the data (JSON, small reads).
};
int RunRead(const GlobalOptions& global, const ReadOptions& options);

}  // namespace simarray::ctl
