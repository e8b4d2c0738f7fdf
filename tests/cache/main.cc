// Catch2's runner for cache_test.
#define CATCH_CONFIG_MAIN
#include <catch2/catch.hpp>
