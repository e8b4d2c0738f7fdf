// Array: role changes (docs/pair.md) — becoming the mirror or the primary, failover,
// failback and swap.
#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "daemon/array.h"
#include "simarray/base/state_file.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {

// --- Roles -----------------------------------------------------------------------------------
//
// The role lives in the cache region's header (BecomeMirror / BecomePrimary); a failed-over
// primary also has data_dir/failed_over, and the primary a mirror last heard from is in
// data_dir/peer.address. Both files are written like data (docs/reliability.md, "State
// files"), before the in-memory state changes: a role change whose file cannot be written
// or removed is refused and changes nothing here.

namespace {

// The error of a role change refused because its state file could not be persisted
// (docs/errors.md): UNAVAILABLE, naming the file, the step and the errno.
absl::Status Unpersisted(absl::string_view change, const absl::Status& cause) {
  return absl::UnavailableError(absl::StrCat(change, " refused: ", cause.message(),
                                             "; the role is unchanged (fix data_dir and retry)"));
}

}  // namespace

absl::Status Array::LearnPeer(RdfGroup& group, const std::string& address, uint64_t generation) {
  absl::MutexLock lock(&role_mu_);
  return group.LearnPeer(address, generation);
}

void Array::RestoreFailedOver(RdfGroup& group) {
  // A daemon failed over to stays failed over across a restart: it ships nothing until
  // failback. A marker on a mirror is a failover cut short before the region said primary
  // (Failover writes the marker first): the daemon is the mirror it was.
  if (!group.ReadFailedOver()) return;
  if (!group.source()) {
    spdlog::warn(
        "{} is here but this daemon is the mirror: a failover did not finish; "
        "it stays the mirror",
        group.FailedOverPath());
    if (absl::Status s = group.SetFailedOver(false); !s.ok()) {
      spdlog::error("{} (a mirror ignores it at every start)", std::string(s.message()));
    }
    return;
  }
  group.remote()->Suspend();
}

absl::Status Array::BecomeMirror(RdfGroup& group, bool graceful) {
  absl::MutexLock lock(&role_mu_);
  if (!group.source()) return absl::OkStatus();
  if (RdfGroup* inbound = inbound_group(); inbound != nullptr) {
    return absl::FailedPreconditionError(absl::StrCat(
        "this array is the target (R2) of RDF group ", inbound->name(),
        " already; it can be the target of one group at a time for now (docs/groups.md)"));
  }
  // The side first (a group's state file): a side that cannot be written refuses the change.
  if (absl::Status s = group.SetSource(false); !s.ok()) return s;
  if (group.index() == 0) is_primary_ = false;  // host writes are refused from now on
  commit_->Close(group.index());                // and any already past that check do not commit
  if (remote::RemoteAdaptor* link = group.remote(); link != nullptr) {
    // Graceful: let what was queued or in flight reach the peer first, so nothing acked
    // stays behind only on this side. Waits for: the link not up, or nothing queued, in
    // flight or to resync (acks, link loss and queue changes notify the adaptor's events).
    // It holds role_mu_ on purpose: the role change is half done (writes refused, the gate
    // closed, the adaptor still shipping), and a BecomePrimary interleaved here would reopen
    // the gate under a sender that is about to be stopped. Nothing the drain needs takes
    // role_mu_; a Hello that teaches a peer address (LearnPeer) waits at most the deadline.
    if (graceful) {
      link->Await([link] { return !link->LinkUp() || link->Idle(); },
                  absl::Now() + absl::Seconds(10));
    }
    link->Stop();          // what is left becomes owed
    link->DrainStopped();  // so does what reached the queue while it stopped
  }
  if (group.index() == 0) cache_->SetRole(cache::Role::kMirror);
  applier_->SetApplying(true);
  spdlog::warn("role: {} is now the target (mirror) of RDF group {}", config_.name, group.name());
  return absl::OkStatus();
}

absl::Status Array::BecomePrimary(RdfGroup& group, bool ship, RoleChange* change) {
  absl::MutexLock lock(&role_mu_);
  if (group.source()) return absl::OkStatus();
  if (absl::Status s = group.SetSource(true); !s.ok()) return s;
  // Nothing the old primary sent lands on this image from now on.
  applier_->SetApplying(false);
  remote::RemoteAdaptor* link = group.remote();
  if (const uint64_t generation = group.learned_generation(); generation != 0) {
    group.SetPeerGeneration(generation);
  }
  if (const std::string peer = group.learned_peer(); !peer.empty()) {
    link->SetPeerAddress(peer);
  }
  ship ? link->Resume() : link->Suspend();
  if (group.index() == 0) cache_->SetRole(cache::Role::kPrimary);
  // Before the gate opens to host writes: a gold copy held is the image to promote.
  PublishGoldBack(change);
  applier_->ForgetBoundary();  // host writes from now on: no longer a mirror's boundary
  commit_->Open(group.index());
  if (group.index() == 0) is_primary_ = true;
  link->Start();
  spdlog::warn("role: {} is now the source (primary) of RDF group {}{}", config_.name, group.name(),
               ship ? "" : " (failed over: changes are recorded, nothing is shipped)");
  return absl::OkStatus();
}

absl::StatusOr<RoleChange> Array::Failover(RdfGroup& group) {
  if (group.source() && group.failed_over()) {
    return RoleChange{0, "already failed over: nothing to do"};
  }
  if (group.source()) {
    return absl::FailedPreconditionError(
        group.index() == 0
            ? std::string("this daemon is already the primary")
            : absl::StrCat("this daemon is already the source (R1) of RDF group ", group.name()));
  }
  // The marker first, before the old primary is demoted: a marker that cannot be written
  // leaves both sides as they were. A crash after it and before the region says primary
  // restarts a mirror, which drops the marker (Start).
  if (absl::Status s = group.SetFailedOver(true); !s.ok()) return Unpersisted("failover", s);
  RoleChange out;
  if (peer_service_->open_streams() > 0) {
    absl::Status demoted = group.remote()->Demote();
    out.description = demoted.ok() ? "the old primary was demoted first"
                                   : absl::StrCat("the old primary could not be demoted (",
                                                  std::string(demoted.message()), ")");
  } else {
    out.description = "the link is down: the old primary was not demoted";
  }
  split_brain_seen_ = peer_service_->split_brain_refusals();
  if (absl::Status s = BecomePrimary(group, /*ship=*/false, &out); !s.ok()) {
    if (absl::Status undone = group.SetFailedOver(false); !undone.ok()) {
      spdlog::error("failover: {}; the mirror restarts as a mirror all the same",
                    std::string(undone.message()));
    }
    return s;
  }
  spdlog::warn("failover: {} promoted; {}", config_.name, out.description);
  return out;
}

absl::StatusOr<uint64_t> Array::CopyBack(RdfGroup& group, absl::Duration wait,
                                         const std::vector<cache::TrackKey>& theirs) {
  remote::RemoteAdaptor* link = group.remote();
  mirror::OwedTracks* owed = group.owed();
  for (const cache::TrackKey& key : theirs) owed->NeedResync(key);
  const uint64_t before = owed->tracks_resynced();
  link->Resume();
  // Waits for: the pair Synchronized (sync) or Consistent (async) with nothing queued, in
  // flight or to resync; acks, the link coming up and the resync set shrinking notify the
  // adaptor's events. No role_mu_ is held here.
  const bool done = link->Await(
      [link] {
        const remote::PairState state = link->pair_state();
        return (state == remote::PairState::kSynchronized ||
                state == remote::PairState::kConsistent) &&
               link->Idle();
      },
      absl::Now() + wait);
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat("copy-back not finished after ",
                                                    absl::FormatDuration(wait), ": ",
                                                    owed->resync_pending(), " tracks left"));
  }
  return owed->tracks_resynced() - before;
}

absl::StatusOr<RoleChange> Array::Failback(RdfGroup& group, bool force, absl::Duration wait) {
  if (!group.source() || !(group.failed_over() || group.split() == SplitSide::kR2)) {
    return absl::FailedPreconditionError("failback is for a daemon that was failed over to");
  }
  if (peer_service_->split_brain_refusals() > split_brain_seen_ && !force) {
    return absl::AbortedError(
        "SplitBrain: the old primary kept the primary role while apart and may hold writes "
        "this side lacks; failback with force discards them");
  }
  if (absl::Status s = group.remote()->Demote(); !s.ok()) return s;
  split_brain_seen_ = peer_service_->split_brain_refusals();
  // Refused here, this side stays the failed-over primary with its peer demoted: the state
  // a failover with the link up leaves, from which failback can be asked again.
  const bool was_split = group.split() == SplitSide::kR2;
  if (absl::Status s = group.SetFailedOver(false); !s.ok()) return Unpersisted("failback", s);
  if (absl::Status s = group.SetSplit(SplitSide::kNone); !s.ok()) {
    return Unpersisted("failback", s);
  }
  auto theirs = group.remote()->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  auto copied = CopyBack(group, wait, *theirs);
  if (!copied.ok()) {
    // Back to what it was: a split's R2 side stays split, a failed-over side failed over.
    absl::Status again = was_split ? group.SetSplit(SplitSide::kR2) : group.SetFailedOver(true);
    if (!again.ok()) {
      return absl::Status(
          copied.status().code(),
          absl::StrCat(copied.status().message(),
                       "; and this side stays a primary that ships: ", again.message()));
    }
    return copied.status();
  }
  // Hand the role back: stop taking writes, ship the last ones, then promote the peer.
  if (absl::Status s = BecomeMirror(group, /*graceful=*/true); !s.ok()) return s;
  if (absl::Status s = group.remote()->Promote(cache_->generation()); !s.ok()) return s;
  RoleChange out;
  out.tracks_copied = *copied;
  out.description = absl::StrCat("copied back ", *copied,
                                 " tracks; the original primary is "
                                 "primary again");
  spdlog::warn("failback: {}", out.description);
  return out;
}

absl::StatusOr<RoleChange> Array::Swap(RdfGroup& group, absl::Duration wait) {
  if (group.source()) return absl::FailedPreconditionError("swap is asked of the mirror");
  if (peer_service_->open_streams() == 0) {
    return absl::FailedPreconditionError("swap needs the link up (use failover when it is down)");
  }
  // A mirror is never failed over: a marker left from before goes first, while refusing
  // still leaves both sides as they were.
  if (absl::Status s = group.SetFailedOver(false); !s.ok()) return Unpersisted("swap", s);
  if (absl::Status s = group.remote()->Demote(); !s.ok()) return s;
  RoleChange out;
  if (absl::Status s = BecomePrimary(group, /*ship=*/true, &out); !s.ok()) return s;
  auto theirs = group.remote()->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  auto copied = CopyBack(group, wait, *theirs);
  if (!copied.ok()) return copied.status();
  out.tracks_copied = *copied;
  out.description =
      out.description.empty()
          ? "roles exchanged: this daemon is the primary for good"
          : absl::StrCat("roles exchanged: this daemon is the primary for good; ", out.description);
  spdlog::warn("swap: {}", out.description);
  return out;
}

}  // namespace simarray::daemon
