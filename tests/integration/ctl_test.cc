// simarrayctl against a real pair: the commands a user types, their output and exit codes.
#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <future>

#include "daemon_process.h"

namespace simarray::testing {
namespace {}  // namespace

TEST_CASE("simarrayctl drives volumes, writes, the link and watch", "[integration][ctl]") {
  Pair pair;
  const std::string admin = "--admin " + pair.primary->admin_address();
  CtlResult created = Ctl(admin + " volume create vol 1M");
  INFO(created.out);
  REQUIRE(created.code == 0);
  CHECK_THAT(created.out, Catch::Contains("paired"));

  CtlResult wrote = Ctl("write --host " + pair.primary->host_address() +
                        " vol 70000 --pattern 0x5a --length 100K");
  INFO(wrote.out);
  REQUIRE(wrote.code == 0);
  CHECK_THAT(wrote.out, Catch::Contains("mirrored yes"));
  CHECK(Read(pair.mirror->host(), "vol", 70000, 100 << 10) == std::string(100 << 10, '\x5a'));

  CtlResult refused = Ctl("write --host " + pair.primary->host_address() +
                          " vol 0 --pattern 1 --length 10 --crc32c 0x1234");
  CHECK(refused.code == 2);
  CHECK_THAT(refused.out, Catch::Contains("DATA_LOSS"));

  // watch prints the state it sees first, then each change.
  auto watch =
      std::async(std::launch::async, [&] { return Ctl(admin + " watch --interval 20 --count 3"); });
  REQUIRE(Eventually([&] { return pair.primary->Status().pair_state() == "Synchronized"; }));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));  // let watch see it first
  CHECK(Ctl(admin + " link suspend").code == 0);
  REQUIRE(WaitPairState(*pair.primary, "Suspended"));
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(
      Ctl("write --host " + pair.primary->host_address() + " vol 0 --pattern 7 --length 4K").code ==
      0);
  CHECK(Ctl(admin + " link resume").code == 0);
  CtlResult watched = watch.get();
  INFO(watched.out);
  CHECK(watched.code == 0);
  CHECK_THAT(watched.out, Catch::Contains("Synchronized"));
  CHECK_THAT(watched.out, Catch::Contains("Suspended"));

  REQUIRE(WaitPairState(*pair.primary, "Synchronized"));
  CtlResult consistent = Ctl(admin + " consistency vol --wait 2000");
  INFO(consistent.out);
  CHECK(consistent.code == 0);
  CHECK(Ctl("--admin " + pair.mirror->admin_address() + " fault corrupt-track vol 3").code == 0);
  CHECK(Ctl(admin + " consistency vol").code == 1);
  CHECK(Ctl(admin + " consistency vol --repair").code == 0);
  CtlResult status = Ctl(admin + " status");
  CHECK_THAT(status.out, Catch::Contains("pair state:"));
  CHECK_THAT(status.out, Catch::Contains("Synchronized"));
  CHECK(Ctl(admin + " --json status").out.find("\"pair_state\"") != std::string::npos);

  // Roles: swap on the mirror makes it the primary for good.
  CtlResult swapped = Ctl("--admin " + pair.mirror->admin_address() + " swap");
  INFO(swapped.out);
  CHECK(swapped.code == 0);
  CHECK_THAT(swapped.out, Catch::Contains("now primary"));
  CHECK(pair.mirror->Status().role() == "primary");
  CHECK(Ctl(admin + " failback").code == 2);  // not failed over: refused
}

TEST_CASE("simarrayctl health asks the gRPC health service of any port without a token",
          "[integration][ctl]") {
  DaemonOptions secured;
  secured.admin_token = true;  // admin calls need the token; the health check does not
  Pair pair(secured, secured);
  CtlResult admin = Ctl("--admin " + pair.primary->admin_address() + " health");
  INFO(admin.out);
  CHECK(admin.code == 0);
  CHECK_THAT(admin.out, Catch::Contains("SERVING"));
  CtlResult host = Ctl("--json health " + pair.mirror->host_address());
  INFO(host.out);
  CHECK(host.code == 0);
  CHECK_THAT(host.out, Catch::Contains("\"status\":\"SERVING\""));
  CHECK(Ctl("--admin " + pair.primary->admin_address() + " status").code == 2);

  pair.mirror->Kill();
  CtlResult gone = Ctl("--timeout-ms 2000 health " + pair.mirror->host_address());
  INFO(gone.out);
  CHECK(gone.code == 2);
  CHECK_THAT(gone.out, Catch::Contains("UNAVAILABLE"));
}

}  // namespace simarray::testing
