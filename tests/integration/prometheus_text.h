#pragma once
// A strict parser of Prometheus's text exposition format (version 0.0.4), for the tests of
// the HTTP port's /metrics: what it accepts, Prometheus would scrape.

#include <map>
#include <string>
#include <vector>

#include "daemon_process.h"

namespace simarray::testing {

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

// Parses `text`; every departure from the format is in errors (empty: a valid exposition).
Exposition Parse(const std::string& text);

// GET /metrics of `daemon` (started with its HTTP port), parsed; fails the test on any error.
Exposition Scrape(Daemon& daemon);

}  // namespace simarray::testing
