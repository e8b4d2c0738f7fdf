// RemoteAdaptor: async mode — which records go out next, and what the cycles did.
#include "absl/time/clock.h"
#include "simarray/remote/remote_adaptor.h"
#include "spdlog/spdlog.h"

namespace simarray::remote {

void RemoteAdaptor::FillAsync(bool resyncing) {
  LogCycleEvents();
  if (!cycles_->cycling() && commit_->ResumeCycles(options_.route)) {
    spdlog::info("remote adaptor: cycles resume at cycle {} ({} tracks left to resync)",
                 cycles_->Counters().capture_cycle, owed_->resync_pending());
  }
  if (commit_->SwitchCycle(options_.route)) {
    const mirror::CycleCounters c = cycles_->Counters();
    spdlog::debug("remote adaptor: cycle {} closed: {} tracks, {} bytes to ship", c.transmit_cycle,
                  c.transmit_tracks, c.transmit_bytes);
  }
  const size_t from_cycle =
      Fill([this](size_t max) { return cycles_->TakeTransmit(max); }, Origin::kCycle);
  // Resync records go out beside cycles, except while a cycle closed consistent is in
  // transit: it makes the mirror claim the primary's image at its boundary, and a resync
  // record applied while it is staged could be newer than that boundary. (Beside a cycle
  // that is not consistent they are safe: a resync image read after the switch is stamped
  // at or above the boundary, so the cycle's older record for that track is skipped.)
  if (from_cycle == 0 && resyncing && !cycles_->ConsistentTransmitOutstanding()) FillResync();
}

void RemoteAdaptor::LogCycleEvents() {
  const uint64_t pull_aheads = cycles_->pull_aheads();  // every batch: the cheap read
  if (pull_aheads == pull_aheads_seen_) return;
  pull_aheads_seen_ = pull_aheads;
  spdlog::warn(
      "remote adaptor: the cycles pinned more than {} cache slots; pulled ahead to owed "
      "tracks (resync, then cycles again)",
      cycles_->Counters().slot_limit);
}

}  // namespace simarray::remote
