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

absl::StatusOr<RoleChange> Array::OnGroup(const std::string& group, const GroupOp& operation) {
  auto found = FindGroup(group);
  if (!found.ok()) return found.status();
  absl::Mutex& mu = operation_mu_[(*found)->index()];
  if (!mu.TryLock()) {
    return absl::AbortedError(absl::StrCat("another operation on RDF group ", (*found)->name(),
                                           " is running; ask again when it is done"));
  }
  absl::StatusOr<RoleChange> out = operation(**found);
  mu.Unlock();
  return out;
}

void Array::RestoreSplit(RdfGroup& group) {
  const SplitSide side = group.ReadSplit();
  if (side == SplitSide::kNone) return;
  if (!group.source()) {
    // Both sides of a split are writable: a mirror with the marker is a split that did not
    // finish, or an establish or restore that did.
    spdlog::warn("{} is here but this daemon is the mirror: it stays the mirror",
                 group.SplitPath());
    if (absl::Status s = group.SetSplit(SplitSide::kNone); !s.ok()) {
      spdlog::error("{} (a mirror ignores it at every start)", std::string(s.message()));
    }
    return;
  }
  group.remote()->Suspend();
}

absl::Status Array::DemotedByPeer(RdfGroup& group, const v1::RoleRequest& request) {
  if (absl::Status s = BecomeMirror(group, /*graceful=*/true); !s.ok()) return s;
  // A mirror is on no side of a split; an establish overwrites what this side changed.
  if (absl::Status s = group.SetSplit(SplitSide::kNone); !s.ok()) return s;
  if (request.discard_changes()) group.owed()->ClearAll();
  return absl::OkStatus();
}

absl::Status Array::PromotedByPeer(RdfGroup& group, const v1::RoleRequest& request) {
  // Persisted first (docs/reliability.md, "State files"): a file that cannot be written
  // refuses the promotion before anything changes.
  if (absl::Status s = LearnPeer(group, request.peer_address(), request.generation()); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("promotion refused: ", s.message()));
  }
  if (absl::Status s = group.SetFailedOver(false); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("promotion refused: ", s.message()));
  }
  const SplitSide side = request.split() ? SplitSide::kR2 : SplitSide::kNone;
  if (absl::Status s = group.SetSplit(side); !s.ok()) {
    return absl::UnavailableError(absl::StrCat("promotion refused: ", s.message()));
  }
  // The peer made this side identical before handing over (or, for a split, this side is
  // its image): from here the owed tracks are this side's changes.
  group.owed()->ClearAll();
  // For the same reason a gold copy is not the image to promote: the newest one is. A split
  // promotes this side's own image, whose last consistent one the copy is.
  if (!request.split() && gold_ != nullptr && gold_->held()) {
    absl::WriterMutexLock image(&applier_->image_lock());  // no host read sees half of each
    gold_->Drop("promoted by the peer, which made this image identical to its own first");
  }
  return BecomePrimary(group, /*ship=*/!request.split());
}

absl::StatusOr<RoleChange> Array::Split(RdfGroup& group) {
  RoleChange out;
  if (group.split() != SplitSide::kNone) {
    out.description = "already split: nothing to do";
    return out;
  }
  if (!group.source() || group.failed_over()) {
    return absl::FailedPreconditionError(absl::StrCat("split is asked of RDF group ", group.name(),
                                                      "'s R1 side; this array is its R2"));
  }
  if (!group.remote()->LinkUp()) {
    return absl::UnavailableError(
        absl::StrCat("split needs the link to RDF group ", group.name(),
                     "'s R2 side, and it is not up (failover on the R2 side works without it)"));
  }
  // The marker first: a crash after it restarts this side suspended, and the peer, never
  // told, still a mirror; establish then finds nothing changed on it.
  if (absl::Status s = group.SetSplit(SplitSide::kR1); !s.ok()) return Unpersisted("split", s);
  group.remote()->Suspend();  // what is queued or in flight becomes owed: establish copies it
  if (absl::Status s = group.remote()->Promote(cache_->generation(), /*split=*/true); !s.ok()) {
    (void)group.SetSplit(SplitSide::kNone);
    group.remote()->Resume();
    return absl::Status(s.code(), absl::StrCat("split refused by the R2 side: ", s.message(),
                                               "; the pair mirrors on"));
  }
  out.description = "split: both sides take host writes and record the tracks they change";
  spdlog::warn("split: RDF group {}: {}", group.name(), out.description);
  return out;
}

absl::StatusOr<RoleChange> Array::Establish(RdfGroup& group, absl::Duration wait) {
  RoleChange out;
  if (group.split() == SplitSide::kNone && group.source() && !group.failed_over()) {
    out.description = "not split: the pair mirrors already, nothing to do";
    return out;
  }
  if (group.split() != SplitSide::kR1) {
    return absl::FailedPreconditionError(
        absl::StrCat("establish is asked of RDF group ", group.name(), "'s R1 side of a split"));
  }
  // What the R2 side changed, before it forgets it; then it becomes the mirror again.
  auto theirs = group.remote()->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  if (absl::Status s = group.remote()->Demote(/*discard_changes=*/true); !s.ok()) return s;
  if (absl::Status s = group.SetSplit(SplitSide::kNone); !s.ok()) {
    return Unpersisted("establish", s);
  }
  auto copied = CopyBack(group, wait, *theirs);
  if (!copied.ok()) return copied.status();
  out.tracks_copied = *copied;
  out.description = absl::StrCat("copied ", *copied,
                                 " tracks either side changed from R1 to R2; mirroring again");
  spdlog::warn("establish: RDF group {}: {}", group.name(), out.description);
  return out;
}

absl::StatusOr<RoleChange> Array::Restore(RdfGroup& group, absl::Duration wait) {
  if (group.split() == SplitSide::kNone && !group.source()) {
    RoleChange out;
    out.description = "not split: this side is the mirror already, nothing to do";
    return out;
  }
  if (group.split() != SplitSide::kR2) {
    return absl::FailedPreconditionError(
        absl::StrCat("restore is asked of RDF group ", group.name(), "'s R2 side of a split"));
  }
  // A failback from the split: R2's data over R1's for every track either side changed,
  // then R1 is the primary again.
  auto restored = Failback(group, /*force=*/false, wait);
  if (restored.ok()) {
    restored->description = absl::StrCat("copied ", restored->tracks_copied,
                                         " tracks either side changed from R2 to R1; R1 "
                                         "mirrors to R2 again");
  }
  return restored;
}

}  // namespace simarray::daemon
