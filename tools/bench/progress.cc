#include "tools/bench/progress.h"

#include <unistd.h>

#include <cstdio>

#include "fmt/format.h"

namespace simarray::bench {

ProgressLine::ProgressLine(std::string label, std::chrono::duration<double> planned)
    : label_(std::move(label)),
      planned_(planned),
      started_(std::chrono::steady_clock::now()),
      terminal_(isatty(STDERR_FILENO) != 0) {}

ProgressLine::~ProgressLine() {
  std::string figures;
  {
    std::lock_guard lock(mu_);
    if (done_) return;
    figures = last_figures_;
  }
  Done(figures);
}

void ProgressLine::Update(const std::string& figures) {
  std::lock_guard lock(mu_);
  last_figures_ = figures;
  const auto now = std::chrono::steady_clock::now();
  if (done_ || !terminal_ || now - last_draw_ < std::chrono::milliseconds(200)) return;
  last_draw_ = now;
  Draw(figures, false);
}

void ProgressLine::Done(const std::string& figures) {
  std::lock_guard lock(mu_);
  if (done_) return;
  done_ = true;
  last_figures_ = figures;
  Draw(figures, true);
}

void ProgressLine::Draw(const std::string& figures, bool final) {
  const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - started_;
  const std::string line =
      fmt::format("  [{}] {:.1f}/{:.1f} s  {}", label_, elapsed.count(), planned_.count(), figures);
  if (terminal_) {
    // \033[K clears what a longer earlier line left behind.
    std::fprintf(stderr, "\r%s\033[K%s", line.c_str(), final ? "\n" : "");
  } else {
    std::fprintf(stderr, "%s\n", line.c_str());
  }
  std::fflush(stderr);
}

void Say(const std::string& message) {
  std::fprintf(stderr, "%s\n", message.c_str());
  std::fflush(stderr);
}

}  // namespace simarray::bench
