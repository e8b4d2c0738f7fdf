// The web console (docs/console.md) in Debian's chromium, headless, against a real pair: the
// page's figures follow the array, its actions are admin calls that need the token.
#include <catch2/catch.hpp>
#include <filesystem>
#include <fstream>

#include "browser.h"
#include "daemon_process.h"

namespace simarray::testing {
namespace {

constexpr uint64_t kTrack = 64 << 10;

std::string ById(const std::string& id, const std::string& what = "textContent") {
  return "document.getElementById('" + id + "')." + what;
}

uint64_t Number(Browser& b, const std::string& id) {
  std::string text = b.Text(ById(id));
  text.erase(std::remove(text.begin(), text.end(), ','), text.end());
  return text.empty() ? 0 : std::stoull(text);
}

// Polls the page until `condition` holds (the page's feed refreshes once a second).
bool PageShows(const std::function<bool()>& condition) {
  return Eventually(condition, std::chrono::seconds(20));
}

TEST_CASE("the web console follows writes and the link and acts only with the admin token",
          "[integration][console]") {
  DaemonOptions primary;
  primary.metrics = true;
  primary.admin_token = true;
  DaemonOptions mirror;
  mirror.admin_token = true;
  Pair pair(primary, mirror);
  Daemon& a = *pair.primary;
  pair.CreateVolume("vol", 64 * kTrack);
  REQUIRE(WaitPairState(a, "Synchronized"));

  TempDir dir;
  Browser browser(dir.path());
  browser.Navigate("http://" + a.metrics_address() + "/");
  REQUIRE(PageShows([&] { return browser.Text(ById("pair-state")) == "Synchronized"; }));
  CHECK(browser.Text(ById("link-state")) == "link up");
  // The RDF groups table: the pair's one group, its SRDF state.
  CHECK(browser.Text("document.querySelector('#groups tr[data-group=default]')"
                     ".cells[4].textContent") == "Synchronized");

  // A write through gRPC raises the page's counter.
  const uint64_t before = Number(browser, "writes");
  for (uint64_t t = 0; t < 4; ++t) {
    REQUIRE(Write(a.host(), "vol", t * kTrack, Pattern(4096, 1 + t)).status.ok());
  }
  CHECK(PageShows([&] { return Number(browser, "writes") >= before + 4; }));
  {
    INFO("the page reported errors");
    for (const std::string& e : browser.errors()) UNSCOPED_INFO(e);
    CHECK(browser.errors().empty());
  }

  // Without the token the page's action is refused, and the link stays up.
  browser.Evaluate(ById("suspend", "click()"));
  CHECK(PageShows([&] {
    return browser.Text(ById("action-result")).find("refused: UNAUTHENTICATED") !=
           std::string::npos;
  }));
  CHECK(a.Status().link().state() == "up");
  CHECK(browser.Text(ById("access")) == "read-only");

  // With it, suspend: the page shows the link suspended and owed tracks rising.
  browser.Evaluate(ById("token", "value = '" + a.admin_token() + "'"));
  browser.Evaluate(ById("token-form", "requestSubmit()"));
  CHECK(browser.Text(ById("access")) == "admin (token set)");
  browser.Evaluate(ById("suspend", "click()"));
  REQUIRE(PageShows([&] { return browser.Text(ById("link-state")) == "link suspended"; }));
  CHECK(a.Status().link().state() == "suspended");
  for (uint64_t t = 8; t < 24; ++t) {
    REQUIRE(Write(a.host(), "vol", t * kTrack, Pattern(4096, 50 + t)).status.ok());
  }
  CHECK(PageShows([&] { return Number(browser, "owed-tracks") >= 16; }));

  // Resume: the resync shows in the events, then the pair is in sync again.
  browser.Evaluate(ById("resume", "click()"));
  CHECK(PageShows([&] { return browser.Text(ById("pair-state")) == "Synchronized"; }));
  CHECK(PageShows([&] { return Number(browser, "owed-tracks") == 0; }));
  CHECK(PageShows([&] {
    return browser.Text(ById("events", "innerText")).find("resync") != std::string::npos;
  }));
  CHECK(browser.Text(ById("events", "innerText")).find("suspended") != std::string::npos);

  // The screenshot docs/console.md shows.
  const std::string shot = std::string(CONSOLE_SCREENSHOT_PATH);
  browser.Screenshot(shot, 1280, 1500);
  std::ifstream png(shot, std::ios::binary);
  std::string magic(8, '\0');
  png.read(magic.data(), magic.size());
  CHECK(magic == "\x89PNG\r\n\x1a\n");
  CHECK(std::filesystem::file_size(shot) > 10000);

  // The one error the page may show: the browser logs the refusal above (401) it provoked.
  for (const std::string& e : browser.errors()) {
    INFO(e);
    CHECK(e.find("status of 401") != std::string::npos);
    CHECK(e.find("/api/admin/SuspendLink") != std::string::npos);
  }
}

}  // namespace
}  // namespace simarray::testing
