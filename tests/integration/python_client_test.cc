// examples/python/simarray_client.py (Debian's python3-grpcio, stubs generated at run time
// by protoc + grpc_python_plugin) against a real pair: it must exit 0 (written, read back
// identical, consistent), and the volume it created must be consistent from here too.
#include <sys/wait.h>

#include <catch2/catch.hpp>
#include <cstdio>

#include "daemon_process.h"

namespace simarray::testing {

TEST_CASE("the Python example client writes, reads back and finds the pair consistent",
          "[integration][python]") {
  DaemonOptions options;
  options.admin_token = true;  // as the shipped configs
  Pair pair(options);
  const std::string cmd = std::string("/usr/bin/python3 ") + SIMARRAY_SOURCE_DIR +
                          "/examples/python/simarray_client.py --admin " +
                          pair.primary->admin_address() + " --host " +
                          pair.primary->host_address() + " --token-file " +
                          pair.primary->data_dir() + "/admin.token --volume pyvol 2>&1";
  FILE* pipe = popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  std::string output;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, pipe)) > 0) output.append(buf, n);
  const int status = pclose(pipe);
  INFO(cmd << "\n" << output);
  REQUIRE(WIFEXITED(status));
  REQUIRE(WEXITSTATUS(status) == 0);
  v1::CheckConsistencyReply check = CheckConsistency(*pair.primary, "pyvol");
  CHECK(check.consistent());
  CHECK(pair.primary->Status().pens(0).writes_committed() == 1);
}

}  // namespace simarray::testing
