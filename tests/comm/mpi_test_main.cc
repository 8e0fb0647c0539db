// main() for GoogleTest binaries run under mpirun: initialises MPI through
// MpiSession, lets rank 0 print the usual report while other ranks print only
// their failures (prefixed with the rank), and exits non-zero on every rank
// when any rank failed, so mpirun and ctest report the failure.
#include <mpi.h>

#include <cstdio>

#include "comm/mpi_communicator.h"
#include "gtest/gtest.h"

namespace {

class FailurePrinter : public ::testing::EmptyTestEventListener {
 public:
  explicit FailurePrinter(int rank) : rank_(rank) {}
  void OnTestPartResult(const ::testing::TestPartResult& result) override {
    if (!result.failed()) return;
    std::fprintf(stderr, "[rank %d] %s:%d: Failure\n%s\n", rank_,
                 result.file_name() ? result.file_name() : "?", result.line_number(),
                 result.summary());
  }

 private:
  int rank_;
};

}  // namespace

int main(int argc, char** argv) {
  auto session = mla::MpiSession::Init(&argc, &argv);
  if (!session.ok()) {
    std::fprintf(stderr, "MPI initialisation failed: %s\n", session.status().ToString().c_str());
    return 1;
  }
  ::testing::InitGoogleTest(&argc, argv);
  int rank = 0;
  MPI_Comm_rank(MPI_COMM_WORLD, &rank);
  if (rank != 0) {
    ::testing::TestEventListeners& listeners = ::testing::UnitTest::GetInstance()->listeners();
    delete listeners.Release(listeners.default_result_printer());
    listeners.Append(new FailurePrinter(rank));  // GoogleTest takes ownership
  }
  const int local = RUN_ALL_TESTS();
  int any = local;
  MPI_Allreduce(&local, &any, 1, MPI_INT, MPI_MAX, MPI_COMM_WORLD);
  if (rank == 0 && local == 0 && any != 0)
    std::fprintf(stderr, "FAILED on another rank (its failures are printed above)\n");
  return any;
}
