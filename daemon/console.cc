#include "daemon/console.h"

#include <algorithm>
#include <charconv>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/time/clock.h"
#include "daemon/array.h"
#include "daemon/console_assets.h"
#include "daemon/status_report.h"
#include "google/protobuf/util/json_util.h"
#include "simarray/base/histogram.h"
#include "simarray/base/json.h"
#include "simarray/rpc/rpc.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

constexpr absl::Duration kStatusPeriod = absl::Seconds(1);
constexpr absl::Duration kEventPoll = absl::Milliseconds(200);
constexpr uint64_t kEventsOnConnect = 50;  // a new stream without Last-Event-ID gets these
constexpr auto kAdminDeadline = std::chrono::seconds(10);
constexpr size_t kMaxStreams = 32;  // open /api/events streams; one more is answered 503

std::string Json(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.always_print_primitive_fields = true;
  options.preserve_proto_field_names = true;
  std::string out;
  if (!google::protobuf::util::MessageToJsonString(message, &out, options).ok()) return "{}";
  return out;
}

void Add(Histogram::Snapshot& sum, const Histogram::Snapshot& s) {
  if (sum.bounds.empty()) {
    sum = s;
    return;
  }
  for (size_t i = 0; i < sum.cumulative.size() && i < s.cumulative.size(); ++i) {
    sum.cumulative[i] += s.cumulative[i];
  }
  sum.sum += s.sum;
  sum.count += s.count;
}

std::string HistogramJson(const Histogram::Snapshot& s) {
  return absl::StrCat("{\"bounds\":[", absl::StrJoin(s.bounds, ","), "],\"cumulative\":[",
                      absl::StrJoin(s.cumulative, ","), "],\"count\":", s.count, ",\"sum\":", s.sum,
                      "}");
}

std::string SseEvent(std::string_view name, std::string_view data, uint64_t id = 0) {
  std::string out = id > 0 ? absl::StrCat("id: ", id, "\n") : std::string();
  out.append("event: ").append(name).append("\ndata: ").append(data).append("\n\n");
  return out;
}

// The data of a "gap" event: the events a stream asked for are not there.
std::string Gap(std::string_view message) { return JsonObject().Add("message", message).str(); }

uint64_t ParseId(std::string_view text) {
  uint64_t id = 0;
  std::from_chars(text.data(), text.data() + text.size(), id);
  return id;
}

// "after=N" in a query string, else 0.
uint64_t AfterParameter(std::string_view query) {
  for (size_t at = 0; at <= query.size();) {
    const size_t end = std::min(query.find('&', at), query.size());
    const std::string_view pair = query.substr(at, end - at);
    if (pair.substr(0, 6) == "after=") return ParseId(pair.substr(6));
    at = end + 1;
  }
  return 0;
}

int HttpStatusOf(grpc::StatusCode code) {
  switch (code) {
    case grpc::StatusCode::OK:
      return 200;
    case grpc::StatusCode::INVALID_ARGUMENT:
    case grpc::StatusCode::OUT_OF_RANGE:
      return 400;
    case grpc::StatusCode::UNAUTHENTICATED:
      return 401;
    case grpc::StatusCode::PERMISSION_DENIED:
      return 403;
    case grpc::StatusCode::NOT_FOUND:
      return 404;
    case grpc::StatusCode::FAILED_PRECONDITION:
    case grpc::StatusCode::ALREADY_EXISTS:
      return 409;
    case grpc::StatusCode::RESOURCE_EXHAUSTED:
      return 429;
    case grpc::StatusCode::UNAVAILABLE:
      return 503;
    case grpc::StatusCode::DEADLINE_EXCEEDED:
      return 504;
    default:
      return 500;
  }
}

HttpReply JsonReply(int status, std::string body) {
  return HttpReply{status, "application/json", std::move(body), {{"Cache-Control", "no-store"}}};
}

HttpReply ErrorReply(int status, std::string_view code, std::string_view message) {
  return JsonReply(status,
                   JsonObject().Add("ok", false).Add("code", code).Add("message", message).str());
}

// The admin port as the console dials it: a wildcard address is this host.
std::string DialAddress(const std::string& listen) {
  const size_t colon = listen.rfind(':');
  const std::string host = listen.substr(0, colon);
  if (host == "0.0.0.0") return "127.0.0.1" + listen.substr(colon);
  if (host == "[::]") return "[::1]" + listen.substr(colon);
  return listen;
}

// Runs one admin call: the JSON body parsed into Request, the reply printed as JSON.
template <typename Request, typename Reply, typename Call>
HttpReply AdminCall(const HttpRequest& request, Call call) {
  Request message;
  if (!request.body.empty()) {
    google::protobuf::util::JsonParseOptions options;
    if (auto s = google::protobuf::util::JsonStringToMessage(request.body, &message, options);
        !s.ok()) {
      return ErrorReply(400, "INVALID_ARGUMENT",
                        absl::StrCat("expected a JSON ", Request::descriptor()->name(),
                                     " (admin.proto), got: ", s.ToString()));
    }
  }
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + kAdminDeadline);
  if (!request.authorization.empty()) context.AddMetadata("authorization", request.authorization);
  Reply reply;
  const grpc::Status status = call(&context, message, &reply);
  if (!status.ok()) {
    return ErrorReply(HttpStatusOf(status.error_code()),
                      absl::StatusCodeToString(static_cast<absl::StatusCode>(status.error_code())),
                      status.error_message());
  }
  return JsonReply(200, JsonObject().Add("ok", true).AddJson("reply", Json(reply)).str());
}

}  // namespace

Console::Console(Array& array, const std::string& admin_address)
    : array_(array),
      admin_(v1::AdminService::NewStub(rpc::MakeChannel(DialAddress(admin_address), 1 << 20))) {}

Console::~Console() { Stop(); }

void Console::Mount(HttpServer& http) {
  for (const ConsoleAsset& asset : ConsoleAssets()) {
    const std::string path = asset.name == "index.html" ? "/" : "/" + std::string(asset.name);
    http.Route("GET", path, [&asset](const HttpRequest&, HttpServer::Respond respond) {
      respond(HttpReply{200,
                        std::string(asset.content_type),
                        std::string(asset.content),
                        {{"Cache-Control", "no-cache"}}});
    });
  }
  http.Route("GET", "/api/status", [this](const HttpRequest&, HttpServer::Respond respond) {
    v1::StatusReply status;
    FillStatus(array_, &status, /*slot_counts=*/true);
    respond(JsonReply(200, Json(status)));
  });
  http.RouteStream("/api/events", "text/event-stream", kMaxStreams,
                   [this](const HttpRequest& request, std::shared_ptr<HttpStream> stream) {
                     Subscribe(request, std::move(stream));
                   });
  for (const char* method : {"SuspendLink", "ResumeLink", "InjectFault"}) {
    http.Route("POST", absl::StrCat("/api/admin/", method),
               [this, method](const HttpRequest& request, HttpServer::Respond respond) {
                 Admin(method, request, std::move(respond));
               });
  }
}

void Console::Start() {
  feed_ = std::thread([this] { FeedLoop(); });
}

void Console::Stop() {
  stopping_.store(true);  // queued admin calls are answered at once
  if (!stop_.HasBeenNotified()) stop_.Notify();
  if (feed_.joinable()) feed_.join();
  calls_.Stop();
  absl::MutexLock lock(&mu_);
  subscribers_.clear();
}

void Console::Subscribe(const HttpRequest& request, std::shared_ptr<HttpStream> stream) {
  const uint64_t last = array_.events().last_id();
  uint64_t after = ParseId(request.last_event_id);
  if (after == 0) after = AfterParameter(request.query);
  if (after == 0) after = last > kEventsOnConnect ? last - kEventsOnConnect : 0;
  stream->Send("retry: 1000\n\n");  // EventSource reconnects after a second
  if (after > last) {
    // An id from before this daemon restarted: its events are gone, ids start over.
    stream->Send(SseEvent("gap", Gap(absl::StrCat("event ", after, " is newer than the newest (",
                                                  last, "): the daemon restarted since"))));
    after = 0;
  }
  absl::MutexLock lock(&mu_);
  subscribers_.push_back(Subscriber{std::move(stream), after, true});
}

std::string Console::StatusFrame() {
  v1::StatusReply status;
  FillStatus(array_, &status, /*slot_counts=*/true);
  Histogram::Snapshot host_writes;
  for (const auto& host : array_.host_adaptors()) Add(host_writes, host->write_latency().Read());
  Histogram::Snapshot ship;
  for (const auto& group : array_.groups()) {
    if (group->source()) Add(ship, group->remote()->ship_latency().Read());
  }
  return JsonObject()
      .Add("time_unix_ms", static_cast<uint64_t>(absl::ToUnixMillis(absl::Now())))
      .AddJson("status", Json(status))
      .AddJson("host_write_latency", HistogramJson(host_writes))
      .AddJson("ship_latency", HistogramJson(ship))
      .str();
}

void Console::FeedLoop() {
  EventLog& log = array_.events();
  absl::Time next_status = absl::Now();
  std::string frame;
  while (!stop_.HasBeenNotified()) {
    const bool status_due = absl::Now() >= next_status;
    if (status_due) next_status = absl::Now() + kStatusPeriod;
    bool needed = false;  // by the period, or by a stream that has had none yet
    {
      absl::MutexLock lock(&mu_);
      for (const Subscriber& s : subscribers_) needed |= status_due || s.needs_status;
    }
    // Built fresh whenever sent (a stream that came since waits for the next turn).
    if (needed) frame = StatusFrame();
    {
      absl::MutexLock lock(&mu_);
      for (Subscriber& s : subscribers_) {
        if (needed && (status_due || s.needs_status)) {
          s.stream->Send(SseEvent("status", frame));
          s.needs_status = false;
        }
        absl::StatusOr<std::vector<Event>> events = log.After(s.after, 256);
        if (!events.ok()) {
          s.stream->Send(SseEvent("gap", Gap(std::string(events.status().message()))));
          s.after = log.last_id();
          continue;
        }
        for (const Event& e : *events) {
          v1::Event out;
          FillEvent(e, &out);
          s.stream->Send(SseEvent("array", Json(out), e.id));
          s.after = e.id;
        }
      }
      subscribers_.erase(std::remove_if(subscribers_.begin(), subscribers_.end(),
                                        [](const Subscriber& s) { return !s.stream->open(); }),
                         subscribers_.end());
    }
    // Wakes at a new event, a status due, or now and then for a new stream's first frame.
    uint64_t newest = log.last_id();
    log.WaitAfter(newest, std::min(next_status, absl::Now() + kEventPoll));
    if (log.closed()) break;
  }
}

namespace {

// Why a browser must not be let make this admin call, or empty. A cross-site page can make
// a browser send a simple POST (a form's content types) to this port; one with JSON needs a
// preflight, which this server does not grant, and a browser's Origin names the page.
std::string Refusal(const HttpRequest& request) {
  if (request.content_type.rfind("application/json", 0) != 0) {
    return absl::StrCat("expected Content-Type: application/json, got \"", request.content_type,
                        "\"");
  }
  if (!request.origin.empty()) {
    const size_t scheme = request.origin.find("://");
    const std::string origin_host =
        scheme == std::string::npos ? request.origin : request.origin.substr(scheme + 3);
    if (origin_host != request.host) {
      return absl::StrCat("a page from ", request.origin, " may not act on this daemon (",
                          request.host, ")");
    }
  }
  // gRPC metadata takes printable ASCII only; anything else would fail the call locally.
  for (const char c : request.authorization) {
    if (c < 0x20 || c > 0x7e)
      return "the Authorization header holds a character other than printable ASCII";
  }
  return "";
}

}  // namespace

void Console::Admin(const std::string& method, const HttpRequest& request,
                    HttpServer::Respond respond) {
  if (const std::string refusal = Refusal(request); !refusal.empty()) {
    respond(ErrorReply(request.content_type.rfind("application/json", 0) != 0 ? 415 : 400,
                       "INVALID_ARGUMENT", refusal));
    return;
  }
  auto job = [this, method, request, respond] {
    if (stopping_.load()) {
      respond(ErrorReply(503, "UNAVAILABLE", "the daemon is stopping"));
      return;
    }
    v1::AdminService::Stub& admin = *admin_;
    HttpReply reply;
    if (method == "SuspendLink") {
      reply = AdminCall<v1::SuspendLinkRequest, v1::SuspendLinkReply>(
          request, [&](auto* c, const auto& m, auto* r) { return admin.SuspendLink(c, m, r); });
    } else if (method == "ResumeLink") {
      reply = AdminCall<v1::ResumeLinkRequest, v1::ResumeLinkReply>(
          request, [&](auto* c, const auto& m, auto* r) { return admin.ResumeLink(c, m, r); });
    } else {
      reply = AdminCall<v1::InjectFaultRequest, v1::InjectFaultReply>(
          request, [&](auto* c, const auto& m, auto* r) { return admin.InjectFault(c, m, r); });
    }
    respond(std::move(reply));
  };
  if (!calls_.Post(std::move(job))) {
    respond(ErrorReply(429, "RESOURCE_EXHAUSTED",
                       "8 console actions are already waiting; try again in a moment"));
  }
}

}  // namespace simarray::daemon
