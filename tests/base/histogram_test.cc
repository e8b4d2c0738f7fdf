#include "simarray/base/histogram.h"

#include <algorithm>
#include <catch2/catch.hpp>
#include <thread>
#include <vector>

namespace simarray {

TEST_CASE("histogram buckets are cumulative and end in the count", "[base][histogram]") {
  Histogram h({1.0, 2.0, 5.0});
  h.Record(0.5);
  h.Record(1.0);  // upper bounds are inclusive
  h.Record(3.0);
  h.Record(100.0);
  Histogram::Snapshot s = h.Read();
  CHECK(s.cumulative == std::vector<uint64_t>{2, 2, 3, 4});
  CHECK(s.count == 4);
  CHECK(s.sum == Approx(104.5));
}

TEST_CASE("latency bounds run from 10 us to 1 s", "[base][histogram]") {
  std::vector<double> b = Histogram::LatencyBounds();
  REQUIRE(!b.empty());
  CHECK(b.front() == Approx(10e-6));
  CHECK(b.back() == Approx(1.0));
  CHECK(std::is_sorted(b.begin(), b.end()));
  Histogram h;
  h.Record(absl::Microseconds(30));
  CHECK(h.Read().cumulative[2] == 1);  // <= 50 us
  CHECK(h.Read().cumulative[1] == 0);  // not <= 25 us
}

TEST_CASE("histogram counts every record from many threads", "[base][histogram]") {
  Histogram h;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&h, t] {
      for (int i = 0; i < 10000; ++i) h.Record(1e-6 * (i % 2000) * (t + 1));
    });
  }
  for (auto& t : threads) t.join();
  CHECK(h.Read().count == 40000);
}

}  // namespace simarray
