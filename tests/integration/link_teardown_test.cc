// The peer link torn down under many sync writes in flight (docs/pair.md): admin suspend,
// the drop-link fault, a TCP cut between the daemons, and kill -9 of the mirror, in turn,
// while writers keep 48 Write calls outstanding. Every call must come back (a deadline far
// above any legitimate wait only catches hangs) with OK or, under link.policy "fail",
// UNAVAILABLE; a write acknowledged as mirrored must read back from the mirror; and once the
// pair is synchronized again the mirror equals the primary.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <vector>

#include "daemon_process.h"
#include "simarray/rpc/rpc.h"
#include "tcp_proxy.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kTracks = 32;
constexpr uint64_t kBlock = 4096;
constexpr int kWriters = 48;
// Each track: blocks 4..11 are owned (one writer each, so the writer knows what the block
// holds); the rest is shared, written at random by every writer, often across the boundary
// to the next track (one write, two mirror records).
constexpr uint64_t kOwnedPerTrack = 8;
constexpr uint64_t kOwnedBlocks = kTracks * kOwnedPerTrack;
constexpr auto kHang = std::chrono::seconds(30);

uint64_t OwnedOffset(uint64_t owned) {
  return (owned / kOwnedPerTrack) * kTrack + (4 + owned % kOwnedPerTrack) * kBlock;
}

std::string OwnedData(uint64_t owned, uint32_t version) {
  return Pattern(kBlock, static_cast<uint32_t>(owned * 1000003 + version));
}

uint64_t TracksTouched(uint64_t offset, uint64_t length) {
  return (offset + length - 1) / kTrack - offset / kTrack + 1;
}

// What the writers saw, and what they found wrong.
struct Tally {
  std::atomic<uint64_t> mirrored{0};          // OK, mirrored = true
  std::atomic<uint64_t> unmirrored{0};        // OK, mirrored = false
  std::atomic<uint64_t> mirrored_records{0};  // records of the mirrored writes
  std::atomic<uint64_t> committed_records{0};
  std::atomic<uint64_t> refused{0};             // UNAVAILABLE before the commit
  std::atomic<uint64_t> failed_committed{0};    // UNAVAILABLE, committed and owed
  std::atomic<uint64_t> verified_on_mirror{0};  // mirrored writes read back from the mirror
  std::mutex mu;
  std::vector<std::string> problems;  // anything that must not happen
  void Problem(const std::string& what) {
    std::lock_guard lock(mu);
    if (problems.size() < 20) problems.push_back(what);
  }
};

// Per owned block: the last version acknowledged (0: none) and later versions whose write
// failed after its commit (they may be what the block holds).
struct OwnedModel {
  std::vector<uint32_t> acked = std::vector<uint32_t>(kOwnedBlocks, 0);
  std::vector<std::vector<uint32_t>> in_doubt = std::vector<std::vector<uint32_t>>(kOwnedBlocks);
};

// The mirror's host service, swapped by the driver when the mirror restarts (its host port
// changes); writers take a reference that stays valid while they use it.
class MirrorHost {
 public:
  void Set(const std::string& address) {
    auto stub = v1::HostService::NewStub(rpc::MakeChannel(address, 64 << 20));
    std::lock_guard lock(mu_);
    stub_ = std::shared_ptr<v1::HostService::Stub>(std::move(stub));
  }
  std::shared_ptr<v1::HostService::Stub> Get() {
    std::lock_guard lock(mu_);
    return stub_;
  }

 private:
  std::mutex mu_;
  std::shared_ptr<v1::HostService::Stub> stub_;
};

grpc::Status TimedWrite(v1::HostService::Stub& host, uint64_t offset, const std::string& data,
                        v1::WriteReply* reply) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kHang);
  v1::WriteRequest request;
  request.set_volume("vol");
  request.set_offset(offset);
  request.set_data(data);
  request.set_crc32c(Crc(data));
  return host.Write(&context, request, reply);
}

// A read that may fail (the mirror may be down); nullopt then.
std::optional<std::string> TryRead(v1::HostService::Stub& host, uint64_t offset, uint64_t length) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  v1::ReadRequest request;
  request.set_volume("vol");
  request.set_offset(offset);
  request.set_length(length);
  v1::ReadReply reply;
  if (!host.Read(&context, request, &reply).ok()) return std::nullopt;
  return reply.data();
}

// Writer `w`: alternates a shared write (random range of 512 B to 8 KiB in the 32 KiB window
// around a track boundary) and a write of one of its own blocks; after an own block comes
// back mirrored, reads it from the mirror, where it must be.
void Writer(int w, v1::HostService::Stub& primary, MirrorHost& mirror, OwnedModel& model,
            Tally& tally, std::atomic<bool>& stop) {
  std::mt19937_64 random(w * 7919 + 1);
  std::vector<uint64_t> mine;
  for (uint64_t b = w; b < kOwnedBlocks; b += kWriters) mine.push_back(b);
  std::vector<uint32_t> next(kOwnedBlocks, 1);
  for (uint64_t i = 0; !stop; ++i) {
    const bool own = i % 2 == 1;
    uint64_t offset, block = 0;
    uint32_t version = 0;
    std::string data;
    if (own) {
      block = mine[(i / 2) % mine.size()];
      version = next[block]++;
      offset = OwnedOffset(block);
      data = OwnedData(block, version);
    } else {
      const uint64_t window = (random() % (kTracks - 1)) * kTrack + 48 * 1024;
      const uint64_t length = 512 + random() % (8 * 1024 - 512);
      offset = window + random() % (32 * 1024 - length);
      data = Pattern(length, static_cast<uint32_t>(w * 1000000 + i));
    }
    v1::WriteReply reply;
    const auto started = std::chrono::steady_clock::now();
    const grpc::Status s = TimedWrite(primary, offset, data, &reply);
    const uint64_t records = TracksTouched(offset, data.size());
    if (s.ok()) {
      tally.committed_records += records;
      if (reply.mirrored()) {
        ++tally.mirrored;
        tally.mirrored_records += records;
      } else {
        ++tally.unmirrored;
      }
      if (own) {
        model.acked[block] = version;
        model.in_doubt[block].clear();
      }
      if (own && reply.mirrored()) {
        // Nobody else writes this block: the mirror holds this version until our next write.
        if (auto stub = mirror.Get()) {
          if (auto got = TryRead(*stub, offset, kBlock)) {
            ++tally.verified_on_mirror;
            if (*got != data) {
              tally.Problem("block " + std::to_string(block) + " version " +
                            std::to_string(version) +
                            " was acknowledged mirrored but the mirror holds other bytes");
            }
          }
        }
      }
    } else if (s.error_code() == grpc::StatusCode::UNAVAILABLE) {
      if (s.error_message().find("committed on this array") != std::string::npos) {
        ++tally.failed_committed;
        tally.committed_records += records;
        if (own) model.in_doubt[block].push_back(version);
      } else {
        ++tally.refused;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    } else {
      const auto waited = std::chrono::duration_cast<std::chrono::milliseconds>(
          std::chrono::steady_clock::now() - started);
      tally.Problem("write at " + std::to_string(offset) + " (" + std::to_string(data.size()) +
                    " bytes) ended " + std::to_string(s.error_code()) + " after " +
                    std::to_string(waited.count()) + " ms: " + s.error_message());
      if (own) model.in_doubt[block].push_back(version);
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
}

bool LinkIs(Daemon& primary, const std::string& state) {
  return primary.Status().link().state() == state;
}

void TeardownRounds(const std::string& policy, std::chrono::seconds run) {
  TempDir dir;
  DaemonOptions mirror_options;
  mirror_options.role = "mirror";
  Daemon mirror(dir.path() + "/mirror", mirror_options);
  mirror.Start();
  TcpProxy proxy(mirror.peer_address(), /*capture=*/false);
  DaemonOptions primary_options;
  primary_options.peer_address = proxy.address();
  primary_options.link_policy = policy;
  primary_options.ack_timeout_ms = 3000;
  Daemon primary(dir.path() + "/primary", primary_options);
  primary.Start();
  REQUIRE(Eventually([&] { return LinkIs(primary, "up"); }));
  {
    v1::VolumeInfo info;
    REQUIRE(CreateVolumeCall(primary, "vol", kTracks * kTrack, &info).ok());
    REQUIRE(info.paired());
  }
  REQUIRE(WaitPairState(primary, "Synchronized"));
  const v1::StatusReply before = primary.Status();

  MirrorHost mirror_host;
  mirror_host.Set(mirror.host_address());
  OwnedModel model;
  Tally tally;
  std::atomic<bool> stop{false};
  std::vector<std::thread> writers;
  // A failed REQUIRE below must still stop and join the writers (each returns within kHang).
  struct JoinWriters {
    std::atomic<bool>& stop;
    std::vector<std::thread>& threads;
    ~JoinWriters() {
      stop = true;
      for (auto& t : threads) {
        if (t.joinable()) t.join();
      }
    }
  } join_writers{stop, writers};
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] { Writer(w, primary.host(), mirror_host, model, tally, stop); });
  }

  // Rounds until `run` has passed: let mirrored writes flow, then tear the link down.
  std::map<std::string, int> rounds;
  const auto end = std::chrono::steady_clock::now() + run;
  for (int round = 0; std::chrono::steady_clock::now() < end || round < 4; ++round) {
    const uint64_t seen = tally.mirrored.load();
    INFO("round " << round);
    REQUIRE(Eventually([&] { return tally.mirrored.load() >= seen + 40; }, kHang));
    // Each way must take the link down (a loss counted) before the round ends, so rounds
    // never merge into one loss.
    const uint64_t losses = primary.Status().link().link_losses();
    auto lost = [&] {
      return Eventually([&] { return primary.Status().link().link_losses() > losses; }, kHang);
    };
    switch (round % 4) {
      case 0:
        ++rounds["suspend"];
        SuspendLink(primary);
        REQUIRE(lost());
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        ResumeLink(primary);
        break;
      case 1:
        ++rounds["drop-link fault"];
        InjectFault(primary, v1::FAULT_DROP_LINK, 300);
        REQUIRE(lost());
        break;
      case 2:
        ++rounds["tcp cut"];
        CHECK(proxy.Cut(std::chrono::milliseconds(300)) > 0);
        REQUIRE(lost());
        break;
      case 3:
        ++rounds["mirror kill -9"];
        mirror.Kill(SIGKILL);
        REQUIRE(lost());
        std::this_thread::sleep_for(std::chrono::milliseconds(300));
        mirror.Start();
        mirror_host.Set(mirror.host_address());
        break;
    }
  }
  // One more round of mirrored writes after the last teardown, then stop.
  const uint64_t seen = tally.mirrored.load();
  CHECK(Eventually([&] { return tally.mirrored.load() >= seen + 40; }, kHang));
  stop = true;
  for (auto& t : writers) t.join();
  writers.clear();

  {
    std::lock_guard lock(tally.mu);
    for (const std::string& p : tally.problems) FAIL_CHECK(p);
  }
  INFO("rounds: suspend " << rounds["suspend"] << ", drop " << rounds["drop-link fault"] << ", cut "
                          << rounds["tcp cut"] << ", kill " << rounds["mirror kill -9"]);
  INFO("writes: mirrored " << tally.mirrored.load() << ", unmirrored " << tally.unmirrored.load()
                           << ", refused " << tally.refused.load() << ", failed after commit "
                           << tally.failed_committed.load() << ", mirrored ones read back "
                           << tally.verified_on_mirror.load());
  INFO("primary log: " << primary.log_path() << ", mirror log: " << mirror.log_path());
  // Both outcomes of a link loss happened, and the mirror check was not vacuous.
  if (policy == "fail") {
    CHECK(tally.refused + tally.failed_committed > 0);
    CHECK(tally.unmirrored == 0);
  } else {
    CHECK(tally.unmirrored > 0);
    CHECK(tally.refused + tally.failed_committed == 0);
  }
  CHECK(tally.verified_on_mirror > 100);

  REQUIRE(WaitPairState(primary, "Synchronized", kHang));
  const v1::StatusReply after = primary.Status();
  const v1::LinkStatus& link = after.link();
  INFO("link: shipped " << link.records_shipped() << ", acked " << link.records_acked()
                        << ", degraded " << link.records_degraded() << ", refused "
                        << link.records_refused() << ", in flight " << link.in_flight()
                        << ", losses " << link.link_losses() << ", tracks resynced "
                        << link.tracks_resynced());
  // What the counters guarantee: every record the link took ends once, acked or degraded
  // (a record lost in flight is degraded even if the mirror applied it, and whole-track
  // resync records are counted too, so these are bounds, not equalities); nothing is left.
  CHECK(link.in_flight() == 0);
  CHECK(after.queue_depth() == 0);
  CHECK(after.owed_tracks() == 0);
  int total_rounds = 0;
  for (const auto& [how, n] : rounds) total_rounds += n;
  CHECK(link.link_losses() - before.link().link_losses() >= static_cast<uint64_t>(total_rounds));
  const uint64_t acked = link.records_acked() - before.link().records_acked();
  const uint64_t degraded = link.records_degraded() - before.link().records_degraded();
  CHECK(acked >= tally.mirrored_records);
  CHECK(degraded >= tally.unmirrored + tally.failed_committed);
  CHECK(acked + degraded >= tally.committed_records);
  CHECK(link.records_shipped() >= link.records_acked());
  // The host adaptor committed exactly the writes that were not refused at the door.
  CHECK(Pen(after).writes_committed() - Pen(before).writes_committed() ==
        tally.mirrored + tally.unmirrored + tally.failed_committed);

  // The primary holds each owned block's last acknowledged version (or a later one that
  // failed after its commit), and the mirror holds what the primary holds.
  const std::string on_primary = Read(primary.host(), "vol", 0, kTracks * kTrack);
  const std::string on_mirror = Read(mirror.host(), "vol", 0, kTracks * kTrack);
  int bad = 0;
  for (uint64_t b = 0; b < kOwnedBlocks; ++b) {
    const std::string got = on_primary.substr(OwnedOffset(b), kBlock);
    bool ok = model.acked[b] == 0 ? got == std::string(kBlock, '\0')
                                  : got == OwnedData(b, model.acked[b]);
    for (uint32_t v : model.in_doubt[b]) ok |= v > model.acked[b] && got == OwnedData(b, v);
    bad += !ok;
  }
  CHECK(bad == 0);
  int differing_tracks = 0;
  for (uint64_t t = 0; t < kTracks; ++t) {
    differing_tracks +=
        on_primary.substr(t * kTrack, kTrack) != on_mirror.substr(t * kTrack, kTrack);
  }
  CHECK(differing_tracks == 0);
  v1::CheckConsistencyReply check = CheckConsistency(primary, "vol");
  CHECK(check.consistent());
  CHECK(check.tracks_compared() == kTracks);
}

}  // namespace

TEST_CASE("link torn down every way under 48 writes in flight returns each once and ends equal",
          "[integration][link][teardown]") {
  TeardownRounds("continue", std::chrono::seconds(6));
}

TEST_CASE("link torn down every way under 48 writes in flight with policy fail ends equal",
          "[integration][link][teardown]") {
  TeardownRounds("fail", std::chrono::seconds(8));
}

TEST_CASE("link torn down every way under 48 writes in flight for two minutes",
          "[soak][link][teardown]") {
  TeardownRounds("continue", std::chrono::seconds(120));
}

}  // namespace simarray::testing
