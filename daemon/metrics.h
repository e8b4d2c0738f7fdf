#pragma once
// The daemon's Prometheus metrics: RenderMetrics reads every component's counters at scrape
// time (host adaptors, holding pens, mirror queue, owed tracks, remote adaptor, cache,
// record applier) and writes them in the text exposition format, version 0.0.4. Every
// family is named simarray_*, with # HELP and # TYPE before its samples.
//
// Thread-safe as the components' counters are; called from the metrics server's thread.

#include <string>

#include "simarray/base/histogram.h"

namespace simarray::daemon {

class Array;

// `array` must be started; the caller keeps it alive for the call.
std::string RenderMetrics(Array& array);

// Text exposition helpers, exposed for tests.
class MetricsWriter {
 public:
  // Starts a family: its # HELP and # TYPE lines. `type`: counter, gauge or histogram.
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // One sample of the current family (`labels` already formatted as k="v",...; may be empty).
  void Sample(const std::string& name, const std::string& labels, double value);
  void Sample(const std::string& name, const std::string& labels, uint64_t value);
  // A family of one unlabelled sample.
  template <typename T>
  void Single(const std::string& name, const std::string& type, const std::string& help, T value) {
    Family(name, type, help);
    Sample(name, "", value);
  }
  // _bucket, _sum and _count samples of a histogram family.
  void Histograms(const std::string& name, const std::string& labels,
                  const simarray::Histogram::Snapshot& snapshot);

  static std::string Label(const std::string& key, const std::string& value);

  std::string& text() { return text_; }

 private:
  std::string text_;
};

}  // namespace simarray::daemon
