#include "daemon/metrics.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/admin_service.h"
#include "daemon/array.h"
#include "daemon/status_report.h"

namespace simarray::daemon {
namespace {

std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return absl::StrCat(a, ",", b);
}

std::string Number(double v) { return absl::StrFormat("%.9g", v); }

// Async mode (docs/async.md): the primary's cycles, and what the mirror applied.
void Cycles(MetricsWriter& w, Array& a) {
  remote::RecordApplier& applier = a.applier();
  w.Single("simarray_cycles_applied_total", "counter",
           "Async cycles this daemon applied whole as a mirror.", applier.cycles_applied());
  w.Single("simarray_cycles_discarded_total", "counter",
           "Async cycles this daemon dropped unfinished as a mirror (link lost mid-cycle).",
           applier.cycles_discarded());
  const bool primary = a.cycles() != nullptr && a.is_primary();
  const mirror::CycleCounters c = primary ? a.cycles()->Counters() : mirror::CycleCounters{};
  w.Family("simarray_mirror_consistent", "gauge",
           "1 while the mirror's image is the primary's as of a cycle boundary (on the primary: "
           "as its acks tell).");
  w.Sample("simarray_mirror_consistent", "",
           uint64_t{(primary ? c.consistent : applier.consistent()) ? 1u : 0u});
  if (!primary) return;
  w.Family("simarray_cycle_number", "gauge",
           "Async cycle numbers: capture (open), transmit (in transit, 0: none), applied (the "
           "mirror's last whole cycle).");
  w.Sample("simarray_cycle_number", MetricsWriter::Label("cycle", "capture"), c.capture_cycle);
  w.Sample("simarray_cycle_number", MetricsWriter::Label("cycle", "transmit"), c.transmit_cycle);
  w.Sample("simarray_cycle_number", MetricsWriter::Label("cycle", "applied"), c.applied_cycle);
  w.Family("simarray_cycle_bytes", "gauge", "Bytes the capture and transmit cycles will ship.");
  w.Sample("simarray_cycle_bytes", MetricsWriter::Label("cycle", "capture"), c.capture_bytes);
  w.Sample("simarray_cycle_bytes", MetricsWriter::Label("cycle", "transmit"), c.transmit_bytes);
  w.Family("simarray_cycle_tracks", "gauge", "Tracks in the capture and transmit cycles.");
  w.Sample("simarray_cycle_tracks", MetricsWriter::Label("cycle", "capture"), c.capture_tracks);
  w.Sample("simarray_cycle_tracks", MetricsWriter::Label("cycle", "transmit"), c.transmit_tracks);
  w.Single("simarray_cycle_seconds_behind", "gauge",
           "Age of the mirror's image: seconds since the switch of the last cycle it applied.",
           c.seconds_behind);
  w.Single("simarray_cycles_switched_total", "counter", "Async cycle switches.", c.cycles_switched);
  w.Single("simarray_writes_folded_total", "counter",
           "Writes to a track already in the capture cycle: shipped once with the later data.",
           c.writes_folded);
  w.Single("simarray_cycle_records_shipped_total", "counter",
           "Data records taken from transmit cycles.", c.cycle_records_shipped);
  w.Single("simarray_pull_aheads_total", "counter",
           "Times the cycles pinned too much cache and fell back to owed tracks.", c.pull_aheads);
  w.Single("simarray_cycles_cycling", "gauge",
           "1 while writes go to cycles; 0 while they go to owed tracks (link down, pulled "
           "ahead).",
           uint64_t{c.cycling ? 1u : 0u});
}

void Host(MetricsWriter& w, Array& a) {
  const auto& hosts = a.host_adaptors();
  std::vector<host::HostCounters> counters;
  std::vector<mirror::PenCounters> pens;
  for (const auto& ha : hosts) {
    counters.push_back(ha->Counters());
    pens.push_back(ha->pen().Counters());
  }
  auto each = [&](const std::string& name, const std::string& type, const std::string& help,
                  auto fn) {
    w.Family(name, type, help);
    for (size_t i = 0; i < hosts.size(); ++i)
      fn(MetricsWriter::Label("adaptor", hosts[i]->id()), i);
  };
  each("simarray_host_writes_total", "counter",
       "Host writes finished, by host adaptor and result (committed or the invalid reason).",
       [&](const std::string& ha, size_t i) {
         w.Sample("simarray_host_writes_total",
                  Join(ha, MetricsWriter::Label("result", "committed")),
                  counters[i].writes_committed);
         for (int r = 0; r < host::kInvalidReasons; ++r) {
           w.Sample(
               "simarray_host_writes_total",
               Join(ha, MetricsWriter::Label("result", host::InvalidReasonName(
                                                           static_cast<host::InvalidReason>(r)))),
               counters[i].invalid[r]);
         }
       });
  each("simarray_host_write_bytes_total", "counter",
       "Bytes of host writes, by host adaptor and result (committed or the invalid reason).",
       [&](const std::string& ha, size_t i) {
         w.Sample("simarray_host_write_bytes_total",
                  Join(ha, MetricsWriter::Label("result", "committed")), counters[i].bytes_written);
         for (int r = 0; r < host::kInvalidReasons; ++r) {
           w.Sample(
               "simarray_host_write_bytes_total",
               Join(ha, MetricsWriter::Label("result", host::InvalidReasonName(
                                                           static_cast<host::InvalidReason>(r)))),
               counters[i].bytes_invalid[r]);
         }
       });
  each("simarray_host_invalid_writes_total", "counter",
       "Host writes refused as invalid (nothing of them committed or mirrored), by reason.",
       [&](const std::string& ha, size_t i) {
         for (int r = 0; r < host::kInvalidReasons; ++r) {
           w.Sample(
               "simarray_host_invalid_writes_total",
               Join(ha, MetricsWriter::Label("reason", host::InvalidReasonName(
                                                           static_cast<host::InvalidReason>(r)))),
               counters[i].invalid[r]);
         }
       });
  each("simarray_host_writes_started_total", "counter",
       "Host writes begun (checked and given queue places), by host adaptor.",
       [&](const std::string& ha, size_t i) {
         w.Sample("simarray_host_writes_started_total", ha, counters[i].writes);
       });
  each("simarray_host_reads_total", "counter", "Host reads served, by host adaptor.",
       [&](const std::string& ha, size_t i) {
         w.Sample("simarray_host_reads_total", ha, counters[i].reads);
       });
  each("simarray_host_read_bytes_total", "counter", "Bytes of host reads, by host adaptor.",
       [&](const std::string& ha, size_t i) {
         w.Sample("simarray_host_read_bytes_total", ha, counters[i].bytes_read);
       });
  each("simarray_host_write_latency_seconds", "histogram",
       "Host write latency from request to reply, committed writes, by host adaptor.",
       [&](const std::string& ha, size_t i) {
         w.Histograms("simarray_host_write_latency_seconds", ha, hosts[i]->write_latency().Read());
       });
  each("simarray_pen_depth", "gauge",
       "Mirror requests waiting in the host adaptor's holding pen for their write to validate.",
       [&](const std::string& ha, size_t i) { w.Sample("simarray_pen_depth", ha, pens[i].depth); });
  each("simarray_pen_requests_total", "counter",
       "Holding pen requests by event: buffered, sent (to the mirror queue) or deleted "
       "(invalid write).",
       [&](const std::string& ha, size_t i) {
         w.Sample("simarray_pen_requests_total",
                  Join(ha, MetricsWriter::Label("event", "buffered")), pens[i].requests_buffered);
         w.Sample("simarray_pen_requests_total", Join(ha, MetricsWriter::Label("event", "sent")),
                  pens[i].requests_sent);
         w.Sample("simarray_pen_requests_total", Join(ha, MetricsWriter::Label("event", "deleted")),
                  pens[i].requests_deleted);
       });
}

void Nbd(MetricsWriter& w, Array& a) {
  const auto& servers = a.nbd_servers();
  if (servers.empty()) return;
  std::vector<nbd::NbdCounters> counters;
  for (const auto& s : servers) counters.push_back(s->Counters());
  w.Family("simarray_nbd_connections", "gauge", "NBD connections open, by host adaptor.");
  for (size_t i = 0; i < servers.size(); ++i) {
    w.Sample("simarray_nbd_connections", MetricsWriter::Label("adaptor", servers[i]->id()),
             counters[i].connections_open);
  }
  w.Family("simarray_nbd_connection_events_total", "counter",
           "NBD connections by event: accepted, refused (over the limit), protocol_error "
           "(closed for breaking the protocol), write_dropped (lost mid-payload).");
  for (size_t i = 0; i < servers.size(); ++i) {
    const std::string ha = MetricsWriter::Label("adaptor", servers[i]->id());
    const std::pair<const char*, uint64_t> events[] = {
        {"accepted", counters[i].connections_accepted},
        {"refused", counters[i].connections_refused},
        {"protocol_error", counters[i].protocol_errors},
        {"write_dropped", counters[i].writes_dropped}};
    for (const auto& [event, n] : events) {
      w.Sample("simarray_nbd_connection_events_total",
               Join(ha, MetricsWriter::Label("event", event)), n);
    }
  }
}

void Queue(MetricsWriter& w, mirror::MirrorQueue& queue) {
  mirror::QueueCounters q = queue.Counters();
  w.Single("simarray_mirror_queue_depth", "gauge", "Validated mirror requests queued to ship.",
           q.depth);
  w.Single("simarray_mirror_queue_peak", "gauge", "Highest mirror queue depth since start.",
           q.peak);
  w.Single("simarray_mirror_queue_reserved", "gauge",
           "Mirror queue places reserved by host writes in progress.", q.reserved);
  w.Single("simarray_mirror_queue_capacity", "gauge", "Places in the mirror queue.", q.capacity);
  w.Single("simarray_mirror_queue_pushed_total", "counter", "Mirror requests queued.", q.pushed);
}

// Each group's SRDF state and its volume pairs' (docs/groups.md): 1 for the current state.
void Groups(MetricsWriter& w, Array& a) {
  std::vector<std::pair<std::string, GroupState>> states;
  for (const auto& g : a.groups()) states.emplace_back(g->name(), StateOfGroup(a, *g));
  w.Family("simarray_group_state", "gauge",
           "RDF group state by SRDF's name (the rollup of its volume pairs): 1 for the current.");
  for (const auto& [name, state] : states) {
    for (const remote::SrdfState s : remote::kSrdfStates) {
      w.Sample("simarray_group_state",
               Join(MetricsWriter::Label("group", name),
                    MetricsWriter::Label("state", std::string(remote::SrdfStateName(s)))),
               uint64_t{state.state == s});
    }
  }
  w.Family("simarray_volume_pair_state", "gauge",
           "A volume pair's state by SRDF's name: 1 for the current (others are not listed).");
  for (const auto& [name, state] : states) {
    for (const VolumePairState& vp : state.volumes) {
      w.Sample(
          "simarray_volume_pair_state",
          Join(Join(MetricsWriter::Label("group", name), MetricsWriter::Label("volume", vp.volume)),
               MetricsWriter::Label("state", std::string(remote::SrdfStateName(vp.state)))),
          uint64_t{1});
    }
  }
}

void Link(MetricsWriter& w, Array& a) {
  remote::RemoteAdaptor& ra = *a.remote();
  remote::LinkCounters l = ra.Counters();
  w.Family("simarray_link_state", "gauge", "Peer link state: 1 for the current state.");
  for (remote::LinkState state : remote::kLinkStates) {
    w.Sample("simarray_link_state",
             MetricsWriter::Label("state", std::string(remote::LinkStateName(state))),
             uint64_t{l.state == state});
  }
  w.Single("simarray_link_up", "gauge", "1 while the peer link is up.",
           uint64_t{l.state == remote::LinkState::kUp});
  w.Family("simarray_link_records_total", "counter",
           "Records on the peer link by event: shipped, acked, refused (bad CRC on the way, "
           "resent), failed, degraded (dropped to owed tracks).");
  const std::pair<const char*, uint64_t> events[] = {{"shipped", l.records_shipped},
                                                     {"acked", l.records_acked},
                                                     {"refused", l.records_refused},
                                                     {"failed", l.records_failed},
                                                     {"degraded", l.records_degraded}};
  for (const auto& [event, n] : events) {
    w.Sample("simarray_link_records_total", MetricsWriter::Label("event", event), n);
  }
  w.Single("simarray_link_messages_total", "counter",
           "Ship messages sent to the mirror (records per message is the batching).",
           l.messages_shipped);
  w.Single("simarray_link_bytes_shipped_total", "counter", "Data bytes shipped to the mirror.",
           l.bytes_shipped);
  w.Single("simarray_link_records_in_flight", "gauge", "Records shipped and not yet acked.",
           l.in_flight);
  w.Single("simarray_link_records_in_flight_peak", "gauge", "Highest records in flight.",
           l.in_flight_peak);
  const std::tuple<const char*, const char*, uint64_t> counters[] = {
      {"simarray_link_ack_timeouts_total", "Acks overdue past link.ack_timeout.", l.ack_timeouts},
      {"simarray_link_heartbeat_timeouts_total", "Heartbeat replies overdue.",
       l.heartbeat_timeouts},
      {"simarray_link_connects_total", "Times the link came up.", l.connects},
      {"simarray_link_losses_total", "Times the link went down.", l.link_losses},
      {"simarray_link_auth_failures_total",
       "Hellos the peer refused, or whose reply did not prove the secret.", l.auth_failures},
      {"simarray_resyncs_started_total", "Resyncs of owed tracks started.", l.resyncs_started},
      {"simarray_resyncs_completed_total", "Resyncs of owed tracks completed.",
       l.resyncs_completed}};
  for (const auto& [name, help, n] : counters) {
    w.Family(name, "counter", help);
    w.Sample(name, "", n);
  }
  w.Single("simarray_resyncing", "gauge", "1 while owed tracks are being resynced.",
           uint64_t{l.resyncing});
  w.Single("simarray_mirror_applied_sequence", "gauge",
           "Highest sequence the mirror reported applied.", l.mirror_applied_sequence);
  w.Family("simarray_ship_latency_seconds", "histogram",
           "Time from shipping a record to the mirror's ack of it.");
  w.Histograms("simarray_ship_latency_seconds", "", ra.ship_latency().Read());
}

void Owed(MetricsWriter& w, mirror::OwedTracks& owed) {
  w.Single("simarray_owed_tracks", "gauge", "Tracks written but not known to be on the mirror.",
           owed.owed());
  w.Single("simarray_resync_pending_tracks", "gauge", "Owed tracks waiting to be resynced.",
           owed.resync_pending());
  w.Single("simarray_resync_tracks_total", "counter", "Tracks resynced to the mirror.",
           owed.tracks_resynced());
}

}  // namespace

std::string MetricsWriter::Label(const std::string& key, const std::string& value) {
  return absl::StrCat(key, "=\"", Escape(value), "\"");
}

void MetricsWriter::Family(const std::string& name, const std::string& type,
                           const std::string& help) {
  std::string escaped;
  for (char c : help) {
    if (c == '\\') {
      escaped += "\\\\";
    } else if (c == '\n') {
      escaped += "\\n";
    } else {
      escaped += c;
    }
  }
  absl::StrAppend(&text_, "# HELP ", name, " ", escaped, "\n# TYPE ", name, " ", type, "\n");
}

void MetricsWriter::Sample(const std::string& name, const std::string& labels, double value) {
  absl::StrAppend(&text_, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ",
                  Number(value), "\n");
}

void MetricsWriter::Sample(const std::string& name, const std::string& labels, uint64_t value) {
  absl::StrAppend(&text_, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"), " ", value,
                  "\n");
}

void MetricsWriter::Histograms(const std::string& name, const std::string& labels,
                               const simarray::Histogram::Snapshot& s) {
  for (size_t i = 0; i < s.cumulative.size(); ++i) {
    const std::string le = i < s.bounds.size() ? Number(s.bounds[i]) : "+Inf";
    Sample(name + "_bucket", Join(labels, Label("le", le)), s.cumulative[i]);
  }
  Sample(name + "_sum", labels, s.sum);
  Sample(name + "_count", labels, s.count);
}

std::string RenderMetrics(Array& a) {
  MetricsWriter w;
  w.Family("simarray_info", "gauge", "This daemon: name, role, mode and pair state (always 1).");
  w.Sample("simarray_info",
           Join(Join(MetricsWriter::Label("daemon", a.config().name),
                     MetricsWriter::Label("role", a.role())),
                Join(MetricsWriter::Label("mode", a.config().mode),
                     MetricsWriter::Label("pair_state",
                                          std::string(remote::PairStateName(a.pair_state()))))),
           uint64_t{1});
  w.Single("simarray_sequence", "gauge", "Last sequence number given to a committed write.",
           a.cache().LastSequence());

  cache::SlotCounts slots = a.cache().Counts();
  w.Family("simarray_cache_slots", "gauge", "Cache slots by state.");
  const std::pair<const char*, uint64_t> states[] = {{"free", slots.free},
                                                     {"clean", slots.clean},
                                                     {"write_pending", slots.write_pending},
                                                     {"staging", slots.staging},
                                                     {"shipping", slots.shipping}};
  for (const auto& [state, n] : states) {
    w.Sample("simarray_cache_slots", MetricsWriter::Label("state", state), n);
  }
  w.Single("simarray_cache_slot_capacity", "gauge", "Cache slots in all.", slots.total);
  w.Single("simarray_cache_copied_bytes_total", "counter",
           "Bytes commits copied into track images (written ranges, and copy-on-write fills).",
           a.cache().bytes_copied());
  w.Single("simarray_destage_tracks_total", "counter",
           "Track images destaged to the backing files.", a.disk().tracks_destaged());
  w.Single("simarray_destage_bytes_total", "counter",
           "Bytes the destage wrote to the backing files (dirty 4 KiB blocks only).",
           a.disk().bytes_destaged());
  w.Single("simarray_backing_store_errors_total", "counter",
           "Writes and syncs of backing files that failed (the tracks stayed in cache).",
           a.disk().health().errors());
  w.Single("simarray_backing_store_recoveries_total", "counter",
           "Failed backing stores that took a destage again.", a.disk().health().recoveries());
  w.Family("simarray_backing_store_failed", "gauge",
           "1 for each volume whose backing store is failing (docs/storage-faults.md).");
  for (const disk::StoreFailure& f : a.disk().health().Failures()) {
    w.Sample("simarray_backing_store_failed",
             MetricsWriter::Label("volume", f.volume) + "," +
                 MetricsWriter::Label("op", disk::DiskOpName(f.op)) + "," +
                 MetricsWriter::Label("error", strerror(f.error)),
             uint64_t{1});
  }

  Host(w, a);
  Nbd(w, a);
  if (a.queue() != nullptr) Queue(w, *a.queue());
  if (a.owed() != nullptr) Owed(w, *a.owed());
  if (a.remote() != nullptr) Link(w, a);
  if (a.group() != nullptr) Groups(w, a);
  if (a.config().mode == "async") Cycles(w, a);

  remote::RecordApplier& applier = a.applier();
  w.Single("simarray_records_applied_total", "counter",
           "Records received from a primary and applied to this daemon's cache.",
           applier.records_applied());
  w.Single("simarray_records_skipped_total", "counter",
           "Records received from a primary and skipped (older than what the track holds).",
           applier.records_skipped());
  w.Single("simarray_applied_sequence", "gauge", "Highest sequence applied from a primary.",
           applier.applied_sequence());
  w.Single("simarray_host_streams_cancelled_total", "counter",
           "Host write streams cancelled by their client.", a.streams_cancelled());
  w.Family("simarray_calls_refused_total", "counter",
           "Calls refused for authentication: admin (missing or wrong token), peer (no "
           "session, or a bad Hello).");
  w.Sample("simarray_calls_refused_total", MetricsWriter::Label("service", "admin"),
           a.admin_service().refusals());
  w.Sample("simarray_calls_refused_total", MetricsWriter::Label("service", "peer"),
           a.peer_gate().refusals());
  return std::move(w.text());
}

}  // namespace simarray::daemon
