#include "simarray/nbd/nbd_server.h"

// clang-format off
#include <utility>  // before any Asio header (Boost 1.74 with GCC 12, docs/toolchain.md)
// clang-format on
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <chrono>
#include <future>
#include <optional>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "nbd_connection.h"
#include "spdlog/spdlog.h"

namespace simarray::nbd {

namespace asio = boost::asio;
using boost::system::error_code;
using tcp = asio::ip::tcp;

// The I/O side of the server; used on its thread only, except Start and Stop.
struct NbdIo {
  asio::io_context context{1};
  tcp::acceptor acceptor{context};
  asio::steady_timer retry{context};  // re-arms accept after a failure (e.g. EMFILE)
  std::optional<asio::executor_work_guard<asio::io_context::executor_type>> guard;
  uint64_t next_connection = 1;
};

namespace {

void Accept(NbdIo* io, std::shared_ptr<NbdShared> shared);

void OnAccept(NbdIo* io, const std::shared_ptr<NbdShared>& shared, const error_code& ec,
              tcp::socket socket) {
  if (ec == asio::error::operation_aborted || !io->acceptor.is_open()) return;
  if (ec) {
    spdlog::warn("host adaptor {}: nbd accept: {}; retrying", shared->id, ec.message());
    io->retry.expires_after(std::chrono::milliseconds(100));
    io->retry.async_wait([io, shared](const error_code& e) {
      try {
        if (!e) Accept(io, shared);
      } catch (const std::exception& x) {
        spdlog::error("host adaptor {}: nbd accept: {}", shared->id, x.what());
      }
    });
    return;
  }
  if (shared->open.size() >= shared->options.max_connections) {
    shared->refused.fetch_add(1);
    spdlog::warn("host adaptor {}: nbd connection refused: {} connections open (the limit)",
                 shared->id, shared->open.size());
    error_code ignored;
    socket.close(ignored);
  } else {
    const uint64_t number = io->next_connection++;
    auto connection = std::make_shared<NbdConnection>(std::move(socket), shared, number);
    shared->open.emplace(number, connection);
    shared->accepted.fetch_add(1);
    connection->Start();
  }
  Accept(io, shared);
}

void Accept(NbdIo* io, std::shared_ptr<NbdShared> shared) {
  io->acceptor.async_accept([io, shared](const error_code& ec, tcp::socket socket) {
    try {
      OnAccept(io, shared, ec, std::move(socket));
    } catch (const std::exception& e) {
      // Keep accepting: one failed connection is not the port's end.
      spdlog::error("host adaptor {}: nbd accept: {}", shared->id, e.what());
      if (io->acceptor.is_open()) Accept(io, shared);
    }
  });
}

}  // namespace

NbdServer::NbdServer(NbdServerOptions options, NbdServerParts parts)
    : shared_(std::make_shared<NbdShared>()), io_(std::make_unique<NbdIo>()) {
  shared_->options = std::move(options);
  shared_->parts = std::move(parts);
  shared_->id = shared_->parts.host->id();
  disk::VolumeCatalog* volumes = shared_->parts.volumes;
  ExportCatalog& catalog = shared_->catalog;
  catalog.size_of = [volumes](const std::string& name) -> std::optional<uint64_t> {
    auto volume = volumes->Find(name);
    if (!volume.ok()) return std::nullopt;
    return (*volume)->size;
  };
  catalog.names = [volumes] {
    std::vector<std::string> names;
    for (const disk::VolumeInfo& v : volumes->List()) names.push_back(v.name);
    return names;
  };
  catalog.accepts_writes = shared_->parts.accepts_writes;
  catalog.track_size = shared_->parts.track_size;
  catalog.max_payload = static_cast<uint32_t>(shared_->parts.host->max_write());
}

NbdServer::~NbdServer() { Stop(); }

absl::StatusOr<std::string> NbdServer::Start() {
  const std::string& listen = shared_->options.listen;
  const size_t colon = listen.rfind(':');
  uint32_t port = 0;
  if (colon == std::string::npos || !absl::SimpleAtoi(listen.substr(colon + 1), &port) ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("nbd listen address \"", listen, "\": expected host:port"));
  }
  const std::string host = listen.substr(0, colon);
  std::string bare = host;
  if (bare.size() >= 2 && bare.front() == '[' && bare.back() == ']') {
    bare = bare.substr(1, bare.size() - 2);
  }
  error_code ec;
  tcp::endpoint endpoint;
  asio::ip::address address = asio::ip::make_address(bare, ec);
  if (!ec) {
    endpoint = tcp::endpoint(address, static_cast<uint16_t>(port));
  } else {
    tcp::resolver resolver(io_->context);
    auto results = resolver.resolve(bare, std::to_string(port), ec);
    if (ec || results.empty()) {
      return absl::UnavailableError(absl::StrCat("cannot resolve ", listen, ": ", ec.message()));
    }
    endpoint = results.begin()->endpoint();
  }
  tcp::acceptor& acceptor = io_->acceptor;
  acceptor.open(endpoint.protocol(), ec);
  if (!ec) acceptor.set_option(tcp::acceptor::reuse_address(true), ec);
  if (!ec) acceptor.bind(endpoint, ec);
  if (!ec) acceptor.listen(asio::socket_base::max_listen_connections, ec);
  tcp::endpoint bound;
  if (!ec) bound = acceptor.local_endpoint(ec);
  if (ec) {
    error_code ignored;
    acceptor.close(ignored);
    return absl::UnavailableError(absl::StrCat("cannot listen on ", listen, ": ", ec.message()));
  }
  io_->guard.emplace(asio::make_work_guard(io_->context));
  Accept(io_.get(), shared_);
  thread_ = std::thread([io = io_.get(), id = shared_->id] {
    try {
      io->context.run();
    } catch (const std::exception& e) {
      spdlog::error("host adaptor {}: nbd I/O thread stopped: {}", id, e.what());
    }
  });
  started_ = true;
  return absl::StrCat(host, ":", bound.port());
}

void NbdServer::Stop() {
  if (stopped_) return;
  stopped_ = true;
  if (!started_) return;
  // Stop accepting and close every connection on the I/O thread; handlers still pending
  // (and work-pool results posted later) are destroyed with the io_context, never run.
  auto closed = std::make_shared<std::promise<void>>();
  asio::post(io_->context, [io = io_.get(), shared = shared_, closed] {
    try {
      error_code ignored;
      io->acceptor.close(ignored);
      io->retry.cancel();
      auto open = shared->open;  // Close() erases from the map
      for (auto& [number, connection] : open) connection->Close("server stopping");
      shared->open.clear();
    } catch (const std::exception& e) {
      spdlog::error("host adaptor {}: nbd stop: {}", shared->id, e.what());
    }
    closed->set_value();
  });
  if (closed->get_future().wait_for(std::chrono::seconds(10)) != std::future_status::ready) {
    spdlog::error("host adaptor {}: nbd I/O thread did not close its connections in 10 s",
                  shared_->id);
  }
  io_->guard.reset();
  io_->context.stop();
  if (thread_.joinable()) thread_.join();
}

const std::string& NbdServer::id() const { return shared_->id; }

NbdCounters NbdServer::Counters() const {
  NbdCounters c;
  c.connections_accepted = shared_->accepted.load();
  c.connections_refused = shared_->refused.load();
  c.connections_open = shared_->open_count.load();
  c.protocol_errors = shared_->protocol_errors.load();
  c.writes_dropped = shared_->writes_dropped.load();
  return c;
}

}  // namespace simarray::nbd
