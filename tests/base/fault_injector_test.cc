#include "simarray/base/fault_injector.h"

#include <catch2/catch.hpp>

namespace simarray {
namespace {

TEST_CASE("an armed corrupt-next-write fault is taken once per arming", "[base][fault]") {
  FaultInjector faults;
  CHECK_FALSE(faults.TakeCorruptNextWrite());
  faults.ArmCorruptNextWrite();
  faults.ArmCorruptNextWrite();
  CHECK(faults.TakeCorruptNextWrite());
  CHECK(faults.TakeCorruptNextWrite());
  CHECK_FALSE(faults.TakeCorruptNextWrite());
}

TEST_CASE("the record delay is stored and cleared", "[base][fault]") {
  FaultInjector faults;
  CHECK(faults.record_delay_ms() == 0);
  faults.SetRecordDelayMs(250);
  CHECK(faults.record_delay_ms() == 250);
  faults.SetRecordDelayMs(0);
  CHECK(faults.record_delay_ms() == 0);
}

}  // namespace
}  // namespace simarray
