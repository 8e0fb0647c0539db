#pragma once
// SelectLocalCudaDevice: the one place a process picks its GPU. Training
// (runtime/cuda_training_device.cc, before the kernels and NCCL exist),
// NcclCommunicator::Create and mla-eval --device=cuda all call it, so
// `mpirun -np N` puts rank r of a node on the same GPU for every program:
// counts the visible devices, applies ChooseLocalDevice's rule
// (comm/nccl_bootstrap.h) to the node-local rank, and makes that device
// current on the calling thread. Not collective; CUDA builds only.
#include "absl/status/statusor.h"

namespace mla {

// The chosen device, now current; an error naming the CUDA call or the rank
// and device counts otherwise.
absl::StatusOr<int> SelectLocalCudaDevice(int local_rank, int local_size);

}  // namespace mla
