// An NBD port's figures (simarray/base/figures.h): its connections and what it closed.
#include "simarray/nbd/nbd_server.h"

namespace simarray::nbd {

void Describe(const NbdCounters& c, FigureSink& sink) {
  sink.Add({"simarray_nbd_connections", FigureKind::kGauge,
            "NBD connections open, by host adaptor.", "connections_open"},
           c.connections_open);
  constexpr std::string_view kEvents = "simarray_nbd_connection_events_total";
  constexpr std::string_view kHelp =
      "NBD connections by event: accepted, refused (over the limit), protocol_error (closed for "
      "breaking the protocol), write_dropped (lost mid-payload).";
  constexpr FigureKind kCounter = FigureKind::kCounter;
  sink.Add({kEvents, kCounter, kHelp, "connections_accepted", "event", "accepted"},
           c.connections_accepted);
  sink.Add({kEvents, kCounter, kHelp, "connections_refused", "event", "refused"},
           c.connections_refused);
  sink.Add({kEvents, kCounter, kHelp, "protocol_errors", "event", "protocol_error"},
           c.protocol_errors);
  sink.Add({kEvents, kCounter, kHelp, "writes_dropped", "event", "write_dropped"},
           c.writes_dropped);
}

}  // namespace simarray::nbd
