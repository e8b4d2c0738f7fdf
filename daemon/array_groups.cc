// Array: its RDF groups (docs/groups.md) — made from the config with their sides, wired to
// the commit point (routes, multi-group switching, cascaded forwarding), and seen by the
// peer service.
#include "absl/strings/str_cat.h"
#include "daemon/array.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {

absl::Status Array::OpenGroups() {
  // A source ships to its peer; a target keeps the same parts ready for a failover or
  // swap, when it takes the source role and ships back to the side it learned in Hello. The
  // single-peer form without a peer still has its group "default" once a Hello taught one.
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
  std::vector<GroupConfig> configs = config_.groups;
  if (configs.empty()) configs.push_back(config_.SinglePeerGroup());
  for (size_t i = 0; i < configs.size(); ++i) {
    auto group = std::make_unique<RdfGroup>(configs[i], gp, static_cast<uint32_t>(i));
    group->LoadLearnedPeer();
    if (config_.groups.empty() && is_primary_ && group->learned_peer().empty()) break;
    if (absl::Status s = group->Open(); !s.ok()) return s;
    // The first group's side is the daemon's role (the region's header); the others keep
    // their own.
    group->ReadRole(i == 0 ? is_primary_.load() : configs[i].role == "R1");
    group->Wire(commit_.get());
    if (!group->source()) commit_->Close(group->index());  // a target commits no host write
    groups_.push_back(std::move(group));
  }
  // SRDF's MSC: the multi-group groups switch their cycles together.
  uint32_t together = 0;
  for (auto& g : groups_) {
    if (g->async() && g->config().consistency == "multi-group") together |= g->bit();
  }
  commit_->SwitchTogether(together);
  int targets = 0;
  for (auto& g : groups_) targets += g->source() ? 0 : 1;
  if (targets > 1) {
    return absl::FailedPreconditionError(
        "this array is the target (R2) of more than one RDF group; at most one for now "
        "(docs/groups.md)");
  }
  // Cascaded (docs/groups.md, "Topologies"): what a volume receives in one group, the
  // groups this array is the source of ship on, published at the commit point.
  if (groups_.size() > 1) {
    for (auto& g : groups_) {
      if (g->cycles() != nullptr && inbound_group() != nullptr) {
        commit_->NumberByPassage(g->index(), /*covered=*/cache_fresh_);
      }
      if (g->cycles() != nullptr) {
        // Only a group that ships on what another brings in (an R21's) waits for it.
        RdfGroup* out = g.get();
        g->cycles()->SetUpstream([this, out] {
          if (!applier_->source_resyncing()) return false;
          for (const auto& v : volumes_->All()) {
            const uint32_t bits = v->groups.load(std::memory_order_relaxed);
            if ((bits & out->bit()) != 0 && (bits & ~out->bit()) != 0) return true;
          }
          return false;
        });
      }
    }
    applier_->SetForwarder([this](remote::StagedRecord& r) -> std::optional<bool> {
      std::shared_ptr<disk::Volume> volume = volumes_->FindById(r.staged.key().volume_id);
      if (volume == nullptr) return std::nullopt;
      const uint32_t bits = volume->groups.load(std::memory_order_relaxed);
      if ((bits & (bits - 1)) == 0) return std::nullopt;  // in one group: received only
      return commit_->PublishForwarded(std::move(r.staged), r.offset, r.length, r.sequence,
                                       r.changed, bits);
    });
  }
  volumes_->SetGroupResolver([this](const std::string& name) -> uint32_t {
    for (auto& g : groups_) {
      if (g->name() == name) return g->bit();
    }
    return 0;  // a group this array no longer has: its volumes are local now
  });
  for (const disk::VolumeInfo& v : volumes_->List()) {
    bool known = v.group.empty();
    for (auto& g : groups_) known |= g->name() == v.group;
    if (!known) {
      spdlog::warn(
          "volume {} is in RDF group {}, which this array no longer has: it is not "
          "mirrored",
          v.name, v.group);
    }
  }
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
