#pragma once
// Figures: the numbers a component reports about itself, described once, next to the
// counters they read, and rendered by every view of the daemon: the Prometheus text of
// /metrics, the Status reply and, through Status, the web console (docs/metrics.md).
//
// A component describes its figures by calling FigureSink::Add for each, with a Figure that
// says what it is (its Prometheus family, kind and help, the label that tells it from the
// family's other samples) and where Status carries it (a field of the section being
// filled). A view is a FigureSink. Sections (Enter/Leave) stand for where the component is
// in the array: a host adaptor's pen is a `pens` entry in Status and an `adaptor` label in
// /metrics.
//
// Not thread-safe: one sink is filled by one thread. The views run on the admin, HTTP and
// event watcher threads, each with a sink of its own; the counters they read are snapshots
// (the components' Counters() calls), so describing takes no lock of the write path.

#include <cstdint>
#include <string_view>

namespace simarray {

enum class FigureKind { kCounter, kGauge };

struct Figure {
  std::string_view metric;  // the Prometheus family, simarray_*
  FigureKind kind;
  std::string_view help;  // the family's # HELP line (every sample of a family says the same)
  // The field of the current Status section that carries the number; empty: /metrics only.
  // A map field (map<string, uint64>) takes the sample under its label value as the key.
  std::string_view field = {};
  // A label that tells this sample from the family's others (event="shipped"); empty: none.
  std::string_view label = {};
  std::string_view label_value = {};
};

// Where in the array the figures that follow belong.
struct FigureSection {
  std::string_view field;  // the Status message field (a repeated one adds an entry)
  // The label the section adds to every sample in /metrics ("adaptor"), and its value.
  std::string_view label = {};
  std::string_view label_value = {};
  // A string field of the entry that takes the label value ("host_adaptor"); empty: none.
  std::string_view key_field = {};
};

class FigureSink {
 public:
  virtual ~FigureSink() = default;
  virtual void Add(const Figure& figure, uint64_t value) = 0;
  virtual void Add(const Figure& figure, double value) = 0;
  void Add(const Figure& figure, bool value) { Add(figure, uint64_t{value ? 1u : 0u}); }
  void Add(const Figure& figure, uint32_t value) { Add(figure, uint64_t{value}); }

  // Figures added until the matching Leave belong to `section`; sections nest.
  virtual void Enter(const FigureSection& section) = 0;
  virtual void Leave() = 0;
};

// Enter for a scope: FigureScope pens(sink, {.field = "pens", ...});
class FigureScope {
 public:
  FigureScope(FigureSink& sink, const FigureSection& section) : sink_(sink) {
    sink_.Enter(section);
  }
  ~FigureScope() { sink_.Leave(); }
  FigureScope(const FigureScope&) = delete;
  FigureScope& operator=(const FigureScope&) = delete;

 private:
  FigureSink& sink_;
};

}  // namespace simarray
