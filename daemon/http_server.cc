#include "daemon/http_server.h"

// Boost 1.74 with GCC 12 in C++20 wants <utility> before Asio.
#include <utility>
// clang-format off
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
// clang-format on
#include <array>
#include <atomic>
#include <chrono>
#include <deque>
#include <map>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "spdlog/spdlog.h"

namespace simarray::daemon {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kHeaderLimit = 8 << 10;
constexpr size_t kBodyLimit = 64 << 10;
constexpr size_t kStreamBacklog = 4 << 20;
constexpr auto kIdleTimeout = std::chrono::seconds(10);
constexpr size_t kMaxSessions = 256;
constexpr auto kAcceptBackoff = std::chrono::milliseconds(100);

struct Routes {
  std::map<std::pair<std::string, std::string>, HttpServer::Handler> plain;  // (method, path)
  struct Stream {
    std::string content_type;
    HttpServer::StreamHandler handler;
    size_t max_open = 0;
    std::shared_ptr<std::atomic<size_t>> open = std::make_shared<std::atomic<size_t>>(0);
  };
  std::map<std::string, Stream> streams;  // by path; GET only

  bool Known(const std::string& path) const {
    if (streams.count(path) > 0) return true;
    for (const auto& [key, handler] : plain) {
      if (key.second == path) return true;
    }
    return false;
  }
};

std::string Header(const http::request<http::string_body>& req, http::field field) {
  auto it = req.find(field);
  return it == req.end() ? std::string() : std::string(it->value());
}

// One connection: read a request, answer, repeat while the client keeps it alive; or, for a
// stream route, keep writing what the stream is given until either side closes.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const Routes* routes, std::shared_ptr<std::atomic<bool>> serving,
          std::shared_ptr<std::atomic<size_t>> sessions)
      : stream_(std::move(socket)),
        routes_(routes),
        serving_(std::move(serving)),
        sessions_(std::move(sessions)) {
    sessions_->fetch_add(1);
  }
  ~Session() { sessions_->fetch_sub(1); }

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(kBodyLimit);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

  // Stream side, from any thread: queue bytes for the client.
  bool Send(std::string bytes) {
    if (closed_.load() || !serving_->load()) return false;
    asio::post(stream_.get_executor(), [self = shared_from_this(), bytes = std::move(bytes)] {
      self->Queue(std::move(bytes));
    });
    return true;
  }
  bool open() const { return !closed_.load() && serving_->load(); }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) {
      if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
          ec != asio::error::operation_aborted && ec != asio::error::connection_reset) {
        // A malformed or oversized request: answer 400 and close.
        Write(HttpReply{400,
                        "text/plain; charset=utf-8",
                        absl::StrCat("bad request: ", ec.message(), "\n"),
                        {}},
              false, 11, false);
        return;
      }
      Close();
      return;
    }
    const http::request<http::string_body>& req = parser_->get();
    HttpRequest request;
    request.method = std::string(req.method_string());
    const std::string_view target(req.target().data(), req.target().size());
    const size_t question = target.find('?');
    request.path = std::string(target.substr(0, question));
    if (question != std::string_view::npos) request.query = target.substr(question + 1);
    request.authorization = Header(req, http::field::authorization);
    request.content_type = Header(req, http::field::content_type);
    request.origin = Header(req, http::field::origin);
    request.host = Header(req, http::field::host);
    if (auto it = req.find("Last-Event-ID"); it != req.end()) {
      request.last_event_id = std::string(it->value());
    }
    request.body = req.body();
    const bool keep_alive = req.keep_alive();
    const unsigned version = req.version();
    const bool head = req.method() == http::verb::head;
    // The read's timeout must not cut a reply that takes its time (an admin call queued
    // behind others); Write sets it again.
    stream_.expires_never();

    if (auto s = routes_->streams.find(request.path); s != routes_->streams.end()) {
      if (req.method() != http::verb::get) {
        Write(HttpReply{405, "text/plain; charset=utf-8", "only GET\n", {}}, keep_alive, version,
              head);
      } else if (s->second.open->load() >= s->second.max_open) {
        Write(HttpReply{503,
                        "text/plain; charset=utf-8",
                        absl::StrCat("already ", s->second.max_open, " streams open on ",
                                     request.path, "; close one or try again later\n"),
                        {{"Retry-After", "5"}}},
              false, version, head);
      } else {
        StartStream(request, s->second);
      }
      return;
    }
    const std::string method = head ? std::string("GET") : request.method;
    auto it = routes_->plain.find({method, request.path});
    if (it == routes_->plain.end()) {
      if (routes_->Known(request.path)) {
        Write(HttpReply{405,
                        "text/plain; charset=utf-8",
                        absl::StrCat("method ", request.method, " not allowed on ", request.path,
                                     "\n"),
                        {}},
              keep_alive, version, head);
      } else {
        Write(HttpReply{404,
                        "text/plain; charset=utf-8",
                        absl::StrCat("not found: ", request.path,
                                     " (try /metrics, or / for the console)\n"),
                        {}},
              keep_alive, version, head);
      }
      return;
    }
    // The reply may come from another thread: it is carried back to this one. Only the first
    // counts (a handler that answered and then threw gets no second reply).
    auto answered = std::make_shared<std::atomic<bool>>(false);
    HttpServer::Respond respond = [self = shared_from_this(), keep_alive, version, head,
                                   answered](HttpReply reply) {
      if (answered->exchange(true)) return;
      asio::post(self->stream_.get_executor(),
                 [self, keep_alive, version, head, reply = std::move(reply)]() mutable {
                   self->Write(std::move(reply), keep_alive, version, head);
                 });
    };
    try {
      it->second(request, std::move(respond));
    } catch (const std::exception& e) {
      if (answered->exchange(true)) return;
      Write(HttpReply{500,
                      "text/plain; charset=utf-8",
                      absl::StrCat("cannot answer ", request.path, ": ", e.what(), "\n"),
                      {}},
            false, version, head);
    }
  }

  void Write(HttpReply reply, bool keep_alive, unsigned version, bool head) {
    auto res = std::make_shared<http::response<http::string_body>>(
        static_cast<http::status>(reply.status), version);
    res->set(http::field::server, "simarrayd");
    res->set(http::field::content_type, reply.content_type);
    for (const auto& [name, value] : reply.headers) res->set(name, value);
    res->keep_alive(keep_alive);
    res->body() = std::move(reply.body);
    try {
      res->prepare_payload();
    } catch (const std::exception& e) {  // a body where the status allows none
      res->result(http::status::internal_server_error);
      res->body() = absl::StrCat("cannot answer: ", e.what(), "\n");
      res->prepare_payload();
    }
    stream_.expires_after(kIdleTimeout);
    if (head) res->body().clear();  // Content-Length stays that of the GET
    http::async_write(stream_, *res,
                      [self = shared_from_this(), res, keep_alive](beast::error_code ec, size_t) {
                        if (ec || !keep_alive) {
                          self->Close();
                        } else {
                          self->ReadRequest();
                        }
                      });
  }

  // The response head goes out at once; the body is whatever the stream is sent, until the
  // connection closes (no Content-Length: the end of the connection ends the body).
  void StartStream(const HttpRequest& request, const Routes::Stream& route) {
    stream_.expires_never();
    open_streams_ = route.open;
    open_streams_->fetch_add(1);
    Queue(absl::StrCat("HTTP/1.1 200 OK\r\nServer: simarrayd\r\nContent-Type: ", route.content_type,
                       "\r\nCache-Control: no-cache\r\nConnection: close\r\n\r\n"));
    WatchForClose();
    class Stream : public HttpStream {
     public:
      explicit Stream(std::shared_ptr<Session> session) : session_(std::move(session)) {}
      bool Send(std::string bytes) override { return session_->Send(std::move(bytes)); }
      bool open() const override { return session_->open(); }

     private:
      std::shared_ptr<Session> session_;
    };
    try {
      route.handler(request, std::make_shared<Stream>(shared_from_this()));
    } catch (const std::exception& e) {
      spdlog::warn("http: stream {} failed to start: {}", request.path, e.what());
      Close();
    }
  }

  // A stream's client sends nothing more; a read that ends means it went away.
  void WatchForClose() {
    stream_.socket().async_read_some(asio::buffer(discard_),
                                     [self = shared_from_this()](beast::error_code ec, size_t) {
                                       if (ec) {
                                         self->Close();
                                       } else {
                                         self->WatchForClose();
                                       }
                                     });
  }

  void Queue(std::string bytes) {
    if (closed_.load()) return;
    backlog_ += bytes.size();
    if (backlog_ > kStreamBacklog) {
      spdlog::warn("http: a stream's client lags {} bytes behind; closing it", backlog_);
      Close();
      return;
    }
    out_.push_back(std::move(bytes));
    if (out_.size() == 1) WriteNext();
  }

  void WriteNext() {
    asio::async_write(stream_, asio::buffer(out_.front()),
                      [self = shared_from_this()](beast::error_code ec, size_t n) {
                        self->backlog_ -= n;
                        self->out_.pop_front();
                        if (ec) {
                          self->Close();
                        } else if (!self->out_.empty()) {
                          self->WriteNext();
                        }
                      });
  }

  void Close() {
    if (closed_.exchange(true)) return;
    if (open_streams_) open_streams_->fetch_sub(1);
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  const Routes* routes_;
  std::shared_ptr<std::atomic<bool>> serving_;     // false once the server stops
  std::shared_ptr<std::atomic<size_t>> sessions_;  // the server's count of open sessions
  std::atomic<bool> closed_{false};
  // Stream routes only, on the server thread.
  std::shared_ptr<std::atomic<size_t>> open_streams_;  // the route's count, while counted
  std::deque<std::string> out_;
  size_t backlog_ = 0;
  std::array<char, 256> discard_;
};

}  // namespace

struct HttpServer::Impl {
  std::string listen;
  Routes routes;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  std::shared_ptr<std::atomic<bool>> serving = std::make_shared<std::atomic<bool>>(false);
  std::shared_ptr<std::atomic<size_t>> sessions = std::make_shared<std::atomic<size_t>>(0);
  asio::steady_timer retry{io};
  bool started = false;

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (ec) {
        // Out of file descriptors, say: try again a little later rather than spin.
        spdlog::warn("http: accept failed: {}", ec.message());
        retry.expires_after(kAcceptBackoff);
        retry.async_wait([this](beast::error_code wait) {
          if (!wait) Accept();
        });
        return;
      }
      if (sessions->load() >= kMaxSessions) {
        beast::error_code ignored;
        socket.close(ignored);  // full: the client may try again
      } else {
        try {
          std::make_shared<Session>(std::move(socket), &routes, serving, sessions)->ReadRequest();
        } catch (const std::exception& e) {
          spdlog::warn("http: connection dropped: {}", e.what());
        }
      }
      Accept();
    });
  }

  void Run() {
    // Handlers do not throw; this only guards against the unexpected.
    for (;;) {
      try {
        io.run();
        return;
      } catch (const std::exception& e) {
        spdlog::error("http server: {}", e.what());
      }
    }
  }
};

HttpServer::HttpServer(std::string listen) : impl_(std::make_unique<Impl>()) {
  impl_->listen = std::move(listen);
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Route(std::string method, std::string path, Handler handler) {
  impl_->routes.plain[{std::move(method), std::move(path)}] = std::move(handler);
}

void HttpServer::RouteStream(std::string path, std::string content_type, size_t max_open,
                             StreamHandler handler) {
  Routes::Stream& route = impl_->routes.streams[std::move(path)];
  route.content_type = std::move(content_type);
  route.handler = std::move(handler);
  route.max_open = max_open;
}

absl::StatusOr<std::string> HttpServer::Start() {
  const std::string& listen = impl_->listen;
  const size_t colon = listen.rfind(':');
  if (colon == std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics.listen \"", listen, "\": expected host:port"));
  }
  std::string host = listen.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host == "localhost") host = "127.0.0.1";
  boost::system::error_code ec;
  const asio::ip::address address = asio::ip::make_address(host, ec);
  unsigned long port = 0;
  try {
    port = std::stoul(listen.substr(colon + 1));
  } catch (const std::exception&) {
    port = 1u << 16;
  }
  if (ec || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics.listen \"", listen, "\": expected an IP address and a port"));
  }
  const tcp::endpoint endpoint(address, static_cast<unsigned short>(port));
  tcp::acceptor& acceptor = impl_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(asio::socket_base::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  if (ec) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", listen, " (metrics): ", ec.message()));
  }
  const tcp::endpoint bound = acceptor.local_endpoint(ec);
  if (ec) return absl::UnavailableError(absl::StrCat("metrics listener: ", ec.message()));
  impl_->serving->store(true);
  impl_->Accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
  impl_->started = true;
  const std::string bound_host = address.is_v6() ? absl::StrCat("[", host, "]") : host;
  return absl::StrCat(bound_host, ":", bound.port());
}

void HttpServer::Stop() {
  if (!impl_->started) return;
  impl_->started = false;
  impl_->serving->store(false);
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace simarray::daemon
