#include "daemon/array_figures.h"

#include "daemon/admin_service.h"

namespace simarray::daemon {

void DescribeCycles(Array& a, RdfGroup* group, FigureSink& sink) {
  const bool source = group != nullptr && group->source() && group->cycles() != nullptr;
  remote::DescribeCycles(a.applier(), /*target=*/!source, sink);
  if (source) {
    mirror::Describe(group->cycles()->Counters(), sink);
  } else if (a.target_dse() != nullptr) {
    mirror::Describe(a.target_dse()->Counters(), sink);  // what the target stages
  }
  // Held on a target; after a promotion it still tells what was published back.
  if (a.gold() != nullptr && (group == a.group() || group == a.inbound_group())) {
    remote::Describe(a.gold()->Counters(), sink);
  }
}

void DescribeArray(Array& a, FigureSink& sink, bool slot_counts) {
  constexpr FigureKind kCounter = FigureKind::kCounter;
  sink.Add({"simarray_sequence", FigureKind::kGauge,
            "Last sequence number given to a committed write.", "sequence"},
           a.cache().LastSequence());
  {
    FigureScope cache(sink, {.field = "cache"});
    cache::Describe(a.cache(), slot_counts ? a.cache().Counts() : cache::SlotCounts{}, sink);
    disk::Describe(a.disk(), sink);
    sink.Add({"simarray_pen_records_dropped", FigureKind::kGauge,
              "Pen records of writes uncommitted at the last stop, dropped by this start's "
              "recovery (holding_pen = \"cache\").",
              "pen_records_dropped"},
             a.pen_records_dropped());
  }
  for (const auto& ha : a.host_adaptors()) {
    FigureScope pen(sink, {.field = "pens",
                           .label = "adaptor",
                           .label_value = ha->id(),
                           .key_field = "host_adaptor"});
    host::Describe(ha->Counters(), sink);
    mirror::Describe(ha->pen().Counters(), sink);
  }
  for (const auto& server : a.nbd_servers()) {
    FigureScope port(sink, {.field = "nbd",
                            .label = "adaptor",
                            .label_value = server->id(),
                            .key_field = "host_adaptor"});
    nbd::Describe(server->Counters(), sink);
  }
  if (a.queue() != nullptr) mirror::Describe(a.queue()->Counters(), sink);
  if (a.remote() != nullptr) {
    mirror::Describe(*a.owed(), sink);
    FigureScope link(sink, {.field = "link"});
    remote::Describe(a.remote()->Counters(), sink);
  }
  if (a.config().mode == "async") {
    FigureScope cycles(sink, {.field = "cycles"});
    DescribeCycles(a, a.group(), sink);
  }
  remote::Describe(a.applier(), sink);
  sink.Add({"simarray_host_streams_cancelled_total", kCounter,
            "Host write streams cancelled by their client.", "writes_cancelled"},
           a.streams_cancelled());
  constexpr std::string_view kRefused = "simarray_calls_refused_total";
  constexpr std::string_view kRefusedHelp =
      "Calls refused for authentication: admin (missing or wrong token), peer (no session, or "
      "a bad Hello).";
  sink.Add({kRefused, kCounter, kRefusedHelp, "admin_calls_refused", "service", "admin"},
           a.admin_service().refusals());
  sink.Add({kRefused, kCounter, kRefusedHelp, "peer_calls_refused", "service", "peer"},
           a.peer_gate().refusals());
}

}  // namespace simarray::daemon
