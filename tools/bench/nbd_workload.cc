#include "tools/bench/nbd_workload.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fmt/format.h"
#include "google/protobuf/struct.pb.h"
#include "google/protobuf/util/json_util.h"
#include "tools/bench/progress.h"

namespace simarray::bench {
namespace {

using google::protobuf::Struct;
using google::protobuf::Value;

// Runs `argv` with stdout captured to a string and stderr to `err_file`; returns the exit
// code (or -1 if it could not run).
int Capture(const std::vector<std::string>& argv, const std::string& err_file, std::string* out) {
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) return -1;
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(pipe_fds[1], STDOUT_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    if (!std::freopen(err_file.c_str(), "w", stderr)) _exit(126);
    std::vector<char*> args;
    for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
    args.push_back(nullptr);
    execv(args[0], args.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  char buffer[1 << 14];
  ssize_t n;
  while ((n = read(pipe_fds[0], buffer, sizeof(buffer))) > 0) out->append(buffer, n);
  close(pipe_fds[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

const Value* Field(const Struct& s, const std::string& key) {
  auto it = s.fields().find(key);
  return it == s.fields().end() ? nullptr : &it->second;
}

// jobs[0].write out of fio's JSON output.
absl::StatusOr<FioResult> ParseFio(const std::string& output) {
  // fio may print warnings before the JSON document.
  const size_t open = output.find('{');
  if (open == std::string::npos) return absl::InternalError("fio printed no JSON");
  Struct root;
  if (auto s = google::protobuf::util::JsonStringToMessage(output.substr(open), &root); !s.ok()) {
    return absl::InternalError(absl::StrCat("fio's JSON: ", std::string(s.message())));
  }
  const Value* jobs = Field(root, "jobs");
  if (jobs == nullptr || jobs->list_value().values_size() == 0) {
    return absl::InternalError("fio's JSON has no jobs");
  }
  const Struct& job = jobs->list_value().values(0).struct_value();
  const Value* error = Field(job, "error");
  if (error != nullptr && error->number_value() != 0) {
    return absl::InternalError(absl::StrCat("fio job error ", error->number_value()));
  }
  const Value* write = Field(job, "write");
  if (write == nullptr) return absl::InternalError("fio's JSON has no write figures");
  FioResult result;
  if (const Value* iops = Field(write->struct_value(), "iops")) result.iops = iops->number_value();
  if (const Value* clat = Field(write->struct_value(), "clat_ns")) {
    if (const Value* pct = Field(clat->struct_value(), "percentile")) {
      const Struct& p = pct->struct_value();
      if (const Value* v = Field(p, "50.000000")) result.p50_us = v->number_value() / 1000;
      if (const Value* v = Field(p, "99.000000")) result.p99_us = v->number_value() / 1000;
    }
  }
  return result;
}

}  // namespace

std::string FindTool(const std::string& name) {
  const char* path = std::getenv("PATH");
  for (const auto& dir : absl::StrSplit(path ? path : "/usr/bin:/bin", ':')) {
    const std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return "";
}

absl::StatusOr<FioResult> RunFio(const FioOptions& options) {
  const std::string fio = FindTool("fio");
  if (fio.empty()) return absl::FailedPreconditionError("fio is not installed");
  std::vector<std::string> argv = {fio,
                                   "--name=bench",
                                   "--ioengine=nbd",
                                   "--uri=" + options.uri,
                                   "--rw=randwrite",
                                   "--bs=4k",
                                   fmt::format("--iodepth={}", options.depth),
                                   fmt::format("--size={}", options.size),
                                   "--time_based",
                                   fmt::format("--ramp_time={:.1f}", options.warmup.count()),
                                   fmt::format("--runtime={:.1f}", options.duration.count()),
                                   "--output-format=json"};
  if (options.flush_every > 0) argv.push_back(fmt::format("--fsync={}", options.flush_every));
  // fio's own progress goes nowhere useful with JSON output, so count the time instead.
  ProgressLine progress(options.label, options.warmup + options.duration);
  std::atomic<bool> running{true};
  const auto started = std::chrono::steady_clock::now();
  std::thread ticker([&] {
    bool window_hook_due = static_cast<bool>(options.at_window_start);
    while (running.load()) {
      if (window_hook_due && std::chrono::steady_clock::now() - started >= options.warmup) {
        window_hook_due = false;
        options.at_window_start();
      }
      progress.Update("fio running");
      using Seconds = std::chrono::duration<double>;
      Seconds pause(0.2);
      if (window_hook_due) {
        pause =
            std::min<Seconds>(pause, options.warmup - (std::chrono::steady_clock::now() - started));
      }
      std::this_thread::sleep_for(std::max<Seconds>(pause, Seconds(0)));
    }
  });
  const std::string err_file =
      std::filesystem::temp_directory_path() / fmt::format("simarray-bench-fio-{}.err", getpid());
  std::string output;
  const int code = Capture(argv, err_file, &output);
  running.store(false);
  ticker.join();
  std::string errors;
  if (FILE* f = std::fopen(err_file.c_str(), "r")) {
    char line[512];
    while (std::fgets(line, sizeof(line), f)) errors += line;
    std::fclose(f);
  }
  std::remove(err_file.c_str());
  if (code != 0) {
    progress.Done("failed");
    return absl::InternalError(absl::StrCat("fio exited with ", code, ": ", errors));
  }
  auto result = ParseFio(output);
  progress.Done(result.ok() ? fmt::format("{:.0f} IOPS", result->iops) : "failed");
  return result;
}

absl::StatusOr<std::unique_ptr<NbdkitMemory>> NbdkitMemory::Start(const std::string& nbdkit,
                                                                  uint64_t size) {
  const int listener = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof(addr);
  if (listener < 0 || bind(listener, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0 ||
      listen(listener, 64) != 0 ||
      getsockname(listener, reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
    if (listener >= 0) close(listener);
    return absl::UnavailableError("cannot listen on a loopback port for nbdkit");
  }
  std::unique_ptr<NbdkitMemory> server(new NbdkitMemory);
  server->uri_ = fmt::format("nbd://127.0.0.1:{}/", ntohs(addr.sin_port));
  const std::string size_arg = std::to_string(size);
  std::fflush(nullptr);
  const pid_t pid = fork();
  if (pid < 0) {
    close(listener);
    return absl::InternalError("fork failed");
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    // Socket activation (sd_listen_fds): the listening socket is fd 3, inheritable.
    if (listener == 3) {
      fcntl(3, F_SETFD, 0);
    } else {
      dup2(listener, 3);  // dup2 clears close-on-exec on the copy
    }
    const std::string pid_text = std::to_string(getpid());
    setenv("LISTEN_PID", pid_text.c_str(), 1);
    setenv("LISTEN_FDS", "1", 1);
    if (!std::freopen("/dev/null", "w", stdout)) _exit(126);
    execl(nbdkit.c_str(), nbdkit.c_str(), "--foreground", "memory", size_arg.c_str(),
          static_cast<char*>(nullptr));
    _exit(127);
  }
  close(listener);
  server->pid_ = pid;
  // The port already listens (the kernel queues connections until nbdkit accepts them).
  return server;
}

NbdkitMemory::~NbdkitMemory() {
  if (pid_ <= 0) return;
  kill(pid_, SIGTERM);
  int status = 0;
  waitpid(pid_, &status, 0);
}

}  // namespace simarray::bench
