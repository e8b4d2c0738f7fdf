// The pair state from the facts: one case per state, and the precedence between them.
#include "simarray/remote/pair_state.h"

#include <catch2/catch.hpp>
#include <set>

namespace simarray::remote {
namespace {

PairFacts UpSync() {
  PairFacts f;
  f.link = LinkState::kUp;
  return f;
}

TEST_CASE("pair state: a primary's pair by link, resync and cycles", "[remote][pair]") {
  PairFacts f = UpSync();
  CHECK(ComputePairState(f) == PairState::kSynchronized);
  f.resyncing = true;
  CHECK(ComputePairState(f) == PairState::kSyncInProg);
  f.link = LinkState::kDown;
  CHECK(ComputePairState(f) == PairState::kPartitioned);
  f.link = LinkState::kConnecting;
  CHECK(ComputePairState(f) == PairState::kPartitioned);
  f.link = LinkState::kSuspended;
  CHECK(ComputePairState(f) == PairState::kSuspended);

  PairFacts a = UpSync();
  a.async = true;
  CHECK(ComputePairState(a) == PairState::kSyncInProg);  // not cycling yet
  a.cycling = true;
  a.cycles_consistent = true;
  CHECK(ComputePairState(a) == PairState::kConsistent);
  a.resyncing = true;
  CHECK(ComputePairState(a) == PairState::kSyncInProg);
}

TEST_CASE("pair state: split brain and failover win over the link", "[remote][pair]") {
  PairFacts f = UpSync();
  f.link = LinkState::kSuspended;
  f.failed_over = true;
  CHECK(ComputePairState(f) == PairState::kFailedOver);
  f.split_brain = true;
  CHECK(ComputePairState(f) == PairState::kSplitBrain);
  PairFacts none;
  none.has_peer = false;
  none.split_brain = true;
  CHECK(ComputePairState(none) == PairState::kNotPaired);
}

TEST_CASE("pair state: a mirror's pair by its incoming stream", "[remote][pair]") {
  PairFacts m;
  m.primary = false;
  CHECK(ComputePairState(m) == PairState::kPartitioned);
  m.receiving = true;
  CHECK(ComputePairState(m) == PairState::kSynchronized);
  m.async = true;
  m.applied_consistent = false;
  CHECK(ComputePairState(m) == PairState::kSyncInProg);
  m.applied_consistent = true;
  CHECK(ComputePairState(m) == PairState::kConsistent);
}

TEST_CASE("pair state: names are what the admin service and metrics show", "[remote][pair]") {
  CHECK(PairStateName(PairState::kSyncInProg) == "SyncInProg");
  CHECK(PairStateName(PairState::kFailedOver) == "FailedOver");
  CHECK(LinkStateName(LinkState::kStopped) == "stopped");
  CHECK(LinkStateName(LinkState::kUp) == "up");
}

TEST_CASE("pair state: SRDF names and the group rollup by precedence", "[remote][pair]") {
  CHECK(SrdfStateName(ToSrdf(PairState::kFailedOver)) == "Failed Over");
  CHECK(SrdfStateName(ToSrdf(PairState::kSplit)) == "Split");
  PairFacts split = UpSync();
  split.link = LinkState::kSuspended;
  split.split = true;
  CHECK(ComputePairState(split) == PairState::kSplit);  // not Suspended
  split.split_brain = true;
  CHECK(ComputePairState(split) == PairState::kSplitBrain);
  CHECK(SrdfStateName(ToSrdf(PairState::kSyncInProg)) == "SyncInProg");
  CHECK(ToSrdf(PairState::kSplitBrain) == SrdfState::kInvalid);
  CHECK(SrdfStateName(SrdfState::kR1UpdInProg) == "R1 UpdInProg");
  // Every state has its own name.
  std::set<std::string_view> names;
  for (const SrdfState s : kSrdfStates) names.insert(SrdfStateName(s));
  CHECK(names.size() == std::size(kSrdfStates));

  using S = SrdfState;
  CHECK(RollUp({S::kSynchronized, S::kSynchronized}) == S::kSynchronized);
  CHECK(RollUp({S::kSynchronized, S::kSyncInProg, S::kSynchronized}) == S::kSyncInProg);
  CHECK(RollUp({S::kSyncInProg, S::kFailedOver}) == S::kFailedOver);
  CHECK(RollUp({S::kR1Updated, S::kSplit}) == S::kSplit);
  CHECK(RollUp({S::kSuspended, S::kPartitioned, S::kSynchronized}) == S::kPartitioned);
  CHECK(RollUp({S::kPartitioned, S::kInvalid}) == S::kInvalid);
  CHECK(RollUp({S::kConsistent, S::kSynchronized}) == S::kConsistent);
  CHECK(RollUp({}) == S::kInvalid);
}

}  // namespace
}  // namespace simarray::remote
