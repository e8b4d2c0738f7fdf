#include "daemon/rdf_group.h"

#include <filesystem>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "simarray/base/state_file.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

constexpr char kFailedOverText[] = "failed over: changes are recorded, nothing is shipped\n";

}  // namespace

RdfGroup::RdfGroup(GroupConfig config, GroupParts parts, uint32_t index)
    : config_(std::move(config)),
      parts_(std::move(parts)),
      index_(index),
      source_(config_.role == "R1"),
      state_dir_(config_.StateDir(parts_.data_dir)) {}

void RdfGroup::ReadRole(bool initial) {
  source_ = initial;
  if (index_ == 0) return;  // the daemon's role, in the cache region's header
  std::ifstream in(state_dir_ + "/role");
  std::string side;
  if (in >> side) source_ = side == "R1";
  std::ifstream generation_in(state_dir_ + "/peer.generation");
  uint64_t generation = 0;
  if (generation_in >> generation) peer_generation_ = generation;
}

uint64_t RdfGroup::peer_generation() {
  return index_ == 0 ? parts_.cache->peer_generation() : peer_generation_.load();
}

void RdfGroup::SetPeerGeneration(uint64_t generation) {
  if (index_ == 0) return parts_.cache->SetPeerGeneration(generation);
  if (absl::Status s = WriteFileAtomically(state_dir_ + "/peer.generation",
                                           absl::StrCat(generation, "\n"), 0644);
      !s.ok()) {
    // Forgotten at a restart, the next pairing copies the group's volumes whole again.
    spdlog::error("group {}: {}", config_.name, std::string(s.message()));
  }
  peer_generation_ = generation;
}

absl::Status RdfGroup::SetSource(bool source) {
  if (index_ != 0) {
    if (absl::Status s = WriteFileAtomically(state_dir_ + "/role", source ? "R1\n" : "R2\n", 0644);
        !s.ok()) {
      return s;
    }
  }
  source_ = source;
  return absl::OkStatus();
}

RdfGroup::~RdfGroup() { Shutdown(); }

void RdfGroup::LoadLearnedPeer() {
  const std::string path = state_dir_ + "/peer.address";
  std::ifstream in(path);
  if (!in) return;  // never paired with a source yet
  std::string address;
  uint64_t generation = 0;
  if (!(in >> address >> generation)) {
    spdlog::error("{}: expected \"ADDRESS GENERATION\", cannot read it: the peer is not known",
                  path);
    return;
  }
  absl::MutexLock lock(&mu_);
  learned_peer_ = address;
  learned_generation_ = generation;
}

absl::Status RdfGroup::Open() {
  std::error_code ec;
  std::filesystem::create_directories(state_dir_, ec);
  if (ec) {
    return absl::FailedPreconditionError(absl::StrCat("group ", config_.name, ": cannot create ",
                                                      state_dir_, ": ", std::string(ec.message())));
  }
  queue_ = std::make_unique<mirror::MirrorQueue>(parts_.queue_capacity);
  owed_ = std::make_unique<mirror::OwedTracks>(state_dir_);
  const uint64_t track_size = parts_.cache->track_size();
  for (const disk::VolumeInfo& v : parts_.volumes->List()) {
    if (!disk::InGroup(v, config_.name)) continue;  // local, or another group's
    if (absl::Status s = owed_->AddVolume(v.id, v.size / track_size); !s.ok()) return s;
  }
  if (owed_->owed() != 0) {
    spdlog::info("group {}: {} tracks are owed to the remote array from before the restart",
                 config_.name, owed_->owed());
  }
  if (async()) {
    const uint64_t limit =
        std::max<uint64_t>(1, parts_.cache->slot_count() * config_.cycle_cache_percent / 100);
    cycles_ = std::make_unique<mirror::CycleSet>(parts_.cache, owed_.get(),
                                                 absl::Milliseconds(config_.cycle_ms), limit);
    cycles_->SetPacing(config_.pacing);
    if (config_.dse_max_size != 0) {
      auto dse = mirror::DeltaSetExtension::Open(state_dir_ + "/dse-r1.spill", config_.dse_max_size,
                                                 track_size, /*keep=*/false);
      if (!dse.ok()) {
        return absl::FailedPreconditionError(
            absl::StrCat("group ", config_.name, ": dse.max_size: ", dse.status().message()));
      }
      dse_ = *std::move(dse);
      cycles_->SetSpill(dse_.get());
    }
  }
  return absl::OkStatus();
}

void RdfGroup::Wire(mirror::CommitPoint* commit) {
  commit->SetRoute(index_, mirror::CommitRoute{queue_.get(), owed_.get(), cycles_.get()});
  remote::RemoteAdaptorOptions ro;
  ro.daemon_id = parts_.daemon_name;
  ro.group = config_.name;
  ro.route = index_;
  ro.mode = config_.mode;
  ro.cycle_cache_percent = config_.cycle_cache_percent;
  ro.peer_address = peer_address();
  ro.max_write = parts_.max_write;
  ro.ack_timeout = absl::Milliseconds(config_.ack_timeout_ms);
  ro.emulation = config_.link_emulation;
  ro.resync_max_rate = config_.resync_max_rate;
  ro.fail_writes_when_down = config_.link_policy == "fail";
  ro.secret = parts_.peer_secret;
  ro.tls = parts_.peer_tls;
  ro.role = [this] { return role(); };
  ro.peer_generation = [this] { return peer_generation(); };
  ro.set_peer_generation = [this](uint64_t generation) { SetPeerGeneration(generation); };
  remote_ =
      std::make_unique<remote::RemoteAdaptor>(ro, parts_.cache, queue_.get(), owed_.get(),
                                              parts_.volumes, parts_.disk, parts_.faults, commit);
  commit->SetRouteWake(index_, [remote = remote_.get()] { remote->Wake(); });
}

void RdfGroup::Shutdown() {
  if (queue_) queue_->Close();
  if (remote_) remote_->Stop();
}

std::string RdfGroup::peer_address() {
  return config_.peer_address.empty() ? learned_peer() : config_.peer_address;
}

std::string RdfGroup::learned_peer() {
  absl::MutexLock lock(&mu_);
  return learned_peer_;
}

uint64_t RdfGroup::learned_generation() {
  absl::MutexLock lock(&mu_);
  return learned_generation_;
}

absl::Status RdfGroup::LearnPeer(const std::string& address, uint64_t generation) {
  {
    absl::MutexLock lock(&mu_);
    if (address.empty() || (address == learned_peer_ && generation == learned_generation_)) {
      return absl::OkStatus();
    }
    if (absl::Status s = WriteFileAtomically(state_dir_ + "/peer.address",
                                             absl::StrCat(address, " ", generation, "\n"), 0644);
        !s.ok()) {
      return s;  // what was learned before stays, on disk and here
    }
    learned_peer_ = address;
    learned_generation_ = generation;
  }
  if (remote_) remote_->SetPeerAddress(address);  // ignored while it ships
  return absl::OkStatus();
}

std::string RdfGroup::FailedOverPath() const { return state_dir_ + "/failed_over"; }

bool RdfGroup::ReadFailedOver() {
  failed_over_ = std::filesystem::exists(FailedOverPath());
  return failed_over_;
}

absl::Status RdfGroup::SetFailedOver(bool failed_over) {
  const std::string marker = FailedOverPath();
  absl::Status persisted =
      failed_over ? WriteFileAtomically(marker, kFailedOverText, 0644) : RemoveFileDurably(marker);
  if (!persisted.ok()) return persisted;
  failed_over_ = failed_over;
  return absl::OkStatus();
}

std::string RdfGroup::SplitPath() const { return state_dir_ + "/split"; }

SplitSide RdfGroup::ReadSplit() {
  std::ifstream in(SplitPath());
  std::string side;
  split_ = !(in >> side) ? SplitSide::kNone : side == "R2" ? SplitSide::kR2 : SplitSide::kR1;
  return split_;
}

absl::Status RdfGroup::SetSplit(SplitSide side) {
  absl::Status persisted =
      side == SplitSide::kNone
          ? RemoveFileDurably(SplitPath())
          : WriteFileAtomically(SplitPath(), side == SplitSide::kR1 ? "R1\n" : "R2\n", 0644);
  if (!persisted.ok()) return persisted;
  split_ = side;
  return absl::OkStatus();
}

}  // namespace simarray::daemon
