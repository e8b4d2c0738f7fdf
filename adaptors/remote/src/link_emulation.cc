#include "simarray/remote/link_emulation.h"

#include <cctype>
#include <cmath>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace simarray::remote {
namespace {

// The number at the front of `text` and the rest (lower case, no spaces); false without one.
bool SplitNumber(std::string_view text, double* number, std::string* unit) {
  const std::string s(text);
  char* end = nullptr;
  *number = std::strtod(s.c_str(), &end);
  if (end == s.c_str() || !std::isfinite(*number)) return false;
  unit->clear();
  for (const char* p = end; *p != '\0'; ++p) {
    if (!std::isspace(static_cast<unsigned char>(*p))) {
      *unit += static_cast<char>(std::tolower(static_cast<unsigned char>(*p)));
    }
  }
  return true;
}

std::string Millis(absl::Duration d) {
  return absl::StrFormat("%g ms", absl::ToDoubleMilliseconds(d));
}

}  // namespace

absl::StatusOr<uint64_t> ParseBandwidth(std::string_view text) {
  if (text == "off" || text == "unlimited") return 0;
  double n = 0;
  std::string unit;
  auto bad = [&] {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a rate such as 100Mbit, 1Gbit, 512kbit or 12.5MB (bytes a second), "
                     "got '",
                     std::string(text), "'"));
  };
  if (!SplitNumber(text, &n, &unit) || n < 0) return bad();
  double factor = 0;
  if (unit.empty() || unit == "bit" || unit == "bps") {
    factor = 1;
  } else if (unit == "kbit" || unit == "kbps") {
    factor = 1e3;
  } else if (unit == "mbit" || unit == "mbps") {
    factor = 1e6;
  } else if (unit == "gbit" || unit == "gbps") {
    factor = 1e9;
  } else if (unit == "kb") {
    factor = 8e3;
  } else if (unit == "mb") {
    factor = 8e6;
  } else if (unit == "gb") {
    factor = 8e9;
  } else {
    return bad();
  }
  const double bits = n * factor;
  if (bits > 1e12)
    return absl::InvalidArgumentError(
        absl::StrCat("expected at most 1000Gbit, got '", std::string(text), "'"));
  if (bits > 0 && bits < 8000) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected at least 8kbit (1 KB a second), got '", std::string(text), "'"));
  }
  return static_cast<uint64_t>(bits);
}

absl::StatusOr<double> ParseLoss(std::string_view text) {
  double n = 0;
  std::string unit;
  if (!SplitNumber(text, &n, &unit) || (unit != "" && unit != "%")) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected a percentage such as 0.1% or a fraction such as 0.001, got '",
                     std::string(text), "'"));
  }
  const double fraction = unit == "%" ? n / 100 : n;
  if (fraction < 0 || fraction > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected 0% to 100%, got '", std::string(text), "'"));
  }
  return fraction;
}

std::string FormatBandwidth(uint64_t bits) {
  if (bits == 0) return "unlimited";
  if (bits >= 1'000'000'000) return absl::StrFormat("%g Gbit/s", bits / 1e9);
  if (bits >= 1'000'000) return absl::StrFormat("%g Mbit/s", bits / 1e6);
  return absl::StrFormat("%g kbit/s", bits / 1e3);
}

absl::Status Validate(const LinkEmulation& e) {
  for (const auto& [name, d] :
       {std::pair<const char*, absl::Duration>{"latency", e.latency}, {"jitter", e.jitter}}) {
    if (d < absl::ZeroDuration() || d > absl::Seconds(60)) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, ": expected 0 to 60000 ms, got ", absl::FormatDuration(d)));
    }
  }
  if (e.loss < 0 || e.loss > 1) {
    return absl::InvalidArgumentError(absl::StrCat("loss: expected 0 to 1, got ", e.loss));
  }
  return absl::OkStatus();
}

std::string LinkEmulation::ToString() const {
  if (off()) return "off";
  std::string out = Millis(latency);
  if (jitter > absl::ZeroDuration()) absl::StrAppend(&out, " +0-", Millis(jitter));
  absl::StrAppend(&out, ", ", FormatBandwidth(bandwidth));
  if (loss > 0) absl::StrAppend(&out, absl::StrFormat(", %g%% loss", loss * 100));
  return out;
}

void LinkEmulator::Set(const LinkEmulations& emulations) {
  absl::MutexLock lock(&mu_);
  emulations_ = emulations;
  on_.store(!emulations.off(), std::memory_order_release);
}

LinkEmulations LinkEmulator::Get() {
  absl::MutexLock lock(&mu_);
  return emulations_;
}

LinkModel::Fate LinkModel::Send(const LinkEmulation& e, size_t bytes, absl::Time now) {
  Fate fate;
  const absl::Time start = std::max(now, wire_free_);
  fate.starts = start;
  const absl::Duration on_wire =
      e.bandwidth == 0
          ? absl::ZeroDuration()
          : absl::Seconds(static_cast<double>(bytes) * 8 / static_cast<double>(e.bandwidth));
  fate.left = start + on_wire;
  wire_free_ = fate.left;
  absl::Duration delay = e.latency;
  if (e.jitter > absl::ZeroDuration()) {
    std::uniform_real_distribution<double> share(0, 1);
    delay += e.jitter * share(random_);
  }
  fate.arrives = std::max(fate.left + delay, last_arrival_);
  last_arrival_ = fate.arrives;
  if (e.loss > 0) {
    std::bernoulli_distribution lose(e.loss);
    fate.lost = lose(random_);
  }
  return fate;
}

}  // namespace simarray::remote
