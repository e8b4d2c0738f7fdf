#pragma once
// DaemonConfig: one daemon's TOML config file (configs/primary.toml shows every key).
// LoadConfig checks every value; an error names the file, the key and the reason, and the
// daemon exits non-zero with it.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/statusor.h"
#include "simarray/mirror/write_pacing.h"
#include "simarray/remote/link_emulation.h"
#include "simarray/rpc/rpc.h"

namespace simarray::daemon {

struct HostAdaptorConfig {
  std::string id;
  std::string listen;
  std::string protocol = "grpc";  // "grpc" | "nbd"
};

struct VolumeConfig {
  std::string name;
  uint64_t size = 0;
};

// One RDF group (docs/groups.md): a set of this array's volumes mirrored to one remote
// array, in one mode, over one link. From `[[rdf_group]]`, or, in a config without one, from
// the top-level keys of the single-peer form (mode, cycle_ms, cycle_cache_percent,
// peer.address, link.*), which make the group named "default".
struct GroupConfig {
  std::string name = "default";  // [a-z0-9_-]{1,32}
  uint32_t number = 1;           // SRDF's RDF group number, 1 to 250, unique per array
  std::string peer_address;      // the remote array's peer port; empty: learned (target)
  // This array's side at first start: "R1" (source) or "R2" (target). From the table's
  // `role`, else from the daemon's (primary: R1, mirror: R2). The first group's role is the
  // daemon's role ever after (kept in the cache region's header); any other group keeps its
  // own in its state directory (docs/groups.md).
  std::string role = "R1";
  std::string mode = "sync";  // "sync" | "async" (docs/async.md)
  uint32_t cycle_ms = 1000;   // async: how long a capture cycle stays open
  // async: the share of cache slots the capture and transmit cycles may pin before they
  // fall back to owed tracks (pull-ahead). The mirror stages a whole cycle in its cache, so
  // keep it under half of the smaller cache of the pair.
  uint32_t cycle_cache_percent = 25;
  std::string link_policy = "continue";  // "continue" | "fail" (docs/pair.md)
  uint32_t ack_timeout_ms = 5000;
  // link.emulate (docs/link-emulation.md): the link as a real one between sites; off.
  remote::LinkEmulations link_emulation;
  // resync.max_rate: bits a second a resync may ship (docs/pair.md); 0: as fast as it can.
  uint64_t resync_max_rate = 0;
  // async: "group" (its cycles switch on their own) or "multi-group": every multi-group
  // group of the array switches its cycles at once, so their targets together hold one
  // consistent image (SRDF's MSC, docs/groups.md "Consistency across groups").
  std::string consistency = "group";
  // async: write pacing (docs/async.md, "Write pacing"); off.
  mirror::PacingSettings pacing;
  // async: dse.max_size, the delta set extension's most bytes (docs/async.md); 0: none.
  uint64_t dse_max_size = 0;
  // Where the group's state files live: data_dir itself for "default" (the single-peer
  // form's files stay where they always were), data_dir/groups/NAME for any other.
  std::string StateDir(const std::string& data_dir) const;
};

struct DaemonConfig {
  std::string path;
  std::string name;              // daemon id in logs and Hello
  std::string role = "primary";  // "primary" | "mirror" (first start only)
  // The single-peer form's group settings; with an [[rdf_group]] they are its settings (the
  // daemon-wide code that still reads them sees the one group).
  std::string mode = "sync";
  uint32_t cycle_ms = 1000;
  uint32_t cycle_cache_percent = 25;
  std::string data_dir;
  uint32_t track_size = 64 << 10;
  uint64_t max_write = 32 << 20;
  uint64_t cache_size = 256 << 20;
  bool cache_persistent = true;
  // "local" | "cache" from the config file; "bypass" (benchmark only, unsafe: no pen, no
  // CRC-32C validation) only from the command line, --unsafe-bypass-holding-pen
  std::string holding_pen = "local";
  uint64_t queue_capacity = 4096;  // mirror queue places
  uint64_t host_workers = 4;
  // How long a host write waits for a mirror-queue place or a free cache slot before it
  // fails DEADLINE_EXCEEDED (and counts as invalid, reason "resource_exhausted").
  uint64_t host_wait_ms = 30000;
  std::vector<HostAdaptorConfig> host_adaptors;
  std::string admin_listen = "127.0.0.1:0";
  // Secrets live in files; a relative path is taken inside data_dir. LoadSecrets fills
  // admin_token and peer_secret from them.
  std::string admin_token_file;  // empty: admin calls need no token
  std::string admin_token;
  std::string metrics_listen;
  std::string peer_listen = "127.0.0.1:0";
  // The address this daemon tells its peers in Hello (where they reach its peer port, e.g.
  // to ship back after a failover). Empty: the bound peer.listen address, which is useless
  // to a peer when it is 0.0.0.0 (containers, several interfaces).
  std::string peer_advertise;
  std::string peer_address;      // the other daemon's peer port; empty: not paired
  std::string peer_secret_file;  // empty: the peer link is not authenticated
  std::string peer_secret;
  // Mutual TLS on the peer link: PEM files (relative: in data_dir), all three or none.
  std::string peer_tls_cert_file, peer_tls_key_file, peer_tls_ca_file;
  rpc::TlsConfig peer_tls;  // filled by LoadSecrets; server_name from peer.tls.server_name
  std::string link_policy = "continue";
  uint32_t ack_timeout_ms = 5000;
  remote::LinkEmulations link_emulation;  // [link.emulate]
  uint64_t resync_max_rate = 0;           // resync.max_rate
  mirror::PacingSettings pacing;          // [pacing]
  uint64_t dse_max_size = 0;              // dse.max_size
  // An async target keeps a gold copy of its last consistent image while a resync
  // overwrites it (docs/async.md, "Gold copy"): "auto" or "off".
  std::string gold_copy = "auto";
  // The RDF groups: the [[rdf_group]] tables, or the one the single-peer form makes when it
  // names a peer or the mirror role (a primary without either has none until a Hello
  // teaches it one, docs/groups.md). At most kMaxGroups, and at most one of them R2 at a
  // time (one inbound stream per array for now).
  static constexpr size_t kMaxGroups = 8;
  std::vector<GroupConfig> groups;
  // The group the single-peer form makes (name "default"), whether or not it is in `groups`.
  GroupConfig SinglePeerGroup() const;
  std::string log_level = "info";
  std::vector<VolumeConfig> volumes;
};

// `data_dir_override`, when not empty, replaces the file's data_dir.
absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path,
                                        const std::string& data_dir_override);

// The same check of config text already read; `path` only names it in errors. Touches no
// file.
absl::StatusOr<DaemonConfig> ParseConfig(std::string_view text, const std::string& path,
                                         const std::string& data_dir_override);

// The checks an [[rdf_group]] table's settings get, role and peer included, for a group made
// at run time (CreateGroup); INVALID_ARGUMENT names the key.
absl::Status CheckGroupConfig(const GroupConfig& group);
// [[rdf_group]] tables alone (data_dir/groups.toml: the groups made at run time), checked
// like a config's; `path` names the file in errors.
absl::StatusOr<std::vector<GroupConfig>> ParseGroupTables(std::string_view text,
                                                          const std::string& path);

// Reads the admin token and the peer secret from their files (paths resolved against
// data_dir). A missing admin token file is created with a fresh random token, readable by
// its owner only; a missing peer secret file is an error (both sides need the same one).
// Errors name the config file, the key and the reason. `warnings` gets one line for each
// secret file that others than its owner may read.
absl::Status LoadSecrets(DaemonConfig& config, std::vector<std::string>* warnings);

}  // namespace simarray::daemon
