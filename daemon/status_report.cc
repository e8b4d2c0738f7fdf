// The Status reply (proto/simarray/v1/admin.proto) filled from the array's components.
#include "daemon/status_report.h"

#include <cstring>

#include "daemon/admin_service.h"

namespace simarray::daemon {
namespace {

// Async mode: the group's cycles on its source, or what this target applied.
void FillCycleStatus(Array& a, RdfGroup* group, v1::CycleStatus* out) {
  out->set_cycle_ms(group != nullptr ? group->config().cycle_ms : a.config().cycle_ms);
  remote::RecordApplier& applier = a.applier();
  out->set_cycles_applied(applier.cycles_applied());
  out->set_cycles_discarded(applier.cycles_discarded());
  if (group == nullptr || !group->source() || group->cycles() == nullptr) {
    out->set_state("receiving");
    out->set_mirror_consistent(applier.consistent());
    out->set_applied_cycle(applier.applied_cycle());
    out->set_applied_sequence(applier.applied_sequence());
    return;
  }
  const mirror::CycleCounters c = group->cycles()->Counters();
  out->set_state(c.cycling ? "cycling" : "owed");
  out->set_mirror_consistent(c.consistent);  // as the primary knows it from the acks
  out->set_capture_cycle(c.capture_cycle);
  out->set_transmit_cycle(c.transmit_cycle);
  out->set_applied_cycle(c.applied_cycle);
  out->set_applied_sequence(c.applied_sequence);
  out->set_seconds_behind(c.seconds_behind);
  out->set_capture_tracks(c.capture_tracks);
  out->set_capture_bytes(c.capture_bytes);
  out->set_transmit_tracks(c.transmit_tracks);
  out->set_transmit_bytes(c.transmit_bytes);
  out->set_writes_captured(c.writes_captured);
  out->set_writes_folded(c.writes_folded);
  out->set_cycles_switched(c.cycles_switched);
  out->set_cycle_records_shipped(c.cycle_records_shipped);
  out->set_pull_aheads(c.pull_aheads);
  out->set_pinned_slots(c.pinned_slots);
  out->set_slot_limit(c.slot_limit);
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
  reply->set_last_event_id(a.events().last_id());
  reply->set_daemon_id(a.config().name);
  reply->set_role(a.role());
  reply->set_mode(a.config().mode);
  reply->set_pair_state(std::string(remote::PairStateName(a.pair_state())));
  reply->set_sequence(a.cache().LastSequence());
  reply->set_generation(a.cache().generation());
  const cache::SlotCounts slots = slot_counts ? a.cache().Counts() : cache::SlotCounts{};
  v1::CacheStatus* cs = reply->mutable_cache();
  cs->set_slots(slots.total);
  cs->set_free(slots.free);
  cs->set_clean(slots.clean);
  cs->set_write_pending(slots.write_pending);
  cs->set_staging(slots.staging);
  cs->set_track_size(a.cache().track_size());
  cs->set_persistent(a.cache().persistent());
  cs->set_shipping(slots.shipping);
  cs->set_bytes_copied(a.cache().bytes_copied());
  cs->set_tracks_destaged(a.disk().tracks_destaged());
  cs->set_bytes_destaged(a.disk().bytes_destaged());
  cs->set_pen_records_dropped(a.pen_records_dropped());
  cs->set_backing_store_errors(a.disk().health().errors());
  cs->set_backing_store_recoveries(a.disk().health().recoveries());
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
  for (const auto& ha : a.host_adaptors()) {
    v1::PenStatus* ps = reply->add_pens();
    ps->set_host_adaptor(ha->id());
    ps->set_placement(PenPlacementName(*ha));
    mirror::PenCounters pen = ha->pen().Counters();
    host::HostCounters hc = ha->Counters();
    ps->set_depth(pen.depth);
    ps->set_requests_buffered(pen.requests_buffered);
    ps->set_requests_sent(pen.requests_sent);
    ps->set_requests_deleted(pen.requests_deleted);
    ps->set_writes(hc.writes);
    ps->set_writes_committed(hc.writes_committed);
    ps->set_bytes_written(hc.bytes_written);
    for (int r = 0; r < host::kInvalidReasons; ++r) {
      (*ps->mutable_invalid_writes())[host::InvalidReasonName(
          static_cast<host::InvalidReason>(r))] = hc.invalid[r];
    }
  }
  if (a.queue() != nullptr) {
    mirror::QueueCounters q = a.queue()->Counters();
    reply->set_queue_depth(q.depth);
    reply->set_queue_peak(q.peak);
    reply->set_queue_capacity(q.capacity);
    reply->set_queue_pushed(q.pushed);
  }
  v1::LinkStatus* ls = reply->mutable_link();
  if (a.remote() != nullptr) {
    remote::LinkCounters l = a.remote()->Counters();
    ls->set_peer(a.config().peer_address);
    ls->set_state(std::string(remote::LinkStateName(l.state)));
    ls->set_records_shipped(l.records_shipped);
    ls->set_messages_shipped(l.messages_shipped);
    ls->set_records_acked(l.records_acked);
    ls->set_records_refused(l.records_refused);
    ls->set_bytes_shipped(l.bytes_shipped);
    ls->set_in_flight(l.in_flight);
    ls->set_in_flight_peak(l.in_flight_peak);
    ls->set_ack_timeouts(l.ack_timeouts);
    ls->set_mirror_applied_sequence(l.mirror_applied_sequence);
    ls->set_records_degraded(l.records_degraded);
    ls->set_heartbeat_timeouts(l.heartbeat_timeouts);
    ls->set_connects(l.connects);
    ls->set_link_losses(l.link_losses);
    ls->set_resyncing(l.resyncing);
    ls->set_resync_pending(a.owed()->resync_pending());
    ls->set_tracks_resynced(a.owed()->tracks_resynced());
    ls->set_resyncs_started(l.resyncs_started);
    ls->set_resyncs_completed(l.resyncs_completed);
    ls->set_policy(a.config().link_policy);
    ls->set_resync_tracks_per_second(l.resync_tracks_per_second);
    ls->set_resync_seconds_left(l.resync_seconds_left);
    ls->set_auth_failures(l.auth_failures);
    reply->set_owed_tracks(a.owed()->owed());
  } else {
    ls->set_state("none");
  }
  reply->set_writes_cancelled(a.streams_cancelled());
  reply->set_records_applied(a.applier().records_applied());
  reply->set_applied_sequence(a.applier().applied_sequence());
  reply->set_admin_calls_refused(a.admin_service().refusals());
  reply->set_peer_calls_refused(a.peer_gate().refusals());
  reply->set_admin_token_required(!a.config().admin_token.empty());
  reply->set_peer_secret_configured(!a.config().peer_secret.empty());
  for (const auto& server : a.nbd_servers()) {
    nbd::NbdCounters n = server->Counters();
    v1::NbdStatus* ns = reply->add_nbd();
    ns->set_host_adaptor(server->id());
    ns->set_connections_open(n.connections_open);
    ns->set_connections_accepted(n.connections_accepted);
    ns->set_connections_refused(n.connections_refused);
    ns->set_protocol_errors(n.protocol_errors);
    ns->set_writes_dropped(n.writes_dropped);
  }
  if (a.config().mode == "async") FillCycleStatus(a, a.group(), reply->mutable_cycles());
  for (const auto& g : a.groups()) FillGroup(a, *g, reply->add_groups());
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
