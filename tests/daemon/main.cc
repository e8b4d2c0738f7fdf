// Catch2's runner for daemon_test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
