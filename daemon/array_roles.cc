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

absl::Status Array::LearnPeer(const std::string& address, uint64_t generation) {
  if (!group_) return absl::OkStatus();
  absl::MutexLock lock(&role_mu_);
  return group_->LearnPeer(address, generation);
}

void Array::RestoreFailedOver() {
  // A daemon failed over to stays failed over across a restart: it ships nothing until
  // failback. A marker on a mirror is a failover cut short before the region said primary
  // (Failover writes the marker first): the daemon is the mirror it was.
  if (!group_->ReadFailedOver()) return;
  if (!is_primary_) {
    spdlog::warn(
        "{} is here but this daemon is the mirror: a failover did not finish; "
        "it stays the mirror",
        group_->FailedOverPath());
    if (absl::Status s = group_->SetFailedOver(false); !s.ok()) {
      spdlog::error("{} (a mirror ignores it at every start)", std::string(s.message()));
    }
    return;
  }
  remote()->Suspend();
}

absl::Status Array::BecomeMirror(bool graceful) {
  absl::MutexLock lock(&role_mu_);
  if (!is_primary_) return absl::OkStatus();
  is_primary_ = false;  // host writes are refused from now on
  commit_->Close();     // and any already past that check do not commit
  if (remote::RemoteAdaptor* link = remote(); link != nullptr) {
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
  cache_->SetRole(cache::Role::kMirror);
  spdlog::warn("role: {} is now the mirror", config_.name);
  return absl::OkStatus();
}

absl::Status Array::BecomePrimary(bool ship) {
  absl::MutexLock lock(&role_mu_);
  if (is_primary_) return absl::OkStatus();
  if (!group_) return absl::FailedPreconditionError("this daemon has no peer link");
  remote::RemoteAdaptor* link = remote();
  if (const uint64_t generation = group_->learned_generation(); generation != 0) {
    cache_->SetPeerGeneration(generation);
  }
  if (const std::string peer = group_->learned_peer(); !peer.empty()) {
    link->SetPeerAddress(peer);
  }
  ship ? link->Resume() : link->Suspend();
  cache_->SetRole(cache::Role::kPrimary);
  applier_->ForgetBoundary();  // host writes from now on: no longer a mirror's boundary
  commit_->Open();
  is_primary_ = true;
  link->Start();
  spdlog::warn("role: {} is now the primary{}", config_.name,
               ship ? "" : " (failed over: changes are recorded, nothing is shipped)");
  return absl::OkStatus();
}

absl::StatusOr<RoleChange> Array::Failover() {
  if (is_primary_ && group_ && group_->failed_over()) {
    return RoleChange{0, "already failed over: nothing to do"};
  }
  if (is_primary_) return absl::FailedPreconditionError("this daemon is already the primary");
  if (!group_) return absl::FailedPreconditionError("this daemon has no peer link");
  // The marker first, before the old primary is demoted: a marker that cannot be written
  // leaves both sides as they were. A crash after it and before the region says primary
  // restarts a mirror, which drops the marker (Start).
  if (absl::Status s = group_->SetFailedOver(true); !s.ok()) return Unpersisted("failover", s);
  RoleChange out;
  if (peer_service_->open_streams() > 0) {
    absl::Status demoted = remote()->Demote();
    out.description = demoted.ok() ? "the old primary was demoted first"
                                   : absl::StrCat("the old primary could not be demoted (",
                                                  std::string(demoted.message()), ")");
  } else {
    out.description = "the link is down: the old primary was not demoted";
  }
  split_brain_seen_ = peer_service_->split_brain_refusals();
  if (absl::Status s = BecomePrimary(/*ship=*/false); !s.ok()) {
    if (absl::Status undone = group_->SetFailedOver(false); !undone.ok()) {
      spdlog::error("failover: {}; the mirror restarts as a mirror all the same",
                    std::string(undone.message()));
    }
    return s;
  }
  spdlog::warn("failover: {} promoted; {}", config_.name, out.description);
  return out;
}

absl::StatusOr<uint64_t> Array::CopyBack(absl::Duration wait,
                                         const std::vector<cache::TrackKey>& theirs) {
  for (const cache::TrackKey& key : theirs) owed()->NeedResync(key);
  const uint64_t before = owed()->tracks_resynced();
  remote()->Resume();
  // Waits for: the pair Synchronized (sync) or Consistent (async) with nothing queued, in
  // flight or to resync; acks, the link coming up and the resync set shrinking notify the
  // adaptor's events. No role_mu_ is held here.
  const bool done = remote()->Await(
      [this] {
        const remote::PairState state = remote()->pair_state();
        return (state == remote::PairState::kSynchronized ||
                state == remote::PairState::kConsistent) &&
               remote()->Idle();
      },
      absl::Now() + wait);
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat("copy-back not finished after ",
                                                    absl::FormatDuration(wait), ": ",
                                                    owed()->resync_pending(), " tracks left"));
  }
  return owed()->tracks_resynced() - before;
}

absl::StatusOr<RoleChange> Array::Failback(bool force, absl::Duration wait) {
  if (!is_primary_ || !(group_->failed_over() || group_->split() == SplitSide::kR2)) {
    return absl::FailedPreconditionError("failback is for a daemon that was failed over to");
  }
  if (peer_service_->split_brain_refusals() > split_brain_seen_ && !force) {
    return absl::AbortedError(
        "SplitBrain: the old primary kept the primary role while apart and may hold writes "
        "this side lacks; failback with force discards them");
  }
  if (absl::Status s = remote()->Demote(); !s.ok()) return s;
  split_brain_seen_ = peer_service_->split_brain_refusals();
  // Refused here, this side stays the failed-over primary with its peer demoted: the state
  // a failover with the link up leaves, from which failback can be asked again.
  const bool was_split = group_->split() == SplitSide::kR2;
  if (absl::Status s = group_->SetFailedOver(false); !s.ok()) return Unpersisted("failback", s);
  if (absl::Status s = group_->SetSplit(SplitSide::kNone); !s.ok()) {
    return Unpersisted("failback", s);
  }
  auto theirs = remote()->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  auto copied = CopyBack(wait, *theirs);
  if (!copied.ok()) {
    // Back to what it was: a split's R2 side stays split, a failed-over side failed over.
    absl::Status again = was_split ? group_->SetSplit(SplitSide::kR2) : group_->SetFailedOver(true);
    if (!again.ok()) {
      return absl::Status(
          copied.status().code(),
          absl::StrCat(copied.status().message(),
                       "; and this side stays a primary that ships: ", again.message()));
    }
    return copied.status();
  }
  // Hand the role back: stop taking writes, ship the last ones, then promote the peer.
  if (absl::Status s = BecomeMirror(/*graceful=*/true); !s.ok()) return s;
  if (absl::Status s = remote()->Promote(cache_->generation()); !s.ok()) return s;
  RoleChange out;
  out.tracks_copied = *copied;
  out.description = absl::StrCat("copied back ", *copied,
                                 " tracks; the original primary is "
                                 "primary again");
  spdlog::warn("failback: {}", out.description);
  return out;
}

absl::StatusOr<RoleChange> Array::Swap(absl::Duration wait) {
  if (is_primary_) return absl::FailedPreconditionError("swap is asked of the mirror");
  if (!group_ || peer_service_->open_streams() == 0) {
    return absl::FailedPreconditionError("swap needs the link up (use failover when it is down)");
  }
  // A mirror is never failed over: a marker left from before goes first, while refusing
  // still leaves both sides as they were.
  if (absl::Status s = group_->SetFailedOver(false); !s.ok()) return Unpersisted("swap", s);
  if (absl::Status s = remote()->Demote(); !s.ok()) return s;
  if (absl::Status s = BecomePrimary(/*ship=*/true); !s.ok()) return s;
  auto theirs = remote()->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  auto copied = CopyBack(wait, *theirs);
  if (!copied.ok()) return copied.status();
  RoleChange out;
  out.tracks_copied = *copied;
  out.description = "roles exchanged: this daemon is the primary for good";
  spdlog::warn("swap: {}", out.description);
  return out;
}

}  // namespace simarray::daemon
