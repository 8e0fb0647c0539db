#pragma once
// The single-process communicator: rank 0 of 1. Every collective is the
// identity (a reduction over one rank is its input; an average divides by 1),
// so code written against Communicator runs and is testable without mpirun.
// Arguments are still validated like the MPI implementation does (root rank,
// reduction kinds), so a misuse fails here too. Not thread-safe; never fails
// except on invalid arguments.
#include "comm/communicator.h"

namespace mla {

class LocalCommunicator final : public Communicator {
 public:
  LocalCommunicator() = default;
  LocalCommunicator(const LocalCommunicator&) = delete;
  LocalCommunicator& operator=(const LocalCommunicator&) = delete;

  int rank() const override { return 0; }
  int size() const override { return 1; }
  int local_rank() const override { return 0; }
  int local_size() const override { return 1; }

  MLA_COMMUNICATOR_COLLECTIVES;
  absl::Status Barrier() override { return absl::OkStatus(); }

 protected:
  absl::Status WaitRequest(uint64_t* handle) override;
  absl::StatusOr<bool> TestRequest(uint64_t* handle) override;
};

}  // namespace mla
