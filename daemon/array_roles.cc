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

constexpr char kFailedOverText[] = "failed over: changes are recorded, nothing is shipped\n";

// The error of a role change refused because its state file could not be persisted
// (docs/errors.md): UNAVAILABLE, naming the file, the step and the errno.
absl::Status Unpersisted(absl::string_view change, const absl::Status& cause) {
  return absl::UnavailableError(absl::StrCat(change, " refused: ", cause.message(),
                                             "; the role is unchanged (fix data_dir and retry)"));
}

}  // namespace

std::string Array::FailedOverPath() const { return config_.data_dir + "/failed_over"; }

absl::Status Array::SetFailedOver(bool failed_over) {
  const std::string marker = FailedOverPath();
  absl::Status persisted =
      failed_over ? WriteFileAtomically(marker, kFailedOverText, 0644) : RemoveFileDurably(marker);
  if (!persisted.ok()) return persisted;
  failed_over_ = failed_over;
  return absl::OkStatus();
}

void Array::LoadLearnedPeer() {
  const std::string path = config_.data_dir + "/peer.address";
  std::ifstream in(path);
  if (!in) return;  // never paired with a primary yet
  std::string address;
  uint64_t generation = 0;
  if (!(in >> address >> generation)) {
    spdlog::error("{}: expected \"ADDRESS GENERATION\", cannot read it: the peer is not known",
                  path);
    return;
  }
  learned_peer_ = address;
  learned_generation_ = generation;
}

absl::Status Array::LearnPeer(const std::string& address, uint64_t generation) {
  {
    absl::MutexLock lock(&role_mu_);
    if (address.empty() || (address == learned_peer_ && generation == learned_generation_)) {
      return absl::OkStatus();
    }
    if (absl::Status s = WriteFileAtomically(config_.data_dir + "/peer.address",
                                             absl::StrCat(address, " ", generation, "\n"), 0644);
        !s.ok()) {
      return s;  // what was learned before stays, on disk and here
    }
    learned_peer_ = address;
    learned_generation_ = generation;
  }
  if (remote_) remote_->SetPeerAddress(address);  // ignored while it ships
  return absl::OkStatus();
}

absl::Status Array::BecomeMirror(bool graceful) {
  absl::MutexLock lock(&role_mu_);
  if (!is_primary_) return absl::OkStatus();
  is_primary_ = false;  // host writes are refused from now on
  commit_->Close();     // and any already past that check do not commit
  if (remote_ != nullptr) {
    // Graceful: let what was queued or in flight reach the peer first, so nothing acked
    // stays behind only on this side. Waits for: the link not up, or nothing queued, in
    // flight or to resync (acks, link loss and queue changes notify the adaptor's events).
    // It holds role_mu_ on purpose: the role change is half done (writes refused, the gate
    // closed, the adaptor still shipping), and a BecomePrimary interleaved here would reopen
    // the gate under a sender that is about to be stopped. Nothing the drain needs takes
    // role_mu_; a Hello that teaches a peer address (LearnPeer) waits at most the deadline.
    if (graceful) {
      remote_->Await([this] { return !remote_->LinkUp() || remote_->Idle(); },
                     absl::Now() + absl::Seconds(10));
    }
    remote_->Stop();          // what is left becomes owed
    remote_->DrainStopped();  // so does what reached the queue while it stopped
  }
  cache_->SetRole(cache::Role::kMirror);
  spdlog::warn("role: {} is now the mirror", config_.name);
  return absl::OkStatus();
}

absl::Status Array::BecomePrimary(bool ship) {
  absl::MutexLock lock(&role_mu_);
  if (is_primary_) return absl::OkStatus();
  if (remote_ == nullptr) return absl::FailedPreconditionError("this daemon has no peer link");
  if (learned_generation_ != 0) cache_->SetPeerGeneration(learned_generation_);
  if (!learned_peer_.empty()) remote_->SetPeerAddress(learned_peer_);
  ship ? remote_->Resume() : remote_->Suspend();
  cache_->SetRole(cache::Role::kPrimary);
  applier_->ForgetBoundary();  // host writes from now on: no longer a mirror's boundary
  commit_->Open();
  is_primary_ = true;
  remote_->Start();
  spdlog::warn("role: {} is now the primary{}", config_.name,
               ship ? "" : " (failed over: changes are recorded, nothing is shipped)");
  return absl::OkStatus();
}

absl::StatusOr<RoleChange> Array::Failover() {
  if (is_primary_) return absl::FailedPreconditionError("this daemon is already the primary");
  if (remote_ == nullptr) return absl::FailedPreconditionError("this daemon has no peer link");
  // The marker first, before the old primary is demoted: a marker that cannot be written
  // leaves both sides as they were. A crash after it and before the region says primary
  // restarts a mirror, which drops the marker (Start).
  if (absl::Status s = SetFailedOver(true); !s.ok()) return Unpersisted("failover", s);
  RoleChange out;
  if (peer_service_->open_streams() > 0) {
    absl::Status demoted = remote_->Demote();
    out.description = demoted.ok() ? "the old primary was demoted first"
                                   : absl::StrCat("the old primary could not be demoted (",
                                                  std::string(demoted.message()), ")");
  } else {
    out.description = "the link is down: the old primary was not demoted";
  }
  split_brain_seen_ = peer_service_->split_brain_refusals();
  if (absl::Status s = BecomePrimary(/*ship=*/false); !s.ok()) {
    if (absl::Status undone = SetFailedOver(false); !undone.ok()) {
      spdlog::error("failover: {}; the mirror restarts as a mirror all the same",
                    std::string(undone.message()));
    }
    return s;
  }
  spdlog::warn("failover: {} promoted; {}", config_.name, out.description);
  return out;
}

absl::StatusOr<uint64_t> Array::CopyBack(absl::Duration wait) {
  auto theirs = remote_->PeerOwed();
  if (!theirs.ok()) return theirs.status();
  for (const cache::TrackKey& key : *theirs) owed_->NeedResync(key);
  const uint64_t before = owed_->tracks_resynced();
  remote_->Resume();
  // Waits for: the pair Synchronized (sync) or Consistent (async) with nothing queued, in
  // flight or to resync; acks, the link coming up and the resync set shrinking notify the
  // adaptor's events. No role_mu_ is held here.
  const bool done = remote_->Await(
      [this] {
        const remote::PairState state = remote_->pair_state();
        return (state == remote::PairState::kSynchronized ||
                state == remote::PairState::kConsistent) &&
               remote_->Idle();
      },
      absl::Now() + wait);
  if (!done) {
    return absl::DeadlineExceededError(absl::StrCat("copy-back not finished after ",
                                                    absl::FormatDuration(wait), ": ",
                                                    owed_->resync_pending(), " tracks left"));
  }
  return owed_->tracks_resynced() - before;
}

absl::StatusOr<RoleChange> Array::Failback(bool force, absl::Duration wait) {
  if (!is_primary_ || !failed_over_) {
    return absl::FailedPreconditionError("failback is for a daemon that was failed over to");
  }
  if (peer_service_->split_brain_refusals() > split_brain_seen_ && !force) {
    return absl::AbortedError(
        "SplitBrain: the old primary kept the primary role while apart and may hold writes "
        "this side lacks; failback with force discards them");
  }
  if (absl::Status s = remote_->Demote(); !s.ok()) return s;
  split_brain_seen_ = peer_service_->split_brain_refusals();
  // Refused here, this side stays the failed-over primary with its peer demoted: the state
  // a failover with the link up leaves, from which failback can be asked again.
  if (absl::Status s = SetFailedOver(false); !s.ok()) return Unpersisted("failback", s);
  auto copied = CopyBack(wait);
  if (!copied.ok()) {
    if (absl::Status again = SetFailedOver(true); !again.ok()) {
      return absl::Status(
          copied.status().code(),
          absl::StrCat(copied.status().message(),
                       "; and this side stays a primary that ships: ", again.message()));
    }
    return copied.status();
  }
  // Hand the role back: stop taking writes, ship the last ones, then promote the peer.
  if (absl::Status s = BecomeMirror(/*graceful=*/true); !s.ok()) return s;
  if (absl::Status s = remote_->Promote(cache_->generation()); !s.ok()) return s;
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
  if (remote_ == nullptr || peer_service_->open_streams() == 0) {
    return absl::FailedPreconditionError("swap needs the link up (use failover when it is down)");
  }
  // A mirror is never failed over: a marker left from before goes first, while refusing
  // still leaves both sides as they were.
  if (absl::Status s = SetFailedOver(false); !s.ok()) return Unpersisted("swap", s);
  if (absl::Status s = remote_->Demote(); !s.ok()) return s;
  if (absl::Status s = BecomePrimary(/*ship=*/true); !s.ok()) return s;
  auto copied = CopyBack(wait);
  if (!copied.ok()) return copied.status();
  RoleChange out;
  out.tracks_copied = *copied;
  out.description = "roles exchanged: this daemon is the primary for good";
  spdlog::warn("swap: {}", out.description);
  return out;
}

}  // namespace simarray::daemon
