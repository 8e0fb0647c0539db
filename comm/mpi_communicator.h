#pragma once
// MPI plumbing for a training job: the MPI lifetime (MpiSession), the
// host-buffer Communicator over a private duplicate of MPI_COMM_WORLD
// (MpiCommunicator), and AbortJob, which ends every rank of the job.
//
// Failure: the communicator's error handler is MPI_ERRORS_RETURN, so a failed
// MPI call becomes an absl::Status naming the call and MPI's message instead
// of killing the process; the caller decides (usually AgreeOnStatus, then a
// clean exit, or AbortJob when ranks may already be out of step).
// Hung peers: with a collective timeout, every collective is started
// non-blocking and polled; one that makes no progress for the timeout ends
// the job (AbortJob) with a message naming the ranks that did not answer a
// short liveness probe among the waiting ranks (a stopped, hung or far slower
// peer), instead of waiting forever.
// Thread safety: MPI is initialised with at least MPI_THREAD_FUNNELED, so
// only the thread that created the session may call MPI (OpenMP regions
// inside the math are fine). Non-blocking collectives progress when MPI is
// entered: callers overlapping work with a request poll it with Test().
#include <mpi.h>

#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "comm/communicator.h"

namespace mla {

// True when this process was started by an MPI launcher (mpirun/mpiexec of
// Open MPI or MPICH, srun with PMI/PMIx): the launcher's environment is set.
bool LaunchedUnderMpi();

// Owns MPI's lifetime: MPI_Init_thread on creation, MPI_Finalize on
// destruction. When MPI is already initialised (e.g. by a test main) it
// checks the thread level and leaves finalisation to whoever initialised it.
class MpiSession {
 public:
  static absl::StatusOr<std::unique_ptr<MpiSession>> Init(int* argc, char*** argv);
  ~MpiSession();
  MpiSession(const MpiSession&) = delete;
  MpiSession& operator=(const MpiSession&) = delete;

  int thread_level() const { return thread_level_; }

 private:
  MpiSession(bool owns, int thread_level) : owns_(owns), thread_level_(thread_level) {}
  bool owns_;
  int thread_level_;
};

// Prints "rank R: <status>" on stderr and ends the whole job (MPI_Abort on
// MPI_COMM_WORLD when MPI is running, otherwise a failing process exit), so a
// rank that cannot go on never leaves the others waiting in a collective.
[[noreturn]] void AbortJob(const absl::Status& status);

class MpiCommunicator final : public Communicator {
 public:
  // Duplicates MPI_COMM_WORLD (so library traffic never matches user
  // messages), sets MPI_ERRORS_RETURN on it and finds the node-local rank.
  // Requires an initialised MPI (MpiSession). `collective_timeout_s` > 0: a
  // collective waiting longer than that ends the job naming the silent
  // ranks; 0 waits forever.
  static absl::StatusOr<std::unique_ptr<MpiCommunicator>> Create(double collective_timeout_s = 0);
  // Frees the duplicated communicator (skipped, with a log line, when MPI
  // was already finalised).
  ~MpiCommunicator() override;
  MpiCommunicator(const MpiCommunicator&) = delete;
  MpiCommunicator& operator=(const MpiCommunicator&) = delete;

  int rank() const override { return rank_; }
  int size() const override { return size_; }
  int local_rank() const override { return local_rank_; }
  int local_size() const override { return local_size_; }

  MLA_COMMUNICATOR_COLLECTIVES;
  absl::Status Barrier() override;

  MPI_Comm comm() const { return comm_; }

 protected:
  absl::Status WaitRequest(uint64_t* handle) override;
  absl::StatusOr<bool> TestRequest(uint64_t* handle) override;

 private:
  MpiCommunicator(MPI_Comm comm, MPI_Comm probe_comm, double timeout_s)
      : comm_(comm), probe_comm_(probe_comm), timeout_s_(timeout_s) {}
  // Fills counts_/displs_ with every rank's ShardRange of `total` elements.
  absl::Status ComputeShardCounts(int64_t total);
  // Completes a started collective `call`, within the timeout.
  absl::Status Complete(MPI_Request* request, absl::string_view call);
  // The in-place all-reduce of `count` elements of `type` at `data` with
  // `op`'s MPI operation (a kAverage is left summed: the caller scales);
  // `type_name` names the type in messages.
  absl::Status AllReduceInPlace(void* data, size_t count, MPI_Datatype type,
                                absl::string_view type_name, ReduceOp op);
  // Called after `waited` seconds without progress: the waiting ranks tell
  // each other they are alive on probe_comm_; the rest are named and the job
  // ends.
  [[noreturn]] void AbortNamingSilentRanks(absl::string_view call, double waited);

  MPI_Comm comm_;
  MPI_Comm probe_comm_;  // the liveness probe's messages, apart from collectives
  double timeout_s_;
  int rank_ = 0;
  int size_ = 1;
  int local_rank_ = 0;
  int local_size_ = 1;
  // Reused per call so collectives over shards allocate only when the
  // buffer size changes.
  int64_t counts_total_ = -1;
  std::vector<int> counts_;
  std::vector<int> displs_;
};

}  // namespace mla
