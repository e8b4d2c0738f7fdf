#include "daemon/metrics.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "daemon/array.h"
#include "daemon/array_figures.h"
#include "daemon/status_report.h"

namespace simarray::daemon {
namespace {

std::string Escape(const std::string& value) {
  std::string out;
  for (char c : value) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '"') {
      out += "\\\"";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

std::string Number(double v) { return absl::StrFormat("%.9g", v); }

// Each group's SRDF state and its volume pairs' (docs/groups.md): 1 for the current state.
void Groups(MetricsWriter& w, Array& a) {
  std::vector<std::pair<std::string, GroupState>> states;
  for (const auto& g : a.groups()) states.emplace_back(g->name(), StateOfGroup(a, *g));
  w.Family("simarray_group_state", "gauge",
           "RDF group state by SRDF's name (the rollup of its volume pairs): 1 for the current.");
  for (const auto& [name, state] : states) {
    for (const remote::SrdfState s : remote::kSrdfStates) {
      w.Sample("simarray_group_state",
               MetricsWriter::Labels({{"group", name}, {"state", remote::SrdfStateName(s)}}),
               uint64_t{state.state == s});
    }
  }
  w.Family("simarray_volume_pair_state", "gauge",
           "A volume pair's state by SRDF's name: 1 for the current (others are not listed).");
  for (const auto& [name, state] : states) {
    for (const VolumePairState& vp : state.volumes) {
      w.Sample(
          "simarray_volume_pair_state",
          MetricsWriter::Labels(
              {{"group", name}, {"volume", vp.volume}, {"state", remote::SrdfStateName(vp.state)}}),
          uint64_t{1});
    }
  }
}

// The link's state as one gauge per state name, and its ship latency.
void Link(MetricsWriter& w, remote::RemoteAdaptor& ra) {
  const remote::LinkState now = ra.Counters().state;
  w.Family("simarray_link_state", "gauge", "Peer link state: 1 for the current state.");
  for (remote::LinkState state : remote::kLinkStates) {
    w.Sample("simarray_link_state",
             MetricsWriter::Label("state", std::string(remote::LinkStateName(state))),
             uint64_t{now == state});
  }
  w.Family("simarray_link_up", "gauge", "1 while the peer link is up.");
  w.Sample("simarray_link_up", "", uint64_t{now == remote::LinkState::kUp});
  w.Family("simarray_ship_latency_seconds", "histogram",
           "Time from shipping a record to the mirror's ack of it.");
  w.Histograms("simarray_ship_latency_seconds", "", ra.ship_latency().Read());
}

// Latency of each host adaptor's writes.
void HostLatency(MetricsWriter& w, Array& a) {
  w.Family("simarray_host_write_latency_seconds", "histogram",
           "Host write latency from request to reply, committed writes, by host adaptor.");
  for (const auto& ha : a.host_adaptors()) {
    w.Histograms("simarray_host_write_latency_seconds", MetricsWriter::Label("adaptor", ha->id()),
                 ha->write_latency().Read());
  }
}

}  // namespace

std::string MetricsWriter::Label(const std::string& key, const std::string& value) {
  return absl::StrCat(key, "=\"", Escape(value), "\"");
}

std::string MetricsWriter::Labels(
    std::initializer_list<std::pair<std::string_view, std::string_view>> labels) {
  std::string out;
  for (const auto& [key, value] : labels) {
    out = Join(out, Label(std::string(key), std::string(value)));
  }
  return out;
}

std::string MetricsWriter::Join(const std::string& a, const std::string& b) {
  if (a.empty()) return b;
  if (b.empty()) return a;
  return absl::StrCat(a, ",", b);
}

void MetricsWriter::Family(const std::string& name, const std::string& type,
                           const std::string& help) {
  auto [it, made] = index_.try_emplace(name, families_.size());
  if (made) {
    std::string escaped;
    for (char c : help) {
      if (c == '\\') {
        escaped += "\\\\";
      } else if (c == '\n') {
        escaped += "\\n";
      } else {
        escaped += c;
      }
    }
    families_.push_back(
        {absl::StrCat("# HELP ", name, " ", escaped, "\n# TYPE ", name, " ", type, "\n"), ""});
  }
  family_ = &families_[it->second];
}

void MetricsWriter::Sample(const std::string& name, const std::string& labels, double value) {
  absl::StrAppend(&family_->samples, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"),
                  " ", Number(value), "\n");
}

void MetricsWriter::Sample(const std::string& name, const std::string& labels, uint64_t value) {
  absl::StrAppend(&family_->samples, name, labels.empty() ? "" : absl::StrCat("{", labels, "}"),
                  " ", value, "\n");
}

void MetricsWriter::Histograms(const std::string& name, const std::string& labels,
                               const simarray::Histogram::Snapshot& s) {
  for (size_t i = 0; i < s.cumulative.size(); ++i) {
    const std::string le = i < s.bounds.size() ? Number(s.bounds[i]) : "+Inf";
    Sample(name + "_bucket", Join(labels, Label("le", le)), s.cumulative[i]);
  }
  Sample(name + "_sum", labels, s.sum);
  Sample(name + "_count", labels, s.count);
}

std::string MetricsWriter::FigureLabels(const Figure& figure) const {
  std::string labels;
  for (const std::string& l : section_labels_) labels = Join(labels, l);
  if (!figure.label.empty()) {
    labels = Join(labels, Label(std::string(figure.label), std::string(figure.label_value)));
  }
  return labels;
}

template <typename T>
void MetricsWriter::AddFigure(const Figure& figure, T value) {
  const std::string name(figure.metric);
  Family(name, figure.kind == FigureKind::kCounter ? "counter" : "gauge", std::string(figure.help));
  Sample(name, FigureLabels(figure), value);
}

void MetricsWriter::Add(const Figure& figure, uint64_t value) { AddFigure(figure, value); }
void MetricsWriter::Add(const Figure& figure, double value) { AddFigure(figure, value); }

void MetricsWriter::Enter(const FigureSection& section) {
  section_labels_.push_back(
      section.label.empty() ? std::string()
                            : Label(std::string(section.label), std::string(section.label_value)));
}

void MetricsWriter::Leave() {
  if (!section_labels_.empty()) section_labels_.pop_back();
}

std::string MetricsWriter::Text() const {
  std::string text;
  for (const FamilyText& f : families_) absl::StrAppend(&text, f.head, f.samples);
  return text;
}

std::string RenderMetrics(Array& a) {
  MetricsWriter w;
  w.Family("simarray_info", "gauge", "This daemon: name, role, mode and pair state (always 1).");
  w.Sample("simarray_info",
           MetricsWriter::Labels({{"daemon", a.config().name},
                                  {"role", a.role()},
                                  {"mode", a.config().mode},
                                  {"pair_state", remote::PairStateName(a.pair_state())}}),
           uint64_t{1});
  DescribeArray(a, w, /*slot_counts=*/true);
  w.Family("simarray_backing_store_failed", "gauge",
           "1 for each volume whose backing store is failing (docs/storage-faults.md).");
  for (const disk::StoreFailure& f : a.disk().health().Failures()) {
    w.Sample(
        "simarray_backing_store_failed",
        MetricsWriter::Labels(
            {{"volume", f.volume}, {"op", disk::DiskOpName(f.op)}, {"error", strerror(f.error)}}),
        uint64_t{1});
  }
  HostLatency(w, a);
  if (a.remote() != nullptr) Link(w, *a.remote());
  if (a.group() != nullptr) Groups(w, a);
  if (a.group() != nullptr && a.group()->source() && a.group()->cycles() != nullptr) {
    w.Family("simarray_pacing_delays_seconds", "histogram",
             "Delays write pacing gave async writes' replies (docs/async.md).");
    w.Histograms("simarray_pacing_delays_seconds", "", a.group()->cycles()->pacing_delays().Read());
  }
  return w.Text();
}

}  // namespace simarray::daemon
