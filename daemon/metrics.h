#pragma once
// The daemon's Prometheus metrics: RenderMetrics writes the array's figures (array_figures.h,
// the numbers Status carries too) and the families only /metrics has (states as one gauge per
// state name, latency histograms, failing backing stores) in the text exposition format,
// version 0.0.4. Every family is named simarray_*, with # HELP and # TYPE before its samples.
//
// Thread-safe as the components' counters are; called from the HTTP port's thread.

#include <initializer_list>
#include <map>
#include <string>
#include <vector>

#include "simarray/base/figures.h"
#include "simarray/base/histogram.h"

namespace simarray::daemon {

class Array;

// `array` must be started; the caller keeps it alive for the call.
std::string RenderMetrics(Array& array);

// The text exposition, gathered by family: a family's samples come out together under its
// # HELP and # TYPE, whatever order they were added in. As a FigureSink, a figure is a sample
// of its family labelled by the sections it is in (their labels first) and its own label.
class MetricsWriter final : public FigureSink {
 public:
  void Add(const Figure& figure, uint64_t value) override;
  void Add(const Figure& figure, double value) override;
  using FigureSink::Add;
  void Enter(const FigureSection& section) override;
  void Leave() override;

  // Selects family `name` (made on first use). `type`: counter, gauge or histogram.
  void Family(const std::string& name, const std::string& type, const std::string& help);
  // One sample of the selected family (`labels` already formatted as k="v",...; may be
  // empty).
  void Sample(const std::string& name, const std::string& labels, double value);
  void Sample(const std::string& name, const std::string& labels, uint64_t value);
  // _bucket, _sum and _count samples of a histogram family.
  void Histograms(const std::string& name, const std::string& labels,
                  const simarray::Histogram::Snapshot& snapshot);

  static std::string Label(const std::string& key, const std::string& value);
  // k1="v1",k2="v2",...
  static std::string Labels(
      std::initializer_list<std::pair<std::string_view, std::string_view>> labels);
  std::string Text() const;

 private:
  // Labels joined with commas; empty parts are skipped.
  static std::string Join(const std::string& a, const std::string& b);
  struct FamilyText {
    std::string head;  // # HELP and # TYPE
    std::string samples;
  };
  // The labels of a figure: the sections' and its own.
  std::string FigureLabels(const Figure& figure) const;
  // A figure as a sample of its family.
  template <typename T>
  void AddFigure(const Figure& figure, T value);

  std::vector<FamilyText> families_;
  std::map<std::string, size_t, std::less<>> index_;
  FamilyText* family_ = nullptr;
  std::vector<std::string> section_labels_;  // formatted, one per section entered
};

}  // namespace simarray::daemon
