#include "comm/watchdog.h"

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "comm/mpi_communicator.h"

namespace mla {
namespace {
constexpr std::chrono::seconds kAbortGrace{5};
}  // namespace

Watchdog::Watchdog(double timeout_s, std::string what) {
  if (!(timeout_s > 0)) return;
  thread_ = std::thread([this, timeout_s, what = std::move(what)] {
    std::unique_lock<std::mutex> lock(mu_);
    if (cv_.wait_for(lock, std::chrono::duration<double>(timeout_s), [this] { return done_; }))
      return;
    // MPI_Abort reports through Open MPI's runtime, which can itself wait
    // forever when the peer's host is gone (seen: both the TCP transport's
    // error report and MPI_Abort stuck in orte_show_help). A last-resort
    // timer ends this process if the abort has not within kAbortGrace.
    std::thread([] {
      std::this_thread::sleep_for(kAbortGrace);
      std::fprintf(stderr, "mlatrain: MPI_Abort did not end this rank within %d s; exiting\n",
                   static_cast<int>(kAbortGrace.count()));
      std::fflush(stderr);
      std::_Exit(1);
    }).detach();
    AbortJob(absl::DeadlineExceededError(absl::StrCat(
        what, " did not finish within ", timeout_s,
        " s (--collective_timeout; a peer rank may be lost or stopped)")));
  });
}

Watchdog::~Watchdog() {
  if (!thread_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    done_ = true;
  }
  cv_.notify_one();
  thread_.join();
}

}  // namespace mla
