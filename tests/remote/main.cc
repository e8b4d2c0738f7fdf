// Catch2's runner for remote_test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
