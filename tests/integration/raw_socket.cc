#include "raw_socket.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <regex>

namespace simarray::testing {

int ConnectTcp(const std::string& address) {
  const size_t colon = address.rfind(':');
  REQUIRE(colon != std::string::npos);
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  REQUIRE(inet_pton(AF_INET, address.substr(0, colon).c_str(), &sa.sin_addr) == 1);
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  timeval tv{10, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof sa) == 0);
  return fd;
}

void SendGarbage(const std::string& address, const std::string& bytes) {
  const int fd = ConnectTcp(address);
  (void)!send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL);
  close(fd);
}

bool ClosedByPeer(int fd, int wait_ms) {
  const auto end = std::chrono::steady_clock::now() + std::chrono::milliseconds(wait_ms);
  char buf[4096];
  while (std::chrono::steady_clock::now() < end) {
    pollfd p{fd, POLLIN, 0};
    if (poll(&p, 1, 100) <= 0) continue;
    const ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)) return true;
  }
  return false;
}

HttpReply HttpGet(const std::string& address, const std::string& path) {
  const int fd = ConnectTcp(address);
  const std::string request = "GET " + path + " HTTP/1.1\r\nHost: " + address +
                              "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";
  REQUIRE(send(fd, request.data(), request.size(), 0) == static_cast<ssize_t>(request.size()));
  std::string raw;
  char buf[16384];
  for (;;) {
    ssize_t n = recv(fd, buf, sizeof buf, 0);
    if (n <= 0) break;
    raw.append(buf, n);
  }
  close(fd);
  HttpReply reply;
  const size_t end = raw.find("\r\n\r\n");
  REQUIRE(end != std::string::npos);
  std::smatch m;
  const std::string head = raw.substr(0, end);
  REQUIRE(std::regex_search(head, m, std::regex("^HTTP/1\\.1 (\\d{3}) ")));
  reply.status = std::stoi(m[1].str());
  if (std::regex_search(head, m, std::regex("\r\n[Cc]ontent-[Tt]ype: ([^\r]*)"))) {
    reply.content_type = m[1].str();
  }
  reply.body = raw.substr(end + 4);
  REQUIRE(std::regex_search(head, m, std::regex("\r\n[Cc]ontent-[Ll]ength: (\\d+)")));
  REQUIRE(std::stoul(m[1].str()) == reply.body.size());
  return reply;
}

}  // namespace simarray::testing
