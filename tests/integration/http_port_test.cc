// The daemon's HTTP port beyond /metrics (docs/console.md): the console's event streams and
// actions, and the port's own bounds, spoken to in raw HTTP.
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>
#include <utility>
#include <vector>

#include "daemon_process.h"
#include "raw_socket.h"

namespace simarray::testing {
namespace {

// Sends `request` (raw HTTP) to `address`; returns the socket and the status line's code.
std::pair<int, int> RawRequest(const std::string& address, const std::string& request) {
  const int fd = ConnectTcp(address);
  REQUIRE(send(fd, request.data(), request.size(), MSG_NOSIGNAL) ==
          static_cast<ssize_t>(request.size()));
  char head[13] = {};
  size_t got = 0;
  while (got < 12) {
    const ssize_t n = recv(fd, head + got, 12 - got, 0);
    REQUIRE(n > 0);
    got += static_cast<size_t>(n);
  }
  return {fd, std::atoi(head + 9)};  // "HTTP/1.1 200"
}

std::pair<int, int> OpenEventStream(const std::string& address) {
  return RawRequest(address, "GET /api/events HTTP/1.1\r\nHost: x\r\n\r\n");
}

// The status of a POST of `body` to `path` with these extra header lines, on a new
// connection.
int Post(const std::string& address, const std::string& path, const std::string& headers,
         const std::string& body) {
  auto [fd, code] =
      RawRequest(address, "POST " + path + " HTTP/1.1\r\nHost: " + address + "\r\n" + headers +
                              "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body);
  close(fd);
  return code;
}

}  // namespace

TEST_CASE("the console's event streams are bounded: one past 32 is answered 503",
          "[integration][metrics][console]") {
  SoloWithHttp solo;
  Daemon& daemon = solo.daemon;
  std::vector<int> open;
  for (int i = 0; i < 32; ++i) {
    auto [fd, code] = OpenEventStream(daemon.metrics_address());
    REQUIRE(code == 200);
    open.push_back(fd);
  }
  auto [refused, code] = OpenEventStream(daemon.metrics_address());
  CHECK(code == 503);
  close(refused);
  // A stream whose client leaves frees its place.
  close(open.back());
  open.pop_back();
  CHECK(Eventually([&] {
    auto [fd, again] = OpenEventStream(daemon.metrics_address());
    if (again == 200)
      open.push_back(fd);
    else
      close(fd);
    return again == 200;
  }));
  CHECK(HttpGet(daemon.metrics_address(), "/metrics").status == 200);  // still serving
  for (int fd : open) close(fd);
  CHECK(daemon.Stop() == 0);
}

TEST_CASE("console actions refuse what another site's page could make a browser send",
          "[integration][metrics][console]") {
  SoloWithHttp solo;  // no admin token: only these checks stand in the way
  Daemon& daemon = solo.daemon;
  const std::string& http = daemon.metrics_address();
  const std::string drop = R"({"kind":"FAULT_DELAY_RECORDS","duration_ms":0})";
  // A form's content type, from another site: refused before any admin call.
  CHECK(Post(http, "/api/admin/InjectFault", "Content-Type: text/plain\r\n", drop) == 415);
  CHECK(Post(http, "/api/admin/InjectFault",
             "Content-Type: application/json\r\nOrigin: http://elsewhere.example\r\n",
             drop) == 400);
  // Bytes gRPC metadata cannot carry, refused rather than passed on.
  CHECK(Post(http, "/api/admin/InjectFault",
             "Content-Type: application/json\r\nAuthorization: Bearer \xff\xfe\r\n", drop) == 400);
  // A body over 64 KiB is refused from its Content-Length, before it is read.
  auto [fd, code] = RawRequest(http, "POST /api/admin/InjectFault HTTP/1.1\r\nHost: " + http +
                                         "\r\nContent-Type: application/json\r\n"
                                         "Content-Length: 1048576\r\n\r\n{}");
  close(fd);
  CHECK(code == 400);
  // The page's own request goes through (this daemon needs no token).
  CHECK(Post(http, "/api/admin/InjectFault",
             "Content-Type: application/json\r\nOrigin: http://" + http + "\r\n", drop) == 200);
  CHECK(daemon.Stop() == 0);
}

TEST_CASE("an event stream resumed from an id this daemon never gave gets a gap and goes on",
          "[integration][metrics][console]") {
  SoloWithHttp solo;
  Daemon& daemon = solo.daemon;
  // As after a restart: the browser's Last-Event-ID is from the daemon's previous run.
  auto [fd, code] =
      RawRequest(daemon.metrics_address(),
                 "GET /api/events HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 999999\r\n\r\n");
  REQUIRE(code == 200);
  std::string seen;
  char buffer[4096];
  while (seen.find("event: status") == std::string::npos) {
    const ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    REQUIRE(n > 0);
    seen.append(buffer, static_cast<size_t>(n));
  }
  CHECK_THAT(seen, Catch::Contains("event: gap"));
  CHECK_THAT(seen, Catch::Contains("the daemon restarted since"));
  close(fd);
  CHECK(daemon.Stop() == 0);
}

TEST_CASE("the HTTP port keeps at most 256 connections and serves again when they go",
          "[integration][metrics]") {
  SoloWithHttp solo;
  Daemon& daemon = solo.daemon;
  std::vector<int> idle;
  for (int i = 0; i < 256; ++i) idle.push_back(ConnectTcp(daemon.metrics_address()));
  // One more is closed at once, without an answer.
  const int extra = ConnectTcp(daemon.metrics_address());
  CHECK(ClosedByPeer(extra, 5000));
  close(extra);
  for (int fd : idle) close(fd);
  CHECK(Eventually([&] { return HttpGet(daemon.metrics_address(), "/metrics").status == 200; }));
  CHECK(daemon.Stop() == 0);
}

}  // namespace simarray::testing
