#include "simarray/mirror/commit_point.h"

#include <algorithm>
#include <bit>

namespace simarray::mirror {

namespace {

absl::Status Closed() {
  return absl::FailedPreconditionError(
      "this daemon stopped being the source of the volume's RDF group while the write was in "
      "progress; nothing of it was committed");
}

// A second request for the same portion, for another route: the same range and pins.
MirrorRequest Share(cache::CacheMemory* cache, const MirrorRequest& r) {
  MirrorRequest out;
  out.key = r.key;
  out.slot = r.slot;
  out.offset = r.offset;
  out.length = r.length;
  out.write_id = r.write_id;
  out.sequence = r.sequence;
  out.write_continues = r.write_continues;
  if (r.data.valid()) out.data = cache->AddRef(r.data.slot());
  out.ticket = r.ticket;
  return out;
}

}  // namespace

void CommitPoint::SetRoute(uint32_t index, CommitRoute route) {
  absl::MutexLock lock(&mu_);
  if (route.queue != nullptr) {
    routes_[index] = route;
    routes_set_.fetch_or(1u << index, std::memory_order_release);
  } else {
    // Its pointers stay readable until the array ends (a deleted group is only retired).
    routes_set_.fetch_and(~(1u << index), std::memory_order_release);
  }
}

uint32_t CommitPoint::WaitingPortions(uint32_t portions, uint32_t groups) const {
  uint32_t sync = 0;
  for (uint32_t bits = groups & routes(); bits != 0; bits &= bits - 1) {
    sync += waits_for_mirror(std::countr_zero(bits)) ? 1 : 0;
  }
  return portions * sync;
}

absl::Duration CommitPoint::TakePacingDelay(uint32_t groups) const {
  absl::Duration delay;
  for (uint32_t bits = groups & routes(); bits != 0; bits &= bits - 1) {
    if (CycleSet* cycles = routes_[std::countr_zero(bits)].cycles; cycles != nullptr) {
      delay = std::max(delay, cycles->TakePacingDelay());
    }
  }
  return delay;
}

bool CommitPoint::OpenFor(uint32_t groups) const { return (closed_ & groups) == 0; }

absl::StatusOr<uint64_t> CommitPoint::Commit(uint64_t write_id, std::vector<Portion>& portions,
                                             HoldingPen& pen, Reservations& reservations,
                                             std::shared_ptr<WriteTicket> ticket, uint32_t groups) {
  absl::MutexLock lock(&mu_);
  if (!OpenFor(groups)) return Closed();
  return PublishAndQueue(portions, pen.Release(write_id), reservations, std::move(ticket), groups);
}

absl::StatusOr<uint64_t> CommitPoint::Commit(uint64_t write_id, std::vector<Portion>& portions,
                                             HoldingPen& pen, Reservation& reservation,
                                             std::shared_ptr<WriteTicket> ticket) {
  Reservations reservations;
  reservations[0] = std::move(reservation);
  return Commit(write_id, portions, pen, reservations, std::move(ticket), 1);
}

absl::StatusOr<uint64_t> CommitPoint::CommitUnpenned(std::vector<Portion>& portions,
                                                     std::vector<MirrorRequest> requests,
                                                     Reservations& reservations,
                                                     std::shared_ptr<WriteTicket> ticket,
                                                     uint32_t groups) {
  absl::MutexLock lock(&mu_);
  if (!OpenFor(groups)) return Closed();
  return PublishAndQueue(portions, std::move(requests), reservations, std::move(ticket), groups);
}

absl::StatusOr<uint64_t> CommitPoint::CommitUnpenned(std::vector<Portion>& portions,
                                                     std::vector<MirrorRequest> requests,
                                                     Reservation& reservation,
                                                     std::shared_ptr<WriteTicket> ticket) {
  Reservations reservations;
  reservations[0] = std::move(reservation);
  return CommitUnpenned(portions, std::move(requests), reservations, std::move(ticket), 1);
}

absl::StatusOr<uint64_t> CommitPoint::CommitLocal(std::vector<Portion>& portions,
                                                  const std::atomic<uint32_t>& groups) {
  absl::MutexLock lock(&mu_);
  const uint64_t sequence = cache_->NextSequence();
  const uint32_t joined = groups.load() & routes();
  for (Portion& p : portions) {
    const cache::TrackKey key = p.staged.key();
    for (uint32_t bits = joined; bits != 0; bits &= bits - 1) {
      if (OwedTracks* owed = routes_[std::countr_zero(bits)].owed; owed != nullptr) {
        owed->MarkWritten(key, sequence);
      }
    }
    (void)cache_->Publish(std::move(p.staged), p.offset, p.length, sequence, joined != 0,
                          cache::Keep::kNothing);
    for (uint32_t bits = joined; bits != 0; bits &= bits - 1) {
      if (OwedTracks* owed = routes_[std::countr_zero(bits)].owed; owed != nullptr) {
        owed->NeedResync(key);
      }
    }
  }
  return sequence;
}

bool CommitPoint::PublishForwarded(cache::StagedSlot staged, uint32_t offset, uint32_t length,
                                   uint64_t sequence, cache::TrackRange changed, uint32_t groups,
                                   bool write_continues) {
  absl::MutexLock lock(&mu_);
  cache_->ObserveSequence(sequence);
  groups &= routes() & ~closed_;
  const cache::TrackKey key = staged.key();
  bool async = false;
  for (uint32_t bits = groups; bits != 0; bits &= bits - 1) {
    const CommitRoute& route = routes_[std::countr_zero(bits)];
    if (route.owed != nullptr) route.owed->MarkWritten(key, sequence);
    async |= route.cycles != nullptr;
  }
  cache::Published published =
      cache_->Publish(std::move(staged), offset, length, sequence, groups != 0,
                      async ? cache::Keep::kImage : cache::Keep::kNothing, changed);
  if (published.applied) {
    for (uint32_t bits = groups; bits != 0; bits &= bits - 1) {
      const CommitRoute& route = routes_[std::countr_zero(bits)];
      if (route.cycles != nullptr) {
        held_.push_back(HeldCapture{route.cycles, route.owed, key, sequence, changed.offset,
                                    changed.length, cache_->AddRef(published.kept.slot())});
      } else if (route.owed != nullptr) {
        route.owed->NeedResync(key);  // a sync route ships the whole track (docs/groups.md)
      }
    }
  }
  held_groups_ |= groups;
  if (write_continues) return published.applied;
  // The write's last record: all of it joins the capture cycles at once.
  for (HeldCapture& h : held_) {
    h.cycles->Capture(h.key, h.sequence, h.offset, h.length, std::move(h.image));
  }
  held_.clear();
  NotePassage(held_groups_, sequence);
  held_groups_ = 0;
  return published.applied;
}

void CommitPoint::DropOpenForward() {
  absl::MutexLock lock(&mu_);
  for (HeldCapture& h : held_) {
    if (h.owed != nullptr) h.owed->NeedResync(h.key);
  }
  held_.clear();
  held_groups_ = 0;
}

void CommitPoint::NotePassage(uint32_t groups, uint64_t sequence) {
  for (uint32_t bits = groups & by_passage_; bits != 0; bits &= bits - 1) {
    uint64_t& passed = passed_[std::countr_zero(bits)];
    passed = std::max(passed, sequence);
  }
  passed_since_start_ |= groups & by_passage_;
}

void CommitPoint::Close(uint32_t route) {
  absl::MutexLock lock(&mu_);
  closed_ |= 1u << route;
}

void CommitPoint::Open(uint32_t route) {
  absl::MutexLock lock(&mu_);
  closed_ &= ~(1u << route);
}

bool CommitPoint::SwitchCycle(uint32_t route) {
  std::vector<std::function<void()>> wake;
  {
    absl::MutexLock lock(&mu_);
    CycleSet* cycles = routes_[route].cycles;
    if (cycles == nullptr) return false;
    const bool by_passage = (by_passage_ & (1u << route)) != 0;
    const uint64_t boundary = by_passage ? passed_[route] : cache_->LastSequence();
    // A cascaded route's boundary covers this array's image only once something passed it
    // since the start: its source numbers every later record above what this array holds.
    const bool may_be_consistent = !by_passage || (passed_since_start_ & (1u << route)) != 0;
    if ((together_ & (1u << route)) == 0) {
      return cycles->Switch(boundary, /*on_time=*/true, may_be_consistent);
    }
    // The set switches when this route is due and every one of them can: one boundary.
    if (cycles->NextSwitch() > absl::Now()) return false;
    for (uint32_t bits = together_; bits != 0; bits &= bits - 1) {
      if (!routes_[std::countr_zero(bits)].cycles->CanSwitch()) return false;
    }
    for (uint32_t bits = together_; bits != 0; bits &= bits - 1) {
      const int r = std::countr_zero(bits);
      (void)routes_[r].cycles->Switch(boundary, /*on_time=*/false, may_be_consistent);
      if (r != static_cast<int>(route) && wake_[r]) wake.push_back(wake_[r]);
    }
  }
  for (auto& w : wake) w();  // the others ship their new transmit cycles
  return true;
}

void CommitPoint::SwitchTogether(uint32_t routes) {
  absl::MutexLock lock(&mu_);
  for (uint32_t bits = routes; bits != 0; bits &= bits - 1) {
    if (routes_[std::countr_zero(bits)].cycles != nullptr) together_ |= bits & -bits;
  }
}

void CommitPoint::SetRouteWake(uint32_t route, std::function<void()> wake) {
  absl::MutexLock lock(&mu_);
  wake_[route] = std::move(wake);
}

void CommitPoint::NumberByPassage(uint32_t route, bool covered) {
  absl::MutexLock lock(&mu_);
  by_passage_ |= 1u << route;
  if (covered) passed_since_start_ |= 1u << route;
}

void CommitPoint::ObserveRouteSequence(uint32_t route, uint64_t sequence) {
  absl::MutexLock lock(&mu_);
  passed_[route] = std::max(passed_[route], sequence);
}

bool CommitPoint::ResumeCycles(uint32_t route) {
  absl::MutexLock lock(&mu_);
  CycleSet* cycles = routes_[route].cycles;
  return cycles != nullptr && cycles->Resume();
}

uint64_t CommitPoint::PublishAndQueue(std::vector<Portion>& portions,
                                      std::vector<MirrorRequest> requests,
                                      Reservations& reservations,
                                      std::shared_ptr<WriteTicket> ticket, uint32_t groups) {
  const uint64_t sequence = cache_->NextSequence();
  groups &= routes();
  // What the routes need kept of each portion: an async route the track's image as of this
  // write (its cycle ships it later), a sync route only the write's bytes, which the image
  // holds too. Requests come in portion order, one per portion.
  uint32_t async_routes = 0, sync_routes = 0;
  for (uint32_t bits = groups; bits != 0; bits &= bits - 1) {
    ++(routes_[std::countr_zero(bits)].cycles != nullptr ? async_routes : sync_routes);
  }
  const bool ships = sync_routes != 0 && !requests.empty();
  const cache::Keep keep = async_routes != 0 ? cache::Keep::kImage
                           : ships           ? cache::Keep::kWriteBytes
                                             : cache::Keep::kNothing;
  for (size_t i = 0; i < portions.size(); ++i) {
    Portion& p = portions[i];
    const cache::TrackKey key = p.staged.key();
    for (uint32_t bits = groups; bits != 0; bits &= bits - 1) {
      if (OwedTracks* owed = routes_[std::countr_zero(bits)].owed; owed != nullptr) {
        owed->MarkWritten(key, sequence);
      }
    }
    if ((groups & by_passage_) != 0) NotePassage(groups, sequence);
    cache::Published published =
        cache_->Publish(std::move(p.staged), p.offset, p.length, sequence, groups != 0, keep);
    // Who takes the pin: each async route's cycle (which ships the image later; the host is
    // answered after this commit), then the portion's request. The last one takes it, the
    // others a pin of their own.
    uint32_t takers = async_routes + (ships && i < requests.size() ? 1 : 0);
    for (uint32_t bits = groups; bits != 0 && async_routes != 0; bits &= bits - 1) {
      CycleSet* cycles = routes_[std::countr_zero(bits)].cycles;
      if (cycles == nullptr) continue;
      cycles->Capture(
          key, sequence, p.offset, p.length,
          --takers != 0 ? cache_->AddRef(published.kept.slot()) : std::move(published.kept));
    }
    if (i < requests.size()) {
      requests[i].write_continues = i + 1 < requests.size();
      requests[i].sequence = sequence;
      requests[i].ticket = ticket;
      requests[i].slot = published.image_slot;
      requests[i].data = std::move(published.kept);
    }
  }
  // Each sync route gets the write's requests in the places its reservation holds: the
  // last one the requests themselves, any other a share of them.
  for (uint32_t bits = groups; bits != 0 && sync_routes != 0; bits &= bits - 1) {
    const int r = std::countr_zero(bits);
    if (routes_[r].cycles != nullptr) continue;
    if (--sync_routes == 0) {
      routes_[r].queue->Push(reservations[r], std::move(requests));
      break;
    }
    std::vector<MirrorRequest> shared;
    shared.reserve(requests.size());
    for (const MirrorRequest& request : requests) shared.push_back(Share(cache_, request));
    routes_[r].queue->Push(reservations[r], std::move(shared));
  }
  for (Reservation& reservation : reservations) reservation.Reset();
  return sequence;
}

}  // namespace simarray::mirror
