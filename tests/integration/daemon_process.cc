#include "daemon_process.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "simarray/base/crc32c.h"
#include "simarray/rpc/rpc.h"

namespace simarray::testing {

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

namespace {

constexpr uint64_t kClientMaxWrite = 64 << 20;

// The simarrayd the tests run: $SIMARRAYD when set (the ThreadSanitizer run points it at
// build-tsan's, scripts/tsan.sh), else the one built with the tests.
const char* DaemonPath() {
  const char* path = std::getenv("SIMARRAYD");
  return path != nullptr && *path != '\0' ? path : SIMARRAYD_PATH;
}

// A free port on `ip` below the kernel's ephemeral range (32768 and up by default). A peer
// port must survive restarts of its daemon; one handed out by port 0 is ephemeral, and after
// a kill -9 any outgoing connection may take it before the daemon binds it again. 0 if none.
int PortOutsideEphemeralRange(const std::string& ip) {
  static std::mt19937 random{std::random_device{}()};
  const int first = 20000 + static_cast<int>(random() % 12000);
  for (int i = 0; i < 400; ++i) {
    const int port = 20000 + (first - 20000 + i) % 12000;
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return 0;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    inet_pton(AF_INET, ip.c_str(), &addr.sin_addr);
    const bool free = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0;
    close(fd);
    if (free) return port;
  }
  return 0;
}

std::string JsonField(const std::string& json, const std::string& key) {
  std::smatch m;
  std::regex re("\"" + key + "\": \"([^\"]*)\"");
  return std::regex_search(json, m, re) ? m[1].str() : std::string();
}

std::chrono::system_clock::time_point Deadline(int seconds = 30) {
  return std::chrono::system_clock::now() + std::chrono::seconds(seconds);
}

}  // namespace

TempDir::TempDir() {
  char templ[] = "/tmp/simarray-test-XXXXXX";
  char* made = mkdtemp(templ);
  REQUIRE(made != nullptr);
  path_ = made;
}

TempDir::~TempDir() {
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);
}

Daemon::Daemon(std::string dir, DaemonOptions options)
    : dir_(std::move(dir)), options_(std::move(options)) {
  std::filesystem::create_directories(dir_);
}

void Daemon::WriteConfig() {
  std::ofstream config(config_path());
  config << "name = \"" << options_.role << "\"\n"
         << "role = \"" << options_.role << "\"\n"
         << "data_dir = \"" << dir_ << "/data\"\n"
         << "track_size = \"" << options_.track_size << "\"\n"
         << "max_write = \"" << options_.max_write
         << "\"\n"
         // "bypass" is refused in a config file: Start passes the flag instead.
         << "holding_pen = \""
         << (options_.holding_pen == "bypass" ? "local" : options_.holding_pen) << "\"\n"
         << "host_workers = 4\n";
  const bool single_peer = options_.group.empty() && options_.groups.empty();
  if (single_peer) {
    config << "mode = \"" << options_.mode << "\"\n"
           << "cycle_ms = " << options_.cycle_ms << "\n";
  }
  config << options_.extra << "\n"
         << "[cache]\nsize = \"" << options_.cache_size << "\"\n"
         << "persistent = " << (options_.persistent ? "true" : "false") << "\n"
         << "[mirror_queue]\ncapacity = 1024\n"
         << "[admin]\nlisten = \"" << options_.bind_ip << ":0\"\n"
         << (options_.admin_token ? "token_file = \"admin.token\"\n" : "")
         << (options_.metrics ? "[metrics]\nlisten = \"127.0.0.1:0\"\n" : "")
         << "[peer]\nlisten = \"" << (peer_.empty() ? options_.bind_ip + ":0" : peer_) << "\"\n";
  if (!options_.peer_advertise.empty()) {
    config << "advertise = \"" << options_.peer_advertise << "\"\n";
  }
  if (!options_.peer_address.empty() && single_peer) {
    config << "address = \"" << options_.peer_address << "\"\n";
  }
  if (!options_.peer_secret.empty()) {
    const std::string secret_file = dir_ + "/peer.secret";
    std::ofstream(secret_file) << options_.peer_secret << "\n";
    std::filesystem::permissions(
        secret_file, std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
    config << "secret_file = \"" << secret_file << "\"\n";
  }
  if (!options_.tls_dir.empty()) {
    const std::string base = options_.tls_dir + "/" + options_.role;
    config << "tls.cert_file = \"" << base << ".crt\"\n"
           << "tls.key_file = \"" << base << ".key\"\n"
           << "tls.ca_file = \"" << options_.tls_dir << "/ca.crt\"\n";
  }
  if (single_peer) {
    config << "[link]\nack_timeout_ms = " << options_.ack_timeout_ms << "\n"
           << "policy = \"" << options_.link_policy << "\"\n";
  }
  config << "[log]\nlevel = \"info\"\n";
  for (const GroupOptions& g : options_.groups) {
    config << "[[rdf_group]]\nname = \"" << g.name << "\"\nnumber = " << g.number << "\n"
           << "role = \"" << g.role << "\"\nmode = \"" << g.mode << "\"\ncycle_ms = " << g.cycle_ms
           << "\nlink.ack_timeout_ms = " << options_.ack_timeout_ms << "\n";
    if (!g.peer_address.empty()) config << "peer.address = \"" << g.peer_address << "\"\n";
    config << options_.extra_group_keys;
  }
  if (!options_.group.empty() && options_.groups.empty()) {
    config << "[[rdf_group]]\nname = \"" << options_.group << "\"\nnumber = 7\n"
           << "mode = \"" << options_.mode << "\"\ncycle_ms = " << options_.cycle_ms << "\n"
           << "link.ack_timeout_ms = " << options_.ack_timeout_ms << "\n"
           << "link.policy = \"" << options_.link_policy << "\"\n";
    if (!options_.peer_address.empty()) {
      config << "peer.address = \"" << options_.peer_address << "\"\n";
    }
  }
  for (int i = 0; i < options_.host_adaptors; ++i) {
    config << "[[host_adaptor]]\nid = \"ha" << i << "\"\nlisten = \"" << options_.bind_ip
           << ":0\"\n";
  }
  for (int i = 0; i < options_.nbd_adaptors; ++i) {
    config << "[[host_adaptor]]\nid = \"nbd" << i
           << "\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"nbd\"\n";
  }
}

Daemon::~Daemon() {
  if (pid_ > 0) Kill(SIGKILL);
}

const std::string& Daemon::PickPeerAddress() {
  // A restart keeps the peer port of the first start, so its peer finds it again.
  if (peer_.empty() && options_.netns.empty()) {
    if (const int port = PortOutsideEphemeralRange(options_.bind_ip); port != 0) {
      peer_ = options_.bind_ip + ":" + std::to_string(port);
    }
  }
  return peer_;
}

void Daemon::Start() {
  PickPeerAddress();
  WriteConfig();
  const std::string ready = dir_ + "/ready.json";
  std::filesystem::remove(ready);
  const std::string log = dir_ + "/daemon.log";
  fflush(nullptr);  // the child must not repeat our buffered output
  pid_ = fork();
  REQUIRE(pid_ >= 0);
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no daemon outlives a crashed test
    FILE* out = freopen(log.c_str(), "a", stdout);
    FILE* err = freopen(log.c_str(), "a", stderr);
    (void)out;
    (void)err;
    const std::string config = config_path();
    std::vector<const char*> args;
    if (!options_.netns.empty()) {
      for (const char* a : {"ip", "netns", "exec", options_.netns.c_str()}) args.push_back(a);
    }
    for (const char* a :
         {DaemonPath(), "--config", config.c_str(), "--ready-file", ready.c_str()}) {
      args.push_back(a);
    }
    if (options_.holding_pen == "bypass") args.push_back("--unsafe-bypass-holding-pen");
    args.push_back(nullptr);
    execv(options_.netns.empty() ? DaemonPath() : "/bin/ip", const_cast<char* const*>(args.data()));
    _exit(127);
  }
  bool up = Eventually([&] {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) == pid_) {
      pid_ = -1;
      return true;
    }
    return std::filesystem::exists(ready);
  });
  INFO("daemon log:\n" << ReadFile(log));
  REQUIRE(up);
  REQUIRE(pid_ > 0);
  const std::string json = ReadFile(ready);
  peer_ = JsonField(json, "peer");
  host_addresses_.clear();
  hosts_.clear();
  for (int i = 0; i < options_.host_adaptors; ++i) {
    host_addresses_.push_back(JsonField(json, "ha" + std::to_string(i)));
    hosts_.push_back(
        v1::HostService::NewStub(rpc::MakeChannel(host_addresses_.back(), kClientMaxWrite)));
  }
  nbd_addresses_.clear();
  for (int i = 0; i < options_.nbd_adaptors; ++i) {
    nbd_addresses_.push_back(JsonField(json, "nbd" + std::to_string(i)));
  }
  admin_address_ = JsonField(json, "admin");
  metrics_address_ = JsonField(json, "metrics");
  admin_ = v1::AdminService::NewStub(rpc::MakeChannel(admin_address_, kClientMaxWrite));
}

void Daemon::Kill(int signal) {
  if (pid_ <= 0) return;
  kill(pid_, signal);
  if (signal == SIGCONT) return;
  if (signal == SIGSTOP) {
    // kill() returns before the process is stopped: wait until /proc says it is.
    REQUIRE(Eventually([&] {
      std::string stat = ReadFile("/proc/" + std::to_string(pid_) + "/stat");
      auto close_paren = stat.rfind(')');
      return close_paren != std::string::npos && close_paren + 2 < stat.size() &&
             stat[close_paren + 2] == 'T';
    }));
    return;
  }
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
}

int Daemon::WaitExit(std::chrono::milliseconds limit) {
  if (pid_ <= 0) return -1;
  int status = 0;
  const auto end = std::chrono::steady_clock::now() + limit;
  while (waitpid(pid_, &status, WNOHANG) == 0) {
    if (std::chrono::steady_clock::now() >= end) return -1;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int Daemon::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

v1::StatusReply Daemon::Status() {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  Authorize(context);
  v1::StatusReply reply;
  grpc::Status s = admin_->Status(&context, v1::StatusRequest(), &reply);
  INFO("Status: " << s.error_message() << "\ndaemon log:\n" << ReadFile(dir_ + "/daemon.log"));
  REQUIRE(s.ok());
  return reply;
}

std::string Daemon::admin_token() const {
  if (!options_.admin_token) return "";
  std::string token = ReadFile(data_dir() + "/admin.token");
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) token.pop_back();
  return token;
}

void Daemon::Authorize(grpc::ClientContext& context) const {
  if (options_.admin_token) context.AddMetadata("authorization", "Bearer " + admin_token());
}

Pair::Pair(DaemonOptions primary_options, DaemonOptions mirror_options) {
  mirror_options.role = "mirror";
  mirror = std::make_unique<Daemon>(dir.path() + "/mirror", mirror_options);
  mirror->Start();
  primary_options.role = "primary";
  primary_options.peer_address = mirror->peer_address();
  primary = std::make_unique<Daemon>(dir.path() + "/primary", primary_options);
  primary->Start();
  REQUIRE(Eventually([&] { return primary->Status().link().state() == "up"; }));
}

grpc::Status CreateVolumeCall(Daemon& daemon, const std::string& name, uint64_t size,
                              v1::VolumeInfo* info) {
  grpc::ClientContext context;
  context.set_deadline(Deadline());
  daemon.Authorize(context);
  v1::CreateVolumeRequest request;
  request.set_name(name);
  request.set_size(size);
  v1::VolumeInfo reply;
  return daemon.admin().CreateVolume(&context, request, info != nullptr ? info : &reply);
}

void Pair::CreateVolume(const std::string& name, uint64_t size) {
  v1::VolumeInfo reply;
  grpc::Status s = CreateVolumeCall(*primary, name, size, &reply);
  INFO(s.error_message());
  REQUIRE(s.ok());
  REQUIRE(reply.paired());
}

ExitResult RunDaemonExpectingExit(const std::string& dir, const std::string& config_text) {
  std::filesystem::create_directories(dir);
  const std::string config = dir + "/bad.toml";
  const std::string log = dir + "/bad.log";
  std::ofstream(config) << config_text;
  fflush(nullptr);
  pid_t pid = fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    FILE* err = freopen(log.c_str(), "w", stderr);
    (void)err;
    execl(DaemonPath(), DaemonPath(), "--config", config.c_str(), "--data-dir",
          (dir + "/data").c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  int status = 0;
  bool exited = Eventually([&] { return waitpid(pid, &status, WNOHANG) == pid; });
  if (!exited) {
    kill(pid, SIGKILL);
    waitpid(pid, &status, 0);
  }
  REQUIRE(exited);
  return ExitResult{WIFEXITED(status) ? WEXITSTATUS(status) : -1, ReadFile(log)};
}

}  // namespace simarray::testing
