// GET /metrics on both daemons of a pair during a workload: the text must parse as the
// Prometheus text exposition format (checked by a strict parser, prometheus_text.h, not by
// substrings), and the series must show the workload.

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "daemon_process.h"
#include "prometheus_text.h"
#include "raw_socket.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

}  // namespace

TEST_CASE("the strict exposition parser rejects what Prometheus would", "[integration][metrics]") {
  CHECK(Parse("# HELP simarray_a A.\n# TYPE simarray_a gauge\nsimarray_a{x=\"1\"} 2\n")
            .errors.empty());
  CHECK(!Parse("simarray_a 1\n").errors.empty());  // no HELP/TYPE
  CHECK(
      !Parse("# HELP simarray_a A.\n# TYPE simarray_a gauge\nsimarray_a{x=1} 2\n").errors.empty());
  CHECK(!Parse("# HELP simarray_a A.\n# TYPE simarray_a gauge\n9a 2\n").errors.empty());
  CHECK(!Parse("# HELP simarray_a A.\n# TYPE simarray_a gauge\nsimarray_a two\n").errors.empty());
  const std::string h = "# HELP simarray_h H.\n# TYPE simarray_h histogram\n";
  CHECK(Parse(h + "simarray_h_bucket{le=\"1\"} 1\nsimarray_h_bucket{le=\"+Inf\"} 2\n"
                  "simarray_h_sum 3\nsimarray_h_count 2\n")
            .errors.empty());
  CHECK(!Parse(h + "simarray_h_bucket{le=\"1\"} 3\nsimarray_h_bucket{le=\"+Inf\"} 2\n"
                   "simarray_h_sum 3\nsimarray_h_count 2\n")
             .errors.empty());  // not cumulative
  CHECK(!Parse(h + "simarray_h_bucket{le=\"1\"} 1\nsimarray_h_sum 3\nsimarray_h_count 1\n")
             .errors.empty());  // no +Inf
  CHECK(!Parse(h + "simarray_h_bucket{le=\"+Inf\"} 2\nsimarray_h_sum 3\nsimarray_h_count 3\n")
             .errors.empty());  // +Inf != count
}

TEST_CASE("GET /metrics on both daemons shows the workload in Prometheus text format",
          "[integration][metrics]") {
  DaemonOptions primary_options, mirror_options;
  primary_options.metrics = true;
  mirror_options.metrics = true;
  Pair pair(primary_options, mirror_options);
  pair.CreateVolume("vol", 16 * kTrack);

  // A small workload on one thread while the test scrapes both daemons.
  constexpr int kWrites = 40;
  std::atomic<int> failed{0};
  std::atomic<bool> done{false};
  std::thread writer([&] {
    for (int i = 0; i < kWrites; ++i) {
      const std::string data = Pattern(4096 + i * 512, i);
      if (!Write(pair.primary->host(), "vol", (i % 12) * kTrack + 100, data).status.ok()) ++failed;
    }
    done = true;
  });
  int scrapes = 0;
  while (!done || scrapes < 2) {
    Scrape(*pair.primary);
    Scrape(*pair.mirror);
    ++scrapes;
  }
  writer.join();
  REQUIRE(failed == 0);
  // One write the host adaptor must refuse.
  const std::string bad = Pattern(4096, 99);
  REQUIRE(!WriteWithCrc(pair.primary->host(), "vol", 0, bad, Crc(bad) ^ 1).status.ok());

  Exposition p = Scrape(*pair.primary);
  const std::map<std::string, std::string> ha0 = {{"adaptor", "ha0"}};
  CHECK(p.Value("simarray_host_writes_total", {{"adaptor", "ha0"}, {"result", "committed"}}) ==
        kWrites);
  CHECK(p.Value("simarray_host_writes_total", {{"adaptor", "ha0"}, {"result", "crc_mismatch"}}) ==
        1);
  CHECK(p.Value("simarray_host_invalid_writes_total",
                {{"adaptor", "ha0"}, {"reason", "crc_mismatch"}}) == 1);
  CHECK(p.Value("simarray_host_write_bytes_total", {{"adaptor", "ha0"}, {"result", "committed"}}) >=
        kWrites * 4096);
  CHECK(p.Value("simarray_host_write_bytes_total",
                {{"adaptor", "ha0"}, {"result", "crc_mismatch"}}) == 4096);
  CHECK(p.Value("simarray_pen_depth", ha0) == 0);
  CHECK(p.Value("simarray_pen_requests_total", {{"adaptor", "ha0"}, {"event", "buffered"}}) >=
        kWrites + 1);
  CHECK(p.Value("simarray_pen_requests_total", {{"adaptor", "ha0"}, {"event", "deleted"}}) == 1);
  CHECK(p.Value("simarray_mirror_queue_depth") >= 0);
  CHECK(p.Value("simarray_mirror_queue_capacity") == 1024);
  CHECK(p.Value("simarray_mirror_queue_peak") >= 1);
  CHECK(p.Value("simarray_owed_tracks") >= 0);
  CHECK(p.Value("simarray_link_up") == 1);
  CHECK(p.Value("simarray_link_state", {{"state", "up"}}) == 1);
  CHECK(p.Value("simarray_link_records_total", {{"event", "acked"}}) >= kWrites);
  CHECK(p.Value("simarray_sequence") >= kWrites);
  CHECK(p.families["simarray_host_write_latency_seconds"].type == "histogram");
  // Sync mode: every committed write's reply came after its latency was recorded.
  CHECK(p.Value("simarray_host_write_latency_seconds_count", ha0) == kWrites);
  CHECK(p.Value("simarray_host_write_latency_seconds_bucket",
                {{"adaptor", "ha0"}, {"le", "1e-05"}}) >= 0);
  CHECK(p.Value("simarray_ship_latency_seconds_count") >= kWrites);
  CHECK(p.Value("simarray_cache_slots", {{"state", "write_pending"}}) +
            p.Value("simarray_cache_slots", {{"state", "clean"}}) >=
        1);

  Exposition m = Scrape(*pair.mirror);
  CHECK(m.Value("simarray_info", {{"role", "mirror"}}) == 1);
  CHECK(m.Value("simarray_cache_slot_capacity") > 0);
  double slots = 0;
  for (const char* state : {"free", "clean", "write_pending", "staging", "shipping"}) {
    const double n = m.Value("simarray_cache_slots", {{"state", state}});
    CHECK(n >= 0);
    slots += n;
  }
  CHECK(slots > 0);
  CHECK(m.Value("simarray_records_applied_total") >= kWrites);
  CHECK(m.Value("simarray_applied_sequence") >= kWrites);
  CHECK(m.Has("simarray_host_write_latency_seconds"));
  CHECK(m.Value("simarray_host_write_latency_seconds_count", ha0) == 0);
}

TEST_CASE("in async mode both daemons export their cycles", "[integration][metrics][async]") {
  DaemonOptions primary_options, mirror_options;
  for (DaemonOptions* o : {&primary_options, &mirror_options}) {
    o->metrics = true;
    o->mode = "async";
    o->cycle_ms = 50;
  }
  primary_options.role = "primary";
  mirror_options.role = "mirror";
  Pair pair(primary_options, mirror_options);
  pair.CreateVolume("vol", 16 * kTrack);
  REQUIRE(WaitPairState(*pair.primary, "Consistent"));
  constexpr int kWrites = 30;
  for (int i = 0; i < kWrites; ++i) {
    REQUIRE(Write(pair.primary->host(), "vol", (i % 3) * kTrack, Pattern(4096, i)).status.ok());
  }
  const uint64_t last = pair.primary->Status().sequence();
  REQUIRE(Eventually([&] { return pair.mirror->Status().cycles().applied_sequence() >= last; }));

  Exposition p = Scrape(*pair.primary);
  CHECK(p.Value("simarray_info", {{"mode", "async"}, {"pair_state", "Consistent"}}) == 1);
  CHECK(p.Value("simarray_cycle_number", {{"cycle", "capture"}}) >= 2);
  CHECK(p.Value("simarray_cycle_number", {{"cycle", "applied"}}) >= 1);
  CHECK(p.Value("simarray_cycles_switched_total") >= 1);
  CHECK(p.Value("simarray_cycles_cycling") == 1);
  CHECK(p.Value("simarray_cycle_seconds_behind") > 0);
  CHECK(p.Value("simarray_cycle_bytes", {{"cycle", "capture"}}) >= 0);
  CHECK(p.Value("simarray_cycle_tracks", {{"cycle", "transmit"}}) >= 0);
  // 30 writes to 3 tracks: at least one write per track folded into a later one, and no
  // more records shipped than writes.
  CHECK(p.Value("simarray_cycle_records_shipped_total") <= kWrites);
  CHECK(p.Value("simarray_writes_folded_total") + p.Value("simarray_cycle_records_shipped_total") >=
        kWrites);
  CHECK(p.Value("simarray_pull_aheads_total") == 0);

  Exposition m = Scrape(*pair.mirror);
  CHECK(m.Value("simarray_cycles_applied_total") >= 1);
  CHECK(m.Value("simarray_mirror_consistent") == 1);
  CHECK(m.Value("simarray_cycles_discarded_total") == 0);
  CHECK(m.Value("simarray_applied_sequence") >= last);
}

TEST_CASE("the HTTP port serves the metrics and the console and answers 404 for other paths",
          "[integration][metrics]") {
  SoloWithHttp solo;
  Daemon& daemon = solo.daemon;
  HttpReply page = HttpGet(daemon.metrics_address(), "/");
  CHECK(page.status == 200);
  CHECK(page.content_type.rfind("text/html", 0) == 0);
  CHECK_THAT(page.body, Catch::Contains("/console.js"));
  CHECK(HttpGet(daemon.metrics_address(), "/console.js").status == 200);
  HttpReply status = HttpGet(daemon.metrics_address(), "/api/status");
  CHECK(status.content_type == "application/json");
  CHECK_THAT(status.body, Catch::Contains("\"pair_state\":\"NotPaired\""));
  CHECK(HttpGet(daemon.metrics_address(), "/metricsx").status == 404);
  // Actions are POSTs only.
  CHECK(HttpGet(daemon.metrics_address(), "/api/admin/SuspendLink").status == 405);
  CHECK(HttpGet(daemon.metrics_address(), "/metrics?x=1").status == 200);
  CHECK(Parse(HttpGet(daemon.metrics_address(), "/metrics").body).errors.empty());
  CHECK(daemon.Stop() == 0);
}

}  // namespace simarray::testing
