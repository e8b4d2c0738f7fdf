#pragma once
// HttpServer: the daemon's HTTP port (metrics.listen), a small HTTP/1.1 server on Boost.Beast:
// `GET /metrics` for Prometheus and the web console (docs/console.md). Routes map a method
// and an exact path to a handler; other paths get 404, other methods on a known path 405.
// One io_context thread serves every connection, at most 256 at a time (more are closed at
// once). Requests are bounded (8 KiB of headers, 64 KiB of body); a connection idle for
// 10 s is closed, except a stream; a reply that takes longer is still written.
//
// A handler runs on the server thread and must not block: it answers at once, or hands the
// Respond callable to another thread, which calls it exactly once (it is thread-safe; later
// calls are ignored). A
// stream route (Server-Sent Events) keeps the connection: the handler gets an HttpStream
// that any thread may Send on until the client goes away. No exception leaves a handler: one
// that throws answers 500.
//
// Thread-safe: Route() before Start(); Start() and Stop() from one owner thread.

#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace simarray::daemon {

struct HttpRequest {
  std::string method;         // "GET", "HEAD", "POST", ...
  std::string path;           // without the query
  std::string query;          // after '?', undecoded
  std::string authorization;  // the Authorization header, if any
  std::string last_event_id;  // the Last-Event-ID header (an event stream resuming), if any
  std::string content_type;   // the Content-Type header, if any
  std::string origin;         // the Origin header (a browser's cross-site request), if any
  std::string host;           // the Host header
  std::string body;
};

struct HttpReply {
  int status = 200;
  std::string content_type = "text/plain; charset=utf-8";
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // more, e.g. Cache-Control
};

// The open end of a stream route. Thread-safe.
class HttpStream {
 public:
  virtual ~HttpStream() = default;
  // Queues `bytes` for the client. False once the client is gone, or when it lags more than
  // 4 MiB behind (the stream is then closed: a client that does not read is dropped, never
  // waited for).
  virtual bool Send(std::string bytes) = 0;
  virtual bool open() const = 0;
};

class HttpServer {
 public:
  using Respond = std::function<void(HttpReply)>;
  using Handler = std::function<void(const HttpRequest&, Respond)>;
  using StreamHandler = std::function<void(const HttpRequest&, std::shared_ptr<HttpStream>)>;

  // `listen`: host:port (port 0 picks a free one).
  explicit HttpServer(std::string listen);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // `method` "GET" also answers HEAD (the body dropped).
  void Route(std::string method, std::string path, Handler handler);
  // A GET that streams `content_type` (e.g. text/event-stream) until the client leaves. At
  // most `max_open` at a time: one more is answered 503.
  void RouteStream(std::string path, std::string content_type, size_t max_open,
                   StreamHandler handler);

  // Binds and starts the server thread; returns the bound host:port.
  absl::StatusOr<std::string> Start();
  // Stops accepting, closes every connection and stream and joins the thread. Idempotent.
  void Stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace simarray::daemon
