// The event commands (docs/events.md): events prints the daemon's event log, and follows it;
// wait returns when the pair reaches a state, so scripts stop polling.
#include <chrono>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "simarray/rpc/rpc.h"
#include "simarray/v1/admin.grpc.pb.h"
#include "tools/ctl_commands.h"
#include "tools/ctl_output.h"

namespace simarray::ctl {
namespace {

std::unique_ptr<v1::AdminService::Stub> Stub(const GlobalOptions& global) {
  return v1::AdminService::NewStub(rpc::MakeChannel(global.admin, kClientMaxWrite));
}

std::string EventLine(const v1::Event& e) {
  const std::string when = absl::FormatTime(
      "%Y-%m-%d %H:%M:%E3S", absl::FromUnixMillis(e.time_unix_ms()), absl::LocalTimeZone());
  return absl::StrCat(e.id(), " ", when, " ", e.kind(), " ", e.subject(), ": ", e.detail());
}

void PrintEvent(const GlobalOptions& global, const v1::Event& e) {
  std::printf("%s\n", global.json ? ReplyJson(e).c_str() : EventLine(e).c_str());
  std::fflush(stdout);
}

}  // namespace

int RunEvents(const GlobalOptions& global, uint64_t after, bool follow) {
  grpc::ClientContext context;
  PrepareCall(context, global);
  if (follow) context.set_deadline(std::chrono::system_clock::time_point::max());
  v1::WatchEventsRequest request;
  request.set_after_id(after);
  request.set_follow(follow);
  auto reader = Stub(global)->WatchEvents(&context, request);
  v1::Event event;
  while (reader->Read(&event)) PrintEvent(global, event);
  grpc::Status status = reader->Finish();
  if (!status.ok()) return ReportRpcError("events", status);
  return kExitOk;
}

int RunWait(const GlobalOptions& global, const std::string& state, uint32_t timeout_s,
            const std::string& group) {
  auto stub = Stub(global);
  const auto deadline = std::chrono::system_clock::now() + std::chrono::seconds(timeout_s);
  v1::StatusReply now;
  {
    grpc::ClientContext context;
    PrepareCall(context, global);
    grpc::Status status = stub->Status(&context, v1::StatusRequest(), &now);
    if (!status.ok()) return ReportRpcError("wait", status);
  }
  // The status and the id of the last event at that moment: every change since is an event.
  // With a group: its SRDF state (docs/groups.md), from the group_state events.
  std::string seen = now.pair_state();
  if (!group.empty()) {
    bool found = false;
    for (const v1::GroupStatus& g : now.groups()) {
      if (g.name() == group) {
        seen = g.state();
        found = true;
      }
    }
    if (!found) {
      std::fprintf(stderr, "wait: this array has no RDF group \"%s\"\n", group.c_str());
      return kExitError;
    }
  }
  const std::string what = group.empty() ? "the pair" : "RDF group " + group;
  if (seen != state) {
    grpc::ClientContext context;
    PrepareCall(context, global);
    context.set_deadline(deadline);
    v1::WatchEventsRequest request;
    request.set_after_id(now.last_event_id());
    request.set_follow(true);
    auto reader = stub->WatchEvents(&context, request);
    v1::Event event;
    while (seen != state && reader->Read(&event)) {
      if (group.empty() ? event.kind() == "pair_state"
                        : event.kind() == "group_state" && event.subject() == group) {
        seen = event.value();
      }
    }
    if (seen == state) {
      context.TryCancel();
    } else {
      grpc::Status status = reader->Finish();
      if (status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
        return ReportRpcError("wait", status);
      }
      std::fprintf(stderr, "wait: %s did not reach %s in %u s; it is %s\n", what.c_str(),
                   state.c_str(), timeout_s, seen.c_str());
      return kExitNotConsistent;
    }
  }
  if (global.json) {
    std::printf("{\"%s\":\"%s\"}\n", group.empty() ? "pair_state" : "group_state", seen.c_str());
  } else {
    std::printf("%s\n", seen.c_str());
  }
  return kExitOk;
}

}  // namespace simarray::ctl
