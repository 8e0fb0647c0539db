#pragma once
// RunDirLock: one mla-train job at a time per run directory (--out_dir).
//
// The lock is an advisory open-file-description lock (fcntl F_OFD_SETLK) on
// `<dir>/mla-train.lock`, whose content names the holder (pid, host, start
// time in UTC). The kernel drops the lock when the holding process ends in any
// way (exit, crash, kill -9), so a lock left by a dead job is stale and is
// simply taken over; the file itself stays. Only readers that ask for the lock
// are kept out: mla-ckpt and mla-eval never take it, so they may read a run
// directory while it trains. Under MPI only rank 0 takes the lock (the ranks
// of one job may sit on several hosts sharing the directory); its verdict is
// the job's.
//
// Thread safety: a RunDirLock is owned by one thread. Move-only; the lock is
// released when the object is destroyed.
#include <string>

#include "absl/status/statusor.h"
#include "base/safe_output.h"

namespace mla {

class RunDirLock {
 public:
  static constexpr char kFileName[] = "mla-train.lock";

  // Creates `dir` (like mkdir -p) and takes its lock. FailedPrecondition
  // naming the holder's pid, host and start time when another process holds
  // it; Internal with the errno for file-system failures.
  static absl::StatusOr<RunDirLock> Acquire(const std::string& dir);

  RunDirLock(RunDirLock&&) noexcept = default;
  RunDirLock& operator=(RunDirLock&&) noexcept = default;

  const std::string& path() const { return path_; }

 private:
  RunDirLock(std::string path, Fd fd) : path_(std::move(path)), fd_(std::move(fd)) {}
  std::string path_;
  Fd fd_;  // holds the lock while open
};

}  // namespace mla
