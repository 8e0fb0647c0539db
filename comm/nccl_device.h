#pragma once
// The process's CUDA devices: how many it sees, which one is current, and
// SelectLocalCudaDevice, the node-local choice NcclCommunicator::Create
// makes. CreateKernels (runtime/create_kernels.h) counts with
// CudaDeviceCount, applies the same rule (ChooseLocalDevice,
// comm/nccl_bootstrap.h) to the node-local rank and makes the result
// current with UseCudaDevice, so `mpirun -np N` puts rank r of a node on the
// same GPU for training, NCCL and mla-eval. Not collective; CUDA builds only.
#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace mla {

// Visible CUDA devices; an error naming the CUDA call (e.g. no device or no
// driver) otherwise.
absl::StatusOr<int> CudaDeviceCount();

// Makes `device` current on the calling thread.
absl::Status UseCudaDevice(int device);

// CudaDeviceCount, ChooseLocalDevice, UseCudaDevice: the chosen device, now
// current; an error naming the CUDA call or the rank and device counts.
absl::StatusOr<int> SelectLocalCudaDevice(int local_rank, int local_size);

}  // namespace mla
