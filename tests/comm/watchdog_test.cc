// Watchdog (comm/watchdog.h): ends the process with a message naming the
// phase when it is not disarmed in time, and does nothing when it is.
// Without MPI running, AbortJob ends the process with EXIT_FAILURE, which is
// what the death tests observe.
#include "comm/watchdog.h"

#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace mla {
namespace {

TEST(WatchdogTest, DisarmedBeforeTheDeadlineDoesNothing) {
  const auto t0 = std::chrono::steady_clock::now();
  { Watchdog guard(30.0, "a quick phase"); }
  // Disarming wakes the watchdog's thread at once instead of at the deadline.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(5));
}

TEST(WatchdogDeathTest, PhaseOverItsDeadlineEndsTheProcessNamingIt) {
  EXPECT_EXIT(
      {
        Watchdog guard(0.2, "the checkpoint save at step 7");
        std::this_thread::sleep_for(std::chrono::seconds(30));
      },
      ::testing::ExitedWithCode(1),
      "the checkpoint save at step 7 did not finish within 0.2 s");
}

}  // namespace
}  // namespace mla
