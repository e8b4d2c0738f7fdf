#include "prometheus_text.h"

#include <catch2/catch.hpp>
#include <cmath>
#include <regex>
#include <set>

#include "raw_socket.h"

namespace simarray::testing {
namespace {

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

}  // namespace

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

}  // namespace simarray::testing
