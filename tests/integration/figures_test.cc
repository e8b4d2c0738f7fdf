// /metrics, Status and the console's /api/status agree on every figure they share: each is
// a view of the same descriptions (daemon/array_figures.h). The pairs below are written out
// here, independently of those descriptions, so a figure that lands in the wrong field, or a
// view that reads another counter, fails.

#include <catch2/catch.hpp>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "daemon_process.h"
#include "google/protobuf/util/json_util.h"
#include "prometheus_text.h"
#include "raw_socket.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

// One shared figure: a sample of /metrics and the Status field that carries it.
struct Shared {
  std::string metric;
  std::map<std::string, std::string> labels;
  std::function<double(const v1::StatusReply&)> field;
};

std::vector<Shared> SharedFigures() {
  const std::map<std::string, std::string> ha0 = {{"adaptor", "ha0"}};
  auto with = [&](std::string key, std::string value) {
    std::map<std::string, std::string> l = ha0;
    l.emplace(std::move(key), std::move(value));
    return l;
  };
  using S = v1::StatusReply;
  return {
      {"simarray_sequence", {}, [](const S& s) { return s.sequence(); }},
      {"simarray_host_writes_total", with("result", "committed"),
       [](const S& s) { return s.pens(0).writes_committed(); }},
      {"simarray_host_writes_started_total", ha0, [](const S& s) { return s.pens(0).writes(); }},
      {"simarray_host_invalid_writes_total", with("reason", "crc_mismatch"),
       [](const S& s) { return s.pens(0).invalid_writes().at("crc_mismatch"); }},
      {"simarray_host_write_bytes_total", with("result", "committed"),
       [](const S& s) { return s.pens(0).bytes_written(); }},
      {"simarray_host_write_bytes_total", with("result", "crc_mismatch"),
       [](const S& s) { return s.pens(0).invalid_bytes().at("crc_mismatch"); }},
      {"simarray_host_reads_total", ha0, [](const S& s) { return s.pens(0).reads(); }},
      {"simarray_host_read_bytes_total", ha0, [](const S& s) { return s.pens(0).bytes_read(); }},
      {"simarray_pen_requests_total", with("event", "buffered"),
       [](const S& s) { return s.pens(0).requests_buffered(); }},
      {"simarray_pen_requests_total", with("event", "sent"),
       [](const S& s) { return s.pens(0).requests_sent(); }},
      {"simarray_pen_requests_total", with("event", "deleted"),
       [](const S& s) { return s.pens(0).requests_deleted(); }},
      {"simarray_pen_depth", ha0, [](const S& s) { return s.pens(0).depth(); }},
      {"simarray_mirror_queue_pushed_total", {}, [](const S& s) { return s.queue_pushed(); }},
      {"simarray_mirror_queue_peak", {}, [](const S& s) { return s.queue_peak(); }},
      {"simarray_mirror_queue_capacity", {}, [](const S& s) { return s.queue_capacity(); }},
      {"simarray_owed_tracks", {}, [](const S& s) { return s.owed_tracks(); }},
      {"simarray_resync_tracks_total", {}, [](const S& s) { return s.link().tracks_resynced(); }},
      {"simarray_resyncs_started_total", {}, [](const S& s) { return s.link().resyncs_started(); }},
      {"simarray_resyncs_completed_total",
       {},
       [](const S& s) { return s.link().resyncs_completed(); }},
      {"simarray_link_records_total",
       {{"event", "shipped"}},
       [](const S& s) { return s.link().records_shipped(); }},
      {"simarray_link_records_total",
       {{"event", "acked"}},
       [](const S& s) { return s.link().records_acked(); }},
      {"simarray_link_records_total",
       {{"event", "degraded"}},
       [](const S& s) { return s.link().records_degraded(); }},
      {"simarray_link_bytes_shipped_total",
       {},
       [](const S& s) { return s.link().bytes_shipped(); }},
      {"simarray_link_connects_total", {}, [](const S& s) { return s.link().connects(); }},
      {"simarray_link_losses_total", {}, [](const S& s) { return s.link().link_losses(); }},
      {"simarray_cache_slot_capacity", {}, [](const S& s) { return s.cache().slots(); }},
      {"simarray_cache_copied_bytes_total",
       {},
       [](const S& s) { return s.cache().bytes_copied(); }},
      {"simarray_destage_tracks_total", {}, [](const S& s) { return s.cache().tracks_destaged(); }},
      {"simarray_destage_bytes_total", {}, [](const S& s) { return s.cache().bytes_destaged(); }},
      {"simarray_records_applied_total", {}, [](const S& s) { return s.records_applied(); }},
      {"simarray_records_skipped_total", {}, [](const S& s) { return s.records_skipped(); }},
      {"simarray_applied_sequence", {}, [](const S& s) { return s.applied_sequence(); }},
      {"simarray_calls_refused_total",
       {{"service", "admin"}},
       [](const S& s) { return s.admin_calls_refused(); }},
  };
}

v1::StatusReply ConsoleStatus(Daemon& daemon) {
  HttpReply r = HttpGet(daemon.metrics_address(), "/api/status");
  REQUIRE(r.status == 200);
  v1::StatusReply status;
  REQUIRE(google::protobuf::util::JsonStringToMessage(r.body, &status).ok());
  return status;
}

// Reads the three views between two Status calls that agree on every shared figure (the
// array was still, so the views saw the same numbers), and returns what differs: empty when
// they agree. Fails if the array never holds still for a read.
std::vector<std::string> Disagreements(Daemon& daemon) {
  const std::vector<Shared> shared = SharedFigures();
  for (int attempt = 0; attempt < 50; ++attempt) {
    const v1::StatusReply before = daemon.Status();
    Exposition metrics = Scrape(daemon);
    const v1::StatusReply console = ConsoleStatus(daemon);
    const v1::StatusReply after = daemon.Status();
    bool still = true;
    for (const Shared& f : shared) still = still && f.field(before) == f.field(after);
    if (!still) continue;
    std::vector<std::string> out;
    for (const Shared& f : shared) {
      const double want = f.field(after);
      const double scraped = metrics.Value(f.metric, f.labels);
      if (scraped != want) {
        out.push_back(f.metric + ": /metrics " + std::to_string(scraped) + ", Status " +
                      std::to_string(want));
      }
      if (f.field(console) != want) {
        out.push_back(f.metric + ": console " + std::to_string(f.field(console)) + ", Status " +
                      std::to_string(want));
      }
    }
    return out;
  }
  FAIL("the daemon's figures never held still for one read of the three views");
  return {};
}

TEST_CASE("/metrics Status and the console agree on every figure they share after a workload",
          "[integration][metrics][figures]") {
  DaemonOptions primary_options, mirror_options;
  primary_options.metrics = true;
  mirror_options.metrics = true;
  Pair pair(primary_options, mirror_options);
  pair.CreateVolume("vol", 16 * kTrack);

  // Writes, reads, an invalid write, and a link suspended and resumed (a resync).
  for (int i = 0; i < 20; ++i) {
    REQUIRE(Write(pair.primary->host(), "vol", (i % 8) * kTrack + 512 * i, Pattern(4096, i))
                .status.ok());
  }
  CHECK(Read(pair.primary->host(), "vol", 0, 8192).size() == 8192);
  const std::string bad = Pattern(4096, 99);
  REQUIRE(WriteWithCrc(pair.primary->host(), "vol", 0, bad, Crc(bad) ^ 1).status.error_code() ==
          grpc::StatusCode::DATA_LOSS);
  SuspendLink(*pair.primary);
  for (int i = 0; i < 6; ++i) {
    REQUIRE(
        Write(pair.primary->host(), "vol", (8 + i) * kTrack, Pattern(8192, 50 + i)).status.ok());
  }
  ResumeLink(*pair.primary);
  REQUIRE(Eventually([&] {
    const v1::StatusReply s = pair.primary->Status();
    return s.pair_state() == "Synchronized" && s.link().resyncs_completed() >= 1;
  }));

  const v1::StatusReply p = pair.primary->Status();
  // The workload shows: the comparison below is of numbers that moved, not of zeros.
  CHECK(p.pens(0).writes_committed() == 26);
  CHECK(p.pens(0).invalid_writes().at("crc_mismatch") == 1);
  CHECK(p.pens(0).invalid_bytes().at("crc_mismatch") == 4096);
  CHECK(p.pens(0).reads() >= 1);
  CHECK(p.pens(0).requests_deleted() == 1);
  CHECK(p.link().tracks_resynced() == 6);
  CHECK(p.cache().bytes_copied() > 0);
  for (const std::string& d : Disagreements(*pair.primary)) FAIL_CHECK("primary: " << d);

  const v1::StatusReply m = pair.mirror->Status();
  CHECK(m.records_applied() >= 26);
  for (const std::string& d : Disagreements(*pair.mirror)) FAIL_CHECK("mirror: " << d);
}

}  // namespace
}  // namespace simarray::testing
