#pragma once
// FillStatus: what AdminService.Status returns (docs/interfaces.md), without the
// authorization check: the admin service answers Status with it and the event watcher samples
// it (docs/events.md).

#include "daemon/array.h"
#include "simarray/v1/admin.pb.h"

namespace simarray::daemon {

// A group's SRDF state and its volume pairs' (docs/groups.md; GroupStatus in admin.proto
// says how a volume's state is derived from the group's).
struct VolumePairState {
  std::string volume;
  remote::SrdfState state = remote::SrdfState::kInvalid;
  uint64_t owed_tracks = 0;
  bool paired = false;
};
struct GroupState {
  remote::SrdfState state = remote::SrdfState::kInvalid;  // the rollup of `volumes`
  std::vector<VolumePairState> volumes;
};
// One of the array's groups.
GroupState StateOfGroup(Array& array, RdfGroup& group);

// The group's status, states included.
void FillGroup(Array& array, RdfGroup& group, v1::GroupStatus* out);

// One event of the array's event log as the admin API sends it (WatchEvents, the console).
void FillEvent(const Event& event, v1::Event* out);

// `slot_counts` false leaves the cache slot counts at zero: they take a scan of every slot
// under the cache lock.
void FillStatus(Array& array, v1::StatusReply* reply, bool slot_counts);

}  // namespace simarray::daemon
