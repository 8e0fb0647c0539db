#pragma once
// Watchdog: ends the whole job (AbortJob) when a phase that waits on other
// ranks outside the Communicator — the parallel HDF5 writes of a checkpoint,
// whose collectives run inside MPI-IO — has not finished within a deadline.
// The Communicator's own collectives detect a silent peer themselves
// (MpiCommunicator's collective timeout); this covers the waits it cannot see.
//
//   {
//     Watchdog guard(timeout_s, "checkpoint save at step 40");
//     ... collective work ...
//   }  // disarmed
//
// Thread safety: one thread arms and disarms; the watchdog's own thread only
// sleeps until the deadline or the disarm. At the deadline it prints
// "mlatrain: rank R: <what> did not finish within S s (a peer rank may be
// lost or stopped)" and calls MPI_Abort from that thread: the rank is stuck
// inside MPI, so the main thread cannot do it, and ending the job is the
// only way out that does not hang. Should MPI_Abort itself stall (Open MPI
// reporting to an unreachable launcher), the process exits with status 1
// five seconds later.
#include <condition_variable>
#include <mutex>
#include <string>
#include <thread>

namespace mla {

class Watchdog {
 public:
  // timeout_s <= 0: no watchdog (the guard does nothing).
  Watchdog(double timeout_s, std::string what);
  ~Watchdog();
  Watchdog(const Watchdog&) = delete;
  Watchdog& operator=(const Watchdog&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool done_ = false;
  std::thread thread_;
};

}  // namespace mla
