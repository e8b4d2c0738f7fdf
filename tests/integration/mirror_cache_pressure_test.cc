// A mirror whose cache holds a fraction of the tracks being written (docs/pair.md,
// docs/write-path.md): its applies must wait for the destage to free slots. That wait may
// slow the link down but must not stall it: the mirror keeps answering its admin Status and
// the primary's heartbeats, the link never times out, every write completes mirrored, and
// the mirror ends equal to the primary.
#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr uint64_t kTracks = 1024;  // 64 MiB; the mirror's cache holds 24 tracks
constexpr int kWriters = 16;
constexpr int kWritesPerWriter = 160;
constexpr uint64_t kLength = 4096;
// Hang detectors only: far above any wait a loaded machine has reason for.
constexpr auto kHang = std::chrono::seconds(30);
constexpr auto kStatusHang = std::chrono::seconds(10);

struct Watch {
  std::atomic<uint64_t> mirror_status_calls{0};
  std::atomic<uint64_t> mirror_status_failures{0};
  std::atomic<int64_t> mirror_status_max_ms{0};
  std::atomic<uint64_t> link_not_up{0};             // samples of the primary's link not "up"
  std::atomic<uint64_t> min_available{UINT64_MAX};  // mirror cache slots free or clean
  std::mutex mu;
  std::string first_failure;
};

grpc::Status TimedStatus(Daemon& daemon, v1::StatusReply* reply,
                         std::chrono::seconds limit = kStatusHang) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + limit);
  daemon.Authorize(context);
  return daemon.admin().Status(&context, v1::StatusRequest(), reply);
}

}  // namespace

TEST_CASE("a mirror whose cache is full keeps answering Status and heartbeats and loses nothing",
          "[integration][link][cache]") {
  DaemonOptions primary_options;
  primary_options.cache_size = "128M";  // holds every track written
  primary_options.ack_timeout_ms = 20000;
  DaemonOptions mirror_options;
  // 24 slots of 64 KiB, about the least the config allows: with max_write 64K it needs 22.
  // (The mirror's peer port then takes messages up to max_write + 1 MiB: the 4 KiB records
  // shipped here come 64 to a message, 256 KiB.)
  mirror_options.max_write = "64K";
  mirror_options.cache_size = "1600K";
  Pair pair(primary_options, mirror_options);
  pair.CreateVolume("vol", kTracks * kTrack);
  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  const v1::StatusReply primary_before = pair.primary->Status();
  const v1::StatusReply mirror_before = pair.mirror->Status();
  const uint64_t mirror_slots = mirror_before.cache().slots();
  REQUIRE(mirror_slots * 4 < kTracks);

  // Writer w owns the tracks t with t % kWriters == w and visits all of them, so the model
  // of the volume is exact and the writes spread over every track.
  std::string model(kTracks * kTrack, '\0');
  std::atomic<uint64_t> ok_mirrored{0}, ok_unmirrored{0}, failed{0};
  std::mutex problems_mu;
  std::vector<std::string> problems;
  std::vector<std::thread> writers;
  auto& host = pair.primary->host();
  for (int w = 0; w < kWriters; ++w) {
    writers.emplace_back([&, w] {
      std::mt19937_64 random(w + 1);
      const uint64_t own = kTracks / kWriters;
      for (int i = 0; i < kWritesPerWriter; ++i) {
        const uint64_t track = (i * 7 % own) * kWriters + w;
        const uint64_t offset = track * kTrack + random() % (kTrack - kLength + 1);
        const std::string data = Pattern(kLength, static_cast<uint32_t>(w * 100000 + i));
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + kHang);
        v1::WriteRequest request;
        request.set_volume("vol");
        request.set_offset(offset);
        request.set_data(data);
        request.set_crc32c(Crc(data));
        v1::WriteReply reply;
        const grpc::Status s = host.Write(&context, request, &reply);
        if (!s.ok()) {
          ++failed;
          std::lock_guard lock(problems_mu);
          if (problems.size() < 10) {
            problems.push_back("write to track " + std::to_string(track) + ": " +
                               std::to_string(s.error_code()) + " " + s.error_message());
          }
          continue;
        }
        model.replace(offset, kLength, data);
        ++(reply.mirrored() ? ok_mirrored : ok_unmirrored);
      }
    });
  }

  // Meanwhile: the mirror's Status and the primary's view of the link, every 50 ms.
  Watch watch;
  std::atomic<bool> writing{true};
  std::thread watcher([&] {
    while (writing) {
      v1::StatusReply m;
      const auto started = std::chrono::steady_clock::now();
      const grpc::Status s = TimedStatus(*pair.mirror, &m);
      const int64_t ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::steady_clock::now() - started)
                             .count();
      ++watch.mirror_status_calls;
      if (ms > watch.mirror_status_max_ms) watch.mirror_status_max_ms = ms;
      if (!s.ok()) {
        ++watch.mirror_status_failures;
        std::lock_guard lock(watch.mu);
        if (watch.first_failure.empty()) {
          watch.first_failure = std::to_string(s.error_code()) + " " + s.error_message();
        }
      } else {
        const uint64_t available = m.cache().free() + m.cache().clean();
        if (available < watch.min_available) watch.min_available = available;
      }
      v1::StatusReply p;
      if (TimedStatus(*pair.primary, &p).ok() && p.link().state() != "up") ++watch.link_not_up;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  });
  for (auto& t : writers) t.join();
  writing = false;
  watcher.join();

  INFO("writes: mirrored " << ok_mirrored.load() << ", unmirrored " << ok_unmirrored.load()
                           << ", failed " << failed.load());
  INFO("mirror Status: " << watch.mirror_status_calls.load() << " calls, "
                         << watch.mirror_status_failures.load()
                         << " failed (first: " << watch.first_failure << "), slowest "
                         << watch.mirror_status_max_ms.load() << " ms; fewest slots free or clean "
                         << watch.min_available.load() << " of " << mirror_slots);
  INFO("primary log: " << pair.primary->log_path() << ", mirror log: " << pair.mirror->log_path());
  {
    std::lock_guard lock(problems_mu);
    for (const std::string& p : problems) FAIL_CHECK(p);
  }
  CHECK(failed == 0);
  // The link never went down: every write was mirrored, no ack or heartbeat came late.
  CHECK(ok_unmirrored == 0);
  CHECK(ok_mirrored == static_cast<uint64_t>(kWriters * kWritesPerWriter));
  CHECK(watch.mirror_status_calls > 0);
  CHECK(watch.mirror_status_failures == 0);
  CHECK(watch.link_not_up == 0);
  const v1::StatusReply primary_after = pair.primary->Status();
  const v1::StatusReply mirror_after = pair.mirror->Status();
  CHECK(primary_after.link().ack_timeouts() == primary_before.link().ack_timeouts());
  CHECK(primary_after.link().heartbeat_timeouts() == primary_before.link().heartbeat_timeouts());
  CHECK(primary_after.link().link_losses() == primary_before.link().link_losses());
  // The mirror's cache really was too small: it had to destage to take the writes in, and
  // it was seen (nearly) out of slots it could hand out at once (else this test no longer
  // tests what it says).
  CHECK(watch.min_available <= mirror_slots / 4);
  CHECK(mirror_after.cache().tracks_destaged() - mirror_before.cache().tracks_destaged() >=
        kTracks - mirror_slots);

  REQUIRE(WaitPairState(*pair.primary, "Synchronized", kHang));
  v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "vol");
  CHECK(check.consistent());
  CHECK(check.tracks_compared() == kTracks);
  // Read back both sides, a track at a time (the mirror's max_write bounds a read), against
  // the model.
  int differing = 0;
  for (uint64_t at = 0; at < kTracks * kTrack; at += kTrack) {
    const std::string want = model.substr(at, kTrack);
    differing += Read(pair.primary->host(), "vol", at, kTrack) != want;
    differing += Read(pair.mirror->host(), "vol", at, kTrack) != want;
  }
  CHECK(differing == 0);
}

}  // namespace simarray::testing
