#pragma once
// The host-side steps that start NCCL on every rank, written against the
// Communicator interface so they run (and are tested) over MPI without GPUs:
//
//   1. ChooseLocalDevice: the GPU a rank drives, from its node-local rank
//      (MPI_Comm_split_type, comm/mpi_communicator.h) and the devices it sees.
//   2. CheckDistinctDevices: no two ranks drive the same GPU (compared by
//      an identity string such as the PCI bus id), a clear error instead of
//      NCCL's later failure.
//   3. ExchangeUniqueId: rank 0 creates the NCCL unique id, every rank
//      receives its bytes (MPI broadcast); a failure on rank 0 reaches all.
//
// Each is collective where it says so (all ranks call it, same order) and
// returns the same status on every rank. Thread safety: as the Communicator.
#include <array>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "comm/communicator.h"

namespace mla {

// NCCL_UNIQUE_ID_BYTES; nccl.h is not needed to move the bytes.
inline constexpr int kNcclUniqueIdBytes = 128;
using NcclUniqueIdBytes = std::array<uint8_t, kNcclUniqueIdBytes>;

// Local, not collective. local_size ≤ device_count: device local_rank (one
// GPU per rank on the node). device_count == 1 with several local ranks:
// device 0 (the launcher bound one GPU to each rank, e.g. CUDA_VISIBLE_DEVICES
// per task; CheckDistinctDevices catches ranks that really share it).
// Otherwise an error naming the counts.
absl::StatusOr<int> ChooseLocalDevice(int local_rank, int local_size, int device_count);

// Collective. `identity` names this rank's GPU uniquely across the job
// (hostname + PCI bus id); at most 63 bytes are compared.
absl::Status CheckDistinctDevices(Communicator& comm, absl::string_view identity);

// Collective. Only rank 0 calls `generate`.
absl::StatusOr<NcclUniqueIdBytes> ExchangeUniqueId(
    Communicator& comm, const std::function<absl::StatusOr<NcclUniqueIdBytes>()>& generate);

}  // namespace mla
