#include "daemon/array.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <optional>

#include "absl/strings/str_cat.h"
#include "daemon/admin_service.h"
#include "daemon/event_watcher.h"
#include "daemon/metrics.h"
#include "daemon/status_report.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "simarray/base/state_file.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

// Builds and starts one server on `listen`; the bound address goes to `bound`.
absl::StatusOr<std::unique_ptr<grpc::Server>> Serve(const std::string& listen,
                                                    std::vector<grpc::Service*> services,
                                                    uint64_t max_write, std::string* bound,
                                                    const rpc::TlsConfig& tls = {}) {
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(listen, rpc::ServerCredentials(tls), &port);
  rpc::ConfigureServer(builder, max_write);
  for (grpc::Service* s : services) builder.RegisterService(s);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen));
  }
  *bound = absl::StrCat(listen.substr(0, listen.rfind(':')), ":", port);
  return server;
}

}  // namespace

Array::Array(DaemonConfig config) : config_(std::move(config)) {}

Array::~Array() { Shutdown(); }

absl::Status Array::OpenStorage() {
  std::error_code ec;
  std::filesystem::create_directories(config_.data_dir, ec);
  if (ec) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot create data_dir ", config_.data_dir, ": ", std::string(ec.message())));
  }
  const std::string lock_path = config_.data_dir + "/LOCK";
  data_dir_lock_ = open(lock_path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0644);
  if (data_dir_lock_ < 0 || flock(data_dir_lock_, LOCK_EX | LOCK_NB) != 0) {
    return absl::FailedPreconditionError(absl::StrCat("data_dir ", config_.data_dir,
                                                      " is in use by another simarrayd (",
                                                      lock_path, " is locked)"));
  }
  // Only this daemon writes here now: what a state file write cut short by a crash left
  // behind goes (docs/reliability.md, "State files").
  if (auto removed = RemoveStaleTempFiles(config_.data_dir); !removed.ok()) {
    spdlog::warn("{}", std::string(removed.status().message()));
  } else if (*removed > 0) {
    spdlog::info("removed {} temporary files of state file writes cut short", *removed);
  }
  cache::CacheOptions co;
  co.path = config_.data_dir + "/cache.region";
  co.size = config_.cache_size;
  co.track_size = config_.track_size;
  co.persistent = config_.cache_persistent;
  co.pen_records =
      config_.holding_pen == "cache" ? config_.queue_capacity * config_.host_adaptors.size() : 0;
  co.role = config_.role == "mirror" ? cache::Role::kMirror : cache::Role::kPrimary;
  // Async mirror: a cycle noted as being applied when the daemon stopped is redone from its
  // sealed slots in cache (docs/async.md).
  journal_ = std::make_unique<remote::CycleJournal>(config_.data_dir + "/cycles.journal");
  remote::CycleNote note;
  if (auto read = journal_->Read(); read.ok()) {
    note = *read;
  } else {
    spdlog::error("{}; the mirror's image is not known to be a cycle boundary",
                  std::string(read.status().message()));
  }
  if (note.applying.cycle != 0) {
    co.redo_write_id = remote::CycleJournal::WriteIdOf(note.applying.cycle);
  }
  cache::RecoveryReport report;
  auto cache = cache::CacheMemory::Open(co, &report);
  if (!cache.ok()) return cache.status();
  cache_ = std::move(*cache);
  pen_records_dropped_ = report.pen_records_dropped;
  cache_fresh_ = report.fresh;
  if (note.applying.cycle != 0) {
    const bool redone = !report.fresh && cache_->persistent();
    spdlog::warn("cycle journal: cycle {} was being applied when the daemon stopped; {}",
                 note.applying.cycle,
                 redone ? absl::StrCat("redone from cache (", report.redone, " tracks)")
                        : std::string("cannot be redone (the cache is not persistent)"));
    note.applied = note.applying;
    note.applied.consistent = note.applying.consistent && redone;
    redo_cycle_ = note.applying.cycle;  // its paged-out records are redone in Start
    note.applying = {};
    redo_note_ = note;
  }
  // Without a persistent cache, what was applied but not destaged is gone.
  if (report.fresh || !cache_->persistent()) note.applied.consistent = false;
  journal_applied_ = note.applied;
  // The role in the config applies at first start; afterwards the region's header rules.
  is_primary_ = static_cast<cache::Role>(cache_->region().header().role) == cache::Role::kPrimary;
  if (report.fresh) {
    spdlog::info("cache memory: new region, {} slots of {} bytes ({})", cache_->slot_count(),
                 cache_->track_size(), cache_->persistent() ? "persistent" : "write-through");
  } else {
    spdlog::info(
        "cache memory: recovered {} write-pending and {} clean tracks; dropped {} staged "
        "portions and {} pen records of uncommitted writes, {} superseded images, {} torn "
        "entries; {} tracks still owed to the mirror; sequence resumes after {}",
        report.write_pending, report.clean, report.staging_dropped, report.pen_records_dropped,
        report.superseded, report.torn_entries, report.mirror_owed.size(), cache_->LastSequence());
  }
  auto volumes = disk::VolumeCatalog::Open(config_.data_dir, config_.track_size);
  if (!volumes.ok()) return volumes.status();
  volumes_ = std::move(*volumes);
  disk_ = std::make_unique<disk::DiskAdaptor>(cache_.get(), volumes_.get());
  cache_->SetBackingStore(disk_.get());
  disk_->Start();
  return absl::OkStatus();
}

absl::Status Array::CreateConfiguredVolumes() {
  for (const VolumeConfig& v : config_.volumes) {
    if (volumes_->Find(v.name).ok()) continue;  // created at an earlier start
    auto created = CreateVolume(v.name, v.size, /*group=*/"", /*local=*/false);
    if (!created.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("config ", config_.path, ": volume ", v.name,
                                                     ": ",
                                                     std::string(created.status().message())));
    }
  }
  return absl::OkStatus();
}

absl::Status Array::OpenTargetSpill() {
  if (config_.dse_max_size != 0) {
    auto dse = mirror::DeltaSetExtension::Open(config_.data_dir + "/dse-r2.spill",
                                               config_.dse_max_size, config_.track_size,
                                               /*keep=*/true);
    if (!dse.ok()) {
      return absl::FailedPreconditionError(
          absl::StrCat("config ", config_.path, ": key dse.max_size: ", dse.status().message()));
    }
    target_dse_ = *std::move(dse);
    applier_->SetSpill(
        target_dse_.get(),
        std::max<uint64_t>(1, cache_->slot_count() * config_.cycle_cache_percent / 100));
  }
  // dse.max_size removed since a stop mid-apply: the file still holds the cycle's paged-out
  // records, which are redone all the same; then it goes.
  std::unique_ptr<mirror::DeltaSetExtension> redo_only;
  const std::string spill_path = config_.data_dir + "/dse-r2.spill";
  if (target_dse_ == nullptr && redo_cycle_ != 0) {
    std::error_code ec;
    const uint64_t size = std::filesystem::file_size(spill_path, ec);
    if (!ec && size != 0) {
      auto dse = mirror::DeltaSetExtension::Open(spill_path, size + 64 + config_.track_size,
                                                 config_.track_size, /*keep=*/true);
      if (!dse.ok()) return dse.status();
      redo_only = *std::move(dse);
      applier_->SetSpill(redo_only.get(), 0);
    }
  }
  if (redo_cycle_ != 0) {
    absl::StatusOr<uint64_t> redone = applier_->RedoSpilled(redo_cycle_);
    if (!redone.ok()) {
      spdlog::error("cycle journal: cycle {}: its paged-out records cannot be redone: {}",
                    redo_cycle_, std::string(redone.status().message()));
      redo_note_.applied.consistent = false;
    } else if (*redone != 0) {
      spdlog::warn(
          "cycle journal: cycle {}: {} paged-out tracks redone from the delta set extension",
          redo_cycle_, *redone);
    }
    if (absl::Status s = journal_->Write(redo_note_); !s.ok()) return s;
    if (!redo_note_.applied.consistent) applier_->ForgetBoundary();
  }
  if (target_dse_ != nullptr) target_dse_->Clear();
  if (redo_only != nullptr) applier_->SetSpill(nullptr, 0);
  if (target_dse_ == nullptr) {  // no extension now: a file left from one means nothing
    redo_only.reset();
    std::error_code ec;
    std::filesystem::remove(spill_path, ec);
  }
  return absl::OkStatus();
}

absl::StatusOr<BoundAddresses> Array::Start() {
  if (absl::Status s = OpenStorage(); !s.ok()) return s;
  commit_ = std::make_unique<mirror::CommitPoint>(cache_.get());
  applier_ = std::make_unique<remote::RecordApplier>(cache_.get(), volumes_.get(), journal_.get(),
                                                     &faults_, journal_applied_);
  if (absl::Status s = OpenGoldCopy(); !s.ok()) return s;
  if (absl::Status s = OpenTargetSpill(); !s.ok()) return s;
  if (absl::Status s = OpenGroups(); !s.ok()) return s;
  // Promoted, and stopped before the gold copy was published back: it is published now.
  if (gold_ != nullptr && gold_->held() && inbound_group() == nullptr) PublishGoldBack(nullptr);

  BoundAddresses bound;
  host::ArrayParts parts;
  parts.cache = cache_.get();
  parts.volumes = volumes_.get();
  parts.disk = disk_.get();
  parts.commit = commit_.get();
  parts.faults = &faults_;
  parts.image_lock = &applier_->image_lock();
  if (gold_ != nullptr) {
    parts.gold_image = [gold = gold_.get(), track_size = config_.track_size](
                           cache::TrackKey key,
                           std::vector<uint8_t>* track) -> absl::StatusOr<bool> {
      if (!gold->held() || !gold->Holds(key)) return false;
      track->resize(track_size);
      return gold->Read(key, *track);
    };
  }
  parts.admit_write = [this](const disk::Volume& volume) { return AdmitWrite(volume); };
  parts.pacer = &pacer_;
  if (config_.holding_pen == "bypass") {
    spdlog::warn(
        "holding_pen = \"bypass\": writes skip the holding pen and are NOT validated (a "
        "corrupt write is committed and mirrored); for measuring the pen's cost only");
  }
  for (size_t i = 0; i < config_.host_adaptors.size(); ++i) {
    const HostAdaptorConfig& hc = config_.host_adaptors[i];
    host::HostAdaptorOptions ho;
    ho.id = hc.id;
    ho.index = static_cast<uint32_t>(i + 1);
    ho.max_write = config_.max_write;
    ho.pen_placement = config_.holding_pen == "cache" ? mirror::PenPlacement::kCache
                                                      : mirror::PenPlacement::kLocal;
    ho.pen_capacity = config_.queue_capacity;
    ho.first_pen_record = i * config_.queue_capacity;
    ho.bypass_pen = config_.holding_pen == "bypass";
    ho.workers = config_.host_workers;
    ho.wait_limit = absl::Milliseconds(config_.host_wait_ms);
    hosts_.push_back(std::make_unique<host::HostAdaptor>(ho, parts));
    host_services_.push_back(
        std::make_unique<host::GrpcHostService>(hosts_.back().get(), disk_.get()));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  for (size_t i = 0; i < hosts_.size(); ++i) {
    std::string addr;
    if (config_.host_adaptors[i].protocol == "nbd") {
      nbd::NbdServerOptions no;
      no.listen = config_.host_adaptors[i].listen;
      nbd::NbdServerParts np{hosts_[i].get(), volumes_.get(), disk_.get(), config_.track_size,
                             [this](const std::string& volume) { return AcceptsWrites(volume); }};
      nbd_servers_.push_back(std::make_unique<nbd::NbdServer>(no, np));
      auto nbd_addr = nbd_servers_.back()->Start();
      if (!nbd_addr.ok()) return nbd_addr.status();
      bound.host_adaptors[hosts_[i]->id()] = *nbd_addr;
      spdlog::info("host adaptor {}: nbd on {}", hosts_[i]->id(), *nbd_addr);
      continue;
    }
    auto server =
        Serve(config_.host_adaptors[i].listen, {host_services_[i].get()}, config_.max_write, &addr);
    if (!server.ok()) return server.status();
    servers_.push_back(std::move(*server));
    bound.host_adaptors[hosts_[i]->id()] = addr;
    spdlog::info("host adaptor {}: grpc on {}", hosts_[i]->id(), addr);
  }
  peer_gate_ = std::make_unique<remote::PeerGate>(config_.peer_secret);
  remote::PeerServiceParts pp = PeerParts();
  peer_service_ = std::make_unique<remote::PeerServiceImpl>(pp);
  auto peer = Serve(config_.peer_listen, {peer_service_.get()}, config_.max_write, &bound.peer,
                    config_.peer_tls);
  if (!peer.ok()) return peer.status();
  servers_.push_back(std::move(*peer));
  spdlog::info("remote adaptor port (PeerService) on {}", bound.peer);

  admin_service_ = std::make_unique<AdminServiceImpl>(this, config_.admin_token);
  auto admin = Serve(config_.admin_listen, {admin_service_.get()}, config_.max_write, &bound.admin);
  if (!admin.ok()) return admin.status();
  servers_.push_back(std::move(*admin));
  spdlog::info("admin service on {}", bound.admin);

  if (!config_.metrics_listen.empty()) {
    http_ = std::make_unique<HttpServer>(config_.metrics_listen);
    http_->Route("GET", "/metrics", [this](const HttpRequest&, HttpServer::Respond respond) {
      respond(HttpReply{200, "text/plain; version=0.0.4; charset=utf-8", RenderMetrics(*this), {}});
    });
    console_ = std::make_unique<Console>(*this, bound.admin);
    console_->Mount(*http_);
    auto http = http_->Start();
    if (!http.ok()) return http.status();
    bound.metrics = *http;
    console_->Start();
    spdlog::info("metrics on http://{}/metrics, the console on http://{}/", bound.metrics,
                 bound.metrics);
  }

  peer_address_ = config_.peer_advertise.empty() ? bound.peer : config_.peer_advertise;
  for (auto& g : groups_) {
    g->remote()->SetSelfAddress(peer_address_);
    RestoreFailedOver(*g);
    RestoreSplit(*g);
    if (g->source()) g->remote()->Start();
  }
  if (absl::Status s = CreateConfiguredVolumes(); !s.ok()) return s;
  watcher_ = std::make_unique<EventWatcher>(
      [this](v1::StatusReply* out) { FillStatus(*this, out, /*slot_counts=*/false); }, &events_,
      group() ? &remote()->state_changes() : nullptr);
  watcher_->Start();
  spdlog::info("{} is serving as {} ({} mode{})", config_.name, role(), config_.mode,
               config_.mode == "async" ? absl::StrCat(", cycle_ms=", config_.cycle_ms) : "");
  for (auto& g : groups_) {
    spdlog::info("RDF group {} (number {}, {} mode): {}", g->name(), g->config().number,
                 g->config().mode,
                 g->source() ? absl::StrCat("source (R1), mirroring to ", g->peer_address())
                             : "target (R2)");
  }
  return bound;
}

void Array::Shutdown() {
  if (stopped_) return;
  stopped_ = true;
  if (watcher_) watcher_->Stop();  // before what it samples goes away
  events_.Close();                 // event watchers end
  if (console_) console_->Stop();  // its streams end before the HTTP port stops
  if (http_) http_->Stop();        // before what it reads goes away
  pacer_.Stop();                   // paced writes are answered now, so their calls can end
  // Stop accepting, drain, then destroy (reverse of Start).
  for (auto& server : servers_)
    server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(2));
  for (auto& nbd : nbd_servers_) nbd->Stop();  // destroyed with the Array, after the pools
  for (auto& g : groups_) g->Shutdown();
  for (auto& h : hosts_) h->pool().Stop();
  for (auto& server : servers_) server->Wait();
  if (disk_) disk_->Stop();
  if (cache_) (void)cache_->region().Sync();
  if (data_dir_lock_ >= 0) close(data_dir_lock_);
}

remote::PairState Array::pair_state() {
  if (groups_.empty()) {
    remote::PairFacts facts;
    facts.has_peer = false;
    return remote::ComputePairState(facts);
  }
  return pair_state(*groups_.front());
}

remote::PairState Array::pair_state(RdfGroup& group) {
  remote::PairFacts facts;
  if (!group.source()) {
    facts.primary = false;
    facts.receiving = peer_service_->open_streams() != 0;
    facts.async = group.async();
    facts.applied_consistent = applier_->consistent();
  } else {
    facts = group.remote()->Facts();
    facts.split_brain |= peer_service_->split_brain_refusals() > split_brain_seen_;
    facts.failed_over = group.failed_over();
    facts.split = group.split() != SplitSide::kNone;
  }
  return remote::ComputePairState(facts);
}

uint64_t Array::streams_cancelled() {
  uint64_t n = 0;
  for (auto& s : host_services_) n += s->streams_cancelled();
  return n;
}

}  // namespace simarray::daemon
