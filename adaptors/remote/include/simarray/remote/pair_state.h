#pragma once
// The peer link's state and the pair's state, as types (docs/pair.md). Code compares the
// enums; the names below are what the admin service, simarrayctl and /metrics show, and are
// produced only at that edge.

#include <string_view>
#include <vector>

namespace simarray::remote {

// The primary's side of the peer link.
enum class LinkState {
  kStopped,     // the adaptor is not running (a mirror-role daemon, or stopping)
  kConnecting,  // saying Hello, pairing volumes
  kUp,          // the Ship stream is open
  kDown,        // lost or refused; reconnecting with back-off
  kSuspended,   // an admin suspended it (SuspendLink); nothing is shipped until ResumeLink
};
inline constexpr LinkState kLinkStates[] = {LinkState::kStopped, LinkState::kConnecting,
                                            LinkState::kUp, LinkState::kDown,
                                            LinkState::kSuspended};
// "stopped", "connecting", "up", "down", "suspended".
std::string_view LinkStateName(LinkState state);

enum class PairState {
  kNotPaired,     // a primary without a peer
  kSynchronized,  // sync: every acknowledged write is on the mirror
  kConsistent,    // async: the mirror holds a cycle boundary and cycles flow
  kSyncInProg,    // a resync or initial copy runs, or async cycles have not settled yet
  kSuspended,     // the admin suspended the link
  kPartitioned,   // the link is down
  kSplitBrain,    // the peer is a primary too
  kFailedOver,    // this former mirror took over (Failover); its old primary is not back
  kSplit,         // split by an admin: both sides take host writes, nothing is shipped
};
// "NotPaired", "Synchronized", "Consistent", "SyncInProg", "Suspended", "Partitioned",
// "SplitBrain", "FailedOver", "Split".
std::string_view PairStateName(PairState state);

// The states a group or a volume pair reports by SRDF's names (docs/groups.md), which tools
// that drive arrays branch on. Some are reached only by group operations still to come
// (Split, R1 Updated, R1 UpdInProg, TransIdle); the list is whole so a rollup can rank them.
enum class SrdfState {
  kInvalid,       // no other state applies (split brain: both sides are sources)
  kPartitioned,   // the link is down
  kSuspended,     // an admin suspended the link
  kSplit,         // mirroring stopped, both sides writable
  kR1UpdInProg,   // the target's changes are being copied back to the source
  kR1Updated,     // they were
  kFailedOver,    // the target took over
  kTransIdle,     // async: the link is up but idle
  kSyncInProg,    // a resync or initial copy runs, or async cycles have not settled
  kConsistent,    // async: the target holds a cycle boundary and cycles flow
  kSynchronized,  // sync: every acknowledged write is on the target
};
// Highest precedence first: the order a rollup ranks by (the first one present wins).
inline constexpr SrdfState kSrdfStates[] = {
    SrdfState::kInvalid,    SrdfState::kPartitioned, SrdfState::kSuspended,
    SrdfState::kSplit,      SrdfState::kR1UpdInProg, SrdfState::kR1Updated,
    SrdfState::kFailedOver, SrdfState::kTransIdle,   SrdfState::kSyncInProg,
    SrdfState::kConsistent, SrdfState::kSynchronized};
// "Invalid", "Partitioned", "Suspended", "Split", "R1 UpdInProg", "R1 Updated",
// "Failed Over", "TransIdle", "SyncInProg", "Consistent", "Synchronized".
std::string_view SrdfStateName(SrdfState state);
// The SRDF state of a pair state. kNotPaired has none (a group always has a peer): kInvalid.
SrdfState ToSrdf(PairState state);
// The state of a set of pairs (a group's volumes): the one of highest precedence, SRDF's
// rollup (Invalid > Partitioned > Suspended > Split > R1 UpdInProg > R1 Updated >
// Failed Over > TransIdle > SyncInProg > Consistent > Synchronized). kInvalid for none.
SrdfState RollUp(const std::vector<SrdfState>& states);

// What the pair state is computed from: everything a daemon knows about its pair.
struct PairFacts {
  bool primary = true;
  // Primary side.
  bool has_peer = true;  // a peer is configured (else kNotPaired)
  bool split_brain = false;
  bool failed_over = false;
  bool split = false;  // either side of a split (docs/groups.md)
  LinkState link = LinkState::kStopped;
  bool resyncing = false;  // owed tracks are being shipped whole
  bool async = false;
  bool cycling = false;            // async: cycles flow (not pulled ahead to owed tracks)
  bool cycles_consistent = false;  // async: the mirror holds a cycle boundary
  // Mirror side.
  bool receiving = false;          // a primary's Ship stream is open
  bool applied_consistent = true;  // async: the last cycle applied was consistent
};

// The one function that says what state a pair is in (docs/pair.md lists the states and
// what moves a pair between them).
PairState ComputePairState(const PairFacts& facts);

}  // namespace simarray::remote
