#include "daemon/config.h"

#include <toml++/toml.h>

#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <optional>
#include <set>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/config_cycles.h"
#include "daemon/config_link.h"
#include "daemon/config_reader.h"
#include "simarray/base/size.h"
#include "simarray/disk/volume_catalog.h"

namespace simarray::daemon {
namespace {

// toml++ 3.3 (Debian 12) reaches __builtin_unreachable on many non-ASCII characters where
// it looks for whitespace, e.g. a bare key with an accent (found by fuzz/fuzz_config). So a
// config must be printable ASCII (plus tab, CR, LF), checked before toml++ sees it; a
// string that needs other characters spells them with escapes ("\u00e9").
absl::Status CheckAscii(std::string_view text, const std::string& path) {
  size_t line = 1;
  for (const char ch : text) {
    const auto c = static_cast<unsigned char>(ch);
    if (c == '\n') ++line;
    if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c >= 0x7f) {
      return absl::InvalidArgumentError(
          absl::StrFormat("config %s: line %d: expected printable ASCII, got byte 0x%02x (use "
                          "\\u escapes in strings)",
                          path, line, c));
    }
  }
  return absl::OkStatus();
}

bool OneOf(const std::string& v, std::initializer_list<const char*> options) {
  for (const char* o : options) {
    if (v == o) return true;
  }
  return false;
}

bool ValidGroupName(const std::string& name) {
  if (name.empty() || name.size() > 32) return false;
  for (const char ch : name) {
    if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9') || ch == '_' || ch == '-')) {
      return false;
    }
  }
  return true;
}

// The checks every group's settings get, in the single-peer form (`prefix` empty: the keys
// are top-level) or in an [[rdf_group]] (`prefix` "rdf_group[N].").
void CheckGroup(Reader& r, const std::string& prefix, const GroupConfig& g) {
  if (!ValidGroupName(g.name)) {
    r.Fail(prefix + "name", absl::StrCat("expected [a-z0-9_-]{1,32}, got \"", g.name, "\""));
  }
  if (g.number < 1 || g.number > 250) {
    r.Fail(prefix + "number", absl::StrCat("expected 1 to 250, got ", g.number));
  }
  if (!OneOf(g.mode, {"sync", "async"})) {
    r.Fail(prefix + "mode", absl::StrCat("expected \"sync\" or \"async\", got \"", g.mode, "\""));
  }
  if (g.cycle_ms < 10 || g.cycle_ms > 600000) {
    r.Fail(prefix + "cycle_ms", absl::StrCat("expected 10 to 600000 (ms), got ", g.cycle_ms));
  }
  if (g.cycle_cache_percent < 1 || g.cycle_cache_percent > 90) {
    r.Fail(prefix + "cycle_cache_percent",
           absl::StrCat("expected 1 to 90, got ", g.cycle_cache_percent));
  }
  if (!OneOf(g.link_policy, {"continue", "fail"})) {
    r.Fail(prefix + "link.policy",
           absl::StrCat("expected \"continue\" or \"fail\", got \"", g.link_policy, "\""));
  }
  if (g.ack_timeout_ms == 0) r.Fail(prefix + "link.ack_timeout_ms", "expected at least 1");
  if (!OneOf(g.consistency, {"group", "multi-group"})) {
    r.Fail(prefix + "consistency",
           absl::StrCat("expected \"group\" or \"multi-group\", got \"", g.consistency, "\""));
  } else if (g.consistency == "multi-group" && g.mode != "async") {
    r.Fail(prefix + "consistency",
           "\"multi-group\" is for async groups (a sync group has no cycles to switch)");
  }
  if (g.dse_max_size != 0 && g.mode != "async") {
    r.Fail(prefix + "dse.max_size",
           "a delta set extension is for async groups (a sync group has no cycles to page out)");
  }
  if (g.pacing.on && g.mode != "async") {
    r.Fail(prefix + "pacing.mode",
           "\"on\" is for async groups (a sync write already waits for its mirror)");
  }
}

// The [[rdf_group]] tables. A key the table does not know is an error (a misspelt
// "peer.adress" must not leave a group silently unpaired).
void ReadGroups(Reader& r, const toml::table& root, std::vector<GroupConfig>* groups) {
  const toml::node* node = root.get("rdf_group");
  if (node == nullptr) return;
  const toml::array* tables = node->as_array();
  if (tables == nullptr) return r.Fail("rdf_group", "expected an array of tables ([[rdf_group]])");
  static const std::set<std::string> kKeys = {
      "name", "number", "role", "mode", "cycle_ms", "cycle_cache_percent", "consistency"};
  // Tables of their own, with only these keys.
  static const std::map<std::string, std::set<std::string>> kTables = {
      {"peer", {"address"}},
      {"link", {"policy", "ack_timeout_ms", "emulate"}},
      {"resync", {"max_rate"}},
      {"pacing", {"mode", "threshold_percent", "max_delay_us"}},
      {"dse", {"max_size"}}};
  for (size_t i = 0; i < tables->size(); ++i) {
    const std::string key = absl::StrCat("rdf_group[", i, "]");
    const toml::table* t = (*tables)[i].as_table();
    if (t == nullptr) return r.Fail(key, "expected a table ([[rdf_group]])");
    for (const auto& [k, v] : *t) {
      std::string name(k.str());
      bool known = kKeys.count(name) != 0;
      if (auto table = kTables.find(name); table != kTables.end()) {
        const toml::table* sub = v.as_table();
        known = sub != nullptr;
        for (const auto& [sk, sv] : sub != nullptr ? *sub : toml::table()) {
          const std::string inner(sk.str());
          if (known && table->second.count(inner) == 0) {
            known = false;
            absl::StrAppend(&name, ".", inner);
          }
        }
      }
      if (!known) {
        r.Fail(absl::StrCat(key, ".", name),
               "unknown key (expected name, number, role, mode, cycle_ms, "
               "cycle_cache_percent, consistency, peer.address, link.policy, "
               "link.ack_timeout_ms, link.emulate, resync.max_rate, pacing.* or dse.max_size)");
      }
    }
    GroupConfig g;
    g.name.clear();
    g.number = static_cast<uint32_t>(i + 1);
    g.role.clear();
    toml::node_view<const toml::node> view(t);
    r.String(key + ".name", &g.name, view["name"]);
    r.String(key + ".role", &g.role, view["role"]);
    if (!g.role.empty() && !OneOf(g.role, {"R1", "R2"})) {
      r.Fail(key + ".role", absl::StrCat("expected \"R1\" or \"R2\", got \"", g.role, "\""));
    }
    r.Integer(key + ".number", &g.number, view["number"]);
    r.String(key + ".mode", &g.mode, view["mode"]);
    r.Integer(key + ".cycle_ms", &g.cycle_ms, view["cycle_ms"]);
    r.Integer(key + ".cycle_cache_percent", &g.cycle_cache_percent, view["cycle_cache_percent"]);
    r.String(key + ".consistency", &g.consistency, view["consistency"]);
    r.String(key + ".peer.address", &g.peer_address, view["peer"]["address"]);
    r.String(key + ".link.policy", &g.link_policy, view["link"]["policy"]);
    r.Integer(key + ".link.ack_timeout_ms", &g.ack_timeout_ms, view["link"]["ack_timeout_ms"]);
    ReadLinkEmulation(r, key + ".link.emulate", view["link"]["emulate"], &g.link_emulation);
    ReadRate(r, key + ".resync.max_rate", view["resync"]["max_rate"], &g.resync_max_rate);
    ReadPacing(r, key + ".pacing", view["pacing"], &g.pacing);
    r.Size(key + ".dse.max_size", &g.dse_max_size, view["dse"]["max_size"]);
    CheckGroup(r, key + ".", g);
    for (const GroupConfig& other : *groups) {
      if (other.name == g.name)
        r.Fail(key + ".name", absl::StrCat("duplicate group \"", g.name, "\""));
      if (other.number == g.number) {
        r.Fail(key + ".number", absl::StrCat("group ", g.name, " has number ", g.number,
                                             ", which group ", other.name, " has too"));
      }
    }
    groups->push_back(g);
  }
}

}  // namespace

absl::StatusOr<DaemonConfig> LoadConfig(const std::string& path,
                                        const std::string& data_dir_override) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("config ", path, ": cannot read the file"));
  std::stringstream text;
  text << in.rdbuf();
  return ParseConfig(text.str(), path, data_dir_override);
}

absl::Status CheckGroupConfig(const GroupConfig& group) {
  const toml::table none;
  Reader r("of CreateGroup", none);
  CheckGroup(r, "", group);
  if (!OneOf(group.role, {"R1", "R2"})) {
    r.Fail("role", absl::StrCat("expected \"R1\" or \"R2\", got \"", group.role, "\""));
  } else if (group.role == "R1" && group.peer_address.empty()) {
    r.Fail("peer.address", "required where this array is the source (R1) of the group");
  }
  return r.status();
}

namespace {

// The TOML text parsed; INVALID_ARGUMENT names the file and the line.
absl::StatusOr<toml::table> ParseToml(std::string_view text, const std::string& path) {
  try {
    return toml::parse(text, path);
  } catch (const toml::parse_error& e) {
    return absl::InvalidArgumentError(absl::StrCat(
        "config ", path, ": line ", e.source().begin.line, ": ", std::string(e.description())));
  }
}

}  // namespace

absl::StatusOr<std::vector<GroupConfig>> ParseGroupTables(std::string_view text,
                                                          const std::string& path) {
  auto parsed = ParseToml(text, path);
  if (!parsed.ok()) return parsed.status();
  const toml::table& root = *parsed;
  Reader r(path, root);
  std::vector<GroupConfig> groups;
  ReadGroups(r, root, &groups);
  if (!r.status().ok()) return r.status();
  return groups;
}

absl::StatusOr<DaemonConfig> ParseConfig(std::string_view text, const std::string& path,
                                         const std::string& data_dir_override) {
  if (absl::Status s = CheckAscii(text, path); !s.ok()) return s;
  auto parsed = ParseToml(text, path);
  if (!parsed.ok()) return parsed.status();
  const toml::table& root = *parsed;
  DaemonConfig c;
  c.path = path;
  Reader r(path, root);
  r.String("name", &c.name);
  r.String("role", &c.role);
  r.String("mode", &c.mode);
  r.Integer("cycle_ms", &c.cycle_ms);
  r.Integer("cycle_cache_percent", &c.cycle_cache_percent);
  r.String("data_dir", &c.data_dir);
  r.Size("track_size", &c.track_size);
  r.Size("max_write", &c.max_write);
  r.String("holding_pen", &c.holding_pen);
  r.Size("cache.size", &c.cache_size);
  r.Bool("cache.persistent", &c.cache_persistent);
  r.Integer("mirror_queue.capacity", &c.queue_capacity);
  r.Integer("host_workers", &c.host_workers);
  r.Integer("host_wait_ms", &c.host_wait_ms);
  r.String("admin.listen", &c.admin_listen);
  r.String("admin.token_file", &c.admin_token_file);
  r.String("metrics.listen", &c.metrics_listen);
  r.String("peer.listen", &c.peer_listen);
  r.String("peer.advertise", &c.peer_advertise);
  r.String("peer.address", &c.peer_address);
  r.String("peer.secret_file", &c.peer_secret_file);
  r.String("peer.tls.cert_file", &c.peer_tls_cert_file);
  r.String("peer.tls.key_file", &c.peer_tls_key_file);
  r.String("peer.tls.ca_file", &c.peer_tls_ca_file);
  r.String("peer.tls.server_name", &c.peer_tls.server_name);
  r.String("link.policy", &c.link_policy);
  r.Integer("link.ack_timeout_ms", &c.ack_timeout_ms);
  ReadLinkEmulation(r, "link.emulate", r.Named("link.emulate"), &c.link_emulation);
  ReadRate(r, "resync.max_rate", r.Named("resync.max_rate"), &c.resync_max_rate);
  ReadPacing(r, "pacing", r.Named("pacing"), &c.pacing);
  r.Size("dse.max_size", &c.dse_max_size);
  r.String("gold_copy", &c.gold_copy);
  r.String("log.level", &c.log_level);

  if (auto* has = root["host_adaptor"].as_array()) {
    for (size_t i = 0; i < has->size(); ++i) {
      std::string key = absl::StrCat("host_adaptor[", i, "]");
      const toml::table* t = (*has)[i].as_table();
      if (t == nullptr) {
        r.Fail(key, "expected a table ([[host_adaptor]])");
        break;
      }
      HostAdaptorConfig ha;
      ha.id = absl::StrCat("ha", i);
      toml::node_view<const toml::node> view(t);
      r.String(key + ".id", &ha.id, view["id"]);
      r.String(key + ".listen", &ha.listen, view["listen"]);
      r.String(key + ".protocol", &ha.protocol, view["protocol"]);
      if (ha.listen.empty()) ha.listen = "127.0.0.1:0";
      if (!OneOf(ha.protocol, {"grpc", "nbd"})) {
        r.Fail(key + ".protocol",
               absl::StrCat("expected \"grpc\" or \"nbd\", got \"", ha.protocol, "\""));
      }
      c.host_adaptors.push_back(ha);
    }
  } else if (root.contains("host_adaptor")) {
    r.Fail("host_adaptor", "expected an array of tables ([[host_adaptor]])");
  }
  if (auto* vols = root["volume"].as_array()) {
    for (size_t i = 0; i < vols->size(); ++i) {
      std::string key = absl::StrCat("volume[", i, "]");
      const toml::table* t = (*vols)[i].as_table();
      if (t == nullptr) {
        r.Fail(key, "expected a table ([[volume]])");
        break;
      }
      VolumeConfig v;
      toml::node_view<const toml::node> view(t);
      r.String(key + ".name", &v.name, view["name"]);
      r.Size(key + ".size", &v.size, view["size"]);
      if (!disk::ValidVolumeName(v.name)) {
        r.Fail(key + ".name", absl::StrCat("expected [a-z0-9_-]{1,64}, got \"", v.name, "\""));
      }
      c.volumes.push_back(v);
    }
  }
  r.FailUnknownKeys({"host_adaptor", "volume", "rdf_group"});
  if (!r.status().ok()) return r.status();

  if (!data_dir_override.empty()) c.data_dir = data_dir_override;
  if (c.name.empty()) c.name = c.role;
  if (!OneOf(c.role, {"primary", "mirror"})) {
    r.Fail("role", absl::StrCat("expected \"primary\" or \"mirror\", got \"", c.role, "\""));
  }
  ReadGroups(r, root, &c.groups);
  if (c.groups.empty()) {
    CheckGroup(r, "", c.SinglePeerGroup());
    if (!c.peer_address.empty() || c.role == "mirror") c.groups.push_back(c.SinglePeerGroup());
  } else {
    // One form or the other: a group's settings are in its table.
    for (const char* key :
         {"mode", "cycle_ms", "cycle_cache_percent", "peer.address", "link.policy",
          "link.ack_timeout_ms", "link.emulate", "resync.max_rate", "pacing", "dse.max_size"}) {
      if (root.at_path(key)) {
        r.Fail(key,
               "given at the top level and [[rdf_group]] is used too: move it into the "
               "group's table (docs/groups.md)");
      }
    }
    if (c.groups.size() > DaemonConfig::kMaxGroups) {
      r.Fail("rdf_group", absl::StrCat("expected at most ", DaemonConfig::kMaxGroups,
                                       " [[rdf_group]] tables, got ", c.groups.size()));
    }
    // The first group's role is the daemon's; the others' default to it.
    if (!c.groups.front().role.empty())
      c.role = c.groups.front().role == "R1" ? "primary" : "mirror";
    int targets = 0;
    for (size_t i = 0; i < c.groups.size(); ++i) {
      GroupConfig& g = c.groups[i];
      if (g.role.empty()) g.role = c.role == "primary" ? "R1" : "R2";
      if (g.role == "R2" && ++targets > 1) {
        r.Fail(absl::StrCat("rdf_group[", i, "].role"),
               "expected at most one group where this array is the target (R2) for now "
               "(docs/groups.md, \"What is not there yet\")");
      }
      if (g.peer_address.empty() && g.role == "R1") {
        r.Fail(absl::StrCat("rdf_group[", i, "].peer.address"),
               "required where this array is the source (R1) of the group; only a target "
               "learns its peer from the source's Hello");
      }
    }
    // The daemon-wide settings the rest of the daemon reads are the first group's.
    const GroupConfig& g = c.groups.front();
    c.mode = g.mode;
    c.cycle_ms = g.cycle_ms;
    c.cycle_cache_percent = g.cycle_cache_percent;
    c.peer_address = g.peer_address;
    c.link_policy = g.link_policy;
    c.ack_timeout_ms = g.ack_timeout_ms;
    c.link_emulation = g.link_emulation;
    c.resync_max_rate = g.resync_max_rate;
    c.pacing = g.pacing;
    c.dse_max_size = g.dse_max_size;
  }
  if (c.data_dir.empty()) r.Fail("data_dir", "required (or pass --data-dir)");
  if (c.track_size < 4096 || c.track_size > (1 << 20) || (c.track_size & (c.track_size - 1))) {
    r.Fail("track_size", absl::StrCat("expected a power of two from 4K to 1M, got ", c.track_size));
  }
  if (c.max_write == 0 || c.max_write > (256ull << 20)) {
    r.Fail("max_write", absl::StrCat("expected 1 byte to 256M, got ", c.max_write));
  }
  if (!OneOf(c.gold_copy, {"auto", "off"})) {
    r.Fail("gold_copy", absl::StrCat("expected \"auto\" or \"off\", got \"", c.gold_copy, "\""));
  }
  if (c.holding_pen == "bypass") {
    r.Fail("holding_pen",
           "expected \"local\" or \"cache\", got \"bypass\": bypassing the pen (no validation "
           "of writes) is for the benchmark only, and only the command-line flag "
           "--unsafe-bypass-holding-pen turns it on");
  } else if (!OneOf(c.holding_pen, {"local", "cache"})) {
    r.Fail("holding_pen",
           absl::StrCat("expected \"local\" or \"cache\", got \"", c.holding_pen, "\""));
  }
  const int tls_files =
      !c.peer_tls_cert_file.empty() + !c.peer_tls_key_file.empty() + !c.peer_tls_ca_file.empty();
  if (tls_files != 0 && tls_files != 3) {
    r.Fail("peer.tls", "expected cert_file, key_file and ca_file together, or none");
  }
  if (c.host_workers == 0 || c.host_workers > 256) r.Fail("host_workers", "expected 1 to 256");
  if (c.host_wait_ms == 0 || c.host_wait_ms > 3600000) {
    r.Fail("host_wait_ms", absl::StrCat("expected 1 to 3600000, got ", c.host_wait_ms));
  }
  const uint64_t portions = c.track_size == 0 ? 2 : c.max_write / c.track_size + 2;
  if (c.queue_capacity < portions) {
    r.Fail("mirror_queue.capacity", absl::StrCat("must hold one max_write (", portions,
                                                 " portions), got ", c.queue_capacity));
  }
  if (c.host_adaptors.empty()) c.host_adaptors.push_back(HostAdaptorConfig{"ha0", "127.0.0.1:0"});
  std::set<std::string> ids;
  for (const auto& ha : c.host_adaptors) {
    if (!ids.insert(ha.id).second)
      r.Fail("host_adaptor.id", absl::StrCat("duplicate id \"", ha.id, "\""));
  }
  if (c.track_size != 0 && r.status().ok()) {
    // Staging one max_write needs one slot per portion, and the commit of a partial portion
    // pins the track's current image: twice the portions, plus room to keep destaging.
    const uint64_t pen_records =
        c.holding_pen == "cache" ? c.queue_capacity * c.host_adaptors.size() : 0;
    const uint64_t needed = 2 * portions + 16;
    const uint64_t slots = (c.cache_size > 8192 + pen_records * 40)
                               ? (c.cache_size - 8192 - pen_records * 40) / (c.track_size + 40)
                               : 0;
    if (slots < needed) {
      r.Fail("cache.size", absl::StrCat("too small: ", c.cache_size, " bytes give ", slots,
                                        " slots of ", c.track_size, ", staging one max_write of ",
                                        c.max_write, " needs ", needed));
    }
  }
  if (!r.status().ok()) return r.status();
  return c;
}

std::string GroupConfig::StateDir(const std::string& data_dir) const {
  if (name == "default") return data_dir;
  return std::filesystem::path(data_dir) / "groups" / name;
}

GroupConfig DaemonConfig::SinglePeerGroup() const {
  GroupConfig g;
  g.role = role == "primary" ? "R1" : "R2";
  g.peer_address = peer_address;
  g.mode = mode;
  g.cycle_ms = cycle_ms;
  g.cycle_cache_percent = cycle_cache_percent;
  g.link_policy = link_policy;
  g.ack_timeout_ms = ack_timeout_ms;
  g.link_emulation = link_emulation;
  g.resync_max_rate = resync_max_rate;
  g.pacing = pacing;
  g.dse_max_size = dse_max_size;
  return g;
}

}  // namespace simarray::daemon
