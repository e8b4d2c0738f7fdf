// The Status reply (proto/simarray/v1/admin.proto) filled from the array's components.
#include "daemon/status_report.h"

#include <cstring>
#include <mutex>

#include "daemon/admin_service.h"
#include "daemon/array_figures.h"
#include "daemon/status_figures.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

// Async mode: the group's cycles on its source, or what this target applied.
void FillCycleStatus(Array& a, RdfGroup* group, v1::CycleStatus* out) {
  out->set_cycle_ms(group != nullptr ? group->config().cycle_ms : a.config().cycle_ms);
  if (group == nullptr || !group->source() || group->cycles() == nullptr) {
    out->set_state("receiving");
  } else {
    out->set_state(group->cycles()->Counters().cycling ? "cycling" : "owed");
  }
}

// The config's word for where a host adaptor's pen lives (holding_pen).
const char* PenPlacementName(host::HostAdaptor& ha) {
  if (ha.bypasses_pen()) return "bypass";
  return ha.pen().placement() == mirror::PenPlacement::kCache ? "cache" : "local";
}

}  // namespace

GroupState StateOfGroup(Array& a, RdfGroup& group) {
  const remote::SrdfState pair = remote::ToSrdf(a.pair_state(group));
  const bool source = group.source() && !group.failed_over() && group.split() == SplitSide::kNone;
  const bool link_up =
      group.source() ? group.remote()->LinkUp() : pair != remote::SrdfState::kPartitioned;
  GroupState out;
  std::vector<remote::SrdfState> states;
  for (const disk::VolumeInfo& v : a.volumes().List()) {
    if (!disk::InGroup(v, group.name())) continue;  // local, or another group's
    VolumePairState vp;
    vp.volume = v.name;
    vp.paired = v.paired;
    vp.owed_tracks = group.source() ? group.owed()->owed(v.id) : 0;  // failed over too
    vp.state = pair;
    if (!v.paired && link_up) {
      vp.state = remote::SrdfState::kSyncInProg;  // the adaptor creates the twin and copies
    } else if (pair == remote::SrdfState::kSyncInProg && source && !group.async() &&
               vp.owed_tracks == 0) {
      vp.state = remote::SrdfState::kSynchronized;  // its part of the resync is done
    }
    states.push_back(vp.state);
    out.volumes.push_back(std::move(vp));
  }
  out.state = states.empty() ? pair : remote::RollUp(states);
  return out;
}

void FillGroup(Array& a, RdfGroup& group, v1::GroupStatus* out) {
  const GroupConfig& c = group.config();
  out->set_name(c.name);
  out->set_number(c.number);
  out->set_peer(group.peer_address());
  out->set_mode(c.mode);
  // A target failed over to serves the hosts but is still the group's R2 (SRDF's words).
  out->set_role(group.source() && !group.failed_over() && group.split() != SplitSide::kR2 ? "R1"
                                                                                          : "R2");
  const GroupState state = StateOfGroup(a, group);
  out->set_state(std::string(remote::SrdfStateName(state.state)));
  out->set_link(std::string(remote::LinkStateName(group.remote()->Counters().state)));
  out->set_owed_tracks(group.owed()->owed());
  out->set_link_policy(c.link_policy);
  if (group.async()) {
    out->set_cycle_ms(c.cycle_ms);
    out->set_consistency(c.consistency);
    FillCycleStatus(a, &group, out->mutable_cycles());
    StatusFigures figures(out->mutable_cycles());
    DescribeCycles(a, &group, figures);
  }
  for (const VolumePairState& vp : state.volumes) {
    v1::VolumePair* p = out->add_volumes();
    p->set_volume(vp.volume);
    p->set_state(std::string(remote::SrdfStateName(vp.state)));
    p->set_owed_tracks(vp.owed_tracks);
    p->set_paired(vp.paired);
  }
}

void FillStatus(Array& a, v1::StatusReply* reply, bool slot_counts) {
  StatusFigures figures(reply);
  DescribeArray(a, figures, slot_counts);
  reply->set_last_event_id(a.events().last_id());
  reply->set_daemon_id(a.config().name);
  reply->set_role(a.role());
  reply->set_mode(a.config().mode);
  reply->set_pair_state(std::string(remote::PairStateName(a.pair_state())));
  reply->set_generation(a.cache().generation());
  v1::CacheStatus* cs = reply->mutable_cache();
  cs->set_track_size(a.cache().track_size());
  cs->set_persistent(a.cache().persistent());
  const std::vector<disk::StoreFailure> failures = a.disk().health().Failures();
  reply->set_backing_store(failures.empty() ? "ok" : "failed");
  for (const disk::StoreFailure& f : failures) {
    v1::BackingStoreFailure* bf = reply->add_failed_backing_stores();
    bf->set_volume(f.volume);
    bf->set_op(disk::DiskOpName(f.op));
    bf->set_error_number(f.error);
    bf->set_error(strerror(f.error));
    bf->set_failures(f.failures);
    bf->set_seconds_failed(absl::ToDoubleSeconds(absl::Now() - f.since));
    bf->set_tracks_waiting(a.cache().WritePendingOf(f.volume_id));
  }
  // The pens' entries, in host adaptor order, were made by DescribeArray.
  for (int i = 0; i < reply->pens_size(); ++i) {
    reply->mutable_pens(i)->set_placement(PenPlacementName(*a.host_adaptors()[i]));
  }
  v1::LinkStatus* ls = reply->mutable_link();
  if (a.remote() != nullptr) {
    ls->set_peer(a.config().peer_address);
    const remote::LinkCounters l = a.remote()->Counters();
    ls->set_state(std::string(remote::LinkStateName(l.state)));
    ls->set_policy(a.config().link_policy);
    ls->set_emulation_out(l.emulation.out.ToString());
    ls->set_emulation_back(l.emulation.back.ToString());
  } else {
    ls->set_state("none");
  }
  reply->set_admin_token_required(!a.config().admin_token.empty());
  reply->set_peer_secret_configured(!a.config().peer_secret.empty());
  if (a.config().mode == "async") FillCycleStatus(a, a.group(), reply->mutable_cycles());
  for (const auto& g : a.groups()) FillGroup(a, *g, reply->add_groups());
  if (!figures.errors().empty()) {
    // A figure names a field admin.proto lacks: a bug the figures test catches; say it once.
    static std::once_flag said;
    std::call_once(said, [&] {
      spdlog::error("status: a figure does not fit admin.proto: {}", figures.errors().front());
    });
  }
}

void FillEvent(const Event& event, v1::Event* out) {
  out->set_id(event.id);
  out->set_time_unix_ms(absl::ToUnixMillis(event.time));
  out->set_kind(event.kind);
  out->set_subject(event.subject);
  out->set_value(event.value);
  out->set_previous(event.previous);
  out->set_detail(event.detail);
}

}  // namespace simarray::daemon
