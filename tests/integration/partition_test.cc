// A real network partition: the mirror runs in its own network namespace, joined to the
// primary's by a veth pair, and the link is cut with `ip link set ... down` mid-workload.
// Needs root (CAP_NET_ADMIN) and a working `ip netns exec`; where any step of the setup is
// refused the test exits with code 77, which ctest reports as skipped (SKIP_RETURN_CODE).
#include <unistd.h>

#include <atomic>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;
constexpr int kSkip = 77;

int Sh(const std::string& command) { return std::system((command + " >/dev/null 2>&1").c_str()); }

// Runs `command`; its exit status, and what it printed (stdout and stderr) in `output`.
int Run(const std::string& command, std::string* output) {
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return -1;
  char buffer[256];
  while (std::fgets(buffer, sizeof buffer, pipe) != nullptr) *output += buffer;
  while (!output->empty() && (output->back() == '\n' || output->back() == ' ')) output->pop_back();
  return pclose(pipe);
}

// A namespace with one end of a veth pair; the other end stays in this namespace. Every
// step the test needs is tried before it starts (namespace, veth, `ip netns exec`, which
// fails where / is not a mount point, as in a chroot or some containers): the first one
// refused ends the test as skipped (exit 77), naming the command and what it said.
class NetnsLink {
 public:
  NetnsLink() {
    const std::string id = std::to_string(getpid() % 100000);
    ns_ = "simarray-" + id;
    host_if_ = "sah" + id;
    ns_if_ = "sam" + id;
    const std::vector<std::string> steps = {
        "ip netns add " + ns_,
        "ip link add " + host_if_ + " type veth peer name " + ns_if_,
        "ip link set " + ns_if_ + " netns " + ns_,
        "ip addr add 10.231.7.1/24 dev " + host_if_,
        "ip link set " + host_if_ + " up",
        "ip netns exec " + ns_ + " ip addr add 10.231.7.2/24 dev " + ns_if_,
        "ip netns exec " + ns_ + " ip link set " + ns_if_ + " up",
        "ip netns exec " + ns_ + " ip link set lo up",
    };
    for (const std::string& step : steps) {
      std::string output;
      if (Run(step, &output) != 0) {
        RemoveAll();
        std::printf(
            "SKIPPED: `%s` was refused here (%s); this test needs network namespaces, veth "
            "links and `ip netns exec` (root, CAP_NET_ADMIN, and / a mount point)\n",
            step.c_str(), output.empty() ? "no output" : output.c_str());
        std::exit(kSkip);
      }
    }
  }
  ~NetnsLink() { RemoveAll(); }
  const std::string& ns() const { return ns_; }
  void Cut() { REQUIRE(Sh("ip link set " + host_if_ + " down") == 0); }
  void Restore() { REQUIRE(Sh("ip link set " + host_if_ + " up") == 0); }

 private:
  void RemoveAll() {
    Sh("ip link del " + host_if_);
    Sh("ip netns del " + ns_);
  }

  std::string ns_, host_if_, ns_if_;
};

}  // namespace

TEST_CASE("a partition cut with ip link mid-workload ends resynced and consistent",
          "[integration][link][netns]") {
  NetnsLink link;
  TempDir dir;
  DaemonOptions mirror_options;
  mirror_options.role = "mirror";
  mirror_options.netns = link.ns();
  mirror_options.bind_ip = "10.231.7.2";
  Daemon mirror(dir.path() + "/mirror", mirror_options);
  mirror.Start();
  DaemonOptions primary_options;
  primary_options.peer_address = mirror.peer_address();
  primary_options.ack_timeout_ms = 1000;
  Daemon primary(dir.path() + "/primary", primary_options);
  primary.Start();
  REQUIRE(WaitPairState(primary, "Synchronized"));
  {
    grpc::ClientContext context;
    v1::CreateVolumeRequest request;
    request.set_name("vol");
    request.set_size(32 * kTrack);
    v1::VolumeInfo info;
    REQUIRE(primary.admin().CreateVolume(&context, request, &info).ok());
    REQUIRE(info.paired());
  }
  std::string model(32 * kTrack, '\0');
  std::atomic<bool> stop{false};
  std::atomic<int> unmirrored{0}, writes{0};
  std::thread writer([&] {
    for (uint32_t i = 0; !stop; ++i) {
      const uint64_t offset = (i * 7717) % (31 * kTrack);
      const std::string data = Pattern(2000, i);
      WriteOutcome w = Write(primary.host(), "vol", offset, data);
      if (!w.status.ok()) continue;
      model.replace(offset, data.size(), data);
      writes.fetch_add(1);
      if (!w.reply.mirrored()) unmirrored.fetch_add(1);
    }
  });
  REQUIRE(Eventually([&] { return writes.load() > 50; }));
  link.Cut();
  REQUIRE(WaitPairState(primary, "Partitioned"));
  const int at_cut = writes.load();
  REQUIRE(Eventually([&] { return writes.load() > at_cut + 50; }));
  link.Restore();
  REQUIRE(WaitPairState(primary, "Synchronized"));
  stop = true;
  writer.join();
  REQUIRE(WaitPairState(primary, "Synchronized"));
  CHECK(unmirrored.load() > 0);
  CHECK(Read(primary.host(), "vol", 0, 32 * kTrack) == model);
  CHECK(Read(mirror.host(), "vol", 0, 32 * kTrack) == model);
  CHECK(CheckConsistency(primary, "vol").consistent());
}

}  // namespace simarray::testing
