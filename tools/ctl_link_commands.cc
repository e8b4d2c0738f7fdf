// The link commands: link suspend|resume|emulate, fault drop-link, and watch (pair state changes).
#include <chrono>
#include <cstdio>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "simarray/remote/link_emulation.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/admin.grpc.pb.h"
#include "tools/ctl_commands.h"
#include "tools/ctl_output.h"

namespace simarray::ctl {
namespace {

std::unique_ptr<v1::AdminService::Stub> Stub(const GlobalOptions& global) {
  return v1::AdminService::NewStub(rpc::MakeChannel(global.admin, kClientMaxWrite));
}

// One line that changes whenever something a watcher cares about changes.
std::string WatchLine(const v1::StatusReply& s) {
  const v1::LinkStatus& l = s.link();
  std::string line = absl::StrCat(s.pair_state(), " role=", s.role(), " link=", l.state());
  if (l.state() != "none") {
    absl::StrAppend(&line, " owed=", s.owed_tracks(), " resyncing=", l.resyncing() ? "yes" : "no",
                    " policy=", l.policy());
  }
  // Each RDF group's SRDF state (docs/groups.md), quoted when it has a space.
  for (const v1::GroupStatus& g : s.groups()) {
    const bool quote = g.state().find(' ') != std::string::npos;
    absl::StrAppend(&line, " group:", g.name(), "=", quote ? "\"" : "", g.state(),
                    quote ? "\"" : "");
  }
  return line;
}

}  // namespace

int RunLink(const GlobalOptions& global, bool suspend, const std::string& group) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  grpc::Status status;
  if (suspend) {
    v1::SuspendLinkRequest request;
    request.set_group(group);
    v1::SuspendLinkReply reply;
    status = Stub(global)->SuspendLink(&context, request, &reply);
  } else {
    v1::ResumeLinkRequest request;
    request.set_group(group);
    v1::ResumeLinkReply reply;
    status = Stub(global)->ResumeLink(&context, request, &reply);
  }
  const char* command = suspend ? "link suspend" : "link resume";
  if (!status.ok()) return ReportRpcError(command, status);
  std::printf(global.json ? "{\"ok\": true}\n" : "%s\n",
              suspend ? "link suspended: writes go on and their tracks are owed to the mirror"
                      : "link resumed: owed tracks resync, then shipping goes on");
  return kExitOk;
}

int RunLinkEmulate(const GlobalOptions& global, const LinkEmulateOptions& options) {
  v1::EmulateLinkRequest request;
  request.set_group(options.group);
  request.set_direction(options.direction);
  v1::LinkEmulation* e = request.mutable_emulation();
  if (!options.off) {
    e->set_latency_ms(options.latency_ms);
    e->set_jitter_ms(options.jitter_ms);
    if (!options.bandwidth.empty()) {
      absl::StatusOr<uint64_t> bits = remote::ParseBandwidth(options.bandwidth);
      if (!bits.ok()) return ReportError("link emulate", bits.status().message());
      e->set_bandwidth_bits(*bits);
    }
    if (!options.loss.empty()) {
      absl::StatusOr<double> loss = remote::ParseLoss(options.loss);
      if (!loss.ok()) return ReportError("link emulate", loss.status().message());
      e->set_loss(*loss);
    }
  }
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::EmulateLinkReply reply;
  grpc::Status status = Stub(global)->EmulateLink(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("link emulate", status);
  if (global.json) {
    std::printf("%s\n", ReplyJson(reply).c_str());
  } else {
    std::printf("link emulation: out %s; back %s\n", reply.out().c_str(), reply.back().c_str());
  }
  return kExitOk;
}

int RunFaultDropLink(const GlobalOptions& global, uint32_t duration_ms) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  v1::InjectFaultRequest request;
  request.set_kind(v1::FAULT_DROP_LINK);
  request.set_duration_ms(duration_ms);
  v1::InjectFaultReply reply;
  grpc::Status status = Stub(global)->InjectFault(&context, request, &reply);
  if (!status.ok()) return ReportRpcError("fault drop-link", status);
  std::printf("%s\n", global.json ? ReplyJson(reply).c_str() : reply.description().c_str());
  return kExitOk;
}

int RunRoleChange(const GlobalOptions& global, const std::string& what, bool force,
                  const std::string& group) {
  grpc::ClientContext context;
  PrepareCall(context, global, 60000);
  v1::RoleChangeRequest request;
  request.set_force(force);
  request.set_group(group);
  v1::RoleChangeReply reply;
  auto stub = Stub(global);
  grpc::Status status = what == "failover"    ? stub->Failover(&context, request, &reply)
                        : what == "failback"  ? stub->Failback(&context, request, &reply)
                        : what == "swap"      ? stub->Swap(&context, request, &reply)
                        : what == "split"     ? stub->Split(&context, request, &reply)
                        : what == "establish" ? stub->Establish(&context, request, &reply)
                                              : stub->Restore(&context, request, &reply);
  if (!status.ok()) return ReportRpcError(what, status);
  if (global.json) {
    std::printf("%s\n", ReplyJson(reply).c_str());
  } else {
    std::printf("%s: this daemon is now %s, pair %s; %s\n", what.c_str(), reply.role().c_str(),
                reply.pair_state().c_str(), reply.description().c_str());
  }
  return kExitOk;
}

int RunWatch(const GlobalOptions& global, uint32_t interval_ms, uint32_t count) {
  auto stub = Stub(global);
  std::string last;
  uint32_t printed = 0;
  for (;;) {
    grpc::ClientContext context;
    PrepareCall(context, global);
    v1::StatusReply reply;
    grpc::Status status = stub->Status(&context, v1::StatusRequest(), &reply);
    std::string line =
        status.ok() ? WatchLine(reply) : absl::StrCat("unreachable: ", status.error_message());
    if (line != last) {
      const std::string when = absl::FormatTime("%H:%M:%E3S", absl::Now(), absl::LocalTimeZone());
      if (global.json) {
        std::printf("%s\n", status.ok() ? ReplyJson(reply).c_str() : "{\"unreachable\": true}");
      } else {
        std::printf("%s %s\n", when.c_str(), line.c_str());
      }
      std::fflush(stdout);
      last = line;
      if (count != 0 && ++printed >= count) return kExitOk;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(interval_ms));
  }
}

}  // namespace simarray::ctl
