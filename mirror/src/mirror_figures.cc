// The figures (simarray/base/figures.h) of the holding pen, the mirror queue, the owed
// tracks and the async cycles.
#include "simarray/base/figures.h"
#include "simarray/mirror/cycle_set.h"
#include "simarray/mirror/holding_pen.h"
#include "simarray/mirror/mirror_queue.h"
#include "simarray/mirror/owed_tracks.h"

namespace simarray::mirror {
namespace {
constexpr FigureKind kCounter = FigureKind::kCounter;
constexpr FigureKind kGauge = FigureKind::kGauge;
}  // namespace

void Describe(const PenCounters& c, FigureSink& sink) {
  sink.Add({"simarray_pen_depth", kGauge,
            "Mirror requests waiting in the host adaptor's holding pen for their write to "
            "validate.",
            "depth"},
           c.depth);
  constexpr std::string_view kRequests = "simarray_pen_requests_total";
  constexpr std::string_view kHelp =
      "Holding pen requests by event: buffered, sent (to the mirror queue) or deleted "
      "(invalid write).";
  sink.Add({kRequests, kCounter, kHelp, "requests_buffered", "event", "buffered"},
           c.requests_buffered);
  sink.Add({kRequests, kCounter, kHelp, "requests_sent", "event", "sent"}, c.requests_sent);
  sink.Add({kRequests, kCounter, kHelp, "requests_deleted", "event", "deleted"},
           c.requests_deleted);
}

void Describe(const QueueCounters& c, FigureSink& sink) {
  sink.Add({"simarray_mirror_queue_depth", kGauge, "Validated mirror requests queued to ship.",
            "queue_depth"},
           c.depth);
  sink.Add({"simarray_mirror_queue_peak", kGauge, "Highest mirror queue depth since start.",
            "queue_peak"},
           c.peak);
  sink.Add({"simarray_mirror_queue_reserved", kGauge,
            "Mirror queue places reserved by host writes in progress.", "queue_reserved"},
           c.reserved);
  sink.Add(
      {"simarray_mirror_queue_capacity", kGauge, "Places in the mirror queue.", "queue_capacity"},
      c.capacity);
  sink.Add(
      {"simarray_mirror_queue_pushed_total", kCounter, "Mirror requests queued.", "queue_pushed"},
      c.pushed);
}

void Describe(OwedTracks& owed, FigureSink& sink) {
  sink.Add({"simarray_owed_tracks", kGauge, "Tracks written but not known to be on the mirror.",
            "owed_tracks"},
           owed.owed());
  sink.Add({"simarray_resync_pending_tracks", kGauge, "Owed tracks waiting to be resynced.",
            "link.resync_pending"},
           owed.resync_pending());
  sink.Add({"simarray_resync_tracks_total", kCounter, "Tracks resynced to the mirror.",
            "link.tracks_resynced"},
           owed.tracks_resynced());
}

void Describe(const SpillCounters& c, FigureSink& sink) {
  sink.Add({"simarray_dse_tracks", FigureKind::kGauge,
            "Track images of async cycles paged out to the delta set extension now.", "dse_tracks"},
           c.chunks_used);
  sink.Add({"simarray_dse_bytes", FigureKind::kGauge,
            "Bytes of the track images in the delta set extension now.", "dse_bytes"},
           c.bytes_held);
  sink.Add({"simarray_dse_spilled_bytes_total", FigureKind::kCounter,
            "Bytes of track images paged out to the delta set extension.", "dse_bytes_spilled"},
           c.bytes_spilled);
  sink.Add({"simarray_dse_capacity_tracks", FigureKind::kGauge,
            "Track images the delta set extension holds at most (0: none, dse.max_size).",
            "dse_capacity"},
           c.chunks);
}

void Describe(const CycleCounters& c, FigureSink& sink) {
  sink.Add(kMirrorConsistentFigure, c.consistent);
  sink.Add({kCycleNumber, kGauge, kCycleNumberHelp, "capture_cycle", "cycle", "capture"},
           c.capture_cycle);
  sink.Add({kCycleNumber, kGauge, kCycleNumberHelp, "transmit_cycle", "cycle", "transmit"},
           c.transmit_cycle);
  sink.Add(kAppliedCycleFigure, c.applied_cycle);
  constexpr std::string_view kBytes = "simarray_cycle_bytes";
  constexpr std::string_view kBytesHelp = "Bytes the capture and transmit cycles will ship.";
  sink.Add({kBytes, kGauge, kBytesHelp, "capture_bytes", "cycle", "capture"}, c.capture_bytes);
  sink.Add({kBytes, kGauge, kBytesHelp, "transmit_bytes", "cycle", "transmit"}, c.transmit_bytes);
  constexpr std::string_view kTracks = "simarray_cycle_tracks";
  constexpr std::string_view kTracksHelp = "Tracks in the capture and transmit cycles.";
  sink.Add({kTracks, kGauge, kTracksHelp, "capture_tracks", "cycle", "capture"}, c.capture_tracks);
  sink.Add({kTracks, kGauge, kTracksHelp, "transmit_tracks", "cycle", "transmit"},
           c.transmit_tracks);
  sink.Add(kCycleAppliedSequenceFigure, c.applied_sequence);
  sink.Add({"simarray_cycle_seconds_behind", kGauge,
            "Age of the mirror's image: seconds since the switch of the last cycle it applied.",
            "seconds_behind"},
           c.seconds_behind);
  sink.Add({"simarray_cycles_switched_total", kCounter, "Async cycle switches.", "cycles_switched"},
           c.cycles_switched);
  sink.Add(
      {"simarray_writes_captured_total", kCounter, "Writes captured in cycles.", "writes_captured"},
      c.writes_captured);
  sink.Add({"simarray_writes_folded_total", kCounter,
            "Writes to a track already in the capture cycle: shipped once with the later data.",
            "writes_folded"},
           c.writes_folded);
  sink.Add({"simarray_cycle_records_shipped_total", kCounter,
            "Data records taken from transmit cycles.", "cycle_records_shipped"},
           c.cycle_records_shipped);
  sink.Add({"simarray_pull_aheads_total", kCounter,
            "Times the cycles pinned too much cache and fell back to owed tracks.", "pull_aheads"},
           c.pull_aheads);
  sink.Add({"simarray_cycle_pinned_slots", kGauge,
            "Cache slots the capture and transmit cycles pin.", "pinned_slots"},
           c.pinned_slots);
  sink.Add({"simarray_cycle_slot_limit", kGauge,
            "Most cache slots the cycles may pin before they pull ahead (cycle_cache_percent).",
            "slot_limit"},
           c.slot_limit);
  sink.Add({"simarray_pacing_threshold_tracks", kGauge,
            "Write pacing starts when the cycles hold more tracks than this (0: pacing off).",
            "pacing_threshold"},
           c.pacing_threshold);
  sink.Add(
      {"simarray_pacing_delay_us", kGauge,
       "How long write pacing holds back the reply to a write committed now.", "pacing_delay_us"},
      c.pacing_delay_us);
  sink.Add({"simarray_writes_paced_total", kCounter,
            "Async writes whose reply write pacing held back.", "writes_paced"},
           c.writes_paced);
  sink.Add({"simarray_pacing_delay_seconds_total", kCounter,
            "Time write pacing held replies back, summed over the writes paced.", "pacing_seconds"},
           c.pacing_seconds);
  Describe(c.dse, sink);
  sink.Add({"simarray_cycles_cycling", kGauge,
            "1 while writes go to cycles; 0 while they go to owed tracks (link down, pulled "
            "ahead)."},
           c.cycling);
}

}  // namespace simarray::mirror
