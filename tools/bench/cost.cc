#include "tools/bench/cost.h"

#include <sys/resource.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/host.grpc.pb.h"

namespace simarray::bench {
namespace {

SideSample Side(const AdminPort& admin, pid_t pid) {
  SideSample side;
  side.cpu_s = ProcessCpuSeconds(pid);
  if (admin.address.empty()) return side;
  auto status = GetStatus(admin);
  if (!status.ok()) return side;
  side.status_ok = true;
  for (const v1::PenStatus& pen : status->pens()) side.writes_committed += pen.writes_committed();
  side.bytes_copied = status->cache().bytes_copied();
  side.tracks_destaged = status->cache().tracks_destaged();
  side.bytes_destaged = status->cache().bytes_destaged();
  side.records_shipped = status->link().records_shipped();
  side.messages_shipped = status->link().messages_shipped();
  return side;
}

std::string FlushHost(const std::string& address) {
  auto stub = v1::HostService::NewStub(rpc::MakeChannel(address, 1 << 20));
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(70));
  v1::FlushReply reply;
  grpc::Status s = stub->Flush(&context, v1::FlushRequest(), &reply);
  return s.ok() ? "" : absl::StrCat("Flush at ", address, " failed: ", s.error_message());
}

std::string WaitDestaged(const AdminPort& admin) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < deadline) {
    auto status = GetStatus(admin);
    if (!status.ok())
      return absl::StrCat("Status at ", admin.address, ": ", status.status().message());
    if (status->cache().write_pending() == 0) return "";
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return absl::StrCat("the mirror at ", admin.address, " still had write-pending tracks 10 s on");
}

double PerWrite(double total, uint64_t writes) { return writes ? total / writes : 0; }

}  // namespace

double ProcessCpuSeconds(pid_t pid) {
  if (pid <= 0) return -1;
  std::ifstream in(absl::StrCat("/proc/", pid, "/stat"));
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string stat = ss.str();
  // utime and stime are fields 14 and 15, counted after the ")" that ends the command name
  // (which may itself hold spaces and parentheses).
  const size_t paren = stat.rfind(')');
  if (paren == std::string::npos || paren + 2 > stat.size()) return -1;
  std::istringstream fields(stat.substr(paren + 2));
  std::string field;
  uint64_t utime = 0, stime = 0;
  int i = 3;
  for (; i <= 15 && fields >> field; ++i) {
    if (i == 14) utime = std::stoull(field);
    if (i == 15) stime = std::stoull(field);
  }
  if (i <= 15) return -1;
  return static_cast<double>(utime + stime) / sysconf(_SC_CLK_TCK);
}

double SelfCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return t.tv_sec + t.tv_usec / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

CostSample TakeSample(const PairProbe& pair) {
  CostSample sample;
  sample.taken = true;
  sample.at = std::chrono::steady_clock::now();
  sample.self_cpu_s = SelfCpuSeconds();
  // Both CPU figures before either Status call, so that they are read close together.
  const double primary_cpu = ProcessCpuSeconds(pair.primary_pid);
  const double mirror_cpu = ProcessCpuSeconds(pair.mirror_pid);
  sample.primary = Side(pair.primary_admin, -1);
  sample.mirror = Side(pair.mirror_admin, -1);
  sample.primary.cpu_s = primary_cpu;
  sample.mirror.cpu_s = mirror_cpu;
  return sample;
}

std::string Settle(const PairProbe& pair) {
  std::string trouble = FlushHost(pair.primary_host);
  std::string mirror;
  if (!pair.mirror_host.empty()) {
    mirror = FlushHost(pair.mirror_host);
  } else if (!pair.mirror_admin.address.empty()) {
    mirror = WaitDestaged(pair.mirror_admin);
  }
  if (!mirror.empty()) trouble += (trouble.empty() ? "" : "; ") + mirror;
  return trouble;
}

CostDelta Difference(const CostSample& before, const CostSample& after) {
  CostDelta d;
  d.empty = false;
  if (!before.taken || !after.taken || !before.primary.status_ok || !after.primary.status_ok) {
    return d;
  }
  d.valid = true;
  const SideSample& p0 = before.primary;
  const SideSample& p1 = after.primary;
  d.writes = p1.writes_committed - p0.writes_committed;
  d.seconds = std::chrono::duration<double>(after.at - before.at).count();
  d.self_cpu_s = after.self_cpu_s - before.self_cpu_s;
  d.primary_cpu_known = p0.cpu_s >= 0 && p1.cpu_s >= 0;
  if (d.primary_cpu_known) d.primary_cpu_s = p1.cpu_s - p0.cpu_s;
  d.mirror_cpu_known = before.mirror.cpu_s >= 0 && after.mirror.cpu_s >= 0;
  if (d.mirror_cpu_known) d.mirror_cpu_s = after.mirror.cpu_s - before.mirror.cpu_s;
  d.primary_bytes_copied = p1.bytes_copied - p0.bytes_copied;
  d.primary_bytes_destaged = p1.bytes_destaged - p0.bytes_destaged;
  d.primary_tracks_destaged = p1.tracks_destaged - p0.tracks_destaged;
  d.records_shipped = p1.records_shipped - p0.records_shipped;
  d.messages_shipped = p1.messages_shipped - p0.messages_shipped;
  d.mirror_known = before.mirror.status_ok && after.mirror.status_ok;
  if (d.mirror_known) {
    d.mirror_bytes_copied = after.mirror.bytes_copied - before.mirror.bytes_copied;
    d.mirror_bytes_destaged = after.mirror.bytes_destaged - before.mirror.bytes_destaged;
    d.mirror_tracks_destaged = after.mirror.tracks_destaged - before.mirror.tracks_destaged;
  }
  return d;
}

CostDelta& CostDelta::operator+=(const CostDelta& o) {
  if (empty) {
    *this = o;
    return *this;
  }
  valid = valid && o.valid;
  writes += o.writes;
  seconds += o.seconds;
  primary_cpu_known = primary_cpu_known && o.primary_cpu_known;
  mirror_cpu_known = mirror_cpu_known && o.mirror_cpu_known;
  mirror_known = mirror_known && o.mirror_known;
  primary_cpu_s += o.primary_cpu_s;
  mirror_cpu_s += o.mirror_cpu_s;
  self_cpu_s += o.self_cpu_s;
  primary_bytes_copied += o.primary_bytes_copied;
  primary_bytes_destaged += o.primary_bytes_destaged;
  primary_tracks_destaged += o.primary_tracks_destaged;
  mirror_bytes_copied += o.mirror_bytes_copied;
  mirror_bytes_destaged += o.mirror_bytes_destaged;
  mirror_tracks_destaged += o.mirror_tracks_destaged;
  records_shipped += o.records_shipped;
  messages_shipped += o.messages_shipped;
  return *this;
}

double CostDelta::PairCpuUsPerWrite() const {
  if (!valid || !primary_cpu_known || !mirror_cpu_known || writes == 0) return -1;
  return (primary_cpu_s + mirror_cpu_s) / writes * 1e6;
}

double CostDelta::PrimaryCpuUsPerWrite() const {
  if (!valid || !primary_cpu_known || writes == 0) return -1;
  return primary_cpu_s / writes * 1e6;
}

Cost ToCost(const CostDelta& d, const std::string& run, bool client_is_bench,
            const std::string& note) {
  Cost cost;
  cost.set_run(run);
  cost.set_note(note);
  if (!d.valid) {
    cost.set_note(note.empty() ? "not sampled (the primary's Status failed, or the run ended "
                                 "before its measured window)"
                               : note);
    return cost;
  }
  const uint64_t w = d.writes;
  cost.set_writes(w);
  cost.set_seconds(d.seconds);
  if (w != 0) {
    if (d.primary_cpu_known) cost.set_primary_cpu_us(PerWrite(d.primary_cpu_s, w) * 1e6);
    if (d.mirror_cpu_known) cost.set_mirror_cpu_us(PerWrite(d.mirror_cpu_s, w) * 1e6);
    if (d.primary_cpu_known && d.mirror_cpu_known) cost.set_pair_cpu_us(d.PairCpuUsPerWrite());
    if (client_is_bench) cost.set_client_cpu_us(PerWrite(d.self_cpu_s, w) * 1e6);
  }
  cost.set_primary_bytes_copied(PerWrite(d.primary_bytes_copied, w));
  cost.set_primary_bytes_destaged(PerWrite(d.primary_bytes_destaged, w));
  cost.set_primary_tracks_destaged(PerWrite(d.primary_tracks_destaged, w));
  if (d.mirror_known) {
    cost.set_mirror_bytes_copied(PerWrite(d.mirror_bytes_copied, w));
    cost.set_mirror_bytes_destaged(PerWrite(d.mirror_bytes_destaged, w));
    cost.set_mirror_tracks_destaged(PerWrite(d.mirror_tracks_destaged, w));
  }
  cost.set_records_shipped(d.records_shipped);
  cost.set_messages_shipped(d.messages_shipped);
  if (d.messages_shipped != 0) {
    cost.set_records_per_message(static_cast<double>(d.records_shipped) / d.messages_shipped);
  }
  return cost;
}

void SetBaselineCpu(Cost* cost, double us, const std::string& covers) {
  if (us < 0) return;
  cost->set_baseline_cpu_us(us);
  cost->set_baseline_cpu_covers(covers);
}

}  // namespace simarray::bench
