// simarrayd --config FILE [--data-dir DIR] [--ready-file F] [--log-level L]
#include <signal.h>
#include <unistd.h>

#include <cstdio>

#include "CLI/CLI.hpp"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "daemon/array.h"
#include "simarray/base/state_file.h"
#include "spdlog/spdlog.h"

namespace {

// Writes the bound addresses as JSON like a state file (docs/reliability.md, "State
// files"): tests and scripts read it once it exists, and never find it half written.
absl::Status WriteReadyFile(const std::string& path, const std::string& name,
                            const simarray::daemon::BoundAddresses& bound) {
  std::string json = absl::StrCat("{\"name\": \"", name, "\", \"pid\": ", getpid(),
                                  ", \"admin\": \"", bound.admin, "\", \"peer\": \"", bound.peer,
                                  "\", \"metrics\": \"", bound.metrics, "\", \"host_adaptors\": {");
  bool first = true;
  for (const auto& [id, addr] : bound.host_adaptors) {
    absl::StrAppend(&json, first ? "" : ", ", "\"", id, "\": \"", addr, "\"");
    first = false;
  }
  absl::StrAppend(&json, "}}\n");
  return simarray::WriteFileAtomically(path, json, 0644);
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"simarrayd: a simulated storage array with remote mirroring"};
  std::string config_path, data_dir, ready_file, log_level;
  app.add_option("--config", config_path, "TOML config file")->required();
  app.add_option("--data-dir", data_dir, "overrides data_dir of the config");
  app.add_option("--ready-file", ready_file, "once serving, write the bound addresses here (JSON)");
  app.add_option("--log-level", log_level, "trace, debug, info, warn, error");
  bool bypass_pen = false;
  app.add_flag("--unsafe-bypass-holding-pen", bypass_pen,
               "benchmark only, UNSAFE: writes skip the holding pen and are not validated, so a "
               "bad write reaches the mirror (what simarray-bench compares the pen against)");
  CLI11_PARSE(app, argc, argv);

  // Debian's Abseil keeps a lock graph for deadlock detection: a global lock and a graph
  // update for every Mutex destroyed (one per write ticket, among others): about 1% of the
  // daemon's CPU under load. The lock order is documented in docs/life-of-a-write.md.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);

  spdlog::set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%l%$ [%n] %v");
  auto config = simarray::daemon::LoadConfig(config_path, data_dir);
  if (!config.ok()) {
    std::fprintf(stderr, "simarrayd: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  if (bypass_pen) config->holding_pen = "bypass";  // array.cc warns about it at start
  spdlog::set_default_logger(spdlog::default_logger()->clone(config->name));
  spdlog::set_level(spdlog::level::from_str(log_level.empty() ? config->log_level : log_level));
  std::vector<std::string> warnings;
  if (absl::Status s = simarray::daemon::LoadSecrets(*config, &warnings); !s.ok()) {
    std::fprintf(stderr, "simarrayd: %s\n", std::string(s.message()).c_str());
    return 2;
  }
  for (const auto& w : warnings) spdlog::warn("config {}: {}", config_path, w);
  if (config->admin_token.empty()) {
    spdlog::warn("admin calls need no token (admin.token_file is not set)");
  }
  if (config->peer_secret.empty()) {
    spdlog::warn("the peer link is not authenticated (peer.secret_file is not set)");
  }

  // Signals are taken synchronously by the main thread, after every other thread has them
  // blocked.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);

  simarray::daemon::Array array(*config);
  auto bound = array.Start();
  if (!bound.ok()) {
    std::fprintf(stderr, "simarrayd: %s\n", std::string(bound.status().message()).c_str());
    array.Shutdown();
    return 1;
  }
  if (!ready_file.empty()) {
    if (absl::Status s = WriteReadyFile(ready_file, config->name, *bound); !s.ok()) {
      std::fprintf(stderr, "simarrayd: cannot write the ready file: %s\n",
                   std::string(s.message()).c_str());
      return 1;
    }
  }
  int sig = 0;
  sigwait(&signals, &sig);
  spdlog::info("signal {}: shutting down", sig);
  array.Shutdown();
  spdlog::info("stopped");
  return 0;
}
