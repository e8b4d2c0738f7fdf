#include "tools/bench/pair_launcher.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <regex>
#include <sstream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "simarray/base/secret.h"
#include "tools/bench/admin_calls.h"

namespace simarray::bench {
namespace {

constexpr auto kStartLimit = std::chrono::seconds(30);

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string Tail(const std::string& text, size_t max) {
  return text.size() <= max ? text : "..." + text.substr(text.size() - max);
}

// "key": "value" out of the ready file's one-level JSON.
std::string JsonField(const std::string& json, const std::string& key) {
  std::smatch m;
  return std::regex_search(json, m, std::regex("\"" + key + "\": \"([^\"]*)\"")) ? m[1].str() : "";
}

// The shipped configs' settings (cache, queue; the track size unless `options` names another),
// every listener on port 0.
std::string Config(const PairOptions& options, const std::string& role, const std::string& dir,
                   const std::string& peer_address) {
  std::string config = absl::StrCat(
      "name = \"", options.name, "-", role, "\"\n", "role = \"", role, "\"\n", "mode = \"",
      options.mode, "\"\n", "cycle_ms = ", options.cycle_ms, "\n",
      "cycle_cache_percent = ", options.cycle_cache_percent, "\n", "data_dir = \"", dir,
      "/data\"\n", "track_size = \"", options.track_size, "\"\n", "max_write = \"32M\"\n",
      // "bypass" is refused in a config file: the flag below turns it on.
      "holding_pen = \"", options.holding_pen == "bypass" ? "local" : options.holding_pen, "\"\n",
      "[cache]\nsize = \"256M\"\npersistent = true\n", "[mirror_queue]\ncapacity = 4096\n",
      "[[host_adaptor]]\nid = \"ha0\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"grpc\"\n");
  if (options.nbd && role == "primary") {
    absl::StrAppend(
        &config, "[[host_adaptor]]\nid = \"nbd0\"\nlisten = \"127.0.0.1:0\"\nprotocol = \"nbd\"\n");
  }
  absl::StrAppend(&config, "[admin]\nlisten = \"127.0.0.1:0\"\ntoken_file = \"admin.token\"\n",
                  "[peer]\nlisten = \"127.0.0.1:0\"\nsecret_file = \"peer.secret\"\n");
  if (!peer_address.empty()) absl::StrAppend(&config, "address = \"", peer_address, "\"\n");
  absl::StrAppend(&config, "[link]\npolicy = \"continue\"\nack_timeout_ms = 5000\n",
                  "[log]\nlevel = \"warn\"\n");
  absl::StrAppend(&config, role == "primary" ? options.primary_extra : options.mirror_extra);
  return config;
}

}  // namespace

absl::StatusOr<std::unique_ptr<LaunchedPair>> LaunchedPair::Start(const PairOptions& options) {
  std::unique_ptr<LaunchedPair> pair(new LaunchedPair);
  const std::string secret = Hex(RandomBytes(32));
  std::string mirror_peer, primary_peer;
  if (absl::Status s = pair->StartDaemon(options, "mirror", "", secret, &pair->mirror_process_,
                                         &pair->mirror_, &mirror_peer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = pair->StartDaemon(options, "primary", mirror_peer, secret,
                                         &pair->primary_process_, &pair->primary_, &primary_peer);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = WaitLinkUp(pair->primary_.admin, kStartLimit); !s.ok()) {
    return absl::UnavailableError(absl::StrCat(std::string(s.message()), "; primary log:\n",
                                               Tail(ReadFile(pair->primary_process_.log), 2000)));
  }
  return pair;
}

absl::Status LaunchedPair::StartDaemon(const PairOptions& options, const std::string& role,
                                       const std::string& peer_address, const std::string& secret,
                                       Process* process, DaemonAddresses* addresses,
                                       std::string* peer) {
  const std::string dir = absl::StrCat(options.dir, "/", options.name, "-", role);
  std::filesystem::create_directories(dir + "/data");
  {
    const mode_t old_mask = umask(077);  // the secret is for this user only
    std::ofstream(dir + "/data/peer.secret") << secret << "\n";
    umask(old_mask);
  }
  const std::string config = dir + "/config.toml";
  const std::string ready = dir + "/ready.json";
  process->log = dir + "/daemon.log";
  std::ofstream(config) << Config(options, role, dir, peer_address);

  std::fflush(nullptr);  // the child must not repeat our buffered output
  const pid_t pid = fork();
  if (pid < 0) return absl::InternalError("fork failed");
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);  // no daemon outlives a killed bench
    if (!std::freopen(process->log.c_str(), "a", stdout) ||
        !std::freopen(process->log.c_str(), "a", stderr)) {
      _exit(126);
    }
    if (options.holding_pen == "bypass") {
      execl(options.simarrayd.c_str(), options.simarrayd.c_str(), "--config", config.c_str(),
            "--ready-file", ready.c_str(), "--unsafe-bypass-holding-pen",
            static_cast<char*>(nullptr));
    }
    execl(options.simarrayd.c_str(), options.simarrayd.c_str(), "--config", config.c_str(),
          "--ready-file", ready.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  process->pid = pid;

  const auto deadline = std::chrono::steady_clock::now() + kStartLimit;
  while (!std::filesystem::exists(ready)) {
    int status = 0;
    if (waitpid(pid, &status, WNOHANG) == pid || std::chrono::steady_clock::now() > deadline) {
      process->pid = -1;
      if (kill(pid, 0) == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &status, 0);
      }
      return absl::UnavailableError(absl::StrCat("the ", role, " simarrayd (", options.simarrayd,
                                                 ") did not start; its log:\n",
                                                 Tail(ReadFile(process->log), 2000)));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  const std::string json = ReadFile(ready);
  addresses->admin.address = JsonField(json, "admin");
  auto token = ReadToken(dir + "/data/admin.token");  // the daemon made it at start
  if (!token.ok()) return token.status();
  addresses->admin.token = *token;
  addresses->host = JsonField(json, "ha0");
  addresses->nbd = JsonField(json, "nbd0");
  *peer = JsonField(json, "peer");
  return absl::OkStatus();
}

PairProbe LaunchedPair::Probe() const {
  PairProbe probe;
  probe.primary_admin = primary_.admin;
  probe.primary_host = primary_.host;
  probe.primary_pid = primary_process_.pid;
  probe.mirror_admin = mirror_.admin;
  probe.mirror_host = mirror_.host;
  probe.mirror_pid = mirror_process_.pid;
  return probe;
}

void LaunchedPair::Stop(Process& process) {
  if (process.pid <= 0) return;
  kill(process.pid, SIGTERM);
  int status = 0;
  waitpid(process.pid, &status, 0);
  process.pid = -1;
}

LaunchedPair::~LaunchedPair() {
  Stop(primary_process_);
  Stop(mirror_process_);
}

}  // namespace simarray::bench
