// Probe for AbortJob under mpirun: the last rank aborts with a known status
// while the others wait in a barrier it never joins. The job must end (no
// hang) with the status printed once; reaching the end of main on any rank
// means AbortJob failed to stop the job. Run by the comm_abort_job_ends_job test.
#include <cstdio>
#include <memory>

#include "comm/mpi_communicator.h"

int main(int argc, char** argv) {
  auto session = mla::MpiSession::Init(&argc, &argv);
  if (!session.ok()) mla::AbortJob(session.status());
  auto comm = mla::MpiCommunicator::Create();
  if (!comm.ok()) mla::AbortJob(comm.status());
  if ((*comm)->rank() == (*comm)->size() - 1)
    mla::AbortJob(absl::InternalError("injected failure on the last rank"));
  const absl::Status barrier = (*comm)->Barrier();
  std::printf("rank %d got past the barrier: %s\n", (*comm)->rank(), barrier.ToString().c_str());
  return 0;
}
