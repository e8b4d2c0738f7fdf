#include "daemon/metrics_server.h"

// Boost 1.74 with GCC 12 in C++20 wants <utility> before Asio.
#include <utility>
// clang-format off
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/empty_body.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>
// clang-format on
#include <chrono>
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
constexpr auto kIdleTimeout = std::chrono::seconds(10);
constexpr const char* kContentType = "text/plain; version=0.0.4; charset=utf-8";

// One connection: read a request, answer, repeat while the client keeps it alive.
class Session : public std::enable_shared_from_this<Session> {
 public:
  Session(tcp::socket socket, const MetricsServer::Render* render)
      : stream_(std::move(socket)), render_(render) {}

  void ReadRequest() {
    parser_.emplace();
    parser_->header_limit(kHeaderLimit);
    parser_->body_limit(0);
    stream_.expires_after(kIdleTimeout);
    http::async_read(
        stream_, buffer_, *parser_,
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnRead(ec); });
  }

 private:
  void OnRead(beast::error_code ec) {
    if (ec) {
      if (ec != http::error::end_of_stream && ec != beast::error::timeout &&
          ec != asio::error::operation_aborted && ec != asio::error::connection_reset) {
        // A malformed or oversized request: answer 400 and close.
        Respond(http::status::bad_request, "bad request\n", false, 11);
        return;
      }
      Close();
      return;
    }
    const http::request<http::empty_body>& req = parser_->get();
    std::string_view target(req.target().data(), req.target().size());
    target = target.substr(0, target.find('?'));
    if (target != "/metrics") {
      Respond(http::status::not_found, "not found: try /metrics\n", req.keep_alive(),
              req.version());
    } else if (req.method() != http::verb::get && req.method() != http::verb::head) {
      Respond(http::status::method_not_allowed, "only GET\n", req.keep_alive(), req.version());
    } else {
      std::string body;
      http::status status = http::status::ok;
      try {
        body = (*render_)();
      } catch (const std::exception& e) {
        status = http::status::internal_server_error;
        body = absl::StrCat("cannot render metrics: ", e.what(), "\n");
      }
      Respond(status, std::move(body), req.keep_alive(), req.version(),
              req.method() == http::verb::head);
    }
  }

  void Respond(http::status status, std::string body, bool keep_alive, unsigned version,
               bool head = false) {
    auto res = std::make_shared<http::response<http::string_body>>(status, version);
    res->set(http::field::server, "simarrayd");
    res->set(http::field::content_type,
             status == http::status::ok ? kContentType : "text/plain; charset=utf-8");
    res->keep_alive(keep_alive);
    res->body() = std::move(body);
    res->prepare_payload();
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

  void Close() {
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ignored);
    stream_.socket().close(ignored);
  }

  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::empty_body>> parser_;
  const MetricsServer::Render* render_;
};

}  // namespace

struct MetricsServer::Impl {
  std::string listen;
  Render render;
  asio::io_context io{1};
  tcp::acceptor acceptor{io};
  std::thread thread;
  bool started = false;

  void Accept() {
    acceptor.async_accept([this](beast::error_code ec, tcp::socket socket) {
      if (ec == asio::error::operation_aborted || !acceptor.is_open()) return;
      if (!ec) {
        try {
          std::make_shared<Session>(std::move(socket), &render)->ReadRequest();
        } catch (const std::exception& e) {
          spdlog::warn("metrics: connection dropped: {}", e.what());
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
        spdlog::error("metrics server: {}", e.what());
      }
    }
  }
};

MetricsServer::MetricsServer(std::string listen, Render render) : impl_(std::make_unique<Impl>()) {
  impl_->listen = std::move(listen);
  impl_->render = std::move(render);
}

MetricsServer::~MetricsServer() { Stop(); }

absl::StatusOr<std::string> MetricsServer::Start() {
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
  impl_->Accept();
  impl_->thread = std::thread([impl = impl_.get()] { impl->Run(); });
  impl_->started = true;
  const std::string bound_host = address.is_v6() ? absl::StrCat("[", host, "]") : host;
  return absl::StrCat(bound_host, ":", bound.port());
}

void MetricsServer::Stop() {
  if (!impl_->started) return;
  impl_->started = false;
  impl_->io.stop();
  if (impl_->thread.joinable()) impl_->thread.join();
  boost::system::error_code ignored;
  impl_->acceptor.close(ignored);
}

}  // namespace simarray::daemon
