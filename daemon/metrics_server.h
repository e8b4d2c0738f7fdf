#pragma once
// MetricsServer: a small HTTP/1.1 server (Boost.Beast) that answers `GET /metrics` with the
// text a Render callback produces at scrape time, in the Prometheus text exposition format.
// Other paths get 404, other methods 405. One io_context thread serves every connection;
// requests are bounded (8 KiB of headers, no body) and a connection idle for 30 s is closed.
// No exception leaves a handler: a failing render answers 500.
//
// Thread-safe: Start() and Stop() from one owner thread; Render runs on the server thread
// and must be safe to call concurrently with the rest of the daemon.

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace simarray::daemon {

class MetricsServer {
 public:
  using Render = std::function<std::string()>;

  // `listen`: host:port (port 0 picks a free one). `render` must outlive the server's Stop.
  MetricsServer(std::string listen, Render render);
  ~MetricsServer();
  MetricsServer(const MetricsServer&) = delete;
  MetricsServer& operator=(const MetricsServer&) = delete;

  // Binds and starts the server thread; returns the bound host:port.
  absl::StatusOr<std::string> Start();
  // Stops accepting, closes every connection and joins the thread. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simarray::daemon
