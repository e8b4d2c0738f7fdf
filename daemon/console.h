#pragma once
// Console: the web console on the daemon's HTTP port (docs/console.md). It serves
//   GET  /                 the page, and /console.js, /console.css (compiled into the binary)
//   GET  /api/status       the admin Status reply as JSON (no token: the same figures
//                          /metrics shows)
//   GET  /api/events       Server-Sent Events: "status" once a second (the Status reply and
//                          the host write and ship latency histograms), and "array" events
//                          (docs/events.md) with their ids; a client resumes with
//                          Last-Event-ID or ?after=ID, and an id the ring no longer holds
//                          gets a "gap" event and carries on from the newest; at most 32
//                          streams at a time (then 503)
//   POST /api/admin/M      M one of SuspendLink, ResumeLink, InjectFault (Content-Type
//                          application/json, and no other site's Origin): the JSON body is the
//                          request message, passed on as an admin call on the daemon's own
//                          admin port with the Authorization header the page sent, so the
//                          admin token, the checks and the events are the admin API's own.
// One feed thread samples the status and follows the event log for every open stream;
// admin calls run on one worker thread, at most 8 waiting.
//
// Thread-safe. Mount() before the server starts; Stop() before the server stops.

#include <atomic>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "daemon/http_server.h"
#include "simarray/base/work_pool.h"
#include "simarray/v1/admin.grpc.pb.h"

namespace simarray::daemon {

class Array;

class Console {
 public:
  // `admin_address`: where the admin service listens (0.0.0.0 is dialled as 127.0.0.1).
  Console(Array& array, const std::string& admin_address);
  ~Console();
  Console(const Console&) = delete;
  Console& operator=(const Console&) = delete;

  void Mount(HttpServer& http);
  void Start();
  // Ends every stream and joins the threads. Idempotent.
  void Stop();

 private:
  struct Subscriber {
    std::shared_ptr<HttpStream> stream;
    uint64_t after = 0;  // the last event id it was sent
    bool needs_status = true;
  };

  void Subscribe(const HttpRequest& request, std::shared_ptr<HttpStream> stream);
  void FeedLoop();
  // The "status" event: the Status reply and the latency histograms, as one JSON object.
  std::string StatusFrame();
  void Admin(const std::string& method, const HttpRequest& request, HttpServer::Respond respond);

  Array& array_;
  std::unique_ptr<v1::AdminService::Stub> admin_;
  WorkPool calls_{1, 8};
  absl::Mutex mu_;
  std::vector<Subscriber> subscribers_ ABSL_GUARDED_BY(mu_);
  absl::Notification stop_;
  std::atomic<bool> stopping_{false};
  std::thread feed_;
};

}  // namespace simarray::daemon
