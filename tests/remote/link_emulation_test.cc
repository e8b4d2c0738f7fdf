// The emulated link's arithmetic (link_emulation.h): when a message leaves and arrives under
// latency, jitter and bandwidth, how often it is lost, and the words a user gives for rates.

#include "simarray/remote/link_emulation.h"

#include <catch2/catch.hpp>

namespace simarray::remote {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1000);

TEST_CASE(
    "link model: a message leaves after its size at the bandwidth and arrives a latency later",
    "[link-emulation]") {
  LinkModel model(1);
  LinkEmulation e;
  e.latency = absl::Milliseconds(20);
  e.bandwidth = 8'000'000;  // 1 MB a second
  const LinkModel::Fate first = model.Send(e, 100'000, kT0);
  CHECK(first.starts == kT0);
  CHECK(first.left == kT0 + absl::Milliseconds(100));
  CHECK(first.arrives == kT0 + absl::Milliseconds(120));
  CHECK(!first.lost);
  // Handed over at once: it waits for the wire, so rates add up to the bandwidth.
  const LinkModel::Fate second = model.Send(e, 100'000, kT0);
  CHECK(second.starts == first.left);
  CHECK(second.left == kT0 + absl::Milliseconds(200));
  CHECK(second.arrives == kT0 + absl::Milliseconds(220));
  // After an idle second the wire is free again.
  const LinkModel::Fate third = model.Send(e, 0, kT0 + absl::Seconds(2));
  CHECK(third.left == kT0 + absl::Seconds(2));
  CHECK(third.arrives == kT0 + absl::Seconds(2) + absl::Milliseconds(20));
}

TEST_CASE("link model: jitter spreads arrivals but never reorders them", "[link-emulation]") {
  LinkModel model(7);
  LinkEmulation e;
  e.latency = absl::Milliseconds(10);
  e.jitter = absl::Milliseconds(30);
  // Spaced messages: each arrives 10 to 40 ms after it was sent, spread over that range.
  absl::Duration least = absl::InfiniteDuration(), most = absl::ZeroDuration();
  absl::Time now = kT0;
  for (int i = 0; i < 500; ++i, now += absl::Milliseconds(100)) {
    const LinkModel::Fate f = model.Send(e, 10, now);
    CHECK(f.arrives >= now + e.latency);
    CHECK(f.arrives <= now + e.latency + e.jitter);
    least = std::min(least, f.arrives - now);
    most = std::max(most, f.arrives - now);
  }
  CHECK(least < absl::Milliseconds(12));
  CHECK(most > absl::Milliseconds(38));
  // A burst: a message never arrives before the one sent ahead of it.
  absl::Time last = absl::InfinitePast();
  for (int i = 0; i < 500; ++i, now += absl::Microseconds(100)) {
    const LinkModel::Fate f = model.Send(e, 10, now);
    CHECK(f.arrives >= last);
    CHECK(f.arrives >= now + e.latency);
    last = f.arrives;
  }
}

TEST_CASE("link model: a loss rate loses about that share of messages", "[link-emulation]") {
  LinkModel model(3);
  LinkEmulation e;
  e.loss = 0.1;
  int lost = 0;
  for (int i = 0; i < 10000; ++i) lost += model.Send(e, 1, kT0).lost ? 1 : 0;
  CHECK(lost > 800);
  CHECK(lost < 1200);
  e.loss = 0;
  for (int i = 0; i < 1000; ++i) CHECK(!model.Send(e, 1, kT0).lost);
}

TEST_CASE("link emulation: rates and loss in the words users give", "[link-emulation]") {
  CHECK(*ParseBandwidth("100Mbit") == 100'000'000);
  CHECK(*ParseBandwidth("1Gbit") == 1'000'000'000);
  CHECK(*ParseBandwidth("1.5 gbit") == 1'500'000'000);
  CHECK(*ParseBandwidth("512kbit") == 512'000);
  CHECK(*ParseBandwidth("12.5MB") == 100'000'000);
  CHECK(*ParseBandwidth("2500000") == 2'500'000);
  CHECK(*ParseBandwidth("off") == 0);
  CHECK(ParseBandwidth("fast").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseBandwidth("100Mbps/s").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseBandwidth("10bit").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(std::string(ParseBandwidth("fast").status().message()).find("got 'fast'") !=
        std::string::npos);
  CHECK(*ParseLoss("0.1%") == Approx(0.001));
  CHECK(*ParseLoss("0.02") == Approx(0.02));
  CHECK(ParseLoss("150%").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(ParseLoss("some").status().code() == absl::StatusCode::kInvalidArgument);
  CHECK(FormatBandwidth(100'000'000) == "100 Mbit/s");
  CHECK(FormatBandwidth(0) == "unlimited");
  LinkEmulation e;
  CHECK(e.ToString() == "off");
  e.latency = absl::Milliseconds(30);
  e.jitter = absl::Milliseconds(5);
  e.bandwidth = 100'000'000;
  e.loss = 0.001;
  CHECK(e.ToString() == "30 ms +0-5 ms, 100 Mbit/s, 0.1% loss");
  e.latency = absl::Seconds(61);
  CHECK(Validate(e).code() == absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace simarray::remote
