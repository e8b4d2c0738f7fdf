// Array: the group operations (docs/groups.md, "Operations") — split, establish and
// restore — and the peer's demote and promote they and the role changes drive.
#include "absl/strings/str_cat.h"
#include "daemon/array.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

absl::Status Unpersisted(absl::string_view operation, const absl::Status& cause) {
  return absl::UnavailableError(absl::StrCat(operation, " refused: ", cause.message(),
                                             "; nothing changed (fix data_dir and retry)"));
}

}  // namespace

absl::StatusOr<RoleChange> Array::OnGroup(
    const std::string& group, const std::function<absl::StatusOr<RoleChange>()>& operation) {
  auto found = FindGroup(group);
  if (!found.ok()) return found.status();
  if (!operation_mu_.TryLock()) {
    return absl::AbortedError(absl::StrCat("another operation on RDF group ", (*found)->name(),
                                           " is running; ask again when it is done"));
  }
  absl::StatusOr<RoleChange> out = operation();
  operation_mu_.Unlock();
  return out;
}

void Array::RestoreSplit() {
  const SplitSide side = group_->ReadSplit();
  if (side == SplitSide::kNone) return;
  if (!is_primary_) {
    // Both sides of a split are writable: a mirror with the marker is a split that did not
    // finish, or an establish or restore that did.
    spdlog::warn("{} is here but this daemon is the mirror: it stays the mirror",
                 group_->SplitPath());
    if (absl::Status s = group_->SetSplit(SplitSide::kNone); !s.ok()) {
      spdlog::error("{} (a mirror ignores it at every start)", std::string(s.message()));
    }
    return;
  }
  remote()->Suspend();
}

absl::Status Array::DemotedByPeer(const v1::RoleRequest& request) {
  if (absl::Status s = BecomeMirror(/*graceful=*/true); !s.ok()) return s;
  // A mirror is on no side of a split; an establish overwrites what this side changed.
  if (absl::Status s = group_->SetSplit(SplitSide::kNone); !s.ok()) return s;
  if (request.discard_changes()) owed()->ClearAll();
  return absl::OkStatus();
}

absl::Status Array::PromotedByPeer(const v1::RoleRequest& request) {
  // Persisted first (docs/reliability.md, "State files"): a file that cannot be written
  // refuses the promotion before anything changes.
  if (absl::Status s = LearnPeer(request.peer_address(), request.generation()); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("promotion refused: ", s.message()));
  }
  if (absl::Status s = group_->SetFailedOver(false); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("promotion refused: ", s.message()));
  }
  const SplitSide side = request.split() ? SplitSide::kR2 : SplitSide::kNone;
  if (absl::Status s = group_->SetSplit(side); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("promotion refused: ", s.message()));
  }
  // The peer made this side identical before handing over (or, for a split, this side is
  // its image): from here the owed tracks are this side's changes.
  owed()->ClearAll();
  return BecomePrimary(/*ship=*/!request.split());
}

absl::StatusOr<RoleChange> Array::Split() {
  RoleChange out;
  if (group_->split() != SplitSide::kNone) {
    out.description = "already split: nothing to do";
    return out;
  }
  if (!is_primary_ || group_->failed_over()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "split is asked of RDF group ", group_->name(), "'s R1 side; this array is its R2"));
  }
  if (!remote()->LinkUp()) {
    return absl::UnavailableError(
        absl::StrCat("split needs the link to RDF group ", group_->name(),
                     "'s R2 side, and it is not up (failover on the R2 side works without it)"));
  }
  // The marker first: a crash after it restarts this side suspended, and the peer, never
  // told, still a mirror; establish then finds nothing changed on it.
  if (absl::Status s = group_->SetSplit(SplitSide::kR1); !s.ok()) return Unpersisted("split", s);
  remote()->Suspend();  // what is queued or in flight becomes owed: establish copies it
  if (absl::Status s = remote()->Promote(cache_->generation(), /*split=*/true); !s.ok()) {
    (void)group_->SetSplit(SplitSide::kNone);
    remote()->Resume();
    return absl::Status(s.code(), absl::StrCat("split refused by the R2 side: ", s.message(),
                                               "; the pair mirrors on"));
  }
  out.description = "split: both sides take host writes and record the tracks they change";
  spdlog::warn("split: RDF group {}: {}", group_->name(), out.description);
  return out;
}

absl::StatusOr<RoleChange> Array::Establish(absl::Duration wait) {
  RoleChange out;
  if (group_->split() == SplitSide::kNone && is_primary_ && !group_->failed_over()) {
    out.description = "not split: the pair mirrors already, nothing to do";
    return out;
  }
  if (group_->split() != SplitSide::kR1) {
    return absl::FailedPreconditionError(
        absl::StrCat("establish is asked of RDF group ", group_->name(), "'s R1 side of a split"));
  }
  // What the R2 side changed, before it forgets it; then it becomes the mirror again.
  auto theirs = remote()->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  if (absl::Status s = remote()->Demote(/*discard_changes=*/true); !s.ok()) return s;
  if (absl::Status s = group_->SetSplit(SplitSide::kNone); !s.ok()) {
    return Unpersisted("establish", s);
  }
  auto copied = CopyBack(wait, *theirs);
  if (!copied.ok()) return copied.status();
  out.tracks_copied = *copied;
  out.description = absl::StrCat("copied ", *copied,
                                 " tracks either side changed from R1 to R2; mirroring again");
  spdlog::warn("establish: RDF group {}: {}", group_->name(), out.description);
  return out;
}

absl::StatusOr<RoleChange> Array::Restore(absl::Duration wait) {
  if (group_->split() == SplitSide::kNone && !is_primary_) {
    RoleChange out;
    out.description = "not split: this side is the mirror already, nothing to do";
    return out;
  }
  if (group_->split() != SplitSide::kR2) {
    return absl::FailedPreconditionError(
        absl::StrCat("restore is asked of RDF group ", group_->name(), "'s R2 side of a split"));
  }
  // A failback from the split: R2's data over R1's for every track either side changed,
  // then R1 is the primary again.
  auto restored = Failback(/*force=*/false, wait);
  if (restored.ok()) {
    restored->description = absl::StrCat("copied ", restored->tracks_copied,
                                         " tracks either side changed from R2 to R1; R1 "
                                         "mirrors to R2 again");
  }
  return restored;
}

}  // namespace simarray::daemon
