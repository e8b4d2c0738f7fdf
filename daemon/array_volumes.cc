// Array: volumes and their RDF groups (docs/groups.md) — creating, deleting and pairing
// volumes, and which volumes hosts may write.
#include <optional>

#include "absl/strings/str_cat.h"
#include "daemon/array.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {

absl::StatusOr<RdfGroup*> Array::FindGroup(const std::string& name) {
  if (groups_.empty()) {
    return absl::NotFoundError(
        name.empty() ? std::string("this array has no RDF group (no peer)")
                     : absl::StrCat("no RDF group \"", name, "\": this array has none"));
  }
  if (name.empty()) return groups_.front().get();
  std::string names;
  for (auto& g : groups_) {
    if (g->name() == name) return g.get();
    absl::StrAppend(&names, names.empty() ? "\"" : ", \"", g->name(), "\"");
  }
  return absl::NotFoundError(
      absl::StrCat("no RDF group \"", name, "\" (this array has ", names, ")"));
}

absl::Status Array::AdmitWrite(const disk::Volume& volume) {
  const uint32_t bits = volume.groups.load(std::memory_order_relaxed);
  if (bits == 0) return absl::OkStatus();  // a local volume
  for (auto& g : groups_) {
    if ((bits & g->bit()) == 0) continue;
    if (!g->source()) {
      return absl::FailedPreconditionError(
          absl::StrCat("volume ", volume.name, " is the target (R2) of RDF group ", g->name(),
                       " and this daemon is its mirror: hosts may read only; write to the "
                       "primary, or fail over"));
    }
    if (!g->failed_over() && g->split() == SplitSide::kNone && !g->remote()->AdmitsWrites()) {
      return absl::UnavailableError(
          absl::StrCat("link.policy is \"fail\" and RDF group ", g->name(), " is ",
                       std::string(remote::PairStateName(g->remote()->pair_state())),
                       ": writes to its volumes are refused until the mirror is synchronized"));
    }
  }
  return absl::OkStatus();
}

bool Array::AcceptsWrites(const std::string& name) {
  auto volume = volumes_->Find(name);
  if (!volume.ok()) return true;
  for (RdfGroup* g : GroupsOf(**volume)) {
    if (!g->source()) return false;
  }
  return true;
}

absl::StatusOr<disk::VolumeInfo> Array::CreateVolume(const std::string& name, uint64_t size,
                                                     const std::string& group, bool local) {
  RdfGroup* in = nullptr;
  if (!local && !(group.empty() && groups_.empty())) {
    auto found = FindGroup(group);
    if (!found.ok()) return found.status();
    in = *found;
    if (!in->source()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "this array is the target (R2) of RDF group ", in->name(),
          ": its volumes are created on the source, which creates the twin here; a local "
          "volume (in no group) can be created here"));
    }
  }
  // A local volume on a target takes an id its source never gives (VolumeCatalog::Create).
  // A group volume takes an id from its group number's range, so the twins of two groups
  // with different sources never collide on an array that is in both.
  const uint32_t id =
      in == nullptr && inbound_group() != nullptr ? disk::VolumeCatalog::kPickLocalId : 0;
  const uint32_t first_id = in != nullptr ? disk::VolumeCatalog::IdRangeOf(in->config().number) : 1;
  auto created = volumes_->Create(name, size, id, false, in != nullptr ? in->name() : "", first_id);
  if (!created.ok()) return created.status();
  if (in != nullptr) {
    if (absl::Status s = in->owed()->AddVolume(created->id, size / config_.track_size); !s.ok()) {
      (void)volumes_->Delete(name);
      return s;
    }
    // When the peer cannot be reached the volume starts not paired; the remote adaptor
    // creates the twin when the link comes up.
    absl::Status twin = in->remote()->CreateTwin(*created);
    if (twin.ok()) {
      created->paired = volumes_->SetPaired(name, true).ok();
    } else {
      spdlog::warn("volume {}: twin not created on the mirror ({}); not paired yet", name,
                   std::string(twin.message()));
    }
  }
  spdlog::info("volume {} created (id {}, {} bytes){}", name, created->id, size,
               in == nullptr     ? ", local (in no RDF group)"
               : created->paired ? absl::StrCat(", in RDF group ", in->name(), ", twin created")
                                 : absl::StrCat(", in RDF group ", in->name()));
  return created;
}

absl::StatusOr<Array::Paired> Array::PairVolume(const std::string& name, const std::string& group) {
  auto found = FindGroup(group);
  if (!found.ok()) return found.status();
  RdfGroup* in = *found;
  std::optional<disk::VolumeInfo> info;
  for (const auto& v : volumes_->List()) {
    if (v.name == name) info = v;
  }
  if (!info) return absl::NotFoundError(absl::StrCat("no volume \"", name, "\""));
  if (disk::InGroup(*info, in->name())) return Paired{*info, 0};  // nothing to do
  // A volume in another group already joins this one as well: a concurrent volume (source
  // of both) or, where the other group's target is here, a cascaded one (R21), whose
  // received writes this group ships on (docs/groups.md, "Topologies").
  if (!in->source() || in->failed_over()) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume pair is asked of RDF group ", in->name(),
                     "'s source (R1) side, where the data is; this array is its target"));
  }
  if (absl::Status s = in->owed()->AddVolume(info->id, info->size / config_.track_size); !s.ok()) {
    return s;
  }
  const std::string before = info->group;
  info->group = disk::WithGroup(before, in->name());
  absl::Status twin = in->remote()->CreateTwin(*info);
  if (!twin.ok() && !absl::IsUnavailable(twin) && !absl::IsDeadlineExceeded(twin)) {
    // The peer refused (a name or id taken there): the volume stays local.
    return absl::Status(twin.code(),
                        absl::StrCat("volume ", name,
                                     ": the twin cannot be created "
                                     "on the peer: ",
                                     twin.message(),
                                     before.empty() ? "; the volume stays local"
                                                    : "; its groups stay as they were"));
  }
  // From here its writes are mirrored; what it held before is copied whole (the initial
  // copy), after the twin exists (now, or when the link comes up).
  if (absl::Status s = volumes_->SetGroup(name, info->group); !s.ok()) return s;
  info->paired = twin.ok() && volumes_->SetPaired(name, true).ok();
  Paired out{*info, in->remote()->CopyVolume(*info)};
  spdlog::info("volume {} joined RDF group {}{}; initial copy of {} tracks", name, in->name(),
               info->paired ? "" : " (twin created when the link comes up)", out.tracks_to_copy);
  return out;
}

absl::Status Array::DeleteVolume(const std::string& name, bool force) {
  std::optional<disk::VolumeInfo> info;
  for (const auto& v : volumes_->List()) {
    if (v.name == name) info = v;
  }
  if (!info) return absl::NotFoundError(absl::StrCat("no volume \"", name, "\""));
  if (info->paired && !force) {
    return absl::FailedPreconditionError(
        absl::StrCat("volume ", name, " is paired; delete with force to drop both sides"));
  }
  for (auto& g : groups_) {
    if (!disk::InGroup(*info, g->name())) continue;
    if (info->paired && g->source()) {
      absl::Status twin = g->remote()->DeleteTwin(*info);
      if (!twin.ok()) {
        spdlog::warn("volume {}: twin in RDF group {} not deleted: {}", name, g->name(),
                     std::string(twin.message()));
      }
    }
    g->owed()->DropVolume(info->id);
  }
  cache_->DropVolume(info->id);
  spdlog::info("volume {} deleted", name);
  return volumes_->Delete(name);
}

}  // namespace simarray::daemon
