// Array: its RDF groups (docs/groups.md) — made from the config with their sides, wired to
// the commit point (routes, multi-group switching, cascaded forwarding), and seen by the
// peer service.
#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "daemon/array.h"
#include "daemon/config_link.h"
#include "simarray/base/state_file.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {

namespace {

constexpr char kRuntimeGroups[] = "groups.toml";

// One [[rdf_group]] table of data_dir/groups.toml.
std::string GroupTable(const GroupConfig& g) {
  std::string out =
      absl::StrCat("[[rdf_group]]\nname = \"", g.name, "\"\nnumber = ", g.number, "\nrole = \"",
                   g.role, "\"\nmode = \"", g.mode, "\"\ncycle_ms = ", g.cycle_ms,
                   "\ncycle_cache_percent = ", g.cycle_cache_percent, "\nconsistency = \"",
                   g.consistency, "\"\n");
  if (!g.peer_address.empty()) absl::StrAppend(&out, "peer.address = \"", g.peer_address, "\"\n");
  absl::StrAppend(&out, "link.policy = \"", g.link_policy,
                  "\"\nlink.ack_timeout_ms = ", g.ack_timeout_ms, "\n");
  if (!g.link_emulation.off()) {
    absl::StrAppend(&out, "link.emulate = ", LinkEmulationToml(g.link_emulation), "\n");
  }
  if (g.resync_max_rate != 0) absl::StrAppend(&out, "resync.max_rate = ", g.resync_max_rate, "\n");
  absl::StrAppend(&out, "\n");
  return out;
}

}  // namespace

absl::StatusOr<std::vector<GroupConfig>> Array::RuntimeGroups() {
  const std::string path = config_.data_dir + "/" + kRuntimeGroups;
  std::ifstream in(path);
  if (!in) return std::vector<GroupConfig>{};
  std::stringstream text;
  text << in.rdbuf();
  return ParseGroupTables(text.str(), path);
}

absl::Status Array::SaveRuntimeGroups() {
  std::string text =
      "# RDF groups made at run time (CreateGroup, docs/groups.md); written by simarrayd\n\n";
  for (const GroupConfig& g : runtime_groups_) absl::StrAppend(&text, GroupTable(g));
  return WriteFileAtomically(config_.data_dir + "/" + kRuntimeGroups, text, 0644);
}

absl::StatusOr<RdfGroup*> Array::AddGroup(const GroupConfig& config, bool source) {
  const size_t index = groups_.next_index();
  if (index >= GroupList::kSlots) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "this array has used all its ", GroupList::kSlots,
        " RDF group places since it started (a deleted group's comes back at a restart)"));
  }
  GroupParts gp;
  gp.daemon_name = config_.name;
  gp.data_dir = config_.data_dir;
  gp.cache = cache_.get();
  gp.volumes = volumes_.get();
  gp.disk = disk_.get();
  gp.faults = &faults_;
  gp.queue_capacity = config_.queue_capacity;
  gp.max_write = config_.max_write;
  gp.peer_secret = config_.peer_secret;
  gp.peer_tls = config_.peer_tls;
  auto group = std::make_unique<RdfGroup>(config, gp, static_cast<uint32_t>(index));
  group->LoadLearnedPeer();
  if (absl::Status s = group->Open(); !s.ok()) return s;
  // The first group's side is the daemon's role (the region's header); the others keep
  // their own.
  group->ReadRole(source);
  group->Wire(commit_.get());
  if (!group->source()) commit_->Close(group->index());  // a target commits no host write
  if (group->async()) {
    // SRDF's MSC: the multi-group groups switch their cycles together.
    if (config.consistency == "multi-group") commit_->SwitchTogether(group->bit());
    // Cascaded (docs/groups.md, "Topologies"): an R21's outbound cycles are numbered by what
    // passed them, and wait for its own source's resync; only a group that ships on what
    // another brings in does.
    if (inbound_group() != nullptr) {
      commit_->NumberByPassage(group->index(), /*covered=*/cache_fresh_);
    }
    RdfGroup* out = group.get();
    group->cycles()->SetUpstream([this, out] {
      if (!applier_->source_resyncing()) return false;
      for (const auto& v : volumes_->All()) {
        const uint32_t bits = v->groups.load(std::memory_order_relaxed);
        if ((bits & out->bit()) != 0 && (bits & ~out->bit()) != 0) return true;
      }
      return false;
    });
  }
  return groups_.Add(std::move(group));
}

absl::Status Array::OpenGroups() {
  // A source ships to its peer; a target keeps the same parts ready for a failover or
  // swap, when it takes the source role and ships back to the side it learned in Hello. The
  // single-peer form without a peer still has its group "default" once a Hello taught one.
  std::vector<GroupConfig> configs = config_.groups;
  if (configs.empty()) configs.push_back(config_.SinglePeerGroup());
  auto runtime = RuntimeGroups();
  if (!runtime.ok()) return runtime.status();
  for (const GroupConfig& g : *runtime) {
    for (const GroupConfig& other : configs) {
      if (other.name == g.name || other.number == g.number) {
        return absl::FailedPreconditionError(absl::StrCat(
            "RDF group ", g.name, " (number ", g.number, ") made at run time (", config_.data_dir,
            "/", kRuntimeGroups, ") has the name or number of group ", other.name,
            " of the config; remove one of them"));
      }
    }
    configs.push_back(g);
  }
  runtime_groups_ = *runtime;
  for (size_t i = 0; i < configs.size(); ++i) {
    if (i == 0 && config_.groups.empty() && is_primary_ && runtime->empty()) {
      GroupParts parts;
      parts.data_dir = config_.data_dir;
      RdfGroup probe(configs[0], parts, 0);
      probe.LoadLearnedPeer();
      if (probe.learned_peer().empty()) break;  // a primary without a peer: no group yet
    }
    auto added = AddGroup(configs[i], i == 0 ? is_primary_.load() : configs[i].role == "R1");
    if (!added.ok()) return added.status();
  }
  int targets = 0;
  for (auto& g : groups_) targets += g->source() ? 0 : 1;
  if (targets > 1) {
    return absl::FailedPreconditionError(
        "this array is the target (R2) of more than one RDF group; at most one for now "
        "(docs/groups.md)");
  }
  // Cascaded: what a volume receives in one group, the groups this array is the source of
  // ship on, published at the commit point.
  applier_->SetForwarder([this](remote::StagedRecord& r) -> std::optional<bool> {
    if (groups_.next_index() < 2) return std::nullopt;  // one group: nothing to ship on
    std::shared_ptr<disk::Volume> volume = volumes_->FindById(r.staged.key().volume_id);
    if (volume == nullptr) return std::nullopt;
    const uint32_t bits = volume->groups.load(std::memory_order_relaxed);
    if ((bits & (bits - 1)) == 0) return std::nullopt;  // in one group: received only
    return commit_->PublishForwarded(std::move(r.staged), r.offset, r.length, r.sequence, r.changed,
                                     bits, r.write_continues);
  });
  applier_->SetTornHook([this] { commit_->DropOpenForward(); });
  volumes_->SetGroupResolver([this](const std::string& name) -> uint32_t {
    for (auto& g : groups_) {
      if (g->name() == name) return g->bit();
    }
    return 0;  // a group this array no longer has: its volumes are local now
  });
  for (const disk::VolumeInfo& v : volumes_->List()) {
    for (const auto& name : absl::StrSplit(v.group, ',', absl::SkipEmpty())) {
      bool known = false;
      for (auto& g : groups_) known |= g->name() == name;
      if (!known) {
        spdlog::warn(
            "volume {} is in RDF group {}, which this array no longer has: that group "
            "does not mirror it",
            v.name, std::string(name));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<RdfGroup*> Array::CreateGroup(GroupConfig config) {
  absl::MutexLock lock(&role_mu_);
  if (absl::Status s = CheckGroupConfig(config); !s.ok()) return s;
  for (auto& g : groups_) {
    if (g->name() == config.name || g->config().number == config.number) {
      return absl::AlreadyExistsError(absl::StrCat("RDF group ", g->name(), " has number ",
                                                   g->config().number, " on this array"));
    }
  }
  if (config.role == "R2" && inbound_group() != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this array is the target (R2) of RDF group ", inbound_group()->name(),
        " already; it can be the target of one group at a time for now (docs/groups.md)"));
  }
  if (groups_.empty()) {
    return absl::FailedPreconditionError(
        "this array has no RDF group of its own yet (a primary without a peer): configure the "
        "first one in the config file, whose side is the daemon's role");
  }
  // Kept first: a group that cannot be kept is not made.
  runtime_groups_.push_back(config);
  if (absl::Status s = SaveRuntimeGroups(); !s.ok()) {
    runtime_groups_.pop_back();
    return s;
  }
  auto added = AddGroup(config, config.role == "R1");
  if (!added.ok()) {
    runtime_groups_.pop_back();
    (void)SaveRuntimeGroups();
    return added.status();
  }
  RdfGroup& g = **added;
  g.remote()->SetSelfAddress(peer_address_);
  if (absl::Status s = g.SetSource(g.source()); !s.ok()) {
    spdlog::error("group {}: {}", g.name(), std::string(s.message()));
  }
  if (g.source()) g.remote()->Start();
  spdlog::info(
      "RDF group {} (number {}, {} mode) created: {}", g.name(), g.config().number, g.config().mode,
      g.source() ? absl::StrCat("source (R1), mirroring to ", g.peer_address()) : "target (R2)");
  return &g;
}

absl::Status Array::DeleteGroup(const std::string& name) {
  absl::MutexLock lock(&role_mu_);
  auto found = FindGroup(name);
  if (!found.ok()) return found.status();
  RdfGroup& g = **found;
  auto made = std::find_if(runtime_groups_.begin(), runtime_groups_.end(),
                           [&](const GroupConfig& c) { return c.name == g.name(); });
  if (made == runtime_groups_.end()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "RDF group ", g.name(), " comes from the config file ", config_.path,
        ": remove it there (and restart); DeleteGroup removes groups made at run time"));
  }
  std::string members;
  for (const disk::VolumeInfo& v : volumes_->List()) {
    if (disk::InGroup(v, g.name())) absl::StrAppend(&members, members.empty() ? "" : ", ", v.name);
  }
  if (!members.empty()) {
    return absl::FailedPreconditionError(absl::StrCat("RDF group ", g.name(),
                                                      " still has volumes: ", members,
                                                      " (delete them, or keep the group)"));
  }
  const GroupConfig kept = *made;
  runtime_groups_.erase(made);
  if (absl::Status s = SaveRuntimeGroups(); !s.ok()) {
    runtime_groups_.push_back(kept);
    return s;
  }
  g.Shutdown();
  commit_->SetRoute(g.index(), mirror::CommitRoute{});
  g.Retire();
  std::error_code ec;
  std::filesystem::remove_all(g.state_dir(), ec);  // its owed bitmaps and markers
  spdlog::info("RDF group {} deleted", g.name());
  return absl::OkStatus();
}

remote::PeerServiceParts Array::PeerParts() {
  remote::PeerServiceParts pp;
  pp.daemon_id = config_.name;
  pp.cache = cache_.get();
  pp.volumes = volumes_.get();
  pp.disk = disk_.get();
  pp.applier = applier_.get();
  pp.gate = peer_gate_.get();
  pp.group = [this](const std::string& name) -> absl::StatusOr<remote::PeerGroupSide> {
    if (groups_.empty()) {
      // A primary without a peer: every source's Hello is split brain.
      return remote::PeerGroupSide{config_.mode, is_primary_.load(), nullptr};
    }
    for (auto& g : groups_) {
      if (g->name() == name) return remote::PeerGroupSide{g->config().mode, g->source(), g->owed()};
    }
    std::string names;
    for (auto& g : groups_) absl::StrAppend(&names, names.empty() ? "" : ", ", g->name());
    return absl::FailedPreconditionError(absl::StrCat(
        groups_.size() == 1 ? "this array's group is " : "this array's groups are ", names));
  };
  pp.on_hello = [this](const std::string& name, const std::string& address, uint64_t generation) {
    auto group = FindGroup(name);
    if (!group.ok()) return;
    if (absl::Status s = LearnPeer(**group, address, generation); !s.ok()) {
      spdlog::error("Hello from {}: cannot keep its address: {}", address,
                    std::string(s.message()));
    }
  };
  pp.demote = [this](const std::string& name, const v1::RoleRequest& request) -> absl::Status {
    auto group = FindGroup(name);
    if (!group.ok()) return group.status();
    return DemotedByPeer(**group, request);
  };
  pp.promote = [this](const std::string& name, const v1::RoleRequest& request) -> absl::Status {
    auto group = FindGroup(name);
    if (!group.ok()) return group.status();
    return PromotedByPeer(**group, request);
  };
  return pp;
}

RdfGroup* Array::inbound_group() {
  for (auto& g : groups_) {
    if (!g->source()) return g.get();
  }
  return nullptr;
}

std::vector<RdfGroup*> Array::GroupsOf(const disk::Volume& volume) {
  std::vector<RdfGroup*> out;
  const uint32_t bits = volume.groups.load(std::memory_order_relaxed);
  for (auto& g : groups_) {
    if ((bits & g->bit()) != 0) out.push_back(g.get());
  }
  return out;
}

}  // namespace simarray::daemon
