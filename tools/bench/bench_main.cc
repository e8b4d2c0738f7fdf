// simarray-bench [--duration-s S] [--warmup-s S] [--json] [--only ROW,...] [--simarrayd PATH]
//                [--rpo-study]
//                [--primary ADMIN --primary-host HA [--primary-nbd NBD] [--mirror ADMIN]
//                 [--primary-token-file F] [--mirror-token-file F]]
//
// Measures simarray beside raw baselines on the same machine (docs/performance.md) and prints one
// table: workload | simarray | baseline | ratio | target. By default it starts its own pairs
// of simarrayd on loopback; with --primary it measures an existing pair instead (the pen row,
// which needs two pairs of its own, is then skipped). Live progress goes to stderr, the table
// (or --json) to stdout.
//
// Exit codes: 0 the bench ran (a missed target is a result, not an error); 1 a workload
// failed; 2 bad command line, or no pair to measure.
#include <stdlib.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>

#include "CLI/CLI.hpp"
#include "fmt/format.h"
#include "tools/bench/bench.h"
#include "tools/bench/report.h"
#include "tools/bench/rpo_study.h"

namespace simarray::bench {
namespace {

std::string DescribeMachine() {
  std::string cpu = "unknown CPU";
  std::ifstream cpuinfo("/proc/cpuinfo");
  for (std::string line; std::getline(cpuinfo, line);) {
    if (line.rfind("model name", 0) == 0 && line.find(':') != std::string::npos) {
      cpu = line.substr(line.find(':') + 2);
      break;
    }
  }
  double load[1] = {0};
  getloadavg(load, 1);
  return fmt::format("{} CPUs ({}), load average {:.2f} at start",
                     std::thread::hardware_concurrency(), cpu, load[0]);
}

// A scratch directory for the launched pairs, removed with everything in it.
class ScratchDir {
 public:
  ScratchDir() {
    std::string templ = (std::filesystem::temp_directory_path() / "simarray-bench-XXXXXX");
    if (mkdtemp(templ.data()) != nullptr) path_ = templ;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

int Main(int argc, char** argv) {
  CLI::App app{
      "simarray-bench: simarray beside raw gRPC and nbdkit baselines (docs/performance.md)"};
  BenchFlags flags;
  app.add_option("--duration-s", flags.duration_s, "measured seconds per workload")
      ->check(CLI::Range(0.5, 600.0))
      ->capture_default_str();
  app.add_option("--warmup-s", flags.warmup_s, "unmeasured seconds before each workload")
      ->check(CLI::Range(0.0, 60.0))
      ->capture_default_str();
  app.add_flag("--json", flags.json, "print the results as JSON instead of the table");
  app.add_option("--simarrayd", flags.simarrayd,
                 "the daemon to start (default: the one built beside this bench)");
  app.add_option("--only", flags.only,
                 "run only these rows: qd1, qd32, async, link, nbd, flush, size, tracks, pen")
      ->check(
          CLI::IsMember({"qd1", "qd32", "async", "link", "nbd", "flush", "size", "tracks", "pen"}))
      ->delimiter(',');
  auto* primary = app.add_option("--primary", flags.primary_admin,
                                 "measure an existing pair: its primary's admin address");
  auto* host = app.add_option("--primary-host", flags.primary_host,
                              "the primary's gRPC host adaptor (with --primary)");
  app.add_option("--primary-nbd", flags.primary_nbd,
                 "the primary's NBD host adaptor, for the fio row (with --primary)")
      ->needs(primary);
  auto* mirror =
      app.add_option("--mirror", flags.mirror_admin,
                     "the mirror's admin address: checked to be a mirror holding the bench volume");
  mirror->needs(primary);
  app.add_option("--primary-token-file", flags.primary_token_file,
                 "the primary's admin token file (its admin.token_file)")
      ->needs(primary);
  app.add_option("--mirror-token-file", flags.mirror_token_file,
                 "the mirror's admin token file (its admin.token_file)")
      ->needs(mirror);
  bool rpo_study = false;
  app.add_flag("--rpo-study", rpo_study,
               "run the RPO study of docs/async.md instead of the rows (minutes; --duration-s "
               "is each run's length)");
  primary->needs(host);
  host->needs(primary);
  CLI11_PARSE(app, argc, argv);

  ScratchDir scratch;
  if (scratch.path().empty()) {
    std::fprintf(stderr, "simarray-bench: cannot create a scratch directory\n");
    return 2;
  }
  Bench bench(flags, scratch.path());
  if (rpo_study) return RunRpoStudy(bench.DaemonPath(), scratch.path(), flags.duration_s);
  Report& report = bench.report();
  report.set_machine(DescribeMachine());
  report.set_duration_s(flags.duration_s);
  std::string command = "simarray-bench";
  for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
  report.set_command(command);
  if (absl::Status s = bench.Prepare(); !s.ok()) {
    std::fprintf(stderr, "simarray-bench: %s\n", s.ToString().c_str());
    return 2;
  }
  if (flags.Wants("qd1")) bench.SyncQd1();
  if (flags.Wants("qd32")) bench.SyncQd32();
  if (flags.Wants("async")) bench.AsyncSequential();
  if (flags.Wants("link")) bench.EmulatedLink();
  if (flags.Wants("nbd")) bench.NbdRandomWrite();
  if (flags.Wants("flush")) bench.NbdFlushWrite();
  bench.CheckMirror();
  // These start pairs of their own, stopping the pair the rows above measured.
  if (flags.Wants("size")) bench.VolumeSizeCost();
  if (flags.Wants("tracks")) bench.TrackSizeCost();
  if (flags.Wants("pen")) bench.PenCost();

  if (flags.json) {
    std::printf("%s\n", FormatJson(report).c_str());
  } else {
    std::printf("\n%s\n%s\n", report.machine().c_str(), FormatTable(report).c_str());
  }
  return bench.failed() ? 1 : 0;
}

}  // namespace
}  // namespace simarray::bench

int main(int argc, char** argv) { return simarray::bench::Main(argc, argv); }
