#include "daemon/config_link.h"

#include <set>

#include "absl/strings/str_format.h"

namespace simarray::daemon {
namespace {

// Milliseconds as an integer or a float.
void Millis(Reader& r, const std::string& key, const toml::node_view<const toml::node>& node,
            absl::Duration* out) {
  if (!node) return;
  double ms = -1;
  if (const auto* i = node.as_integer()) ms = static_cast<double>(i->get());
  if (const auto* f = node.as_floating_point()) ms = f->get();
  if (!(ms >= 0 && ms <= 60000)) return r.Fail(key, "expected 0 to 60000 (ms)");
  *out = absl::Milliseconds(ms);
}

// One direction's keys; `back` allows the nested table.
void ReadDirection(Reader& r, const std::string& key, const toml::table& t,
                   remote::LinkEmulation* out, bool back_allowed) {
  static const std::set<std::string> kKeys = {"latency_ms", "jitter_ms", "bandwidth", "loss"};
  for (const auto& [k, v] : t) {
    const std::string name(k.str());
    if (kKeys.count(name) == 0 && !(back_allowed && name == "back")) {
      r.Fail(absl::StrCat(key, ".", name),
             absl::StrCat("unknown key (expected latency_ms, jitter_ms, bandwidth, loss",
                          back_allowed ? " or back)" : ")"));
    }
  }
  toml::node_view<const toml::node> view(&t);
  Millis(r, key + ".latency_ms", view["latency_ms"], &out->latency);
  Millis(r, key + ".jitter_ms", view["jitter_ms"], &out->jitter);
  ReadRate(r, key + ".bandwidth", view["bandwidth"], &out->bandwidth);
  if (auto node = view["loss"]) {
    absl::StatusOr<double> loss = absl::InvalidArgumentError("expected a percentage");
    if (const auto* s = node.as_string()) loss = remote::ParseLoss(s->get());
    if (const auto* f = node.as_floating_point())
      loss = remote::ParseLoss(absl::StrFormat("%.17g", f->get()));
    if (const auto* i = node.as_integer()) loss = remote::ParseLoss(std::to_string(i->get()));
    if (loss.ok()) {
      out->loss = *loss;
    } else {
      r.Fail(key + ".loss", std::string(loss.status().message()));
    }
  }
}

std::string DirectionToml(const remote::LinkEmulation& e) {
  return absl::StrFormat("latency_ms = %g, jitter_ms = %g, bandwidth = %d, loss = %g",
                         absl::ToDoubleMilliseconds(e.latency),
                         absl::ToDoubleMilliseconds(e.jitter), e.bandwidth, e.loss);
}

}  // namespace

void ReadRate(Reader& r, const std::string& key, const toml::node_view<const toml::node>& node,
              uint64_t* out) {
  if (!node) return;
  absl::StatusOr<uint64_t> bits =
      absl::InvalidArgumentError("expected a rate such as \"100Mbit\" or \"12.5MB\"");
  if (const auto* s = node.as_string()) bits = remote::ParseBandwidth(s->get());
  if (const auto* i = node.as_integer(); i != nullptr && i->get() >= 0) {
    bits = remote::ParseBandwidth(std::to_string(i->get()));
  }
  if (bits.ok()) {
    *out = *bits;
  } else {
    r.Fail(key, std::string(bits.status().message()));
  }
}

void ReadLinkEmulation(Reader& r, const std::string& key,
                       const toml::node_view<const toml::node>& node, remote::LinkEmulations* out) {
  if (!node) return;
  const toml::table* t = node.as_table();
  if (t == nullptr) return r.Fail(key, "expected a table ([link.emulate] or link.emulate = {...})");
  ReadDirection(r, key, *t, &out->out, /*back_allowed=*/true);
  out->back = out->out;
  if (auto back = node["back"]) {
    const toml::table* bt = back.as_table();
    if (bt == nullptr) return r.Fail(key + ".back", "expected a table (back = { ... })");
    out->back = {};
    ReadDirection(r, key + ".back", *bt, &out->back, /*back_allowed=*/false);
  }
}

std::string LinkEmulationToml(const remote::LinkEmulations& e) {
  if (e.off()) return "";
  return absl::StrCat("{ ", DirectionToml(e.out), ", back = { ", DirectionToml(e.back), " } }");
}

}  // namespace simarray::daemon
