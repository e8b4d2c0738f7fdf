// Crash safety under load (docs/write-path.md): rounds of writers against the pair, each round
// ending in a SIGKILL of the primary or of the mirror and a restart. Every acknowledged
// write must read back on the primary, and after catch-up the mirror must equal it.
#include <signal.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <map>
#include <mutex>
#include <set>
#include <thread>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kBlock = 4096;
constexpr uint64_t kBlocks = 512;  // 2 MiB: 32 tracks
constexpr int kWriters = 4;

std::string BlockData(uint64_t block, uint32_t version) {
  return Pattern(kBlock, static_cast<uint32_t>(block * 100003 + version));
}

// Per block: the last acknowledged version, and versions whose outcome a kill hid.
struct BlockModel {
  std::mutex mu;
  std::vector<uint32_t> acked = std::vector<uint32_t>(kBlocks, 0);
  std::vector<std::set<uint32_t>> in_doubt = std::vector<std::set<uint32_t>>(kBlocks);
  std::vector<uint32_t> next = std::vector<uint32_t>(kBlocks, 1);
};

// Runs kWriters threads (writer t owns blocks b with b % kWriters == t, so a block never has
// two writes outstanding) until `stop`.
void RunWriters(v1::HostService::Stub& host, BlockModel& model, std::atomic<bool>& stop,
                std::atomic<uint64_t>& acks) {
  std::vector<std::thread> threads;
  for (int t = 0; t < kWriters; ++t) {
    threads.emplace_back([&, t] {
      uint64_t i = t;
      while (!stop) {
        const uint64_t block = (i * 37 + t) % kBlocks / kWriters * kWriters + t;
        i += kWriters;
        uint32_t version;
        {
          std::lock_guard<std::mutex> lock(model.mu);
          version = model.next[block]++;
        }
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
        v1::WriteRequest request;
        request.set_volume("vol");
        request.set_offset(block * kBlock);
        request.set_data(BlockData(block, version));
        request.set_crc32c(Crc(request.data()));
        v1::WriteReply reply;
        grpc::Status s = host.Write(&context, request, &reply);
        std::lock_guard<std::mutex> lock(model.mu);
        if (s.ok()) {
          model.acked[block] = version;
          model.in_doubt[block].clear();
          acks.fetch_add(1);
        } else {
          model.in_doubt[block].insert(version);
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
        }
      }
    });
  }
  for (auto& th : threads) th.join();
}

// Every block reads as its last acknowledged version or a newer one whose outcome was hidden.
void VerifyPrimary(Daemon& primary, BlockModel& model) {
  const std::string all = Read(primary.host(), "vol", 0, kBlocks * kBlock);
  std::lock_guard<std::mutex> lock(model.mu);
  int bad = 0;
  for (uint64_t b = 0; b < kBlocks; ++b) {
    const std::string got = all.substr(b * kBlock, kBlock);
    bool ok = model.acked[b] == 0 ? got == std::string(kBlock, '\0')
                                  : got == BlockData(b, model.acked[b]);
    uint32_t settled = model.acked[b];
    for (uint32_t v : model.in_doubt[b]) {
      if (v > model.acked[b] && got == BlockData(b, v)) {
        ok = true;
        settled = v;
      }
    }
    if (!ok) ++bad;
    // Whatever the block holds now is what later rounds must find.
    model.acked[b] = settled;
    model.in_doubt[b].clear();
  }
  CHECK(bad == 0);
}

void CrashRounds(int rounds_per_daemon) {
  Pair pair;
  pair.CreateVolume("vol", kBlocks * kBlock);
  BlockModel model;
  for (int round = 0; round < 2 * rounds_per_daemon; ++round) {
    const bool kill_primary = round % 2 == 0;
    INFO("round " << round << ": kill -9 of the " << (kill_primary ? "primary" : "mirror"));
    std::atomic<bool> stop{false};
    std::atomic<uint64_t> acks{0};
    std::thread writers([&] { RunWriters(pair.primary->host(), model, stop, acks); });
    REQUIRE(Eventually([&] { return acks.load() >= 40; }));
    (kill_primary ? pair.primary : pair.mirror)->Kill(SIGKILL);
    if (!kill_primary) {
      // The primary goes on without its mirror for a while.
      const uint64_t seen = acks.load();
      REQUIRE(Eventually([&] { return acks.load() >= seen + 40; }));
    }
    stop = true;
    writers.join();
    (kill_primary ? pair.primary : pair.mirror)->Start();
    VerifyPrimary(*pair.primary, model);
    REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  }
  const std::string primary = Read(pair.primary->host(), "vol", 0, kBlocks * kBlock);
  CHECK(Read(pair.mirror->host(), "vol", 0, kBlocks * kBlock) == primary);
  v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "vol");
  CHECK(check.consistent());
  CHECK(check.owed_tracks() == 0);
}

}  // namespace

TEST_CASE("20 kill -9 rounds of each daemon under load lose no acknowledged write",
          "[integration][crash]") {
  CrashRounds(20);
}

TEST_CASE("200 kill -9 rounds of each daemon under load lose no acknowledged write",
          "[soak][crash]") {
  CrashRounds(200);
}

}  // namespace simarray::testing
