#include "daemon/event_watcher.h"

#include <map>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"

namespace simarray::daemon {
namespace {
constexpr absl::Duration kSampleEvery = absl::Milliseconds(20);
constexpr absl::Duration kProgressEvery = absl::Seconds(1);

std::string Plural(uint64_t n, const char* what) {
  return absl::StrCat(n, " ", what, n == 1 ? "" : "s");
}
}  // namespace

EventWatcher::EventWatcher(std::function<void(v1::StatusReply*)> sample, EventLog* log,
                           EventCount* changes)
    : sample_(std::move(sample)), log_(log), changes_(changes) {}

EventWatcher::~EventWatcher() { Stop(); }

void EventWatcher::Start() {
  thread_ = std::thread([this] { Run(); });
}

void EventWatcher::Stop() {
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (changes_ != nullptr) changes_->Notify();  // ends its wait now
  if (thread_.joinable()) thread_.join();
}

void EventWatcher::Run() {
  // Each token is taken before the sample it follows: a change during a sample ends the
  // next wait at once.
  uint64_t token = changes_ != nullptr ? changes_->Token() : 0;
  v1::StatusReply before;
  sample_(&before);
  State("role", "array", "", before.role(), absl::StrCat("started as ", before.role()));
  State("pair_state", "pair", "", before.pair_state());
  for (;;) {
    if (changes_ != nullptr) {
      changes_->WaitSince(token, absl::Now() + kSampleEvery);
    } else {
      stop_.WaitForNotificationWithTimeout(kSampleEvery);
    }
    if (stop_.HasBeenNotified()) return;
    token = changes_ != nullptr ? changes_->Token() : 0;
    v1::StatusReply now;
    sample_(&now);
    Compare(before, now);
    before = std::move(now);
  }
}

void EventWatcher::State(const char* kind, const std::string& subject, const std::string& previous,
                         const std::string& value, std::string detail) {
  Event e;
  e.kind = kind;
  e.subject = subject;
  e.previous = previous;
  e.value = value;
  e.detail = detail.empty() ? (previous.empty() ? value : absl::StrCat(previous, " -> ", value))
                            : std::move(detail);
  log_->Publish(std::move(e));
}

void EventWatcher::Compare(const v1::StatusReply& a, const v1::StatusReply& b) {
  if (a.role() != b.role()) State("role", "array", a.role(), b.role());

  const v1::LinkStatus& la = a.link();
  const v1::LinkStatus& lb = b.link();
  const uint64_t losses = lb.link_losses() - la.link_losses();
  if (la.state() != lb.state() || losses > 1) {
    State("link", "link", la.state(), lb.state(),
          losses > 0 ? absl::StrCat(la.state(), " -> ", lb.state(), " (", Plural(losses, "loss"),
                                    " since the last sample)")
                     : "");
  }
  // By the counters, so that a resync shorter than a sample still shows.
  if (lb.resyncs_started() > la.resyncs_started()) {
    resync_reported_ = absl::Now();
    State("resync", "link", "idle", "running",
          absl::StrCat("resync started: ", Plural(lb.resync_pending(), "track"), " to ship"));
  }
  if (lb.resyncs_completed() > la.resyncs_completed()) {
    State("resync", "link", "running", "idle",
          absl::StrCat("resync done: ", Plural(lb.tracks_resynced(), "track"),
                       " resent since start"));
  } else if (lb.resyncing() && absl::Now() - resync_reported_ >= kProgressEvery) {
    resync_reported_ = absl::Now();
    Event e;
    e.kind = "resync";
    e.subject = "link";
    e.value = "running";
    e.detail = absl::StrFormat("resync: %d tracks pending, %.0f tracks/s, %.1f s left",
                               lb.resync_pending(), lb.resync_tracks_per_second(),
                               lb.resync_seconds_left());
    log_->Publish(std::move(e));
  }

  // After the link and the resync that moved it, so the events read in causal order.
  if (a.pair_state() != b.pair_state()) State("pair_state", "pair", a.pair_state(), b.pair_state());
  // The groups' SRDF states (docs/groups.md), by group name.
  for (const v1::GroupStatus& g : b.groups()) {
    std::string was;
    for (const v1::GroupStatus& before : a.groups()) {
      if (before.name() == g.name()) was = before.state();
    }
    if (was != g.state()) {
      State("group_state", g.name(), was, g.state(),
            absl::StrCat("RDF group ", g.name(), " (", g.role(), ") is ", g.state()));
    }
  }

  const v1::CycleStatus& ca = a.cycles();
  const v1::CycleStatus& cb = b.cycles();
  if (cb.cycles_switched() > ca.cycles_switched()) {
    State("cycle", "cycles", "", "switched",
          absl::StrCat("switched to capture cycle ", cb.capture_cycle(), "; transmitting ",
                       cb.transmit_cycle(), " (", Plural(cb.transmit_tracks(), "track"), ")"));
  }
  if (cb.cycles_applied() > ca.cycles_applied()) {
    State("cycle", "cycles", "", "applied",
          absl::StrCat("applied cycle ", cb.applied_cycle(), " through sequence ",
                       cb.applied_sequence()));
  }
  if (cb.pull_aheads() > ca.pull_aheads()) {
    State("pull_ahead", "cycles", "", "owed",
          absl::StrCat("cycles pinned ", cb.pinned_slots(), " of ", cb.slot_limit(),
                       " slots: pulled ahead to owed tracks"));
  }

  for (int i = 0; i < b.pens_size() && i < a.pens_size(); ++i) {
    for (const auto& [reason, count] : b.pens(i).invalid_writes()) {
      auto it = a.pens(i).invalid_writes().find(reason);
      const uint64_t was = it == a.pens(i).invalid_writes().end() ? 0 : it->second;
      if (count <= was) continue;
      State("invalid_write", b.pens(i).host_adaptor(), "", reason,
            absl::StrCat(Plural(count - was, "write"), " refused: ", reason,
                         "; its mirror requests deleted from the pen"));
    }
  }

  std::map<std::string, const v1::BackingStoreFailure*> failed_before;
  for (const auto& f : a.failed_backing_stores()) failed_before[f.volume()] = &f;
  for (const auto& f : b.failed_backing_stores()) {
    if (failed_before.erase(f.volume()) == 0) {
      State("backing_store", f.volume(), "ok", "failed",
            absl::StrCat("backing store failed: ", f.op(), ": ", f.error(), "; ",
                         Plural(f.tracks_waiting(), "write-pending track"), " held in cache"));
    }
  }
  for (const auto& [volume, f] : failed_before) {
    State("backing_store", volume, "failed", "ok",
          absl::StrCat("backing store recovered after ", Plural(f->failures(), "failed attempt")));
  }
}

}  // namespace simarray::daemon
