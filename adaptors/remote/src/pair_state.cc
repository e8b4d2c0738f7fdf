// Link and pair states: names, and the pair state from the facts (pair_state.h).
#include "simarray/remote/pair_state.h"

namespace simarray::remote {

std::string_view LinkStateName(LinkState state) {
  switch (state) {
    case LinkState::kStopped:
      return "stopped";
    case LinkState::kConnecting:
      return "connecting";
    case LinkState::kUp:
      return "up";
    case LinkState::kDown:
      return "down";
    case LinkState::kSuspended:
      return "suspended";
  }
  return "unknown";
}

std::string_view PairStateName(PairState state) {
  switch (state) {
    case PairState::kNotPaired:
      return "NotPaired";
    case PairState::kSynchronized:
      return "Synchronized";
    case PairState::kConsistent:
      return "Consistent";
    case PairState::kSyncInProg:
      return "SyncInProg";
    case PairState::kSuspended:
      return "Suspended";
    case PairState::kPartitioned:
      return "Partitioned";
    case PairState::kSplitBrain:
      return "SplitBrain";
    case PairState::kFailedOver:
      return "FailedOver";
    case PairState::kSplit:
      return "Split";
  }
  return "Unknown";
}

std::string_view SrdfStateName(SrdfState state) {
  switch (state) {
    case SrdfState::kInvalid:
      return "Invalid";
    case SrdfState::kPartitioned:
      return "Partitioned";
    case SrdfState::kSuspended:
      return "Suspended";
    case SrdfState::kSplit:
      return "Split";
    case SrdfState::kR1UpdInProg:
      return "R1 UpdInProg";
    case SrdfState::kR1Updated:
      return "R1 Updated";
    case SrdfState::kFailedOver:
      return "Failed Over";
    case SrdfState::kTransIdle:
      return "TransIdle";
    case SrdfState::kSyncInProg:
      return "SyncInProg";
    case SrdfState::kConsistent:
      return "Consistent";
    case SrdfState::kSynchronized:
      return "Synchronized";
  }
  return "Invalid";
}

SrdfState ToSrdf(PairState state) {
  switch (state) {
    case PairState::kSynchronized:
      return SrdfState::kSynchronized;
    case PairState::kConsistent:
      return SrdfState::kConsistent;
    case PairState::kSyncInProg:
      return SrdfState::kSyncInProg;
    case PairState::kSuspended:
      return SrdfState::kSuspended;
    case PairState::kPartitioned:
      return SrdfState::kPartitioned;
    case PairState::kFailedOver:
      return SrdfState::kFailedOver;
    case PairState::kSplit:
      return SrdfState::kSplit;
    case PairState::kNotPaired:
    case PairState::kSplitBrain:
      return SrdfState::kInvalid;
  }
  return SrdfState::kInvalid;
}

SrdfState RollUp(const std::vector<SrdfState>& states) {
  for (const SrdfState ranked : kSrdfStates) {
    for (const SrdfState s : states) {
      if (s == ranked) return ranked;
    }
  }
  return SrdfState::kInvalid;
}

PairState ComputePairState(const PairFacts& f) {
  if (!f.primary) {
    // A mirror sees the pair through the stream its primary ships on.
    if (!f.receiving) return PairState::kPartitioned;
    if (!f.async) return PairState::kSynchronized;
    return f.applied_consistent ? PairState::kConsistent : PairState::kSyncInProg;
  }
  if (!f.has_peer) return PairState::kNotPaired;
  if (f.split_brain) return PairState::kSplitBrain;
  if (f.split) return PairState::kSplit;
  if (f.failed_over) return PairState::kFailedOver;
  if (f.link == LinkState::kSuspended) return PairState::kSuspended;
  if (f.link != LinkState::kUp) return PairState::kPartitioned;
  if (f.resyncing) return PairState::kSyncInProg;
  if (f.async) {
    return f.cycling && f.cycles_consistent ? PairState::kConsistent : PairState::kSyncInProg;
  }
  return PairState::kSynchronized;
}

}  // namespace simarray::remote
