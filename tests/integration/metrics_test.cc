// GET /metrics on both daemons of a pair during a workload: the text must parse as the
// Prometheus text exposition format (checked by a strict parser below, not by substrings),
// and the series must show the workload.

#include <atomic>
#include <catch2/catch.hpp>
#include <cmath>
#include <map>
#include <regex>
#include <set>
#include <thread>

#include "daemon_process.h"
#include "raw_socket.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

// --- a strict parser of the text exposition format (version 0.0.4) ----------------------

struct Sample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

struct Family {
  std::string type;
  std::string help;
  std::vector<Sample> samples;
};

struct Exposition {
  std::map<std::string, Family> families;
  std::vector<std::string> errors;

  // The value of the one sample `name` whose labels include `labels`; NaN when none.
  double Value(const std::string& name, const std::map<std::string, std::string>& labels = {}) {
    double found = NAN;
    int matches = 0;
    for (auto& [fname, family] : families) {
      for (const Sample& s : family.samples) {
        if (s.name != name) continue;
        bool all = true;
        for (const auto& [k, v] : labels) {
          auto it = s.labels.find(k);
          all = all && it != s.labels.end() && it->second == v;
        }
        if (all) {
          found = s.value;
          ++matches;
        }
      }
    }
    return matches == 1 ? found : NAN;
  }
  bool Has(const std::string& family) const { return families.count(family) != 0; }
};

bool ValidMetricName(const std::string& s) {
  static const std::regex re("[a-zA-Z_:][a-zA-Z0-9_:]*");
  return std::regex_match(s, re);
}

bool ParseValue(const std::string& text, double* out) {
  if (text == "+Inf" || text == "Inf") {
    *out = INFINITY;
    return true;
  }
  if (text == "-Inf") {
    *out = -INFINITY;
    return true;
  }
  if (text == "NaN") {
    *out = NAN;
    return true;
  }
  if (text.empty()) return false;
  char* end = nullptr;
  *out = std::strtod(text.c_str(), &end);
  return end == text.c_str() + text.size() && std::isfinite(*out);
}

// `family`'s sample names: the family name itself, or a histogram's _bucket/_sum/_count.
bool BelongsTo(const std::string& sample, const std::string& family, const std::string& type) {
  if (type == "histogram") {
    return sample == family + "_bucket" || sample == family + "_sum" || sample == family + "_count";
  }
  if (type == "summary")
    return sample == family || sample == family + "_sum" || sample == family + "_count";
  return sample == family;
}

// Parses `name{k="v",...} value` (no timestamp: the daemon does not send any).
bool ParseSample(const std::string& line, Sample* s, std::string* why) {
  size_t i = 0;
  while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
  s->name = line.substr(0, i);
  if (!ValidMetricName(s->name)) {
    *why = "bad metric name";
    return false;
  }
  if (i < line.size() && line[i] == '{') {
    ++i;
    while (i < line.size() && line[i] != '}') {
      size_t k = i;
      while (k < line.size() && line[k] != '=') ++k;
      const std::string key = line.substr(i, k - i);
      if (!std::regex_match(key, std::regex("[a-zA-Z_][a-zA-Z0-9_]*"))) {
        *why = "bad label name '" + key + "'";
        return false;
      }
      if (k + 1 >= line.size() || line[k + 1] != '"') {
        *why = "label value not quoted";
        return false;
      }
      std::string value;
      size_t j = k + 2;
      for (; j < line.size() && line[j] != '"'; ++j) {
        if (line[j] == '\\') {
          if (j + 1 >= line.size()) break;
          const char e = line[++j];
          if (e == 'n') {
            value += '\n';
          } else if (e == '\\' || e == '"') {
            value += e;
          } else {
            *why = "bad escape in label value";
            return false;
          }
        } else {
          value += line[j];
        }
      }
      if (j >= line.size()) {
        *why = "unterminated label value";
        return false;
      }
      if (!s->labels.emplace(key, value).second) {
        *why = "duplicate label " + key;
        return false;
      }
      i = j + 1;
      if (i < line.size() && line[i] == ',') {
        ++i;
        if (i < line.size() && line[i] == '}') {
          *why = "trailing comma";
          return false;
        }
      } else if (i >= line.size() || line[i] != '}') {
        *why = "expected , or } after a label";
        return false;
      }
    }
    if (i >= line.size()) {
      *why = "unterminated label set";
      return false;
    }
    ++i;  // '}'
  }
  if (i >= line.size() || line[i] != ' ') {
    *why = "expected one space before the value";
    return false;
  }
  const std::string value = line.substr(i + 1);
  if (!ParseValue(value, &s->value)) {
    *why = "bad value '" + value + "'";
    return false;
  }
  return true;
}

void CheckHistogram(const std::string& name, const Family& f, std::vector<std::string>* errors) {
  // Group by the labels other than le.
  struct Series {
    std::vector<std::pair<double, double>> buckets;  // le, cumulative count (in order)
    bool has_sum = false, has_count = false;
    double count = 0;
  };
  std::map<std::map<std::string, std::string>, Series> series;
  for (const Sample& s : f.samples) {
    std::map<std::string, std::string> key = s.labels;
    if (s.name == name + "_bucket") {
      auto le = key.find("le");
      if (le == key.end()) {
        errors->push_back(name + ": bucket without le");
        continue;
      }
      double bound = 0;
      if (!ParseValue(le->second, &bound)) {
        errors->push_back(name + ": bad le '" + le->second + "'");
        continue;
      }
      key.erase(le);
      series[key].buckets.emplace_back(bound, s.value);
    } else if (s.name == name + "_sum") {
      series[key].has_sum = true;
    } else {
      series[key].has_count = true;
      series[key].count = s.value;
    }
  }
  if (series.empty()) errors->push_back(name + ": histogram without samples");
  for (const auto& [labels, s] : series) {
    if (!s.has_sum || !s.has_count) errors->push_back(name + ": missing _sum or _count");
    if (s.buckets.empty() || !std::isinf(s.buckets.back().first)) {
      errors->push_back(name + ": buckets do not end in le=\"+Inf\"");
      continue;
    }
    for (size_t i = 1; i < s.buckets.size(); ++i) {
      if (!(s.buckets[i].first > s.buckets[i - 1].first)) {
        errors->push_back(name + ": le not increasing");
      }
      if (s.buckets[i].second < s.buckets[i - 1].second) {
        errors->push_back(name + ": buckets not cumulative");
      }
    }
    if (s.buckets.back().second != s.count) {
      errors->push_back(name + ": le=\"+Inf\" bucket differs from _count");
    }
  }
}

Exposition Parse(const std::string& text) {
  Exposition e;
  if (text.empty() || text.back() != '\n') e.errors.push_back("text does not end in a newline");
  std::string current;  // family whose samples may follow
  std::set<std::string> closed;
  size_t pos = 0;
  int line_no = 0;
  while (pos < text.size()) {
    size_t nl = text.find('\n', pos);
    if (nl == std::string::npos) nl = text.size();
    const std::string line = text.substr(pos, nl - pos);
    pos = nl + 1;
    ++line_no;
    auto error = [&](const std::string& why) {
      e.errors.push_back("line " + std::to_string(line_no) + ": " + why + ": " + line);
    };
    if (line.empty()) {
      error("empty line");
      continue;
    }
    if (line[0] == '#') {
      std::smatch m;
      static const std::regex meta("# (HELP|TYPE) (\\S+) (.*)");
      if (!std::regex_match(line, m, meta)) continue;  // a plain comment
      const std::string kind = m[1].str(), name = m[2].str(), rest = m[3].str();
      if (!ValidMetricName(name)) error("bad family name");
      if (name != current) {
        if (closed.count(name)) error("family " + name + " appears twice");
        if (!current.empty()) closed.insert(current);
        current = name;
      }
      Family& f = e.families[name];
      if (!f.samples.empty()) error(kind + " after samples");
      if (kind == "HELP") {
        if (!f.help.empty()) error("second HELP");
        f.help = rest;
        if (rest.empty()) error("empty HELP");
      } else {
        if (!f.type.empty()) error("second TYPE");
        static const std::set<std::string> types = {"counter", "gauge", "histogram", "summary",
                                                    "untyped"};
        if (!types.count(rest)) error("unknown type");
        f.type = rest;
      }
      continue;
    }
    Sample s;
    std::string why;
    if (!ParseSample(line, &s, &why)) {
      error(why);
      continue;
    }
    if (current.empty() || !BelongsTo(s.name, current, e.families[current].type)) {
      error("sample outside its family (every family needs HELP and TYPE first)");
      continue;
    }
    Family& f = e.families[current];
    if (f.help.empty() || f.type.empty()) error("sample before HELP and TYPE");
    if (f.type == "counter" && s.value < 0) error("negative counter");
    f.samples.push_back(std::move(s));
  }
  for (const auto& [name, f] : e.families) {
    if (name.rfind("simarray_", 0) != 0) e.errors.push_back(name + ": not prefixed simarray_");
    if (f.type == "histogram") CheckHistogram(name, f, &e.errors);
  }
  return e;
}

Exposition Scrape(Daemon& daemon) {
  REQUIRE(!daemon.metrics_address().empty());
  HttpReply r = HttpGet(daemon.metrics_address(), "/metrics");
  REQUIRE(r.status == 200);
  CHECK(r.content_type.rfind("text/plain; version=0.0.4", 0) == 0);
  Exposition e = Parse(r.body);
  INFO("metrics text:\n" << r.body);
  for (const std::string& err : e.errors) FAIL_CHECK(err);
  REQUIRE(e.errors.empty());
  return e;
}

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
